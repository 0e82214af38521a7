"""Shared test configuration: every test runs on asyncio, asyncio+uvloop and trio."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

import anytcpip
from anytcpip._backends import BACKENDS
from anytcpip.testing import ClientFactory, ServerFactory
from helpers import ServerAndClient

pytest_plugins = ["pytester"]

#: Every backend of the table that runs on this platform (asyncio in debug mode).
_BACKENDS = [
    pytest.param(backend.anyio_backend(debug=True), id=backend.name)
    for backend in BACKENDS
    if backend.supported
]


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def log() -> logging.Logger:
    """A logger for the object under test."""
    return logging.getLogger("anytcpip.test")


@pytest.fixture
def server_and_client(
    log: logging.Logger,
    anytcpip_server_factory: ServerFactory,
    anytcpip_client_factory: ClientFactory,
) -> ServerAndClient:
    """``async with server_and_client(...) as (server, client):`` a server and
    a Client connected to it, on the plugin's factories (see
    helpers.ServerAndClient); the test's deadline covers their close."""

    @asynccontextmanager
    async def pair(
        *,
        server_class: type[anytcpip.OneClientServer] = anytcpip.OneClientServer,
        host: str = anytcpip.LOCALHOST_IPV4,
        server_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        scoped: bool = False,
    ) -> AsyncIterator[tuple[anytcpip.OneClientServer, anytcpip.Client]]:
        server = await anytcpip_server_factory(
            server_class, host=host, log=log, **(server_kwargs or {})
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if scoped:
                    client = anytcpip.Client(
                        host=host, port=server.port, log=log, **(client_kwargs or {})
                    )
                    await stack.enter_async_context(client)
                else:
                    client = await anytcpip_client_factory(
                        server, wait_connected=False, log=log, **(client_kwargs or {})
                    )
                    stack.push_async_callback(client.close)
                await server.connected_task
                yield server, client
        finally:
            await server.close()

    return cast(ServerAndClient, pair)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # pragma: no cover
        return -1


@pytest.fixture(autouse=True)
def _no_fd_leak(request: pytest.FixtureRequest) -> Iterator[None]:
    """R32: no file descriptor is left open by a test.

    Measured around the whole test (the event loop included), after a garbage
    collection; the descriptor uvloop opens once per process (see
    docs/reliability.rst) is allowed for on the first uvloop test.
    """
    if "no_fd_check" in request.keywords:
        yield
        return
    before = _open_fds()
    yield
    after = _open_fds()
    if after > before:
        gc.collect()  # only when needed: it costs tens of ms per test
        after = _open_fds()
    if before >= 0 and after > before:
        backend = (
            request.node.callspec.params.get("anyio_backend")
            if hasattr(request.node, "callspec")
            else request.node.name  # unittest-style: test_x__asyncio_uvloop
        )
        allowance = 2 if backend and "uvloop" in str(backend) and not _uvloop_seen() else 0
        assert after - before <= allowance, f"{after - before} file descriptors leaked"


_UVLOOP_SEEN = [False]


def _uvloop_seen() -> bool:
    seen = _UVLOOP_SEEN[0]
    _UVLOOP_SEEN[0] = True
    return seen
