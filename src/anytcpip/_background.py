"""Running an object in the background on asyncio, for code (such as
``unittest.IsolatedAsyncioTestCase`` tests) that starts an object in one task
and closes it in another."""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from ._base import BaseClientOrServer

__all__ = ("run_in_background", "start_in_background")

_T = TypeVar("_T", bound=BaseClientOrServer)

# Keeps each host task alive while it runs (asyncio holds only weak references).
_hosts: weakref.WeakKeyDictionary[BaseClientOrServer, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


async def start_in_background(obj: _T) -> _T:
    """Start ``obj`` in a task of its own and return it once it is connected
    (client) or listening (server); ``await obj.close()`` ends it, from any
    task. asyncio only.

    This is the replacement for ts_tcpip's ``obj = X(...); await
    obj.start_task`` where the object must outlive the task that started it:
    ``asyncSetUp`` and ``asyncTearDown`` of
    :class:`unittest.IsolatedAsyncioTestCase` run in different tasks (Python
    3.11 and later), and so do a CSC's start and close. With structured
    concurrency use ``async with obj:`` or ``await task_group.start(obj.run)``
    instead; they work on every backend.

    If the event loop closes first (the test case ends without ``close()``),
    the object is closed as the task is cancelled.

    Raises
    ------
    OSError
        If it could not connect or listen (nothing is left running).
    RuntimeError
        If not running on asyncio, or ``obj`` was already started.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "start_in_background works on asyncio only; on trio use `async with obj:` or "
            "`await nursery.start(obj.run)`"
        ) from None
    if obj._started:
        raise RuntimeError(f"{obj!r} was already started; make a new one")
    task = loop.create_task(obj.run(), name=f"anytcpip host of {obj!r}")
    _hosts[obj] = task
    task.add_done_callback(lambda t: _hosts.pop(obj, None))
    try:
        await obj.start_task
    except BaseException:
        if not task.done():
            task.cancel()
        # Collect the task's own outcome so that asyncio does not log it.
        await asyncio.gather(task, return_exceptions=True)
        raise
    return obj


@asynccontextmanager
async def run_in_background(obj: _T) -> AsyncIterator[_T]:
    """``async with run_in_background(obj):`` starts ``obj`` with
    :func:`start_in_background` and closes it on exit, and the exit may run
    in another task than the entry: use it with
    :meth:`unittest.IsolatedAsyncioTestCase.enterAsyncContext` from
    ``asyncSetUp``. asyncio only.

    Raises
    ------
    OSError
        If it could not connect or listen.
    RuntimeError
        As for :func:`start_in_background`.
    """
    await start_in_background(obj)
    try:
        yield obj
    finally:
        await obj.close()
        task = _hosts.get(obj)
        if task is not None and sys.exc_info()[0] is None:
            await asyncio.gather(task, return_exceptions=True)
