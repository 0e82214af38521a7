"""The trio transport: a plain TCP stream whose socket is used directly.

On trio, anyio's socket stream wraps a real non-blocking socket, so most
reads and writes need no trip through the scheduler:

* Receiving: ``sock.recv`` first, and wait for readability only when the
  kernel has nothing. With monitoring on, the pump is the only task that
  waits for the socket; a reader that finds nothing parks (trio's lowlevel
  park, no cancel scope) and the pump wakes it once it has fed the buffer.
  Only one task may wait for a trio socket, and handing the wait over from
  the pump to the reader and back cost two more task switches and two cancel
  scopes per read. A reader that waits for the socket itself while the pump
  stands aside answers sooner (trio echo p50 0.64 of ts_tcpip's, against
  0.87) but its cancel scope per wait halved the fleet's rate: not done.
  Receiving and feeding the buffer happen in one step, so bytes keep their
  order whichever task receives them. A client's pump runs in its serving
  task (``receive_here``): one task fewer per client, and a hangup wakes the
  disconnect callback in the same scheduler pass. A server keeps a pump task:
  its close would have to cancel that receive, and on a two-CPU machine the
  cancellation's work right after our end-of-stream delayed the peer seeing it
  (the woken peer waits for the CPU the closer is on) by about 0.3 ms.
* Writing: a write with nothing queued or being sent goes to the kernel at
  once, in the writer's call; only what the kernel does not take is queued
  for the flusher (see ``_transport_stream``), and later writes queue behind
  it, so they coalesce exactly when the kernel is behind.

Closing, TLS-free goodbye and the flusher are the generic stream's.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import anyio
import anyio.abc

if TYPE_CHECKING:
    import trio.lowlevel

from ._connection import RECEIVE_CHUNK, WRITE_CALL_COST
from ._exceptions import to_connection_error
from ._flag import Flag
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
    __slots__ = (
        "_abort_park", "_output_ended", "_parked", "_pump_scope", "_sock", "_succeeded", "_trio",
    )  # fmt: skip

    receives_in_serving_task = True

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
        # Our end-of-stream has been sent (see _end_output_early).
        self._output_ended = False
        # The scope of receive_here, cancelled once the connection is unusable.
        self._pump_scope: anyio.CancelScope | None = None
        # A reader parked until the pump has received (see _wait_for_data).
        self._parked: trio.lowlevel.Task | None = None
        # trio is imported here, not with the module: importing anytcpip
        # must not import a backend (only made on trio, where it is loaded).
        import trio.lowlevel

        self._trio = trio.lowlevel
        self._succeeded = trio.lowlevel.Abort.SUCCEEDED
        # Bound once: a parked read allocates nothing for its abort.
        self._abort_park = self._unpark

    # --------------------------------------------------------------- receive

    async def receive_here(self) -> None:
        # The pump, in the serving task: anything that makes the connection
        # unusable stops it at once (a separate pump would go on waiting for
        # the peer's answer to a close; the goodbye reads that instead).
        with anyio.CancelScope() as self._pump_scope:
            if self._usable():
                await self.pump()
        self._pump_scope = None

    def _wake_transport(self) -> None:
        super()._wake_transport()
        scope = self._pump_scope
        if scope is not None:
            scope.cancel()

    async def _pump_loop(self, stream: anyio.abc.ByteStream) -> None:
        buffer = self.buffer
        sock = self._sock
        while self._usable():
            while len(buffer) >= buffer.limit and not self._reader_waiting:
                await self._pump_pause()
                if not self._usable():
                    return
            received = self._recv_now(sock)
            if received < 0 or 0 < received < RECEIVE_CHUNK:
                # Nothing there, or a short read (the kernel had no more):
                # wait rather than pay for a receive that finds nothing.
                await anyio.wait_readable(sock)

    def _recv_now(self, sock: socket.socket) -> int:
        """Receive what the kernel has, without waiting.

        Returns the number of bytes received: -1 if nothing was there, 0 at
        end-of-stream or on a failure (now in the state). The receive and the
        feed happen in one step, so bytes reach the buffer in the order they
        arrived, whichever task calls this.
        """
        try:
            data = sock.recv(RECEIVE_CHUNK)
        except (BlockingIOError, InterruptedError):
            return -1
        except OSError as exc:
            self.set_error(to_connection_error(exc))
            return 0
        if data:
            if self.closed_here:
                return len(data)  # closed at this end: what still comes is thrown away
            self.buffer.feed(data)
            if self.track_received:
                self.last_received = anyio.current_time()
            self._wake_readers()
            return len(data)
        self.set_eof()
        return 0

    def _unpark(self, _: object) -> trio.lowlevel.Abort:
        # A parked reader is cancelled: it is no longer waiting.
        self._parked = None
        return self._succeeded

    def _wake_readers(self) -> None:
        task = self._parked
        if task is not None:
            self._parked = None
            # It looks at the buffer before the pump goes past the limit.
            self._reader_waiting = False
            self._trio.reschedule(task)
        super()._wake_readers()

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
        while self.is_open and self._recv_now(sock) < 0:
            await self._wait_readable_as_reader(sock)

    async def _wait_for_data(self) -> None:
        if not self._pump_running:
            await self._receive_direct()
            return
        # What the kernel has may not have reached the pump yet: take it.
        if self._recv_now(self._sock) >= 0:
            return
        # Park until the pump has received (one wake, no cancel scope). A
        # paused pump goes on: the reader needs more than the limit.
        self._reader_waiting = True
        self._resume_pump()
        lowlevel = self._trio
        self._parked = lowlevel.current_task()
        try:
            await lowlevel.wait_task_rescheduled(self._abort_park)
        finally:
            self._reader_waiting = False

    def _end_output_early(self) -> None:
        # With everything handed to the kernel, half-close now; otherwise the
        # flusher sends the rest and the teardown half-closes after it.
        if self._output_ended or self.stream is None or self._out.size or self._sending:
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            return  # reset meanwhile: the goodbye finds out
        self._output_ended = True

    async def half_close_before_teardown(self) -> None:
        # Cancelling the pump and then sending the end-of-stream takes passes
        # of the scheduler while the peer waits for it. With everything
        # handed to the kernel, half-close now instead, and let the pump end
        # by itself once the peer answers (it stops at the first readiness
        # after a close at this end); meanwhile the process is idle.
        if self.error is not None or not self._pump_running or self._out.size or self._sending:
            return
        if not self._output_ended:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                return  # reset meanwhile: the goodbye finds out
        ended = self._pump_ended
        if ended is None:
            ended = self._pump_ended = Flag()
        await ended.wait()

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
