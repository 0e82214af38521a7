"""Connection state: connect_callback, connected and should_be_connected."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("callbacks")


async def main() -> None:
    changes: list[bool] = []
    lost = anyio.Event()

    async def connect_callback(client: anytcpip.Client) -> None:
        # Called once per change of client.connected: True, then False.
        changes.append(client.connected)
        if not client.connected:
            lost.set()

    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=server.port,
            log=log,
            connect_callback=connect_callback,
        ) as client:
            await server.connected_task

            # The server hangs up. Nobody is reading, yet the client notices
            # within milliseconds and calls the callback.
            await server.close_client()
            with anyio.fail_after(5):
                await lost.wait()

            # connected is False but should_be_connected is still True: the
            # connection was lost, not closed by this end.
            state = (client.connected, client.should_be_connected)
            assert state == (False, True)
            # A client connects once: to reconnect, make a new Client.

        # Leaving the block closed the client at this end, as close() does.
        assert not client.should_be_connected
    assert changes == [True, False]


if __name__ == "__main__":
    anyio.run(main)
