"""Bad and hostile input: over-limit lines, bad encodings, hostile JSON,
terminators inside messages, garbage into a read loop
(docs/reliability.rst R27-R31)."""

from __future__ import annotations

import json
import logging
import math
import random

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .harness import TEST_TIMEOUT, get_seed, open_pair, open_raw, recv_all
from .payloads import (
    BAD_JSON_LINES,
    BAD_UTF8_LINES,
    JSON_ODDITIES,
    hostile_json_lines,
)

ROLES = ["client", "server"]
LIMIT = 1000


@pytest.mark.parametrize("case", ["10MB-no-terminator", "just-past-limit", "sliced"])
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_over_limit(log: logging.Logger, role: str, case: str) -> None:
    """R27 (discard the message, keep the connection): a message longer than the
    limit raises LimitOverrunError (a ValueError) whatever the segmentation:
    (a) 10 MB without a terminator, (b) the terminator just past the limit in
    the same chunk, (c) the same through a 1-byte slicer. The rest of the
    message is discarded through its terminator, the next message is read
    intact, a message of exactly the limit is accepted, the buffer stays
    within limit + one receive chunk while the data streams in, and the
    connection stays up (conn=True, C=[T])."""
    if case == "sliced":
        async with open_pair(
            log, server_kwargs={"limit": LIMIT}, client_kwargs={"limit": LIMIT}
        ) as pair:
            obj, peer = pair.obj(role), pair.peer(role)
            toxics = pair.proxy.down if role == "client" else pair.proxy.up
            toxics.slice_max = 1
            await peer.write(b"x" * (LIMIT + 1) + b"\r\nnext\r\n")
            with pytest.raises(anytcpip.LimitOverrunError):
                await obj.read_str()
            assert await obj.read_str() == "next"
            await peer.write(b"y" * LIMIT + b"\r\n")
            assert await obj.read_str() == "y" * LIMIT
            assert obj.connected
            assert pair.cb(role).states == [True]
        return
    async with open_raw(role, log, limit=LIMIT) as rp:
        obj = rp.obj
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                conn = obj._conn
                if conn is not None:
                    peak = max(peak, len(conn.buffer._buf))
                await anyio.sleep(0.0005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            if case == "just-past-limit":
                await rp.raw.send(b"x" * (LIMIT + 1) + b"\r\nnext\r\n")
            else:

                async def flood() -> None:
                    chunk = b"z" * (1 << 20)
                    for _ in range(10):
                        await rp.raw.send(chunk)
                    await rp.raw.send(b"\r\nnext\r\n")

                tg.start_soon(flood)
            with pytest.raises(anytcpip.LimitOverrunError) as info:
                await obj.read_str()
            assert isinstance(info.value, ValueError)
            assert await obj.read_str() == "next"
            tg.cancel_scope.cancel()
        assert peak <= LIMIT + (1 << 16) + 16, peak
        await rp.raw.send(b"y" * LIMIT + b"\r\n")
        assert await obj.read_str() == "y" * LIMIT
        assert obj.connected
        assert rp.cb.states == [True]


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_bad_utf8(log: logging.Logger, role: str) -> None:
    """R28: read_str and read_json raise UnicodeDecodeError for invalid UTF-8
    (bad start bytes, a truncated sequence, an encoded surrogate, an overlong
    form) and for an odd byte count in UTF-16, consuming exactly that line:
    the next message is intact and the connection stays up. write_str with
    text the encoding cannot represent raises UnicodeEncodeError before
    anything is sent."""
    async with open_raw(role, log) as rp:
        obj = rp.obj
        for i, bad in enumerate(BAD_UTF8_LINES):
            await rp.raw.send(bad + b"\r\n" + b"good %d\r\n" % i)
            with pytest.raises(UnicodeDecodeError):
                await obj.read_str()
            assert await obj.read_str() == f"good {i}"
            await rp.raw.send(bad + b"\r\n" + b'"json %d"\r\n' % i)
            with pytest.raises(UnicodeDecodeError):
                await obj.read_json()
            assert await obj.read_json() == f"json {i}"
        obj.encoding = "utf-16-le"
        await rp.raw.send(b"A\r\n" + "ok".encode("utf-16-le") + b"\r\n")
        with pytest.raises(UnicodeDecodeError):
            await obj.read_str()
        assert await obj.read_str() == "ok"
        obj.encoding = "ascii"
        with pytest.raises(UnicodeEncodeError):
            await obj.write_str("café")
        obj.encoding = "utf-8"
        with pytest.raises(UnicodeEncodeError):
            await obj.write_str("lone \ud800 surrogate")
        await obj.write_str("fine")
        assert await rp.raw.receive() == b"fine\r\n"
        assert obj.connected
        assert rp.cb.states == [True]


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_bad_json(log: logging.Logger, role: str) -> None:
    """R29: read_json raises json.JSONDecodeError whose message includes the
    data for text that is not JSON, for two documents on one line, for an
    empty line, and for pathological nesting ("[" * 100_000, which makes the
    decoder raise RecursionError, not a ValueError); the stream stays in
    sync. NaN, 1e999999, -Infinity and "\\ud800" are accepted (as Python's
    json does); a 60 kB document round-trips. write_json allows NaN (it
    writes NaN, as json.dumps does: a documented choice) and escapes a lone
    surrogate, so both are sent whole."""
    async with open_raw(role, log, limit=300_000) as rp:
        obj = rp.obj
        for i, bad in enumerate([*BAD_JSON_LINES, *hostile_json_lines()]):
            await rp.raw.send(bad + b"\r\n" + b'{"sync": %d}\r\n' % i)
            with pytest.raises(json.JSONDecodeError) as info:
                await obj.read_json()
            assert not isinstance(info.value, RecursionError)
            assert repr(bad.decode()[:10])[1:-1] in str(info.value), str(info.value)[:200]
            assert await obj.read_json() == {"sync": i}
        for text, kind in JSON_ODDITIES:
            await rp.raw.send(text + b"\r\n")
            value = await obj.read_json()
            if kind == "nan":
                assert math.isnan(value)
            elif kind == "inf":
                assert value == math.inf
            elif kind == "-inf":
                assert value == -math.inf
            else:
                assert value == "\ud800"
        big = {f"k{i}": "v" * 50 for i in range(1000)}
        await rp.raw.send(json.dumps(big).encode() + b"\r\n")
        assert await obj.read_json() == big
        await obj.write_json(float("nan"))
        await obj.write_json({"s": "\ud800"})
        received = b""
        while received.count(b"\r\n") < 2:
            received += await rp.raw.receive()
        assert received == b'NaN\r\n{"s": "\\ud800"}\r\n'
        assert obj.connected
        assert rp.cb.states == [True]


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_terminator_injection(log: logging.Logger, role: str) -> None:
    """R30, a known design choice (not checked by default,
    so that peers with asymmetric framing keep working): write_str and
    write_json do not reject a payload containing the terminator; it is sent
    as written, byte for byte (so the peer sees two messages). Covered: "\\r\\n"
    inside a line, XYZZY inside JSON with terminator XYZZY, and utf-16-le
    "\\u0a0d" whose encoding is b"\\r\\n"."""
    async with open_raw(role, log) as rp:
        obj = rp.obj
        expected = b"a\r\nb\r\n"
        await obj.write_str("a\r\nb")
        obj.terminator = b"XYZZY"
        await obj.write_json({"m": "XYZZY"})
        expected += b'{"m": "XYZZY"}XYZZY'
        obj.terminator = b"\r\n"
        obj.encoding = "utf-16-le"
        await obj.write_str("\u0a0d")
        expected += b"\r\n\r\n"
        received = b""
        while len(received) < len(expected):
            received += await rp.raw.receive()
        assert received == expected
        assert obj.connected


def _garbage(rng: random.Random) -> bytes:
    """One burst of hostile input."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 3000))
    if kind == 1:  # random bytes with terminators at random places
        data = bytearray(rng.randbytes(rng.randint(1, 500)))
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data)) :] = b"\r\n" + data[rng.randrange(len(data)) :]
        return bytes(data)
    if kind == 2:  # valid JSON lines
        return b"".join(b'{"n": %d}\r\n' % rng.randint(0, 99) for _ in range(rng.randint(1, 5)))
    if kind == 3:  # invalid UTF-8 line
        return rng.choice(BAD_UTF8_LINES) + b"\r\n"
    if kind == 4:  # over-limit line
        return b"o" * (LIMIT + rng.randint(1, 3000)) + b"\r\n"
    return rng.choice([*BAD_JSON_LINES, b"[" * 500]) + b"\r\n"


@deadline(TEST_TIMEOUT)
async def test_readloop_fuzz(log: logging.Logger) -> None:
    """R31: seeded garbage (random bytes, random terminator positions, valid
    and invalid JSON, invalid UTF-8, over-limit lines) from 40 reconnecting
    clients into a TestOneClientReadLoopServer. The server never crashes and
    keeps listening; each bad frame either is read or makes read_and_dispatch
    fail, which closes that client once, so the callbacks strictly
    alternate; memory stays bounded; a good client is served right after."""
    import psutil

    seed = get_seed()
    rng = random.Random(seed)
    cb = ConnectRecorder(timeout=5.0)
    process = psutil.Process()
    rss0 = process.memory_info().rss
    async with anytcpip.TestOneClientReadLoopServer(
        port=0,
        host=anytcpip.LOCALHOST_IPV4,
        log=log,
        connect_callback=cb,
        limit=LIMIT,
        linger=0.2,
    ) as server:
        for client_no in range(40):
            async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as raw:
                await cb.wait_count(2 * client_no + 1)
                try:
                    for _ in range(rng.randint(1, 6)):
                        await raw.send(_garbage(rng))
                except (anyio.BrokenResourceError, OSError):
                    pass  # the server dropped us already
                if rng.random() < 0.5:
                    await raw.send_eof()
                    await recv_all(raw)
            await cb.wait_count(2 * client_no + 2)
            assert len(cb.states) == 2 * client_no + 2, f"seed={seed} {cb.states}"
        cb.assert_alternating()
        assert process.memory_info().rss - rss0 < 32 << 20
        async with anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log) as good:
            await cb.wait_count(81)
            # Drop what the fuzz left in the queue, then check the new data.
            await good.write_str("good client")
            while (data := await server.get_next_data()) != "good client":
                assert isinstance(data, str), f"seed={seed}"
        assert server.port != 0
    cb.assert_alternating()
