"""Summaries and tables: absolute figures, cost ratios, memory."""

from __future__ import annotations

import platform
import statistics
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._common import IMPLEMENTATIONS, REFERENCE

if TYPE_CHECKING:
    from ._runner import Results

__all__ = (
    "METRICS",
    "TARGETS",
    "describe_memory",
    "describe_run",
    "environment",
    "render",
    "summarize",
)

#: workload -> [(key in the run's results, column label, "rate" or "latency")]
METRICS: dict[str, list[tuple[str, str, str]]] = {
    "echo": [("p50_us", "echo p50 µs", "latency"), ("p99_us", "echo p99 µs", "latency")],
    "lines": [("rate", "lines msg/s", "rate")],
    "structs": [("rate", "structs/s", "rate")],
    "bulk": [("mb_s", "bulk MB/s", "rate")],
    "hangup": [("p50_ms", "hangup p50 ms", "latency"), ("p99_ms", "hangup p99 ms", "latency")],
}

#: Cost-ratio targets from PERFORMANCE.md: (workload, key) -> impl -> bound.
TARGETS: dict[tuple[str, str], dict[str, float]] = {
    ("echo", "p50_us"): {"anytcpip-asyncio": 1.0, "anytcpip-uvloop": 0.7, "anytcpip-trio": 0.75},
    ("lines", "rate"): dict.fromkeys(("anytcpip-asyncio", "anytcpip-uvloop", "anytcpip-trio"), 0.5),
    ("structs", "rate"): dict.fromkeys(
        ("anytcpip-asyncio", "anytcpip-uvloop", "anytcpip-trio"), 0.5
    ),
    ("bulk", "mb_s"): dict.fromkeys(("anytcpip-asyncio", "anytcpip-uvloop", "anytcpip-trio"), 0.35),
}

#: Absolute targets (milliseconds) for hangup detection, every anytcpip backend.
HANGUP_TARGETS = {"p50_ms": 1.0, "p99_ms": 5.0}


def _fmt(value: float, kind: str) -> str:
    if kind == "rate":
        if value >= 1e5:
            return f"{value / 1e3:,.0f}k"
        if value >= 1e4:
            return f"{value / 1e3:,.1f}k"
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def describe_run(run: dict[str, Any]) -> str:
    """One progress line for one run."""
    parts = []
    for key, label, kind in METRICS[run["workload"]]:
        unit = label.split(" ", 1)[1] if " " in label else label
        parts.append(f"{unit} {_fmt(run[key], kind)}")
    return (
        f"{run['workload']:<7} {run['impl']:<16} {', '.join(parts):<32} "
        f"rx {run['rx_rss'] / 2**20:5.1f} MiB ({run['wall']:.1f} s)"
    )


def describe_memory(result: dict[str, Any]) -> str:
    """One line for one memory check."""
    what = "flooded by the peer" if result["check"] == "flood" else "written before blocking"
    verdict = "ok" if result["ok"] else "FAILED"
    return (
        f"{result['check']:<6} {result['impl']:<17} RSS growth "
        f"{result['growth'] / 1024:8.0f} KiB (bound {result['bound'] / 1024:.0f} KiB); "
        f"{result['moved'] / 2**20:.1f} MiB {what}; "
        f"{'blocked' if result['blocked'] else 'NOT blocked'}: {verdict}"
    )


def environment() -> dict[str, str]:
    """Versions and machine, for the JSON record."""
    env = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": str(__import__("os").cpu_count()),
    }
    for name in ("anyio", "trio", "uvloop", "anytcpip"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        env[name] = str(getattr(module, "__version__", "?"))
    return env


def summarize(results: Results) -> dict[str, Any]:
    """Median absolute figures and median [min-max] cost ratios per metric."""
    summary: dict[str, Any] = {}
    by_round: dict[tuple[int, str, str], dict[str, Any]] = {
        (run["round"], run["workload"], run["impl"]): run for run in results.runs
    }
    for workload in results.workloads:
        for key, label, kind in METRICS[workload]:
            per_impl: dict[str, Any] = {}
            for impl in results.impls:
                values = [
                    run[key]
                    for run in results.runs
                    if run["workload"] == workload and run["impl"] == impl
                ]
                if not values:
                    continue
                ratios = []
                for r in range(results.rounds):
                    mine = by_round.get((r, workload, impl))
                    ref = by_round.get((r, workload, REFERENCE))
                    if mine is None or ref is None:
                        continue
                    if kind == "rate":
                        ratios.append(ref[key] / mine[key])
                    else:
                        ratios.append(mine[key] / ref[key])
                entry: dict[str, Any] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "rx_rss": statistics.median(
                        run["rx_rss"]
                        for run in results.runs
                        if run["workload"] == workload and run["impl"] == impl
                    ),
                }
                if ratios:
                    entry["ratio"] = {
                        "median": statistics.median(ratios),
                        "min": min(ratios),
                        "max": max(ratios),
                    }
                target = TARGETS.get((workload, key), {}).get(impl)
                if target is not None and ratios:
                    entry["target"] = target
                    entry["met"] = statistics.median(ratios) <= target
                if workload == "hangup" and impl.startswith("anytcpip"):
                    entry["target_ms"] = HANGUP_TARGETS[key]
                    entry["met"] = entry["median"] <= HANGUP_TARGETS[key]
                per_impl[impl] = entry
            summary[label] = {"workload": workload, "key": key, "kind": kind, "impls": per_impl}
    return summary


