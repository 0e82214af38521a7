"""What a peer sees when a connection is closed at this end: the end-of-stream
comes at once, right after everything written and before the disconnect
callback (as with ts_tcpip, whose close sends it first), and the close
returns after the callback and the connection's tasks; a peer that answers
(its own end, or more data) lets the close finish without waiting for
``linger`` (every backend, monitoring on or off)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.abc
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, deadline, peer_listener, receive_until_eof

pytestmark = pytest.mark.anyio

MONITOR = pytest.mark.parametrize("monitor", [0.1, 0.0], ids=["monitor", "no_monitor"])


class _Telemetry(anytcpip.OneClientServer):
    """Runs a connection task that writes until it is cancelled."""

    def __init__(self, **kwargs: Any) -> None:
        self.recorder = ConnectRecorder()
        super().__init__(connect_callback=self._on_connect, **kwargs)
        self.task_running = False
        self.task_ended = anyio.Event()
        self.sent = 0

    async def _on_connect(self, server: anytcpip.OneClientServer) -> None:
        await self.recorder.callback(server)
        if server.connected:
            self.start_connection_soon(self._telemetry)

    async def _telemetry(self) -> None:
        self.task_running = True
        try:
            while True:
                await self.write_str(f"telemetry {self.sent}")
                self.sent += 1
                await anyio.sleep(0.001)
        finally:
            self.task_running = False
            self.task_ended.set()


@MONITOR
@deadline(NET_TIMEOUT)
async def test_end_of_stream_comes_after_everything_written(
    log: logging.Logger, monitor: float
) -> None:
    for _ in range(5):
        async with _Telemetry(
            host="127.0.0.1", port=0, log=log, monitor_connection_interval=monitor
        ) as server:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as peer:
                await server.recorder.assert_next(True)
                # Some telemetry has come.
                first = await peer.receive()
                assert first.startswith(b"telemetry 0")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(server.close_client)
                    received = first + await receive_until_eof(peer)
                # close_client has returned: the disconnect callback has run
                # and said why, and the connection task has ended.
                assert server.recorder.history == [True, False]
                reason = server.disconnect_reason
                assert reason is not None
                assert reason.kind is anytcpip.DisconnectKind.CLOSED_HERE
                assert server.task_ended.is_set()
                assert not server.task_running
            # Every line the task wrote arrived whole, in order, none after
            # the end.
            lines = received.decode().split("\r\n")
            assert lines[-1] == ""
            assert lines[:-1] == [f"telemetry {i}" for i in range(server.sent)]


class _WaitsForPeer:
    """A connect callback whose disconnect call waits until the peer has seen
    our end-of-stream (a close that sent it only after the callback would
    never end)."""

    def __init__(self) -> None:
        self.peer_saw_end = anyio.Event()
        self.calls: list[bool] = []
        self.gave_up = False

    async def __call__(self, obj: anytcpip.BaseClientOrServer) -> None:
        self.calls.append(obj.connected)
        if not obj.connected:
            with anyio.move_on_after(NET_TIMEOUT / 4) as scope:
                await self.peer_saw_end.wait()
            self.gave_up = scope.cancelled_caught


@MONITOR
@deadline(NET_TIMEOUT)
async def test_server_peer_sees_the_end_before_the_disconnect_callback(
    log: logging.Logger, monitor: float
) -> None:
    callback = _WaitsForPeer()
    async with anytcpip.OneClientServer(
        host="127.0.0.1",
        port=0,
        log=log,
        connect_callback=callback,
        monitor_connection_interval=monitor,
    ) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as peer:
            await server.connected_task
            await server.write_str("last words")
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.close_client)
                assert await receive_until_eof(peer) == b"last words\r\n"
                callback.peer_saw_end.set()
            assert callback.calls == [True, False]
            assert not callback.gave_up
            assert not server.connected


@MONITOR
@deadline(NET_TIMEOUT)
async def test_client_peer_sees_the_end_before_the_disconnect_callback(
    log: logging.Logger, monitor: float
) -> None:
    callback = _WaitsForPeer()
    async with peer_listener() as (listener, port):
        client = anytcpip.Client(
            host="127.0.0.1",
            port=port,
            log=log,
            connect_callback=callback,
            monitor_connection_interval=monitor,
        )
        async with client, await listener.accept() as peer:
            await client.write_str("last words")
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.close)
                assert await receive_until_eof(peer) == b"last words\r\n"
                callback.peer_saw_end.set()
            assert callback.calls == [True, False]
            assert not callback.gave_up
            assert not client.connected


async def _close_client_then_set(server: anytcpip.OneClientServer, event: anyio.Event) -> None:
    await server.close_client()
    event.set()


@MONITOR
@deadline(NET_TIMEOUT)
async def test_a_peer_that_answers_the_close_ends_it_before_linger(
    log: logging.Logger, monitor: float
) -> None:
    """The peer goes on sending after the server's close, then closes: the
    server's close is over well before ``linger`` (a whole ``NET_TIMEOUT``
    here), and the peer still gets the server's end-of-stream."""
    async with anytcpip.OneClientServer(
        host="127.0.0.1",
        port=0,
        log=log,
        monitor_connection_interval=monitor,
        linger=NET_TIMEOUT * 10,
    ) as server:
        for _ in range(5):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as peer:
                await server.connected_task
                await server.write_str("hello")
                conn_closed = anyio.Event()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_close_client_then_set, server, conn_closed)
                    assert await receive_until_eof(peer) == b"hello\r\n"
                    await conn_closed.wait()
                    # More data after the server's end, then our own end.
                    await peer.send(b"late words\r\n" * 100)
                    await peer.send_eof()
        # Each client's close finished: nothing holds close() for linger.
        with anyio.fail_after(NET_TIMEOUT / 2):
            await server.close()
