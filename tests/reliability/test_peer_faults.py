"""Peer and transport faults: FIN, RST, cut frames, half-close, kill, vanish
(docs/reliability.rst R1-R4, R6, R7)."""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import anytcpip
from anytcpip.testing import ConnectRecorder
from helpers import deadline

from .faultproxy import FaultProxy
from .harness import TEST_TIMEOUT, cause_chain, open_pair, open_raw, recv_all, slack
from .payloads import ShortStruct
from .peers import PeerProcess

ROLES = ["client", "server"]
READ_APIS = ["read", "readexactly", "readline", "readuntil", "read_str", "read_json", "read_into"]


def _reader(obj: anytcpip.BaseClientOrServer, api: str) -> Callable[[], Awaitable[Any]]:
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "read": lambda: obj.read(100),
        "readexactly": lambda: obj.readexactly(100),
        "readline": obj.readline,
        "readuntil": lambda: obj.readuntil(b"\r\n"),
        "read_str": obj.read_str,
        "read_json": obj.read_json,
        "read_into": lambda: obj.read_into(ShortStruct()),
    }
    return calls[api]


async def _assert_not_connected(obj: anytcpip.BaseClientOrServer) -> None:
    """Every read and write method raises ConnectionError."""
    for api in READ_APIS:
        with pytest.raises(ConnectionError):
            await _reader(obj, api)()
    writes: list[Callable[[], Awaitable[None]]] = [
        lambda: obj.write(b"x"),
        lambda: obj.writelines([b"a", b"b"]),
        lambda: obj.write_from(ShortStruct()),
        lambda: obj.write_str("x"),
        lambda: obj.write_json({"a": 1}),
    ]
    for write in writes:
        with pytest.raises(ConnectionError):
            await write()


