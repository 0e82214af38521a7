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
    "OVERSIZE_POLICIES",
    "check_encoding",
    "check_oversize",
    "check_read_terminator",
    "check_terminator",
    "check_write_terminator",
    "decode_json",
    "fill_struct",
    "not_bytes",
    "not_structure",
    "strip_terminator",
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


def check_read_terminator(
    terminator: Any, name: str = "read_terminator"
) -> bytes | tuple[bytes, ...]:
    """Return a read terminator: non-empty bytes, or a tuple of alternatives.

    A tuple of one is returned as its only item, and repeated alternatives
    are dropped (the first of each is kept), so the common case stays bytes.

    Raises
    ------
    TypeError
        If it is neither bytes nor a tuple, or an alternative is not bytes.
    ValueError
        If it, or an alternative, is empty, or the tuple is empty.
    """
    if isinstance(terminator, bytes):
        if not terminator:
            raise ValueError(f"{name} must not be empty")
        return terminator
    if not isinstance(terminator, tuple):
        raise TypeError(
            f"{name}={terminator!r} must be bytes or a tuple of bytes, "
            f"not {type(terminator).__name__}"
        )
    if not terminator:
        raise ValueError(f"{name} must not be an empty tuple")
    for item in terminator:
        if not isinstance(item, bytes):
            raise TypeError(f"{name}: every alternative must be bytes, not {item!r}")
        if not item:
            raise ValueError(f"{name}: an alternative must not be empty")
    unique = tuple(dict.fromkeys(terminator))
    return unique[0] if len(unique) == 1 else unique


def check_write_terminator(terminator: Any) -> bytes:
    """Return ``terminator`` if it is non-empty bytes.

    Raises
    ------
    TypeError
        If it is not bytes.
    ValueError
        If it is empty.
    """
    if not isinstance(terminator, bytes):
        raise TypeError(f"write_terminator={terminator!r} must be bytes")
    if not terminator:
        raise ValueError("write_terminator must not be empty")
    return terminator


#: The choices of ``oversize``: what a message longer than the limit does.
OVERSIZE_POLICIES = ("raise", "discard", "close")


def check_oversize(oversize: Any) -> str:
    """Return ``oversize`` if it is one of :data:`OVERSIZE_POLICIES`.

    Raises
    ------
    ValueError
        If it is not (the message names the choices).
    """
    if not isinstance(oversize, str) or oversize not in OVERSIZE_POLICIES:
        raise ValueError(
            f"oversize={oversize!r} must be one of {', '.join(map(repr, OVERSIZE_POLICIES))}"
        )
    return oversize


def strip_terminator(data: bytes, terminator: bytes | tuple[bytes, ...]) -> bytes:
    """``data`` (a message that ends with ``terminator``, or with one of its
    alternatives) without it; with alternatives, the longest that ends it."""
    if isinstance(terminator, bytes):
        return data[: -len(terminator)] if data.endswith(terminator) else data
    best = max((t for t in terminator if data.endswith(t)), key=len, default=b"")
    return data[: -len(best)] if best else data


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
