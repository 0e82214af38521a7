"""Review of issue 12 items 2 and 3 (disconnect reasons, second-client
policy): each test reproduces one finding, on every backend."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl

import anyio
import anyio.abc
import pytest
import trustme

import anytcpip
from anytcpip._connection import HALF_CLOSE_GRACE
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, peer_closed, rst_close_socket
from reliability.harness import cause_chain, open_plain

LOCALHOST = anytcpip.LOCALHOST_IPV4

#: tcpi_state of a socket the kernel closed (linux/tcp_states.h).
_TCP_CLOSE = 7


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCALHOST).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    return server_context, client_context


# ------------------- the old client's tasks never close the new client


class _Heartbeats(anytcpip.OneClientReadLoopServer):
    """Counts heartbeats; answers every other line."""

    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        if line == "hb":
            await self.handle_received_heartbeat()
        else:
            await self.write_str("ok " + line)


async def _served(server: anytcpip.OneClientServer, peer: anyio.abc.SocketStream) -> None:
    """``peer`` is served: a line goes there and back."""
    await peer.send(b"ping\r\n")
    data = b""
    while not data.endswith(b"\n"):
        data += await peer.receive()
    assert data == b"ok ping\r\n"
    assert server.connected


async def test_old_heartbeat_monitor_spares_new_client(log: logging.Logger) -> None:
    """The replaced client's heartbeat monitor comes due while its disconnect
    callback runs: the new client (waiting for that callback) is still served."""
    interval = 0.3
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)

    async def callback(server: anytcpip.BaseClientOrServer) -> None:
        await recorder(server)
        if recorder.history == [True, False]:
            # Slow: the old client's monitor comes due meanwhile.
            await anyio.sleep(interval * 3)

    with anyio.fail_after(NET_TIMEOUT):
        async with _Heartbeats(
            port=0,
            log=log,
            connect_callback=callback,
            second_client="replace",
            run_heartbeat_monitor_task=True,
            max_heartbeat_interval=interval,
        ) as server:
            async with await anyio.connect_tcp(LOCALHOST, server.port):
                await recorder.assert_next(True)
                async with await anyio.connect_tcp(LOCALHOST, server.port) as new:
                    await new.send(b"hb\r\n")
                    await recorder.assert_next(False)
                    await recorder.assert_next(True)
                    await new.send(b"hb\r\n")
                    await _served(server, new)
                    assert recorder.history == [True, False, True]


class _FailsWhenGone(anytcpip.OneClientReadLoopServer):
    """A handler that turns a lost connection into an error of its own."""

    async def read_and_dispatch(self) -> None:
        try:
            line = await self.read_str()
        except ConnectionError as exc:
            raise RuntimeError("the controller went away") from exc
        await self.write_str("ok " + line)


async def test_old_read_loop_error_spares_new_client(log: logging.Logger) -> None:
    """The replaced client's read_and_dispatch raises (not a ConnectionError)
    when its connection is closed: it is logged, and the new client is served."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    with anyio.fail_after(NET_TIMEOUT):
        async with _FailsWhenGone(
            port=0, log=log, connect_callback=recorder, second_client="replace"
        ) as server:
            async with await anyio.connect_tcp(LOCALHOST, server.port):
                await recorder.assert_next(True)
                async with await anyio.connect_tcp(LOCALHOST, server.port) as new:
                    await recorder.assert_next(False)
                    await recorder.assert_next(True)
                    await _served(server, new)
                    assert recorder.history == [True, False, True]


# ------------------------------- no descriptor left by a cancelled wait


