"""The half-open grace of a connection (:class:`HalfOpen`, a base of
:class:`~anytcpip._connection.Connection`).

After a plain TCP peer's end-of-stream the connection is no longer open, but
the peer may still wait for answers to what it sent before it half-closed: the
connection stays writable for a short grace, extended by each write and ended
early when nothing more can be expected.
"""

from __future__ import annotations

from dataclasses import replace

import anyio

from ._buffer import ReceiveBuffer
from ._disconnect import DisconnectKind, DisconnectReason

__all__ = ("HalfOpen",)


class HalfOpen:
    """The half-open grace; the state lives in ``Connection.__init__``."""

    __slots__ = (
        "_half_open_deadline", "_half_open_grace", "_half_open_waiter", "_input_done", "_reason",
        "half_open_over", "tasks_running",
    )  # fmt: skip

    buffer: ReceiveBuffer
    reads: int
    readers: int
    tasks_running: int
    half_open_over: bool
    _half_open_deadline: float
    _half_open_grace: float
    _half_open_waiter: anyio.Event | None
    _input_done: bool
    _reason: DisconnectReason | None
    #: The owner threw the unread input away (a reconnecting client, on the
    #: loss): it stays counted as unread.
    unread_dropped: bool
    closed_here: bool

    @property
    def writable(self) -> bool:
        """True while writes are allowed (see ``Connection.writable``)."""
        raise NotImplementedError  # pragma: no cover - Connection's

    async def linger_half_open(self, grace: float) -> None:
        """After the peer's end-of-stream, keep the connection writable until
        nothing has been written for ``grace`` seconds (counted from the
        end-of-stream, then from each write), this end closes, a write fails,
        or :meth:`end_half_open` is called (a read reached the end-of-stream
        with nothing left and no task of the connection still runs, or the
        next client came). Returns at once if the peer cannot be waiting for
        an answer: nothing was ever read on this connection, nothing is
        buffered, no read is in progress and no task of the connection runs."""
        if not (self.reads or self.buffer or self.readers or self.tasks_running):
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

    def input_exhausted(self) -> None:
        """A read reached the peer's end-of-stream with nothing left unread:
        end the half-open grace now, or, while tasks of the connection still
        run (they may answer), when the last of them ends."""
        self._input_done = True
        if not self.tasks_running:
            self.end_half_open()

    def task_ended(self) -> None:
        """A task of the connection ended (see :meth:`input_exhausted`)."""
        self.tasks_running -= 1
        if not self.tasks_running and self._input_done:
            self.end_half_open()

    def end_half_open(self) -> None:
        """Stop allowing writes after the peer's end-of-stream (nothing more
        is expected: the read loop ended, or the next client came)."""
        if not self.half_open_over:
            self.half_open_over = True
            waiter = self._half_open_waiter
            if waiter is not None:
                self._half_open_waiter = None
                waiter.set()

    def settle_unread(self) -> DisconnectReason | None:
        """The disconnect reason once the half-open grace is over: after the
        peer's end-of-stream, what was read within the grace no longer counts
        as unread (a close at this end in it keeps the count it discarded)."""
        reason = self._reason
        if (
            reason is not None
            and reason.kind is DisconnectKind.PEER_CLOSED
            and not self.closed_here
            and not self.unread_dropped
            and len(self.buffer) < reason.unread
        ):
            self._reason = reason = replace(reason, unread=len(self.buffer))
        return reason
