"""Testing with the pytest plugin's fixtures (function-style tests).

The plugin is installed with anytcpip; anyio's pytest plugin runs the async
tests (``anyio_mode = "auto"``, or mark them ``@pytest.mark.anyio``).
"""

from __future__ import annotations

from typing import Any

import anytcpip
from anytcpip.testing import ConnectRecorder


class EchoServer(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        await self.write_str(await self.read_str())


async def test_echo(
    anytcpip_server_factory: Any,
    anytcpip_client_factory: Any,
    anytcpip_connect_recorder: ConnectRecorder,
) -> None:
    server = await anytcpip_server_factory(
        EchoServer, connect_callback=anytcpip_connect_recorder.callback
    )
    # Connected, and the server has the client (wait_connected=False skips it).
    client = await anytcpip_client_factory(server)
    await anytcpip_connect_recorder.assert_next(True)

    await client.write_str("some data")
    assert await client.read_str() == "some data"

    await client.close()
    await anytcpip_connect_recorder.assert_next(False)
    # Servers and clients still open are closed after the test.
