"""A first end-to-end check: echo over loopback."""

from __future__ import annotations

import logging

import anytcpip
from helpers import deadline


@deadline(10)
async def test_echo_round_trip(log: logging.Logger) -> None:
    states: list[bool] = []

    async def callback(obj: anytcpip.BaseClientOrServer) -> None:
        states.append(obj.connected)

    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=callback
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task
            await client.write_str("hello")
            assert await server.read_str() == "hello"
            await server.write_json({"a": [1, 2]})
            assert await client.read_json() == {"a": [1, 2]}
        assert states[0] is True
    assert states == [True, False]
    assert server.done_task.done()
