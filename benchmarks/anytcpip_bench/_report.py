"""Summaries and tables: absolute figures, cost ratios, memory."""

from __future__ import annotations

import platform
import statistics
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._common import IMPLEMENTATIONS

if TYPE_CHECKING:
    from ._runner import Results

__all__ = (
    "FLEET_TARGETS",
    "METRICS",
    "TARGETS",
    "describe_fleet",
    "describe_memory",
    "describe_run",
    "environment",
    "missed_targets",
    "render",
    "summarize",
    "summarize_fleet",
)

#: workload -> [(key in the run's results, label, unit, "rate" or "latency")].
#: Tables of absolute figures show "label unit"; ratio tables the label alone.
METRICS: dict[str, list[tuple[str, str, str, str]]] = {
    "echo": [("p50_us", "echo p50", "µs", "latency"), ("p99_us", "echo p99", "µs", "latency")],
    "lines": [("rate", "lines", "msg/s", "rate")],
    "structs": [("rate", "structs", "structs/s", "rate")],
    "bulk": [("mb_s", "bulk", "MB/s", "rate")],
    "hangup": [
        ("p50_ms", "hangup p50", "ms", "latency"),
        ("p99_ms", "hangup p99", "ms", "latency"),
    ],
}

_ANYTCPIP = ("anytcpip-asyncio", "anytcpip-uvloop", "anytcpip-trio")

#: Cost-ratio targets (benchmarks/README.md, "Targets"), defined against
#: ts_tcpip on asyncio: (workload, key) -> impl -> bound.
TARGETS: dict[tuple[str, str], dict[str, float]] = {
    ("echo", "p50_us"): {"anytcpip-asyncio": 1.0, "anytcpip-uvloop": 0.7, "anytcpip-trio": 0.75},
    ("lines", "rate"): dict.fromkeys(_ANYTCPIP, 0.5),
    ("structs", "rate"): dict.fromkeys(_ANYTCPIP, 0.5),
    ("bulk", "mb_s"): dict.fromkeys(_ANYTCPIP, 0.35),
}

#: Absolute targets (milliseconds) for hangup detection, every anytcpip backend.
HANGUP_TARGETS = {"p50_ms": 1.0, "p99_ms": 5.0}

#: Fleet targets at the largest N (defined at N=1000): the round-trip cost
#: ratio of anytcpip against (reference impl, bound).
FLEET_TARGETS: dict[str, tuple[str, float]] = {
    "anytcpip-asyncio": ("tcpip-asyncio", 0.67),
    "anytcpip-uvloop": ("tcpip-asyncio", 0.5),
    "anytcpip-trio": ("anyio-trio", 1.0),
}
#: The rate at the largest N must be at least this fraction of the rate at
#: the smallest N (no collapse with N), for every anytcpip backend; or raw
#: anyio's own fraction on the same event loop, if that is lower and it ran.
FLEET_KEEP = 0.75
#: The raw anyio run whose "keep" can lower FLEET_KEEP, per implementation
#: (none runs on uvloop).
FLEET_KEEP_RAW: dict[str, str] = {
    "anytcpip-asyncio": "anyio-asyncio",
    "anytcpip-trio": "anyio-trio",
}


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
    metrics = METRICS[run["workload"]]
    parts = [
        (f"{label.split()[-1]} " if len(metrics) > 1 else "") + f"{_fmt(run[key], kind)} {unit}"
        for key, label, unit, kind in metrics
    ]
    return (
        f"{run['workload']:<7} {run['impl']:<16} {', '.join(parts):<32} "
        f"rx +{run.get('rx_growth', 0) / 1024:,.0f} KiB ({run['wall']:.1f} s)"
    )


def describe_fleet(run: dict[str, Any]) -> str:
    """One progress line for one fleet run."""
    return (
        f"fleet N={run['n']:<5} {run['impl']:<16} rt/s {_fmt(run['rate'], 'rate'):<7} "
        f"setup {run['setup_s']:.2f} s, {run['rss_per_pair'] / 1024:.1f} KiB/pair{_objects(run)}, "
        f"GC {_gc_share(run)} ({run['wall']:.1f} s)"
    )


def _objects(run: dict[str, Any]) -> str:
    """`` N objects/pair`` (tracked by the collector), if the run counted them."""
    count = run.get("objects_per_pair")
    return "" if count is None else f" {count:.0f} objects/pair"


