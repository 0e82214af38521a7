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
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from . import __version__, _backends
from ._cli_common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    _backend_installed,
    _client_tls,
    _encoding_arg,
    _find,
    _handler,
    _interrupted,
    _mark_received,
    _not_installed,
    _port_arg,
    _seconds_arg,
    _server_tls,
    _status,
    _terminator_arg,
    available_backends,
    parse_escapes,
)
from ._console import _connect, _serve
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_LOCALHOST,
    DEFAULT_TERMINATOR,
)
from ._demo import run_demo

__all__ = ("available_backends", "main", "parse_escapes")

#: ``--backend`` values, from the one table of backends.
BACKENDS: tuple[str, ...] = tuple(b.cli_name for b in _backends.BACKENDS)


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


def _run(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    func: Callable[[argparse.Namespace], Awaitable[int]],
) -> int:
    name = args.backend
    if not _backend_installed(name):
        parser.error(_not_installed(name))
    backend = _backends.get(name)
    try:
        status: int = anyio.run(
            func, args, backend=backend.library, backend_options=backend.run_options()
        )
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


# ------------------------------------------------------------------ bench


#: Where a checkout of anytcpip keeps the benchmark suite (``anytcpip_bench``),
#: relative to this file (``src/anytcpip/_cli.py``).
_CHECKOUT_BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

#: What to do when the benchmark suite cannot be found.
_BENCH_HOWTO = (
    "the benchmark suite is not installed with anytcpip: run 'anytcpip bench' in "
    "a checkout of anytcpip's source (pip install -e '.[bench]' there), or put the "
    "checkout's benchmarks/ folder on PYTHONPATH"
)


def _bench_module() -> Any:
    """The benchmark suite: the importable ``anytcpip_bench``, else the one in
    the checkout this file belongs to.

    Raises
    ------
    ImportError
        Neither is there (the message says how to get it).
    """
    try:
        return importlib.import_module("anytcpip_bench")
    except ModuleNotFoundError as exc:
        if exc.name != "anytcpip_bench":
            raise
    if not (_CHECKOUT_BENCHMARKS / "anytcpip_bench" / "__init__.py").is_file():
        raise ImportError(_BENCH_HOWTO)
    sys.path.insert(0, str(_CHECKOUT_BENCHMARKS))
    return importlib.import_module("anytcpip_bench")


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
        "--read-terminator",
        type=_terminator_arg,
        action="append",
        metavar="TEXT",
        help="terminator of received messages, if it differs from --terminator; "
        "repeat it for alternatives (the one that ends first wins)",
    )
    parser.add_argument(
        "--write-terminator",
        type=_terminator_arg,
        metavar="TEXT",
        help="terminator of sent messages, if it differs from --terminator",
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


def resolve_terminators(args: argparse.Namespace) -> None:
    """Set ``args.read_terminator`` (bytes, or a tuple for a repeated
    ``--read-terminator``) and ``args.write_terminator`` (bytes), each from
    ``--terminator`` unless given."""
    reads = args.read_terminator
    if not reads:
        args.read_terminator = args.terminator
    else:
        args.read_terminator = reads[0] if len(reads) == 1 else tuple(dict.fromkeys(reads))
    args.write_terminator = args.write_terminator or args.terminator


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
        return run_demo(subs["demo"], args)
    if args.command == "bench":
        status: int = bench_module.run_from_args(args)
        return status
    sub = subs[args.command]
    resolve_terminators(args)
    if args.command == "serve":
        args.ssl_context = _server_tls(sub, args)
        return _run(sub, args, _serve)
    args.ssl_context = _client_tls(sub, args)
    return _run(sub, args, _connect)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
