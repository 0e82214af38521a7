"""The connect-callback recorder of :mod:`anytcpip.testing` and its default
time limit.

It needs neither pytest nor unittest, so it lives apart from the test base
classes; :mod:`anytcpip.testing` re-exports it.
"""

from __future__ import annotations

import collections

import anyio

from ._base import BaseClientOrServer

__all__ = ("STD_TIMEOUT", "ConnectRecorder")

#: Default time limit (seconds) for waiting on a connection or a callback.
STD_TIMEOUT = 2.0


class ConnectRecorder:
    """Records each call of a connect callback, for tests to check in order.

    Pass the recorder itself, or its bound method ``recorder.callback`` (do
    not call it), as ``connect_callback=``, then
    ``await recorder.assert_next(True)``.

    Parameters
    ----------
    timeout : `float`, optional
        How long :meth:`next`, :meth:`assert_next` and :meth:`wait_count`
        wait when not told otherwise (seconds).
    raise_error : `bool`, optional
        Make every call raise `RuntimeError` after recording (to test how a
        failing callback is handled); can be changed later.
    """

    def __init__(self, *, timeout: float = STD_TIMEOUT, raise_error: bool = False) -> None:
        #: Every ``connected`` value recorded so far, oldest first (including
        #: those taken by :meth:`next`).
        self.history: list[bool] = []
        #: The object each call was made for, in the same order.
        self.objects: list[BaseClientOrServer] = []
        #: The time (:func:`anyio.current_time`) of each call, in the same order.
        self.times: list[float] = []
        #: Whether a call raises `RuntimeError` after recording.
        self.raise_error = raise_error
        #: The default time limit of the waiting methods (seconds).
        self.timeout = timeout
        self._pending: collections.deque[bool] = collections.deque()
        self._waiter: anyio.Event | None = None

    @property
    def states(self) -> list[bool]:
        """The same list as :attr:`history`."""
        return self.history

    async def callback(self, obj: BaseClientOrServer) -> None:
        """A connect callback that records ``obj.connected``.

        Raises
        ------
        RuntimeError
            If :attr:`raise_error` is true (after recording).
        """
        self.history.append(obj.connected)
        self.objects.append(obj)
        self.times.append(anyio.current_time())
        self._pending.append(obj.connected)
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None
        if self.raise_error:
            raise RuntimeError("connect_callback raising on purpose")

    async def __call__(self, obj: BaseClientOrServer) -> None:
        """The same as :meth:`callback`, so the recorder itself can be passed.

        Raises
        ------
        RuntimeError
            If :attr:`raise_error` is true (after recording).
        """
        await self.callback(obj)

    def clear(self) -> None:
        """Forget everything recorded."""
        self.history.clear()
        self.objects.clear()
        self.times.clear()
        self._pending.clear()

    @property
    def pending(self) -> int:
        """How many recorded values have not been taken by :meth:`next`."""
        return len(self._pending)

    async def _changed(self) -> None:
        if self._waiter is None:
            self._waiter = anyio.Event()
        await self._waiter.wait()

    async def next(self, timeout: float | None = None) -> bool:
        """Take the oldest value not yet taken, waiting for one.

        Raises
        ------
        TimeoutError
            If no callback comes within ``timeout`` seconds (default:
            the recorder's ``timeout``).
        """
        with anyio.fail_after(self.timeout if timeout is None else timeout):
            while not self._pending:
                await self._changed()
        return self._pending.popleft()

    async def assert_next(self, connected: bool, timeout: float | None = None) -> None:
        """Assert that the next recorded value is ``connected``.

        Raises
        ------
        AssertionError
            If it is not.
        TimeoutError
            If no callback comes within ``timeout`` seconds (default:
            the recorder's ``timeout``).
        """
        value = await self.next(timeout)
        assert value == connected, f"connect_callback saw connected={value}, expected {connected}"

    async def wait_count(self, n: int, timeout: float | None = None) -> list[bool]:
        """Wait until at least ``n`` calls were recorded; return :attr:`history`.

        Raises
        ------
        TimeoutError
            If fewer than ``n`` calls come within ``timeout`` seconds
            (default: the recorder's ``timeout``).
        """
        limit = self.timeout if timeout is None else timeout
        with anyio.move_on_after(limit):
            while len(self.history) < n:
                await self._changed()
        if len(self.history) < n:
            raise TimeoutError(f"expected {n} callbacks within {limit} s, got {self.history}")
        return self.history

    def assert_alternating(self) -> None:
        """Assert that the calls alternate connected / disconnected, starting
        with connected.

        Raises
        ------
        AssertionError
            If they do not.
        """
        for i, state in enumerate(self.history):
            assert state == (i % 2 == 0), f"callbacks do not alternate: {self.history}"
