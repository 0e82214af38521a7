"""BaseOneClientServerTests (pytest-native), used the way its users use it."""

from __future__ import annotations

import sys

import pytest

import anytcpip
from anytcpip.testing import BaseOneClientServerTests, ClientFactory, ConnectRecorder, ServerFactory
from helpers import deadline

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


class TestPlainServer(BaseOneClientServerTests):
    server_class = anytcpip.OneClientServer

    def setup_method(self) -> None:
        self.setup_ran = True

    @deadline(10)
    async def test_connect_and_talk(self) -> None:
        assert self.setup_ran
        async with self.create_server(connect_callback=self.connect_callback) as server:
            assert server.host == anytcpip.DEFAULT_LOCALHOST
            assert server.port != 0
            async with self.create_client(server) as client:
                await self.assert_next_connected(True)
                await client.write_str("ping")
                assert await server.read_str() == "ping"
            await self.assert_next_connected(False)

    @deadline(10)
    async def test_assert_next_connected_times_out(self) -> None:
        async with self.create_server(connect_callback=self.connect_callback):
            with pytest.raises(TimeoutError):
                await self.assert_next_connected(True, timeout=0.05)

    @deadline(10)
    async def test_assert_next_connected_checks_the_value(self) -> None:
        async with self.create_server(connect_callback=self.connect_callback) as server:
            async with self.create_client(server):
                with pytest.raises(AssertionError):
                    await self.assert_next_connected(False)

    async def test_needs_create_server_first(self) -> None:
        with pytest.raises(RuntimeError):
            await self.assert_next_connected(True)

    async def test_runs_on_each_backend(self, anyio_backend: object) -> None:
        # The class parametrizes anyio_backend over the installed backends.
        assert anyio_backend in [p.values[0] for p in anytcpip.testing.available_backends()]

    @deadline(10)
    async def test_create_client_without_waiting(self) -> None:
        async with self.create_server() as server:
            async with self.create_client(server, wait_connected=False) as client:
                assert client.connected
                await server.connected_task


class MockController(anytcpip.OneClientReadLoopServer):
    """A mock of a controller that answers commands with JSON replies."""

    position = 0.0

    async def read_and_dispatch(self) -> None:
        command = await self.read_json()
        if command["cmd"] == "move":
            self.position = float(command["to"])
            await self.write_json({"ack": "move", "position": self.position})
        else:
            await self.write_json({"error": f"unknown command {command['cmd']!r}"})


class TestMockController(BaseOneClientServerTests[MockController]):
    server_class = MockController

    @deadline(10)
    async def test_create_server_is_typed(self) -> None:
        # mypy checks that create_server() yields the class under test.
        async with self.create_server() as server:
            assert_type(server, MockController)
            assert isinstance(server, MockController)
            assert server.position == 0.0

    @deadline(10)
    async def test_move(self) -> None:
        async with self.create_server(connect_callback=self.connect_callback) as server:
            async with self.create_client(server) as client:
                await self.assert_next_connected(True)
                await client.write_json({"cmd": "move", "to": 12.5})
                assert await client.read_json() == {"ack": "move", "position": 12.5}
                await client.write_json({"cmd": "fly"})
                assert "unknown command" in (await client.read_json())["error"]
            await self.assert_next_connected(False)

    async def test_server_class_missing(self) -> None:
        class NoClass(BaseOneClientServerTests):
            pass

        case = NoClass()
        with pytest.raises(RuntimeError):
            async with case.create_server():
                pass


# The same mock-controller test, written with the pytest plugin's fixtures.


@deadline(10)
async def test_mock_controller_with_fixtures(
    anytcpip_server_factory: ServerFactory,
    anytcpip_client_factory: ClientFactory,
    anytcpip_connect_recorder: ConnectRecorder,
) -> None:
    server = await anytcpip_server_factory(
        MockController, connect_callback=anytcpip_connect_recorder.callback
    )
    assert_type(server, MockController)
    assert_type(await anytcpip_server_factory(), anytcpip.OneClientServer)
    client = await anytcpip_client_factory(server)
    assert_type(client, anytcpip.Client)
    await anytcpip_connect_recorder.assert_next(True)
    await client.write_json({"cmd": "move", "to": 12.5})
    assert await client.read_json() == {"ack": "move", "position": 12.5}
    await client.write_json({"cmd": "fly"})
    assert "unknown command" in (await client.read_json())["error"]
    await client.close()
    await anytcpip_connect_recorder.assert_next(False)
