"""A one-client server that serves the newest client: second_client="replace"."""

from __future__ import annotations

import logging

import anyio

import anytcpip
from anytcpip import DisconnectKind

log = logging.getLogger("second_client")


async def main() -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, second_client="replace"
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as before_reboot:
            await server.connected_task
            # The controller reboots and connects again; its old connection
            # is still open as far as the server knows.
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
            ) as after_reboot:
                with anyio.fail_after(5):
                    # The server closes the old client (its disconnect
                    # callback runs first), then serves the new one.
                    old = await before_reboot.wait_disconnected()
                    await server.connected_task
                # The old client saw the server close it ...
                assert old is not None
                assert old.kind is DisconnectKind.PEER_CLOSED
                # ... and the server says why.
                reason = server.disconnect_reason
                assert reason is not None
                assert reason.kind is DisconnectKind.REPLACED
                await after_reboot.write_str("hello again")
                assert await server.read_str() == "hello again"


if __name__ == "__main__":
    anyio.run(main)
