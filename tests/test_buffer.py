"""The sans-IO ReceiveBuffer, tested without an event loop."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anytcpip import IncompleteReadError, LimitOverrunError
from anytcpip._buffer import ReceiveBuffer
from helpers import ShortStruct, struct_fields


class CountingBytearray(bytearray):
    """A bytearray that counts how many bytes its find() calls could scan."""

    scanned = 0
    calls = 0

    def find(self, sub, start=None, end=None):  # type: ignore[no-untyped-def]
        begin = 0 if start is None else start
        CountingBytearray.scanned += max(0, len(self) - begin)
        CountingBytearray.calls += 1
        return super().find(sub, start, end)


def counting_buffer(limit: int, first: bytes) -> ReceiveBuffer:
    """A ReceiveBuffer fed ``first``, whose separator searches from then on
    are counted (white-box: a chunk fed to an empty buffer is kept as it came,
    and later ones are appended to a bytearray, here a counting one)."""
    buffer = ReceiveBuffer(limit)
    buffer.feed(first)
    buffer._buf = CountingBytearray(buffer._buf)
    CountingBytearray.scanned = 0
    CountingBytearray.calls = 0
    return buffer


def discarding(buffer: ReceiveBuffer) -> bool:
    """Whether ``buffer`` is discarding (a call, so mypy does not narrow it)."""
    return buffer.discarding


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        ReceiveBuffer(0)


def test_empty() -> None:
    buffer = ReceiveBuffer(100)
    assert len(buffer) == 0
    assert not buffer
    assert buffer.take_until(b"\n") is None
    assert buffer.take_exactly(1) is None
    assert buffer.take_some(5) == b""
    assert buffer.take_all() == b""
    assert buffer.take_exactly(0) == b""


def test_take_until_keeps_or_strips_separator() -> None:
    buffer = ReceiveBuffer(100)
    buffer.feed(b"one\r\ntwo\r\nthr")
    assert len(buffer) == 13
    assert buffer.take_until(b"\r\n") == b"one\r\n"
    assert buffer.take_until(b"\r\n", keep_sep=False) == b"two"
    assert buffer.take_until(b"\r\n") is None
    assert len(buffer) == 3
    buffer.feed(b"ee\r")
    assert buffer.take_until(b"\r\n") is None
    buffer.feed(b"\n")
    assert buffer.take_until(b"\r\n") == b"three\r\n"
    assert not buffer


def test_take_until_separator_split_across_feeds() -> None:
    buffer = ReceiveBuffer(100)
    for piece in (b"abcXY", b"", b"Z", b"defX", b"YZ"):
        buffer.feed(piece)
    assert buffer.take_until(b"XYZ") == b"abcXYZ"
    assert buffer.take_until(b"XYZ") == b"defXYZ"


def test_take_until_with_a_new_separator_rescans() -> None:
    buffer = ReceiveBuffer(100)
    buffer.feed(b"a;b\nc;")
    assert buffer.take_until(b"|") is None
    assert buffer.take_until(b"\n") == b"a;b\n"
    assert buffer.take_until(b";") == b"c;"


def test_message_exactly_at_limit() -> None:
    buffer = ReceiveBuffer(10)
    buffer.feed(b"x" * 10 + b"\r")
    # The trailing b"\r" may be the start of the separator: no overrun yet.
    assert buffer.take_until(b"\r\n") is None
    buffer.feed(b"\n")
    assert buffer.take_until(b"\r\n") == b"x" * 10 + b"\r\n"


def test_limit_overrun_found_in_one_feed() -> None:
    buffer = ReceiveBuffer(10)
    buffer.feed(b"y" * 25 + b"\n" + b"next\n")
    with pytest.raises(LimitOverrunError) as info:
        buffer.take_until(b"\n")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, asyncio.LimitOverrunError)
    assert info.value.consumed == 26
    assert not discarding(buffer)
    assert buffer.take_until(b"\n") == b"next\n"
    assert not buffer


def test_limit_overrun_not_found_discards_through_separator() -> None:
    buffer = ReceiveBuffer(10)
    buffer.feed(b"z" * 8)
    assert buffer.take_until(b"\r\n") is None
    buffer.feed(b"z" * 8)
    with pytest.raises(LimitOverrunError):
        buffer.take_until(b"\r\n")
    assert discarding(buffer)
    # Many more pieces of the same message, and memory stays bounded.
    for _ in range(200):
        buffer.feed(b"z" * 50)
        assert buffer.take_until(b"\r\n") is None
        assert len(buffer) <= 1
    # The separator split across two feeds ends the discarding.
    buffer.feed(b"zzz\r")
    assert discarding(buffer)
    assert buffer.take_until(b"\r\n") is None
    buffer.feed(b"\nnext\r\nrest")
    assert not discarding(buffer)
    assert buffer.take_until(b"\r\n") == b"next\r\n"
    assert buffer.take_all() == b"rest"


def test_discarding_with_false_separator_starts() -> None:
    buffer = ReceiveBuffer(4)
    buffer.feed(b"abcdefgh")
    with pytest.raises(LimitOverrunError):
        buffer.take_until(b"XYZ")
    # Partial matches of the separator that are not the separator.
    for piece in (b"XY", b"Q", b"X", b"XY", b"X", b"Y", b"Z", b"ok", b"XYZ"):
        buffer.feed(piece)
    assert not discarding(buffer)
    assert buffer.take_until(b"XYZ") == b"okXYZ"


def test_overrun_in_one_byte_pieces() -> None:
    buffer = ReceiveBuffer(16)
    results: list[bytes] = []
    overruns = 0
    stream = b"a" * 40 + b"\n" + b"short\n" + b"b" * 17 + b"\n" + b"last\n"
    for byte in stream:
        buffer.feed(bytes([byte]))
        while True:
            try:
                data = buffer.take_until(b"\n")
            except LimitOverrunError:
                overruns += 1
                continue
            if data is None:
                break
            results.append(data)
    assert overruns == 2
    assert results == [b"short\n", b"last\n"]


def test_clear_stops_discarding() -> None:
    buffer = ReceiveBuffer(3)
    buffer.feed(b"abcdefg")
    with pytest.raises(LimitOverrunError):
        buffer.take_until(b"\n")
    assert discarding(buffer)
    buffer.clear()
    assert not discarding(buffer)
    assert not buffer
    buffer.feed(b"ok\n")
    assert buffer.take_until(b"\n") == b"ok\n"


def test_take_exactly_and_take_some() -> None:
    buffer = ReceiveBuffer(100)
    buffer.feed(b"0123")
    assert buffer.take_exactly(5) is None
    assert len(buffer) == 4  # nothing consumed
    buffer.feed(b"456789")
    assert buffer.take_exactly(5) == b"01234"
    assert buffer.take_some(3) == b"567"
    assert buffer.take_some(100) == b"89"
    assert buffer.take_some(1) == b""


def test_take_into() -> None:
    sent = ShortStruct(seq=7, stamp=-(2**40), angle=1.5, level=-0.25)
    data = bytes(sent)
    buffer = ReceiveBuffer(100)
    received = ShortStruct()
    buffer.feed(data[:-1])
    assert buffer.take_into(received) is False
    assert len(buffer) == len(data) - 1
    assert struct_fields(received) == [0, 0, 0.0, 0.0]
    buffer.feed(data[-1:] + b"tail")
    assert buffer.take_into(received) is True
    assert struct_fields(received) == struct_fields(sent)
    assert buffer.take_all() == b"tail"
    assert ctypes.sizeof(ShortStruct) == len(data)


def test_incomplete_consumes_and_reports() -> None:
    buffer = ReceiveBuffer(100)
    buffer.feed(b"part")
    err = buffer.incomplete(10)
    assert isinstance(err, IncompleteReadError)
    assert isinstance(err, asyncio.IncompleteReadError)
    assert isinstance(err, EOFError)
    assert err.partial == b"part"
    assert err.expected == 10
    assert not buffer
    assert buffer.incomplete(None).expected is None


def test_long_line_fed_one_byte_at_a_time_is_linear() -> None:
    size = 64 * 1024
    buffer = counting_buffer(size + 10, b"q")
    start = time.perf_counter()
    assert buffer.take_until(b"\r\n") is None
    for _ in range(size - 1):
        buffer.feed(b"q")
        assert buffer.take_until(b"\r\n") is None
    buffer.feed(b"\r")
    assert buffer.take_until(b"\r\n") is None
    buffer.feed(b"\n")
    assert buffer.take_until(b"\r\n") == b"q" * size + b"\r\n"
    elapsed = time.perf_counter() - start
    # A search that rescans from the start would look at ~2**31 bytes.
    assert CountingBytearray.calls >= size  # the counter did see the searches
    assert CountingBytearray.scanned < 4 * size, CountingBytearray.scanned
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_discarding_one_byte_at_a_time_is_linear() -> None:
    size = 64 * 1024
    buffer = counting_buffer(100, b"q")
    overruns = 0
    for _ in range(size - 1):
        buffer.feed(b"q")
        try:
            assert buffer.take_until(b"\r\n") is None
        except LimitOverrunError:
            overruns += 1
    buffer.feed(b"\r\nok\r\n")
    assert buffer.take_until(b"\r\n") == b"ok\r\n"
    assert overruns == 1
    assert CountingBytearray.scanned < 4 * size, CountingBytearray.scanned


def test_consumed_space_is_reclaimed() -> None:
    buffer = ReceiveBuffer(1 << 20)
    line = b"x" * 1000 + b"\n"
    for _ in range(1000):
        buffer.feed(line + line[:500])
        assert buffer.take_until(b"\n") == line
        buffer.feed(line[500:])
        assert buffer.take_until(b"\n") == line
        assert not buffer
    assert len(buffer._buf) < 1 << 17  # white-box: the storage did not grow


separators = st.sampled_from([b"\n", b"\r\n", b"\n\r", b"XYZZY", b"\x00", b"aa"])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    sep=separators,
    messages=st.lists(st.binary(max_size=40), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
)
def test_any_split_yields_exactly_the_messages(
    sep: bytes, messages: list[bytes], cuts: list[int]
) -> None:
    # Keep messages that frame unambiguously with this separator.
    messages = [m for m in messages if (m + sep).find(sep) == len(m)]
    stream = b"".join(m + sep for m in messages)
    points = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    buffer = ReceiveBuffer(1000)
    received: list[bytes] = []
    for begin, end in itertools.pairwise(points):
        buffer.feed(stream[begin:end])
        while (data := buffer.take_until(sep, keep_sep=False)) is not None:
            received.append(data)
    assert received == messages
    assert not buffer


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    sep=separators,
    messages=st.lists(st.binary(max_size=30), max_size=15),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=30),
)
def test_any_split_with_limit_skips_exactly_the_long_messages(
    sep: bytes, messages: list[bytes], cuts: list[int]
) -> None:
    limit = 10
    messages = [m for m in messages if (m + sep).find(sep) == len(m)]
    stream = b"".join(m + sep for m in messages)
    expected = [m if len(m) <= limit else None for m in messages]
    points = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    buffer = ReceiveBuffer(limit)
    received: list[bytes | None] = []
    for begin, end in itertools.pairwise(points):
        buffer.feed(stream[begin:end])
        while True:
            try:
                data = buffer.take_until(sep, keep_sep=False)
            except LimitOverrunError:
                received.append(None)
                continue
            if data is None:
                break
            received.append(data)
    assert received == expected
    assert not buffer
    assert not discarding(buffer)


# ---------------------------------------------------------------- discarding


def overrun(buffer: ReceiveBuffer, sep: bytes) -> None:
    """Start discarding: ``take_until`` must raise LimitOverrunError."""
    with pytest.raises(LimitOverrunError):
        buffer.take_until(sep)
    assert discarding(buffer)


def test_nothing_of_a_discarded_message_is_readable() -> None:
    buffer = ReceiveBuffer(10)
    buffer.feed(b"A" * 20 + b"\r")
    overrun(buffer, b"\r\n")
    # The b"\r" may start the separator; it is still part of the message.
    assert len(buffer) == 0
    assert not buffer
    assert buffer.take_some(100) == b""
    assert buffer.take_exactly(1) is None
    assert buffer.take_into(ShortStruct()) is False
    assert buffer.take_all() == b""
    buffer.feed(b"\nNEXT\r\nAFTER\r\n")
    assert buffer.take_until(b"\r\n", keep_sep=False) == b"NEXT"
    assert buffer.take_until(b"\r\n", keep_sep=False) == b"AFTER"


def test_another_separator_during_discarding_sees_nothing() -> None:
    buffer = ReceiveBuffer(4)
    buffer.feed(b"abcdefgXYZZ")
    overrun(buffer, b"XYZZY")
    assert buffer.take_until(b"ZZ") is None
    assert buffer.take_until(b"Z") is None
    buffer.feed(b"Yok;")
    assert buffer.take_until(b";") == b"ok;"


def test_incomplete_during_discarding_has_no_partial() -> None:
    buffer = ReceiveBuffer(3)
    buffer.feed(b"AAAAAB")
    overrun(buffer, b"BB")
    err = buffer.incomplete(None)
    assert err.partial == b""
    assert not buffer


class ReaderModel:
    """What a reader must see: the received stream, read from a position,
    with an over-long message skipped through its separator once that has
    arrived (whenever it arrives)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = b""
        self.pos = 0
        self.discard_sep: bytes | None = None

    def _settle(self) -> None:
        if self.discard_sep is not None:
            idx = self.data.find(self.discard_sep, self.pos)
            if idx >= 0:
                self.pos = idx + len(self.discard_sep)
                self.discard_sep = None

    def readable(self) -> bytes:
        self._settle()
        return b"" if self.discard_sep is not None else self.data[self.pos :]

    def take_until(self, sep: bytes) -> bytes | None:
        """The message, None (not yet) or raise LimitOverrunError."""
        rest = self.readable()
        if self.discard_sep is not None:
            return None
        idx = rest.find(sep)
        if idx < 0:
            if len(rest) - (len(sep) - 1) > self.limit:
                # Skipped through the first ``sep`` after the message start,
                # once it arrives.
                self.discard_sep = sep
                raise LimitOverrunError("model", 0)
            return None
        self.pos += idx + len(sep)
        if idx > self.limit:
            raise LimitOverrunError("model", 0)
        return rest[: idx + len(sep)]

    def take_some(self, n: int) -> bytes:
        rest = self.readable()
        self.pos += min(n, len(rest))
        return rest[:n]

    def take_exactly(self, n: int) -> bytes | None:
        rest = self.readable()
        if len(rest) < n:
            return None
        self.pos += n
        return rest[:n]


