"""Terminators per direction: ``read_terminator`` (bytes or a tuple of
alternatives) and ``write_terminator`` beside ``terminator``, on every
backend, client side and server side; and the command line's options."""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

import anytcpip
import anytcpip.testing
from anytcpip import _cli
from helpers import NET_TIMEOUT, ServerAndClient, deadline

CRLF_LF = (b"\r\n", b"\n")
CLASSES = ["Client", "OneClientServer", "TestOneClientReadLoopServer"]


def side_kwargs(side: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """server_and_client's arguments that give ``kwargs`` to ``side``."""
    return {"client_kwargs" if side == "client" else "server_kwargs": kwargs}


def construct(name: str, log: logging.Logger, **kwargs: Any) -> anytcpip.BaseClientOrServer:
    cls = getattr(anytcpip, name)
    port = 1 if name == "Client" else 0
    obj: anytcpip.BaseClientOrServer = cls(
        host=anytcpip.LOCALHOST_IPV4, port=port, log=log, **kwargs
    )
    return obj


# ------------------------------------------------------------- arguments


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"read_terminator": ()}, ValueError, "read_terminator must not be an empty tuple"),
        ({"read_terminator": b""}, ValueError, "read_terminator must not be empty"),
        ({"read_terminator": (b"\n", b"")}, ValueError, "read_terminator: an alternative"),
        ({"read_terminator": "\n"}, TypeError, "read_terminator="),
        ({"read_terminator": (b"\n", 10)}, TypeError, "read_terminator: every alternative"),
        ({"write_terminator": (b"\n",)}, TypeError, "write_terminator="),
        ({"write_terminator": b""}, ValueError, "write_terminator must not be empty"),
    ],
)
def test_bad_terminators_are_rejected_naming_the_argument(
    name: str, log: logging.Logger, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        construct(name, log, **kwargs)
    obj = construct(name, log)
    attribute, value = next(iter(kwargs.items()))
    with pytest.raises(error, match=match):
        setattr(obj, attribute, value)
    assert getattr(obj, attribute) == b"\r\n"


@pytest.mark.parametrize("name", CLASSES)
def test_terminator_getter_and_setter(name: str, log: logging.Logger) -> None:
    obj = construct(name, log, terminator=b"\n")
    assert (obj.terminator, obj.read_terminator, obj.write_terminator) == (b"\n",) * 3
    obj = construct(name, log, terminator=b"\n", read_terminator=CRLF_LF, write_terminator=b"\r")
    # The getter gives the write terminator (what write_str and heartbeats append).
    assert obj.terminator == obj.write_terminator == b"\r"
    assert obj.read_terminator == CRLF_LF
    one: bytes | tuple[bytes, ...] = (b"\x03",)
    obj.read_terminator = one  # a tuple of one is kept as its bytes
    assert obj.read_terminator == b"\x03"
    obj.terminator = b"\0"  # sets both
    assert (obj.terminator, obj.read_terminator, obj.write_terminator) == (b"\0",) * 3
    with pytest.raises(ValueError, match="terminator"):
        obj.terminator = CRLF_LF  # type: ignore[assignment,unused-ignore]  # bytes only
    assert obj.read_terminator == b"\0"


# ------------------------------------------------------------- messages


@pytest.mark.parametrize("monitor", [0.1, 0], ids=["monitor", "no-monitor"])
@pytest.mark.parametrize("side", ["client", "server"])
@deadline()
async def test_each_direction_uses_its_own_terminator(
    server_and_client: ServerAndClient, side: str, monitor: float
) -> None:
    # The reader writes with b"\r" and reads b"\r\n" or b"\n"; the other end
    # uses the default b"\r\n" both ways, then switches to b"\n".
    kwargs = {
        "read_terminator": CRLF_LF,
        "write_terminator": b"\r",
        "monitor_connection_interval": monitor,
    }
    async with server_and_client(**side_kwargs(side, kwargs)) as (server, client):
        obj, peer = (client, server) if side == "client" else (server, client)
        await peer.write_str("crlf")
        await peer.write_json({"n": 1})
        peer.terminator = b"\n"
        await peer.write_str("lf")
        await peer.write_json([2])
        assert await obj.read_str() == "crlf"
        assert await obj.read_json() == {"n": 1}
        assert await obj.read_str() == "lf"
        assert await obj.read_json() == [2]
        await obj.write_str("command")
        await obj.write_json({"cmd": "go"})
        assert await peer.readuntil(b"\r") == b"command\r"
        assert await peer.readuntil(b"\r") == b'{"cmd": "go"}\r'
        # Terminators set between messages, on both sides.
        obj.write_terminator = b"\r\n"
        peer.terminator = b"\r\n"
        await obj.write_str("back to crlf")
        assert await peer.read_str() == "back to crlf"
        obj.read_terminator = b";"
        await peer.write(b"one;two;")
        assert await obj.read_str() == "one"
        obj.read_terminator = (b";", b"\r\n")
        await peer.write_str("three")
        assert await obj.read_str() == "two"
        assert await obj.read_str() == "three"


@pytest.mark.parametrize("side", ["client", "server"])
@deadline()
async def test_alternatives_split_across_writes(
    server_and_client: ServerAndClient, side: str
) -> None:
    async with server_and_client(**side_kwargs(side, {"read_terminator": (b"\r\n\x03", b"!")})) as (
        server,
        client,
    ):
        obj, peer = (client, server) if side == "client" else (server, client)
        got: list[str] = []

        async def read_three() -> None:
            for _ in range(3):
                got.append(await obj.read_str())

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_three)
            for piece in (b"a\r", b"\n", b"\x03b", b"!c\r\n", b"\x03"):
                await anyio.wait_all_tasks_blocked()
                await peer.write(piece)
        assert got == ["a", "b", "c"]


