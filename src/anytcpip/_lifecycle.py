"""The lifecycle of a client or server: starting, the task tree, closing.

The task tree of a running object (``async with obj:`` or
``await task_group.start(obj.run)``)::

    host (the caller's task or task group)
    └── _running: opens the connection or listeners (``_open``), then a task
        group holding (with ``run``, the task running it opens and then is
        the supervisor itself: one task and one task group fewer)
        └── supervisor (``__supervise``): its task group is ``_inner``
            ├── tasks of ``start_soon`` (they end with close())
            ├── a server's accept loop per listener (``_started_hook``; with
            │   ``run``, the first listener's runs in the supervisor itself,
            │   see ``_take_inline``)
            ├── per connection, ``_serve_connection`` (``_serving``; with
            │   ``run``, a Client's runs in the supervisor itself)
            ├── the transport's pump and flusher (``start_receiving``,
            │   ``start_sending``; a ``ConnectionTasks`` of their own, ended
            │   after the drain; no task on the asyncio fast path; on trio a
            │   Client's pump runs in its serving task; the flusher only from
            │   the first write the kernel did not take)
            └── the connection's own tasks (``ConnectionTasks``: read loop,
                heartbeats, ``start_connection_soon``), which the serving task
                cancels (through their anyio task handles), and waits for,
                before the next client is served

Closing is a request (``_request_close``): mark the connection closed here,
set ``_close_requested`` and, unless called from the object's own tasks
(``_current_owner``), wait for ``done_task``. The supervisor then runs
``_teardown`` (shielded) and cancels its group; each connection's close is
shielded and bounded by ``linger``. The subclass hooks: ``_open`` (connect or
bind, or raise OSError having started nothing), ``_started_hook`` (first
background work), ``_teardown`` (close everything), ``_release`` (close what
``_open`` opened and no task took over), ``_wrap_stream`` (TLS), and
``_on_connected`` / ``_on_disconnected`` (around the connect callbacks).
"""

from __future__ import annotations

import abc
import logging
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc

from ._connection import Connection
from ._disconnect import DisconnectReason
from ._flag import Flag
from ._object_tasks import ObjectTasks
from ._oneshot import OneShot
from ._serving import ConnectionServing, ConnectionTasks, current_owner

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

__all__ = ("Lifecycle",)

_current_owner = current_owner


