"""BaseClientOrServer: arguments, state, callbacks and the read/write API
(the lifecycle is in ``_lifecycle``)."""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ._compat import reject_uncalled_overrides
from ._connection import Connection
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_LIMIT,
    DEFAULT_LINGER,
    DEFAULT_MONITOR_CONNECTION_INTERVAL,
    DEFAULT_TERMINATOR,
)
from ._exceptions import LimitOverrunError
from ._framing import (
    check_encoding,
    check_terminator,
    decode_json,
    not_bytes,
    not_structure,
)
from ._lifecycle import Lifecycle
from ._options import check_base_arguments

__all__ = ("BaseClientOrServer", "ConnectCallbackType")

#: The type of a ``connect_callback``: ``async def callback(client_or_server)``.
ConnectCallbackType = Callable[[Any], Awaitable[None]]


class BaseClientOrServer(Lifecycle):
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
        Terminator used by those four methods.
    limit : int, optional
        The longest message (excluding its separator) that :meth:`readuntil`,
        :meth:`readline`, :meth:`read_str` and :meth:`read_json` accept;
        64 KiB by default.
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
    ValueError
        If ``terminator`` is not non-empty bytes, ``encoding`` is unknown, or
        ``limit`` or ``linger`` is out of range.
    """

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
    ) -> None:
        check_base_arguments(connect_callback, log, monitor_connection_interval, limit, linger)
        self._encoding = check_encoding(encoding)
        self._terminator = check_terminator(terminator)
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
        """Terminator for the str and JSON methods (settable between messages)."""
        return self._terminator

    @terminator.setter
    def terminator(self, terminator: bytes) -> None:
        self._terminator = check_terminator(terminator)

    @property
    def connected(self) -> bool:
        """True while connected; False as soon as a hangup or reset is seen
        (with monitoring on, whether or not anybody is reading)."""
        conn = self._conn
        return conn is not None and conn.is_open

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

    # ------------------------------------------------------------- reading

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None:
            raise ConnectionError("not connected")
        return conn

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes.

        Parameters
        ----------
        n : int
            The most bytes to return. If -1, wait until the peer closes the
            connection and return everything it sent.

        Returns
        -------
        data : bytes
            At least one byte, or ``b""`` if the peer closed the connection while
            this read was waiting.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        ValueError
            If ``n`` is less than -1.
        """
        conn = self._connection()
        if n == -1:
            buffer = conn.buffer
            return await conn.read(lambda: None, lambda waited: buffer.take_all())
        if n < 0:
            raise ValueError(f"n={n} must be -1 or >= 0")
        if n == 0:
            return b""
        buffer = conn.buffer
        if buffer and not conn.read_busy:
            data = buffer.take_some(n)
            conn.consumed()
            return data
        return await conn.read(lambda: buffer.take_some(n) or None, lambda waited: b"")

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection first; ``partial`` holds what came.
        ValueError
            If ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n={n} must be >= 0")
        conn = self._connection()
        buffer = conn.buffer
        if not conn.read_busy:
            data = buffer.take_exactly(n)
            if data is not None:
                conn.consumed()
                return data
        return await conn.read(
            lambda: buffer.take_exactly(n), lambda waited: buffer.raise_incomplete(n)
        )

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Read one message ending in ``separator``; the result keeps it.

        Parameters
        ----------
        separator : bytes
            The separator. The default is ``b"\\n"`` (as in asyncio), not
            :attr:`terminator`.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the separator arrives.
        LimitOverrunError
            If the message is longer than the read limit. It is discarded
            through its separator, so the next read returns the next message.
        ValueError
            If ``separator`` is empty.
        """
        if not separator:
            raise ValueError("separator must not be empty")
        return await self._read_message(separator, True, raise_at_eof=True)

    async def readline(self) -> bytes:
        """Read one line ending in ``b"\\n"``; the result keeps it.

        If the peer closes the connection first, return what came (possibly
        ``b""``), as :meth:`asyncio.StreamReader.readline` does.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        LimitOverrunError
            If the line is longer than the read limit (it is discarded).
        """
        return await self._read_message(b"\n", True, raise_at_eof=False)

    async def _read_message(self, sep: bytes, keep: bool, *, raise_at_eof: bool) -> bytes:
        conn = self._connection()
        if not conn.read_busy:
            try:
                data = conn.buffer.take_until(sep, keep)
            except LimitOverrunError:
                conn.consumed()  # receiving goes on: a hangup is still seen
                raise
            if data is not None:
                conn.consumed()
                return data
        return await self._wait_message(conn, sep, keep, raise_at_eof=raise_at_eof)

    async def _wait_message(
        self, conn: Connection, sep: bytes, keep: bool, *, raise_at_eof: bool
    ) -> bytes:
        """The rest of a separator-based read, once the buffer had no message."""
        buffer = conn.buffer

        def at_eof(waited: bool) -> bytes:
            if raise_at_eof:
                raise buffer.incomplete(None)
            return buffer.take_all()

        return await conn.read(lambda: buffer.take_until(sep, keep), at_eof)

    async def read_into(self, struct: ctypes.Structure) -> None:
        """Read binary data into a :class:`ctypes.Structure`, in place.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the whole structure came.
        """
        conn = self._connection()
        buffer = conn.buffer
        if not conn.read_busy and buffer.take_into(struct):
            conn.consumed()
            return
        size = ctypes.sizeof(struct)
        await conn.read(
            lambda: buffer.take_into(struct) or None,
            lambda waited: buffer.raise_incomplete(size),
        )

    async def read_str(self) -> str:
        """Read one message ending in :attr:`terminator`, strip the terminator
        and decode it with :attr:`encoding` (strict).

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the terminator arrives.
        LimitOverrunError
            If the message is longer than the read limit (it is discarded).
        UnicodeDecodeError
            If the message cannot be decoded; it is consumed, and the next read
            returns the next message.
        """
        conn = self._connection()
        terminator = self._terminator
        if not conn.read_busy:
            try:
                data = conn.buffer.take_until(terminator, False)
            except LimitOverrunError:
                conn.consumed()  # receiving goes on: a hangup is still seen
                raise
            if data is not None:
                conn.consumed()
                return data.decode(self._encoding)
        data = await self._wait_message(conn, terminator, False, raise_at_eof=True)
        return data.decode(self._encoding)

    async def read_json(self) -> Any:
        """Read one message with :meth:`read_str` and decode it as JSON.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the terminator arrives.
        LimitOverrunError
            If the message is longer than the read limit (it is discarded).
        json.JSONDecodeError
            If the message is not JSON (its message includes the data); also
            for nesting too deep to decode, or an integer with more digits
            than Python converts. The connection is still usable.
        UnicodeDecodeError
            If the message cannot be decoded.
        """
        data = await self.read_str()
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return decode_json(data)  # raises again, with the data in the message

    # ------------------------------------------------------------- writing

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data``.

        When this returns, ``data`` follows everything written before it and
        precedes anything written after it. On a plain TCP connection, if
        nothing written earlier is still waiting to be sent, ``data`` has been
        handed to the kernel (what the kernel could not take yet is queued and
        sent as soon as it can be, without waiting for anything else the
        caller does); with TLS it is queued and goes out at the caller's next
        ``await`` that lets other tasks run. :meth:`close` delivers it too.

        A write waits first while 64 KiB or more are unsent (backpressure);
        writers waiting so are served in the order they came. Without
        backpressure, a write lets other tasks run first once every 64 writes
        or 1 MiB on the connection (a checkpoint, where cancellation is
        honoured too); other writes return without yielding. If it raises,
        none of ``data`` was queued.

        Raises
        ------
        ConnectionError
            If not connected (never connected, closed, or the peer's close or
            a failure has been noticed, including by this write). After a
            plain TCP peer's end-of-stream, writes still work for a short time
            while one of its requests waits for an answer (see the guide,
            "Answering a peer that half-closed").
        TypeError
            If ``data`` is not bytes, bytearray or memoryview.
        """
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise not_bytes(data)
            data = bytes(data)
        conn = self._conn
        if conn is None or conn.write_blocked or not conn.is_open:
            await self._admit(data)
        elif data:
            conn.queue(data)

    async def _admit(self, data: bytes) -> None:
        """Every write method's admission when its fast path (an open,
        unblocked connection) does not apply: check, wait, then queue."""
        conn = self._connection()
        await conn.wait_writable()
        if data:
            conn.queue(data)

    async def writelines(self, lines: Iterable[bytes]) -> None:
        """Write an iterable of bytes, as one message (see :meth:`write`).

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If ``lines`` is not an iterable of bytes-like objects; nothing is
            written.
        """
        await self.write(b"".join(lines))

    async def write_from(self, *structs: ctypes.Structure) -> None:
        """Write one or more :class:`ctypes.Structure`, as one message (see
        :meth:`write`).

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If any of ``structs`` is not a :class:`ctypes.Structure`; nothing
            is written.
        """
        if len(structs) == 1:
            struct = structs[0]
            if not isinstance(struct, ctypes.Structure):
                raise not_structure(struct)
            data = bytes(struct)
        else:
            for struct in structs:
                if not isinstance(struct, ctypes.Structure):
                    raise not_structure(struct)
            data = b"".join([bytes(s) for s in structs])
        conn = self._conn
        if conn is None or conn.write_blocked or not conn.is_open:
            await self._admit(data)
        else:
            conn.queue(data)

    async def write_str(self, line: str) -> None:
        """Encode ``line`` with :attr:`encoding` (strict), append
        :attr:`terminator` and write it (see :meth:`write`).

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If ``line`` is not a str; nothing is written.
        UnicodeEncodeError
            If ``line`` cannot be encoded; nothing is written.
        """
        if type(line) is not str and not isinstance(line, str):
            raise TypeError(f"line must be a str, not {type(line).__name__}")
        data = line.encode(self._encoding) + self._terminator
        conn = self._conn
        if conn is None or conn.write_blocked or not conn.is_open:
            await self._admit(data)
        else:
            conn.queue(data)

    async def write_json(self, data: Any) -> None:
        """Encode ``data`` as JSON and write it like :meth:`write_str`.

        Raises
        ------
        ConnectionError
            If not connected.
        TypeError
            If ``data`` cannot be encoded as JSON; nothing is written.
        UnicodeEncodeError
            If the JSON text cannot be encoded; nothing is written.
        """
        data = json.dumps(data).encode(self._encoding) + self._terminator
        conn = self._conn
        if conn is None or conn.write_blocked or not conn.is_open:
            await self._admit(data)
        else:
            conn.queue(data)
