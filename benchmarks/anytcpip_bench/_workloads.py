"""The workload drivers, one per workload and end, written once for every
implementation (anytcpip, ts_tcpip, raw anyio streams, raw asyncio streams).

An implementation hands a driver a :class:`Channel`: one connection's
per-message primitives. Each is the implementation's own call where it has
one (anytcpip's ``read_str``, ``write_json``, ``read_into``...: its bound
method, so the library pays nothing for the sharing); a raw stream's is the
thinnest wrapper that gives the same result (a ``functools.partial`` or a
plain function returning the awaitable; never an extra coroutine). Reads
that a raw stream must decode after the await come as ``(read, decode)``
pairs, ``decode`` None when the read already returns the value; the drivers
test that once, outside the loop.

What is measured is as before: the same messages, counts and timing points
(``elapsed`` from the first message received to the last; echo samples
from before the send to after the reply is decoded), and the same checks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from ._common import (
    ACK,
    BULK_CHUNK,
    READY,
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
)

__all__ = ("RECEIVERS", "SENDERS", "Channel", "hang_up", "receive", "send")

Read = Callable[[], Awaitable[Any]]
Decode = Callable[[Any], Any] | None
Write = Callable[[Any], Awaitable[Any]]


@dataclass
class Channel:
    """One connection's per-message primitives (see the module docstring)."""

    #: One text line, without its terminator (decoded by ``str_of``).
    read_str: Read
    str_of: Decode
    #: One JSON document (decoded by ``json_of``).
    read_json: Read
    json_of: Decode
    #: ``await read_struct(struct_arg)`` then ``struct_of(result)`` fills
    #: :attr:`struct` with one message.
    read_struct: Callable[[Any], Awaitable[Any]]
    struct_arg: Any
    struct_of: Decode
    struct: BenchStruct
    #: Up to n bytes; b"" or one of ``end_of_stream`` at the end.
    read: Callable[[int], Awaitable[bytes]]
    end_of_stream: tuple[type[BaseException], ...]
    #: Exactly n bytes (the ready byte and the acknowledgement).
    read_exactly: Callable[[int], Awaitable[bytes]]
    write_str: Write
    write_json: Write
    write_struct: Write
    write: Write


# ----------------------------------------------------------------- receivers


async def _receive_echo(ch: Channel, n: int) -> dict[str, Any]:
    read_json, json_of, write_json = ch.read_json, ch.json_of, ch.write_json
    for i in range(n):
        obj = await read_json()
        if json_of is not None:
            obj = json_of(obj)
        check_echo(obj, i)
        await write_json(obj)
    return {}


async def _receive_lines(ch: Channel, n: int) -> dict[str, Any]:
    read_str, str_of = ch.read_str, ch.str_of
    first = await read_str()
    if (first if str_of is None else str_of(first)) != line_text(0):
        raise ValidationError("line 0 is wrong")
    start = time.perf_counter()
    if str_of is None:
        for i in range(1, n):
            line = await read_str()
            if line != line_text(i):
                raise ValidationError(f"line {i}: got {line!r}")
    else:
        for i in range(1, n):
            line = str_of(await read_str())
            if line != line_text(i):
                raise ValidationError(f"line {i}: got {line!r}")
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_structs(ch: Channel, n: int) -> dict[str, Any]:
    read_struct, arg, struct_of, s = ch.read_struct, ch.struct_arg, ch.struct_of, ch.struct
    first = await read_struct(arg)
    if struct_of is not None:
        struct_of(first)
    check_struct(s, 0)
    start = time.perf_counter()
    if struct_of is None:
        for i in range(1, n):
            await read_struct(arg)
            check_struct(s, i)
    else:
        for i in range(1, n):
            struct_of(await read_struct(arg))
            check_struct(s, i)
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_bulk(ch: Channel, total: int) -> dict[str, Any]:
    checker = BulkChecker(total)
    read = ch.read
    first = await read(BULK_CHUNK)
    checker.check(first)
    start = time.perf_counter()
    try:
        while checker.offset < total:
            piece = await read(BULK_CHUNK)
            if not piece:
                raise ValidationError(f"bulk: stream ended at {checker.offset} of {total}")
            checker.check(piece)
    except ch.end_of_stream:
        raise ValidationError(f"bulk: stream ended at {checker.offset} of {total}") from None
    return {"elapsed": time.perf_counter() - start, "count": total - len(first)}


