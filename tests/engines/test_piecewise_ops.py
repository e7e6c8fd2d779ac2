"""Comparisons, where, maximum/minimum, clamp, max/min reductions, index and take in the torch and
numeric engines: values against numpy, torch's gradients against finite differences away from ties
and bounds, and torch's own conventions at them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from symcheck.engines.base import Engine, EngineOptions, EngineResult, hessian_key
from symcheck.engines.numeric.engine import NumericEngine
from symcheck.engines.numeric.evaluator import forward
from symcheck.engines.torch.engine import Lowerer, TorchEngine
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse

Arrays = dict[str, np.ndarray]
ENGINES: dict[str, type[Engine]] = {"torch": TorchEngine, "numeric": NumericEngine}


def types_of(inputs: Arrays) -> dict[str, TensorType]:
    return {
        n: TensorType(np.shape(a), DType.INT if np.asarray(a).dtype.kind == "i" else DType.FLOAT)
        for n, a in inputs.items()
    }


def run(engine: str, text: str, inputs: Arrays, **options: int | str) -> EngineResult:
    program = bind(parse(text), types_of(inputs))
    wrt = [n for n, a in inputs.items() if np.asarray(a).dtype.kind == "f"]
    return ENGINES[engine]().run(program, inputs, wrt, EngineOptions(**options))


RNG = np.random.default_rng(5)
# Elements well apart from each other, from 0, from ±0.5 and from 1 (the bounds and thresholds used
# below), so that no finite-difference step crosses a tie or a kink.
X = np.array([[-1.3, 0.2, 0.8], [1.7, -0.3, 2.4]])
Y = np.array([[0.6, -0.9, 1.4], [1.1, 0.9, -2.0]])
V = np.array([-1.6, 0.3, 2.2, 0.7])
N = np.array([3, -1, 0, 2])  # an int tensor
ROWS = np.array([1, 0, 1])  # repeated: gradients add up
ROW = np.array(-1)  # a scalar index, counted from the end

# expression, inputs, the same thing in numpy
CASES: list[tuple[str, Arrays, Callable[..., np.ndarray]]] = [
    ("x < y", {"x": X, "y": Y}, lambda x, y: x < y),
    ("x <= y", {"x": X, "y": Y}, lambda x, y: x <= y),
    ("x > y", {"x": X, "y": Y}, lambda x, y: x > y),
    ("x >= y", {"x": X, "y": Y}, lambda x, y: x >= y),
    ("x == y", {"x": X, "y": Y}, lambda x, y: x == y),
    ("x != y", {"x": X, "y": Y}, lambda x, y: x != y),
    ("x == x", {"x": X}, lambda x: x == x),
    ("n < 1", {"n": N}, lambda n: n < 1),
    ("n == 2", {"n": N}, lambda n: n == 2),
    ("n >= n", {"n": N}, lambda n: n >= n),
    ("sum((x > 0) * x)", {"x": X}, lambda x: np.sum((x > 0) * x)),
    ("sum((x > y) + (x < 0))", {"x": X, "y": Y}, lambda x, y: np.sum((x > y) * 1.0 + (x < 0))),
    ("mean(n > 0)", {"n": N}, lambda n: np.mean(n > 0)),
    ("sum((n > 0) * v)", {"n": N, "v": V}, lambda n, v: np.sum((n > 0) * v)),
    ("where(x > 0, x, 2 * y)", {"x": X, "y": Y}, lambda x, y: np.where(x > 0, x, 2 * y)),
    ("where(y, x, -x)", {"x": X, "y": Y * (X > 0)}, lambda x, y: np.where(y != 0, x, -x)),
    ("where(n, v, 3)", {"n": N, "v": V}, lambda n, v: np.where(n != 0, v, 3.0)),
    ("maximum(x, y)", {"x": X, "y": Y}, lambda x, y: np.maximum(x, y)),
    ("minimum(x, y)", {"x": X, "y": Y}, lambda x, y: np.minimum(x, y)),
    ("maximum(x, 0.5)", {"x": X}, lambda x: np.maximum(x, 0.5)),
    ("minimum(v, n)", {"v": V, "n": N}, lambda v, n: np.minimum(v, n)),
    ("clamp(x, min=-0.5, max=1)", {"x": X}, lambda x: np.clip(x, -0.5, 1)),
    ("clamp(x, min=0.5)", {"x": X}, lambda x: np.maximum(x, 0.5)),
    ("clamp(x, max=0.5)", {"x": X}, lambda x: np.minimum(x, 0.5)),
    ("clamp(x)", {"x": X}, lambda x: x),
    ("max(x)", {"x": X}, lambda x: np.max(x)),
    ("min(x)", {"x": X}, lambda x: np.min(x)),
    ("max(x, axis=1)", {"x": X}, lambda x: np.max(x, axis=1)),
    ("min(x, axis=0, keepdims=True)", {"x": X}, lambda x: np.min(x, axis=0, keepdims=True)),
    ("max(x, axis=(0, 1), keepdims=True)", {"x": X}, lambda x: np.max(x, keepdims=True)),
    ("max(n)", {"n": N}, lambda n: np.max(n).astype(float)),
    ("x[0]", {"x": X}, lambda x: x[0]),
    ("x[-1]", {"x": X}, lambda x: x[-1]),
    ("x[1, 2]", {"x": X}, lambda x: x[1, 2]),
    ("v[2] * v", {"v": V}, lambda v: v[2] * v),
    ("n[0]", {"n": N}, lambda n: n[0]),
    ("x[r]", {"x": X, "r": ROWS}, lambda x, r: x[r]),
    ("x[s]", {"x": X, "s": ROW}, lambda x, s: x[s]),
    ("v[n]", {"v": V, "n": N}, lambda v, n: v[n]),
    ("n[r]", {"n": N, "r": ROWS}, lambda n, r: n[r]),
    ("sum(x[r] * y[r])", {"x": X, "y": Y, "r": ROWS}, lambda x, y, r: np.sum(x[r] * y[r])),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("text", "inputs", "f"), CASES, ids=IDS)
def test_values(engine: str, text: str, inputs: Arrays, f: Callable[..., np.ndarray]) -> None:
    r = run(engine, text, inputs)
    np.testing.assert_allclose(r.value, np.asarray(f(**inputs), dtype=np.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize(("text", "inputs", "f"), CASES, ids=IDS)
def test_torch_gradients_match_finite_differences(
    text: str, inputs: Arrays, f: Callable[..., np.ndarray]
) -> None:
    exact, numeric = run("torch", text, inputs), run("numeric", text, inputs)
    assert exact.grads.keys() == numeric.grads.keys()
    for name, grad in exact.grads.items():
        np.testing.assert_allclose(grad, numeric.grads[name], rtol=1e-8, atol=1e-9, err_msg=name)


def test_comparisons_give_bools_in_both_engines() -> None:
    """A comparison's result is bool; the engines make it 0/1 only where it meets arithmetic."""
    program = bind(parse("b = n < 1; c = x > 0; out = sum(b * c)"), types_of({"n": N, "x": V}))
    env = forward(program, {"n": N, "x": V})
    assert env["b"].dtype == np.bool_ and env["c"].dtype == np.bool_
    assert float(env["out"]) == np.sum((N < 1) & (V > 0))
    lowerer = Lowerer(torch.float32, torch.device("cpu"))
    lowerer.env["n"] = torch.as_tensor(N)
    lowerer.env["x"] = torch.as_tensor(V, dtype=torch.float32)
    for step in program.steps:
        lowerer.env[step.id] = lowerer.node(step.expr)
    assert lowerer.env["b"].dtype == torch.bool and lowerer.env["c"].dtype == torch.bool
    assert lowerer.env["out"].dtype == torch.float32


