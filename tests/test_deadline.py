"""The per-test deadline (helpers.deadline): tests that hang on purpose,
run in an inner pytest (a subprocess, bounded), fail by it with a message
naming the test and the bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from anytcpip.testing import available_backends
from helpers import deadline

TESTS = Path(__file__).parent

#: Every test of the inner run on every installed backend, as here.
CONFTEST = """
import pytest
import anytcpip.testing


@pytest.fixture(params=anytcpip.testing.available_backends())
def anyio_backend(request):
    return request.param
"""

#: The inner tests: each hangs (or not) in its own way.
INNER = f"""
import logging
import sys
sys.path.insert(0, {str(TESTS)!r})

import anyio
import pytest

import anytcpip
from anytcpip.testing import ALL_BACKENDS, BaseOneClientServerTestCase
from helpers import deadline


@deadline(0.5)
async def test_hangs() -> None:
    await anyio.sleep_forever()


@deadline(0.5)
async def test_hangs_with_a_server_open() -> None:
    # The server is closed (no descriptor left) on the way out.
    log = logging.getLogger("inner")
    async with anytcpip.OneClientServer(host="127.0.0.1", port=0, log=log) as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep_forever)
        assert server.port


@deadline(0.5)
async def test_swallows_the_cancellation() -> None:
    try:
        await anyio.sleep_forever()
    except anyio.get_cancelled_exc_class():
        pass


@deadline(5)
async def test_own_timeout_goes_through() -> None:
    with anyio.fail_after(0.05):
        await anyio.sleep_forever()


@deadline(5)
async def test_in_time(anyio_backend: object) -> None:
    await anyio.sleep(0)


class HangingTestCase(BaseOneClientServerTestCase):
    anyio_backends = ALL_BACKENDS
    server_class = anytcpip.OneClientServer

    @deadline(0.5)
    async def test_hangs_in_a_case(self) -> None:
        async with self.create_server():
            await anyio.sleep_forever()
"""


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini("[pytest]\nanyio_mode = auto\n")
    pytester.makeconftest(CONFTEST)
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-v", "-rA", timeout=120
    )


def test_deadline_fails_hanging_tests(pytester: pytest.Pytester) -> None:
    result = _run(pytester)
    out = result.stdout.str()
    backends = [str(p.id) for p in available_backends()]
    for backend in backends:
        # A plain hang, a hang in a server's close and a swallowed
        # cancellation all fail, by the deadline, naming the test and bound.
        for name in (
            "test_hangs",
            "test_hangs_with_a_server_open",
            "test_swallows_the_cancellation",
        ):
            result.stdout.fnmatch_lines([f"*test_inner.py::{name}?{backend}? FAILED*"])
            result.stdout.fnmatch_lines(
                [f"*test_inner.{name} did not finish within its deadline of 0.5 s*"]
            )
        # The test's own step bound stays a TimeoutError.
        result.stdout.fnmatch_lines([f"*test_own_timeout_goes_through?{backend}? FAILED*"])
        result.stdout.fnmatch_lines([f"*test_in_time?{backend}? PASSED*"])
    assert "test_own_timeout_goes_through did not finish" not in out
    result.stdout.fnmatch_lines(["*TimeoutError*"])
    # The unittest-style case, on each backend.
    for suffix in ["", *(f"__{b.replace('+', '_')}" for b in backends[1:])]:
        result.stdout.fnmatch_lines([f"*HangingTestCase::test_hangs_in_a_case{suffix} FAILED*"])
    result.stdout.fnmatch_lines(
        ["*HangingTestCase.test_hangs_in_a_case did not finish within its deadline of 0.5 s*"]
    )
    # Where the test waited is in the chained traceback.
    result.stdout.fnmatch_lines(["*sleep_forever*"])
    n = len(backends)
    result.assert_outcomes(failed=4 * n + n, passed=n)


def test_deadline_is_for_async_tests() -> None:
    def sync_test() -> None:
        pass

    with pytest.raises(TypeError, match="async def"):
        deadline()(sync_test)  # type: ignore[arg-type]
