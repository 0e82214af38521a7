"""Client: ported from ts_tcpip's tests/test_client.py, plus the anyio-specific
behaviour: lifecycle, reading and writing, connection state."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

import anytcpip
from anytcpip.testing import ConnectRecorder, check_read_write_methods
from helpers import (
    NET_TIMEOUT,
    ServerAndClient,
    check_not_connected,
    deadline,
    make_server,
    receive_until_eof,
    rst_close,
)


@asynccontextmanager
async def raw_server() -> AsyncIterator[tuple[int, anyio.abc.ObjectReceiveStream[Any]]]:
    """A plain anyio listener on 127.0.0.1; yields its port and a stream of
    accepted connections (the test owns and closes them)."""
    send, receive = anyio.create_memory_object_stream[anyio.abc.SocketStream](10)
    multi = await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4, local_port=0)
    listener = multi.listeners[0]
    assert isinstance(listener, anyio.abc.SocketListener)
    port = int(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def accept_loop() -> None:
        async with send:
            while True:
                send.send_nowait(await listener.accept())

    async with listener, receive, anyio.create_task_group() as tg:
        tg.start_soon(accept_loop)
        try:
            yield port, receive
        finally:
            tg.cancel_scope.cancel()
            async for leftover in receive:
                await anyio.aclose_forcefully(leftover)


@deadline()
async def test_initial_conditions(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with make_server(log) as server:
        assert server.port != 0
        client = anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=server.port,
            log=log,
            connect_callback=callback,
            name="fred",
        )
        state = (
            client.connected,
            client.should_be_connected,
            client.start_task.done(),
            client.done_task.done(),
        )
        assert state == (False, False, False, False)
        assert client.name == "fred"
        assert client.host == anytcpip.LOCALHOST_IPV4
        assert client.port == server.port
        assert client.encoding == anytcpip.DEFAULT_ENCODING
        assert client.terminator == anytcpip.DEFAULT_TERMINATOR
        assert client.log.name.startswith(log.name + ".")
        async with client:
            assert client.connected
            assert client.should_be_connected
            assert client.start_task.done()
            await server.connected_task
            assert server.connected
            await callback.assert_next(True)
        await callback.assert_next(False)
        assert callback.states == [True, False]


@deadline()
@pytest.mark.parametrize("scoped", [True, False], ids=["async-with", "run"])
async def test_basic_close(scoped: bool, server_and_client: ServerAndClient) -> None:
    # Both doors: basic_close() keeps should_be_connected (it once cleared it
    # under tg.start(client.run), whose end called close()).
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with server_and_client(client_kwargs={"connect_callback": callback}, scoped=scoped) as (
        _,
        client,
    ):
        await callback.assert_next(True)
        assert not client.done_task.done()
        await client.basic_close()
        assert not client.connected
        assert client.should_be_connected
        assert client.done_task.done()
        await callback.assert_next(False)
        await check_not_connected(client)
    assert callback.states == [True, False]


async def read_only_heartbeats(obj: anytcpip.BaseClientOrServer) -> None:
    """Read lines until an error; each must be a heartbeat."""
    while True:
        line = await obj.readuntil(b"\r\n")
        assert line == anytcpip.HEARTBEAT + b"\r\n"


@pytest.mark.parametrize("heartbeat", [False, True], ids=["plain", "heartbeat"])
@deadline()
async def test_close(heartbeat: bool, server_and_client: ServerAndClient) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    client_kwargs = {
        "connect_callback": callback,
        "run_heartbeat_send_task": heartbeat,
        "heartbeat_send_sleep": 0.05,
    }
    async with server_and_client(client_kwargs=client_kwargs) as (server, client):
        await callback.assert_next(True)
        assert not client.done_task.done()
        if heartbeat:
            for _ in range(3):
                assert await server.readline() == anytcpip.HEARTBEAT + b"\r\n"
        await client.close()
        assert not client.connected
        assert not client.should_be_connected
        assert client.done_task.done()
        await callback.assert_next(False)
        await check_not_connected(client)
        # Closing again changes nothing.
        await client.close()
        await client.basic_close()
        assert callback.states == [True, False]
        # The server sees the end of the stream after at most the heartbeats
        # already sent: no heartbeat follows the close.
        with pytest.raises(ConnectionError):
            await read_only_heartbeats(server)


@deadline()
async def test_heartbeats_every_interval(server_and_client: ServerAndClient) -> None:
    client_kwargs = {
        "run_heartbeat_send_task": True,
        "heartbeat_send_sleep": 0.02,
        "terminator": b"\n",
    }
    async with server_and_client(client_kwargs=client_kwargs) as (server, client):
        await server.connected_task
        # Heartbeats and user writes never interleave.
        for i in range(20):
            await client.write_str(f"user {i}")
        lines: list[bytes] = []
        while len(lines) < 20 or lines.count(anytcpip.HEARTBEAT + b"\n") < 3:
            lines.append(await server.readline())
        assert set(lines) - {anytcpip.HEARTBEAT + b"\n"} == {
            f"user {i}\n".encode() for i in range(20)
        }


@deadline()
async def test_connect_callback_raises(server_and_client: ServerAndClient) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    callback.raise_error = True
    async with server_and_client(
        server_kwargs={"connect_callback": callback}, client_kwargs={"connect_callback": callback}
    ) as (server, client):
        await server.connected_task
        assert client.connected
        assert server.connected
        await check_read_write_methods(server, client)
        assert callback.states == [True, True]
    assert callback.states == [True, True, False, False]


async def test_create_done_client(log: logging.Logger) -> None:
    client = anytcpip.Client(host="", port=0, log=log)
    assert client.start_task.done()
    assert client.done_task.done()
    assert not client.connected
    assert not client.should_be_connected
    await client.start_task
    await client.done_task
    await client.close()
    await client.basic_close()
    await check_not_connected(client)


async def test_done_client_scoped_form(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.Client(host="", port=None, log=log, connect_callback=callback) as client:
        assert not client.connected
        await check_not_connected(client)
    assert callback.states == []


@deadline()
async def test_server_drops_connection(server_and_client: ServerAndClient) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with server_and_client(client_kwargs={"connect_callback": callback}) as (server, client):
        await callback.assert_next(True)
        await server.close_client()
        await callback.assert_next(False)
        assert not client.connected
        assert client.should_be_connected
        assert not client.done_task.done()
        with pytest.raises(ConnectionError):
            await client.read_str()


@pytest.mark.parametrize("how", ["hangup", "reset"])
@deadline()
async def test_peer_gone_while_not_reading(how: str, log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with raw_server() as (port, accepted):
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=port,
            log=log,
            connect_callback=callback,
        ) as client:
            await callback.assert_next(True)
            peer = await accepted.receive()
            await peer.send(b"unread\r\n")
            if how == "reset":
                await rst_close(peer)
            else:
                await peer.aclose()
            await callback.assert_next(False)
            assert not client.connected
            assert client.should_be_connected
            if how == "hangup":
                assert await client.read_str() == "unread"
            with pytest.raises(ConnectionError):
                await client.read_str()
        assert callback.states == [True, False]


def test_sync_connect_callback_rejected(log: logging.Logger) -> None:
    def sync_callback(obj: Any) -> None:
        pass

    with pytest.raises(TypeError):
        anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=1234,
            log=log,
            connect_callback=sync_callback,  # type: ignore[arg-type]
        )


async def test_async_callable_object_accepted(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)  # an object with an async __call__
    client = anytcpip.Client(host="", port=0, log=log, connect_callback=callback)
    assert client.done_task.done()


def test_good_encodings_and_terminators(log: logging.Logger) -> None:
    for encoding in ("utf-8", "utf_8", "utf-16", "UTF-32", "latin-1"):
        client = anytcpip.Client(host="", port=0, log=log, encoding=encoding)
        assert client.encoding == encoding
        client.encoding = "ascii"
        assert client.encoding == "ascii"
    for terminator in (b"\r\n", b"\r", b"any bytes"):
        client = anytcpip.Client(host="", port=0, log=log, terminator=terminator)
        assert client.terminator == terminator
        client.terminator = b"\n"
        assert client.terminator == b"\n"


def test_bad_encodings(log: logging.Logger) -> None:
    for encoding in ("no_such_encoder", b"utf_8", None):
        with pytest.raises(ValueError, match="encoding"):
            anytcpip.Client(host="", port=0, log=log, encoding=encoding)  # type: ignore[arg-type]
        client = anytcpip.Client(host="", port=0, log=log)
        with pytest.raises(ValueError, match="encoding"):
            client.encoding = encoding  # type: ignore[assignment]
        assert client.encoding == anytcpip.DEFAULT_ENCODING


def test_bad_terminators(log: logging.Logger) -> None:
    for terminator in ("\r\n", "any str", b"", bytearray(b"\n"), None):
        with pytest.raises(ValueError, match="terminator"):
            anytcpip.Client(host="", port=0, log=log, terminator=terminator)  # type: ignore[arg-type]
        client = anytcpip.Client(host="", port=0, log=log)
        with pytest.raises(ValueError, match="terminator"):
            client.terminator = terminator  # type: ignore[assignment]
        assert client.terminator == anytcpip.DEFAULT_TERMINATOR


def test_bad_port(log: logging.Logger) -> None:
    for port in (None, 0, -1, 65536, "1234"):
        with pytest.raises(ValueError, match="port"):
            anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=port, log=log)  # type: ignore[arg-type]


async def test_not_connected_before_start(log: logging.Logger) -> None:
    client = anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=1234, log=log)
    await check_not_connected(client)
    assert not client.start_task.done()


def _refusing_socket() -> socket.socket:
    """A bound socket that is not listening: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((anytcpip.LOCALHOST_IPV4, 0))
    return sock


