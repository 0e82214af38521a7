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
* Every write goes to the transport at once, and the transport (asyncio's and
  uvloop's alike) sends it at once when nothing is buffered before it: only
  what the kernel does not take is buffered, and later writes are appended to
  that buffer, so bursts coalesce while the kernel is behind. Writers wait
  while the transport holds more than 64 KiB unsent. A transport that failed
  while writing is closing and drops what it is given, so every write checks
  ``is_closing()`` and raises at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import anyio
import anyio.abc

from ._connection import RECEIVE_CHUNK, WRITE_CALL_COST, WRITE_HIGH_WATER, Connection
from ._disconnect import DisconnectKind, kind_of_error
from ._exceptions import to_connection_error
from ._flag import Flag

__all__ = ("AsyncioConnection",)

#: What a receive asks for while receives fill RECEIVE_CHUNK (a bulk stream):
#: asyncio's own default (see AsyncioConnection._adapt_receive_size).
BULK_RECEIVE = 1 << 18

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
        self.conn._set_out_blocked(True)

    def resume_writing(self) -> None:
        self.conn._set_out_blocked(False)


class AsyncioConnection(Connection):
    """A :class:`Connection` whose bytes move through an asyncio Protocol."""

    # Slots, as for Connection.
    __slots__ = (
        "_adapt_reads", "_data_future", "_loop", "_peer_done", "_read_paused", "_transport",
        "_transport_closed",
    )  # fmt: skip

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
        if isinstance(getattr(type(transport), "max_size", None), int):
            # asyncio's selector transport: see _adapt_receive_size.
            conn._adapt_reads = True
            transport.max_size = RECEIVE_CHUNK
        # Whatever anyio's protocol received before the swap comes first.
        for chunk in old.read_queue:
            conn.buffer.feed(chunk)
        # anyio's protocol is never used again (the stream's receive and send,
        # which would need it, are not called once it is taken over): let go
        # of its queue and events, two kilobytes per connection.
        del old.read_queue, old.read_event, old.write_event
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
        # Whether the transport's receive size is ours to choose.
        self._adapt_reads = False
        # Set when the peer is done sending (end-of-stream or failure), and
        # when the transport is closed.
        self._peer_done = Flag()
        self._transport_closed = Flag()

    # -------------------------------------------------- protocol callbacks

    def on_data(self, data: bytes) -> None:
        if self._adapt_reads:
            self._adapt_receive_size(len(data))
        if self.closed_here:
            return  # closing at this end: what still comes is thrown away
        buffer = self.buffer
        buffer.feed(data)
        if self.track_received:
            # The loop's clock is anyio.current_time() on asyncio (no task
            # runs here, so anyio cannot tell the backend).
            self.last_received = self._loop.time()  # type: ignore[union-attr]
        self._wake_readers()
        # A waiting reader gets a look at this chunk before more is read; it
        # asks again if it needs more (so an over-long line in flight costs at
        # most the limit plus a chunk).
        if len(buffer) >= buffer.limit:
            self._pause_reading()

    def _adapt_receive_size(self, received: int) -> None:
        """Ask for 64 KiB per receive, or 256 KiB while receives fill that.

        asyncio's selector transport receives up to ``max_size`` bytes per
        call into a new bytes object of that size, shrunk to what came. Its
        default, 256 KiB, is above malloc's mmap threshold: each receive then
        also costs mmap, mremap and munmap (strace), more than everything
        else a short message costs, and with hundreds of connections more so
        (the fleet at N=300: 5.2k -> 8.6k round trips per second with 64 KiB).
        A bulk stream, whose receives fill 64 KiB, gets the 256 KiB back: four
        times fewer callbacks are worth the mapping there.
        """
        transport: Any = self._transport
        if received >= RECEIVE_CHUNK:
            if transport.max_size < BULK_RECEIVE:
                transport.max_size = BULK_RECEIVE
        elif transport.max_size > RECEIVE_CHUNK:
            transport.max_size = RECEIVE_CHUNK

    def on_eof(self) -> None:
        self._peer_done.set()
        self.set_eof()

    def on_connection_lost(self, exc: Exception | None) -> None:
        self._peer_done.set()
        self._transport_closed.set()
        if exc is not None:
            error = to_connection_error(exc)
            failure = self._write_failure
            if failure is not None and self.error is failure:
                # A write found the transport closing, before it said why:
                # the real error replaces the made-up one, in the reason too
                # (a keepalive timeout is no reset).
                self.error = error
                reason = self._reason
                if reason is not None and reason.exception is failure:
                    self._reason = replace(reason, kind=kind_of_error(error), exception=error)
            self.set_error(error)
        else:
            self.set_eof()

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

    def _wait_for_data(self) -> asyncio.Future[None]:
        # A bare loop future, awaited by the read itself (no coroutine of its
        # own): cheaper than an anyio Event on this hot path, and cancellable
        # the same way (anyio cancels the waiting task, which cancels it).
        self._resume_reading()
        future = self._data_future
        if future is None or future.done():
            assert self._loop is not None
            future = self._data_future = self._loop.create_future()
        return future

    async def probe(self) -> None:
        # The protocol sees end-of-stream as soon as the loop does; a few
        # checkpoints let it run its callbacks.
        if not self._pump_running:
            self._resume_reading()
        for _ in range(3):
            if not self._usable():
                return
            await anyio.lowlevel.checkpoint()

    def _wake_transport(self) -> None:
        pass  # the protocol callbacks need no waking

    # --------------------------------------------------------------- send

    def start_sending(self, tg: anyio.abc.TaskGroup) -> None:
        pass

    def queue(self, data: bytes) -> None:
        transport = self._transport
        try:
            transport.write(data)
        except RuntimeError:
            # uvloop, once the handle is closed; asyncio after write_eof(),
            # which only a close at this end does (callers check for it, but
            # the message must never vanish without an error).
            if self.closed_here:
                raise self.not_connected() from None
        if transport.is_closing():
            self._failed_writing()
        budget = self._write_budget - len(data) - WRITE_CALL_COST
        self._write_budget = budget
        if budget < 0:
            self.write_blocked = True

    @property
    def out_len(self) -> int:
        """Bytes the transport holds, not yet handed to the kernel."""
        try:
            return int(self._transport.get_write_buffer_size())
        except (RuntimeError, AttributeError):  # pragma: no cover - closed (uvloop)
            return 0

    @property
    def flushed(self) -> bool:
        return self._transport.get_write_buffer_size() == 0

    async def wait_flushed(self) -> None:
        # Everything is with the transport already; finish_close waits for it.
        pass

    # -------------------------------------------------------------- close

    def _end_output_early(self) -> None:
        # The transport sends what it holds first, then shuts the socket's
        # sending side; finish_close's own write_eof is then a no-op.
        transport = self._transport
        try:
            if not transport.is_closing() and transport.can_write_eof():
                transport.write_eof()
        except (OSError, RuntimeError):
            pass  # reset meanwhile (uvloop: handle closed): the close finds out

    async def finish_close(self, deadline: float) -> None:
        transport = self._transport
        try:
            with anyio.CancelScope(shield=True):
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
            self._ended(DisconnectKind.CLOSED_HERE)
            self._became_unusable()
            self.done.set()
