"""The ``anytcpip`` command line (also ``python -m anytcpip``).

Subcommands:

``demo``
    An echo server and a client on loopback, on every installed backend.
``serve``
    A one-client server that prints what it receives (and can echo it).
``connect``
    A line console: sends each line typed on stdin, prints what arrives.
``bench``
    The benchmarks (provided by ``anytcpip._bench``, imported only when used).

Messages go to stdout, one per line (marked ``< `` when stdout is a
terminal); everything else (status, errors) goes to stderr, so the output of
``serve`` and ``connect`` can be piped. Exit status: 0 on success (also when
the peer closes the connection), 1 on a runtime error (also when the server
turns the connection away), 2 on bad arguments, 130 when interrupted by
Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import ctypes
import importlib
import json
import logging
import os
import re
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal
from anyio.streams.memory import MemoryObjectSendStream

from . import __version__
from ._base import BaseClientOrServer
from ._client import Client
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_LOCALHOST,
    DEFAULT_TERMINATOR,
    LOCALHOST_IPV4,
)
from ._exceptions import IncompleteReadError, LimitOverrunError
from ._one_client_server import OneClientServer

__all__ = ("available_backends", "main", "parse_escapes")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: ``--backend`` value -> (anyio backend, backend options, module that must import).
BACKENDS: dict[str, tuple[str, dict[str, Any], str]] = {
    "asyncio": ("asyncio", {}, "asyncio"),
    "uvloop": ("asyncio", {"use_uvloop": True}, "uvloop"),
    "trio": ("trio", {}, "trio"),
}

_log = logging.getLogger("anytcpip.cli")

#: A connection the server closes this soon after it was made, before either
#: end sent anything, was turned away (seconds).
TURNED_AWAY_WITHIN = 1.0

T = TypeVar("T")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes log records to whatever ``sys.stderr`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


#: The handler of the ``anytcpip`` logger while the command line runs.
_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def _configure_logging(verbosity: int) -> None:
    """Log anytcpip's records at the level ``-v`` asks for, to stderr.

    Only the ``anytcpip`` logger is configured (not the root logger), so
    ``-vv`` does not bring asyncio's or other libraries' debug output.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("anytcpip")
    logger.setLevel(level)
    if _handler not in logger.handlers:
        logger.addHandler(_handler)


class CLIError(Exception):
    """A failure to report as ``error: <message>`` with exit status 1."""


# --------------------------------------------------------------------- output


def _out(text: str) -> None:
    """Write one line of output to stdout."""
    print(text, flush=True)


def _mark_received() -> bool:
    """Whether received messages are marked ``< `` (stdout is a terminal, where
    they would otherwise look like the lines typed to send)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _status(text: str) -> None:
    """Write a status line to stderr."""
    print(text, file=sys.stderr, flush=True)


def _address(host: str | None, port: int) -> str:
    if host is None:
        host = "*"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------- argument parsing

_SIMPLE_ESCAPES = {
    "\\": b"\\",
    "r": b"\r",
    "n": b"\n",
    "t": b"\t",
    "0": b"\x00",
    "a": b"\x07",
    "e": b"\x1b",
}


def parse_escapes(text: str) -> bytes:
    """Turn a terminator typed on the command line into bytes.

    Understands ``\\r``, ``\\n``, ``\\t``, ``\\0``, ``\\a``, ``\\e``, ``\\\\``
    and ``\\xHH``; other characters stand for themselves (encoded as UTF-8).

    Raises
    ------
    ValueError
        For an unknown or incomplete escape sequence, or an empty result.
    """
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        if i + 1 >= len(text):
            raise ValueError(f"{text!r} ends with a lone backslash")
        code = text[i + 1]
        if code in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[code]
            i += 2
        elif code == "x":
            digits = text[i + 2 : i + 4]
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"bad escape \\x{digits} in {text!r}: \\x needs two hex digits")
            out.append(int(digits, 16))
            i += 4
        else:
            raise ValueError(
                f"unknown escape \\{code} in {text!r} (use \\r, \\n, \\t, \\0, \\\\ or \\xHH)"
            )
    if not out:
        raise ValueError("the terminator must not be empty")
    return bytes(out)


def _terminator_arg(text: str) -> bytes:
    try:
        return parse_escapes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _encoding_arg(name: str) -> str:
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {name!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise argparse.ArgumentTypeError(f"{name!r} is not a text encoding")
    return info.name


def _port_arg(lowest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            port = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
        if not lowest <= port <= 65535:
            raise argparse.ArgumentTypeError(f"port {port} is out of range ({lowest}-65535)")
        return port

    return parse


def _seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def _backend_installed(name: str) -> bool:
    try:
        importlib.import_module(BACKENDS[name][2])
    except ImportError:
        return False
    return True


def _not_installed(name: str) -> str:
    extra = "uvloop" if name == "uvloop" else "trio"
    return f"backend {name!r} is not installed (pip install 'anytcpip[{extra}]')"


def available_backends() -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, anyio backend, backend options)`` for every backend installed
    here: asyncio always, asyncio+uvloop and trio when they can be imported."""
    labels = {"asyncio": "asyncio", "uvloop": "asyncio+uvloop", "trio": "trio"}
    return [
        (labels[name], backend, dict(options))
        for name, (backend, options, _module) in BACKENDS.items()
        if _backend_installed(name)
    ]


