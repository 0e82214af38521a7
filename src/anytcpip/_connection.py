"""One connection: the receive buffer and pump, the write queue, graceful close.

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
* **Closing.** Flush what was written, half-close (TLS: close_notify), discard
  what the peer still sends until its end-of-stream (TLS: its close_notify),
  then close; all of it bounded by ``linger`` seconds, so a peer that never
  reads or never closes cannot hold ``close()`` for longer.
* **Half-closed peers.** After a plain TCP peer's end-of-stream the
  connection is no longer open (``connected`` is False), but while one of
  its requests waits for an answer it stays *writable* for a short grace
  (see :meth:`Connection.linger_half_open`).
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ._buffer import ReceiveBuffer, SendBuffer
from ._exceptions import LimitOverrunError, is_transport_error, to_connection_error

__all__ = (
    "HALF_CLOSE_GRACE",
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

#: Writes on one connection let other tasks run (a checkpoint) at least once
#: per this many bytes, each write counting as ``WRITE_CALL_COST`` bytes more
#: than its length: at least every 64 writes, or every 1 MiB.
WRITE_YIELD_BUDGET = 1 << 20
WRITE_CALL_COST = 1 << 14

#: After the peer's end-of-stream with a request unanswered, how long the
#: connection stays writable after the end-of-stream or the last write (as
#: long as lsst.ts.tcpip's default monitoring period).
HALF_CLOSE_GRACE = 0.1

#: With monitoring off, how long a server looks at its connected client's
#: socket, when another client arrives, for a sign that the first one left.
PROBE_TIME = 0.02


class Connection:
    """The state of one TCP or TLS connection, shared by reads and writes.

    Parameters
    ----------
    limit : int
        Read limit; also the amount of unread data past which the pump pauses.
    monitor : bool
        Run the pump (continuous monitoring). If False, reads receive directly.
    log : logging.Logger
        Where to log.
    """

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
        #: False once any of the three above is true (kept as a plain attribute
        #: because every read and write looks at it).
        self.is_open = True
        # Set once the connection became unusable; set once the socket is
        # closed and every task of the connection has finished.
        self.lost = anyio.Event()
        self.done = anyio.Event()
        # Receive side. ``readers`` counts reads inside read() (waiting for the
        # lock or for data); while it is not 0, fast paths must not jump the queue.
        self.readers = 0
        self._sock: socket.socket | None = None
        # An anyio asyncio stream's transport (monitoring off): see queue().
        self._transport_w: Any = None
        self._read_lock = anyio.Lock(fast_acquire=True)
        self._pump_running = False
        self._reader_waiting = False
        # Cancel scopes of a pump or reader waiting for the raw socket.
        self._pump_wait_scope: anyio.CancelScope | None = None
        self._reader_scope: anyio.CancelScope | None = None
        self._data_waiter: anyio.Event | None = None
        self._space_waiter: anyio.Event | None = None
        # Send side.
        self._out = SendBuffer(WRITE_HIGH_WATER)
        #: True while a write must go through wait_writable() before queueing:
        #: backpressure, writers waiting their turn, or the yield budget spent.
        self.write_blocked = False
        # Backpressure: too much is queued (or the transport said so).
        self._out_blocked = False
        # Writers waiting for their turn, in order; the head's event is set
        # when it may go (it stays in the queue until it has run).
        self._write_waiters: deque[anyio.Event] = deque()
        self._write_budget = WRITE_YIELD_BUDGET
        self._sending = False
        # The error made up when a write found the transport closing (see
        # _failed_writing); the transport's own reason may replace it.
        self._write_failure: ConnectionError | None = None
        self._flush_waiter: anyio.Event | None = None
        self._drain_waiter: anyio.Event | None = None
        # Half-close (see linger_half_open): after the peer's end-of-stream,
        # writes stay allowed until this is set, or the connection fails or
        # is closed here.
        self.half_open_over = False
        self._half_open_deadline = float("inf")
        self._half_open_grace = 0.0
        self._half_open_waiter: anyio.Event | None = None
        # Reads that returned something, and their number at the last write:
        # if it changed, a message was read and not answered yet.
        self.reads = 0
        self._reads_at_write = 0

    @property
    def out_len(self) -> int:
        """Bytes queued and not yet handed to the transport."""
        return self._out.size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer} open={self.is_open}>"

    @classmethod
    def create(
        cls,
        stream: anyio.abc.ByteStream,
        *,
        limit: int,
        monitor: bool,
        log: logging.Logger,
        attach: bool = True,
    ) -> Connection:
        """Make the connection for ``stream``: the asyncio fast path where it
        applies, else the generic one. With ``attach`` False the stream is
        attached later (after a TLS handshake), with :meth:`attach`."""
        if attach:
            # Only an asyncio stream qualifies (checked inside).
            from ._asyncio_connection import AsyncioConnection

            fast = AsyncioConnection.take_over(stream, limit=limit, monitor=monitor, log=log)
            if fast is not None:
                return fast
        conn = Connection(limit=limit, monitor=monitor, log=log)
        if attach:
            conn.attach(stream)
        return conn

    def attach(self, stream: anyio.abc.ByteStream) -> None:
        """Use ``stream`` (for a connection made with ``attach=False``)."""
        self.stream = stream
        # A plain TCP stream on trio: its socket is a real non-blocking socket,
        # so reads and writes can often be done without a trip through the
        # scheduler (see _recv_now and queue).
        if type(stream).__module__ == "anyio._backends._trio" and isinstance(
            stream, anyio.abc.SocketStream
        ):
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            if isinstance(sock, socket.socket):
                self._sock = sock
        # A plain TCP stream on asyncio (here only with monitoring off; else
        # AsyncioConnection took it over): a write with nothing queued before
        # it goes straight to its transport, which sends at once.
        elif type(stream).__module__ == "anyio._backends._asyncio" and isinstance(
            stream, anyio.abc.SocketStream
        ):
            transport = getattr(stream, "_transport", None)
            if all(
                hasattr(transport, name)
                for name in ("write", "is_closing", "get_write_buffer_size")
            ):
                self._transport_w = transport

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
            and not isinstance(self.stream, TLSStream)
        )

    def _became_unusable(self) -> None:
        self.is_open = False
        self.lost.set()
        waiter = self._half_open_waiter
        if waiter is not None:
            self._half_open_waiter = None
            waiter.set()
        self._wake_readers()
        self._wake_writers()
        for event in self._write_waiters:
            event.set()
        self._resume_pump()
        if self._flush_waiter is not None:
            self._flush_waiter.set()
            self._flush_waiter = None

    def set_eof(self) -> None:
        if not self.eof:
            self.eof = True
            self._became_unusable()

    def set_error(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self.log.debug("connection %s failed: %r", self.peer, exc)
            self._out.clear()
            self._out_blocked = False
            self._became_unusable()

    def close_here(self) -> None:
        """Mark closed at this end: every read and later write fails at once;
        what was already written is still sent."""
        if not self.closed_here:
            self.closed_here = True
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

    def _wake_readers(self) -> None:
        waiter = self._data_waiter
        if waiter is not None:
            self._data_waiter = None
            waiter.set()
        # A reader waiting for the raw socket: the data it waits for may just
        # have been taken by the pump (it was already on its way when the
        # reader took over), so stop its wait and let it look at the buffer.
        scope = self._reader_scope
        if scope is not None:
            scope.cancel()

    def consumed(self) -> None:
        """Count a read, and let the pump go on if it made room in the buffer."""
        self.reads += 1
        waiter = self._space_waiter
        if waiter is not None and len(self.buffer) < self.buffer.limit:
            self._space_waiter = None
            waiter.set()

    async def pump(self) -> None:
        """Receive into the buffer until end-of-stream, failure or cancellation."""
        stream = self.stream
        assert stream is not None
        # A reader that is receiving for itself (it got here first) finishes
        # first; every reader after this waits for the pump instead.
        async with self._read_lock:
            self._pump_running = True
        sock = self._sock
        try:
            with self._failures_to_state():
                await self._pump_loop(stream, sock)
        finally:
            self._pump_running = False
            self._wake_readers()

    async def _pump_loop(self, stream: anyio.abc.ByteStream, sock: socket.socket | None) -> None:
        buffer = self.buffer
        while self._usable():
            while len(buffer) >= buffer.limit and not self._reader_waiting:
                await self._pump_pause()
                if not self._usable():
                    return
            if sock is None:
                chunk = await stream.receive(RECEIVE_CHUNK)
                if self.closed_here:
                    return  # closed while receiving: throw it away
                buffer.feed(chunk)
                self._wake_readers()
                # A waiting reader gets a look at this chunk before more
                # is received (it asks again if it needs more).
                self._reader_waiting = False
            elif self._recv_now(sock):
                self._reader_waiting = False
            else:
                if self._reader_waiting:
                    # A reader is waiting for the socket itself (see
                    # _wait_for_data); stand aside until it is done.
                    await self._pump_pause()
                    continue
                try:
                    with anyio.CancelScope() as self._pump_wait_scope:
                        await anyio.wait_readable(sock)
                finally:
                    self._pump_wait_scope = None

    @contextmanager
    def _failures_to_state(self) -> Iterator[None]:
        """Turn the end of the stream, or a transport failure, into state."""
        try:
            yield
        except anyio.EndOfStream:
            self.set_eof()
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            self.set_error(to_connection_error(exc))

    async def _pump_pause(self) -> None:
        waiter = self._space_waiter = anyio.Event()
        await waiter.wait()

    def _resume_pump(self) -> None:
        waiter = self._space_waiter
        if waiter is not None:
            self._space_waiter = None
            waiter.set()

    def _recv_now(self, sock: socket.socket) -> bool:
        """Receive what the kernel has, without waiting (raw-socket mode).

        Returns False if nothing was there. The receive and the feed happen
        in one step, so bytes reach the buffer in the order they arrived,
        whichever task calls this.
        """
        try:
            data = sock.recv(RECEIVE_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.set_error(to_connection_error(exc))
            return True
        if data:
            if self.closed_here:
                return True  # closed at this end: what still comes is thrown away
            self.buffer.feed(data)
            self._wake_readers()
        else:
            self.set_eof()
        return True

    async def _wait_readable_as_reader(self, sock: socket.socket) -> None:
        """Wait until ``sock`` is readable, in a scope that closing cancels."""
        try:
            with anyio.CancelScope() as self._reader_scope:
                if self.is_open:
                    await anyio.wait_readable(sock)
        finally:
            self._reader_scope = None

    async def _receive_direct(self) -> None:
        stream = self.stream
        assert stream is not None
        sock = self._sock
        if sock is not None:
            while self.is_open and not self._recv_now(sock):
                await self._wait_readable_as_reader(sock)
            return
        try:
            with self._failures_to_state(), anyio.CancelScope() as self._reader_scope:
                if self.is_open:
                    chunk = await stream.receive(RECEIVE_CHUNK)
                    if not self.closed_here:
                        self.buffer.feed(chunk)
        finally:
            self._reader_scope = None

    async def _wait_for_data(self) -> None:
        if not self._pump_running:
            await self._receive_direct()
            return
        sock = self._sock
        if sock is not None:
            # Raw-socket mode: rather than wait for the pump to receive and
            # then wake us (one more trip through the scheduler), take its
            # place: cancel its wait (trio unregisters it at once) and wait
            # for the socket here.
            if self._recv_now(sock):
                return
            self._reader_waiting = True
            try:
                scope = self._pump_wait_scope
                if scope is not None:
                    scope.cancel()
                await self._wait_readable_as_reader(sock)
                if self.is_open:
                    self._recv_now(sock)
            finally:
                self._reader_waiting = False
                self._resume_pump()
            return
        self._reader_waiting = True
        self._resume_pump()
        waiter = self._data_waiter
        if waiter is None:
            waiter = self._data_waiter = anyio.Event()
        try:
            await waiter.wait()
        finally:
            self._reader_waiting = False

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
                        # This end has seen all the peer sent: nothing more
                        # to answer after this.
                        self.end_half_open()
                        if not waited and not self.buffer:
                            raise self.not_connected()
                        return at_eof(waited)
                    await self._wait_for_data()
                    waited = True
        finally:
            self.readers -= 1

    async def probe(self) -> None:
        """Give a pending end-of-stream or reset the chance to be noticed."""
        if not self.is_open:
            return
        if self._pump_running:
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
                if not self._usable():
                    return
        elif not self._read_lock.locked():
            # Nobody is reading: receive for a moment. A peer that left may
            # have sent data before its end-of-stream, so go on until the
            # end-of-stream, the buffer is full, or the moment is over.
            async with self._read_lock:
                with anyio.move_on_after(PROBE_TIME):
                    while self._usable() and len(self.buffer) < self.buffer.limit:
                        await self._receive_direct()

    # ------------------------------------------------------------------ send

    def _wake_writers(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            waiter.set()

    def start_sending(self, tg: anyio.abc.TaskGroup) -> None:
        """Start sending what is queued."""
        tg.start_soon(self.flusher)

    def start_receiving(self, tg: anyio.abc.TaskGroup) -> None:
        """Start receiving continuously (monitoring)."""
        tg.start_soon(self.pump)

    def queue(self, data: bytes) -> None:
        """Queue ``data`` to be sent (the caller checked ``is_open`` and
        ``write_blocked``).

        Raises
        ------
        ConnectionError
            If sending at once failed (nothing of ``data`` went out).
        """
        self._reads_at_write = self.reads
        sock = self._sock
        if sock is not None and not self._out.size and not self._sending:
            # Nothing queued or being sent: give it to the kernel now, and
            # queue only what it does not take.
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.set_error(to_connection_error(exc))
                raise self.not_connected() from None
            if sent != len(data):
                self._queue_rest(data[sent:] if sent else data)
        elif (
            self._transport_w is not None
            and not self._out.size
            and not self._sending
            and not self._transport_w.get_write_buffer_size()
        ):
            transport = self._transport_w
            try:
                transport.write(data)
            except RuntimeError:  # uvloop, once the handle is closed
                pass
            if transport.is_closing():
                self._failed_writing()
        else:
            self._queue_rest(data)
        budget = self._write_budget - len(data) - WRITE_CALL_COST
        self._write_budget = budget
        if budget < 0:
            self.write_blocked = True

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

    def _queue_rest(self, data: bytes) -> None:
        if self._out.append(data):
            self._out_blocked = self.write_blocked = True
        waiter = self._flush_waiter
        if waiter is not None:
            self._flush_waiter = None
            waiter.set()

    def _set_out_blocked(self, blocked: bool) -> None:
        """Backpressure starts or ends; at its end the first waiting writer goes."""
        self._out_blocked = blocked
        if not blocked and self._write_waiters:
            self._write_waiters[0].set()
        self._update_write_blocked()

    def _update_write_blocked(self) -> None:
        self.write_blocked = (
            self._out_blocked or bool(self._write_waiters) or self._write_budget < 0
        )

    async def wait_writable(self) -> None:
        """Wait until a message may be queued; raise if the connection is unusable.

        Writers that must wait for backpressure to end go in the order they
        came. A writer that need not wait still lets other tasks run first
        (the yield budget is spent, see ``WRITE_YIELD_BUDGET``).
        """
        self._check_writable()
        if not (self._out_blocked or self._write_waiters):
            await anyio.lowlevel.checkpoint()
            self._check_writable()
        if self._out_blocked or self._write_waiters:
            await self._wait_turn()
        self._write_budget = WRITE_YIELD_BUDGET
        self._update_write_blocked()

    def _check_writable(self) -> None:
        """Raise unless a write may go out now. After a plain TCP peer's
        end-of-stream (half-open), a write also restarts the grace period."""
        if not self.is_open:
            if not self.writable:
                raise self.not_connected()
            self._half_open_deadline = anyio.current_time() + self._half_open_grace

    async def _wait_turn(self) -> None:
        waiters = self._write_waiters
        event = anyio.Event()
        waiters.append(event)
        self.write_blocked = True
        try:
            while True:
                await event.wait()
                self._check_writable()
                if not self._out_blocked:
                    return
                # Blocked again before this writer ran: wait again, still first.
                index = waiters.index(event)
                event = waiters[index] = anyio.Event()
        finally:
            waiters.remove(event)
            # Let the next one go (it runs after this writer has queued).
            if waiters and not self._out_blocked:
                waiters[0].set()
            self._update_write_blocked()

    async def flusher(self) -> None:
        """Send whatever is queued, in order, until cancelled or the link fails."""
        stream = self.stream
        assert stream is not None
        try:
            while True:
                out = self._out
                if not out.size:
                    self._wake_writers()
                    if self.error is not None:
                        return
                    waiter = self._flush_waiter = anyio.Event()
                    await waiter.wait()
                    continue
                data = out.take_all()
                self._sending = True
                if self._out_blocked:
                    self._set_out_blocked(False)
                await stream.send(data)
                self._sending = False
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            self.set_error(to_connection_error(exc))
        finally:
            self._sending = False
            self._wake_writers()

    @property
    def flushed(self) -> bool:
        return not self._out.size and not self._sending

    async def linger_half_open(self, grace: float) -> None:
        """After the peer's end-of-stream, keep the connection writable until
        nothing has been written for ``grace`` seconds, this end closes, a
        write fails, or :meth:`end_half_open` is called (a read reached the
        end-of-stream, or the next client came). Returns at once if no
        request is waiting for an answer: no read returned a message since
        our last write, and no read is in progress."""
        if self.reads == self._reads_at_write and not self.readers:
            self.half_open_over = True
            return
        self._half_open_grace = grace
        self._half_open_deadline = anyio.current_time() + grace
        try:
            while self.writable:
                remaining = self._half_open_deadline - anyio.current_time()
                if remaining <= 0:
                    break
                waiter = self._half_open_waiter = anyio.Event()
                with anyio.move_on_after(remaining):
                    await waiter.wait()
        finally:
            self.half_open_over = True
            self._half_open_waiter = None

    def end_half_open(self) -> None:
        """Stop allowing writes after the peer's end-of-stream (nothing more
        is expected: the read loop ended, or the next client came)."""
        if not self.half_open_over:
            self.half_open_over = True
            waiter = self._half_open_waiter
            if waiter is not None:
                self._half_open_waiter = None
                waiter.set()

    async def wait_flushed(self) -> None:
        """Wait until everything queued has been handed to the kernel, or the
        link failed."""
        while not self.flushed and self.error is None:
            waiter = self._drain_waiter
            if waiter is None:
                waiter = self._drain_waiter = anyio.Event()
            await waiter.wait()

    # ----------------------------------------------------------------- close

    async def finish_close(self, deadline: float) -> None:
        """Half-close, drain and close the stream (the pump and flusher must have
        stopped). Shielded, and bounded by ``deadline`` (``anyio.current_time()``)."""
        stream = self.stream
        try:
            if stream is None:
                return
            with anyio.CancelScope(shield=True):
                if self.error is None:
                    with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                        await self._goodbye(stream)
                await anyio.aclose_forcefully(stream)
        finally:
            self.stream = None
            self._became_unusable()
            self.done.set()

    async def _goodbye(self, stream: anyio.abc.ByteStream) -> None:
        try:
            if isinstance(stream, TLSStream):
                if not await _send_close_notify(stream):
                    await stream.aclose()
                    return
            else:
                try:
                    await stream.send_eof()
                except RuntimeError:
                    # uvloop's transport, already closed by a peer's reset that
                    # nobody noticed (monitoring off): nothing left to say
                    # goodbye to.
                    return
            if not self.eof:
                # A reader receiving for itself was cancelled by the close and
                # is on its way out; the lock makes sure it is gone.
                async with self._read_lock:
                    while True:
                        await stream.receive(RECEIVE_CHUNK)
        except (anyio.EndOfStream, ssl.SSLZeroReturnError):
            pass  # the peer's end (TLS: its close_notify)
        except Exception as exc:
            if not is_transport_error(exc):
                raise


async def _send_close_notify(stream: TLSStream) -> bool:
    """Send our TLS close_notify without waiting for the peer's.

    ``TLSStream.aclose()`` sends it and then waits for the peer's, and fails
    (``APPLICATION_DATA_AFTER_CLOSE_NOTIFY``) if application data comes first;
    the socket is then closed with unread data, which makes the kernel reset
    the connection and the peer lose what we sent. After this, the caller
    reads (and throws away) what the peer still sends, up to its close_notify.

    Returns False if the stream is not one this can handle (it uses anyio's
    TLSStream internals); the caller then falls back to ``aclose()``.
    """
    ssl_object = getattr(stream, "_ssl_object", None)
    write_bio = getattr(stream, "_write_bio", None)
    if not isinstance(ssl_object, ssl.SSLObject) or not isinstance(write_bio, ssl.MemoryBIO):
        return False
    if getattr(stream, "standard_compatible", True):
        try:
            # Records already received but not decrypted (a receive was
            # cancelled by the close) are application data: the shutdown
            # would fail on them, so throw them away first.
            while ssl_object.read(RECEIVE_CHUNK):
                pass
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLZeroReturnError):
            pass
        except ssl.SSLError:
            return True  # the session is broken; nothing more to send
        try:
            ssl_object.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass  # expected: the peer's close_notify has not come yet
        except ssl.SSLError:
            return True  # the session is broken; nothing more to send
        data = write_bio.read()
        if data:
            await stream.transport_stream.send(data)
    else:
        await stream.transport_stream.send_eof()
    return True