@deadline()
async def test_connection_refused_scoped(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    with _refusing_socket() as sock:
        client = anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=sock.getsockname()[1],
            log=log,
            connect_callback=callback,
        )
        with pytest.raises(ConnectionRefusedError):
            async with client:
                pytest.fail("the body must not run")
        assert not client.connected
        assert client.done_task.done()
        assert client.start_task.done()
        with pytest.raises(OSError):  # noqa: PT011 (any OSError will do)
            client.start_task.result()
        assert callback.states == []
        await client.close()  # a no-op


@deadline()
async def test_connection_refused_owned(log: logging.Logger) -> None:
    with _refusing_socket() as sock:
        client = anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=sock.getsockname()[1], log=log)
        async with anyio.create_task_group() as tg:
            with pytest.raises(ConnectionRefusedError):
                await tg.start(client.run)
        assert client.done_task.done()
        assert not client.connected


@deadline()
async def test_client_connects_only_once(log: logging.Logger) -> None:
    async with make_server(log) as server:
        client = anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log)
        async with client:
            pass
        with pytest.raises(RuntimeError):
            async with client:
                pass
        async with anyio.create_task_group() as tg:
            with pytest.raises(RuntimeError):
                await tg.start(client.run)


@deadline()
async def test_tls_round_trip(server_and_client: ServerAndClient) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    server_callback = ConnectRecorder(timeout=NET_TIMEOUT)
    client_callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with server_and_client(
        server_kwargs={"ssl_context": server_context, "connect_callback": server_callback},
        client_kwargs={"ssl_context": client_context, "connect_callback": client_callback},
    ) as (server, client):
        await server_callback.assert_next(True)
        await client.write_json({"secret": 42})
        assert await server.read_json() == {"secret": 42}
        await server.write_str("reply")
        assert await client.read_str() == "reply"
        big = bytes(range(256)) * 4096
        await client.write(big)
        assert await server.readexactly(len(big)) == big
    assert client_callback.states == [True, False]
    assert server_callback.states == [True, False]