@pytest.mark.parametrize("api", READ_APIS)
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_peer_fin_while_reading(log: logging.Logger, role: str, api: str) -> None:
    """R1 (b): the peer closes (FIN) while a read is blocked.

    readexactly/readuntil/read_str/read_json/read_into raise IncompleteReadError
    carrying exactly the bytes that came; read returns b"" and readline the
    partial line. Then conn=False, sbc=True, C=[T,F], and every read and write
    raises ConnectionError.
    """
    async with open_pair(log) as pair:
        obj, peer, cb = pair.obj(role), pair.peer(role), pair.cb(role)
        partial = b"" if api == "read" else b"par"
        if partial:
            await peer.write(partial)
        outcome: list[Any] = []

        async def read() -> None:
            try:
                outcome.append(await _reader(obj, api)())
            except Exception as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            # Wait until the partial bytes arrived and the read is blocked.
            while pair.log_to(role) != partial:
                await anyio.sleep(0.001)
            await anyio.wait_all_tasks_blocked()
            assert not outcome, outcome
            await pair.proxy.close_all()
        [result] = outcome
        if api == "read":
            assert result == b""
        elif api == "readline":
            assert result == partial
        else:
            assert isinstance(result, anytcpip.IncompleteReadError), repr(result)
            assert result.partial == partial
            expected = {"readexactly": 100, "read_into": 18}.get(api)
            assert result.expected == expected
        await cb.wait_count(2)
        assert cb.states == [True, False]
        assert not obj.connected
        assert obj.should_be_connected
        await _assert_not_connected(obj)
    assert cb.states == [True, False]


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_peer_fin_idle(log: logging.Logger, role: str) -> None:
    """R1 (a): the peer closes (FIN) while nobody reads: with the monitor on,
    conn=False within interval + slack, sbc=True, C=[T,F]; bytes sent before
    the FIN stay readable, then reads raise ConnectionError."""
    async with open_pair(log) as pair:
        obj, peer, cb = pair.obj(role), pair.peer(role), pair.cb(role)
        await peer.write_str("last words")
        while pair.log_to(role) != b"last words\r\n":
            await anyio.sleep(0.001)
        start = anyio.current_time()
        await pair.proxy.close_all()
        await cb.wait_count(2)
        elapsed = cb.times[1] - start
        assert elapsed <= anytcpip.DEFAULT_MONITOR_CONNECTION_INTERVAL + slack(), elapsed
        assert cb.states == [True, False]
        assert not obj.connected
        assert obj.should_be_connected
        # I1: what was sent before the FIN is still there, exactly once.
        assert await obj.read_str() == "last words"
        await _assert_not_connected(obj)


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_peer_rst(log: logging.Logger, role: str) -> None:
    """R2: the peer's end resets (RST) after K bytes while a read is pending.

    The read raises ConnectionError with ConnectionResetError in its cause
    chain (never a clean EOF); the bytes delivered before the reset are a
    prefix of what was sent (never duplicated); a write raises
    ConnectionError within 1000 small writes; conn=False, sbc=True, C=[T,F]
    exactly once although the read and the write both failed.
    """
    k = 5000
    async with open_pair(log) as pair:
        obj, peer, cb = pair.obj(role), pair.peer(role), pair.cb(role)
        toxics = pair.proxy.down if role == "client" else pair.proxy.up
        toxics.reset_after = k
        sent = bytes(i % 256 for i in range(3 * k))
        outcome: list[Any] = []

        async def read() -> None:
            try:
                outcome.append(await obj.readexactly(len(sent)))
            except Exception as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            await peer.write(sent)
            # The proxy resets the peer's end too.
            with pytest.raises(ConnectionError):
                await peer.read(1)
        [result] = outcome
        assert isinstance(result, ConnectionError), repr(result)
        assert not isinstance(result, anytcpip.IncompleteReadError)
        chain = cause_chain(result)
        assert any(isinstance(e, ConnectionResetError) for e in chain), chain
        # Whatever is still buffered comes out once, as a prefix.
        got = bytearray()
        while True:
            try:
                data = await obj.read(1 << 16)
            except ConnectionError:
                break
            assert data
            got += data
        assert bytes(got) == sent[: len(got)]
        assert pair.log_to(role) == sent[:k]
        write_error: ConnectionError | None = None
        for _ in range(1000):
            try:
                await obj.write(b"x" * 100)
            except ConnectionError as exc:
                write_error = exc
                break
        assert write_error is not None, "1000 writes after a reset did not raise"
        chain = cause_chain(write_error)
        assert any(isinstance(e, ConnectionResetError) for e in chain), chain
        await cb.wait_count(2)
        assert not obj.connected
        assert obj.should_be_connected
        assert cb.states == [True, False]
    assert cb.states == [True, False]


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_peer_rst_raw(log: logging.Logger, role: str) -> None:
    """R2 (raw peer): the peer sends a line, then closes with SO_LINGER(1, 0).
    A pending read_str fails with ConnectionError (ConnectionResetError in the
    cause chain) or, if the line arrived first, returns it once; conn=False,
    sbc=True, C=[T,F]."""
    from .faultproxy import rst_close

    async with open_raw(role, log) as rp:
        await rst_close(rp.raw)
        await rp.cb.wait_count(2)
        assert rp.cb.states == [True, False]
        with pytest.raises(ConnectionError) as info:
            await rp.obj.read_str()
        assert not isinstance(info.value, anytcpip.IncompleteReadError)
        with pytest.raises(ConnectionError) as info:
            await rp.obj.write_str("after reset")
        chain = cause_chain(info.value)
        assert any(isinstance(e, ConnectionResetError) for e in chain), chain
        assert not rp.obj.connected
        assert rp.obj.should_be_connected


