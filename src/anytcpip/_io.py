"""The read and write methods of every client and server (:class:`ReadWriteAPI`)."""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from ._buffer import SeparatorRead
from ._connection import Connection
from ._exceptions import LimitOverrunError
from ._framing import check_read_terminator, decode_json, not_bytes, not_structure
from ._oversize import DiscardCount, apply_oversize

__all__ = ("ReadWriteAPI",)


class ReadWriteAPI:
    """Every read and write method; a base of :class:`BaseClientOrServer`,
    which sets the attributes below.
    """

    _conn: Connection | None
    _encoding: str
    _terminator: bytes  # the write terminator
    _read_terminator: bytes | tuple[bytes, ...]
    _oversize: str
    log: logging.Logger
    _discards: DiscardCount | None = None
    # The last separator read's (buffer, sep, keep, raise_at_eof, take, at_eof):
    # made once, not per read (a parked read holds no closures; see _buffer).
    _takers: SeparatorRead | None = None

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

    async def readuntil(
        self, separator: bytes | bytearray | memoryview | tuple[bytes, ...] = b"\n"
    ) -> bytes:
        """Read one message ending in ``separator``; the result keeps it.

        Parameters
        ----------
        separator : bytes or tuple of bytes
            The separator (bytes, bytearray or memoryview). The default is
            ``b"\\n"`` (as in asyncio), not :attr:`terminator`. A tuple gives
            alternatives, as for :attr:`read_terminator` (and as in asyncio
            3.13): the result is the shortest that ends with one of them.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        IncompleteReadError
            If the peer closes the connection before the separator arrives.
        LimitOverrunError
            If the message is longer than the read limit. It is discarded
            through its separator, so the next read returns the next message.
            With ``oversize="discard"`` the read returns the next message
            instead; with ``oversize="close"`` it raises `ConnectionError`.
        TypeError
            If ``separator`` is neither bytes-like nor a tuple of bytes.
        ValueError
            If ``separator`` (or an alternative) is empty.
        """
        sep: bytes | tuple[bytes, ...]
        if type(separator) is bytes:
            sep = separator
        elif isinstance(separator, bytearray | memoryview):
            sep = bytes(separator)
        else:
            sep = check_read_terminator(separator, "separator")
        if not sep:
            raise ValueError("separator must not be empty")
        return await self._read_message(sep, True, raise_at_eof=True)

    async def readline(self) -> bytes:
        """Read one line ending in ``b"\\n"``; the result keeps it.

        If the peer closes the connection first, return what came (possibly
        ``b""``), as :meth:`asyncio.StreamReader.readline` does.

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails.
        LimitOverrunError
            If the line is longer than the read limit (it is discarded; see
            ``oversize`` for the other choices).
        """
        return await self._read_message(b"\n", True, raise_at_eof=False)

    async def _read_message(
        self, sep: bytes | tuple[bytes, ...], keep: bool, *, raise_at_eof: bool
    ) -> bytes:
        conn = self._connection()
        try:
            if not conn.read_busy:
                buffer = conn.buffer
                try:
                    if type(sep) is bytes:
                        data = buffer.take_until(sep, keep)
                    else:
                        data = buffer.take_until_any(sep, keep)  # type: ignore[arg-type]
                except LimitOverrunError:
                    conn.consumed()  # receiving goes on: a hangup is still seen
                    raise
                if data is not None:
                    conn.consumed()
                    return data
            return await self._wait_message(conn, sep, keep, raise_at_eof=raise_at_eof)
        except LimitOverrunError as exc:
            return await self._oversized(conn, exc, sep, keep, raise_at_eof)

    def _wait_message(
        self, conn: Connection, sep: bytes | tuple[bytes, ...], keep: bool, *, raise_at_eof: bool
    ) -> Awaitable[bytes]:
        """The rest of a separator-based read, once the buffer had no message
        (the read itself: no coroutine layer of its own)."""
        takers = self._takers
        buffer = conn.buffer
        if (
            takers is None
            or takers.buffer is not buffer
            or takers.sep is not sep
            or takers.keep_sep is not keep
            or takers.raise_at_eof is not raise_at_eof
        ):
            takers = self._takers = SeparatorRead(buffer, sep, keep, raise_at_eof)
        return conn.read(takers.take, takers.at_eof)

    async def _oversized(
        self,
        conn: Connection,
        exc: LimitOverrunError,
        sep: bytes | tuple[bytes, ...],
        keep: bool,
        raise_at_eof: bool,
    ) -> bytes:
        """A separator-based read met a message over the limit (consumed):
        apply :attr:`oversize`."""
        if self._discards is None:
            self._discards = DiscardCount()
        return await apply_oversize(
            self._oversize,
            self.log,
            self._discards,
            conn,
            exc,
            lambda: self._wait_message(conn, sep, keep, raise_at_eof=raise_at_eof),
        )

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
        """Read one message ending in :attr:`read_terminator` (or one of its
        alternatives), strip the terminator and decode it with
        :attr:`encoding` (strict).

        Raises
        ------
        ConnectionError
            If not connected, or the connection fails; with
            ``oversize="close"``, for a message longer than the read limit
            (the connection is closed).
        IncompleteReadError
            If the peer closes the connection before the terminator arrives.
        LimitOverrunError
            If the message is longer than the read limit (it is discarded);
            with ``oversize="discard"`` the read returns the next message
            instead.
        UnicodeDecodeError
            If the message cannot be decoded; it is consumed, and the next read
            returns the next message.
        """
        conn = self._connection()
        terminator = self._read_terminator
        try:
            # The fast path: one bytes terminator and a whole message buffered
            # (alternatives go through the general read, which tries first).
            if not conn.read_busy and type(terminator) is bytes:
                try:
                    data = conn.buffer.take_until(terminator, False)
                except LimitOverrunError:
                    conn.consumed()  # receiving goes on: a hangup is still seen
                    raise
                if data is not None:
                    conn.consumed()
                    return data.decode(self._encoding)
            data = await self._wait_message(conn, terminator, False, raise_at_eof=True)
        except LimitOverrunError as exc:
            data = await self._oversized(conn, exc, terminator, False, True)
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
            If the message is longer than the read limit (see :meth:`read_str`
            and ``oversize``).
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
        :attr:`write_terminator` and write it (see :meth:`write`).

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
