"""What a message longer than the read limit does: oversize=."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("oversize")


async def main() -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4,
        port=0,
        log=log,
        limit=80,  # the longest message accepted, without its terminator
        oversize="discard",  # skip over-long messages; the read goes on
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task

            # "discard": the read skips the garbage (and logs the first skip
            # as a warning) and returns the next message.
            await client.write(b"#" * 1000 + b"\r\n")
            await client.write_str("status?")
            assert await server.read_str() == "status?"

            # "raise" (the default): the read raises LimitOverrunError, the
            # message is thrown away and the next read gets the next one.
            server.oversize = "raise"  # settable between messages
            await client.write(b"#" * 1000 + b"\r\n")
            await client.write_str("move 12.5")
            try:
                await server.read_str()
            except anytcpip.LimitOverrunError:
                pass
            assert await server.read_str() == "move 12.5"

            # "close": the connection is closed at this end, the read raises
            # ConnectionError and the reason says why.
            server.oversize = "close"
            await client.write(b"#" * 1000 + b"\r\n")
            try:
                await server.read_str()
            except ConnectionError:
                pass
            reason = await server.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.OVER_LIMIT
            await client.wait_disconnected()  # the client sees it go


if __name__ == "__main__":
    anyio.run(main)