# ---------------------------------------------------------------- running


def _find(exc: BaseException, kind: type[T]) -> T | None:
    """Find an exception of type ``kind`` in ``exc`` or (nested) exception groups."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find(inner, kind)
        if found is not None:
            return found
    return None


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc``, raised by :func:`anyio.run`, means Ctrl-C.

    On Python 3.10, asyncio has no ``Task.uncancel`` and anyio's runner lets
    the cancellation of the main task that Ctrl-C caused escape as
    :exc:`asyncio.CancelledError` instead of :exc:`KeyboardInterrupt`. Nothing
    else cancels the main task from outside, so that means Ctrl-C too.
    """
    return _find(exc, KeyboardInterrupt) is not None or isinstance(exc, asyncio.CancelledError)


def _run(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    func: Callable[[argparse.Namespace], Awaitable[int]],
) -> int:
    name = args.backend
    if not _backend_installed(name):
        parser.error(_not_installed(name))
    backend, options, _module = BACKENDS[name]
    try:
        status: int = anyio.run(func, args, backend=backend, backend_options=dict(options))
    except BaseException as exc:
        if _interrupted(exc):
            _status("interrupted")
            return EXIT_INTERRUPTED
        error = _find(exc, CLIError)
        if error is not None:
            _status(f"error: {error}")
            return EXIT_ERROR
        raise
    return status


def _reason(exc: BaseException) -> str:
    """A short description of why a connect, bind or transfer failed: the
    operating system's words (``Connection refused``) where they can be found
    in ``exc`` or its causes (anyio wraps failed connection attempts)."""
    seen: list[BaseException] = [exc]
    while seen:
        cause = seen.pop(0)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, OSError) and cause.strerror:
            if isinstance(cause.errno, int) and cause.errno > 0:
                # asyncio puts its own words in strerror ("Connect call failed").
                try:
                    return os.strerror(cause.errno)
                except ValueError:  # pragma: no cover
                    pass
            return cause.strerror
        seen.extend(getattr(cause, "exceptions", ()))
        if cause.__cause__ is not None:
            seen.append(cause.__cause__)
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------- stdin


