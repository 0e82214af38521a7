"""A reader that keeps reading (a read loop) while the peer trickles
messages, so that it waits between messages: every message arrives once and
in order, and a peer that closes or resets, or a close at this end, still
ends that waiting read at once (every backend, monitoring on or off)."""

from __future__ import annotations

import logging

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, deadline, is_connected, receive_until_eof, rst_close

pytestmark = pytest.mark.anyio

COUNT = 30


async def _read_lines(
    server: anytcpip.OneClientServer,
    got: list[str],
    all_in: anyio.Event,
    ended: anyio.Event,
) -> None:
    """Read lines until the read fails, echoing each one."""
    try:
        while True:
            got.append(await server.read_str())
            await server.write_str(f"ack {got[-1]}")
            if len(got) == COUNT:
                all_in.set()
    except (ConnectionError, EOFError):
        ended.set()


@pytest.mark.parametrize("monitor", [0.1, 0.0], ids=["monitor", "no_monitor"])
@pytest.mark.parametrize("ending", ["peer_close", "peer_reset", "close_client"])
@deadline(NET_TIMEOUT)
async def test_a_waiting_read_loop_gets_every_message_and_sees_the_end(
    log: logging.Logger, monitor: float, ending: str
) -> None:
    recorder = ConnectRecorder()
    async with anytcpip.OneClientServer(
        host="127.0.0.1",
        port=0,
        log=log,
        connect_callback=recorder.callback,
        monitor_connection_interval=monitor,
        linger=NET_TIMEOUT / 4,
    ) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as peer:
            await recorder.assert_next(True)
            got: list[str] = []
            all_in, ended = anyio.Event(), anyio.Event()
            lines = [f"line {i} " + "x" * (i * 97 % 3000) for i in range(COUNT)]
            async with anyio.create_task_group() as tg:
                tg.start_soon(_read_lines, server, got, all_in, ended)
                for line in lines:
                    await peer.send(line.encode() + b"\r\n")
                    # Let the reader take it and come back for the next one.
                    await anyio.sleep(0.001)
                with anyio.fail_after(NET_TIMEOUT / 2):
                    await all_in.wait()
                # The reader is waiting for the next line now.
                assert got == lines
                expected = "".join(f"ack {line}\r\n" for line in lines).encode()
                if ending == "peer_close":
                    received = bytearray()
                    while len(received) < len(expected):
                        received += await peer.receive()
                    assert received == expected
                    await peer.send_eof()
                elif ending == "peer_reset":
                    await rst_close(peer)
                else:
                    tg.start_soon(server.close_client)
                    # Every ack, then our end-of-stream.
                    assert await receive_until_eof(peer) == expected
                    await peer.send_eof()
                # The waiting read ends, and the disconnect is seen, promptly.
                with anyio.fail_after(NET_TIMEOUT / 4):
                    await ended.wait()
                    await recorder.assert_next(False)
                assert not is_connected(server)
