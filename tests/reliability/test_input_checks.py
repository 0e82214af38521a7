"""Arguments that are not what they must be: non-bytes writes, codecs that
are not text encodings, JSON that Python cannot turn into values (issue 14
items 16, 17, 18)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import anytcpip
from helpers import deadline

from .harness import TEST_TIMEOUT, open_raw
from .payloads import ShortStruct

ROLES = ["client", "server"]


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_writes_reject_what_is_not_bytes(log: logging.Logger, role: str) -> None:
    """14.16: every write method raises TypeError for what is not bytes-like
    (write: not bytes, bytearray or memoryview, as asyncio's writer.write;
    write_from, and the module's write_from for anyio streams: not a
    ctypes.Structure; write_str: not a str), and queues nothing: the peer
    then gets exactly the next good write. bytearray and memoryview are
    written as their bytes."""
    async with open_raw(role, log) as rp:
        obj = rp.obj
        # Passing what the annotations forbid is the point.
        bad: list[tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]] = [
            *[(obj.write, (a,)) for a in (5, [65, 66], "AB", None, 2.5, ShortStruct())],
            *[(obj.write_from, (a,)) for a in (3, b"ab", bytearray(4), [ShortStruct()])],
            (obj.write_from, (ShortStruct(), 3)),
            *[(obj.write_str, (a,)) for a in (b"x", 5, None)],
            *[(obj.writelines, (a,)) for a in (5, [b"a", 5], ["a"])],
            (anytcpip.write_from, (rp.raw, 3)),
            (anytcpip.write_from, (rp.raw, ShortStruct(), b"ab")),
        ]
        for method, args in bad:
            try:
                await method(*args)
            except TypeError:
                continue
            pytest.fail(f"{method.__name__}{args!r} did not raise TypeError")
        assert obj.connected
        await obj.write(bytearray(b"ba"))
        await obj.write(memoryview(b"xmvx")[1:3])
        await obj.write(b"OK\r\n")
        expected = b"bamvOK\r\n"
        got = b""
        with anyio.fail_after(5):
            while len(got) < len(expected):
                got += await rp.raw.receive()
        assert got == expected


class _ReadLoop(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        await self.read_str()


@pytest.mark.parametrize("codec", ["hex", "base64", "zlib", "rot13", "bz2", "uu", "quopri"])
async def test_encoding_must_be_a_text_encoding(log: logging.Logger, codec: str) -> None:
    """14.17: codecs that do not turn str into bytes are refused with
    ValueError by the constructors and by the setter (which keeps the old
    value); text encodings of every kind are accepted."""
    with pytest.raises(ValueError, match="text encoding"):
        anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=1, log=log, encoding=codec)
    with pytest.raises(ValueError, match="text encoding"):
        anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log, encoding=codec)
    with pytest.raises(ValueError, match="text encoding"):
        _ReadLoop(host=anytcpip.LOCALHOST_IPV4, port=0, log=log, encoding=codec)
    client = anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=1, log=log)
    for good in ("latin-1", "utf-16", "ascii", "cp1252"):
        client.encoding = good
        assert client.encoding == good
    with pytest.raises(ValueError, match="text encoding"):
        client.encoding = codec
    assert client.encoding == "cp1252"


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_read_json_too_many_digits(log: logging.Logger, role: str) -> None:
    """14.18: JSON that parses but that Python refuses to convert (integers
    past the int max str digits limit, alone or nested) raises
    json.JSONDecodeError whose message holds the data, like any undecodable
    line; the next message is read normally."""
    digits = "7" * 5000
    lines = [digits, "-" + digits, '{"a": [' + digits + "]}"]
    async with open_raw(role, log) as rp:
        for line in lines:
            await rp.raw.send(line.encode() + b"\r\n" + b'{"ok": 1}\r\n')
            with pytest.raises(json.JSONDecodeError) as info:
                await rp.obj.read_json()
            assert digits in str(info.value)
            assert info.value.doc == line
            assert await rp.obj.read_json() == {"ok": 1}
        assert rp.obj.connected
