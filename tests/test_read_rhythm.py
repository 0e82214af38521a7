"""Reads in a quick request-and-answer rhythm, then not: monitoring and
closing still work at once (on trio the receive pump stands aside while the
reader waits for the socket itself, and must take over again). Every
backend; a raw peer answers at once, as a controller does."""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import anyio.streams.buffered
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, deadline, peer_listener

pytestmark = pytest.mark.anyio

EXCHANGES = 200


async def _answer(peer: anyio.abc.SocketStream, count: int) -> None:
    """Answer ``count`` lines with the same line, as they come."""
    buffered = anyio.streams.buffered.BufferedByteReceiveStream(peer)
    for _ in range(count):
        line = await buffered.receive_until(b"\r\n", 1000)
        await peer.send(line + b"\r\n")


async def _quick_rhythm(client: anytcpip.Client) -> None:
    for i in range(EXCHANGES):
        await client.write_str(f"request {i}")
        assert await client.read_str() == f"request {i}"


@deadline(NET_TIMEOUT)
async def test_hangup_noticed_after_a_quick_rhythm(log: logging.Logger) -> None:
    """The client stops reading after many quick exchanges; the peer then
    hangs up: the client notices it without reading."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT / 2)
    async with peer_listener() as (listener, port):
        client = anytcpip.Client("127.0.0.1", port, log=log, connect_callback=recorder)
        async with client, await listener.accept() as peer:
            await recorder.assert_next(True)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_answer, peer, EXCHANGES)
                await _quick_rhythm(client)
            # Nobody reads from here on.
            await peer.aclose()
            await recorder.assert_next(False)
            assert not client.connected


@deadline(NET_TIMEOUT)
async def test_close_stops_a_read_waiting_after_a_quick_rhythm(log: logging.Logger) -> None:
    """After many quick exchanges a read waits (the peer says nothing more);
    another task closes the client: the read fails at once."""
    async with peer_listener() as (listener, port):
        client = anytcpip.Client("127.0.0.1", port, log=log, linger=0.2)
        async with client, await listener.accept() as peer:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_answer, peer, EXCHANGES)
                await _quick_rhythm(client)
            failed = anyio.Event()

            async def read_forever() -> None:
                with pytest.raises(ConnectionError):
                    await client.read_str()
                failed.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(read_forever)
                await anyio.wait_all_tasks_blocked()  # the read waits
                await client.close()
                with anyio.fail_after(NET_TIMEOUT / 4):
                    await failed.wait()
