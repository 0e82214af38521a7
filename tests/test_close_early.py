"""The early end-of-stream of a close at this end loses nothing: what was
written before ``close_client()`` or ``close()`` reaches a slowly reading
peer whole, then the end (the transport holds most of it when the close
starts: asyncio's buffer, trio's queue and partial send); and a client
closed while its peer floods it (its receiving paused at the read limit)
still sends its end and closes without waiting for ``linger``."""

from __future__ import annotations

import logging
import random

import anyio
import anyio.abc
import pytest

import anytcpip
from helpers import NET_TIMEOUT, deadline, peer_listener
from reliability.harness import get_seed
from reliability.payloads import pattern

pytestmark = pytest.mark.anyio

MONITOR = pytest.mark.parametrize("monitor", [0.1, 0.0], ids=["monitor", "no_monitor"])

#: Far more than the kernel's buffers on loopback take while the peer sleeps.
SIZE = 3 << 20


async def _read_slowly(peer: anyio.abc.SocketStream, rng: random.Random) -> bytes:
    """Everything up to the end-of-stream, in small receives with pauses;
    then the peer's own end answers (the close waits for it)."""
    received = bytearray()
    while True:
        try:
            chunk = await peer.receive(rng.choice((1024, 8192, 65536)))
        except anyio.EndOfStream:
            await peer.send_eof()
            return bytes(received)
        received += chunk
        if rng.random() < 0.02:
            await anyio.sleep(0.002)


async def _read_until_eof(peer: anyio.abc.SocketStream, rng: random.Random) -> bytes:
    received = bytearray()
    while True:
        try:
            received += await peer.receive(rng.choice((1024, 8192, 65536)))
        except anyio.EndOfStream:
            return bytes(received)


async def _write_in_pieces(
    obj: anytcpip.BaseClientOrServer, data: bytes, rng: random.Random
) -> None:
    """Random pieces, the last MiB in one write (held by the transport when
    the close starts)."""
    pos = 0
    end = len(data) - (1 << 20)
    while pos < end:
        size = min(rng.randint(1, 256 << 10), end - pos)
        await obj.write(data[pos : pos + size])
        pos += size
    await obj.write(data[pos:])


@MONITOR
@pytest.mark.parametrize("how", ["close_client", "close"])
@deadline(NET_TIMEOUT)
async def test_server_close_delivers_everything_to_a_slow_reader(
    log: logging.Logger, monitor: float, how: str
) -> None:
    seed = get_seed()
    rng = random.Random(seed)
    data = pattern(SIZE, seed)
    received = b""
    async with anytcpip.OneClientServer(
        host="127.0.0.1", port=0, log=log, monitor_connection_interval=monitor, linger=NET_TIMEOUT
    ) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as peer:
            await server.connected_task

            async def read() -> None:
                nonlocal received
                received = await _read_slowly(peer, rng)

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await _write_in_pieces(server, data, rng)
                if how == "close_client":
                    await server.close_client()
                else:
                    await server.close()
    assert len(received) == len(data), f"seed {seed}"
    assert received == data, f"seed {seed}"


@MONITOR
@deadline(NET_TIMEOUT)
async def test_client_close_delivers_everything_to_a_slow_reader(
    log: logging.Logger, monitor: float
) -> None:
    seed = get_seed()
    rng = random.Random(seed)
    data = pattern(SIZE, seed)
    received = b""
    async with peer_listener() as (listener, port):
        client = anytcpip.Client(
            host="127.0.0.1",
            port=port,
            log=log,
            monitor_connection_interval=monitor,
            linger=NET_TIMEOUT,
        )
        async with client, await listener.accept() as peer:

            async def read() -> None:
                nonlocal received
                received = await _read_slowly(peer, rng)

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await _write_in_pieces(client, data, rng)
                await client.close()
    assert len(received) == len(data), f"seed {seed}"
    assert received == data, f"seed {seed}"


@MONITOR
@deadline(NET_TIMEOUT)
async def test_client_closed_while_flooded_sends_its_end(
    log: logging.Logger, monitor: float
) -> None:
    seed = get_seed()
    rng = random.Random(seed)
    data = pattern(rng.randint(1, 1 << 20), seed)
    linger = NET_TIMEOUT / 2
    received = b""
    async with peer_listener() as (listener, port):
        client = anytcpip.Client(
            host="127.0.0.1",
            port=port,
            log=log,
            monitor_connection_interval=monitor,
            linger=linger,
        )
        async with client, await listener.accept() as peer:
            seen_end = anyio.Event()

            async def flood() -> None:
                # Until the client's end: then the peer's own end answers it.
                blob = b"f" * 65536
                while not seen_end.is_set():
                    await peer.send(blob)
                await peer.send_eof()

            async def read() -> None:
                nonlocal received
                received = await _read_until_eof(peer, rng)
                seen_end.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(flood)
                tg.start_soon(read)
                # The client's receiving pauses at its limit.
                await anyio.sleep(0.05)
                await client.write(data)
                start = anyio.current_time()
                await client.close()
                took = anyio.current_time() - start
                # The peer stops flooding once it saw the end: no linger.
                assert took < linger, f"seed {seed}: close took {took:.2f} s"
    assert received == data, f"seed {seed}"
