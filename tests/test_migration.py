"""ts_tcpip code moving over (issue 11): each item tested the way downstream
code is written, on every backend where it applies."""

# Written in unittest style on purpose, as the code that moves over is.
# ruff: noqa: PT009, PT027

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
import unittest
from typing import Any, cast

import anyio
import anyio.abc
import pytest

import anytcpip
from anytcpip.testing import ALL_BACKENDS, BaseOneClientServerTestCase, ConnectRecorder
from helpers import NET_TIMEOUT, deadline, receive_exactly

# ----------------------------------------------------------------- item 1


class CommandServer(anytcpip.OneClientReadLoopServer):
    """Replies ``ok <command>`` to each command; ``boom`` logs a warning."""

    async def read_and_dispatch(self) -> None:
        command = await self.read_str()
        if command == "boom":
            self.log.warning("boom received")
        await self.write_str(f"ok {command}")


class CommandServerTestCase(BaseOneClientServerTestCase[CommandServer]):
    """Written as ts_tcpip users write theirs: asyncSetUp, self.assert*,
    subTest, assertLogs, enterAsyncContext; here on every backend."""

    server_class = CommandServer
    anyio_backends = ALL_BACKENDS

    def setUp(self) -> None:
        self.set_up_ran = True

    async def asyncSetUp(self) -> None:
        self.setup_task = anyio.get_current_task().id
        self.server = await self.enterAsyncContext(
            self.create_server(connect_callback=self.connect_callback)
        )
        self.client = await self.enterAsyncContext(self.create_client(self.server))

    async def asyncTearDown(self) -> None:
        # Same task as asyncSetUp: what it entered can be exited here.
        self.assertEqual(anyio.get_current_task().id, self.setup_task)
        await self.client.close()

    async def test_commands(self) -> None:
        self.assertTrue(self.set_up_ran)
        self.assertEqual(anyio.get_current_task().id, self.setup_task)
        await self.assert_next_connected(True)
        for command in ("move", "stop"):
            with self.subTest(command=command):
                await self.client.write_str(command)
                self.assertEqual(await self.client.read_str(), f"ok {command}")
        await self.client.close()
        await self.assert_next_connected(False)

    async def test_logs(self) -> None:
        with self.assertLogs(self.server.log, logging.WARNING):
            await self.client.write_str("boom")
            self.assertEqual(await self.client.read_str(), "ok boom")

    def test_backend_is_the_one_asked_for(self) -> None:
        self.assertIn(self.anyio_backend, ["asyncio", "asyncio+uvloop", "trio"])


def _run_case(case_class: type[unittest.TestCase]) -> unittest.TestResult:
    suite = unittest.TestLoader().loadTestsFromTestCase(case_class)
    result = unittest.TestResult()
    suite.run(result)
    return result


def test_drop_in_runs_each_test_on_each_backend() -> None:
    names = unittest.TestLoader().getTestCaseNames(CommandServerTestCase)
    backends = [p.id for p in anytcpip.testing.available_backends()]
    assert len(names) == 3 * len(backends)
    if "trio" in backends:
        assert "test_commands__trio" in names


def test_drop_in_defaults_to_asyncio_and_reports_outcomes() -> None:
    events: list[str] = []

    class OutcomesTestCase(BaseOneClientServerTestCase):
        server_class = anytcpip.OneClientServer

        async def asyncSetUp(self) -> None:
            events.append(f"setup {self.anyio_backend} {_library()}")

        async def asyncTearDown(self) -> None:
            events.append("teardown")

        async def test_fails(self) -> None:
            self.assertEqual(1, 2)

        async def test_passes(self) -> None:
            self.addAsyncCleanup(_append, events, "async cleanup")

        async def test_skips(self) -> None:
            self.skipTest("not today")

    result = _run_case(OutcomesTestCase)
    assert result.testsRun == 3
    assert [t.id().rsplit(".", 1)[1] for t, _ in result.failures] == ["test_fails"]
    assert result.errors == []
    assert len(result.skipped) == 1
    assert events.count("setup asyncio asyncio") == 3
    assert events.count("teardown") == 3  # as unittest does, even after a skip
    assert "async cleanup" in events


