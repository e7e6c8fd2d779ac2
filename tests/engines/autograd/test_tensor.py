"""Every primitive's gradient against a central finite difference, first and second order."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from symcheck.engines import autograd as T
from symcheck.engines.autograd.tensor import Tensor

Fn = Callable[..., Tensor]


def central_difference(
    f: Callable[..., float], arrays: Sequence[np.ndarray], i: int, eps: float
) -> np.ndarray:
    """d f / d arrays[i], element by element: (f(x + eps) - f(x - eps)) / (2 eps)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]  # 0-d arrays, not numpy scalars
    out = np.zeros_like(arrays[i])
    for idx in np.ndindex(arrays[i].shape):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[i][idx] += eps
        minus[i][idx] -= eps
        out[idx] = (f(*plus) - f(*minus)) / (2 * eps)
    return out


def weights(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    # Random weights turn a tensor-valued op into a scalar that depends on every output element.
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape)


def check_grad(fn: Fn, *arrays: np.ndarray, tol: float = 1e-6) -> None:
    w = weights(fn(*(Tensor(a) for a in arrays)).shape)

    def loss(*xs: np.ndarray) -> float:
        return T.sum(fn(*(Tensor(x) for x in xs)) * w).item()

    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    grads = T.grad(T.sum(fn(*leaves) * w), leaves)
    for i, g in enumerate(grads):
        assert g.shape == arrays[i].shape
        expected = central_difference(loss, arrays, i, 1e-6)
        np.testing.assert_allclose(g.data, expected, rtol=tol, atol=tol, err_msg=f"argument {i}")


def check_second(fn: Fn, *arrays: np.ndarray, tol: float = 1e-5) -> None:
    """The gradient of <grad f, v> (a Hessian-vector product) against differences of grad f."""
    w = weights(fn(*(Tensor(a) for a in arrays)).shape)
    vs = [weights(a.shape, seed=2 + i) for i, a in enumerate(arrays)]

    def first(*xs: np.ndarray, create_graph: bool = False) -> tuple[list[Tensor], list[Tensor]]:
        leaves = [Tensor(x, requires_grad=True) for x in xs]
        return leaves, T.grad(T.sum(fn(*leaves) * w), leaves, create_graph=create_graph)

    def directional(*xs: np.ndarray) -> float:
        return sum(float(np.sum(g.data * v)) for g, v in zip(first(*xs)[1], vs, strict=True))

    leaves, grads = first(*arrays, create_graph=True)
    hvp = T.grad(sum((T.sum(g * v) for g, v in zip(grads, vs, strict=True)), start=Tensor(0.0)), leaves)
    for i, h in enumerate(hvp):
        expected = central_difference(directional, arrays, i, 1e-5)
        np.testing.assert_allclose(h.data, expected, rtol=tol, atol=tol, err_msg=f"argument {i}")


rng = np.random.default_rng(0)


