"""Shared pieces of the reliability tests: callback recorders, connected
pairs through a :class:`FaultProxy`, raw peers and time bounds."""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import anyio
import anyio.abc

import anytcpip
from anytcpip.testing import ConnectRecorder

from .faultproxy import FaultProxy

#: Bound for one network test (seconds).
TEST_TIMEOUT = 30.0

#: Default monitor_connection_interval of the library.
INTERVAL = anytcpip.DEFAULT_MONITOR_CONNECTION_INTERVAL


def get_seed() -> int:
    """The RNG seed: $RELIABILITY_SEED if set, else a fresh random one (put it
    in every assertion message so a failure can be replayed)."""
    value = os.environ.get("RELIABILITY_SEED")
    return int(value) if value else random.randrange(1 << 30)


def slack(interval: float = INTERVAL) -> float:
    """The time slack of docs/reliability.rst: max(3 x interval, 0.5 s)."""
    return max(3 * interval, 0.5)


def cause_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and its ``__cause__`` chain."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__
    return chain


def leaves(exc: BaseException) -> list[type[BaseException]]:
    """The exception types inside ``exc``, exception groups flattened."""
    subs: tuple[BaseException, ...] | None = getattr(exc, "exceptions", None)
    if subs is not None:
        return [t for sub in subs for t in leaves(sub)]
    return [type(exc)]


@dataclass
class Pair:
    """A OneClientServer and a Client connected through a FaultProxy."""

    server: anytcpip.OneClientServer
    client: anytcpip.Client
    proxy: FaultProxy
    server_cb: ConnectRecorder
    client_cb: ConnectRecorder

    def obj(self, role: str) -> anytcpip.BaseClientOrServer:
        """The object under test for ``role`` ("client" or "server")."""
        return self.client if role == "client" else self.server

    def peer(self, role: str) -> anytcpip.BaseClientOrServer:
        """The other end."""
        return self.server if role == "client" else self.client

    def cb(self, role: str) -> ConnectRecorder:
        return self.client_cb if role == "client" else self.server_cb

    def log_to(self, role: str) -> bytes:
        """Bytes the proxy forwarded towards ``role``."""
        return self.proxy.log_down if role == "client" else self.proxy.log_up


@asynccontextmanager
async def open_pair(
    log: logging.Logger,
    *,
    server_kwargs: dict[str, Any] | None = None,
    client_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> AsyncIterator[Pair]:
    """Server <- proxy <- client, connected, both callbacks at [True]."""
    server_cb = ConnectRecorder(timeout=5.0)
    client_cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4,
        port=0,
        log=log,
        connect_callback=server_cb,
        name="srv",
        **(server_kwargs or {}),
    ) as server:
        async with FaultProxy(server.port, seed=seed) as proxy:
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4,
                port=proxy.port,
                log=log,
                connect_callback=client_cb,
                name="cli",
                **(client_kwargs or {}),
            ) as client:
                await server.connected_task
                await server_cb.wait_count(1)
                assert client_cb.states == [True]
                yield Pair(server, client, proxy, server_cb, client_cb)


@dataclass
class RawPair:
    """An object under test and a raw anyio stream at the other end."""

    obj: anytcpip.BaseClientOrServer
    raw: anyio.abc.SocketStream
    cb: ConnectRecorder


@asynccontextmanager
async def open_raw(role: str, log: logging.Logger, **kwargs: Any) -> AsyncIterator[RawPair]:
    """``role="server"``: a OneClientServer with a raw anyio client;
    ``role="client"``: a Client connected to a raw anyio listener."""
    cb = ConnectRecorder(timeout=5.0)
    if role == "server":
        async with anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb, **kwargs
        ) as server:
            raw = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, server.port)
            async with raw:
                await server.connected_task
                await cb.wait_count(1)
                yield RawPair(server, raw, cb)
    else:
        multi = await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4, local_port=0)
        async with cast(anyio.abc.SocketListener, multi.listeners[0]) as listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client = anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=port, log=log, connect_callback=cb, **kwargs
            )
            # The kernel completes the handshake before accept() is called.
            async with client, await listener.accept() as raw:
                await cb.wait_count(1)
                yield RawPair(client, raw, cb)


@dataclass
class PlainPair:
    """An object under test and a plain blocking socket at the other end
    (not driven by the event loop, so it really reads nothing until told)."""

    obj: anytcpip.BaseClientOrServer
    sock: socket.socket
    cb: ConnectRecorder

    async def recv(self, n: int = 65536) -> bytes:
        return await anyio.to_thread.run_sync(self.sock.recv, n)


@asynccontextmanager
async def open_plain(
    role: str, log: logging.Logger, *, rcvbuf: int = 0, **kwargs: Any
) -> AsyncIterator[PlainPair]:
    """Like :func:`open_raw`, with a plain blocking socket as the peer."""
    cb = ConnectRecorder(timeout=5.0)
    if role == "server":
        async with anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb, **kwargs
        ) as server:
            with socket.socket() as sock:
                if rcvbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.connect((anytcpip.LOCALHOST_IPV4, server.port))
                await server.connected_task
                await cb.wait_count(1)
                yield PlainPair(server, sock, cb)
    else:
        with socket.socket() as listener:
            if rcvbuf:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            listener.bind((anytcpip.LOCALHOST_IPV4, 0))
            listener.listen(1)
            client = anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4,
                port=listener.getsockname()[1],
                log=log,
                connect_callback=cb,
                **kwargs,
            )
            async with client:
                sock, _ = listener.accept()
                with sock:
                    await cb.wait_count(1)
                    yield PlainPair(client, sock, cb)


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, noted, closed)."""
    with socket.socket() as sock:
        sock.bind((anytcpip.LOCALHOST_IPV4, 0))
        port: int = sock.getsockname()[1]
    return port


async def recv_all(stream: anyio.abc.ByteReceiveStream) -> tuple[bytes, str]:
    """Receive until EOF or reset; return the data and "eof" or "reset"."""
    data = bytearray()
    while True:
        try:
            data += await stream.receive(65536)
        except anyio.EndOfStream:
            return bytes(data), "eof"
        except (anyio.BrokenResourceError, OSError):
            return bytes(data), "reset"
