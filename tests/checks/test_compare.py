from __future__ import annotations

import numpy as np
import pytest

from symcheck.checks.compare import (
    DTYPE_TOLERANCES,
    ENGINE_TOLERANCES,
    ArrayComparison,
    EngineComparison,
    Tolerance,
    compare_arrays,
    compare_results,
    default_tolerance,
    resolve_tolerance,
)
from symcheck.engines.base import Directional, EngineResult

F64 = DTYPE_TOLERANCES["float64"]
EXACT = Tolerance(rtol=0.0, atol=0.0)


# ---------------------------------------------------------------- compare_arrays: statistics


def test_equal_arrays_pass() -> None:
    a = np.arange(6.0).reshape(2, 3)
    c = compare_arrays("value", a, a.copy(), F64)
    assert c.ok
    assert (c.total, c.mismatched, c.max_abs, c.max_rel) == (6, 0, 0.0, 0.0)
    assert c.nonfinite is None
    assert c.tolerance == F64
    assert c.summary().startswith("ok")


def test_one_mismatch_statistics() -> None:
    expected = np.array([[1.0, 2.0], [3.0, 4.5]])
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    c = compare_arrays("dout/dx", actual, expected, F64)
    assert not c.ok
    assert (c.mismatched, c.total) == (1, 4)
    assert c.worst_index == (1, 1)
    assert c.max_abs == pytest.approx(0.5)
    assert c.max_rel == pytest.approx(0.5 / 4.5)
    assert (c.actual, c.expected) == (4.0, 4.5)
    assert c.allowed_abs == pytest.approx(F64.atol + F64.rtol * 4.5)
    summary = c.summary()
    assert "Mismatched elements: 1 / 4 (25.0%)" in summary
    assert "at index (1, 1)" in summary


def test_every_element_mismatched() -> None:
    c = compare_arrays("v", np.zeros(3), np.array([1.0, 2.0, 3.0]), F64)
    assert (c.mismatched, c.total) == (3, 3)
    assert c.worst_index == (2,)
    assert c.max_rel == pytest.approx(1.0)
    assert "at index (2,)" in c.summary()  # a 1-tuple keeps its comma, like torch.testing


def test_worst_index_is_the_largest_excess_over_the_allowance() -> None:
    # Element 0 has the larger absolute difference but is within rtol of a large number;
    # element 1 is the one that fails.
    tol = Tolerance(rtol=1e-3, atol=0.0)
    c = compare_arrays("v", np.array([1000.5, 1.01]), np.array([1000.0, 1.0]), tol)
    assert not c.ok
    assert c.mismatched == 1
    assert c.worst_index == (1,)
    assert c.max_abs == pytest.approx(0.5)  # the statistic still covers every element
    assert (c.actual, c.expected) == (1.01, 1.0)
    assert c.allowed_abs == pytest.approx(1e-3)


def test_within_tolerance_passes_and_reports_the_error() -> None:
    c = compare_arrays("v", np.array([1.0 + 5e-8]), np.array([1.0]), F64)
    assert c.ok
    assert c.max_abs == pytest.approx(5e-8)


def test_zero_reference_gives_infinite_relative_difference() -> None:
    c = compare_arrays("v", np.array([0.5, 0.0]), np.array([0.0, 0.0]), F64)
    assert not c.ok
    assert c.max_rel == np.inf
    assert c.worst_index == (0,)


def test_scalar_arrays() -> None:
    c = compare_arrays("value", np.array(27.0), np.array(28.0), F64)
    assert not c.ok
    assert c.worst_index == ()
    assert (c.mismatched, c.total) == (1, 1)
    assert "at index ()" in c.summary()


def test_empty_arrays_pass() -> None:
    c = compare_arrays("v", np.zeros((0, 3)), np.zeros((0, 3)), ENGINE_TOLERANCES["numeric"])
    assert c.ok
    assert c.total == 0


def test_inputs_are_compared_as_float64() -> None:
    c = compare_arrays("v", np.array([1, 2], dtype=np.float32), [1, 2], EXACT)
    assert c.ok


# ---------------------------------------------------------------- compare_arrays: NaN, inf, shapes


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_in_engine_never_passes(bad: float) -> None:
    actual = np.array([[1.0, bad], [3.0, 4.0]])
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    c = compare_arrays("dout/dx", actual, expected, Tolerance(rtol=1e9, atol=1e9))
    assert not c.ok
    assert c.worst_index == (0, 1)
    assert c.mismatched == 1
    assert c.nonfinite is not None
    assert ("NaN" if np.isnan(bad) else "inf") in c.nonfinite
    assert "this engine" in c.nonfinite
    assert "(0, 1)" in c.nonfinite
    assert "1 of 4" in c.nonfinite
    assert c.summary() == c.nonfinite


