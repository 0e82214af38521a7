"""ReconnectingClient under real faults on loopback: a blackholed link with
heartbeat_timeout, resets and FINs in a seeded mix, and close() at random
points while the server flaps."""

from __future__ import annotations

import logging
import random

import anyio
import anyio.abc
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline
from reconnect_helpers import Door, fast_client, listening

from .faultproxy import FaultProxy
from .harness import TEST_TIMEOUT, get_seed

BEAT = 0.02  # the server's heartbeat period (seconds)
TIMEOUT = 0.3  # the client's heartbeat_timeout (seconds)


async def beating_server(door: Door, tg: anyio.abc.TaskGroup) -> None:
    """Serve every accepted connection: ``hello <n>`` then ``beat <n>`` every
    BEAT seconds, ``n`` counting the connections from 1."""

    async def beat(stream: anyio.abc.SocketStream, n: int) -> None:
        try:
            await stream.send(b"hello %d\n" % n)
            while True:
                await anyio.sleep(BEAT)
                await stream.send(b"beat %d\n" % n)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    n = 0
    while True:
        stream = await door.accept()
        n += 1
        tg.start_soon(beat, stream, n)


@pytest.mark.parametrize("reading", [False, True])
@deadline(TEST_TIMEOUT)
async def test_blackhole_with_heartbeat_timeout(log: logging.Logger, reading: bool) -> None:
    """The link goes silent (no data, no FIN, no RST): after heartbeat_timeout
    the client drops it (HEARTBEAT_MISSED) and reconnects; while heartbeats
    flow it stays connected, whether or not anybody reads."""
    recorder = ConnectRecorder(timeout=TEST_TIMEOUT)
    lines: list[bytes] = []
    second_greeting = anyio.Event()
    async with listening() as door, anyio.create_task_group() as server_tg:
        server_tg.start_soon(beating_server, door, server_tg)
        async with FaultProxy(door.port) as proxy:
            async with fast_client(
                log, proxy.port, connect_callback=recorder, heartbeat_timeout=TIMEOUT
            ) as client:
                async with anyio.create_task_group() as tg:
                    if reading:

                        async def read_lines() -> None:
                            while True:
                                try:
                                    lines.append(await client.readline())
                                    if lines[-1] == b"hello 2\n":
                                        second_greeting.set()
                                except ConnectionError:
                                    await client.wait_connected()

                        tg.start_soon(read_lines)
                    # Three timeouts' worth of heartbeats: still connected.
                    await anyio.sleep(3 * TIMEOUT)
                    assert recorder.history == [True]
                    proxy.set_blackhole(True)
                    silent_at = anyio.current_time()
                    reason = await client.wait_disconnected()
                    elapsed = anyio.current_time() - silent_at
                    assert reason is not None
                    assert reason.kind is anytcpip.DisconnectKind.HEARTBEAT_MISSED, reason
                    assert TIMEOUT - 2 * BEAT <= elapsed <= TIMEOUT * 1.25 + 1.0, elapsed
                    proxy.set_blackhole(False)
                    await client.wait_connected()
                    assert client.connection_count == 2
                    await proxy.wait_links(2)
                    if reading:
                        await second_greeting.wait()
                    tg.cancel_scope.cancel()
        server_tg.cancel_scope.cancel()
    assert recorder.history == [True, False, True, False]
    if reading:
        # Nothing of the first connection after the second one's first line.
        assert all(line.endswith(b" 2\n") for line in lines[lines.index(b"hello 2\n") :])


@deadline(TEST_TIMEOUT)
async def test_seeded_mix_of_faults(log: logging.Logger) -> None:
    """Resets, FINs and blackholes in a seeded order: after each, the client
    reconnects, and reads only the new connection's lines."""
    seed = get_seed()
    rng = random.Random(seed)
    recorder = ConnectRecorder(timeout=TEST_TIMEOUT)
    faults = ["reset", "fin", "blackhole"] * 2
    rng.shuffle(faults)
    async with listening() as door, anyio.create_task_group() as server_tg:
        server_tg.start_soon(beating_server, door, server_tg)
        async with FaultProxy(door.port, seed=seed) as proxy:
            async with fast_client(
                log,
                proxy.port,
                connect_callback=recorder,
                heartbeat_timeout=TIMEOUT,
                rng=random.Random(seed),
            ) as client:
                for number, fault in enumerate(faults, start=1):
                    await client.wait_connected()
                    # The connection's first line is its own greeting.
                    link = await proxy.wait_links(number)
                    assert await client.readline() == b"hello %d\n" % number, (seed, fault)
                    await anyio.sleep(rng.uniform(0, 3 * BEAT))
                    if fault == "reset":
                        await link.reset()
                    elif fault == "fin":
                        await link.close()
                    else:
                        proxy.set_blackhole(True)
                    reason = await client.wait_disconnected()
                    proxy.set_blackhole(False)
                    assert reason is not None, seed
                    expected = {
                        "reset": {anytcpip.DisconnectKind.RESET},
                        # A FIN, or a reset if the client's unread data
                        # made the proxy's close one.
                        "fin": {
                            anytcpip.DisconnectKind.PEER_CLOSED,
                            anytcpip.DisconnectKind.RESET,
                        },
                        "blackhole": {anytcpip.DisconnectKind.HEARTBEAT_MISSED},
                    }[fault]
                    assert reason.kind in expected, (seed, fault, reason)
                await client.wait_connected()
                number = len(faults) + 1
                await proxy.wait_links(number)
                assert await client.readline() == b"hello %d\n" % number, seed
                assert client.connection_count == number
        server_tg.cancel_scope.cancel()
    assert recorder.history == [True, False] * (len(faults) + 1), seed


@deadline(TEST_TIMEOUT)
async def test_close_at_random_points(log: logging.Logger) -> None:
    """The server resets every link after a random time; close() comes at a
    random point (connected, in the backoff, or connecting): it returns
    promptly, nothing runs on, and the callbacks end disconnected."""
    seed = get_seed()
    rng = random.Random(seed)
    async with listening() as door, anyio.create_task_group() as server_tg:
        server_tg.start_soon(beating_server, door, server_tg)
        async with FaultProxy(door.port, seed=seed) as proxy:

            async def flap() -> None:
                while True:
                    await anyio.sleep(rng.uniform(0.005, 0.03))
                    await proxy.reset_all()

            server_tg.start_soon(flap)
            for _ in range(6):
                recorder = ConnectRecorder(timeout=TEST_TIMEOUT)
                client = fast_client(
                    log,
                    proxy.port,
                    connect_callback=recorder,
                    reconnect_delay=0.002,
                    reconnect_delay_max=0.01,
                    rng=random.Random(rng.random()),
                )
                async with anyio.create_task_group() as tg:
                    await tg.start(client.run)
                    await anyio.sleep(rng.uniform(0, 0.1))
                    with anyio.fail_after(2):
                        await client.close()
                assert client.done_task.done(), seed
                assert not client.connected, seed
                recorder.assert_alternating()
                assert len(recorder.history) % 2 == 0, (seed, recorder.history)
                assert len(recorder.history) == 2 * client.connection_count, seed
        server_tg.cancel_scope.cancel()
