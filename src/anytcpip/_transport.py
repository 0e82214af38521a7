"""Choosing the transport of a new connection, and its socket options.

This is the only module that knows anyio's backend types. Each connection
gets the fastest transport that applies:

=====================  ==========  ====================================
backend                stream      transport
=====================  ==========  ====================================
asyncio, uvloop        plain TCP   ``AsyncioConnection`` (a Protocol)
trio                   plain TCP   ``TrioConnection`` (the raw socket)
any                    TLS, other  ``StreamConnection`` (anyio stream)
=====================  ==========  ====================================

Monitoring on or off does not change the choice. The fast paths rely on
anyio internals (the asyncio transport and protocol under its stream, the
trio socket); if they cannot be used for a plain TCP stream, the generic
transport is used and a warning is logged, and ``tests/test_transport.py``
fails, so a change in anyio shows up instead of silently costing speed.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from ._connection import Connection
from ._constants import KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, KEEPALIVE_TIME
from ._transport_asyncio import AsyncioConnection
from ._transport_stream import StreamConnection
from ._transport_trio import TrioConnection

__all__ = ("configure_socket", "open_connection", "pause_before_tls")

_TRIO_MODULE = "anyio._backends._trio"
_ASYNCIO_MODULE = "anyio._backends._asyncio"
_DIRECT_WRITE_METHODS = ("write", "is_closing", "get_write_buffer_size")


def open_connection(
    stream: anyio.abc.ByteStream | None, *, limit: int, monitor: bool, log: logging.Logger
) -> Connection:
    """Make the connection for ``stream`` with the transport that fits it.

    ``stream`` None: a connection whose stream is attached later (a server's
    TLS stream, after the handshake), with the generic transport.
    """
    if stream is None:
        return StreamConnection(limit=limit, monitor=monitor, log=log)
    module = type(stream).__module__
    if isinstance(stream, anyio.abc.SocketStream):
        if module == _ASYNCIO_MODULE:
            fast = AsyncioConnection.take_over(stream, limit=limit, monitor=monitor, log=log)
            if fast is not None:
                return fast
            # Still the generic path, but a write with nothing queued goes
            # straight to the transport, which sends at once.
            transport: Any = getattr(stream, "_transport", None)
            closing = getattr(transport, "is_closing", None)
            if closing is None or not closing():
                log.warning("the asyncio fast path does not apply to %r (anyio changed?)", stream)
            if not all(hasattr(transport, name) for name in _DIRECT_WRITE_METHODS):
                transport = None
            return StreamConnection(
                limit=limit, monitor=monitor, log=log, stream=stream, direct_transport=transport
            )
        if module == _TRIO_MODULE:
            sock = stream.extra(SocketAttribute.raw_socket, None)
            if isinstance(sock, socket.socket):
                return TrioConnection(
                    limit=limit, monitor=monitor, log=log, stream=stream, sock=sock
                )
            log.warning("the trio fast path does not apply to %r (anyio changed?)", stream)
    return StreamConnection(limit=limit, monitor=monitor, log=log, stream=stream)


def pause_before_tls(stream: anyio.abc.ByteStream) -> bool:
    """Stop an anyio asyncio stream's transport reading before a TLS wrap.

    anyio's asyncio transport reads from the moment it is connected, and
    pauses only after a ``receive()`` that had to wait; a TLS handshake whose
    receives all find their data queued leaves it reading, and an unread
    flood then piles up in anyio's queue without bound. Paused here, it reads
    only while a receive waits for data (anyio resumes it then), so what
    nobody reads stays in the kernel. Returns False (and does nothing) for
    another stream, or if anyio's internals moved (``tests/test_transport.py``
    says so).
    """
    if type(stream).__module__ != _ASYNCIO_MODULE:
        return False
    transport: Any = getattr(stream, "_transport", None)
    pause = getattr(transport, "pause_reading", None)
    if pause is None:
        return False
    try:
        if not transport.is_closing():
            pause()
    except (OSError, RuntimeError, AttributeError):
        return False
    return True


def configure_socket(stream: Any) -> None:
    """Turn on TCP keepalive and TCP_NODELAY on the socket under ``stream``."""
    try:
        sock: socket.socket = stream.extra(SocketAttribute.raw_socket)
    except (anyio.TypedAttributeLookupError, OSError, ValueError, AttributeError):
        # Not a socket; or (uvloop) the peer's reset closed the transport
        # already, and looking at its pseudo-socket fails.
        return
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_TIME)
        elif hasattr(socket, "TCP_KEEPALIVE"):  # macOS
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPALIVE, KEEPALIVE_TIME)
        if hasattr(socket, "TCP_KEEPINTVL"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        if hasattr(socket, "TCP_KEEPCNT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
    except (OSError, ValueError):
        # The peer may already have reset the connection (uvloop then fails
        # with ValueError, from a pseudo-socket with no descriptor); the
        # reads will say so.
        pass
