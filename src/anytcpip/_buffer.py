"""The buffers of a connection, without I/O.

:class:`ReceiveBuffer`: framing, separator search and the read limit. It
consumes bytes only when it can return a whole result, which is what makes a
cancelled read lose nothing: a read that is cancelled while it waits for more
data has taken nothing out of the buffer.

:class:`SendBuffer`: what was written and not yet sent, in order, and whether
that is so much that writers must wait (the high-water mark).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import NoReturn

from ._exceptions import IncompleteReadError, LimitOverrunError

__all__ = ("ReceiveBuffer", "SendBuffer", "SeparatorRead", "find_first_end")

# Compact the bytearray once this many consumed bytes sit at its front and they
# are more than half of it; below that, slicing from an offset is cheaper.
_COMPACT_AT = 1 << 16

# From this length on, a copy out of a bytearray goes through a memoryview.
_VIEW_AT = 1 << 12


def _copy(buf: bytes | bytearray, start: int, stop: int) -> bytes:
    """``buf[start:stop]`` as bytes, copied once at most.

    A slice of bytes is bytes already (the whole of it is the object itself);
    a bytearray slice is a copy that bytes() copies again, so a long one goes
    through a memoryview instead (whose setup costs more than a short copy).
    """
    if type(buf) is bytes:
        return buf[start:stop]
    if stop - start < _VIEW_AT:
        return bytes(buf[start:stop])
    with memoryview(buf) as view:
        return bytes(view[start:stop])


def find_first_end(
    data: bytes | bytearray, seps: tuple[bytes, ...], starts: tuple[int, ...] | int
) -> tuple[int, int]:
    """Where the first of ``seps`` to end in ``data`` starts and ends.

    Each alternative is looked for from its own start (``starts[i]``, or
    ``starts`` for all). Of the alternatives that occur, the one whose first
    occurrence ends earliest wins; if several end at the same place, the
    longest (it starts first). Returns ``(start, end)``, or ``(-1, -1)`` if
    none occurs.
    """
    best_idx = best_end = -1
    for i, sep in enumerate(seps):
        idx = data.find(sep, starts if isinstance(starts, int) else starts[i])
        if idx >= 0:
            end = idx + len(sep)
            if best_end < 0 or end < best_end or (end == best_end and idx < best_idx):
                best_idx, best_end = idx, end
    return best_idx, best_end


class ReceiveBuffer:
    """Bytes received and not yet read.

    Parameters
    ----------
    limit : int
        The longest message (excluding its separator) that the separator-based
        reads accept.
    """

    __slots__ = (
        "_buf",
        "_discard_sep",
        "_discard_tail",
        "_discarded",
        "_pos",
        "_scan",
        "_scan_sep",
        "limit",
    )

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit} must be positive")
        self.limit = limit
        # What was received: a chunk kept as it came while nothing else is
        # buffered (bytes: reading it whole, or in pieces, copies nothing
        # more), else a bytearray that later chunks are appended to.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        # Where the search for _scan_sep can resume (positions before it hold
        # no separator).
        self._scan = 0
        self._scan_sep: bytes | tuple[bytes, ...] = b""
        # Set while the rest of an over-long message is being thrown away.
        # Meanwhile ``_buf`` is empty (so no read sees any of that message)
        # and ``_discard_tail`` holds its last bytes, which may be the start
        # of the separator.
        self._discard_sep: bytes | tuple[bytes, ...] | None = None
        self._discard_tail = b""
        self._discarded = 0

    def __len__(self) -> int:
        return len(self._buf) - self._pos

    def __bool__(self) -> bool:
        return len(self._buf) > self._pos

    @property
    def discarding(self) -> bool:
        """True while the tail of an over-limit message is being discarded."""
        return self._discard_sep is not None

    def feed(self, received: bytes | bytearray | memoryview) -> None:
        """Append received bytes (a bytearray or memoryview is copied: the
        buffer may keep what it is given)."""
        data = received if type(received) is bytes else bytes(received)
        if self._discard_sep is not None:
            self._discard(data)
            return
        buf = self._buf
        pos = self._pos
        if pos == len(buf):
            # Nothing unread: keep the chunk itself (no copy).
            self._buf = data
            self._pos = self._scan = 0
            return
        if type(buf) is bytes:
            # A kept chunk with some of it unread: copy that rest once, then
            # append to it.
            with memoryview(buf) as view:
                self._buf = buf = bytearray(view[pos:])
            self._scan = max(0, self._scan - pos)
            self._pos = 0
        elif pos >= _COMPACT_AT and pos * 2 > len(buf) and isinstance(buf, bytearray):
            del buf[:pos]
            self._scan = max(0, self._scan - pos)
            self._pos = 0
        buf += data

    def clear(self) -> None:
        """Throw away everything buffered (and stop any discarding)."""
        self._buf = b""
        self._pos = self._scan = 0
        self._discard_sep = None
        self._discard_tail = b""

    def _discard(self, data: bytes) -> None:
        """Throw ``data`` away up to and including the separator that ends the
        message being discarded; what follows it is buffered."""
        sep = self._discard_sep
        assert sep is not None
        tail = self._discard_tail
        if tail:
            data = tail + data
        if isinstance(sep, bytes):
            idx = data.find(sep)
            end = idx + len(sep)
            keep = len(sep) - 1
        else:
            idx, end = find_first_end(data, sep, 0)
            keep = max(map(len, sep)) - 1
        if idx >= 0:
            self._discarded += end - len(tail)
            self._discard_sep = None
            self._discard_tail = b""
            self._buf += data[end:]
            return
        # Keep only what could be the start of the separator (not readable).
        self._discard_tail = bytes(data[-keep:]) if keep else b""
        self._discarded += len(data) - len(tail)

    def _take(self, end: int) -> bytes:
        data = _copy(self._buf, self._pos, end)
        self._pos = end
        return data

    def take_all(self) -> bytes:
        """Remove and return everything buffered."""
        return self._take(len(self._buf))

    def take_some(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes (``b""`` if empty)."""
        end = min(len(self._buf), self._pos + n)
        return self._take(end)

    def take_exactly(self, n: int) -> bytes | None:
        """Remove and return ``n`` bytes, or return None if fewer are buffered."""
        end = self._pos + n
        if end > len(self._buf):
            return None
        return self._take(end)

    def take_into(self, struct: ctypes.Structure) -> bool:
        """Fill ``struct`` from the buffer; return False if too few bytes."""
        size = ctypes.sizeof(struct)
        end = self._pos + size
        if end > len(self._buf):
            return False
        try:
            memoryview(struct).cast("B")[:] = self._buf[self._pos : end]
        except TypeError:  # pragma: no cover (a layout memoryview cannot cast)
            ctypes.memmove(ctypes.addressof(struct), bytes(self._buf[self._pos : end]), size)
        self._pos = end
        return True

    def take_until(self, sep: bytes, keep_sep: bool = True) -> bytes | None:
        """Remove and return one message ending in ``sep``.

        Returns None if no whole message is buffered yet.

        Raises
        ------
        LimitOverrunError
            If the message, without ``sep``, is longer than ``limit``. The message
            is consumed through ``sep``; if ``sep`` has not arrived yet, the rest
            of the message is discarded as it arrives.
        """
        buf = self._buf
        pos = self._pos
        if self._scan_sep is not sep:
            self._scan_sep = sep
            self._scan = pos
        start = self._scan - len(sep) + 1
        idx = buf.find(sep, start if start > pos else pos)
        limit = self.limit
        if idx < 0:
            self._scan = len(buf)
            if len(buf) - pos - (len(sep) - 1) > limit:
                self._start_discarding(sep)
                raise LimitOverrunError(
                    f"message longer than the limit of {limit} bytes; discarding it"
                    f" through its separator {sep!r}",
                    self._discarded,
                )
            return None
        end = idx + len(sep)
        self._scan = end
        if idx - pos > limit:
            self._pos = end
            raise LimitOverrunError(
                f"message of {idx - pos} bytes is longer than the limit of {limit} bytes;"
                " discarded",
                end - pos,
            )
        # _copy, inlined (the hot path of read_str).
        stop = end if keep_sep else idx
        if type(buf) is bytes:
            data = buf[pos:stop]
        elif stop - pos < _VIEW_AT:
            data = bytes(buf[pos:stop])
        else:
            data = _copy(buf, pos, stop)
        self._pos = end
        return data

    def take_until_any(self, seps: tuple[bytes, ...], keep_sep: bool = True) -> bytes | None:
        """Remove and return one message ending in any of ``seps``.

        The alternative that ends earliest in the stream ends the message; of
        two that end at the same place (``b"\\r\\n"`` and ``b"\\n"``), the
        longer. Which one that is never depends on how the bytes were split
        into chunks. Without its separator, the result is the message with
        whichever alternative matched removed.

        Returns None if no whole message is buffered yet.

        Raises
        ------
        LimitOverrunError
            As for :meth:`take_until`: if the message, without its separator,
            is longer than ``limit``; once no alternative could end it within
            the limit, the rest of it is discarded as it arrives, through the
            alternative that ends it.
        """
        buf = self._buf
        pos = self._pos
        if self._scan_sep is not seps:
            self._scan_sep = seps
            self._scan = pos
        scan = self._scan
        starts = tuple(max(pos, scan - len(sep) + 1) for sep in seps)
        idx, end = find_first_end(buf, seps, starts)
        limit = self.limit
        if idx < 0:
            self._scan = len(buf)
            longest = max(map(len, seps))
            if len(buf) - pos - (longest - 1) > limit:
                self._start_discarding(seps)
                raise LimitOverrunError(
                    f"message longer than the limit of {limit} bytes; discarding it"
                    f" through one of its separators {seps!r}",
                    self._discarded,
                )
            return None
        self._scan = end
        if idx - pos > limit:
            self._pos = end
            raise LimitOverrunError(
                f"message of {idx - pos} bytes is longer than the limit of {limit} bytes;"
                " discarded",
                end - pos,
            )
        data = _copy(buf, pos, end if keep_sep else idx)
        self._pos = end
        return data

    def _start_discarding(self, sep: bytes | tuple[bytes, ...]) -> None:
        """Everything buffered is part of an over-long message: from now on,
        nothing is readable until its separator has gone by."""
        buf = self._buf
        self._discard_sep = sep
        self._discarded = 0
        self._discard_tail = b""
        with memoryview(buf) as view:
            rest = bytes(view[self._pos :])
        self._buf = b""
        self._pos = self._scan = 0
        self._discard(rest)

    def incomplete(self, expected: int | None) -> IncompleteReadError:
        """Consume everything buffered and return the error that reports it."""
        return IncompleteReadError(self.take_all(), expected)

    def raise_incomplete(self, expected: int | None) -> NoReturn:
        """Consume everything buffered and raise the error that reports it."""
        raise self.incomplete(expected)


