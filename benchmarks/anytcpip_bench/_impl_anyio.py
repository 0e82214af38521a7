"""Raw anyio streams (any backend): what a naive port to anyio costs.

``await stream.send(...)`` per message; a
:class:`~anyio.streams.buffered.BufferedByteReceiveStream` with
``receive_until`` / ``receive_exactly``; ``receive(65536)`` for bulk.
"""

from __future__ import annotations

import ctypes
import json
import time
from collections.abc import Callable
from typing import Any, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute, SocketListener
from anyio.streams.buffered import BufferedByteReceiveStream

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
_LIMIT = 1 << 16

Stream = anyio.abc.SocketStream


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
    workload = cfg["workload"]
    n = cfg["n"]
    multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    async with multi:
        listener = cast(SocketListener, multi.listeners[0])
        ready(multi.extra(SocketAttribute.local_port))
        if workload == "hangup":
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
        stream = await listener.accept()
        set_nodelay(stream.extra(SocketAttribute.raw_socket))
        buffered = BufferedByteReceiveStream(stream)
        rss_start = current_rss()
        result = await _RECEIVERS[workload](stream, buffered, n)
        result["rss_growth"] = current_rss() - rss_start
        await stream.send(ACK)
        await _drain_and_close(stream)
    return result


async def _receive_echo(
    stream: Stream, buffered: BufferedByteReceiveStream, n: int
) -> dict[str, Any]:
    receive_until = buffered.receive_until
    send = stream.send
    for i in range(n):
        obj = json.loads((await receive_until(TERMINATOR, _LIMIT)).decode())
        check_echo(obj, i)
        await send(json.dumps(obj).encode() + TERMINATOR)
    return {}


async def _receive_lines(
    stream: Stream, buffered: BufferedByteReceiveStream, n: int
) -> dict[str, Any]:
    receive_until = buffered.receive_until
    if (await receive_until(TERMINATOR, _LIMIT)).decode() != line_text(0):
        raise ValidationError("line 0 is wrong")
    start = time.perf_counter()
    for i in range(1, n):
        line = (await receive_until(TERMINATOR, _LIMIT)).decode()
        if line != line_text(i):
            raise ValidationError(f"line {i}: got {line!r}")
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_structs(
    stream: Stream, buffered: BufferedByteReceiveStream, n: int
) -> dict[str, Any]:
    receive_exactly = buffered.receive_exactly
    memmove = ctypes.memmove
    s = BenchStruct()
    address = ctypes.addressof(s)
    memmove(address, await receive_exactly(_SIZE), _SIZE)
    check_struct(s, 0)
    start = time.perf_counter()
    for i in range(1, n):
        memmove(address, await receive_exactly(_SIZE), _SIZE)
        check_struct(s, i)
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_bulk(
    stream: Stream, buffered: BufferedByteReceiveStream, total: int
) -> dict[str, Any]:
    checker = BulkChecker(total)
    receive = stream.receive
    first = await receive(BULK_CHUNK)
    checker.check(first)
    start = time.perf_counter()
    try:
        while checker.offset < total:
            checker.check(await receive(BULK_CHUNK))
    except anyio.EndOfStream:
        raise ValidationError(f"bulk: stream ended at {checker.offset} of {total}") from None
    return {"elapsed": time.perf_counter() - start, "count": total - len(first)}


_RECEIVERS = {
    "echo": _receive_echo,
    "lines": _receive_lines,
    "structs": _receive_structs,
    "bulk": _receive_bulk,
}


# ----------------------------------------------------------------- client


async def _connect(port: int) -> Stream:
    stream = await anyio.connect_tcp(HOST, port)
    set_nodelay(stream.extra(SocketAttribute.raw_socket))
    return stream


async def client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the sending end of ``cfg["workload"]``; return its measurements."""
    workload = cfg["workload"]
    port = cfg["port"]
    if workload == "hangup":
        closed: list[int] = []
        for _ in range(cfg["n"]):
            stream = await _connect(port)
            if await BufferedByteReceiveStream(stream).receive_exactly(1) != READY:
                raise ValidationError("hangup: no ready byte")
            await anyio.sleep(cfg["settle"])
            closed.append(time.perf_counter_ns())
            await stream.aclose()
            await anyio.sleep(cfg["gap"])
        return {"closed_ns": closed}
    stream = await _connect(port)
    async with stream:
        buffered = BufferedByteReceiveStream(stream)
        rss_start = current_rss()
        result = await _SENDERS[workload](
            stream, buffered, cfg["n"], cfg.get("fault_at", -1), cfg.get("fault")
        )
        result["rss_growth"] = current_rss() - rss_start
        if await buffered.receive_exactly(1) != ACK:
            raise ValidationError("no acknowledgement from the receiver")
        await stream.send_eof()
    return result


async def _send_echo(
    stream: Stream, buffered: BufferedByteReceiveStream, n: int, bad: int, fault: str | None
) -> dict[str, Any]:
    receive_until = buffered.receive_until
    send = stream.send
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        msg = echo_message(i)
        if i == bad:
            msg["payload"] = "corrupted"
        t0 = clock()
        await send(json.dumps(msg).encode() + TERMINATOR)
        reply = json.loads((await receive_until(TERMINATOR, _LIMIT)).decode())
        samples[i] = clock() - t0
        if reply != msg:
            raise ValidationError(f"echo {i}: sent {msg!r}, got back {reply!r}")
    return {"samples_ns": samples}


async def _send_lines(
    stream: Stream, buffered: BufferedByteReceiveStream, n: int, bad: int, fault: str | None
) -> dict[str, Any]:
    send = stream.send
    for i in range(n):
        line = line_text(i)
        if i == bad:
            if fault == "drop":
                continue
            line = line[:-1] + "?"
        await send(line.encode() + TERMINATOR)
    return {}


async def _send_structs(
    stream: Stream, buffered: BufferedByteReceiveStream, n: int, bad: int, fault: str | None
) -> dict[str, Any]:
    send = stream.send
    s = BenchStruct()
    for i in range(n):
        fill_struct(s, i)
        if i == bad:
            if fault == "drop":
                continue
            s.value = -1.0
        await send(bytes(s))
    return {}


async def _send_bulk(
    stream: Stream, buffered: BufferedByteReceiveStream, total: int, bad: int, fault: str | None
) -> dict[str, Any]:
    send = stream.send
    for k in range(total // BULK_CHUNK):
        chunk = bulk_chunk(k)
        if k == bad:
            if fault == "drop":
                continue
            chunk = chunk[:100] + bytes([chunk[100] ^ 1]) + chunk[101:]
        await send(chunk)
    return {}


_SENDERS = {
    "echo": _send_echo,
    "lines": _send_lines,
    "structs": _send_structs,
    "bulk": _send_bulk,
}
