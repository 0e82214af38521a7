"""A mock dome controller: ``\\n``-terminated commands, an unterminated
``>`` prompt, and a homing move simulated in a task of its own."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import anytcpip as tcpip  # was: from lsst.ts import tcpip


class MockDomeController(tcpip.OneClientReadLoopServer):
    """Answers ``?`` (status), ``MV <az>`` (move), ``HM`` (home), ``ST``
    (stop); every reply ends with the ``>`` prompt."""

    def __init__(
        self,
        port: int,
        log: logging.Logger,
        home_duration: float = 0.2,
        connect_callback: tcpip.ConnectCallbackType | None = None,
    ) -> None:
        self.azimuth = 0.0
        self.homed = False
        self.homing = False
        self.home_duration = home_duration
        self.dispatch_dict: dict[str, Callable[..., Awaitable[None]]] = {
            "?": self.do_status,
            "MV": self.do_move,
            "HM": self.do_home,
            "ST": self.do_stop,
        }
        super().__init__(
            port=port, log=log, connect_callback=connect_callback, terminator=b"\n"
        )

    async def read_loop(self) -> None:
        # Greet each client, then read commands (an override ts_tcpip allows).
        await self.write_str("Mock Dome")
        await self.write_prompt()
        await super().read_loop()

    async def write_prompt(self) -> None:
        await self.write(b">")

    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        items = line.split()
        if not items:
            await self.write_prompt()
            return
        func = self.dispatch_dict.get(items[-1])
        if func is None:
            await self.write_str(f"Unsupported command {items[-1]}")
        else:
            await func(*items[:-1])
        await self.write_prompt()

    async def do_status(self) -> None:
        await self.write_str(f"AZ {self.azimuth:.1f} HOMED {int(self.homed)}")

    async def do_move(self, azimuth: str) -> None:
        self.azimuth = float(azimuth) % 360

    async def do_home(self) -> None:
        if not self.homing:
            self.homing = True
            # ts_tcpip: asyncio.create_task(self.home()). start_soon keeps that
            # lifetime: homing goes on if the client disconnects, as on the
            # real controller (start_connection_soon would cancel it).
            self.start_soon(self.home)

    async def do_stop(self) -> None:
        self.homing = False

    async def home(self) -> None:
        try:
            await anyio.sleep(self.home_duration)
            if self.homing:
                self.azimuth = 10.0
                self.homed = True
        finally:
            self.homing = False


def make_mock(**kwargs: Any) -> MockDomeController:
    """A mock on a free port of this machine."""
    return MockDomeController(port=0, log=logging.getLogger("MockDome"), **kwargs)
