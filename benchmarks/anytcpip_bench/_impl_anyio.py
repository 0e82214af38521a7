"""Raw anyio streams (any backend): what a naive port to anyio costs.

``await stream.send(...)`` per message; a
:class:`~anyio.streams.buffered.BufferedByteReceiveStream` with
``receive_until`` / ``receive_exactly``; ``receive(65536)`` for bulk. The
workloads themselves are :mod:`._workloads`'; this is the adapter.
"""

from __future__ import annotations

import ctypes
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute, SocketListener
from anyio.streams.buffered import BufferedByteReceiveStream

from . import _workloads
from ._common import HOST, READY, TERMINATOR, BenchStruct, ValidationError, set_nodelay

__all__ = ("client", "server")

_SIZE = ctypes.sizeof(BenchStruct)
_LIMIT = 1 << 16

Stream = anyio.abc.SocketStream


def _channel(stream: Stream) -> _workloads.Channel:
    buffered = BufferedByteReceiveStream(stream)
    send = stream.send
    s = BenchStruct()
    address = ctypes.addressof(s)
    memmove = ctypes.memmove
    line = functools.partial(buffered.receive_until, TERMINATOR, _LIMIT)
    dumps = json.dumps
    return _workloads.Channel(
        read_str=line,
        str_of=bytes.decode,
        read_json=line,
        json_of=lambda data: json.loads(data.decode()),
        read_struct=buffered.receive_exactly,
        struct_arg=_SIZE,
        struct_of=lambda data: memmove(address, data, _SIZE),
        struct=s,
        read=stream.receive,
        end_of_stream=(anyio.EndOfStream,),
        read_exactly=buffered.receive_exactly,
        write_str=lambda text: send(text.encode() + TERMINATOR),
        write_json=lambda obj: send(dumps(obj).encode() + TERMINATOR),
        write_struct=lambda value: send(bytes(value)),
        write=send,
    )


async def _drain_and_close(stream: Stream) -> None:
    """Wait for the peer's end of stream (it has everything), then close."""
    try:
        while True:
            await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        pass
    await stream.aclose()


# ----------------------------------------------------------------- server


async def server(cfg: dict[str, Any], ready: Callable[[int], None]) -> dict[str, Any]:
    """Run the receiving end of ``cfg["workload"]``; return its measurements."""
    multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    async with multi:
        listener = cast(SocketListener, multi.listeners[0])
        ready(multi.extra(SocketAttribute.local_port))
        if cfg["workload"] == "hangup":
            return await _serve_hangup(listener, cfg["n"])

        @asynccontextmanager
        async def accept() -> AsyncIterator[_workloads.Channel]:
            stream = await listener.accept()
            set_nodelay(stream.extra(SocketAttribute.raw_socket))
            yield _channel(stream)
            await _drain_and_close(stream)

        return await _workloads.receive(cfg, accept())


async def _serve_hangup(listener: SocketListener, n: int) -> dict[str, Any]:
    noticed: list[int] = []
    for _ in range(n):
        stream = await listener.accept()
        set_nodelay(stream.extra(SocketAttribute.raw_socket))
        await stream.send(READY)
        try:
            await stream.receive()
        except anyio.EndOfStream:
            noticed.append(time.perf_counter_ns())
        else:
            raise ValidationError("hangup: unexpected data")
        await stream.aclose()
    return {"noticed_ns": noticed}


# ----------------------------------------------------------------- client


@asynccontextmanager
async def _connect(port: int, *, end: bool = False) -> AsyncIterator[_workloads.Channel]:
    """A connection to ``port``; on leaving, send our end of stream if
    ``end`` (after the data workloads), then close."""
    stream = await anyio.connect_tcp(HOST, port)
    set_nodelay(stream.extra(SocketAttribute.raw_socket))
    async with stream:
        yield _channel(stream)
        if end:
            await stream.send_eof()


async def client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the sending end of ``cfg["workload"]``; return its measurements."""
    if cfg["workload"] == "hangup":
        return await _workloads.hang_up(cfg, _connect, anyio.sleep)
    return await _workloads.send(cfg, _connect(cfg["port"], end=True))
