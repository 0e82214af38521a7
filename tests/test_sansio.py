"""SendBuffer, the connection state and _framing, tested without an event loop."""

from __future__ import annotations

import ctypes
import errno
import json
import logging
from typing import Any

import anyio
import pytest

from anytcpip._buffer import SendBuffer
from anytcpip._connection import WRITE_CALL_COST, WRITE_HIGH_WATER, WRITE_YIELD_BUDGET
from anytcpip._exceptions import is_transport_error, to_connection_error
from anytcpip._framing import (
    check_encoding,
    check_terminator,
    decode_json,
    fill_struct,
    structs_to_bytes,
)
from anytcpip._transport_stream import StreamConnection
from helpers import ShortStruct, struct_fields

# ------------------------------------------------------------------ SendBuffer


def test_send_buffer_keeps_order_and_size() -> None:
    buf = SendBuffer(10)
    assert not buf
    assert len(buf) == 0
    assert buf.append(b"abc") is False
    assert buf.append(b"defg") is False
    assert buf
    assert buf.size == len(buf) == 7
    assert buf.take_all() == b"abcdefg"
    assert not buf
    assert buf.size == 0
    assert buf.take_all() == b""


def test_send_buffer_says_blocked_at_high_water() -> None:
    buf = SendBuffer(8)
    assert buf.append(b"1234567") is False
    assert buf.append(b"8") is True
    assert buf.append(b"9") is True
    buf.clear()
    assert buf.size == 0
    assert not buf
    assert buf.append(b"x" * 8) is True


def test_send_buffer_single_chunk_is_returned_as_is() -> None:
    buf = SendBuffer(1 << 20)
    chunk = b"y" * 1000
    buf.append(chunk)
    assert buf.take_all() is chunk


def test_send_buffer_rejects_a_bad_high_water() -> None:
    with pytest.raises(ValueError, match="high_water"):
        SendBuffer(0)


# ------------------------------------------------------------ connection state


def blocked(conn: StreamConnection) -> bool:
    # A call, so that a type checker does not narrow the attribute.
    return conn.write_blocked


def flushed(conn: StreamConnection) -> bool:
    return conn.flushed


def make_conn(limit: int = 100) -> StreamConnection:
    return StreamConnection(limit=limit, monitor=True, log=logging.getLogger("anytcpip.sansio"))


def test_new_connection_is_open_and_writable() -> None:
    conn = make_conn()
    assert conn.is_open
    assert conn.writable
    assert not conn.write_blocked
    assert conn.flushed
    assert conn.out_len == 0
    assert not conn.lost.is_set()


@pytest.mark.parametrize("cause", ["eof", "error", "closed_here"])
def test_each_cause_makes_the_connection_unusable(cause: str) -> None:
    conn = make_conn()
    conn.buffer.feed(b"unread")
    if cause == "eof":
        conn.set_eof()
        expected = "the peer closed the connection"
    elif cause == "error":
        conn.set_error(ConnectionResetError("reset by peer"))
        expected = "the connection failed: reset by peer"
    else:
        conn.close_here()
        expected = "closed at this end"
    assert not conn.is_open
    assert conn.lost.is_set()
    err = conn.not_connected()
    assert isinstance(err, ConnectionError)
    assert expected in str(err)
    # Closing here throws away what was not read; the others keep it.
    assert bool(conn.buffer) == (cause != "closed_here")


def test_error_drops_what_was_queued_and_keeps_the_first_cause() -> None:
    conn = make_conn()
    conn.queue(b"q" * 100)
    assert conn.out_len == 100
    assert not flushed(conn)
    first = ConnectionResetError("first")
    conn.set_error(first)
    conn.set_error(ConnectionAbortedError("second"))
    assert conn.error is first
    assert conn.out_len == 0
    assert flushed(conn)
    assert conn.not_connected().__cause__ is first


def test_queueing_past_high_water_blocks_writes() -> None:
    conn = make_conn()
    conn.queue(b"a" * (WRITE_HIGH_WATER - 1))
    assert not blocked(conn)
    conn.queue(b"b")
    assert blocked(conn)
    assert conn.out_len == WRITE_HIGH_WATER


