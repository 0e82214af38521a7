"""What a one-client server does with a second client (``second_client=``):
"reject", "replace" and "replace_if_silent", on every backend."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, deadline, peer_closed, receive_exactly
from reliability.faultproxy import FaultProxy

POLICIES = ["reject", "replace", "replace_if_silent"]

LOCALHOST = anytcpip.LOCALHOST_IPV4


def _server(
    log: logging.Logger, recorder: ConnectRecorder, **kwargs: Any
) -> anytcpip.OneClientServer:
    return anytcpip.OneClientServer(
        host=LOCALHOST, port=0, log=log, connect_callback=recorder, **kwargs
    )


async def _connect(server: anytcpip.OneClientServer) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp(LOCALHOST, server.port)


async def _assert_served(
    server: anytcpip.OneClientServer, peer: anyio.abc.SocketStream, tag: bytes
) -> None:
    """``peer`` is the client ``server`` serves: bytes go both ways."""
    await peer.send(tag + b"\r\n")
    assert await server.readline() == tag + b"\r\n"
    await server.write(b"to " + tag + b"\r\n")
    assert await receive_exactly(peer, len(tag) + 5) == b"to " + tag + b"\r\n"


# ------------------------------------------------------------------ options


def test_bad_second_client_options(log: logging.Logger) -> None:
    with pytest.raises(ValueError, match="'reject', 'replace', 'replace_if_silent'"):
        anytcpip.OneClientServer(LOCALHOST, 0, log, second_client="kick")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs silent_time"):
        anytcpip.OneClientServer(LOCALHOST, 0, log, second_client="replace_if_silent")
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="must be > 0"):
            anytcpip.OneClientServer(
                LOCALHOST, 0, log, second_client="replace_if_silent", silent_time=bad
            )
    with pytest.raises(TypeError, match="silent_time"):
        anytcpip.OneClientServer(
            LOCALHOST,
            0,
            log,
            second_client="replace_if_silent",
            silent_time="1",  # type: ignore[arg-type]
        )
    for policy in ("reject", "replace"):
        with pytest.raises(ValueError, match="applies only to"):
            anytcpip.OneClientServer(
                LOCALHOST,
                0,
                log,
                second_client=policy,
                silent_time=1.0,
            )
    # The default, and what the subclasses and test servers inherit.
    server = anytcpip.OneClientServer(LOCALHOST, 0, log)
    assert (server.second_client, server.silent_time) == ("reject", 0.0)
    test_server = anytcpip.TestOneClientReadLoopServer(
        port=0, log=log, second_client="replace_if_silent", silent_time=2
    )
    assert (test_server.second_client, test_server.silent_time) == ("replace_if_silent", 2.0)


# ------------------------------------------------------------- each policy


@pytest.mark.parametrize("explicit", [False, True])
@deadline()
async def test_reject(log: logging.Logger, explicit: bool) -> None:
    """The default: the second client is closed at once, the first is served."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    kwargs: dict[str, Any] = {"second_client": "reject"} if explicit else {}
    async with _server(log, recorder, **kwargs) as server:
        first = await _connect(server)
        async with first:
            await recorder.assert_next(True)
            for _ in range(2):
                second = await _connect(server)
                async with second:
                    assert await peer_closed(second)
            await _assert_served(server, first, b"first")
            assert recorder.history == [True]
            assert server.disconnect_reason is None