@deadline()
async def test_tls_client_rejects_untrusted_server(log: logging.Logger) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    untrusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    trustme.CA().configure_trust(untrusting)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, ssl_context=server_context
    ) as server:
        client = anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=server.port,
            log=log,
            ssl_context=untrusting,
        )
        with pytest.raises((ssl.SSLError, OSError, anyio.BrokenResourceError)):
            async with client:
                pass
        assert client.done_task.done()
        assert not server.connected
        # The server still serves a good client.
        good = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ca.configure_trust(good)
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log, ssl_context=good
        ) as client2:
            await server.connected_task
            await client2.write_str("ok")
            assert await server.read_str() == "ok"


@deadline()
async def test_keepalive_and_nodelay_white_box(server_and_client: ServerAndClient) -> None:
    """White-box: reads the internal stream (``obj._conn.stream``) to check the
    socket options every connection gets."""
    async with server_and_client() as (server, client):
        for obj in (client, server):
            conn = obj._conn
            assert conn is not None
            assert conn.stream is not None
            sock = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
            tcp = socket.IPPROTO_TCP
            assert sock.getsockopt(tcp, socket.TCP_NODELAY) != 0
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
            if hasattr(socket, "TCP_KEEPIDLE"):
                idle = sock.getsockopt(tcp, socket.TCP_KEEPIDLE)
                assert idle == anytcpip.KEEPALIVE_TIME
            elif hasattr(socket, "TCP_KEEPALIVE"):  # pragma: no cover (macOS)
                idle = sock.getsockopt(tcp, socket.TCP_KEEPALIVE)
                assert idle == anytcpip.KEEPALIVE_TIME
            if hasattr(socket, "TCP_KEEPCNT"):
                count = sock.getsockopt(tcp, socket.TCP_KEEPCNT)
                assert count == anytcpip.KEEPALIVE_PROBES
            if hasattr(socket, "TCP_KEEPINTVL"):
                interval = sock.getsockopt(tcp, socket.TCP_KEEPINTVL)
                assert interval == anytcpip.KEEPALIVE_INTERVAL


