"""Helpers on plain anyio streams, and the socket options every connection gets."""

from __future__ import annotations

import ctypes
import socket
from typing import Any, Protocol

import anyio
from anyio.abc import ByteSendStream, SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream

from ._constants import KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, KEEPALIVE_TIME
from ._exceptions import IncompleteReadError, translate_errors
from ._framing import fill_struct, structs_to_bytes

__all__ = ("close_stream", "configure_socket", "read_into", "write_from")


class _ReceiveExactly(Protocol):
    async def receive_exactly(self, nbytes: int) -> bytes: ...


async def read_into(stream: _ReceiveExactly, struct: ctypes.Structure) -> None:
    """Read binary data from an anyio stream into a :class:`ctypes.Structure`.

    Parameters
    ----------
    stream
        Anything with an async ``receive_exactly(nbytes)`` method, such as
        :class:`anyio.streams.buffered.BufferedByteReceiveStream` (or
        ``BufferedByteStream``).
    struct : ctypes.Structure
        The structure to fill in place.

    Raises
    ------
    IncompleteReadError
        If the stream ends before the whole structure has arrived (the partial
        bytes are in ``partial``).
    ConnectionError
        If the connection is lost.
    """
    size = ctypes.sizeof(struct)
    try:
        with translate_errors():
            data = await stream.receive_exactly(size)
    except anyio.IncompleteRead:
        partial = b""
        if isinstance(stream, BufferedByteReceiveStream):
            partial = bytes(stream.buffer)
        raise IncompleteReadError(partial, size) from None
    fill_struct(struct, data)


async def write_from(stream: ByteSendStream, *structs: ctypes.Structure) -> None:
    """Write one or more :class:`ctypes.Structure` to an anyio stream, in one send.

    Raises
    ------
    ConnectionError
        If the connection is lost.
    TypeError
        If any of ``structs`` is not a :class:`ctypes.Structure`; nothing is
        sent.
    """
    data = structs_to_bytes(structs)
    with translate_errors():
        await stream.send(data)


async def close_stream(stream: anyio.abc.AsyncResource | None) -> None:
    """Close an anyio stream, ignoring the errors that only mean it is already
    closed or broken. Always closes, even when cancelled."""
    if stream is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await stream.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


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
