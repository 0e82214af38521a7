"""Sphinx configuration for anytcpip (``nox -s docs``)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import anytcpip

project = "anytcpip"
author = "anytcpip developers"
copyright = "anytcpip developers"
release = anytcpip.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]

exclude_patterns = ["_build"]
default_role = "py:obj"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Types of the parameters and returns the docstrings describe (no
# "Return type: None" on every method).
autodoc_typehints_description_target = "documented"
autodoc_type_aliases = {"ConnectCallbackType": "anytcpip.ConnectCallbackType"}
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# The inventories of the projects linked to (Python, anyio, trio, pytest) are
# written from docs/_inventories.py at build time, so the links work in an
# offline build too (see that file).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _inventories import write_inventories  # noqa: E402

intersphinx_mapping = write_inventories(Path(__file__).resolve().parent / "_build" / "inventories")
intersphinx_disabled_reftypes = ["std:*"]

nitpicky = True
# Words in numpydoc type fields that are not types.
nitpick_ignore = [
    ("py:class", "optional"),
    ("py:class", "async callable"),
    # read_into's private protocol: "anything with receive_exactly()".
    ("py:class", "anytcpip._streams._ReceiveExactly"),
    # BaseClientOrServer's private base (its members are documented with it).
    ("py:class", "anytcpip._lifecycle.Lifecycle"),
    ("py:class", "anytcpip._io.ReadWriteAPI"),
    # The test classes' type variable (the server class under test).
    ("py:obj", "anytcpip.testing.ServerT"),
    ("py:class", "anytcpip.testing.ServerT"),
    ("py:class", "anytcpip.testing._ServerTestSupport"),
    # The typed keyword options of the constructors (private TypedDicts; each
    # option is described in the class's docstring).
    ("py:class", "ClientOptions"),
    ("py:class", "ServerOptions"),
    ("py:class", "ReadLoopServerOptions"),
]

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = f"anytcpip {release}"


# ------------------------------------------------------------------ autodoc hooks

# Objects a short name in a docstring may refer to, tried in order when the
# name does not resolve where it is written (``read_str`` in the text of a
# server class, ``OneClientServer`` in anytcpip.testing).
_SHORT_NAME_SCOPES = (
    "anytcpip.",
    "anytcpip.testing.",
    "anytcpip.BaseClientOrServer.",
    "anytcpip.OneClientServer.",
    "anytcpip.OneClientReadLoopServer.",
    "anytcpip.TestOneClientReadLoopServer.",
    "anytcpip.testing.BaseOneClientServerTestCase.",
    "anytcpip.testing.ConnectRecorder.",
)


def _constant_docs() -> dict[str, list[str]]:
    """The ``#:`` comments of anytcpip/_constants.py, by constant name."""
    from sphinx.pycode import ModuleAnalyzer

    docs = ModuleAnalyzer.for_module("anytcpip._constants").find_attr_docs()
    return {name: list(lines) for (scope, name), lines in docs.items() if scope == ""}


def _process_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    # The constants are documented where they are defined (anytcpip._constants)
    # and shown as anytcpip.X, where autodoc would find no comment and fall back
    # to the docstring of their type (str, int, ...).
    if what == "data" and name.startswith("anytcpip."):
        short = name.rsplit(".", 1)[1]
        docs = app.env.anytcpip_constant_docs
        if short in docs:
            lines[:] = docs[short]
        return
    # An @asynccontextmanager method: say how to use it (autodoc sees a plain
    # function returning AsyncIterator[...]).
    wrapped = getattr(obj, "__wrapped__", None)
    if what in ("method", "function") and inspect.isasyncgenfunction(wrapped):
        short = name.rsplit(".", 1)[1]
        what_for = short[len("create_") :] if short.startswith("create_") else "value"
        lines[:0] = [
            f"*An async context manager:* ``async with self.{short}(...) as {what_for}:``; "
            f"the {what_for} is closed on the way out.",
            "",
        ]


def _resolve_short_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    from sphinx.util.nodes import make_refnode

    target = node["reftarget"].lstrip("~.")
    objects = env.get_domain("py").objects
    for scope in _SHORT_NAME_SCOPES:
        entry = objects.get(scope + target)
        if entry is not None and not entry.aliased:
            return make_refnode(
                app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, target
            )
    return None


def _builder_inited(app: Any) -> None:
    app.env.anytcpip_constant_docs = _constant_docs()


def setup(app: Any) -> None:
    app.connect("builder-inited", _builder_inited)
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("missing-reference", _resolve_short_name)
