"""The anytcpip benchmark suite (``anytcpip bench``, ``benchmarks/run.py``).

Private: the command line is the interface. For the CLI, :func:`add_arguments`
fills an :class:`argparse.ArgumentParser` and :func:`run_from_args` runs with
the parsed arguments; :func:`main` does both.

Each run starts both ends of a TCP connection over 127.0.0.1 in fresh
processes, with the same implementation at both ends, and checks that every
message arrived intact; the fleet workload runs many connections in one fresh
process. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator

from anytcpip import _backends

from ._common import IMPLEMENTATIONS, reference_for
from ._report import describe_impls, missed_targets, render
from ._runner import (
    MEMORY_CHECKS,
    WORKLOADS,
    BenchmarkError,
    Counts,
    Results,
    fleet_impls,
    run_benchmark,
    run_fleet,
    run_memory_check,
    run_workload,
    set_worker_path,
)
from ._tcpip import locate_ts_tcpip

__all__ = (
    "IMPLEMENTATIONS",
    "MEMORY_CHECKS",
    "WORKLOADS",
    "BenchmarkError",
    "Counts",
    "Results",
    "add_arguments",
    "main",
    "run_benchmark",
    "run_fleet",
    "run_from_args",
    "run_memory_check",
    "run_workload",
)

#: Everything ``--only`` / the positional arguments accept.
CHOICES = (*WORKLOADS, "memory", "fleet")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _available_impls(tcpip: bool) -> list[str]:
    available = []
    for name, (family, backend, options, _) in IMPLEMENTATIONS.items():
        if family == "tcpip" and not tcpip:
            continue
        if not _backends.find(backend, options).installed:
            continue
        available.append(name)
    return available


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"fleet sizes must be >= 1: {text!r}")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    parser.epilog = (
        "workloads: "
        + ", ".join(WORKLOADS)
        + ", memory (run by default), fleet (only when asked)"
        + "\nimplementations:\n"
        + describe_impls()
        + "\n\nMethod, targets and how to read the tables: benchmarks/README.md."
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "selected",
        nargs="*",
        metavar="WORKLOAD",
        help="workloads to run, as with --only (e.g. 'anytcpip bench fleet')",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts and 3 rounds (about a minute)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds (default: 7, or 3 with --quick)"
    )
    parser.add_argument(
        "--only",
        "--workloads",
        dest="only",
        type=_csv,
        default=None,
        metavar="WORKLOAD,...",
        help="run only these workloads ('memory' = the memory checks, 'fleet' = many"
        " connections in one process)",
    )
    parser.add_argument(
        "--impl",
        type=_csv,
        default=None,
        metavar="IMPL,...",
        help="run only these implementations (the reference, tcpip-asyncio or else"
        " asyncio-streams, is always added, for the ratios)",
    )
    parser.add_argument(
        "--ts-tcpip-path",
        metavar="DIR",
        default=None,
        help="a ts_tcpip checkout (its python/ folder) to compare with; default:"
        " TS_TCPIP_PATH, else lsst.ts.tcpip if importable",
    )
    parser.add_argument(
        "--fleet-n",
        type=_sizes,
        default=None,
        metavar="N,...",
        help="fleet sizes (pairs in one process; default 10,100,1000)",
    )
    parser.add_argument(
        "--fleet-rounds",
        type=int,
        default=None,
        metavar="K",
        help="round trips per client in a fleet (default: 20000/N, 5000/N with --quick,"
        " at least 3)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every message count by this"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed per run (default 300)"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run every process under cProfile and write IMPL-WORKLOAD-ROLE.prof"
        " (fleet: IMPL-fleet-N.prof) files here",
    )
    parser.add_argument(
        "--check-targets",
        action="store_true",
        help="exit with status 1 if any target is missed (without it a MISS is only reported)",
    )
    parser.add_argument("--plain", action="store_true", help="plain text even if rich is installed")


@contextlib.contextmanager
def _progress(use_rich: bool) -> Iterator[Callable[[str], None]]:
    """A progress display on stderr: rich's when asked and installed, else lines."""
    if use_rich:
        try:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        except ImportError:
            pass
        else:
            console = Console(stderr=True)
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("starting", total=None)

                def show(line: str) -> None:
                    bar.console.print(line, markup=False, highlight=False)
                    bar.update(task, description=line.split("]", 1)[0].lstrip("["))

                yield show
            return
    yield _err


