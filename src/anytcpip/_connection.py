"""One connection: the state every transport shares, the read loop, write admission.

:class:`Connection` is what reads and writes talk to. How bytes move is a
transport's job (a subclass, one per module, chosen by
:func:`anytcpip._transport.open_connection`): the generic anyio stream
(``_transport_stream``), trio's raw socket (``_transport_trio``) and the
asyncio Protocol fast path (``_transport_asyncio``). Imports run one way:
transports -> this module -> ``_write_admission`` (backpressure) ->
``_half_open``, and ``_buffer`` / ``_exceptions``.

How the pieces fit:

* **Receiving.** With monitoring on, a *pump* task owns the receive side: it
  receives chunks into a :class:`~anytcpip._buffer.ReceiveBuffer` and wakes any
  waiting reader. Because it is always waiting in ``receive()``, a peer's close
  or reset is seen at once, read or no read. It stops receiving while more
  than ``limit`` bytes are unread (unless a reader needs more), so a flooding
  peer costs at most ``limit`` plus one chunk. With monitoring off, a reader
  receives for itself. Either way bytes leave the buffer only when a whole
  result can be returned, so a cancelled read consumes nothing.
* **Writing.** On a plain TCP socket (trio, and the asyncio fast path), a
  write with nothing queued before it goes to the kernel at once, in the
  writer's own call; only what the kernel does not take is queued, and later
  writes queue behind it, so they coalesce exactly when the kernel is behind.
  A *flusher* task sends everything queued in one ``send`` (on other streams,
  TLS for instance, every message goes through it). Messages from several
  tasks never interleave. A writer waits (before queueing anything) while
  ``WRITE_HIGH_WATER`` bytes or more are queued: that is the backpressure;
  writers waiting for it are let through first come, first served. And every
  ``WRITE_YIELD_BUDGET`` bytes (a write counting as ``WRITE_CALL_COST`` bytes
  at least) a write lets other tasks run first (a checkpoint), so a writer
  the kernel keeps up with cannot starve them, and cancellation is honoured.
* **Closing.** On plain TCP the end-of-stream goes out the moment the
  connection is closed at this end, after what the transport holds (the peer
  sees the close before the callbacks run; a replaced client excepted, see
  ``close_here``). Then: flush what was written, half-close (TLS:
  close_notify) if not done yet, discard what the peer still sends until
  its end-of-stream (TLS: its close_notify), then close; all of it bounded
  by ``linger`` seconds, so a peer that never reads or never closes cannot
  hold ``close()`` for longer.
* **Half-closed peers.** After a plain TCP peer's end-of-stream the
  connection is no longer open (``connected`` is False), but while one of
  its requests waits for an answer it stays *writable* for a short grace
  (see :meth:`Connection.linger_half_open`).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from ._buffer import ReceiveBuffer
from ._disconnect import DisconnectKind, DisconnectReason, kind_of_error
from ._exceptions import LimitOverrunError
from ._flag import Flag
from ._read_lock import ReadLock
from ._write_admission import WRITE_CALL_COST, WRITE_YIELD_BUDGET, WriteAdmission

__all__ = (
    "HALF_CLOSE_GRACE",
    "PROBE_TIME",
    "RECEIVE_CHUNK",
    "WRITE_CALL_COST",
    "WRITE_HIGH_WATER",
    "WRITE_YIELD_BUDGET",
    "Connection",
)


T = TypeVar("T")

#: Bytes asked for per ``receive()``.
RECEIVE_CHUNK = 1 << 16

#: A write waits while this many bytes are queued and not yet sent.
WRITE_HIGH_WATER = 1 << 16

#: After the peer's end-of-stream with a request unanswered, how long the
#: connection stays writable after the end-of-stream or the last write (as
#: long as lsst.ts.tcpip's default monitoring period).
HALF_CLOSE_GRACE = 0.1

#: With monitoring off, how long a server looks at its connected client's
#: socket, when another client arrives, for a sign that the first one left.
PROBE_TIME = 0.02


class Connection(WriteAdmission, abc.ABC):
    """The state of one TCP or TLS connection, shared by reads and writes.

    Parameters
    ----------
    limit : int
        Read limit; also the amount of unread data past which receiving pauses.
    monitor : bool
        Receive continuously (monitoring). If False, reads receive directly.
    log : logging.Logger
        Where to log.
    """

    # Slots (thousands of connections per process); a __dict__ only on demand.
    __slots__ = (
        "__dict__", "__weakref__", "_pump_running", "_read_lock", "_reader_waiting",
        "_write_failure", "buffer", "closed_here", "done", "eof",
        "error", "is_open", "last_received", "log", "lost", "monitor", "peer", "readers", "reads",
        "released", "serving_task", "stream", "track_received", "unread_dropped",
    )  # fmt: skip

    def __init__(self, *, limit: int, monitor: bool, log: logging.Logger) -> None:
        self.stream: anyio.abc.ByteStream | None = None
        self.buffer = ReceiveBuffer(limit)
        self.monitor = monitor
        self.log = log
        self.peer = ""
        # Why the connection is no longer usable (several can be true).
        self.eof = False
        self.error: BaseException | None = None
        self.closed_here = False
        # Why it ended, as seen first (see disconnect_reason).
        self._reason: DisconnectReason | None = None
        self.unread_dropped = False
        #: False once any of the three above is true (kept as a plain attribute
        #: because every read and write looks at it).
        self.is_open = True
        # Set once the connection became unusable; set once the socket is
        # closed and every task of the connection has finished.
        self.lost = Flag()
        self.done = Flag()
        # Set by the owner once the connection's tasks have ended and its last
        # connect callback ran (the next client may be served then).
        self.released = Flag()
        # The id of the task that serves it (and runs its connect callbacks).
        self.serving_task: int | None = None
        # Receive side. ``readers`` counts reads inside read() (waiting for the
        # lock or for data); while it is not 0, fast paths must not jump the queue.
        self.readers = 0
        self._read_lock = ReadLock()
        # True while the transport receives continuously (a pump task, or the
        # asyncio protocol), so readers wait for it rather than receive.
        self._pump_running = False
        # A reader waits for data: receiving goes on past the limit (it needs more).
        self._reader_waiting = False
        # Send side.
        #: True while a write must go through wait_writable() before queueing:
        #: backpressure, writers waiting their turn, or the yield budget spent.
        self.write_blocked = False
        # Backpressure: too much is queued (or the transport said so).
        self._out_blocked = False
        # Writers waiting for their turn, in order; the head's event is set
        # when it may go (it stays in the queue until it has run).
        self._write_waiters: list[anyio.Event] = []
        self._write_budget = WRITE_YIELD_BUDGET
        # The error made up when a write found the transport closing (see
        # _failed_writing); the transport's own reason may replace it.
        self._write_failure: ConnectionError | None = None
        # Half-close (see linger_half_open): after the peer's end-of-stream,
        # writes stay allowed until this is set, or the connection fails or
        # is closed here.
        self.half_open_over = False
        self._half_open_deadline = float("inf")
        self._half_open_grace = 0.0
        self._half_open_waiter: anyio.Event | None = None
        # Reads that returned something.
        self.reads = 0
        #: When True, each received chunk stores anyio.current_time() in
        #: last_received (off by default: it costs a clock read per chunk).
        self.track_received = False
        self.last_received = float("-inf")
        # Tasks of this connection that may still answer the peer
        # (start_connection_soon), and whether a read reached the
        # end-of-stream with nothing left (see input_exhausted).
        self.tasks_running = 0
        self._input_done = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer} open={self.is_open}>"

    def attach(self, stream: anyio.abc.ByteStream) -> None:
        """Use ``stream`` (a connection opened without one, before a handshake)."""
        self.stream = stream

    # ------------------------------------------------------------------ state

    def _usable(self) -> bool:
        # is_open, as a call: state changes while awaiting, and a call is not
        # narrowed by type checkers the way a property is.
        return self.is_open

    @property
    def read_busy(self) -> bool:
        """True while a reader is waiting (later readers must queue behind it)."""
        return self.readers > 0

    @property
    def writable(self) -> bool:
        """True while writes are allowed: while open, and after the peer's
        end-of-stream (plain TCP) until the half-open grace is over."""
        if self.is_open:
            return True
        return (
            self.eof
            and not self.half_open_over
            and self.error is None
            and not self.closed_here
            and self.stream is not None
            and self._writes_after_eof()
        )

    def _writes_after_eof(self) -> bool:
        """Hook: whether the transport can still send after the peer's
        end-of-stream (plain TCP can; TLS cannot)."""
        return True

    def _ended(self, kind: DisconnectKind, exc: BaseException | None = None) -> None:
        """Record why the connection ended, if this is the first cause."""
        if self._reason is None:
            self._reason = DisconnectReason(
                kind, self.peer, exc, unread=len(self.buffer), unsent=self.out_len
            )

    @property
    def disconnect_reason(self) -> DisconnectReason | None:
        """Why the connection ended (None while it is open)."""
        return self._reason

    def _became_unusable(self) -> None:
        self.is_open = False
        self.lost.set()
        waiter = self._half_open_waiter
        if waiter is not None:
            self._half_open_waiter = None
            waiter.set()
        self._wake_readers()
        for event in self._write_waiters:
            event.set()
        self._wake_transport()

    def set_eof(self) -> None:
        if not self.eof:
            self.eof = True
            self._ended(DisconnectKind.PEER_CLOSED)
            self._became_unusable()

    def set_error(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self.log.debug("connection %s failed: %r", self.peer, exc)
            self._ended(kind_of_error(exc), exc)
            self._out_blocked = False
            self._became_unusable()

    def close_here(
        self, kind: DisconnectKind = DisconnectKind.CLOSED_HERE, exc: BaseException | None = None
    ) -> None:
        """Mark closed at this end: every read and later write fails at once;
        what was already written is still sent. ``kind`` and ``exc`` are the
        disconnect reason, if the connection was still open."""
        if not self.closed_here:
            self.closed_here = True
            if self.error is None and kind is not DisconnectKind.REPLACED:
                # First: the peer is waiting for it. (A replaced client hears
                # of it after its disconnect callback: once it sees the end,
                # its successor is the one served.)
                self._end_output_early()
            self._ended(kind, exc)
            self.buffer.clear()
            self._became_unusable()

    def not_connected(self) -> ConnectionError:
        """The error for an operation on a connection that is not usable."""
        if self.closed_here:
            return ConnectionError("not connected: the connection was closed at this end")
        if self.error is not None:
            err = ConnectionError(f"not connected: the connection failed: {self.error}")
            err.__cause__ = self.error
            return err
        return ConnectionError("not connected: the peer closed the connection")

    # --------------------------------------------------------------- receive

    async def read(self, take: Callable[[], T | None], at_eof: Callable[[bool], T]) -> T:
        """Return ``take()`` once it gives a result, waiting for data as needed.

        ``take`` consumes from the buffer only when it returns a result.
        At end-of-stream ``at_eof(waited)`` gives the result or raises; ``waited``
        is True if this read was already waiting when the stream ended.
        """
        self.readers += 1
        try:
            async with self._read_lock:
                waited = False
                while True:
                    if self.closed_here:
                        raise self.not_connected()
                    try:
                        result = take()
                    except LimitOverrunError:
                        # The over-long message left the buffer: let the
                        # receiving go on (a hangup must still be noticed).
                        self.consumed()
                        raise
                    if result is not None:
                        self.consumed()
                        return result
                    if self.error is not None:
                        raise self.not_connected()
                    if self.eof:
                        try:
                            if not waited and not self.buffer:
                                raise self.not_connected()
                            return at_eof(waited)
                        finally:
                            if not self.buffer:
                                # All the peer sent has been read: nothing
                                # more to answer after this.
                                self.input_exhausted()
                    await self._wait_for_data()
                    waited = True
        finally:
            self.readers -= 1

    # ------------------------------------------------------------------ send

    def _failed_writing(self) -> None:
        """The transport failed (it drops what it is given from then on, and
        tells its protocol only later): fail the connection now.

        Raises
        ------
        ConnectionError
            Always.
        """
        if self.error is None:
            failure = ConnectionResetError("the connection failed while writing")
            self.set_error(failure)
            self._write_failure = failure
        raise self.not_connected()

    # ------------------------------------------------------- transport hooks

    @abc.abstractmethod
    def _wake_readers(self) -> None:
        """Wake a reader waiting in :meth:`_wait_for_data`."""

    @property
    def out_len(self) -> int:
        """Bytes queued here and not yet handed to the transport."""
        return 0

    @abc.abstractmethod
    def _wake_transport(self) -> None:
        """The connection became unusable: wake the transport's own waiters."""

    @abc.abstractmethod
    def consumed(self) -> None:
        """Count a read; let receiving go on if it made room in the buffer."""

    @abc.abstractmethod
    def _wait_for_data(self) -> Awaitable[None]:
        """Wait (holding the read lock) for data, end-of-stream or failure."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """Give a pending end-of-stream or reset the chance to be noticed."""

    @abc.abstractmethod
    def start_sending(self, tg: anyio.abc.TaskGroup) -> None:
        """Start what sends queued data (if the transport needs a task)."""

    @abc.abstractmethod
    def start_receiving(self, tg: anyio.abc.TaskGroup) -> None:
        """Start receiving continuously (monitoring)."""

    #: True if the serving task receives itself (:meth:`receive_here`) instead
    #: of starting a pump with :meth:`start_receiving`.
    receives_in_serving_task = False

    async def receive_here(self) -> None:
        """Receive continuously in the calling task until the connection is no
        longer usable (only if :attr:`receives_in_serving_task`)."""
        raise NotImplementedError  # pragma: no cover - only called when supported

    @abc.abstractmethod
    def queue(self, data: bytes) -> None:
        """Send or queue ``data`` (the caller checked ``is_open`` and
        ``write_blocked``), spend the yield budget;
        raise ConnectionError if sending at once failed (nothing went out)."""

    @property
    @abc.abstractmethod
    def flushed(self) -> bool:
        """True once everything written has been handed to the kernel."""

    @abc.abstractmethod
    async def wait_flushed(self) -> None:
        """Wait until :attr:`flushed`, or the link failed."""

    def _end_output_early(self) -> None:
        """Hook, when the connection is closed at this end: nothing more will
        be written, so a transport that can half-close without waiting sends
        its end-of-stream now, after what it already holds (the peer sees the
        close at once, before the callbacks and the teardown, as with
        ts_tcpip). The rest of the close is unchanged."""

    async def half_close_before_teardown(self) -> None:
        """Hook, after the connection's tasks ended and all was flushed: send
        the end-of-stream now if the transport's own tasks would otherwise
        hold it up (trio's pump), and wait for the peer's answer with them
        still running. Called shielded, bounded by ``linger``."""

    @abc.abstractmethod
    async def finish_close(self, deadline: float) -> None:
        """Half-close, drain and close; shielded, bounded by ``deadline``
        (``anyio.current_time()``); ends with :attr:`done` set."""
