"""BaseClientOrServer: state, callbacks, lifecycle and the read/write API."""

from __future__ import annotations

import abc
import ctypes
import inspect
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.abc

from ._connection import HALF_CLOSE_GRACE, Connection
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_LIMIT,
    DEFAULT_LINGER,
    DEFAULT_MONITOR_CONNECTION_INTERVAL,
    DEFAULT_TERMINATOR,
)
from ._exceptions import LimitOverrunError
from ._framing import (
    check_encoding,
    check_terminator,
    decode_json,
    encode_json,
    not_bytes,
    not_structure,
)
from ._oneshot import OneShot

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

__all__ = ("BaseClientOrServer", "ConnectCallbackType")

#: The type of a ``connect_callback``: an async function called with the
#: client or server whose :attr:`~BaseClientOrServer.connected` changed.
ConnectCallbackType = Callable[[Any], Awaitable[None]]

#: ts_tcpip override points that anytcpip does not call, with what to do
#: instead; a subclass that defines one is rejected when it is defined.
_NOT_CALLED = {
    "start": (
        "anytcpip never calls start(): objects are started by `async with obj:` or "
        "`await task_group.start(obj.run)`. Put what followed `await super().start()` "
        "in a connect_callback (it runs once connected), and start tasks there with "
        "self.start_connection_soon(...) (they end with the connection) or "
        "self.start_soon(...) (they end with close())"
    ),
    "monitor_received_heartbeats": (
        "the heartbeat monitor is built in (run_heartbeat_monitor_task=True, "
        "max_heartbeat_interval); override handle_received_heartbeat() to see heartbeats"
    ),
    "_monitor_connection": (
        "connection monitoring is built in (monitor_connection_interval); watch "
        "connection changes with a connect_callback"
    ),
    "_set_reader_writer": (
        "there are no asyncio streams; use a connect_callback to act on a new connection"
    ),
    "_close_client": "override close_client() (a server) or close() instead",
    "_send_heartbeat": "the heartbeat sender is built in (run_heartbeat_send_task=True)",
}


class _CompatAttribute:
    """A ts_tcpip attribute that anytcpip does not have: reading it raises
    AttributeError saying what to use instead, unless the instance set its
    own value (a subclass may use the name for something of its own)."""

    def __init__(self, name: str, instead: str) -> None:
        self._name = name
        self._instead = instead

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return vars(obj)[self._name]
        except KeyError:
            raise AttributeError(
                f"{type(obj).__name__} has no {self._name} (a ts_tcpip attribute): {self._instead}"
            ) from None

    def __set__(self, obj: object, value: Any) -> None:
        vars(obj)[self._name] = value


#: The object whose background task is running (inherited by the tasks it
#: starts); lets close() know it was called from one of the object's own tasks.
_current_owner: ContextVar[object | None] = ContextVar("anytcpip_owner", default=None)


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


