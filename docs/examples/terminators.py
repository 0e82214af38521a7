"""Terminators per direction: a device that takes commands ending in \\r and
ends its replies with \\r\\n\\x03."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("terminators")


class LaserMock(anytcpip.OneClientReadLoopServer):
    """A mock controller: commands end in \\r, replies in \\r\\n\\x03 (and a
    reply may hold several lines, each ended by \\r\\n)."""

    def __init__(self, *, port: int, log: logging.Logger) -> None:
        super().__init__(
            port=port, log=log, read_terminator=b"\r", write_terminator=b"\r\n\x03"
        )

    async def read_and_dispatch(self) -> None:
        command = await self.read_str()
        if command == "STATUS?":
            await self.write_str("power=42\r\nshutter=closed")
        else:
            await self.write_str("OK")


async def main() -> None:
    async with LaserMock(port=0, log=log) as laser:
        async with anytcpip.Client(
            host=laser.host,
            port=laser.port,
            log=log,
            read_terminator=b"\r\n\x03",  # what ends a reply
            write_terminator=b"\r",  # what write_str appends
        ) as client:
            await client.write_str("STATUS?")
            assert await client.read_str() == "power=42\r\nshutter=closed"

            # terminator= sets both directions (its getter gives the write one).
            client.terminator = b"\r\n"
            assert client.read_terminator == client.write_terminator == b"\r\n"

            # A tuple of alternatives: the one that ends first in the stream
            # ends the message (of two that end at the same place, the
            # longer), and read_str strips it.
            client.read_terminator = (b"\r\n", b"\n")
            await laser.write(b"one\ntwo\r\n")
            assert await client.read_str() == "one"
            assert await client.read_str() == "two"  # b"\r\n", not b"\n"


if __name__ == "__main__":
    anyio.run(main)
