"""The lazy one-way flag (``anytcpip._flag.Flag``): the semantics of
:class:`anyio.Event` on every backend, with no event made until a wait has to
wait."""

from __future__ import annotations

import anyio
import pytest

from anytcpip._flag import Flag
from helpers import NET_TIMEOUT, deadline


def test_set_and_is_set_need_no_event_loop() -> None:
    flag = Flag()
    assert not flag.is_set()
    flag.set()
    assert flag.is_set()
    flag.set()  # idempotent
    assert flag.is_set()
    assert "set" in repr(flag)


@deadline(NET_TIMEOUT)
async def test_wait_after_set_returns_at_once_but_is_a_checkpoint() -> None:
    flag = Flag()
    flag.set()
    with anyio.fail_after(NET_TIMEOUT):
        await flag.wait()
    # Like anyio.Event.wait on a set event: a checkpoint, so a pending
    # cancellation is honoured.
    with anyio.CancelScope() as scope:
        scope.cancel()
        await flag.wait()
        pytest.fail("a wait on a set flag did not checkpoint")  # pragma: no cover
    assert scope.cancelled_caught
    # Nobody had to wait: nothing was made for waiters.
    assert flag._waiters is None


@deadline(NET_TIMEOUT)
async def test_set_after_wait_wakes_the_waiter() -> None:
    flag = Flag()
    woken = anyio.Event()

    async def waiter() -> None:
        await flag.wait()
        woken.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not woken.is_set()
        flag.set()
        with anyio.fail_after(NET_TIMEOUT):
            await woken.wait()
    assert flag.is_set()


@deadline(NET_TIMEOUT)
async def test_several_waiters_are_all_woken() -> None:
    flag = Flag()
    woken: list[int] = []

    async def waiter(index: int) -> None:
        await flag.wait()
        woken.append(index)

    async with anyio.create_task_group() as tg:
        for index in range(5):
            tg.start_soon(waiter, index)
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        flag.set()
    assert sorted(woken) == list(range(5))
    # A wait after the set returns too.
    with anyio.fail_after(NET_TIMEOUT):
        await flag.wait()


@deadline(NET_TIMEOUT)
async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    flag = Flag()
    woken: list[str] = []

    async def waiter(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            await flag.wait()
            woken.append(name)

    cancelled = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, "cancelled", cancelled)
        tg.start_soon(waiter, "kept", anyio.CancelScope())
        await anyio.wait_all_tasks_blocked()
        cancelled.cancel()
        await anyio.wait_all_tasks_blocked()
        assert cancelled.cancelled_caught
        assert not flag.is_set()
        # Another waiter after the cancellation shares the same wait.
        tg.start_soon(waiter, "late", anyio.CancelScope())
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        flag.set()
    assert sorted(woken) == ["kept", "late"]


@deadline(NET_TIMEOUT)
async def test_a_waiter_cancelled_alone_does_not_set_the_flag() -> None:
    flag = Flag()
    with anyio.move_on_after(0.01) as scope:
        await flag.wait()
    assert scope.cancelled_caught
    assert not flag.is_set()
    # Still usable: a later set wakes a later waiter.
    async with anyio.create_task_group() as tg:
        tg.start_soon(flag.wait)
        await anyio.wait_all_tasks_blocked()
        flag.set()
    assert flag.is_set()
