"""ReconnectingClient: a :class:`Client` that stays one object across reconnects.

How it fits the task tree (see ``_lifecycle``): ``_open`` connects, retrying
with backoff, so ``start`` returns once the first connection is made (or the
give-up limits raise). ``_started_hook`` serves that connection as
:class:`Client` does and starts ``_keep_connected`` in the supervisor's task
group; that task waits until the connection is released (its disconnect
callback ran), then connects again through ``_open`` and serves the next one,
until :meth:`close`. The old connection finishes closing in its own task
meanwhile, bounded by ``linger``. Each connection has its own buffers, so
nothing read or written on one is seen on another.
"""

from __future__ import annotations

import ctypes
import logging
import math
import random
import sys
from typing import Any

import anyio
import anyio.abc

from ._backoff import backoff_ceiling, check_reconnect_arguments
from ._base import ConnectCallbackType
from ._client import Client
from ._connection import Connection
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_MONITOR_CONNECTION_INTERVAL,
    DEFAULT_TERMINATOR,
)
from ._disconnect import DisconnectKind
from ._options import ClientOptions
from ._serving import ConnectionTasks, current_owner

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ("ReconnectingClient",)


class ReconnectingClient(Client):
    """A TCP/IP client that reconnects, with backoff, after any loss it did not
    ask for, and stays the same object (with the same callbacks and tasks)
    until :meth:`close`.

    Start it as a :class:`Client`: ``async with ReconnectingClient(...) as
    client:`` or ``await task_group.start(client.run)``. Starting returns once
    the first connection is made (and its connect callback ran); while the
    server is not there yet, it retries with backoff meanwhile, bounded by the
    give-up limits and by the caller's own cancel scope. After the connection
    is lost (peer closed, reset, timed out, ``heartbeat_timeout``), it waits
    ``uniform(0, min(reconnect_delay_max, reconnect_delay *
    reconnect_delay_factor ** n))`` seconds before attempt ``n`` (``n`` counts
    from 0 after each loss; full jitter) and connects again, until
    :meth:`close` or a give-up limit.

    Every connection starts clean: what was received and not read, or written
    and not sent, on a lost connection is dropped with it (counted in
    :attr:`disconnect_reason` and its log line), never seen on the next one.
    ``connect_callback`` is called once per connect and once per disconnect,
    strictly alternating across reconnects; heartbeats
    (``run_heartbeat_send_task``) restart on every connection.

    Parameters
    ----------
    host, port, log, connect_callback, monitor_connection_interval, name, \
encoding, terminator, run_heartbeat_send_task, heartbeat_send_sleep, **options
        As for :class:`Client`.
    reconnect_delay : float, optional
        Keyword only. The ceiling of the first delay after a loss (seconds, > 0).
    reconnect_delay_factor : float, optional
        Keyword only. How much the ceiling grows per failed attempt (>= 1).
    reconnect_delay_max : float, optional
        Keyword only. The largest ceiling (seconds, >= ``reconnect_delay``).
        The backoff starts again from ``reconnect_delay`` once a connection
        has lasted this long (a server that accepts and at once closes is
        not hammered).
    max_attempts : int or None, optional
        Keyword only. Give up after this many consecutive failed attempts
        (None: never).
    give_up_after : float or None, optional
        Keyword only. Give up after this many seconds without a connection,
        counted from the start or the loss; it also cuts the backoff and
        attempts short (None: never).
    connect_timeout : float or None, optional
        Keyword only. The longest one attempt may take (seconds); a timed-out
        attempt counts as failed. None: no limit of ours.
    wait_for_connection : bool, optional
        Keyword only. If False (the default), reads and writes while
        disconnected raise :exc:`ConnectionError` at once. If True, they wait
        for the next connection (bound them with your own cancel scope); they
        raise :exc:`ConnectionError` once the client is closed.
    heartbeat_timeout : float or None, optional
        Keyword only. If set, a connection on which nothing at all was
        received for this many seconds is dropped with
        :attr:`DisconnectKind.HEARTBEAT_MISSED` and a reconnect follows
        (detected within a quarter of it more). Needs monitoring
        (``monitor_connection_interval > 0``). Unread data as large as
        ``limit`` counts as activity (receiving is paused then).
    rng : random.Random or None, optional
        Keyword only. The source of the jitter (seed one for reproducible
        delays); None: a new unseeded one.

    Raises
    ------
    TypeError
        For an argument of the wrong type (the message names it), and as for
        :class:`Client`.
    ValueError
        For an argument out of range (the message names it), for
        ``heartbeat_timeout`` without monitoring, and as for :class:`Client`.

    Notes
    -----
    Giving up (``max_attempts`` or ``give_up_after``) while starting raises
    :exc:`ConnectionError` from start, the last attempt's error chained.
    Giving up later logs an error and closes the client (``done_task`` done,
    :attr:`should_be_connected` False, ``run`` returns); :meth:`wait_connected`
    and waiting reads and writes then raise that error.

    :attr:`connected` is True while a connection is up;
    :attr:`should_be_connected` is True from start until :meth:`close` or
    giving up (the client wants to be connected: ``should_be_connected and
    not connected`` means it is reconnecting); :attr:`connection_count`
    counts the connections made.
    """

    # _keep_connected finds the first connection in _conn only once its serving
    # task has started: so it is served in a task, not in run()'s own.
    _serve_in_run_task = False

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
        *,
        reconnect_delay: float = 0.1,
        reconnect_delay_factor: float = 2.0,
        reconnect_delay_max: float = 10.0,
        max_attempts: int | None = None,
        give_up_after: float | None = None,
        connect_timeout: float | None = 10.0,
        wait_for_connection: bool = False,
        heartbeat_timeout: float | None = None,
        rng: random.Random | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(
            host,
            port,
            log,
            connect_callback=connect_callback,
            monitor_connection_interval=monitor_connection_interval,
            name=name,
            encoding=encoding,
            terminator=terminator,
            run_heartbeat_send_task=run_heartbeat_send_task,
            heartbeat_send_sleep=heartbeat_send_sleep,
            **options,
        )
        check_reconnect_arguments(
            reconnect_delay=reconnect_delay,
            reconnect_delay_factor=reconnect_delay_factor,
            reconnect_delay_max=reconnect_delay_max,
            max_attempts=max_attempts,
            give_up_after=give_up_after,
            connect_timeout=connect_timeout,
            wait_for_connection=wait_for_connection,
            heartbeat_timeout=heartbeat_timeout,
            monitor_connection_interval=monitor_connection_interval,
            rng=rng,
        )
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_factor = reconnect_delay_factor
        self.reconnect_delay_max = reconnect_delay_max
        self.max_attempts = max_attempts
        self.give_up_after = give_up_after
        self.connect_timeout = connect_timeout
        self.wait_for_connection = wait_for_connection
        self.heartbeat_timeout = heartbeat_timeout
        self._random = rng if rng is not None else random.Random()
        #: How many connections were made (the current one included).
        self.connection_count = 0
        # Backoff state: the next attempt's number since the last loss (or
        # since the backoff was last reset).
        self._attempt = 0
        self._connected_at = -math.inf
        self._last_failure: tuple[str, object] | None = None
        self._give_up_error: ConnectionError | None = None
        self._stopping = False
        self._changed = anyio.Event()

    # ------------------------------------------------------------- state

    def _signal(self) -> None:
        """Wake everything waiting for a change of connection state."""
        self._changed.set()
        self._changed = anyio.Event()

    def next_delay(self) -> float:
        """Draw the delay before the next attempt (seconds) and count it:
        ``uniform(0, backoff_ceiling(n, ...))`` for attempt ``n``."""
        ceiling = backoff_ceiling(
            self._attempt,
            self.reconnect_delay,
            self.reconnect_delay_factor,
            self.reconnect_delay_max,
        )
        self._attempt += 1
        return self._random.uniform(0, ceiling)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (at once if :attr:`connected`).

        Parameters
        ----------
        timeout : float or None, optional
            The longest wait (seconds); None: as long as it takes (bounded by
            the caller's cancel scope).

        Raises
        ------
        TimeoutError
            If not connected within ``timeout``.
        ConnectionError
            If the client is closed, or gave up, before connecting.
        """
        with anyio.fail_after(timeout):
            await self._wait_link()

    async def _link(self) -> None:
        if self.wait_for_connection and not self.connected:
            await self._wait_link()

    async def _wait_link(self) -> None:
        while not self.connected:
            if self._give_up_error is not None:
                raise ConnectionError(str(self._give_up_error)) from self._give_up_error
            if self._stopping or self.done_task.done():
                raise ConnectionError("not connected: the client is closed")
            await self._changed.wait()

    # --------------------------------------------------------- connecting

    async def _open(self) -> None:
        """Connect, retrying with backoff; raise ConnectionError on giving up."""
        self.should_be_connected = True
        first = self.connection_count == 0
        started = anyio.current_time()
        failures = 0
        host = f"{self.host if self.host is not None else 'localhost'}:{self.port}"
        # give_up_after bounds the backoff and the attempts too.
        deadline = math.inf if self.give_up_after is None else started + self.give_up_after
        last: OSError | None = None
        if not first:
            await self._backoff(deadline)
        while True:
            error: OSError | None = None
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())) as bound:
                try:
                    with anyio.fail_after(self.connect_timeout):
                        await super()._open()
                except OSError as exc:
                    error = exc
            if error is None and not bound.cancelled_caught:
                break
            if bound.cancelled_caught:
                # Cut short by give_up_after: the last attempt's error stands.
                error = last if last is not None else TimeoutError("no attempt finished")
            else:
                assert error is not None
                failures += 1
                self._note_failure(host, error)
                last = error
            limit = self._gave_up(failures, anyio.current_time() - started)
            if not limit:
                await self._backoff(deadline)
                limit = self._gave_up(failures, anyio.current_time() - started)
            if limit:
                gave_up = ConnectionError(
                    f"gave up connecting to {host} after {failures} failed "
                    f"attempts ({limit}): {error}"
                )
                self.log.error("%s", gave_up)
                raise gave_up from error
        self.connection_count += 1
        self._connected_at = anyio.current_time()
        self._last_failure = None
        if first and not failures:
            self.log.debug("connected to %s", host)
        else:
            self.log.info(
                "%s %s (connection %d) after %d failed attempts",
                "connected to" if first else "reconnected to",
                host,
                self.connection_count,
                failures,
            )

    async def _backoff(self, deadline: float) -> None:
        await anyio.sleep(max(0.0, min(self.next_delay(), deadline - anyio.current_time())))

    def _note_failure(self, host: str, exc: OSError) -> None:
        """Log a failed attempt once per change of reason."""
        key = (type(exc).__name__, exc.errno)
        if key == self._last_failure:
            self.log.debug("still cannot connect to %s: %r", host, exc)
            return
        self._last_failure = key
        self.log.warning("cannot connect to %s: %r; retrying with backoff", host, exc)

    def _gave_up(self, failures: int, elapsed: float) -> str:
        if self.max_attempts is not None and failures >= self.max_attempts:
            return f"max_attempts={self.max_attempts}"
        if self.give_up_after is not None and elapsed >= self.give_up_after:
            return f"give_up_after={self.give_up_after}"
        return ""

    async def _started_hook(self) -> None:
        await super()._started_hook()
        self._inner_group().start_soon(self._keep_connected)

    async def _keep_connected(self) -> None:
        # One of the client's own tasks: a close() from here does not wait.
        current_owner.set(self)
        while True:
            conn = self._conn
            if conn is not None:
                await conn.released.wait()
            if self._closing_down_requested():
                return
            if anyio.current_time() - self._connected_at >= self.reconnect_delay_max:
                self._attempt = 0
            try:
                # close() cancels this scope: a close during the backoff or
                # an attempt returns promptly.
                with anyio.CancelScope() as self._open_scope:
                    await self._open()
            except ConnectionError as exc:
                self._give_up_error = exc
                self.should_be_connected = False
                self._signal()
                await self.basic_close()
                return
            finally:
                self._open_scope = None
            if self._closing_down_requested():
                await self._release()
                return
            await super()._started_hook()

    # ----------------------------------------------------- per connection

    def _on_connected(self, tg: ConnectionTasks) -> None:
        super()._on_connected(tg)
        conn = self._conn
        if self.heartbeat_timeout is not None and conn is not None:
            tg.start_soon(self._watch_received, conn, self.heartbeat_timeout)
        self._signal()

    def _on_disconnected(self) -> None:
        conn = self._conn
        if conn is not None:
            # Counted in the disconnect reason; nobody reads it now.
            conn.unread_dropped = True
            conn.buffer.clear()
        self._signal()

    async def _watch_received(self, conn: Connection, timeout: float) -> None:
        """Drop ``conn`` if nothing is received on it for ``timeout`` seconds.

        No cost per message: it samples how much is buffered and how many
        reads returned something; either changes when something arrived.
        """
        buffer = conn.buffer
        last = (len(buffer), conn.reads)
        quiet_since = anyio.current_time()
        while conn.is_open:
            await anyio.sleep(timeout / 4)
            now_state = (len(buffer), conn.reads)
            now = anyio.current_time()
            if now_state != last or len(buffer) >= buffer.limit:
                last = now_state
                quiet_since = now
            elif now - quiet_since >= timeout:
                self.log.warning(
                    "nothing received from %s for %.3g s: dropping the connection",
                    conn.peer,
                    now - quiet_since,
                )
                conn.close_here(DisconnectKind.HEARTBEAT_MISSED)
                return

    async def _request_close(self) -> None:
        self._stopping = True
        self._signal()
        await super()._request_close()

    # Reads and writes first wait for a link (wait_for_connection) or fail.
    async def read(self, n: int = -1) -> bytes:
        await self._link()
        return await super().read(n)

    async def readexactly(self, n: int) -> bytes:
        await self._link()
        return await super().readexactly(n)

    async def readuntil(
        self, separator: bytes | bytearray | memoryview | tuple[bytes, ...] = b"\n"
    ) -> bytes:
        await self._link()
        return await super().readuntil(separator)

    async def readline(self) -> bytes:
        await self._link()
        return await super().readline()

    async def read_into(self, struct: ctypes.Structure) -> None:
        await self._link()
        await super().read_into(struct)

    async def read_str(self) -> str:
        await self._link()
        return await super().read_str()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._link()
        await super().write(data)

    async def write_from(self, *structs: ctypes.Structure) -> None:
        await self._link()
        await super().write_from(*structs)

    async def write_str(self, line: str) -> None:
        await self._link()
        await super().write_str(line)

    async def write_json(self, data: Any) -> None:
        await self._link()
        await super().write_json(data)