async def test_tls_client_waiting_cancelled_is_closed(
    log: logging.Logger, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """A TLS client accepted while the one before it is still in its
    disconnect callback, then the server's host is cancelled: its socket is
    closed (the fd check and the ResourceWarning check say so)."""
    server_context, client_context = tls
    in_callback = anyio.Event()

    async def callback(server: anytcpip.BaseClientOrServer) -> None:
        if not server.connected:
            in_callback.set()
            await anyio.sleep_forever()

    with anyio.fail_after(NET_TIMEOUT):
        waiting: anyio.abc.SocketStream | None = None
        async with anyio.create_task_group() as tg:
            server = anytcpip.OneClientServer(
                LOCALHOST,
                0,
                log,
                connect_callback=callback,
                ssl_context=server_context,
                second_client="replace",
                linger=0.2,
            )
            await tg.start(server.run)
            async with anytcpip.Client(LOCALHOST, server.port, log, ssl_context=client_context):
                await server.connected_task
                waiting = await anyio.connect_tcp(LOCALHOST, server.port)
                await in_callback.wait()
                # The new one is accepted and waits for that callback.
                while server._latest is server._conn:
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        assert waiting is not None
        async with waiting:
            assert await peer_closed(waiting)


# ------------------------------------- wait_disconnected from a callback


@pytest.mark.parametrize("role", ["client", "server"])
async def test_wait_disconnected_from_connect_callback(log: logging.Logger, role: str) -> None:
    """From the disconnect call it returns that disconnect's reason at once
    (it waited for itself); from the connect call it raises RuntimeError."""
    seen: list[object] = []

    async def callback(obj: anytcpip.BaseClientOrServer) -> None:
        try:
            with anyio.fail_after(NET_TIMEOUT / 4):
                seen.append(await obj.wait_disconnected())
        except RuntimeError as exc:
            seen.append(exc)

    with anyio.fail_after(NET_TIMEOUT):
        async with anytcpip.OneClientServer(
            LOCALHOST, 0, log, connect_callback=callback if role == "server" else None
        ) as server:
            if role == "server":
                async with await anyio.connect_tcp(LOCALHOST, server.port):
                    await server.connected_task
                obj: anytcpip.BaseClientOrServer = server
            else:
                async with anytcpip.Client(
                    LOCALHOST, server.port, log, connect_callback=callback
                ) as obj:
                    await server.connected_task
                    await server.close_client()
                    await obj.wait_disconnected()
            reason = await obj.wait_disconnected()
    assert reason is not None
    assert reason.kind is anytcpip.DisconnectKind.PEER_CLOSED
    assert len(seen) == 2, seen
    assert isinstance(seen[0], RuntimeError), seen
    assert seen[1] is reason


# ------------------------------ a failure found by a write, as it really was


async def _write_until_it_fails(obj: anytcpip.BaseClientOrServer) -> None:
    for _ in range(100):
        await obj.write(b"x\r\n")
        await anyio.sleep(0.01)


async def test_reset_found_by_write_has_the_real_error(log: logging.Logger) -> None:
    """Monitoring off: nobody reads, so the peer's reset is found by a write.
    The reason holds the operating system's error, not a made-up one."""
    with anyio.fail_after(NET_TIMEOUT):
        async with open_plain("server", log, monitor_connection_interval=0) as pp:
            rst_close_socket(pp.sock)
            pp.sock.close()
            with pytest.raises(ConnectionError):
                await _write_until_it_fails(pp.obj)
            reason = await pp.obj.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.RESET, reason
            assert "failed while writing" not in str(reason), reason
            errors = [e for e in cause_chain(reason.exception) if isinstance(e, OSError)]
            assert any(e.errno in (errno.ECONNRESET, errno.EPIPE) for e in errors), reason


async def test_timeout_found_by_write_is_timed_out(log: logging.Logger) -> None:
    """Monitoring off, the kernel gives up on a peer that never reads
    (TCP_USER_TIMEOUT) while nothing waits on the socket; the next write
    finds it: TIMED_OUT, not RESET."""
    if not hasattr(socket, "TCP_USER_TIMEOUT"):
        pytest.skip("needs TCP_USER_TIMEOUT (Linux)")
    with anyio.fail_after(NET_TIMEOUT):
        async with open_plain("server", log, rcvbuf=4096, monitor_connection_interval=0) as pp:
            conn = pp.obj._conn
            assert conn is not None
            assert conn.stream is not None
            sock = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 300)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            # Fill the kernel's buffers (not the library's) through a
            # duplicate descriptor, so no write of the library is pending.
            with socket.socket(fileno=socket.dup(sock.fileno())) as dup:
                dup.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    while True:
                        dup.send(b"z" * 4096)
                # Wait for the kernel to give up (the socket's state: closed).
                while dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != _TCP_CLOSE:
                    await anyio.sleep(0.05)
            with pytest.raises(ConnectionError):
                await _write_until_it_fails(pp.obj)
            reason = await pp.obj.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.TIMED_OUT, reason


# ------------------------------------ unsent counts what is being sent


@pytest.mark.parametrize("role", ["client", "server"])
async def test_unsent_counts_one_big_write(log: logging.Logger, role: str) -> None:
    """One write far larger than the kernel takes, to a peer that reads
    nothing, then a close at this end: what the kernel did not take counts
    as unsent, also while a send of it is in progress (trio, TLS)."""
    size = 1_000_000
    with anyio.fail_after(NET_TIMEOUT):
        async with open_plain(role, log, rcvbuf=4096, linger=0.2) as pp:
            conn = pp.obj._conn
            assert conn is not None
            assert conn.stream is not None
            sock = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            await pp.obj.write(b"u" * size)
            # The rest goes to the flusher (trio) or stays with the transport.
            await anyio.sleep(0.1)
            if role == "server":
                assert isinstance(pp.obj, anytcpip.OneClientServer)
                await pp.obj.close_client()
            else:
                assert isinstance(pp.obj, anytcpip.Client)
                await pp.obj.close()
            reason = pp.obj.disconnect_reason
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.CLOSED_HERE
            assert size // 2 < reason.unsent <= size, reason


# -------------------------- unread, after a peer's half-close is answered


class _SlowAnswers(anytcpip.OneClientReadLoopServer):
    """Answers each line after a pause (the next one waits unread)."""

    pause = 0.01

    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        await anyio.sleep(self.pause)
        await self.write_str("ok " + line)


async def test_half_close_answered_leaves_nothing_unread(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """The peer sends two requests and half-closes; both are answered in the
    grace: the reason and its log line count nothing unread. A request left
    unread (the handler is slower than the grace) still counts."""
    caplog.set_level(logging.INFO, logger=log.name)
    with anyio.fail_after(NET_TIMEOUT):
        async with _SlowAnswers(port=0, log=log) as server:
            async with await anyio.connect_tcp(LOCALHOST, server.port) as raw:
                await raw.send(b"a\r\nb\r\n")
                await raw.send_eof()
                data = b""
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        data += await raw.receive()
            assert data == b"ok a\r\nok b\r\n"
            reason = await server.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.PEER_CLOSED
            assert reason.unread == 0, reason
            assert server.disconnect_reason is reason
            # Answers slower than the grace: the second request stays unread.
            server.pause = HALF_CLOSE_GRACE * 3
            async with await anyio.connect_tcp(LOCALHOST, server.port) as raw:
                await server.connected_task
                await raw.send(b"c\r\nd\r\n")
                await raw.send_eof()
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        await raw.receive()
            reason = await server.wait_disconnected()
            assert reason is not None
            assert reason.unread == len(b"d\r\n"), reason
    lines = [r.getMessage() for r in caplog.records if "disconnected from" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].endswith(": peer closed"), lines
    assert lines[1].endswith(": peer closed; 3 bytes unread"), lines
