"""The library ends of every workload: anytcpip (any anyio backend) and ts_tcpip.

The same code drives both libraries through their public API (they share it:
``Client``, ``OneClientServer``, ``async with``, ``connected_task``,
``read_str`` / ``write_str`` and the rest): :func:`use_library` says which one
this process runs, anytcpip unless told otherwise.

The server end receives (it is the measured "receiving process"); the client
end sends. Each loop does one library call per message and nothing else but
building and checking the message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio

from . import _workloads
from ._common import (
    ACK,
    BULK_CHUNK,
    HOST,
    READY,
    BenchStruct,
    BulkChecker,
    ValidationError,
    check_echo,
    check_struct,
    current_rss,
    line_text,
)

if TYPE_CHECKING:
    import anytcpip

__all__ = ("client", "server", "use_library")

_log = logging.getLogger("anytcpip.bench")

_lib: ModuleType | None = None


def use_library(module: ModuleType) -> None:
    """Drive ``module`` (``anytcpip`` or ``lsst.ts.tcpip``) in this process."""
    global _lib
    _lib = module


def _library() -> Any:
    if _lib is None:
        import anytcpip

        use_library(anytcpip)
    return _lib


def _new_server(**kwargs: Any) -> anytcpip.OneClientServer:
    server: anytcpip.OneClientServer = _library().OneClientServer(
        host=HOST, port=0, log=_log, **kwargs
    )
    return server


def _new_client(port: int, **kwargs: Any) -> anytcpip.Client:
    client: anytcpip.Client = _library().Client(host=HOST, port=port, log=_log, **kwargs)
    return client


def _channel(obj: Any) -> _workloads.Channel:
    """The library's own methods, bound: nothing in between."""
    s = BenchStruct()
    return _workloads.Channel(
        read_str=obj.read_str,
        str_of=None,
        read_json=obj.read_json,
        json_of=None,
        read_struct=obj.read_into,
        struct_arg=s,
        struct_of=None,
        struct=s,
        read=obj.read,
        end_of_stream=(),
        read_exactly=obj.readexactly,
        write_str=obj.write_str,
        write_json=obj.write_json,
        write_struct=obj.write_from,
        write=obj.write,
    )


# ----------------------------------------------------------------- server


async def server(cfg: dict[str, Any], ready: Callable[[int], None]) -> dict[str, Any]:
    """Run the receiving end of ``cfg["workload"]``; return its measurements."""
    workload = cfg["workload"]
    if workload == "hangup":
        return await _serve_hangup(cfg, ready)
    if workload == "flood":
        return await _serve_flood(cfg, ready)
    if cfg.get("server") == "direct":
        return await _serve_direct(cfg, ready)
    return await _serve_read_loop(workload, cfg["n"], ready)


async def _serve_direct(cfg: dict[str, Any], ready: Callable[[int], None]) -> dict[str, Any]:
    """A ``OneClientServer`` read in one loop by the benchmark itself (the old
    measure: it skips the read loop's per-message work that users pay)."""

    @asynccontextmanager
    async def accept() -> AsyncIterator[_workloads.Channel]:
        async with _new_server() as srv:
            ready(srv.port)
            await srv.connected_task
            yield _channel(srv)

    return await _workloads.receive(cfg, accept())


class _Receiver:
    """Per-message handlers for a ``OneClientReadLoopServer``'s
    ``read_and_dispatch``: the receiving end as users write it (a mock
    controller). Each call handles one message; the last one acknowledges,
    reports and parks until the server closes."""

    def __init__(self, workload: str, n: int) -> None:
        self.n = n
        self.count = 0
        self.start = 0.0
        self.elapsed = 0.0
        self.struct = BenchStruct()
        self.bulk = BulkChecker(n)
        self.first = 0
        self.done = anyio.Event()
        self.park = anyio.Event()  # never set
        self.error: BaseException | None = None
        self.handle = getattr(self, f"_{workload}")

    async def _finish(self, srv: Any) -> None:
        self.elapsed = time.perf_counter() - self.start
        await srv.write(ACK)
        self.done.set()
        await self.park.wait()

    async def _echo(self, srv: Any) -> None:
        obj = await srv.read_json()
        check_echo(obj, self.count)
        await srv.write_json(obj)
        self.count += 1
        if self.count == self.n:
            await self._finish(srv)

    async def _lines(self, srv: Any) -> None:
        line = await srv.read_str()
        i = self.count
        if line != line_text(i):
            raise ValidationError(f"line {i}: got {line!r}")
        if i == 0:
            self.start = time.perf_counter()
        self.count = i + 1
        if i + 1 == self.n:
            await self._finish(srv)

    async def _structs(self, srv: Any) -> None:
        s = self.struct
        await srv.read_into(s)
        i = self.count
        check_struct(s, i)
        if i == 0:
            self.start = time.perf_counter()
        self.count = i + 1
        if i + 1 == self.n:
            await self._finish(srv)

    async def _bulk(self, srv: Any) -> None:
        piece = await srv.read(BULK_CHUNK)
        checker = self.bulk
        if not piece:
            raise ValidationError(f"bulk: stream ended at {checker.offset} of {checker.total}")
        checker.check(piece)
        if self.count == 0:
            self.start = time.perf_counter()
            self.first = len(piece)
        self.count += 1
        if checker.offset == checker.total:
            await self._finish(srv)


