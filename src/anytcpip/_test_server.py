"""TestOneClientReadLoopServer: a ready-made read-loop server for unit tests."""

from __future__ import annotations

import collections
import logging
import sys

import anyio

from ._base import ConnectCallbackType
from ._constants import (
    DEFAULT_ENCODING,
    DEFAULT_LOCALHOST,
    DEFAULT_MAX_HEARTBEAT_INTERVAL,
    DEFAULT_TERMINATOR,
    HEARTBEAT,
)
from ._exceptions import IncompleteReadError
from ._options import ReadLoopServerOptions
from ._read_loop_server import OneClientReadLoopServer

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ("TestOneClientReadLoopServer",)


class TestOneClientReadLoopServer(OneClientReadLoopServer):
    """A :class:`OneClientReadLoopServer` for unit tests.

    Each string it reads (with :meth:`read_str`) is queued for
    :meth:`get_next_data`, except heartbeats, which go to
    :meth:`handle_received_heartbeat`. If the client closes in the middle of a
    message, an empty string is queued. Set :attr:`fail_next_read` to make the
    next read fail with :exc:`ConnectionError` (which closes the client).

    The arguments are those of :class:`OneClientReadLoopServer`.
    """

    __test__ = False  # not a pytest test class, despite its name

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
        super().__init__(
            port=port,
            host=host,
            log=log,
            connect_callback=connect_callback,
            name=name,
            encoding=encoding,
            terminator=terminator,
            run_heartbeat_monitor_task=run_heartbeat_monitor_task,
            max_heartbeat_interval=max_heartbeat_interval,
            **options,
        )
        #: Make the next read raise :exc:`ConnectionError` (then reset to False).
        self.fail_next_read = False
        self._data: collections.deque[str] = collections.deque()
        self._data_waiter: anyio.Event | None = None
        self._heartbeat = HEARTBEAT.decode()

    async def read_and_dispatch(self) -> None:
        """Read one string; queue it, or handle it as a heartbeat."""
        if self.fail_next_read:
            self.fail_next_read = False
            raise ConnectionError("mock connection error for unit tests")
        try:
            data = await self.read_str()
        except IncompleteReadError:
            data = ""
        if data == self._heartbeat:
            await self.handle_received_heartbeat()
            return
        self._data.append(data)
        waiter = self._data_waiter
        if waiter is not None:
            self._data_waiter = None
            waiter.set()

    async def get_next_data(self) -> str:
        """Return the oldest string read and not yet returned, waiting for one."""
        while not self._data:
            if self._data_waiter is None:
                self._data_waiter = anyio.Event()
            await self._data_waiter.wait()
        return self._data.popleft()
