"""Write admission (:class:`WriteAdmission`, a base of
:class:`~anytcpip._connection.Connection`): when a write may queue its message.

A writer waits, before queueing anything, while the transport is behind
(backpressure); writers that wait are let through first come, first served.
A writer that need not wait still lets other tasks run at least once per
``WRITE_YIELD_BUDGET`` bytes, so a writer the kernel keeps up with cannot
starve them, and cancellation is honoured.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

from ._half_open import HalfOpen

__all__ = ("WRITE_CALL_COST", "WRITE_YIELD_BUDGET", "WriteAdmission")

#: Writes on one connection let other tasks run (a checkpoint) at least once
#: per this many bytes, each write counting as ``WRITE_CALL_COST`` bytes more
#: than its length: at least every 64 writes, or every 1 MiB.
WRITE_YIELD_BUDGET = 1 << 20
WRITE_CALL_COST = 1 << 14


class WriteAdmission(HalfOpen):
    """Backpressure and the yield budget (under the half-open grace, whose
    deadline a write extends); the state is set in ``Connection.__init__``."""

    __slots__ = ("_out_blocked", "_write_budget", "_write_waiters", "write_blocked")

    _out_blocked: bool
    _write_budget: int
    _write_waiters: list[anyio.Event]
    write_blocked: bool
    is_open: bool

    @property
    def writable(self) -> bool:
        """True while writes are allowed (Connection's)."""
        raise NotImplementedError  # pragma: no cover

    def not_connected(self) -> ConnectionError:
        """The error for an operation on an unusable connection (Connection's)."""
        raise NotImplementedError  # pragma: no cover

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
