"""pytest plugin: fixtures for testing code built on anytcpip.

Installed with anytcpip and registered through the ``pytest11`` entry point,
so the fixtures are there in every project that has anytcpip and pytest. They
need anyio's pytest plugin (async tests marked ``@pytest.mark.anyio``, or
``anyio_mode = "auto"``).

Fixtures (all prefixed ``anytcpip_``):

``anytcpip_log``
    A logger named after the test.
``anytcpip_connect_recorder``
    A :class:`~anytcpip.testing.ConnectRecorder`: pass its ``callback`` as
    ``connect_callback`` and ``await recorder.assert_next(True)``.
``anytcpip_server_factory``
    ``server = await anytcpip_server_factory(ServerClass, **kwargs)`` starts a
    server on a free port of this machine (``port=0``, ``log``, and
    ``host=DEFAULT_LOCALHOST`` for a plain ``OneClientServer``, unless given)
    and closes it after the test.
``anytcpip_client_factory``
    ``client = await anytcpip_client_factory(server, **kwargs)`` connects a
    :class:`~anytcpip.Client` to ``server``, waits until the server has it
    (``wait_connected=False`` to skip that), and closes it after the test.

anyio's plugin runs each async test on asyncio and (when installed) trio. To
add asyncio+uvloop, opt in with ``anytcpip_all_backends = true`` in the pytest
configuration: each test that uses ``anyio_backend`` then runs on asyncio,
asyncio+uvloop and trio (those installed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest

from ._client import Client
from ._constants import DEFAULT_LOCALHOST
from ._one_client_server import OneClientServer

if TYPE_CHECKING:
    from .testing import ClientFactory, ConnectRecorder, ServerFactory

# anytcpip.testing (which looks for trio and uvloop) is imported on first use,
# not at every pytest start in every project that has anytcpip installed.

__all__ = (
    "anytcpip_client_factory",
    "anytcpip_connect_recorder",
    "anytcpip_log",
    "anytcpip_server_factory",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "anytcpip_all_backends",
        type="bool",
        default=False,
        help="run every test that uses anyio_backend on each installed backend",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "anyio_backend" not in metafunc.fixturenames:
        return
    if not metafunc.config.getini("anytcpip_all_backends"):
        return
    from .testing import BaseOneClientServerTests, available_backends

    if metafunc.cls is not None and issubclass(metafunc.cls, BaseOneClientServerTests):
        return  # already parametrized by the class
    # Parametrized here first, it takes the place of anyio's own (module-scoped)
    # anyio_backend fixture parameters.
    metafunc.parametrize("anyio_backend", available_backends(), scope="module")


@pytest.fixture
def anytcpip_log(request: pytest.FixtureRequest) -> logging.Logger:
    """A logger named after the test."""
    return logging.getLogger(f"anytcpip.tests.{request.node.name}")


@pytest.fixture
def anytcpip_connect_recorder() -> ConnectRecorder:
    """A :class:`~anytcpip.testing.ConnectRecorder` for ``connect_callback``."""
    from .testing import ConnectRecorder

    return ConnectRecorder()


@pytest.fixture
async def anytcpip_server_factory(anytcpip_log: logging.Logger) -> AsyncIterator[ServerFactory]:
    """Start servers on free ports; close them after the test.

    Annotate the fixture argument with :class:`anytcpip.testing.ServerFactory`:
    ``await anytcpip_server_factory(MyServer)`` is then typed ``MyServer``."""
    async with anyio.create_task_group() as tg:
        started: list[OneClientServer] = []

        async def factory(server_class: type[Any] = OneClientServer, **kwargs: Any) -> Any:
            kwargs.setdefault("port", 0)
            kwargs.setdefault("log", anytcpip_log)
            if server_class is OneClientServer:
                kwargs.setdefault("host", DEFAULT_LOCALHOST)
            server = server_class(**kwargs)
            await tg.start(server.run)
            started.append(server)
            return server

        try:
            yield cast("ServerFactory", factory)
        finally:
            with anyio.CancelScope(shield=True):
                for server in reversed(started):
                    await server.close()


@pytest.fixture
async def anytcpip_client_factory(anytcpip_log: logging.Logger) -> AsyncIterator[ClientFactory]:
    """Connect clients to servers; close them after the test (its type is
    :class:`anytcpip.testing.ClientFactory`)."""
    async with anyio.create_task_group() as tg:
        started: list[Client] = []

        async def factory(
            server: OneClientServer, *, wait_connected: bool = True, **kwargs: Any
        ) -> Client:
            kwargs.setdefault("log", anytcpip_log)
            host = server.host if server.host is not None else DEFAULT_LOCALHOST
            client = Client(host=host, port=server.port, **kwargs)
            await tg.start(client.run)
            started.append(client)
            if wait_connected:
                from .testing import STD_TIMEOUT

                with anyio.fail_after(STD_TIMEOUT):
                    await server.connected_task
            return client

        try:
            yield factory
        finally:
            with anyio.CancelScope(shield=True):
                for client in reversed(started):
                    await client.close()