def test_nonfinite_in_reference_never_passes() -> None:
    c = compare_arrays("v", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, np.nan]), F64)
    assert not c.ok
    assert c.nonfinite is not None
    assert "NaN from the reference at index (2,)" in c.nonfinite


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_identical_nonfinite_on_both_sides_never_passes(bad: float) -> None:
    a = np.array([1.0, bad])
    c = compare_arrays("v", a, a.copy(), F64)
    assert not c.ok
    assert c.nonfinite is not None
    assert "index (1,)" in c.nonfinite


def test_nonfinite_reports_the_first_bad_index_and_count() -> None:
    actual = np.array([[1.0, 2.0], [np.inf, np.nan]])
    c = compare_arrays("v", actual, np.ones((2, 2)), F64)
    assert c.worst_index == (1, 0)
    assert c.nonfinite is not None
    assert c.nonfinite.startswith("inf from this engine at index (1, 0)")
    assert "2 of 4 elements not finite" in c.nonfinite


def test_shape_mismatch() -> None:
    c = compare_arrays("dout/dx", np.ones((2, 2)), np.ones((4,)), F64)
    assert not c.ok
    assert c.total == 4
    assert c.nonfinite is not None
    assert "(2, 2)" in c.nonfinite
    assert "(4,)" in c.nonfinite


# ---------------------------------------------------------------- the tolerance table


def test_dtype_rows_are_torch_testing_defaults() -> None:
    assert DTYPE_TOLERANCES["float64"] == Tolerance(1e-7, 1e-7)
    assert DTYPE_TOLERANCES["float32"] == Tolerance(1.3e-6, 1e-5)
    assert DTYPE_TOLERANCES["float16"] == Tolerance(1e-3, 1e-5)
    assert DTYPE_TOLERANCES["bfloat16"] == Tolerance(1.6e-2, 1e-5)
    assert not any(t.scaled for t in DTYPE_TOLERANCES.values())


@pytest.mark.parametrize("dtype", list(DTYPE_TOLERANCES))
@pytest.mark.parametrize("engine", ["symbolic", "autograd", "torch", "expect"])
def test_default_tolerance_follows_the_dtype(engine: str, dtype: str) -> None:
    assert default_tolerance(engine, dtype) == DTYPE_TOLERANCES[dtype]