@pytest.mark.parametrize(("what", "limit"), [("struct", 7), ("line", 5), ("json", 6)])
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_cut_mid_frame(log: logging.Logger, role: str, what: str, limit: int) -> None:
    """R3: the peer's connection ends (FIN) part-way through a frame.

    read_into raises IncompleteReadError(partial=7 bytes, expected=18);
    read_str/read_json raise IncompleteReadError with the partial line; the
    partial bytes never come back from a later read; conn=False, sbc=True,
    C=[T,F].
    """
    async with open_pair(log) as pair:
        obj, peer, cb = pair.obj(role), pair.peer(role), pair.cb(role)
        toxics = pair.proxy.down if role == "client" else pair.proxy.up
        toxics.limit_data = limit
        struct = ShortStruct(seq=7, value=-123456789, ratio=2.5)
        if what == "struct":
            await peer.write_from(struct)
            expected_size: int | None = ctypes.sizeof(ShortStruct)
            sent = bytes(struct)
        elif what == "line":
            await peer.write_str("hello world")
            expected_size, sent = None, b"hello world\r\n"
        else:
            await peer.write_json({"key": [1, 2, 3]})
            expected_size, sent = None, json.dumps({"key": [1, 2, 3]}).encode() + b"\r\n"
        read = {
            "struct": lambda: obj.read_into(ShortStruct()),
            "line": obj.read_str,
            "json": obj.read_json,
        }[what]
        with pytest.raises(anytcpip.IncompleteReadError) as info:
            await read()
        assert info.value.partial == sent[:limit]
        assert info.value.expected == expected_size
        assert pair.log_to(role) == sent[:limit]
        await cb.wait_count(2)
        assert cb.states == [True, False]
        assert not obj.connected
        assert obj.should_be_connected
        # The partial bytes are gone for good.
        with pytest.raises(ConnectionError):
            await obj.read(100)
        with pytest.raises(ConnectionError):
            await obj.readexactly(1)


@pytest.mark.parametrize("monitor", [0.1, 0.0])
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_half_close(log: logging.Logger, role: str, monitor: float) -> None:
    """R4: the peer sends its request, half-closes (SHUT_WR) and keeps reading.

    We read all the data, then see EOF as a disconnect (conn=False, C=[T,F],
    sbc=True). A 1 MiB reply written before we noticed is delivered in full,
    followed by a clean EOF (no RST), through a proxy that passes the
    half-close on.
    """
    reply = os.urandom(1 << 20)
    async with open_raw(role, log, monitor_connection_interval=monitor) as rp:
        await rp.raw.send(b"request 1\r\nrequest 2\r\n")
        assert await rp.obj.read_str() == "request 1"
        await rp.obj.write(reply)
        await rp.raw.send_eof()
        assert await rp.obj.read_str() == "request 2"
        with pytest.raises(anytcpip.IncompleteReadError) as info:
            await rp.obj.read_str()
        assert info.value.partial == b""
        await rp.cb.wait_count(2)
        assert rp.cb.states == [True, False]
        assert not rp.obj.connected
        assert rp.obj.should_be_connected
        with pytest.raises(ConnectionError):
            await rp.obj.write(b"too late")
        data, end = await recv_all(rp.raw)
        assert end == "eof"
        assert data == reply


@deadline(TEST_TIMEOUT)
async def test_half_close_through_proxy(log: logging.Logger) -> None:
    """R4 (through the FaultProxy, which passes the half-close on): a raw client
    sends a request and half-closes; the server's reply, written before it
    noticed the EOF, reaches the client in full followed by EOF; the proxy
    logs match byte for byte."""
    reply = os.urandom(300_000)
    cb = ConnectRecorder(timeout=5.0)
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb
    ) as server:
        async with FaultProxy(server.port) as proxy:
            async with await anyio.connect_tcp("127.0.0.1", proxy.port) as raw:
                await server.connected_task
                await raw.send(b"only request\r\n")
                assert await server.read_str() == "only request"
                await server.write(reply)
                await raw.send_eof()
                data, end = await recv_all(raw)
                assert end == "eof"
                assert data == reply
                await cb.wait_count(2)
                assert cb.states == [True, False]
                assert proxy.log_up == b"only request\r\n"
                assert proxy.log_down == reply