def _gc_share(run: dict[str, Any]) -> str:
    """The garbage collector's share of a fleet's timed rounds, and its full
    passes (``-`` for a result from before they were counted)."""
    if "gc_s" not in run or not run.get("elapsed"):
        return "-"
    return f"{run['gc_s'] / run['elapsed']:.0%}, {run['gc_passes'][2]} full"


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


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(results: Results) -> dict[str, Any]:
    """Median absolute figures and median [min-max] cost ratios per metric."""
    summary: dict[str, Any] = {}
    reference = results.reference
    by_round: dict[tuple[int, str, str], dict[str, Any]] = {
        (run["round"], run["workload"], run["impl"]): run for run in results.runs
    }
    for workload in results.workloads:
        for key, label, unit, kind in METRICS[workload]:
            per_impl: dict[str, Any] = {}
            for impl in results.impls:
                mine = [
                    run
                    for run in results.runs
                    if run["workload"] == workload and run["impl"] == impl
                ]
                if not mine:
                    continue
                ratios = []
                for run in mine:
                    ref = by_round.get((run["round"], workload, reference))
                    if ref is None:
                        continue
                    if kind == "rate":
                        ratios.append(ref[key] / run[key])
                    else:
                        ratios.append(run[key] / ref[key])
                entry: dict[str, Any] = {
                    **_spread([run[key] for run in mine]),
                    "rx_growth": statistics.median(run.get("rx_growth", 0) for run in mine),
                    "tx_growth": statistics.median(run.get("tx_growth", 0) for run in mine),
                }
                if ratios:
                    entry["ratio"] = _spread(ratios)
                target = TARGETS.get((workload, key), {}).get(impl)
                if target is not None and ratios:
                    entry["target"] = target
                    entry["met"] = entry["ratio"]["median"] <= target
                if workload == "hangup" and impl in _ANYTCPIP:
                    entry["target_ms"] = HANGUP_TARGETS[key]
                    entry["met"] = entry["median"] <= HANGUP_TARGETS[key]
                per_impl[impl] = entry
            summary[label] = {
                "workload": workload,
                "key": key,
                "unit": unit,
                "kind": kind,
                "impls": per_impl,
            }
    return summary


def fleet_reference(impls: list[str]) -> str | None:
    """The implementation fleet ratios are taken against."""
    for name in ("tcpip-asyncio", "anyio-asyncio"):
        if name in impls:
            return name
    return None


def summarize_fleet(results: Results) -> dict[str, Any]:
    """Per implementation and N: median [min-max] of every fleet figure, the
    cost ratio against the fleet reference, and the targets."""
    if not results.fleet:
        return {}
    impls = [impl for impl in results.impls if any(r["impl"] == impl for r in results.fleet)]
    sizes = sorted({run["n"] for run in results.fleet})
    reference = fleet_reference(impls)
    by: dict[tuple[int, str, int], dict[str, Any]] = {
        (run["round"], run["impl"], run["n"]): run for run in results.fleet
    }
    out: dict[str, Any] = {"reference": reference, "sizes": sizes, "impls": {}}
    for impl in impls:
        per_n: dict[str, Any] = {}
        for n in sizes:
            mine = [run for run in results.fleet if run["impl"] == impl and run["n"] == n]
            if not mine:
                continue
            entry: dict[str, Any] = {
                key: _spread([run[key] for run in mine])
                for key in ("rate", "setup_s", "rss_per_pair")
            }
            shares = [
                run["gc_s"] / run["elapsed"] for run in mine if run.get("elapsed") and "gc_s" in run
            ]
            if shares:
                # The garbage collector's share of the timed rounds.
                entry["gc_share"] = _spread(shares)
            objects = [run["objects_per_pair"] for run in mine if "objects_per_pair" in run]
            if objects:
                entry["objects_per_pair"] = _spread(objects)
            others = {FLEET_TARGETS.get(impl, ("", 0.0))[0]} | ({reference} if reference else set())
            for other in sorted(others - {""}):
                ratios = [
                    by[(run["round"], other, n)]["rate"] / run["rate"]
                    for run in mine
                    if (run["round"], other, n) in by
                ]
                if ratios:
                    entry[f"cost_vs_{other}"] = _spread(ratios)
            per_n[str(n)] = entry
        keep = [
            by[(r, impl, sizes[-1])]["rate"] / by[(r, impl, sizes[0])]["rate"]
            for r in range(results.rounds)
            if (r, impl, sizes[-1]) in by and (r, impl, sizes[0]) in by
        ]
        summary: dict[str, Any] = {"per_n": per_n}
        if keep and len(sizes) > 1:
            summary["keep"] = _spread(keep)
        out["impls"][impl] = summary
    for impl in impls:
        summary = out["impls"][impl]
        raw = out["impls"].get(FLEET_KEEP_RAW.get(impl, ""), {}).get("keep")
        keep_bound = min(FLEET_KEEP, raw["median"]) if raw else FLEET_KEEP
        summary["targets"] = _fleet_targets(impl, summary, sizes, keep_bound)
    # Targets against ts_tcpip's memory and setup need its entry: fill them last.
    ts = out["impls"].get("tcpip-asyncio")
    if ts is not None:
        big = str(sizes[-1])
        for impl in _ANYTCPIP:
            entry = out["impls"].get(impl)
            if entry is None or big not in entry["per_n"] or big not in ts["per_n"]:
                continue
            for key, what in (("rss_per_pair", "RSS per pair"), ("setup_s", "setup")):
                mine_v = entry["per_n"][big][key]["median"]
                ref_v = ts["per_n"][big][key]["median"]
                entry["targets"].append(
                    {
                        "what": f"{what} at N={big} <= ts_tcpip's",
                        "short": key.split("_")[0],
                        "value": mine_v,
                        "bound": ref_v,
                        "met": mine_v <= ref_v,
                    }
                )
    return out


