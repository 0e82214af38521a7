"""Reading and writing (docs/guide.rst), in both directions, on every backend."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder, check_read_write_methods
from helpers import (
    NET_TIMEOUT,
    ServerAndClient,
    ShortStruct,
    deadline,
    has_ipv6,
    one_byte_relay,
    rst_close,
    struct_fields,
)


@asynccontextmanager
async def relayed_pair(
    log: logging.Logger, **server_kwargs: Any
) -> AsyncIterator[tuple[anytcpip.OneClientServer, anytcpip.Client]]:
    """A server and a client joined through a 1-byte-at-a-time relay."""
    async with (
        anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4, port=0, log=log, **server_kwargs
        ) as server,
        one_byte_relay(server.port) as relay,
        anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=relay.port, log=log) as client,
    ):
        await server.connected_task
        yield server, client


@pytest.mark.parametrize(
    "host", [anytcpip.LOCALHOST_IPV4, anytcpip.LOCALHOST_IPV6], ids=["ipv4", "ipv6"]
)
@deadline()
async def test_read_write_methods_both_directions(
    host: str, server_and_client: ServerAndClient
) -> None:
    if host == anytcpip.LOCALHOST_IPV6 and not has_ipv6():
        pytest.skip("no IPv6 loopback on this machine")
    async with server_and_client(host=host) as (server, client):
        await check_read_write_methods(client, server)
        assert client.connected
        assert server.connected


@deadline()
async def test_read_write_methods_without_monitoring(server_and_client: ServerAndClient) -> None:
    """With monitor_connection_interval=0 the reads receive for themselves."""
    # Without monitoring the server does not see the client's end-of-stream
    # until it reads, so the client's close waits for its linger: keep it short.
    kwargs: dict[str, Any] = {"monitor_connection_interval": 0, "linger": 0.2}
    async with server_and_client(server_kwargs=kwargs, client_kwargs=kwargs) as (
        server,
        client,
    ):
        await check_read_write_methods(client, server)


@deadline()
async def test_read_str_and_read_into_through_one_byte_relay(
    log: logging.Logger,
) -> None:
    async with relayed_pair(log) as (server, client):
        sent = ShortStruct(seq=3, stamp=-4, angle=0.5, level=2.0)
        server.terminator = client.terminator = b"XYZZY"
        await client.write_str("one")
        await client.write_from(sent)
        await client.write_json({"two": 2})
        assert await server.read_str() == "one"
        got = ShortStruct()
        await server.read_into(got)
        assert struct_fields(got) == struct_fields(sent)
        assert await server.read_json() == {"two": 2}


@deadline()
async def test_argument_checks(server_and_client: ServerAndClient) -> None:
    async with server_and_client() as (server, client):
        assert await client.read(0) == b""
        with pytest.raises(ValueError, match="n="):
            await client.read(-2)
        with pytest.raises(ValueError, match="n="):
            await client.readexactly(-1)
        with pytest.raises(ValueError, match="separator"):
            await client.readuntil(b"")
        assert await client.readexactly(0) == b""
        # Nothing was consumed or broken by the refused calls.
        await server.write(b"fine\n")
        assert await client.readline() == b"fine\n"


@deadline()
async def test_read_json_error_includes_data(server_and_client: ServerAndClient) -> None:
    async with server_and_client() as (server, client):
        await client.write_str("not valid json")
        await client.write_json({"good": True})
        with pytest.raises(json.JSONDecodeError, match="not valid json"):
            await server.read_json()
        assert await server.read_json() == {"good": True}
        assert server.connected


@deadline()
async def test_read_json_pathological_nesting(server_and_client: ServerAndClient) -> None:
    bomb = "[" * 100_000
    async with server_and_client(server_kwargs={"limit": 200_000}) as (server, client):
        await client.write_str(bomb)
        await client.write_str("[" * 50 + "]" * 50)
        await client.write_json([1])
        with pytest.raises(json.JSONDecodeError, match=r"\[\[\["):
            await server.read_json()
        nested = await server.read_json()
        for _ in range(49):
            nested = nested[0]
        assert nested == []
        assert await server.read_json() == [1]


@deadline()
async def test_bad_utf8_then_good_message(server_and_client: ServerAndClient) -> None:
    async with server_and_client() as (server, client):
        for read, expected in (
            (server.read_str, '"good \u00e9"'),
            (server.read_json, "good \u00e9"),
        ):
            await client.write(b'"\xff\xfe bad"\r\n')
            await client.write_str('"good \u00e9"')
            with pytest.raises(UnicodeDecodeError):
                await read()
            assert await read() == expected


def _over_limit_readers(
    obj: anytcpip.BaseClientOrServer,
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "read_str": obj.read_str,
        "read_json": obj.read_json,
        "readuntil": lambda: obj.readuntil(b"\r\n"),
        "readline": obj.readline,
    }


async def check_over_limit(
    server: anytcpip.BaseClientOrServer,
    client: anytcpip.BaseClientOrServer,
    limit: int,
    method: str,
) -> None:
    """A message over the limit raises LimitOverrunError; the messages after it
    read fine."""
    await client.write(b"1" * (3 * limit) + b"\r\n")
    # At the limit for readline (b"\r" counts), under it for the others.
    await client.write(b"1" * (limit - 1) + b"\r\n")
    await client.write(b"2345\r\n")
    read = _over_limit_readers(server)[method]
    with pytest.raises(anytcpip.LimitOverrunError) as info:
        await read()
    assert isinstance(info.value, ValueError), method
    at_limit = await read()
    ones = "1" * (limit - 1)
    assert at_limit in (int(ones), ones, ones.encode() + b"\r\n"), method
    next_message = await read()
    assert next_message in (2345, "2345", b"2345\r\n"), method
    assert server.connected


@deadline()
async def test_over_limit_message_in_one_chunk(server_and_client: ServerAndClient) -> None:
    limit = 100
    async with server_and_client(server_kwargs={"limit": limit}) as (server, client):
        for method in ("read_str", "read_json", "readuntil", "readline"):
            await check_over_limit(server, client, limit, method)


@deadline()
async def test_over_limit_message_in_one_byte_pieces(log: logging.Logger) -> None:
    limit = 100
    async with relayed_pair(log, limit=limit) as (server, client):
        for method in ("read_str", "readline"):
            await check_over_limit(server, client, limit, method)


@deadline(60)
async def test_random_cancellation_through_relay_loses_nothing(
    log: logging.Logger,
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    why = f"seed={seed}"
    n_items = 60
    items: list[tuple[str, Any]] = []
    for i in range(n_items):
        kind = rng.choice(["str", "bytes", "struct", "json"])
        if kind == "str":
            items.append((kind, f"line {i} " + "x" * rng.randrange(30)))
        elif kind == "bytes":
            items.append((kind, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30)))))
        elif kind == "struct":
            items.append((kind, ShortStruct(seq=i, stamp=-i, angle=i / 3, level=0.5)))
        else:
            items.append((kind, {"i": i, "pad": "y" * rng.randrange(20)}))
    cancellations = 0

    async with relayed_pair(log) as (server, client):

        async def write_all() -> None:
            for kind, value in items:
                if kind == "str":
                    await client.write_str(value)
                elif kind == "bytes":
                    await client.write(value)
                elif kind == "struct":
                    await client.write_from(value)
                else:
                    await client.write_json(value)

        async def read_one(kind: str, value: Any) -> Any:
            if kind == "str":
                return await server.read_str()
            if kind == "bytes":
                return await server.readexactly(len(value))
            if kind == "struct":
                got = ShortStruct()
                await server.read_into(got)
                return struct_fields(got)
            return await server.read_json()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write_all)
            for index, (kind, value) in enumerate(items):
                expected = struct_fields(value) if kind == "struct" else value
                while True:
                    result: Any = None
                    with anyio.move_on_after(rng.random() * 0.002) as scope:
                        result = await read_one(kind, value)
                    if not scope.cancelled_caught:
                        break
                    cancellations += 1
                    assert server.connected, why
                assert result == expected, f"{why}, item {index}"
        assert cancellations > 0, why
        assert server.connected, why
        assert client.connected, why
        await server.write_str("still up")
        assert await client.read_str() == "still up", why


@deadline()
async def test_concurrent_writers_never_interleave(server_and_client: ServerAndClient) -> None:
    n_writers = 20
    n_messages = 10
    async with server_and_client() as (server, client):

        async def writer(w: int) -> None:
            for m in range(n_messages):
                body = f"{w}:{m}:".encode() + bytes([65 + w]) * (1000 + 997 * m)
                if m % 2:
                    await client.write(body + b"\n")
                else:
                    await client.writelines([body[:10], body[10:], b"\n"])

        received: dict[int, list[int]] = {w: [] for w in range(n_writers)}
        async with anyio.create_task_group() as tg:
            for w in range(n_writers):
                tg.start_soon(writer, w)
            for _ in range(n_writers * n_messages):
                line = await server.readline()
                w_text, m_text, payload = line.rstrip(b"\n").split(b":", 2)
                w, m = int(w_text), int(m_text)
                assert payload == bytes([65 + w]) * (1000 + 997 * m), (w, m)
                received[w].append(m)
        assert received == {w: list(range(n_messages)) for w in range(n_writers)}


@deadline()
async def test_concurrent_readers_get_whole_messages(log: logging.Logger) -> None:
    n_readers = 5
    per_reader = 8
    sent = [f"message number {i:03d} " + "z" * (i % 7) for i in range(n_readers * per_reader)]
    got: list[str] = []
    async with relayed_pair(log) as (server, client):

        async def reader() -> None:
            for _ in range(per_reader):
                got.append(await server.read_str())

        async with anyio.create_task_group() as tg:
            for _ in range(n_readers):
                tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            for line in sent:
                await client.write_str(line)
    assert sorted(got) == sorted(sent)


@deadline()
async def test_full_duplex_bulk(server_and_client: ServerAndClient) -> None:
    size = 1 << 20
    a = bytes(range(256)) * (size // 256)
    b = bytes(reversed(range(256))) * (size // 256)
    async with server_and_client() as (server, client):
        results: dict[str, bytes] = {}

        async def send(obj: anytcpip.BaseClientOrServer, data: bytes) -> None:
            for i in range(0, len(data), 10_000):
                await obj.write(data[i : i + 10_000])

        async def receive(obj: anytcpip.BaseClientOrServer, key: str) -> None:
            results[key] = await obj.readexactly(size)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send, client, a)
            tg.start_soon(send, server, b)
            tg.start_soon(receive, server, "server")
            tg.start_soon(receive, client, "client")
        assert results["server"] == a
        assert results["client"] == b


@deadline()
async def test_data_sent_before_peer_close_stays_readable(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=callback
    ) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
            await callback.assert_next(True)
            await peer.send(b"first\r\n" + bytes(ShortStruct(seq=9)) + b"half")
        await callback.assert_next(False)
        assert not server.connected
        assert server.should_be_connected
        assert await server.read_str() == "first"
        got = ShortStruct()
        await server.read_into(got)
        assert got.seq == 9
        with pytest.raises(anytcpip.IncompleteReadError) as info:
            await server.read_str()
        assert info.value.partial == b"half"
        assert info.value.expected is None
        with pytest.raises(ConnectionError):
            await server.read_str()


async def one_waiting_read(
    server: anytcpip.OneClientServer,
    callback: ConnectRecorder,
    read: Callable[[], Awaitable[Any]],
    send_between: bool,
    before_close: anyio.Event | None = None,
) -> list[Any]:
    """Connect a raw peer, start ``read`` on the server, let the peer send
    b"abc" and close; return what each read gave or raised."""
    outcome: list[Any] = []
    async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
        await callback.assert_next(True)

        async def reader() -> None:
            try:
                outcome.append(await read())
            except Exception as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await peer.send(b"abc")
            if send_between:
                await anyio.wait_all_tasks_blocked()
            if before_close is not None:
                await before_close.wait()
                await anyio.wait_all_tasks_blocked()
            await peer.aclose()
    await callback.assert_next(False)
    return outcome


@deadline()
async def test_waiting_read_gets_incomplete_read_error(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=callback
    ) as server:
        calls: dict[str, tuple[Callable[[], Awaitable[Any]], int | None]] = {
            "readexactly": (lambda: server.readexactly(100), 100),
            "readuntil": (lambda: server.readuntil(b"\r\n"), None),
            "read_into": (lambda: server.read_into(ShortStruct()), len(bytes(ShortStruct()))),
            "read_str": (server.read_str, None),
            "read_json": (server.read_json, None),
        }
        for method, (call, expected) in calls.items():
            [error] = await one_waiting_read(server, callback, call, send_between=True)
            assert isinstance(error, anytcpip.IncompleteReadError), (method, error)
            assert error.partial == b"abc", method
            assert error.expected == expected, method


@deadline()
async def test_waiting_read_returns_partial_at_eof(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=callback
    ) as server:
        got_first = anyio.Event()

        async def two_reads() -> list[bytes]:
            first = await server.read(100)
            got_first.set()
            # This one is waiting when the end of the stream comes.
            return [first, await server.read(100)]

        result = await one_waiting_read(
            server, callback, two_reads, send_between=True, before_close=got_first
        )
        assert result == [[b"abc", b""]]
        result = await one_waiting_read(server, callback, server.readline, send_between=False)
        assert result == [b"abc"]


@deadline()
async def test_read_all_until_peer_closes(log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as server:
        data = bytes(range(256)) * 1000
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
            await server.connected_task
            await peer.send(data)
        assert await server.read(-1) == data


@deadline()
async def test_reset_while_reading_is_connection_error(log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as server:
        peer = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)
        await server.connected_task
        outcome: list[BaseException] = []

        async def read() -> None:
            try:
                await server.read_str()
            except Exception as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            await rst_close(peer)
        [error] = outcome
        assert isinstance(error, ConnectionError), repr(error)
        assert not server.connected
        with pytest.raises(ConnectionError):
            await server.write(b"x")


@deadline()
async def test_write_after_peer_close_raises(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=callback
    ) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port):
            await callback.assert_next(True)
        await callback.assert_next(False)
        writes: list[Callable[[], Awaitable[None]]] = [
            lambda: server.write(b"x"),
            lambda: server.write_str("x"),
            lambda: server.write_json(1),
            lambda: server.writelines([b"x"]),
            lambda: server.write_from(ShortStruct()),
        ]
        for write in writes:
            with pytest.raises(ConnectionError):
                await write()


@deadline()
async def test_unencodable_write_writes_nothing(server_and_client: ServerAndClient) -> None:
    async with server_and_client() as (server, client):
        client.encoding = "ascii"
        with pytest.raises(UnicodeEncodeError):
            await client.write_str("caf\u00e9")
        with pytest.raises(TypeError):
            await client.write_json({"x": object()})
        await client.write_str("ok")
        assert await server.readline() == b"ok\r\n"


@deadline()
async def test_cancelled_write_queues_nothing(server_and_client: ServerAndClient) -> None:
    """A write cancelled while it waits (backpressure) leaves no part of its
    message on the wire; the messages before and after arrive whole."""
    chunk_size = 1 << 16
    returned: list[bytes] = []
    async with server_and_client(client_kwargs={"linger": 0.5}) as (server, client):
        cancelled = 0
        i = 0
        # The server does not read: the kernel buffers and then the write
        # queue fill up, and writes start to wait.
        while cancelled < 3:
            chunk = bytes([i % 250 + 1]) * chunk_size
            i += 1
            with anyio.move_on_after(0.05) as scope:
                await client.write(chunk)
            if scope.cancelled_caught:
                cancelled += 1
            else:
                returned.append(chunk)
        expected = b"".join(returned) + b"END\n"
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.write, b"END\n")
            received = await server.readexactly(len(expected))
        assert received == expected
        assert client.connected


# ------------------------------------------- over-limit messages (issue 14)


@asynccontextmanager
async def server_and_raw_peer(
    log: logging.Logger, **server_kwargs: Any
) -> AsyncIterator[tuple[anytcpip.OneClientServer, anyio.abc.SocketStream, ConnectRecorder]]:
    """A server and a raw anyio peer connected to it; the recorder gets the
    server's connect callbacks (the first one, connected, is consumed)."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=recorder, **server_kwargs
    ) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
            await recorder.assert_next(True)
            yield server, peer, recorder


