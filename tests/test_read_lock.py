"""The receive side's lock (``anytcpip._read_lock.ReadLock``): order, handover
and cancellation, on every backend."""

from __future__ import annotations

import anyio
import pytest

from anytcpip._read_lock import ReadLock
from helpers import deadline

pytestmark = pytest.mark.anyio


@deadline(5)
async def test_free_lock_is_taken_and_released() -> None:
    lock = ReadLock()
    assert not lock.locked()
    async with lock:
        assert lock.locked()
    assert not lock.locked()


@deadline(5)
async def test_waiters_get_it_in_arrival_order() -> None:
    lock = ReadLock()
    order: list[int] = []
    queued = [anyio.Event() for _ in range(5)]

    async def take(index: int) -> None:
        queued[index].set()
        async with lock:
            order.append(index)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        async with lock:
            for index in range(5):
                tg.start_soon(take, index)
                await queued[index].wait()
            # Nobody gets in while it is held.
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert order == []
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()


@deadline(5)
async def test_release_hands_over_so_nobody_jumps_the_queue() -> None:
    lock = ReadLock()
    got: list[str] = []
    waiting = anyio.Event()

    async def waiter() -> None:
        waiting.set()
        async with lock:
            got.append("waiter")

    async with anyio.create_task_group() as tg:
        async with lock:
            tg.start_soon(waiter)
            await waiting.wait()
        # Released with a waiter: it is still held (by the waiter, which has
        # not run yet), so a newcomer queues behind it.
        assert lock.locked()
        async with lock:
            got.append("newcomer")
    assert got == ["waiter", "newcomer"]


@deadline(5)
async def test_cancelled_waiter_leaves_the_queue() -> None:
    lock = ReadLock()
    got: list[int] = []
    queued = anyio.Event()

    async def cancelled_waiter(scope_box: list[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            scope_box.append(scope)
            queued.set()
            async with lock:
                got.append(1)  # never
        got.append(-1)

    async def second() -> None:
        async with lock:
            got.append(2)

    box: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as tg:
        async with lock:
            tg.start_soon(cancelled_waiter, box)
            await queued.wait()
            tg.start_soon(second)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            box[0].cancel()
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
    assert got == [-1, 2]
    assert not lock.locked()


@deadline(5)
async def test_waiter_cancelled_after_the_handover_passes_it_on() -> None:
    lock = ReadLock()
    got: list[str] = []
    queued = anyio.Event()
    scopes: list[anyio.CancelScope] = []

    async def first() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            queued.set()
            async with lock:
                got.append("first")
                await anyio.lowlevel.checkpoint()
                got.append("first, after a checkpoint")  # never: cancelled
        got.append("first cancelled")

    async def second() -> None:
        async with lock:
            got.append("second")

    async with anyio.create_task_group() as tg:
        async with lock:
            tg.start_soon(first)
            await queued.wait()
            tg.start_soon(second)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
        # Released: handed to `first`, which is cancelled before it runs.
        # Either the handover or its first checkpoint sees the cancellation;
        # either way the lock reaches `second`.
        scopes[0].cancel()
    assert got[-2:] == ["first cancelled", "second"]
    assert "first, after a checkpoint" not in got
    assert not lock.locked()


@deadline(5)
async def test_error_inside_releases() -> None:
    lock = ReadLock()
    with pytest.raises(ValueError, match="boom"):
        async with lock:
            raise ValueError("boom")
    assert not lock.locked()