@pytest.mark.parametrize("side", ["client", "server"])
@deadline()
async def test_readuntil_takes_alternatives(server_and_client: ServerAndClient, side: str) -> None:
    async with server_and_client() as (server, client):
        obj, peer = (client, server) if side == "client" else (server, client)
        await peer.write(b"a\r\nb\nc")
        assert await obj.readuntil(CRLF_LF) == b"a\r\n"
        assert await obj.readuntil(CRLF_LF) == b"b\n"
        with pytest.raises(ValueError, match="separator"):
            await obj.readuntil(())
        with pytest.raises(TypeError, match="separator"):
            await obj.readuntil("\n")  # type: ignore[arg-type]
        await peer.write(b"\r\n")
        assert await obj.readuntil(CRLF_LF) == b"c\r\n"
        # A bytes-like separator is still accepted.
        await peer.write(b"d;e;")
        assert await obj.readuntil(bytearray(b";")) == b"d;"
        assert await obj.readuntil(memoryview(b";")) == b"e;"
        with pytest.raises(ValueError, match="separator"):
            await obj.readuntil(bytearray())


@pytest.mark.parametrize("oversize", ["raise", "discard"])
@pytest.mark.parametrize("side", ["client", "server"])
@deadline()
async def test_limit_with_alternatives(
    server_and_client: ServerAndClient, side: str, oversize: str
) -> None:
    kwargs = {"read_terminator": (b"\r\n\x03", b"!"), "limit": 10, "oversize": oversize}
    async with server_and_client(**side_kwargs(side, kwargs)) as (server, client):
        obj, peer = (client, server) if side == "client" else (server, client)
        # Exactly the limit is accepted, one more byte is not, whichever
        # alternative ends the message; the next message is intact.
        await peer.write(b"0123456789!" + b"0123456789X\r\n\x03" + b"x" * 100 + b"!")
        await peer.write(b"after\r\n\x03")
        assert await obj.read_str() == "0123456789"
        if oversize == "raise":
            for _ in range(2):
                with pytest.raises(anytcpip.LimitOverrunError):
                    await obj.read_str()
        assert await obj.read_str() == "after"
        assert obj.connected


class HeartbeatCounter(anytcpip.TestOneClientReadLoopServer):
    """Counts heartbeats; the third sets ``three``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heartbeats = 0
        self.three = anyio.Event()

    async def handle_received_heartbeat(self) -> None:
        await super().handle_received_heartbeat()
        self.heartbeats += 1
        if self.heartbeats == 3:
            self.three.set()


@pytest.mark.parametrize(
    "read_terminator", [b"\r", (b"\r\n", b"\r"), (b"\n", b"\r")], ids=["bytes", "tuple", "tuple2"]
)
@deadline()
async def test_heartbeats_with_per_direction_terminators(
    log: logging.Logger, read_terminator: bytes | tuple[bytes, ...]
) -> None:
    async with (
        HeartbeatCounter(
            port=0,
            log=log,
            read_terminator=read_terminator,
            run_heartbeat_monitor_task=True,
            max_heartbeat_interval=NET_TIMEOUT,
        ) as server,
        anytcpip.Client(
            host=server.host,
            port=server.port,
            log=log,
            write_terminator=b"\r",
            run_heartbeat_send_task=True,
            heartbeat_send_sleep=0.01,
        ) as client,
    ):
        await server.connected_task
        await client.write_str("data")
        assert await server.get_next_data() == "data"
        await server.three.wait()
        await client.write_str("more")
        assert await server.get_next_data() == "more"
        assert server.connected


class EtxDevice(anytcpip.OneClientReadLoopServer):
    """A mock of a laser controller: takes commands ending in ``\\r`` and
    answers with replies ending in ``\\r\\n\\x03``; a reply may hold lines
    ended by ``\\r\\n``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_terminator=b"\r", write_terminator=b"\r\n\x03", **kwargs)
        self.power = 0

    async def read_and_dispatch(self) -> None:
        command = await self.read_str()
        if command.startswith("POWER "):
            self.power = int(command.split()[1])
            await self.write_str("OK")
        elif command == "STATUS?":
            await self.write_str(f"power={self.power}\r\nshutter=closed\r\ninterlock=ok")
        else:
            await self.write_str(f"ERR unknown command {command!r}")


