"""Smoke tests for the benchmark suite (``anytcpip bench``).

Tiny versions of every workload, in real subprocesses, for anytcpip on each
backend and for the raw-stream references; the validation is checked by
spoiling one message and expecting the run to fail.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from anytcpip._bench import (
    WORKLOADS,
    BenchmarkError,
    Counts,
    Results,
    main,
    run_memory_check,
    run_workload,
)
from anytcpip._bench._common import BulkChecker, ValidationError, bulk_chunk
from anytcpip._bench._report import summarize

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
    lines = summary["lines msg/s"]["impls"]["anytcpip-trio"]
    assert lines["ratio"] == {"median": 0.375, "min": 0.25, "max": 0.5}
    assert lines["met"] is True  # target 0.5
    echo = summary["echo p50 µs"]["impls"]["anytcpip-trio"]
    assert echo["ratio"] == {"median": 1.0, "min": 0.5, "max": 1.5}
    assert echo["met"] is False  # target 0.75


def test_main_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    assert len(data["runs"]) == 2 * 2 * 2
    ratio = data["summary"]["lines msg/s"]["impls"]["asyncio-streams"]["ratio"]
    assert ratio == {"median": 1.0, "min": 1.0, "max": 1.0}
    printed = capsys.readouterr()
    assert "Cost ratio against asyncio-streams" in printed.out
    assert "[round 2/2, 8/8] hangup" in printed.err


@pytest.mark.parametrize(
    "argv",
    [["--only", "nonsense"], ["--impl", "nonsense"], ["--rounds", "0"]],
)
def test_main_rejects_bad_arguments(argv: list[str]) -> None:
    assert main(["--quick", *argv]) == 2