#: The receiving end of each workload, on one connection.
RECEIVERS: dict[str, Callable[[Channel, int], Awaitable[dict[str, Any]]]] = {
    "echo": _receive_echo,
    "lines": _receive_lines,
    "structs": _receive_structs,
    "bulk": _receive_bulk,
}


async def receive(
    cfg: dict[str, Any], accept: AbstractAsyncContextManager[Channel]
) -> dict[str, Any]:
    """Receive ``cfg["workload"]`` on the connection ``accept`` yields, then
    acknowledge; return the measurements. ``accept``'s exit waits for the
    sender's end of stream and closes."""
    async with accept as ch:
        rss_start = current_rss()
        result = await RECEIVERS[cfg["workload"]](ch, cfg["n"])
        result["rss_growth"] = current_rss() - rss_start
        await ch.write(ACK)
    return result


# ----------------------------------------------------------------- senders


async def _send_echo(ch: Channel, n: int, bad: int, fault: str | None) -> dict[str, Any]:
    write_json, read_json, json_of = ch.write_json, ch.read_json, ch.json_of
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        msg = echo_message(i)
        if i == bad:
            msg["payload"] = "corrupted"
        t0 = clock()
        await write_json(msg)
        reply = await read_json()
        if json_of is not None:
            reply = json_of(reply)
        samples[i] = clock() - t0
        if reply != msg:
            raise ValidationError(f"echo {i}: sent {msg!r}, got back {reply!r}")
    return {"samples_ns": samples}


async def _send_lines(ch: Channel, n: int, bad: int, fault: str | None) -> dict[str, Any]:
    write_str = ch.write_str
    for i in range(n):
        line = line_text(i)
        if i == bad:
            if fault == "drop":
                continue
            line = line[:-1] + "?"
        await write_str(line)
    return {}


async def _send_structs(ch: Channel, n: int, bad: int, fault: str | None) -> dict[str, Any]:
    write_struct = ch.write_struct
    s = BenchStruct()
    for i in range(n):
        fill_struct(s, i)
        if i == bad:
            if fault == "drop":
                continue
            s.value = -1.0
        await write_struct(s)
    return {}


async def _send_bulk(ch: Channel, total: int, bad: int, fault: str | None) -> dict[str, Any]:
    write = ch.write
    for k in range(total // BULK_CHUNK):
        chunk = bulk_chunk(k)
        if k == bad:
            if fault == "drop":
                continue
            chunk = chunk[:100] + bytes([chunk[100] ^ 1]) + chunk[101:]
        await write(chunk)
    return {}


#: The sending end of each workload, on one connection (``bad``: the index
#: of the message to spoil, ``fault``: how, "drop" or spoil).
SENDERS: dict[str, Callable[[Channel, int, int, str | None], Awaitable[dict[str, Any]]]] = {
    "echo": _send_echo,
    "lines": _send_lines,
    "structs": _send_structs,
    "bulk": _send_bulk,
}


async def send(
    cfg: dict[str, Any], connect: AbstractAsyncContextManager[Channel]
) -> dict[str, Any]:
    """Send ``cfg["workload"]`` on the connection ``connect`` yields and wait
    for the receiver's acknowledgement; return the measurements. ``connect``'s
    exit ends the stream and closes."""
    async with connect as ch:
        rss_start = current_rss()
        result = await SENDERS[cfg["workload"]](
            ch, cfg["n"], cfg.get("fault_at", -1), cfg.get("fault")
        )
        result["rss_growth"] = current_rss() - rss_start
        if await ch.read_exactly(1) != ACK:
            raise ValidationError("no acknowledgement from the receiver")
    return result


async def hang_up(
    cfg: dict[str, Any],
    connect: Callable[[int], AbstractAsyncContextManager[Channel]],
    sleep: Callable[[float], Awaitable[Any]],
) -> dict[str, Any]:
    """The sending end of "hangup": ``cfg["n"]`` times connect, wait for the
    ready byte and a settling time, note the time and close (on leaving
    ``connect``'s block)."""
    closed: list[int] = []
    for _ in range(cfg["n"]):
        async with connect(cfg["port"]) as ch:
            if await ch.read_exactly(1) != READY:
                raise ValidationError("hangup: no ready byte")
            await sleep(cfg["settle"])
            closed.append(time.perf_counter_ns())
        await sleep(cfg["gap"])
    return {"closed_ns": closed}