@deadline()
async def test_etx_device_mock(log: logging.Logger) -> None:
    async with (
        EtxDevice(port=0, log=log) as device,
        anytcpip.Client(
            host=device.host,
            port=device.port,
            log=log,
            read_terminator=b"\r\n\x03",
            write_terminator=b"\r",
        ) as controller,
    ):
        await device.connected_task
        await controller.write_str("POWER 42")
        assert await controller.read_str() == "OK"
        await controller.write_str("STATUS?")
        status = await controller.read_str()
        assert status.split("\r\n") == ["power=42", "shutter=closed", "interlock=ok"]
        await controller.write_str("FIRE")
        assert await controller.read_str() == "ERR unknown command 'FIRE'"
        # The controller's bytes on the wire end in \r alone.
        await controller.write(b"POWER 7\rSTATUS?\r")
        assert await controller.read_str() == "OK"
        assert (await controller.read_str()).startswith("power=7\r\n")


@deadline()
async def test_alternatives_with_tls(server_and_client: ServerAndClient) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(anytcpip.LOCALHOST_IPV4).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    async with server_and_client(
        server_kwargs={"ssl_context": server_context, "read_terminator": CRLF_LF},
        client_kwargs={"ssl_context": client_context, "write_terminator": b"\n"},
    ) as (server, client):
        await client.write_str("lf")
        await client.write(b"crlf\r\n")
        assert await server.read_str() == "lf"
        assert await server.read_str() == "crlf"


# ---------------------------------------------------------- command line


def test_cli_terminator_options() -> None:
    parser, _ = _cli.build_parser()
    for command in (["serve"], ["connect", "localhost", "1"]):
        args = parser.parse_args(command)
        _cli.resolve_terminators(args)
        assert (args.read_terminator, args.write_terminator) == (b"\r\n", b"\r\n")
        args = parser.parse_args([*command, "--terminator", r"\n", "--write-terminator", r"\r"])
        _cli.resolve_terminators(args)
        assert (args.read_terminator, args.write_terminator) == (b"\n", b"\r")
        args = parser.parse_args(
            [*command, "--read-terminator", r"\r\n\x03", "--read-terminator", r"\n"]
        )
        _cli.resolve_terminators(args)
        assert (args.read_terminator, args.write_terminator) == ((b"\r\n\x03", b"\n"), b"\r\n")
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--read-terminator", ""])


async def test_check_read_write_methods_gives_both_terminators_back(
    server_and_client: ServerAndClient,
) -> None:
    kwargs: dict[str, Any] = {"read_terminator": CRLF_LF}
    async with server_and_client(server_kwargs=kwargs, client_kwargs=kwargs) as (
        server,
        client,
    ):
        await anytcpip.testing.check_read_write_methods(server, client, timeout=NET_TIMEOUT)
        for obj in (server, client):
            assert obj.read_terminator == CRLF_LF
            assert obj.write_terminator == b"\r\n"


@pytest.mark.slow
@pytest.mark.no_fd_check
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@deadline(NET_TIMEOUT * 2)
async def test_cli_connect_uses_each_terminator() -> None:
    """``anytcpip connect`` with a device's terminators: lines typed go out
    with ``--write-terminator``; replies are split at the alternatives."""
    from test_cli import run_cli  # the command line tests' process runner

    received = bytearray()
    got_command = anyio.Event()

    async def device(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            while not received.endswith(b"\r"):
                received.extend(await stream.receive())
            got_command.set()
            await stream.send(b"power=42\r\nshutter=closed\r\n\x03second!")
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    await stream.receive()

    listener = await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4, local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, device)
        async with run_cli(
            "connect",
            anytcpip.LOCALHOST_IPV4,
            str(port),
            "--read-terminator",
            r"\r\n\x03",
            "--read-terminator",
            "!",
            "--write-terminator",
            r"\r",
            "--wait",
            "0.2",
        ) as proc:
            await proc.send(b"STATUS?\n")
            await got_command.wait()
            assert [await proc.out_line() for _ in range(3)] == [
                "power=42\r",
                "shutter=closed",
                "second",
            ]
            await proc.close_stdin()
            status, _, err = await proc.finish()
        tg.cancel_scope.cancel()
    assert status == 0, err
    assert bytes(received) == b"STATUS?\r"


@pytest.mark.slow
@pytest.mark.no_fd_check
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@deadline(NET_TIMEOUT * 2)
async def test_cli_serve_uses_each_terminator() -> None:
    """``anytcpip serve`` splits what a client sends at ``--read-terminator``
    and echoes each message as it came."""
    from test_cli import serving  # the command line tests' process runner

    async with serving("--echo", "--read-terminator", "!", "--write-terminator", r"\r") as (
        server,
        port,
    ):
        sent = b"one!two\r\n!"
        received = b""
        async with await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, port) as stream:
            await stream.send(sent)
            while len(received) < len(sent):
                received += await stream.receive()
        status, out, err = await server.finish()
    assert received == sent
    assert status == 0, err
    assert out == "one\ntwo\r\n\n"  # the second message is "two\r\n"