def away_from_zero(shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


ANY = (-2.0, 2.0)
POSITIVE = (0.3, 3.0)
UNARY: list[tuple[str, Fn, tuple[float, float] | None]] = [
    ("neg", T.neg, ANY),
    ("exp", T.exp, ANY),
    ("log", T.log, POSITIVE),
    ("log1p", T.log1p, (-0.8, 3.0)),
    ("sqrt", T.sqrt, POSITIVE),
    ("sin", T.sin, ANY),
    ("cos", T.cos, ANY),
    ("tan", T.tan, (-1.2, 1.2)),
    ("tanh", T.tanh, ANY),
    ("sigmoid", T.sigmoid, (-5.0, 5.0)),
    ("softplus", T.softplus, (-5.0, 5.0)),
    ("relu", T.relu, None),  # None: away from the kink at 0
    ("abs", T.abs, None),
    ("sign", T.sign, None),
    ("step", T.step, None),
]


def unary_input(domain: tuple[float, float] | None) -> np.ndarray:
    return away_from_zero((3, 4)) if domain is None else rng.uniform(*domain, (3, 4))


@pytest.mark.parametrize(("name", "fn", "domain"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_gradient(name: str, fn: Fn, domain: tuple[float, float] | None) -> None:
    check_grad(fn, unary_input(domain))


@pytest.mark.parametrize(("name", "fn", "domain"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_second_derivative(name: str, fn: Fn, domain: tuple[float, float] | None) -> None:
    check_second(fn, unary_input(domain))


BROADCAST_SHAPES = [
    ((3, 1), (1, 4)),
    ((), (3, 4)),
    ((4,), (3, 4)),
    ((3, 4), ()),
    ((2, 3, 4), (3, 1)),
    ((3, 4), (3, 4)),
]
BINARY: list[tuple[str, Fn]] = [
    ("add", T.add),
    ("sub", T.sub),
    ("mul", T.mul),
    ("div", T.div),
    ("pow", T.pow),
    ("operators", lambda x, y: (x + y) * x - y / (x * x + 1) ** y),
]


def binary_inputs(name: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    a, b = shapes
    if name in ("pow", "operators"):  # a real power needs a positive base
        return rng.uniform(0.5, 2.0, a), rng.uniform(-1.5, 1.5, b)
    return rng.uniform(-2.0, 2.0, a), away_from_zero(b)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize(("name", "fn"), BINARY, ids=[b[0] for b in BINARY])
def test_binary_gradient_with_broadcasting(name: str, fn: Fn, shapes: tuple[tuple[int, ...], ...]) -> None:
    check_grad(fn, *binary_inputs(name, shapes))


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize(("name", "fn"), BINARY, ids=[b[0] for b in BINARY])
def test_binary_second_derivative(name: str, fn: Fn, shapes: tuple[tuple[int, ...], ...]) -> None:
    check_second(fn, *binary_inputs(name, shapes))


@pytest.mark.parametrize("exponent", [3.0, 2, 1, 0.5, -2, 0])
def test_pow_with_constant_exponent(exponent: float) -> None:
    x = rng.uniform(0.5, 2.0, (3,))
    check_grad(lambda t: t**exponent, x)
    check_second(lambda t: t**exponent, x)


@pytest.mark.parametrize(("exponent", "slope"), [(3, 0.0), (2, 0.0), (1, 1.0), (0, 0.0)])
def test_pow_at_zero_base_has_no_nan(exponent: int, slope: float) -> None:
    x = Tensor(np.zeros(2), requires_grad=True)
    T.sum(x**exponent).backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.data, [slope, slope])


def test_constant_base_power() -> None:
    check_grad(lambda t: 2.0**t, rng.uniform(-1, 1, (3,)))


MATMUL_SHAPES = [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradient(shapes: tuple[tuple[int, ...], ...]) -> None:
    a, b = (rng.normal(size=s) for s in shapes)
    check_grad(T.matmul, a, b)
    check_grad(lambda x, y: x @ y, a, b)
    check_second(lambda x, y: T.sin(x @ y), a, b)


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_against_a_constant_operand(shapes: tuple[tuple[int, ...], ...]) -> None:
    a, b = (rng.normal(size=s) for s in shapes)
    check_grad(lambda x: x @ b, a)
    check_grad(lambda y: a @ y, b)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0,), (0, 2), (2, 0), (0, 1, 2)], ids=str)
@pytest.mark.parametrize("op", [T.sum, T.mean], ids=["sum", "mean"])
def test_reduction_gradient(op: Fn, axis: int | tuple[int, ...] | None, keepdims: bool) -> None:
    x = rng.normal(size=(2, 3, 4))
    expected_shape = np.sum(x, axis=axis, keepdims=keepdims).shape
    assert op(Tensor(x), axis=axis, keepdims=keepdims).shape == expected_shape
    check_grad(lambda t: op(t, axis=axis, keepdims=keepdims), x)
    check_second(lambda t: op(t * t, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (-1, 0, 1)], ids=str)
def test_transpose_gradient(axes: tuple[int, ...] | None) -> None:
    x = rng.normal(size=(2, 3, 4))
    check_grad(lambda t: T.transpose(t, axes=axes), x)
    check_second(lambda t: T.transpose(t * t, axes=axes), x)


def test_transpose_property_reverses_axes() -> None:
    x = rng.normal(size=(2, 3))
    np.testing.assert_array_equal(Tensor(x).T.data, x.T)
    check_grad(lambda t: t.T, x)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_expand_dims_gradient(axis: int) -> None:
    x = rng.normal(size=(2, 3))
    assert T.expand_dims(Tensor(x), axis=axis).shape == np.expand_dims(x, axis).shape
    check_grad(lambda t: T.expand_dims(t, axis=axis), x)
    check_second(lambda t: T.expand_dims(t * t, axis=axis), x)


def test_broadcast_to_gradient() -> None:
    check_grad(lambda t: T.broadcast_to(t, shape=(2, 3, 4)), rng.normal(size=(3, 1)))


@pytest.mark.parametrize(
    ("shape", "target"), [((3, 1), (3, 4)), ((4,), (2, 3, 4)), ((), (2,)), ((1, 1), (1, 1))]
)
def test_unbroadcast_sums_the_copies(shape: tuple[int, ...], target: tuple[int, ...]) -> None:
    g = rng.normal(size=target)
    out = T.unbroadcast(Tensor(g), shape)
    assert out.shape == shape
    # Broadcasting x to `target` and pairing with g is the same as pairing x with unbroadcast(g).
    x = rng.normal(size=shape)
    np.testing.assert_allclose(np.sum(np.broadcast_to(x, target) * g), np.sum(x * out.data))


# ---------------------------------------------------------------- the seed example


def test_seed_example() -> None:
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    out = T.mean(3 * (x + 2) ** 2)
    out.backward()
    assert out.item() == 27.0
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.data, np.full((2, 2), 4.5))


# ---------------------------------------------------------------- backward() and .grad


def test_backward_accumulates_until_zero_grad() -> None:
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    T.sum(x * x).backward()
    T.sum(x * x).backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.data, 2 * (2 * x.data))
    x.zero_grad()
    assert x.grad is None
    T.sum(x * x).backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)


