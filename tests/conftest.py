"""Shared fixtures: suites written to a temporary directory, and running them through the runner."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "expressions" / "tutorial.yaml"


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