@pytest.mark.parametrize("monitor", [True, False])
@deadline()
async def test_replace(log: logging.Logger, monitor: bool) -> None:
    """The new client is served; the old one is closed with reason REPLACED,
    gets what was written to it, then its end-of-stream; its disconnect
    callback came before the new client's connect callback. With monitoring
    on and off."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    reasons: list[anytcpip.DisconnectReason | None] = []

    async def callback(server: anytcpip.BaseClientOrServer) -> None:
        reasons.append(server.disconnect_reason)
        await recorder(server)

    async with anytcpip.OneClientServer(
        LOCALHOST,
        0,
        log,
        connect_callback=callback,
        second_client="replace",
        monitor_connection_interval=0.1 if monitor else 0,
    ) as server:
        old = await _connect(server)
        async with old:
            await recorder.assert_next(True)
            await _assert_served(server, old, b"old")
            await server.write(b"last words\r\n")
            new = await _connect(server)
            async with new:
                await recorder.assert_next(False)
                await recorder.assert_next(True)
                reason = server.disconnect_reason
                assert reason is not None
                assert reason.kind is anytcpip.DisconnectKind.REPLACED
                assert "replaced by a new client" in str(reason)
                # Read from inside the old client's disconnect call.
                assert reasons[1] is reason
                assert await receive_exactly(old, 12) == b"last words\r\n"
                assert await peer_closed(old)
                await _assert_served(server, new, b"new")
    recorder.assert_alternating()
    assert recorder.history == [True, False, True, False]


@deadline()
async def test_replace_if_silent(log: logging.Logger) -> None:
    """A client that sent something within silent_time is kept (the new one
    is rejected); one silent for silent_time is replaced."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    # Talking: silent_time is far longer than the test.
    async with _server(
        log, recorder, second_client="replace_if_silent", silent_time=NET_TIMEOUT * 2
    ) as server:
        first = await _connect(server)
        async with first:
            await recorder.assert_next(True)
            await _assert_served(server, first, b"talker")
            second = await _connect(server)
            async with second:
                assert await peer_closed(second)
            await _assert_served(server, first, b"still served")
            assert recorder.history == [True]
    recorder.clear()
    silent_time = 0.3
    async with _server(
        log, recorder, second_client="replace_if_silent", silent_time=silent_time
    ) as server:
        first = await _connect(server)
        async with first:
            await recorder.assert_next(True)
            await _assert_served(server, first, b"quiet")
            # The policy is about time: let silent_time pass, and more.
            await anyio.sleep(silent_time * 2)
            second = await _connect(server)
            async with second:
                await recorder.assert_next(False)
                await recorder.assert_next(True)
                reason = server.disconnect_reason
                assert reason is not None
                assert reason.kind is anytcpip.DisconnectKind.REPLACED
                assert await peer_closed(first)
                await _assert_served(server, second, b"replacement")
        recorder.assert_alternating()


# --------------------------------------- the old client's bytes, never seen


class _Echo(anytcpip.OneClientReadLoopServer):
    """Echoes each line; records (connection number, line) of each."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.number = 0
        self.lines: list[tuple[int, str]] = []

    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        self.lines.append((self.number, line))
        await self.write_str(line)


@deadline()
async def test_replace_old_bytes_never_seen(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """The old client keeps sending while the new one connects: nothing it
    sent is read (nor echoed to the new client) after the switch, and the
    old read loop ends quietly."""
    caplog.set_level(logging.INFO, logger=log.name)
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)

    async def callback(server: anytcpip.BaseClientOrServer) -> None:
        assert isinstance(server, _Echo)
        if server.connected:
            server.number += 1
        await recorder(server)

    async with _Echo(port=0, log=log, connect_callback=callback, second_client="replace") as server:
        old = await _connect(server)
        old_stopped = anyio.Event()

        async def keep_sending() -> None:
            i = 0
            try:
                while True:
                    await old.send(f"old {i}\r\n".encode())
                    i += 1
                    if i % 16 == 0:
                        await anyio.sleep(0)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            finally:
                old_stopped.set()

        async with old, anyio.create_task_group() as tg:
            await recorder.assert_next(True)
            tg.start_soon(keep_sending)
            # Let the old client's lines flow through the echo first.
            while len(server.lines) < 50:
                await anyio.sleep(0.01)
            new = await _connect(server)
            async with new:
                await recorder.assert_next(False)
                await recorder.assert_next(True)
                for j in range(20):
                    await new.send(f"new {j}\r\n".encode())
                echoed = b""
                while echoed.count(b"\n") < 20:
                    echoed += await new.receive()
                assert echoed == b"".join(f"new {j}\r\n".encode() for j in range(20))
                tg.cancel_scope.cancel()
        assert [line for n, line in server.lines if n == 2] == [f"new {j}" for j in range(20)]
        assert all(line.startswith("old ") for n, line in server.lines if n == 1)
        recorder.assert_alternating()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    disconnects = [r.getMessage() for r in caplog.records if "disconnected from" in r.getMessage()]
    assert len(disconnects) == 2, disconnects
    assert ": replaced by a new client" in disconnects[0], disconnects


# ----------------------------------------------------- the rebooted client


@asynccontextmanager
async def _vanished_client(
    server: anytcpip.OneClientServer, recorder: ConnectRecorder
) -> AsyncIterator[FaultProxy]:
    """A client, through a proxy, that is served, sends a line and then
    vanishes: nothing more from it, not even a FIN (a blackhole)."""
    async with FaultProxy(server.port) as proxy:
        gone = await anyio.connect_tcp(LOCALHOST, proxy.port)
        async with gone:
            await recorder.assert_next(True)
            await gone.send(b"before the reboot\r\n")
            assert await server.readline() == b"before the reboot\r\n"
            proxy.set_blackhole(True)
            try:
                yield proxy
            finally:
                proxy.set_blackhole(False)


@pytest.mark.parametrize("policy", POLICIES)
@deadline()
async def test_rebooted_client(log: logging.Logger, policy: str) -> None:
    """The client machine reboots: its old connection vanishes without a FIN
    and the rebooted client connects again. reject turns it away (every
    time); replace serves it at once; replace_if_silent serves it once the
    old connection was silent for silent_time."""
    silent_time = 1.0
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    kwargs: dict[str, Any] = {"second_client": policy, "linger": 0.3}
    if policy == "replace_if_silent":
        kwargs["silent_time"] = silent_time
    async with _server(log, recorder, **kwargs) as server:
        async with _vanished_client(server, recorder):
            if policy != "replace":
                # At once: the old connection looks alive.
                rebooted = await _connect(server)
                async with rebooted:
                    assert await peer_closed(rebooted)
                assert server.connected
                assert recorder.history == [True]
            if policy == "replace_if_silent":
                await anyio.sleep(silent_time)
            if policy == "reject":
                rebooted = await _connect(server)
                async with rebooted:
                    assert await peer_closed(rebooted)
                assert recorder.history == [True]
                return
            async with anyio.create_task_group() as tg:
                # What the dead client will never take: dropped, and
                # the reason says how much.
                await _fill(server, tg)
                rebooted = await _connect(server)
                async with rebooted:
                    await recorder.assert_next(False)
                    await recorder.assert_next(True)
                    reason = server.disconnect_reason
                    assert reason is not None
                    assert reason.kind is anytcpip.DisconnectKind.REPLACED
                    assert reason.unsent > 0, reason
                    assert str(reason) == (
                        f"replaced by a new client; {reason.unsent} bytes unsent"
                    )
                    tg.cancel_scope.cancel()
                    await _assert_served(server, rebooted, b"rebooted")
        recorder.assert_alternating()


async def _fill(obj: anytcpip.BaseClientOrServer, tg: anyio.abc.TaskGroup) -> None:
    """Write to ``obj``'s peer, in a task of ``tg``, until a write blocks."""
    blocked = anyio.Event()

    async def flood() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                with anyio.move_on_after(0.5) as scope:
                    await obj.write(b"z" * 65536)
                if scope.cancelled_caught:
                    blocked.set()
                    await anyio.sleep_forever()

    tg.start_soon(flood)
    await blocked.wait()


