"""What the command line's modules share: exit statuses, output lines,
argument types, TLS contexts built from arguments, the installed backends
and the way errors are told apart."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import logging
import os
import ssl
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from . import _backends

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes log records to whatever ``sys.stderr`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


#: The handler of the ``anytcpip`` logger while the command line runs.
_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


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
    return _backends.get(name).installed


def _not_installed(name: str) -> str:
    backend = _backends.get(name)
    return f"backend {name!r} is not installed ({backend.install_hint()})"


def available_backends() -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, anyio backend, backend options)`` for every backend installed
    here: asyncio always, asyncio+uvloop and trio when they can be imported."""
    return [(b.name, b.library, b.run_options()) for b in _backends.available()]


# ---------------------------------------------------------------- errors


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


# ------------------------------------------------------------------- TLS


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
