"""The trio transport: a plain TCP stream whose socket is used directly.

On trio, anyio's socket stream wraps a real non-blocking socket, so most
reads and writes need no trip through the scheduler:

* Receiving: ``sock.recv`` first, and wait for readability only when the
  kernel has nothing. With monitoring on, the pump waits for the socket and
  a reader that finds nothing parks (trio's lowlevel park, no cancel scope)
  until the pump has fed the buffer: two task switches per message, the
  pump's and the reader's. Only one task may wait for a trio socket, so
  when reads come in a quick request-and-answer rhythm (a read loop, an
  exchange with a controller) the pump stands aside after feeding a reader
  and the next read waits for the socket itself: one switch per message
  (echo p50 from about 0.8 to about 0.6 of ts_tcpip's). That wait costs a
  cancel scope, which for many connections taking turns (the fleet) cost
  more than it saved: a read that waits long ends it. Each read that ends
  wakes the pump, which takes the socket back unless a reader waits on it
  again by then: a hangup is still noticed at once when nobody reads.
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
from time import perf_counter
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

#: The pump stands aside for the next read (see _stand_aside) after a read
#: that began within BACK_TO_BACK seconds of the end of the one before and
#: got its data within QUICK_ANSWER; it stops once a read waits longer. (A
#: reader's own wait costs a cancel scope: worth it for a request-response
#: rhythm, not for a read now and then, or many connections taking turns.)
BACK_TO_BACK = 200e-6
QUICK_ANSWER = 500e-6


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
        "_abort_aside", "_abort_park", "_aside", "_aside_woken", "_cancel_scope", "_handed_over",
        "_may_stand_aside", "_output_ended", "_parked", "_pump_scope", "_read_ended", "_sock",
        "_succeeded", "_trio",
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
        import trio

        self._trio = trio.lowlevel
        self._cancel_scope = trio.CancelScope
        self._succeeded = trio.lowlevel.Abort.SUCCEEDED
        # Bound once: a parked read allocates nothing for its abort.
        self._abort_park = self._unpark
        # The pump, while it stands aside for readers that wait on the socket
        # themselves (see _stand_aside), and whether it was woken since.
        self._aside: trio.lowlevel.Task | None = None
        self._aside_woken = False
        self._abort_aside = self._unpark_aside
        # The pump has just fed a parked reader; it may then stand aside
        # (a read came within BACK_TO_BACK of the one before); when the last
        # read ended (time.perf_counter()).
        self._handed_over = False
        self._may_stand_aside = False
        self._read_ended = 0.0

    # --------------------------------------------------------------- receive

    async def receive_here(self) -> None:
        # The pump, in the serving task: anything that makes the connection
        # unusable stops it at once (a separate pump would go on waiting for
        # the peer's answer to a close; the goodbye reads that instead).
        try:
            with anyio.CancelScope() as self._pump_scope:
                if self._usable():
                    await self.pump()
        finally:
            self._pump_scope = None

    def _wake_transport(self) -> None:
        super()._wake_transport()
        self._wake_aside()
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
                # wait rather than pay for a receive that finds nothing; or,
                # having fed a reader that will be back, let it wait itself.
                if self._handed_over and self._may_stand_aside:
                    await self._stand_aside()
                else:
                    await anyio.wait_readable(sock)
            self._handed_over = False

    async def _stand_aside(self) -> None:
        """Park, off the socket, while readers wait on it themselves.

        A reader that comes while the pump stands aside waits for the socket
        itself, and trio wakes it directly: one task switch per message
        instead of two (the pump's, then the reader's). Every read that ends
        wakes the pump, which goes back to the socket unless a reader waits
        on it again by then (so monitoring resumes within one pass of the
        scheduler after the last read); closing wakes it too. Only done while
        reads follow each other at once (a read loop, request and answer):
        for a single read now and then it would cost the pump a pass more.
        """
        lowlevel = self._trio
        try:
            while self._usable():
                self._aside = lowlevel.current_task()
                await lowlevel.wait_task_rescheduled(self._abort_aside)
                self._aside_woken = False
                if self._reader_scope is None:
                    # Nobody came back: monitor the socket again, and stand
                    # aside no more until reads follow each other again.
                    self._may_stand_aside = False
                    return
        finally:
            self._aside = None

    def _unpark_aside(self, _: object) -> trio.lowlevel.Abort:
        self._aside = None
        self._aside_woken = False
        return self._succeeded

    def _wake_aside(self) -> None:
        """Let the pump, if it stands aside, look again whether a reader waits."""
        task = self._aside
        if task is not None and not self._aside_woken:
            self._aside_woken = True
            self._trio.reschedule(task)

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
            self._handed_over = True
            self._trio.reschedule(task)
        super()._wake_readers()

    async def _wait_readable_as_reader(self, sock: socket.socket) -> None:
        """Wait until ``sock`` is readable, in a scope that closing cancels
        (trio's own: anyio's adds a layer to every wait)."""
        try:
            with self._cancel_scope() as self._reader_scope:
                if self.is_open:
                    await self._trio.wait_readable(sock)
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
        if self._aside is not None:
            # The pump stands aside: wait for the socket here.
            start = perf_counter()
            try:
                await self._receive_direct()
            finally:
                end = self._read_ended = perf_counter()
                if end - start > QUICK_ANSWER:
                    self._may_stand_aside = False  # no quick rhythm: not worth it
                self._wake_aside()
            return
        # What the kernel has may not have reached the pump yet: take it.
        if self._recv_now(self._sock) >= 0:
            return
        start = perf_counter()
        back_to_back = start - self._read_ended < BACK_TO_BACK
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
            end = self._read_ended = perf_counter()
            # Request and answer in quick succession (this read came right
            # after the last, and its data soon): the next read may wait for
            # the socket itself.
            self._may_stand_aside = back_to_back and end - start < QUICK_ANSWER
            # The pump, if it stands aside now, goes back to the socket
            # unless this reader (or another) waits on it by then.
            self._wake_aside()

    def _shut_write(self) -> bool:
        """Send our end-of-stream, once; False if the socket failed (a reset
        meanwhile: the goodbye finds out)."""
        if not self._output_ended:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                return False
            self._output_ended = True
        return True

    def _end_output_early(self) -> None:
        # With everything handed to the kernel, half-close now; otherwise the
        # flusher sends the rest and the teardown half-closes after it.
        if self.stream is not None and not self._out.size and not self._sending:
            self._shut_write()

    async def half_close_before_teardown(self) -> None:
        # Cancelling the pump and then sending the end-of-stream takes passes
        # of the scheduler while the peer waits for it. With everything
        # handed to the kernel, half-close now instead, and let the pump end
        # by itself once the peer answers (it stops at the first readiness
        # after a close at this end); meanwhile the process is idle.
        if self.error is not None or not self._pump_running or self._out.size or self._sending:
            return
        if not self._shut_write():
            return
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
