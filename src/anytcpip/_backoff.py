"""The reconnecting client's backoff and argument checks (sans-IO)."""

from __future__ import annotations

import math
import random
from typing import Any

__all__ = ("backoff_ceiling", "check_reconnect_arguments")


def backoff_ceiling(attempt: int, initial: float, factor: float, maximum: float) -> float:
    """The most a reconnecting client waits before attempt ``attempt`` (0 for
    the first after a loss): ``min(maximum, initial * factor ** attempt)``,
    without overflowing. The delay is drawn uniformly from 0 to this (full
    jitter)."""
    try:
        ceiling = initial * factor**attempt
    except OverflowError:
        return maximum
    return min(maximum, ceiling)


def _number(name: str, value: Any, *, positive: bool, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        raise TypeError(f"{name}={value!r} must be a number" + (" or None" if optional else ""))
    if positive and not value > 0:
        raise ValueError(f"{name}={value!r} must be > 0")
    if not positive and value < 0:
        raise ValueError(f"{name}={value!r} must be >= 0")


def check_reconnect_arguments(
    *,
    reconnect_delay: Any,
    reconnect_delay_factor: Any,
    reconnect_delay_max: Any,
    max_attempts: Any,
    give_up_after: Any,
    connect_timeout: Any,
    wait_for_connection: Any,
    heartbeat_timeout: Any,
    monitor_connection_interval: float,
    rng: Any,
) -> None:
    """Check the arguments of :class:`~anytcpip.ReconnectingClient`.

    Raises
    ------
    TypeError
        For an argument of the wrong type (the message names it).
    ValueError
        For an argument out of range (the message names it).
    """
    _number("reconnect_delay", reconnect_delay, positive=True)
    _number("reconnect_delay_factor", reconnect_delay_factor, positive=True)
    if reconnect_delay_factor < 1:
        raise ValueError(f"reconnect_delay_factor={reconnect_delay_factor!r} must be >= 1")
    _number("reconnect_delay_max", reconnect_delay_max, positive=True)
    if reconnect_delay_max < reconnect_delay:
        raise ValueError(
            f"reconnect_delay_max={reconnect_delay_max!r} must be >= "
            f"reconnect_delay={reconnect_delay!r}"
        )
    if max_attempts is not None:
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool):
            raise TypeError(f"max_attempts={max_attempts!r} must be an int or None")
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts!r} must be >= 1")
    _number("give_up_after", give_up_after, positive=True, optional=True)
    _number("connect_timeout", connect_timeout, positive=True, optional=True)
    if not isinstance(wait_for_connection, bool):
        raise TypeError(f"wait_for_connection={wait_for_connection!r} must be a bool")
    _number("heartbeat_timeout", heartbeat_timeout, positive=True, optional=True)
    if heartbeat_timeout is not None and not monitor_connection_interval > 0:
        raise ValueError(
            f"heartbeat_timeout={heartbeat_timeout!r} needs monitoring: "
            "monitor_connection_interval must be > 0"
        )
    if rng is not None and not isinstance(rng, random.Random):
        raise TypeError(f"rng={rng!r} must be a random.Random or None")
