"""``anytcpip demo``: an echo server and a client on loopback, on every
installed backend."""

from __future__ import annotations

import argparse
import ctypes
import json
import logging

import anyio
import anyio.abc

from . import _backends
from ._cli_common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    _address,
    _backend_installed,
    _interrupted,
    _not_installed,
    _out,
    _status,
    available_backends,
)
from ._client import Client
from ._constants import (
    LOCALHOST_IPV4,
)
from ._one_client_server import OneClientServer

_log = logging.getLogger("anytcpip.cli")


class _Status(ctypes.Structure):
    """The binary message of the demo."""

    _fields_ = [("timestamp", ctypes.c_double), ("positions", ctypes.c_int64 * 3)]

    def __str__(self) -> str:
        return f"Status(timestamp={self.timestamp}, positions={list(self.positions)})"


async def _demo_once(label: str) -> None:
    def say(text: str) -> None:
        _out(f"[{label}] {text}")

    server_events: list[bool] = []
    lost = anyio.Event()

    async def on_server_change(server: OneClientServer) -> None:
        server_events.append(server.connected)

    async def on_client_change(client: Client) -> None:
        if not client.connected:
            lost.set()

    async def echo(server: OneClientServer) -> None:
        while True:
            try:
                data = await server.read(65536)
            except ConnectionError:
                return
            if not data:
                return
            await server.write(data)

    with anyio.fail_after(20):
        async with OneClientServer(
            host=LOCALHOST_IPV4, port=0, log=_log, connect_callback=on_server_change
        ) as server:
            say(f"echo server listening on {_address(LOCALHOST_IPV4, server.port)}")
            async with (
                Client(
                    host=LOCALHOST_IPV4,
                    port=server.port,
                    log=_log,
                    connect_callback=on_client_change,
                ) as client,
                anyio.create_task_group() as tg,
            ):
                await server.connected_task
                say("client connected; the server's connect_callback saw connected=True")
                tg.start_soon(echo, server)

                await client.write_str("hello, controller")
                line = await client.read_str()
                say(f"str:    write_str('hello, controller') -> read_str() = {line!r}")

                command = {"command": "move", "axis": 2, "position": 12.5}
                await client.write_json(command)
                reply = await client.read_json()
                sent_json = json.dumps(command)
                say(f"json:   write_json({sent_json}) -> read_json() = {reply!r}")

                sent = _Status(timestamp=1234.5, positions=(-1, 2, 3))
                await client.write_from(sent)
                received = _Status()
                await client.read_into(received)
                say(f"struct: write_from({sent}) -> read_into() filled {received}")

                await client.write(b"half a ")
                with anyio.move_on_after(0.05) as scope:
                    await client.read_str()
                await client.write(b"message\r\n")
                rest = await client.read_str()
                cancelled = "timed out" if scope.cancelled_caught else "returned"
                say(
                    f"cancel: read_str() under move_on_after(0.05) {cancelled} "
                    "with half a message in flight and consumed nothing: "
                    f"next read_str() = {rest!r}"
                )

                start = anyio.current_time()
                await server.close_client()
                await lost.wait()
                took = (anyio.current_time() - start) * 1000
                say(
                    "server hung up; the client's connect_callback saw "
                    f"connected=False after {took:.1f} ms "
                    f"(should_be_connected={client.should_be_connected})"
                )
        calls = ", ".join(f"connected={state}" for state in server_events)
        say(f"the server's connect_callback was called with: {calls}")


def run_demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    backends = available_backends()
    if args.backend is not None:
        if not _backend_installed(args.backend):
            parser.error(_not_installed(args.backend))
        wanted = _backends.get(args.backend).name
        backends = [b for b in backends if b[0] == wanted]
    names = ", ".join(label for label, _, _ in backends)
    _out(f"anytcpip demo: an echo server and a client on loopback, on {names}")
    for label, backend, options in backends:
        _out("")
        try:
            anyio.run(_demo_once, label, backend=backend, backend_options=options)
        except BaseException as exc:
            if _interrupted(exc):
                _status("interrupted")
                return EXIT_INTERRUPTED
            raise
    _out("")
    _out(f"done: the same code ran on {names}")
    if args.backend is None:
        missing = [b for b in _backends.BACKENDS if b.supported and not b.installed]
        if missing:
            extras = ",".join(str(b.extra) for b in missing)
            names = " and ".join(b.cli_name for b in missing)
            _out(
                f"{names} not installed here; to run on them too: pip install 'anytcpip[{extras}]'"
            )
    return EXIT_OK