def _fleet_targets(
    impl: str, summary: dict[str, Any], sizes: list[int], keep_bound: float
) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    if impl not in _ANYTCPIP:
        return targets
    big = str(sizes[-1])
    against, bound = FLEET_TARGETS[impl]
    ratio = summary["per_n"].get(big, {}).get(f"cost_vs_{against}")
    if ratio is not None:
        targets.append(
            {
                "what": f"rt/s cost at N={big} vs {against} <= {bound}",
                "short": "rt/s",
                "value": ratio["median"],
                "bound": bound,
                "met": ratio["median"] <= bound,
            }
        )
    if "keep" in summary:
        keep = summary["keep"]["median"]
        targets.append(
            {
                "what": f"rt/s at N={big} / at N={sizes[0]} >= {keep_bound:.2f}",
                "short": "keep",
                "value": keep,
                "bound": keep_bound,
                "met": keep >= keep_bound,
            }
        )
    return targets


def missed_targets(results: Results) -> list[str]:
    """Every target the run missed, one line each (for ``--check-targets``)."""
    missed = []
    for label, metric in summarize(results).items():
        for impl, entry in metric["impls"].items():
            if entry.get("met") is False:
                value = entry["ratio"]["median"] if "target" in entry else entry["median"]
                bound = entry.get("target", entry.get("target_ms"))
                missed.append(f"{label} {impl}: {value:.2f} (target {bound})")
    for impl, entry in summarize_fleet(results).get("impls", {}).items():
        for target in entry["targets"]:
            if not target["met"]:
                missed.append(f"fleet {impl}: {target['what']}: {target['value']:.2f}")
    return missed


def _kib(value: float) -> str:
    return f"{value / 1024:,.0f}"


def _ratio_cell(ratio: dict[str, float]) -> str:
    return f"{ratio['median']:.2f} [{ratio['min']:.2f}-{ratio['max']:.2f}]"


Table = tuple[str, list[str], list[list[str]]]


def _tables(results: Results) -> list[Table]:
    tables: list[Table] = []
    summary = summarize(results)
    labels = list(summary)
    reference = results.reference
    if labels:
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
                cell = _ratio_cell(entry["ratio"]) if "ratio" in entry else "-"
                if label.startswith("hangup") and "met" in entry:
                    cell = "ok" if entry["met"] else "MISS"
                elif "met" in entry:
                    cell += " ok" if entry["met"] else " MISS"
                row.append(cell)
            ratio_rows.append(row)
        firsts = [label for label in labels if summary[label]["key"] in ("p50_us", "rate", "mb_s")]
        growth_rows = [
            [impl]
            + [
                "{} / {}".format(
                    _kib(summary[label]["impls"][impl]["rx_growth"]),
                    _kib(summary[label]["impls"][impl]["tx_growth"]),
                )
                if impl in summary[label]["impls"]
                else "-"
                for label in firsts
            ]
            for impl in results.impls
        ]
        if reference == "tcpip-asyncio":
            against = "ts_tcpip on asyncio (tcpip-asyncio)"
            note = ""
        else:
            against = f"raw asyncio streams ({reference}); ts_tcpip was not importable"
            note = (
                " The targets are set against ts_tcpip, which costs more than raw asyncio"
                " streams, so against these they are stricter than intended."
            )
        growth_table: list[Table] = []
        if firsts:
            growth_table.append(
                (
                    "RSS growth during the run, KiB: receiving / sending process (from"
                    " connected to done; the library's buffers and queues, not the"
                    " interpreter)",
                    ["implementation", *[summary[label]["workload"] for label in firsts]],
                    growth_rows,
                )
            )
        tables += [
            (
                f"Absolute figures (median of {results.rounds} round(s); rates per second,"
                " MB = 10^6 bytes)",
                ["implementation", *[f"{lb} {summary[lb]['unit']}" for lb in labels]],
                absolute,
            ),
            (
                f"Cost ratio against {against}, same round: median [min-max] over rounds;"
                " below 1 is cheaper (faster). 'ok'/'MISS' compare with the targets of"
                " benchmarks/README.md (echo p50 <= 1.0 / 0.7 / 0.75 on asyncio / uvloop /"
                " trio; lines and structs <= 0.5; bulk <= 0.35); hangup is absolute: p50 <="
                " 1 ms and p99 <= 5 ms. A MISS is information: the exit status stays 0"
                " unless --check-targets is given." + note,
                ["implementation", *labels],
                ratio_rows,
            ),
            *growth_table,
        ]
    tables += _fleet_tables(results)
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


