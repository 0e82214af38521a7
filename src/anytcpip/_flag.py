"""A one-way flag with the interface of :class:`anyio.Event`, cheap while
nobody waits on it.

Every connection and every client or server holds several one-way signals
(lost, done, released, close requested, ...). Most are set, or checked,
without anybody ever waiting for them, yet an :class:`anyio.Event` costs an
asyncio Event and its deque (trio: an Event and its ParkingLot) from the start:
with many connections in one process those add up to kilobytes per connection.
A :class:`Flag` is a boolean until the first :meth:`~Flag.wait` that has to
wait; only then does it make the event the waiters share.
"""

from __future__ import annotations

import anyio

__all__ = ("Flag",)


class Flag:
    """A one-shot event, set once and never cleared (like :class:`anyio.Event`).

    ``set()`` and ``is_set()`` work outside an event loop; ``wait()`` returns at
    once (after a checkpoint, as :meth:`anyio.Event.wait` does) if the flag is
    set, or waits until it is; any number of tasks may wait, and a waiter that
    is cancelled leaves the others waiting.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"<Flag {'set' if self._set else 'unset'}>"

    def is_set(self) -> bool:
        """Return True once :meth:`set` was called."""
        return self._set

    def set(self) -> None:
        """Set the flag and wake every waiter (no effect if it is set)."""
        if not self._set:
            self._set = True
            event = self._event
            if event is not None:
                self._event = None
                event.set()

    async def wait(self) -> None:
        """Wait until the flag is set (a checkpoint if it already is)."""
        if self._set:
            await anyio.lowlevel.checkpoint()
            return
        event = self._event
        if event is None:
            event = self._event = anyio.Event()
        await event.wait()