def test_drop_in_async_setup_error_is_reported() -> None:
    class BrokenSetUpTestCase(BaseOneClientServerTestCase):
        server_class = anytcpip.OneClientServer

        async def asyncSetUp(self) -> None:
            raise RuntimeError("setup broke")

        async def test_never_runs(self) -> None:
            raise AssertionError("must not run")  # pragma: no cover

    result = _run_case(BrokenSetUpTestCase)
    assert len(result.errors) == 1
    assert "setup broke" in result.errors[0][1]


def test_drop_in_rejects_unknown_backend() -> None:
    with pytest.raises(TypeError, match="anyio_backends"):

        class WrongTestCase(BaseOneClientServerTestCase):
            anyio_backends = ("curio",)


def test_drop_in_collected_by_pytest_whatever_its_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mock="""
import anytcpip


class MockTestCase(anytcpip.BaseOneClientServerTestCase):
    server_class = anytcpip.OneClientServer

    async def test_connect(self):
        async with self.create_server(connect_callback=self.connect_callback) as server:
            async with self.create_client(server) as client:
                await self.assert_next_connected(True)
                await client.write(b"x")
                self.assertEqual(await server.readexactly(1), b"x")
            await self.assert_next_connected(False)

    def test_sync(self):
        self.assertIsNotNone(self.log)
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


async def _append(events: list[str], item: str) -> None:
    await anyio.lowlevel.checkpoint()
    events.append(item)


def _library() -> str:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "trio"
    return "asyncio"


# ----------------------------------------------------------------- item 2


def test_start_override_is_rejected_at_class_definition() -> None:
    with pytest.raises(TypeError, match=r"start\(\).*start_connection_soon"):

        class TelemetryClient(anytcpip.Client):
            async def start(self) -> None:
                pass  # pragma: no cover


def test_heartbeat_monitor_override_is_rejected() -> None:
    with pytest.raises(TypeError, match="handle_received_heartbeat"):

        class Server(anytcpip.OneClientReadLoopServer):
            async def read_and_dispatch(self) -> None:
                pass  # pragma: no cover

            async def monitor_received_heartbeats(self) -> None:
                pass  # pragma: no cover


def test_ts_tcpip_task_attributes_say_what_to_use(log: logging.Logger) -> None:
    server = anytcpip.TestOneClientReadLoopServer(port=0, log=log)
    with pytest.raises(AttributeError, match="close_client"):
        server.read_loop_task  # noqa: B018
    with pytest.raises(AttributeError, match="run_heartbeat_monitor_task"):
        server.monitor_heartbeats_task  # noqa: B018
    with pytest.raises(AttributeError, match="handle_received_heartbeat"):
        server.heartbeat_received_tai  # noqa: B018
    client = anytcpip.Client(host="", port=None, log=log)
    with pytest.raises(AttributeError, match="run_heartbeat_send_task"):
        client.heartbeat_send_task  # noqa: B018
    # A subclass may still use the names for its own things.
    server.read_loop_task = 3
    assert server.read_loop_task == 3


class GreetingController(anytcpip.OneClientReadLoopServer):
    """Greets each client from an overridden read_loop (as ts_atdome does)."""

    async def read_loop(self) -> None:
        await self.write_str("ACE Main Box")
        await self.write(b">")
        await super().read_loop()

    async def read_and_dispatch(self) -> None:
        command = await self.read_str()
        await self.write_str(command.upper())
        await self.write(b">")


@deadline(10)
async def test_read_loop_override_is_honoured(log: logging.Logger) -> None:
    async with GreetingController(port=0, log=log, terminator=b"\n") as server:
        for _ in range(2):  # each client is greeted
            async with anytcpip.Client(
                host=server.host, port=server.port, log=log, terminator=b"\n"
            ) as client:
                assert await client.readuntil(b">") == b"ACE Main Box\n>"
                await client.write_str("st")
                assert await client.readuntil(b">") == b"ST\n>"


# ----------------------------------------------------------------- item 3


class CleanupController(anytcpip.OneClientReadLoopServer):
    """Puts cleanup in close() and close_client(), as ts_hexrotcomm does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    async def read_and_dispatch(self) -> None:
        command = await self.read_str()
        if command == "fail":
            raise RuntimeError("command failed")
        if command == "heartbeat":
            await self.handle_received_heartbeat()

    async def close_client(self, cancel_read_loop_task: bool = True) -> None:
        self.calls.append("close_client")
        await super().close_client(cancel_read_loop_task)

    async def close(self) -> None:
        self.calls.append("close")
        await super().close()


