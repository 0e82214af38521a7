"""Lifecycle under structured concurrency (docs/lifecycle.rst) and connection state
(section 4)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, ServerAndClient, deadline, is_connected, make_server


def make_client(port: int, log: logging.Logger, **kwargs: Any) -> anytcpip.Client:
    return anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=port, log=log, **kwargs)


def test_oneshot_outside_an_event_loop() -> None:
    event = anytcpip.OneShot("x")
    assert not event.done()
    with pytest.raises(RuntimeError):
        event.result()
    with pytest.raises(RuntimeError):
        event.exception()
    event.set()
    assert event.done()
    event.result()
    assert event.exception() is None
    event.set_exception(ValueError("ignored: already done"))
    assert event.exception() is None

    failed = anytcpip.OneShot()
    error = OSError("boom")
    failed.set_exception(error)
    assert failed.done()
    assert failed.exception() is error
    with pytest.raises(OSError, match="boom"):
        failed.result()


@deadline()
async def test_oneshot_awaited_by_several_tasks() -> None:
    event = anytcpip.OneShot()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await event
        woken.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(waiter, i)
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        event.set()
    assert sorted(woken) == [0, 1, 2]
    await event  # done: returns at once


async def test_constructors_start_nothing(log: logging.Logger) -> None:
    server = make_server(log)
    client = make_client(1, log)
    for obj in (server, client):
        assert not obj.start_task.done()
        assert not obj.done_task.done()
        assert not obj.connected
        assert not obj.should_be_connected
    assert server.port == 0


@deadline()
async def test_scoped_form(log: logging.Logger) -> None:
    server = make_server(log)
    async with server:
        assert server.start_task.done()
        assert not server.done_task.done()
        client = make_client(server.port, log)
        async with client:
            assert client.start_task.done()
            assert not client.done_task.done()
            await server.connected_task
        assert client.done_task.done()
        assert not client.connected
    assert server.done_task.done()
    assert not server.connected


@deadline()
async def test_owned_form_closed_from_another_task(log: logging.Logger) -> None:
    server_callback = ConnectRecorder(timeout=NET_TIMEOUT)
    client_callback = ConnectRecorder(timeout=NET_TIMEOUT)
    server = make_server(log, connect_callback=server_callback)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        assert server.start_task.done()
        client = make_client(server.port, log, connect_callback=client_callback)
        await tg.start(client.run)
        assert client.connected
        await server_callback.assert_next(True)
        await client_callback.assert_next(True)

        async def close_both() -> None:
            await client.close()
            await server.close()

        async with anyio.create_task_group() as other:
            other.start_soon(close_both)
        # run() of both has returned: the task group can finish.
    assert client.done_task.done()
    assert server.done_task.done()
    assert client_callback.states == [True, False]
    assert server_callback.states == [True, False]


@deadline()
async def test_done_task_awaited_by_another_task(log: logging.Logger) -> None:
    server = make_server(log)
    order: list[str] = []
    async with anyio.create_task_group() as tg:

        async def watcher() -> None:
            await server.start_task
            order.append("started")
            await server.done_task
            order.append("done")

        tg.start_soon(watcher)
        await anyio.wait_all_tasks_blocked()
        assert order == []
        await tg.start(server.run)
        await anyio.wait_all_tasks_blocked()
        assert order == ["started"]
        await server.close()
    assert order == ["started", "done"]


@deadline()
async def test_close_is_idempotent_and_concurrent(server_and_client: ServerAndClient) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    async with server_and_client(scoped=True, client_kwargs={"connect_callback": callback}) as (
        server,
        client,
    ):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(client.close)
                tg.start_soon(client.basic_close)
                tg.start_soon(server.close_client)
        assert client.done_task.done()
        await client.close()
        assert callback.states == [True, False]
        await server.close()
        await server.close()
        assert server.done_task.done()


async def test_close_before_start(log: logging.Logger) -> None:
    for obj in (make_server(log), make_client(1, log)):
        await obj.close()
        assert obj.done_task.done()
        assert not obj.connected
        await obj.close()


@pytest.mark.parametrize("side", ["client", "server"])
@deadline()
async def test_close_from_inside_the_connect_callback(side: str, log: logging.Logger) -> None:
    states: list[bool] = []

    async def callback(obj: anytcpip.BaseClientOrServer) -> None:
        states.append(obj.connected)
        assert isinstance(obj, anytcpip.Client | anytcpip.OneClientServer)
        if obj.connected:
            await obj.close()
            # From inside, close() starts the close and returns.
            assert not obj.connected

    if side == "client":
        async with make_server(log) as server:
            client = make_client(server.port, log, connect_callback=callback)
            async with client:
                await client.done_task
            assert not client.connected
    else:
        server = make_server(log, connect_callback=callback)
        async with server:
            async with make_client(server.port, log):
                await server.done_task
            assert not server.connected
    assert states == [True, False]


class MyError(Exception):
    pass


async def raise_in_client_body(
    server: anytcpip.OneClientServer, log: logging.Logger
) -> anytcpip.Client:
    client = make_client(server.port, log)
    try:
        async with client:
            await server.connected_task
            raise MyError("from the client body")
    finally:
        assert client.done_task.done()


async def raise_in_server_body(log: logging.Logger) -> None:
    async with make_server(log) as server:
        with pytest.raises(MyError) as info:
            await raise_in_client_body(server, log)
        assert type(info.value) is MyError
        assert str(info.value) == "from the client body"
        raise MyError("from the server body")


@deadline()
async def test_user_error_in_body_comes_out_unchanged(log: logging.Logger) -> None:
    with pytest.raises(MyError) as info:
        await raise_in_server_body(log)
    assert type(info.value) is MyError
    assert str(info.value) == "from the server body"


@deadline()
async def test_cancelled_body_closes_everything(log: logging.Logger) -> None:
    with anyio.CancelScope() as scope:
        async with make_server(log) as server, make_client(server.port, log) as client:
            await server.connected_task
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert server.done_task.done()
    assert client.done_task.done()
    assert not client.connected
    assert not server.connected


@deadline()
async def test_cancelling_the_owning_task_group(log: logging.Logger) -> None:
    """Cancelling the task group the objects run in closes them, and the
    callback still sees the disconnection (calls strictly alternate)."""
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    server = make_server(log)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        client = make_client(server.port, log, connect_callback=callback)
        await tg.start(client.run)
        await server.connected_task
        tg.cancel_scope.cancel()
    assert server.done_task.done()
    assert client.done_task.done()
    assert not client.connected
    assert callback.states == [True, False]


@deadline()
async def test_close_from_a_cancelled_scope(server_and_client: ServerAndClient) -> None:
    async with server_and_client(scoped=True) as (server, client):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await client.close()
            await server.close_client()
        assert client.done_task.done()
        assert not client.connected
        assert not server.connected


@deadline()
async def test_close_wakes_blocked_reader_and_writer(server_and_client: ServerAndClient) -> None:
    errors: list[BaseException] = []
    async with server_and_client(scoped=True, client_kwargs={"linger": 0.2}) as (
        _,
        client,
    ):

        async def read() -> None:
            try:
                await client.read_str()
            except Exception as exc:
                errors.append(exc)

        async def write_until_blocked() -> None:
            # The server never reads: the writes end up waiting.
            try:
                while True:
                    await client.write(b"x" * 65536)
            except Exception as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(write_until_blocked)
            await anyio.wait_all_tasks_blocked()
            await client.close()
        assert len(errors) == 2
        assert all(isinstance(e, ConnectionError) for e in errors), errors


@deadline()
async def test_close_bounded_when_peer_never_reads(log: logging.Logger) -> None:
    """A peer that never reads (and never closes) holds close() for about
    ``linger`` seconds, not forever."""
    # A plain socket: an anyio stream on asyncio would read (and buffer)
    # everything in the background, and writes would never block.
    with socket.socket() as listener:
        listener.bind((anytcpip.LOCALHOST_IPV4, 0))
        listener.listen(1)
        client = make_client(listener.getsockname()[1], log, linger=0.5)
        async with anyio.create_task_group() as tg:
            await tg.start(client.run)
            peer, _ = listener.accept()  # the kernel completed the handshake
            with peer:

                async def flood() -> None:
                    try:
                        while True:
                            await client.write(b"y" * 65536)
                    except ConnectionError:
                        pass

                tg.start_soon(flood)
                await anyio.wait_all_tasks_blocked()
                start = anyio.current_time()
                await client.close()
                elapsed = anyio.current_time() - start
        assert client.done_task.done()
        assert elapsed < 5, f"close took {elapsed:.2f} s with linger=0.5"


@deadline(60)
async def test_connect_close_cycles_leak_nothing(log: logging.Logger) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    cycles = 200
    async with make_server(log, connect_callback=callback) as server:
        for i in range(cycles):
            async with make_client(server.port, log) as client:
                if i % 2:
                    await client.write_str("hi")
            await callback.assert_next(True)
            await callback.assert_next(False)
    assert callback.states == [True, False] * cycles


@deadline()
async def test_callback_error_is_logged(
    server_and_client: ServerAndClient, caplog: pytest.LogCaptureFixture
) -> None:
    callback = ConnectRecorder(timeout=NET_TIMEOUT)
    callback.raise_error = True
    async with server_and_client(scoped=True, client_kwargs={"connect_callback": callback}) as (
        server,
        client,
    ):
        await callback.assert_next(True)
        assert is_connected(client)
        await client.write_str("fine")
        assert await server.read_str() == "fine"
    assert callback.states == [True, False]
    logged = [str(r.exc_info[1]) for r in caplog.records if r.exc_info is not None]
    assert "connect_callback raising on purpose" in logged


@deadline()
async def test_close_here_discards_unread_data(server_and_client: ServerAndClient) -> None:
    async with server_and_client(scoped=True) as (server, client):
        await server.write(b"ab\r\ncd\r\n")
        assert await client.readexactly(4) == b"ab\r\n"
        await client.close()
        with pytest.raises(ConnectionError):
            await client.read_str()
        with pytest.raises(ConnectionError):
            await client.read(1)


def test_one_shot_done_callbacks_added_removed_and_called_once() -> None:
    """What asyncio.wait relies on: callbacks are called once, when it is
    done (at once if it already is), and removing one takes every
    registration of it (none yet: 0)."""
    shot = anytcpip.OneShot("shot")
    assert shot.remove_done_callback(print) == 0
    removed: list[anytcpip.OneShot] = []
    kept: list[anytcpip.OneShot] = []
    shot.add_done_callback(removed.append)
    shot.add_done_callback(kept.append)
    shot.add_done_callback(removed.append)
    assert shot.remove_done_callback(removed.append) == 2
    assert shot.remove_done_callback(removed.append) == 0
    shot.set()
    shot.set()
    assert kept == [shot]
    assert removed == []
    late: list[anytcpip.OneShot] = []
    shot.add_done_callback(late.append)
    assert late == [shot]
    assert shot.remove_done_callback(late.append) == 0


async def test_connection_tasks_count_only_what_started(anyio_backend: Any) -> None:
    """A task the object's group refuses (it has finished) is not counted as
    running: waiting for the connection's tasks to end must not hang on it."""
    from anytcpip._serving import ConnectionTasks

    async with anyio.create_task_group() as finished:
        pass
    tasks = ConnectionTasks(finished)
    with pytest.raises(RuntimeError):
        tasks.start_soon(anyio.sleep, 0)
    assert tasks.running == 0
    with anyio.fail_after(5):
        await tasks.wait_ended()
