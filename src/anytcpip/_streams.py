"""Helpers on plain anyio streams (public: read_into, write_from, close_stream)."""

from __future__ import annotations

import ctypes
from typing import Protocol

import anyio
from anyio.abc import ByteSendStream
from anyio.streams.buffered import BufferedByteReceiveStream

from ._exceptions import IncompleteReadError, translate_errors
from ._framing import fill_struct, structs_to_bytes

__all__ = ("close_stream", "read_into", "write_from")


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