@deadline()
async def test_over_limit_tail_is_never_read(log: logging.Logger) -> None:
    """The possible start of the separator kept while discarding is not data,
    and the message after the discarded one is not lost."""
    async with server_and_raw_peer(log, limit=10) as (server, peer, _):
        await peer.send(b"A" * 20 + b"\r")
        with pytest.raises(anytcpip.LimitOverrunError):
            await server.read_str()
        await peer.send(b"\nNEXT\r\nAFTER\r\n")
        data = await server.read(100)
        assert data.startswith(b"NEXT"), data
        data += await server.readexactly(len(b"NEXT\r\nAFTER\r\n") - len(data))
        assert data == b"NEXT\r\nAFTER\r\n"
        await peer.send(b"B" * 11 + b"\r")
        with pytest.raises(anytcpip.LimitOverrunError):
            await server.read_str()
        await peer.send(b"\nNEXT\r\nAFTER\r\n")
        assert await server.read_str() == "NEXT"
        assert await server.read_str() == "AFTER"


@deadline()
async def test_other_separator_while_discarding(log: logging.Logger) -> None:
    async with server_and_raw_peer(log, limit=4) as (server, peer, _):
        await peer.send(b"abcdefgXYZZ")
        with pytest.raises(anytcpip.LimitOverrunError):
            await server.readuntil(b"XYZZY")
        async with anyio.create_task_group() as tg:
            results: list[bytes] = []

            async def read_zz() -> None:
                results.append(await server.readuntil(b"ZZ"))

            tg.start_soon(read_zz)
            await anyio.wait_all_tasks_blocked()
            await peer.send(b"YokZZ")
        assert results == [b"okZZ"]


