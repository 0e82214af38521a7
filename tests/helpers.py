"""Shared test helpers: the per-test deadline, raw peers, a 1-byte relay, an
RST closer, callback recorders and the type of the server_and_client fixture."""

from __future__ import annotations

import ctypes
import functools
import inspect
import logging
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

import anytcpip

_S = TypeVar("_S", bound=anytcpip.OneClientServer)

#: Generous bound for one network test (seconds); the machine is shared.
NET_TIMEOUT = 20.0

_P = ParamSpec("_P")


def deadline(
    seconds: float = NET_TIMEOUT,
) -> Callable[[Callable[_P, Coroutine[Any, Any, None]]], Callable[_P, Coroutine[Any, Any, None]]]:
    """Bound a whole ``async def`` test (``NET_TIMEOUT`` unless given).

    Everything the test function awaits counts, the close of the servers and
    clients it opens with ``async with`` included (its fixtures do not). When
    the bound is passed the test is cancelled where it waits and fails with
    a message naming it and the bound; the traceback of the cancellation,
    which shows where it was waiting, is chained. A ``TimeoutError`` of the
    test's own (a step bounded on purpose) goes through unchanged.

    A decorator rather than a marker, because the same one works for pytest
    functions and for the methods of the unittest-style ``*TestCase``
    classes, which pytest's hooks never see being called.
    """

    def decorate(
        test: Callable[_P, Coroutine[Any, Any, None]],
    ) -> Callable[_P, Coroutine[Any, Any, None]]:
        if not inspect.iscoroutinefunction(test):
            raise TypeError(f"@deadline is for async def tests, not {test!r}")
        name = f"{test.__module__}.{test.__qualname__}"

        @functools.wraps(test)
        async def bounded(*args: _P.args, **kwargs: _P.kwargs) -> None:
            scope = anyio.CancelScope(deadline=anyio.current_time() + seconds)
            stopped: BaseException | None = None
            try:
                with scope:
                    try:
                        await test(*args, **kwargs)
                    except BaseException as exc:
                        stopped = exc  # (the cancellation: where the test waited)
                        raise
            except BaseException as exc:
                if not scope.cancel_called:
                    raise
                stopped = exc
            if scope.cancel_called:
                message = f"{name} did not finish within its deadline of {seconds:g} s"
                raise pytest.fail.Exception(message) from stopped

        return bounded

    return decorate


class ShortStruct(ctypes.Structure):
    """A small packed struct for read_into / write_from."""

    _pack_ = 1
    _fields_ = [
        ("seq", ctypes.c_ushort),
        ("stamp", ctypes.c_int64),
        ("angle", ctypes.c_double),
        ("level", ctypes.c_float),
    ]


def struct_fields(s: ctypes.Structure) -> list[Any]:
    """Every field value of ``s``, arrays as lists."""
    values: list[Any] = []
    for field in s._fields_:
        value = getattr(s, field[0])
        if isinstance(value, ctypes.Array):
            value = list(value)
        values.append(value)
    return values


def has_ipv6() -> bool:
    """Whether this machine can listen on the IPv6 loopback (::1)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind((anytcpip.LOCALHOST_IPV6, 0))
    except OSError:
        return False
    return True


def make_server(
    log: logging.Logger,
    connect_callback: Callable[[anytcpip.BaseClientOrServer], Awaitable[None]] | None = None,
    *,
    host: str | None = anytcpip.LOCALHOST_IPV4,
    **kwargs: Any,
) -> anytcpip.OneClientServer:
    """A OneClientServer on ``host`` (127.0.0.1), port 0, not started."""
    return anytcpip.OneClientServer(
        host=host, port=0, log=log, connect_callback=connect_callback, **kwargs
    )


class ServerAndClient(Protocol):
    """The type of the ``server_and_client`` fixture (tests/conftest.py):
    ``async with server_and_client(...) as (server, client):`` runs a
    ``server_class`` server (OneClientServer unless given) on ``host`` port 0
    and a Client connected to it, through the pytest plugin's
    ``anytcpip_server_factory`` and ``anytcpip_client_factory``; the server's
    connected_task is done when it yields, and both are closed (client
    first) when the block ends. ``scoped=True`` enters the client with
    ``async with`` in the test's task instead of the client factory's
    ``tg.start(client.run)``: for tests of that door's close."""

    @overload
    def __call__(
        self,
        *,
        host: str = ...,
        server_kwargs: dict[str, Any] | None = ...,
        client_kwargs: dict[str, Any] | None = ...,
        scoped: bool = ...,
    ) -> AbstractAsyncContextManager[tuple[anytcpip.OneClientServer, anytcpip.Client]]: ...

    @overload
    def __call__(
        self,
        *,
        server_class: type[_S],
        host: str = ...,
        server_kwargs: dict[str, Any] | None = ...,
        client_kwargs: dict[str, Any] | None = ...,
        scoped: bool = ...,
    ) -> AbstractAsyncContextManager[tuple[_S, anytcpip.Client]]: ...