def test_backward_reaches_leaves_only() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))  # a constant: requires_grad=False
    y = x * c
    T.sum(y).backward()
    assert y.grad is None and c.grad is None
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])


def test_leaves_get_their_own_grad_arrays() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    y = Tensor(np.ones(2), requires_grad=True)
    T.sum(x + y).backward()
    assert x.grad is not None and y.grad is not None
    x.grad.data[:] = 0.0
    np.testing.assert_array_equal(y.grad.data, [1.0, 1.0])


def test_a_tensor_used_twice_gets_both_contributions() -> None:
    x = Tensor(np.array(3.0), requires_grad=True)
    (x * x + x).backward()
    assert x.grad is not None and x.grad.item() == 7.0


def test_backward_with_an_explicit_cotangent() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).backward(np.array([1.0, 10.0]))
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.data, [2.0, 40.0])


def test_backward_needs_a_cotangent_for_a_non_scalar() -> None:
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        T.sum(Tensor(np.ones(3))).backward()


def test_backward_create_graph_gives_a_differentiable_grad() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    T.sum(x**3).backward(create_graph=True)
    assert x.grad is not None and x.grad.requires_grad
    g = x.grad
    x.zero_grad()
    T.sum(g).backward()  # d/dx sum(3 x^2) = 6 x
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_second_derivatives_of_sum_of_cubes() -> None:
    x = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    (g,) = T.grad(T.sum(x**3), [x], create_graph=True)
    np.testing.assert_allclose(g.data, 3 * x.data**2)
    rows = [T.grad(T.sum(g * np.eye(3)[i]), [x])[0].data for i in range(3)]
    np.testing.assert_allclose(np.stack(rows), np.diag(6 * x.data))
    (third,) = T.grad(T.sum(T.grad(T.sum(g), [x], create_graph=True)[0]), [x])
    np.testing.assert_allclose(third.data, np.full(3, 6.0))


def test_grad_of_an_unused_input_is_zero() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = Tensor(np.ones(4), requires_grad=True)
    gx, gy = T.grad(T.sum(x), [x, y])
    np.testing.assert_array_equal(gx.data, np.ones((2, 3)))
    np.testing.assert_array_equal(gy.data, np.zeros(4))


def test_no_grad_records_nothing() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    with T.no_grad():
        y = T.exp(x) * 2
    assert not y.requires_grad
    assert T.exp(x).requires_grad


