"""Heartbeats: frozen peers and protocol edge cases with
OneClientReadLoopServer (docs/reliability.rst R5, R8, and the heartbeat part of
R16)."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psutil
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .faultproxy import FaultProxy
from .harness import TEST_TIMEOUT, recv_all, slack
from .peers import PeerProcess

H = 0.5  # max_heartbeat_interval used here (seconds)


@asynccontextmanager
async def hb_server(
    log: logging.Logger, cb: ConnectRecorder, **kwargs: Any
) -> AsyncIterator[anytcpip.TestOneClientReadLoopServer]:
    kwargs.setdefault("run_heartbeat_monitor_task", True)
    kwargs.setdefault("max_heartbeat_interval", H)
    async with anytcpip.TestOneClientReadLoopServer(
        port=0, host=anytcpip.LOCALHOST_IPV4, log=log, connect_callback=cb, **kwargs
    ) as server:
        yield server


@pytest.mark.no_fd_check
@pytest.mark.skipif(sys.platform == "win32", reason="signals")
@deadline(TEST_TIMEOUT)
async def test_frozen_peer(log: logging.Logger) -> None:
    """R5: a peer process sends heartbeats every 50 ms (so it stays connected
    well past H), then is frozen (SIGSTOP): TCP is alive but the application
    is dead. The heartbeat monitor closes the client between H and H + slack
    after the freeze (minus at most one heartbeat period); C=[T,F]; the
    monitor uses close_client, as the reference does, so sbc becomes False;
    close() is bounded by linger."""
    cb = ConnectRecorder(timeout=5.0)
    async with hb_server(log, cb) as server:
        async with PeerProcess(server.port, heartbeat=0.05, read="none") as peer:
            await cb.wait_count(1)
            await anyio.sleep(3 * H)
            assert cb.states == [True], "dropped although heartbeats arrived"
            peer.freeze()
            frozen_at = anyio.current_time()
            await cb.wait_count(2, timeout=H + 5)
            elapsed = cb.times[1] - frozen_at
            assert H - 0.05 - 0.02 <= elapsed <= H + slack(), elapsed
            assert cb.states == [True, False]
            assert not server.connected
            assert not server.should_be_connected
            start = anyio.current_time()
            await server.close()
            # A peer that never closes its end delays close() by at
            # most ``linger`` (a tighter 0.5 s would not hold for it).
            assert anyio.current_time() - start <= server.linger + slack()


@pytest.mark.parametrize("case", ["never", "stops"])
@deadline(TEST_TIMEOUT)
async def test_heartbeat_silence(log: logging.Logger, case: str) -> None:
    """R8 (a), (b): no heartbeat ever arrives after connect, or heartbeats
    arrive and then stop: the client is dropped between H and H + slack
    after the last one (or the connect); C=[T,F]; the raw client sees EOF or
    a reset; the server keeps listening and serves the next client."""
    cb = ConnectRecorder(timeout=5.0)
    async with hb_server(log, cb) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as raw:
            await cb.wait_count(1)
            last = cb.times[0]
            if case == "stops":
                for _ in range(8):
                    await raw.send(b"heartbeat\r\n")
                    last = anyio.current_time()
                    await anyio.sleep(H / 4)
                assert cb.states == [True]
            await cb.wait_count(2, timeout=H + 5)
            elapsed = cb.times[1] - last
            assert H - 0.02 <= elapsed <= H + slack(), elapsed
            _, end = await recv_all(raw)
            assert end in ("eof", "reset")
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=server.port,
            log=log,
            run_heartbeat_send_task=True,
            heartbeat_send_sleep=0.05,
        ) as client:
            await cb.wait_count(3)
            await client.write_str("next client")
            assert await server.get_next_data() == "next client"
    assert cb.states == [True, False, True, False]


@deadline(TEST_TIMEOUT)
async def test_heartbeat_with_monitor_off(log: logging.Logger) -> None:
    """R8 (c): a heartbeat arrives while the server's heartbeat monitor is off:
    handle_received_heartbeat raises RuntimeError, so the read loop closes the
    client once (as ts_tcpip does): C=[T,F], the client sees EOF; the server
    keeps listening."""
    cb = ConnectRecorder(timeout=5.0)
    async with hb_server(log, cb, run_heartbeat_monitor_task=False) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as raw:
            await cb.wait_count(1)
            await raw.send(b"before\r\nheartbeat\r\n")
            assert await server.get_next_data() == "before"
            await cb.wait_count(2)
            _, end = await recv_all(raw)
            assert end in ("eof", "reset")
        assert cb.states == [True, False]
        assert server.port != 0
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as raw:
            await cb.wait_count(3)
            await raw.send(b"again\r\n")
            assert await server.get_next_data() == "again"


@deadline(TEST_TIMEOUT)
async def test_heartbeat_sender_backpressure(log: logging.Logger) -> None:
    """R8 (d): a client sending heartbeats every millisecond to a server that
    reads nothing: the heartbeat task respects backpressure (the write queue
    never grows past the high-water mark plus one heartbeat) and process
    memory stays flat; no error, conn stays True."""
    process = psutil.Process()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind((anytcpip.LOCALHOST_IPV4, 0))
        listener.listen(1)
        cb = ConnectRecorder(timeout=5.0)
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=listener.getsockname()[1],
            log=log,
            connect_callback=cb,
            run_heartbeat_send_task=True,
            heartbeat_send_sleep=0.001,
            linger=0.2,
        ) as client:
            sock, _ = listener.accept()
            with sock:
                rss0 = process.memory_info().rss
                peak = 0
                end = anyio.current_time() + 1.5
                while anyio.current_time() < end:
                    conn = client._conn
                    assert conn is not None
                    peak = max(peak, conn.out_len)
                    await anyio.sleep(0.01)
                growth = process.memory_info().rss - rss0
                assert peak <= (1 << 16) + 64, peak
                assert growth < 8 << 20, growth
                assert client.connected
                assert cb.states == [True]


@deadline(TEST_TIMEOUT)
async def test_heartbeat_between_fragments(log: logging.Logger) -> None:
    """R8 (e): heartbeats every millisecond while the client writes 300
    three-part user frames (writelines) through a 7-byte slicer: a heartbeat
    never lands inside a user frame, so every string the read-loop server
    queues is an intact user frame, in order."""
    cb = ConnectRecorder(timeout=5.0)
    async with hb_server(log, cb, max_heartbeat_interval=5.0) as server:
        async with FaultProxy(server.port) as proxy:
            proxy.up.slice_max = 7
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4,
                port=proxy.port,
                log=log,
                run_heartbeat_send_task=True,
                heartbeat_send_sleep=0.001,
            ) as client:
                for i in range(300):
                    await client.writelines([b"frame-%d:" % i, b"x" * 20, b"\r\n"])
                    if i % 10 == 0:
                        await anyio.sleep(0.001)
                for i in range(300):
                    assert await server.get_next_data() == f"frame-{i}:" + "x" * 20
                assert proxy.log_up.count(b"heartbeat\r\n") >= 1
                assert cb.states == [True]


@deadline(TEST_TIMEOUT)
async def test_heartbeats_over_slow_link(log: logging.Logger) -> None:
    """R16 (heartbeat part): 20 ms latency with 10 ms jitter and 10 kB/s in
    the client-to-server direction; heartbeats every 50 ms keep the client
    connected for 3 H (no spurious disconnect), then user data still gets
    through."""
    cb = ConnectRecorder(timeout=5.0)
    async with hb_server(log, cb) as server:
        async with FaultProxy(server.port) as proxy:
            proxy.up.latency, proxy.up.jitter, proxy.up.rate_bps = 0.02, 0.01, 10_000
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4,
                port=proxy.port,
                log=log,
                run_heartbeat_send_task=True,
                heartbeat_send_sleep=0.05,
            ) as client:
                await cb.wait_count(1)
                await anyio.sleep(3 * H)
                assert cb.states == [True]
                await client.write_str("still here")
                assert await server.get_next_data() == "still here"
                assert client.connected