def _tables(results: Results) -> list[tuple[str, list[str], list[list[str]]]]:
    summary = summarize(results)
    labels = list(summary)
    absolute = [
        [impl]
        + [
            _fmt(summary[label]["impls"][impl]["median"], summary[label]["kind"])
            if impl in summary[label]["impls"]
            else "-"
            for label in labels
        ]
        for impl in results.impls
    ]
    ratio_rows = []
    for impl in results.impls:
        row = [impl]
        for label in labels:
            entry = summary[label]["impls"].get(impl, {})
            ratio = entry.get("ratio")
            cell = "-"
            if ratio is not None:
                cell = f"{ratio['median']:.2f} [{ratio['min']:.2f}-{ratio['max']:.2f}]"
            if "met" in entry:
                cell += " ok" if entry["met"] else " MISS"
            row.append(cell)
        ratio_rows.append(row)
    memory_rows = [
        [impl]
        + [
            f"{summary[label]['impls'][impl]['rx_rss'] / 2**20:.1f}"
            if impl in summary[label]["impls"]
            else "-"
            for label in labels
            if summary[label]["key"] in ("p50_us", "rate", "mb_s", "p50_ms")
        ]
        for impl in results.impls
    ]
    memory_headers = ["implementation"] + [
        summary[label]["workload"]
        for label in labels
        if summary[label]["key"] in ("p50_us", "rate", "mb_s", "p50_ms")
    ]
    tables = [
        (
            f"Absolute figures (median of {results.rounds} round(s); rates per second, "
            "MB = 10^6 bytes)",
            ["implementation", *labels],
            absolute,
        ),
        (
            f"Cost ratio against {REFERENCE}, same round: median [min-max] "
            "(below 1 is faster; 'ok'/'MISS' = PERFORMANCE.md target; hangup "
            "targets are absolute: p50 <= 1 ms, p99 <= 5 ms)",
            ["implementation", *labels],
            ratio_rows,
        ),
        ("Peak RSS of the receiving process, MiB (median)", memory_headers, memory_rows),
    ]
    if results.memory:
        tables.append(
            (
                "Memory checks (anytcpip): flood = peer floods while nobody reads; "
                "stall = peer never reads while we write",
                [
                    "check",
                    "implementation",
                    "RSS growth KiB",
                    "bound KiB",
                    "MiB moved",
                    "blocked",
                    "result",
                ],
                [
                    [
                        m["check"],
                        m["impl"],
                        f"{m['growth'] / 1024:.0f}",
                        f"{m['bound'] / 1024:.0f}",
                        f"{m['moved'] / 2**20:.1f}",
                        "yes" if m["blocked"] else "NO",
                        "ok" if m["ok"] else "FAILED",
                    ]
                    for m in results.memory
                ],
            )
        )
    return tables


def render(results: Results, write: Callable[[str], None], *, use_rich: bool) -> None:
    """Print the tables, with rich if asked and installed."""
    tables = _tables(results)
    if use_rich:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            use_rich = False
        else:
            console = Console()
            for title, headers, rows in tables:
                table = Table(title=title, title_justify="left")
                for i, header in enumerate(headers):
                    table.add_column(header, justify="left" if i == 0 else "right")
                for row in rows:
                    table.add_row(*row)
                console.print(table)
            return
    for title, headers, rows in tables:
        write("")
        write(title)
        write(_markdown(headers, rows))


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                (c.ljust(w) if i == 0 else c.rjust(w))
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )
    return "\n".join(lines)


def describe_impls() -> str:
    """The implementations, one per line."""
    return "\n".join(f"  {name:<17} {desc}" for name, (_, _, _, desc) in IMPLEMENTATIONS.items())
