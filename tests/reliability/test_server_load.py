"""OneClientServer under load: connection floods, fast reconnects, EMFILE
(docs/reliability.rst R11-R13)."""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.streams.text
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .harness import TEST_TIMEOUT, slack


@asynccontextmanager
async def echo_server(
    log: logging.Logger, cb: ConnectRecorder, **kwargs: Any
) -> AsyncIterator[anytcpip.OneClientServer]:
    """A OneClientServer whose current client gets every line echoed."""
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb, **kwargs
    ) as server:
        async with anyio.create_task_group() as tg:

            async def echo() -> None:
                while True:
                    await server.connected_task
                    try:
                        line = await server.read_str()
                        await server.write_str(line)
                    except (ConnectionError, EOFError):
                        while server.connected:
                            await anyio.sleep(0.005)
                        await anyio.sleep(0.005)

            tg.start_soon(echo)
            yield server
            tg.cancel_scope.cancel()


async def _flood_one(port: int, send_first: bool, results: list[str]) -> None:
    stream = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, port)
    async with stream:
        try:
            if send_first:
                await stream.send(b"let me in\r\n")
            with anyio.fail_after(1.0 + slack()):
                data = await stream.receive()
            results.append(f"data {data!r}")
        except anyio.EndOfStream:
            results.append("eof")
        except (anyio.BrokenResourceError, OSError):
            results.append("reset")
        except TimeoutError:
            results.append("hang")


@pytest.mark.parametrize("n", [100])
@deadline(TEST_TIMEOUT)
async def test_flood(log: logging.Logger, n: int) -> None:
    """R11: N simultaneous connection attempts (half send data first) while a
    client is served. Exactly one client is served; each flood client sees
    EOF or a reset within 1 s + slack, none hangs and none gets data; the
    server's C=[T] is unchanged and the served client keeps echoing during
    the flood; after it leaves a new client is served: C=[T,F,T,F]."""
    cb = ConnectRecorder(timeout=5.0)
    async with echo_server(log, cb) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as served:
            await cb.wait_count(1)
            results: list[str] = []
            echoed: list[str] = []
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(_flood_one, server.port, i % 2 == 0, results)

                async def keep_echoing() -> None:
                    for i in range(20):
                        await served.write_str(f"echo {i}")
                        echoed.append(await served.read_str())

                tg.start_soon(keep_echoing)
            assert echoed == [f"echo {i}" for i in range(20)]
            assert len(results) == n
            bad = [r for r in results if r not in ("eof", "reset")]
            assert not bad, bad
            assert cb.states == [True]
            assert served.connected
        await cb.wait_count(2)
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as second:
            await cb.wait_count(3)
            await second.write_str("second")
            assert await second.read_str() == "second"
        await cb.wait_count(4)
        assert cb.states == [True, False, True, False]


@pytest.mark.parametrize("monitor", [0.1, 0.0])
@deadline(TEST_TIMEOUT)
async def test_reconnect_race(log: logging.Logger, monitor: float) -> None:
    """R12: the old client sends a half line and leaves; a new client connects
    at once (before the server noticed, certainly with the monitor off) and
    sends "hello". The server's read_str returns "hello": nothing of the old
    connection leaks into the new one; C=[T,F,T], never [T,T]; no extra
    callbacks afterwards."""
    cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4,
        port=0,
        log=log,
        connect_callback=cb,
        monitor_connection_interval=monitor,
    ) as server:
        old = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)
        await cb.wait_count(1)
        await old.send(b"partial-without-terminator")
        await old.aclose()
        new = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)
        async with new:
            await new.send(b"hello\r\n")
            states = await cb.wait_count(3)
            assert states == [True, False, True]
            assert await server.read_str() == "hello"
            await server.write_str("welcome")
            assert await new.receive() == b"welcome\r\n"
            # No stray callbacks after 5 monitor intervals.
            await anyio.sleep(5 * max(monitor, 0.1))
            assert cb.states == [True, False, True]


@deadline(TEST_TIMEOUT)
async def test_reconnect_while_connected(log: logging.Logger) -> None:
    """R12: a second client arrives while the first is still connected: it is
    accepted and closed at once (EOF or reset, no data); the first is
    unaffected; C=[T]."""
    cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb
    ) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as first:
            await cb.wait_count(1)
            results: list[str] = []
            await _flood_one(server.port, True, results)
            assert results in (["eof"], ["reset"])
            await first.send(b"still here\r\n")
            assert await server.read_str() == "still here"
            assert cb.states == [True]


_CONNECTOR = """
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); socks.append(s)
sys.stdout.write("connected\\n"); sys.stdout.flush()
results = []
for s in socks:
    s.settimeout(10)
    try:
        data = s.recv(100)
        results.append("eof" if not data else "data")
    except ConnectionResetError:
        results.append("reset")
    except OSError as exc:
        results.append(repr(exc))
sys.stdout.write(" ".join(results) + "\\n"); sys.stdout.flush()
"""


def _lowest_free_fd() -> int:
    fd = os.dup(0)
    os.close(fd)
    return fd


@pytest.mark.no_fd_check
@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE")
@deadline(TEST_TIMEOUT)
async def test_emfile(log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    """R13: the server's process runs out of file descriptors while 10 clients
    connect. The accept loop logs the error, pauses ~0.1 s and retries (no
    busy loop: at most ~20 attempts a second); the served client is
    unaffected (C=[T]); once descriptors are free again the waiting clients
    are accepted and rejected (EOF or reset), and a new client is served
    after the first leaves."""
    cb = ConnectRecorder(timeout=5.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    caplog.set_level(logging.WARNING, logger=log.name)
    async with echo_server(log, cb) as server:
        proc = await anyio.open_process([sys.executable, "-c", _CONNECTOR, str(server.port), "10"])
        async with proc:
            assert proc.stdin is not None
            assert proc.stdout is not None
            lines = anyio.streams.text.TextReceiveStream(proc.stdout)
            buffered = ""

            async def next_line() -> str:
                nonlocal buffered
                while "\n" not in buffered:
                    buffered += await lines.receive()
                line, buffered = buffered.split("\n", 1)
                return line

            assert await next_line() == "ready"
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
            ) as served:
                await cb.wait_count(1)
                caplog.clear()
                window = 1.0
                resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd(), hard))
                try:
                    await proc.stdin.send(b"go\n")
                    assert await next_line() == "connected"
                    await anyio.sleep(window)
                    # The served client still works while accept fails.
                    await served.write_str("still served")
                    assert await served.read_str() == "still served"
                finally:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                failures = [r for r in caplog.records if "accept failed" in r.getMessage()]
                assert failures, "no accept failure was logged"
                assert len(failures) <= 20 * window + 5, len(failures)
                results = (await next_line()).split()
                assert len(results) == 10, results
                assert set(results) <= {"eof", "reset"}, results
                assert cb.states == [True]
            await cb.wait_count(2)
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
            ) as second:
                await cb.wait_count(3)
                await second.write_str("again")
                assert await second.read_str() == "again"
            await proc.wait()
    assert cb.states == [True, False, True, False]
