"""The public names of anytcpip."""

from __future__ import annotations

import importlib
import inspect
import typing

import anytcpip


def test_all_is_a_sorted_unique_tuple() -> None:
    names = anytcpip.__all__
    assert isinstance(names, tuple)
    assert len(set(names)) == len(names)
    # Sorted the way isort/ruff sort them: constants (upper case) first.
    constants = [n for n in names if n.isupper()]
    others = [n for n in names if not n.isupper()]
    assert list(names) == constants + others
    assert constants == sorted(constants)
    assert others == sorted(others, key=lambda n: (n[0].islower(), n))


def test_every_name_is_importable() -> None:
    module = importlib.import_module("anytcpip")
    for name in anytcpip.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, object] = {}
        exec(f"from anytcpip import {name}", namespace)
        assert namespace[name] is getattr(anytcpip, name), name


def test_public_classes_and_functions_have_docstrings() -> None:
    missing: list[str] = []
    for name in anytcpip.__all__:
        obj = getattr(anytcpip, name)
        if name.isupper() or typing.get_origin(obj) is not None:
            # Constants and type aliases (documented in api.rst).
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not callable(member):
                    continue
                if not inspect.getdoc(member):
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_no_private_names_exported() -> None:
    assert not [n for n in anytcpip.__all__ if n.startswith("_")]


def test_spec_names_present() -> None:
    required = {
        "BaseClientOrServer",
        "Client",
        "DEFAULT_ENCODING",
        "DEFAULT_LOCALHOST",
        "DEFAULT_MAX_HEARTBEAT_INTERVAL",
        "DEFAULT_MONITOR_CONNECTION_INTERVAL",
        "DEFAULT_TERMINATOR",
        "HEARTBEAT",
        "IncompleteReadError",
        "KEEPALIVE_INTERVAL",
        "KEEPALIVE_PROBES",
        "KEEPALIVE_TIME",
        "LOCALHOST_IPV4",
        "LOCALHOST_IPV6",
        "LOCAL_HOST",
        "LimitOverrunError",
        "OneClientServer",
        "TERMINATOR",
        "close_stream",
        "read_into",
        "write_from",
        # For ts_tcpip code moving over (issue 11).
        "ConnectCallbackType",
        "run_in_background",
        "start_in_background",
    }
    assert required <= set(anytcpip.__all__)


def test_constant_values() -> None:
    assert anytcpip.DEFAULT_ENCODING == "utf-8"
    assert anytcpip.DEFAULT_TERMINATOR == b"\r\n"
    assert anytcpip.DEFAULT_MONITOR_CONNECTION_INTERVAL == 0.1
    assert anytcpip.DEFAULT_LOCALHOST == anytcpip.LOCALHOST_IPV4 == "127.0.0.1"
    assert anytcpip.LOCALHOST_IPV6 == "::1"
    assert anytcpip.HEARTBEAT == b"heartbeat"
    assert anytcpip.DEFAULT_MAX_HEARTBEAT_INTERVAL == 10.0
    assert (
        anytcpip.KEEPALIVE_TIME,
        anytcpip.KEEPALIVE_PROBES,
        anytcpip.KEEPALIVE_INTERVAL,
    ) == (60, 4, 15)
    assert anytcpip.LOCAL_HOST == anytcpip.DEFAULT_LOCALHOST
    assert anytcpip.TERMINATOR == anytcpip.DEFAULT_TERMINATOR


def test_exception_hierarchy() -> None:
    import asyncio

    assert issubclass(anytcpip.IncompleteReadError, asyncio.IncompleteReadError)
    assert issubclass(anytcpip.LimitOverrunError, asyncio.LimitOverrunError)
    assert issubclass(anytcpip.LimitOverrunError, ValueError)
    err = anytcpip.IncompleteReadError(b"ab", 5)
    assert (err.partial, err.expected) == (b"ab", 5)


def test_connect_callback_type_is_the_callback_signature() -> None:
    # ts_tcpip users annotate their callbacks with it.
    assert typing.get_origin(anytcpip.ConnectCallbackType) is not None
    args = typing.get_args(anytcpip.ConnectCallbackType)
    assert args[0] == [typing.Any]