@deadline()
async def test_incomplete_after_over_limit_last_line(log: logging.Logger) -> None:
    async with server_and_raw_peer(log, limit=3) as (server, peer, _):
        await peer.send(b"AAAAAB")
        with pytest.raises(anytcpip.LimitOverrunError):
            await server.readuntil(b"BB")
        await peer.send_eof()
        with pytest.raises(anytcpip.IncompleteReadError) as info:
            await server.readuntil(b"BB")
        assert info.value.partial == b""


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@pytest.mark.parametrize("method", ["read_str", "readuntil"])
@deadline()
async def test_hangup_noticed_after_limit_overrun(
    log: logging.Logger, method: str, monitor: float
) -> None:
    """A LimitOverrunError does not leave receiving paused."""
    limit = 1000
    async with server_and_raw_peer(
        log, limit=limit, monitor_connection_interval=monitor, linger=0.5
    ) as (server, peer, recorder):
        # Several times the limit, so receiving pauses before the read
        # (the short sleep only lets the bytes arrive).
        await peer.send(b"A" * (4 * limit) + b"\r\n")
        await anyio.sleep(0.05)
        reader = getattr(server, method)
        with pytest.raises(anytcpip.LimitOverrunError):
            await reader(*([b"\r\n"] if method == "readuntil" else []))
        # No more reads: the hangup must be seen all the same.
        await peer.aclose()
        if monitor:
            await recorder.assert_next(False)
        else:
            with pytest.raises((ConnectionError, anytcpip.IncompleteReadError)):
                await server.read_str()
        assert not server.connected
