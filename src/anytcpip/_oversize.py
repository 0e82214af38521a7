"""What a message longer than the read limit does (the ``oversize`` policy).

Looked at only once a separator-based read has met such a message, so the
reads' fast path never pays for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ._connection import Connection
from ._disconnect import DisconnectKind
from ._exceptions import LimitOverrunError

__all__ = ("DiscardCount", "apply_oversize")


class DiscardCount:
    """How many over-long messages were skipped on one connection (the
    first is logged as a warning, the others at debug level)."""

    __slots__ = ("conn", "count")

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.count = 0

    def note(self, conn: Connection, exc: LimitOverrunError, log: logging.Logger) -> None:
        if conn is not self.conn:
            self.conn = conn
            self.count = 0
        self.count += 1
        if self.count == 1:
            log.warning(
                "skipped a message from %s over the read limit (oversize='discard'; later "
                "ones on this connection are logged at debug level): %s",
                conn.peer or "?",
                exc,
            )
        else:
            log.debug("skipped over-long message number %d: %s", self.count, exc)


async def apply_oversize(
    policy: str,
    log: logging.Logger,
    discards: DiscardCount,
    conn: Connection,
    exc: LimitOverrunError,
    read_next: Callable[[], Awaitable[bytes]],
) -> bytes:
    """Apply ``policy`` to the over-long message that raised ``exc`` (already
    consumed): re-raise it, skip it and return ``await read_next()`` (skipping
    every further over-long message too), or close the connection.

    Raises
    ------
    LimitOverrunError
        ``exc``, for ``"raise"``.
    ConnectionError
        For ``"close"`` (chained from ``exc``), and from ``read_next``.
    """
    if policy == "discard":
        while True:
            discards.note(conn, exc, log)
            try:
                return await read_next()
            except LimitOverrunError as again:
                exc = again
    if policy == "close":
        log.warning("closing the connection to %s (oversize='close'): %s", conn.peer or "?", exc)
        conn.close_here(DisconnectKind.OVER_LIMIT)
        raise ConnectionError(f"closed the connection: {exc}") from exc
    raise exc