class SeparatorRead:
    """What a separator read of one buffer waits with: :attr:`take` (one
    message, or None) and :attr:`at_eof` (``at_eof(waited)``: the rest, or
    :exc:`IncompleteReadError`), as :meth:`Connection.read
    <anytcpip._connection.Connection.read>` takes them.

    A reader keeps one for as long as the separator does not change, so that
    a read parked in a wait holds nothing of its own. Three objects for the
    garbage collector (this one and its two bound methods, made once) instead
    of the nine of two closures: with a thousand connections, its full passes
    go through every one.
    """

    __slots__ = ("at_eof", "buffer", "keep_sep", "raise_at_eof", "sep", "take")

    def __init__(
        self,
        buffer: ReceiveBuffer,
        sep: bytes | tuple[bytes, ...],
        keep_sep: bool,
        raise_at_eof: bool,
    ) -> None:
        self.buffer = buffer
        self.sep = sep
        self.keep_sep = keep_sep
        self.raise_at_eof = raise_at_eof
        #: ``take()``: one message (consumed), or None if none is buffered.
        self.take: Callable[[], bytes | None] = (
            self._take_one if type(sep) is bytes else self._take_any
        )
        #: ``at_eof(waited)``: at end-of-stream, the rest, or raise.
        self.at_eof: Callable[[bool], bytes] = self._at_eof

    def _take_one(self) -> bytes | None:
        return self.buffer.take_until(self.sep, self.keep_sep)  # type: ignore[arg-type]

    def _take_any(self) -> bytes | None:
        return self.buffer.take_until_any(self.sep, self.keep_sep)  # type: ignore[arg-type]

    def _at_eof(self, waited: bool) -> bytes:
        if self.raise_at_eof:
            raise self.buffer.incomplete(None)
        return self.buffer.take_all()


class SendBuffer:
    """Bytes written and not yet sent, in the order they were written.

    Parameters
    ----------
    high_water : int
        :meth:`append` says "blocked" once this many bytes or more are held.

    Attributes
    ----------
    size : int
        The number of bytes held (read on the hot path: a plain attribute).
    """

    # No __slots__: with them, trio's echo latency measured 1.5 times worse
    # (anytcpip bench, repeated; the cause is not understood yet).

    def __init__(self, high_water: int) -> None:
        if high_water < 1:
            raise ValueError(f"high_water={high_water} must be positive")
        self.high_water = high_water
        self._chunks: list[bytes] = []
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def append(self, data: bytes) -> bool:
        """Add ``data`` after what is held; return True if the buffer is now
        at or above its high-water mark (writers should wait)."""
        self._chunks.append(data)
        size = self.size = self.size + len(data)
        return size >= self.high_water

    def take_all(self) -> bytes:
        """Remove and return everything held, as one bytes object."""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self.size = 0
        return data

    def clear(self) -> None:
        """Throw away everything held."""
        self._chunks = []
        self.size = 0
