"""The one table of event-loop backends anytcpip runs on.

Everything that lists backends reads it: the command line (``--backend``,
``demo``), :mod:`anytcpip.testing` (``available_backends``,
``ALL_BACKENDS``), the pytest plugin, the test suite's ``conftest.py`` and
the benchmarks. A backend added here is added everywhere.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ("BACKENDS", "Backend", "available", "find", "get")


@dataclass(frozen=True)
class Backend:
    """One way of running anyio: the library and its ``anyio.run`` options."""

    #: The label and pytest id, e.g. ``"asyncio+uvloop"``.
    name: str
    #: The command line's ``--backend`` value, e.g. ``"uvloop"``.
    cli_name: str
    #: The anyio backend: ``"asyncio"`` or ``"trio"``.
    library: str
    #: ``backend_options`` for :func:`anyio.run`.
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The module that must import for the backend to be usable (None: always).
    module: str | None = None
    #: The pip extra of anytcpip that installs it (None: nothing to install).
    extra: str | None = None
    #: Platforms (``sys.platform`` values) where it cannot run at all.
    unsupported: tuple[str, ...] = ()

    @property
    def supported(self) -> bool:
        """Whether the backend can run on this platform at all."""
        return sys.platform not in self.unsupported

    @property
    def installed(self) -> bool:
        """Whether the backend can run here (supported and importable)."""
        if not self.supported:
            return False
        if self.module is None:
            return True
        try:
            importlib.import_module(self.module)
        except ImportError:
            return False
        return True

    def run_options(self, *, debug: bool = False) -> dict[str, Any]:
        """A fresh copy of :attr:`options`, with asyncio's debug mode if ``debug``."""
        options = dict(self.options)
        if debug and self.library == "asyncio":
            options["debug"] = True
        return options

    def anyio_backend(self, *, debug: bool = False) -> tuple[str, dict[str, Any]]:
        """The ``(backend, options)`` value of anyio's ``anyio_backend`` fixture."""
        return self.library, self.run_options(debug=debug)

    def install_hint(self) -> str:
        """How to install the backend, for error messages."""
        if not self.supported:
            return f"{self.name} does not run on {sys.platform}"
        return f"pip install 'anytcpip[{self.extra}]'" if self.extra else ""

    def matches(self, library: str, options: Mapping[str, Any]) -> bool:
        """Whether ``anyio.run(backend=library, backend_options=options)`` runs this
        backend (options other than the table's, such as ``debug``, are ignored)."""
        if library != self.library:
            return False
        keys = {key for backend in BACKENDS for key in backend.options}
        return all(bool(options.get(key)) == bool(self.options.get(key)) for key in keys)


#: Every backend, in the order they are listed and tested.
BACKENDS: tuple[Backend, ...] = (
    Backend("asyncio", "asyncio", "asyncio"),
    Backend(
        "asyncio+uvloop",
        "uvloop",
        "asyncio",
        {"use_uvloop": True},
        module="uvloop",
        extra="uvloop",
        unsupported=("win32",),
    ),
    Backend("trio", "trio", "trio", module="trio", extra="trio"),
)


def get(name: str) -> Backend:
    """The backend called ``name`` (its label or its command-line name).

    Raises
    ------
    KeyError
        No backend has that name.
    """
    for backend in BACKENDS:
        if name in (backend.name, backend.cli_name):
            return backend
    raise KeyError(name)


def find(library: str, options: Mapping[str, Any]) -> Backend:
    """The backend that ``anyio.run(backend=library, backend_options=options)`` runs.

    Raises
    ------
    KeyError
        No backend of the table matches.
    """
    for backend in BACKENDS:
        if backend.matches(library, options):
            return backend
    raise KeyError((library, dict(options)))


def available() -> list[Backend]:
    """The backends installed here, in table order (asyncio always)."""
    return [backend for backend in BACKENDS if backend.installed]
