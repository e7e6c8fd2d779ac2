"""Fixtures of the suite tests that import a project's code (impl:)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import symcheck.suites.imports

IMPL_PROJECT = Path(__file__).resolve().parents[1] / "impl_project"


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """What a test imports from the project or tmp_path is forgotten afterwards (a later test may
    import a different module of the same name), and so are the sys.path entries symcheck added."""
    monkeypatch.setattr(symcheck.suites.imports, "_LOADED", {})
    path = list(sys.path)
    yield
    sys.path[:] = path
    roots = (str(IMPL_PROJECT), str(tmp_path), str(tmp_path.resolve()))
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if isinstance(where, str) and where.startswith(roots):
            del sys.modules[name]
