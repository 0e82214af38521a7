"""ReconnectingClient: one client object across reconnects (issue 12, item 1)."""

from __future__ import annotations

import logging
import random
import ssl
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

import anytcpip
from anytcpip._backoff import backoff_ceiling
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, deadline, is_connected, peer_closed, receive_exactly, rst_close
from reconnect_helpers import LogWatcher, fast_client, free_port, listening


async def run_until_closed(client: anytcpip.ReconnectingClient) -> None:
    """``client.run()``, for a client closed before it connected (start then
    raises ConnectionError, as for a Client)."""
    with pytest.raises(ConnectionError, match="closed while starting"):
        await client.run()


# ------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"reconnect_delay": "1"}, TypeError, "reconnect_delay"),
        ({"reconnect_delay": 0}, ValueError, "reconnect_delay"),
        ({"reconnect_delay_factor": 0.5}, ValueError, "reconnect_delay_factor"),
        ({"reconnect_delay_factor": None}, TypeError, "reconnect_delay_factor"),
        ({"reconnect_delay_max": 0.01, "reconnect_delay": 0.1}, ValueError, "reconnect_delay_max"),
        ({"max_attempts": 0}, ValueError, "max_attempts"),
        ({"max_attempts": 1.5}, TypeError, "max_attempts"),
        ({"max_attempts": True}, TypeError, "max_attempts"),
        ({"give_up_after": -1}, ValueError, "give_up_after"),
        ({"give_up_after": float("nan")}, TypeError, "give_up_after"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout"),
        ({"wait_for_connection": 1}, TypeError, "wait_for_connection"),
        ({"heartbeat_timeout": 0}, ValueError, "heartbeat_timeout"),
        (
            {"heartbeat_timeout": 1.0, "monitor_connection_interval": 0},
            ValueError,
            "heartbeat_timeout",
        ),
        ({"rng": 42}, TypeError, "rng"),
    ],
)
def test_arguments_checked(
    log: logging.Logger, kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        anytcpip.ReconnectingClient(anytcpip.LOCALHOST_IPV4, 5000, log, **kwargs)


def test_backoff_follows_the_formula(log: logging.Logger) -> None:
    """Full jitter: attempt n waits uniform(0, min(max, initial * factor**n))."""
    initial, factor, maximum, seed = 0.01, 3.0, 0.5, 98765
    client = anytcpip.ReconnectingClient(
        anytcpip.LOCALHOST_IPV4,
        5000,
        log,
        reconnect_delay=initial,
        reconnect_delay_factor=factor,
        reconnect_delay_max=maximum,
        rng=random.Random(seed),
    )
    oracle = random.Random(seed)
    ceilings = [min(maximum, initial * factor**n) for n in range(12)]
    assert ceilings[0] == initial
    assert ceilings[-1] == maximum
    delays = [client.next_delay() for _ in ceilings]
    assert delays == [oracle.uniform(0, c) for c in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    # No overflow however many attempts failed.
    assert backoff_ceiling(100_000, initial, factor, maximum) == maximum


# ------------------------------------------------------------ reconnects


@deadline()
async def test_server_restarts_on_the_same_port(log: logging.Logger) -> None:
    """The server goes away (FIN) and comes back three times on its port: the
    same client reconnects each time, reads each new connection's bytes,
    counts the connections and calls back strictly alternating."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    port = await free_port()
    async with anyio.create_task_group() as tg:
        client = fast_client(log, port, connect_callback=recorder)
        for round_ in range(3):
            async with listening(port) as door:
                if round_ == 0:
                    await tg.start(client.run)
                else:
                    await client.wait_connected()
                assert client.connected
                assert client.should_be_connected
                assert client.connection_count == round_ + 1
                stream = await door.accept()
                await stream.send(b"round %d\n" % round_)
                assert await client.readline() == b"round %d\n" % round_
                await client.write(b"ack %d\n" % round_)
                assert await receive_exactly(stream, 6) == b"ack %d\n" % round_
            # The door shut with a FIN.
            reason = await client.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.PEER_CLOSED
            assert not is_connected(client)
            assert client.should_be_connected
        await client.close()
    assert not client.should_be_connected
    assert client.done_task.done()
    assert recorder.history == [True, False] * 3
    recorder.assert_alternating()


@deadline()
async def test_server_resets(log: logging.Logger) -> None:
    """A reset (SO_LINGER 1, 0) is a loss like a FIN: reconnect, reason RESET."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with listening() as door:
        async with fast_client(log, door.port, connect_callback=recorder) as client:
            for _i in range(3):
                await client.wait_connected()
                stream = await door.accept()
                await rst_close(stream)
                reason = await client.wait_disconnected()
                assert reason is not None
                assert reason.kind is anytcpip.DisconnectKind.RESET
            await client.wait_connected()
            assert client.connection_count == 4
            await recorder.wait_count(7)
    assert recorder.history == [True, False] * 4
    recorder.assert_alternating()


@deadline()
async def test_start_while_the_server_is_down(log: logging.Logger) -> None:
    """start retries with backoff while nothing listens, and returns once the
    server is there; the refusal is logged once, however many attempts."""
    with LogWatcher(log) as watcher:
        port = await free_port()
        client = fast_client(log, port)
        async with anyio.create_task_group() as tg:

            async def start() -> None:
                await tg.start(client.run)
                started.set()

            started = anyio.Event()
            tg.start_soon(start)
            # Several refused attempts, and start is still waiting.
            await watcher.wait_for("still cannot connect", count=3)
            assert not started.is_set()
            assert not is_connected(client)
            assert client.should_be_connected
            async with listening(port):
                await started.wait()
                assert client.connected
                assert client.connection_count == 1
                await client.close()
    warnings = watcher.messages("cannot connect", logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "ConnectionRefusedError" in warnings[0], warnings
    assert watcher.messages("connected to", logging.INFO), "the connection was not logged"


@deadline()
async def test_the_log_says_each_reason_once_per_change(log: logging.Logger) -> None:
    """Refused, refused, ... then timed out (a server that accepts and never
    does the TLS handshake), then refused again: three warnings; each
    reconnect logged at INFO."""
    with LogWatcher(log) as watcher:
        port = await free_port()
        client = fast_client(
            log,
            port,
            tls=True,
            ssl_context=ssl.create_default_context(),
            # Long enough that a refused attempt does not time out when a
            # loaded machine stalls the loop (with 0.05 s the test failed
            # once under -n 4, most likely so).
            connect_timeout=0.3,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_until_closed, client)
            await watcher.wait_for("still cannot connect", count=2)
            async with listening(port):
                await watcher.wait_for("TimeoutError", count=2)
            await watcher.wait_for("still cannot connect", count=5)
            await client.close()
    warnings = watcher.messages("cannot connect", logging.WARNING)
    assert len(warnings) == 3, warnings
    assert "ConnectionRefusedError" in warnings[0], warnings
    assert "TimeoutError" in warnings[1], warnings
    assert "ConnectionRefusedError" in warnings[2], warnings


@pytest.mark.parametrize("door", ["async_with", "start"])
@deadline()
async def test_give_up_after_attempts(log: logging.Logger, door: str) -> None:
    """max_attempts=3 with nothing listening: start raises ConnectionError,
    the last refusal chained, with nothing left running."""
    with LogWatcher(log) as watcher:
        client = fast_client(log, await free_port(), max_attempts=3)
        async with anyio.create_task_group() as tg:

            async def start() -> None:
                if door == "async_with":
                    async with client:
                        pytest.fail("started")  # pragma: no cover
                else:
                    await tg.start(client.run)

            with pytest.raises(ConnectionError, match="max_attempts=3") as info:
                await start()
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
        assert client.done_task.done()
        assert not client.connected
    assert len(watcher.messages("still cannot connect")) == 2


@deadline()
async def test_give_up_after_seconds(log: logging.Logger) -> None:
    """give_up_after=0.2: start gives up after about that long without a
    connection (not before), with the last error chained."""
    client = fast_client(log, await free_port(), give_up_after=0.2)
    begin = anyio.current_time()
    with pytest.raises(ConnectionError, match=r"give_up_after=0\.2") as info:
        async with client:
            pytest.fail("started")  # pragma: no cover
    assert anyio.current_time() - begin >= 0.2
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


@deadline()
async def test_give_up_after_cuts_the_backoff_short(log: logging.Logger) -> None:
    """give_up_after=0.2 with a 30 s backoff: giving up is not held up by
    the next delay (about 7 s with this seed)."""
    client = fast_client(
        log,
        await free_port(),
        give_up_after=0.2,
        reconnect_delay=30,
        reconnect_delay_max=30,
        rng=random.Random(3),
    )
    begin = anyio.current_time()
    with pytest.raises(ConnectionError, match=r"give_up_after=0\.2"):
        async with client:
            pytest.fail("started")  # pragma: no cover
    assert anyio.current_time() - begin < 5


@deadline()
async def test_give_up_after_a_loss(log: logging.Logger) -> None:
    """Giving up after a loss closes the client: run returns, wait_connected
    and waiting reads raise, callbacks end disconnected."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    port = await free_port()
    client = fast_client(
        log, port, connect_callback=recorder, max_attempts=2, wait_for_connection=True
    )
    async with anyio.create_task_group() as tg:
        async with listening(port):
            await tg.start(client.run)
        await client.done_task
    assert not client.should_be_connected
    with pytest.raises(ConnectionError, match="max_attempts=2"):
        await client.wait_connected()
    with pytest.raises(ConnectionError, match="max_attempts=2"):
        await client.read(1)
    assert recorder.history == [True, False]


# ---------------------------------------------------------------- close


@deadline()
async def test_close_during_backoff(log: logging.Logger) -> None:
    """close() while waiting a long backoff returns at once; nothing runs on."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    with LogWatcher(log) as watcher:
        port = await free_port()
        client = fast_client(
            log,
            port,
            connect_callback=recorder,
            reconnect_delay=30,
            reconnect_delay_max=30,
            rng=random.Random(3),  # the first delay is ~7 s: 30 * 0.237...
        )
        async with anyio.create_task_group() as tg:
            async with listening(port):
                await tg.start(client.run)
            await client.wait_disconnected()
            await recorder.wait_count(2)
            with anyio.fail_after(1):
                await client.close()
        assert client.done_task.done()
        assert client.connection_count == 1
    assert recorder.history == [True, False]
    assert not watcher.messages("cannot connect")


@pytest.mark.parametrize("when", ["starting", "reconnecting"])
@deadline()
async def test_close_during_a_connect_attempt(log: logging.Logger, when: str) -> None:
    """close() while an attempt hangs (a TLS handshake nobody answers),
    while starting or reconnecting, returns at once with nothing left
    running; the callbacks still alternate."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with LogWatcher(log) as watcher:
        port = await free_port()
        client = fast_client(
            log, port, connect_callback=recorder, tls=True, ssl_context=client_context
        )
        async with anyio.create_task_group() as tg:
            if when == "reconnecting":
                async with anytcpip.OneClientServer(
                    anytcpip.LOCALHOST_IPV4, port, log, ssl_context=server_context
                ) as server:
                    await tg.start(client.run)
                    await server.connected_task
                await client.wait_disconnected()
            else:
                tg.start_soon(run_until_closed, client)
            async with listening(port) as door:
                await door.accept()  # the attempt now waits for the handshake
                with anyio.fail_after(1):
                    await client.close()
        assert client.done_task.done()
        assert not client.connected
    assert recorder.history == ([True, False] if when == "reconnecting" else [])
    assert not watcher.messages("TimeoutError")


@deadline()
async def test_close_while_connected_after_reconnects(log: logging.Logger) -> None:
    """Close during a connection (after a reconnect): the callbacks end with a
    disconnect, and the server sees the close (FIN)."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with listening() as door:
        async with fast_client(log, door.port, connect_callback=recorder) as client:
            first = await door.accept()
            await anyio.aclose_forcefully(first)
            await client.wait_disconnected()
            await client.wait_connected()
            second = await door.accept()
        assert await peer_closed(second)
        assert recorder.history == [True, False, True, False]
        assert client.connection_count == 2


# ------------------------------------------------------ waiting for links


@deadline()
async def test_wait_connected(log: logging.Logger) -> None:
    """wait_connected returns at once while connected; with a timeout it
    raises TimeoutError while the server is away; without one it returns
    once the server is back; after close it raises ConnectionError."""
    port = await free_port()
    async with anyio.create_task_group() as tg:
        client = fast_client(log, port)
        async with listening(port):
            await tg.start(client.run)
            await client.wait_connected(timeout=0)
        await client.wait_disconnected()
        with pytest.raises(TimeoutError):
            await client.wait_connected(timeout=0.05)
        async with listening(port):
            await client.wait_connected()
            assert client.connected
            assert client.connection_count == 2
            await client.close()
    with pytest.raises(ConnectionError):
        await client.wait_connected()


@deadline()
async def test_reads_and_writes_while_disconnected_raise(log: logging.Logger) -> None:
    """By default, every read and write while reconnecting raises
    ConnectionError at once."""
    port = await free_port()
    async with anyio.create_task_group() as tg:
        client = fast_client(log, port, reconnect_delay=30, reconnect_delay_max=30)
        async with listening(port):
            await tg.start(client.run)
        await client.wait_disconnected()
        with anyio.fail_after(1):
            for call in (
                client.read(1),
                client.readline(),
                client.readexactly(2),
                client.read_str(),
                client.read_json(),
                client.write(b"x"),
                client.write_str("x"),
                client.write_json({}),
            ):
                with pytest.raises(ConnectionError):
                    await call
        await client.close()


@deadline()
async def test_reads_and_writes_wait_for_the_next_connection(log: logging.Logger) -> None:
    """wait_for_connection=True: a read and a write made while reconnecting
    wait, and go to the next connection; close ends the wait with
    ConnectionError."""
    port = await free_port()
    client = fast_client(log, port, wait_for_connection=True)
    got: list[str] = []
    async with anyio.create_task_group() as tg:
        async with listening(port):
            await tg.start(client.run)
        await client.wait_disconnected()
        waiting, read_done = anyio.Event(), anyio.Event()

        async def read_one() -> None:
            waiting.set()
            got.append(await client.read_str())
            read_done.set()

        tg.start_soon(read_one)
        await waiting.wait()
        async with anyio.create_task_group() as writers:
            writers.start_soon(client.write_str, "sent while away")
            async with listening(port) as door:
                stream = await door.accept()
                expected = b"sent while away" + client.terminator
                assert await receive_exactly(stream, len(expected)) == expected
                await stream.send(b"new" + client.terminator)
                await read_done.wait()
        assert got == ["new"]
        await client.wait_disconnected()

        async def read_until_closed() -> None:
            with pytest.raises(ConnectionError):
                await client.read(1)
            finished.set()

        finished = anyio.Event()
        tg.start_soon(read_until_closed)
        await client.close()
        await finished.wait()


# ---------------------------------------------------- every link is clean


@deadline()
async def test_no_bytes_of_the_old_connection(log: logging.Logger) -> None:
    """A server sends a burst nobody reads, then closes: after the reconnect
    the client reads only the new connection's bytes, and the burst is
    counted as unread in the disconnect reason and its log line."""
    burst = b"old data\n" * 100
    with LogWatcher(log) as watcher:
        async with listening() as door:
            async with fast_client(log, door.port) as client:
                first = await door.accept()
                await first.send(burst)
                await anyio.aclose_forcefully(first)
                reason = await client.wait_disconnected()
                assert reason is not None
                assert reason.unread == len(burst), reason
                await client.wait_connected()
                second = await door.accept()
                await second.send(b"new\n")
                assert await client.readline() == b"new\n"
    assert watcher.messages(f"{len(burst)} bytes unread"), "the drop was not logged"


@deadline()
async def test_a_read_in_progress_never_gets_the_next_connection(
    log: logging.Logger,
) -> None:
    """A read waiting when the link drops fails (IncompleteReadError or
    ConnectionError); the next connection's bytes are for the next read."""
    async with listening() as door:
        async with fast_client(log, door.port) as client:
            first = await door.accept()
            result: list[BaseException | bytes] = []
            waiting = anyio.Event()

            async def read_100() -> None:
                waiting.set()
                try:
                    result.append(await client.readexactly(100))
                except (ConnectionError, anytcpip.IncompleteReadError) as exc:
                    result.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(read_100)
                await waiting.wait()
                await first.send(b"x" * 10)
                await anyio.aclose_forcefully(first)
                await client.wait_disconnected()
                await client.wait_connected()
                second = await door.accept()
                await second.send(b"y" * 100)
            assert len(result) == 1, result
            assert isinstance(result[0], BaseException), result
            assert await client.readexactly(100) == b"y" * 100


@deadline()
async def test_heartbeats_restart_on_each_connection(log: logging.Logger) -> None:
    """run_heartbeat_send_task: every connection starts with a heartbeat."""
    async with listening() as door:
        async with fast_client(
            log, door.port, run_heartbeat_send_task=True, heartbeat_send_sleep=30
        ) as client:
            beat = anytcpip.HEARTBEAT + client.terminator
            for _ in range(3):
                stream = await door.accept()
                assert await receive_exactly(stream, len(beat)) == beat
                await anyio.aclose_forcefully(stream)
                await client.wait_disconnected()
            assert client.connection_count >= 3


@deadline()
async def test_nothing_queued_for_the_old_connection_is_sent_on_the_new(
    log: logging.Logger,
) -> None:
    """A writer floods a server that does not read, the server resets: the
    next server receives only what is written after the reconnect."""
    chunk = b"o" * 65536
    async with listening() as door:
        async with fast_client(log, door.port) as client:
            first = await door.accept()
            flooding = anyio.Event()
            written = 0

            async def flood() -> None:
                nonlocal written
                try:
                    while True:
                        await client.write(chunk)
                        written += len(chunk)
                        if written >= 1 << 20:
                            flooding.set()
                except ConnectionError:
                    pass

            async with anyio.create_task_group() as tg:
                tg.start_soon(flood)
                await flooding.wait()
                await rst_close(first)
                reason = await client.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.RESET, reason
            await client.wait_connected()
            second = await door.accept()
            await client.write(b"new\n")
            assert await receive_exactly(second, 4) == b"new\n"
