"""The conformance check of the read and write methods,
:func:`check_read_write_methods` (re-exported by :mod:`anytcpip.testing`).

It runs on two connected objects of any transport and needs no test
framework.
"""

from __future__ import annotations

import ctypes
from typing import Any

import anyio

from ._base import BaseClientOrServer
from ._recorder import STD_TIMEOUT

__all__ = ("check_read_write_methods",)


class _Telemetry(ctypes.Structure):
    """The binary message of :func:`check_read_write_methods`."""

    _pack_ = 1
    _fields_ = [
        ("sequence", ctypes.c_uint16),
        ("time_ns", ctypes.c_int64),
        ("elevation", ctypes.c_double),
        ("torques", ctypes.c_float * 3),
    ]


def _fields(value: ctypes.Structure) -> list[Any]:
    out = []
    for name, *_ in value._fields_:
        item = getattr(value, name)
        out.append(list(item) if isinstance(item, ctypes.Array) else item)
    return out


#: The encodings and terminators :func:`check_read_write_methods` goes through.
_CHECK_ENCODINGS = ("utf-8", "utf-16", "utf-32", "latin-1")
_CHECK_TERMINATORS = (b"\r\n", b"\n", b"\n\r", b"<EOM>")


async def check_read_write_methods(
    one: BaseClientOrServer, other: BaseClientOrServer, *, timeout: float = 10 * STD_TIMEOUT
) -> None:
    """Check that every read and write method works, in both directions,
    between two connected objects (a server and the client connected to it).

    Each write method (``write``, ``writelines``, ``write_from``,
    ``write_str``, ``write_json``) of one object sends data that each read
    method (``read``, ``readexactly``, ``readline``, ``readuntil``,
    ``read_into``, ``read_str``, ``read_json``) of the other must return
    exactly; then the roles swap. The text messages go through several
    encodings and terminators; both objects get their ``encoding``,
    ``read_terminator`` and ``write_terminator`` back afterwards. Run it on a
    custom transport or subclass to check it behaves like the built-in ones.

    Parameters
    ----------
    one, other : `BaseClientOrServer`
        Two connected objects, each the peer of the other, with the same
        ``encoding`` and ``terminator``; nothing may be buffered unread.
    timeout : `float`, optional
        The longest the whole check may take (seconds).

    Raises
    ------
    AssertionError
        If data read differs from data written, or the two objects disagree
        on ``encoding`` or ``terminator`` when called.
    TimeoutError
        If the check takes longer than ``timeout``.
    """
    assert one.encoding == other.encoding, (one.encoding, other.encoding)
    assert one.terminator == other.terminator, (one.terminator, other.terminator)
    with anyio.fail_after(timeout):
        for writer, reader in ((one, other), (other, one)):
            await _check_one_way(writer, reader)


async def _check_one_way(writer: BaseClientOrServer, reader: BaseClientOrServer) -> None:
    where = f"{type(writer).__name__} -> {type(reader).__name__}"
    text = "voilà \u00e9t\u00e9 \u2603 \U0001f52d"
    payload = text.encode() + bytes(range(256))

    await writer.write(payload)
    got = await reader.readexactly(len(payload))
    assert got == payload, f"{where}: write / readexactly"

    # read(n) may return less than n: gather it, asking for more than there is.
    await writer.write(payload)
    got = b""
    while len(got) < len(payload):
        chunk = await reader.read(2 * len(payload) - len(got))
        assert chunk, f"{where}: read returned b'' on an open connection"
        got += chunk
    assert got == payload, f"{where}: write / read"

    line = text.encode() + b" readline\n"
    await writer.writelines([line[:1], line[1:7], b"", line[7:]])
    got = await reader.readline()
    assert got == line, f"{where}: writelines / readline"

    marker = b"--end--"
    chunk = text.encode() + b" readuntil" + marker
    await writer.write(chunk)
    got = await reader.readuntil(marker)
    assert got == chunk, f"{where}: write / readuntil"

    first = _Telemetry(sequence=65535, time_ns=-(2**63), elevation=89.75)
    first.torques[:] = [0.5, -1.25, 3e10]
    second = _Telemetry(sequence=1, time_ns=2**62, elevation=-1e-300)
    await writer.write_from(first, second)
    for sent in (first, second):
        received = _Telemetry()
        await reader.read_into(received)
        assert _fields(received) == _fields(sent), f"{where}: write_from / read_into"

    saved = [(obj.encoding, obj.read_terminator, obj.write_terminator) for obj in (writer, reader)]
    try:
        for encoding in _CHECK_ENCODINGS:
            message = text if encoding != "latin-1" else "voilà été"
            for terminator in _CHECK_TERMINATORS:
                case = f"{where}, encoding={encoding}, terminator={terminator!r}"
                for obj in (writer, reader):
                    obj.encoding = encoding
                    obj.terminator = terminator

                await writer.write_str(message)
                got_str = await reader.read_str()
                assert got_str == message, f"{case}: write_str / read_str"

                await writer.write(message.encode(encoding) + terminator)
                got_str = await reader.read_str()
                assert got_str == message, f"{case}: write / read_str"

                await writer.write_str(message)
                got = await reader.readuntil(terminator)
                assert got == message.encode(encoding) + terminator, f"{case}: readuntil"

                document = {"text": message, "values": [1, -2.5, None, True], "nested": {}}
                await writer.write_json(document)
                got_json = await reader.read_json()
                assert got_json == document, f"{case}: write_json / read_json"
    finally:
        for obj, (encoding, read_term, write_term) in zip((writer, reader), saved, strict=True):
            obj.encoding, obj.read_terminator, obj.write_terminator = (
                encoding,
                read_term,
                write_term,
            )
