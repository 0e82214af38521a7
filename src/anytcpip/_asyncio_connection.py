"""The asyncio fast path: a plain TCP connection served by an asyncio Protocol.

anyio's asyncio SocketStream pays for its generality on every message (an
event-loop round trip per ``send``, pausing and resuming the transport around
each ``receive``). For a plain TCP connection on asyncio or uvloop we take its
transport over with our own protocol, which feeds the receive buffer straight
from ``data_received`` and writes straight to the transport. Everything above
(the buffer, the reads, state and close semantics) is the same as for any
other connection; only how bytes move differs.

* Receiving needs no task: the protocol sees data, end-of-stream and resets as
  they happen, so a hangup is noticed at once whether or not anybody reads.
  Reading is paused while ``limit`` bytes are unread and nobody waits. With
  monitoring off it is also paused until the first read (or probe) wants
  data, so an unread flood stays in the kernel either way (anyio's own
  stream would read it all into memory).
* The first write of a burst goes to the transport at once; the rest of the
  burst is queued and handed over in one ``transport.write`` when the writing
  task yields to the event loop (or when 64 KiB pile up). Writers wait while
  the transport holds more than 64 KiB unsent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import anyio.abc

from ._connection import WRITE_HIGH_WATER, Connection
from ._exceptions import to_connection_error

__all__ = ("AsyncioConnection",)

_TRANSPORT_METHODS = (
    "set_protocol",
    "pause_reading",
    "resume_reading",
    "write",
    "write_eof",
    "can_write_eof",
    "set_write_buffer_limits",
    "get_write_buffer_size",
    "is_closing",
    "close",
    "abort",
)


class _Protocol(asyncio.Protocol):
    __slots__ = ("conn",)

    def __init__(self, conn: AsyncioConnection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        self.conn.on_data(data)

    def eof_received(self) -> bool:
        self.conn.on_eof()
        return True  # keep the transport open: what we write still goes out

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.on_connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.write_blocked = True

    def resume_writing(self) -> None:
        self.conn.write_blocked = False
        self.conn.on_writable()


class AsyncioConnection(Connection):
    """A :class:`Connection` whose bytes move through an asyncio Protocol."""

    _transport: asyncio.Transport

    @classmethod
    def take_over(
        cls, stream: anyio.abc.ByteStream, *, limit: int, monitor: bool, log: logging.Logger
    ) -> AsyncioConnection | None:
        """Take over the transport of an anyio asyncio ``SocketStream``.

        Returns None (and leaves ``stream`` alone) if ``stream`` is anything
        else, so the caller falls back to the generic path.
        """
        transport: Any = getattr(stream, "_transport", None)
        old: Any = getattr(stream, "_protocol", None)
        if (
            not hasattr(old, "read_queue")
            or not all(hasattr(transport, name) for name in _TRANSPORT_METHODS)
            or transport.is_closing()
        ):
            # uvloop's transports are not asyncio.Transport instances, hence
            # the duck typing.
            return None
        conn = cls(limit=limit, monitor=monitor, log=log)
        conn.stream = stream
        conn._transport = transport
        conn._loop = asyncio.get_running_loop()
        transport.pause_reading()
        transport.set_protocol(_Protocol(conn))
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        # Whatever anyio's protocol received before the swap comes first.
        for chunk in old.read_queue:
            conn.buffer.feed(chunk)
        old.read_queue.clear()
        if old.exception is not None:
            conn.set_error(to_connection_error(old.exception))
        elif old.is_at_eof:
            conn.set_eof()
        return conn

    def __init__(self, *, limit: int, monitor: bool, log: logging.Logger) -> None:
        super().__init__(limit=limit, monitor=monitor, log=log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._data_future: asyncio.Future[None] | None = None
        self._read_paused = True
        self._flush_scheduled = False
        # Set when the peer is done sending (end-of-stream or failure), and
        # when the transport is closed.
        self._peer_done = anyio.Event()
        self._transport_closed = anyio.Event()

    # -------------------------------------------------- protocol callbacks

    def on_data(self, data: bytes) -> None:
        if self.closed_here:
            return  # closing at this end: what still comes is thrown away
        buffer = self.buffer
        buffer.feed(data)
        self._wake_readers()
        # A waiting reader gets a look at this chunk before more is read; it
        # asks again if it needs more (so an over-long line in flight costs at
        # most the limit plus a chunk).
        self._reader_waiting = False
        if len(buffer) >= buffer.limit:
            self._pause_reading()

    def on_eof(self) -> None:
        self._peer_done.set()
        self.set_eof()

    def on_connection_lost(self, exc: Exception | None) -> None:
        self._peer_done.set()
        self._transport_closed.set()
        if exc is not None:
            self.set_error(to_connection_error(exc))
        else:
            self.set_eof()

    def on_writable(self) -> None:
        self._wake_writers()

    # ------------------------------------------------------------ receive

    def _pause_reading(self) -> None:
        if not self._read_paused:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            self._transport.resume_reading()

    def start_receiving(self, tg: anyio.abc.TaskGroup) -> None:
        self._pump_running = True
        if len(self.buffer) < self.buffer.limit:
            self._resume_reading()

    def consumed(self) -> None:
        self.reads += 1
        if self._read_paused and self._pump_running and len(self.buffer) < self.buffer.limit:
            self._resume_reading()

    def _wake_readers(self) -> None:
        future = self._data_future
        if future is not None:
            self._data_future = None
            if not future.done():
                future.set_result(None)

    async def _wait_for_data(self) -> None:
        # A bare loop future: cheaper than an anyio Event on this hot path,
        # and cancellable the same way (anyio cancels the waiting task).
        self._reader_waiting = True
        self._resume_reading()
        future = self._data_future
        if future is None or future.done():
            assert self._loop is not None
            future = self._data_future = self._loop.create_future()
        try:
            await future
        finally:
            self._reader_waiting = False

    async def probe(self) -> None:
        # The protocol sees end-of-stream as soon as the loop does; a few
        # checkpoints let it run its callbacks.
        if not self._pump_running:
            self._resume_reading()
        for _ in range(3):
            if not self._usable():
                return
            await anyio.lowlevel.checkpoint()

    # --------------------------------------------------------------- send

    def start_sending(self, tg: anyio.abc.TaskGroup) -> None:
        pass

    def queue(self, data: bytes) -> None:
        self._reads_at_write = self.reads
        if self._flush_scheduled:
            self._out.append(data)
            self.out_len += len(data)
            if self.out_len >= WRITE_HIGH_WATER:
                self._flush()
        else:
            self._transport.write(data)
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        self.out_len = 0
        if self.error is None and not self._transport.is_closing():
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    @property
    def flushed(self) -> bool:
        return not self._out and self._transport.get_write_buffer_size() == 0

    async def wait_flushed(self) -> None:
        # Hand the queue to the transport; finish_close waits for the rest.
        self._flush()

    # -------------------------------------------------------------- close

    async def finish_close(self, deadline: float) -> None:
        transport = self._transport
        try:
            with anyio.CancelScope(shield=True):
                self._flush()
                if self.error is None and not transport.is_closing():
                    with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                        # Half-close, take (and discard) whatever the peer still
                        # sends until its end-of-stream, then close: closing with
                        # unread data would make the kernel reset the connection.
                        try:
                            self._resume_reading()
                            if transport.can_write_eof():
                                transport.write_eof()
                        except OSError:
                            pass  # the peer reset it meanwhile: abort below
                        else:
                            await self._peer_done.wait()
                            transport.close()
                            await self._transport_closed.wait()
                if not self._transport_closed.is_set():
                    transport.abort()
                    with anyio.move_on_after(1):
                        await self._transport_closed.wait()
        finally:
            self.stream = None
            self._became_unusable()
            self.done.set()