class BaseClientOrServer(abc.ABC):
    """The part shared by :class:`Client` and the servers: connection state,
    the connect callback, the lifecycle and every read and write method.

    Parameters
    ----------
    log : logging.Logger
        Logger; the object logs to a child of it.
    connect_callback : async callable or None, optional
        Called as ``await connect_callback(self)`` once per change of
        :attr:`connected`: after connecting, and after the connection is lost or
        closed. Calls strictly alternate and never overlap. An exception raised
        by it is logged and otherwise ignored.
    monitor_connection_interval : float, optional
        If positive (the default), a background task watches the connection
        continuously, so a peer's close or reset is noticed within milliseconds
        even when nobody is reading; no polling is involved, so the value is not
        a period. If zero or negative, it is noticed only by reads and writes.
    name : str, optional
        Name used in log messages.
    encoding : str, optional
        Encoding used by :meth:`read_str`, :meth:`write_str`, :meth:`read_json`
        and :meth:`write_json`.
    terminator : bytes, optional
        Terminator used by those four methods.
    limit : int, optional
        The longest message (excluding its separator) that :meth:`readuntil`,
        :meth:`readline`, :meth:`read_str` and :meth:`read_json` accept;
        64 KiB by default.
    linger : float, optional
        The longest time :meth:`close` spends letting the peer take what was
        written and finish its side of the connection (seconds).

    Raises
    ------
    TypeError
        If ``connect_callback`` is not None and not an async callable. When a
        subclass is *defined* that overrides a ts_tcpip method anytcpip would
        never call (``start``, ``monitor_received_heartbeats``, ...): the
        message says what to use instead.
    ValueError
        If ``terminator`` is not non-empty bytes, ``encoding`` is unknown, or
        ``limit`` or ``linger`` is out of range.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, instead in _NOT_CALLED.items():
            if name in vars(cls) and not cls.__module__.startswith("anytcpip."):
                raise TypeError(f"{cls.__qualname__} defines {name}(), which {instead}")

    def __init__(
        self,
        *,
        log: logging.Logger,
        connect_callback: ConnectCallbackType | None = None,
        monitor_connection_interval: float = DEFAULT_MONITOR_CONNECTION_INTERVAL,
        name: str = "",
        encoding: str = DEFAULT_ENCODING,
        terminator: bytes = DEFAULT_TERMINATOR,
        limit: int = DEFAULT_LIMIT,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        if connect_callback is not None and not _is_async_callable(connect_callback):
            raise TypeError(f"connect_callback={connect_callback!r} must be an async function")
        if not isinstance(log, logging.Logger):
            raise TypeError(f"log={log!r} must be a logging.Logger")
        if not isinstance(monitor_connection_interval, int | float) or isinstance(
            monitor_connection_interval, bool
        ):
            raise TypeError(
                f"monitor_connection_interval={monitor_connection_interval!r} must be a number"
            )
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit={limit!r} must be a positive int")
        if not linger >= 0:
            raise ValueError(f"linger={linger!r} must be >= 0")
        self._encoding = check_encoding(encoding)
        self._terminator = check_terminator(terminator)
        self.name = name
        self.log = log.getChild(f"{type(self).__name__}({name})" if name else type(self).__name__)
        self.__connect_callback = connect_callback
        self.monitor_connection_interval = monitor_connection_interval
        self.limit = limit
        self.linger = linger
        #: True from connecting until close at this end (``close`` for a client,
        #: ``close_client`` for a server).
        self.should_be_connected = False
        #: Done once connected (client) or listening (server).
        self.start_task = OneShot("start_task", self._is_started)
        #: Done once closed.
        self.done_task = OneShot("done_task", self._is_started)
        self._conn: Connection | None = None
        self._was_connected = False
        self._started = False
        self._closing = False
        self._close_requested: anyio.Event | None = None
        self._supervised = False
        self._close_called = False
        self._inner: anyio.abc.TaskGroup | None = None
        # The current connection and the task group of its tasks.
        self._conn_tasks: tuple[Connection, anyio.abc.TaskGroup] | None = None
        # Per connection: set once its tasks ended and its last callback ran.
        self._released_events: dict[Connection, anyio.Event] = {}
        self._open_scope: anyio.CancelScope | None = None

    # ----------------------------------------------------------- attributes

    @property
    def encoding(self) -> str:
        """Encoding for the str and JSON methods (settable between messages)."""
        return self._encoding

    @encoding.setter
    def encoding(self, encoding: str) -> None:
        self._encoding = check_encoding(encoding)

    @property
    def terminator(self) -> bytes:
        """Terminator for the str and JSON methods (settable between messages)."""
        return self._terminator

    @terminator.setter
    def terminator(self, terminator: bytes) -> None:
        self._terminator = check_terminator(terminator)

    @property
    def connected(self) -> bool:
        """True while connected; False as soon as a hangup or reset is seen
        (with monitoring on, whether or not anybody is reading)."""
        conn = self._conn
        return conn is not None and conn.is_open

    # ------------------------------------------------------------ callbacks

    async def call_connect_callback(self) -> None:
        """Call the connect callback if :attr:`connected` changed since the last
        call. Always safe to call; exceptions from the callback are logged."""
        connected = self.connected
        if connected == self._was_connected:
            return
        self._was_connected = connected
        callback = self.__connect_callback
        if callback is None:
            return
        try:
            await callback(self)
        except Exception:
            self.log.exception("connect_callback failed")

    # ------------------------------------------------------------ lifecycle

    def _inside(self) -> bool:
        return _current_owner.get() is self

    def _is_started(self) -> bool:
        return self._started

    async def __aenter__(self) -> Self:
        if self._started:
            raise RuntimeError(f"{self!r} was already started; make a new one")
        self.__cm = self.__run_cm()
        await self.__cm.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self.__cm.__aexit__(*exc_info)

    @asynccontextmanager
    async def __run_cm(self) -> AsyncIterator[None]:
        user_error: BaseException | None = None
        async with self._running():
            try:
                yield
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
        async with self._running():
            task_status.started()
            assert self._close_requested is not None
            await self._close_requested.wait()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """Open the connection or listeners, run the background tasks, and on exit
        close and wait for them all."""
        self._started = True
        if self.done_task.done():
            # A placeholder client, or closed before it was started.
            yield
            return
        self._close_requested = anyio.Event()
        try:
            # close() from another task aborts a connect in progress.
            with anyio.CancelScope() as self._open_scope:
                await self._open()
            self._open_scope = None
            if self._close_requested.is_set():
                raise ConnectionError("closed while starting")
            async with anyio.create_task_group() as tg:
                try:
                    await tg.start(self.__supervise)
                    try:
                        await self._started_hook()
                    except (RuntimeError, ConnectionError):
                        # The supervisor's task group closed under us: we are
                        # being cancelled, and the checkpoint says so.
                        await anyio.lowlevel.checkpoint()
                        raise
                    self.start_task.set()
                    yield
                finally:
                    # Leaving the block (or the end of run) is a close at this
                    # end, through the public close() that a subclass may
                    # override, unless somebody called it already.
                    with anyio.CancelScope(shield=True):
                        if not self._close_called and self._supervised:
                            try:
                                await self.close()
                            except Exception:
                                self.log.exception("close() failed")
                        self.should_be_connected = False
                        self._close_requested.set()
                        if self._supervised:
                            await self.done_task
        except BaseException as exc:
            if not self.start_task.done():
                # Failed or cancelled while starting: awaiting start_task says
                # so with an OSError (a cancellation belongs to the canceller).
                error = (
                    exc if isinstance(exc, OSError) else ConnectionError(f"not started: {exc!r}")
                )
                self.start_task.set_exception(error)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()
            self.done_task.set()

    async def __supervise(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        _current_owner.set(self)
        self._supervised = True
        try:
            async with anyio.create_task_group() as inner:
                self._inner = inner
                task_status.started()
                try:
                    assert self._close_requested is not None
                    await self._close_requested.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._teardown()
                    inner.cancel_scope.cancel()
        finally:
            self._inner = None
            self.done_task.set()

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

    async def _release(self) -> None:  # noqa: B027
        """Hook: close whatever _open opened and no task took over (after a
        failure or cancellation while starting). Idempotent."""

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
        if not self._inside():
            with anyio.CancelScope(shield=True):
                await self.done_task

    # ---------------------------------------------------------------- tasks

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

        Raises
        ------
        ConnectionError
            If not connected.
        """
        entry = self._conn_tasks
        if entry is None or not entry[0].is_open:
            raise ConnectionError("not connected: start_connection_soon needs a connection")
        entry[1].start_soon(self._guarded, func, args, name or _name_of(func), name=name or None)

    async def _guarded(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], label: str
    ) -> None:
        _current_owner.set(self)
        try:
            await func(*args)
        except Exception:
            self.log.exception("task %s failed", label)

    def _closing_down_requested(self) -> bool:
        return self._close_requested is not None and self._close_requested.is_set()

    def _released(self, conn: Connection) -> anyio.Event:
        """Set once ``conn``'s tasks have ended and its last callback ran."""
        event = self._released_events.get(conn)
        if event is None:
            event = self._released_events[conn] = anyio.Event()
            if conn.done.is_set():
                event.set()
        return event

    # --------------------------------------------------- per-connection task

    def _on_connected(self, tg: anyio.abc.TaskGroup) -> None:  # noqa: B027
        """Hook: the connection is up and the callback has run."""

    def _on_disconnected(self) -> None:  # noqa: B027
        """Hook: the connection was lost or closed; the callback is next."""

    async def _serve_connection(
        self,
        conn: Connection,
        stream_to_wrap: anyio.abc.ByteStream | None,
        previous: Connection | None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run one connection from callback to callback, then close it."""
        _current_owner.set(self)
        deadline = float("inf")
        try:
            if previous is not None:
                # A new client: the previous one, if half-closed, is done. Its
                # tasks have ended and its last callback ran; what it was sent
                # may still be draining in its own task.
                previous.end_half_open()
                await self._released(previous).wait()
            if stream_to_wrap is not None:
                wrapped = await self._wrap_until_closed(conn, stream_to_wrap)
                if wrapped is None:
                    return
                conn.attach(wrapped)
            if conn.closed_here:
                # Closed at this end (close(), close_client()) while it waited
                # for the connection before it: never served.
                return
            async with anyio.create_task_group() as tg:
                conn.start_sending(tg)
                self._conn = conn
                self.should_be_connected = True
                # The connection's own tasks (read loop, heartbeats, and
                # start_connection_soon) live in a group of their own, which
                # ends before the next client is served.
                async with anyio.create_task_group() as tasks:
                    self._conn_tasks = (conn, tasks)
                    await self.call_connect_callback()
                    if conn.monitor and conn.is_open:
                        conn.start_receiving(tg)
                    self._on_connected(tasks)
                    task_status.started()
                    await conn.lost.wait()
                    self._on_disconnected()
                    await self.call_connect_callback()
                    if conn.writable:
                        # The peer half-closed: what we still write (the read
                        # loop answering its last requests) goes out.
                        await conn.linger_half_open(HALF_CLOSE_GRACE)
                    # Let a reader woken by the close finish what it was doing.
                    await anyio.lowlevel.checkpoint()
                    tasks.cancel_scope.cancel()
                self._released(conn).set()
                deadline = anyio.current_time() + self.linger
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.linger):
                    await conn.wait_flushed()
                tg.cancel_scope.cancel()
        except Exception as exc:
            # Only a failed TLS handshake gets here (anything else is a bug and
            # propagates through the task group).
            if not isinstance(exc, OSError | anyio.BrokenResourceError | anyio.EndOfStream):
                raise
            self.log.warning("could not set up the connection from %s: %r", conn.peer, exc)
            conn.set_error(exc)
        finally:
            if self._conn_tasks is not None and self._conn_tasks[0] is conn:
                self._conn_tasks = None
            if deadline == float("inf"):
                deadline = anyio.current_time() + self.linger
            await conn.finish_close(deadline)
            if self._conn is conn and self._was_connected:
                # Cancelled (the owner's task group, say) before the disconnect
                # callback ran: run it now, shielded but bounded, so callbacks
                # still alternate.
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.linger):
                    self._on_disconnected()
                    await self.call_connect_callback()
                self._was_connected = False
            self._released(conn).set()
            self._released_events.pop(conn, None)

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

    # ------------------------------------------------------------- reading

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None:
            raise ConnectionError("not connected")
        return conn

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes.

        Parameters
        ----------
        n : int
            The most bytes to return. If -1, wait until the peer closes the
            connection and return everything it sent.

        Returns
        -------
        data : bytes
            At least one byte, or ``b""`` if the peer closed the connection while
            this read was waiting.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        ValueError
            If ``n`` is less than -1.
        """
        conn = self._connection()
        if n == -1:
            buffer = conn.buffer

            def take_all_at_eof(waited: bool) -> bytes:
                return buffer.take_all()

            return await conn.read(lambda: None, take_all_at_eof)
        if n < 0:
            raise ValueError(f"n={n} must be -1 or >= 0")
        if n == 0:
            return b""
        buffer = conn.buffer
        if buffer and not conn.read_busy:
            data = buffer.take_some(n)
            conn.consumed()
            return data
        return await conn.read(lambda: buffer.take_some(n) or None, lambda waited: b"")

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection first; ``partial`` holds what came.
        ValueError
            If ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n={n} must be >= 0")
        conn = self._connection()
        buffer = conn.buffer
        if not conn.read_busy:
            data = buffer.take_exactly(n)
            if data is not None:
                conn.consumed()
                return data
        return await conn.read(
            lambda: buffer.take_exactly(n), lambda waited: _raise(buffer.incomplete(n))
        )

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Read one message ending in ``separator``; the result keeps it.

        Parameters
        ----------
        separator : bytes
            The separator. The default is ``b"\\n"`` (as in asyncio), not
            :attr:`terminator`.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the separator arrives.
        LimitOverrunError
            If the message is longer than the read limit. It is discarded
            through its separator, so the next read returns the next message.
        ValueError
            If ``separator`` is empty.
        """
        if not separator:
            raise ValueError("separator must not be empty")
        return await self._read_message(separator, True, raise_at_eof=True)

    async def readline(self) -> bytes:
        """Read one line ending in ``b"\\n"``; the result keeps it.

        If the peer closes the connection first, return what came (possibly
        ``b""``), as :meth:`asyncio.StreamReader.readline` does.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        LimitOverrunError
            If the line is longer than the read limit (it is discarded).
        """
        return await self._read_message(b"\n", True, raise_at_eof=False)

    async def _read_message(self, sep: bytes, keep: bool, *, raise_at_eof: bool) -> bytes:
        conn = self._connection()
        if not conn.read_busy:
            try:
                data = conn.buffer.take_until(sep, keep)
            except LimitOverrunError:
                conn.consumed()  # receiving goes on: a hangup is still seen
                raise
            if data is not None:
                conn.consumed()
                return data
        return await self._wait_message(conn, sep, keep, raise_at_eof=raise_at_eof)

    async def _wait_message(
        self, conn: Connection, sep: bytes, keep: bool, *, raise_at_eof: bool
    ) -> bytes:
        """The rest of a separator-based read, once the buffer had no message."""
        buffer = conn.buffer

        def at_eof(waited: bool) -> bytes:
            if raise_at_eof:
                raise buffer.incomplete(None)
            return buffer.take_all()

        return await conn.read(lambda: buffer.take_until(sep, keep), at_eof)

    async def read_into(self, struct: ctypes.Structure) -> None:
        """Read binary data into a :class:`ctypes.Structure`, in place.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the whole structure came.
        """
        conn = self._connection()
        buffer = conn.buffer
        if not conn.read_busy and buffer.take_into(struct):
            conn.consumed()
            return
        size = ctypes.sizeof(struct)
        await conn.read(
            lambda: buffer.take_into(struct) or None,
            lambda waited: _raise(buffer.incomplete(size)),
        )

    async def read_str(self) -> str:
        """Read one message ending in :attr:`terminator`, strip the terminator
        and decode it with :attr:`encoding` (strict).

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the terminator arrives.
        LimitOverrunError
            If the message is longer than the read limit (it is discarded).
        UnicodeDecodeError
            If the message cannot be decoded; it is consumed, and the next read
            returns the next message.
        """
        conn = self._connection()
        terminator = self._terminator
        if not conn.read_busy:
            try:
                data = conn.buffer.take_until(terminator, False)
            except LimitOverrunError:
                conn.consumed()  # receiving goes on: a hangup is still seen
                raise
            if data is not None:
                conn.consumed()
                return data.decode(self._encoding)
        data = await self._wait_message(conn, terminator, False, raise_at_eof=True)
        return data.decode(self._encoding)

    async def read_json(self) -> Any:
        """Read one message with :meth:`read_str` and decode it as JSON.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the terminator arrives.
        LimitOverrunError
            If the message is longer than the read limit (it is discarded).
        json.JSONDecodeError
            If the message is not JSON (its message includes the data); also
            for nesting too deep to decode, or an integer with more digits
            than Python converts. The connection is still usable.
        UnicodeDecodeError
            If the message cannot be decoded.
        """
        return decode_json(await self.read_str())

    # ------------------------------------------------------------- writing

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data``.

        When this returns, ``data`` follows everything written before it and
        precedes anything written after it. On a plain TCP connection, if
        nothing written earlier is still waiting to be sent, ``data`` has been
        handed to the kernel (what the kernel could not take yet is queued and
        sent as soon as it can be, without waiting for anything else the
        caller does); with TLS it is queued and goes out at the caller's next
        ``await`` that lets other tasks run. :meth:`close` delivers it too.

        A write waits first while 64 KiB or more are unsent (backpressure);
        writers waiting so are served in the order they came. Without
        backpressure, a write lets other tasks run first once every 64 writes
        or 1 MiB on the connection (a checkpoint, where cancellation is
        honoured too); other writes return without yielding. If it raises,
        none of ``data`` was queued.

        Raises
        ------
        ConnectionError
            If not connected (never connected, closed, or the peer's close or
            a failure has been noticed, including by this write). After a
            plain TCP peer's end-of-stream, writes still work for a short time
            while one of its requests waits for an answer (see the guide,
            "Answering a peer that half-closed").
        TypeError
            If ``data`` is not bytes, bytearray or memoryview.
        """
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise not_bytes(data)
            data = bytes(data)
        conn = self._conn
        if conn is None or conn.write_blocked or not conn.is_open:
            conn = self._connection()
            await conn.wait_writable()
        if data:
            conn.queue(data)

    async def writelines(self, lines: Iterable[bytes]) -> None:
        """Write an iterable of bytes, as one message (see :meth:`write`).

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If ``lines`` is not an iterable of bytes-like objects; nothing is
            written.
        """
        await self.write(b"".join(lines))

    async def write_from(self, *structs: ctypes.Structure) -> None:
        """Write one or more :class:`ctypes.Structure`, as one message (see
        :meth:`write`).

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If any of ``structs`` is not a :class:`ctypes.Structure`; nothing
            is written.
        """
        if len(structs) == 1:
            struct = structs[0]
            if not isinstance(struct, ctypes.Structure):
                raise not_structure(struct)
            data = bytes(struct)
        else:
            for struct in structs:
                if not isinstance(struct, ctypes.Structure):
                    raise not_structure(struct)
            data = b"".join([bytes(s) for s in structs])
        conn = self._conn
        if conn is not None and conn.is_open and not conn.write_blocked:
            conn.queue(data)
            return
        await self.write(data)

    async def write_str(self, line: str) -> None:
        """Encode ``line`` with :attr:`encoding` (strict), append
        :attr:`terminator` and write it (see :meth:`write`).

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If ``line`` is not a str; nothing is written.
        UnicodeEncodeError
            If ``line`` cannot be encoded; nothing is written.
        """
        if type(line) is not str and not isinstance(line, str):
            raise TypeError(f"line must be a str, not {type(line).__name__}")
        data = line.encode(self._encoding) + self._terminator
        conn = self._conn
        if conn is not None and conn.is_open and not conn.write_blocked:
            conn.queue(data)
            return
        await self.write(data)

    async def write_json(self, data: Any) -> None:
        """Encode ``data`` as JSON and write it like :meth:`write_str`.

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If ``data`` cannot be encoded as JSON; nothing is written.
        UnicodeEncodeError
            If the JSON text cannot be encoded; nothing is written.
        """
        data = encode_json(data, self._encoding, self._terminator)
        conn = self._conn
        if conn is not None and conn.is_open and not conn.write_blocked:
            conn.queue(data)
            return
        await self.write(data)


def _raise(exc: BaseException) -> Any:
    raise exc


def _name_of(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__qualname__", None) or func)
