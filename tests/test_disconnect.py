"""Why a connection ended: ``disconnect_reason``, ``wait_disconnected()`` and
the one log line per disconnect, client and server side, on every backend."""

from __future__ import annotations

import errno
import logging
import socket
import ssl

import anyio
import anyio.abc
import pytest
import trustme

import anytcpip
from anytcpip import DisconnectKind, DisconnectReason
from anytcpip._disconnect import kind_of_error
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, deadline, rst_close
from reliability.harness import open_plain, open_raw

ROLES = ["client", "server"]

LOCALHOST = anytcpip.LOCALHOST_IPV4


async def _reason(obj: anytcpip.BaseClientOrServer) -> DisconnectReason:
    reason = await obj.wait_disconnected()
    assert reason is not None
    return reason


async def _close_here(obj: anytcpip.BaseClientOrServer) -> None:
    if isinstance(obj, anytcpip.OneClientServer):
        await obj.close_client()
    else:
        assert isinstance(obj, anytcpip.Client)
        await obj.close()


def _last(obj: anytcpip.BaseClientOrServer) -> DisconnectReason | None:
    """``obj.disconnect_reason``, through a call (so mypy does not narrow it)."""
    return obj.disconnect_reason


def _should_be_connected(obj: anytcpip.BaseClientOrServer) -> bool:
    return obj.should_be_connected


def _raw_socket(obj: anytcpip.BaseClientOrServer) -> socket.socket:
    conn = obj._conn
    assert conn is not None
    assert conn.stream is not None
    sock: socket.socket = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
    return sock


# ------------------------------------------------------------- sans-IO


def test_str_is_one_readable_line() -> None:
    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    reason = DisconnectReason(DisconnectKind.RESET, "127.0.0.1:5000", reset, unread=3, unsent=10)
    assert str(reason) == (
        "reset (ConnectionResetError: [Errno 104] Connection reset by peer); "
        "3 bytes unread, 10 bytes unsent"
    )
    assert str(DisconnectReason(DisconnectKind.PEER_CLOSED, "x")) == "peer closed"
    assert str(DisconnectReason(DisconnectKind.REPLACED, unsent=1)) == (
        "replaced by a new client; 1 bytes unsent"
    )
    for kind in DisconnectKind:
        assert "\n" not in str(DisconnectReason(kind, "p", ValueError("a"), 1, 2))
        assert str(kind) == kind.value


def test_kind_of_error() -> None:
    timed_out = OSError(errno.ETIMEDOUT, "Connection timed out")
    assert kind_of_error(timed_out) is DisconnectKind.TIMED_OUT
    assert kind_of_error(TimeoutError()) is DisconnectKind.TIMED_OUT
    assert kind_of_error(ConnectionResetError()) is DisconnectKind.RESET
    assert kind_of_error(BrokenPipeError()) is DisconnectKind.RESET
    assert kind_of_error(OSError(errno.EPIPE, "pipe")) is DisconnectKind.RESET
    # Through the cause chain, as the library wraps transport errors.
    wrapped = ConnectionError("not connected")
    wrapped.__cause__ = timed_out
    assert kind_of_error(wrapped) is DisconnectKind.TIMED_OUT
    assert kind_of_error(ssl.SSLError(1, "bad record mac")) is DisconnectKind.FAILED
    assert kind_of_error(ValueError("boom")) is DisconnectKind.FAILED
    # A cycle in the chain ends.
    a, b = OSError("a"), OSError("b")
    a.__context__, b.__context__ = b, a
    assert kind_of_error(a) is DisconnectKind.FAILED


# ------------------------------------------------------- how it ended


@pytest.mark.parametrize("role", ROLES)
@deadline()
async def test_peer_closed_with_unread(log: logging.Logger, role: str) -> None:
    """The peer sends bytes nobody reads and closes (FIN): PEER_CLOSED with
    the unread count; wait_disconnected returns once the callback ran."""
    async with open_raw(role, log) as rp:
        assert rp.obj.disconnect_reason is None
        await rp.raw.send(b"abc")
        await rp.raw.aclose()
        reason = await _reason(rp.obj)
        assert rp.cb.history == [True, False]
        assert reason.kind is DisconnectKind.PEER_CLOSED
        assert reason.exception is None
        assert reason.unread == 3
        assert "127.0.0.1" in reason.peer
        assert str(reason) == "peer closed; 3 bytes unread"
        assert _last(rp.obj) is reason
        # Not connected any more: at once, the same reason.
        assert await rp.obj.wait_disconnected() is reason


