"""TLS: a server with a certificate, a client that verifies it.

trustme (a test helper, ``pip install trustme``) makes a throwaway
certificate authority here; with real certificates, load them into the
contexts instead.
"""

from __future__ import annotations

import logging
import ssl

import anyio
import trustme

import anytcpip

log = logging.getLogger("tls")


async def main() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)

    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, ssl_context=server_context
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4,
            port=server.port,
            log=log,
            # These go to anyio.connect_tcp.
            tls=True,
            ssl_context=client_context,
            tls_hostname="localhost",
        ) as client:
            await server.connected_task
            await client.write_json({"secret": 42})
            assert await server.read_json() == {"secret": 42}


if __name__ == "__main__":
    anyio.run(main)
