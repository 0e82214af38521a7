"""read_into, write_from and close_stream on plain anyio streams (ported from
ts_tcpip's tests/test_utils.py, which used asyncio streams)."""

from __future__ import annotations

import ctypes
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import anytcpip
from helpers import ShortStruct, deadline, rst_close, struct_fields

ARRAY_LEN = 5


class SampleStruct(ctypes.Structure):
    """Scalars and arrays of many C types."""

    _pack_ = 1
    _fields_ = [
        ("frame_id", ctypes.c_uint64),
        ("azimuth", ctypes.c_double),
        ("mode", ctypes.c_ushort),
        ("offset", ctypes.c_int32),
        ("gain", ctypes.c_float),
        ("tick", ctypes.c_int64),
        ("flags", ctypes.c_uint),
        ("status", ctypes.c_uint32),
        ("encoders", ctypes.c_int64 * ARRAY_LEN),
        ("temperatures", ctypes.c_float * ARRAY_LEN),
        ("channels", ctypes.c_ushort * ARRAY_LEN),
        ("errors", ctypes.c_uint32 * ARRAY_LEN),
        ("positions", ctypes.c_double * ARRAY_LEN),
        ("counters", ctypes.c_uint * ARRAY_LEN),
        ("deltas", ctypes.c_int32 * ARRAY_LEN),
        ("serials", ctypes.c_uint64 * ARRAY_LEN),
    ]


_INT_RANGES = {
    ctypes.c_ushort: (0, 2**16 - 1),
    ctypes.c_uint: (0, 2**32 - 1),
    ctypes.c_int32: (-(2**31), 2**31 - 1),
    ctypes.c_int64: (-(2**63), 2**63 - 1),
    ctypes.c_uint32: (0, 2**32 - 1),
    ctypes.c_uint64: (0, 2**64 - 1),
}


def random_sample(rng: random.Random) -> SampleStruct:
    """A SampleStruct with random values that survive the round trip exactly."""
    data = SampleStruct()
    for field in SampleStruct._fields_:
        name, c_type = field[0], field[1]
        is_array = hasattr(c_type, "_length_")
        base: Any = getattr(c_type, "_type_") if is_array else c_type  # noqa: B009

        def value(base: Any = base) -> float | int:
            if base in _INT_RANGES:
                low, high = _INT_RANGES[base]
                return rng.randint(low, high)
            # Floats: exactly representable as a C float too.
            return float(ctypes.c_float(rng.random() - 0.5).value)

        if is_array:
            getattr(data, name)[:] = [value() for _ in range(ARRAY_LEN)]
        else:
            setattr(data, name, value())
    return data


@asynccontextmanager
async def stream_pair() -> AsyncIterator[tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]]:
    """Two connected anyio TCP streams on 127.0.0.1."""
    multi = await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4, local_port=0)
    async with multi:
        listener = multi.listeners[0]
        assert isinstance(listener, anyio.abc.SocketListener)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        a = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, port)
        async with a:
            b = await listener.accept()
            async with b:
                yield a, b


async def check_read_write(
    rng: random.Random,
    reader: BufferedByteReceiveStream,
    writer: anyio.abc.ByteSendStream,
    why: str,
) -> None:
    # Two rounds, to notice extra bytes being written.
    for _ in range(2):
        sent = random_sample(rng)
        await anytcpip.write_from(writer, sent)
        received = SampleStruct()
        await anytcpip.read_into(reader, received)
        assert struct_fields(received) == struct_fields(sent), why


@deadline()
async def test_read_write_both_ways() -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    async with stream_pair() as (a, b):
        await check_read_write(rng, BufferedByteReceiveStream(a), b, f"seed={seed}")
        await check_read_write(rng, BufferedByteReceiveStream(b), a, f"seed={seed}")


@deadline()
async def test_write_from_several_structs_in_one_send() -> None:
    first = ShortStruct(seq=1, stamp=2, angle=3.0, level=4.0)
    second = ShortStruct(seq=5, stamp=6, angle=7.0, level=8.0)
    async with stream_pair() as (a, b):
        await anytcpip.write_from(a, first, second)
        await a.send_eof()
        # One buffered stream: everything arrives in order.
        buffered = BufferedByteReceiveStream(b)
        for expected in (first, second):
            got = ShortStruct()
            await anytcpip.read_into(buffered, got)
            assert struct_fields(got) == struct_fields(expected)
        with pytest.raises(anyio.EndOfStream):
            await buffered.receive()


@deadline()
async def test_read_into_incomplete() -> None:
    sent = bytes(ShortStruct(seq=7))
    async with stream_pair() as (a, b):
        await a.send(sent[:5])
        await a.send_eof()
        got = ShortStruct()
        with pytest.raises(anytcpip.IncompleteReadError) as info:
            await anytcpip.read_into(BufferedByteReceiveStream(b), got)
        assert info.value.partial == sent[:5]
        assert info.value.expected == len(sent)
        assert struct_fields(got) == [0, 0, 0.0, 0.0]


async def test_read_into_any_receive_exactly() -> None:
    """Anything with an async receive_exactly will do."""
    sent = ShortStruct(seq=3, stamp=-3, angle=0.25, level=1.0)

    class Source:
        def __init__(self) -> None:
            self.asked: list[int] = []

        async def receive_exactly(self, nbytes: int) -> bytes:
            self.asked.append(nbytes)
            return bytes(sent)

    source = Source()
    got = ShortStruct()
    await anytcpip.read_into(source, got)
    assert source.asked == [ctypes.sizeof(ShortStruct)]
    assert struct_fields(got) == struct_fields(sent)


@deadline()
async def test_read_into_reset_is_connection_error() -> None:
    async with stream_pair() as (a, b):
        await rst_close(a)
        with pytest.raises(ConnectionError):
            await anytcpip.read_into(BufferedByteReceiveStream(b), ShortStruct())


@deadline()
async def test_write_from_closed_stream_is_connection_error() -> None:
    async with stream_pair() as (a, _):
        await a.aclose()
        with pytest.raises(ConnectionError):
            await anytcpip.write_from(a, ShortStruct())


@deadline()
async def test_close_stream() -> None:
    async with stream_pair() as (a, b):
        await anytcpip.close_stream(a)
        with pytest.raises(anyio.ClosedResourceError):
            await a.send(b"x")
        # Again, and on None: no error.
        await anytcpip.close_stream(a)
        await anytcpip.close_stream(None)
        with pytest.raises(anyio.EndOfStream):
            await b.receive()


@deadline()
async def test_close_stream_after_reset() -> None:
    async with stream_pair() as (a, b):
        await rst_close(a)
        with pytest.raises(anyio.BrokenResourceError):
            await b.receive()
        await anytcpip.close_stream(b)
        with pytest.raises(anyio.ClosedResourceError):
            await b.send(b"x")


@deadline()
async def test_close_stream_in_a_cancelled_scope() -> None:
    async with stream_pair() as (a, _):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await anytcpip.close_stream(a)
        with pytest.raises(anyio.ClosedResourceError):
            await a.send(b"x")
