"""One end of one benchmark run, in a fresh process.

Started by the parent as ``python -m anytcpip_bench._peer CONFIG_JSON``; talks
to it with ``@@TAG text`` lines on stdout (``PORT`` once listening, ``RESULT``
at the end) and takes commands on stdin. A failure (validation included) is a
traceback on stderr and a non-zero exit status.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from ._common import (
    BULK_CHUNK,
    HOST,
    IMPLEMENTATIONS,
    READY,
    ValidationError,
    current_rss,
    emit,
    peak_rss,
    set_nodelay,
)

__all__ = ("main",)


def _ready(port: int) -> None:
    emit("PORT", str(port))


def _socket_server(cfg: dict[str, Any]) -> dict[str, Any]:
    """A peer that accepts and then never reads (for the stall check)."""
    with socket.create_server((HOST, 0)) as listener:
        _ready(listener.getsockname()[1])
        conn, _ = listener.accept()
        with conn:
            set_nodelay(conn)
            line = sys.stdin.readline()
            if line.strip() != "exit":
                raise RuntimeError(f"unexpected command {line!r}")
    return {}


def _socket_client(cfg: dict[str, Any]) -> dict[str, Any]:
    """A peer that sends as fast as it can until it is blocked (flood check)."""
    chunk = b"f" * BULK_CHUNK
    sent = 0
    blocked = False
    with socket.create_connection((HOST, cfg["port"])) as sock:
        set_nodelay(sock)
        if sock.recv(1) != READY:
            raise ValidationError("flood: no ready byte")
        sock.settimeout(cfg["block_timeout"])
        try:
            while sent < cfg["max_bytes"]:
                sent += sock.send(chunk)
        except TimeoutError:
            blocked = True
        emit("RESULT", json.dumps({"sent": sent, "blocked": blocked, "rss": current_rss()}))
        line = sys.stdin.readline()
        if line.strip() != "exit":
            raise RuntimeError(f"unexpected command {line!r}")
    return {}


def _get_port(cfg: dict[str, Any]) -> None:
    """A client is started with the server; the parent sends the port on stdin."""
    if cfg["role"] == "client" and "port" not in cfg:
        command, _, port = sys.stdin.readline().partition(" ")
        if command != "port":
            raise RuntimeError(f"expected the server's port, got {command!r}")
        cfg["port"] = int(port)


def run(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Run one end as ``cfg`` says; return its results (None: already sent)."""
    impl = cfg["impl"]
    role = cfg["role"]
    if impl == "socket":
        if role == "server":
            return _socket_server(cfg)
        _get_port(cfg)
        _socket_client(cfg)
        return None
    family, backend, options, _ = IMPLEMENTATIONS[impl]
    if family == "asyncio":
        import asyncio

        from . import _impl_asyncio as mod_asyncio

        _get_port(cfg)
        coro: Coroutine[Any, Any, dict[str, Any]] = (
            mod_asyncio.server(cfg, _ready) if role == "server" else mod_asyncio.client(cfg)
        )
        return asyncio.run(coro)

    if family == "tcpip":
        # ts_tcpip is asyncio-only: run it as its users do, on asyncio's own
        # loop (or uvloop's), driven by the same code as anytcpip.
        import asyncio

        from lsst.ts import tcpip  # type: ignore[import-not-found,unused-ignore]

        from . import _impl_anytcpip as mod_lib

        mod_lib.use_library(tcpip)
        _get_port(cfg)
        coro = mod_lib.server(cfg, _ready) if role == "server" else mod_lib.client(cfg)
        if options.get("use_uvloop"):
            import uvloop

            return uvloop.run(coro)
        return asyncio.run(coro)

    import anyio

    if family == "anytcpip":
        from . import _impl_anytcpip as mod
    else:
        from . import _impl_anyio as mod  # type: ignore[no-redef]
    func: Callable[[], Coroutine[Any, Any, dict[str, Any]]]
    if role == "server":
        func = lambda: mod.server(cfg, _ready)  # noqa: E731
    else:
        func = lambda: mod.client(cfg)  # noqa: E731
    # Import the backend now, while the server may still be starting.
    if backend == "trio":
        import trio  # noqa: F401
    if options.get("use_uvloop"):
        import uvloop
    _get_port(cfg)
    return anyio.run(func, backend=backend, backend_options=options)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cfg = json.loads(args[0])
    profile_dir = cfg.get("profile_dir")
    if profile_dir:
        import cProfile
        import os

        profiler = cProfile.Profile()
        try:
            result = profiler.runcall(run, cfg)
        finally:
            name = f"{cfg['impl']}-{cfg['workload']}-{cfg['role']}.prof"
            profiler.dump_stats(os.path.join(profile_dir, name))
    else:
        result = run(cfg)
    if result is not None:
        result["peak_rss"] = peak_rss()
        emit("RESULT", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