def _bad(text: str) -> int:
    _err(f"error: {text}")
    return 2


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmarks as the parsed ``args`` say; return the exit status.

    0: every run completed (a missed target is only reported, unless
    ``--check-targets``); 1: a run failed, a memory check failed, or (with
    ``--check-targets``) a target was missed; 2: bad arguments.
    """
    selected = list(args.selected or []) + list(args.only or [])
    unknown = [name for name in selected if name not in CHOICES]
    if unknown:
        return _bad(f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(CHOICES)}")
    if not selected:
        selected = [*WORKLOADS, "memory"]
    if args.impl:
        unknown = [name for name in args.impl if name not in IMPLEMENTATIONS]
        if unknown:
            return _bad(
                f"unknown implementation(s): {', '.join(unknown)}; the implementations are: "
                + ", ".join(IMPLEMENTATIONS)
            )
    try:
        tcpip = locate_ts_tcpip(args.ts_tcpip_path)
    except ValueError as exc:
        return _bad(str(exc))
    available = _available_impls(tcpip is not None)
    impls = available
    if args.impl:
        missing = [name for name in args.impl if name not in available]
        if missing:
            why = (
                " (ts_tcpip is not importable: see --ts-tcpip-path)"
                if any(name.startswith("tcpip-") for name in missing)
                else " (trio or uvloop is not installed)"
            )
            return _bad(f"not available here: {', '.join(missing)}{why}")
        reference = reference_for(available)
        impls = [name for name in available if name in args.impl or name == reference]
    workloads = [w for w in WORKLOADS if w in selected]
    fleet = "fleet" in selected
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 7)
    if rounds < 1:
        return _bad("--rounds must be at least 1")
    if args.fleet_rounds is not None and args.fleet_rounds < 1:
        return _bad("--fleet-rounds must be at least 1")
    counts = Counts.quick() if args.quick else Counts()
    if args.scale != 1.0:
        counts = counts.scaled(args.scale)
    if args.fleet_n:
        counts.fleet_sizes = tuple(args.fleet_n)
    if args.fleet_rounds:
        counts.fleet_k = args.fleet_rounds
    if tcpip is not None:
        set_worker_path(tcpip.path)
    use_rich = not args.plain and sys.stdout.isatty()

    parts = [f"{len(impls)} implementations x {len(workloads)} workloads x {rounds} round(s)"]
    if fleet:
        parts.append(f"fleet of {','.join(map(str, counts.fleet_sizes))} pairs")
    if "memory" in selected:
        parts.append("memory checks")
    _err("anytcpip benchmarks: " + " + ".join(parts))
    if tcpip is None:
        _err(
            "ts_tcpip (lsst.ts.tcpip) is not importable: ratios are against raw asyncio"
            " streams (give --ts-tcpip-path or TS_TCPIP_PATH to compare with ts_tcpip)"
        )
    else:
        where = ", ".join(tcpip.path) or "installed"
        standin = " with a stand-in for lsst.ts.utils" if tcpip.standin else ""
        _err(f"ts_tcpip {tcpip.version} ({where}){standin}: ratios are against tcpip-asyncio")
    if fleet and not fleet_impls(impls):
        return _bad("none of these implementations has a fleet workload")
    try:
        with _progress(not args.plain and sys.stderr.isatty()) as progress:
            results = run_benchmark(
                impls,
                workloads,
                counts,
                rounds=rounds,
                memory="memory" in selected,
                fleet=fleet,
                timeout=args.timeout,
                progress=progress,
                profile_dir=args.profile,
            )
    except BenchmarkError as exc:
        _err(f"\nBENCHMARK FAILED: {exc}")
        return 1
    render(results, _out, use_rich=use_rich)
    _out(f"\n{results.elapsed:.0f} s in all.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results.to_json(), f, indent=1)
        _out(f"results written to {args.json}")
    status = 0
    if any(not m["ok"] for m in results.memory):
        _err("a memory check FAILED")
        status = 1
    missed = missed_targets(results)
    if args.check_targets:
        for line in missed:
            _err(f"target missed: {line}")
        _err(f"--check-targets: {len(missed)} target(s) missed")
        if missed:
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    """``anytcpip bench`` on its own: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(
        prog="anytcpip bench", description="Benchmark anytcpip against ts_tcpip and raw streams."
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
