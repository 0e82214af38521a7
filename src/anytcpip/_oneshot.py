"""A one-shot event that can be awaited, and polled like a future, on any backend."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Generator
from typing import Any

import anyio

__all__ = ("OneShot",)

#: How long ``await`` waits on an object that nobody has started before it
#: raises or warns (seconds): long enough for ``tg.start_soon(obj.run)`` to
#: get going.
NOT_STARTED_GRACE = 1.0

_log = logging.getLogger(__name__)


class OneShot:
    """An awaitable, one-shot event: the type of ``start_task``, ``done_task``
    and ``connected_task``.

    It keeps the part of the :class:`asyncio.Future` interface that users of
    lsst.ts.tcpip rely on and works on every anyio backend:
    ``await x`` (waits until it is done, then returns None or raises the stored
    exception), ``x.done()``, ``x.result()``, ``x.exception()``,
    ``x.add_done_callback(fn)`` and ``x.cancelled()``, which is enough for
    :func:`asyncio.wait` (on Python 3.11 and later) and
    :func:`asyncio.wait_for`. It can be created outside an event loop. Only
    the object that owns it sets it; :meth:`cancel` does nothing.

    Awaiting ``start_task`` of an object nobody has started (no
    ``async with obj:`` and no ``obj.run`` in a task group) raises
    :exc:`RuntimeError` after about a second instead of waiting forever.
    Awaiting another (``connected_task``, ``done_task``) that early is
    legitimate (the object may be started later), so after that second a
    warning naming the fix is logged, once, and the wait goes on.
    """

    __slots__ = (
        "_callbacks",
        "_done",
        "_event",
        "_exception",
        "_name",
        "_started",
        "_warn_log",
    )

    def __init__(
        self,
        name: str = "",
        started: Callable[[], bool] | None = None,
        warn_log: logging.Logger | None = None,
    ) -> None:
        # warn_log: if given, an await before the owner started warns there
        # (once) instead of raising.
        self._warn_log = warn_log
        self._name = name
        self._done = False
        self._exception: BaseException | None = None
        self._event: anyio.Event | None = None
        # Tells whether the owner was started (None: nothing to check).
        self._started = started
        # Made on the first add_done_callback: most never get one, and an
        # empty list per OneShot is five more objects per connected pair for
        # the garbage collector to go through.
        self._callbacks: list[tuple[Callable[[OneShot], object], contextvars.Context]] | None = None

    def __repr__(self) -> str:
        state = "done" if self._done else "pending"
        return f"<OneShot {self._name or hex(id(self))} {state}>"

    def done(self) -> bool:
        """Return True once the event has happened (or failed)."""
        return self._done

    def result(self) -> None:
        """Return None if done, raise the stored exception if it failed.

        Raises
        ------
        RuntimeError
            If it is not done yet.
        """
        if not self._done:
            raise RuntimeError(f"{self!r} is not done yet")
        if self._exception is not None:
            raise self._exception
        return None

    def exception(self) -> BaseException | None:
        """Return the stored exception, or None.

        Raises
        ------
        RuntimeError
            If it is not done yet.
        """
        if not self._done:
            raise RuntimeError(f"{self!r} is not done yet")
        return self._exception

    async def wait(self) -> None:
        """Wait until done; then return None or raise the stored exception.

        Raises
        ------
        RuntimeError
            For ``start_task`` only: if the owner is not running and was not
            started within about a second (nothing would ever make it done).
            The message says how to start it.
        """
        if not self._done:
            if self._event is None:
                self._event = anyio.Event()
            started = self._started
            if started is not None and not started():
                with anyio.move_on_after(NOT_STARTED_GRACE):
                    await self._event.wait()
                if not self._done and not started():
                    message = (
                        f"{self._name or 'this OneShot'} will never be done unless its "
                        "object is started. anytcpip objects do not start themselves; use "
                        "`async with obj:`, `await task_group.start(obj.run)`, or (asyncio, "
                        "e.g. in IsolatedAsyncioTestCase) "
                        "`await anytcpip.start_in_background(obj)`"
                    )
                    log = self._warn_log
                    if log is not None:
                        # Warned once: later waits (and other waiters) go on quietly.
                        self._warn_log = None
                        self._started = None
                        log.warning("still waiting: %s", message)
                    elif self._started is not None:
                        raise RuntimeError(message)
            await self._event.wait()
        if self._exception is not None:
            raise self._exception

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()

    # A little more of the asyncio.Future interface, for asyncio.wait & co.

    def add_done_callback(
        self, fn: Callable[[OneShot], object], *, context: contextvars.Context | None = None
    ) -> None:
        """Call ``fn(self)`` once it is done (at once if it already is).

        Unlike :meth:`asyncio.Future.add_done_callback`, ``fn`` is called
        synchronously by whatever sets the event; an exception from it is
        logged and ignored.
        """
        ctx = context if context is not None else contextvars.copy_context()
        if self._done:
            self._call(fn, ctx)
        else:
            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append((fn, ctx))

    def remove_done_callback(self, fn: Callable[[OneShot], object]) -> int:
        """Remove every registration of ``fn``; return how many there were."""
        callbacks = self._callbacks
        if not callbacks:
            return 0
        kept = [(f, c) for f, c in callbacks if f != fn]
        self._callbacks = kept
        return len(callbacks) - len(kept)

    def cancel(self, msg: object = None) -> bool:
        """Do nothing and return False: only the owner decides when this is
        done. Close the owning object instead (``await obj.close()``)."""
        return False

    def cancelled(self) -> bool:
        """Return False: a OneShot is never cancelled."""
        return False

    def _call(self, fn: Callable[[OneShot], object], ctx: contextvars.Context) -> None:
        try:
            ctx.run(fn, self)
        except Exception:
            _log.exception("done callback %r of %r failed", fn, self)

    # Used by the owning object only.

    def set(self) -> None:
        """Mark it done (no effect if it already is)."""
        if self._done:
            return
        self._done = True
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for fn, ctx in callbacks:
                self._call(fn, ctx)

    def set_exception(self, exc: BaseException) -> None:
        """Mark it failed with ``exc`` (no effect if it is already done)."""
        if self._done:
            return
        self._exception = exc
        self.set()
