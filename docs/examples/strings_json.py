"""Strings and JSON: encoding, terminator, and bad messages."""

from __future__ import annotations

import json
import logging

import anyio

import anytcpip

log = logging.getLogger("strings")


async def main() -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=server.port,
            log=log,
            encoding="latin-1",  # both ends must agree
            terminator=b"\n",
        ) as client:
            await server.connected_task
            server.encoding = "latin-1"  # settable between messages
            server.terminator = b"\n"

            # write_str encodes and appends the terminator; read_str reads up
            # to the terminator, strips it and decodes.
            await client.write_str("température 12.5")
            assert await server.read_str() == "température 12.5"

            # A message that is not JSON raises JSONDecodeError (with the data
            # in its message), and the connection stays usable.
            await client.write_str("not json")
            await client.write_json([1, 2, 3])
            try:
                await server.read_json()
            except json.JSONDecodeError as exc:
                assert "not json" in str(exc)
            assert await server.read_json() == [1, 2, 3]

            # The raw byte methods are there too, as on asyncio streams.
            await client.write(b"raw bytes\n")
            assert await server.readuntil(b"\n") == b"raw bytes\n"


if __name__ == "__main__":
    anyio.run(main)