def test_int_comparisons_stay_exact() -> None:
    # 2^53 + 1 is not a float64: as floats the two would compare equal.
    big = np.array([2**53 + 1, 5])
    other = np.array([2**53, 5])
    for engine in ENGINES:
        r = run(engine, "n == m", {"n": big, "m": other})
        np.testing.assert_array_equal(r.value, [0.0, 1.0], err_msg=engine)


# ---------------------------------------------------------------- torch's conventions at ties and bounds


def test_maximum_and_minimum_split_ties_evenly() -> None:
    a = np.array([1.0, 2.0, -3.0])
    b = np.array([1.0, 0.0, -3.0])
    for op in ("maximum", "minimum"):
        r = run("torch", f"sum({op}(a, b))", {"a": a, "b": b})
        win = (a > b) if op == "maximum" else (a < b)
        np.testing.assert_array_equal(r.grads["a"], np.where(a == b, 0.5, win), err_msg=op)
        np.testing.assert_array_equal(r.grads["b"], np.where(a == b, 0.5, ~win & (a != b)), err_msg=op)
    # Both halves land on x: maximum(x, x) = x has gradient 1.
    r = run("torch", "sum(maximum(x, x))", {"x": a})
    np.testing.assert_array_equal(r.grads["x"], np.ones(3))


def test_max_and_min_reductions_share_tied_gradient() -> None:
    r = run("torch", "max(x)", {"x": np.array([1.0, 3.0, 3.0])})
    np.testing.assert_array_equal(r.grads["x"], [0.0, 0.5, 0.5])
    r = run("torch", "min(x)", {"x": np.array([2.0, 2.0, 2.0, 5.0])})
    np.testing.assert_allclose(r.grads["x"], [1 / 3, 1 / 3, 1 / 3, 0.0], rtol=1e-15)
    # Per slice: the ties of each row share that row's gradient.
    r = run("torch", "sum(max(x, axis=1))", {"x": np.array([[1.0, 1.0], [0.0, 4.0]])})
    np.testing.assert_array_equal(r.grads["x"], [[0.5, 0.5], [0.0, 1.0]])


