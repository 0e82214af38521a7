"""Testing a client against TestOneClientReadLoopServer (function-style test).

The pytest configuration has ``anyio_mode = "auto"`` (or mark the test
``@pytest.mark.anyio``); the fixtures come from anytcpip's pytest plugin.
"""

from __future__ import annotations

import json
from typing import Any

import anyio

import anytcpip


class MountClient:
    """The code under test: a client of a mount controller."""

    def __init__(self, client: anytcpip.Client) -> None:
        self.client = client

    async def move(self, position: float) -> bool:
        await self.client.write_json({"command": "move", "position": position})
        reply = await self.client.read_json()
        return bool(reply["ok"])


async def test_mount_client_moves(
    anytcpip_server_factory: Any, anytcpip_client_factory: Any
) -> None:
    # The client sends heartbeats, so the test server must monitor them: a
    # server without a heartbeat monitor drops a client that sends one.
    server = await anytcpip_server_factory(
        anytcpip.TestOneClientReadLoopServer, run_heartbeat_monitor_task=True
    )
    client = await anytcpip_client_factory(
        server, run_heartbeat_send_task=True, heartbeat_send_sleep=0.1
    )
    mount = MountClient(client)

    async def controller() -> None:
        # Each message the client sent, as a string; heartbeats are handled
        # by the server and never show up here.
        sent = json.loads(await server.get_next_data())
        assert sent == {"command": "move", "position": 12.5}
        await server.write_json({"ok": True})

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(controller)
            assert await mount.move(12.5)
    assert client.connected