def test_unknown_dtype_falls_back_to_float64() -> None:
    assert default_tolerance("torch", "int8") == DTYPE_TOLERANCES["float64"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numeric_row_is_scaled_whatever_the_dtype(dtype: str) -> None:
    tol = default_tolerance("numeric", dtype)
    assert tol.rtol >= ENGINE_TOLERANCES["numeric"].rtol
    assert tol.scaled
    assert "x max(1, |ref|)" in tol.describe()
    assert "x max" not in F64.describe()


def test_scaled_atol_grows_with_the_reference() -> None:
    expected = np.array([1000.0, 1.0])
    actual = expected + np.array([0.0, 5e-5])
    scaled = Tolerance(rtol=0.0, atol=1e-7, scaled=True)
    c = compare_arrays("v", actual, expected, scaled)
    assert c.ok  # allowed: 1e-7 * max(1, 1000) = 1e-4 for every element
    assert not compare_arrays("v", actual, expected, Tolerance(rtol=0.0, atol=1e-7)).ok


def test_scaled_atol_never_shrinks_below_atol() -> None:
    scaled = Tolerance(rtol=0.0, atol=1e-3, scaled=True)
    c = compare_arrays("v", np.array([1e-6 + 5e-4]), np.array([1e-6]), scaled)
    assert c.ok
    assert c.allowed_abs == pytest.approx(1e-3)


# ---------------------------------------------------------------- resolve_tolerance


def test_resolve_without_overrides_is_the_default() -> None:
    assert resolve_tolerance("torch", "float32", None) == DTYPE_TOLERANCES["float32"]
    assert resolve_tolerance("numeric", "float64", {}) == ENGINE_TOLERANCES["numeric"]


def test_global_override() -> None:
    tol = resolve_tolerance("torch", "float32", {"rtol": 1e-2})
    assert tol == Tolerance(rtol=1e-2, atol=DTYPE_TOLERANCES["float32"].atol)
    tol = resolve_tolerance("autograd", "float64", {"rtol": 1e-3, "atol": 2})
    assert tol == Tolerance(rtol=1e-3, atol=2.0)
    assert isinstance(tol.atol, float)


def test_per_engine_override_wins_over_global() -> None:
    overrides = {"rtol": 1e-3, "atol": 1e-4, "numeric": {"rtol": 1e-2, "atol": None}}
    numeric = resolve_tolerance("numeric", "float64", overrides)
    assert (numeric.rtol, numeric.atol) == (1e-2, 1e-4)  # atol None: the global one stays
    assert numeric.scaled  # overriding numbers keeps the scaling of the row
    torch = resolve_tolerance("torch", "float64", overrides)
    assert torch == Tolerance(rtol=1e-3, atol=1e-4)  # another engine's override does not leak


def test_none_overrides_leave_the_default() -> None:
    assert resolve_tolerance("torch", "float64", {"rtol": None, "torch": None}) == F64


# ---------------------------------------------------------------- compare_results


def result(engine: str, value: float, **grads: list) -> EngineResult:
    return EngineResult(engine, np.array(value), {k: np.array(v, dtype=float) for k, v in grads.items()})


def test_compare_results_checks_value_and_every_shared_gradient() -> None:
    ref = result("symbolic", 27.0, x=[[4.5, 4.5], [4.5, 4.5]])
    ours = result("autograd", 27.0, x=[[4.5, 4.5], [4.5, 4.5]], y=[1.0])
    c = compare_results(ours, ref, F64, "out")
    assert (c.engine, c.reference) == ("autograd", "symbolic")
    assert [k.what for k in c.checks] == ["value", "dout/dx"]  # y: the reference has no gradient
    assert c.ok
    assert c.worst() is not None


def test_compare_results_mismatch_and_worst() -> None:
    ref = result("symbolic", 27.0, x=[[4.5, 4.5], [4.5, 4.5]])
    ours = result("torch", 27.0, x=[[4.5, 4.5], [4.5, 5.5]])
    c = compare_results(ours, ref, F64, "loss")
    assert not c.ok
    worst = c.worst()
    assert worst is not None
    assert worst.what == "dloss/dx"
    assert worst.worst_index == (1, 1)
    assert (worst.actual, worst.expected) == (5.5, 4.5)


def test_compare_results_engine_failures_fail() -> None:
    ref = result("symbolic", 1.0, x=[1.0])
    ours = result("numeric", 1.0, x=[1.0])
    ours.failures.append("gradient is not symmetric")
    c = compare_results(ours, ref, F64)
    assert all(k.ok for k in c.checks)
    assert not c.ok
    assert c.failures == ["gradient is not symmetric"]


def directional(direction: dict[str, list], derivative: float) -> Directional:
    return Directional({k: np.array(v, dtype=float) for k, v in direction.items()}, derivative)


def test_directional_derivatives_against_the_reference_gradient() -> None:
    ref = result("symbolic", 0.0, x=[[1.0, 2.0], [3.0, 4.0]], b=[10.0])
    ours = EngineResult("numeric", np.array(0.0), {})
    ours.directional = [
        directional({"x": [[1, 1], [1, 1]]}, 10.0),  # 1 + 2 + 3 + 4
        directional({"x": [[1, 0], [0, -1]], "b": [0.5]}, 2.0),  # 1 - 4 + 5
    ]
    c = compare_results(ours, ref, ENGINE_TOLERANCES["numeric"], "out")
    assert [k.what for k in c.checks] == ["value", "dout along 2 random directions"]
    assert c.ok


def test_directional_mismatch_says_which_direction() -> None:
    ref = result("symbolic", 0.0, x=[1.0, 2.0])
    ours = EngineResult("numeric", np.array(0.0), {})
    ours.directional = [directional({"x": [1, 0]}, 1.0), directional({"x": [0, 1]}, 2.5)]
    c = compare_results(ours, ref, F64, "out")
    assert not c.ok
    check = c.checks[-1]
    assert check.what == "dout along 2 random directions"
    assert check.worst_index == (1,)
    assert (check.actual, check.expected) == (2.5, 2.0)


def test_no_directional_check_without_reference_gradients() -> None:
    ref = EngineResult("torch", np.array(0.0), {})
    ours = EngineResult("numeric", np.array(0.0), {}, directional=[directional({"x": [1.0]}, 1.0)])
    c = compare_results(ours, ref, F64)
    assert [k.what for k in c.checks] == ["value"]


def test_engine_comparison_worst_prefers_a_failing_check() -> None:
    good = ArrayComparison("value", True, 1, max_rel=0.5)
    bad = ArrayComparison("dout/dx", False, 1, max_rel=0.1)
    assert EngineComparison("a", "b", [good, bad]).worst() is bad
    assert EngineComparison("a", "b", [good]).worst() is good
    assert EngineComparison("a", "b").worst() is None


def test_a_float32_engine_is_not_the_reference_while_a_float64_one_can_be() -> None:
    # symbolic gave up; torch ran at float32: autograd (float64) is the reference, and torch is
    # held to float32's tolerance (fuzz: autograd failed against a float32 torch reference)
    from click.testing import CliRunner

    from symcheck.cli import main

    expr = "logsumexp(log1p(maximum(w, sigmoid(w))^2)) + mean(3*w)"
    r = CliRunner().invoke(
        main,
        [
            "grad",
            expr,
            "-i",
            "w=[1,-1.5,-1.5,1.5]",
            "--dtype",
            "float32",
            "--engines",
            "autograd,torch,numeric",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "autograd  reference" in r.output


def test_an_engine_tolerance_loosens_to_a_coarser_dtype() -> None:
    from symcheck.checks.compare import default_tolerance

    assert default_tolerance("numeric", "float64").rtol == 1e-6
    assert default_tolerance("numeric", "float32").rtol >= default_tolerance("torch", "float32").rtol
