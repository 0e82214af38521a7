"""A peer that floods while nobody reads costs the limit plus one chunk, with
monitoring on or off (issue 14 item 11)."""

from __future__ import annotations

import logging
import socket
import ssl

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSStream

import anytcpip
from helpers import deadline

from .harness import TEST_TIMEOUT, open_raw

#: How much the peer tries to push (the kernel holds some MiB of it).
PUSH = 24 << 20

#: The most one receive delivers on any backend (asyncio and uvloop read up
#: to 256 KiB at a time).
BIGGEST_CHUNK = 256 << 10


def bytes_held(obj: anytcpip.BaseClientOrServer) -> int:
    """Bytes received from the socket and held in user space for ``obj``'s
    connection: its buffer, and anything an anyio stream under it queued
    (white-box)."""
    conn = obj._conn
    assert conn is not None
    held = len(conn.buffer)
    stream: object = conn.stream
    if isinstance(stream, TLSStream):
        held += stream._read_bio.pending
        stream = stream.transport_stream
    protocol = getattr(stream, "_protocol", None)
    for chunk in getattr(protocol, "read_queue", ()):
        held += len(chunk)
    return held


async def push_until_held_back(peer: anyio.abc.ByteSendStream) -> int:
    """Send until a send waits 0.5 s (or PUSH bytes went); return the count."""
    chunk = b"f" * (1 << 16)
    pushed = 0
    while pushed < PUSH:
        with anyio.move_on_after(0.5) as scope:
            await peer.send(chunk)
        if scope.cancelled_caught:
            break  # nobody takes more: the flood is held back
        pushed += len(chunk)
    return pushed


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@deadline(TEST_TIMEOUT)
async def test_unread_flood_is_bounded(log: logging.Logger, monitor: float) -> None:
    limit = 1 << 16
    async with open_raw(
        "server", log, limit=limit, monitor_connection_interval=monitor, linger=0.2
    ) as rp:
        sock = rp.raw.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        pushed = await push_until_held_back(rp.raw)
        held = bytes_held(rp.obj)
        assert held <= limit + BIGGEST_CHUNK, f"{held} bytes held after pushing {pushed}"
        # What is held is still readable, in order.
        assert await rp.obj.readexactly(1000) == b"f" * 1000


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@deadline(TEST_TIMEOUT)
async def test_unread_tls_flood_is_bounded(log: logging.Logger, monitor: float) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    limit = 1 << 16
    async with (
        anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4,
            port=0,
            log=log,
            limit=limit,
            monitor_connection_interval=monitor,
            linger=0.2,
            ssl_context=server_context,
        ) as server,
        await anyio.connect_tcp(
            anytcpip.LOCALHOST_IPV4, server.port, ssl_context=client_context
        ) as peer,
    ):
        await server.connected_task
        pushed = await push_until_held_back(peer)
        # TLS records add a little to each chunk.
        held = bytes_held(server)
        assert held <= limit + 2 * BIGGEST_CHUNK, f"{held} bytes held after pushing {pushed}"
        assert await server.readexactly(1000) == b"f" * 1000
