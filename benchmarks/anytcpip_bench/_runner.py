"""The parent side: start both ends of each run, collect and check results.

Every run gets two fresh processes (``python -m anytcpip._bench._peer``): the
server end, which receives and is measured, and the client end, which sends.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._common import BULK_CHUNK, FLEET_ONLY_FAMILIES, IMPLEMENTATIONS, reference_for
from ._report import (
    describe_fleet,
    describe_memory,
    describe_run,
    environment,
    summarize,
    summarize_fleet,
)

__all__ = (
    "MEMORY_CHECKS",
    "WORKLOADS",
    "BenchmarkError",
    "Counts",
    "Results",
    "run_benchmark",
    "run_fleet",
    "run_memory_check",
    "run_workload",
    "set_worker_path",
)

#: The workloads, in the order they run and are shown.
WORKLOADS = ("echo", "lines", "structs", "bulk", "hangup")

#: The memory checks (anytcpip implementations only).
MEMORY_CHECKS = ("flood", "stall")

#: Extra memory a flood may cost beyond ``limit`` + one chunk before the check
#: fails: allocator and page granularity (uvloop's transport may hold a few
#: MiB of its own, as the contract allows).
FLOOD_SLACK = 1 << 20
FLOOD_SLACK_UVLOOP = 8 << 20
#: The most a blocked writer's process may grow (queue high water + the
#: message that waits + allocator slack).
STALL_BOUND = 1 << 20


#: The folder that holds the ``anytcpip_bench`` package.
_BENCH_ROOT = str(Path(__file__).resolve().parent.parent)

#: Folders put in front of every worker's PYTHONPATH (where ts_tcpip is).
_worker_path: list[str] = []


def set_worker_path(folders: Sequence[str]) -> None:
    """Put ``folders`` in front of every worker process's ``PYTHONPATH``."""
    _worker_path[:] = folders


def worker_env() -> dict[str, str]:
    """The environment of a worker process."""
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    # The workers run ``python -m anytcpip_bench._peer``: the folder that holds
    # this package goes first (it is not installed with anytcpip).
    folders = [*_worker_path, _BENCH_ROOT]
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(folders + ([old] if old else []))
    return env


#: For ts_tcpip's hangup runs: the gap between connections (more than its 0.1 s
#: connection poll) and the most connections per run.
TCPIP_HANGUP_GAP = 0.15
TCPIP_HANGUP_MAX = 40


class BenchmarkError(RuntimeError):
    """A run failed: a peer crashed, timed out, or data did not arrive intact."""


