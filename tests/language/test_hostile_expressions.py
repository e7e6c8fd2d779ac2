"""Expressions that used to crash symcheck (exit 3) are refused where the mistake is (exit 2), or
checked: constant poles, literals beyond float64, extremes of one element, conditions the printer
had no words for."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from symcheck.cli import EXIT_BAD_INPUT, EXIT_OK, main


def grad(expr: str, *specs: str) -> object:
    args = ["grad", expr]
    for spec in specs:
        args += ["-i", spec]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("sum(x + 1/0)", "div of the constant 0: division needs b != 0"),
        ("log(0)*sum(x)", "log of the constant 0: log needs x > 0"),
        ("sum(sqrt(-1) + x)", "sqrt of the constant -1"),
        ("sum(x*1e400)", "the number 1e400 is beyond float64"),
        ("sum(x*1e-400)", "the number 1e-400 is beyond float64"),
        ("sum(x*" + "9" * 10_000 + ")", "is beyond float64"),
    ],
)
def test_a_constant_mistake_is_bad_input_where_it_is(expr: str, message: str) -> None:
    r = grad(expr, "x:2")
    assert r.exit_code == EXIT_BAD_INPUT, r.output  # type: ignore[attr-defined]
    assert message in r.output  # type: ignore[attr-defined]
    assert "^" in r.output  # type: ignore[attr-defined]  (a caret under it)


@pytest.mark.parametrize(
    ("expr", "spec"),
    [("max(x)", "x:1"), ("max(x, axis=1)", "x:2x1"), ("max(x*(x > 0))", "x:3"), ("min(x, axis=0)", "x:1x3")],
)
def test_expressions_that_crashed_the_symbolic_engine_are_checked(expr: str, spec: str) -> None:
    r = grad(expr, spec)
    assert r.exit_code == EXIT_OK, r.output  # type: ignore[attr-defined]
