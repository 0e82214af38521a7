"""The echo-server example of the user guide, written as a test so it cannot rot.

A mock controller is a subclass of OneClientReadLoopServer that defines
``read_and_dispatch``; control code talks to it through a Client.
"""

from __future__ import annotations

import logging

import anyio

import anytcpip


class EchoServer(anytcpip.OneClientReadLoopServer):
    """A trivial echo server: each line read is written back."""

    async def read_and_dispatch(self) -> None:
        data = await self.read_str()
        await self.write_str(data)


async def test_echo_server(log: logging.Logger) -> None:
    with anyio.fail_after(10):
        # The scoped form: listening and connected before each body runs,
        # closed (every task finished) when each block ends.
        async with EchoServer(port=0, log=log) as server:
            async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
                await server.connected_task
                for text in ("some data", "more data", "yet more data"):
                    await client.write_str(text)
                    assert await client.read_str() == text


async def test_echo_server_owned_form(log: logging.Logger) -> None:
    with anyio.fail_after(10):
        # The owned form: objects run in your task group until close().
        async with anyio.create_task_group() as tg:
            server = EchoServer(port=0, log=log)
            await tg.start(server.run)
            client = anytcpip.Client(host=server.host, port=server.port, log=log)
            await tg.start(client.run)
            await server.connected_task
            await client.write_str("hello")
            assert await client.read_str() == "hello"
            await client.close()
            await server.close()
        assert client.done_task.done()
        assert server.done_task.done()
