"""Raw asyncio streams: the reference (it costs what ts_tcpip costs).

``writer.write`` + ``await writer.drain()`` per message; ``readuntil`` /
``readexactly`` / ``read``, decoding and stripping as ts_tcpip's ``read_str``
does. No anyio here. The workloads themselves are :mod:`._workloads`'; this
is the adapter.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from . import _workloads
from ._common import HOST, READY, TERMINATOR, BenchStruct, ValidationError, set_nodelay

__all__ = ("client", "server")

_SIZE = ctypes.sizeof(BenchStruct)

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


def _channel(reader: Reader, writer: Writer) -> _workloads.Channel:
    write = writer.write
    drain = writer.drain
    s = BenchStruct()
    address = ctypes.addressof(s)
    memmove = ctypes.memmove
    line = functools.partial(reader.readuntil, TERMINATOR)
    dumps = json.dumps

    def write_str(text: str) -> Awaitable[None]:
        write(text.encode() + TERMINATOR)
        return drain()

    def write_json(obj: Any) -> Awaitable[None]:
        write(dumps(obj).encode() + TERMINATOR)
        return drain()

    def write_struct(value: BenchStruct) -> Awaitable[None]:
        write(bytes(value))
        return drain()

    def write_bytes(data: bytes) -> Awaitable[None]:
        write(data)
        return drain()

    return _workloads.Channel(
        read_str=line,
        str_of=lambda data: data.decode()[:-2],
        read_json=line,
        json_of=lambda data: json.loads(data.decode()[:-2]),
        read_struct=reader.readexactly,
        struct_arg=_SIZE,
        struct_of=lambda data: memmove(address, data, _SIZE),
        struct=s,
        read=reader.read,
        end_of_stream=(),
        read_exactly=reader.readexactly,
        write_str=write_str,
        write_json=write_json,
        write_struct=write_struct,
        write=write_bytes,
    )


async def _finish(writer: Writer) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


# ----------------------------------------------------------------- server


async def server(cfg: dict[str, Any], ready: Callable[[int], None]) -> dict[str, Any]:
    """Run the receiving end of ``cfg["workload"]``; return its measurements."""
    workload = cfg["workload"]
    n = cfg["n"]
    loop = asyncio.get_running_loop()
    done: asyncio.Future[dict[str, Any]] = loop.create_future()
    noticed: list[int] = []

    async def handle(reader: Reader, writer: Writer) -> None:
        set_nodelay(writer.get_extra_info("socket"))
        try:
            if workload == "hangup":
                writer.write(READY)
                await writer.drain()
                if await reader.read(1) != b"":
                    raise ValidationError("hangup: unexpected data")
                noticed.append(time.perf_counter_ns())
                await _finish(writer)
                if len(noticed) >= n and not done.done():
                    done.set_result({"noticed_ns": noticed})
                return

            @asynccontextmanager
            async def accepted() -> AsyncIterator[_workloads.Channel]:
                yield _channel(reader, writer)
                await reader.read()
                await _finish(writer)

            result = await _workloads.receive(cfg, accepted())
            if not done.done():
                done.set_result(result)
        except BaseException as exc:
            if not done.done():
                done.set_exception(exc)
            raise

    srv = await asyncio.start_server(handle, HOST, 0, limit=1 << 16)
    try:
        ready(srv.sockets[0].getsockname()[1])
        return await done
    finally:
        srv.close()
        await srv.wait_closed()


# ----------------------------------------------------------------- client


@asynccontextmanager
async def _connect(port: int) -> AsyncIterator[_workloads.Channel]:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 16)
    set_nodelay(writer.get_extra_info("socket"))
    try:
        yield _channel(reader, writer)
    finally:
        await _finish(writer)


async def client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the sending end of ``cfg["workload"]``; return its measurements."""
    if cfg["workload"] == "hangup":
        return await _workloads.hang_up(cfg, _connect, asyncio.sleep)
    return await _workloads.send(cfg, _connect(cfg["port"]))
