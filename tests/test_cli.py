"""The ``anytcpip`` command line: demo, serve, connect, bench wiring, bad arguments.

The end-to-end tests run the real command in subprocesses. The test itself
runs on asyncio only (it just drives processes and, for one test, plays a
ts_tcpip peer with :func:`asyncio.start_server`); what runs on every backend is
the command line, through its ``--backend`` option.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import anytcpip
from anytcpip import _cli, _console
from helpers import deadline

#: ``--backend`` values installed here (what the command line runs on).
CLI_BACKENDS = [
    name
    for name, label in [("asyncio", "asyncio"), ("uvloop", "asyncio+uvloop"), ("trio", "trio")]
    if label in [b[0] for b in _cli.available_backends()]
]

#: Run the command with Python's own SIGINT handler even if this process was
#: started with SIGINT ignored (as background jobs of a shell are).
_WITH_SIGINT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from anytcpip._cli import main; sys.exit(main(sys.argv[1:]))"
)
_COMMAND = [sys.executable, "-c", _WITH_SIGINT]

TIMEOUT = 30


@pytest.fixture
def anyio_backend() -> Any:
    """The tests' own event loop (the command line's backend is a parameter)."""
    return ("asyncio", {"debug": True})


@pytest.fixture(params=CLI_BACKENDS)
def cli_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class Proc:
    """A running ``anytcpip`` command with line readers on stdout and stderr."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        assert process.stderr is not None
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.stderr = BufferedByteReceiveStream(process.stderr)

    async def out_line(self) -> str:
        """The next line of stdout, without its newline."""
        return (await self.stdout.receive_until(b"\n", 1 << 16)).decode()

    async def err_line(self) -> str:
        return (await self.stderr.receive_until(b"\n", 1 << 16)).decode()

    async def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(data)

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def finish(self) -> tuple[int, str, str]:
        """Wait for the exit; return (status, rest of stdout, rest of stderr)."""
        out, err = bytearray(), bytearray()

        async def drain(stream: BufferedByteReceiveStream, into: bytearray) -> None:
            into += stream.buffer
            async for chunk in stream.receive_stream:
                into += chunk

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, self.stdout, out)
            tg.start_soon(drain, self.stderr, err)
            status = await self.process.wait()
        return status, out.decode(), err.decode()


@asynccontextmanager
async def run_cli(*args: str, stdin: int | None = subprocess.PIPE) -> AsyncIterator[Proc]:
    """Start ``anytcpip *args``; kill it on the way out if it is still running."""
    process = await anyio.open_process([*_COMMAND, *args], stdin=stdin)
    try:
        yield Proc(process)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()


@asynccontextmanager
async def serving(*args: str) -> AsyncIterator[tuple[Proc, int]]:
    """``anytcpip serve --port 0 *args``, once it says where it listens."""
    async with run_cli(
        "serve", "--host", "127.0.0.1", "--port", "0", *args, stdin=subprocess.DEVNULL
    ) as server:
        line = await server.err_line()
        match = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, f"unexpected first line from serve: {line!r}"
        yield server, int(match.group(1))


# ---------------------------------------------------------------------- demo


@pytest.mark.slow
@pytest.mark.no_fd_check
def test_demo_runs_on_every_backend() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anytcpip", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    labels = [label for label, _, _ in _cli.available_backends()]
    assert len(labels) == len(CLI_BACKENDS)
    for label in labels:
        mine = [line for line in result.stdout.splitlines() if line.startswith(f"[{label}]")]
        text = "\n".join(mine)
        assert "read_str() = 'hello, controller'" in text, text
        assert "read_json() = {'command': 'move'" in text, text
        assert "filled Status(timestamp=1234.5, positions=[-1, 2, 3])" in text, text
        assert "next read_str() = 'half a message'" in text, text
        assert "saw connected=False" in text, text
        assert "called with: connected=True, connected=False" in text, text


# ---------------------------------------------------------- serve + connect


