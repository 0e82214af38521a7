"""A client that stays one object while its controller reboots."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("reconnecting")


class Controller(anytcpip.OneClientReadLoopServer):
    """A mock controller: answers ``pos?`` with its position."""

    async def read_and_dispatch(self) -> None:
        if await self.read_str() == "pos?":
            await self.write_str("pos=12.5")


async def main() -> None:
    seen: list[bool] = []

    async def connect_callback(client: anytcpip.ReconnectingClient) -> None:
        # Called on every connect and disconnect, strictly alternating.
        seen.append(client.connected)

    async with Controller(host=anytcpip.LOCALHOST_IPV4, port=0, log=log) as controller:
        port = controller.port
        client = anytcpip.ReconnectingClient(
            anytcpip.LOCALHOST_IPV4,
            port,
            log,
            connect_callback=connect_callback,
            reconnect_delay=0.01,  # first delay at most 10 ms ...
            reconnect_delay_max=1.0,  # ... doubling up to 1 s (full jitter)
        )
        async with anyio.create_task_group() as tg:
            await tg.start(client.run)  # returns once connected
            await client.write_str("pos?")
            assert await client.read_str() == "pos=12.5"

            # The controller reboots: it goes away ...
            await controller.close()
            reason = await client.wait_disconnected()
            assert reason is not None
            assert reason.kind is anytcpip.DisconnectKind.PEER_CLOSED
            assert client.should_be_connected
            assert not client.connected

            # ... and comes back on the same port. The same client object
            # reconnects by itself.
            async with Controller(host=anytcpip.LOCALHOST_IPV4, port=port, log=log):
                with anyio.fail_after(10):
                    await client.wait_connected()
                await client.write_str("pos?")
                assert await client.read_str() == "pos=12.5"
                assert client.connection_count == 2
                await client.close()
    assert seen == [True, False, True, False]


if __name__ == "__main__":
    anyio.run(main)
