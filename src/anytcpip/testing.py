"""Test support: :class:`BaseOneClientServerTestCase` (unittest, ts_tcpip's
drop-in), :class:`BaseOneClientServerTests` (pytest, every backend), a
connect-callback recorder, a conformance check of the read and write
methods, the types of the pytest plugin's factories, and the
list of backends to run tests on.

This module needs pytest (the rest of anytcpip does not).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
import typing
import unittest
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, overload

import anyio

try:
    import pytest
except ImportError as exc:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "anytcpip.testing needs pytest, which anytcpip does not install: pip install pytest"
    ) from exc

from . import _backends
from ._base import BaseClientOrServer
from ._client import Client
from ._conformance import check_read_write_methods
from ._constants import DEFAULT_LOCALHOST
from ._one_client_server import OneClientServer
from ._recorder import STD_TIMEOUT as _STD_TIMEOUT
from ._recorder import ConnectRecorder
from ._test_server import TestOneClientReadLoopServer

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet
    from typing_extensions import TypeVar

    #: The server class under test (OneClientServer when not given).
    ServerT = TypeVar("ServerT", bound=OneClientServer, default=OneClientServer)
else:
    ServerT = typing.TypeVar("ServerT", bound=OneClientServer)

_S = typing.TypeVar("_S", bound=OneClientServer)
_T = typing.TypeVar("_T")

__all__ = (
    "ALL_BACKENDS",
    "STD_TIMEOUT",
    "BaseOneClientServerTestCase",
    "BaseOneClientServerTests",
    "ClientFactory",
    "ConnectRecorder",
    "ServerFactory",
    "TestOneClientReadLoopServer",
    "available_backends",
    "check_read_write_methods",
)

#: ``anyio_backends = ALL_BACKENDS`` runs each test of a
#: :class:`BaseOneClientServerTestCase` on every installed backend.
ALL_BACKENDS = "all"


def _installed(name: str) -> bool:
    return _backends.get(name).installed


# (The value lives in _recorder, whose recorder uses it; named here for the docs.)
#: Default time limit (seconds) for waiting on a connection or a callback.
STD_TIMEOUT = _STD_TIMEOUT


def available_backends() -> list[ParameterSet]:
    """``pytest.param`` values for ``anyio_backend``: asyncio, plus
    asyncio+uvloop and trio when they are installed.

    Use it to run tests on every backend::

        @pytest.fixture(params=anytcpip.testing.available_backends())
        def anyio_backend(request):
            return request.param
    """
    return [pytest.param(b.anyio_backend(), id=b.name) for b in _backends.available()]


class _ServerTestSupport(Generic[ServerT]):
    """What both test base classes provide (see their docstrings)."""

    #: The server class under test (a subclass of :class:`OneClientServer`).
    server_class: type[ServerT] | None = None

    #: A logger named after the test class.
    log: logging.Logger
    _recorder: ConnectRecorder | None

    def _anytcpip_init(self) -> None:
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
    async def create_server(self, **kwargs: Any) -> AsyncIterator[ServerT]:
        """Run a :attr:`server_class` server on a free port of this machine.

        ``port=0`` and ``log=self.log`` are supplied (and
        ``host=DEFAULT_LOCALHOST`` for a plain :class:`OneClientServer`);
        ``kwargs`` go to the constructor. Clears the callback queue. The
        server has the type of :attr:`server_class` (for a type checker, the
        class's type parameter).

        Raises
        ------
        RuntimeError
            If :attr:`server_class` is not set.
        """
        server_class = self.server_class
        if server_class is None:
            raise RuntimeError("set the class attribute server_class")
        if server_class is OneClientServer:
            kwargs.setdefault("host", DEFAULT_LOCALHOST)
        self._recorder = ConnectRecorder()
        async with server_class(port=0, log=self.log, **kwargs) as server:
            # (the context manager mixin's __aenter__ loses the type variable)
            yield typing.cast(ServerT, server)

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

        Raises
        ------
        TimeoutError
            If ``wait_connected`` and the server does not get the client in
            time.
        """
        host = server.host if server.host is not None else DEFAULT_LOCALHOST
        async with Client(host=host, port=server.port, log=self.log, **kwargs) as client:
            if wait_connected:
                with anyio.fail_after(STD_TIMEOUT):
                    await server.connected_task
            yield client


class BaseOneClientServerTests(_ServerTestSupport[ServerT]):
    """Base class for pytest test classes (``class TestX(...)``) of a
    :class:`OneClientServer` subclass, each test on every installed backend.

    Set ``server_class``; then each test method (``async def test_...``)
    runs on asyncio, asyncio+uvloop and trio (those installed), with
    ``self.log`` set up. Use ``async with self.create_server(...)`` and
    ``async with self.create_client(server)``, and pass
    ``connect_callback=self.connect_callback`` to check connection changes
    with ``await self.assert_next_connected(...)``. Subclasses may define
    ``setup_method``. Write ``BaseOneClientServerTests[MyServer]`` for a type
    checker to know what ``self.create_server()`` yields. These methods are
    the same as :class:`BaseOneClientServerTestCase`'s.

    For ts_tcpip's unittest-style classes, see
    :class:`BaseOneClientServerTestCase`.
    """

    pytestmark: ClassVar[Any] = pytest.mark.anyio

    @pytest.fixture(params=available_backends())
    def anyio_backend(self, request: pytest.FixtureRequest) -> Any:
        """Run every test of the class on each installed backend."""
        return request.param

    @pytest.fixture(autouse=True)
    def _anytcpip_setup(self) -> None:
        self._anytcpip_init()


if sys.version_info >= (3, 11):

    def _test_part(outcome: Any, case: unittest.TestCase, is_test: bool) -> Any:
        return outcome.testPartExecutor(case)

else:  # pragma: no cover

    def _test_part(outcome: Any, case: unittest.TestCase, is_test: bool) -> Any:
        return outcome.testPartExecutor(case, isTest=is_test)


def _backend_names(value: str | Sequence[str], cls_name: str) -> list[str]:
    if value == ALL_BACKENDS:
        return [b.name for b in _backends.available()]
    names = [value] if isinstance(value, str) else list(value)
    known = [b.name for b in _backends.BACKENDS]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise TypeError(
            f"{cls_name}.anyio_backends={value!r}: use ALL_BACKENDS or names from {known}"
        )
    return names


def _on_backend(name: str, backend: str, original: Any) -> Callable[[Any], None]:
    def test(self: Any) -> None:
        getattr(self, name)()  # pragma: no cover (never called: see _callTestMethod)

    # Keep what unittest and pytest read from the method (expectedFailure,
    # skip, marks), under the copy's own name.
    functools.update_wrapper(test, original)
    del test.__wrapped__  # type: ignore[attr-defined]
    test.__qualname__ = f"{original.__qualname__}__{backend.replace('+', '_')}"
    test.__name__ = f"{name}__{backend.replace('+', '_')}"
    test.__doc__ = f"{name} on {backend}."
    test._anytcpip_run = (name, backend)  # type: ignore[attr-defined]
    return test


class BaseOneClientServerTestCase(_ServerTestSupport[ServerT], unittest.TestCase):
    """ts_tcpip's ``BaseOneClientServerTestCase``, a drop-in: a
    :class:`unittest.TestCase` for testing a :class:`OneClientServer`
    subclass, written as for :class:`unittest.IsolatedAsyncioTestCase`.

    Test methods may be ``async def``; ``setUp``, ``asyncSetUp``, the test,
    ``asyncTearDown``, ``tearDown`` and the cleanups (``addAsyncCleanup``,
    ``await self.enterAsyncContext(cm)``) all run in *one* task of one event
    loop per test, so an object entered in ``asyncSetUp`` can be exited in
    ``asyncTearDown`` (on every backend, and with anyio's cancel scopes). All
    of unittest is there (``self.assertEqual``, ``self.subTest``,
    ``self.assertLogs``...). pytest collects it whatever the class is named,
    and so does ``python -m unittest``.

    Tests run on asyncio. Set the class attribute :attr:`anyio_backends` to
    :data:`ALL_BACKENDS` (or to names such as ``("asyncio", "trio")``) to run
    each test on several: the first keeps the method's name, the others get
    copies named ``test_x__trio``, ``test_x__asyncio_uvloop``.
    :attr:`anyio_backend` says which one is running.

    Set ``server_class``, then use ``self.create_server(**kwargs)``,
    ``self.create_client(server)``, ``connect_callback=self.connect_callback``
    and ``await self.assert_next_connected(...)`` as in ts_tcpip.
    """

    #: The backends to run each test on, as names from ``"asyncio"``,
    #: ``"asyncio+uvloop"`` and ``"trio"``, or :data:`ALL_BACKENDS`.
    anyio_backends: ClassVar[str | Sequence[str]] = ("asyncio",)

    #: The backend the current test runs on (one of :attr:`anyio_backends`).
    anyio_backend: str = "asyncio"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = _backend_names(cls.anyio_backends, cls.__qualname__)
        cls._anytcpip_backends = names
        if len(names) < 2:
            return
        loader = unittest.TestLoader()
        for name in loader.getTestCaseNames(cls):
            attr = getattr(cls, name)
            if hasattr(attr, "_anytcpip_run"):
                continue
            for backend in names[1:]:
                copy = _on_backend(name, backend, attr)
                if copy.__name__ not in vars(cls):
                    setattr(cls, copy.__name__, copy)

    _anytcpip_backends: ClassVar[list[str]] = ["asyncio"]

    def run(self, result: unittest.result.TestResult | None = None) -> Any:
        """Set up ``self.log`` (as ts_tcpip does here, so that a ``setUp``
        that does not call ``super()`` cannot lose it), then run the test."""
        self._anytcpip_init()
        return super().run(result)

    async def asyncSetUp(self) -> None:
        """Hook: called after ``setUp``, in the test's task."""

    async def asyncTearDown(self) -> None:
        """Hook: called before ``tearDown``, in the test's task."""

    def addAsyncCleanup(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Add an async cleanup: ``await func(*args, **kwargs)`` after the
        test (in its task, last added first, with the other cleanups)."""
        self.addCleanup(func, *args, **kwargs)

    async def enterAsyncContext(self, cm: contextlib.AbstractAsyncContextManager[_T]) -> _T:
        """Enter the async context manager ``cm`` and exit it as a cleanup
        (in the same task); return what it yields.

        Raises
        ------
        TypeError
            If ``cm`` is not an async context manager.
        """
        cls = type(cm)
        try:
            enter = cls.__aenter__
            exit_ = cls.__aexit__
        except AttributeError:
            raise TypeError(f"{cls.__name__!r} object is not an async context manager") from None
        result: _T = await enter(cm)
        self.addAsyncCleanup(exit_, cm, None, None, None)
        return result

    # unittest calls these three in turn; all the work happens in the middle
    # one, inside one event loop, so that everything shares one task.

    def _callSetUp(self) -> None:
        pass

    def _callTearDown(self) -> None:
        pass

    def _callTestMethod(self, method: Callable[[], Any]) -> None:
        name, backend = getattr(method, "_anytcpip_run", (None, self._anytcpip_backends[0]))
        if name is not None:
            method = getattr(self, name)
        if not _installed(backend):
            raise unittest.SkipTest(f"{backend} is not installed")
        self.anyio_backend = backend
        library, options = _backends.get(backend).anyio_backend()
        anyio.run(self._anytcpip_run, method, backend=library, backend_options=options)

    async def _anytcpip_run(self, method: Callable[[], Any]) -> None:
        outcome = getattr(self, "_outcome", None)

        def part(is_test: bool = False) -> Any:
            if outcome is None:
                return contextlib.nullcontext()
            return _test_part(outcome, self, is_test)

        with part():
            self.setUp()
            await self.asyncSetUp()
        if outcome is None or outcome.success:
            with part(True):
                result = method()
                if inspect.isawaitable(result):
                    await result
            with part():
                await self.asyncTearDown()
                self.tearDown()
        cleanups: list[Any] = self._cleanups  # type: ignore[attr-defined]
        while cleanups:
            function, args, kwargs = cleanups.pop()
            with part():
                result = function(*args, **kwargs)
                if inspect.isawaitable(result):
                    await result


class ServerFactory(Protocol):
    """The type of the pytest plugin's ``anytcpip_server_factory`` fixture:
    ``await factory(ServerClass, **kwargs)`` returns a running server of that
    class (a plain :class:`OneClientServer` when no class is given)."""

    @overload
    async def __call__(self, /, **kwargs: Any) -> OneClientServer: ...

    @overload
    async def __call__(self, server_class: type[_S], /, **kwargs: Any) -> _S: ...


class ClientFactory(Protocol):
    """The type of the pytest plugin's ``anytcpip_client_factory`` fixture:
    ``await factory(server, wait_connected=True, **kwargs)`` returns a
    connected :class:`Client`."""

    async def __call__(
        self, server: OneClientServer, *, wait_connected: bool = True, **kwargs: Any
    ) -> Client: ...
