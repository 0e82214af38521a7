"""The trio transport: a plain TCP stream whose socket is used directly.

On trio, anyio's socket stream wraps a real non-blocking socket, so most
reads and writes need no trip through the scheduler:

* Receiving: ``sock.recv`` first, and wait for readability only when the
  kernel has nothing. The pump (monitoring on) waits for readability in a
  cancel scope; a reader that needs data takes the pump's place (cancels its
  wait, which trio unregisters at once, and waits itself), saving the hop
  through the pump. Receiving and feeding the buffer happen in one step, so
  bytes keep their order whichever task receives them.
* Writing: a write with nothing queued or being sent goes to the kernel at
  once, in the writer's call; only what the kernel does not take is queued
  for the flusher (see ``_transport_stream``), and later writes queue behind
  it, so they coalesce exactly when the kernel is behind.

Closing, TLS-free goodbye and the flusher are the generic stream's.
"""

from __future__ import annotations

import logging
import socket

import anyio
import anyio.abc

from ._connection import RECEIVE_CHUNK, WRITE_CALL_COST
from ._exceptions import to_connection_error
from ._transport_stream import StreamConnection

__all__ = ("TrioConnection",)


class TrioConnection(StreamConnection):
    """A :class:`StreamConnection` that receives and sends on the raw socket.

    Parameters
    ----------
    limit, monitor, log
        As for :class:`~anytcpip._connection.Connection`.
    stream : anyio.abc.ByteStream
        anyio's trio socket stream (used for the flusher and the goodbye).
    sock : socket.socket
        Its socket.
    """

    # Slots, as for Connection.
    __slots__ = ("_pump_wait_scope", "_sock")

    def __init__(
        self,
        *,
        limit: int,
        monitor: bool,
        log: logging.Logger,
        stream: anyio.abc.ByteStream,
        sock: socket.socket,
    ) -> None:
        super().__init__(limit=limit, monitor=monitor, log=log, stream=stream)
        self._sock = sock
        # The cancel scope of the pump waiting for the socket.
        self._pump_wait_scope: anyio.CancelScope | None = None

    # --------------------------------------------------------------- receive

    async def _pump_loop(self, stream: anyio.abc.ByteStream) -> None:
        buffer = self.buffer
        sock = self._sock
        while self._usable():
            while len(buffer) >= buffer.limit and not self._reader_waiting:
                await self._pump_pause()
                if not self._usable():
                    return
            if self._recv_now(sock):
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

    def _recv_now(self, sock: socket.socket) -> bool:
        """Receive what the kernel has, without waiting.

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
            if self.track_received:
                self.last_received = anyio.current_time()
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
        sock = self._sock
        while self.is_open and not self._recv_now(sock):
            await self._wait_readable_as_reader(sock)

    async def _wait_for_data(self) -> None:
        if not self._pump_running:
            await self._receive_direct()
            return
        # Rather than wait for the pump to receive and then wake us (one
        # more trip through the scheduler), take its place: cancel its wait
        # (trio unregisters it at once) and wait for the socket here.
        sock = self._sock
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

    # ------------------------------------------------------------------ send

    async def _send_chunk(self, stream: anyio.abc.ByteStream, data: bytes) -> None:
        """Send ``data`` on the socket, counting what the kernel has not taken."""
        sock = self._sock
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError):
                await anyio.wait_writable(sock)
                continue
            view = view[sent:]
            self._in_flight = len(view)

    def queue(self, data: bytes) -> None:
        if not self._out.size and not self._sending:
            # Nothing queued or being sent: give it to the kernel now, and
            # queue only what it does not take.
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.set_error(to_connection_error(exc))
                raise self.not_connected() from None
            if sent != len(data):
                self._queue_rest(data[sent:] if sent else data)
        else:
            self._queue_rest(data)
        budget = self._write_budget - len(data) - WRITE_CALL_COST
        self._write_budget = budget
        if budget < 0:
            self.write_blocked = True
