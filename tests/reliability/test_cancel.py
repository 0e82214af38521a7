"""Cancellation during reads, writes and close (docs/reliability.rst R21-R23)."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .harness import TEST_TIMEOUT, get_seed, open_pair, open_plain
from .payloads import ShortStruct


@pytest.mark.parametrize("role", ["client", "server"])
@deadline(TEST_TIMEOUT)
async def test_read_cancel_fuzz(log: logging.Logger, role: str) -> None:
    """R21: every read (read_str, readuntil, readexactly, read_into,
    read_json) runs under move_on_after(random 0..2 ms) and is retried until it
    succeeds, behind a 7-byte slicer. The values read equal the values sent
    exactly (I1), and the connection stays up: conn=True, C=[T]."""
    seed = get_seed()
    rng = random.Random(seed)
    n = 240
    async with open_pair(log, seed=seed) as pair:
        obj, peer, cb = pair.obj(role), pair.peer(role), pair.cb(role)
        toxics = pair.proxy.down if role == "client" else pair.proxy.up
        toxics.slice_max = 7
        toxics.slice_delay = 0.0003
        expected: list[Any] = []
        kinds: list[int] = []
        for i in range(n):
            kind = i % 5
            kinds.append(kind)
            if kind == 0:
                expected.append(f"line {i} " + "é" * rng.randint(0, 20))
            elif kind == 1:
                expected.append(b"until %d|" % i)
            elif kind == 2:
                expected.append(rng.randbytes(rng.randint(1, 60)))
            elif kind == 3:
                expected.append((i, rng.randint(-(2**40), 2**40), rng.random()))
            else:
                expected.append({"i": i, "x": [rng.random(), "ü"]})

        async def send() -> None:
            for kind, value in zip(kinds, expected, strict=True):
                if kind == 0:
                    await peer.write_str(value)
                elif kind in (1, 2):
                    await peer.write(value)
                elif kind == 3:
                    await peer.write_from(ShortStruct(seq=value[0], value=value[1], ratio=value[2]))
                else:
                    await peer.write_json(value)

        got: list[Any] = []
        cancellations = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            for kind, value in zip(kinds, expected, strict=True):
                struct = ShortStruct()
                read = _reader(obj, kind, value, struct)
                while True:
                    with anyio.move_on_after(rng.random() * 0.002) as scope:
                        result = await read()
                    if not scope.cancelled_caught:
                        break
                    cancellations += 1
                if kind == 3:
                    result = (struct.seq, struct.value, struct.ratio)
                got.append(result)
        assert got == expected, f"seed={seed}"
        assert cancellations > 0, f"seed={seed}: nothing was cancelled"
        assert obj.connected
        assert cb.states == [True]


def _reader(
    obj: anytcpip.BaseClientOrServer, kind: int, value: Any, struct: ShortStruct
) -> Callable[[], Awaitable[Any]]:
    if kind == 0:
        return obj.read_str
    if kind == 1:
        return lambda: obj.readuntil(b"|")
    if kind == 2:
        return lambda: obj.readexactly(len(value))
    if kind == 3:
        return lambda: obj.read_into(struct)
    return obj.read_json


def _parse_messages(data: bytes) -> list[tuple[bytes, int]]:
    """Split ``tag:len:payload`` messages; assert none is torn."""
    out: list[tuple[bytes, int]] = []
    pos = 0
    while pos < len(data):
        tag_end = data.index(b":", pos)
        len_end = data.index(b":", tag_end + 1)
        tag = data[pos:tag_end]
        length = int(data[tag_end + 1 : len_end])
        payload = data[len_end + 1 : len_end + 1 + length]
        assert len(payload) == length, f"torn message {tag!r}"
        assert payload == tag[:1] * length, f"corrupt message {tag!r}"
        out.append((tag, length))
        pos = len_end + 1 + length
    return out


def _message(tag: bytes, length: int) -> bytes:
    return tag + b":%d:" % length + tag[:1] * length


@pytest.mark.parametrize("role", ["client", "server"])
@deadline(TEST_TIMEOUT)
async def test_write_cancel_poisons(log: logging.Logger, role: str) -> None:
    """R22 (our design: writes are atomic). The peer reads nothing (small
    receive buffer). A 4 MiB write under a 50 ms deadline is queued whole at
    once (not cancelled); 1 MiB writes follow until one waits for
    backpressure, is cancelled, and so queued nothing. When the peer reads,
    it gets exactly what was queued and then NEXT, each message whole: no torn
    frame, no duplicate, nothing of the cancelled write; the connection stays
    up (C=[T])."""
    size = 4 << 20
    async with open_plain(role, log, rcvbuf=65536) as pp:
        with anyio.move_on_after(0.05) as scope:
            await pp.obj.write(_message(b"A", size))
        assert not scope.cancelled_caught, "a write with an empty queue waited"
        sent = [(b"A", size)]
        cancelled_tag = b""
        for i in range(64):
            tag = b"B%d" % i
            with anyio.move_on_after(0.05) as scope:
                await pp.obj.write(_message(tag, 1 << 20))
            if scope.cancelled_caught:
                cancelled_tag = tag
                break
            sent.append((tag, 1 << 20))
        assert cancelled_tag, "no write ever waited for backpressure"
        assert pp.obj.connected
        sent.append((b"NEXT", 4))
        received = bytearray()
        expected_len = sum(len(_message(tag, n)) for tag, n in sent)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pp.obj.write, _message(b"NEXT", 4))
            while len(received) < expected_len:
                chunk = await pp.recv(1 << 20)
                assert chunk, "EOF before everything arrived"
                received += chunk
        assert _parse_messages(bytes(received)) == sent
        assert cancelled_tag not in received
        assert pp.cb.states == [True]
        assert pp.obj.connected


@pytest.mark.parametrize("form", ["scoped", "owned"])
@pytest.mark.parametrize("role", ["client", "server"])
@deadline(TEST_TIMEOUT)
async def test_close_under_cancel(log: logging.Logger, role: str, form: str) -> None:
    """R23: the task group that owns a connected Client/OneClientServer is
    cancelled, so the close runs in a cancelled scope. Everything is released
    anyway (fds: autouse check; tasks: none left over), done_task is done, the
    callbacks strictly alternate and end with False."""
    tasks_before = len(anyio.get_running_tasks())
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, name="outer"
    ) as outer:
        cb = ConnectRecorder(timeout=5.0)
        if role == "client":
            obj: anytcpip.BaseClientOrServer = anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=outer.port, log=log, connect_callback=cb
            )
        else:
            obj = anytcpip.OneClientServer(
                host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb
            )
        connected = anyio.Event()

        async def scoped() -> None:
            async with obj:
                if role == "server":
                    peer = anytcpip.Client(
                        host=anytcpip.LOCALHOST_IPV4,
                        port=obj.port,  # type: ignore[attr-defined]
                        log=log,
                    )
                    async with peer:
                        await cb.wait_count(1)
                        connected.set()
                        await anyio.sleep_forever()
                await cb.wait_count(1)
                connected.set()
                await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            if form == "scoped":
                tg.start_soon(scoped)
            else:
                await tg.start(obj.run)
                if role == "server":
                    peer = anytcpip.Client(
                        host=anytcpip.LOCALHOST_IPV4,
                        port=obj.port,  # type: ignore[attr-defined]
                        log=log,
                    )
                    await tg.start(peer.run)
                await cb.wait_count(1)
                connected.set()
            await connected.wait()
            tg.cancel_scope.cancel()
        assert obj.done_task.done()
        assert not obj.connected
        assert cb.states == [True, False], cb.states
    for _ in range(3):
        await anyio.sleep(0.01)
    assert len(anyio.get_running_tasks()) == tasks_before


@pytest.mark.parametrize("role", ["client", "server"])
@deadline(TEST_TIMEOUT)
async def test_cancelled_close_still_closes(log: logging.Logger, role: str) -> None:
    """R23 (trio check): close() called in an already-cancelled scope still
    closes: conn=False, sbc=False, C=[T,F]; the peer sees the hangup."""
    async with open_pair(log) as pair:
        obj, peer, cb = pair.obj(role), pair.peer(role), pair.cb(role)
        with anyio.CancelScope() as scope:
            scope.cancel()
            if role == "client":
                await pair.client.close()
            else:
                await pair.server.close_client()
        assert not obj.connected
        assert not obj.should_be_connected
        assert cb.states == [True, False]
        other = pair.client_cb if role == "server" else pair.server_cb
        await other.wait_count(2)
        assert not peer.connected
        if role == "client":
            assert pair.client.done_task.done()