@pytest.mark.parametrize("role", ROLES)
@deadline()
async def test_reset(log: logging.Logger, role: str) -> None:
    async with open_raw(role, log) as rp:
        await rst_close(rp.raw)
        reason = await _reason(rp.obj)
        assert reason.kind is DisconnectKind.RESET, reason
        assert isinstance(reason.exception, OSError), repr(reason.exception)
        assert str(reason).startswith("reset ("), str(reason)


@pytest.mark.parametrize("role", ROLES)
@deadline()
async def test_timed_out(log: logging.Logger, role: str) -> None:
    """ETIMEDOUT on loopback: the peer never reads, so its window closes;
    with TCP_USER_TIMEOUT at 0.3 s the kernel gives up on the zero-window
    probes within about a second."""
    if not hasattr(socket, "TCP_USER_TIMEOUT"):
        pytest.skip("needs TCP_USER_TIMEOUT (Linux)")
    async with open_plain(role, log, rcvbuf=4096) as pp:
        sock = _raw_socket(pp.obj)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 300)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        async def flood() -> None:
            try:
                while True:
                    await pp.obj.write(b"x" * 65536)
            except ConnectionError:
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            reason = await _reason(pp.obj)
        assert reason.kind is DisconnectKind.TIMED_OUT, reason
        assert reason.exception is not None
        assert str(reason).startswith("timed out"), str(reason)


@deadline()
async def test_heartbeat_missed(log: logging.Logger) -> None:
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.TestOneClientReadLoopServer(
        port=0,
        log=log,
        connect_callback=recorder,
        run_heartbeat_monitor_task=True,
        max_heartbeat_interval=0.3,
    ) as server:
        async with await anyio.connect_tcp(LOCALHOST, server.port):
            await recorder.assert_next(True)
            reason = await _reason(server)
            assert reason.kind is DisconnectKind.HEARTBEAT_MISSED
            assert str(reason) == "heartbeat missed"
            assert recorder.history == [True, False]


@pytest.mark.parametrize(
    "how", ["client.close", "client.basic_close", "close_client", "basic_close_client", "close"]
)
@deadline()
async def test_closed_here_with_unread(log: logging.Logger, how: str) -> None:
    """Every close at this end is CLOSED_HERE; bytes received and not read
    are counted as unread."""
    role = "client" if how.startswith("client.") else "server"
    async with open_raw(role, log) as rp:
        obj = rp.obj
        # One segment: once the line is read, the rest is in the buffer.
        await rp.raw.send(b"line\r\nunread")
        assert await obj.readline() == b"line\r\n"
        method = how.removeprefix("client.")
        await getattr(obj, method)()
        reason = obj.disconnect_reason
        assert reason is not None
        assert rp.cb.history == [True, False]
        assert reason.kind is DisconnectKind.CLOSED_HERE
        assert reason.unread == len(b"unread")
        assert str(reason) == "closed here; 6 bytes unread"


@pytest.mark.parametrize("role", ROLES)
@deadline()
async def test_closed_here_unsent(log: logging.Logger, role: str) -> None:
    """A peer that reads nothing: a close at this end counts what was written
    and not handed to the operating system."""
    async with open_plain(role, log, rcvbuf=4096, linger=0.2) as pp:
        blocked = anyio.Event()

        async def flood() -> None:
            try:
                while True:
                    with anyio.move_on_after(0.5) as scope:
                        await pp.obj.write(b"y" * 65536)
                    if scope.cancelled_caught:
                        blocked.set()
                        await anyio.sleep_forever()
            except ConnectionError:
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            await blocked.wait()
            await _close_here(pp.obj)
            tg.cancel_scope.cancel()
        reason = pp.obj.disconnect_reason
        assert reason is not None
        assert reason.kind is DisconnectKind.CLOSED_HERE
        assert reason.unsent > 0, reason
        assert f"{reason.unsent} bytes unsent" in str(reason)


