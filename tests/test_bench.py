"""Smoke tests for the benchmark suite (``anytcpip bench``).

Tiny versions of every workload, in real subprocesses, for anytcpip on each
backend and for the raw-stream references; the validation is checked by
spoiling one message and expecting the run to fail. The ts_tcpip
implementations run against a stand-in with ts_tcpip's shape (CI has no
ts_tcpip), and against the real one when a checkout is found.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import anytcpip_bench as bench_package
from anytcpip_bench import (
    IMPLEMENTATIONS,
    WORKLOADS,
    BenchmarkError,
    Counts,
    Results,
    main,
    run_fleet,
    run_memory_check,
    run_workload,
)
from anytcpip_bench._common import BulkChecker, ValidationError, bulk_chunk
from anytcpip_bench._report import render, summarize, summarize_fleet
from anytcpip_bench._runner import set_worker_path
from anytcpip_bench._tcpip import locate_ts_tcpip

ANYTCPIP = ["anytcpip-asyncio", "anytcpip-uvloop", "anytcpip-trio"]
RAW = ["asyncio-streams", "anyio-asyncio", "anyio-trio"]
if sys.platform == "win32":  # pragma: no cover
    ANYTCPIP.remove("anytcpip-uvloop")

TINY = Counts(
    echo=60,
    echo_warmup=10,
    lines=2000,
    structs=2000,
    bulk=2 << 20,
    hangup=5,
    flood_max=64 << 20,
    stall_max=64 << 20,
    block_timeout=0.3,
)

EXPECTED_KEYS = {
    "echo": ("p50_us", "p99_us"),
    "lines": ("rate",),
    "structs": ("rate",),
    "bulk": ("mb_s",),
    "hangup": ("p50_ms", "p99_ms"),
}


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("impl", ANYTCPIP)
def test_anytcpip_workload(impl: str, workload: str) -> None:
    run = run_workload(impl, workload, TINY, timeout=60)
    assert run["impl"] == impl
    assert run["n"] == getattr(TINY, workload)
    for key in EXPECTED_KEYS[workload]:
        assert run[key] > 0, run
    assert run["rx_rss"] > 0
    assert run["tx_rss"] > 0


@pytest.mark.parametrize("impl", RAW)
def test_raw_streams_every_workload(impl: str) -> None:
    for workload in WORKLOADS:
        run = run_workload(impl, workload, TINY, timeout=60)
        for key in EXPECTED_KEYS[workload]:
            assert run[key] > 0, run


@pytest.mark.parametrize(
    ("workload", "fault"),
    [
        ("echo", "corrupt"),
        ("lines", "corrupt"),
        ("lines", "drop"),
        ("structs", "corrupt"),
        ("structs", "drop"),
        ("bulk", "corrupt"),
        ("bulk", "drop"),
    ],
)
@pytest.mark.parametrize("impl", ["anytcpip-trio", "asyncio-streams"])
def test_spoiled_message_is_detected(impl: str, workload: str, fault: str) -> None:
    with pytest.raises(BenchmarkError, match="ValidationError"):
        run_workload(impl, workload, TINY, fault=fault, timeout=60)


@pytest.mark.parametrize("check", ["flood", "stall"])
@pytest.mark.parametrize("impl", ANYTCPIP)
def test_memory_checks(impl: str, check: str) -> None:
    result = run_memory_check(impl, check, TINY, timeout=60)
    assert result["blocked"], result
    assert result["ok"], result


def test_bulk_checker_catches_every_kind_of_damage() -> None:
    good = b"".join(bulk_chunk(k) for k in range(4))
    checker = BulkChecker(len(good))
    for start in range(0, len(good), 40_000):  # pieces that straddle chunks
        checker.check(good[start : start + 40_000])
    assert checker.offset == len(good)
    damaged = [
        bulk_chunk(0) + bulk_chunk(2),  # a chunk lost
        bulk_chunk(0) + bulk_chunk(0),  # a chunk repeated
        bulk_chunk(0)[:-1] + b"\x00" + bulk_chunk(1)[:1],  # a byte changed
    ]
    for data in damaged:
        with pytest.raises(ValidationError):
            BulkChecker(len(good)).check(data)
    with pytest.raises(ValidationError):
        BulkChecker(10).check(good[:11])


def test_ratios_are_cost_ratios() -> None:
    results = Results(["asyncio-streams", "anytcpip-trio"], ["lines", "echo"], 2, TINY)
    figures = {
        # (round, impl): (lines rate, echo p50 µs)
        (0, "asyncio-streams"): (100.0, 200.0),
        (0, "anytcpip-trio"): (400.0, 100.0),
        (1, "asyncio-streams"): (100.0, 200.0),
        (1, "anytcpip-trio"): (200.0, 300.0),
    }
    for (r, impl), (rate, p50) in figures.items():
        common = {"round": r, "impl": impl, "rx_rss": 1, "tx_rss": 1}
        results.runs.append({**common, "workload": "lines", "rate": rate})
        results.runs.append({**common, "workload": "echo", "p50_us": p50, "p99_us": p50})
    summary = summarize(results)
    lines = summary["lines"]["impls"]["anytcpip-trio"]
    assert lines["ratio"] == {"median": 0.375, "min": 0.25, "max": 0.5}
    assert lines["met"] is True  # target 0.5
    echo = summary["echo p50"]["impls"]["anytcpip-trio"]
    assert echo["ratio"] == {"median": 1.0, "min": 0.5, "max": 1.5}
    assert echo["met"] is False  # target 0.75


def test_main_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ts_tcpip: None
) -> None:
    out = tmp_path / "bench.json"
    status = main(
        [
            "--quick",
            "--plain",
            "--rounds",
            "2",
            "--scale",
            "0.02",
            "--only",
            "lines,hangup",
            "--impl",
            "anytcpip-asyncio",
            "--json",
            str(out),
        ]
    )
    assert status == 0
    data = json.loads(out.read_text())
    assert data["impls"] == ["asyncio-streams", "anytcpip-asyncio"]
    assert data["reference"] == "asyncio-streams"
    assert len(data["runs"]) == 2 * 2 * 2
    ratio = data["summary"]["lines"]["impls"]["asyncio-streams"]["ratio"]
    assert ratio == {"median": 1.0, "min": 1.0, "max": 1.0}
    printed = capsys.readouterr()
    assert "Cost ratio against raw asyncio streams" in printed.out
    assert "ts_tcpip (lsst.ts.tcpip) is not importable" in printed.err
    assert "[round 2/2, 8/8] hangup" in printed.err
    # Ratio headers carry no units; absolute ones do.
    assert "| lines msg/s" in printed.out
    assert "| lines " in printed.out.split("Cost ratio")[1]
    assert "msg/s" not in printed.out.split("Cost ratio")[1].split("\n\n")[0]
    assert "PERFORMANCE.md" not in printed.out


@pytest.mark.parametrize(
    "argv",
    [
        ["--only", "nonsense"],
        ["nonsense"],
        ["--impl", "nonsense"],
        ["--rounds", "0"],
        ["--fleet-rounds", "0"],
    ],
)
def test_main_rejects_bad_arguments(argv: list[str]) -> None:
    assert main(["--quick", *argv]) == 2


def test_unknown_impl_lists_the_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--impl", "nope,anytcpip-trio"]) == 2
    err = capsys.readouterr().err
    assert "unknown implementation(s): nope;" in err
    for name in IMPLEMENTATIONS:
        assert name in err


@pytest.fixture
def no_ts_tcpip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as if ts_tcpip were not importable (as in CI)."""
    monkeypatch.delenv("TS_TCPIP_PATH", raising=False)
    monkeypatch.setattr(bench_package, "locate_ts_tcpip", lambda path=None: None)


