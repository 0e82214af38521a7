"""The ``anytcpip`` command line (``python -m anytcpip``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from ._client import Client
from ._constants import LOCALHOST_IPV4
from ._one_client_server import OneClientServer


def available_backends() -> list[tuple[str, str, dict[str, object]]]:
    """(label, backend, options) for every backend installed here."""
    backends: list[tuple[str, str, dict[str, object]]] = [("asyncio", "asyncio", {})]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    else:
        backends.append(("asyncio+uvloop", "asyncio", {"use_uvloop": True}))
    try:
        import trio  # noqa: F401
    except ImportError:
        pass
    else:
        backends.append(("trio", "trio", {}))
    return backends


async def _demo_once(label: str) -> None:
    log = logging.getLogger("anytcpip.demo")
    events: list[str] = []

    async def on_server_change(server: OneClientServer) -> None:
        events.append("client connected" if server.connected else "client left")

    async with OneClientServer(
        host=LOCALHOST_IPV4, port=0, log=log, connect_callback=on_server_change
    ) as server:
        async with Client(host=LOCALHOST_IPV4, port=server.port, log=log) as client:
            await server.connected_task
            await client.write_str("hello")
            line = await server.read_str()
            await server.write_str(line.upper())
            reply = await client.read_str()
            print(f"[{label}] client sent 'hello', server echoed {reply!r}")
        with anyio.fail_after(5):
            while server.connected:
                await anyio.sleep(0.001)
        print(f"[{label}] server saw: {', '.join(events)}")


def _demo(args: argparse.Namespace) -> int:
    for label, backend, options in available_backends():
        anyio.run(_demo_once, label, backend=backend, backend_options=options)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="anytcpip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="echo server and client on loopback, on every backend")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
