"""Shared fixtures: suites written to a temporary directory, and running them through the runner."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "expressions" / "tutorial.yaml"
TESTS = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """symcheck's pytest plugin would collect any `*.symcheck.yaml` here; those under tests/ are
    fixtures of tests that run them on purpose (some fail by design, some need an opt-in), so the
    project's own run skips them. Naming one, or a folder below tests/ holding it, still runs it."""
    if not collection_path.name.endswith(".symcheck.yaml"):
        return None
    for arg in config.args:
        named = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if named != TESTS and (named == collection_path or named in collection_path.parents):
            return None
    return True


@pytest.fixture(autouse=True)
def _no_derived_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads closed forms an earlier test (or run) left on disk, nor leaves its own in the
    repository: the CLI's cache is off (tests/engines/test_cache.py turns it on)."""
    monkeypatch.setenv("SYMCHECK_NO_CACHE", "1")
    monkeypatch.delenv("SYMCHECK_CACHE_DIR", raising=False)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def tutorial() -> Path:
    return TUTORIAL


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[..., Path]:
    """write_suite(text, name="suite.yaml") -> the path of a suite file under tmp_path."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
