"""Tests of the commander on unittest.IsolatedAsyncioTestCase, as most
lsst-ts tests are written."""

# ruff: noqa: PT009

from __future__ import annotations

import asyncio
import logging
import unittest

import anytcpip as tcpip  # was: from lsst.ts import tcpip

from .commander import DomeCommander
from .mock_dome import make_mock


class CommanderTestCase(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        # ts_tcpip: self.mock = make_mock(); await self.mock.start_task
        self.mock = await tcpip.start_in_background(make_mock())  # anytcpip
        self.commander = DomeCommander(log=logging.getLogger("commander"))
        await asyncio.wait_for(
            self.commander.connect(self.mock.host, self.mock.port), 5
        )

    async def asyncTearDown(self) -> None:
        await self.commander.disconnect()
        await self.mock.close()

    async def test_move_and_status(self) -> None:
        self.assertTrue(self.commander.connected)
        await self.commander.run_command("45 MV")
        self.assertEqual(await self.commander.run_command("?"), ["AZ 45.0 HOMED 0"])

    async def test_reconnect(self) -> None:
        await self.commander.connect(self.mock.host, self.mock.port)
        self.assertEqual(await self.commander.run_command("?"), ["AZ 0.0 HOMED 0"])
