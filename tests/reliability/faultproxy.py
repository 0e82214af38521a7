"""A toxiproxy-like TCP fault proxy for loopback tests, on anyio.

``async with FaultProxy(target_port) as proxy:`` listens on 127.0.0.1:0
(``proxy.port``) and forwards every accepted connection to
``127.0.0.1:target_port``. Each direction has its own :class:`Toxics`
(``proxy.up``: client to server, ``proxy.down``: server to client), read
afresh for every chunk, so they can be changed while traffic flows. Every
forwarded byte is appended to the link's ``log_up`` / ``log_down``: that is
the oracle for lost, duplicated or reordered bytes.

All of the proxy's tasks live in its own task group; leaving the ``async
with`` block closes every socket.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

__all__ = ("FaultProxy", "Link", "Toxics", "rst_close")

_POLL = 0.002

#: What send_eof() raises on a link the far end already broke. uvloop's
#: transport, once a reset closed it, raises RuntimeError, which anyio passes
#: on as it is.
_SEND_EOF_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, RuntimeError)


def _set_linger_zero(stream: anyio.abc.AnyByteStream) -> None:
    try:
        sock = stream.extra(SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except Exception:
        # Already closed (uvloop raises AttributeError from extra() then).
        pass


async def rst_close(stream: anyio.abc.AnyByteStream) -> None:
    """Close ``stream`` with a TCP reset (SO_LINGER 1, 0), never a FIN."""
    _set_linger_zero(stream)
    await anyio.aclose_forcefully(stream)


@dataclass
class Toxics:
    """The faults applied to one direction of every link.

    Attributes
    ----------
    latency, jitter : float
        Each chunk is held ``latency + uniform(-jitter, jitter)`` seconds.
    rate_bps : float or None
        Bandwidth in bytes per second.
    slice_max : int or None
        Forward in random slices of 1..slice_max bytes ...
    slice_delay : float
        ... with this pause between slices.
    limit_data : int or None
        After this many bytes in this direction, forward a FIN and close the link.
    reset_after : int or None
        After this many bytes in this direction, reset (RST) both ends.
    blackhole : bool
        Hold everything: read nothing, forward nothing, not even a FIN.
    slow_close : float
        Delay before a FIN is forwarded.
    """

    latency: float = 0.0
    jitter: float = 0.0
    rate_bps: float | None = None
    slice_max: int | None = None
    slice_delay: float = 0.0
    limit_data: int | None = None
    reset_after: int | None = None
    blackhole: bool = False
    slow_close: float = 0.0

    def clear(self) -> None:
        """Remove every toxic."""
        self.__init__()  # type: ignore[misc]


@dataclass
class Link:
    """One proxied connection."""

    number: int
    client: anyio.abc.SocketStream
    server: anyio.abc.SocketStream
    log_up: bytearray = field(default_factory=bytearray)
    log_down: bytearray = field(default_factory=bytearray)
    #: How the link ended: "", "fin", "limit", "reset", "closed".
    ended: str = ""
    eofs: int = 0
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    finished: anyio.Event = field(default_factory=anyio.Event)

    async def reset(self) -> None:
        """Reset both ends (RST)."""
        if not self.ended or self.ended == "fin":
            self.ended = "reset"
        _set_linger_zero(self.client)
        _set_linger_zero(self.server)
        self.scope.cancel()
        await anyio.aclose_forcefully(self.client)
        await anyio.aclose_forcefully(self.server)

    async def close(self, how: str = "closed") -> None:
        """Half-close both ends (FIN), then close them."""
        if not self.ended:
            self.ended = how
        self.scope.cancel()
        with anyio.CancelScope(shield=True):
            for stream in (self.client, self.server):
                try:
                    with anyio.move_on_after(0.5):
                        await stream.send_eof()
                except _SEND_EOF_ERRORS:
                    pass
            await anyio.aclose_forcefully(self.client)
            await anyio.aclose_forcefully(self.server)


class FaultProxy:
    """A fault-injecting TCP proxy on 127.0.0.1:0.

    Parameters
    ----------
    target_port : int
        The port of the real server (on ``target_host``).
    target_host : str
        The real server's address (loopback).
    seed : int
        Seed for jitter and slice sizes.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", seed: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.up = Toxics()
        self.down = Toxics()
        self.links: list[Link] = []
        self.port = 0
        self.rng = random.Random(seed)
        self._tg: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.SocketListener | None = None
        self._new_link = anyio.Event()

    # -------------------------------------------------------------- oracle

    @property
    def log_up(self) -> bytes:
        """Every byte forwarded client -> server, all links in order."""
        return b"".join(bytes(link.log_up) for link in self.links)

    @property
    def log_down(self) -> bytes:
        """Every byte forwarded server -> client, all links in order."""
        return b"".join(bytes(link.log_down) for link in self.links)

    @property
    def link(self) -> Link:
        """The most recent link."""
        return self.links[-1]

    async def wait_links(self, n: int) -> Link:
        """Wait until ``n`` links have been made; return the n-th."""
        while len(self.links) < n:
            event = self._new_link
            await event.wait()
        return self.links[n - 1]

    # ------------------------------------------------------------ controls

    def set_blackhole(self, on: bool, direction: str = "both") -> None:
        """Start or stop holding all traffic (no data, no FIN, no RST)."""
        if direction in ("both", "up"):
            self.up.blackhole = on
        if direction in ("both", "down"):
            self.down.blackhole = on

    async def reset_all(self) -> None:
        """Reset (RST) both ends of every open link."""
        for link in self.links:
            if not link.finished.is_set():
                await link.reset()

    async def close_all(self) -> None:
        """Close every open link gracefully (FIN both ways)."""
        for link in self.links:
            if not link.finished.is_set():
                await link.close("closed")

    # ----------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FaultProxy:
        multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self._listener = cast(anyio.abc.SocketListener, multi.listeners[0])
        self.port = int(self._listener.extra(SocketAttribute.local_port))
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._serve)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        assert self._listener is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(self._listener)
                for link in self.links:
                    await anyio.aclose_forcefully(link.client)
                    await anyio.aclose_forcefully(link.server)

    async def _serve(self) -> None:
        assert self._listener is not None
        assert self._tg is not None
        raw = self._listener.extra(SocketAttribute.raw_socket)
        while True:
            # Cancellable only while no connection is pending: a cancellation
            # inside accept() (uvloop: while the transport is being made) would
            # leak the accepted socket.
            await anyio.wait_readable(raw)
            with anyio.CancelScope(shield=True) as scope:
                scope.deadline = anyio.current_time() + 1.0
                try:
                    client = await self._listener.accept()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                except OSError:
                    await anyio.sleep(0.05)
                    continue
            if scope.cancelled_caught:
                continue  # the pending connection went away before accept()
            try:
                server = await anyio.connect_tcp(self.target_host, self.target_port)
            except OSError:
                await rst_close(client)
                continue
            except BaseException:
                await anyio.aclose_forcefully(client)
                raise
            link = Link(len(self.links) + 1, client, server)
            self.links.append(link)
            event, self._new_link = self._new_link, anyio.Event()
            event.set()
            self._tg.start_soon(self._run_link, link)

    async def _run_link(self, link: Link) -> None:
        try:
            with link.scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        self._pump, link, link.client, link.server, lambda: self.up, link.log_up
                    )
                    tg.start_soon(
                        self._pump,
                        link,
                        link.server,
                        link.client,
                        lambda: self.down,
                        link.log_down,
                    )
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(link.client)
                await anyio.aclose_forcefully(link.server)
            link.finished.set()

    async def _hold(self, toxics: Callable[[], Toxics]) -> None:
        while toxics().blackhole:
            await anyio.sleep(_POLL)

    async def _pump(
        self,
        link: Link,
        src: anyio.abc.SocketStream,
        dst: anyio.abc.SocketStream,
        toxics: Callable[[], Toxics],
        log: bytearray,
    ) -> None:
        forwarded = 0
        while True:
            await self._hold(toxics)
            try:
                chunk = await src.receive(65536)
            except anyio.EndOfStream:
                delay = toxics().slow_close
                if delay:
                    await anyio.sleep(delay)
                await self._hold(toxics)
                try:
                    await dst.send_eof()
                except _SEND_EOF_ERRORS:
                    pass
                link.eofs += 1
                if link.eofs == 2:
                    link.ended = link.ended or "fin"
                    link.scope.cancel()
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                # The source was reset: pass the reset on.
                await link.reset()
                return
            await self._hold(toxics)
            tox = toxics()
            if tox.latency or tox.jitter:
                delay = tox.latency + self.rng.uniform(-tox.jitter, tox.jitter)
                if delay > 0:
                    await anyio.sleep(delay)
            while chunk:
                tox = toxics()
                size = len(chunk)
                if tox.rate_bps:
                    # 10 ms worth of data at a time, each sent when it is due.
                    size = min(size, max(1, int(tox.rate_bps / 100)))
                if tox.slice_max:
                    size = min(size, self.rng.randint(1, tox.slice_max))
                cut = None
                if tox.limit_data is not None and forwarded + size >= tox.limit_data:
                    size, cut = max(0, tox.limit_data - forwarded), "limit"
                if tox.reset_after is not None and forwarded + size >= tox.reset_after:
                    size, cut = max(0, tox.reset_after - forwarded), "reset"
                piece, chunk = chunk[:size], chunk[size:]
                if tox.rate_bps:
                    await anyio.sleep(len(piece) / tox.rate_bps)
                if piece:
                    try:
                        await dst.send(piece)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        await link.reset()
                        return
                    log += piece
                    forwarded += len(piece)
                if cut == "limit":
                    await link.close("limit")
                    return
                if cut == "reset":
                    await link.reset()
                    return
                if chunk and tox.slice_max and tox.slice_delay:
                    await anyio.sleep(tox.slice_delay)
