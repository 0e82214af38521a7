"""Objects started with ``await task_group.start(obj.run)``: the task running
``run`` serves a Client's connection and accepts on a server's first listener
itself. Seen from outside it behaves as ``async with`` does."""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, check_read_write, deadline, has_ipv6, make_client


class HeldCallback:
    """A connect callback that records ``connected`` at each call and, on
    connecting, stays in the callback until ``release`` is set."""

    def __init__(self) -> None:
        self.seen: list[bool] = []
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, obj: anytcpip.BaseClientOrServer) -> None:
        self.seen.append(obj.connected)
        if obj.connected:
            self.entered.set()
            await self.release.wait()


async def start_server(tg: anyio.abc.TaskGroup, log: logging.Logger) -> anytcpip.OneClientServer:
    """A server on 127.0.0.1, started with run() in ``tg``."""
    server = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log)
    await tg.start(server.run)
    return server


@deadline()
async def test_client_start_returns_after_the_connect_callback(log: logging.Logger) -> None:
    """As with ``async with``: once ``start`` returns, the client is
    connected and its connect callback has run and returned."""
    # start() must not return while the callback is still running.
    callback = HeldCallback()
    async with anyio.create_task_group() as tg:
        server = await start_server(tg, log)
        client = make_client(server, log, connect_callback=callback)
        starting = anyio.Event()

        async def start_client() -> None:
            await tg.start(client.run)
            starting.set()

        tg.start_soon(start_client)
        # The connect itself can be pending in the OS while every task is
        # blocked, so wait for the callback, then for start() to settle.
        await callback.entered.wait()
        await anyio.wait_all_tasks_blocked()
        assert callback.seen == [True]
        assert not starting.is_set()
        assert not client.start_task.done()
        callback.release.set()
        await starting.wait()
        assert client.start_task.done()
        assert client.connected
        await server.connected_task
        await check_read_write(reader=server, writer=client)
        await check_read_write(reader=client, writer=server)
        await client.close()
        await server.close()
    assert callback.seen == [True, False]


@deadline()
async def test_client_outlives_its_connection_until_closed(log: logging.Logger) -> None:
    """The server hangs up: the client's run() goes on (not done) until
    close(), which then returns at once."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anyio.create_task_group() as tg:
        server = await start_server(tg, log)
        client = make_client(server, log, connect_callback=recorder)
        await tg.start(client.run)
        await recorder.assert_next(True)
        # Connected at the client's end does not mean accepted yet.
        await server.connected_task
        await server.close_client()
        await recorder.assert_next(False)
        # Not connected, and the close was not asked for.
        assert (client.connected, client.should_be_connected) == (False, True)
        await anyio.wait_all_tasks_blocked()
        assert not client.done_task.done()
        with anyio.fail_after(NET_TIMEOUT):
            await client.close()
        assert client.done_task.done()
        assert (client.connected, client.should_be_connected) == (False, False)
        await server.close()


@deadline()
async def test_client_closed_while_connecting(log: logging.Logger) -> None:
    """close() from another task while run() is still in the connect
    callback: start() either fails with ConnectionError or returns; either
    way everything ends and both callbacks ran."""
    callback = HeldCallback()
    async with anyio.create_task_group() as tg:
        server = await start_server(tg, log)
        client = make_client(server, log, connect_callback=callback)
        outcome: list[str] = []

        async def start_client() -> None:
            try:
                await tg.start(client.run)
                outcome.append("started")
            except ConnectionError:
                outcome.append("failed")

        tg.start_soon(start_client)
        await callback.entered.wait()
        async with anyio.create_task_group() as closers:
            closers.start_soon(client.close)
            await anyio.wait_all_tasks_blocked()
            callback.release.set()
        assert client.done_task.done()
        assert callback.seen == [True, False]
        await server.close()
    assert len(outcome) == 1


@deadline()
async def test_server_closed_while_waiting_for_a_client(log: logging.Logger) -> None:
    """A server started with run() and never connected to closes at once,
    and its port is free again."""
    async with anyio.create_task_group() as tg:
        server = await start_server(tg, log)
        port = server.port
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(NET_TIMEOUT):
            await server.close()
        assert server.done_task.done()
    with pytest.raises(OSError, match="connection attempts failed"):
        await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, port)


@deadline()
async def test_server_run_accepts_on_every_listener(log: logging.Logger) -> None:
    """host=None binds one listener per address family; with run() the first
    is served by run()'s own task and the others by tasks: clients come in on
    each, one after the other."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    hosts = [anytcpip.LOCALHOST_IPV4]
    if has_ipv6():
        hosts.append(anytcpip.LOCALHOST_IPV6)
    async with anyio.create_task_group() as tg:
        server = anytcpip.OneClientServer(host=None, port=0, log=log, connect_callback=recorder)
        await tg.start(server.run)
        # Each family in both orders, so that whichever listener is first
        # is exercised before and after the other.
        for host in hosts + hosts[::-1]:
            async with anytcpip.Client(host=host, port=server.port, log=log) as client:
                await recorder.assert_next(True)
                await check_read_write(reader=server, writer=client)
                await check_read_write(reader=client, writer=server)
            await recorder.assert_next(False)
        await server.close()


@pytest.mark.parametrize("form", ["run", "async with"])
@deadline()
async def test_in_process_server_has_accepted_once_the_client_is_started(
    form: str, log: logging.Logger
) -> None:
    """As with ts_tcpip: once a client on loopback says it is connected, a
    server in the same process has accepted it, so a test may read from the
    server at once without awaiting its ``connected_task`` first. Not a
    promise about a remote server; a margin kept on purpose (see _sockets)."""
    for i in range(20):
        async with anyio.create_task_group() as tg:
            server = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log)
            await tg.start(server.run)
            client = make_client(server, log)
            if form == "run":
                await tg.start(client.run)
            else:
                await client.__aenter__()
            assert server.connected, f"try {i}: not accepted yet"
            await client.write_str(f"at once {i}")
            assert await server.read_str() == f"at once {i}"
            # The server first: a client leaving first would leave it in the
            # half-close grace (0.1 s) each time.
            await server.close()
            if form == "run":
                await client.close()
            else:
                await client.__aexit__(None, None, None)
