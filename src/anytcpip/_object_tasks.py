"""The tasks an object starts for its user: ``start_soon`` (until close) and
``start_connection_soon`` (while the current connection lasts), both guarded
(an exception is logged and ends only that task); a base of
:class:`~anytcpip._lifecycle.Lifecycle`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.abc

from ._connection import Connection
from ._flag import Flag
from ._serving import ConnectionTasks, current_owner

__all__ = ("ObjectTasks",)


class ObjectTasks:
    """``start_soon`` and ``start_connection_soon``.

    Uses (set by the subclass): ``log``, ``_inner`` (the supervisor's task
    group), ``_close_requested`` and ``_conn_tasks``.
    """

    log: logging.Logger
    _inner: anyio.abc.TaskGroup | None
    _close_requested: Flag | None
    _conn_tasks: tuple[Connection, ConnectionTasks] | None

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any, name: str = "") -> None:
        """Run ``await func(*args)`` in this object's task group until
        :meth:`close`: the structured replacement for :func:`asyncio.create_task`
        (works on every backend).

        The task is cancelled when the object closes. An exception from it
        (other than cancellation) is logged, like a read-loop error, and ends
        only that task. Call it from any task while the object runs (from a
        connect callback, a command handler, or the code that runs the object).

        Raises
        ------
        RuntimeError
            If the object is not running (not started yet, or closed).
        """
        group = self._inner
        if group is None or self._closing_down_requested():
            raise RuntimeError(
                f"{self!r} is not running: start_soon needs a started object "
                "(`async with obj:` or `await task_group.start(obj.run)`)"
            )
        group.start_soon(self._guarded, func, args, name or _name_of(func), name=name or None)

    def start_connection_soon(
        self, func: Callable[..., Awaitable[Any]], *args: Any, name: str = ""
    ) -> None:
        """Run ``await func(*args)`` while the current connection lasts: the
        task is cancelled when the connection is lost or closed (before the
        next client of a server is served), and at the latest by :meth:`close`.

        The replacement for ``asyncio.create_task`` in a connect callback
        (call it when ``self.connected`` is True), with no task to cancel in
        the disconnect callback. Errors are logged as for :meth:`start_soon`.
        After a peer's half-close it may also be called while the connection
        is still writable (within the grace, see the guide): the task may
        answer, and the grace does not end before it has, at the latest
        ``HALF_CLOSE_GRACE`` (0.1 s) after the last write.

        Raises
        ------
        ConnectionError
            If not connected.
        """
        entry = self._conn_tasks
        # Also after a peer's half-close, while the connection is writable: the
        # task may answer the peer's last request.
        if entry is None or not entry[0].writable:
            raise ConnectionError("not connected: start_connection_soon needs a connection")
        conn = entry[0]
        conn.tasks_running += 1
        entry[1].start_soon(
            self._guarded_connection_task,
            conn,
            func,
            args,
            name or _name_of(func),
            name=name or None,
        )

    async def _guarded_connection_task(
        self,
        conn: Connection,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        label: str,
    ) -> None:
        try:
            await self._guarded(func, args, label)
        finally:
            # After the peer's end-of-stream, the connection stays writable
            # (within the grace) until its last task ended.
            conn.task_ended()

    async def _guarded(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], label: str
    ) -> None:
        current_owner.set(self)
        try:
            await func(*args)
        except Exception:
            self.log.exception("task %s failed", label)

    def _closing_down_requested(self) -> bool:
        return self._close_requested is not None and self._close_requested.is_set()


def _name_of(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__qualname__", None) or func)
