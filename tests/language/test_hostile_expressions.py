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


@pytest.mark.parametrize(
    ("expr", "spec", "message"),
    [
        ("sum(" + "sin(" * 3000 + "x" + ")" * 3000 + ")", "x:2", "nested more than 200 levels deep"),
        ("sum(" + "+".join(["x"] * 20_000) + ")", "x:2", "nested more than 200 levels deep"),
        ("x" + "+x" * 60_000, "x:2", "characters, more than symcheck reads"),
        ("sum(x)", "x:100000x100000", "more than symcheck checks (10,000,000)"),
        ("sum(outer(x, x))", "x:10000", "this outer makes a tensor of shape (10000, 10000)"),
        ("sum(x^1000000)", "x:2", "the exponent 1000000 is too large for exact symbolic work"),
        ("sum(x^10^10)", "x:2", "the exponent 10000000000 is too large"),
        ("sum(x*2^2^2^2^2^2)", "x:2", "the exponent 65536 is too large"),
        # a constant power beyond float64: its exponent, 1e600, overflowed float() (exit 3)
        ("sum(-x^2) + 2^1e300^2", "x=[1, 2]", "this constant is about 1e600, beyond float64"),
        ("sum(-x^2) + 1e300^3", "x=[1, 2]", "this constant is about 1e900, beyond float64"),
    ],
)
def test_a_limit_is_refused_quickly_with_where(expr: str, spec: str, message: str) -> None:
    r = grad(expr, spec)
    assert r.exit_code == EXIT_BAD_INPUT, r.output  # type: ignore[attr-defined]
    assert message in r.output  # type: ignore[attr-defined]


def test_samples_are_limited() -> None:
    r = CliRunner().invoke(main, ["grad", "sum(x)", "-i", "x:2", "--samples", "1000000000"])
    assert r.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize("expr", ["", "  ", " ; ", "# only a comment"])
def test_an_empty_program_is_located(expr: str) -> None:
    r = grad(expr, "x:2")
    assert r.exit_code == EXIT_BAD_INPUT, r.output  # type: ignore[attr-defined]
    assert "<command line>:1:1: error: empty program" in r.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "expr",
    ["+".join(["x"] * 50_000), "sin(" * 10_000 + "x" + ")" * 10_000, "y = 1\nout = " + "-" * 60_000 + "x"],
)
def test_what_is_surely_too_deep_is_refused_before_parsing(expr: str) -> None:
    r = grad(expr, "x:2")
    assert r.exit_code == EXIT_BAD_INPUT, r.output  # type: ignore[attr-defined]
    assert "nested more than 200 levels deep" in r.output  # type: ignore[attr-defined]
