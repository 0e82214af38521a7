"""Developer sessions: tests, anyio_floor, lint, typecheck, docs, bench, soak.

A Python that is not installed fails its session (it is not skipped): a run
that tested nothing must not pass. ``.ci/run`` is what CI runs (plain bash,
without nox); these sessions run the same commands.
"""

from __future__ import annotations

import re
from pathlib import Path

import nox

nox.options.sessions = ["tests", "anyio_floor", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _install(session: nox.Session, *groups: str, extras: str = "trio,uvloop") -> None:
    session.install("-U", "pip")
    args = ["-e", f".[{extras}]"] if extras else ["-e", "."]
    for group in groups:
        args += ["--group", group]
    session.install(*args)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on every backend."""
    _install(session, "test")
    session.run("python", "-m", "pytest", *(session.posargs or ["-n", "4"]))


def _anyio_floor() -> str:
    text = Path(__file__).with_name("pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'"anyio>=([0-9][0-9.]*)', text)
    if match is None:
        raise RuntimeError("no anyio>=X in pyproject.toml")
    return match.group(1)


@nox.session(python="3.12")
def anyio_floor(session: nox.Session) -> None:
    """Run the tests (less the slow ones) with the lowest anyio allowed."""
    _install(session, "test")
    session.install(f"anyio=={_anyio_floor()}")
    args = session.posargs or [
        "-n",
        "4",
        "-m",
        "not soak and not slow",
        "-k",
        "not soak_short and not connect_close_cycles",
    ]
    session.run("python", "-m", "pytest", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    paths = ["src", "tests", "benchmarks", "docs", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src and tests."""
    _install(session, "typecheck")
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks (pass --quick for a short run)."""
    _install(session, "bench")
    session.run("anytcpip", "bench", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Run the long soak tests."""
    _install(session, "test")
    session.run("python", "-m", "pytest", "-m", "soak", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors."""
    _install(session, "docs")
    session.run(
        "sphinx-build", "-n", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )
