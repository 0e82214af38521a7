"""A mock controller: OneClientReadLoopServer, with heartbeats."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("mock")


class MockController(anytcpip.OneClientReadLoopServer):
    """Replies to ``{"command": "get_position"}``; tracks heartbeats."""

    position = 12.5

    async def read_and_dispatch(self) -> None:
        # Called in a loop while a client is connected. If it raises, the
        # error is logged, the client is dropped and the server keeps going.
        line = await self.read_str()
        if line == anytcpip.HEARTBEAT.decode():
            await self.handle_received_heartbeat()
            return
        if line == '{"command": "get_position"}':
            await self.write_json({"position": self.position})


async def main() -> None:
    async with MockController(
        port=0,
        log=log,
        run_heartbeat_monitor_task=True,
        max_heartbeat_interval=0.5,  # drop a client silent for this long
    ) as server:
        async with anytcpip.Client(
            host=server.host,
            port=server.port,
            log=log,
            run_heartbeat_send_task=True,  # writes HEARTBEAT + terminator
            heartbeat_send_sleep=0.1,  # every 0.1 s
        ) as client:
            await client.write_json({"command": "get_position"})
            assert await client.read_json() == {"position": 12.5}

            # Heartbeats keep the connection up well past the interval.
            await anyio.sleep(1)
            assert client.connected


if __name__ == "__main__":
    anyio.run(main)