model_separators = [b"\r\n", b"\n", b"XYZZY", b"ZZ", b"Z"]
model_ops = st.one_of(
    st.tuples(
        st.just("feed"),
        st.lists(st.sampled_from([b"X", b"Y", b"Z", b"\r", b"\n", b"a", b"ZZY"]), max_size=12),
    ),
    st.tuples(st.just("until"), st.sampled_from(model_separators)),
    st.tuples(st.just("some"), st.integers(min_value=1, max_value=8)),
    st.tuples(st.just("exactly"), st.integers(min_value=0, max_value=8)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(model_ops, max_size=60), limit=st.integers(min_value=1, max_value=6))
def test_reads_match_the_reader_model(ops: list[tuple[str, Any]], limit: int) -> None:
    buffer = ReceiveBuffer(limit)
    model = ReaderModel(limit)
    for op, arg in ops:
        if op == "feed":
            chunk = b"".join(arg)
            buffer.feed(chunk)
            model.data += chunk
        elif op == "until":
            try:
                expected: Any = model.take_until(arg)
            except LimitOverrunError:
                expected = LimitOverrunError
            try:
                got: Any = buffer.take_until(arg)
            except LimitOverrunError:
                got = LimitOverrunError
            assert got == expected, (op, arg)
        elif op == "some":
            assert buffer.take_some(arg) == model.take_some(arg)
        else:
            assert buffer.take_exactly(arg) == model.take_exactly(arg)
        assert len(buffer) == len(model.readable())
        assert bool(buffer) == bool(model.readable())
    assert buffer.incomplete(None).partial == model.readable()


def test_feed_of_a_mutable_chunk_is_not_changed_by_its_owner() -> None:
    # A chunk fed to an empty buffer is kept as it came: a bytearray the
    # caller changes afterwards, or a memoryview of one, must not change what
    # was received.
    for kind in (bytearray, lambda b: memoryview(bytearray(b))):
        buffer = ReceiveBuffer(100)
        chunk = kind(b"abc\n")
        buffer.feed(chunk)
        chunk[:3] = b"XYZ"
        buffer.feed(kind(b"de"))
        buffer.feed(b"f\n")
        assert buffer.take_until(b"\n") == b"abc\n"
        assert buffer.take_until(b"\n") == b"def\n"