async def _serve_read_loop(workload: str, n: int, ready: Callable[[int], None]) -> dict[str, Any]:
    receiver = _Receiver(workload, n)
    handle = receiver.handle

    class Server(_library().OneClientReadLoopServer):  # type: ignore[misc]
        async def read_and_dispatch(self) -> None:
            try:
                await handle(self)
            except ValidationError as exc:
                # Not to the read loop, which would log it and drop the client.
                receiver.error = exc
                receiver.done.set()
                await receiver.park.wait()

    server: anytcpip.OneClientReadLoopServer = Server(host=HOST, port=0, log=_log)
    async with server as srv:
        ready(srv.port)
        await srv.connected_task
        rss_start = current_rss()
        await receiver.done.wait()
        rss_growth = current_rss() - rss_start
    if receiver.error is not None:
        raise receiver.error
    result: dict[str, Any] = {"rss_growth": rss_growth}
    if workload == "bulk":
        result.update(elapsed=receiver.elapsed, count=n - receiver.first)
    elif workload != "echo":
        result.update(elapsed=receiver.elapsed, count=n - 1)
    return result


async def _serve_hangup(cfg: dict[str, Any], ready: Callable[[int], None]) -> dict[str, Any]:
    n = cfg["n"]
    noticed: list[int] = []
    done = anyio.Event()

    async def callback(srv: anytcpip.OneClientServer) -> None:
        if srv.connected:
            await srv.write(READY)
        else:
            noticed.append(time.perf_counter_ns())
            if len(noticed) >= n:
                done.set()

    async with _new_server(connect_callback=callback) as srv:
        ready(srv.port)
        await done.wait()
    return {"noticed_ns": noticed}


async def _serve_flood(cfg: dict[str, Any], ready: Callable[[int], None]) -> dict[str, Any]:
    """Let a peer flood while nobody reads; report how much memory that cost."""
    from ._control import wait_for_command

    async with _new_server(linger=0.5) as srv:
        ready(srv.port)
        await srv.connected_task
        before = current_rss()
        await srv.write(READY)
        await wait_for_command("measure")
        after = current_rss()
    return {"rss_before": before, "rss_after": after, "limit": srv.limit}


# ----------------------------------------------------------------- client


async def client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the sending end of ``cfg["workload"]``; return its measurements."""
    workload = cfg["workload"]
    if workload == "hangup":
        return await _workloads.hang_up(cfg, _connect, anyio.sleep)
    if workload == "stall":
        return await _stall(cfg, cfg["port"])
    return await _workloads.send(cfg, _connect(cfg["port"]))


@asynccontextmanager
async def _connect(port: int) -> AsyncIterator[_workloads.Channel]:
    async with _new_client(port) as cli:
        yield _channel(cli)


async def _stall(cfg: dict[str, Any], port: int) -> dict[str, Any]:
    """Write to a peer that never reads until writes block; report the memory
    that cost."""
    chunk = b"s" * BULK_CHUNK
    written = 0
    blocked = False
    async with _new_client(port, linger=0.5) as cli:
        before = current_rss()
        while written < cfg["max_bytes"]:
            with anyio.move_on_after(cfg["block_timeout"]) as scope:
                await cli.write(chunk)
            if scope.cancelled_caught:
                blocked = True
                break
            written += len(chunk)
        after = current_rss()
    return {"rss_before": before, "rss_after": after, "written": written, "blocked": blocked}
