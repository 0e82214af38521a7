"""Quick start: a server and a client exchange strings and JSON."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("quickstart")


async def main() -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log
    ) as server:
        # port=0 picked a free port; server.port tells which.
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task  # the server has accepted the client

            await client.write_str("hello")
            assert await server.read_str() == "hello"

            await client.write_json({"command": "move", "position": 12.5})
            command = await server.read_json()
            await server.write_json({"ack": command["command"]})
            assert await client.read_json() == {"ack": "move"}
        # Leaving the blocks closed the client, then the server.
    assert client.done_task.done()
    assert server.done_task.done()


if __name__ == "__main__":
    anyio.run(main)  # or anyio.run(main, backend="trio")
