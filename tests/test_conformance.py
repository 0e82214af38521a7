"""anytcpip.testing.check_read_write_methods on every transport and backend.

Each combination of backend (asyncio, asyncio+uvloop, trio), encryption
(plain TCP, TLS) and connection monitoring (on, off) has its own read and
write path; the public conformance check must pass on all of them.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import trustme

import anytcpip
from anytcpip.testing import check_read_write_methods
from helpers import ServerAndClient

#: Without monitoring a close waits for the peer's end-of-stream up to the
#: linger: keep it short.
_UNMONITORED: dict[str, Any] = {"monitor_connection_interval": 0, "linger": 0.2}


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server and a client TLS context, the client trusting the server."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    return server, client


@pytest.mark.parametrize("monitoring", [True, False], ids=["monitored", "unmonitored"])
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_every_read_write_method_both_ways(
    tls: bool,
    monitoring: bool,
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    server_and_client: ServerAndClient,
) -> None:
    server_kwargs: dict[str, Any] = {} if monitoring else dict(_UNMONITORED)
    client_kwargs: dict[str, Any] = dict(server_kwargs)
    if tls:
        server_kwargs["ssl_context"], client_kwargs["ssl_context"] = tls_contexts
    async with server_and_client(server_kwargs=server_kwargs, client_kwargs=client_kwargs) as (
        server,
        client,
    ):
        await check_read_write_methods(server, client)
        assert server.connected
        assert client.connected


async def test_the_check_fails_when_data_is_lost(server_and_client: ServerAndClient) -> None:
    """The check is not vacuous: a byte left unread makes it fail."""
    async with server_and_client() as (server, client):
        await server.write(b"!")  # an extra byte the check does not expect
        with pytest.raises(AssertionError):
            await check_read_write_methods(server, client, timeout=5)


async def test_the_check_wants_matching_settings(server_and_client: ServerAndClient) -> None:
    async with server_and_client() as (server, client):
        client.terminator = b"\n"
        with pytest.raises(AssertionError):
            await check_read_write_methods(server, client)
