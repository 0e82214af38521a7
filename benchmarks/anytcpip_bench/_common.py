"""What both ends of a benchmark agree on: messages, validation, memory probes.

Every message is a pure function of its sequence number, so the receiver can
check each one exactly (content and order) without the sender telling it
anything, and a missing, repeated, reordered or corrupted message is caught at
the first wrong byte.
"""

from __future__ import annotations

import ctypes
import os
import random
import socket
import sys
from typing import Any

__all__ = (
    "ACK",
    "BULK_CHUNK",
    "HOST",
    "READY",
    "TERMINATOR",
    "BenchStruct",
    "BulkChecker",
    "ValidationError",
    "bulk_chunk",
    "check_echo",
    "check_struct",
    "current_rss",
    "echo_message",
    "emit",
    "fill_struct",
    "line_text",
    "peak_rss",
    "set_nodelay",
)

#: Loopback only.
HOST = "127.0.0.1"
#: Terminator for the lines and echo workloads (anytcpip's default).
TERMINATOR = b"\r\n"
#: One byte the receiver sends once it has checked everything.
ACK = b"K"
#: One byte a server sends to say "connected, go ahead".
READY = b"R"
#: Size of each write in the bulk workload.
BULK_CHUNK = 1 << 16


class ValidationError(AssertionError):
    """Something did not arrive intact: the benchmark run is invalid."""


def emit(tag: str, text: str = "") -> None:
    """Tell the parent process something (one line on stdout)."""
    sys.stdout.write(f"@@{tag} {text}\n")
    sys.stdout.flush()


def set_nodelay(sock: Any) -> None:
    """Turn TCP_NODELAY on (the libraries do it too; this makes sure)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# ------------------------------------------------------------------- lines

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# 16 different 47-character fillers: with the 10-digit sequence number and a
# space that makes 58 characters, 60 bytes with the terminator.
_FILL = tuple((_ALPHABET[i:] + _ALPHABET[:i])[:47] for i in range(16))


def line_text(i: int) -> str:
    """Line number ``i`` of the lines workload (58 characters)."""
    return "%010d %s" % (i, _FILL[i & 15])  # noqa: UP031 (fastest here)


# -------------------------------------------------------------------- echo

_PAYLOADS = tuple((_ALPHABET[i:] + _ALPHABET[:i])[:52] for i in range(16))


def echo_message(i: int) -> dict[str, Any]:
    """Message number ``i`` of the echo workload (about 100 bytes as JSON)."""
    return {"seq": i, "kind": "bench-echo", "payload": _PAYLOADS[i & 15]}


def check_echo(obj: Any, i: int) -> None:
    """Raise ValidationError unless ``obj`` is echo message ``i``."""
    if obj != echo_message(i):
        raise ValidationError(f"echo message {i}: got {obj!r}")


# ----------------------------------------------------------------- structs


class BenchStruct(ctypes.Structure):
    """The 30-byte record of the structs workload."""

    _pack_ = 1
    _fields_ = [
        ("seq", ctypes.c_uint64),
        ("value", ctypes.c_double),
        ("flags", ctypes.c_uint32),
        ("tag", ctypes.c_char * 10),
    ]


assert ctypes.sizeof(BenchStruct) == 30

_TAG = b"anytcpip!!"


def fill_struct(s: BenchStruct, i: int) -> None:
    """Make ``s`` record number ``i``."""
    s.seq = i
    s.value = i * 0.25
    s.flags = (i * 2654435761) & 0xFFFFFFFF
    s.tag = _TAG


def check_struct(s: BenchStruct, i: int) -> None:
    """Raise ValidationError unless ``s`` is record number ``i``."""
    if (
        s.seq != i
        or s.value != i * 0.25
        or s.flags != (i * 2654435761) & 0xFFFFFFFF
        or s.tag != _TAG
    ):
        raise ValidationError(
            f"struct {i}: got seq={s.seq} value={s.value} flags={s.flags} tag={s.tag!r}"
        )


# -------------------------------------------------------------------- bulk

_BLOCK = random.Random(20240611).randbytes(BULK_CHUNK)
_DOUBLE = _BLOCK + _BLOCK


def _shift(k: int) -> int:
    return (k * 4099) & (BULK_CHUNK - 1)


def bulk_chunk(k: int) -> bytes:
    """Chunk number ``k`` of the bulk workload: a rotation of one random block
    that differs from chunk to chunk, so lost or repeated chunks show."""
    s = _shift(k)
    return _DOUBLE[s : s + BULK_CHUNK]


class BulkChecker:
    """Checks the bulk stream piece by piece, however it was split."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.offset = 0

    def check(self, piece: bytes) -> None:
        """Check the next received piece; raise ValidationError if it is wrong."""
        offset = self.offset
        n = len(piece)
        if offset + n > self.total:
            raise ValidationError(f"bulk: more than {self.total} bytes arrived")
        view = memoryview(piece)
        done = 0
        while done < n:
            k, p = divmod(offset + done, BULK_CHUNK)
            seg = min(n - done, BULK_CHUNK - p)
            start = _shift(k) + p
            part = piece if seg == n else view[done : done + seg]
            if not _DOUBLE.startswith(part, start):
                raise ValidationError(f"bulk: wrong bytes at offset {offset + done}")
            done += seg
        self.offset = offset + n


