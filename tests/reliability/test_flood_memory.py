"""A peer that floods while nobody reads costs the limit plus one chunk, with
monitoring on or off (issue 14 item 11)."""

from __future__ import annotations

import logging
import socket

import anyio
import pytest

import anytcpip

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
    protocol = getattr(conn.stream, "_protocol", None)
    for chunk in getattr(protocol, "read_queue", ()):
        held += len(chunk)
    return held


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
async def test_unread_flood_is_bounded(log: logging.Logger, monitor: float) -> None:
    limit = 1 << 16
    with anyio.fail_after(TEST_TIMEOUT):
        async with open_raw(
            "server", log, limit=limit, monitor_connection_interval=monitor, linger=0.2
        ) as rp:
            sock = rp.raw.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
            chunk = b"f" * (1 << 16)
            pushed = 0
            while pushed < PUSH:
                with anyio.move_on_after(0.5) as scope:
                    await rp.raw.send(chunk)
                if scope.cancelled_caught:
                    break  # nobody takes more: the flood is held back
                pushed += len(chunk)
            held = bytes_held(rp.obj)
            assert held <= limit + BIGGEST_CHUNK, f"{held} bytes held after pushing {pushed}"
            # What is held is still readable, in order.
            assert await rp.obj.readexactly(1000) == b"f" * 1000
