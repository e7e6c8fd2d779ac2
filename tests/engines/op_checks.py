"""Helpers shared by the op tests of this folder (layout ops, contractions, layers): a `symcheck
grad` run through click, and one engine's comparisons in a case's result."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from symcheck.cli import main


def grad(expr: str, *inputs: str, extra: tuple[str, ...] = ()) -> Any:
    """`symcheck grad EXPR -i SPEC ... EXTRA`, as a click result (exit_code, output)."""
    args = ["grad", expr]
    for spec in inputs:
        args += ["-i", spec]
    return CliRunner().invoke(main, [*args, *extra])


def engine_comparison(result: Any, engine: str) -> list[Any]:
    """Every comparison of `engine` with the reference, over a case's points."""
    return [c for point in result.points for c in point.comparisons if c.engine == engine]


def assert_printed_form_is_proven(expr: str, inputs: tuple[str, ...]) -> None:
    """The closed form symcheck prints for the first input, claimed back with --claim, is proven."""
    from symcheck.checks.runner import run_cases
    from symcheck.suites.programs import load_case

    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors
    name = inputs[0].split(":")[0]
    printed = result.closed_forms[name]
    assert "no closed form" not in printed
    r = grad(expr, *inputs, extra=("--claim", f"{name}: {printed}"))
    assert r.exit_code == 0, r.output
    assert "proven (equal to the closed form)" in r.output


def assert_printed_gradient(expr: str, inputs: tuple[str, ...], name: str, gradient: str) -> None:
    """symcheck grad prints exactly `gradient` as the closed form of dout/d`name`."""
    r = grad(expr, *inputs)
    assert r.exit_code == 0, r.output
    assert f"gradient  dout/d{name} = {gradient}\n" in r.output
