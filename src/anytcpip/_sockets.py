"""Listening and connecting sockets, without anyio's extra steps when the
host is an IP address.

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

:func:`anyio.connect_tcp` does not look an address up, but it still runs
"happy eyeballs" for it: a task group, a task and an event for the one
attempt there can be, about 300 microseconds per connection. With an address
(and no options) :func:`connect_tcp` here connects the one socket itself,
waits for it with :func:`anyio.wait_writable`, and wraps it with
:meth:`anyio.abc.SocketStream.from_socket`; a failure is the kernel's
:exc:`OSError` (:exc:`ConnectionRefusedError`, say, worded as asyncio words
it), not anyio's summary of its attempts.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any, cast

import anyio
import anyio.abc
import anyio.lowlevel

__all__ = ("connect_tcp", "listen_tcp")

#: anyio's ceiling for the backlog.
_MAX_BACKLOG = 65536
_LITERAL_OPTIONS = frozenset({"backlog", "reuse_port", "family"})
#: With one address to try there is nothing to be happy about.
_CONNECT_OPTIONS = frozenset({"happy_eyeballs_delay"})
#: See connect_tcp.
_PASSES_AFTER_CONNECT = 3


def _address_family(host: object) -> socket.AddressFamily | None:
    """The family of ``host`` if it is an IP address without a scope, else None."""
    if not isinstance(host, str) or "%" in host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _binds_itself(family: socket.AddressFamily, options: dict[str, Any]) -> bool:
    """Whether listen_tcp binds the socket itself with these options."""
    wanted = options.get("family", socket.AF_UNSPEC)
    return _LITERAL_OPTIONS.issuperset(options) and wanted in (socket.AF_UNSPEC, family)


async def listen_tcp(
    host: str | None, port: int, options: dict[str, Any]
) -> list[anyio.abc.SocketListener]:
    """Listen on ``host``:``port`` as :func:`anyio.create_tcp_listener` with
    ``options`` would; return the listeners (one per bound address)."""
    family = _address_family(host)
    if family is None or not _binds_itself(family, options):
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


async def connect_tcp(host: str, port: int, options: dict[str, Any]) -> anyio.abc.SocketStream:
    """Connect to ``host``:``port`` as :func:`anyio.connect_tcp` with
    ``options`` would (TCP_NODELAY on)."""
    family = _address_family(host)
    if family is None or not _CONNECT_OPTIONS.issuperset(options) or sys.platform == "win32":
        stream: anyio.abc.SocketStream = await anyio.connect_tcp(host, port, **options)
        return stream
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect((host, port))
        except BlockingIOError:
            # In progress: done (or failed) once writable.
            await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:
            # Failed at once (on loopback a refusal may come either way).
            error = exc.errno or 0
            if not error:
                raise
        else:
            error = 0
        if error:
            # OSError picks the subclass that the errno names; the words are
            # asyncio's (and so ts_tcpip's).
            raise OSError(error, f"Connect call failed ({host!r}, {port})") from None
        stream = await anyio.abc.SocketStream.from_socket(sock)
    except BaseException:
        sock.close()
        raise
    # anyio.connect_tcp takes a few more passes of the event loop, and with it,
    # as with ts_tcpip, a server in this process has accepted the connection
    # by the time the client says it is connected (in 200 of 200 tries):
    # tests read from the server at once. Without these passes it never has;
    # with one, on trio, half the time. Three cost tens of microseconds; the
    # happy-eyeballs machinery cost 300.
    try:
        for _ in range(_PASSES_AFTER_CONNECT):
            await anyio.lowlevel.checkpoint()
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    return stream