@dataclass
class Counts:
    """How much work each run does."""

    echo: int = 5000
    echo_warmup: int = 500
    lines: int = 200_000
    structs: int = 200_000
    bulk: int = 256 << 20
    hangup: int = 200
    hangup_settle: float = 0.002
    hangup_gap: float = 0.005
    flood_max: int = 512 << 20
    stall_max: int = 512 << 20
    block_timeout: float = 0.5
    #: Fleet sizes (pairs in one process) and round trips per fleet run, over
    #: all its clients (each client does ``max(3, fleet_trips // N)``).
    fleet_sizes: tuple[int, ...] = (10, 100, 1000)
    fleet_trips: int = 20_000
    #: Round trips per client, if not 0 (else from ``fleet_trips``).
    fleet_k: int = 0

    def fleet_rounds(self, n: int) -> int:
        """Round trips per client in a fleet of ``n`` pairs."""
        return self.fleet_k or max(3, self.fleet_trips // n)

    @classmethod
    def quick(cls) -> Counts:
        return cls(
            echo=1000,
            echo_warmup=100,
            lines=25_000,
            structs=25_000,
            bulk=32 << 20,
            hangup=30,
            hangup_gap=0.003,
            flood_max=128 << 20,
            stall_max=128 << 20,
            block_timeout=0.3,
            fleet_trips=5_000,
        )

    def scaled(self, factor: float) -> Counts:
        """These counts times ``factor`` (at least a few of each)."""
        return Counts(
            echo=max(20, int(self.echo * factor)),
            echo_warmup=max(2, int(self.echo_warmup * factor)),
            lines=max(20, int(self.lines * factor)),
            structs=max(20, int(self.structs * factor)),
            bulk=max(4, int(self.bulk * factor) // BULK_CHUNK) * BULK_CHUNK,
            hangup=max(3, int(self.hangup * factor)),
            hangup_settle=self.hangup_settle,
            hangup_gap=self.hangup_gap,
            flood_max=self.flood_max,
            stall_max=self.stall_max,
            block_timeout=self.block_timeout,
            fleet_sizes=self.fleet_sizes,
            fleet_trips=max(1, int(self.fleet_trips * factor)),
            fleet_k=self.fleet_k,
        )


# ------------------------------------------------------------ the children


class _Child:
    """One peer process; its ``@@`` lines go to a queue shared with the other."""

    def __init__(
        self,
        name: str,
        cfg: dict[str, Any],
        events: queue.Queue[Any],
        module: str = "anytcpip_bench._peer",
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.stderr: list[str] = []
        env = worker_env()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump_stdout, args=(self.proc.stdout, events)),
            threading.Thread(target=self._pump_stderr, args=(self.proc.stderr,)),
        ]
        for t in self._threads:
            t.daemon = True
            t.start()

    def _pump_stdout(self, stream: IO[str], events: queue.Queue[Any]) -> None:
        for line in stream:
            if line.startswith("@@"):
                tag, _, text = line[2:].rstrip("\n").partition(" ")
                events.put((self.name, tag, text))
        events.put((self.name, None, ""))

    def _pump_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr.append(line)

    def send(self, command: str) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(command + "\n")
            stdin.flush()
        except OSError:
            pass  # it died; its own exit status will say why

    def stop(self, deadline: float) -> int:
        """Wait for the process to exit (kill it at the deadline); close pipes."""
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def describe(self) -> str:
        tail = "".join(self.stderr[-25:]).rstrip()
        return (
            f"{self.name} ({self.cfg['impl']}, {self.cfg.get('workload', 'fleet')}) exit status "
            f"{self.proc.returncode}:\n{tail or '(no output on stderr)'}"
        )


def _describe_failure(children: dict[str, _Child]) -> str:
    """Why the run failed: every end that exited with an error (the one that
    found the problem and the one that then lost its peer)."""
    for child in children.values():
        child.stop(time.monotonic() + 2)
    failed = [child.describe() for child in children.values() if child.proc.returncode != 0]
    return "\n".join(failed) or "a peer ended without reporting"


def _run_pair(
    server_cfg: dict[str, Any],
    client_cfg: dict[str, Any],
    *,
    timeout: float,
    after_client: str | None = None,
    after_server: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a server and a client process to the end; return their results.

    ``after_client`` is sent to the server once the client has reported, and
    ``after_server`` to the client once the server has reported.
    """
    deadline = time.monotonic() + timeout
    events: queue.Queue[Any] = queue.Queue()
    children: dict[str, _Child] = {}
    results: dict[str, dict[str, Any]] = {}
    failure: str | None = None
    try:
        children["server"] = _Child("server", server_cfg, events)
        # Started at once too (it waits for the port on stdin), to overlap the
        # two interpreters' start-up.
        children["client"] = _Child("client", client_cfg, events)
        while len(results) < 2 and failure is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failure = f"timed out after {timeout:.0f} s"
                break
            try:
                name, tag, text = events.get(timeout=remaining)
            except queue.Empty:
                continue
            if tag is None:
                if name not in results:
                    failure = _describe_failure(children)
            elif tag == "PORT" and name == "server":
                children["client"].send(f"port {int(text)}")
            elif tag == "RESULT":
                results[name] = json.loads(text)
                if name == "client" and after_client:
                    children["server"].send(after_client)
                if name == "server" and after_server:
                    children["client"].send(after_server)
    finally:
        if failure is not None:
            for child in children.values():
                child.kill()
        for child in children.values():
            status = child.stop(deadline + 5)
            if failure is None and status != 0:
                failure = child.describe()
        if failure is not None and failure.startswith("timed out"):
            tails = [child.describe() for child in children.values() if child.stderr]
            failure = "\n".join([failure, *tails])
    if failure is not None:
        raise BenchmarkError(
            f"{client_cfg['workload']} with {server_cfg['impl']}/{client_cfg['impl']} "
            f"failed: {failure}"
        )
    return results["server"], results["client"]


# ------------------------------------------------------------------- runs


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def _fault_index(workload: str, counts: Counts) -> int:
    if workload == "bulk":
        return counts.bulk // BULK_CHUNK // 2
    n: int = getattr(counts, workload)
    return n // 2


def run_workload(
    impl: str,
    workload: str,
    counts: Counts,
    *,
    fault: str | None = None,
    timeout: float = 300.0,
    profile_dir: str | None = None,
) -> dict[str, Any]:
    """Run one workload once with one implementation at both ends.

    ``fault`` ("corrupt" or "drop") makes the sender spoil one message, to show
    that the receiver notices (a :exc:`BenchmarkError` is then expected).
    Returns the measurements (see ``METRICS``) plus ``rx_rss`` and ``tx_rss``:
    the peak resident set size of the receiving and sending process.
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {impl!r}")
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}")
    if IMPLEMENTATIONS[impl][0] in FLEET_ONLY_FAMILIES:
        raise ValueError(f"{impl!r} has the fleet workload only")
    n: int = getattr(counts, workload)
    gap = counts.hangup_gap
    if workload == "hangup" and IMPLEMENTATIONS[impl][0] == "tcpip":
        # ts_tcpip notices a hangup by polling (every 0.1 s); a client that
        # reconnects sooner is noticed by the reconnection instead, which
        # measures nothing (and can lose a connect callback in ts_tcpip).
        # So its clients wait out one poll, and fewer of them do.
        gap = max(gap, TCPIP_HANGUP_GAP)
        n = min(n, TCPIP_HANGUP_MAX)
    base: dict[str, Any] = {"impl": impl, "workload": workload, "n": n}
    if os.environ.get("ANYTCPIP_BENCH_SERVER") == "direct":
        # The old receiving end (a loop over OneClientServer's reads), kept to
        # reproduce the comparison in benchmarks/README.md.
        base["server"] = "direct"
    if profile_dir:
        base["profile_dir"] = profile_dir
    client_cfg = {**base, "role": "client"}
    if workload == "hangup":
        client_cfg.update(settle=counts.hangup_settle, gap=gap)
    if fault is not None:
        client_cfg.update(fault=fault, fault_at=_fault_index(workload, counts))
    start = time.perf_counter()
    srv, cli = _run_pair({**base, "role": "server"}, client_cfg, timeout=timeout)
    out: dict[str, Any] = {
        "impl": impl,
        "workload": workload,
        "n": n,
        "rx_rss": srv["peak_rss"],
        "tx_rss": cli["peak_rss"],
        "rx_growth": srv.get("rss_growth", 0),
        "tx_growth": cli.get("rss_growth", 0),
        "wall": time.perf_counter() - start,
    }
    if workload == "echo":
        samples = cli["samples_ns"]
        if len(samples) != n:
            raise BenchmarkError(f"echo: {len(samples)} round trips of {n}")
        kept = sorted(samples[min(counts.echo_warmup, n // 2) :])
        out["p50_us"] = _quantile(kept, 0.50) / 1e3
        out["p99_us"] = _quantile(kept, 0.99) / 1e3
        out["mean_us"] = statistics.fmean(kept) / 1e3
    elif workload == "hangup":
        closed, noticed = cli["closed_ns"], srv["noticed_ns"]
        if len(closed) != n or len(noticed) != n:
            raise BenchmarkError(f"hangup: {len(closed)} closes, {len(noticed)} noticed, of {n}")
        delays = sorted((b - a) / 1e6 for a, b in zip(closed, noticed, strict=True))
        if delays[0] <= 0:
            raise BenchmarkError(f"hangup: noticed before the close ({delays[0]} ms)")
        out["p50_ms"] = _quantile(delays, 0.50)
        out["p99_ms"] = _quantile(delays, 0.99)
        out["max_ms"] = delays[-1]
    else:
        if srv["count"] <= 0 or srv["elapsed"] <= 0:
            raise BenchmarkError(f"{workload}: nothing measured ({srv})")
        if workload == "bulk":
            out["mb_s"] = srv["count"] / srv["elapsed"] / 1e6
        else:
            out["rate"] = srv["count"] / srv["elapsed"]
    return out


def run_memory_check(
    impl: str, check: str, counts: Counts, *, timeout: float = 120.0
) -> dict[str, Any]:
    """Run one memory check against an anytcpip implementation.

    ``flood``: a peer sends as fast as it can while the anytcpip server does
    not read; the server's resident memory may grow by at most ``limit`` + one
    receive chunk (+ slack). ``stall``: the anytcpip client writes to a peer
    that does not read; writes must block, and its memory must not grow.
    """
    family, _, options, _ = IMPLEMENTATIONS[impl]
    if family != "anytcpip":
        raise ValueError(f"memory checks are for anytcpip implementations, not {impl!r}")
    if check == "flood":
        srv, cli = _run_pair(
            {"impl": impl, "workload": "flood", "role": "server", "n": 0},
            {
                "impl": "socket",
                "workload": "flood",
                "role": "client",
                "max_bytes": counts.flood_max,
                "block_timeout": counts.block_timeout,
            },
            timeout=timeout,
            after_client="measure",
            after_server="exit",
        )
        growth = srv["rss_after"] - srv["rss_before"]
        slack = FLOOD_SLACK_UVLOOP if options.get("use_uvloop") else FLOOD_SLACK
        bound = srv["limit"] + BULK_CHUNK + slack
        return {
            "impl": impl,
            "check": check,
            "growth": growth,
            "bound": bound,
            "moved": cli["sent"],
            "blocked": cli["blocked"],
            "ok": growth <= bound and cli["blocked"],
        }
    if check == "stall":
        srv, cli = _run_pair(
            {"impl": "socket", "workload": "stall", "role": "server", "n": 0},
            {
                "impl": impl,
                "workload": "stall",
                "role": "client",
                "max_bytes": counts.stall_max,
                "block_timeout": counts.block_timeout,
            },
            timeout=timeout,
            after_client="exit",
        )
        growth = cli["rss_after"] - cli["rss_before"]
        return {
            "impl": impl,
            "check": check,
            "growth": growth,
            "bound": STALL_BOUND,
            "moved": cli["written"],
            "blocked": cli["blocked"],
            "ok": growth <= STALL_BOUND and cli["blocked"],
        }
    raise ValueError(f"unknown memory check {check!r}")


#: Implementation families that have a fleet.
FLEET_FAMILIES = ("anytcpip", "tcpip", "anyio", *FLEET_ONLY_FAMILIES)


def run_fleet(
    impl: str,
    n: int,
    counts: Counts,
    *,
    timeout: float = 300.0,
    profile_dir: str | None = None,
    tracemalloc: int = 0,
) -> dict[str, Any]:
    """Run the fleet workload once: ``n`` pairs of ``impl`` in one fresh process.

    Returns ``rate`` (round trips per second over all clients), ``setup_s``
    (time to set up the ``n`` pairs), ``rss_per_pair`` (bytes of RSS per idle
    connected pair), ``objects_per_pair`` (objects the garbage collector
    tracks, per idle connected pair), ``gc_s`` and ``gc_passes`` (the
    collector's time and passes per generation in the timed rounds) and
    ``rss_growth_rounds`` (RSS growth while exercising).
    ``tracemalloc`` > 0 adds the top allocation sites of the setup.
    """
    if IMPLEMENTATIONS[impl][0] not in FLEET_FAMILIES:
        raise ValueError(f"no fleet for {impl!r}")
    k = counts.fleet_rounds(n)
    cfg: dict[str, Any] = {"impl": impl, "workload": "fleet", "n": n, "k": k}
    if profile_dir:
        cfg["profile_dir"] = profile_dir
    if tracemalloc:
        cfg["tracemalloc"] = tracemalloc
    deadline = time.monotonic() + timeout
    events: queue.Queue[Any] = queue.Queue()
    start = time.perf_counter()
    child = _Child("fleet", cfg, events, module="anytcpip_bench._fleet")
    result: dict[str, Any] | None = None
    try:
        while result is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                _, tag, text = events.get(timeout=remaining)
            except queue.Empty:
                continue
            if tag is None:
                break
            if tag == "RESULT":
                result = json.loads(text)
    finally:
        if result is None:
            child.kill()
        status = child.stop(deadline + 5)
    if result is None or status != 0:
        why = child.describe() if status else f"timed out after {timeout:.0f} s"
        raise BenchmarkError(f"fleet of {n} with {impl} failed: {why}")
    return {
        "impl": impl,
        "workload": "fleet",
        "n": n,
        "k": k,
        **result,
        "wall": time.perf_counter() - start,
    }


# ------------------------------------------------------------ a whole run


@dataclass
class Results:
    """Everything one benchmark run measured."""

    impls: list[str]
    workloads: list[str]
    rounds: int
    counts: Counts
    runs: list[dict[str, Any]] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    fleet: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def reference(self) -> str:
        """The implementation the ratios are taken against."""
        return reference_for(self.impls)

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": environment(),
            "impls": self.impls,
            "workloads": self.workloads,
            "rounds": self.rounds,
            "counts": self.counts.__dict__,
            "reference": self.reference,
            "summary": summarize(self),
            "fleet_summary": summarize_fleet(self),
            "runs": self.runs,
            "memory": self.memory,
            "fleet": self.fleet,
            "elapsed": self.elapsed,
        }


def fleet_impls(impls: Sequence[str]) -> list[str]:
    """The implementations of ``impls`` that have a fleet workload."""
    return [impl for impl in impls if IMPLEMENTATIONS[impl][0] in FLEET_FAMILIES]


def run_benchmark(
    impls: Sequence[str],
    workloads: Sequence[str],
    counts: Counts,
    *,
    rounds: int,
    memory: bool = True,
    fleet: bool = False,
    timeout: float = 300.0,
    progress: Callable[[str], None] = lambda line: None,
    profile_dir: str | None = None,
) -> Results:
    """Run every workload with every implementation, ``rounds`` times, in a
    rotating order, then the fleets (if asked), then the memory checks."""
    workloads = [w for w in workloads if w != "fleet"]
    results = Results(list(impls), list(workloads), rounds, counts)
    start = time.perf_counter()
    # The fleet-only implementations (the anyio-tasks floor) sit the rest out.
    pairs = [impl for impl in impls if IMPLEMENTATIONS[impl][0] not in FLEET_ONLY_FAMILIES]
    total = rounds * len(pairs) * len(workloads)
    done = 0
    for r in range(rounds if pairs else 0):
        shift = r % len(pairs)
        order = pairs[shift:] + pairs[:shift]
        for workload in workloads:
            for impl in order:
                done += 1
                run = run_workload(impl, workload, counts, timeout=timeout, profile_dir=profile_dir)
                run["round"] = r
                results.runs.append(run)
                progress(f"[round {r + 1}/{rounds}, {done}/{total}] {describe_run(run)}")
    if fleet:
        members = fleet_impls(impls)
        total = rounds * len(members) * len(counts.fleet_sizes)
        done = 0
        for r in range(rounds):
            shift = r % max(1, len(members))
            order = members[shift:] + members[:shift]
            for n in counts.fleet_sizes:
                for impl in order:
                    done += 1
                    run = run_fleet(impl, n, counts, timeout=timeout, profile_dir=profile_dir)
                    run["round"] = r
                    results.fleet.append(run)
                    progress(
                        f"[fleet round {r + 1}/{rounds}, {done}/{total}] {describe_fleet(run)}"
                    )
    if memory:
        for impl in impls:
            if IMPLEMENTATIONS[impl][0] != "anytcpip":
                continue
            for check in MEMORY_CHECKS:
                result = run_memory_check(impl, check, counts)
                results.memory.append(result)
                progress(f"[memory] {describe_memory(result)}")
    results.elapsed = time.perf_counter() - start
    return results
