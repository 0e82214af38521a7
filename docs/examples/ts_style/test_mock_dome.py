"""Tests of the mock, written as ts_tcpip users write them."""

# ruff: noqa: PT009

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio

import anytcpip as tcpip  # was: from lsst.ts import tcpip
from anytcpip.testing import ALL_BACKENDS

from .mock_dome import MockDomeController

STD_TIMEOUT = 5


class MockDomeTestCase(tcpip.BaseOneClientServerTestCase):
    """Unchanged from the ts_tcpip version but for the import (asyncio)."""

    server_class = MockDomeController

    @contextlib.asynccontextmanager
    async def create_client(  # type: ignore[override]
        self, server: tcpip.OneClientServer
    ) -> AsyncIterator[tcpip.Client]:
        async with super().create_client(server, terminator=b"\n") as client:
            greeting = await asyncio.wait_for(
                client.readuntil(b">"), timeout=STD_TIMEOUT
            )
            self.assertEqual(greeting, b"Mock Dome\n>")
            yield client

    async def send_cmd(self, client: tcpip.Client, cmd: str) -> list[str]:
        await asyncio.wait_for(client.write_str(cmd), timeout=STD_TIMEOUT)
        data = await asyncio.wait_for(client.readuntil(b">"), timeout=STD_TIMEOUT)
        return [line for line in data.decode()[:-1].split("\n") if line]

    async def test_status_and_move(self) -> None:
        async with self.create_server() as mock, self.create_client(mock) as client:
            self.assertEqual(await self.send_cmd(client, "?"), ["AZ 0.0 HOMED 0"])
            for azimuth in (90, 370):
                with self.subTest(azimuth=azimuth):
                    await self.send_cmd(client, f"{azimuth} MV")
                    self.assertEqual(mock.azimuth, azimuth % 360)

    async def test_unsupported(self) -> None:
        async with self.create_server() as mock, self.create_client(mock) as client:
            self.assertEqual(
                await self.send_cmd(client, "XX"), ["Unsupported command XX"]
            )

    async def test_connect_callback(self) -> None:
        async with self.create_server(connect_callback=self.connect_callback) as mock:
            async with self.create_client(mock):
                await self.assert_next_connected(True)
            await self.assert_next_connected(False)


class MockDomeAllBackendsTestCase(
    tcpip.BaseOneClientServerTestCase[MockDomeController]
):
    """The same kind of test on every backend: asyncio.wait_for becomes
    anyio.fail_after, and the server is held from asyncSetUp to the end."""

    server_class = MockDomeController
    anyio_backends = ALL_BACKENDS

    async def asyncSetUp(self) -> None:
        self.mock = await self.enterAsyncContext(self.create_server(home_duration=0.05))
        self.client = await self.enterAsyncContext(
            super().create_client(self.mock, terminator=b"\n")
        )
        with anyio.fail_after(STD_TIMEOUT):
            self.assertEqual(await self.client.readuntil(b">"), b"Mock Dome\n>")

    async def send_cmd(self, cmd: str) -> list[str]:
        with anyio.fail_after(STD_TIMEOUT):
            await self.client.write_str(cmd)
            data = await self.client.readuntil(b">")
        return [line for line in data.decode()[:-1].split("\n") if line]

    async def test_home(self) -> None:
        await self.send_cmd("HM")
        self.assertTrue(self.mock.homing)
        with anyio.fail_after(STD_TIMEOUT):
            while self.mock.homing:
                await anyio.sleep(0.01)
        self.assertEqual(await self.send_cmd("?"), ["AZ 10.0 HOMED 1"])

    async def test_homing_goes_on_after_the_connection(self) -> None:
        # As with asyncio.create_task in ts_tcpip, and on the real controller.
        await self.send_cmd("HM")
        await self.client.close()
        with anyio.fail_after(STD_TIMEOUT):
            while self.mock.homing:
                await anyio.sleep(0.01)
        self.assertTrue(self.mock.homed)