class CleanupClient(anytcpip.Client):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.close_calls = 0

    async def close(self) -> None:
        self.close_calls += 1
        await super().close()


@deadline(10)
async def test_leaving_async_with_calls_overridden_close_once(log: logging.Logger) -> None:
    async with CleanupController(port=0, log=log) as server:
        async with CleanupClient(host=server.host, port=server.port, log=log) as client:
            await server.connected_task
    assert client.close_calls == 1
    # ts_tcpip's close() calls close_client().
    assert server.calls == ["close", "close_client"]


@deadline(10)
async def test_explicit_close_is_not_repeated_on_exit(log: logging.Logger) -> None:
    async with CleanupController(port=0, log=log) as server:
        await server.close()
        await server.close()
    assert server.calls == ["close", "close_client"] * 2


@deadline(10)
async def test_run_ending_by_cancellation_calls_close(log: logging.Logger) -> None:
    async with anyio.create_task_group() as tg:
        server = CleanupController(port=0, log=log)
        await tg.start(server.run)
        client = CleanupClient(host=server.host, port=server.port, log=log)
        await tg.start(client.run)
        await server.connected_task
        tg.cancel_scope.cancel()
    assert client.close_calls == 1
    assert server.calls == ["close", "close_client"]
    assert server.done_task.done()


@deadline(10)
async def test_read_loop_error_and_heartbeat_silence_call_close_client(
    log: logging.Logger,
) -> None:
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with CleanupController(
        port=0,
        log=log,
        connect_callback=recorder,
        run_heartbeat_monitor_task=True,
        max_heartbeat_interval=0.3,
    ) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await recorder.assert_next(True)
            await client.write_str("fail")
            await recorder.assert_next(False)
        assert server.calls == ["close_client"]
        async with anytcpip.Client(host=server.host, port=server.port, log=log):
            await recorder.assert_next(True)
            await recorder.assert_next(False)  # silent: the monitor drops it
        assert server.calls == ["close_client"] * 2


# ----------------------------------------------------------------- item 4


@deadline(10)
async def test_awaiting_an_object_nobody_runs_fails_fast(log: logging.Logger) -> None:
    server = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log)
    start = anyio.current_time()
    with pytest.raises(RuntimeError, match=r"async with obj:.*obj\.run"):
        await server.start_task
    assert anyio.current_time() - start < 3


@deadline(20)
async def test_awaiting_connected_task_before_start_warns_and_waits(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """connected_task / done_task awaited before a legitimate later start:
    a warning naming the fix (once), and the wait goes on."""
    server = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log)
    connected = anyio.Event()
    closed = anyio.Event()

    async def wait_for(task: anytcpip.OneShot, event: anyio.Event) -> None:
        await task
        event.set()

    def warnings() -> list[logging.LogRecord]:
        return [
            r for r in caplog.records if r.levelno == logging.WARNING and "obj.run" in r.message
        ]

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for, server.connected_task, connected)
        tg.start_soon(wait_for, server.done_task, closed)
        tg.start_soon(wait_for, server.connected_task, connected)
        while len(warnings()) < 2:
            await anyio.sleep(0.05)
        await tg.start(server.run)
        async with anytcpip.Client(host=server.host, port=server.port, log=log):
            await connected.wait()
        await server.close()
        await closed.wait()
    # One warning per OneShot (two waiters on connected_task, one on done_task).
    messages = [r.message for r in warnings()]
    assert len(messages) == 2, messages
    assert any("connected_task" in m for m in messages)
    assert any("done_task" in m for m in messages)


@deadline(10)
async def test_start_soon_then_await_start_task_still_works(log: logging.Logger) -> None:
    async with anyio.create_task_group() as tg:
        server = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log)
        tg.start_soon(server.run)
        await server.start_task
        assert server.port != 0
        await server.close()


