"""Hostile and awkward payloads, and sequence-numbered frames."""

from __future__ import annotations

import ctypes
import random
import zlib

__all__ = (
    "BAD_JSON_LINES",
    "BAD_UTF8_LINES",
    "JSON_ODDITIES",
    "ShortStruct",
    "check_frame",
    "frame",
    "hostile_json_lines",
    "pattern",
    "random_text",
)

#: Lines (without terminator) that are not valid UTF-8.
BAD_UTF8_LINES: list[bytes] = [
    b"\xff\xfe\xc3\x28",  # invalid start bytes and a bad continuation
    b"abc\xe2\x82",  # truncated 3-byte sequence
    b"\xed\xa0\x80",  # a lone surrogate (U+D800) encoded as UTF-8
    b"\xc0\xaf",  # overlong encoding of "/"
]

#: Lines (without terminator) that are not JSON at all.
BAD_JSON_LINES: list[bytes] = [
    b"not valid json",
    b'{"a": 1} {"b": 2}',  # two documents on one line
    b'{"a": ',
    b"",
]

#: JSON text that Python's decoder accepts although it is not strict JSON,
#: with the value it decodes to (NaN is checked separately).
JSON_ODDITIES: list[tuple[bytes, str]] = [
    (b"NaN", "nan"),
    (b"1e999999", "inf"),
    (b"-Infinity", "-inf"),
    (b'"\\ud800"', "lone-surrogate"),
]


def hostile_json_lines() -> list[bytes]:
    """Pathological JSON: deep nesting (RecursionError inside json)."""
    return [b"[" * 100_000, b"{" * 50_000, b'{"a":' * 30_000]


class ShortStruct(ctypes.Structure):
    """An 18-byte packed struct."""

    _pack_ = 1
    _fields_ = [
        ("seq", ctypes.c_uint16),
        ("value", ctypes.c_int64),
        ("ratio", ctypes.c_double),
    ]


assert ctypes.sizeof(ShortStruct) == 18


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` seeded random bytes."""
    return random.Random(seed).randbytes(n)


def random_text(rng: random.Random, n: int) -> str:
    """Random printable text including non-ASCII characters (no CR/LF)."""
    alphabet = "abcXYZ019 -_{}[]\"':,éüß€中文字😀Ωж\t"
    return "".join(rng.choice(alphabet) for _ in range(n))


def frame(conn_id: int, seq: int, body: bytes) -> bytes:
    """A self-checking line: ``conn:seq:crc:body`` (no terminator; body must
    not contain it)."""
    crc = zlib.crc32(body)
    return b"%d:%d:%08x:" % (conn_id, seq, crc) + body


def check_frame(line: bytes) -> tuple[int, int, bytes]:
    """Parse and verify a :func:`frame`; raise AssertionError if torn."""
    parts = line.split(b":", 3)
    assert len(parts) == 4, f"torn frame {line[:80]!r}"
    conn_id, seq, crc, body = parts
    assert int(crc, 16) == zlib.crc32(body), f"corrupt frame {line[:80]!r}"
    return int(conn_id), int(seq), body
