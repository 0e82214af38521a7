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
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio

from ._common import (
    ACK,
    BULK_CHUNK,
    HOST,
    READY,
    BenchStruct,
    BulkChecker,
    ValidationError,
    bulk_chunk,
    check_echo,
    check_struct,
    current_rss,
    echo_message,
    fill_struct,
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


# ----------------------------------------------------------------- server


async def server(cfg: dict[str, Any], ready: Callable[[int], None]) -> dict[str, Any]:
    """Run the receiving end of ``cfg["workload"]``; return its measurements."""
    workload = cfg["workload"]
    if workload == "hangup":
        return await _serve_hangup(cfg, ready)
    if workload == "flood":
        return await _serve_flood(cfg, ready)
    n = cfg["n"]
    if cfg.get("server") == "direct":
        return await _serve_direct(workload, n, ready)
    return await _serve_read_loop(workload, n, ready)


async def _serve_direct(workload: str, n: int, ready: Callable[[int], None]) -> dict[str, Any]:
    """A ``OneClientServer`` read in one loop by the benchmark itself (the old
    measure: it skips the read loop's per-message work that users pay)."""
    async with _new_server() as srv:
        ready(srv.port)
        await srv.connected_task
        rss_start = current_rss()
        result = await _RECEIVERS[workload](srv, n)
        result["rss_growth"] = current_rss() - rss_start
        await srv.write(ACK)
    return result


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


async def _receive_echo(srv: anytcpip.OneClientServer, n: int) -> dict[str, Any]:
    read_json = srv.read_json
    write_json = srv.write_json
    for i in range(n):
        obj = await read_json()
        check_echo(obj, i)
        await write_json(obj)
    return {}


async def _receive_lines(srv: anytcpip.OneClientServer, n: int) -> dict[str, Any]:
    read_str = srv.read_str
    if await read_str() != line_text(0):
        raise ValidationError("line 0 is wrong")
    start = time.perf_counter()
    for i in range(1, n):
        line = await read_str()
        if line != line_text(i):
            raise ValidationError(f"line {i}: got {line!r}")
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_structs(srv: anytcpip.OneClientServer, n: int) -> dict[str, Any]:
    read_into = srv.read_into
    s = BenchStruct()
    await read_into(s)
    check_struct(s, 0)
    start = time.perf_counter()
    for i in range(1, n):
        await read_into(s)
        check_struct(s, i)
    return {"elapsed": time.perf_counter() - start, "count": n - 1}


async def _receive_bulk(srv: anytcpip.OneClientServer, total: int) -> dict[str, Any]:
    checker = BulkChecker(total)
    read = srv.read
    first = await read(BULK_CHUNK)
    checker.check(first)
    start = time.perf_counter()
    while checker.offset < total:
        piece = await read(BULK_CHUNK)
        if not piece:
            raise ValidationError(f"bulk: stream ended at {checker.offset} of {total}")
        checker.check(piece)
    return {"elapsed": time.perf_counter() - start, "count": total - len(first)}


_RECEIVERS = {
    "echo": _receive_echo,
    "lines": _receive_lines,
    "structs": _receive_structs,
    "bulk": _receive_bulk,
}


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
    port = cfg["port"]
    if workload == "hangup":
        return await _hang_up(cfg, port)
    if workload == "stall":
        return await _stall(cfg, port)
    n = cfg["n"]
    bad = cfg.get("fault_at", -1)
    fault = cfg.get("fault")
    async with _new_client(port) as cli:
        rss_start = current_rss()
        result = await _SENDERS[workload](cli, n, bad, fault)
        result["rss_growth"] = current_rss() - rss_start
        if await cli.readexactly(1) != ACK:
            raise ValidationError("no acknowledgement from the receiver")
    return result


async def _send_echo(cli: anytcpip.Client, n: int, bad: int, fault: str | None) -> dict[str, Any]:
    write_json = cli.write_json
    read_json = cli.read_json
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        msg = echo_message(i)
        if i == bad:
            msg["payload"] = "corrupted"
        t0 = clock()
        await write_json(msg)
        reply = await read_json()
        samples[i] = clock() - t0
        if reply != msg:
            raise ValidationError(f"echo {i}: sent {msg!r}, got back {reply!r}")
    return {"samples_ns": samples}


async def _send_lines(cli: anytcpip.Client, n: int, bad: int, fault: str | None) -> dict[str, Any]:
    write_str = cli.write_str
    for i in range(n):
        if i == bad:
            if fault == "drop":
                continue
            await write_str(line_text(i)[:-1] + "?")
            continue
        await write_str(line_text(i))
    return {}


async def _send_structs(
    cli: anytcpip.Client, n: int, bad: int, fault: str | None
) -> dict[str, Any]:
    write_from = cli.write_from
    s = BenchStruct()
    for i in range(n):
        fill_struct(s, i)
        if i == bad:
            if fault == "drop":
                continue
            s.value = -1.0
        await write_from(s)
    return {}


async def _send_bulk(
    cli: anytcpip.Client, total: int, bad: int, fault: str | None
) -> dict[str, Any]:
    write = cli.write
    for k in range(total // BULK_CHUNK):
        chunk = bulk_chunk(k)
        if k == bad:
            if fault == "drop":
                continue
            chunk = chunk[:100] + bytes([chunk[100] ^ 1]) + chunk[101:]
        await write(chunk)
    return {}


_SENDERS = {
    "echo": _send_echo,
    "lines": _send_lines,
    "structs": _send_structs,
    "bulk": _send_bulk,
}


async def _hang_up(cfg: dict[str, Any], port: int) -> dict[str, Any]:
    closed: list[int] = []
    for _ in range(cfg["n"]):
        async with _new_client(port) as cli:
            if await cli.readexactly(1) != READY:
                raise ValidationError("hangup: no ready byte")
            await anyio.sleep(cfg["settle"])
            closed.append(time.perf_counter_ns())
        await anyio.sleep(cfg["gap"])
    return {"closed_ns": closed}


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
