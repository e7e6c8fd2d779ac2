"""Hostile suite input is refused or neutralised: data files outside the project, tolerances that
would pass anything, case names that would inject lines into a CI log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from symcheck.cli import main
from symcheck.language.errors import SymcheckError
from symcheck.suites.loader import load_suite

TRAIN = """\
cases:
  - name: reads-outside
    expr: sum(w * x)
    inputs:
      w: {shape: [2]}
      x: {shape: [2]}
    train:
      parameters: [w]
      data: {path}
      optimizer: {lr: 0.1}
      epochs: 1
"""


@pytest.mark.parametrize("where", ["../secret.json", "ABSOLUTE"])
def test_a_data_file_outside_the_suites_folder_is_refused_unread(
    where: str, tmp_path: Path, write_suite: Callable[..., Path]
) -> None:
    secret = tmp_path.parent / "secret.json"
    secret.write_text(json.dumps({"password": [1, 2]}), encoding="utf-8")
    path = str(secret) if where == "ABSOLUTE" else where
    with pytest.raises(SymcheckError) as e:
        load_suite(write_suite(TRAIN.replace("{path}", path)))
    assert "is outside" in e.value.message
    assert "password" not in e.value.render()  # never echoes the file's content


@pytest.mark.parametrize("tolerance", ["{atol: .inf}", "{rtol: .nan}", "{numeric: {atol: 1e400}}"])
def test_a_tolerance_that_would_pass_anything_is_refused(
    tolerance: str, write_suite: Callable[..., Path]
) -> None:
    path = write_suite(
        f"""\
        cases:
          - name: loose
            expr: sum(x^2)
            inputs: {{x: [1, 2]}}
            tolerance: {tolerance}
        """
    )
    with pytest.raises(SymcheckError):
        load_suite(path)


def test_a_case_name_cannot_inject_a_workflow_command(write_suite: Callable[..., Path]) -> None:
    path = write_suite(
        """\
        cases:
          - name: "x\\n::error file=evil.py,line=1::pwned\\r"
            expr: sum(sin(x))
            inputs: {x: [1, 2]}
            tolerance: {numeric: {rtol: 0, atol: 0}}
        """
    )
    out = CliRunner().invoke(main, ["verify", str(path), "--format", "github"]).output
    assert not any(line.startswith("::error file=evil.py") for line in out.splitlines())
    assert "x\\n::error file=evil.py,line=1::pwned\\r" in out  # shown, escaped, in the text report
    assert "\r" not in out


def test_a_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join([*lines, "cases: *a9"]) + "\n", encoding="utf-8")
    with pytest.raises(SymcheckError, match="expands to more than 1,000,000 values"):
        load_suite(path)


def test_yaml_nested_thousands_deep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("cases: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(SymcheckError, match="nested too deeply"):
        load_suite(path)