def is_connected(obj: anytcpip.BaseClientOrServer) -> bool:
    """``obj.connected``, through a call (so mypy does not narrow it)."""
    return obj.connected


def rst_close_socket(sock: Any) -> None:
    """Arrange for ``sock`` to send a reset (not a FIN) when it is closed."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def rst_close(stream: anyio.abc.SocketStream) -> None:
    """Close ``stream`` with a TCP reset (SO_LINGER on, timeout 0)."""
    rst_close_socket(stream.extra(SocketAttribute.raw_socket))
    await anyio.aclose_forcefully(stream)


async def receive_exactly(stream: anyio.abc.ByteReceiveStream, n: int) -> bytes:
    """Receive exactly ``n`` bytes from a raw anyio stream."""
    data = bytearray()
    while len(data) < n:
        data += await stream.receive(n - len(data))
    return bytes(data)


async def receive_until_eof(stream: anyio.abc.ByteReceiveStream) -> bytes:
    """Receive everything until the peer's end-of-stream (a reset also ends it)."""
    data = bytearray()
    try:
        while True:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        pass
    return bytes(data)


async def peer_closed(stream: anyio.abc.ByteReceiveStream) -> bool:
    """Wait for ``stream`` to end; True for EOF or reset. Fails if data comes."""
    try:
        data = await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        return True
    raise AssertionError(f"expected the connection to end, got {data!r}")


class _Relay:
    def __init__(self) -> None:
        self.port = 0
        self.connections = 0


async def _pipe_one_byte(src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream) -> None:
    try:
        while True:
            data = await src.receive(1)
            for i in range(len(data)):
                await dst.send(data[i : i + 1])
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    try:
        await dst.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


@asynccontextmanager
async def one_byte_relay(target_port: int) -> AsyncIterator[_Relay]:
    """A relay on 127.0.0.1 (port in ``.port``) that forwards every accepted
    connection to ``target_port`` one byte per send, both ways."""
    relay = _Relay()

    async def handle(inbound: anyio.abc.SocketStream) -> None:
        async with inbound:
            outbound = await anyio.connect_tcp(anytcpip.LOCALHOST_IPV4, target_port)
            async with outbound:
                for s in (inbound, outbound):
                    s.extra(SocketAttribute.raw_socket).setsockopt(
                        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
                    )
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pipe_one_byte, inbound, outbound)
                    tg.start_soon(_pipe_one_byte, outbound, inbound)

    listener = await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4, local_port=0)
    relay.port = int(listener.extra(SocketAttribute.local_port))
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield relay
        finally:
            tg.cancel_scope.cancel()


async def check_not_connected(obj: anytcpip.BaseClientOrServer) -> None:
    """Every read and write method of ``obj`` raises ConnectionError."""
    assert not obj.connected
    s = ShortStruct()
    reads: list[Any] = [
        obj.read_json,
        obj.read_str,
        lambda: obj.read(1),
        lambda: obj.read(-1),
        lambda: obj.readexactly(1),
        obj.readline,
        lambda: obj.readuntil(b"\n"),
        lambda: obj.read_into(s),
        lambda: obj.write(b"\n"),
        lambda: obj.write_from(s),
        lambda: obj.writelines([b" ", b"\n"]),
        lambda: obj.write_str("x"),
        lambda: obj.write_json({"a": 1}),
    ]
    for method in reads:
        with pytest.raises(ConnectionError):
            await method()


async def check_read_write(
    reader: anytcpip.BaseClientOrServer, writer: anytcpip.BaseClientOrServer
) -> None:
    """Two messages each way-round, so stray extra bytes would show."""
    for i in range(2):
        await writer.write_str(f"some data to write {i}")
        assert await reader.read_str() == f"some data to write {i}"


def make_client(
    server: anytcpip.OneClientServer, log: logging.Logger, **kwargs: Any
) -> anytcpip.Client:
    """A Client for ``server`` on 127.0.0.1, not started."""
    return anytcpip.Client(host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log, **kwargs)


@asynccontextmanager
async def peer_listener() -> AsyncIterator[tuple[anyio.abc.SocketListener, int]]:
    """A plain listener on 127.0.0.1, for the raw peer of a Client under
    test, and its port."""
    async with await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4) as multi:
        listener = cast(anyio.abc.SocketListener, multi.listeners[0])
        yield listener, listener.extra(SocketAttribute.local_port)
