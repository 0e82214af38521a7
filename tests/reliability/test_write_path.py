"""The write path: what returning from a write means, failure after a reset,
fairness between writers and towards other tasks, heartbeats (issue 14
items 6, 12, 13, 14; issue 10 B)."""

from __future__ import annotations

import itertools
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

import anytcpip
from helpers import deadline

from .harness import TEST_TIMEOUT, open_plain, open_raw
from .payloads import ShortStruct

ROLES = ["client", "server"]

#: How long a blocking recv waits for bytes that should already be there.
RECV_WAIT = 5.0


def recv_now(sock: socket.socket, n: int) -> bytes:
    """Receive ``n`` bytes on a blocking socket *without yielding to the event
    loop*: only bytes already handed to the kernel can arrive."""
    sock.settimeout(RECV_WAIT)
    data = b""
    try:
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


async def check_burst(obj: anytcpip.BaseClientOrServer, sock: socket.socket, tag: str) -> None:
    """Five writes in a row (every write method), each checked at the peer
    before the next one, without the writer yielding in between."""
    s = ShortStruct(seq=7, stamp=-3, angle=1.5, level=2.5)
    writes: list[tuple[str, Callable[[], Awaitable[None]], bytes]] = [
        ("write", lambda: obj.write(f"{tag}-0\r\n".encode()), f"{tag}-0\r\n".encode()),
        ("write_str", lambda: obj.write_str(f"{tag}-1"), f"{tag}-1\r\n".encode()),
        ("write_json", lambda: obj.write_json([tag, 2]), f'["{tag}", 2]\r\n'.encode()),
        ("write_from", lambda: obj.write_from(s), bytes(s)),
        ("writelines", lambda: obj.writelines([tag.encode(), b"-4\r\n"]), f"{tag}-4\r\n".encode()),
    ]
    for i, (name, write, expected) in enumerate(writes):
        await write()
        got = recv_now(sock, len(expected))
        assert got == expected, f"{tag}: message {i} ({name}) not in the kernel: got {got!r}"


@pytest.mark.parametrize("monitor", [True, False], ids=["monitor", "no-monitor"])
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_returned_write_is_sent(log: logging.Logger, role: str, monitor: bool) -> None:
    """Issue 10 B / 14.13: when a write returns (nothing being queued before
    it), its bytes are in the kernel: a blocking recv in the same thread,
    without yielding, gets the first, second, third... message of a burst;
    after a pause; and (server) on a new connection right after the previous
    client left. With connection monitoring on and off."""
    interval = anytcpip.DEFAULT_MONITOR_CONNECTION_INTERVAL if monitor else 0
    async with open_plain(role, log, monitor_connection_interval=interval) as pp:
        await check_burst(pp.obj, pp.sock, "a")
        await anyio.sleep(0.01)
        await check_burst(pp.obj, pp.sock, "b")
        if role == "server":
            pp.sock.close()
            if monitor:
                await pp.cb.wait_count(2)
            # (Without monitoring, the server notices when the next one comes.)
            assert isinstance(pp.obj, anytcpip.OneClientServer)
            with socket.create_connection((anytcpip.LOCALHOST_IPV4, pp.obj.port)) as sock2:
                assert await pp.cb.wait_count(3) == [True, False, True]
                await check_burst(pp.obj, sock2, "c")


@pytest.mark.parametrize("monitor", [True, False], ids=["monitor", "no-monitor"])
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_write_after_reset_raises(log: logging.Logger, role: str, monitor: bool) -> None:
    """14.6: the peer resets; a write loop that never awaits anything else
    gets ConnectionError within a few writes (asyncio used to drop every later
    write silently, forever), then the connection is reported lost."""
    interval = anytcpip.DEFAULT_MONITOR_CONNECTION_INTERVAL if monitor else 0
    async with open_plain(role, log, monitor_connection_interval=interval) as pp:
        await pp.obj.write(b"hello\r\n")
        assert recv_now(pp.sock, 7) == b"hello\r\n"
        pp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        pp.sock.close()
        raised = None
        for _ in range(10):
            try:
                await pp.obj.write(b"x" * 100)
            except ConnectionError as exc:
                raised = exc
                break
        assert raised is not None, "10 writes after the reset all returned"
        assert not pp.obj.connected
        assert await pp.cb.wait_count(2) == [True, False]
        with pytest.raises(ConnectionError):
            await pp.obj.write(b"more")