def test_tcpip_impl_refused_when_not_importable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TS_TCPIP_PATH", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # nothing named lsst there
    if locate_ts_tcpip() is not None:
        pytest.skip("lsst.ts.tcpip is installed here")
    assert main(["--quick", "--impl", "tcpip-asyncio"]) == 2
    assert "ts_tcpip is not importable" in capsys.readouterr().err
    with pytest.raises(ValueError, match="holds no lsst/ts/tcpip"):
        locate_ts_tcpip(str(tmp_path))
    assert main(["--quick", "--ts-tcpip-path", str(tmp_path)]) == 2


# A stand-in for ts_tcpip with its shape: asyncio only, objects that start
# themselves in the constructor (start_task), async with = wait for start and
# close. Built on anytcpip so that it works; it also needs lsst.ts.utils,
# which the benchmark must supply with its own stand-in.
_FAKE_TCPIP = """
import asyncio

import anyio
import anytcpip
from lsst.ts import utils

__version__ = "0.0-fake"
assert utils.current_tai() > 0


class _StartsItself:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._runner = asyncio.ensure_future(self._run_until_closed())

    async def _run_until_closed(self):
        async with anyio.create_task_group() as tg:
            await tg.start(self.run)

    async def __aenter__(self):
        await self.start_task
        return self

    async def __aexit__(self, *exc_info):
        await self.close()
        await self._runner


class Client(_StartsItself, anytcpip.Client):
    pass


class OneClientServer(_StartsItself, anytcpip.OneClientServer):
    pass


class OneClientReadLoopServer(_StartsItself, anytcpip.OneClientReadLoopServer):
    pass
"""