# ----------------------------------------------------------------- item 5


class TelemetryController(anytcpip.OneClientReadLoopServer):
    """Starts a telemetry loop from its connect callback (as ts_hexrotcomm's
    mock controller does with asyncio.create_task)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(connect_callback=self.on_connect, **kwargs)
        self.loops_started = 0
        self.loops_running = 0
        self.running_at_connect: list[int] = []
        self.background_beats = 0

    async def on_connect(self, server: anytcpip.BaseClientOrServer) -> None:
        if self.connected:
            # The previous client's loop is gone before the next is served.
            self.running_at_connect.append(self.loops_running)
            self.start_connection_soon(self.telemetry_loop, self.loops_started)

    async def telemetry_loop(self, number: int) -> None:
        self.loops_started += 1
        self.loops_running += 1
        try:
            while True:
                await self.write_str(f"telemetry {number}")
                await anyio.sleep(0.01)
        finally:
            self.loops_running -= 1

    async def read_and_dispatch(self) -> None:
        command = await self.read_str()
        if command == "crash":
            self.start_soon(self.crash)
        elif command == "beat":
            self.start_soon(self.beat)

    async def crash(self) -> None:
        raise ValueError("crash on purpose")

    async def beat(self) -> None:
        while True:
            self.background_beats += 1
            await anyio.sleep(0.01)


@deadline(10)
async def test_tasks_started_from_the_connect_callback(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    async with TelemetryController(port=0, log=log) as server:
        for number in range(2):
            async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
                assert await client.read_str() == f"telemetry {number}"
                assert await client.read_str() == f"telemetry {number}"
                await client.write_str("crash")
                await client.write_str("beat")
                assert await client.read_str() == f"telemetry {number}"
        assert server.running_at_connect == [0, 0]
        assert server.loops_started == 2
        with anyio.fail_after(5):
            while server.loops_running:
                await anyio.sleep(0.01)
        # A start_soon task outlives the connection, until close().
        beats = server.background_beats
        while server.background_beats < beats + 3:
            await anyio.sleep(0.01)
        with pytest.raises(ConnectionError):
            server.start_connection_soon(server.telemetry_loop, 9)
    with pytest.raises(RuntimeError, match="not running"):
        server.start_soon(server.beat)
    assert "crash on purpose" in caplog.text


# ----------------------------------------------------------------- item 6


class EchoController(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        await self.write_str(await self.read_str())


class IsolatedAsyncioStyleTestCase(unittest.IsolatedAsyncioTestCase):
    """A real IsolatedAsyncioTestCase holding objects across asyncSetUp and
    asyncTearDown, which run in different tasks."""

    async def asyncSetUp(self) -> None:
        log = logging.getLogger("anytcpip.test")
        self.server = await anytcpip.start_in_background(EchoController(port=0, log=log))
        background = anytcpip.run_in_background(
            anytcpip.Client(host=self.server.host, port=self.server.port, log=log)
        )
        if sys.version_info >= (3, 11):
            self.client = await self.enterAsyncContext(background)
        else:  # pragma: no cover
            self.client = await background.__aenter__()
            self.addAsyncCleanup(background.__aexit__, None, None, None)
        await asyncio.wait_for(self.server.connected_task, timeout=5)

    async def asyncTearDown(self) -> None:
        await self.server.close()

    async def test_echo(self) -> None:
        await self.client.write_str("hi")
        self.assertEqual(await asyncio.wait_for(self.client.read_str(), 5), "hi")

    async def test_failed_start_raises(self) -> None:
        log = logging.getLogger("anytcpip.test")
        with socket.socket() as sock:
            sock.bind((anytcpip.LOCALHOST_IPV4, 0))
            port = sock.getsockname()[1]
            with self.assertRaises(ConnectionRefusedError):
                await anytcpip.start_in_background(
                    anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=port, log=log)
                )


@pytest.mark.parametrize("anyio_backend", [pytest.param(("trio", {}), id="trio")])
async def test_start_in_background_needs_asyncio(log: logging.Logger) -> None:
    with pytest.raises(RuntimeError, match="asyncio only"):
        await anytcpip.start_in_background(anytcpip.Client(host="", port=None, log=log))


# ----------------------------------------------------------------- item 7


@deadline(20)
async def test_close_client_is_prompt_and_loses_nothing(log: logging.Logger) -> None:
    """Against an idle ts_tcpip-style peer (it reads only later and never
    closes its side first), close_client() returns at once; what was written
    still arrives, and the next client is served at once."""
    tail = b"x" * 200_000
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=recorder
    ) as server:
        peer = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)
        async with peer:
            await server.connected_task
            await recorder.assert_next(True)
            await server.write(tail)
            start = time.perf_counter()
            await server.close_client()
            elapsed = time.perf_counter() - start
            assert recorder.states == [True, False]
            # The next client is served while the old one still drains.
            async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
                with anyio.fail_after(1):
                    await server.connected_task
                await client.write(b"n")
                assert await server.readexactly(1) == b"n"
                assert await receive_exactly(peer, len(tail)) == tail
    # The figure is 50 ms (measured: about 1 ms); allow for a loaded machine.
    assert elapsed < 0.25, f"close_client took {elapsed * 1000:.1f} ms"


# ----------------------------------------------------------------- item 8


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lingr": 3}, TypeError, "did you mean 'linger'"),
        ({"tls": "yes"}, TypeError, "tls='yes' must be True or False"),
        ({"ssl_context": 42}, TypeError, "ssl_context=42 must be an ssl.SSLContext"),
        ({"family": socket.AF_INET}, TypeError, "pass an IPv4 or IPv6 address"),
        ({"limit": "big"}, TypeError, "limit='big' must be an int"),
        ({"ssl_handshake_timeout": 3}, TypeError, "TLS handshake"),
    ],
)
def test_client_options_fail_in_the_constructor(
    log: logging.Logger, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=1, log=log, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_heartbeat_intervall": 1}, TypeError, "did you mean 'max_heartbeat_interval'"),
        ({"reuse_address": False}, ValueError, "SO_REUSEADDR"),
        ({"ssl": 42}, TypeError, "ssl=42"),
        ({"start_serving": False}, TypeError, "leave it out"),
        ({"backlog": "many"}, TypeError, "backlog='many'"),
    ],
)
def test_server_options_fail_in_the_constructor(
    log: logging.Logger, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        anytcpip.TestOneClientReadLoopServer(port=0, log=log, **kwargs)


@deadline(10)
async def test_asyncio_server_kwargs_are_mapped(log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4,
        port=0,
        log=log,
        reuse_address=True,
        backlog=5,
        family=socket.AF_INET,
        limit=10,
    ) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log, limit=10):
            await server.connected_task
            assert server.limit == 10


# ----------------------------------------------------------------- item 9


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.wait wraps it on 3.10")
@pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
        pytest.param(("asyncio", {"debug": True, "use_uvloop": True}), id="asyncio+uvloop"),
    ],
)
@deadline(10)
async def test_asyncio_wait_on_start_task(log: logging.Logger) -> None:
    async with anyio.create_task_group() as tg:
        server = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log)
        seen: list[anytcpip.OneShot] = []
        server.start_task.add_done_callback(seen.append)
        tg.start_soon(server.run)
        # (For a type checker it is not a Future, hence the cast.)
        done, pending = await asyncio.wait({cast(Any, server.start_task)}, timeout=5)
        assert done == {server.start_task}
        assert not pending
        assert seen == [server.start_task]
        assert not server.start_task.cancel()
        assert not server.start_task.cancelled()
        await server.close()


def test_constructor_options_are_typed(log: logging.Logger) -> None:
    # mypy (strict, warn_unused_ignores) fails this file if any of these
    # stops being a type error: the ignores are the static half of the test.
    host = anytcpip.LOCALHOST_IPV4
    with pytest.raises(TypeError, match="linger"):
        anytcpip.Client(host=host, port=1, log=log, lingr=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="tls"):
        anytcpip.Client(host=host, port=1, log=log, tls="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ssl_context"):
        anytcpip.OneClientServer(host=host, port=0, log=log, ssl_context=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_heartbeat_interval"):
        anytcpip.TestOneClientReadLoopServer(port=0, log=log, max_heartbeat_intervall=1)  # type: ignore[call-arg]
