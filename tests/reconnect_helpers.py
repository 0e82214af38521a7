"""Helpers of the reconnecting-client tests: a listener that opens and shuts
on one port, a log watcher, and a client factory with a fast backoff."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

import anytcpip

__all__ = ("Door", "LogWatcher", "fast_client", "free_port", "listening")


class Door:
    """A listener on 127.0.0.1 (see :func:`listening`); every accepted
    stream comes out of :meth:`accept`, and is closed when the door shuts."""

    def __init__(self, listener: anyio.abc.SocketListener) -> None:
        self.listener = listener
        self.port = int(listener.extra(SocketAttribute.local_port))
        self.streams: list[anyio.abc.SocketStream] = []
        send, receive = anyio.create_memory_object_stream[anyio.abc.SocketStream](100)
        self._send = send
        self._receive = receive

    async def accept(self) -> anyio.abc.SocketStream:
        """The next accepted stream (the door closes it on exit)."""
        return await self._receive.receive()

    async def _accept_loop(self) -> None:
        while True:
            stream = await self.listener.accept()
            self.streams.append(stream)
            self._send.send_nowait(stream)


@asynccontextmanager
async def listening(port: int = 0) -> AsyncIterator[Door]:
    """Listen on 127.0.0.1:``port`` until the block ends; then stop listening
    and close (FIN) every accepted stream still open."""
    multi = await anyio.create_tcp_listener(local_host=anytcpip.LOCALHOST_IPV4, local_port=port)
    listener = cast(anyio.abc.SocketListener, multi.listeners[0])
    door = Door(listener)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(door._accept_loop)
            try:
                yield door
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(listener)
            for stream in door.streams:
                await anyio.aclose_forcefully(stream)
            door._send.close()
            door._receive.close()


async def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (just released)."""
    async with listening() as door:
        return door.port


class LogWatcher(logging.Handler):
    """Collects the records of a logger (and its children) and lets a test
    wait for one whose message contains some text."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logger
        self.records: list[logging.LogRecord] = []
        self._changed: anyio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def __enter__(self) -> LogWatcher:
        self._level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)

    def messages(self, text: str, level: int | None = None) -> list[str]:
        """Every message containing ``text`` (at ``level``, if given)."""
        return [
            r.getMessage()
            for r in self.records
            if text in r.getMessage() and (level is None or r.levelno == level)
        ]

    async def wait_for(self, text: str, count: int = 1) -> None:
        """Wait until ``count`` messages contain ``text``."""
        while len(self.messages(text)) < count:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()


def fast_client(log: logging.Logger, port: int, **kwargs: Any) -> anytcpip.ReconnectingClient:
    """A ReconnectingClient of 127.0.0.1:``port`` with a backoff of
    milliseconds and seeded jitter (override any argument)."""
    kwargs.setdefault("reconnect_delay", 0.005)
    kwargs.setdefault("reconnect_delay_max", 0.02)
    kwargs.setdefault("rng", random.Random(1234))
    return anytcpip.ReconnectingClient(anytcpip.LOCALHOST_IPV4, port, log, **kwargs)
