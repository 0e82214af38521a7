"""OneClientServer: ported from ts_tcpip's tests/test_one_client_server.py,
plus the server behaviour of docs/guide.rst."""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import anyio.abc
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import (
    NET_TIMEOUT,
    check_read_write,
    deadline,
    has_ipv6,
    is_connected,
    make_client,
    make_server,
    receive_exactly,
    rst_close,
)


async def check_peer_closed(obj: anytcpip.BaseClientOrServer) -> None:
    """The peer of ``obj`` closed: a read gives b"" (if it was waiting when the
    end came) or ConnectionError (if the end was seen first); then
    ConnectionError."""
    try:
        assert await obj.readline() == b""
    except ConnectionError:
        pass
    with pytest.raises(ConnectionError):
        await obj.readline()


@deadline()
async def test_port_0_before_and_after_start(log: logging.Logger) -> None:
    server = make_server(log)
    assert server.port == 0
    assert server.bound_addresses == []
    assert not server.start_task.done()
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        assert server.start_task.done()
        await server.start_task
        assert server.port != 0
        assert server.bound_addresses == [(anytcpip.LOCALHOST_IPV4, server.port)]
        await server.close()
    assert server.done_task.done()


@deadline()
async def test_host_none_listens_everywhere(log: logging.Logger) -> None:
    server_callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=None, port=0, log=log, connect_callback=server_callback
    ) as server:
        assert server.port != 0
        assert server.bound_addresses
        # With port=0 every bound socket shares the one chosen port.
        assert {port for _, port in server.bound_addresses} == {server.port}
        hosts = [anytcpip.LOCALHOST_IPV4]
        if has_ipv6():
            hosts.append(anytcpip.LOCALHOST_IPV6)
        for host in hosts:
            async with anytcpip.Client(host=host, port=server.port, log=log) as client:
                await server_callback.assert_next(True)
                await check_read_write(reader=server, writer=client)
                await check_read_write(reader=client, writer=server)
            # The server lets this client go before the next one comes.
            await server_callback.assert_next(False)


@deadline()
async def test_listener_kwargs_pass_through(log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(
        host=None, port=0, log=log, family=socket.AF_INET, backlog=5
    ) as server:
        assert server.bound_addresses
        for host, port in server.bound_addresses:
            assert ":" not in host
            assert port == server.port


@deadline()
async def test_bind_failure_raises_oserror(log: logging.Logger) -> None:
    async with make_server(log) as first:
        second = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=first.port, log=log)
        with pytest.raises(OSError):  # noqa: PT011 (EADDRINUSE)
            async with second:
                pytest.fail("the body must not run")
        assert second.done_task.done()
        assert not second.connected


def test_sync_connect_callback_rejected(log: logging.Logger) -> None:
    def sync_callback(obj: Any) -> None:
        pass

    with pytest.raises(TypeError):
        anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4,
            port=0,
            log=log,
            connect_callback=sync_callback,  # type: ignore[arg-type]
        )


def test_bad_arguments(log: logging.Logger) -> None:
    bad: list[dict[str, Any]] = [
        {"terminator": "\n"},
        {"terminator": b""},
        {"encoding": "no_such_encoder"},
        {"port": -1},
        {"port": 70000},
    ]
    for kwargs in bad:
        args: dict[str, Any] = {"host": anytcpip.LOCALHOST_IPV4, "port": 0, "log": log}
        args.update(kwargs)
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            anytcpip.OneClientServer(**args)


