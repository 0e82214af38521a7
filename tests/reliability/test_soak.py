"""Soak test: mixed traffic through a FaultProxy with random faults
(docs/reliability.rst, Soak).

The short version (about 3 s per backend) runs in the normal suite. The long
one (``SOAK_SECONDS``, default 60, per backend) runs with ``pytest -m soak``
(``nox -s soak``) or when ``SOAK_SECONDS`` is set; otherwise it skips.
Set ``RELIABILITY_SEED`` to replay a run: the seed and the fault timeline are
printed when it fails, and a JSON summary is printed every time.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder

from .faultproxy import FaultProxy
from .harness import get_seed, slack
from .payloads import check_frame, frame

H = 1.0  # the server's max_heartbeat_interval (seconds)
WINDOW = 40  # most frames in flight per connection
SHORT_SECONDS = 3.0


class EchoServer(anytcpip.OneClientReadLoopServer):
    """Echoes every line; handles heartbeats."""

    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        if line == "heartbeat":
            await self.handle_received_heartbeat()
        else:
            await self.write_str(line)


class _Head(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("text", ctypes.c_char * 24)]


class _Tail(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("text", ctypes.c_char * 2)]


@dataclass
class Stats:
    seed: int
    start: float = 0.0
    timeline: list[tuple[float, str]] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    connect_failures: int = 0
    frames_sent: int = 0
    frames_acked: int = 0
    cancelled_reads: int = 0
    flood_results: dict[str, int] = field(default_factory=dict)
    detection: list[float] = field(default_factory=list)
    pending_drop: float | None = None

    def note(self, what: str) -> None:
        self.timeline.append((round(anyio.current_time() - self.start, 3), what))

    def summary(self, backend: str) -> dict[str, Any]:
        det = sorted(self.detection)
        return {
            "backend": backend,
            "seed": self.seed,
            "faults": self.faults,
            "reconnects": self.connections,
            "connect_failures": self.connect_failures,
            "frames_sent": self.frames_sent,
            "frames_acked": self.frames_acked,
            "cancelled_reads": self.cancelled_reads,
            "flood": self.flood_results,
            "detect_p50": round(statistics.median(det), 4) if det else None,
            "detect_p99": round(det[min(len(det) - 1, int(0.99 * len(det)))], 4) if det else None,
        }


@dataclass
class Conn:
    conn_id: int
    sent: int = 0
    acked: int = 0


def _encode(rng: random.Random, conn: Conn) -> tuple[str, bytes]:
    body = "".join(rng.choice("abcxyz0189éü€中😀_-") for _ in range(rng.randint(0, 40)))
    line = frame(conn.conn_id, conn.sent, body.encode()).decode()
    return rng.choice(["str", "json", "structs", "lines"]), line.encode()


async def _writer(client: anytcpip.Client, conn: Conn, rng: random.Random, stats: Stats) -> None:
    while True:
        while conn.sent - conn.acked >= WINDOW:
            await anyio.sleep(0.002)
        kind, line = _encode(rng, conn)
        with anyio.fail_after(5):
            if kind == "str":
                await client.write_str(line.decode())
            elif kind == "json":
                await client.write_json(line.decode())
            elif kind == "structs" and len(line) <= 24:
                await client.write_from(_Head(line.ljust(24, b" ")), _Tail(b"\r\n"))
            else:
                await client.writelines([line[:5], line[5:], b"\r\n"])
        conn.sent += 1
        stats.frames_sent += 1
        if rng.random() < 0.3:
            await anyio.sleep(rng.random() * 0.003)


async def _reader(client: anytcpip.Client, conn: Conn, rng: random.Random, stats: Stats) -> None:
    while True:
        if rng.random() < 0.05:
            with anyio.move_on_after(rng.random() * 0.002) as scope:
                line = await client.read_str()
            if scope.cancelled_caught:
                stats.cancelled_reads += 1
                continue
        else:
            with anyio.fail_after(5):
                line = await client.read_str()
        if line.startswith('"'):
            line = json.loads(line)
        conn_id, seq, _ = check_frame(line.rstrip(" ").encode())
        # Invariant: per connection, the acked seqs are a gap-free,
        # duplicate-free prefix of the sent seqs; nothing from an old conn_id.
        assert conn_id == conn.conn_id, f"seed={stats.seed}: frame from conn {conn_id}"
        assert seq == conn.acked, f"seed={stats.seed}: got seq {seq}, expected {conn.acked}"
        conn.acked += 1
        stats.frames_acked += 1


async def _flood(port: int, stats: Stats) -> None:
    async def one() -> None:
        result = "timeout"
        try:
            async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, port) as raw:
                with anyio.move_on_after(1.0 + slack()):
                    try:
                        await raw.receive()
                        result = "data"
                    except anyio.EndOfStream:
                        result = "eof"
                    except (anyio.BrokenResourceError, OSError):
                        result = "reset"
        except OSError:
            result = "refused"
        stats.flood_results[result] = stats.flood_results.get(result, 0) + 1

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)


async def _chaos(
    proxy: FaultProxy,
    server: EchoServer,
    current: list[anytcpip.Client | None],
    rng: random.Random,
    stats: Stats,
    deadline: float,
    max_faults: int,
) -> None:
    toxic_on = False
    while anyio.current_time() < deadline and sum(stats.faults.values()) < max_faults:
        await anyio.sleep(rng.uniform(0.15, 0.5))
        fault = rng.choice(
            ["toxic", "toxic", "reset", "fin", "limit", "blackhole_short", "blackhole_long",
             "close_client", "client_close", "flood"]
        )  # fmt: skip
        stats.faults[fault] = stats.faults.get(fault, 0) + 1
        stats.note(fault)
        if fault == "toxic":
            if toxic_on:
                proxy.up.clear()
                proxy.down.clear()
            else:
                toxics = rng.choice([proxy.up, proxy.down])
                choice = rng.randrange(3)
                if choice == 0:
                    toxics.slice_max = rng.randint(1, 7)
                elif choice == 1:
                    toxics.latency = rng.uniform(0, 0.02)
                    toxics.jitter = toxics.latency / 2
                else:
                    toxics.rate_bps = 20_000
            toxic_on = not toxic_on
        elif fault == "reset":
            stats.pending_drop = anyio.current_time()
            await proxy.reset_all()
        elif fault == "fin":
            stats.pending_drop = anyio.current_time()
            await proxy.close_all()
        elif fault == "limit":
            if proxy.links:
                proxy.down.limit_data = len(proxy.link.log_down) + rng.randint(1, 2000)
        elif fault.startswith("blackhole"):
            duration = 0.3 if fault == "blackhole_short" else H + 0.5
            proxy.set_blackhole(True)
            await anyio.sleep(duration)
            proxy.set_blackhole(False)
        elif fault == "close_client":
            stats.pending_drop = anyio.current_time()
            await server.close_client()
        elif fault == "client_close":
            client = current[0]
            if client is not None:
                await client.close()
        else:
            if server.connected:
                await _flood(server.port, stats)
    proxy.up.clear()
    proxy.down.clear()
    proxy.set_blackhole(False)


def _resources() -> tuple[int, int]:
    """(open file descriptors, resident memory in KiB) of this process."""
    fds = len(os.listdir("/proc/self/fd"))
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return fds, rss_pages * os.sysconf("SC_PAGE_SIZE") // 1024


async def _soak(log: logging.Logger, seconds: float, backend: str) -> dict[str, Any]:
    fds_before, rss_before = _resources()
    seed = get_seed()
    rng = random.Random(seed)
    stats = Stats(seed, start=anyio.current_time())
    server_cb = ConnectRecorder(timeout=5.0)
    deadline = anyio.current_time() + seconds
    max_faults = 200
    try:
        with anyio.fail_after(seconds + 30):
            async with EchoServer(
                port=0,
                host=anytcpip.LOCALHOST_IPV4,
                log=log,
                connect_callback=server_cb,
                run_heartbeat_monitor_task=True,
                max_heartbeat_interval=H,
                linger=0.3,
            ) as server:
                async with FaultProxy(server.port, seed=seed) as proxy:
                    current: list[anytcpip.Client | None] = [None]
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(
                            _chaos, proxy, server, current, rng, stats, deadline, max_faults
                        )
                        while anyio.current_time() < deadline and stats.connections < 2000:
                            await _one_connection(log, proxy, current, rng, stats, deadline)
                            await anyio.sleep(rng.uniform(0.01, 0.1))
                        tg.cancel_scope.cancel()
            assert server.done_task.done()
        server_cb.assert_alternating()
        assert stats.frames_acked >= 10 * seconds, f"seed={seed}: too few frames acked"
        flood_bad = stats.flood_results.get("data", 0)
        assert flood_bad == 0, f"seed={seed}: a flood client got data"
        # At most one flood client per flood can be served (when the real client
        # had just dropped).
        served = stats.flood_results.get("timeout", 0)
        assert served <= stats.faults.get("flood", 0), f"seed={seed}: {stats.flood_results}"
        if stats.detection:
            assert max(stats.detection) <= H + 1.0 + slack(), f"seed={seed}"
    except BaseException:
        print(f"SOAK FAILED seed={seed}")  # noqa: T201 (the summary is output)
        print(json.dumps(stats.timeline))  # noqa: T201 (the summary is output)
        raise
    summary = stats.summary(backend)
    for _ in range(3):
        await anyio.sleep(0.01)  # let closed sockets be released
    fds_after, rss_after = _resources()
    summary["fd_change"] = fds_after - fds_before
    summary["rss_change_kib"] = rss_after - rss_before
    print(json.dumps(summary))  # noqa: T201 (the summary is output)
    return summary


async def _one_connection(
    log: logging.Logger,
    proxy: FaultProxy,
    current: list[anytcpip.Client | None],
    rng: random.Random,
    stats: Stats,
    deadline: float,
) -> None:
    cb = ConnectRecorder(timeout=5.0)
    stats.connections += 1
    conn = Conn(stats.connections)
    client = anytcpip.Client(
        host=anytcpip.LOCALHOST_IPV4,
        port=proxy.port,
        log=log,
        connect_callback=cb,
        run_heartbeat_send_task=True,
        heartbeat_send_sleep=0.05,
        linger=0.3,
    )
    try:
        async with client:
            current[0] = client
            async with anyio.create_task_group() as tg:

                async def guarded(fn: Any) -> None:
                    try:
                        await fn(client, conn, rng, stats)
                    except (ConnectionError, EOFError):
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(guarded, _writer)
                tg.start_soon(guarded, _reader)
                with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                    await cb.wait_count(2, timeout=1e9)
                tg.cancel_scope.cancel()
            current[0] = None
    except OSError:
        stats.connect_failures += 1
        return
    finally:
        current[0] = None
    if stats.pending_drop is not None and len(cb.times) == 2:
        stats.detection.append(max(0.0, cb.times[1] - stats.pending_drop))
        stats.pending_drop = None
    # Invariant: the client's callbacks are exactly [T, F] per connection.
    assert cb.states == [True, False], f"seed={stats.seed}: {cb.states}"
    assert conn.acked <= conn.sent


def _backend_name(anyio_backend: Any) -> str:
    name, options = anyio_backend if isinstance(anyio_backend, tuple) else (anyio_backend, {})
    return f"{name}{'+uvloop' if options.get('use_uvloop') else ''}"


async def test_soak_short(log: logging.Logger, anyio_backend: Any) -> None:
    """Soak (section 5), short: about 3 s per backend on every run."""
    summary = await _soak(log, SHORT_SECONDS, _backend_name(anyio_backend))
    assert summary["reconnects"] >= 1


@pytest.mark.soak
async def test_soak_long(log: logging.Logger, anyio_backend: Any) -> None:
    """Soak (section 5), long: SOAK_SECONDS (default 60) per backend. The
    default run deselects it (``-m "not soak"`` in the pytest options); run it
    with ``-m soak`` (``nox -s soak``)."""
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    summary = await _soak(log, seconds, _backend_name(anyio_backend))
    assert summary["reconnects"] >= 1
