"""Connecting: refused, hanging and cancelled connects (docs/reliability.rst R9, R10)."""

from __future__ import annotations

import logging
import random
import socket

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .harness import TEST_TIMEOUT, closed_port, get_seed, leaves


@deadline(TEST_TIMEOUT)
async def test_refused(log: logging.Logger) -> None:
    """R9: connecting to a closed port raises ConnectionRefusedError from
    ``async with`` and from ``tg.start(client.run)``; conn=False, sbc=False, no
    callback; start_task holds the error, done_task is done, close() is a
    no-op; 100 attempts leak no fd (the autouse fd check)."""
    port = closed_port()
    for attempt in range(100):
        cb = ConnectRecorder(timeout=5.0)
        client = anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=port, log=log, connect_callback=cb
        )
        if attempt % 2:
            with pytest.raises(ConnectionRefusedError):
                async with client:
                    pytest.fail("connected to a closed port")
        else:
            # tg.start re-raises the error; the task group may wrap it.
            with pytest.raises(Exception) as info:  # noqa: PT011
                async with anyio.create_task_group() as tg:
                    await tg.start(client.run)
            assert leaves(info.value) == [ConnectionRefusedError], info.value
        assert cb.states == []
        assert not client.connected
        assert not client.should_be_connected
        assert client.done_task.done()
        assert client.start_task.done()
        assert isinstance(client.start_task.exception(), ConnectionRefusedError)
        await client.close()
        assert cb.states == []
        assert not client.should_be_connected


@deadline(TEST_TIMEOUT)
async def test_connect_hang_cancel(log: logging.Logger) -> None:
    """R10: a connect that hangs (SYN dropped because the accept queue of a
    ``listen(0)`` socket is full) is bounded by the caller's deadline. After
    the cancellation: no callback, conn=False, sbc=False, done_task done, and
    awaiting start_task does not raise a cancellation exception outside its
    scope; no fd leaks."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind((anytcpip.LOCALHOST_IPV4, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # Fill the accept queue so that later SYNs are dropped.
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            try:
                filler.connect((anytcpip.LOCALHOST_IPV4, port))
            except BlockingIOError:
                pass
        cb = ConnectRecorder(timeout=5.0)
        client = anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=port, log=log, connect_callback=cb
        )
        start = anyio.current_time()
        with anyio.move_on_after(0.5) as scope:
            async with client:
                pytest.fail("the connect should hang")
        assert scope.cancelled_caught
        assert anyio.current_time() - start < 5
        assert cb.states == []
        assert not client.connected
        assert not client.should_be_connected
        assert client.done_task.done()
        assert client.start_task.done()
        # A stored cancellation must not escape outside its cancel scope.
        exc = client.start_task.exception()
        assert exc is None or isinstance(exc, Exception), (
            f"start_task holds a cancellation exception: {exc!r}"
        )
        await client.close()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@deadline(60)
async def test_cancel_during_connect_fuzz(log: logging.Logger) -> None:
    """R10: ``async with Client`` cancelled at a random point (0..1 ms), 150
    times, against a real OneClientServer. Every attempt ends with
    conn=False; its callbacks are [] (cancelled before connecting) or [T, F];
    the server's callbacks strictly alternate; no fd leaks (autouse check)."""
    seed = get_seed()
    rng = random.Random(seed)
    server_cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=server_cb
    ) as server:
        for attempt in range(150):
            cb = ConnectRecorder(timeout=5.0)
            client = anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4,
                port=server.port,
                log=log,
                connect_callback=cb,
                linger=0.2,
            )
            with anyio.move_on_after(rng.random() * 0.001):
                async with client:
                    await anyio.sleep(rng.random() * 0.001)
            assert cb.states in ([], [True, False]), f"seed={seed} attempt={attempt}"
            assert not client.connected, f"seed={seed}"
            assert client.done_task.done(), f"seed={seed}"
            assert client.start_task.done(), f"seed={seed} start_task never finished"
        # Let the server notice the last hangup.
        while server.connected:
            await anyio.sleep(0.01)
    server_cb.assert_alternating()
    assert len(server_cb.states) % 2 == 0, f"seed={seed} {server_cb.states}"
