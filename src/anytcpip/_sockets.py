"""Listening sockets, without a name lookup when the host is an IP address.

:func:`anyio.create_tcp_listener` resolves its host with ``getaddrinfo`` in a
worker thread even when it is already an address (``127.0.0.1``, ``::1``,
``0.0.0.0``): that hand-over costs a server about a third of its start (a
fleet of a thousand servers spends most of its setup in it). asyncio's own
``start_server``, which ts_tcpip uses, skips the lookup for an address, and so
does this module: it binds the one socket that the address names itself, with
the options anyio would set, and wraps it with
:meth:`anyio.abc.SocketListener.from_socket`. Anything else (a name, ``None``
for every interface, a scoped IPv6 address, options it does not know) goes to
:func:`anyio.create_tcp_listener` unchanged.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any, cast

import anyio
import anyio.abc

__all__ = ("listen_tcp",)

#: anyio's ceiling for the backlog.
_MAX_BACKLOG = 65536
_LITERAL_OPTIONS = frozenset({"backlog", "reuse_port", "family"})


def _address_family(host: object) -> socket.AddressFamily | None:
    """The family of ``host`` if it is an IP address without a scope, else None."""
    if not isinstance(host, str) or "%" in host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


async def listen_tcp(
    host: str | None, port: int, options: dict[str, Any]
) -> list[anyio.abc.SocketListener]:
    """Listen on ``host``:``port`` as :func:`anyio.create_tcp_listener` with
    ``options`` would; return the listeners (one per bound address)."""
    family = _address_family(host)
    wanted = options.get("family", socket.AF_UNSPEC)
    if (
        family is None
        or not _LITERAL_OPTIONS.issuperset(options)
        or wanted
        not in (
            socket.AF_UNSPEC,
            family,
        )
    ):
        multi = await anyio.create_tcp_listener(local_host=host, local_port=port, **options)
        return [cast(anyio.abc.SocketListener, listener) for listener in multi.listeners]
    assert host is not None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if sys.platform == "win32":  # pragma: no cover
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if options.get("reuse_port"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(min(int(options.get("backlog", _MAX_BACKLOG)), _MAX_BACKLOG))
        return [await anyio.abc.SocketListener.from_socket(sock)]
    except BaseException:
        sock.close()
        raise
