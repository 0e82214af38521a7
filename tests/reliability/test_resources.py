"""Resource leaks over many connect/close cycles (docs/reliability.rst R32; the
per-test fd check is the autouse fixture in tests/conftest.py)."""

from __future__ import annotations

import gc
import logging
import os

import anyio
import psutil

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

CYCLES = 300


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settle() -> None:
    for _ in range(3):
        await anyio.sleep(0.01)
    gc.collect()


@deadline(120)
async def test_connect_close_cycles(log: logging.Logger) -> None:
    """R32: 300 connect/exchange/close cycles of a Client against one
    OneClientServer keep the fd count flat (after a warm-up cycle: uvloop's one-time descriptor),
    leave no task behind, grow RSS by less than 5 MB, and give the server
    strictly alternating callbacks."""
    cb = ConnectRecorder(timeout=5.0)
    process = psutil.Process()
    tasks_before = len(anyio.get_running_tasks())
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb
    ) as server:

        async def cycle(i: int) -> None:
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
            ) as client:
                await cb.wait_count(2 * i + 1)
                await client.write_str(f"cycle {i}")
                assert await server.read_str() == f"cycle {i}"
            await cb.wait_count(2 * i + 2)

        await cycle(0)
        await _settle()
        fds0 = _fds()
        rss0 = process.memory_info().rss
        for i in range(1, CYCLES):
            await cycle(i)
        await _settle()
        assert _fds() == fds0
        assert process.memory_info().rss - rss0 < 5 << 20
    cb.assert_alternating()
    assert len(cb.states) == 2 * CYCLES
    await _settle()
    assert len(anyio.get_running_tasks()) == tasks_before
