"""Why a connection ended: :class:`DisconnectReason` and its kinds (sans-IO)."""

from __future__ import annotations

import enum
import errno
import ssl
from dataclasses import dataclass

__all__ = ("DisconnectKind", "DisconnectReason", "kind_of_error")


class DisconnectKind(str, enum.Enum):
    """What ended a connection. The value is the phrase used in log messages."""

    #: The peer closed its side (an end-of-stream, or a TLS close_notify).
    PEER_CLOSED = "peer closed"
    #: The peer reset the connection (RST), or a write found it broken.
    RESET = "reset"
    #: The operating system gave up on the peer (keepalive ``ETIMEDOUT``).
    TIMED_OUT = "timed out"
    #: The peer sent no heartbeat in time (a read-loop server's heartbeat
    #: monitor, or a reconnecting client's heartbeat timeout).
    HEARTBEAT_MISSED = "heartbeat missed"
    #: Closed at this end (``close``, ``close_client``, ``basic_close*``).
    CLOSED_HERE = "closed here"
    #: A one-client server served a new client instead (``second_client``).
    REPLACED = "replaced by a new client"
    #: A message longer than the read limit, with ``oversize="close"``.
    OVER_LIMIT = "over limit"
    #: Anything else that failed; :attr:`DisconnectReason.exception` says what.
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DisconnectReason:
    """Why the last connection of a client or server ended, and what it left.

    Read it as ``obj.disconnect_reason`` (also from inside the disconnect call
    of ``connect_callback``) or as the result of ``await obj.wait_disconnected()``.
    ``str(reason)`` is the one line that is logged for each disconnect.

    Attributes
    ----------
    kind : DisconnectKind
        What ended the connection first (a close at this end after the peer's
        end-of-stream is still ``PEER_CLOSED``).
    peer : str
        The peer's address, as ``host:port`` or as logged on connecting.
    exception : BaseException or None
        The error that ended the connection, for ``RESET``, ``TIMED_OUT`` and
        ``FAILED``; else None.
    unread : int
        Bytes received that nobody had read when the connection ended (for a
        close at this end, the bytes it discarded).
    unsent : int
        Bytes written that had not been handed to the operating system when the
        connection ended. After a close at this end they are still delivered
        (within ``linger``); after a reset or failure they are lost (on asyncio
        and uvloop, a failure the event loop saw first counts 0: its
        transport drops what it held before it reports the failure).
    """

    kind: DisconnectKind
    peer: str = ""
    exception: BaseException | None = None
    unread: int = 0
    unsent: int = 0

    def __str__(self) -> str:
        text = f"{self.kind.value}"
        if self.exception is not None:
            text += f" ({type(self.exception).__name__}: {self.exception})"
        left = []
        if self.unread:
            left.append(f"{self.unread} bytes unread")
        if self.unsent:
            left.append(f"{self.unsent} bytes unsent")
        if left:
            text += "; " + ", ".join(left)
        return text


#: errno values that mean the peer (or the path to it) reset the connection.
_RESET_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ECONNRESET", "EPIPE", "ECONNABORTED", "ESHUTDOWN")
    if hasattr(errno, name)
)
_TIMEOUT_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ETIMEDOUT", "EHOSTUNREACH") if hasattr(errno, name)
)


def kind_of_error(exc: BaseException) -> DisconnectKind:
    """The kind of disconnect that transport error ``exc`` (or its cause) means."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return DisconnectKind.RESET
        if isinstance(current, TimeoutError):
            return DisconnectKind.TIMED_OUT
        if isinstance(current, OSError) and not isinstance(current, ssl.SSLError):
            if current.errno in _RESET_ERRNOS:
                return DisconnectKind.RESET
            if current.errno in _TIMEOUT_ERRNOS:
                return DisconnectKind.TIMED_OUT
        current = current.__cause__ or current.__context__
    return DisconnectKind.FAILED
