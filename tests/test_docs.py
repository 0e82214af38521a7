"""The documentation's code examples run, on every backend.

Each ``docs/examples/*.py`` defines ``async def main() -> None`` and is
included in a page with ``literalinclude``; this module runs every ``main``,
and collects the test examples of the testing guide (``testing_*.py``) as
tests of its own. Building the HTML (``sphinx-build -W``) is ``nox -s docs``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from helpers import deadline

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = DOCS / "examples"

#: Examples that are test modules rather than programs.
_TEST_EXAMPLES = ("testing_class", "testing_fixtures", "testing_client")


def _load(stem: str) -> ModuleType:
    name = f"anytcpip_docs_example_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{stem}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


PROGRAMS = sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem not in _TEST_EXAMPLES)


@pytest.mark.parametrize("stem", PROGRAMS)
@deadline(20)
async def test_example_runs(stem: str) -> None:
    module = _load(stem)
    await module.main()


# The testing guide's examples, collected here as tests (on every backend).
TestEchoServerFromDocs = _load("testing_class").TestEchoServer
test_echo_with_plugin_fixtures_from_docs = _load("testing_fixtures").test_echo
test_client_against_the_test_server_from_docs = _load("testing_client").test_mount_client_moves


def test_examples_are_in_the_docs() -> None:
    """Every example is shown on some page, and every include exists."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.rst"))
    included = set(re.findall(r"literalinclude:: examples/(\w+)\.py", pages))
    on_disk = {p.stem for p in EXAMPLES.glob("*.py")}
    assert on_disk, "no examples found"
    assert on_disk - included == set(), "examples not included in any page"
    assert included - on_disk == set(), "pages include missing examples"


def test_include_markers_exist() -> None:
    """Every ``:start-after:`` / ``:end-before:`` marker is in its file."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.rst"))
    pattern = r"literalinclude:: examples/(\w+\.py)\n((?:\s+:[\w-]+:.*\n)+)"
    for name, options in re.findall(pattern, pages):
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        for marker in re.findall(r":(?:start-after|end-before): (.+)", options):
            assert marker.strip() in text, f"{name}: marker {marker!r} not found"
