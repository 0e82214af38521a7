"""OneClientReadLoopServer, TestOneClientReadLoopServer and heartbeats."""

from __future__ import annotations

import json
import logging

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import ServerAndClient, deadline


class EchoServer(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        await self.write_str(await self.read_str())


@deadline(10)
async def test_echo_read_loop(log: logging.Logger) -> None:
    recorder = ConnectRecorder()
    async with EchoServer(port=0, log=log, connect_callback=recorder.callback) as server:
        for _ in range(2):  # the loop serves each new client
            async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
                await recorder.assert_next(True)
                for text in ("some data", "more data", "yet more data"):
                    await client.write_str(text)
                    assert await client.read_str() == text
            await recorder.assert_next(False)
            assert server.should_be_connected


class JsonServer(anytcpip.OneClientReadLoopServer):
    """Replies to each JSON message; reports bad ones instead of failing."""

    async def read_and_dispatch(self) -> None:
        try:
            data = await self.read_json()
        except json.JSONDecodeError as exc:
            await self.write_json({"error": "bad json", "detail": str(exc)[:40]})
            return
        except anytcpip.LimitOverrunError:
            await self.write_json({"error": "too long"})
            return
        await self.write_json({"echo": data})


@deadline(10)
async def test_bad_messages_handled_by_subclass_keep_the_client(
    server_and_client: ServerAndClient,
) -> None:
    recorder = ConnectRecorder()
    async with server_and_client(
        server_class=JsonServer,
        server_kwargs={"connect_callback": recorder.callback, "limit": 1000},
    ) as (server, client):
        await recorder.assert_next(True)
        await client.write(b"{not json\r\n")
        assert (await client.read_json())["error"] == "bad json"
        await client.write(b"[" * 5000 + b"\r\n")
        assert (await client.read_json())["error"] == "too long"
        await client.write(b'"' + b"x" * 998 + b'"\r\n')  # exactly the limit
        assert (await client.read_json()) == {"echo": "x" * 998}
        await client.write_json({"n": 1})
        assert await client.read_json() == {"echo": {"n": 1}}
        assert server.connected
        assert recorder.pending == 0


class FailingServer(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        if line == "boom":
            raise ValueError("boom")
        await self.write_str(line)


@deadline(10)
async def test_read_and_dispatch_raising_closes_client_and_keeps_serving(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = ConnectRecorder()
    async with FailingServer(port=0, log=log, connect_callback=recorder.callback) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await recorder.assert_next(True)
            await client.write_str("boom")
            await recorder.assert_next(False)
            assert not server.should_be_connected
            # The client sees the server close its end.
            with pytest.raises((anytcpip.IncompleteReadError, ConnectionError)):
                await client.read_str()
        assert "read_and_dispatch failed" in caplog.text
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await recorder.assert_next(True)
            await client.write_str("still here")
            assert await client.read_str() == "still here"


class ClosingServer(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        if line == "close_client":
            await self.close_client()
        elif line == "close":
            await self.close()
        else:
            await self.write_str(line)


@pytest.mark.parametrize("command", ["close_client", "close"])
@deadline(10)
async def test_close_from_inside_read_and_dispatch(
    server_and_client: ServerAndClient, command: str
) -> None:
    recorder = ConnectRecorder()
    async with server_and_client(
        server_class=ClosingServer, server_kwargs={"connect_callback": recorder.callback}
    ) as (server, client):
        await recorder.assert_next(True)
        await client.write_str(command)
        await recorder.assert_next(False)
        if command == "close":
            await server.done_task
            assert server.done_task.done()
        else:
            assert not server.done_task.done()
        assert not server.should_be_connected
    assert recorder.history == [True, False]


@deadline(10)
async def test_user_exception_in_async_with_comes_out_unchanged(log: logging.Logger) -> None:
    server = EchoServer(port=0, log=log)

    async def body() -> None:
        async with server, anytcpip.Client(host=server.host, port=server.port, log=log):
            await server.connected_task
            raise KeyError("mine")

    with pytest.raises(KeyError) as info:
        await body()
    assert info.value.args == ("mine",)
    assert server.done_task.done()


# ----------------------------------------------------------------- heartbeats


@deadline(10)
async def test_heartbeats_keep_the_client(server_and_client: ServerAndClient) -> None:
    recorder = ConnectRecorder()
    async with server_and_client(
        server_class=anytcpip.TestOneClientReadLoopServer,
        server_kwargs={
            "connect_callback": recorder.callback,
            "run_heartbeat_monitor_task": True,
            "max_heartbeat_interval": 0.3,
        },
        client_kwargs={"run_heartbeat_send_task": True, "heartbeat_send_sleep": 0.05},
    ) as (server, client):
        await recorder.assert_next(True)
        # Several times the allowed silence, with heartbeats flowing.
        for i in range(10):
            await client.write_str(f"data {i}")
            assert await server.get_next_data() == f"data {i}"
            await anyio.sleep(0.1)
        assert server.connected
        assert recorder.pending == 0


@pytest.mark.parametrize("send_some", [False, True], ids=["never", "then_silence"])
@deadline(10)
async def test_heartbeat_silence_drops_the_client(log: logging.Logger, send_some: bool) -> None:
    recorder = ConnectRecorder()
    interval = 0.2
    async with anytcpip.TestOneClientReadLoopServer(
        port=0,
        log=log,
        connect_callback=recorder.callback,
        run_heartbeat_monitor_task=True,
        max_heartbeat_interval=interval,
    ) as server:
        # The monitor counts from the server's connect, which comes after
        # this: the clock of the lower bound starts no later than it.
        start = anyio.current_time()
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await recorder.assert_next(True)
            if send_some:
                for _ in range(3):
                    await anyio.sleep(interval / 4)
                    await client.write(anytcpip.HEARTBEAT + client.terminator)
                    start = anyio.current_time()
            await recorder.assert_next(False, timeout=5)
            elapsed = anyio.current_time() - start
            assert elapsed >= interval * 0.9
            # As in ts_tcpip, the monitor drops the client with
            # close_client(): should_be_connected becomes False.
            assert not server.should_be_connected
            with pytest.raises((anytcpip.IncompleteReadError, ConnectionError)):
                await client.read_str()


@deadline(10)
async def test_heartbeat_count_starts_fresh_for_each_client(log: logging.Logger) -> None:
    """The original kept the last heartbeat time across clients; a client that
    connects long after the previous one's last heartbeat must not be dropped
    at once."""
    recorder = ConnectRecorder()
    interval = 0.4
    async with anytcpip.TestOneClientReadLoopServer(
        port=0,
        log=log,
        connect_callback=recorder.callback,
        run_heartbeat_monitor_task=True,
        max_heartbeat_interval=interval,
    ) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await recorder.assert_next(True)
            await client.write(anytcpip.HEARTBEAT + client.terminator)
            await client.write_str("first")
            assert await server.get_next_data() == "first"
            # Let the server's read loop get back to waiting before leaving,
            # so that the next line is certain to see that read end.
            await anyio.wait_all_tasks_blocked()
        await recorder.assert_next(False)
        # The read that was waiting when the client left queued "".
        assert await server.get_next_data() == ""
        await anyio.sleep(interval * 1.5)  # longer than the allowed silence
        # Taken before connecting: the server's count cannot start earlier,
        # however late this task is woken once connected.
        connected_at = anyio.current_time()
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await recorder.assert_next(True)
            await client.write_str("second")
            assert await server.get_next_data() == "second"
            await recorder.assert_next(False, timeout=5)
            assert anyio.current_time() - connected_at >= interval * 0.9


@deadline(10)
async def test_heartbeat_with_monitoring_off_drops_the_client(
    server_and_client: ServerAndClient,
) -> None:
    recorder = ConnectRecorder()
    async with server_and_client(
        server_class=anytcpip.TestOneClientReadLoopServer,
        server_kwargs={"connect_callback": recorder.callback},
        client_kwargs={"run_heartbeat_send_task": True, "heartbeat_send_sleep": 0.05},
    ) as (server, _):
        await recorder.assert_next(True)
        await recorder.assert_next(False)
        assert not server.should_be_connected
    assert recorder.history == [True, False]


@deadline(10)
async def test_fail_next_read(server_and_client: ServerAndClient) -> None:
    recorder = ConnectRecorder()
    async with server_and_client(
        server_class=anytcpip.TestOneClientReadLoopServer,
        server_kwargs={"connect_callback": recorder.callback},
    ) as (server, client):
        await recorder.assert_next(True)
        await client.write_str("one")
        assert await server.get_next_data() == "one"
        server.fail_next_read = True
        await client.write_str("two")  # the read that fails drops the client
        await recorder.assert_next(False)
        assert not server.fail_next_read


@deadline(20)
async def test_heartbeats_never_split_user_messages(server_and_client: ServerAndClient) -> None:
    """10 tasks write while heartbeats go out every 5 ms: every line the server
    reads is a heartbeat or an intact message."""
    n_tasks, n_messages = 10, 200
    client_kwargs = {"run_heartbeat_send_task": True, "heartbeat_send_sleep": 0.005}
    async with server_and_client(client_kwargs=client_kwargs) as (server, client):

        async def writer(task: int) -> None:
            for i in range(n_messages):
                await client.write_json({"task": task, "i": i, "pad": "x" * (i % 50)})
                if i % 20 == 0:
                    await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            for task in range(n_tasks):
                tg.start_soon(writer, task)
        seen: dict[int, list[int]] = {t: [] for t in range(n_tasks)}
        heartbeats = 0
        while sum(len(v) for v in seen.values()) < n_tasks * n_messages:
            line = await server.read_str()
            if line == anytcpip.HEARTBEAT.decode():
                heartbeats += 1
                continue
            message = json.loads(line)
            assert message["pad"] == "x" * (message["i"] % 50)
            seen[message["task"]].append(message["i"])
        assert all(v == list(range(n_messages)) for v in seen.values())
        assert heartbeats >= 1
