"""The pytest plugin's fixtures, exercised in a separate pytest run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.no_fd_check

_TESTS = """
import anyio
import pytest

import anytcpip


class Echo(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self):
        await self.write_str(await self.read_str())


@pytest.mark.anyio
async def test_echo(anytcpip_server_factory, anytcpip_client_factory,
                    anytcpip_connect_recorder, anyio_backend):
    with anyio.fail_after(10):
        server = await anytcpip_server_factory(
            Echo, connect_callback=anytcpip_connect_recorder.callback
        )
        client = await anytcpip_client_factory(server)
        await anytcpip_connect_recorder.assert_next(True)
        await client.write_str("hi")
        assert await client.read_str() == "hi"
        await client.close()
        await anytcpip_connect_recorder.assert_next(False)


@pytest.mark.anyio
async def test_plain_server_defaults(anytcpip_server_factory, anytcpip_client_factory,
                                     anytcpip_log):
    with anyio.fail_after(10):
        server = await anytcpip_server_factory()
        assert isinstance(server, anytcpip.OneClientServer)
        assert server.host == anytcpip.DEFAULT_LOCALHOST
        assert server.log.parent is anytcpip_log
        client = await anytcpip_client_factory(server)
        await client.write(b"x")
        assert await server.readexactly(1) == b"x"


@pytest.mark.anyio
async def test_recorder_timeout(anytcpip_connect_recorder):
    with pytest.raises(TimeoutError):
        await anytcpip_connect_recorder.next(timeout=0.01)
"""


def test_fixtures_on_default_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures=_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    # anyio's own default: asyncio and trio.
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*test_echo*asyncio*PASSED*", "*test_echo*trio*PASSED*"])
    result.stdout.no_fnmatch_line("*uvloop*")


def test_all_backends_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures=_TESTS)
    pytester.makeini("[pytest]\nanytcpip_all_backends = true\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*test_echo*uvloop*PASSED*", "*test_echo*trio*PASSED*"])