def test_a_long_chain_does_not_hit_the_recursion_limit() -> None:
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() + 100):
        y = y + x
    y.backward()
    assert x.grad is not None and x.grad.item() == sys.getrecursionlimit() + 101


# ---------------------------------------------------------------- kinks and non-differentiable ops


def test_relu_and_abs_have_zero_slope_at_zero() -> None:
    x = Tensor(np.array([-1.0, 0.0, 1.0]), requires_grad=True)
    T.sum(T.relu(x)).backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 1.0])
    x.zero_grad()
    T.sum(T.abs(x)).backward()
    np.testing.assert_array_equal(x.grad.data, [-1.0, 0.0, 1.0])


def test_sign_and_step_are_constants() -> None:
    constants = {"sign", "step", "detach", "floor", "ceil", "round", "lt", "le", "gt", "ge", "eq", "ne"}
    assert frozenset(constants) == T.NONDIFFERENTIABLE
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    for op in (T.sign, T.step, T.TABLE["floor"], T.TABLE["ceil"], T.TABLE["round"]):
        assert not op(x).requires_grad
        (g,) = T.grad(T.sum(op(x) * x), [x])  # only the factor x carries a gradient
        np.testing.assert_array_equal(g.data, op(x).data)
    np.testing.assert_array_equal(T.step(x).data, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(T.sign(x).data, [-1.0, 0.0, 1.0])


def test_rule_table_covers_every_primitive() -> None:
    assert set(T.VJPS) == set(T.PRIMITIVES)
    binary = {"add", "sub", "mul", "div", "pow", "matmul", "lt", "le", "gt", "ge", "eq", "ne"}
    binary |= {"maximum", "minimum", "take", "index_add", "atan2", "gather", "index_select", "solve"}
    constants = {"pi", "e"}  # no argument, no rule
    variadic = {"einsum"}  # one rule taking the argument's position
    for name, rules in T.VJPS.items():
        if name in variadic:
            assert callable(rules) and callable(T.JVPS[name]), name
            continue
        ternary = name in ("where", "scatter_add")
        expected = 0 if name in constants else 3 if ternary else 2 if name in binary else 1
        assert len(rules) == expected, name


# ---------------------------------------------------------------- numerics and dtypes


def test_sigmoid_and_softplus_are_stable_in_the_tails() -> None:
    x = Tensor(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = T.sigmoid(x)
        sp = T.softplus(x)
        T.sum(s + sp).backward()
    np.testing.assert_allclose(
        s.data[1:4], [np.exp(-40.0) / (1 + np.exp(-40.0)), 0.5, 1 / (1 + np.exp(-40.0))]
    )
    assert s.data[0] == 0.0 and s.data[4] == 1.0
    np.testing.assert_allclose(sp.data, [0.0, np.log1p(np.exp(-40.0)), np.log(2.0), 40.0, 1000.0])
    assert x.grad is not None and np.all(np.isfinite(x.grad.data))


def test_float32_stays_float32() -> None:
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = T.sum(T.exp(x * 2 + 1) / 3)
    assert y.dtype == np.float32
    y.backward()
    assert x.grad is not None and x.grad.dtype == np.float32


def test_default_dtype_is_float64() -> None:
    assert Tensor(1).dtype == np.float64
    assert Tensor([1, 2]).dtype == np.float64
    assert (Tensor([1.0]) + 1).dtype == np.float64


def test_numpy_arrays_on_the_left_defer_to_tensor() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    y = np.array([2.0, 3.0]) * x + np.array([1.0, 1.0])
    assert isinstance(y, Tensor) and y.requires_grad


def test_methods_and_operators_match_the_functions() -> None:
    x = rng.normal(size=(2, 3))
    t = Tensor(x)
    np.testing.assert_allclose(t.sum(axis=0).data, x.sum(axis=0))
    np.testing.assert_allclose(t.mean(axis=(0, 1), keepdims=True).data, x.mean(keepdims=True))
    np.testing.assert_allclose(t.transpose((1, 0)).data, x.T)
    np.testing.assert_allclose(abs(-t).data, np.abs(x))
    np.testing.assert_allclose((1 - t / 2).data, 1 - x / 2)
    np.testing.assert_allclose((x.T @ t).data, x.T @ x)
