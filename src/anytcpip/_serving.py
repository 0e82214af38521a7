"""Serving one connection, from its connect callback to its close
(:class:`ConnectionServing`, a base of :class:`~anytcpip._lifecycle.Lifecycle`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ClassVar, cast

import anyio
import anyio.abc

from ._connection import HALF_CLOSE_GRACE, Connection
from ._disconnect import DisconnectKind, DisconnectReason
from ._flag import Flag
from ._transport_asyncio import AsyncioConnection

__all__ = ("ConnectionServing", "ConnectionTasks", "current_owner")

#: The object whose background task is running (inherited by the tasks it
#: starts); lets close() know it was called from one of the object's own tasks.
current_owner: ContextVar[object | None] = ContextVar("anytcpip_owner", default=None)


class _NoTasks:
    """In place of the transport's task group when its connection runs no task
    of its own (the asyncio fast path): a task group costs a kilobyte per
    connection. Starting a task in it is a bug."""

    __slots__ = ()

    async def __aenter__(self) -> anyio.abc.TaskGroup:
        return cast(anyio.abc.TaskGroup, self)

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    @property
    def cancel_scope(self) -> _NoTasks:
        return self

    def cancel(self) -> None:
        pass

    def start_soon(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("this connection's transport runs no task")


_NO_TASKS: Any = _NoTasks()


class ConnectionTasks:
    """The tasks of one connection (read loop, heartbeats,
    ``start_connection_soon``; on trio the pump and flusher too): run in the
    object's task group, all cancelled together when the connection ends.

    In place of a task group per connection: that costs a kilobyte or two per
    connection, and leaving it, even empty, a pass of the event loop while the
    peer waits for our end-of-stream. Each task is cancelled through the
    handle anyio's ``start_soon`` returns, whose cancel scope the task runs
    in anyway (no second scope per task).
    """

    __slots__ = ("_cancelled", "_ended", "_group", "_handles", "running")

    def __init__(self, group: anyio.abc.TaskGroup) -> None:
        self._group = group
        # Of the tasks that have not ended; made with the first task (a
        # client's connection on asyncio has none).
        self._handles: set[anyio.TaskHandle[Any]] | None = None
        self._cancelled = False
        #: How many were started and have not ended.
        self.running = 0
        self._ended: Flag | None = None

    def start_soon(
        self, func: Callable[..., Awaitable[Any]], *args: Any, name: object = None
    ) -> None:
        """Start ``func(*args)``: as :meth:`anyio.abc.TaskGroup.start_soon`."""
        # The task learns its handle here, before it first runs (and is
        # counted only once started: a group that has finished raises).
        box: list[anyio.TaskHandle[Any]] = []
        handle = self._group.start_soon(self._run, func, args, box, name=name)
        self.running += 1
        if self._cancelled:
            handle.cancel()
        else:
            box.append(handle)
            handles = self._handles
            if handles is None:
                handles = self._handles = set()
            handles.add(handle)

    async def _run(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        box: list[anyio.TaskHandle[Any]],
    ) -> None:
        try:
            await func(*args)
        finally:
            if box and self._handles is not None:
                self._handles.discard(box.pop())
            self.running -= 1
            if not self.running and self._ended is not None:
                self._ended.set()

    def cancel(self) -> None:
        """Cancel every task, and any started from now on."""
        self._cancelled = True
        if self._handles is not None:
            for handle in self._handles:
                handle.cancel()

    async def wait_ended(self) -> None:
        """Wait until every task started has ended (no checkpoint if none runs)."""
        if self.running:
            if self._ended is None or self._ended.is_set():
                self._ended = Flag()
            await self._ended.wait()

    # As a task group whose block ends by cancelling it (the transport's):
    # ``async with tasks:`` cancels them all on leaving, and waits for them.

    async def __aenter__(self) -> ConnectionTasks:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()
        with anyio.CancelScope(shield=True):
            await self.wait_ended()

    @property
    def cancel_scope(self) -> ConnectionTasks:
        """Itself: ``cancel_scope.cancel()`` cancels the tasks, as for a group."""
        return self


class ConnectionServing:
    """The per-connection task: callbacks around the connection, its tasks
    (:class:`ConnectionTasks`), the half-open grace, and the bounded close.

    Uses (set by the subclass): ``log``, ``linger``, ``should_be_connected``,
    ``_conn``, ``_conn_tasks``, ``_inner`` (the task group the serving task
    runs in), ``_was_connected``, ``_disconnect_reason`` and
    ``call_connect_callback``.
    """

    log: logging.Logger
    linger: float
    should_be_connected: bool
    _conn: Connection | None
    _conn_tasks: tuple[Connection, ConnectionTasks] | None
    _inner: anyio.abc.TaskGroup | None
    _was_connected: bool
    _disconnect_reason: DisconnectReason | None

    #: Whether the serving task receives itself where the transport can
    #: (trio), instead of a pump task. Clients do: a peer's hangup then wakes
    #: the disconnect callback without another scheduler pass. Servers do
    #: not: their close would cancel that receive in the serving task, and
    #: the cancellation's cost came before the peer saw the close (about
    #: 0.3 ms later on trio).
    _receive_in_serving_task: ClassVar[bool] = False

    async def call_connect_callback(self) -> None:
        """Call the connect callback if ``connected`` changed since the last call."""
        raise NotImplementedError  # pragma: no cover - BaseClientOrServer's

    # --------------------------------------------------- per-connection task

    async def _call_connect_callback_guarded(self) -> bool:
        """:meth:`call_connect_callback`, which a subclass may override: an
        exception from the override is logged (the server keeps serving).
        Returns False if it raised."""
        try:
            await self.call_connect_callback()
        except Exception:
            self.log.exception("call_connect_callback failed")
            return False
        return True

    def _on_connected(self, tasks: ConnectionTasks) -> None:
        """Hook: the connection is up and the callback has run."""

    def _on_disconnected(self) -> None:
        """Hook: the connection was lost or closed; the callback is next."""

    def _record_disconnect(self, conn: Connection, *, log: bool = True) -> None:
        """Keep why ``conn`` ended, before its callback; and log it (one
        line) unless ``log`` is False (see :meth:`_log_disconnect`)."""
        reason = conn.disconnect_reason
        if reason is None:  # pragma: no cover - every end records a reason
            reason = DisconnectReason(DisconnectKind.CLOSED_HERE, conn.peer)
        self._disconnect_reason = reason
        if log:
            self.log.info("disconnected from %s: %s", conn.peer or "?", reason)

    def _log_disconnect(self, conn: Connection) -> None:
        """After a peer's half-close: the reason without what was read in the
        grace (see ``HalfOpen.settle_unread``), kept and logged (one line)."""
        before = conn.disconnect_reason
        reason = conn.settle_unread()
        if reason is not None and self._disconnect_reason is before:
            self._disconnect_reason = reason
        self.log.info("disconnected from %s: %s", conn.peer or "?", self._disconnect_reason)

    async def _serve_connection(
        self,
        conn: Connection,
        stream_to_wrap: anyio.abc.ByteStream | None,
        previous: Connection | None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run one connection from callback to callback, then close it."""
        current_owner.set(self)
        conn.serving_task = anyio.get_current_task().id
        deadline = float("inf")
        half_open = False
        try:
            if previous is not None:
                # A new client: the previous one, if half-closed, is done. Its
                # tasks have ended and its last callback ran; what it was sent
                # may still be draining in its own task.
                previous.end_half_open()
                await previous.released.wait()
                # Nobody reads the previous client any more.
                previous.buffer.clear()
                previous = None
            if stream_to_wrap is not None:
                # From here on _wrap_until_closed closes it on failure.
                to_wrap, stream_to_wrap = stream_to_wrap, None
                wrapped = await self._wrap_until_closed(conn, to_wrap)
                if wrapped is None:
                    return
                conn.attach(wrapped)
            if conn.closed_here:
                # Closed at this end (close(), close_client()) while it waited
                # for the connection before it: never served.
                return
            # The transport's own tasks (pump, flusher), in the object's
            # task group like the connection's (a task group per connection
            # costs kilobytes); the asyncio fast path runs none.
            assert self._inner is not None  # the group this task is in
            fast = isinstance(conn, AsyncioConnection)
            # (Either stands in for the task group start_sending and
            # start_receiving take: they only start tasks in it.)
            group: Any = _NO_TASKS if fast else ConnectionTasks(self._inner)
            async with group as tg:
                conn.start_sending(tg)
                self._conn = conn
                self.should_be_connected = True
                # The connection's own tasks (read loop, heartbeats, and
                # start_connection_soon) all end before the next client is
                # served.
                tasks = ConnectionTasks(self._inner)
                try:
                    self._conn_tasks = (conn, tasks)
                    if not await self._call_connect_callback_guarded():
                        # An override failed on connect: drop this client.
                        conn.close_here()
                    here = False
                    if conn.monitor and conn.is_open:
                        here = self._receive_in_serving_task and conn.receives_in_serving_task
                        if not here:
                            conn.start_receiving(tg)
                    self._on_connected(tasks)
                    task_status.started()
                    if here:
                        # This task is the pump (trio): one task fewer, and
                        # the callback below runs in the step that found the
                        # end, without another pass of the scheduler.
                        await conn.receive_here()
                    if not conn.lost.is_set():
                        await conn.lost.wait()
                    # After a half-close, logged once the grace is over.
                    half_open = conn.writable
                    self._record_disconnect(conn, log=not half_open)
                    self._on_disconnected()
                    await self._call_connect_callback_guarded()
                    if conn.writable:
                        # The peer half-closed: what we still write (the read
                        # loop answering its last requests) goes out.
                        await conn.linger_half_open(HALF_CLOSE_GRACE)
                    if half_open:
                        half_open = False
                        self._log_disconnect(conn)
                    if tasks.running:
                        # Let a reader woken by the close finish what it was
                        # doing.
                        await anyio.lowlevel.checkpoint()
                finally:
                    tasks.cancel()
                    with anyio.CancelScope(shield=True):
                        await tasks.wait_ended()
                conn.released.set()
                deadline = anyio.current_time() + self.linger
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.linger):
                    await conn.wait_flushed()
                    await conn.half_close_before_teardown()
                tg.cancel_scope.cancel()
        except Exception as exc:
            # Only a failed TLS handshake gets here (anything else is a bug and
            # propagates through the task group).
            if not isinstance(exc, OSError | anyio.BrokenResourceError | anyio.EndOfStream):
                raise
            self.log.warning("could not set up the connection from %s: %r", conn.peer, exc)
            conn.set_error(exc)
        finally:
            if half_open:
                # Cancelled before the grace was over.
                self._log_disconnect(conn)
            if stream_to_wrap is not None:
                # Cancelled while it waited for the connection before it.
                with anyio.CancelScope(shield=True):
                    await anyio.aclose_forcefully(stream_to_wrap)
            if self._conn_tasks is not None and self._conn_tasks[0] is conn:
                self._conn_tasks = None
            if deadline == float("inf"):
                deadline = anyio.current_time() + self.linger
            if conn.is_open:
                # Cancelled (the owner's task group, say) while serving: the
                # connection is closed at this end now.
                conn.close_here()
            if self._conn is conn and self._was_connected:
                # Cancelled before the disconnect callback ran: run it now,
                # shielded but bounded, so callbacks still alternate.
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.linger):
                    self._record_disconnect(conn)
                    self._on_disconnected()
                    await self._call_connect_callback_guarded()
                self._was_connected = False
            # Released before the drain below, which a peer that never closes
            # holds for up to linger: close_client() and the next client do
            # not wait for it.
            conn.released.set()
            await conn.finish_close(deadline)

    async def _wrap_stream(self, stream: anyio.abc.ByteStream) -> anyio.abc.ByteStream:
        """Hook: wrap an accepted stream (TLS) before it is used."""
        return stream

    async def _wrap_until_closed(
        self, conn: Connection, stream: anyio.abc.ByteStream
    ) -> anyio.abc.ByteStream | None:
        """``_wrap_stream(stream)``, given up (None, ``stream`` closed) as soon
        as ``conn`` is closed at this end, so that closing is not held up by
        a handshake. A failed handshake raises, with ``stream`` closed."""
        wrapped: anyio.abc.ByteStream | None = None
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:

                async def give_up_on_close() -> None:
                    await conn.lost.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(give_up_on_close)
                try:
                    wrapped = await self._wrap_stream(stream)
                except Exception as exc:
                    # Raised below, outside the task group, as it is.
                    error = exc
                tg.cancel_scope.cancel()
        except BaseException:
            # Cancelled from outside: nothing takes the stream over.
            await anyio.aclose_forcefully(wrapped if wrapped is not None else stream)
            raise
        if wrapped is None:
            await anyio.aclose_forcefully(stream)
        if error is not None:
            raise error
        return wrapped
