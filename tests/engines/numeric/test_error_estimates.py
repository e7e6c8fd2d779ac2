"""Finite differences know their own error: a correct case does not fail where rounding or a steep
function defeats the step (the element is inconclusive, or a smaller step decides), and a real
gradient bug still fails."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from symcheck.check.runner import run_cases
from symcheck.engines import EngineOptions
from symcheck.engines.numeric.engine import NumericEngine
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse
from symcheck.report.text import render_text
from symcheck.suites.programs import load_case


@pytest.mark.parametrize(
    ("expr", "spec"),
    [
        ("sum(1/x)", "x=[0.001,0.5]"),  # a step as large as x itself: refined until it decides
        ("sum(x^2)", "x=[1e8,-3e7,5]"),  # f ~ 1e16: rounding swamps x = 5's difference: inconclusive
        ("sum(x + 2^100)", "x:3"),  # f ~ 1e30: every element inconclusive, none a false alarm
        ("sum(tan(x))", "x=[1.5707,0.3]"),  # a step across the pole: refined until it decides
    ],
)
def test_no_false_alarm_where_finite_differences_cannot_decide(expr: str, spec: str) -> None:
    (result,), errors = run_cases([replace(load_case(expr, [spec]), samples=0)])
    assert not errors
    numeric = next(c for c in result.points[0].comparisons if c.engine == "numeric")
    assert numeric.ok, render_text([result])


def test_an_inconclusive_element_is_said() -> None:
    (result,), _ = run_cases([replace(load_case("sum(x^2)", ["x=[1e8,-3e7,5]"]), samples=0)])
    assert "numeric at the given values: inconclusive at 1 of 3 elements of dout/dx" in render_text([result])


def test_the_step_shrinks_where_the_function_is_steep() -> None:
    program = bind(parse("sum(1/x)"), {"x": TensorType((1,))})
    result = NumericEngine().run(program, {"x": np.array([0.001])}, ["x"], EngineOptions())
    np.testing.assert_allclose(result.grads["x"], [-1e6], rtol=1e-9)
    assert result.error_bounds["x"][0] < 1.0  # the estimate says it decides


def test_a_real_bug_still_fails_against_the_estimate() -> None:
    """A wrong reference gradient (here: the numeric engine's estimate against a rule 1% off) fails."""
    from symcheck.check.compare import Tolerance, compare_arrays

    program = bind(parse("sum(sin(x))"), {"x": TensorType((3,))})
    x = np.array([0.3, 1.1, -0.7])
    result = NumericEngine().run(program, {"x": x}, ["x"], EngineOptions())
    check = compare_arrays(
        "dout/dx",
        result.grads["x"],
        1.01 * np.cos(x),
        Tolerance(1e-6, 1e-7),
        error_estimate=result.error_bounds["x"],
    )
    assert not check.ok and check.inconclusive == 0
