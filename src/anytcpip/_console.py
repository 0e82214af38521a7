"""The ``serve`` and ``connect`` consoles of the command line: print what
arrives, send the lines typed on stdin."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal
from anyio.streams.memory import MemoryObjectSendStream

from ._base import BaseClientOrServer
from ._cli_common import (
    EXIT_OK,
    CLIError,
    _address,
    _handler,
    _out,
    _reason,
    _status,
)
from ._client import Client
from ._exceptions import IncompleteReadError, LimitOverrunError
from ._framing import strip_terminator
from ._one_client_server import OneClientServer

_log = logging.getLogger("anytcpip.cli")

#: A connection the server closes this soon after it was made, before either
#: end sent anything, was turned away (seconds).
TURNED_AWAY_WITHIN = 1.0


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
        data: bytes = text.encode(args.encoding) + args.write_terminator
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
    terminator = args.read_terminator
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
        _show(strip_terminator(data, terminator), args)
        if echo:
            try:
                await obj.write(data)
            except ConnectionError:
                pass


# ------------------------------------------------------------------ serve


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
        read_terminator=args.read_terminator,
        write_terminator=args.write_terminator,
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
        read_terminator=args.read_terminator,
        write_terminator=args.write_terminator,
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
