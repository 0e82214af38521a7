"""Public exceptions, and the one place that turns transport errors into them."""

from __future__ import annotations

import asyncio
import errno
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import anyio

__all__ = ("IncompleteReadError", "LimitOverrunError")


class IncompleteReadError(asyncio.IncompleteReadError):
    """The peer closed the connection before a read could be satisfied.

    A subclass of :exc:`asyncio.IncompleteReadError` (and so of :exc:`EOFError`),
    so handlers written for lsst.ts.tcpip keep working.

    Attributes
    ----------
    partial : bytes
        The bytes read before the end of the stream. They are consumed: no later
        read returns them again.
    expected : int | None
        The number of bytes the read wanted, or None for a read that wanted a
        separator.
    """


class LimitOverrunError(asyncio.LimitOverrunError, ValueError):
    """A message was longer than the read limit.

    A subclass of :exc:`asyncio.LimitOverrunError` and of :exc:`ValueError` (what
    :meth:`asyncio.StreamReader.readline` raises for the same condition).
    The over-long message is discarded through its separator, so the next read
    returns the next message.

    Attributes
    ----------
    consumed : int
        The number of bytes of the message discarded so far.
    """


#: OS errors that say the caller did something wrong (a bad argument, not a
#: socket), not that the link went away: they are bugs and must propagate.
#: EBADF is not among them: it is what a socket closed by another task
#: (the close racing a receive) gives.
_BUG_ERRNOS = frozenset(
    getattr(errno, name) for name in ("EINVAL", "EFAULT", "ENOTSOCK") if hasattr(errno, name)
)


def to_connection_error(exc: BaseException, what: str = "connection lost") -> ConnectionError:
    """Return a :exc:`ConnectionError` describing transport failure ``exc``.

    anyio's wrappers are looked through: a :exc:`ConnectionError` found there is
    returned as it is; any other error (``ETIMEDOUT`` from keepalive, an
    :exc:`ssl.SSLError`, a closed stream) becomes a :exc:`ConnectionError` whose
    ``__cause__`` is that error.
    """
    cause: BaseException = exc
    while isinstance(cause, anyio.BrokenResourceError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, ConnectionError):
        return cause
    detail = str(cause) or type(cause).__name__
    new = ConnectionError(f"{what}: {detail}")
    new.__cause__ = cause
    return new


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` (raised by a stream operation) means the link is unusable.

    anyio's stream errors, TLS errors and OS errors are; an OS error whose
    errno says the call itself was wrong (see ``_BUG_ERRNOS``) is not.
    """
    if isinstance(exc, OSError):
        return exc.errno not in _BUG_ERRNOS
    return isinstance(
        exc,
        (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, ssl.SSLError),
    )


@contextmanager
def translate_errors(what: str = "connection lost") -> Iterator[None]:
    """Turn any transport failure raised inside into a :exc:`ConnectionError`."""
    try:
        yield
    except ConnectionError:
        raise
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError) as exc:
        raise to_connection_error(exc, what)  # noqa: B904 (the cause is set)


# ------------------------------------------------------------ accept policy

#: accept() errors that mean the process or the system is out of resources:
#: log, pause, try again.
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

#: accept() errors that concern one incoming connection only: it was aborted
#: or reset before we took it, a firewall refused it, or (Linux passes
#: pending network errors of the new socket on through accept()) its network
#: went away. Skip it and accept the next one.
HARMLESS_ACCEPT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "ECONNRESET",
        "ENOTCONN",
        "EPROTO",
        "EPERM",
        "ETIMEDOUT",
        "ENETDOWN",
        "ENETUNREACH",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ENONET",
        "ENOPROTOOPT",
        "EOPNOTSUPP",
        "ENOSR",
        "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT",
    )
    if hasattr(errno, name)
)


def root_errno(exc: BaseException) -> int | None:
    """The errno of the first :exc:`OSError` in ``exc`` and its ``__cause__``
    chain (anyio wraps OS errors in its own exceptions on some backends)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__
    return None


def accept_error_kind(exc: BaseException) -> Literal["closed", "capacity", "harmless", "bug"]:
    """What the accept loop does about ``exc``, raised while accepting.

    ``"closed"``: the listener was closed, stop. ``"capacity"``: out of file
    descriptors or memory, log, pause and retry. ``"harmless"``: a problem of
    one incoming connection (see :data:`HARMLESS_ACCEPT_ERRNOS`; also an
    accepted peer whose address is already gone), skip it. ``"bug"``:
    anything else (EBADF, EINVAL, a non-OS error); it must propagate.
    Except on Linux, EINVAL is harmless: anyio sets ``TCP_NODELAY`` on the
    accepted socket, which fails with EINVAL on macOS and the BSDs when the
    peer has already reset the connection.
    """
    if isinstance(exc, anyio.ClosedResourceError):
        return "closed"
    if isinstance(exc, anyio.TypedAttributeLookupError):
        return "harmless"
    code = root_errno(exc)
    if code in CAPACITY_ERRNOS:
        return "capacity"
    if code in HARMLESS_ACCEPT_ERRNOS:
        return "harmless"
    if code == errno.EINVAL and not sys.platform.startswith("linux"):
        return "harmless"
    return "bug"
