"""Testing a server with BaseOneClientServerTests (pytest, every backend).

Put this in a test module; pytest collects ``TestEchoServer``.
"""

from __future__ import annotations

import anytcpip
from anytcpip.testing import BaseOneClientServerTests


class EchoServer(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        await self.write_str(await self.read_str())


class TestEchoServer(BaseOneClientServerTests[EchoServer]):
    server_class = EchoServer

    async def test_echo(self) -> None:
        async with self.create_server(connect_callback=self.connect_callback) as server:
            async with self.create_client(server) as client:
                await self.assert_next_connected(True)
                await client.write_str("some data")
                assert await client.read_str() == "some data"
            await self.assert_next_connected(False)
