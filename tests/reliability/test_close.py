"""Closing: waking blocked tasks, no tail loss, bounded close
(docs/reliability.rst R24-R26)."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from typing import Any

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .harness import TEST_TIMEOUT, open_pair, open_plain, slack
from .payloads import ShortStruct, pattern
from .peers import PeerProcess

ROLES = ["client", "server"]


async def _close(obj: anytcpip.BaseClientOrServer) -> None:
    if isinstance(obj, anytcpip.OneClientServer):
        await obj.close_client()
    else:
        assert isinstance(obj, anytcpip.Client)
        await obj.close()


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_close_wakes_blocked(log: logging.Logger, role: str) -> None:
    """R24: task A is blocked in readexactly(100), task B in a write to a
    clogged peer; close() (client) / close_client() (server) wakes both
    with ConnectionError within 100 ms (+ slack), even while the write queue
    is full; close can be called 3 times; afterwards every read and write
    method raises ConnectionError; C=[T,F] once; sbc=False."""
    linger = 0.3
    async with open_plain(role, log, rcvbuf=65536, linger=linger) as pp:
        obj = pp.obj
        # Clog the peer so that a writer blocks.
        while True:
            with anyio.move_on_after(0.2) as scope:
                await obj.write(b"w" * 65536)
            if scope.cancelled_caught:
                break
        errors: dict[str, BaseException] = {}
        woken: dict[str, float] = {}

        async def reader() -> None:
            try:
                await obj.readexactly(100)
            except Exception as exc:
                errors["read"] = exc
            woken["read"] = anyio.current_time()

        async def writer() -> None:
            try:
                await obj.write(b"late" * 1000)
            except Exception as exc:
                errors["write"] = exc
            woken["write"] = anyio.current_time()

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            await anyio.wait_all_tasks_blocked()
            assert not errors
            start = anyio.current_time()
            async with anyio.create_task_group() as closers:
                closers.start_soon(_close, obj)
                closers.start_soon(_close, obj)
            await _close(obj)
            close_time = anyio.current_time() - start
        assert set(errors) == {"read", "write"}
        for name in ("read", "write"):
            assert isinstance(errors[name], ConnectionError), repr(errors[name])
            assert woken[name] - start <= 0.1 + slack(), (name, woken[name] - start)
        assert close_time <= linger + slack(), close_time
        assert pp.cb.states == [True, False]
        assert not obj.connected
        assert not obj.should_be_connected
        for call in (
            lambda: obj.read(1),
            lambda: obj.readexactly(1),
            obj.readline,
            lambda: obj.readuntil(b"\r\n"),
            obj.read_str,
            obj.read_json,
            lambda: obj.read_into(ShortStruct()),
            lambda: obj.write(b"x"),
            lambda: obj.writelines([b"x"]),
            lambda: obj.write_from(ShortStruct()),
            lambda: obj.write_str("x"),
            lambda: obj.write_json(1),
        ):
            with pytest.raises(ConnectionError):
                await call()
        assert pp.cb.states == [True, False]


@pytest.mark.parametrize("monitor", [0.1, 0.0])
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_no_tail_loss(log: logging.Logger, role: str, monitor: float) -> None:
    """R25: we write 8 MiB and close at once, while the peer keeps sending
    heartbeats that we never read (with the monitor off they stay in the
    kernel, which would make a plain close send RST). The peer receives all
    8 MiB followed by a clean EOF (I1); close() takes at most linger + slack.
    """
    data = pattern(8 << 20, seed=25)
    linger = 2.0
    async with open_plain(role, log, monitor_connection_interval=monitor, linger=linger) as pp:
        sock = pp.sock
        stop = threading.Event()

        def chatter() -> None:
            while not stop.is_set():
                try:
                    sock.send(b"heartbeat\r\n")
                except OSError:
                    return
                stop.wait(0.005)

        def receive_all() -> tuple[bytes, str]:
            got = bytearray()
            try:
                while True:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return bytes(got), "eof"
                    got += chunk
            except OSError as exc:
                return bytes(got), repr(exc)
            finally:
                stop.set()
                if _is_open(sock):
                    sock.shutdown(socket.SHUT_WR)

        result: list[tuple[bytes, str]] = []

        async def peer() -> None:
            result.append(await anyio.to_thread.run_sync(receive_all))

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, chatter)
            # Let some heartbeats arrive unread.
            await anyio.sleep(0.05)
            await pp.obj.write(data)
            tg.start_soon(peer)
            start = anyio.current_time()
            await _close(pp.obj)
            close_time = anyio.current_time() - start
        got, end = result[0]
        assert end == "eof", end
        assert len(got) == len(data)
        assert got == data
        assert close_time <= linger + slack(), close_time
        assert pp.cb.states == [True, False]


def _is_open(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


@pytest.mark.no_fd_check
@pytest.mark.skipif(sys.platform == "win32", reason="signals")
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_close_bounded_frozen(log: logging.Logger, role: str) -> None:
    """R26: the peer process is frozen (SIGSTOP) with both directions clogged
    (we wrote until writes blocked; it sent heartbeats we never read, monitor
    off). close() returns within linger + slack; C=[T,F]."""
    linger = 0.5
    cb = ConnectRecorder(timeout=5.0)
    kwargs: dict[str, Any] = {
        "log": log,
        "connect_callback": cb,
        "monitor_connection_interval": 0,
        "linger": linger,
    }
    if role == "server":
        async with anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4, port=0, **kwargs
        ) as server:
            async with PeerProcess(server.port, read="none", heartbeat=0.002) as peer:
                await cb.wait_count(1)
                await _freeze_clog_close(server, peer, linger)
    else:
        async with PeerProcess(None, read="none", heartbeat=0.002) as peer:
            client = anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=peer.port, **kwargs)
            async with client:
                await peer.wait_ready()
                await _freeze_clog_close(client, peer, linger)
    assert cb.states == [True, False]


async def _freeze_clog_close(
    obj: anytcpip.BaseClientOrServer, peer: PeerProcess, linger: float
) -> None:
    await anyio.sleep(0.1)  # heartbeats pile up unread
    peer.freeze()
    for _ in range(10_000):
        with anyio.move_on_after(0.2) as scope:
            await obj.write(b"z" * 65536)
        if scope.cancelled_caught:
            break
    else:
        pytest.fail("writes to a frozen peer never blocked")
    start = anyio.current_time()
    await _close(obj)
    elapsed = anyio.current_time() - start
    assert elapsed <= linger + slack(), elapsed
    assert not obj.connected


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_close_bounded_blackhole(log: logging.Logger, role: str) -> None:
    """R26 (blackhole): with the proxy holding everything and data still
    queued, close() returns within linger + slack; with a responsive peer and
    nothing pending it returns at once (well under linger)."""
    linger = 0.5
    kwargs = {"linger": linger}
    async with open_pair(log, server_kwargs=kwargs, client_kwargs=kwargs) as pair:
        obj = pair.obj(role)
        pair.proxy.set_blackhole(True)
        await obj.write(b"q" * (1 << 20))
        start = anyio.current_time()
        await _close(obj)
        assert anyio.current_time() - start <= linger + slack()
        assert pair.cb(role).states == [True, False]
        pair.proxy.set_blackhole(False)
    async with open_pair(log, server_kwargs=kwargs, client_kwargs=kwargs) as pair:
        obj = pair.obj(role)
        start = anyio.current_time()
        await _close(obj)
        assert anyio.current_time() - start < linger
