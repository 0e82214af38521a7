"""BaseOneClientServerTestCase's copies of a test for the other backends keep
the test's unittest markers (review finding 7)."""

from __future__ import annotations

import unittest

import anytcpip
from anytcpip.testing import ALL_BACKENDS, BaseOneClientServerTestCase


class _Echo(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        await self.write_str(await self.read_str())


class _MarkedCase(BaseOneClientServerTestCase[_Echo]):
    """Not collected by itself (the name does not start with Test... and
    __test__ is False): run by the test below."""

    __test__ = False
    server_class = _Echo
    anyio_backends = ALL_BACKENDS
    #: Each copy of test_passes that got to its end.
    passed_on: list[str] = []

    @unittest.expectedFailure
    async def test_known_bug(self) -> None:
        async with self.create_server() as server, self.create_client(server) as client:
            await client.write_str("ping")
            self.assertEqual(await client.read_str(), "pong")  # noqa: PT009

    @unittest.skip("not on this rig")
    async def test_skipped(self) -> None:
        raise AssertionError("a skipped test ran")  # pragma: no cover

    async def test_passes(self) -> None:
        async with self.create_server() as server, self.create_client(server) as client:
            await client.write_str("ping")
            self.assertEqual(await client.read_str(), "ping")  # noqa: PT009
        self.passed_on.append(self._testMethodName)


def test_backend_copies_keep_expected_failure_and_skip_on_asyncio_uvloop_trio() -> None:
    # ("uvloop" in the name: the fd check allows for uvloop's first use.)
    suite = unittest.TestLoader().loadTestsFromTestCase(_MarkedCase)
    names = sorted(test.id().rsplit(".", 1)[-1] for test in suite)  # type: ignore[union-attr]
    suffixes = ["", "__asyncio_uvloop", "__trio"]
    assert names == sorted(
        f"test_{what}{suffix}" for what in ("known_bug", "skipped", "passes") for suffix in suffixes
    )
    _MarkedCase.passed_on.clear()
    result = unittest.TestResult()
    suite.run(result)
    assert result.failures == []
    assert result.errors == []
    assert result.unexpectedSuccesses == []
    assert sorted(t.id().rsplit(".", 1)[-1] for t, _ in result.expectedFailures) == [
        f"test_known_bug{s}" for s in suffixes
    ]
    assert sorted(t.id().rsplit(".", 1)[-1] for t, _ in result.skipped) == [
        f"test_skipped{s}" for s in suffixes
    ]
    # (Not result.testsRun: Python 3.12.1 leaves skipped tests out of it.)
    assert sorted(_MarkedCase.passed_on) == [f"test_passes{s}" for s in suffixes]