def _fleet_tables(results: Results) -> list[Table]:
    fleet = summarize_fleet(results)
    if not fleet:
        return []
    sizes = fleet["sizes"]
    big = str(sizes[-1])
    reference = fleet["reference"]
    rows = []
    for impl, entry in fleet["impls"].items():
        per_n = entry["per_n"]
        row = [impl]
        row += [
            _fmt(per_n[str(n)]["rate"]["median"], "rate") if str(n) in per_n else "-" for n in sizes
        ]
        row += [f"{per_n[big]['setup_s']['median']:.2f}" if big in per_n else "-"]
        row += [f"{per_n[big]['rss_per_pair']['median'] / 1024:.1f}" if big in per_n else "-"]
        objects = per_n.get(big, {}).get("objects_per_pair")
        row += [f"{objects['median']:.0f}" if objects else "-"]
        share = per_n.get(big, {}).get("gc_share")
        row += [f"{share['median']:.0%}" if share else "-"]
        rows.append(row)
    ratio_rows = []
    for impl, entry in fleet["impls"].items():
        per_n = entry["per_n"]
        row = [impl]
        for n in sizes:
            ratio = per_n.get(str(n), {}).get(f"cost_vs_{reference}")
            row.append(_ratio_cell(ratio) if ratio else "-")
        row.append(_ratio_cell(entry["keep"]) if "keep" in entry else "-")
        verdicts = [f"{t['short']} {'ok' if t['met'] else 'MISS'}" for t in entry["targets"]]
        row.append(", ".join(verdicts) or "-")
        ratio_rows.append(row)
    return [
        (
            f"Fleet: N pairs (OneClientReadLoopServer echo + Client) in one process, every"
            f" client doing round trips concurrently (median of {results.rounds} round(s))",
            [
                "implementation",
                *[f"rt/s N={n}" for n in sizes],
                f"setup s N={big}",
                f"RSS KiB/pair N={big}",
                f"objects/pair N={big}",
                f"GC share N={big}",
            ],
            rows,
        ),
        (
            f"Fleet cost ratio (round trips) against"
            f" {reference or 'nothing (neither tcpip-asyncio nor anyio-asyncio ran)'},"
            " same round, median"
            f" [min-max]; 'keep' = rate at N={big} / rate at N={sizes[0]} (1 = no"
            " slowdown with N). Targets (benchmarks/README.md): cost at N=1000 <= 0.67 of"
            " ts_tcpip on asyncio, <= 0.5 on uvloop, trio at least raw anyio-trio's rate;"
            f" keep >= {FLEET_KEEP} (or raw anyio's keep on that loop, if lower);"
            " RSS per pair and setup no worse than ts_tcpip's."
            " (rt/s, keep, rss, setup: those targets.) Informative unless --check-targets.",
            ["implementation", *[f"N={n}" for n in sizes], "keep", "targets"],
            ratio_rows,
        ),
    ]


def render(results: Results, write: Callable[[str], None], *, use_rich: bool) -> None:
    """Print the tables, with rich if asked and installed."""
    tables = _tables(results)
    if use_rich:
        try:
            from rich.console import Console
            from rich.table import Table as RichTable
            from rich.text import Text
        except ImportError:
            use_rich = False
        else:
            console = Console()
            for title, headers, rows in tables:
                # Text, not markup: "[min-max]" is not a style.
                table = RichTable(title=Text(title), title_justify="left")
                for i, header in enumerate(headers):
                    table.add_column(Text(header), justify="left" if i == 0 else "right")
                for row in rows:
                    table.add_row(*(Text(cell) for cell in row))
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
