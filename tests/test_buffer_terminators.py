"""ReceiveBuffer with alternative separators (take_until_any), and the checks
of read terminators, tested without an event loop."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anytcpip import LimitOverrunError
from anytcpip._buffer import ReceiveBuffer
from anytcpip._framing import check_read_terminator, check_write_terminator, strip_terminator

CRLF_LF = (b"\r\n", b"\n")


def drain(buffer: ReceiveBuffer, seps: tuple[bytes, ...], keep: bool = False) -> list[bytes]:
    """Every whole message the buffer holds."""
    out = []
    while (data := buffer.take_until_any(seps, keep)) is not None:
        out.append(data)
    return out


def reference_split(data: bytes, seps: tuple[bytes, ...]) -> tuple[list[bytes], bytes]:
    """The messages of ``data`` by the documented rule, found the slow way:
    grow the message a byte at a time; the first length at which it ends with
    an alternative ends it, and of those that end there the longest is the
    separator. Returns (messages without separator, the unterminated rest)."""
    messages = []
    start = 0
    end = start + 1
    while end <= len(data):
        chunk = data[start:end]
        matching = [s for s in seps if chunk.endswith(s)]
        if matching:
            sep = max(matching, key=len)
            messages.append(chunk[: -len(sep)])
            start = end
        end += 1
    return messages, data[start:]


def test_earliest_end_wins_and_is_stripped() -> None:
    buffer = ReceiveBuffer(100)
    buffer.feed(b"one\r\ntwo\nthree\r")
    assert drain(buffer, CRLF_LF) == [b"one", b"two"]
    buffer.feed(b"\n")
    assert drain(buffer, CRLF_LF) == [b"three"]
    assert not buffer


def test_tie_goes_to_the_longer_alternative_whatever_the_order() -> None:
    for seps in (CRLF_LF, CRLF_LF[::-1]):
        buffer = ReceiveBuffer(100)
        buffer.feed(b"a\r\nb\n")
        assert drain(buffer, seps) == [b"a", b"b"]
        buffer.feed(b"c\r\n")
        assert drain(buffer, seps, keep=True) == [b"c\r\n"]


def test_a_shorter_alternative_that_ends_first_wins_over_a_longer_one() -> None:
    # b"\r\n" ends before b"\r\n\x03" does: the \x03 starts the next message.
    buffer = ReceiveBuffer(100)
    buffer.feed(b"reply\r\n\x03next\r\n")
    assert drain(buffer, (b"\r\n\x03", b"\r\n")) == [b"reply", b"\x03next"]


def test_the_etx_device_reply() -> None:
    # A device that ends replies with \r\n\x03 and may also send a bare \r\n
    # inside a reply: only the whole sequence ends the message.
    buffer = ReceiveBuffer(100)
    seps = (b"\r\n\x03",)
    buffer.feed(b"line 1\r\nline 2\r\n")
    assert buffer.take_until_any(seps, False) is None
    buffer.feed(b"\x03")
    assert buffer.take_until_any(seps, False) == b"line 1\r\nline 2"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_alternatives_split_across_chunks(chunk: int) -> None:
    data = b"a\r\n\x03bb\nccc\r\n\x03dddd\r\n"
    seps = (b"\r\n\x03", b"\n")
    expected, rest = reference_split(data, seps)
    assert expected == [b"a\r", b"\x03bb", b"ccc\r", b"\x03dddd\r"]
    buffer = ReceiveBuffer(100)
    got = []
    for i in range(0, len(data), chunk):
        buffer.feed(data[i : i + chunk])
        got += drain(buffer, seps)
    assert got == expected
    assert rest == b""
    assert not buffer


def test_limit_applies_to_a_found_message_and_the_next_is_intact() -> None:
    buffer = ReceiveBuffer(4)
    buffer.feed(b"12345\nabcd\r\n")
    with pytest.raises(LimitOverrunError) as info:
        buffer.take_until_any(CRLF_LF, False)
    assert info.value.consumed == 6
    assert buffer.take_until_any(CRLF_LF, False) == b"abcd"  # exactly the limit


def test_limit_waits_while_the_longest_alternative_could_still_end_in_time() -> None:
    # 6 bytes buffered, limit 4: b"AB" may be the start of b"ABC", which
    # would end a 4-byte message; only one more byte says.
    seps = (b"\n", b"ABC")
    buffer = ReceiveBuffer(4)
    buffer.feed(b"1234AB")
    assert buffer.take_until_any(seps, False) is None
    buffer.feed(b"C")
    assert buffer.take_until_any(seps, False) == b"1234"
    buffer.feed(b"1234AXY")  # no alternative can end it within 4 bytes
    with pytest.raises(LimitOverrunError):
        buffer.take_until_any(seps, False)
    assert buffer.discarding


@pytest.mark.parametrize("chunk", [1, 2, 7])
def test_over_long_message_discarded_through_an_alternative_across_chunks(chunk: int) -> None:
    seps = (b"\r\n\x03", b"!!")
    data = b"x" * 50 + b"\r\n\x03" + b"next!!"
    buffer = ReceiveBuffer(8)
    raised = 0
    got = []
    for i in range(0, len(data), chunk):
        buffer.feed(data[i : i + chunk])
        try:
            got += drain(buffer, seps)
        except LimitOverrunError:
            raised += 1
            got += drain(buffer, seps)
    assert raised == 1
    assert got == [b"next"]
    assert not buffer.discarding


def test_switching_between_one_separator_and_alternatives() -> None:
    buffer = ReceiveBuffer(100)
    buffer.feed(b"a\nb\r")
    assert buffer.take_until(b"\n", False) == b"a"
    assert buffer.take_until_any((b"\r", b"\n"), False) == b"b"
    buffer.feed(b"c\rd\n")
    assert buffer.take_until(b"\n", False) == b"c\rd"


def _bytes_of(alphabet: bytes, min_size: int, max_size: int) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(alphabet), min_size=min_size, max_size=max_size).map(bytes)


@settings(max_examples=200, deadline=None)
@given(
    seps=st.lists(_bytes_of(b"ab\r\n", 1, 3), min_size=1, max_size=3).map(
        lambda s: tuple(dict.fromkeys(s))
    ),
    data=_bytes_of(b"abc\r\n", 0, 60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
)
def test_any_chunking_gives_the_reference_split(
    seps: tuple[bytes, ...], data: bytes, cuts: list[int]
) -> None:
    expected, rest = reference_split(data, seps)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    buffer = ReceiveBuffer(1000)
    got = []
    for lo, hi in itertools.pairwise(bounds):
        buffer.feed(data[lo:hi])
        got += drain(buffer, seps)
    assert got == expected
    assert buffer.take_all() == rest


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ((), ValueError, "read_terminator must not be an empty tuple"),
        (b"", ValueError, "read_terminator must not be empty"),
        ((b"\n", b""), ValueError, "an alternative must not be empty"),
        ("\n", TypeError, "read_terminator=.* must be bytes or a tuple"),
        ([b"\n"], TypeError, "read_terminator=.* must be bytes or a tuple"),
        ((b"\n", "\r"), TypeError, "every alternative must be bytes"),
    ],
)
def test_bad_read_terminators(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_read_terminator(value)


def test_read_terminator_normalized() -> None:
    assert check_read_terminator((b"\n",)) == b"\n"
    assert check_read_terminator((b"\n", b"\n")) == b"\n"
    assert check_read_terminator((b"\r", b"\n", b"\r")) == (b"\r", b"\n")
    with pytest.raises(TypeError, match="write_terminator"):
        check_write_terminator((b"\n",))
    with pytest.raises(ValueError, match="write_terminator"):
        check_write_terminator(b"")


def test_strip_terminator_strips_the_longest_that_ends_the_message() -> None:
    assert strip_terminator(b"abc\r\n", CRLF_LF) == b"abc"
    assert strip_terminator(b"abc\n", CRLF_LF) == b"abc"
    assert strip_terminator(b"abc", CRLF_LF) == b"abc"
    assert strip_terminator(b"abc\r\n", b"\r\n") == b"abc"