@pytest.mark.no_fd_check
@pytest.mark.skipif(sys.platform == "win32", reason="signals")
@pytest.mark.parametrize("pending", [True, False])
@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_peer_killed(log: logging.Logger, role: str, pending: bool) -> None:
    """R6: the peer process is killed (SIGKILL). A pending read fails at once
    (IncompleteReadError after a FIN, ConnectionError after a RST), idle
    detection comes within slack; sbc=True, C=[T,F]."""
    cb = ConnectRecorder(timeout=5.0)
    if role == "server":
        async with anytcpip.OneClientServer(
            host=anytcpip.LOCALHOST_IPV4, port=0, log=log, connect_callback=cb
        ) as server:
            async with PeerProcess(server.port, read="drain") as peer:
                await cb.wait_count(1)
                await _kill_and_check(server, peer, cb, pending)
    else:
        async with PeerProcess(None, read="drain") as peer:
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=peer.port, log=log, connect_callback=cb
            ) as client:
                await peer.wait_ready()
                await _kill_and_check(client, peer, cb, pending)


async def _kill_and_check(
    obj: anytcpip.BaseClientOrServer, peer: PeerProcess, cb: ConnectRecorder, pending: bool
) -> None:
    outcome: list[BaseException] = []

    async def read() -> None:
        try:
            await obj.readexactly(10)
        except Exception as exc:
            outcome.append(exc)

    await obj.write_str("hello")
    async with anyio.create_task_group() as tg:
        if pending:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
        start = anyio.current_time()
        peer.kill()
        await peer.wait_exit()
        await cb.wait_count(2)
    assert cb.times[1] - start <= slack(), cb.times[1] - start
    assert cb.states == [True, False]
    assert not obj.connected
    assert obj.should_be_connected
    if pending:
        [exc] = outcome
        assert isinstance(exc, ConnectionError | anytcpip.IncompleteReadError), repr(exc)


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_vanish_blackhole(log: logging.Logger, role: str) -> None:
    """R7 (portable version): every packet is held by the proxy (no FIN, RST or
    data). TCP itself stays alive (the proxy's kernel acknowledges), so:
    no spurious disconnect; a read under a user timeout is cancelled cleanly
    and consumes nothing; close() is bounded by linger + slack; when the
    blackhole lifts before that, every byte arrives in order (I1)."""
    linger = 0.5
    async with open_pair(
        log, server_kwargs={"linger": linger}, client_kwargs={"linger": linger}
    ) as pair:
        obj, peer, cb = pair.obj(role), pair.peer(role), pair.cb(role)
        pair.proxy.set_blackhole(True)
        await peer.write_str("during the blackhole")
        with anyio.move_on_after(0.3) as scope:
            await obj.read_str()
        assert scope.cancelled_caught
        assert obj.connected
        assert cb.states == [True]
        pair.proxy.set_blackhole(False)
        assert await obj.read_str() == "during the blackhole"
        await obj.write_str("back")
        assert await peer.read_str() == "back"
        # Closing into a blackhole is bounded by linger.
        pair.proxy.set_blackhole(True)
        await obj.write(b"x" * 100_000)
        start = anyio.current_time()
        if role == "client":
            await pair.client.close()
        else:
            await pair.server.close_client()
        elapsed = anyio.current_time() - start
        assert elapsed <= linger + slack(), elapsed
        assert cb.states == [True, False]
        assert not obj.should_be_connected
        pair.proxy.set_blackhole(False)


# ------------------------------------------------------------ R7 with netns

