"""Which transport each connection gets (white-box).

The fast paths rest on anyio internals; if a new anyio version moves them,
the connection silently falls back to the generic (about twice as slow)
stream. These tests make that a failure instead.
"""

from __future__ import annotations

import ssl
from typing import Any

import anyio
import pytest
import trustme

import anytcpip
from anytcpip._transport_asyncio import AsyncioConnection
from anytcpip._transport_stream import StreamConnection
from anytcpip._transport_trio import TrioConnection
from helpers import ServerAndClient, deadline


def expected_plain(anyio_backend: Any) -> type:
    name = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
    return TrioConnection if name == "trio" else AsyncioConnection


def conn_of(obj: anytcpip.BaseClientOrServer) -> Any:
    conn = obj._conn
    assert conn is not None
    return conn


@pytest.mark.parametrize("monitor", [1.0, 0.0], ids=["monitor-on", "monitor-off"])
@deadline()
async def test_plain_tcp_gets_the_fast_path(
    anyio_backend: Any,
    server_and_client: ServerAndClient,
    monitor: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kwargs = {"monitor_connection_interval": monitor}
    async with server_and_client(server_kwargs=kwargs, client_kwargs=kwargs) as (
        server,
        client,
    ):
        expected = expected_plain(anyio_backend)
        assert type(conn_of(server)) is expected
        assert type(conn_of(client)) is expected
        await client.write_str("ping")
        assert await server.read_str() == "ping"
        await server.write_str("pong")
        assert await client.read_str() == "pong"
    assert "fast path does not apply" not in caplog.text


@pytest.mark.parametrize("monitor", [1.0, 0.0], ids=["monitor-on", "monitor-off"])
@deadline()
async def test_tls_gets_the_generic_stream(
    anyio_backend: Any, server_and_client: ServerAndClient, monitor: float
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    async with server_and_client(
        server_kwargs={"ssl_context": server_context, "monitor_connection_interval": monitor},
        client_kwargs={"ssl_context": client_context, "monitor_connection_interval": monitor},
    ) as (server, client):
        for obj in (server, client):
            conn = conn_of(obj)
            assert type(conn) is StreamConnection
            assert conn._transport_w is None
        await client.write_str("ping")
        assert await server.read_str() == "ping"


async def test_tls_accept_pauses_the_asyncio_transport(anyio_backend: Any) -> None:
    """The pause before a TLS wrap (pause_before_tls) finds anyio's asyncio
    transport: if anyio moved it, this fails (trio: nothing to pause)."""
    from anytcpip._transport import pause_before_tls

    async with await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4) as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, port) as stream:
            paused = pause_before_tls(stream)
            assert paused is (expected_plain(anyio_backend) is AsyncioConnection)
            if paused:
                assert not stream._transport.is_reading()  # type: ignore[attr-defined]


@deadline()
async def test_asyncio_receive_size_follows_the_stream(
    anyio_backend: Any, server_and_client: ServerAndClient
) -> None:
    """asyncio's selector transport asks for 64 KiB per receive (its 256 KiB
    default costs an mmap per receive), 256 KiB once receives fill 64 KiB (a
    bulk stream), and 64 KiB again after a short receive. uvloop and trio
    choose their own sizes: nothing to adapt there."""
    from anytcpip._connection import RECEIVE_CHUNK
    from anytcpip._transport_asyncio import BULK_RECEIVE

    async with server_and_client() as (server, client):
        conn = conn_of(client)
        transport: Any = getattr(conn, "_transport", None)
        if not hasattr(type(transport), "max_size"):
            # uvloop and trio: left alone.
            assert not getattr(conn, "_adapt_reads", False)
            return
        assert conn._adapt_reads
        assert transport.max_size == RECEIVE_CHUNK
        # What a receive would hand the protocol, through the protocol.
        protocol = transport.get_protocol()
        full = bytes(RECEIVE_CHUNK)
        protocol.data_received(full)
        assert transport.max_size == BULK_RECEIVE
        protocol.data_received(b"short\r\n")
        assert transport.max_size == RECEIVE_CHUNK
        # Nothing was lost on the way.
        assert await client.readexactly(RECEIVE_CHUNK) == full
        assert await client.read_str() == "short"
        await server.write_str("pong")
        assert await client.read_str() == "pong"