@pytest.mark.slow
@deadline(TIMEOUT)
async def test_serve_echo_and_connect(cli_backend: str) -> None:
    async with serving("--echo", "--backend", cli_backend) as (server, port):
        async with run_cli(
            "connect",
            "127.0.0.1",
            str(port),
            "--backend",
            cli_backend,
            "--json",
            "--wait",
            "0",
        ) as client:
            assert (await client.err_line()).startswith(f"connected to 127.0.0.1:{port}")
            await client.send(b"hello\n")
            assert await client.out_line() == "hello"
            await client.send(b'{"position": [1.5, 2]}\n')
            pretty = [await client.out_line() for _ in range(6)]
            assert json.loads("\n".join(pretty)) == {"position": [1.5, 2]}
            assert pretty[0] == "{", "--json pretty-prints"
            await client.send("gr\u00fc\u00dfe\n".encode())
            assert await client.out_line() == "gr\u00fc\u00dfe"
            await client.close_stdin()
            status, out, err = await client.finish()
        assert (status, out) == (0, ""), err
        assert "end of input; closed the connection" in err
        assert "Traceback" not in err

        # The server saw the client leave and stopped by itself.
        status, out, err = await server.finish()
        assert status == 0, err
        assert out.splitlines() == ["hello", '{"position": [1.5, 2]}', "gr\u00fc\u00dfe"]
        assert "client connected" in err
        assert "client disconnected" in err
        assert "Traceback" not in err


@pytest.mark.slow
@deadline(TIMEOUT)
async def test_connect_to_a_ts_tcpip_style_crlf_peer(cli_backend: str) -> None:
    """A peer that speaks the original library's line protocol: CRLF-terminated
    UTF-8 strings (here JSON replies); it hangs up after ``bye``, and the
    console must exit cleanly without waiting for its own input to end."""
    received: list[bytes] = []
    peer_done = anyio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readuntil(b"\r\n")
                received.append(line)
                command = line[:-2].decode()
                if command == "bye":
                    writer.write(b"\xffbad\r\n" + b'{"final": true}')
                    break
                writer.write(json.dumps({"ack": command}).encode() + b"\r\n")
                await writer.drain()
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
            peer_done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        async with run_cli(
            "connect", "127.0.0.1", str(port), "--backend", cli_backend, "--json"
        ) as client:
            await client.send(b"ping\n")
            reply = [await client.out_line() for _ in range(3)]
            assert json.loads("\n".join(reply)) == {"ack": "ping"}
            # Input stays open: the peer's hangup must end the console.
            await client.send(b"bye\n")
            status, out, err = await client.finish()
        await peer_done.wait()
    finally:
        server.close()
        await server.wait_closed()
    assert received == [b"ping\r\n", b"bye\r\n"]
    assert status == 0, err
    # The undecodable message is shown as bytes; the last one, cut short by the
    # hangup, is still shown (and pretty-printed: it is JSON).
    assert out == "b'\\xffbad'\n{\n  \"final\": true\n}\n"
    assert f"connection closed by 127.0.0.1:{port}" in err
    assert "not valid utf-8" in err
    assert "ended without a terminator" in err
    assert "Traceback" not in err


