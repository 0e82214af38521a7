"""Server start errors: address in use, port 0, IPv6 (docs/reliability.rst R14)."""

from __future__ import annotations

import errno
import logging

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline, has_ipv6

from .harness import TEST_TIMEOUT


@pytest.mark.parametrize("form", ["scoped", "owned"])
@deadline(TEST_TIMEOUT)
async def test_address_in_use(log: logging.Logger, form: str) -> None:
    """R14: a second server on a port in use fails to start with
    OSError(EADDRINUSE), from ``async with`` or from ``tg.start(server.run)``;
    the error reaches start_task; done_task is done; no listener fd leaks
    (autouse check); the first server keeps serving."""
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as first:
        cb = ConnectRecorder(timeout=5.0)
        second = anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4, port=first.port, log=log, connect_callback=cb
        )

        async def start() -> None:
            if form == "scoped":
                async with second:
                    pytest.fail("bound a port in use")
            else:
                async with anyio.create_task_group() as tg:
                    await tg.start(second.run)

        with pytest.raises(Exception) as info:  # noqa: PT011
            await start()
        errors = [info.value]
        while hasattr(errors[0], "exceptions"):
            errors = list(errors[0].exceptions)
        assert all(isinstance(e, OSError) for e in errors), info.value
        assert errors[0].errno == errno.EADDRINUSE  # type: ignore[attr-defined]
        assert second.start_task.done()
        assert isinstance(second.start_task.exception(), OSError)
        assert second.done_task.done()
        assert cb.states == []
        await second.close()
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=first.port, log=log
        ) as client:
            await first.connected_task
            await client.write_str("first still works")
            assert await first.read_str() == "first still works"


@deadline(TEST_TIMEOUT)
async def test_port_0_all_interfaces(log: logging.Logger) -> None:
    """R14: ``host=None, port=0`` listens on every interface, and every
    bound socket shares one port, so ``port`` is never ambiguous (unlike
    ts_tcpip); a client on 127.0.0.1 is served."""
    async with anytcpip.OneClientServer(host=None, port=0, log=log) as server:
        assert server.port != 0
        assert server.bound_addresses
        assert {port for _, port in server.bound_addresses} == {server.port}
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task
            await client.write_str("hi")
            assert await server.read_str() == "hi"


@deadline(TEST_TIMEOUT)
async def test_ipv6(log: logging.Logger) -> None:
    """R14: a server on ::1 serves a client on ::1; where IPv6 is missing, the
    test skips cleanly."""
    if not has_ipv6():
        pytest.skip("IPv6 loopback is not available")
    async with anytcpip.OneClientServer(host=anytcpip.LOCALHOST_IPV6, port=0, log=log) as server:
        assert server.bound_addresses == [(anytcpip.LOCALHOST_IPV6, server.port)]
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV6, port=server.port, log=log
        ) as client:
            await server.connected_task
            await server.write_str("over ipv6")
            assert await client.read_str() == "over ipv6"
