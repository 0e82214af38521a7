"""What an installed anytcpip gives a user who lacks the optional parts."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

import anytcpip

TIMEOUT = 60


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@pytest.mark.no_fd_check
def test_anytcpip_testing_without_pytest_says_what_to_install() -> None:
    result = _python("import sys; sys.modules['pytest'] = None; import anytcpip.testing")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: anytcpip.testing needs pytest"), result.stderr
    assert "pip install pytest" in last
    # The rest of anytcpip does not need pytest.
    result = _python("import sys; sys.modules['pytest'] = None; import anytcpip; anytcpip.Client")
    assert result.returncode == 0, result.stderr


@pytest.mark.no_fd_check
def test_the_pytest_plugin_does_not_import_the_backends() -> None:
    """Loading the plugin (at every pytest start, in every project that has
    anytcpip) imports neither trio nor uvloop, nor anytcpip.testing."""
    result = _python(
        "import sys, anytcpip.pytest_plugin; "
        "print(sorted(m for m in ('trio', 'uvloop', 'anytcpip.testing') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_version_has_one_source() -> None:
    assert importlib.metadata.version("anytcpip") == anytcpip.__version__