_NETNS_SCRIPT = textwrap.dedent(
    """
    import json, socket, subprocess, sys, time
    import anyio, anytcpip

    backend, options = sys.argv[1], json.loads(sys.argv[2])
    def sh(*args):
        subprocess.run(args, check=True, capture_output=True)

    # We run in a fresh, private network namespace: its loopback is ours alone.
    # The peer listens on 127.0.0.1; taking this namespace's loopback down then
    # drops every packet silently, as a pulled cable does (no FIN, no RST).
    try:
        sh("ip", "link", "set", "lo", "up")
    except Exception as exc:
        print(json.dumps({"skip": f"netns setup failed: {exc!r}"}))
        sys.exit(0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    async def main():
        result = {}
        states = []
        async def cb(obj):
            states.append(obj.connected)
        async with anytcpip.Client("127.0.0.1", port, logging_logger,
                                   connect_callback=cb, linger=0.5) as client:
            peer, _ = listener.accept()  # kept open, silent: it just vanishes
            sock = client._conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
            sh("ip", "link", "set", "lo", "down")
            start = time.monotonic()
            try:
                with anyio.fail_after(20):
                    await client.readexactly(10)
            except Exception as exc:
                chain = []
                e = exc
                while e is not None:
                    chain.append(type(e).__name__ + ":" + str(getattr(e, "errno", "")))
                    e = e.__cause__
                result["error"] = chain
                result["is_connection_error"] = isinstance(exc, ConnectionError)
            result["elapsed"] = time.monotonic() - start
            result["connected"] = client.connected
            result["should_be_connected"] = client.should_be_connected
            t0 = time.monotonic()
        result["close_time"] = time.monotonic() - t0
        result["states"] = states
        peer.close()
        print(json.dumps(result), flush=True)

    import logging
    logging_logger = logging.getLogger("netns")
    anyio.run(main, backend=backend, backend_options=options)
    """
)


@pytest.mark.no_fd_check
@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("unshare"),
    reason="needs root, Linux and unshare",
)
@deadline(60)
async def test_vanish_netns(anyio_backend: Any) -> None:
    """R7 (netns version, root only): the cable is pulled. In a private network
    namespace, client and peer talk over 127.0.0.1, then the namespace's
    loopback goes down, so every packet vanishes silently. With keepalive at 1 s / 1 s / 2 probes a
    blocked read fails after about 3 s with ConnectionError whose cause is
    TimeoutError(ETIMEDOUT), never a raw TimeoutError; conn=False, sbc=True,
    C=[T,F]; close is bounded."""
    if not shutil.which("ip"):
        pytest.skip("needs ip (iproute2)")
    name, options = anyio_backend if isinstance(anyio_backend, tuple) else (anyio_backend, {})
    proc = await anyio.run_process(
        ["unshare", "-n", sys.executable, "-c", _NETNS_SCRIPT, name, json.dumps(options)],
        check=False,
    )
    if proc.returncode != 0 and not proc.stdout:
        if b"unshare" in proc.stderr and b"Operation not permitted" in proc.stderr:
            pytest.skip("cannot create a network namespace here")
        pytest.fail(proc.stderr.decode(errors="replace")[-3000:])
    result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    assert result["is_connection_error"], result
    assert any(link.startswith(f"TimeoutError:{errno.ETIMEDOUT}") for link in result["error"]), (
        result
    )
    # idle 1 + 2 probes x 1 s = 3 s (3.07 s measured), with slack.
    assert 2.0 <= result["elapsed"] <= 3.0 + 3.0, result
    assert result["connected"] is False, result
    assert result["should_be_connected"] is True, result
    assert result["states"] == [True, False], result
    assert result["close_time"] <= 0.5 + slack(), result


@pytest.mark.parametrize("role", ROLES)
@deadline(TEST_TIMEOUT)
async def test_fin_then_rst(log: logging.Logger, role: str) -> None:
    """R2 (FIN followed at once by RST, 30 times): the peer half-closes and
    then resets. Whatever the library is doing when the reset lands (reading,
    half-closing, draining), it must see one disconnect (C=[T,F]) and close
    cleanly: no exception out of ``async with``, no leaked fd."""
    from .faultproxy import rst_close

    for _ in range(30):
        async with open_raw(role, log) as rp:
            await rp.raw.send(b"bye\r\n")
            await rp.raw.send_eof()
            await rst_close(rp.raw)
            await rp.cb.wait_count(2)
            assert rp.cb.states == [True, False]
