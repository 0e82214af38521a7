"""The "fleet" workload: many connections in one process.

N echo servers and N clients in ONE process, all connected over 127.0.0.1;
then every client writes one short line and awaits its echo, K times, all
clients concurrently. Measured: round trips per second over all clients,
the time to set up the N pairs, and the RSS of one idle connected pair.

Every (implementation, N) runs in a fresh process, started as
``python -m anytcpip_bench._fleet CONFIG_JSON`` and reporting one ``@@RESULT``
line (see ``_peer``). The ends:

* anytcpip / ts_tcpip: a ``OneClientReadLoopServer`` subclass whose
  ``read_and_dispatch`` reads a line with ``read_str`` and writes it back with
  ``write_str``; a ``Client`` that does ``write_str`` then ``read_str``. The same
  code drives both libraries. anytcpip's objects run in one task group
  (``await tg.start(obj.run)``), ts_tcpip's start themselves (``start_task``).
* raw anyio streams: one listener and one echo task per server,
  ``BufferedByteReceiveStream.receive_until`` + ``send`` at both ends.
* raw anyio streams in the tasks of a read-loop server and a client
  (``anyio-tasks-*``, the floor of anyio itself for that shape): per pair, a
  server task whose accept loop goes on accepting (a second client must be
  noticed), a serving task per connection that starts the read-loop task and
  waits for the connection's end, the read-loop task (the same echo), and a
  client task that holds the connection while the caller reads and writes
  it. Four anyio tasks per pair, as anytcpip runs on asyncio (on trio it runs
  a fifth, the server's receive pump): the fewest the semantics allow.

Memory: one pair is set up, exercised and closed first, so that what is
imported or cached on first use is not charged to the fleet; then the RSS is
read before and after setting up the N pairs (after a garbage collection),
and the difference divided by N is the cost of one idle connected pair.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._common import HOST, IMPLEMENTATIONS, TERMINATOR, ValidationError, current_rss, emit

__all__ = ("main", "raise_fd_limit", "run")

_log = logging.getLogger("anytcpip.bench")


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; return it (0: unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover (Windows)
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return int(hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return int(soft)
    return int(hard)


def _line(client: int, k: int) -> str:
    return f"ping {client:05d} {k:06d}"


async def _trace(
    what: Callable[[], Awaitable[None]], traced: int
) -> tuple[float, list[dict[str, Any]]]:
    """Run ``what`` (the setup); return its time and, if ``traced``, the top
    ``traced`` allocation sites it left behind (tracemalloc, by line)."""
    if not traced:
        start = time.perf_counter()
        await what()
        return time.perf_counter() - start, []
    import tracemalloc

    tracemalloc.start(8)
    before = tracemalloc.take_snapshot()
    start = time.perf_counter()
    await what()
    elapsed = time.perf_counter() - start
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = after.compare_to(before, "lineno")[:traced]
    top = [
        {
            "where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
            "bytes": s.size_diff,
            "count": s.count_diff,
        }
        for s in stats
    ]
    return elapsed, top


class _Meter:
    """What every implementation's fleet reports, filled in as it runs."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.n: int = cfg["n"]
        self.k: int = cfg["k"]
        self.traced: int = cfg.get("tracemalloc", 0)
        self.result: dict[str, Any] = {}
        self.rss_before = 0
        self.objects_before = 0

    def before_setup(self) -> None:
        gc.collect()
        self.rss_before = current_rss()
        # The first reading imports psutil, whose import leaves cyclic
        # garbage (datetime's pure-Python classes) that would be counted.
        gc.collect()
        self.objects_before = len(gc.get_objects())

    def after_setup(self, elapsed: float, top: list[dict[str, Any]]) -> None:
        gc.collect()
        rss = current_rss()
        # The objects the collector tracks, which each of its full passes
        # goes through: unlike RSS, the same in every run of the same code.
        objects = len(gc.get_objects())
        self.result.update(
            setup_s=elapsed,
            rss_per_pair=(rss - self.rss_before) / self.n,
            objects_per_pair=(objects - self.objects_before) / self.n,
            rss_idle=rss,
        )
        if top:
            self.result["tracemalloc_top"] = top

    def after_rounds(self, elapsed: float) -> None:
        self.result.update(
            elapsed=elapsed,
            rate=self.n * self.k / elapsed,
            rss_growth_rounds=current_rss() - self.result["rss_idle"],
        )

    async def timed_rounds(self, rounds: Awaitable[float]) -> None:
        """Await ``rounds`` (the timed round trips, returning their time)
        under :meth:`gc_clock`, then record the figures of the rounds."""
        with self.gc_clock():
            elapsed = await rounds
        self.after_rounds(elapsed)

    @contextmanager
    def gc_clock(self) -> Iterator[None]:
        """Count the garbage collector's passes (per generation) and the time
        they took while the block (the timed rounds) runs: with many
        connections, the full passes go through every object of every
        connection, so the objects a connection holds cost time as well as
        memory."""
        passes = [0, 0, 0]
        spent = [0.0]
        began = [0.0]

        def clock(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                began[0] = time.perf_counter()
            else:
                spent[0] += time.perf_counter() - began[0]
                passes[info["generation"]] += 1

        gc.callbacks.append(clock)
        try:
            yield
        finally:
            gc.callbacks.remove(clock)
            self.result.update(gc_s=spent[0], gc_passes=passes)


async def _exercise_anyio(
    clients: list[Any], rounds: int, round_trip: Callable[[Any, int, int], Awaitable[None]]
) -> float:
    """Every client does ``rounds`` round trips, all concurrently (one task
    each, in an anyio task group); return the time that took."""
    import anyio

    async def one(index: int, cli: Any) -> None:
        for k in range(rounds):
            await round_trip(cli, index, k)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index, cli in enumerate(clients):
            tg.start_soon(one, index, cli)
    return time.perf_counter() - start


# ------------------------------------------------- anytcpip and ts_tcpip


def _echo_server_class(base: type) -> type:
    class EchoServer(base):  # type: ignore[misc]
        async def read_and_dispatch(self) -> None:
            await self.write_str(await self.read_str())

    return EchoServer


async def _lib_round_trip(cli: Any, index: int, k: int) -> None:
    line = _line(index, k)
    await cli.write_str(line)
    reply = await cli.read_str()
    if reply != line:
        raise ValidationError(f"fleet: client {index} sent {line!r}, got {reply!r}")


async def _anytcpip_fleet(cfg: dict[str, Any], meter: _Meter) -> None:
    import anyio

    import anytcpip

    server_class = _echo_server_class(anytcpip.OneClientReadLoopServer)

    async def pairs(tg: Any, count: int) -> tuple[list[Any], list[Any]]:
        servers, clients = [], []
        for i in range(count):
            srv = server_class(host=HOST, port=0, log=_log, name=f"s{i}")
            await tg.start(srv.run)
            cli = anytcpip.Client(host=HOST, port=srv.port, log=_log, name=f"c{i}")
            await tg.start(cli.run)
            await srv.connected_task
            servers.append(srv)
            clients.append(cli)
        return servers, clients

    async def close_all(objects: list[Any]) -> None:
        async with anyio.create_task_group() as tg:
            for obj in objects:
                tg.start_soon(obj.close)

    async with anyio.create_task_group() as tg:
        # Warm-up pair: first-use imports and caches are not the fleet's.
        servers, clients = await pairs(tg, 1)
        await _exercise_anyio(clients, 1, _lib_round_trip)
        await close_all(clients + servers)
        # The warm-up pair is not the fleet's: let it go first.
        del servers, clients
        meter.before_setup()
        box: dict[str, Any] = {}

        async def setup() -> None:
            box["pairs"] = await pairs(tg, meter.n)

        meter.after_setup(*await _trace(setup, meter.traced))
        servers, clients = box["pairs"]
        await _exercise_anyio(clients, 1, _lib_round_trip)  # one untimed round
        await meter.timed_rounds(_exercise_anyio(clients, meter.k, _lib_round_trip))
        await close_all(clients)
        await close_all(servers)


async def _tcpip_fleet(cfg: dict[str, Any], meter: _Meter) -> None:
    import asyncio

    from lsst.ts import tcpip  # type: ignore[import-not-found,unused-ignore]

    server_class = _echo_server_class(tcpip.OneClientReadLoopServer)

    async def pairs(count: int) -> tuple[list[Any], list[Any]]:
        servers, clients = [], []
        for i in range(count):
            srv = server_class(host=HOST, port=0, log=_log, name=f"s{i}")
            await srv.start_task
            cli = tcpip.Client(host=HOST, port=srv.port, log=_log, name=f"c{i}")
            await cli.start_task
            await srv.connected_task
            servers.append(srv)
            clients.append(cli)
        return servers, clients

    async def exercise(clients: list[Any], rounds: int) -> float:
        async def one(index: int, cli: Any) -> None:
            for k in range(rounds):
                await _lib_round_trip(cli, index, k)

        start = time.perf_counter()
        await asyncio.gather(*(one(i, cli) for i, cli in enumerate(clients)))
        return time.perf_counter() - start

    async def close_all(objects: list[Any]) -> None:
        await asyncio.gather(*(obj.close() for obj in objects))

    servers, clients = await pairs(1)
    await exercise(clients, 1)
    await close_all(clients + servers)
    # The warm-up pair is not the fleet's: let it go first.
    del servers, clients
    meter.before_setup()
    box: dict[str, Any] = {}

    async def setup() -> None:
        box["pairs"] = await pairs(meter.n)

    meter.after_setup(*await _trace(setup, meter.traced))
    servers, clients = box["pairs"]
    await exercise(clients, 1)
    await meter.timed_rounds(exercise(clients, meter.k))
    await close_all(clients)
    await close_all(servers)


# ------------------------------------------------------ raw anyio streams

#: The raw fleets' longest line (BufferedByteReceiveStream.receive_until).
_RAW_LIMIT = 1 << 16


async def _anyio_fleet(cfg: dict[str, Any], meter: _Meter) -> None:
    import anyio
    from anyio.abc import SocketAttribute
    from anyio.streams.buffered import BufferedByteReceiveStream

    async def echo(stream: Any) -> None:
        buffered = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while True:
                    line = await buffered.receive_until(TERMINATOR, _RAW_LIMIT)
                    await stream.send(line + TERMINATOR)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                pass

    async def serve(listener: Any, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with listener:
            task_status.started()
            stream = await listener.accept()
            await echo(stream)

    async def pairs(tg: Any, count: int) -> list[Any]:
        clients = []
        for _ in range(count):
            multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
            port = multi.extra(SocketAttribute.local_port)
            await tg.start(serve, multi.listeners[0])
            stream = await anyio.connect_tcp(HOST, port)
            clients.append((stream, BufferedByteReceiveStream(stream)))
        return clients

    async def round_trip(cli: Any, index: int, k: int) -> None:
        await _raw_round_trip(cli[0], cli[1], index, k)

    async def close_all(clients: list[Any]) -> None:
        for stream, _ in clients:
            await stream.aclose()

    await _measure_raw(meter, pairs, round_trip, close_all)


async def _anyio_tasks_fleet(cfg: dict[str, Any], meter: _Meter) -> None:
    """Raw anyio streams, in the four tasks per pair a ``OneClientReadLoopServer``
    and a ``Client`` have (see the module's docstring)."""
    import anyio
    from anyio.abc import SocketAttribute
    from anyio.streams.buffered import BufferedByteReceiveStream

    async def read_loop(stream: Any, ended: Any) -> None:
        buffered = BufferedByteReceiveStream(stream)
        try:
            while True:
                line = await buffered.receive_until(TERMINATOR, _RAW_LIMIT)
                await stream.send(line + TERMINATOR)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            pass
        finally:
            ended.set()

    async def serving(tg: Any, stream: Any) -> None:
        ended = anyio.Event()
        async with stream:
            tg.start_soon(read_loop, stream, ended)
            await ended.wait()

    async def serve(
        tg: Any, listener: Any, *, task_status: Any = anyio.TASK_STATUS_IGNORED
    ) -> None:
        # Cancelled (its scope, handed back) when the pair is closed.
        with anyio.CancelScope() as scope:
            async with listener:
                task_status.started(scope)
                while True:
                    tg.start_soon(serving, tg, await listener.accept())

    async def hold(port: int, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        stream = await anyio.connect_tcp(HOST, port)
        closed = anyio.Event()
        async with stream:
            task_status.started((stream, BufferedByteReceiveStream(stream), closed))
            await closed.wait()

    async def pairs(tg: Any, count: int) -> list[Any]:
        clients = []
        for _ in range(count):
            multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
            port = multi.extra(SocketAttribute.local_port)
            accepting = await tg.start(serve, tg, multi.listeners[0])
            stream, buffered, closed = await tg.start(hold, port)
            clients.append((stream, buffered, closed, accepting))
        return clients

    async def round_trip(cli: Any, index: int, k: int) -> None:
        await _raw_round_trip(cli[0], cli[1], index, k)

    async def close_all(clients: list[Any]) -> None:
        for _, _, closed, accepting in clients:
            closed.set()
            accepting.cancel()

    await _measure_raw(meter, pairs, round_trip, close_all)


async def _raw_round_trip(stream: Any, buffered: Any, index: int, k: int) -> None:
    """One round trip of a raw anyio fleet's client: send a line, check its echo."""
    line = _line(index, k).encode()
    await stream.send(line + TERMINATOR)
    reply = await buffered.receive_until(TERMINATOR, _RAW_LIMIT)
    if reply != line:
        raise ValidationError(f"fleet: client {index} sent {line!r}, got {reply!r}")


async def _measure_raw(
    meter: _Meter,
    pairs: Callable[[Any, int], Awaitable[list[Any]]],
    round_trip: Callable[[Any, int, int], Awaitable[None]],
    close_all: Callable[[list[Any]], Awaitable[None]],
) -> None:
    """The raw anyio fleets' measurement: one pair set up, exercised and
    closed (warm-up), then the N pairs set up and measured, and closed
    (``close_all`` ends every task they run)."""
    import anyio

    # The warm-up pair in a task group of its own, left (its tasks all
    # ended) before anything is counted: it is not the fleet's.
    async with anyio.create_task_group() as warm_up:
        clients = await pairs(warm_up, 1)
        await _exercise_anyio(clients, 1, round_trip)
        await close_all(clients)
    del clients
    async with anyio.create_task_group() as tg:
        meter.before_setup()
        box: dict[str, Any] = {}

        async def setup() -> None:
            box["clients"] = await pairs(tg, meter.n)

        meter.after_setup(*await _trace(setup, meter.traced))
        clients = box["clients"]
        await _exercise_anyio(clients, 1, round_trip)
        await meter.timed_rounds(_exercise_anyio(clients, meter.k, round_trip))
        await close_all(clients)


# --------------------------------------------------------------- process


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one fleet as ``cfg`` says (``impl``, ``n``, ``k``); return its figures."""
    fd_limit = raise_fd_limit()
    impl = cfg["impl"]
    family, backend, options, _ = IMPLEMENTATIONS[impl]
    meter = _Meter(cfg)
    if family == "tcpip":
        import asyncio

        coro = _tcpip_fleet(cfg, meter)
        if options.get("use_uvloop"):
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)
    else:
        import anyio

        fleets = {
            "anytcpip": _anytcpip_fleet,
            "anyio": _anyio_fleet,
            "anyio-tasks": _anyio_tasks_fleet,
        }
        if family not in fleets:
            raise ValueError(f"no fleet for {impl!r}")
        anyio.run(fleets[family], cfg, meter, backend=backend, backend_options=options)
    return {**meter.result, "fd_limit": fd_limit}


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
            name = f"{cfg['impl']}-fleet-{cfg['n']}.prof"
            profiler.dump_stats(os.path.join(profile_dir, name))
    else:
        result = run(cfg)
    emit("RESULT", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