def test_the_yield_budget_blocks_after_enough_small_writes() -> None:
    conn = make_conn()
    writes = 0
    # A transport queue that never reaches high water (it is drained).
    while not conn.write_blocked:
        conn.queue(b"m")
        conn._out.clear()
        writes += 1
    assert writes == WRITE_YIELD_BUDGET // (1 + WRITE_CALL_COST) + 1


def test_half_closed_plain_connection_stays_writable_until_the_grace_ends() -> None:
    conn = make_conn()
    conn.attach(object())  # type: ignore[arg-type]
    conn.set_eof()
    assert not conn.is_open
    assert conn.writable
    conn.end_half_open()
    assert not conn.writable


def test_close_here_ends_writability_after_eof() -> None:
    conn = make_conn()
    conn.attach(object())  # type: ignore[arg-type]
    conn.set_eof()
    conn.close_here()
    assert not conn.writable
    assert "closed at this end" in str(conn.not_connected())


# --------------------------------------------------------------- error policy


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(errno.ECONNRESET, "reset"),
        BrokenPipeError(errno.EPIPE, "pipe"),
        OSError(errno.ETIMEDOUT, "keepalive"),
        OSError(errno.EBADF, "closed under us"),
        anyio.BrokenResourceError(),
        anyio.ClosedResourceError(),
        anyio.EndOfStream(),
    ],
)
def test_transport_errors(exc: BaseException) -> None:
    assert is_transport_error(exc)


@pytest.mark.parametrize(
    "exc",
    [OSError(errno.EINVAL, "bad argument"), OSError(errno.ENOTSOCK, "no socket"), ValueError()],
)
def test_bugs_are_not_transport_errors(exc: BaseException) -> None:
    assert not is_transport_error(exc)


def test_to_connection_error_looks_through_anyio() -> None:
    reset = ConnectionResetError("reset")
    wrapped = anyio.BrokenResourceError()
    wrapped.__cause__ = reset
    assert to_connection_error(wrapped) is reset
    timeout = OSError(errno.ETIMEDOUT, "timed out")
    err = to_connection_error(timeout)
    assert isinstance(err, ConnectionError)
    assert err.__cause__ is timeout


# ------------------------------------------------------------------- _framing


def test_checks_accept_good_values() -> None:
    assert check_terminator(b"\r\n") == b"\r\n"
    assert check_encoding("utf-16") == "utf-16"


@pytest.mark.parametrize("terminator", [b"", "\n", None, bytearray(b"\n")])
def test_bad_terminators(terminator: Any) -> None:
    with pytest.raises(ValueError, match="terminator"):
        check_terminator(terminator)


@pytest.mark.parametrize("encoding", ["no-such-codec", "hex", "base64", 8, None])
def test_bad_encodings(encoding: Any) -> None:
    with pytest.raises(ValueError, match="encoding"):
        check_encoding(encoding)


def test_json_round_trip() -> None:
    value = {"a": [1, 2.5, None, "é"], "b": {"c": True}}
    assert decode_json(json.dumps(value)) == value


@pytest.mark.parametrize("text", ["{not json", "[" * 100_000, "1" * 5000])
def test_decode_errors_carry_the_data(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as info:
        decode_json(text)
    assert repr(text[:50])[1:-1] in str(info.value)


def test_structs_to_bytes_and_back() -> None:
    one = ShortStruct(ushort_0=7, int64_0=-3, double_0=2.5, float_0=0.5)
    two = ShortStruct(ushort_0=9, int64_0=1 << 40, double_0=-1.0, float_0=4.0)
    data = structs_to_bytes([one, two])
    size = ctypes.sizeof(ShortStruct)
    assert len(data) == 2 * size
    back = ShortStruct()
    fill_struct(back, data[size:])
    assert struct_fields(back) == struct_fields(two)
    with pytest.raises(ValueError, match="bytes for a structure"):
        fill_struct(back, data)


def test_structs_to_bytes_checks_everything_first() -> None:
    with pytest.raises(TypeError):
        structs_to_bytes([ShortStruct(), b"not a struct"])