class _Drain:
    """Read everything from a blocking socket in a thread, noting when each
    ``needle`` arrives (and keeping the bytes if ``keep``)."""

    def __init__(self, sock: socket.socket, needle: bytes, keep: bool = False) -> None:
        self.sock = sock
        self.needle = needle
        self.keep = keep
        self.data = bytearray()
        self.times: list[float] = []
        self.total = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.sock.settimeout(0.05)
        tail = b""
        while not self.stop.is_set():
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.total += len(data)
            if self.keep:
                self.data += data
            seen = tail + data
            now = time.monotonic()
            self.times.extend([now] * seen.count(self.needle))
            tail = seen[-(len(self.needle) - 1) :]

    def __enter__(self) -> _Drain:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()


@deadline(TEST_TIMEOUT)
async def test_heartbeats_and_cancel_under_write_load(log: logging.Logger) -> None:
    """14.12: a task writing as fast as it can to a peer that keeps up (so
    the kernel takes every write and no backpressure ever applies) does not
    starve the heartbeat sender: heartbeats keep going out at about their
    interval. The same loop honours cancellation."""
    interval = 0.1
    async with open_plain(
        "client", log, run_heartbeat_send_task=True, heartbeat_send_sleep=interval
    ) as pp:
        client = pp.obj
        line = b"d" * 200 + b"\r\n"
        with _Drain(pp.sock, b"heartbeat\r\n") as drain:
            start = time.monotonic()
            end = anyio.current_time() + 2.0
            writes = 0
            while anyio.current_time() < end:
                await client.write(line)
                writes += 1
            beats = [t - start for t in drain.times]
            with anyio.move_on_after(0.3) as scope:
                for _ in range(10_000_000):
                    await client.write(line)
            assert scope.cancelled_caught, "a write loop ignored cancellation"
        assert client.connected
        gaps = [b - a for a, b in itertools.pairwise(beats)]
        assert len(beats) >= 6, (writes, beats)
        assert max(gaps) < 1.0, (writes, beats)


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_blocked_writers_served_in_order(log: logging.Logger, role: str) -> None:
    """14.12: writers waiting for backpressure to end go first come, first
    served. A producer writes numbered 16 KiB chunks until the peer's buffers
    are full and it waits; then another task writes a short message and waits
    behind it. When the peer starts reading, the short message goes out right
    after the producer's pending chunk: the producer, woken first, does not
    refill the window with more chunks before the other writer had its turn."""
    size = 1 << 14
    async with open_plain(role, log) as pp:
        obj = pp.obj
        pending = -1

        async def producer() -> None:
            nonlocal pending
            for i in range(2000):
                pending = i
                await obj.write(b"C%08d" % i + b"p" * (size - 9))
            pending = -1

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            assert pending >= 0, "the producer never had to wait"
            waited_at = pending
            tg.start_soon(obj.write, b"PING")
            await anyio.wait_all_tasks_blocked()
            with _Drain(pp.sock, b"PING", keep=True) as drain:
                while not drain.times:
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        stream = bytes(drain.data)
        before = re.findall(rb"C(\d{8})", stream[: stream.index(b"PING")])
        assert int(before[-1]) <= waited_at + 1, (waited_at, int(before[-1]))


@deadline(TEST_TIMEOUT)
async def test_heartbeat_follows_terminator(log: logging.Logger) -> None:
    """14.14: heartbeats are messages: after a change of ``terminator`` they
    end with the new one."""
    async with open_raw(
        "client", log, run_heartbeat_send_task=True, heartbeat_send_sleep=0.02
    ) as rp:
        data = b""
        while b"heartbeat\r\n" not in data:
            data += await rp.raw.receive()
        rp.obj.terminator = b"\n"
        data = b""
        with anyio.fail_after(5):
            while b"heartbeat\nheartbeat\n" not in data:
                data += await rp.raw.receive()
