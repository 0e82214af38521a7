"""Listening on an IP address binds that one socket itself (no name lookup);
the options and the errors are those of anyio.create_tcp_listener."""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import NET_TIMEOUT, check_read_write, deadline, has_ipv6

ADDRESSES = [
    anytcpip.LOCALHOST_IPV4,
    pytest.param(
        anytcpip.LOCALHOST_IPV6,
        marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback"),
    ),
]


@pytest.mark.parametrize("host", ADDRESSES)
@deadline()
async def test_listens_on_the_address_given(host: str, log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(host=host, port=0, log=log) as server:
        assert server.port != 0
        assert server.bound_addresses == [(host, server.port)]
        async with anytcpip.Client(host=host, port=server.port, log=log) as client:
            await server.connected_task
            await check_read_write(reader=server, writer=client)
            await check_read_write(reader=client, writer=server)


@deadline()
async def test_any_ipv4_address_accepts_on_loopback(log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(host="0.0.0.0", port=0, log=log) as server:
        assert server.bound_addresses == [("0.0.0.0", server.port)]
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task
            await check_read_write(reader=server, writer=client)


@pytest.mark.parametrize("host", ADDRESSES)
@deadline()
async def test_port_reusable_at_once_after_close(host: str, log: logging.Logger) -> None:
    """The server closes first, so its end of the connection lingers in
    TIME_WAIT: a new server on the same port must still bind (SO_REUSEADDR, as
    anyio and asyncio set it)."""
    recorder = ConnectRecorder(timeout=NET_TIMEOUT)
    async with anytcpip.OneClientServer(
        host=host, port=0, log=log, connect_callback=recorder
    ) as server:
        port = server.port
        async with anytcpip.Client(host=host, port=port, log=log) as client:
            await recorder.assert_next(True)
            await check_read_write(reader=client, writer=server)
            await server.close()
            with pytest.raises((anytcpip.IncompleteReadError, ConnectionError)):
                await client.read_str()
    async with anytcpip.OneClientServer(host=host, port=port, log=log) as again:
        assert again.port == port
        async with anytcpip.Client(host=host, port=port, log=log) as client:
            await again.connected_task
            await check_read_write(reader=again, writer=client)


@deadline()
async def test_port_in_use_fails_with_the_errno(log: logging.Logger) -> None:
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as first:
        second = anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=first.port, log=log)
        with pytest.raises(OSError) as info:  # noqa: PT011 (the errno is checked)
            await second.__aenter__()
        assert info.value.errno == errno.EADDRINUSE
        assert second.done_task.done()
        # The first is unharmed.
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=first.port, log=log
        ) as client:
            await first.connected_task
            await check_read_write(reader=first, writer=client)


@deadline()
async def test_reuse_port_lets_two_servers_share_a_port(log: logging.Logger) -> None:
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT here")
    host = anytcpip.LOCALHOST_IPV4
    async with anytcpip.OneClientServer(
        host=host, port=0, log=log, reuse_port=True, backlog=3
    ) as first:
        async with anytcpip.OneClientServer(
            host=host, port=first.port, log=log, reuse_port=True
        ) as second:
            assert second.port == first.port


@deadline()
async def test_family_not_matching_the_address_fails(log: logging.Logger) -> None:
    """An IPv4 address with family=AF_INET6 is anyio's to refuse, as before."""
    server = anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, family=socket.AF_INET6
    )
    with pytest.raises(OSError):  # noqa: PT011 (the resolver's error, which varies)
        async with server:
            pytest.fail("the body must not run")
    assert server.done_task.done()


@deadline()
async def test_addresses_skip_anyio_lookup_and_happy_eyeballs(
    log: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an IP address neither anyio.create_tcp_listener (a name lookup in
    a worker thread) nor anyio.connect_tcp (happy eyeballs) is used; with a
    name both are."""
    calls: list[str] = []
    create, connect = anyio.create_tcp_listener, anyio.connect_tcp

    async def counted_create(**kwargs: Any) -> Any:
        calls.append("listen")
        return await create(**kwargs)

    async def counted_connect(*args: Any, **kwargs: Any) -> Any:
        calls.append("connect")
        return await connect(*args, **kwargs)

    monkeypatch.setattr(anyio, "create_tcp_listener", counted_create)
    monkeypatch.setattr(anyio, "connect_tcp", counted_connect)
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task
            await check_read_write(reader=server, writer=client)
    assert calls == []
    async with anytcpip.OneClientServer(host="localhost", port=0, log=log) as server:
        async with anytcpip.Client(host="localhost", port=server.port, log=log) as client:
            await server.connected_task
            await check_read_write(reader=client, writer=server)
    assert calls == ["listen", "connect"]


@deadline()
async def test_refused_connection_names_the_address(log: logging.Logger) -> None:
    with socket.socket() as sock:
        sock.bind((anytcpip.LOCALHOST_IPV4, 0))
        port = sock.getsockname()[1]
        client = anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=port, log=log)
        with pytest.raises(ConnectionRefusedError) as info:
            await client.__aenter__()
    assert info.value.errno == errno.ECONNREFUSED
    assert f"('{anytcpip.LOCALHOST_IPV4}', {port})" in str(info.value)
    assert client.done_task.done()