@pytest.mark.slow
@deadline(TIMEOUT)
async def test_custom_terminator_and_encoding(cli_backend: str) -> None:
    args = ("--terminator", r"\x00", "--encoding", "latin-1", "--backend", cli_backend)
    async with serving("--echo", *args) as (server, port):
        sent = "caf\u00e9\x00two\x00".encode("latin-1")
        received = b""
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(sent)
            while len(received) < len(sent):
                received += await stream.receive()
        status, out, err = await server.finish()
    assert received == sent
    assert status == 0, err
    assert out.splitlines() == ["caf\u00e9", "two"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
@deadline(TIMEOUT)
async def test_ctrl_c_stops_serve_cleanly(cli_backend: str) -> None:
    async with serving("--backend", cli_backend) as (server, port):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            assert (await server.err_line()) == "client connected"
            server.process.send_signal(signal.SIGINT)
            status, _, err = await server.finish()
            # The client sees an orderly close, not a reset.
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
    assert status == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
@deadline(TIMEOUT)
async def test_ctrl_c_stops_connect_cleanly(cli_backend: str) -> None:
    """Ctrl-C in ``connect`` (waiting for input and for messages) exits 130
    without a traceback, on Python 3.10 too, and closes the connection in
    order."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with multi:
        listener = cast(anyio.abc.SocketListener, multi.listeners[0])
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with run_cli("connect", "127.0.0.1", str(port), "--backend", cli_backend) as client:
            peer = await listener.accept()
            async with peer:
                assert (await client.err_line()).startswith("connected to")
                await peer.send(b"hi\r\n")
                assert await client.out_line() == "hi"
                client.process.send_signal(signal.SIGINT)
                status, _, err = await client.finish()
                with pytest.raises(anyio.EndOfStream):
                    await peer.receive()
    assert status == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err


@pytest.mark.slow
@deadline(TIMEOUT)
async def test_a_second_client_is_told_it_was_turned_away(cli_backend: str) -> None:
    async with serving("--backend", cli_backend) as (server, port):
        async with await anyio.connect_tcp("127.0.0.1", port) as first:
            assert (await server.err_line()) == "client connected"
            async with run_cli(
                "connect", "127.0.0.1", str(port), "--backend", cli_backend
            ) as second:
                status, out, err = await second.finish()
            await first.send(b"still served\r\n")
            assert await server.out_line() == "still served"
        await server.finish()
    assert (status, out) == (1, ""), err
    assert "error: the server turned this connection away" in err
    assert "Traceback" not in err


@pytest.mark.slow
@deadline(TIMEOUT)
async def test_plain_client_to_a_tls_server_says_what_happened(
    tls_files: dict[str, str],
) -> None:
    async with serving("--certfile", tls_files["chain"]) as (server, port):
        async with run_cli("connect", "127.0.0.1", str(port), "--wait", "5") as client:
            await client.send(b"hello\n")
            status, _, client_err = await client.finish()
        server_line = await server.err_line()
        server.process.kill()
    # Dropped at once it counts as turned away (1); later (a slow handshake
    # failure under load), as closed by the server before it sent anything (0).
    # Either way the client suggests --tls.
    assert status in (0, 1), client_err
    expected = "turned this connection away" if status == 1 else "before it sent anything"
    assert expected in client_err, client_err
    assert "connect with --tls" in client_err, client_err
    assert server_line.startswith("a client at 127.0.0.1:"), server_line
    assert "did not complete the TLS handshake" in server_line, server_line
    assert "is it connecting without TLS?" in server_line
    assert "Traceback" not in client_err


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    path = tmp_path_factory.mktemp("tls")
    files = {"ca": path / "ca.pem", "chain": path / "server.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_and_cert_chain_pem.write_to_path(str(files["chain"]))
    return {name: str(p) for name, p in files.items()}


@pytest.mark.slow
@deadline(TIMEOUT)
async def test_tls_serve_and_connect(cli_backend: str, tls_files: dict[str, str]) -> None:
    async with serving("--echo", "--certfile", tls_files["chain"], "--backend", cli_backend) as (
        server,
        port,
    ):
        async with run_cli(
            "connect",
            "127.0.0.1",
            str(port),
            "--cafile",
            tls_files["ca"],
            "--backend",
            cli_backend,
            "--wait",
            "0",
        ) as client:
            assert "(TLS)" in await client.err_line()
            await client.send(b"secret\n")
            assert await client.out_line() == "secret"
            await client.close_stdin()
            status, _, err = await client.finish()
        assert status == 0, err
        status, out, err = await server.finish()
    assert status == 0, err
    assert out == "secret\n"


@pytest.mark.slow
@deadline(TIMEOUT)
async def test_tls_connect_rejects_an_unknown_certificate(tls_files: dict[str, str]) -> None:
    async with serving("--certfile", tls_files["chain"]) as (server, port):
        async with run_cli("connect", "127.0.0.1", str(port), "--tls") as client:
            status, _, err = await client.finish()
        server.process.kill()
    assert status == 1
    assert err.startswith(f"error: could not connect to 127.0.0.1:{port}: "), err
    assert "TLS certificate verify failed" in err
    assert "Traceback" not in err


# ------------------------------------------------------------ bad arguments


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections (bound, not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "70000"], "port 70000 is out of range (0-65535)"),
        (["serve", "--port", "http"], "invalid port 'http'"),
        (["connect", "127.0.0.1", "0"], "port 0 is out of range (1-65535)"),
        (["serve", "--terminator", r"\q"], r"unknown escape \q"),
        (["serve", "--terminator", r"\x0"], r"\x needs two hex digits"),
        (["serve", "--terminator", "\\"], "lone backslash"),
        (["serve", "--terminator", ""], "must not be empty"),
        (["serve", "--encoding", "no-such-codec"], "unknown encoding 'no-such-codec'"),
        (["serve", "--encoding", "base64"], "not a text encoding"),
        (["serve", "--backend", "curio"], "invalid choice: 'curio'"),
        (["serve", "--tls"], "--tls needs --certfile"),
        (["serve", "--certfile", "/nonexistent/cert.pem"], "could not load the TLS files"),
        (
            ["connect", "127.0.0.1", "1", "--cafile", "/nonexistent.pem"],
            "could not load the TLS files: --cafile /nonexistent.pem: no such file",
        ),
        (
            ["serve", "--certfile", "/no/cert.pem"],
            "could not load the TLS files: --certfile /no/cert.pem: no such file",
        ),
        (["demo", "--backend", "nope"], "invalid choice: 'nope'"),
        (["connect", "127.0.0.1", "1", "--wait", "-1"], "must be >= 0"),
        (["connect", "127.0.0.1"], "required: port"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "usage: anytcpip" in err


@pytest.mark.no_fd_check  # uvloop's one-time descriptor (docs/reliability.rst)
def test_connection_refused(
    cli_backend: str, refused_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _cli.main(["connect", "127.0.0.1", str(refused_port), "--backend", cli_backend])
    assert status == 1
    assert capsys.readouterr().err == (
        f"error: could not connect to 127.0.0.1:{refused_port}: Connection refused\n"
    )


@pytest.mark.no_fd_check  # uvloop's one-time descriptor (docs/reliability.rst)
def test_address_in_use(cli_backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        status = _cli.main(["serve", "--port", str(port), "--backend", cli_backend])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: could not listen on 127.0.0.1:{port}: "), err


@pytest.mark.slow
@pytest.mark.no_fd_check
def test_errors_have_no_traceback_in_a_real_process(refused_port: int) -> None:
    for argv, status in [
        (["serve", "--port", "99999"], 2),
        (["connect", "127.0.0.1", str(refused_port)], 1),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "anytcpip", *argv],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert result.returncode == status, result.stderr
        assert "error:" in result.stderr
        assert "Traceback" not in result.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"anytcpip {anytcpip.__version__}\n"


@pytest.mark.parametrize(
    ("argv", "verbosity"),
    [
        (["serve"], 0),
        (["-v", "serve"], 1),
        (["serve", "-v"], 1),
        (["-v", "serve", "-v"], 2),
        (["connect", "-vv", "host", "1"], 2),
        (["demo", "--verbose"], 1),
    ],
)
def test_verbose_before_or_after_the_subcommand(argv: list[str], verbosity: int) -> None:
    parser, _ = _cli.build_parser()
    args = parser.parse_args(argv)
    assert args.verbose + args.sub_verbose == verbosity


def test_logging_is_configured_for_anytcpip_only(capsys: pytest.CaptureFixture[str]) -> None:
    """-vv shows anytcpip's debug records and leaves the root logger alone (no
    asyncio debug noise); main() puts the anytcpip logger back afterwards."""
    root = logging.getLogger()
    anytcpip_logger = logging.getLogger("anytcpip")
    before = (root.level, list(root.handlers), anytcpip_logger.level)
    seen: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.name)

    spy = Spy(logging.DEBUG)
    anytcpip_logger.addHandler(spy)
    try:
        status = _cli.main(["demo", "--backend", "asyncio", "-vv"])
    finally:
        anytcpip_logger.removeHandler(spy)
    assert status == 0
    assert (root.level, list(root.handlers), anytcpip_logger.level) == before
    assert seen, "-vv logs anytcpip's records"
    assert all(name.startswith("anytcpip") for name in seen)
    err = capsys.readouterr().err
    assert "INFO anytcpip.cli" in err
    assert "asyncio:" not in err


def test_received_messages_are_marked_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(encoding="utf-8", json=True, mark=True)
    _console._show(b"plain", args)
    _console._show(b'{"a": 1}', args)
    _console._show(b"\xff", args)
    assert capsys.readouterr().out == "< plain\n< {\n<   \"a\": 1\n< }\n< b'\\xff'\n"
    args.mark = False
    _console._show(b"plain", args)
    assert capsys.readouterr().out == "plain\n"


def test_serve_does_not_read_the_terminal_in_the_background(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve ... &`` would stop at once (SIGTTIN) if it read the terminal."""
    parser, _ = _cli.build_parser()
    fake_stdin = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(fake_stdin, "fileno", lambda: 0)
    monkeypatch.setattr(sys, "stdin", fake_stdin)
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    monkeypatch.setattr(os, "getpgrp", lambda: 1000)
    foreground = [1000]
    monkeypatch.setattr(os, "tcgetpgrp", lambda fd: foreground[0])
    assert _console._read_stdin(parser.parse_args(["serve"]))
    assert not _console._read_stdin(parser.parse_args(["serve", "--no-stdin"]))
    assert capsys.readouterr().err == ""
    foreground[0] = 2000  # another process group has the terminal
    assert not _console._read_stdin(parser.parse_args(["serve"]))
    assert "running in the background: not reading the terminal" in capsys.readouterr().err


