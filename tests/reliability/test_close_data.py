"""Closing with data in flight, on plain TCP and TLS (issue 14 items 4 and 5):
after close() no read returns anything, and nothing written before close()
is lost, even while the peer is still sending."""

from __future__ import annotations

import logging
import random
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import trustme

import anytcpip
from helpers import deadline

from .harness import TEST_TIMEOUT, get_seed

ROLES = ["client", "server"]
TRANSPORTS = ["tcp", "tls"]


@dataclass
class TlsContexts:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls_contexts() -> TlsContexts:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    return TlsContexts(server, client)


@asynccontextmanager
async def connected_pair(
    log: logging.Logger, transport: str, contexts: TlsContexts, **kwargs: Any
) -> AsyncIterator[tuple[anytcpip.OneClientServer, anytcpip.Client]]:
    """A server and a client, over TLS or plain TCP, both connected."""
    server_kwargs = dict(kwargs)
    client_kwargs = dict(kwargs)
    if transport == "tls":
        server_kwargs["ssl_context"] = contexts.server
        client_kwargs["ssl_context"] = contexts.client
    async with (
        anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4, port=0, log=log, **server_kwargs
        ) as server,
        anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log, **client_kwargs
        ) as client,
    ):
        await server.connected_task
        yield server, client


async def close_end(obj: anytcpip.BaseClientOrServer) -> None:
    """close() for a client, close_client() for a server."""
    if isinstance(obj, anytcpip.OneClientServer):
        await obj.close_client()
    else:
        await obj.close()


LINE = re.compile(r"p:(\d+)")


async def close_while_reading(
    obj: anytcpip.BaseClientOrServer,
    peer: anytcpip.BaseClientOrServer,
    delay: float,
    why: str,
) -> None:
    """The peer writes numbered lines, two tasks read them from ``obj``, and
    ``obj`` closes after ``delay`` seconds."""
    got: list[list[str]] = [[], []]
    after_close: list[BaseException] = []
    closed = False

    async def send_lines() -> None:
        i = 0
        try:
            while True:
                await peer.write_str(f"p:{i}")
                i += 1
                if i % 64 == 0:
                    await anyio.lowlevel.checkpoint()
        except ConnectionError:
            pass

    async def read_lines(index: int) -> None:
        try:
            while True:
                line = await obj.read_str()
                assert not closed, f"{why}: read {line!r} after close()"
                got[index].append(line)
        except ConnectionError:
            pass
        # Every later read fails too.
        for _ in range(3):
            try:
                data = await obj.read(100)
            except ConnectionError as exc:
                after_close.append(exc)
            else:
                raise AssertionError(f"{why}: read {data!r} after close()")

    async with anyio.create_task_group() as tg:
        tg.start_soon(send_lines)
        async with anyio.create_task_group() as readers:
            readers.start_soon(read_lines, 0)
            readers.start_soon(read_lines, 1)
            await anyio.sleep(delay)
            await close_end(obj)
            closed = True
        tg.cancel_scope.cancel()
    assert len(after_close) == 6, why
    numbers = []
    for lines in got:
        mine = []
        for line in lines:
            match = LINE.fullmatch(line)
            assert match, f"{why}: torn line {line!r}"
            mine.append(int(match[1]))
        assert mine == sorted(mine), f"{why}: out of order {mine}"
        numbers += mine
    assert sorted(numbers) == list(range(len(numbers))), f"{why}: a gap"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("role", ROLES)
async def test_reads_after_close_never_return_data(
    log: logging.Logger, role: str, transport: str, tls_contexts: TlsContexts
) -> None:
    """Two readers on numbered lines and close() at a random moment: every
    line read is whole, together they are 0..n-1 without a gap, and once the
    close has started every read raises ConnectionError."""
    seed = get_seed()
    rng = random.Random(seed)
    for round_ in range(4):
        why = f"seed={seed} round={round_}"
        delay = rng.uniform(0.0, 0.05)
        with anyio.fail_after(TEST_TIMEOUT):
            async with connected_pair(log, transport, tls_contexts, linger=0.5) as (
                server,
                client,
            ):
                obj, peer = (server, client) if role == "server" else (client, server)
                await close_while_reading(obj, peer, delay, why)


async def flood(obj: anytcpip.BaseClientOrServer) -> None:
    """Write until the connection fails or closes."""
    chunk = b"f" * 4096 + b"\r\n"
    try:
        while True:
            await obj.write(chunk)
            await anyio.lowlevel.checkpoint()
    except ConnectionError:
        pass


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_close_while_peer_sends_delivers_everything(
    log: logging.Logger, role: str, transport: str, tls_contexts: TlsContexts
) -> None:
    """We write 1 MiB and close at once while the peer floods us with data we
    never read: the peer still gets the whole 1 MiB (no reset)."""
    size = 1 << 20
    payload = bytes(range(256)) * (size // 256)
    async with connected_pair(log, transport, tls_contexts, linger=5) as (server, client):
        obj, peer = (server, client) if role == "server" else (client, server)
        received: list[bytes] = []

        async def receive() -> None:
            received.append(await peer.readexactly(size))

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood, peer)
            tg.start_soon(receive)
            # Let the flood get going, so our receive side is full.
            await anyio.sleep(0.1)
            await obj.write(payload)
            await close_end(obj)
        assert received == [payload]


@pytest.mark.parametrize("transport", TRANSPORTS)
@deadline(TEST_TIMEOUT)
async def test_concurrent_writes_before_close_all_arrive(
    log: logging.Logger, transport: str, tls_contexts: TlsContexts
) -> None:
    """8 writers and 4 readers on each side; each writer's messages that
    returned before close() all reach the peer, in order."""
    seed = get_seed()
    rng = random.Random(seed)
    async with connected_pair(log, transport, tls_contexts, linger=5) as (server, client):
        written: dict[int, int] = {}
        seen: dict[int, list[int]] = {w: [] for w in range(8)}

        async def writer(w: int) -> None:
            written[w] = 0
            try:
                while True:
                    await client.write_str(f"{w}:{written[w]}:" + "x" * rng.randrange(200))
                    written[w] += 1
                    if rng.random() < 0.3:
                        await anyio.lowlevel.checkpoint()
            except ConnectionError:
                pass

        async def reader() -> None:
            try:
                while True:
                    w, n, _ = (await server.read_str()).split(":")
                    seen[int(w)].append(int(n))
            except (ConnectionError, anytcpip.IncompleteReadError):
                pass

        async def server_flood() -> None:
            await flood(server)

        async with anyio.create_task_group() as tg:
            tg.start_soon(server_flood)
            for _ in range(4):
                tg.start_soon(reader)
            async with anyio.create_task_group() as writers:
                for w in range(8):
                    writers.start_soon(writer, w)
                await anyio.sleep(rng.uniform(0.05, 0.2))
                await client.close()
        for w in range(8):
            # The last write may have been cut by the close (raised).
            assert seen[w] == list(range(len(seen[w]))), f"seed={seed} writer {w}"
            assert len(seen[w]) >= written[w], f"seed={seed} writer {w}: {written[w]} written"