@deadline()
async def test_limit_and_linger_taken_by_the_client(log: logging.Logger) -> None:
    async with make_server(log) as server:
        client = anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=server.port,
            log=log,
            limit=10,
            linger=0.5,
        )
        async with client:
            await server.connected_task
            await server.write(b"0123456789ABC\n0123456789\n")
            with pytest.raises(anytcpip.LimitOverrunError):
                await client.readline()
            assert await client.readline() == b"0123456789\n"


@deadline()
async def test_server_side_reset_seen_by_client_reads(log: logging.Logger) -> None:
    """With monitoring off, a read still reports the reset as ConnectionError."""
    async with raw_server() as (port, accepted):
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=port,
            log=log,
            monitor_connection_interval=0,
        ) as client:
            peer = await accepted.receive()
            await rst_close(peer)
            with pytest.raises(ConnectionError):
                await client.read_str()
            assert not client.connected


@deadline()
async def test_client_close_delivers_what_was_written(log: logging.Logger) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB, more than the socket buffers hold
    received = bytearray()
    async with raw_server() as (port, accepted):
        client = anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=port, log=log)
        async with client, anyio.create_task_group() as tg:
            peer = await accepted.receive()
            closing = anyio.Event()

            async def slow_peer() -> None:
                # Starts reading only once the client is closing, then
                # reads everything and closes its end at end-of-stream.
                await closing.wait()
                async with peer:
                    received.extend(await receive_until_eof(peer))

            tg.start_soon(slow_peer)
            await client.write(data)
            await client.write_str("the end")
            closing.set()
            await client.close()
            assert client.done_task.done()
    assert received == data + b"the end\r\n"
