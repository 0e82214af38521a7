"""A commander (the CSC side): connects a Client and sends commands."""

from __future__ import annotations

import logging

import anytcpip as tcpip  # was: from lsst.ts import tcpip


class DomeCommander:
    """Talks to a (mock) dome controller; reconnecting makes a new Client."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        # A placeholder that is already closed, as in ts_tcpip.
        self.client = tcpip.Client(host="", port=None, log=log)

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def connect(self, host: str | None, port: int) -> None:
        await self.disconnect()
        client = tcpip.Client(host=host, port=port, log=self.log, terminator=b"\n")
        # ts_tcpip: await client.start_task
        await tcpip.start_in_background(
            client
        )  # anytcpip: the object outlives this task
        self.client = client
        greeting = await self.client.readuntil(b">")
        self.log.info("connected: %r", greeting)

    async def run_command(self, command: str) -> list[str]:
        """Send a command; return the reply lines (prompt stripped)."""
        await self.client.write_str(command)
        reply = (await self.client.readuntil(b">")).decode()[:-1]
        return [line for line in reply.split("\n") if line]

    async def disconnect(self) -> None:
        await self.client.close()
