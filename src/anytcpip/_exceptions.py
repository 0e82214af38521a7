"""Public exceptions, and the one place that turns transport errors into them."""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

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


#: OS errors that mean the connection is gone, as opposed to a programming error.
_TRANSPORT_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.ENOTCONN,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EBADF,
        errno.ESHUTDOWN,
    }
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
    """Whether ``exc`` (raised by a stream operation) means the link is unusable."""
    return isinstance(
        exc,
        (
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            anyio.EndOfStream,
            ssl.SSLError,
            OSError,
        ),
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
