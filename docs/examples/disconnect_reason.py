"""Why the connection ended: disconnect_reason and wait_disconnected()."""

from __future__ import annotations

import logging

import anyio

import anytcpip
from anytcpip import DisconnectKind

log = logging.getLogger("disconnect_reason")


async def main() -> None:
    seen: list[anytcpip.DisconnectReason | None] = []

    async def connect_callback(server: anytcpip.OneClientServer) -> None:
        if not server.connected:
            # Already set when the disconnect call comes.
            seen.append(server.disconnect_reason)

    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=connect_callback
    ) as server:
        assert server.disconnect_reason is None  # no connection has ended yet
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task
            # Half a message (no terminator) that the server never reads.
            await client.write(b"half a mess")
        # The client closed: the server sees its end-of-stream.
        with anyio.fail_after(5):
            reason = await server.wait_disconnected()
        assert reason is not None
        assert reason.kind is DisconnectKind.PEER_CLOSED
        assert reason.unread == 11
        # The line that was logged (at INFO) for this disconnect.
        assert str(reason) == "peer closed; 11 bytes unread"
        assert seen == [reason]

    # The client's side of the story: it closed the connection itself.
    assert client.disconnect_reason is not None
    assert client.disconnect_reason.kind is DisconnectKind.CLOSED_HERE


if __name__ == "__main__":
    anyio.run(main)