# ------------------------------------------------------- TLS, bursts


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCALHOST).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    return server_context, client_context


@pytest.mark.parametrize("policy", ["replace", "replace_if_silent"])
@deadline()
async def test_replace_during_tls_handshake(
    log: logging.Logger, tls: tuple[ssl.SSLContext, ssl.SSLContext], policy: str
) -> None:
    """A client stuck in its TLS handshake (it never sends a ClientHello) is
    replaced by one that completes it; the stuck one was never connected, so
    it has no callbacks."""
    server_context, client_context = tls
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    kwargs: dict[str, Any] = {"second_client": policy, "ssl_context": server_context}
    if policy == "replace_if_silent":
        kwargs["silent_time"] = 0.2
    async with _server(log, recorder, **kwargs) as server:
        stuck = await _connect(server)
        async with stuck:
            if policy == "replace_if_silent":
                await anyio.sleep(0.4)
            async with anytcpip.Client(
                LOCALHOST, server.port, log, ssl_context=client_context
            ) as client:
                await recorder.assert_next(True)
                assert await peer_closed(stuck)
                await client.write_str("over TLS")
                assert await server.read_str() == "over TLS"
            await recorder.assert_next(False)
        assert recorder.history == [True, False]


@deadline()
async def test_replace_burst(log: logging.Logger) -> None:
    """Many clients at once with replace: the last one is served, every other
    one is closed, the callbacks alternate, no descriptor is left open."""
    count = 12
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with _server(log, recorder, second_client="replace") as server:
        peers = [await _connect(server) for _ in range(count)]
        try:
            for peer in peers[:-1]:
                assert await peer_closed(peer)
            await server.connected_task
            await _assert_served(server, peers[-1], b"last")
            assert server.connected
            assert recorder.history[-1] is True
            recorder.assert_alternating()
        finally:
            for peer in peers:
                await peer.aclose()
    recorder.assert_alternating()
    assert recorder.history[-1] is False
