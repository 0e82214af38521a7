"""The anytcpip benchmark suite (``anytcpip bench``, ``benchmarks/run.py``).

Private: the command line is the interface. For the CLI, :func:`add_arguments`
fills an :class:`argparse.ArgumentParser` and :func:`run_from_args` runs with
the parsed arguments; :func:`main` does both.

Each run starts both ends of a TCP connection over 127.0.0.1 in fresh
processes, with the same implementation at both ends, and checks that every
message arrived intact. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._common import IMPLEMENTATIONS, REFERENCE
from ._report import describe_impls, render
from ._runner import (
    MEMORY_CHECKS,
    WORKLOADS,
    BenchmarkError,
    Counts,
    Results,
    run_benchmark,
    run_memory_check,
    run_workload,
)

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
    "run_from_args",
    "run_memory_check",
    "run_workload",
)


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _available_impls() -> list[str]:
    available = []
    for name, (_, backend, options, _) in IMPLEMENTATIONS.items():
        try:
            if backend == "trio":
                import trio  # noqa: F401
            if options.get("use_uvloop"):
                import uvloop  # noqa: F401
        except ImportError:
            continue
        available.append(name)
    return available


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    parser.epilog = (
        "workloads: " + ", ".join(WORKLOADS) + ", memory\nimplementations:\n" + describe_impls()
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--quick", action="store_true", help="small counts and 3 rounds (about a minute)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds (default: 7, or 3 with --quick)"
    )
    parser.add_argument(
        "--only",
        type=_csv,
        default=None,
        metavar="WORKLOAD,...",
        help="run only these workloads ('memory' = the memory checks)",
    )
    parser.add_argument(
        "--impl",
        type=_csv,
        default=None,
        metavar="IMPL,...",
        help=f"run only these implementations ({REFERENCE} is always added, for the ratios)",
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
        help="run every peer under cProfile and write IMPL-WORKLOAD-ROLE.prof files here",
    )
    parser.add_argument("--plain", action="store_true", help="plain text even if rich is installed")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmarks as the parsed ``args`` say; return the exit status."""
    available = _available_impls()
    impls = available
    if args.impl:
        unknown = [name for name in args.impl if name not in IMPLEMENTATIONS]
        if unknown:
            _err(f"unknown implementation(s): {', '.join(unknown)}")
            return 2
        impls = [name for name in available if name in args.impl or name == REFERENCE]
    selected = args.only or [*WORKLOADS, "memory"]
    unknown = [name for name in selected if name not in (*WORKLOADS, "memory")]
    if unknown:
        _err(f"unknown workload(s): {', '.join(unknown)}")
        return 2
    workloads = [w for w in WORKLOADS if w in selected]
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 7)
    if rounds < 1:
        _err("--rounds must be at least 1")
        return 2
    counts = Counts.quick() if args.quick else Counts()
    if args.scale != 1.0:
        counts = counts.scaled(args.scale)
    use_rich = not args.plain and sys.stdout.isatty()

    progress = _err
    progress(
        f"anytcpip benchmarks: {len(impls)} implementations x {len(workloads)} workloads"
        f" x {rounds} round(s){' + memory checks' if 'memory' in selected else ''}"
    )
    try:
        results = run_benchmark(
            impls,
            workloads,
            counts,
            rounds=rounds,
            memory="memory" in selected,
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
    if any(not m["ok"] for m in results.memory):
        _err("a memory check FAILED")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``anytcpip bench`` on its own: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(
        prog="anytcpip bench", description="Benchmark anytcpip against raw streams."
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
