"""Raw asyncio streams: the reference (it costs what ts_tcpip costs).

``writer.write`` + ``await writer.drain()`` per message; ``readuntil`` /
``readexactly`` / ``read``, decoding and stripping as ts_tcpip's ``read_str``
does. No anyio here.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import time
from collections.abc import Callable
from typing import Any

from ._common import (
    ACK,
    BULK_CHUNK,
    HOST,
    READY,
    TERMINATOR,
    BenchStruct,
    BulkChecker,
    ValidationError,
    bulk_chunk,
    check_echo,
    check_struct,
    current_rss,
    echo_message,
    fill_struct,
    line_text,
    set_nodelay,
)

__all__ = ("client", "server")

_SIZE = ctypes.sizeof(BenchStruct)

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


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
            rss_start = current_rss()
            result = await _RECEIVERS[workload](reader, writer, n)
            result["rss_growth"] = current_rss() - rss_start
            writer.write(ACK)
            await writer.drain()
            await reader.read()
            await _finish(writer)
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


async def _receive_echo(reader: Reader, writer: Writer, n: int) -> dict[str, Any]:
    readuntil = reader.readuntil
    write = writer.write
    drain = writer.drain
    for i in range(n):
        data = await readuntil(TERMINATOR)
        obj = json.loads(data.decode()[:-2])
        check_echo(obj, i)
        write(json.dumps(obj).encode() + TERMINATOR)
        await drain()
    return {}


async def _receive_lines(reader: Reader, writer: Writer, n: int) -> dict[str, Any]:
    readuntil = reader.readuntil
    if (await readuntil(TERMINATOR)).decode()[:-2] != line_text(0):
        raise ValidationError("line 0 is wrong")
    start = time.perf_counter()
    for i in range(1, n):
        line = (await readuntil(TERMINATOR)).decode()[:-2]
        if line != line_text(i):
            raise ValidationError(f"line {i}: got {line!r}")
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_structs(reader: Reader, writer: Writer, n: int) -> dict[str, Any]:
    readexactly = reader.readexactly
    memmove = ctypes.memmove
    s = BenchStruct()
    address = ctypes.addressof(s)
    memmove(address, await readexactly(_SIZE), _SIZE)
    check_struct(s, 0)
    start = time.perf_counter()
    for i in range(1, n):
        memmove(address, await readexactly(_SIZE), _SIZE)
        check_struct(s, i)
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_bulk(reader: Reader, writer: Writer, total: int) -> dict[str, Any]:
    checker = BulkChecker(total)
    read = reader.read
    first = await read(BULK_CHUNK)
    checker.check(first)
    start = time.perf_counter()
    while checker.offset < total:
        piece = await read(BULK_CHUNK)
        if not piece:
            raise ValidationError(f"bulk: stream ended at {checker.offset} of {total}")
        checker.check(piece)
    return {"elapsed": time.perf_counter() - start, "count": total - len(first)}


_RECEIVERS = {
    "echo": _receive_echo,
    "lines": _receive_lines,
    "structs": _receive_structs,
    "bulk": _receive_bulk,
}


# ----------------------------------------------------------------- client


async def _connect(port: int) -> tuple[Reader, Writer]:
    reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 16)
    set_nodelay(writer.get_extra_info("socket"))
    return reader, writer


async def client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the sending end of ``cfg["workload"]``; return its measurements."""
    workload = cfg["workload"]
    port = cfg["port"]
    if workload == "hangup":
        closed: list[int] = []
        for _ in range(cfg["n"]):
            reader, writer = await _connect(port)
            if await reader.readexactly(1) != READY:
                raise ValidationError("hangup: no ready byte")
            await asyncio.sleep(cfg["settle"])
            closed.append(time.perf_counter_ns())
            await _finish(writer)
            await asyncio.sleep(cfg["gap"])
        return {"closed_ns": closed}
    reader, writer = await _connect(port)
    try:
        rss_start = current_rss()
        result = await _SENDERS[workload](
            reader, writer, cfg["n"], cfg.get("fault_at", -1), cfg.get("fault")
        )
        result["rss_growth"] = current_rss() - rss_start
        if await reader.readexactly(1) != ACK:
            raise ValidationError("no acknowledgement from the receiver")
    finally:
        await _finish(writer)
    return result


async def _send_echo(
    reader: Reader, writer: Writer, n: int, bad: int, fault: str | None
) -> dict[str, Any]:
    readuntil = reader.readuntil
    write = writer.write
    drain = writer.drain
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        msg = echo_message(i)
        if i == bad:
            msg["payload"] = "corrupted"
        t0 = clock()
        write(json.dumps(msg).encode() + TERMINATOR)
        await drain()
        reply = json.loads((await readuntil(TERMINATOR)).decode()[:-2])
        samples[i] = clock() - t0
        if reply != msg:
            raise ValidationError(f"echo {i}: sent {msg!r}, got back {reply!r}")
    return {"samples_ns": samples}


async def _send_lines(
    reader: Reader, writer: Writer, n: int, bad: int, fault: str | None
) -> dict[str, Any]:
    write = writer.write
    drain = writer.drain
    for i in range(n):
        line = line_text(i)
        if i == bad:
            if fault == "drop":
                continue
            line = line[:-1] + "?"
        write(line.encode() + TERMINATOR)
        await drain()
    return {}


async def _send_structs(
    reader: Reader, writer: Writer, n: int, bad: int, fault: str | None
) -> dict[str, Any]:
    write = writer.write
    drain = writer.drain
    s = BenchStruct()
    for i in range(n):
        fill_struct(s, i)
        if i == bad:
            if fault == "drop":
                continue
            s.value = -1.0
        write(bytes(s))
        await drain()
    return {}


async def _send_bulk(
    reader: Reader, writer: Writer, total: int, bad: int, fault: str | None
) -> dict[str, Any]:
    write = writer.write
    drain = writer.drain
    for k in range(total // BULK_CHUNK):
        chunk = bulk_chunk(k)
        if k == bad:
            if fault == "drop":
                continue
            chunk = chunk[:100] + bytes([chunk[100] ^ 1]) + chunk[101:]
        write(chunk)
        await drain()
    return {}


_SENDERS = {
    "echo": _send_echo,
    "lines": _send_lines,
    "structs": _send_structs,
    "bulk": _send_bulk,
}
