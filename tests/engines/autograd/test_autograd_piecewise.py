"""The piecewise ops (comparisons, where, maximum, minimum, clamp, max, min, index, take): values
against numpy, gradients against central differences away from ties and bounds, torch's
conventions exactly at them, and second derivatives through the masks."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest
from fd_checks import check_grad, check_second  # shared by the op tests

from symcheck.engines import autograd as T
from symcheck.engines.autograd.engine import AutogradEngine, evaluate, hessian
from symcheck.engines.autograd.tensor import Tensor
from symcheck.engines.base import EngineOptions, EngineResult, hessian_key
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse

Fn = Callable[..., Tensor]
ArrayLikeFloat = np.ndarray | list[float] | float
rng = np.random.default_rng(11)


def grads_of(fn: Fn, *arrays: ArrayLikeFloat) -> list[np.ndarray]:
    """d sum(fn(...)) / d each argument."""
    leaves = [Tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    return [g.data for g in T.grad(T.sum(fn(*leaves)), leaves)]


def away_from(x: np.ndarray, points: tuple[float, ...], margin: float = 0.05) -> np.ndarray:
    """x with every element within `margin` of one of `points` pushed 2 * margin past it, so that
    finite differences never straddle a kink."""
    x = x.copy()
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + 2 * margin
    return x


def program(text: str, **types: tuple[int, ...] | TensorType) -> Program:
    return bind(parse(text), {n: t if isinstance(t, TensorType) else TensorType(t) for n, t in types.items()})


def run(prog: Program, inputs: Mapping[str, np.ndarray], wrt: list[str], order: int = 1) -> EngineResult:
    return AutogradEngine().run(prog, inputs, wrt, EngineOptions(order=order))


def labels(*values: int) -> Tensor:
    return Tensor(np.array(values), dtype=np.int64)


# ---------------------------------------------------------------- comparisons

COMPARISONS = [
    (T.lt, np.less),
    (T.le, np.less_equal),
    (T.gt, np.greater),
    (T.ge, np.greater_equal),
    (T.eq, np.equal),
    (T.ne, np.not_equal),
]


@pytest.mark.parametrize(("op", "reference"), COMPARISONS, ids=[op.__name__ for op, _ in COMPARISONS])
def test_comparisons_give_constant_bools(op: Fn, reference: Callable[..., np.ndarray]) -> None:
    a = np.array([[-1.0, 0.0, 2.0], [3.0, 0.5, 0.0]])
    b = np.array([0.0, 0.0, 3.0])  # broadcast against each row
    out = op(Tensor(a, requires_grad=True), Tensor(b, requires_grad=True))
    assert out.dtype == np.bool_
    assert not out.requires_grad
    np.testing.assert_array_equal(out.data, reference(a, b))
    np.testing.assert_array_equal(op(Tensor(a), 0.5).data, reference(a, 0.5))
    assert op.__name__ in T.NONDIFFERENTIABLE


def test_bools_count_as_zero_and_one_in_arithmetic() -> None:
    x = Tensor(np.array([-1.0, 0.0, 2.0, 3.0]), requires_grad=True)
    positive = T.gt(x, 0)
    np.testing.assert_array_equal((positive + positive).data, [0.0, 0.0, 2.0, 2.0])  # not a logical or
    np.testing.assert_array_equal((-positive).data, [0.0, 0.0, -1.0, -1.0])
    np.testing.assert_array_equal(T.sum(positive).data, 2.0)
    y = T.sum(positive * x)
    assert y.item() == 5.0
    (g,) = T.grad(y, [x])  # only the factor x carries a gradient
    np.testing.assert_array_equal(g.data, [0.0, 0.0, 1.0, 1.0])


def test_a_bool_takes_the_float_dtype_of_its_partner() -> None:
    x = Tensor(np.array([-1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = T.gt(x, 0) * x
    assert y.dtype == np.float32
    T.sum(T.where(T.gt(x, 0), x, 0) + T.maximum(x, 0)).backward()
    assert x.grad is not None and x.grad.dtype == np.float32


def test_integer_comparisons_and_arithmetic_stay_integer() -> None:
    n = labels(0, 2, 5)
    assert T.ge(n, 2).dtype == np.bool_
    assert T.index(n, at=1).dtype == np.int64
    assert T.take(n, labels(2, 0)).dtype == np.int64


# ---------------------------------------------------------------- where


def test_where_values() -> None:
    cond = rng.normal(size=(3, 1)) > 0
    a = rng.normal(size=(1, 4))
    b = rng.normal(size=())
    np.testing.assert_array_equal(T.where(Tensor(cond, dtype=bool), a, b).data, np.where(cond, a, b))
    # A numeric condition is true where nonzero.
    np.testing.assert_array_equal(T.where(np.array([0.0, -2.0, 0.5]), 1.0, 7.0).data, [7.0, 1.0, 1.0])


def test_where_gradients_go_to_the_chosen_side() -> None:
    cond = Tensor(np.array([[True], [False], [True]]), dtype=bool)
    a, b = rng.normal(size=(1, 4)), rng.normal(size=(3, 4))
    check_grad(lambda a, b: T.where(cond, a**2, T.sin(b)), a, b)
    ga, gb = grads_of(lambda a, b: T.where(cond, a, b), a, b)
    np.testing.assert_array_equal(ga, np.full((1, 4), 2.0))  # two rows choose a, each passes g = 1
    np.testing.assert_array_equal(gb, np.repeat([[0.0], [1.0], [0.0]], 4, axis=1))


def test_where_gives_a_differentiable_condition_zero_gradient() -> None:
    c = Tensor(np.array([1.0, 0.0, -3.0]), requires_grad=True)
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    with np.errstate(invalid="ignore"):  # the value 0 * inf is nan; only the gradients matter here
        gc, ga = T.grad(T.sum(T.where(c, a, 0.0) * np.inf), [c, a])  # g = inf reaches where
    np.testing.assert_array_equal(gc.data, [0.0, 0.0, 0.0])  # zeros, not 0 * inf = nan
    np.testing.assert_array_equal(ga.data, [np.inf, 0.0, np.inf])


def test_where_second_derivative() -> None:
    x = away_from(rng.normal(size=(2, 3)), (0.0,))
    check_second(lambda x: T.where(T.gt(x, 0), x**3, T.exp(x) * x), x)


# ---------------------------------------------------------------- maximum and minimum


@pytest.mark.parametrize(("op", "reference"), [(T.maximum, np.maximum), (T.minimum, np.minimum)])
def test_maximum_minimum_values_and_gradients(op: Fn, reference: Callable[..., np.ndarray]) -> None:
    a, b = rng.normal(size=(2, 3)), rng.normal(size=3)
    b = b + np.where(np.abs(a - b).min(axis=0) < 0.05, 0.2, 0.0)  # no near-ties to straddle
    np.testing.assert_array_equal(op(Tensor(a), Tensor(b)).data, reference(a, b))
    check_grad(op, a, b)
    check_grad(lambda a: op(a, 0.1), away_from(a, (0.1,)))


@pytest.mark.parametrize("op", [T.maximum, T.minimum])
def test_ties_split_the_gradient_evenly(op: Fn) -> None:
    a, b = np.array([1.0, 2.0, 5.0]), np.array([1.0, 3.0, 4.0])
    ga, gb = grads_of(op, a, b)
    bigger = op is T.maximum
    np.testing.assert_array_equal(ga, [0.5, 0.0, 1.0] if bigger else [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.0] if bigger else [0.5, 0.0, 1.0])
    # maximum(x, x): the halves reach the same tensor, so its slope is 1.
    x = Tensor(a, requires_grad=True)
    (g,) = T.grad(T.sum(op(x, x)), [x])
    np.testing.assert_array_equal(g.data, [1.0, 1.0, 1.0])


def test_maximum_tie_against_a_broadcast_scalar() -> None:
    x = Tensor(np.array([0.0, 0.0, 1.0]), requires_grad=True)
    floor = Tensor(np.array(0.0), requires_grad=True)
    gx, gf = T.grad(T.sum(T.maximum(x, floor)), [x, floor])
    np.testing.assert_array_equal(gx.data, [0.5, 0.5, 1.0])
    assert gf.shape == () and gf.item() == 1.0  # two half shares, added up


def test_maximum_second_derivative() -> None:
    x = rng.normal(size=4)
    check_second(lambda x: T.maximum(x**2, T.sin(x)) + T.minimum(x**3, 0.3 * x), x)


# ---------------------------------------------------------------- clamp


@pytest.mark.parametrize(("lo", "hi"), [(-0.5, 0.5), (None, 0.3), (-0.2, None), (None, None)])
def test_clamp_values_and_gradients(lo: float | None, hi: float | None) -> None:
    x = rng.normal(size=(3, 4))
    x = away_from(x, tuple(b for b in (lo, hi) if b is not None))
    np.testing.assert_array_equal(T.clamp(x, min=lo, max=hi).data, np.clip(x, lo, hi))
    check_grad(lambda x: T.clamp(x, min=lo, max=hi) ** 2, x)
    (g,) = grads_of(lambda x: T.clamp(x, min=lo, max=hi), x)
    inside = (x >= (-np.inf if lo is None else lo)) & (x <= (np.inf if hi is None else hi))
    np.testing.assert_array_equal(g, inside.astype(float))


def test_clamp_has_slope_one_at_its_bounds() -> None:
    (g,) = grads_of(lambda x: T.clamp(x, min=-1.0, max=2.0), [-1.5, -1.0, 0.0, 2.0, 2.5])
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_clamp_with_crossed_bounds_is_max_everywhere() -> None:
    x = np.array([-1.0, 0.5, 3.0])
    np.testing.assert_array_equal(T.clamp(x, min=2.0, max=1.0).data, [1.0, 1.0, 1.0])  # torch's rule
    (g,) = grads_of(lambda x: T.clamp(x, min=2.0, max=1.0), x)
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])


def test_clamp_second_derivative() -> None:
    x = away_from(rng.normal(size=5), (-0.5, 0.5))
    check_second(lambda x: T.exp(T.clamp(x, min=-0.5, max=0.5)) * x, x)


# ---------------------------------------------------------------- max and min reductions

AXES: list[tuple[tuple[int, ...] | None, bool]] = [
    (None, False),
    (None, True),
    ((0,), False),
    ((1,), True),
    ((0, 2), False),
    ((2,), True),
]


@pytest.mark.parametrize(("axis", "keepdims"), AXES)
@pytest.mark.parametrize(("op", "reference"), [(T.max, np.max), (T.min, np.min)])
def test_max_min_values_and_gradients(
    op: Fn, reference: Callable[..., np.ndarray], axis: tuple[int, ...] | None, keepdims: bool
) -> None:
    x = rng.permutation(24).reshape(2, 3, 4) / 7.0  # distinct values: no ties
    out = op(Tensor(x), axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(out.data, reference(x, axis=axis, keepdims=keepdims))
    check_grad(lambda x: op(x, axis=axis, keepdims=keepdims), x)


def test_tied_maxima_share_the_gradient() -> None:
    (g,) = grads_of(T.max, [1.0, 3.0, 3.0])
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    (g,) = grads_of(T.min, [2.0, 2.0, 2.0, 5.0])
    np.testing.assert_allclose(g, [1 / 3, 1 / 3, 1 / 3, 0.0])
    x = np.array([[1.0, 4.0, 4.0], [2.0, 0.0, 1.0]])
    (g,) = grads_of(lambda x: T.max(x, axis=1), x)
    np.testing.assert_array_equal(g, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    (g,) = grads_of(lambda x: T.min(x, axis=(0,), keepdims=True), x)
    np.testing.assert_array_equal(g, [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])


def test_max_min_methods() -> None:
    x = rng.normal(size=(2, 3))
    np.testing.assert_array_equal(Tensor(x).max(axis=1).data, x.max(axis=1))
    np.testing.assert_array_equal(Tensor(x).min(keepdims=True).data, x.min(keepdims=True))


def test_max_second_derivative() -> None:
    x = rng.permutation(6).reshape(2, 3) / 3.0
    check_second(lambda x: T.max(x**3, axis=1) * T.min(T.sin(x), axis=(0, 1)), x)


# ---------------------------------------------------------------- index and take


def test_index_reads_a_row_and_scatters_its_gradient_back() -> None:
    x = rng.normal(size=(3, 2))
    np.testing.assert_array_equal(T.index(x, at=1).data, x[1])
    check_grad(lambda x: T.index(x, at=2) ** 2, x)
    (g,) = grads_of(lambda x: T.index(x, at=0), x)
    np.testing.assert_array_equal(g, [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])


def test_take_values_and_gradients() -> None:
    x = rng.normal(size=(4, 3))
    for y in (labels(3, 0, 2), Tensor(np.array(1), dtype=np.int64), [-1, 0]):
        rows = y.data if isinstance(y, Tensor) else np.asarray(y)
        np.testing.assert_array_equal(T.take(x, y).data, x[rows])
        check_grad(lambda x, y=y: T.take(x, y) ** 3, x)


def test_take_with_repeated_indices_accumulates() -> None:
    x = np.array([10.0, 20.0, 30.0])
    (g,) = grads_of(lambda x: T.take(x, labels(2, 0, 2, 2)), x)
    np.testing.assert_array_equal(g, [1.0, 0.0, 3.0])
    (g,) = grads_of(lambda x: T.take(x, labels(1, 1)) * np.array([2.0, 5.0]), x)
    np.testing.assert_array_equal(g, [0.0, 7.0, 0.0])


def test_take_second_derivative() -> None:
    x = rng.normal(size=(3, 2))
    check_second(lambda x: T.take(x, labels(0, 2, 0)) ** 3, x)


def test_index_add_is_the_adjoint_of_take() -> None:
    y = labels(1, 1, 0)
    h = rng.normal(size=(3, 2))
    out = T.index_add(h, y, n=4)
    expected = np.zeros((4, 2))
    np.add.at(expected, [1, 1, 0], h)
    np.testing.assert_array_equal(out.data, expected)
    check_grad(lambda h: T.index_add(h, y, n=4) ** 2, h)
    # <take(x, y), h> == <x, index_add(h, y)> for every x and h.
    x = rng.normal(size=(4, 2))
    assert np.isclose(np.sum(T.take(x, y).data * h), np.sum(x * out.data))


def test_take_out_of_range_reads_nan() -> None:
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(T.take(x, [0, 5]).data, [1.0, np.nan])
    assert np.isnan(T.take(labels(4, 5), 2).data)  # integer rows become float to hold nan
    (g,) = grads_of(lambda x: T.take(x, [5, 0]), x)
    np.testing.assert_array_equal(g, [1.0, 0.0])  # the index out of range is dropped
    with pytest.raises(TypeError, match="integer indices"):
        T.take(x, [0.5])


# ---------------------------------------------------------------- through the engine


def test_engine_comparison_times_input() -> None:
    prog = program("sum((x > 0) * x)", x=(4,))
    x = np.array([-1.0, 2.0, -3.0, 4.0])
    result = run(prog, {"x": x}, ["x"])
    assert float(result.value) == 6.0
    np.testing.assert_array_equal(result.grads["x"], [0.0, 1.0, 0.0, 1.0])


def test_engine_bool_output() -> None:
    prog = program("x >= y", x=(3,), y=(3,))
    _, out = evaluate(prog, {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([2.0, 2.0, 2.0])})
    np.testing.assert_array_equal(out.data, [False, True, True])


def test_engine_nested_index() -> None:
    prog = program("A[0, 1] * A[-1][2]", A=(2, 3))
    A = rng.normal(size=(2, 3))
    result = run(prog, {"A": A}, ["A"])
    assert float(result.value) == A[0, 1] * A[1, 2]
    expected = np.zeros((2, 3))
    expected[0, 1], expected[1, 2] = A[1, 2], A[0, 1]
    np.testing.assert_array_equal(result.grads["A"], expected)


def test_engine_take_with_int_input() -> None:
    prog = program("sum(W[y] ^ 2)", W=(3, 2), y=TensorType((4,), DType.INT))
    W, y = rng.normal(size=(3, 2)), np.array([2, 0, 2, 2])
    result = run(prog, {"W": W, "y": y}, ["W", "y"])
    assert set(result.grads) == {"W"}
    np.testing.assert_allclose(float(result.value), np.sum(W[y] ** 2))
    np.testing.assert_allclose(result.grads["W"], 2 * W * np.array([[1.0], [0.0], [3.0]]))


@pytest.mark.parametrize(
    "text",
    [
        "sum(where(x > 0, x^3, -x) + clamp(x, min=-0.5, max=None) * x)",
        "sum(maximum(x, 0.2) * minimum(x^2, 1)) + max(x) * min(x^2, axis=0)",
    ],
)
def test_engine_hessian_matches_differences(text: str) -> None:
    prog = program(text, x=(5,))
    x = away_from(rng.normal(size=5), (0.0, -0.5, 0.2, 1.0, -1.0))
    H = hessian(prog, {"x": x}, "x")

    def grad_at(x: np.ndarray) -> np.ndarray:
        return run(prog, {"x": x}, ["x"]).grads["x"]

    eps = 1e-6
    columns = [(grad_at(x + eps * e) - grad_at(x - eps * e)) / (2 * eps) for e in np.eye(5)]
    np.testing.assert_allclose(H, np.stack(columns, axis=1), rtol=1e-5, atol=1e-5)
    blocks = run(prog, {"x": x}, ["x"], order=2).hessian
    np.testing.assert_allclose(blocks[hessian_key("x", "x")], H, atol=1e-12)
