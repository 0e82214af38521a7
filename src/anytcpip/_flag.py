"""A one-way flag with the interface of :class:`anyio.Event`, cheap while
nobody waits on it.

Every connection and every client or server holds several one-way signals
(lost, done, released, close requested, ...). Most are set, or checked,
without anybody ever waiting for them, yet an :class:`anyio.Event` costs an
asyncio Event and its deque (trio: an Event and its ParkingLot) from the start:
with many connections in one process those add up to kilobytes per connection.
A :class:`Flag` is a boolean and, once somebody waits, a list of its waiters:
a bare loop future each on asyncio (what :class:`asyncio.Event` does inside),
the waiting task itself on trio, an :class:`anyio.Event` on any other backend.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any

import anyio
import anyio.lowlevel

__all__ = ("Flag",)


class Flag:
    """A one-shot event, set once and never cleared (like :class:`anyio.Event`).

    ``set()`` and ``is_set()`` work outside an event loop; ``wait()`` returns at
    once (after a checkpoint, as :meth:`anyio.Event.wait` does) if the flag is
    set, or waits until it is; any number of tasks may wait, and a waiter that
    is cancelled leaves the others waiting. Use it from one event loop only.
    """

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        # What set() wakes: asyncio futures, trio tasks or anyio Events.
        self._waiters: list[Any] | None = None

    def __repr__(self) -> str:
        return f"<Flag {'set' if self._set else 'unset'}>"

    def is_set(self) -> bool:
        """Return True once :meth:`set` was called."""
        return self._set

    def set(self) -> None:
        """Set the flag and wake every waiter (no effect if it is set)."""
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        if waiters:
            for waiter in waiters:
                if isinstance(waiter, asyncio.Future):
                    if not waiter.done():
                        waiter.set_result(None)
                elif isinstance(waiter, anyio.Event):
                    waiter.set()
                else:
                    sys.modules["trio"].lowlevel.reschedule(waiter)

    async def wait(self) -> None:
        """Wait until the flag is set (a checkpoint if it already is)."""
        if self._set:
            await anyio.lowlevel.checkpoint()
            return
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        # trio first: in trio's guest mode an asyncio loop is running too.
        trio = sys.modules.get("trio")
        task = None
        if trio is not None:
            lowlevel = trio.lowlevel
            try:
                task = lowlevel.current_task()
            except RuntimeError:
                task = None
        if task is not None:
            await _park_trio_task(lowlevel, waiters, task)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            # A future of its own per waiter: cancelling one waiter's task
            # cancels its future only.
            future = loop.create_future()
            waiters.append(future)
            try:
                await future
            finally:
                if not self._set:
                    waiters.remove(future)
            return
        event = anyio.Event()
        waiters.append(event)
        try:
            await event.wait()
        finally:
            if not self._set:
                waiters.remove(event)


def _park_trio_task(lowlevel: Any, waiters: list[Any], task: Any) -> Awaitable[Any]:
    """Put the current trio task (``task``) in ``waiters``; return the wait
    (parked until rescheduled) for the caller to await.

    Apart from :meth:`Flag.wait` so that the closure's cells are made for trio
    waits only, not in every wait on asyncio: those are long-lived (tasks
    wait for the whole life of a connection), and the garbage collector goes
    through them again and again. Not a coroutine: no frame of its own.
    """
    waiters.append(task)

    def abort(_: object) -> Any:
        # Cancelled: not woken by set() (which empties the list first).
        waiters.remove(task)
        return lowlevel.Abort.SUCCEEDED

    wait: Awaitable[Any] = lowlevel.wait_task_rescheduled(abort)
    return wait
