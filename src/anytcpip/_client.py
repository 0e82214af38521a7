"""Client: a TCP/IP client with an optional heartbeat sender."""

from __future__ import annotations

import logging
import sys
from functools import partial
from typing import Any, ClassVar

import anyio
import anyio.abc

from ._base import BaseClientOrServer, ConnectCallbackType
from ._compat import CompatAttribute
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_MONITOR_CONNECTION_INTERVAL,
    DEFAULT_TERMINATOR,
    HEARTBEAT,
)
from ._options import ClientOptions, client_options
from ._serving import ConnectionTasks
from ._sockets import connect_tcp
from ._transport import configure_socket, open_connection

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]
    from typing_extensions import Unpack

__all__ = ("Client",)


def _refused(exc: OSError) -> OSError:
    """anyio reports several failed attempts as one OSError; if every attempt
    was refused, say so with ConnectionRefusedError."""
    if isinstance(exc, ConnectionRefusedError):
        return exc
    cause = exc.__cause__
    causes = list(cause.exceptions) if isinstance(cause, BaseExceptionGroup) else [cause]
    if causes and all(isinstance(e, ConnectionRefusedError) for e in causes):
        first = causes[0]
        assert isinstance(first, ConnectionRefusedError)
        new = ConnectionRefusedError(first.errno, f"{first.strerror} ({exc})")
        new.__cause__ = exc
        return new
    return exc


