"""IPv6, and a server on every interface."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("ipv6")


async def main() -> None:
    # An IPv6 address works wherever an IPv4 one does.
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV6, port=0, log=log
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV6, port=server.port, log=log
        ) as client:
            await server.connected_task
            await client.write_str("over IPv6")
            assert await server.read_str() == "over IPv6"

    # host=None listens on every interface, IPv4 and IPv6 where present,
    # all on the one port that port=0 picked.
    async with anytcpip.OneClientServer(host=None, port=0, log=log) as server:
        assert {port for _, port in server.bound_addresses} == {server.port}
        for host in (anytcpip.LOCALHOST_IPV4, anytcpip.LOCALHOST_IPV6):
            async with anytcpip.Client(host=host, port=server.port, log=log):
                await server.connected_task
            await server.close_client()  # ready for the next one


if __name__ == "__main__":
    anyio.run(main)