def test_demo_names_the_backends_that_are_not_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "trio", None)
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert _cli.main(["demo", "--backend", "trio"]) == 2
    assert "pip install 'anytcpip[trio]'" in capsys.readouterr().err
    assert _cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "on asyncio\n" in out
    assert "[asyncio] str:" in out
    assert "uvloop and trio not installed here" in out
    assert "pip install 'anytcpip[uvloop,trio]'" in out


def test_help_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "serve", "connect", "bench"):
        assert command in out


# ------------------------------------------------------------------ escapes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\r\n", b"\r\n"),
        (r"\n", b"\n"),
        (r"\x00", b"\x00"),
        (r"\0", b"\x00"),
        (r"\x1B\t", b"\x1b\t"),
        ("END", b"END"),
        (r"a\\b", b"a\\b"),
        ("\u00e9", "\u00e9".encode()),
    ],
)
def test_parse_escapes(text: str, expected: bytes) -> None:
    assert _cli.parse_escapes(text) == expected


# -------------------------------------------------------------------- bench


def test_bench_calls_the_bench_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[Any] = []
    fake = types.ModuleType("anytcpip_bench")

    def add_arguments(parser: Any) -> None:
        parser.add_argument("--quick", action="store_true", help="a short run")

    def run_from_args(args: Any) -> int:
        calls.append(args)
        return 7

    fake.add_arguments = add_arguments  # type: ignore[attr-defined]
    fake.run_from_args = run_from_args  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "anytcpip_bench", fake)
    assert _cli.main(["bench", "--quick"]) == 7
    assert len(calls) == 1
    assert calls[0].quick is True
    assert _cli.main(["bench", "--help"]) == 0
    assert "--quick" in capsys.readouterr().out
    # Other commands do not import it.
    monkeypatch.setitem(sys.modules, "anytcpip_bench", None)
    assert _cli.main(["serve", "--port", "70000"]) == 2
    assert "bench command" not in capsys.readouterr().err


def test_bench_without_the_bench_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "anytcpip_bench", None)
    assert _cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the bench command is not available here"), err


def test_bench_outside_a_checkout_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "anytcpip_bench", None)
    monkeypatch.setattr(_cli, "_CHECKOUT_BENCHMARKS", tmp_path)  # no anytcpip_bench there
    assert _cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "not installed with anytcpip" in err, err
    assert "checkout" in err, err
    assert "PYTHONPATH" in err, err


@pytest.mark.slow
def test_bench_is_found_in_the_checkout_without_being_on_the_path(tmp_path: Path) -> None:
    # Only src/ on the path (as an editable install has it): the CLI finds
    # benchmarks/anytcpip_bench next to it.
    src = Path(_cli.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-m", "anytcpip", "bench", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "workloads:" in done.stdout
