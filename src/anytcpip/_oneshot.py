"""A one-shot event that can be awaited, and polled like a future, on any backend."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import anyio

__all__ = ("OneShot",)


class OneShot:
    """An awaitable, one-shot event: the type of ``start_task``, ``done_task``
    and ``connected_task``.

    It keeps the part of the :class:`asyncio.Future` interface that users of
    lsst.ts.tcpip rely on and works on every anyio backend:
    ``await x`` (waits until it is done, then returns None or raises the stored
    exception), ``x.done()``, ``x.result()``, ``x.exception()``. It can be created
    outside an event loop. Only the object that owns it sets it.
    """

    __slots__ = ("_done", "_event", "_exception", "_name")

    def __init__(self, name: str = "") -> None:
        self._name = name
        self._done = False
        self._exception: BaseException | None = None
        self._event: anyio.Event | None = None

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
        """Wait until done; then return None or raise the stored exception."""
        if not self._done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        if self._exception is not None:
            raise self._exception

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()

    # Used by the owning object only.

    def set(self) -> None:
        """Mark it done (no effect if it already is)."""
        if self._done:
            return
        self._done = True
        if self._event is not None:
            self._event.set()

    def set_exception(self, exc: BaseException) -> None:
        """Mark it failed with ``exc`` (no effect if it is already done)."""
        if self._done:
            return
        self._exception = exc
        self.set()
