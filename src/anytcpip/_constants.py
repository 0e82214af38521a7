"""Constants with the values lsst.ts.tcpip uses."""

from __future__ import annotations

__all__ = (
    "DEFAULT_ENCODING",
    "DEFAULT_LIMIT",
    "DEFAULT_LINGER",
    "DEFAULT_LOCALHOST",
    "DEFAULT_MAX_HEARTBEAT_INTERVAL",
    "DEFAULT_MONITOR_CONNECTION_INTERVAL",
    "DEFAULT_TERMINATOR",
    "HEARTBEAT",
    "KEEPALIVE_INTERVAL",
    "KEEPALIVE_PROBES",
    "KEEPALIVE_TIME",
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "LOCAL_HOST",
    "TERMINATOR",
)

#: Default encoding for ``read_str`` / ``write_str`` / ``read_json`` / ``write_json``.
DEFAULT_ENCODING = "utf-8"

#: Default terminator for ``read_str`` / ``write_str`` / ``read_json`` / ``write_json``.
DEFAULT_TERMINATOR = b"\r\n"

#: Default ``monitor_connection_interval`` (seconds). Any positive value turns on
#: continuous monitoring; anytcpip does not poll, so the value is not a period.
DEFAULT_MONITOR_CONNECTION_INTERVAL = 0.1

#: IPv4 loopback address.
LOCALHOST_IPV4 = "127.0.0.1"

#: IPv6 loopback address.
LOCALHOST_IPV6 = "::1"

#: Default host for servers that only serve this machine.
DEFAULT_LOCALHOST = LOCALHOST_IPV4

#: The message a heartbeat sender writes (followed by the terminator).
HEARTBEAT = b"heartbeat"

#: Default ``max_heartbeat_interval`` (seconds) of a heartbeat monitor.
DEFAULT_MAX_HEARTBEAT_INTERVAL = 10.0

#: TCP keepalive: idle time before the first probe (seconds).
KEEPALIVE_TIME = 60

#: TCP keepalive: number of unanswered probes before the connection is dropped.
KEEPALIVE_PROBES = 4

#: TCP keepalive: time between probes (seconds).
KEEPALIVE_INTERVAL = 15

#: Default read limit (bytes) for ``readuntil``, ``readline``, ``read_str`` and
#: ``read_json``; the same default as :mod:`asyncio` streams.
DEFAULT_LIMIT = 2**16

#: Default bound (seconds) on how long ``close()`` waits for the peer to take
#: what was written and to finish its side, before closing regardless.
DEFAULT_LINGER = 2.0

# Deprecated aliases, kept for code written against lsst.ts.tcpip.

#: Deprecated alias of :data:`DEFAULT_LOCALHOST`.
LOCAL_HOST = DEFAULT_LOCALHOST

#: Deprecated alias of :data:`DEFAULT_TERMINATOR`.
TERMINATOR = DEFAULT_TERMINATOR