def test_clamp_passes_the_gradient_at_its_bounds() -> None:
    x = np.array([-1.0, -0.5, 0.0, 1.0, 2.0])
    r = run("torch", "sum(clamp(x, min=-0.5, max=1))", {"x": x})
    np.testing.assert_array_equal(r.grads["x"], [0.0, 1.0, 1.0, 1.0, 0.0])
    r = run("torch", "sum(clamp(x, min=0))", {"x": x})
    np.testing.assert_array_equal(r.grads["x"], [0.0, 0.0, 1.0, 1.0, 1.0])


def test_comparisons_have_no_gradient() -> None:
    r = run("torch", "sum((x > y) * 2 + (x == x))", {"x": X, "y": Y})
    for name in ("x", "y"):
        np.testing.assert_array_equal(r.grads[name], np.zeros_like(X), err_msg=name)


def test_take_accumulates_repeated_indices() -> None:
    x = np.array([1.0, 2.0, 3.0])
    r = run("torch", "sum(x[r] * w)", {"x": x, "r": np.array([2, 0, 2, 2]), "w": np.array([1.0, 2, 3, 4])})
    np.testing.assert_array_equal(r.grads["x"], [2.0, 0.0, 8.0])
    np.testing.assert_array_equal(r.grads["w"], [3.0, 1.0, 3.0, 3.0])


def test_where_with_a_float_condition() -> None:
    """A float condition holds where it is nonzero, negative values included; it gets no gradient."""
    c = np.array([0.0, -2.0, 0.5, 0.0])
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([10.0, 20.0, 30.0, 40.0])
    for engine in ENGINES:
        r = run(engine, "sum(where(c, a * a, b))", {"c": c, "a": a, "b": b})
        np.testing.assert_allclose(r.value, 10 + 4 + 9 + 40, rtol=1e-12, err_msg=engine)
        np.testing.assert_allclose(r.grads["a"], [0.0, 4.0, 6.0, 0.0], atol=1e-9, err_msg=engine)
        np.testing.assert_allclose(r.grads["b"], [1.0, 0.0, 0.0, 1.0], atol=1e-9, err_msg=engine)
        np.testing.assert_allclose(r.grads["c"], np.zeros(4), atol=1e-9, err_msg=engine)


def test_out_of_range_take_is_nan_in_both_engines() -> None:
    inputs = {"v": V, "r": np.array([4, 0])}
    for engine in ENGINES:
        r = run(engine, "v[r]", inputs)
        np.testing.assert_array_equal(r.value, [np.nan, V[0]], err_msg=engine)
        assert np.all(np.isnan(r.jacobians["v"][0])), engine  # the row of the index out of range


# ---------------------------------------------------------------- second derivatives


SECOND_ORDER: list[tuple[str, Arrays, Callable[..., dict[str, np.ndarray]]]] = [
    (
        "sum(where(x > 0, x^3, 2 * x^2))",
        {"x": V},
        lambda x: {"x,x": np.diag(np.where(x > 0, 6 * x, 4.0))},
    ),
    (
        "sum(maximum(a, b)^2 * a)",
        {"a": V, "b": V[::-1].copy()},
        # f = m^2 a with m = max(a, b): where a wins, a^3; where b wins, b^2 a.
        lambda a, b: {
            "a,a": np.diag(np.where(a > b, 6 * a, 0.0)),
            "a,b": np.diag(np.where(a > b, 0.0, 2 * b)),
            "b,b": np.diag(np.where(a > b, 0.0, 2 * a)),
        },
    ),
    (
        "max(x * x)",
        {"x": V},
        lambda x: {"x,x": np.diag(np.where(np.arange(4) == np.argmax(x * x), 2.0, 0.0))},
    ),
]


@pytest.mark.parametrize(("text", "inputs", "hessian"), SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_second_derivatives_through_piecewise_ops(
    text: str, inputs: Arrays, hessian: Callable[..., dict[str, np.ndarray]]
) -> None:
    expected = hessian(**inputs)
    exact = run("torch", text, inputs, order=2)
    numeric = run("numeric", text, inputs, order=2)
    for key, block in expected.items():
        np.testing.assert_allclose(exact.hessian[key], block, rtol=1e-12, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(numeric.hessian[key], block, rtol=1e-6, atol=1e-6, err_msg=key)
    a, b = next(iter(expected)).split(",")
    assert exact.hessian.keys() == numeric.hessian.keys()
    assert hessian_key(a, b) in exact.hessian
