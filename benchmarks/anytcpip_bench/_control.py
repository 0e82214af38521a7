"""Commands from the parent process, read from stdin (anyio side)."""

from __future__ import annotations

import sys

import anyio.to_thread

__all__ = ("wait_for_command",)


async def wait_for_command(expected: str) -> None:
    """Wait until the parent writes the line ``expected`` to our stdin."""
    line = await anyio.to_thread.run_sync(sys.stdin.readline)
    if line.strip() != expected:
        raise RuntimeError(f"expected the command {expected!r}, got {line!r}")
