"""Finite differences know their own error: a correct case does not fail where rounding or a steep
function defeats the step (the element is inconclusive, or a smaller step decides), and a real
gradient bug still fails."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from symcheck.checks.runner import run_cases
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
        ("sum(x^2)", "x=[1e8,-3e7,5]"),  # f ~ 1e16: x = 5's difference needs a step of 15 to see it
        ("sum(x + 2^100)", "x:3"),  # f ~ 1e30: every element inconclusive, none a false alarm
        ("sum(tan(x))", "x=[1.5707,0.3]"),  # a step across the pole: refined until it decides
        ("sum((x + 1e8) - 1e8)", "x=[0.3,-1.2,1.7]"),  # exact in value, rounding on a 1.5e-8 grid
        ("sum((x*1e8 + 1) - x*1e8)", "x=[0.3,-1.2,1.7]"),  # a constant that only rounding moves
    ],
)
def test_no_false_alarm_where_finite_differences_cannot_decide(expr: str, spec: str) -> None:
    (result,), errors = run_cases([replace(load_case(expr, [spec]), samples=0)])
    assert not errors
    numeric = next(c for c in result.points[0].comparisons if c.engine == "numeric")
    assert numeric.ok, render_text([result])


@pytest.mark.parametrize(
    ("expr", "spec"),
    [
        ("1/x", "x=[0.001,0.5]"),  # the same, as tensor outputs: a Jacobian with its own estimates
        ("x^2", "x=[1e8,-3e7,5]"),
        ("x + 2^100", "x:3"),
        ("tan(x)", "x=[1.5707,0.3]"),
        ("(x + 1e8) - 1e8", "x:3"),
        ("(x + 1e8) - 1e8", "x:80"),  # JVPs along random tangents, each with its estimate
    ],
)
def test_no_false_alarm_on_a_tensor_output_where_finite_differences_cannot_decide(
    expr: str, spec: str
) -> None:
    (result,), errors = run_cases([replace(load_case(expr, [spec]), samples=2)])
    assert not errors
    for point in result.points:
        numeric = next(c for c in point.comparisons if c.engine == "numeric")
        assert numeric.ok, render_text([result])


def test_an_inconclusive_element_is_said() -> None:
    (result,), _ = run_cases([replace(load_case("sum(x + 2^100)", ["x=[0.5,1,2]"]), samples=0)])
    assert "numeric at the given values: inconclusive at 3 of 3 elements of dout/dx" in render_text([result])


def test_the_noise_probe_sees_rounding_that_eps_times_f_would_miss() -> None:
    from symcheck.engines.numeric.engine import _noise_level

    x = np.array([0.3, -1.2, 1.7])
    level = _noise_level({"x": x}, ["x"], lambda: float(np.sum((x + 1e8) - 1e8)))
    assert 1e-9 < level < 1e-7  # the grid of 1e8 is 1.5e-8; eps * |f| is 4e-16
    np.testing.assert_array_equal(x, [0.3, -1.2, 1.7])  # the point is left as it was
    smooth = _noise_level({"x": x}, ["x"], lambda: float(np.sum(np.tan(x))))
    assert smooth < 1e-12  # curvature is not noise


def test_the_step_grows_where_rounding_dominates() -> None:
    program = bind(parse("sum((x + 1e8) - 1e8)"), {"x": TensorType((3,))})
    result = NumericEngine().run(program, {"x": np.array([0.3, -1.2, 1.7])}, ["x"], EngineOptions())
    np.testing.assert_allclose(result.grads["x"], [1, 1, 1], rtol=1e-6)
    assert np.all(result.error_bounds["x"] < 1e-6)


def test_the_step_shrinks_where_the_function_is_steep() -> None:
    program = bind(parse("sum(1/x)"), {"x": TensorType((1,))})
    result = NumericEngine().run(program, {"x": np.array([0.001])}, ["x"], EngineOptions())
    np.testing.assert_allclose(result.grads["x"], [-1e6], rtol=1e-9)
    assert result.error_bounds["x"][0] < 1.0  # the estimate says it decides


def test_a_real_bug_still_fails_against_the_estimate() -> None:
    """A wrong reference gradient (here: the numeric engine's estimate against a rule 1% off) fails."""
    from symcheck.checks.compare import Tolerance, compare_arrays

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


def test_the_noise_probes_median_is_numpys() -> None:
    from symcheck.engines.numeric.engine import _median_of_four

    rng = np.random.default_rng(1)
    for shape in [(4,), (4, 3), (4, 2, 2)]:
        for _ in range(300):
            a = rng.standard_normal(shape) * 10.0 ** rng.integers(-300, 300, shape)
            if rng.random() < 0.2:
                a.flat[rng.integers(a.size)] = np.nan
            if rng.random() < 0.2:
                a.flat[rng.integers(a.size)] = np.inf
            np.testing.assert_array_equal(_median_of_four(a), np.median(a, axis=0))
