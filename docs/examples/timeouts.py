"""Timeouts and cancellation: a cancelled read loses nothing."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("timeouts")


async def main() -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task

            # Half of a message arrives, then nothing: the read times out.
            await server.write(b"position=")
            try:
                with anyio.fail_after(0.1):  # raises TimeoutError
                    await client.read_str()
            except TimeoutError:
                pass

            # Or without an exception: move_on_after just stops waiting.
            with anyio.move_on_after(0.1) as scope:
                await client.read_str()
            assert scope.cancelled_caught

            # The cancelled reads consumed nothing: the first half is still
            # there and the next read returns the whole message.
            await server.write(b"12.5\r\n")
            assert await client.read_str() == "position=12.5"


if __name__ == "__main__":
    anyio.run(main)