class _StdinLines:
    """Lines typed on stdin, delivered to the event loop without blocking it.

    A daemon thread reads the file descriptor and hands each line to the loop
    through a :class:`~anyio.from_thread.BlockingPortal`. A daemon thread rather
    than :func:`anyio.to_thread.run_sync`: anyio's worker threads are not
    daemons on asyncio, so one left blocked in ``read()`` after the peer closed
    would keep the process alive until the user pressed Enter.
    """

    def __init__(self, portal: BlockingPortal, send: MemoryObjectSendStream[bytes]) -> None:
        self._portal = portal
        self._send = send
        self._thread = threading.Thread(target=self._read, name="anytcpip stdin", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        pending = b""
        try:
            while fd >= 0:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._portal.call(self._send.send, line)
            if pending:
                self._portal.call(self._send.send, pending)
            self._portal.call(self._send.aclose)
        except Exception:
            # The event loop finished, or stopped listening, first: nobody wants
            # the rest of the input.
            return


def _encode_line(line: bytes, args: argparse.Namespace) -> bytes | None:
    """A line read from stdin, re-encoded with ``--encoding`` and terminated."""
    text = line.rstrip(b"\r").decode(sys.stdin.encoding or "utf-8", errors="replace")
    try:
        data: bytes = text.encode(args.encoding) + args.terminator
        return data
    except UnicodeEncodeError as exc:
        _status(f"warning: cannot encode {text!r} as {args.encoding} ({exc.reason}); not sent")
        return None


# ----------------------------------------------------------- receive side


def _show(message: bytes, args: argparse.Namespace, *, partial: bool = False) -> None:
    """Print one received message (without its terminator)."""
    mark = "< " if getattr(args, "mark", False) else ""
    try:
        text = message.decode(args.encoding)
    except UnicodeDecodeError:
        _out(mark + repr(message))
        _status(f"(the message above is not valid {args.encoding}; shown as bytes)")
        return
    if args.json:
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            text = json.dumps(data, indent=2, ensure_ascii=False)
    if mark:
        text = "\n".join(mark + line for line in text.split("\n"))
    _out(text)
    if partial:
        _status("(the message above ended without a terminator)")


async def _print_incoming(
    obj: BaseClientOrServer,
    args: argparse.Namespace,
    *,
    echo: bool,
    on_message: Callable[[], None] | None = None,
) -> str | None:
    """Print each message (and echo it if ``echo``) until the connection ends.

    Return None if the peer closed the connection, else why it failed.
    ``on_message`` is called after each message arrives.
    """
    terminator = args.terminator
    while True:
        try:
            data = await obj.readuntil(terminator)
        except IncompleteReadError as exc:
            if exc.partial:
                if on_message is not None:
                    on_message()
                _show(exc.partial, args, partial=True)
            return None
        except LimitOverrunError:
            _status(f"warning: a message longer than {obj.limit} bytes was discarded")
            continue
        except ConnectionError as exc:
            return _reason(exc)
        if on_message is not None:
            on_message()
        _show(data[: -len(terminator)], args)
        if echo:
            try:
                await obj.write(data)
            except ConnectionError:
                pass


# ------------------------------------------------------------------ serve


def _server_tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.certfile is None:
        if args.tls:
            parser.error("--tls needs --certfile (and --keyfile unless the key is in it)")
        if args.keyfile or args.cafile:
            parser.error("--keyfile and --cafile need --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(parser, context, args)
    if args.cafile:
        _load_tls_file(parser, "--cafile", args.cafile, context.load_verify_locations)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _load_tls_file(
    parser: argparse.ArgumentParser, option: str, path: str, load: Callable[[str], object]
) -> None:
    """``load(path)``; on failure, exit with a usage error that names the file."""
    if not os.path.exists(path):
        parser.error(f"could not load the TLS files: {option} {path}: no such file")
    try:
        load(path)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"could not load the TLS files: {option} {path}: {_reason(exc)}")


def _load_chain(
    parser: argparse.ArgumentParser, context: ssl.SSLContext, args: argparse.Namespace
) -> None:
    """Load ``--certfile`` (and ``--keyfile``) into ``context``, naming the file
    that could not be loaded."""
    for option, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path is not None and not os.path.exists(path):
            parser.error(f"could not load the TLS files: {option} {path}: no such file")
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = args.certfile if args.keyfile is None else f"{args.certfile} and {args.keyfile}"
        parser.error(f"could not load the TLS files: {files}: {_reason(exc)}")


class _SetupFailureNote(logging.Filter):
    """Turns the server's log record of a connection it could not set up (a
    failed TLS handshake: a plain TCP client, say) into a status line that says
    what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (
            isinstance(record.msg, str)
            and record.msg.startswith("could not set up the connection from")
            and isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[1], BaseException)
        ):
            return True
        peer, exc = str(args[0]), args[1]
        assert isinstance(exc, BaseException)
        match = re.fullmatch(r"\('([^']*)', (\d+)(?:, \d+, \d+)?\)", peer)
        if match:  # the server gives the address as str((host, port))
            peer = _address(match.group(1), int(match.group(2)))
        _status(
            f"a client at {peer} did not complete the TLS handshake ({_reason(exc)}); "
            "dropped it (is it connecting without TLS?)"
        )
        return False


def _in_background(fd: int) -> bool:
    """Whether ``fd`` is a terminal this process is in the background of (where
    reading it would stop the process with SIGTTIN)."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) != os.getpgrp()
    except (AttributeError, OSError):  # no job control (Windows), or no terminal
        return False


def _read_stdin(args: argparse.Namespace) -> bool:
    """Whether ``serve`` should send the lines typed on stdin to the client."""
    if args.no_stdin:
        return False
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if _in_background(fd):
        _status("running in the background: not reading the terminal (see --no-stdin)")
        return False
    return True


async def _serve(args: argparse.Namespace) -> int:
    async def on_change(server: OneClientServer) -> None:
        _status("client connected" if server.connected else "client disconnected")

    # On the handler: the server logs through a child of _log.
    note = _SetupFailureNote()
    _handler.addFilter(note)
    try:
        return await _serve_until_done(args, on_change)
    finally:
        _handler.removeFilter(note)


async def _serve_until_done(
    args: argparse.Namespace, on_change: Callable[[OneClientServer], Awaitable[None]]
) -> int:
    host = None if args.host == "*" else args.host
    server = OneClientServer(
        host=host,
        port=args.port,
        log=_log,
        connect_callback=on_change,
        encoding=args.encoding,
        terminator=args.terminator,
        ssl_context=args.ssl_context,
    )
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(server)
        except OSError as exc:
            raise CLIError(
                f"could not listen on {_address(host, args.port)}: {_reason(exc)}"
            ) from exc
        where = ", ".join(_address(h, p) for h, p in server.bound_addresses)
        tls = " (TLS)" if args.ssl_context is not None else ""
        _status(f"listening on {where}{tls}; Ctrl-C to stop")

        async with anyio.create_task_group() as tg:
            if _read_stdin(args):
                tg.start_soon(_stdin_to_server, server, args)
            while True:
                await server.connected_task
                failure = await _print_incoming(server, args, echo=args.echo)
                if failure is not None:
                    _status(f"connection lost: {failure}")
                # Let the server finish with this client (callback included),
                # so connected_task is fresh for the next one.
                await server.close_client()
                if not args.keep_listening:
                    _status(
                        "the client left; stopping (use --keep-listening to wait for the next one)"
                    )
                    break
            tg.cancel_scope.cancel()
    return EXIT_OK


async def _stdin_to_server(server: OneClientServer, args: argparse.Namespace) -> None:
    """Send each line typed on stdin to the connected client (waiting for one)."""
    send, receive = anyio.create_memory_object_stream[bytes]()
    async with BlockingPortal() as portal, receive:
        try:
            _StdinLines(portal, send).start()
            async for line in receive:
                data = _encode_line(line, args)
                if data is None:
                    continue
                while True:
                    await server.connected_task
                    try:
                        await server.write(data)
                        break
                    except ConnectionError:
                        await anyio.sleep(0.01)
        finally:
            await portal.stop(cancel_remaining=True)


# ---------------------------------------------------------------- connect


def _client_tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls or args.cafile or args.certfile or args.insecure):
        return None
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if args.cafile:
        _load_tls_file(parser, "--cafile", args.cafile, context.load_verify_locations)
    if args.certfile:
        _load_chain(parser, context, args)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _connect(args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {}
    if args.ssl_context is not None:
        kwargs = {"tls": True, "ssl_context": args.ssl_context}
    where = _address(args.host, args.port)
    client = Client(
        host=args.host,
        port=args.port,
        log=_log,
        encoding=args.encoding,
        terminator=args.terminator,
        **kwargs,
    )
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(client)
        except (OSError, anyio.BrokenResourceError) as exc:
            raise CLIError(f"could not connect to {where}: {_reason(exc)}") from exc
        tls = " (TLS)" if args.ssl_context is not None else ""
        _status(f"connected to {where}{tls}; type lines to send, Ctrl-D or Ctrl-C to quit")

        outcome: list[str] = []
        connected_at = anyio.current_time()
        last_message = [connected_at]
        received = [0]
        ended_at = [connected_at]

        def on_message() -> None:
            last_message[0] = anyio.current_time()
            received[0] += 1

        async with anyio.create_task_group() as tg:

            async def receive() -> None:
                failure = await _print_incoming(client, args, echo=False, on_message=on_message)
                ended_at[0] = anyio.current_time()
                outcome.append("closed" if failure is None else failure)
                tg.cancel_scope.cancel()

            tg.start_soon(receive)
            await _stdin_to_client(client, args)
            # End of input: keep printing replies until none has come for
            # --wait seconds (or the peer closes), then close.
            quiet_since = anyio.current_time()
            while True:
                remaining = max(last_message[0], quiet_since) + args.wait - anyio.current_time()
                if remaining <= 0:
                    break
                await anyio.sleep(remaining)
            tg.cancel_scope.cancel()
    if not outcome:
        _status(f"end of input; closed the connection to {where}")
        return EXIT_OK
    tls_hint = "" if args.ssl_context is not None else "; if it expects TLS, connect with --tls"
    if received[0] == 0 and ended_at[0] - connected_at <= TURNED_AWAY_WITHIN:
        raise CLIError(
            f"the server turned this connection away: {where} ended it at once, before "
            "sending anything (a one-client server does that while it serves another "
            f"client{tls_hint})"
        )
    if outcome[0] == "closed":
        if received[0] == 0:
            _status(f"connection closed by {where} before it sent anything{tls_hint}")
        else:
            _status(f"connection closed by {where}")
        return EXIT_OK
    raise CLIError(f"connection to {where} lost: {outcome[0]}")


async def _stdin_to_client(client: Client, args: argparse.Namespace) -> None:
    """Send each line typed on stdin; return at end of input."""
    send, receive = anyio.create_memory_object_stream[bytes]()
    async with BlockingPortal() as portal, receive:
        try:
            _StdinLines(portal, send).start()
            async for line in receive:
                data = _encode_line(line, args)
                if data is not None:
                    try:
                        await client.write(data)
                    except ConnectionError:
                        return
        finally:
            await portal.stop(cancel_remaining=True)


# ------------------------------------------------------------------- demo


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


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    backends = available_backends()
    if args.backend is not None:
        if not _backend_installed(args.backend):
            parser.error(_not_installed(args.backend))
        wanted = {"asyncio": "asyncio", "uvloop": "asyncio+uvloop", "trio": "trio"}[args.backend]
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
        candidates = ("trio",) if sys.platform == "win32" else ("uvloop", "trio")  # no uvloop there
        missing = [name for name in candidates if not _backend_installed(name)]
        if missing:
            extras = ",".join(missing)
            _out(
                f"{' and '.join(missing)} not installed here; to run on them too: "
                f"pip install 'anytcpip[{extras}]'"
            )
    return EXIT_OK


# ------------------------------------------------------------------ bench


def _bench_module() -> Any:
    return importlib.import_module("anytcpip._bench")


# ------------------------------------------------------------------ parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--terminator",
        type=_terminator_arg,
        default=DEFAULT_TERMINATOR,
        metavar="TEXT",
        help=r"message terminator, with escapes such as \r\n, \n, \x00 (default: \r\n)",
    )
    parser.add_argument(
        "--encoding",
        type=_encoding_arg,
        default=DEFAULT_ENCODING,
        help=f"text encoding of the messages (default: {DEFAULT_ENCODING})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="pretty-print received messages that are JSON",
    )
    parser.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="asyncio",
        help="event loop to run on (default: asyncio)",
    )
    parser.add_argument("--tls", action="store_true", help="use TLS")
    parser.add_argument("--cafile", metavar="PEM", help="CA certificates to verify the peer with")
    parser.add_argument("--certfile", metavar="PEM", help="this end's certificate chain")
    parser.add_argument("--keyfile", metavar="PEM", help="this end's private key")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The argument parser, and its subcommand parsers by name."""
    parser = argparse.ArgumentParser(
        prog="anytcpip",
        description="TCP/IP clients and one-client servers on anyio: demo and tools.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subs: dict[str, argparse.ArgumentParser] = {}

    demo = sub.add_parser(
        "demo",
        help="echo server and client on loopback, on every installed backend",
        description="Run an echo server and a client on 127.0.0.1 under each installed "
        "backend: send a str, JSON and a ctypes struct, cancel a read, hang up.",
    )
    demo.add_argument("--backend", choices=list(BACKENDS), help="run on this backend only")
    subs["demo"] = demo

    serve = sub.add_parser(
        "serve",
        help="one-client server that prints what it receives",
        description="Listen for one client; print each message it sends; send each "
        "line typed on stdin to it. Stops when the client leaves "
        "(unless --keep-listening).",
    )
    serve.add_argument(
        "--host",
        default=DEFAULT_LOCALHOST,
        help=f"address to listen on; '*' for every interface (default: {DEFAULT_LOCALHOST})",
    )
    serve.add_argument(
        "--port",
        type=_port_arg(0),
        default=0,
        help="port to listen on (default: 0, any free port)",
    )
    serve.add_argument("--echo", action="store_true", help="send each message back to the client")
    serve.add_argument(
        "-k",
        "--keep-listening",
        action="store_true",
        help="serve the next client when one leaves",
    )
    serve.add_argument(
        "--no-stdin",
        action="store_true",
        help="do not read stdin (lines typed are not sent); the default when "
        "running in the background of a terminal",
    )
    _add_common(serve)
    subs["serve"] = serve

    connect = sub.add_parser(
        "connect",
        help="line console to a server",
        description="Connect; send each line typed on stdin (with the terminator); "
        "print each message that arrives. Stops when the server closes or at end "
        "of input.",
    )
    connect.add_argument("host", help="server host name or address")
    connect.add_argument("port", type=_port_arg(1), help="server port")
    connect.add_argument(
        "--wait",
        type=_seconds_arg,
        default=1.0,
        metavar="SECONDS",
        help="after end of input, keep printing replies until none has come for this "
        "long, then close (default: 1)",
    )
    connect.add_argument(
        "--insecure",
        action="store_true",
        help="TLS without verifying the server's certificate",
    )
    _add_common(connect)
    subs["connect"] = connect

    bench = sub.add_parser(
        "bench",
        help="run the benchmarks",
        description="Benchmarks against ts_tcpip (when importable) and raw streams.",
    )
    subs["bench"] = bench
    for subparser in subs.values():
        # -v after the subcommand too (added up with those before it).
        subparser.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            dest="sub_verbose",
            help="log more (-vv for debug)",
        )
    return parser, subs


def _command_of(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the
    exit status. Never raises SystemExit."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # main() is also called in-process (tests): leave logging as it was.
    logger = logging.getLogger("anytcpip")
    level, had_handler = logger.level, _handler in logger.handlers
    try:
        return _main(argv)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        return code if isinstance(code, int) else EXIT_ERROR
    except KeyboardInterrupt:
        _status("interrupted")
        return EXIT_INTERRUPTED
    finally:
        logger.setLevel(level)
        if not had_handler:
            logger.removeHandler(_handler)


def _main(argv: list[str]) -> int:
    bench_module: Any = None
    if _command_of(argv) == "bench":
        try:
            bench_module = _bench_module()
        except ImportError as exc:
            _status(f"error: the bench command is not available here: {exc}")
            return EXIT_USAGE
    parser, subs = build_parser()
    if bench_module is not None:
        bench_module.add_arguments(subs["bench"])
    args = parser.parse_args(argv)
    _configure_logging(args.verbose + getattr(args, "sub_verbose", 0))
    args.mark = _mark_received()

    if args.command == "demo":
        return _demo(subs["demo"], args)
    if args.command == "bench":
        status: int = bench_module.run_from_args(args)
        return status
    sub = subs[args.command]
    if args.command == "serve":
        args.ssl_context = _server_tls(sub, args)
        return _run(sub, args, _serve)
    args.ssl_context = _client_tls(sub, args)
    return _run(sub, args, _connect)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
