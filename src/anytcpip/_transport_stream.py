"""The generic transport: any anyio byte stream (TLS, and whatever else).

* With monitoring on, a *pump* task owns the receive side: it receives chunks
  into the buffer and wakes a waiting reader; it pauses while ``limit`` bytes
  are unread (unless a reader needs more). With monitoring off a reader
  receives for itself, holding the read lock.
* A *flusher* task sends everything queued (a :class:`SendBuffer`) in one
  ``send``. On an asyncio socket stream that could not be taken over (see
  ``_transport_asyncio``), a write with nothing queued before it goes straight
  to the stream's transport instead.
* Closing: flush, half-close (TLS: our close_notify), discard what the peer
  still sends until its end (TLS: its close_notify), close.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ._buffer import SendBuffer
from ._connection import (
    PROBE_TIME,
    RECEIVE_CHUNK,
    WRITE_CALL_COST,
    WRITE_HIGH_WATER,
    Connection,
)
from ._disconnect import DisconnectKind
from ._exceptions import is_transport_error, to_connection_error
from ._flag import Flag

__all__ = ("StreamConnection",)


class _Cancellable(Protocol):
    def cancel(self) -> None: ...


class StreamConnection(Connection):
    """A :class:`Connection` on an anyio byte stream, with a pump and a flusher.

    Parameters
    ----------
    limit, monitor, log
        As for :class:`Connection`.
    stream : anyio.abc.ByteStream or None
        The stream; None to attach it later with :meth:`attach` (after a TLS
        handshake).
    direct_transport : object, optional
        An asyncio transport under ``stream`` that writes may use directly
        when nothing is queued (``write``, ``is_closing``,
        ``get_write_buffer_size``).
    """

    # Slots, as for Connection.
    __slots__ = (
        "_data_waiter", "_drain_waiter", "_flush_waiter", "_flusher_group", "_in_flight", "_out",
        "_pump_ended", "_reader_scope", "_sending", "_space_waiter", "_transport_w",
    )  # fmt: skip

    def __init__(
        self,
        *,
        limit: int,
        monitor: bool,
        log: logging.Logger,
        stream: anyio.abc.ByteStream | None = None,
        direct_transport: Any = None,
    ) -> None:
        super().__init__(limit=limit, monitor=monitor, log=log)
        self.stream = stream
        self._transport_w: Any = direct_transport
        # The cancel scope of a reader waiting to receive (closing cancels
        # it; on trio, trio's own scope: anything with cancel()).
        self._reader_scope: _Cancellable | None = None
        self._data_waiter: anyio.Event | None = None
        self._space_waiter: anyio.Event | None = None
        self._out = SendBuffer(WRITE_HIGH_WATER)
        self._sending = False
        # Bytes the flusher is sending and the stream has not taken yet.
        self._in_flight = 0
        self._flush_waiter: anyio.Event | None = None
        # The task group the flusher starts in, at the first queued write
        # (None once started, or before start_sending).
        self._flusher_group: anyio.abc.TaskGroup | None = None
        self._drain_waiter: anyio.Event | None = None
        # Set when the pump ends (made by whoever waits for that first).
        self._pump_ended: Flag | None = None

    @property
    def out_len(self) -> int:
        """Bytes queued, or being sent, and not yet handed to the transport."""
        return self._out.size + self._in_flight

    def _writes_after_eof(self) -> bool:
        return not isinstance(self.stream, TLSStream)

    def _wake_transport(self) -> None:
        if self.error is not None:
            self._out.clear()
        self._wake_writers()
        self._resume_pump()
        if self._flush_waiter is not None:
            self._flush_waiter.set()
            self._flush_waiter = None

    # --------------------------------------------------------------- receive

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
        try:
            with self._failures_to_state():
                await self._pump_loop(stream)
        finally:
            self._pump_running = False
            self._wake_readers()
            if self._pump_ended is not None:
                self._pump_ended.set()

    async def _pump_loop(self, stream: anyio.abc.ByteStream) -> None:
        buffer = self.buffer
        while self._usable():
            while len(buffer) >= buffer.limit and not self._reader_waiting:
                await self._pump_pause()
                if not self._usable():
                    return
            chunk = await stream.receive(RECEIVE_CHUNK)
            if self.closed_here:
                return  # closed while receiving: throw it away
            buffer.feed(chunk)
            if self.track_received:
                self.last_received = anyio.current_time()
            self._wake_readers()
            # A waiting reader gets a look at this chunk before more
            # is received (it asks again if it needs more).
            self._reader_waiting = False

    async def _pump_pause(self) -> None:
        waiter = self._space_waiter = anyio.Event()
        await waiter.wait()

    def _resume_pump(self) -> None:
        waiter = self._space_waiter
        if waiter is not None:
            self._space_waiter = None
            waiter.set()

    async def _receive_direct(self) -> None:
        stream = self.stream
        assert stream is not None
        try:
            with self._failures_to_state(), anyio.CancelScope() as self._reader_scope:
                if self.is_open:
                    chunk = await stream.receive(RECEIVE_CHUNK)
                    if not self.closed_here:
                        self.buffer.feed(chunk)
                        if self.track_received:
                            self.last_received = anyio.current_time()
        finally:
            self._reader_scope = None

    async def _wait_for_data(self) -> None:
        if not self._pump_running:
            await self._receive_direct()
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
        """Send what is queued, from now on: the flusher starts in ``tg`` once
        something is queued (a connection whose writes all go straight to the
        kernel never needs one)."""
        if self._out.size:
            tg.start_soon(self.flusher)
        else:
            self._flusher_group = tg

    def start_receiving(self, tg: anyio.abc.TaskGroup) -> None:
        """Start receiving continuously (monitoring)."""
        tg.start_soon(self.pump)

    def queue(self, data: bytes) -> None:
        transport = self._transport_w
        if (
            transport is not None
            and not self._out.size
            and not self._sending
            and not transport.get_write_buffer_size()
        ):
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

    def _queue_rest(self, data: bytes) -> None:
        if self._out.append(data):
            self._out_blocked = self.write_blocked = True
        waiter = self._flush_waiter
        if waiter is not None:
            self._flush_waiter = None
            waiter.set()
        elif self._flusher_group is not None:
            group, self._flusher_group = self._flusher_group, None
            try:
                group.start_soon(self.flusher)
            except RuntimeError:
                pass  # the group is gone (cancelled from outside): as for a cancelled flusher

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
                self._in_flight = len(data)
                if self._out_blocked:
                    self._set_out_blocked(False)
                await self._send_chunk(stream, data)
                self._sending = False
                self._in_flight = 0
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            self.set_error(to_connection_error(exc))
        finally:
            self._sending = False
            self._wake_writers()

    async def _send_chunk(self, stream: anyio.abc.ByteStream, data: bytes) -> None:
        """Send ``data`` (all of it counts as unsent until the stream took it)."""
        await stream.send(data)

    @property
    def flushed(self) -> bool:
        return not self._out.size and not self._sending

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
            self._ended(DisconnectKind.CLOSED_HERE)
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