@pytest.fixture
def fake_ts_tcpip(tmp_path: Path) -> Path:
    package = tmp_path / "fake" / "lsst" / "ts" / "tcpip"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_FAKE_TCPIP)
    return tmp_path / "fake"


def test_ts_tcpip_impl_with_a_stand_in(
    fake_ts_tcpip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = locate_ts_tcpip(str(fake_ts_tcpip))
    assert setup is not None
    assert setup.version == "0.0-fake"
    assert setup.standin  # lsst.ts.utils was missing: the stand-in was written
    out = tmp_path / "bench.json"
    status = main(
        [
            "--plain",
            "--quick",
            "--scale",
            "0.02",
            "--rounds",
            "1",
            "--ts-tcpip-path",
            str(fake_ts_tcpip),
            "--impl",
            "tcpip-asyncio,anytcpip-trio",
            "--only",
            "echo,lines,fleet",
            "--fleet-n",
            "2,4",
            "--fleet-rounds",
            "3",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr()
    assert status == 0, printed.err
    data = json.loads(out.read_text())
    assert data["reference"] == "tcpip-asyncio"
    assert data["impls"] == ["tcpip-asyncio", "anytcpip-trio"]
    assert {(run["impl"], run["workload"]) for run in data["runs"]} == {
        (impl, workload)
        for impl in ("tcpip-asyncio", "anytcpip-trio")
        for workload in ("echo", "lines")
    }
    assert {(run["impl"], run["n"]) for run in data["fleet"]} == {
        (impl, n) for impl in ("tcpip-asyncio", "anytcpip-trio") for n in (2, 4)
    }
    assert "Cost ratio against ts_tcpip on asyncio" in printed.out
    assert "Fleet cost ratio (round trips) against tcpip-asyncio" in printed.out


_TS_TCPIP = os.environ.get("TS_TCPIP_PATH", "")


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(_TS_TCPIP, "lsst", "ts", "tcpip")),
    reason="no ts_tcpip checkout: set TS_TCPIP_PATH to its python/ folder",
)
@pytest.mark.parametrize("workload", [*WORKLOADS, "fleet"])
def test_real_ts_tcpip(workload: str) -> None:
    setup = locate_ts_tcpip(_TS_TCPIP)
    assert setup is not None
    set_worker_path(setup.path)
    try:
        if workload == "fleet":
            run = run_fleet("tcpip-asyncio", 3, TINY, timeout=60)
            assert run["rate"] > 0
        else:
            run = run_workload("tcpip-asyncio", workload, TINY, timeout=60)
            for key in EXPECTED_KEYS[workload]:
                assert run[key] > 0, run
    finally:
        set_worker_path([])


FLOOR = ["anyio-tasks-asyncio", "anyio-tasks-uvloop", "anyio-tasks-trio"]
if sys.platform == "win32":  # pragma: no cover
    FLOOR.remove("anyio-tasks-uvloop")
FLEET_IMPLS = [*ANYTCPIP, "anyio-asyncio", "anyio-trio", *FLOOR]


@pytest.mark.parametrize("impl", FLEET_IMPLS)
def test_fleet(impl: str) -> None:
    counts = Counts(fleet_k=4)
    run = run_fleet(impl, 5, counts, timeout=60)
    assert (run["impl"], run["n"], run["k"]) == (impl, 5, 4)
    assert run["rate"] > 0
    assert run["setup_s"] > 0
    assert run["elapsed"] > 0
    assert run["rss_idle"] > 0
    assert isinstance(run["rss_per_pair"], float)
    # Every pair holds sockets, streams and tasks the collector tracks.
    assert run["objects_per_pair"] > 10
    if sys.platform != "win32":
        assert run["fd_limit"] >= 1024


def test_fleet_tracemalloc_reports_allocation_sites() -> None:
    run = run_fleet("anytcpip-asyncio", 3, Counts(fleet_k=3), timeout=60, tracemalloc=5)
    top = run["tracemalloc_top"]
    assert 0 < len(top) <= 5
    assert all(site["bytes"] != 0 and ":" in site["where"] for site in top)


def test_fleet_refuses_raw_asyncio_streams() -> None:
    with pytest.raises(ValueError, match="no fleet"):
        run_fleet("asyncio-streams", 3, TINY)


@pytest.mark.parametrize("impl", FLOOR)
def test_floor_has_the_fleet_only(impl: str) -> None:
    with pytest.raises(ValueError, match="fleet workload only"):
        run_workload(impl, "echo", TINY)


def test_floor_sits_out_the_two_process_workloads_and_runs_the_fleet(
    no_ts_tcpip: None, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    status = main(
        [
            "--only",
            "echo,fleet",
            "--impl",
            "anytcpip-asyncio,anyio-tasks-asyncio",
            "--fleet-n",
            "2,4",
            "--fleet-rounds",
            "3",
            "--rounds",
            "1",
            "--quick",
            "--plain",
            "--json",
            str(out),
        ]
    )
    assert status == 0
    data = json.loads(out.read_text())
    # The reference (raw asyncio streams here) and anytcpip ran echo; the
    # floor did not.
    assert {run["impl"] for run in data["runs"]} == {"asyncio-streams", "anytcpip-asyncio"}
    assert {(run["impl"], run["n"]) for run in data["fleet"]} == {
        (impl, n) for impl in ("anytcpip-asyncio", "anyio-tasks-asyncio") for n in (2, 4)
    }
    floor = data["fleet_summary"]["impls"]["anyio-tasks-asyncio"]
    # A reference to compare with, never a target of its own.
    assert floor["targets"] == []
    assert floor["per_n"]["4"]["rate"]["median"] > 0


def test_fleet_needs_a_fleet_impl(no_ts_tcpip: None) -> None:
    assert main(["fleet", "--impl", "asyncio-streams"]) == 2


def _results_with_a_miss() -> Results:
    results = Results(["asyncio-streams", "anytcpip-trio"], ["lines"], 1, TINY)
    for impl, rate in (("asyncio-streams", 100.0), ("anytcpip-trio", 90.0)):
        results.runs.append(
            {"round": 0, "impl": impl, "workload": "lines", "rate": rate, "rx_rss": 1, "tx_rss": 1}
        )
    return results


@pytest.mark.parametrize(("check", "status"), [(False, 0), (True, 1)])
def test_a_missed_target_fails_only_with_check_targets(
    check: bool,
    status: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_ts_tcpip: None,
) -> None:
    monkeypatch.setattr(
        bench_package, "run_benchmark", lambda *args, **kwargs: _results_with_a_miss()
    )
    argv = ["--plain", "--only", "lines", "--impl", "anytcpip-trio"]
    assert main(argv + (["--check-targets"] if check else [])) == status
    printed = capsys.readouterr()
    assert "MISS" in printed.out
    assert "exit status stays 0 unless --check-targets" in printed.out
    if check:
        assert "target missed: lines anytcpip-trio: 1.11 (target 0.5)" in printed.err
    else:
        assert "target missed" not in printed.err


def test_fleet_summary_targets() -> None:
    results = Results(["tcpip-asyncio", "anytcpip-asyncio"], [], 1, TINY)
    figures = {
        # (impl, n): (rate, setup_s, rss_per_pair)
        ("tcpip-asyncio", 10): (1000.0, 0.01, 12000.0),
        ("tcpip-asyncio", 1000): (1000.0, 0.3, 12000.0),
        ("anytcpip-asyncio", 10): (2000.0, 0.01, 50000.0),
        ("anytcpip-asyncio", 1000): (1000.0, 0.2, 11000.0),
    }
    for (impl, n), (rate, setup, rss) in figures.items():
        results.fleet.append(
            {"round": 0, "impl": impl, "n": n, "rate": rate, "setup_s": setup, "rss_per_pair": rss}
        )
    fleet = summarize_fleet(results)
    assert fleet["reference"] == "tcpip-asyncio"
    entry = fleet["impls"]["anytcpip-asyncio"]
    assert entry["per_n"]["1000"]["cost_vs_tcpip-asyncio"]["median"] == 1.0
    assert entry["keep"]["median"] == 0.5
    verdicts = {t["short"]: t["met"] for t in entry["targets"]}
    assert verdicts == {"rt/s": False, "keep": False, "rss": True, "setup": True}
    assert fleet["impls"]["tcpip-asyncio"]["targets"] == []


def test_fleet_keep_bound_is_raw_anyios_keep_when_lower() -> None:
    # Raw anyio-trio itself keeps 0.4 of its N=10 rate at N=1000: anytcpip-trio
    # keeping 0.5 meets the "no collapse" target, and one keeping 0.3 does not.
    def run(keep_of_raw: float, keep_of_mine: float) -> dict[str, bool]:
        results = Results(["anyio-trio", "anytcpip-trio"], [], 1, TINY)
        for impl, keep in (("anyio-trio", keep_of_raw), ("anytcpip-trio", keep_of_mine)):
            for n, rate in ((10, 1000.0), (1000, 1000.0 * keep)):
                results.fleet.append(
                    {"round": 0, "impl": impl, "n": n, "rate": rate, "setup_s": 0.1,
                     "rss_per_pair": 1000.0}
                )  # fmt: skip
        targets = summarize_fleet(results)["impls"]["anytcpip-trio"]["targets"]
        return {t["short"]: t["met"] for t in targets if t["short"] == "keep"} | {
            "bound": next(t["bound"] for t in targets if t["short"] == "keep")
        }

    assert run(0.4, 0.5) == {"keep": True, "bound": 0.4}
    assert run(0.4, 0.3) == {"keep": False, "bound": 0.4}
    # A raw run that keeps more than 0.75 does not raise the bar.
    assert run(0.9, 0.8) == {"keep": True, "bound": 0.75}


def test_rich_tables_keep_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rich")
    render(_results_with_a_miss(), print, use_rich=True)
    out = capsys.readouterr().out
    assert "median [min-max]" in out
    assert "1.11 [1.11-1.11] MISS" in out
