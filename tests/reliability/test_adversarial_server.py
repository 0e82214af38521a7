"""What a remote peer (or an unlucky moment) must never do to a server or a
client: end it, crash it, or make close() hang. Issue 14, items 1, 2, 3, 9,
10, 15 and 19; the accept loop's error policy; and a fuzz test of random
connects, resets, half-closes and floods against a running server."""

from __future__ import annotations

import errno
import logging
import random
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSStream

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .faultproxy import rst_close
from .harness import TEST_TIMEOUT, get_seed, leaves, slack

HOST = anytcpip.LOCALHOST_IPV4


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) trusting one throwaway CA."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    return server_context, client_context


def _reset_socket(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _eventually_served(
    server: anytcpip.OneClientServer,
    log: logging.Logger,
    tag: str,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """A well-behaved client is served by ``server`` (one message gets
    through), retrying while the server is still busy with an earlier peer
    (then the new client is turned away) or the server's reads still look at
    an earlier peer's connection."""
    read_loop = isinstance(server, anytcpip.OneClientReadLoopServer)
    with anyio.fail_after(slack() * 10):
        while True:
            client = anytcpip.Client(host=HOST, port=server.port, log=log, ssl_context=ssl_context)
            try:
                if await _try_once(server, client, tag, read_loop):
                    return
            except (ConnectionError, anyio.BrokenResourceError, ssl.SSLError):
                if client.start_task.exception() is None:
                    raise
                # TLS: turned away during the handshake; try again.


async def _try_once(
    server: anytcpip.OneClientServer, client: anytcpip.Client, tag: str, read_loop: bool
) -> bool:
    async with client:
        try:
            await client.write_str(tag)
            if read_loop and await client.read_str() == tag:
                return True
        except (ConnectionError, EOFError):
            pass  # turned away: try again
        if read_loop:
            return False
        # Read as an application would; what an earlier peer left unread
        # comes first (with monitoring off, the server sees that peer's end
        # only once its data is read).
        wanted = tag.encode()
        seen = b""
        with anyio.move_on_after(slack()):
            while wanted not in seen:
                try:
                    seen = seen[-len(wanted) :] + await server.read(65536)
                except ConnectionError:
                    await anyio.sleep(0.01)
            return True
    return False


async def _round_trip(
    server: anytcpip.OneClientServer, log: logging.Logger, cb: ConnectRecorder
) -> None:
    """An idle ``server`` (callback ``cb``) serves a client: one message each
    way; returns once the server saw it leave."""
    n = len(cb.states)
    async with anytcpip.Client(host=HOST, port=server.port, log=log) as client:
        await cb.wait_count(n + 1)
        await client.write_str("ping")
        assert await server.read_str() == "ping"
        await server.write_str("pong")
        assert await client.read_str() == "pong"
    await cb.wait_count(n + 2)


async def _wait_accepted(server: anytcpip.OneClientServer, count: int) -> None:
    """Wait until the server's accept loop has taken ``count`` connections
    (seen through the "client connected" log lines)."""
    while _ACCEPTED.get(id(server), 0) < count:
        await anyio.sleep(0.005)


_ACCEPTED: dict[int, int] = {}


class _AcceptCounter(logging.Handler):
    def __init__(self, server: anytcpip.OneClientServer) -> None:
        super().__init__(logging.DEBUG)
        self.server = server

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("client connected from"):
            key = id(self.server)
            _ACCEPTED[key] = _ACCEPTED.get(key, 0) + 1


@asynccontextmanager
async def _counting(server: anytcpip.OneClientServer) -> AsyncIterator[None]:
    handler = _AcceptCounter(server)
    old_level = server.log.level
    server.log.addHandler(handler)
    server.log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        server.log.removeHandler(handler)
        server.log.setLevel(old_level)
        _ACCEPTED.pop(id(server), None)


# ----------------------------------------------------------------- item 1


@pytest.mark.parametrize(("monitor", "tls"), [(0.1, False), (0.0, False), (0.1, True)])
@deadline(TEST_TIMEOUT)
async def test_connect_then_reset_at_once(
    log: logging.Logger,
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    monitor: float,
    tls: bool,
) -> None:
    """Item 1: 40 clients each connect and reset at once (SO_LINGER 1, 0),
    some while another is being served. The server never dies, and a
    well-behaved client is served afterwards. (Plain TCP and TLS: on uvloop
    the reset makes even setting socket options fail.)"""
    server_kwargs: dict[str, Any] = {"ssl_context": tls_contexts[0]} if tls else {}
    async with anytcpip.OneClientServer(
        host=HOST, port=0, log=log, monitor_connection_interval=monitor, **server_kwargs
    ) as server:
        for i in range(40):
            sock = socket.create_connection((HOST, server.port))
            _reset_socket(sock)
            if i % 10 == 9:
                await anyio.sleep(0.01)
        await _eventually_served(server, log, "after the storm", tls_contexts[1] if tls else None)
        assert not server.done_task.done()


# ----------------------------------------------------------------- item 2


@deadline(TEST_TIMEOUT)
async def test_tls_second_client_during_handshake(
    log: logging.Logger, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """Item 2: a TLS server; A connects (TCP) and has not started its
    handshake when B connects and completes one. The server does not crash:
    B is turned away, A then finishes its handshake and is served."""
    server_context, client_context = tls_contexts
    cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(
        host=HOST, port=0, log=log, ssl_context=server_context, connect_callback=cb
    ) as server:
        async with _counting(server):
            first = await anyio.connect_tcp(HOST, server.port)
            async with first:
                await _wait_accepted(server, 1)
                second = await anyio.connect_tcp(HOST, server.port)
                async with second:
                    # Turned away: the handshake fails or the stream ends.
                    with pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream, OSError)):  # noqa: PT012
                        tls = await TLSStream.wrap(
                            second, hostname=HOST, ssl_context=client_context
                        )
                        await tls.receive()
                wrapped = await TLSStream.wrap(first, hostname=HOST, ssl_context=client_context)
                await cb.wait_count(1)
                await wrapped.send(b"from A\r\n")
                assert await server.read_str() == "from A"
                await server.write_str("to A")
                assert await wrapped.receive() == b"to A\r\n"
        assert not server.done_task.done()


# ----------------------------------------------------------------- item 3


@pytest.mark.parametrize("monitor", [0.0, 0.1])
@deadline(TEST_TIMEOUT)
async def test_close_after_unnoticed_reset(log: logging.Logger, monitor: float) -> None:
    """Item 3: the peer resets while nobody reads or writes (with monitoring
    off it goes unnoticed); leaving ``async with`` closes cleanly, for the
    server and for a client."""
    cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(
        host=HOST, port=0, log=log, connect_callback=cb, monitor_connection_interval=monitor
    ) as server:
        raw = await anyio.connect_tcp(HOST, server.port)
        await cb.wait_count(1)
        await rst_close(raw)
        # Give the event loop time to see the reset (nobody asks).
        await anyio.sleep(0.2)
    multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    async with multi:
        listener = cast(anyio.abc.SocketListener, multi.listeners[0])
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anytcpip.Client(
            host=HOST, port=port, log=log, monitor_connection_interval=monitor
        ):
            peer = await listener.accept()
            await rst_close(peer)
            await anyio.sleep(0.2)


# ----------------------------------------------------------------- item 9


@asynccontextmanager
async def _full_accept_queue() -> AsyncIterator[int]:
    """A loopback listener that never accepts, with its accept queue full:
    a new connect to the port yielded hangs."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind((HOST, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(16):
            sock = socket.socket()
            fillers.append(sock)
            sock.setblocking(False)
            code = sock.connect_ex((HOST, port))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, "could not fill the accept queue")
            with anyio.move_on_after(0.3) as scope:
                await anyio.wait_writable(sock)
            if scope.cancelled_caught:
                break  # this connect hangs: the queue is full
        else:
            pytest.skip("could not fill the accept queue")
        yield port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


@pytest.mark.parametrize("form", ["async_with", "run"])
@deadline(TEST_TIMEOUT)
async def test_close_while_connecting(log: logging.Logger, form: str) -> None:
    """Item 9: close() from another task while the client's connect hangs
    (the listener's accept queue is full) aborts the connect and returns
    promptly; the client is done and not connected; the code that started
    it gets a ConnectionError."""
    outcome: list[BaseException] = []
    async with _full_accept_queue() as port:
        client = anytcpip.Client(host=HOST, port=port, log=log)

        async def connect() -> None:
            try:
                if form == "run":
                    async with anyio.create_task_group() as tg:
                        await tg.start(client.run)
                else:
                    async with client:
                        pass
            except Exception as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(connect)
            await anyio.wait_all_tasks_blocked()
            assert not client.start_task.done()
            start = anyio.current_time()
            await client.close()
            elapsed = anyio.current_time() - start
        assert elapsed < slack(), elapsed
        assert client.done_task.done()
        assert not client.connected
        assert len(outcome) == 1, outcome
        # (tg.start re-raises the error; the task group may wrap it.)
        assert leaves(outcome[0]) == [ConnectionError], repr(outcome[0])
        with pytest.raises(ConnectionError):
            await client.start_task


# ---------------------------------------------------------------- item 10


@pytest.mark.parametrize("how", ["close", "close_client"])
@deadline(TEST_TIMEOUT)
async def test_tls_close_with_silent_client(
    log: logging.Logger, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext], how: str
) -> None:
    """Item 10: a client connects to a TLS server and never sends its
    ClientHello. close() (or close_client()) returns within linger plus
    slack, not after the handshake's own timeout; after close_client() the
    server still serves a TLS client."""
    server_context, client_context = tls_contexts
    linger = 0.5
    async with anytcpip.OneClientServer(
        host=HOST, port=0, log=log, ssl_context=server_context, linger=linger
    ) as server:
        async with _counting(server):
            silent = await anyio.connect_tcp(HOST, server.port)
            async with silent:
                await _wait_accepted(server, 1)
                start = anyio.current_time()
                await getattr(server, how)()
                elapsed = anyio.current_time() - start
                assert elapsed < linger + slack(), elapsed
                if how == "close_client":
                    async with anytcpip.Client(
                        host=HOST, port=server.port, log=log, ssl_context=client_context
                    ) as client:
                        await server.connected_task
                        await client.write_str("hello")
                        assert await server.read_str() == "hello"


# ---------------------------------------------------------------- item 15


class _UserBaseError(BaseException):
    pass


_BASE_ERRORS: list[Callable[[], BaseException]] = [
    lambda: SystemExit(3),
    KeyboardInterrupt,
    lambda: _UserBaseError("mine"),
]


@pytest.mark.parametrize(
    "make_error", _BASE_ERRORS, ids=["SystemExit", "KeyboardInterrupt", "user"]
)
@deadline(TEST_TIMEOUT)
async def test_base_exception_from_body_unchanged(
    log: logging.Logger, make_error: Callable[[], BaseException]
) -> None:
    """Item 15: a BaseException raised in the ``async with`` body of a server
    or a client comes out as it is (the same object, no group around it),
    and everything is closed."""
    error = make_error()
    server = anytcpip.OneClientServer(host=HOST, port=0, log=log)
    with pytest.raises(type(error)) as info:
        async with server:
            raise error
    assert info.value is error
    assert server.done_task.done()

    async with anytcpip.OneClientServer(host=HOST, port=0, log=log) as server:
        error = make_error()
        client = anytcpip.Client(host=HOST, port=server.port, log=log)
        with pytest.raises(type(error)) as info:  # noqa: PT012
            async with client:
                await server.connected_task
                raise error
        assert info.value is error
        assert client.done_task.done()
        assert not client.connected


@deadline(TEST_TIMEOUT)
async def test_cancellation_from_body_still_cancels(log: logging.Logger) -> None:
    """Item 15: a cancellation of the ``async with`` body still behaves as
    a cancellation: the enclosing scope catches it, everything is closed."""
    async with anytcpip.OneClientServer(host=HOST, port=0, log=log) as server:
        client = anytcpip.Client(host=HOST, port=server.port, log=log)
        with anyio.CancelScope() as scope:
            async with client:
                await server.connected_task
                scope.cancel()
                await anyio.sleep(TEST_TIMEOUT)
        assert scope.cancelled_caught
        assert client.done_task.done()
    with anyio.CancelScope() as scope:
        async with anytcpip.OneClientServer(host=HOST, port=0, log=log) as server:
            scope.cancel()
            await anyio.sleep(TEST_TIMEOUT)
    assert scope.cancelled_caught
    assert server.done_task.done()


# ---------------------------------------------------------------- item 19


@deadline(TEST_TIMEOUT)
async def test_should_be_connected_false_after_close(log: logging.Logger) -> None:
    """Item 19: A is connected and never closes; close_client() (its drain
    waits out linger in the background); B connects meanwhile; then close().
    After close(), should_be_connected is False."""
    cb = ConnectRecorder(timeout=5.0)
    linger = 1.0
    async with anytcpip.OneClientServer(
        host=HOST, port=0, log=log, linger=linger, connect_callback=cb
    ) as server:
        async with _counting(server):
            with socket.create_connection((HOST, server.port)) as first:
                await cb.wait_count(1)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(server.close_client)
                    await cb.wait_count(2)
                    with socket.create_connection((HOST, server.port)) as second:
                        await _wait_accepted(server, 2)
                        await server.close()
                        assert not server.should_be_connected
                        # close_client() returns without waiting for A's
                        # drain, so B may have been served before close();
                        # either way the callbacks alternate and end False.
                        assert cb.states in ([True, False], [True, False, True, False])
                        # B's end: closed without a byte of service.
                        second.settimeout(slack())
                        try:
                            data = second.recv(10)
                        except ConnectionResetError:
                            data = b""
                        assert data == b""
                first.close()
    assert not server.should_be_connected


# ------------------------------------------------------- accept error policy


class _FlakyAccept:
    """Wraps a listener's accept(): raises the queued errors first (noting
    when), then accepts as usual."""

    def __init__(self, listener: anyio.abc.SocketListener, errors: list[BaseException]) -> None:
        self.accept = listener.accept
        self.errors = errors
        self.times: list[float] = []
        self.exhausted = anyio.Event()

    async def __call__(self) -> anyio.abc.SocketStream:
        if self.errors:
            self.times.append(anyio.current_time())
            error = self.errors.pop(0)
            if not self.errors:
                self.exhausted.set()
            raise error
        return await self.accept()


def _patch_accept(server: anytcpip.OneClientServer, errors: list[BaseException]) -> _FlakyAccept:
    """Make the accept loop's next accept() calls raise ``errors`` (the call
    it is waiting in now is not affected)."""
    listener = server._listeners[0]
    flaky = _FlakyAccept(listener, errors)
    listener.accept = flaky  # type: ignore[method-assign]
    return flaky


@deadline(TEST_TIMEOUT)
async def test_accept_harmless_errors_ignored(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """Per-connection accept errors (a connection aborted or reset before it
    was accepted, EPROTO, EPERM, a peer whose address is gone) are ignored
    without the capacity pause, logged at debug level only, and the next
    client is served."""
    caplog.set_level(logging.DEBUG, logger=log.name)
    errors: list[BaseException] = [
        ConnectionAbortedError(errno.ECONNABORTED, "aborted"),
        OSError(errno.EPROTO, "protocol error"),
        PermissionError(errno.EPERM, "firewall"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        anyio.TypedAttributeLookupError("gone"),
    ]
    count = len(errors)
    cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(host=HOST, port=0, log=log, connect_callback=cb) as server:
        flaky = _patch_accept(server, errors)
        # Accepted by the call the loop is waiting in; the errors come
        # from the calls after it.
        await _round_trip(server, log, cb)
        await flaky.exhausted.wait()
        await _round_trip(server, log, cb)
        assert len(flaky.times) == count
        span = flaky.times[-1] - flaky.times[0]
        assert span < (count - 1) * 0.1, span
        assert cb.states == [True, False, True, False]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records


@deadline(TEST_TIMEOUT)
async def test_accept_bug_propagates(log: logging.Logger) -> None:
    """An accept error that no peer can cause (a ValueError here) is a bug:
    it ends the server and comes out of ``async with``."""
    with pytest.raises(BaseException) as info:  # noqa: PT011,PT012
        async with anytcpip.OneClientServer(host=HOST, port=0, log=log) as server:
            _patch_accept(server, [ValueError("a bug")])
            with socket.create_connection((HOST, server.port)):
                await server.done_task
    assert ValueError in leaves(info.value), info.value
    assert server.done_task.done()


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENOBUFS])
@deadline(TEST_TIMEOUT)
async def test_accept_capacity_error_pauses(
    log: logging.Logger, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    """A capacity error (EMFILE, ENFILE, ENOMEM, ENOBUFS; on trio wrapped in
    BrokenResourceError) is logged as an error and retried after a pause;
    the next client is served."""
    caplog.set_level(logging.DEBUG, logger=log.name)
    wrapped = anyio.BrokenResourceError()
    wrapped.__cause__ = OSError(code, "out of something")
    errors: list[BaseException] = [OSError(code, "out of something"), wrapped]
    cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(host=HOST, port=0, log=log, connect_callback=cb) as server:
        flaky = _patch_accept(server, errors)
        await _round_trip(server, log, cb)
        await flaky.exhausted.wait()
        await _round_trip(server, log, cb)
        assert len(flaky.times) == 2
        assert flaky.times[1] - flaky.times[0] >= 0.09
    failures = [r for r in caplog.records if "accept failed" in r.getMessage()]
    assert len(failures) == 2, failures
    assert all(r.levelno == logging.ERROR for r in failures)


# ------------------------------------------------------------------- fuzz


class _EchoReadLoopServer(anytcpip.OneClientReadLoopServer):
    async def read_and_dispatch(self) -> None:
        line = await self.read_str()
        await self.write_str(line)


async def _fuzz_peer(port: int, rng: random.Random) -> str:
    """One adversarial peer: connect, then reset, half-close, flood, send
    garbage or just leave, at a random moment."""
    action = rng.choice(["reset", "reset_after_data", "half_close", "flood", "fin", "garbage"])
    try:
        with anyio.fail_after(slack()):
            stream = await anyio.connect_tcp(HOST, port)
    except (OSError, TimeoutError):
        return "connect failed"
    reset = action.startswith("reset") or rng.random() < 0.3
    try:
        if rng.random() < 0.5:
            await anyio.sleep(rng.random() * 0.01)
        if action == "reset_after_data":
            await stream.send(b"partial line without its terminator")
        elif action == "half_close":
            await stream.send(b"request\r\n")
            await stream.send_eof()
            with anyio.move_on_after(0.05):
                await stream.receive()
        elif action == "flood":
            chunk = rng.randbytes(1 << 14)
            with anyio.move_on_after(0.05):
                while True:
                    await stream.send(chunk)
        elif action == "garbage":
            await stream.send(rng.randbytes(rng.randrange(1, 300)) + b"\r\n")
    except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
        pass  # rejected or reset by the server meanwhile
    finally:
        if reset:
            await rst_close(stream)
        else:
            await anyio.aclose_forcefully(stream)
    return action


@pytest.mark.parametrize(
    ("kind", "monitor"),
    [
        ("one_client", 0.1),
        ("one_client", 0.0),
        ("read_loop", 0.1),
        ("read_loop", 0.0),
        ("tls_read_loop", 0.1),
    ],
)
@deadline(TEST_TIMEOUT * 2)
async def test_fuzz_server_never_dies(
    log: logging.Logger,
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    kind: str,
    monitor: float,
) -> None:
    """Done when: 60 seeded random adversarial peers (connect then reset,
    half-close, flood, garbage, FIN; some at once, some alone; against a TLS
    server all of it lands in the handshake) against a running server,
    interleaved with well-behaved clients. The server never dies, serves a
    well-behaved client after every round, and closes cleanly."""
    seed = get_seed()
    rng = random.Random(seed)
    server: anytcpip.OneClientServer
    client_kwargs: dict[str, Any] = {}
    if kind == "one_client":
        server = anytcpip.OneClientServer(
            host=HOST, port=0, log=log, monitor_connection_interval=monitor
        )
    else:
        server_kwargs: dict[str, Any] = {}
        if kind == "tls_read_loop":
            server_kwargs["ssl_context"] = tls_contexts[0]
            client_kwargs["ssl_context"] = tls_contexts[1]
        server = _EchoReadLoopServer(
            port=0, host=HOST, log=log, monitor_connection_interval=monitor, **server_kwargs
        )
    async with server:
        for round_ in range(6):
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(_fuzz_peer, server.port, random.Random(rng.random()))
                    if rng.random() < 0.5:
                        await anyio.sleep(rng.random() * 0.005)
            assert not server.done_task.done(), f"seed={seed} round={round_}"
            # Whatever was going on, the server ends up serving a
            # well-behaved client.
            await _eventually_served(server, log, f"round {round_} seed {seed}", **client_kwargs)
    assert server.done_task.done()
