"""Limits: each has a default (the README's table), an override on the command line and in
[tool.symcheck.limits], and a refusal that says how to raise it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from symcheck.cli import EXIT_BAD_INPUT, EXIT_OK, main
from symcheck.language import limits
from symcheck.language.errors import SymcheckError
from symcheck.suites.config import project_limits

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None) -> object:
    return CliRunner().invoke(main, list(args))


def test_the_readme_names_every_limit_with_its_default() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("**Limits.**") : readme.index("**Skipped, never passed:**")]
    for name in limits.NAMES:
        assert f"`{name}`" in table, name
    defaults = limits.DEFAULTS
    for value in (defaults.max_elements, defaults.max_program_chars, defaults.max_yaml_values):
        assert f"{value:,}" in table


def test_max_elements_lowers_and_raises_the_limit() -> None:
    r = run("grad", "sum(x)", "-i", "x:20x20", "--max-elements", "100")
    assert r.exit_code == EXIT_BAD_INPUT  # type: ignore[attr-defined]
    assert "more than symcheck checks (100)" in r.output  # type: ignore[attr-defined]
    assert "--max-elements N" in r.output  # type: ignore[attr-defined]  (how to raise it)
    r = run("grad", "sum(outer(x, x))", "-i", "x:20", "--samples", "0", "--limit", "max-elements=400")
    assert r.exit_code == EXIT_OK, r.output  # type: ignore[attr-defined]


def test_a_deeper_expression_runs_under_a_raised_depth_limit() -> None:
    nested = "sum(" + "sin(" * 110 + "x" + ")" * 110 + ")"
    r = run("grad", nested, "-i", "x:2", "--samples", "0")
    assert r.exit_code == EXIT_BAD_INPUT and "nested more than 200 levels" in r.output  # type: ignore[attr-defined]
    r = run("grad", nested, "-i", "x:2", "--samples", "0", "--limit", "max-depth=300")
    assert r.exit_code == EXIT_OK, r.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("max-dept=4", "unknown limit 'max-dept'"),
        ("max-depth", "write NAME=VALUE"),
        ("max-depth=many", "'many' is not a whole number"),
        ("max-depth=0", "must be a positive whole number"),
        ("max-depth=100000", "can be at most 2,000"),
    ],
)
def test_a_bad_limit_is_bad_input(assignment: str, message: str) -> None:
    r = run("grad", "sum(x)", "-i", "x:2", "--limit", assignment)
    assert r.exit_code == EXIT_BAD_INPUT, r.output  # type: ignore[attr-defined]
    assert message in r.output  # type: ignore[attr-defined]


def test_samples_beyond_the_limit_say_how_to_raise_it() -> None:
    r = run("grad", "sum(x)", "-i", "x:2", "--samples", "1001")
    assert r.exit_code == EXIT_BAD_INPUT  # type: ignore[attr-defined]
    assert "--limit max-samples=N" in r.output  # type: ignore[attr-defined]


SUITE = """\
cases:
  - name: many-points
    expr: sum(x*x)
    inputs: {x: 2}
    samples: 1001
"""


def test_a_project_raises_limits_in_its_pyproject(tmp_path: Path) -> None:
    suite = tmp_path / "suites" / "a.yaml"
    suite.parent.mkdir()
    suite.write_text(SUITE, encoding="utf-8")
    r = run("verify", str(suite))
    assert r.exit_code == EXIT_BAD_INPUT and "at most 1,000" in r.output  # type: ignore[attr-defined]
    (tmp_path / "pyproject.toml").write_text("[tool.symcheck.limits]\nmax-samples = 2000\n", encoding="utf-8")
    assert project_limits(suite.parent).max_samples == 2000
    r = run("verify", str(suite))
    assert r.exit_code == EXIT_OK, r.output  # type: ignore[attr-defined]
    assert re.search(r"1 cases, 1002 points: 1 passed", r.output)  # type: ignore[attr-defined]
    r = run("verify", str(suite), "--limit", "max-samples=1000")  # the command line wins
    assert r.exit_code == EXIT_BAD_INPUT  # type: ignore[attr-defined]


def test_a_bad_project_limit_is_located_in_the_pyproject(tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text(
        '[project]\nname = "x"\n\n[tool.symcheck.limits]\nmax-samples = "lots"\n', encoding="utf-8"
    )
    with pytest.raises(SymcheckError) as e:
        project_limits(tmp_path)
    assert f"{config}:5" in e.value.render()
    assert "must be a positive whole number" in e.value.render()


def test_limits_are_restored_after_a_block() -> None:
    import sys

    before = sys.getrecursionlimit()
    with limits.using(limits.with_overrides(limits.DEFAULTS, {"max-depth": 1000}, "test")) as inside:
        assert limits.current().max_depth == 1000 == inside.max_depth
        assert sys.getrecursionlimit() >= limits.recursion_for(inside)
    assert limits.current() == limits.DEFAULTS
    assert sys.getrecursionlimit() == before


def test_the_default_depth_comes_with_recursion_enough_for_sympy() -> None:
    # 50 nested sigmoids inside a matmul ran out of Python's default 1000 frames in SymPy (fuzz)
    assert limits.recursion_for(limits.DEFAULTS) >= 6000