class _Failing(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        raise ValueError(f"cannot handle {line!r}")


@deadline()
async def test_failed(log: logging.Logger) -> None:
    """read_and_dispatch raising: FAILED, with that exception."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with _Failing(port=0, log=log, connect_callback=recorder) as server:
        async with await anyio.connect_tcp(LOCALHOST, server.port) as raw:
            await recorder.assert_next(True)
            await raw.send(b"bad\r\n")
            reason = await _reason(server)
            assert reason.kind is DisconnectKind.FAILED
            assert isinstance(reason.exception, ValueError)
            assert str(reason) == "failed (ValueError: cannot handle 'bad')"
            assert recorder.history == [True, False]


# -------------------------------------------------------- callbacks, waits


@pytest.mark.parametrize("role", ROLES)
@deadline()
async def test_read_from_connect_callback(log: logging.Logger, role: str) -> None:
    """The disconnect call sees the reason of the connection that ended; the
    next connect call still sees it (kept until the next one ends)."""
    seen: list[tuple[bool, DisconnectReason | None]] = []

    async def callback(obj: anytcpip.BaseClientOrServer) -> None:
        seen.append((obj.connected, obj.disconnect_reason))

    if role == "server":
        async with anytcpip.OneClientServer(LOCALHOST, 0, log, connect_callback=callback) as server:
            for _ in range(2):
                async with await anyio.connect_tcp(LOCALHOST, server.port):
                    await server.connected_task
                await _reason(server)
        first, second = seen[1][1], seen[3][1]
        assert seen == [(True, None), (False, first), (True, first), (False, second)]
    else:
        async with (
            anytcpip.OneClientServer(LOCALHOST, 0, log) as server,
            anytcpip.Client(LOCALHOST, server.port, log, connect_callback=callback) as client,
        ):
            await server.connected_task
            await server.close_client()
            reason = await _reason(client)
        assert seen == [(True, None), (False, reason)]
    assert all(r is None or r.kind is DisconnectKind.PEER_CLOSED for _, r in seen)


@deadline()
async def test_wait_disconnected_before_and_between(log: logging.Logger) -> None:
    """None before any connection, at once; the last reason, at once, while
    no client is connected."""
    async with anytcpip.OneClientServer(LOCALHOST, 0, log) as server:
        assert await server.wait_disconnected() is None
        async with await anyio.connect_tcp(LOCALHOST, server.port):
            await server.connected_task
        reason = await _reason(server)
        assert await server.wait_disconnected() is reason
    # After close, too.
    assert await server.wait_disconnected() is reason


@pytest.mark.parametrize("role", ROLES)
@deadline()
async def test_one_log_line_per_disconnect(
    log: logging.Logger, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    async with open_raw(role, log) as rp:
        await rst_close(rp.raw)
        reason = await _reason(rp.obj)
        # The end of the object adds no second line for the same connection.
        await _close_here(rp.obj)
    lines = [r.getMessage() for r in caplog.records if "disconnected from" in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].endswith(f": {reason}")
    assert "\n" not in lines[0]


# ------------------------------------------------------------- races


@pytest.mark.parametrize("role", ROLES)
async def test_peer_eof_then_close_here(log: logging.Logger, role: str) -> None:
    """The end-of-stream was seen first: PEER_CLOSED, even though this end
    closed before the disconnect was handled."""
    for _ in range(5):
        with anyio.fail_after(NET_TIMEOUT):
            async with open_raw(role, log) as rp:
                await rp.raw.send_eof()
                # A read that sees the end-of-stream: it was noticed first.
                try:
                    assert await rp.obj.readline() == b""
                except ConnectionError:
                    pass
                await _close_here(rp.obj)
                reason = rp.obj.disconnect_reason
                assert reason is not None
                assert reason.kind is DisconnectKind.PEER_CLOSED, reason
                assert rp.cb.history == [True, False]


@pytest.mark.parametrize("role", ROLES)
async def test_close_here_then_reset(log: logging.Logger, role: str) -> None:
    """Closed here, the peer resets while the close goes on: CLOSED_HERE."""
    for _ in range(5):
        with anyio.fail_after(NET_TIMEOUT):
            async with open_raw(role, log) as rp, anyio.create_task_group() as tg:
                tg.start_soon(_close_here, rp.obj)
                # The close has begun (should_be_connected is cleared in the
                # same step as the connection is marked closed here) and is
                # still going on when the reset comes.
                while _should_be_connected(rp.obj):
                    await anyio.lowlevel.checkpoint()
                await rst_close(rp.raw)
                reason = await _reason(rp.obj)
                assert reason.kind is DisconnectKind.CLOSED_HERE, reason


# ---------------------------------------------------------------- TLS


@deadline()
async def test_tls_close_notify_is_peer_closed(log: logging.Logger) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCALHOST).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    async with anytcpip.OneClientServer(LOCALHOST, 0, log, ssl_context=server_context) as server:
        async with anytcpip.Client(
            LOCALHOST, server.port, log, ssl_context=client_context
        ) as client:
            await server.connected_task
            await client.write_str("hello")
            assert await server.read_str() == "hello"
        client_reason = client.disconnect_reason
        assert client_reason is not None
        assert client_reason.kind is DisconnectKind.CLOSED_HERE
        reason = await _reason(server)
        assert reason.kind is DisconnectKind.PEER_CLOSED, reason
