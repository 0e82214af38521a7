"""Half-closed peers (issue 14 item 20): a peer that sends a request, shuts
down its sending side and keeps reading (``printf 'cmd\\r\\n' | nc host port``)
gets its reply, then our end-of-stream."""

from __future__ import annotations

import logging
import socket
import ssl
from typing import cast

import anyio
import anyio.abc
import pytest
import trustme

import anytcpip
from anytcpip._connection import HALF_CLOSE_GRACE
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, deadline, receive_until_eof


class ReplyServer(anytcpip.OneClientReadLoopServer):
    """Answers each line after a short think, as a mock controller does."""

    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        await anyio.sleep(0.02)
        await self.write_str(f"done {line}")


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@deadline()
async def test_reply_to_half_closed_peer(log: logging.Logger, monitor: float) -> None:
    """A plain server reads the request, thinks 20 ms and replies: the peer
    gets the reply and then our end-of-stream; connected turned False (and
    the callback ran) as soon as the end-of-stream was seen."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4,
        port=0,
        log=log,
        connect_callback=recorder,
        monitor_connection_interval=monitor,
    ) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
            await recorder.assert_next(True)
            await peer.send(b"cmd\r\n")
            await peer.send_eof()
            assert await server.read_str() == "cmd"
            if monitor:
                await recorder.assert_next(False)
            await anyio.sleep(0.02)
            await server.write_str("reply")
            await server.write_str("more")
            if monitor:
                assert not server.connected
            else:
                # Without monitoring the end-of-stream is seen by a read.
                with pytest.raises((ConnectionError, anytcpip.IncompleteReadError)):
                    await server.read_str()
            start = anyio.current_time()
            assert await receive_until_eof(peer) == b"reply\r\nmore\r\n"
            # Our end-of-stream follows within the grace (plus slack).
            assert anyio.current_time() - start < HALF_CLOSE_GRACE + 1.0
        if not monitor:
            await recorder.assert_next(False)
        # Once the grace is over, writing fails.
        with pytest.raises(ConnectionError):
            await server.write_str("late")


@deadline()
async def test_read_loop_server_answers_half_closed_peer(log: logging.Logger) -> None:
    """Every request sent before the half-close gets its reply, then the
    server closes at once (its read loop reached the end-of-stream)."""
    async with ReplyServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as server:
        for round_ in range(3):
            async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
                await peer.send(b"a\r\nb\r\nc\r\n")
                await peer.send_eof()
                replies = await receive_until_eof(peer)
                assert replies == b"done a\r\ndone b\r\ndone c\r\n", round_


@deadline()
async def test_blocking_socket_like_nc(log: logging.Logger) -> None:
    """The same through a plain blocking socket in a thread, like nc."""

    def nc(port: int) -> bytes:
        with socket.create_connection((anytcpip.LOCALHOST_IPV4, port), timeout=10) as sock:
            sock.sendall(b"status\r\n")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(1000):
                chunks.append(chunk)
            return b"".join(chunks)

    async with ReplyServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as server:
        assert await anyio.to_thread.run_sync(nc, server.port) == b"done status\r\n"


@deadline()
async def test_client_replies_to_half_closed_server(log: logging.Logger) -> None:
    multi = await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4, local_port=0)
    async with cast(anyio.abc.SocketListener, multi.listeners[0]) as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with (
            anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=port, log=log) as client,
            await listener.accept() as raw,
        ):
            await raw.send(b"hello\r\n")
            await raw.send_eof()
            assert await client.read_str() == "hello"
            await client.write_str("hi")
            assert await receive_until_eof(raw) == b"hi\r\n"


@deadline()
async def test_no_request_pending_closes_at_once(log: logging.Logger) -> None:
    """A peer that half-closes with nothing left to answer (we replied to its
    last message) gets our end-of-stream at once, and writes fail."""
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
            await server.connected_task
            await peer.send(b"ping\r\n")
            assert await server.read_str() == "ping"
            await server.write_str("pong")
            await peer.send_eof()
            assert await receive_until_eof(peer) == b"pong\r\n"
            with pytest.raises(ConnectionError):
                await server.write_str("late")


@deadline()
async def test_half_open_grace_ends_without_writes(log: logging.Logger) -> None:
    """A request read and never answered: the connection closes after the
    grace, and a later write raises ConnectionError."""
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as peer:
            await server.connected_task
            await peer.send(b"cmd\r\n")
            await peer.send_eof()
            assert await server.read_str() == "cmd"
            assert await receive_until_eof(peer) == b""
        with pytest.raises(ConnectionError):
            await server.write_str("late")


@deadline()
async def test_tls_has_no_half_close(log: logging.Logger) -> None:
    """The peer's close_notify ends a TLS connection: writes fail at once."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4,
        port=0,
        log=log,
        connect_callback=recorder,
        ssl_context=server_context,
    ) as server:
        peer = await anyio.connect_tcp(
            anytcpip.LOCALHOST_IPV4, server.port, ssl_context=client_context
        )
        async with peer:
            await recorder.assert_next(True)
            await peer.send(b"cmd\r\n")
            assert await server.read_str() == "cmd"
        await recorder.assert_next(False)
        with pytest.raises(ConnectionError):
            await server.write_str("reply")
