"""The intersphinx inventories the documentation links to, made at build time.

A documentation build has no internet (or only package registries), and no
package ships the Python, anyio, trio or pytest ``objects.inv``. So the names
these pages refer to are listed here with their real addresses, and
:func:`write_inventories` writes them as Sphinx inventory files for
``intersphinx_mapping``: the links work offline and point at the real pages.

Add a name here when a page or a docstring starts referring to a new one
(``sphinx-build -n`` reports it as "reference target not found").
"""

from __future__ import annotations

import zlib
from pathlib import Path

#: project -> (base address, {name: (role, address relative to the base)}).
#: An address ending in ``#`` gets the name appended (Sphinx's own anchors).
INVENTORIES: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "python": (
        "https://docs.python.org/3/",
        {
            "abc.ABC": ("class", "library/abc.html#"),
            "enum.Enum": ("class", "library/enum.html#"),
            "asyncio": ("module", "library/asyncio.html#module-asyncio"),
            "asyncio.Future": ("class", "library/asyncio-future.html#"),
            "asyncio.IncompleteReadError": ("exception", "library/asyncio-exceptions.html#"),
            "asyncio.LimitOverrunError": ("exception", "library/asyncio-exceptions.html#"),
            "asyncio.exceptions.IncompleteReadError": (
                "exception",
                "library/asyncio-exceptions.html#asyncio.IncompleteReadError",
            ),
            "asyncio.exceptions.LimitOverrunError": (
                "exception",
                "library/asyncio-exceptions.html#asyncio.LimitOverrunError",
            ),
            "asyncio.StreamReader": ("class", "library/asyncio-stream.html#"),
            "asyncio.StreamReader.readline": ("method", "library/asyncio-stream.html#"),
            "asyncio.StreamReader.readuntil": ("method", "library/asyncio-stream.html#"),
            "asyncio.StreamReader.readexactly": ("method", "library/asyncio-stream.html#"),
            "asyncio.StreamWriter": ("class", "library/asyncio-stream.html#"),
            "asyncio.create_task": ("function", "library/asyncio-task.html#"),
            "asyncio.wait_for": ("function", "library/asyncio-task.html#"),
            "asyncio.run": ("function", "library/asyncio-runner.html#"),
            "asyncio.TimeoutError": ("exception", "library/asyncio-exceptions.html#"),
            "asyncio.wait": ("function", "library/asyncio-task.html#"),
            "asyncio.Future.add_done_callback": ("method", "library/asyncio-future.html#"),
            "collections.abc.Sequence": ("class", "library/collections.abc.html#"),
            "unittest.case.TestCase": (
                "class",
                "library/unittest.html#unittest.TestCase",
            ),
            "unittest.IsolatedAsyncioTestCase.enterAsyncContext": (
                "method",
                "library/unittest.html#",
            ),
            "asyncio.open_connection": ("function", "library/asyncio-stream.html#"),
            "asyncio.start_server": ("function", "library/asyncio-stream.html#"),
            "unittest.TestCase": ("class", "library/unittest.html#"),
            "unittest.IsolatedAsyncioTestCase": ("class", "library/unittest.html#"),
            "collections.abc.AsyncIterator": ("class", "library/collections.abc.html#"),
            "collections.abc.Awaitable": ("class", "library/collections.abc.html#"),
            "collections.abc.Callable": ("class", "library/collections.abc.html#"),
            "collections.abc.Iterable": ("class", "library/collections.abc.html#"),
            "contextlib.AbstractAsyncContextManager": ("class", "library/contextlib.html#"),
            "ctypes.Structure": ("class", "library/ctypes.html#"),
            "json": ("module", "library/json.html#module-json"),
            "json.JSONDecodeError": ("exception", "library/json.html#"),
            "logging.Logger": ("class", "library/logging.html#"),
            "ssl.SSLContext": ("class", "library/ssl.html#"),
            "random.Random": ("class", "library/random.html#"),
            "typing.Any": ("data", "library/typing.html#"),
            "BaseException": ("exception", "library/exceptions.html#"),
            "ConnectionError": ("exception", "library/exceptions.html#"),
            "ConnectionResetError": ("exception", "library/exceptions.html#"),
            "EOFError": ("exception", "library/exceptions.html#"),
            "Exception": ("exception", "library/exceptions.html#"),
            "ImportError": ("exception", "library/exceptions.html#"),
            "OSError": ("exception", "library/exceptions.html#"),
            "RuntimeError": ("exception", "library/exceptions.html#"),
            "TimeoutError": ("exception", "library/exceptions.html#"),
            "TypeError": ("exception", "library/exceptions.html#"),
            "UnicodeDecodeError": ("exception", "library/exceptions.html#"),
            "ValueError": ("exception", "library/exceptions.html#"),
            "None": ("data", "library/constants.html#"),
            "True": ("data", "library/constants.html#"),
            "False": ("data", "library/constants.html#"),
            "bool": ("class", "library/functions.html#"),
            "bytearray": ("class", "library/stdtypes.html#"),
            "bytes": ("class", "library/stdtypes.html#"),
            "dict": ("class", "library/stdtypes.html#"),
            "float": ("class", "library/functions.html#"),
            "int": ("class", "library/functions.html#"),
            "list": ("class", "library/stdtypes.html#"),
            "memoryview": ("class", "library/stdtypes.html#"),
            "object": ("class", "library/functions.html#"),
            "str": ("class", "library/stdtypes.html#"),
            "tuple": ("class", "library/stdtypes.html#"),
            "type": ("class", "library/functions.html#"),
        },
    ),
    "anyio": (
        "https://anyio.readthedocs.io/en/stable/",
        {
            "anyio.BrokenResourceError": ("exception", "api.html#"),
            "anyio.CancelScope": ("class", "api.html#"),
            "anyio.ClosedResourceError": ("exception", "api.html#"),
            "anyio.EndOfStream": ("exception", "api.html#"),
            "anyio.Event": ("class", "api.html#"),
            "anyio.IncompleteRead": ("exception", "api.html#"),
            "anyio.connect_tcp": ("function", "api.html#"),
            "anyio.current_time": ("function", "api.html#"),
            "anyio.create_task_group": ("function", "api.html#"),
            "anyio.create_tcp_listener": ("function", "api.html#"),
            "anyio.fail_after": ("function", "api.html#"),
            "anyio.move_on_after": ("function", "api.html#"),
            "anyio.run": ("function", "api.html#"),
            "anyio.abc.AsyncResource": ("class", "api.html#"),
            "anyio.abc.ByteReceiveStream": ("class", "api.html#"),
            "anyio.abc.ByteSendStream": ("class", "api.html#"),
            "anyio.abc.ByteStream": ("class", "api.html#"),
            "anyio.abc.SocketStream": ("class", "api.html#"),
            "anyio.abc.TaskGroup": ("class", "api.html#"),
            "anyio.abc.TaskStatus": ("class", "api.html#"),
            "anyio.streams.buffered.BufferedByteReceiveStream": ("class", "api.html#"),
            "anyio.streams.tls.TLSStream": ("class", "api.html#"),
        },
    ),
    "trio": (
        "https://trio.readthedocs.io/en/stable/",
        {
            "trio.run": ("function", "reference-core.html#"),
            "trio.Nursery": ("class", "reference-core.html#"),
        },
    ),
    "pytest": (
        "https://docs.pytest.org/en/stable/",
        {
            "pytest.FixtureRequest": ("class", "reference/reference.html#"),
            "_pytest.fixtures.FixtureRequest": (
                "class",
                "reference/reference.html#pytest.FixtureRequest",
            ),
            "pytest.fixture": ("function", "reference/reference.html#"),
            "pytest.mark.parametrize": ("function", "reference/reference.html#"),
            "pytest.param": ("function", "reference/reference.html#"),
        },
    ),
}


def _inventory_bytes(project: str, names: dict[str, tuple[str, str]]) -> bytes:
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    lines = []
    for name, (role, address) in sorted(names.items()):
        if address.endswith("#"):
            address += "$"  # Sphinx's shorthand for "#" + name
        lines.append(f"{name} py:{role} 1 {address} -\n")
    return header + zlib.compress("".join(lines).encode())


def write_inventories(directory: Path) -> dict[str, tuple[str, str]]:
    """Write one ``<project>.inv`` per project into ``directory``; return the
    ``intersphinx_mapping`` that uses them."""
    directory.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for project, (base, names) in INVENTORIES.items():
        path = directory / f"{project}.inv"
        data = _inventory_bytes(project, names)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        mapping[project] = (base, str(path))
    return mapping