class Client(BaseClientOrServer):
    """A TCP/IP client.

    ``async with Client(host, port, log) as client:`` connects before the body
    runs and closes on exit; ``await task_group.start(client.run)`` connects and
    keeps the client running in your task group until :meth:`close`. A client
    connects once: make a new one to reconnect, or use
    :class:`~anytcpip.ReconnectingClient`, which stays one object across reconnects.

    Parameters
    ----------
    host : str or None
        The server's host name or IP address. ``""`` makes a placeholder that is
        already closed: ``start_task`` and ``done_task`` are done and
        :attr:`connected` is False.
    port : int or None
        The server's port.
    log : logging.Logger
        Logger.
    connect_callback, monitor_connection_interval, name, encoding, terminator
        See :class:`BaseClientOrServer`.
    run_heartbeat_send_task : bool, optional
        Write ``HEARTBEAT + terminator`` on connecting and then every
        ``heartbeat_send_sleep`` seconds while connected.
    heartbeat_send_sleep : float, optional
        Seconds between heartbeats.
    **options
        Keyword only: ``limit``, ``linger``, ``oversize``,
        ``read_terminator`` and ``write_terminator`` (see
        :class:`BaseClientOrServer`); ``tls``, ``ssl_context``,
        ``tls_hostname``, ``tls_standard_compatible``, ``local_host`` and
        ``happy_eyeballs_delay``, for :func:`anyio.connect_tcp`. ts_tcpip's
        :func:`asyncio.open_connection` spellings ``ssl`` (an
        :class:`ssl.SSLContext`, or True for the default context) and
        ``server_hostname`` are mapped to those. Nothing else is accepted.

    Raises
    ------
    TypeError
        If ``connect_callback`` is synchronous; for an unknown keyword (the
        message names the likely intended one), an asyncio argument that anyio
        has no equivalent for (the message says what to do instead), or an
        option of the wrong type.
    ValueError
        For a bad ``terminator``, ``encoding``, ``port`` or
        ``heartbeat_send_sleep``.
    """

    # Slots, as in BaseClientOrServer.
    __slots__ = (
        "_connect_kwargs",
        "_stream",
        "heartbeat_send_sleep",
        "host",
        "port",
        "run_heartbeat_send_task",
    )

    #: Whether run()'s own task may serve the connection (see _take_inline).
    _serve_in_run_task: ClassVar[bool] = True
    _receive_in_serving_task: ClassVar[bool] = True

    heartbeat_send_task = CompatAttribute(
        "heartbeat_send_task",
        "the heartbeat sender runs in the client's task group while connected "
        "(run_heartbeat_send_task=True) and stops by itself; close() stops it",
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
        run_heartbeat_send_task: bool = False,
        heartbeat_send_sleep: float = 1.0,
        **options: Unpack[ClientOptions],
    ) -> None:
        own, connect_kwargs = client_options(type(self), dict(options))
        super().__init__(
            log=log,
            connect_callback=connect_callback,
            monitor_connection_interval=monitor_connection_interval,
            name=name,
            encoding=encoding,
            terminator=terminator,
            **own,
        )
        if host != "" and (port is None or not isinstance(port, int) or not 0 < port < 65536):
            raise ValueError(f"port={port!r} must be an int in 1..65535")
        if not isinstance(heartbeat_send_sleep, int | float) or isinstance(
            heartbeat_send_sleep, bool
        ):
            raise TypeError(f"heartbeat_send_sleep={heartbeat_send_sleep!r} must be a number")
        if run_heartbeat_send_task and not heartbeat_send_sleep > 0:
            raise ValueError(f"heartbeat_send_sleep={heartbeat_send_sleep!r} must be > 0")
        #: The server's host, as given.
        self.host = host
        #: The server's port, as given.
        self.port = port
        self.run_heartbeat_send_task = run_heartbeat_send_task
        self.heartbeat_send_sleep = heartbeat_send_sleep
        self._connect_kwargs: dict[str, Any] = connect_kwargs
        self._stream: anyio.abc.ByteStream | None = None
        if host == "":
            self.start_task.set()
            self.done_task.set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.host}:{self.port}>"

    async def _open(self) -> None:
        host = self.host if self.host is not None else "localhost"
        assert self.port is not None
        try:
            stream = await connect_tcp(host, self.port, self._connect_kwargs)
        except OSError as exc:
            error = _refused(exc)
            if error is exc:
                raise
            raise error from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            # A TLS handshake that the server broke off.
            raise ConnectionError(f"could not connect to {host}:{self.port}: {exc!r}") from exc
        configure_socket(stream)
        self._stream = stream

    async def _started_hook(self) -> None:
        stream, self._stream = self._stream, None
        assert stream is not None
        conn = open_connection(
            stream, limit=self.limit, monitor=self.monitor_connection_interval > 0, log=self.log
        )
        conn.peer = f"{self.host}:{self.port}"
        if self._serve_in_run_task and self._take_inline(
            partial(self._serve_connection, conn, None, None)
        ):
            # run()'s own task serves it, with no task of its own.
            return
        try:
            await self._inner_group().start(self._serve_connection, conn, None, None)
        except BaseException:
            # Cancelled (or failed) before the connection task took over.
            await conn.finish_close(anyio.current_time())
            raise

    async def _release(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await anyio.aclose_forcefully(stream)

    async def _teardown(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.close_here()
            await conn.done.wait()

    def _on_connected(self, tg: ConnectionTasks) -> None:
        if self.run_heartbeat_send_task:
            tg.start_soon(self._send_heartbeats)

    async def _send_heartbeats(self) -> None:
        try:
            while True:
                # A message like any other: it ends with the current terminator.
                await self.write(HEARTBEAT + self.terminator)
                await anyio.sleep(self.heartbeat_send_sleep)
        except ConnectionError:
            pass

    async def basic_close(self) -> None:
        """Close the connection and set ``done_task`` done, without clearing
        :attr:`should_be_connected` (so it shows the close was not asked for).

        Safe to call at any time, from any task, any number of times."""
        self.log.debug("closing")
        await self._request_close()

    async def close(self) -> None:
        """Close the connection, clear :attr:`should_be_connected` and set
        ``done_task`` done.

        Called from outside, it returns once every task of the client has
        finished and the last callback has run; called from the client's own
        callback, it starts the close and returns. Bounded in time: at most
        ``linger`` seconds are spent letting the server take what was written.
        Safe to call at any time, from any task, any number of times.
        """
        self.should_be_connected = False
        self._close_called = True
        await self.basic_close()
