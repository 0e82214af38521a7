"""The receive side's lock: first come, first served, free of charge when free.

Every read that has to wait for data takes it, so it sits on the hot path of
request/response traffic. ``anyio.Lock`` (even with ``fast_acquire``) checks
for a pending cancellation on every acquire, which walks the task's cancel
scopes; this one only flips a flag while nobody else holds it. A read that
waits is still cancellable: the wait for data is.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType

import anyio

__all__ = ("ReadLock",)


class ReadLock:
    """An async lock, ``async with``-only, that hands itself over in order.

    Releasing it with tasks waiting passes ownership straight to the first of
    them (nobody can jump the queue in between). A waiter cancelled after it
    was handed the lock passes it on.
    """

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[anyio.Event] | None = None

    def locked(self) -> bool:
        """True while some task holds the lock."""
        return self._held

    async def __aenter__(self) -> None:
        if not self._held:
            self._held = True
            return
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        event = anyio.Event()
        waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                # Handed over, then cancelled: the next one gets it.
                self._release()
            else:
                waiters.remove(event)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        waiters = self._waiters
        if waiters:
            # Ownership passes on: _held stays True.
            waiters.popleft().set()
        else:
            self._held = False
