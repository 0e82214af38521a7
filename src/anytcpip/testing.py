"""Test support: :class:`BaseOneClientServerTestCase`, a connect-callback
recorder, and the list of backends to run tests on.

This module needs pytest (the rest of anytcpip does not).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio

try:
    import pytest
except ImportError as exc:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "anytcpip.testing needs pytest, which anytcpip does not install: pip install pytest"
    ) from exc

from ._base import BaseClientOrServer
from ._client import Client
from ._constants import DEFAULT_LOCALHOST
from ._one_client_server import OneClientServer
from ._test_server import TestOneClientReadLoopServer

__all__ = (
    "STD_TIMEOUT",
    "BaseOneClientServerTestCase",
    "ConnectRecorder",
    "TestOneClientReadLoopServer",
    "available_backends",
)

#: Default time limit (seconds) for waiting on a connection or a callback.
STD_TIMEOUT = 2.0


def available_backends() -> list[Any]:
    """``pytest.param`` values for ``anyio_backend``: asyncio, plus
    asyncio+uvloop and trio when they are installed.

    Use it to run tests on every backend::

        @pytest.fixture(params=anytcpip.testing.available_backends())
        def anyio_backend(request):
            return request.param
    """
    params = [pytest.param(("asyncio", {}), id="asyncio")]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    else:
        params.append(pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"))
    try:
        import trio  # noqa: F401
    except ImportError:
        pass
    else:
        params.append(pytest.param(("trio", {}), id="trio"))
    return params


class ConnectRecorder:
    """Records the :attr:`~BaseClientOrServer.connected` value seen by each call
    of a connect callback, for tests to check in order.

    Pass the bound method ``recorder.callback`` itself (do not call it) as
    ``connect_callback=``, then ``await recorder.assert_next(True)``.
    """

    def __init__(self) -> None:
        #: Every value recorded so far, oldest first (including those taken).
        self.history: list[bool] = []
        self._pending: collections.deque[bool] = collections.deque()
        self._waiter: anyio.Event | None = None

    async def callback(self, obj: BaseClientOrServer) -> None:
        """A connect callback that records ``obj.connected``."""
        self.history.append(obj.connected)
        self._pending.append(obj.connected)
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None

    def clear(self) -> None:
        """Forget everything recorded."""
        self.history.clear()
        self._pending.clear()

    @property
    def pending(self) -> int:
        """How many recorded values have not been taken by :meth:`next`."""
        return len(self._pending)

    async def next(self, timeout: float = STD_TIMEOUT) -> bool:
        """Take the oldest value not yet taken, waiting for one.

        Raises
        ------
        TimeoutError
            If no callback comes within ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while not self._pending:
                if self._waiter is None:
                    self._waiter = anyio.Event()
                await self._waiter.wait()
        return self._pending.popleft()

    async def assert_next(self, connected: bool, timeout: float = STD_TIMEOUT) -> None:
        """Assert that the next recorded value is ``connected``.

        Raises
        ------
        AssertionError
            If it is not.
        TimeoutError
            If no callback comes within ``timeout`` seconds.
        """
        value = await self.next(timeout)
        assert value == connected, f"connect_callback saw connected={value}, expected {connected}"


class BaseOneClientServerTestCase:
    """Base class for pytest test classes of a :class:`OneClientServer`
    subclass, on every installed backend.

    Set :attr:`server_class`; then each test method (``async def test_...``)
    runs on asyncio, asyncio+uvloop and trio (those installed), with
    :attr:`log` set up. Use ``async with self.create_server(...)`` and
    ``async with self.create_client(server)``, and pass
    ``connect_callback=self.connect_callback`` to check connection changes
    with :meth:`assert_next_connected`. Subclasses may define ``setup_method``.
    """

    pytestmark: ClassVar[Any] = pytest.mark.anyio

    #: The server class under test (a subclass of :class:`OneClientServer`).
    server_class: ClassVar[type[OneClientServer] | None] = None

    #: A logger named after the test class.
    log: logging.Logger
    _recorder: ConnectRecorder | None

    @pytest.fixture(params=available_backends())
    def anyio_backend(self, request: pytest.FixtureRequest) -> Any:
        """Run every test of the class on each installed backend."""
        return request.param

    @pytest.fixture(autouse=True)
    def _anytcpip_setup(self) -> None:
        self.log = logging.getLogger(type(self).__name__)
        self._recorder = None

    async def connect_callback(self, server: BaseClientOrServer) -> None:
        """A connect callback that queues ``server.connected`` for
        :meth:`assert_next_connected`.

        Raises
        ------
        RuntimeError
            If :meth:`create_server` has not been called.
        """
        if self._recorder is None:
            raise RuntimeError("call create_server first")
        await self._recorder.callback(server)

    async def assert_next_connected(self, connected: bool, timeout: float = STD_TIMEOUT) -> None:
        """Assert that the next queued connect callback saw ``connected``.

        Raises
        ------
        AssertionError
            If it saw the other value.
        TimeoutError
            If no callback comes within ``timeout`` seconds.
        RuntimeError
            If :meth:`create_server` has not been called.
        """
        if self._recorder is None:
            raise RuntimeError("call create_server first")
        await self._recorder.assert_next(connected, timeout)

    @asynccontextmanager
    async def create_server(self, **kwargs: Any) -> AsyncIterator[Any]:
        """Run a :attr:`server_class` server on a free port of this machine.

        ``port=0`` and ``log=self.log`` are supplied (and
        ``host=DEFAULT_LOCALHOST`` for a plain :class:`OneClientServer`);
        ``kwargs`` go to the constructor. Clears the callback queue.

        Raises
        ------
        RuntimeError
            If :attr:`server_class` is not set.
        """
        if self.server_class is None:
            raise RuntimeError("set the class attribute server_class")
        if self.server_class is OneClientServer:
            kwargs.setdefault("host", DEFAULT_LOCALHOST)
        self._recorder = ConnectRecorder()
        async with self.server_class(port=0, log=self.log, **kwargs) as server:
            yield server

    @asynccontextmanager
    async def create_client(
        self, server: OneClientServer, *, wait_connected: bool = True, **kwargs: Any
    ) -> AsyncIterator[Client]:
        """Run a :class:`Client` connected to ``server``.

        Parameters
        ----------
        server : OneClientServer
            The server to connect to (its host, or this machine for a server
            on every interface, and its port).
        wait_connected : bool, optional
            Wait (up to :data:`STD_TIMEOUT`) until the server has the client.
        **kwargs
            For the :class:`Client` constructor.
        """
        host = server.host if server.host is not None else DEFAULT_LOCALHOST
        async with Client(host=host, port=server.port, log=self.log, **kwargs) as client:
            if wait_connected:
                with anyio.fail_after(STD_TIMEOUT):
                    await server.connected_task
            yield client
