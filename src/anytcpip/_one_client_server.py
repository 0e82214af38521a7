"""OneClientServer: a TCP/IP server that serves one client at a time."""

from __future__ import annotations

import logging
import ssl
import sys
from functools import partial
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from ._base import BaseClientOrServer, ConnectCallbackType
from ._connection import PROBE_TIME, Connection
from ._constants import DEFAULT_ENCODING, DEFAULT_MONITOR_CONNECTION_INTERVAL, DEFAULT_TERMINATOR
from ._disconnect import DisconnectKind
from ._exceptions import accept_error_kind
from ._oneshot import OneShot
from ._options import ServerOptions, server_options
from ._serving import ConnectionTasks
from ._sockets import listen_tcp
from ._transport import configure_socket, open_connection, pause_before_tls

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ("OneClientServer",)

#: Pause after an accept() failure before trying again (seconds).
ACCEPT_RETRY_DELAY = 0.1

#: The longest a TLS handshake with a new client may take (seconds).
TLS_HANDSHAKE_TIMEOUT = 10.0


class OneClientServer(BaseClientOrServer):
    """A TCP/IP server that serves one client at a time.

    A client that connects while another is connected is accepted and closed at
    once (and logged); the connected client is not affected (unless
    ``second_client`` says otherwise, see below). When the client
    leaves, the next one is served, even one that connects before the server
    noticed the first one leave. Nothing from one client's connection is ever
    seen by the next.

    ``async with OneClientServer(...) as server:`` starts listening before the
    body runs and closes on exit; ``await task_group.start(server.run)`` starts
    it in your task group until :meth:`close`.

    Parameters
    ----------
    host : str or None
        The address to listen on. ``None`` listens on every interface, IPv4 and
        IPv6 where present. Use :data:`LOCALHOST_IPV4` or :data:`LOCALHOST_IPV6`
        to serve only this machine.
    port : int or None
        The port; 0 or None picks a free port, which :attr:`port` then shows
        (every bound socket shares it).
    log : logging.Logger
        Logger.
    connect_callback, monitor_connection_interval, name, encoding, terminator
        See :class:`BaseClientOrServer`.
    **options
        Keyword only: ``limit``, ``linger``, ``oversize``,
        ``read_terminator`` and ``write_terminator`` (see
        :class:`BaseClientOrServer`); ``ssl_context`` (an
        :class:`ssl.SSLContext` for TLS) and ``tls_standard_compatible``;
        ``family``, ``backlog`` and ``reuse_port``, for
        :func:`anyio.create_tcp_listener`. ts_tcpip's
        :func:`asyncio.start_server` spellings are mapped: ``ssl`` to
        ``ssl_context``, ``reuse_address=True`` is what anyio always does
        (``False`` is rejected). ``second_client``: what a client that
        connects while another is served gets: ``"reject"`` (the default, as
        above), ``"replace"`` (the served client is closed at this end, its
        :attr:`disconnect_reason` is ``REPLACED``, its disconnect callback runs,
        then the new one is served), or ``"replace_if_silent"`` (replace only
        if the served client sent nothing for ``silent_time`` seconds, else
        reject). Nothing else is accepted.

    Raises
    ------
    TypeError
        If ``connect_callback`` is synchronous; for an unknown keyword (the
        message names the likely intended one), an asyncio argument that
        anyio has no equivalent for, or an option of the wrong type.
    ValueError
        For a bad ``port``, ``terminator`` or ``encoding``,
        ``reuse_address=False``, a ``second_client`` that is not one of the
        three choices, ``silent_time`` missing or not positive with
        ``"replace_if_silent"``, or given with another policy.

    Attributes
    ----------
    host : str or None
        The ``host`` argument.
    port : int
        The bound port once listening (0 before).
    bound_addresses : list[tuple[str, int]]
        Every bound ``(host, port)``.
    connected_task : OneShot
        Done once a client is connected; replaced by a fresh one when that
        client goes away.
    second_client : str
        The ``second_client`` option ("reject" unless given).
    silent_time : float
        The ``silent_time`` option (0.0 unless ``second_client`` is
        "replace_if_silent").
    """

    # Slots, as in BaseClientOrServer.
    __slots__ = (
        "_accept_lock",
        "_accept_scope",
        "_latest",
        "_listen_kwargs",
        "_listeners",
        "_requested_port",
        "_ssl_context",
        "_tls_standard_compatible",
        "bound_addresses",
        "connected_task",
        "host",
        "port",
        "second_client",
        "silent_time",
    )

    def __init__(
        self,
        host: str | None,
        port: int | None,
        log: logging.Logger,
        connect_callback: ConnectCallbackType | None = None,
        monitor_connection_interval: float = DEFAULT_MONITOR_CONNECTION_INTERVAL,
        name: str = "",
        encoding: str = DEFAULT_ENCODING,
        terminator: bytes = DEFAULT_TERMINATOR,
        **options: Unpack[ServerOptions],
    ) -> None:
        own, listen_kwargs = server_options(type(self), dict(options))
        ssl_context = own.pop("ssl_context", None)
        tls_standard_compatible = own.pop("tls_standard_compatible", True)
        second_client = own.pop("second_client")
        silent_time = own.pop("silent_time")
        super().__init__(
            log=log,
            connect_callback=connect_callback,
            monitor_connection_interval=monitor_connection_interval,
            name=name,
            encoding=encoding,
            terminator=terminator,
            **own,
        )
        if port is not None and (not isinstance(port, int) or not 0 <= port < 65536):
            raise ValueError(f"port={port!r} must be an int in 0..65535, or None")
        self.second_client: str = second_client
        self.silent_time: float = silent_time
        self._ssl_context: ssl.SSLContext | None = ssl_context
        self._tls_standard_compatible = bool(tls_standard_compatible)
        self.host = host
        self._requested_port = port or 0
        self.port = 0
        self.bound_addresses: list[tuple[str, int]] = []
        self.connected_task = OneShot("connected_task", self._started_probe, self.log)
        self._listen_kwargs: dict[str, Any] = listen_kwargs
        self._listeners: list[anyio.abc.SocketListener] = []
        # One decision at a time about a new client, whichever listener
        # (IPv4, IPv6) accepted it: two cannot both replace the same one.
        self._accept_lock = anyio.Lock()
        # The connection accepted most recently (it may still wait for the one
        # before it to finish closing); accept decisions look at it.
        self._latest: Connection | None = None
        # The accept loop that run()'s own task does (the first listener's):
        # a requested close cancels it.
        self._accept_scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.host}:{self.port}>"

    async def _open(self) -> None:
        self._listeners = await listen_tcp(self.host, self._requested_port, self._listen_kwargs)
        addresses = [listener.extra(SocketAttribute.local_address) for listener in self._listeners]
        self.bound_addresses = [(str(a[0]), int(a[1])) for a in addresses]
        self.port = self.bound_addresses[0][1]
        self.log.info("listening on %s", self.bound_addresses)

    async def _started_hook(self) -> None:
        inner = self._inner_group()
        first, *others = self._listeners
        for listener in others:
            inner.start_soon(self._accept_loop, listener)
        if not self._take_inline(partial(self._accept_here, first)):
            inner.start_soon(self._accept_loop, first)

    async def _accept_here(
        self, listener: anyio.abc.SocketListener, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """The accept loop, in run()'s own task (no task of its own), until a
        close is requested."""
        with anyio.CancelScope() as self._accept_scope:
            task_status.started()
            if not self._closing_down():
                await self._accept_loop(listener)
        self._accept_scope = None

    def _on_close_requested(self) -> None:
        if self._accept_scope is not None:
            self._accept_scope.cancel()

    async def _release(self) -> None:
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            await anyio.aclose_forcefully(listener)

    async def _teardown(self) -> None:
        await self._release()
        # The connection being served, and one accepted after it that waits
        # for it to finish closing.
        for conn in (self._conn, self._latest):
            if conn is not None:
                conn.close_here()
        for conn in (self._conn, self._latest):
            if conn is not None:
                await conn.done.wait()

    async def _accept_loop(self, listener: anyio.abc.SocketListener) -> None:
        while True:
            try:
                stream = await listener.accept()
            except Exception as exc:
                # The policy of trio's serve_listeners: pause on capacity
                # errors, skip what one connection can cause, raise the rest.
                kind = accept_error_kind(exc)
                if kind == "closed" or self._closing_down():
                    return
                if kind == "bug":
                    raise
                if kind == "harmless":
                    self.log.debug("accept failed: %r; ignored", exc)
                    continue
                self.log.error("accept failed: %s; retrying in %s s", exc, ACCEPT_RETRY_DELAY)
                await anyio.sleep(ACCEPT_RETRY_DELAY)
                continue
            try:
                async with self._accept_lock:
                    await self._new_client(stream)
            except BaseException:
                # Cancelled (a requested close) before it was handed over
                # (the last thing _new_client does): nobody serves it.
                await anyio.aclose_forcefully(stream)
                raise

    def _closing_down(self) -> bool:
        return self._close_requested is not None and self._close_requested.is_set()

    async def _new_client(self, stream: anyio.abc.SocketStream) -> None:
        try:
            peer = stream.extra(SocketAttribute.remote_address)
        except (OSError, ValueError, AttributeError, anyio.TypedAttributeLookupError):
            # The peer reset the connection already: anyio omits the
            # attribute (uvloop fails to make its pseudo-socket). It is
            # served like any other and fails at once.
            peer = "?"
        latest = self._latest
        if latest is not None and not latest.done.is_set():
            if latest.stream is not None:
                await latest.probe()
            else:
                # A TLS connection has no stream until its handshake is done.
                # A handshake the peer already broke off fails in a moment;
                # one still going on counts as open.
                with anyio.move_on_after(PROBE_TIME):
                    await latest.lost.wait()
            if latest.is_open:
                if not self._replaces(latest, peer):
                    await anyio.aclose_forcefully(stream)
                    return
                # Served in its place, once its disconnect callback ran.
                latest.close_here(DisconnectKind.REPLACED)
        if self._closing_down():
            await anyio.aclose_forcefully(stream)
            return
        configure_socket(stream)
        tls = self._ssl_context is not None
        if tls:
            # What the peer sends before anybody reads stays in the kernel.
            pause_before_tls(stream)
        conn = open_connection(
            None if tls else stream,
            limit=self.limit,
            monitor=self.monitor_connection_interval > 0,
            log=self.log,
        )
        conn.peer = str(peer)
        if self.second_client == "replace_if_silent":
            conn.track_received = True
            conn.last_received = anyio.current_time()
        self._latest = conn
        self.log.info("client connected from %s", peer)
        assert self._inner is not None
        # Handed over: nothing that can raise comes after this.
        self._inner.start_soon(self._serve_connection, conn, stream if tls else None, latest)

    def _replaces(self, latest: Connection, peer: object) -> bool:
        """Whether a new client from ``peer`` replaces ``latest`` (still open),
        as :attr:`second_client` says; logs the decision."""
        policy = self.second_client
        if policy == "replace_if_silent":
            silence = anyio.current_time() - latest.last_received
            if silence < self.silent_time:
                self.log.warning(
                    "rejecting a connection from %s: the client served sent data %.3g s ago "
                    "(silent_time=%s)",
                    peer,
                    silence,
                    self.silent_time,
                )
                return False
        elif policy != "replace":
            self.log.warning("rejecting a connection from %s: already serving a client", peer)
            return False
        self.log.info("a new client from %s replaces %s (%s)", peer, latest.peer, policy)
        return True

    async def _wrap_stream(self, stream: anyio.abc.ByteStream) -> anyio.abc.ByteStream:
        assert self._ssl_context is not None
        with anyio.fail_after(TLS_HANDSHAKE_TIMEOUT):
            return await TLSStream.wrap(
                stream,
                server_side=True,
                ssl_context=self._ssl_context,
                standard_compatible=self._tls_standard_compatible,
            )

    def _on_connected(self, tg: ConnectionTasks) -> None:
        self.connected_task.set()

    def _on_disconnected(self) -> None:
        self.connected_task = OneShot("connected_task", self._started_probe, self.log)

    async def basic_close_client(self) -> None:
        """Close the connected client, if any, without touching
        :attr:`should_be_connected`; keep listening.

        Resets :attr:`connected_task` and calls the connect callback if a client
        was connected. Called from outside, it returns once the connection is
        closed at this end, its tasks have ended and the callback has run: the
        next client can be served at once, while what was written to the old
        one is still delivered in the background (its half-close and drain,
        bounded by ``linger``). From the server's own callback or read loop it
        starts the close and returns. Always safe to call."""
        conn = self._latest
        if conn is None:
            return
        conn.close_here()
        if not self._inside():
            with anyio.CancelScope(shield=True):
                await conn.released.wait()

    async def close_client(self) -> None:
        """Close the connected client, if any, clear :attr:`should_be_connected`,
        and keep listening. See :meth:`basic_close_client`."""
        self.should_be_connected = False
        await self.basic_close_client()

    async def close(self) -> None:
        """Close the client, if any, and every listener, and set ``done_task``.

        Called from outside, it returns once every task of the server has
        finished and the last callback has run; from the server's own callback
        or read loop it starts the close and returns. Bounded in time. Safe to
        call at any time, from any task, any number of times.

        As in ts_tcpip it calls :meth:`close_client` first, so cleanup that a
        subclass puts in an override of either runs; leaving ``async with`` or
        the end of :meth:`run` call :meth:`close` if nobody did."""
        self.should_be_connected = False
        self._close_called = True
        await self.close_client()
        await self._request_close()
