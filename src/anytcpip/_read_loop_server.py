"""OneClientReadLoopServer: a one-client server that reads in a loop, with an
optional heartbeat monitor."""

from __future__ import annotations

import abc
import logging
import sys
from typing import Any

import anyio
import anyio.abc

from ._base import ConnectCallbackType
from ._compat import CompatAttribute
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_LOCALHOST,
    DEFAULT_MAX_HEARTBEAT_INTERVAL,
    DEFAULT_MONITOR_CONNECTION_INTERVAL,
    DEFAULT_TERMINATOR,
)
from ._disconnect import DisconnectKind
from ._one_client_server import OneClientServer
from ._options import ReadLoopServerOptions
from ._serving import ConnectionTasks

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ("OneClientReadLoopServer",)


class OneClientReadLoopServer(OneClientServer):
    """A :class:`OneClientServer` that calls :meth:`read_and_dispatch` in a loop
    while a client is connected.

    Subclass it and define ``async def read_and_dispatch(self)`` to read one
    message (with :meth:`read_str`, :meth:`read_json`, :meth:`read_into`...)
    and act on it: this is how mock controllers are written. As in ts_tcpip,
    a subclass may also override :meth:`read_loop` (to greet each client, say)
    and call ``await super().read_loop()`` from it.

    The loop runs in the server's task group, one loop per client. If
    :meth:`read_and_dispatch` raises (anything but cancellation) while the
    client is still connected, the error is logged, the client is closed with
    :meth:`close_client`, and the server keeps listening for the next client.
    If it raises because the client went away (a :exc:`ConnectionError` or
    :exc:`IncompleteReadError` after the peer closed), the loop just ends.
    :meth:`close` and :meth:`close_client` may be called from inside
    :meth:`read_and_dispatch`.

    Parameters
    ----------
    port : int or None
        The port; 0 picks a free one (see :attr:`port`).
    host : str or None, optional
        The address to listen on; :data:`DEFAULT_LOCALHOST` by default.
    log : logging.Logger
        Logger.
    connect_callback, name, encoding, terminator
        See :class:`BaseClientOrServer`.
    run_heartbeat_monitor_task : bool, optional
        Close the client if it sends no heartbeat for ``max_heartbeat_interval``
        seconds (counted from connecting, then from the last heartbeat; each
        new client starts a fresh count). :meth:`read_and_dispatch` must call
        :meth:`handle_received_heartbeat` for each heartbeat it reads.
    max_heartbeat_interval : float, optional
        See ``run_heartbeat_monitor_task`` (seconds).
    **options
        As for :class:`OneClientServer` (``limit``, ``linger``,
        ``oversize``, ``read_terminator``, ``write_terminator``,
        ``ssl_context``, and the listener options), and
        ``monitor_connection_interval``.

    Raises
    ------
    TypeError
        As for :class:`OneClientServer`.
    ValueError
        If ``max_heartbeat_interval`` is not positive (or as for
        :class:`OneClientServer`).
    """

    read_loop_task = CompatAttribute(
        "read_loop_task",
        "the read loop runs in the server's task group, one per client, and ends "
        "when the client goes; stop it with close_client(), or override read_loop()",
    )
    monitor_heartbeats_task = CompatAttribute(
        "monitor_heartbeats_task",
        "the heartbeat monitor runs in the server's task group while a client is "
        "connected (run_heartbeat_monitor_task=True) and ends with the client",
    )
    heartbeat_received_tai = CompatAttribute(
        "heartbeat_received_tai",
        "override handle_received_heartbeat() (and call super) to record when heartbeats arrive",
    )

    def __init__(
        self,
        *,
        port: int | None,
        host: str | None = DEFAULT_LOCALHOST,
        log: logging.Logger,
        connect_callback: ConnectCallbackType | None = None,
        name: str = "",
        encoding: str = DEFAULT_ENCODING,
        terminator: bytes = DEFAULT_TERMINATOR,
        run_heartbeat_monitor_task: bool = False,
        max_heartbeat_interval: float = DEFAULT_MAX_HEARTBEAT_INTERVAL,
        **options: Unpack[ReadLoopServerOptions],
    ) -> None:
        if not isinstance(max_heartbeat_interval, int | float) or isinstance(
            max_heartbeat_interval, bool
        ):
            raise TypeError(f"max_heartbeat_interval={max_heartbeat_interval!r} must be a number")
        if not max_heartbeat_interval > 0:
            raise ValueError(f"max_heartbeat_interval={max_heartbeat_interval!r} must be > 0")
        kwargs: dict[str, Any] = dict(options)
        monitor = kwargs.pop("monitor_connection_interval", DEFAULT_MONITOR_CONNECTION_INTERVAL)
        super().__init__(
            host=host,
            port=port,
            log=log,
            connect_callback=connect_callback,
            monitor_connection_interval=monitor,
            name=name,
            encoding=encoding,
            terminator=terminator,
            **kwargs,
        )
        #: Whether the heartbeat monitor runs for each client.
        self.run_heartbeat_monitor_task = run_heartbeat_monitor_task
        #: Longest allowed silence between heartbeats (seconds).
        self.max_heartbeat_interval = max_heartbeat_interval
        self._heartbeat_deadline = float("inf")

    @abc.abstractmethod
    async def read_and_dispatch(self) -> None:
        """Read one message and act on it (subclasses define this)."""
        raise NotImplementedError

    async def handle_received_heartbeat(self) -> None:
        """Record that a heartbeat arrived: the silence count starts again.

        Raises
        ------
        RuntimeError
            If the heartbeat monitor is off (``run_heartbeat_monitor_task``
            False). Raised from :meth:`read_and_dispatch`, that closes the
            client, as lsst.ts.tcpip does.
        """
        if not self.run_heartbeat_monitor_task:
            raise RuntimeError("received a heartbeat, but run_heartbeat_monitor_task is False")
        self._heartbeat_deadline = anyio.current_time() + self.max_heartbeat_interval

    def _on_connected(self, tg: ConnectionTasks) -> None:
        super()._on_connected(tg)
        if self.run_heartbeat_monitor_task:
            self._heartbeat_deadline = anyio.current_time() + self.max_heartbeat_interval
            tg.start_soon(self._guarded, self._monitor_heartbeats, (), "heartbeat monitor")
        tg.start_soon(self._guarded, self.read_loop, (), "read_loop")

    async def read_loop(self) -> None:
        """Call :meth:`read_and_dispatch` in a loop while the client is
        connected (started for each client; cancelled when it goes).

        If :meth:`read_and_dispatch` raises, log the error with its traceback
        and close the client with :meth:`close_client`; a `ConnectionError`
        or `EOFError` (`~anytcpip.IncompleteReadError`) once the client has
        gone only ends the loop. A subclass
        may override this and call ``await super().read_loop()``.
        """
        conn = self._conn
        try:
            # After the client's end-of-stream, go on while writes are still
            # allowed: what it sent before it half-closed gets its replies.
            while conn is not None and conn.writable:
                await self.read_and_dispatch()
        except Exception as exc:
            # Only a connection error or an end-of-stream (IncompleteReadError
            # is an EOFError) on a connection that is no longer open means the
            # client went away; anything else is a bug in the handler, logged
            # whatever the state of the connection.
            if (conn is None or not conn.is_open) and isinstance(exc, ConnectionError | EOFError):
                self.log.debug("read loop ended: the client went away (%r)", exc)
                if conn is not None:
                    conn.input_exhausted()
                return
            self.log.exception("read_and_dispatch failed; closing the client")
            if conn is not None:
                conn.close_here(DisconnectKind.FAILED, exc)
            if conn is None or conn is self._latest:
                # (Not once replaced: close_client would close the new client.)
                await self.close_client()

    async def _monitor_heartbeats(self) -> None:
        # Sleep until the deadline; a heartbeat moves the deadline, so wake and
        # sleep again for what is left. No polling.
        while True:
            remaining = self._heartbeat_deadline - anyio.current_time()
            if remaining <= 0:
                break
            await anyio.sleep(remaining)
        conn = self._conn
        if conn is not None and conn is not self._latest:
            # Its client was replaced (or left and the next one came) while
            # its disconnect callback ran: close_client would close the next.
            return
        self.log.warning(
            "no heartbeat from the client for %s s; closing it", self.max_heartbeat_interval
        )
        if conn is not None:
            conn.close_here(DisconnectKind.HEARTBEAT_MISSED)
        await self.close_client()

    async def close_client(self, cancel_read_loop_task: bool = True) -> None:
        """Close the connected client, if any, clear :attr:`should_be_connected`,
        and keep listening (see :meth:`OneClientServer.basic_close_client`).

        Parameters
        ----------
        cancel_read_loop_task : bool, optional
            Accepted for ts_tcpip compatibility, and ignored: the client's read
            loop always ends with its connection.
        """
        await super().close_client()
