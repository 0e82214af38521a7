"""Sphinx configuration for anytcpip (``nox -s docs``)."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

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
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

_INVENTORIES = {
    "python": ("https://docs.python.org/3", None),
    "anyio": ("https://anyio.readthedocs.io/en/stable", None),
    "trio": ("https://trio.readthedocs.io/en/stable", None),
}


def _online() -> bool:
    """Whether the inventories can be fetched. Offline, intersphinx would only
    warn (and ``-W`` make that an error), so the links to other projects'
    documentation are left out instead. ANYTCPIP_DOCS_OFFLINE=1 forces it."""
    if os.environ.get("ANYTCPIP_DOCS_OFFLINE"):
        return False
    try:
        socket.create_connection(("docs.python.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


intersphinx_mapping = _INVENTORIES if _online() else {}

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = f"anytcpip {release}"
