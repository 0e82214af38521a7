"""ts_tcpip patterns and their anytcpip equivalents (see migrating.rst)."""

from __future__ import annotations

import asyncio
import logging

import anyio
import anyio.abc

import anytcpip

log = logging.getLogger("migration")


class EchoServer(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        await self.write_str(await self.read_str())


async def start_task_and_wait_for() -> None:
    # [start start_task]
    async with EchoServer(port=0, log=log) as server:
        # Listening already; start_task is done (and still awaitable).
        await server.start_task
        async with anytcpip.Client(
            host=server.host, port=server.port, log=log
        ) as client:
            await client.start_task  # connected already
            await server.connected_task
            with anyio.fail_after(1):  # was: asyncio.wait_for(..., timeout=1)
                await client.write_str("some data")
                assert await client.read_str() == "some data"
    # Both are closed here: done_task is done.
    await server.done_task
    # [end start_task]


async def placeholder_client() -> None:
    # [start placeholder]
    client = anytcpip.Client(host="", port=None, log=log)
    assert client.start_task.done()
    assert client.done_task.done()
    assert not client.connected
    assert not client.should_be_connected
    await client.close()  # a no-op
    # [end placeholder]


# [start callback tasks]
async def tasks_from_connect_callback(server: anytcpip.OneClientServer) -> None:
    received: list[str] = []
    got_both = anyio.Event()

    async def telemetry_loop(client: anytcpip.Client) -> None:
        """Runs while connected: cancelled when the connection goes."""
        try:
            while True:
                received.append(await client.read_str())
                if len(received) == 2:
                    got_both.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            # anytcpip.IncompleteReadError is an asyncio.IncompleteReadError,
            # so handlers written for ts_tcpip still catch it.
            log.info("telemetry stopped: connection closed")

    async def connect_callback(client: anytcpip.Client) -> None:
        if client.connected:
            # was: self.telemetry_task = asyncio.create_task(self.telemetry_loop())
            client.start_connection_soon(telemetry_loop, client)
        # was, when disconnected: self.telemetry_task.cancel() -- not needed

    async with anytcpip.Client(
        host=server.host, port=server.port, log=log, connect_callback=connect_callback
    ):
        await server.connected_task
        await server.write_str("t=1")
        await server.write_str("t=2")
        await got_both.wait()
    # Closing the client ended telemetry_loop: nothing outlives the block.
    assert received == ["t=1", "t=2"]


# [end callback tasks]


async def close_stream_on_plain_streams() -> None:
    # [start close_stream]
    async with await anyio.create_tcp_listener(
        local_host=anytcpip.LOCALHOST_IPV4, local_port=0
    ) as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        stream = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, port)
        # was: await tcpip.close_stream_writer(writer)
        await anytcpip.close_stream(stream)
        await anytcpip.close_stream(stream)  # already closed: no error
    # [end close_stream]


async def port_zero_on_every_interface() -> None:
    # [start port zero]
    async with anytcpip.OneClientServer(host=None, port=0, log=log) as server:
        # Every bound socket (IPv4 and IPv6) shares the one port, so
        # server.port is never ambiguous.
        for host, port in server.bound_addresses:
            assert port == server.port, host
    # [end port zero]


async def main() -> None:
    await start_task_and_wait_for()
    await placeholder_client()
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log
    ) as server:
        await tasks_from_connect_callback(server)
    await close_stream_on_plain_streams()
    await port_zero_on_every_interface()


if __name__ == "__main__":
    anyio.run(main)
