"""BaseClientOrServer: arguments, state and callbacks (the read/write API is in
``_io``, the lifecycle in ``_lifecycle``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ._compat import reject_uncalled_overrides
from ._connection import Connection
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_LIMIT,
    DEFAULT_LINGER,
    DEFAULT_MONITOR_CONNECTION_INTERVAL,
    DEFAULT_TERMINATOR,
)
from ._disconnect import DisconnectReason
from ._framing import (
    check_encoding,
    check_oversize,
    check_read_terminator,
    check_terminator,
    check_write_terminator,
)
from ._io import ReadWriteAPI
from ._lifecycle import Lifecycle
from ._options import check_base_arguments

__all__ = ("BaseClientOrServer", "ConnectCallbackType")

#: The type of a ``connect_callback``: ``async def callback(client_or_server)``.
ConnectCallbackType = Callable[[Any], Awaitable[None]]


class BaseClientOrServer(ReadWriteAPI, Lifecycle):
    """The part shared by :class:`Client` and the servers: connection state,
    the connect callback, the lifecycle and every read and write method.

    Parameters
    ----------
    log : logging.Logger
        Logger; the object logs to a child of it.
    connect_callback : async callable or None, optional
        Called as ``await connect_callback(self)`` once per change of
        :attr:`connected`: after connecting, and after the connection is lost or
        closed. Calls strictly alternate and never overlap. An exception raised
        by it is logged and otherwise ignored.
    monitor_connection_interval : float, optional
        If positive (the default), a background task watches the connection
        continuously, so a peer's close or reset is noticed within milliseconds
        even when nobody is reading; no polling is involved, so the value is not
        a period. If zero or negative, it is noticed only by reads and writes.
    name : str, optional
        Name used in log messages.
    encoding : str, optional
        Encoding used by :meth:`read_str`, :meth:`write_str`, :meth:`read_json`
        and :meth:`write_json`.
    terminator : bytes, optional
        Terminator used by those four methods, both ways.
    read_terminator : bytes or tuple of bytes, optional
        Keyword only: the terminator :meth:`read_str` and :meth:`read_json`
        look for, if it differs from ``terminator``. A tuple gives
        alternatives: the one that ends first in the stream ends the message
        (of two that end at the same place, the longer), and is stripped.
    write_terminator : bytes, optional
        Keyword only: the terminator :meth:`write_str`, :meth:`write_json` and
        the client's heartbeats append, if it differs from ``terminator``.
    limit : int, optional
        The longest message (excluding its separator) that :meth:`readuntil`,
        :meth:`readline`, :meth:`read_str` and :meth:`read_json` accept;
        64 KiB by default.
    oversize : str, optional
        Keyword only: what a message longer than ``limit`` does to those
        reads. ``"raise"`` (the default): the read raises
        `LimitOverrunError`, the message is discarded. ``"discard"``: the
        message is skipped and the read returns the next one (the first skip
        on a connection is logged as a warning, later ones at debug level).
        ``"close"``: the connection is closed at this end (disconnect reason
        ``OVER_LIMIT``) and the read raises `ConnectionError`.
    linger : float, optional
        The longest time :meth:`close` spends letting the peer take what was
        written and finish its side of the connection (seconds).

    Raises
    ------
    TypeError
        If ``connect_callback`` is not None and not an async callable. When a
        subclass is *defined* that overrides a ts_tcpip method anytcpip would
        never call (``start``, ``monitor_received_heartbeats``, ...): the
        message says what to use instead.
    TypeError
        If ``read_terminator`` is neither bytes nor a tuple of bytes, or
        ``write_terminator`` is not bytes.
    ValueError
        If ``terminator`` is not non-empty bytes, ``read_terminator`` or
        ``write_terminator`` (or an alternative) is empty, ``encoding`` is
        unknown, ``oversize`` is not one of the three choices, or ``limit`` or
        ``linger`` is out of range.
    """

    # Slots: a process may hold thousands of these. Subclasses (and anyio's
    # AsyncContextManagerMixin) still give every instance a __dict__.
    __slots__ = (
        "__connect_callback",
        "_close_called",
        "_close_requested",
        "_closing",
        "_conn",
        "_conn_tasks",
        "_disconnect_reason",
        "_encoding",
        "_inline_work",
        "_inner",
        "_may_inline",
        "_open_scope",
        "_oversize",
        "_read_terminator",
        "_run_ended",
        "_started",
        "_supervised",
        "_terminator",
        "_was_connected",
        "done_task",
        "limit",
        "linger",
        "log",
        "monitor_connection_interval",
        "name",
        "should_be_connected",
        "start_task",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reject_uncalled_overrides(cls)

    def __init__(
        self,
        *,
        log: logging.Logger,
        connect_callback: ConnectCallbackType | None = None,
        monitor_connection_interval: float = DEFAULT_MONITOR_CONNECTION_INTERVAL,
        name: str = "",
        encoding: str = DEFAULT_ENCODING,
        terminator: bytes = DEFAULT_TERMINATOR,
        limit: int = DEFAULT_LIMIT,
        linger: float = DEFAULT_LINGER,
        oversize: str = "raise",
        read_terminator: bytes | tuple[bytes, ...] | None = None,
        write_terminator: bytes | None = None,
    ) -> None:
        check_base_arguments(connect_callback, log, monitor_connection_interval, limit, linger)
        self._encoding = check_encoding(encoding)
        # _terminator is the write terminator; _read_terminator the read one.
        self._terminator = check_terminator(terminator)
        self._read_terminator: bytes | tuple[bytes, ...] = self._terminator
        if read_terminator is not None:
            self._read_terminator = check_read_terminator(read_terminator)
        if write_terminator is not None:
            self._terminator = check_write_terminator(write_terminator)
        self._oversize = check_oversize(oversize)
        self.name = name
        self.log = log.getChild(f"{type(self).__name__}({name})" if name else type(self).__name__)
        self.__connect_callback = connect_callback
        self.monitor_connection_interval = monitor_connection_interval
        self.limit = limit
        self.linger = linger
        #: True from connecting until close at this end (``close`` for a client,
        #: ``close_client`` for a server).
        self.should_be_connected = False
        self._conn: Connection | None = None
        self._was_connected = False
        self._init_lifecycle()

    # ----------------------------------------------------------- attributes

    @property
    def encoding(self) -> str:
        """Encoding for the str and JSON methods (settable between messages)."""
        return self._encoding

    @encoding.setter
    def encoding(self, encoding: str) -> None:
        self._encoding = check_encoding(encoding)

    @property
    def terminator(self) -> bytes:
        """Terminator for the str and JSON methods (settable between messages).

        Setting it sets :attr:`read_terminator` and :attr:`write_terminator`
        both. Reading it gives :attr:`write_terminator` (what ``write_str``
        and heartbeats append), also when the read terminator differs.
        """
        return self._terminator

    @terminator.setter
    def terminator(self, terminator: bytes) -> None:
        self._terminator = self._read_terminator = check_terminator(terminator)

    @property
    def read_terminator(self) -> bytes | tuple[bytes, ...]:
        """What ends a message for :meth:`read_str` and :meth:`read_json`:
        bytes, or a tuple of alternatives (settable between messages; a tuple
        of one is kept as its bytes).

        Raises
        ------
        TypeError, ValueError
            When set to something else than non-empty bytes or a non-empty
            tuple of non-empty bytes.
        """
        return self._read_terminator

    @read_terminator.setter
    def read_terminator(self, terminator: bytes | tuple[bytes, ...]) -> None:
        self._read_terminator = check_read_terminator(terminator)

    @property
    def write_terminator(self) -> bytes:
        """What :meth:`write_str`, :meth:`write_json` and heartbeats append
        (settable between messages).

        Raises
        ------
        TypeError, ValueError
            When set to something else than non-empty bytes.
        """
        return self._terminator

    @write_terminator.setter
    def write_terminator(self, terminator: bytes) -> None:
        self._terminator = check_write_terminator(terminator)

    @property
    def oversize(self) -> str:
        """What a message longer than ``limit`` does to a read:
        ``"raise"``, ``"discard"`` or ``"close"`` (see the constructor;
        settable between messages).

        Raises
        ------
        ValueError
            When set to anything else.
        """
        return self._oversize

    @oversize.setter
    def oversize(self, oversize: str) -> None:
        self._oversize = check_oversize(oversize)

    @property
    def connected(self) -> bool:
        """True while connected; False as soon as a hangup or reset is seen
        (with monitoring on, whether or not anybody is reading)."""
        conn = self._conn
        return conn is not None and conn.is_open

    @property
    def disconnect_reason(self) -> DisconnectReason | None:
        """Why the last connection ended (a :class:`DisconnectReason`), or None
        if none has ended yet. Set before the disconnect call of
        ``connect_callback``, so the callback can read it; kept until the next
        connection ends."""
        return self._disconnect_reason

    async def wait_disconnected(self) -> DisconnectReason | None:
        """Wait until the current connection has ended, and return why.

        If a connection is being served, return once it has ended and its
        disconnect callback has run; otherwise return :attr:`disconnect_reason`
        at once (None if no connection has ended yet). From the disconnect
        call of ``connect_callback`` itself, return its reason at once. Bound
        the wait with the caller's own cancel scope, e.g.
        ``with anyio.fail_after(5):``.

        With ``second_client="replace"`` the new client may already be served
        when this is called, and then it is the one waited for: to wait for
        the end of the replaced one, wait on that client itself, or use the
        connect callback (see the guide's example).

        Raises
        ------
        RuntimeError
            If called from the connect call of ``connect_callback``: the
            connection cannot end (nor its disconnect call run) before that
            call returns.
        """
        conn = self._conn
        if conn is not None and not conn.released.is_set():
            if conn.serving_task == anyio.get_current_task().id:
                # The callback would wait for itself.
                if not conn.lost.is_set():
                    raise RuntimeError(
                        "wait_disconnected() called from the connect call of connect_callback "
                        "would wait forever"
                    )
                return conn.disconnect_reason
            await conn.released.wait()
        return self._disconnect_reason

    # ------------------------------------------------------------ callbacks

    async def call_connect_callback(self) -> None:
        """Call the connect callback if :attr:`connected` changed since the last
        call. Always safe to call; exceptions from the callback are logged.

        An override may raise: the exception is logged, the server keeps
        serving, and if it raised on connect that client is closed."""
        connected = self.connected
        if connected == self._was_connected:
            return
        self._was_connected = connected
        callback = self.__connect_callback
        if callback is None:
            return
        try:
            await callback(self)
        except Exception:
            self.log.exception("connect_callback failed")
