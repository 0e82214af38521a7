"""The keyword options of the constructors: checked, and mapped to anyio.

The constructors take these as ``**options`` typed with the TypedDicts below,
so a type checker sees every name, and :func:`client_options` /
:func:`server_options` reject at once (in the constructor) a misspelt name, a
value of the wrong type, or an asyncio argument that has no anyio
equivalent, with a message that says what to do instead.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

__all__ = (
    "SECOND_CLIENT_POLICIES",
    "ClientOptions",
    "ReadLoopServerOptions",
    "ServerOptions",
    "check_base_arguments",
)

#: The choices of a one-client server's ``second_client`` option.
SECOND_CLIENT_POLICIES = ("reject", "replace", "replace_if_silent")


class _CommonOptions(TypedDict, total=False):
    limit: int
    linger: float
    oversize: Literal["raise", "discard", "close"]
    read_terminator: bytes | tuple[bytes, ...]
    write_terminator: bytes


class ClientOptions(_CommonOptions, total=False):
    """Keyword options of :class:`~anytcpip.Client` beyond its named
    parameters (see its docstring)."""

    tls: bool
    ssl_context: ssl.SSLContext | None
    tls_hostname: str | None
    tls_standard_compatible: bool
    local_host: str | None
    happy_eyeballs_delay: float
    # asyncio.open_connection's spellings, as ts_tcpip users pass them.
    ssl: ssl.SSLContext | bool | None
    server_hostname: str | None


class ServerOptions(_CommonOptions, total=False):
    """Keyword options of :class:`~anytcpip.OneClientServer` beyond its
    named parameters (see its docstring)."""

    ssl_context: ssl.SSLContext | None
    tls_standard_compatible: bool
    family: socket.AddressFamily | int
    backlog: int
    reuse_port: bool
    second_client: Literal["reject", "replace", "replace_if_silent"]
    silent_time: float
    # asyncio.start_server's spellings, as ts_tcpip users pass them.
    ssl: ssl.SSLContext | None
    reuse_address: bool | None


class ReadLoopServerOptions(ServerOptions, total=False):
    """Keyword options of :class:`~anytcpip.OneClientReadLoopServer` beyond
    its named parameters."""

    monitor_connection_interval: float


#: asyncio arguments that anyio has no equivalent for, and what to do instead.
_ASYNCIO_ONLY = {
    "family": "anyio.connect_tcp has no family argument: pass an IPv4 or IPv6 "
    "address (such as LOCALHOST_IPV4 or LOCALHOST_IPV6) as host instead",
    "flags": "not supported by anyio; leave it out",
    "proto": "not supported by anyio; leave it out",
    "sock": "anytcpip opens its own sockets; pass host and port instead",
    "local_addr": "use local_host= (anyio picks the local port)",
    "ssl_handshake_timeout": "anytcpip bounds the TLS handshake itself; leave it out",
    "ssl_shutdown_timeout": "the close is bounded by linger=; leave it out",
    "start_serving": "a server listens once started (async with / run); leave it out",
    "keep_alive": "anytcpip always turns TCP keepalive on; leave it out",
    "all_errors": "not supported by anyio; leave it out",
    "interleave": "use happy_eyeballs_delay= (Client)",
    "loop": "anytcpip runs on the current event loop; leave it out",
}


def _reject(cls: type, name: str, allowed: Mapping[str, object]) -> TypeError:
    cls_name = cls.__name__
    if name in _ASYNCIO_ONLY and name not in allowed:
        return TypeError(f"{cls_name}() does not take {name}=: {_ASYNCIO_ONLY[name]}")
    candidates = set(allowed)
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is not None:
            candidates.update(inspect.signature(init).parameters)
    candidates -= {"self", "options", "kwargs"}
    close = difflib.get_close_matches(name, sorted(candidates), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return TypeError(f"{cls_name}() got an unexpected keyword argument {name!r}{hint}")


def _check_type(cls_name: str, name: str, value: Any, types: Any, what: str) -> None:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        raise TypeError(f"{cls_name}(): {name}={value!r} must be {what}")


def _tuple(types: Any) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_NUMBER = (int, float)
_OPT_STR = (str, type(None))
_OPT_CTX = (ssl.SSLContext, type(None))


def _common(cls_name: str, options: dict[str, Any]) -> dict[str, Any]:
    own: dict[str, Any] = {}
    if "limit" in options:
        _check_type(cls_name, "limit", options["limit"], int, "an int")
        own["limit"] = options.pop("limit")
    if "linger" in options:
        _check_type(cls_name, "linger", options["linger"], _NUMBER, "a number")
        own["linger"] = options.pop("linger")
    # Checked by BaseClientOrServer (and by its setters, the same way).
    for name in ("oversize", "read_terminator", "write_terminator"):
        if name in options:
            own[name] = options.pop(name)
    return own


def client_options(cls: type, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a Client's options; return (for BaseClientOrServer, for
    anyio.connect_tcp).

    Raises
    ------
    TypeError
        For an unknown name (with the likely intended one), an asyncio-only
        one (with what to do instead), or a value of the wrong type.
    ValueError
        For contradictory TLS arguments.
    """
    cls_name = cls.__name__
    for name in options:
        if name not in ClientOptions.__annotations__:
            raise _reject(cls, name, ClientOptions.__annotations__)
    options = dict(options)
    own = _common(cls_name, options)
    checks = {
        "tls": (bool, "True or False"),
        "ssl_context": (_OPT_CTX, "an ssl.SSLContext or None"),
        "tls_hostname": (_OPT_STR, "a str or None"),
        "tls_standard_compatible": (bool, "True or False"),
        "local_host": (_OPT_STR, "a str or None"),
        "happy_eyeballs_delay": (_NUMBER, "a number"),
        "ssl": ((ssl.SSLContext, bool, type(None)), "an ssl.SSLContext, a bool or None"),
        "server_hostname": (_OPT_STR, "a str or None"),
    }
    for name, (types, what) in checks.items():
        if name in options:
            _check_type(cls_name, name, options[name], types, what)
    # asyncio.open_connection spellings -> anyio.connect_tcp.
    if "ssl" in options:
        value = options.pop("ssl")
        if "tls" in options or "ssl_context" in options:
            raise ValueError(f"{cls_name}(): give ssl= or tls=/ssl_context=, not both")
        if isinstance(value, ssl.SSLContext):
            options["ssl_context"] = value
            options["tls"] = True
        elif value:
            options["tls"] = True
    if "server_hostname" in options:
        value = options.pop("server_hostname")
        if "tls_hostname" in options:
            raise ValueError(f"{cls_name}(): give server_hostname= or tls_hostname=, not both")
        options["tls_hostname"] = value
    if options.get("ssl_context") is not None:
        options.setdefault("tls", True)
    return own, options


