"""The oversize policy: what a message longer than the read limit does
(``oversize="raise"``, ``"discard"`` or ``"close"``), client side and server
side, on every backend."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trustme

import anytcpip
from helpers import ServerAndClient, deadline, one_byte_relay

LIMIT = 100
#: Two over-long messages (one far over, one just over), then a good one.
TWO_LONG = b"x" * (LIMIT * 5) + b"\r\n" + b"y" * (LIMIT + 1) + b"\r\n"
GOOD = b'"next"\r\n'

#: Each separator-based read, and what it returns for GOOD.
READS: dict[str, tuple[Callable[[anytcpip.BaseClientOrServer], Awaitable[Any]], Any]] = {
    "read_str": (lambda obj: obj.read_str(), '"next"'),
    "read_json": (lambda obj: obj.read_json(), "next"),
    "readuntil": (lambda obj: obj.readuntil(b"\r\n"), GOOD),
    "readline": (lambda obj: obj.readline(), GOOD),
}


@asynccontextmanager
async def writer_and_reader(
    server_and_client: ServerAndClient, side: str, **reader_kwargs: Any
) -> AsyncIterator[tuple[anytcpip.BaseClientOrServer, anytcpip.BaseClientOrServer]]:
    """A connected pair: (writer, reader); the reader (the client or the
    server, per ``side``) gets ``reader_kwargs`` and ``limit=LIMIT``."""
    kwargs = {"limit": LIMIT, **reader_kwargs}
    if side == "client":
        async with server_and_client(client_kwargs=kwargs) as (server, client):
            yield server, client
    else:
        async with server_and_client(server_kwargs=kwargs) as (server, client):
            yield client, server


def skipped_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "skipped" in r.getMessage()]


@pytest.mark.parametrize("name", ["Client", "OneClientServer", "TestOneClientReadLoopServer"])
def test_bad_oversize_is_rejected_naming_the_choices(name: str, log: logging.Logger) -> None:
    cls = getattr(anytcpip, name)
    kwargs: dict[str, Any] = {"host": anytcpip.LOCALHOST_IPV4, "port": 0, "log": log}
    if name == "Client":
        kwargs["port"] = 1
    with pytest.raises(ValueError, match="'raise', 'discard', 'close'"):
        cls(**kwargs, oversize="drop")
    obj = cls(**kwargs, oversize="close")
    assert obj.oversize == "close"
    with pytest.raises(ValueError, match="'raise', 'discard', 'close'"):
        obj.oversize = "ignore"
    assert obj.oversize == "close"
    assert cls(**kwargs).oversize == "raise"


@pytest.mark.parametrize("side", ["client", "server"])
@deadline()
async def test_raise_is_the_default_and_can_be_changed_between_messages(
    server_and_client: ServerAndClient, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="anytcpip")
    async with writer_and_reader(server_and_client, side) as (writer, reader):
        assert reader.oversize == "raise"
        await writer.write(TWO_LONG + GOOD)
        with pytest.raises(anytcpip.LimitOverrunError):
            await reader.read_str()
        reader.oversize = "discard"
        assert await reader.read_str() == '"next"'
        assert len(skipped_records(caplog)) == 1
        reader.oversize = "raise"
        await writer.write(TWO_LONG[: LIMIT + 1] + b"\r\n")
        with pytest.raises(anytcpip.LimitOverrunError):
            await reader.read_str()
        assert reader.connected


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("read", sorted(READS))
@deadline()
async def test_discard_returns_the_next_message(
    server_and_client: ServerAndClient,
    side: str,
    read: str,
    monitor: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="anytcpip")
    method, expected = READS[read]
    async with writer_and_reader(
        server_and_client, side, oversize="discard", monitor_connection_interval=monitor
    ) as (writer, reader):
        # Already buffered when the read starts...
        await writer.write(TWO_LONG + GOOD)
        await anyio.wait_all_tasks_blocked()
        assert await method(reader) == expected
        # ...and arriving while it waits.
        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def read_one() -> None:
                results.append(await method(reader))

            tg.start_soon(read_one)
            await anyio.wait_all_tasks_blocked()
            await writer.write(TWO_LONG)
            await writer.write(GOOD)
        assert results == [expected]
        assert reader.connected
    records = skipped_records(caplog)
    # Four skipped: the first is a warning, the others are at debug level.
    assert [r.levelno for r in records] == [logging.WARNING] + [logging.DEBUG] * 3


@pytest.mark.parametrize("side", ["client", "server"])
@deadline()
async def test_discard_across_many_chunks(log: logging.Logger, side: str) -> None:
    """An over-long message that arrives a byte at a time (through a relay)
    is skipped, and the message after it arrives intact."""
    kwargs: dict[str, Any] = {"limit": LIMIT, "oversize": "discard"}
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4,
        port=0,
        log=log,
        **(kwargs if side == "server" else {}),
    ) as server:
        async with (
            one_byte_relay(server.port) as relay,
            anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4,
                port=relay.port,
                log=log,
                **(kwargs if side == "client" else {}),
            ) as client,
        ):
            await server.connected_task
            writer, reader = (server, client) if side == "client" else (client, server)
            long = b"z" * (LIMIT * 3) + b"\r\n"
            await writer.write(long + b"after\r\n" + long + b"and again\r\n")
            assert await reader.read_str() == "after"
            assert await reader.read_str() == "and again"


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("read", sorted(READS))
@deadline()
async def test_close_gives_the_reason(
    server_and_client: ServerAndClient, side: str, read: str, monitor: float
) -> None:
    method, _ = READS[read]
    async with writer_and_reader(
        server_and_client, side, oversize="close", monitor_connection_interval=monitor
    ) as (writer, reader):
        await writer.write(TWO_LONG + GOOD)
        with pytest.raises(ConnectionError) as info:
            await method(reader)
        assert isinstance(info.value.__cause__, anytcpip.LimitOverrunError)
        assert not reader.connected
        reason = await reader.wait_disconnected()
        assert reason is not None
        assert reason.kind is anytcpip.DisconnectKind.OVER_LIMIT
        assert reader.disconnect_reason is reason
        assert "over limit" in str(reason)
        # The peer sees the connection go.
        await writer.wait_disconnected()
        assert not writer.connected
        with pytest.raises(ConnectionError):
            await reader.read_str()


@deadline()
async def test_close_on_a_server_serves_the_next_client(log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, limit=LIMIT, oversize="close"
    ) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as first:
            await server.connected_task
            await first.write(TWO_LONG)
            with pytest.raises(ConnectionError):
                await server.read_str()
            await first.wait_disconnected()
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as second:
            await server.connected_task
            await second.write_str("hello")
            assert await server.read_str() == "hello"
        assert server.disconnect_reason is not None


@deadline()
async def test_read_loop_server_discard_keeps_serving(log: logging.Logger) -> None:
    async with anytcpip.TestOneClientReadLoopServer(
        port=0, log=log, limit=LIMIT, oversize="discard"
    ) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await server.connected_task
            await client.write(TWO_LONG)
            await client.write_str("kept")
            await client.write(TWO_LONG)
            await client.write_str("still kept")
            assert await server.get_next_data() == "kept"
            assert await server.get_next_data() == "still kept"
            assert server.connected
            assert client.connected


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@deadline()
async def test_read_loop_server_close_drops_the_client(log: logging.Logger, monitor: float) -> None:
    async with anytcpip.TestOneClientReadLoopServer(
        port=0, log=log, limit=LIMIT, oversize="close", monitor_connection_interval=monitor
    ) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await server.connected_task
            await client.write_str("first")
            assert await server.get_next_data() == "first"
            await client.write(TWO_LONG)
            reason = await server.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.OVER_LIMIT
            await client.wait_disconnected()
        # The server goes on listening: the next client is served.
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as again:
            await server.connected_task
            await again.write_str("second")
            assert await server.get_next_data() == "second"


@deadline()
async def test_discard_and_close_with_tls(server_and_client: ServerAndClient) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    async with server_and_client(
        server_kwargs={"ssl_context": server_context, "limit": LIMIT, "oversize": "discard"},
        client_kwargs={"ssl_context": client_context},
    ) as (server, client):
        await client.write(TWO_LONG + b"after\r\n")
        assert await server.read_str() == "after"
        server.oversize = "close"
        await client.write(TWO_LONG)
        with pytest.raises(ConnectionError):
            await server.read_str()
        reason = await server.wait_disconnected()
        assert reason is not None
        assert reason.kind is anytcpip.DisconnectKind.OVER_LIMIT
        await client.wait_disconnected()