# ------------------------------------------------------------------ memory


def current_rss() -> int:
    """This process's resident set size now, in bytes (0 if unknown)."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.Process().memory_info().rss)
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return peak_rss()


def peak_rss() -> int:
    """This process's peak resident set size so far, in bytes (0 if unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover (Windows)
        try:
            import psutil

            return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))
        except ImportError:
            return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024)


# --------------------------------------------------------- implementations

#: name -> (code family, anyio backend, backend options, description).
#: The ``tcpip`` family is Rubin's ts_tcpip (``lsst.ts.tcpip``), run only when
#: it is importable (see ``_tcpip.py``); it runs on asyncio's own loop
#: (``asyncio.run``, or uvloop's), as its users run it.
IMPLEMENTATIONS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "tcpip-asyncio": ("tcpip", "asyncio", {}, "ts_tcpip (lsst.ts.tcpip) on asyncio"),
    "tcpip-uvloop": ("tcpip", "asyncio", {"use_uvloop": True}, "ts_tcpip on uvloop"),
    "asyncio-streams": ("asyncio", "asyncio", {}, "raw asyncio streams"),
    "anytcpip-asyncio": ("anytcpip", "asyncio", {}, "anytcpip on asyncio"),
    "anytcpip-uvloop": ("anytcpip", "asyncio", {"use_uvloop": True}, "anytcpip on uvloop"),
    "anytcpip-trio": ("anytcpip", "trio", {}, "anytcpip on trio"),
    "anyio-asyncio": ("anyio", "asyncio", {}, "raw anyio streams on asyncio"),
    "anyio-trio": ("anyio", "trio", {}, "raw anyio streams on trio"),
    # Fleet only: the floor of anyio itself for the task structure a
    # OneClientReadLoopServer and a Client need (see _fleet).
    "anyio-tasks-asyncio": (
        "anyio-tasks",
        "asyncio",
        {},
        "raw anyio streams in the tasks of a read-loop server and a client, on asyncio",
    ),
    "anyio-tasks-uvloop": (
        "anyio-tasks",
        "asyncio",
        {"use_uvloop": True},
        "raw anyio streams in the tasks of a read-loop server and a client, on uvloop",
    ),
    "anyio-tasks-trio": (
        "anyio-tasks",
        "trio",
        {},
        "raw anyio streams in the tasks of a read-loop server and a client, on trio",
    ),
}

#: Families measured by the fleet only (no two-process workload, no memory check).
FLEET_ONLY_FAMILIES = ("anyio-tasks",)

#: The implementation every ratio is taken against when ts_tcpip is importable.
TCPIP_REFERENCE = "tcpip-asyncio"
#: The reference when it is not.
FALLBACK_REFERENCE = "asyncio-streams"


def reference_for(impls: Any) -> str:
    """The reference of a run over ``impls``: ts_tcpip on asyncio if present."""
    return TCPIP_REFERENCE if TCPIP_REFERENCE in impls else FALLBACK_REFERENCE
