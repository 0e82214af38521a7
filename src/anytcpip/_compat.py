"""Guards for code written against lsst.ts.tcpip: methods it overrides that
anytcpip never calls, and attributes it reads that anytcpip does not have;
both fail saying what to use instead."""

from __future__ import annotations

from typing import Any

__all__ = ("NOT_CALLED", "CompatAttribute", "reject_uncalled_overrides")

#: ts_tcpip override points that anytcpip does not call, with what to do
#: instead; a subclass that defines one is rejected when it is defined.
NOT_CALLED = {
    "start": (
        "anytcpip never calls start(): objects are started by `async with obj:` or "
        "`await task_group.start(obj.run)`. Put what followed `await super().start()` "
        "in a connect_callback (it runs once connected), and start tasks there with "
        "self.start_connection_soon(...) (they end with the connection) or "
        "self.start_soon(...) (they end with close())"
    ),
    "monitor_received_heartbeats": (
        "the heartbeat monitor is built in (run_heartbeat_monitor_task=True, "
        "max_heartbeat_interval); override handle_received_heartbeat() to see heartbeats"
    ),
    "_monitor_connection": (
        "connection monitoring is built in (monitor_connection_interval); watch "
        "connection changes with a connect_callback"
    ),
    "_set_reader_writer": (
        "there are no asyncio streams; use a connect_callback to act on a new connection"
    ),
    "_close_client": "override close_client() (a server) or close() instead",
    "_send_heartbeat": "the heartbeat sender is built in (run_heartbeat_send_task=True)",
}


class CompatAttribute:
    """A ts_tcpip attribute that anytcpip does not have: reading it raises
    AttributeError saying what to use instead, unless the instance set its
    own value (a subclass may use the name for something of its own)."""

    def __init__(self, name: str, instead: str) -> None:
        self._name = name
        self._instead = instead

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return vars(obj)[self._name]
        except KeyError:
            raise AttributeError(
                f"{type(obj).__name__} has no {self._name} (a ts_tcpip attribute): {self._instead}"
            ) from None

    def __set__(self, obj: object, value: Any) -> None:
        vars(obj)[self._name] = value


def reject_uncalled_overrides(cls: type) -> None:
    """Raise if ``cls`` (outside anytcpip) defines one of :data:`NOT_CALLED`.

    Raises
    ------
    TypeError
        Saying what to use instead.
    """
    for name, instead in NOT_CALLED.items():
        if name in vars(cls) and not cls.__module__.startswith("anytcpip."):
            raise TypeError(f"{cls.__qualname__} defines {name}(), which {instead}")
