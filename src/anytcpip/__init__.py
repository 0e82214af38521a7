"""anytcpip: lsst.ts.tcpip's clients and one-client servers on anyio.

The same code runs on asyncio (also with uvloop) and on trio, and every
background task lives in a task group that the object owns.
"""

from typing import TYPE_CHECKING, Any

from ._background import run_in_background as run_in_background
from ._background import start_in_background as start_in_background
from ._base import BaseClientOrServer as BaseClientOrServer
from ._base import ConnectCallbackType as ConnectCallbackType
from ._client import Client as Client
from ._constants import DEFAULT_ENCODING as DEFAULT_ENCODING
from ._constants import DEFAULT_LIMIT as DEFAULT_LIMIT
from ._constants import DEFAULT_LINGER as DEFAULT_LINGER
from ._constants import DEFAULT_LOCALHOST as DEFAULT_LOCALHOST
from ._constants import DEFAULT_MAX_HEARTBEAT_INTERVAL as DEFAULT_MAX_HEARTBEAT_INTERVAL
from ._constants import (
    DEFAULT_MONITOR_CONNECTION_INTERVAL as DEFAULT_MONITOR_CONNECTION_INTERVAL,
)
from ._constants import DEFAULT_TERMINATOR as DEFAULT_TERMINATOR
from ._constants import HEARTBEAT as HEARTBEAT
from ._constants import KEEPALIVE_INTERVAL as KEEPALIVE_INTERVAL
from ._constants import KEEPALIVE_PROBES as KEEPALIVE_PROBES
from ._constants import KEEPALIVE_TIME as KEEPALIVE_TIME
from ._constants import LOCAL_HOST as LOCAL_HOST
from ._constants import LOCALHOST_IPV4 as LOCALHOST_IPV4
from ._constants import LOCALHOST_IPV6 as LOCALHOST_IPV6
from ._constants import TERMINATOR as TERMINATOR
from ._disconnect import DisconnectKind as DisconnectKind
from ._disconnect import DisconnectReason as DisconnectReason
from ._exceptions import IncompleteReadError as IncompleteReadError
from ._exceptions import LimitOverrunError as LimitOverrunError
from ._one_client_server import OneClientServer as OneClientServer
from ._oneshot import OneShot as OneShot
from ._read_loop_server import OneClientReadLoopServer as OneClientReadLoopServer
from ._reconnect import ReconnectingClient as ReconnectingClient
from ._streams import close_stream as close_stream
from ._streams import read_into as read_into
from ._streams import write_from as write_from
from ._test_server import TestOneClientReadLoopServer as TestOneClientReadLoopServer

if TYPE_CHECKING:
    from .testing import BaseOneClientServerTestCase as BaseOneClientServerTestCase

__version__ = "0.1.0"

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
    "BaseClientOrServer",
    "BaseOneClientServerTestCase",
    "Client",
    "ConnectCallbackType",
    "DisconnectKind",
    "DisconnectReason",
    "IncompleteReadError",
    "LimitOverrunError",
    "OneClientReadLoopServer",
    "OneClientServer",
    "OneShot",
    "ReconnectingClient",
    "TestOneClientReadLoopServer",
    "close_stream",
    "read_into",
    "run_in_background",
    "start_in_background",
    "write_from",
)


def __getattr__(name: str) -> Any:
    # BaseOneClientServerTestCase needs pytest, which is not a runtime
    # dependency: import it only when asked for.
    if name == "BaseOneClientServerTestCase":
        from .testing import BaseOneClientServerTestCase

        return BaseOneClientServerTestCase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