class Lifecycle(ObjectTasks, ConnectionServing, anyio.AsyncContextManagerMixin, abc.ABC):
    """Starting, supervising and closing; the base of BaseClientOrServer.

    Uses (set by the subclass): ``log``, ``linger``, ``should_be_connected``,
    ``_conn``, ``_was_connected`` and :meth:`call_connect_callback`.
    """

    log: logging.Logger
    linger: float
    should_be_connected: bool
    _conn: Connection | None
    _was_connected: bool
    _disconnect_reason: DisconnectReason | None

    def _init_lifecycle(self) -> None:
        # Made once and shared by the object's OneShots (a bound method is
        # one more object for the garbage collector each time it is made).
        self._started_probe = self._is_started
        #: Done once connected (client) or listening (server).
        self.start_task = OneShot("start_task", self._started_probe)
        #: Done once closed.
        self.done_task = OneShot("done_task", self._started_probe, self.log)
        self._started = False
        self._closing = False
        self._close_requested: Flag | None = None
        self._supervised = False
        self._close_called = False
        # run() returned because a close was requested (basic_close, say):
        # its end is not a close of its own.
        self._run_ended = False
        self._inner: anyio.abc.TaskGroup | None = None
        # The current connection and its own tasks.
        self._conn_tasks: tuple[Connection, ConnectionTasks] | None = None
        self._open_scope: anyio.CancelScope | None = None
        self._disconnect_reason = None
        # While run()'s own task runs the started hook: the hook may hand it
        # the first background work (``_inline_work``) in place of a task.
        self._may_inline = False
        self._inline_work: Callable[..., Awaitable[None]] | None = None

    @abc.abstractmethod
    async def call_connect_callback(self) -> None:
        """Call the connect callback if ``connected`` changed since the last call."""

    def _inside(self) -> bool:
        return _current_owner.get() is self

    def _is_started(self) -> bool:
        return self._started

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Self]:
        if self._started:
            raise RuntimeError(f"{self!r} was already started; make a new one")
        user_error: BaseException | None = None
        async with self._running():
            try:
                yield self
            except (GeneratorExit, anyio.get_cancelled_exc_class()):
                raise
            except BaseException as exc:
                # Re-raised below, outside the task group, so that it comes out
                # as it is rather than inside an ExceptionGroup (SystemExit and
                # KeyboardInterrupt included; a cancellation stays one).
                user_error = exc
        if user_error is not None:
            raise user_error

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run in the caller's task group until :meth:`close`.

        Use as ``await task_group.start(obj.run)``: that returns once connected
        (client) or listening (server), or raises :exc:`OSError` if that failed,
        with nothing left running.
        """
        if self._started:
            raise RuntimeError(f"{self!r} was already started; make a new one")
        if self.done_task.done():
            # A placeholder client, or closed before it was started.
            async with self._running():
                task_status.started()
                assert self._close_requested is not None
                await self._close_requested.wait()
                self._run_ended = True
            return
        # As _running, but this task is the supervisor: nothing else runs in
        # it, so the task and task group of a separate supervisor (kilobytes
        # per object) are not needed.
        self._started = True
        self._close_requested = Flag()
        try:
            await self._open_unless_closed()
            await self.__supervise(task_status=task_status, in_host=True)
        except BaseException as exc:
            self._start_failed(exc)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()
            self.done_task.set()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """Open the connection or listeners, run the background tasks, and on exit
        close and wait for them all."""
        self._started = True
        if self.done_task.done():
            # A placeholder client, or closed before it was started.
            yield
            return
        self._close_requested = Flag()
        try:
            await self._open_unless_closed()
            async with anyio.create_task_group() as tg:
                try:
                    await tg.start(self.__supervise)
                    await self._start_background_work()
                    yield
                finally:
                    # Leaving the block (or the end of run) is a close at this
                    # end, through the public close() that a subclass may
                    # override, unless somebody called it already.
                    with anyio.CancelScope(shield=True):
                        if not self._run_ended:
                            if self._supervised:
                                await self._close_at_this_end()
                            self.should_be_connected = False
                        self._close_requested.set()
                        if self._supervised:
                            await self.done_task
        except BaseException as exc:
            self._start_failed(exc)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()
            self.done_task.set()

    async def __supervise(
        self, *, task_status: anyio.abc.TaskStatus[None], in_host: bool = False
    ) -> None:
        """Hold the inner task group until a close is requested, then tear down.

        ``in_host``: run by :meth:`run` in its own task, which also starts
        the first background work and, if it ends other than by a requested
        close (cancelled, or the hook failed), calls :meth:`close` first.
        """
        requested = self._close_requested
        assert requested is not None
        token = _current_owner.set(self)
        self._supervised = True
        try:
            async with anyio.create_task_group() as inner:
                self._inner = inner
                if not in_host:
                    task_status.started()
                try:
                    if in_host:
                        await self._start_inline(task_status)
                    await requested.wait()
                    if in_host:
                        self._run_ended = True
                finally:
                    with anyio.CancelScope(shield=True):
                        if in_host and not self._run_ended:
                            # As leaving _running's block: a close at this end.
                            await self._close_at_this_end()
                            self.should_be_connected = False
                            requested.set()
                        await self._teardown()
                    inner.cancel_scope.cancel()
        finally:
            self._inner = None
            if in_host:
                _current_owner.reset(token)
            self.done_task.set()

    async def _open_unless_closed(self) -> None:
        """Open (connect or bind); a close() from another task meanwhile
        aborts it, and one that came before it finished fails the start."""
        assert self._close_requested is not None
        with anyio.CancelScope() as self._open_scope:
            await self._open()
        self._open_scope = None
        if self._close_requested.is_set():
            raise ConnectionError("closed while starting")

    async def _start_inline(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        """run()'s path: start the background work, then do what the hook
        handed this task (``_inline_work``), if anything, here; say started
        when that work says so (at once if there is none)."""
        self._may_inline = True
        try:
            await self._start_background_work()
        finally:
            self._may_inline = False
        work, self._inline_work = self._inline_work, None
        if work is None:
            task_status.started()
            return
        status = _StartedInline(self.start_task, task_status)
        await work(task_status=status)
        if not status.said_started:
            # Closed at this end before the work got going (a close() from
            # another task while the client was connecting, say).
            raise ConnectionError("closed while starting")

    def _take_inline(self, work: Callable[..., Awaitable[None]]) -> bool:
        """For a started hook: hand ``work`` to run()'s own task, which does it
        once the hook returns (one task fewer per object: kilobytes, and a pass
        of the event loop to start it). False if there is no such task (``async
        with``, or not the first background work): start a task for it.

        ``work`` is called with ``task_status=``: it must call ``started()`` once it is
        going (start_task is set then, and run()'s caller goes on), or end.
        """
        if not self._may_inline:
            return False
        self._may_inline = False
        self._inline_work = work
        return True

    async def _start_background_work(self) -> None:
        """Run the started hook (the supervisor's group is open), then say
        started."""
        try:
            await self._started_hook()
        except (RuntimeError, ConnectionError):
            # Only if the supervisor's task group closed under us (we are
            # being cancelled, and the checkpoint says so); any other error
            # of the hook is raised as it is.
            if self._inner is None or anyio.current_effective_deadline() == -math.inf:
                await anyio.lowlevel.checkpoint()
            raise
        if self._inline_work is None:
            # Otherwise the work handed to run()'s task says when.
            self.start_task.set()

    def _start_failed(self, exc: BaseException) -> None:
        """Failed or cancelled while starting: awaiting start_task says so with
        an OSError (a cancellation belongs to the canceller)."""
        if not self.start_task.done():
            error = exc if isinstance(exc, OSError) else ConnectionError(f"not started: {exc!r}")
            self.start_task.set_exception(error)

    async def _close_at_this_end(self) -> None:
        """Leaving the ``async with`` block, or run() ending other than by a
        requested close: the public close() (a subclass may override it),
        unless somebody called it already."""
        if not self._close_called:
            try:
                await self.close()
            except Exception:
                self.log.exception("close() failed")

    @abc.abstractmethod
    async def close(self) -> None:
        """Close: the connection (and, for a server, every listener); set
        ``done_task`` done. Idempotent, bounded in time, safe from any task."""

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect or bind; raise OSError on failure having started nothing."""

    @abc.abstractmethod
    async def _started_hook(self) -> None:
        """Start the first background work (the supervisor is running)."""

    def _inner_group(self) -> anyio.abc.TaskGroup:
        """The supervisor's task group, for tasks started while starting."""
        if self._inner is None:
            # The supervisor is gone: only a cancellation of the host does
            # that while it is starting.
            raise ConnectionError("closed while starting")
        return self._inner

    async def _release(self) -> None:
        """Hook: close whatever _open opened and no task took over (after a
        failure or cancellation while starting). Idempotent."""

    def _on_close_requested(self) -> None:
        """Hook: a close was requested (the supervisor tears down next)."""

    @abc.abstractmethod
    async def _teardown(self) -> None:
        """Close everything (shielded; the inner task group is still open)."""

    async def _request_close(self) -> None:
        """Ask the object to close; wait for it unless called from its own task."""
        if self._close_requested is None:
            # Never started: nothing to do but say so.
            self._started = True
            self.start_task.set_exception(ConnectionError("closed before it was started"))
            self.done_task.set()
            return
        conn = self._conn
        if conn is not None:
            conn.close_here()
        self._close_requested.set()
        if self._open_scope is not None:
            self._open_scope.cancel()
        self._on_close_requested()
        if not self._inside():
            with anyio.CancelScope(shield=True):
                await self.done_task


class _StartedInline:
    """The task status handed to work that run()'s own task does: started()
    sets start_task and lets run()'s caller go on."""

    __slots__ = ("_outer", "_start_task", "said_started")

    def __init__(self, start_task: OneShot, outer: anyio.abc.TaskStatus[None]) -> None:
        self._start_task = start_task
        self._outer = outer
        self.said_started = False

    def started(self, value: None = None) -> None:
        if self.said_started:
            raise RuntimeError("started() was already called")
        self.said_started = True
        self._start_task.set()
        self._outer.started()
