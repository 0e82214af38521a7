"""Finding Rubin's ts_tcpip (``lsst.ts.tcpip``) for the ``tcpip-*`` implementations.

In a Rubin environment ``lsst.ts.tcpip`` is simply importable. Elsewhere a
checkout can be named with ``--ts-tcpip-path`` or ``TS_TCPIP_PATH`` (the
folder that holds ``lsst/ts/tcpip``, or the checkout root with a ``python/``
folder). ts_tcpip needs ``lsst.ts.utils`` for two small functions; when that
package is missing, a stand-in providing just those two is written to a
temporary folder and put on the workers' path. Nothing of ts_tcpip is copied.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

__all__ = ("TcpipSetup", "locate_ts_tcpip")

#: The stand-in for ``lsst.ts.utils``: the two functions ts_tcpip calls.
_UTILS_STANDIN = '''"""Stand-in for lsst.ts.utils, written by anytcpip's benchmark (not Rubin's)."""

import asyncio
import time

# TAI - UTC in seconds (constant since 2017).
_TAI_OFFSET = 37.0


def make_done_future():
    """A future that is already done (result None)."""
    future = asyncio.get_event_loop().create_future()
    future.set_result(None)
    return future


def current_tai():
    """The current TAI time in seconds (unix epoch)."""
    return time.time() + _TAI_OFFSET
'''

_PROBE = "import lsst.ts.tcpip as t; print(getattr(t, '__version__', '?'))"


@dataclass
class TcpipSetup:
    """Where the workers find ts_tcpip."""

    #: Folders to put in front of the workers' ``PYTHONPATH`` (may be empty).
    path: list[str] = field(default_factory=list)
    #: ts_tcpip's version as it reports it.
    version: str = "?"
    #: True if the ``lsst.ts.utils`` stand-in is in use.
    standin: bool = False


def _probe(extra: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(extra + ([old] if old else []))
    return subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60
    )


def _write_standin() -> str:
    folder = tempfile.mkdtemp(prefix="anytcpip-bench-")
    atexit.register(shutil.rmtree, folder, True)
    package = os.path.join(folder, "lsst", "ts", "utils")
    os.makedirs(package)
    with open(os.path.join(package, "__init__.py"), "w") as f:
        f.write(_UTILS_STANDIN)
    return folder


def locate_ts_tcpip(path: str | None = None) -> TcpipSetup | None:
    """Find ts_tcpip; return how the workers import it, or None if they cannot.

    Parameters
    ----------
    path : `str` or `None`
        A ts_tcpip checkout (its ``python`` folder or its root). None: use
        ``TS_TCPIP_PATH`` if set, else whatever the environment provides.

    Raises
    ------
    ValueError
        ``path`` (or ``TS_TCPIP_PATH``) was given but holds no ``lsst/ts/tcpip``.
    """
    path = path or os.environ.get("TS_TCPIP_PATH") or None
    extra: list[str] = []
    if path:
        path = os.path.abspath(os.path.expanduser(path))
        for candidate in (path, os.path.join(path, "python")):
            if os.path.isdir(os.path.join(candidate, "lsst", "ts", "tcpip")):
                extra.append(candidate)
                break
        else:
            raise ValueError(f"{path} holds no lsst/ts/tcpip (a ts_tcpip checkout)")
    probe = _probe(extra)
    standin = False
    if probe.returncode != 0 and "utils" in probe.stderr:
        extra.append(_write_standin())
        standin = True
        probe = _probe(extra)
    if probe.returncode != 0:
        if path:
            raise ValueError(f"cannot import lsst.ts.tcpip from {path}:\n{probe.stderr.strip()}")
        return None
    return TcpipSetup(path=extra, version=probe.stdout.strip(), standin=standin)
