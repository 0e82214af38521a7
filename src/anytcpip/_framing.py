"""Sans-IO codecs and the checks of their arguments.

Everything here is synchronous and touches no connection: the terminator and
encoding checks, JSON in and out (a decoding error carries the data it could
not decode), and ctypes structures to and from bytes. The hot read and write
paths of :class:`~anytcpip.BaseClientOrServer` inline the one-line cases
(``line.encode(encoding) + terminator``, ``json.dumps``, ``json.loads``,
``bytes(struct)``) rather than call in here per message (measured: one more
call per message in read_json and write_json cost trio's echo latency); they
come here for the checks and the error paths.
"""

from __future__ import annotations

import codecs
import ctypes
import json
from collections.abc import Iterable
from typing import Any

__all__ = (
    "check_encoding",
    "check_terminator",
    "decode_json",
    "fill_struct",
    "not_bytes",
    "not_structure",
    "structs_to_bytes",
)


def check_terminator(terminator: Any) -> bytes:
    """Return ``terminator`` if it is non-empty bytes.

    Raises
    ------
    ValueError
        If it is not bytes, or empty.
    """
    if not isinstance(terminator, bytes):
        raise ValueError(f"terminator={terminator!r} must be bytes")
    if not terminator:
        raise ValueError("terminator must not be empty")
    return terminator


def check_encoding(encoding: Any) -> str:
    """Return ``encoding`` if it names a text encoding (str <-> bytes).

    Raises
    ------
    ValueError
        If it is not a str, unknown, or not a text encoding (hex, base64...).
    """
    if not isinstance(encoding, str):
        raise ValueError(f"encoding={encoding!r} must be a str")
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    # hex, base64, zlib, rot13...: codecs, but not between str and bytes.
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"encoding={encoding!r} is not a text encoding")
    return encoding


def not_bytes(data: object) -> TypeError:
    """The error for write data that is not bytes-like."""
    return TypeError(f"data must be bytes, bytearray or memoryview, not {type(data).__name__}")


def not_structure(struct: object) -> TypeError:
    """The error for something passed as a structure that is not one."""
    return TypeError(f"expected a ctypes.Structure, not {type(struct).__name__}")


def decode_json(text: str) -> Any:
    """Decode one JSON message.

    Raises
    ------
    json.JSONDecodeError
        If ``text`` is not JSON; its message includes ``text``. Also for
        nesting too deep to decode, or an integer with more digits than
        Python converts.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(f"{exc.msg}; data={text!r}", exc.doc, exc.pos) from None
    except RecursionError:
        raise json.JSONDecodeError(
            f"nesting too deep to decode; data={text[:200]!r}", text, 0
        ) from None
    except ValueError as exc:
        # For instance an integer longer than sys.get_int_max_str_digits().
        raise json.JSONDecodeError(f"{exc}; data={text!r}", text, 0) from None


def structs_to_bytes(structs: Iterable[object]) -> bytes:
    """The bytes of the structures in ``structs``, one after another.

    Raises
    ------
    TypeError
        If any of them is not a :class:`ctypes.Structure` (checked before
        anything is converted).
    """
    structs = tuple(structs)
    for struct in structs:
        if not isinstance(struct, ctypes.Structure):
            raise not_structure(struct)
    return b"".join([bytes(s) for s in structs])  # type: ignore[call-overload]


def fill_struct(struct: ctypes.Structure, data: bytes | bytearray | memoryview) -> None:
    """Copy ``data`` (exactly ``ctypes.sizeof(struct)`` bytes) into ``struct``."""
    size = ctypes.sizeof(struct)
    if len(data) != size:
        raise ValueError(f"{len(data)} bytes for a structure of {size}")
    try:
        memoryview(struct).cast("B")[:] = data
    except TypeError:  # pragma: no cover (a layout memoryview cannot cast)
        ctypes.memmove(ctypes.addressof(struct), bytes(data), size)