@deadline()
async def test_initial_conditions(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with make_server(log, callback) as server:
        state = (server.connected, server.should_be_connected)
        assert state == (False, False)
        assert not server.connected_task.done()
        assert server.port != 0
        assert callback.pending == 0
        async with make_client(server, log):
            await callback.assert_next(True)
            assert server.connected
            assert server.should_be_connected
            assert server.connected_task.done()


@deadline()
async def test_close_client(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with (
        make_server(log, callback) as server,
        make_client(server, log) as client,
    ):
        await callback.assert_next(True)
        await server.close_client()
        assert not server.connected
        assert not server.should_be_connected
        assert not server.connected_task.done()
        assert not server.done_task.done()
        await callback.assert_next(False)
        await check_peer_closed(client)
        # Again: no effect.
        await server.close_client()
        await server.basic_close_client()
        assert callback.states == [True, False]
        # Still listening: the next client is served.
        async with make_client(server, log) as client2:
            await callback.assert_next(True)
            await server.connected_task
            await check_read_write(reader=server, writer=client2)
            await check_read_write(reader=client2, writer=server)
    assert callback.states == [True, False, True, False]


@deadline()
async def test_basic_close_client(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with make_server(log, callback) as server, make_client(server, log):
        await callback.assert_next(True)
        await server.basic_close_client()
        await callback.assert_next(False)
        assert not server.connected
        assert server.should_be_connected
        assert not server.done_task.done()


@deadline()
async def test_close(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with (
        make_server(log, callback) as server,
        make_client(server, log) as client,
    ):
        await callback.assert_next(True)
        assert not server.done_task.done()
        await server.close()
        assert not server.connected
        assert not server.should_be_connected
        assert server.done_task.done()
        await callback.assert_next(False)
        await check_peer_closed(client)
        await server.close_client()
        await server.close()
        assert callback.states == [True, False]
        # Nothing listens any more.
        with pytest.raises(OSError):  # noqa: PT011
            await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)


@deadline()
async def test_connect_callback_raises(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    callback.raise_error = True
    async with make_server(log, callback) as server:
        assert not is_connected(server)
        async with make_client(server, log) as client:
            await server.connected_task
            assert server.connected
            await check_read_write(reader=server, writer=client)
            await check_read_write(reader=client, writer=server)
        async with make_client(server, log) as client:
            await server.connected_task
            await check_read_write(reader=server, writer=client)
    assert callback.states == [True, False, True, False]


@deadline()
async def test_only_one_client(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with (
        make_server(log, callback) as server,
        make_client(server, log) as client,
    ):
        await callback.assert_next(True)
        await check_read_write(reader=client, writer=server)
        await check_read_write(reader=server, writer=client)
        # Another connection is accepted and closed at once.
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as extra:
            await extra.send(b"ignored\r\n")
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await extra.receive()
        await check_read_write(reader=client, writer=server)
        await check_read_write(reader=server, writer=client)
        assert callback.states == [True]


@deadline()
async def test_reconnect(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with make_server(log, callback) as server:
        async with make_client(server, log):
            await callback.assert_next(True)
        # Reconnect at once, maybe before the server noticed the hangup.
        async with make_client(server, log) as client:
            await callback.assert_next(False)
            await callback.assert_next(True)
            await check_read_write(reader=client, writer=server)
            await check_read_write(reader=server, writer=client)
        await callback.assert_next(False)
        # And again after the server noticed.
        async with make_client(server, log) as client:
            await callback.assert_next(True)
            await server.connected_task
            await check_read_write(reader=client, writer=server)
            await check_read_write(reader=server, writer=client)
    assert callback.states == [True, False] * 3


@pytest.mark.parametrize("how", ["hangup", "reset"])
@deadline()
async def test_client_gone_while_not_reading(how: str, log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with make_server(log, callback) as server:
        peer = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)
        await callback.assert_next(True)
        await peer.send(b"unread")
        if how == "reset":
            await rst_close(peer)
        else:
            await peer.aclose()
        await callback.assert_next(False)
        assert not server.connected
        assert server.should_be_connected
        assert not server.connected_task.done()
        assert callback.states == [True, False]


@deadline()
async def test_next_client_sees_nothing_of_the_first(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with make_server(log, callback) as server:
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as first:
            await callback.assert_next(True)
            await first.send(b"stale line\r\nstale half")
            await server.write(b"for the first client only\r\n")
        await callback.assert_next(False)
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port) as second:
            await callback.assert_next(True)
            await second.send(b"fresh\r\n")
            assert await server.read_str() == "fresh"
            await server.write(b"hello second\r\n")
            expected = b"hello second\r\n"
            assert await receive_exactly(second, len(expected)) == expected


@deadline()
async def test_simultaneous_clients(log: logging.Logger) -> None:
    """100 connections at once: exactly one is served, the rest see EOF or a
    reset, and the served one works."""
    n_clients = 100
    outcomes: dict[int, bytes | str] = {}
    peers: dict[int, anyio.abc.SocketStream] = {}
    async with make_server(log) as server:
        all_connected = anyio.Event()

        async def connect(i: int) -> None:
            stream = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)
            peers[i] = stream
            if len(peers) == n_clients:
                all_connected.set()

        rejected = anyio.Event()

        async def watch(i: int) -> None:
            try:
                outcomes[i] = await peers[i].receive()
            except anyio.EndOfStream:
                outcomes[i] = "eof"
            except anyio.BrokenResourceError:
                outcomes[i] = "reset"
            ended = [o for o in outcomes.values() if not isinstance(o, bytes)]
            if len(ended) == n_clients - 1:
                rejected.set()

        try:
            async with anyio.create_task_group() as tg:
                for i in range(n_clients):
                    tg.start_soon(connect, i)
            await all_connected.wait()
            await server.connected_task
            async with anyio.create_task_group() as tg:
                for i in range(n_clients):
                    tg.start_soon(watch, i)
                # Every rejected peer sees its end without anything more
                # being done; the served one waits for the greeting.
                await rejected.wait()
                await server.write(b"welcome\r\n")
            served = [i for i, o in outcomes.items() if isinstance(o, bytes)]
            assert len(served) == 1, outcomes
            assert outcomes[served[0]] == b"welcome\r\n"
            assert server.connected
            await peers[served[0]].send(b"still served\r\n")
            assert await server.read_str() == "still served"
        finally:
            for stream in peers.values():
                await anyio.aclose_forcefully(stream)


@deadline()
async def test_ipv6_server(log: logging.Logger) -> None:
    if not has_ipv6():
        pytest.skip("no IPv6 loopback on this machine")
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV6, port=0, log=log) as server:
        assert server.bound_addresses == [(anytcpip.LOCALHOST_IPV6, server.port)]
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV6, port=server.port, log=log
        ) as client:
            await server.connected_task
            await check_read_write(reader=server, writer=client)
            await check_read_write(reader=client, writer=server)


@deadline()
async def test_connected_task_is_replaced(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with make_server(log, callback) as server:
        first_task = server.connected_task
        async with make_client(server, log):
            await first_task
            assert first_task.done()
        await callback.assert_next(True)
        await callback.assert_next(False)
        second_task = server.connected_task
        assert second_task is not first_task
        assert not second_task.done()
        async with make_client(server, log):
            await second_task
            assert server.connected