def server_options(cls: type, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a server's options; return (for BaseClientOrServer and TLS, for
    anyio.create_tcp_listener).

    Raises
    ------
    TypeError
        As for :func:`client_options`.
    ValueError
        For ``reuse_address=False`` (anyio always sets SO_REUSEADDR), both
        ``ssl`` and ``ssl_context``, or a bad ``second_client`` /
        ``silent_time`` (see :func:`_second_client`).
    """
    cls_name = cls.__name__
    allowed = ServerOptions.__annotations__
    for name in options:
        if name not in allowed:
            raise _reject(cls, name, allowed)
    options = dict(options)
    own = _common(cls_name, options)
    checks = {
        "ssl_context": (_OPT_CTX, "an ssl.SSLContext or None"),
        "ssl": (_OPT_CTX, "an ssl.SSLContext or None"),
        "tls_standard_compatible": (bool, "True or False"),
        "family": (int, "a socket.AddressFamily"),
        "backlog": (int, "an int"),
        "reuse_port": (bool, "True or False"),
        "reuse_address": ((bool, type(None)), "True, False or None"),
    }
    for name, (types, what) in checks.items():
        if name in options:
            _check_type(cls_name, name, options[name], types, what)
    if "ssl" in options:
        value = options.pop("ssl")
        if "ssl_context" in options:
            raise ValueError(f"{cls_name}(): give ssl= or ssl_context=, not both")
        options["ssl_context"] = value
    if "reuse_address" in options and options.pop("reuse_address") is False:
        raise ValueError(
            f"{cls_name}(): reuse_address=False is not supported: anyio always sets "
            "SO_REUSEADDR on a listening socket (as asyncio does by default on Unix)"
        )
    for name in ("ssl_context", "tls_standard_compatible"):
        if name in options:
            own[name] = options.pop(name)
    own["second_client"], own["silent_time"] = _second_client(
        cls_name, options.pop("second_client", "reject"), options.pop("silent_time", None)
    )
    return own, options


def _second_client(cls_name: str, policy: Any, silent_time: Any) -> tuple[str, float]:
    """Check ``second_client`` and ``silent_time``; return them (silent_time
    0.0 unless the policy is ``replace_if_silent``)."""
    if policy not in SECOND_CLIENT_POLICIES:
        choices = ", ".join(repr(choice) for choice in SECOND_CLIENT_POLICIES)
        raise ValueError(f"{cls_name}(): second_client={policy!r} must be one of {choices}")
    if policy != "replace_if_silent":
        if silent_time is not None:
            raise ValueError(
                f"{cls_name}(): silent_time= applies only to second_client='replace_if_silent'"
            )
        return policy, 0.0
    if silent_time is None:
        raise ValueError(f"{cls_name}(): second_client='replace_if_silent' needs silent_time=")
    _check_type(cls_name, "silent_time", silent_time, _NUMBER, "a number (seconds)")
    if not silent_time > 0:
        raise ValueError(f"{cls_name}(): silent_time={silent_time!r} must be > 0")
    return policy, float(silent_time)


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


def check_base_arguments(
    connect_callback: Any, log: Any, monitor_connection_interval: Any, limit: Any, linger: Any
) -> None:
    """Check the arguments every client and server takes.

    Raises
    ------
    TypeError
        If ``connect_callback`` is not None or an async callable, ``log`` is
        not a logger, or ``monitor_connection_interval`` is not a number.
    ValueError
        If ``limit`` is not a positive int or ``linger`` is negative.
    """
    if connect_callback is not None and not _is_async_callable(connect_callback):
        raise TypeError(f"connect_callback={connect_callback!r} must be an async function")
    if not isinstance(log, logging.Logger):
        raise TypeError(f"log={log!r} must be a logging.Logger")
    if not isinstance(monitor_connection_interval, int | float) or isinstance(
        monitor_connection_interval, bool
    ):
        raise TypeError(
            f"monitor_connection_interval={monitor_connection_interval!r} must be a number"
        )
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit={limit!r} must be a positive int")
    if not linger >= 0:
        raise ValueError(f"linger={linger!r} must be >= 0")
