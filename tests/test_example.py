"""The echo-server example of the user guide, written as a test so it cannot rot.

A mock controller is a subclass of OneClientReadLoopServer that defines
``read_and_dispatch``; control code talks to it through a Client.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

import anytcpip
import anytcpip.testing
from helpers import deadline


class EchoServer(anytcpip.OneClientReadLoopServer):
    """A trivial echo server: each line read is written back."""

    async def read_and_dispatch(self) -> None:
        data = await self.read_str()
        await self.write_str(data)


@deadline(10)
async def test_echo_server(log: logging.Logger) -> None:
    # The scoped form: listening and connected before each body runs,
    # closed (every task finished) when each block ends.
    async with EchoServer(port=0, log=log) as server:
        async with anytcpip.Client(host=server.host, port=server.port, log=log) as client:
            await server.connected_task
            for text in ("some data", "more data", "yet more data"):
                await client.write_str(text)
                assert await client.read_str() == text


@deadline(10)
async def test_echo_server_owned_form(log: logging.Logger) -> None:
    # The owned form: objects run in your task group until close().
    async with anyio.create_task_group() as tg:
        server = EchoServer(port=0, log=log)
        await tg.start(server.run)
        client = anytcpip.Client(host=server.host, port=server.port, log=log)
        await tg.start(client.run)
        await server.connected_task
        await client.write_str("hello")
        assert await client.read_str() == "hello"
        await client.close()
        await server.close()
    assert client.done_task.done()
    assert server.done_task.done()


# The ts_tcpip-style example package (docs/examples/ts_style): a mock
# controller, a commander and their unittest-style tests, moved over by
# changing the import (and the lifecycle lines the migration guide names).

TS_STYLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "ts_style"


@pytest.mark.no_fd_check
def test_ts_style_package(pytester: pytest.Pytester) -> None:
    backends = len(anytcpip.testing.available_backends())
    result = pytester.runpytest_subprocess(str(TS_STYLE), "-p", "no:cacheprovider", "-v")
    # MockDomeTestCase: 3 on asyncio; MockDomeAllBackendsTestCase: 2 per
    # backend; CommanderTestCase (IsolatedAsyncioTestCase): 2.
    result.assert_outcomes(passed=3 + 2 * backends + 2)
    result.stdout.fnmatch_lines(["*MockDomeTestCase::test_status_and_move PASSED*"])
    if "trio" in [p.id for p in anytcpip.testing.available_backends()]:
        result.stdout.fnmatch_lines(["*test_home__trio PASSED*"])
