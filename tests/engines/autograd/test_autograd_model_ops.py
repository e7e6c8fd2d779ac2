"""The model ops (softmax, log_softmax, logsumexp, outer, dot, trace, mse_loss, onehot, nll_loss,
cross_entropy): values against numpy formulas, gradients against central differences, second
derivatives, and the closed forms of a softmax classifier's gradients."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest
from fd_checks import central_difference, check_grad, check_second  # shared by the op tests

from symcheck.engines import autograd as T
from symcheck.engines.autograd.engine import AutogradEngine, evaluate, gradient_tensors, hessian
from symcheck.engines.autograd.tensor import Tensor
from symcheck.engines.base import EngineOptions, EngineResult
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse

Fn = Callable[..., Tensor]
rng = np.random.default_rng(7)


def labels(*values: int) -> Tensor:
    """Class labels (N,), as the engine hands them over: an int64 tensor."""
    return Tensor(np.array(values), dtype=np.int64)


def label(value: int) -> Tensor:
    """One class label, a scalar int64 tensor."""
    return Tensor(np.array(value), dtype=np.int64)


OPTIONS = EngineOptions()


def program(text: str, **types: tuple[int, ...] | TensorType) -> Program:
    return bind(parse(text), {n: t if isinstance(t, TensorType) else TensorType(t) for n, t in types.items()})


def run(prog: Program, inputs: Mapping[str, np.ndarray], wrt: list[str]) -> EngineResult:
    return AutogradEngine().run(prog, inputs, wrt, OPTIONS)


def engine_difference(prog: Program, inputs: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    def value(x: np.ndarray) -> float:
        return float(run(prog, {**inputs, name: x}, wrt=[]).value)

    return central_difference(value, np.asarray(inputs[name], dtype=np.float64))


def np_logsumexp(x: np.ndarray, axis: int | tuple[int, ...] | None, keepdims: bool = False) -> np.ndarray:
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return np.exp(x) / np.sum(np.exp(x), axis=axis, keepdims=True)


X1 = rng.normal(size=4)
X2 = rng.normal(size=(3, 4))
X3 = rng.normal(size=(2, 3, 2))
DIM_CASES = [(X1, 0), (X2, 0), (X2, 1), (X3, 1), (X3, 2)]
DIM_IDS = ["1d", "2d-axis0", "2d-axis1", "3d-axis1", "3d-axis2"]

# ---------------------------------------------------------------- softmax and log_softmax


@pytest.mark.parametrize(("x", "axis"), DIM_CASES, ids=DIM_IDS)
def test_softmax_and_log_softmax_values(x: np.ndarray, axis: int) -> None:
    np.testing.assert_allclose(T.softmax(x, axis=axis).data, np_softmax(x, axis), rtol=1e-12)
    np.testing.assert_allclose(T.log_softmax(x, axis=axis).data, np.log(np_softmax(x, axis)), rtol=1e-12)
    np.testing.assert_allclose(T.softmax(x, axis=axis).data.sum(axis=axis), 1.0)


@pytest.mark.parametrize(("x", "axis"), DIM_CASES, ids=DIM_IDS)
@pytest.mark.parametrize("op", [T.softmax, T.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_and_log_softmax_gradients(op: Fn, x: np.ndarray, axis: int) -> None:
    check_grad(lambda t: op(t, axis=axis), x)


def test_the_default_axis_is_the_last() -> None:
    np.testing.assert_allclose(T.softmax(X2).data, np_softmax(X2, 1))
    check_grad(T.log_softmax, X2)


def test_softmax_and_log_softmax_are_stable() -> None:
    x = Tensor(np.array([1000.0, 1000.0, -1000.0]), requires_grad=True)
    np.testing.assert_allclose(T.softmax(x).data, [0.5, 0.5, 0.0])
    # log(softmax) would give -inf in the last place; log_softmax is exact there.
    np.testing.assert_allclose(T.log_softmax(x).data, [-np.log(2), -np.log(2), -2000.0 - np.log(2)])
    T.sum(T.log_softmax(x) * np.array([1.0, 2.0, 3.0])).backward()
    assert x.grad is not None and np.all(np.isfinite(x.grad.data))


# ---------------------------------------------------------------- logsumexp

LSE_CASES = [
    (X1, None, False),
    (X1, 0, True),
    (X2, None, True),
    (X2, 0, False),
    (X2, 1, True),
    (X2, (0, 1), False),
    (X3, (0, 2), False),
    (X3, -1, True),
]


@pytest.mark.parametrize(("x", "axis", "keepdims"), LSE_CASES)
def test_logsumexp_value(x: np.ndarray, axis: int | tuple[int, ...] | None, keepdims: bool) -> None:
    out = T.logsumexp(x, axis=axis, keepdims=keepdims)
    expected = np_logsumexp(x, axis, keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


@pytest.mark.parametrize(("x", "axis", "keepdims"), LSE_CASES)
def test_logsumexp_gradient(x: np.ndarray, axis: int | tuple[int, ...] | None, keepdims: bool) -> None:
    check_grad(lambda t: T.logsumexp(t, axis=axis, keepdims=keepdims), x)


def test_logsumexp_is_stable() -> None:
    x = np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [-np.inf, -np.inf]])
    with np.errstate(divide="ignore"):
        out = T.logsumexp(x, axis=1).data
    np.testing.assert_allclose(out[:2], [1000.0 + np.log(2), -1000.0 + np.log1p(np.exp(-1.0))])
    assert out[2] == -np.inf  # log(0), not nan
    assert T.logsumexp(np.array([np.inf, 0.0])).item() == np.inf


def test_logsumexp_gradient_is_softmax() -> None:
    x = Tensor(X2, requires_grad=True)
    T.sum(T.logsumexp(x, axis=1)).backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.data, np_softmax(X2, 1), rtol=1e-12)


# ---------------------------------------------------------------- second derivatives


@pytest.mark.parametrize(("x", "axis"), DIM_CASES, ids=DIM_IDS)
@pytest.mark.parametrize(
    "op",
    [T.softmax, T.log_softmax, lambda t, axis: T.logsumexp(t, axis=axis)],
    ids=["softmax", "log_softmax", "logsumexp"],
)
def test_second_derivatives(op: Callable[..., Tensor], x: np.ndarray, axis: int) -> None:
    check_second(lambda t: op(t, axis=axis), x)


def test_hessian_of_logsumexp_is_diag_s_minus_s_s_transposed() -> None:
    x = Tensor(X1, requires_grad=True)
    (g,) = T.grad(T.logsumexp(x), [x], create_graph=True)
    rows = [T.grad(g * np.eye(4)[i], [x], grad_output=np.ones(4))[0].data for i in range(4)]
    s = np_softmax(X1, 0)
    np.testing.assert_allclose(np.stack(rows), np.diag(s) - np.outer(s, s), atol=1e-12)


def test_hessian_of_cross_entropy_through_the_engine() -> None:
    # d²/dz² of -log_softmax(z)[y] = diag(s) - s s^T: the label drops out.
    z = rng.normal(size=3)
    for y in (0, 2):
        prog = program("nll_loss(log_softmax(z), y)", z=(3,), y=TensorType((), DType.INT))
        h = hessian(prog, {"z": z, "y": np.array(y)}, "z")
        s = np_softmax(z, 0)
        np.testing.assert_allclose(h, np.diag(s) - np.outer(s, s), atol=1e-12)


# ---------------------------------------------------------------- outer, dot, trace


def test_outer_dot_trace_values() -> None:
    a, b, A = rng.normal(size=3), rng.normal(size=4), rng.normal(size=(3, 3))
    np.testing.assert_allclose(T.outer(a, b).data, np.outer(a, b))
    assert T.dot(a, a[::-1]).shape == ()
    np.testing.assert_allclose(T.dot(a, a[::-1]).item(), np.dot(a, a[::-1]))
    np.testing.assert_allclose(T.trace(A).item(), np.trace(A))


def test_outer_dot_trace_gradients() -> None:
    a, b, A = rng.normal(size=3), rng.normal(size=4), rng.normal(size=(3, 3))
    check_grad(T.outer, a, b)
    check_grad(T.dot, a, b[:3])
    check_grad(T.trace, A)
    x = Tensor(A, requires_grad=True)
    T.trace(x).backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.data, np.eye(3))


def test_outer_and_dot_take_vectors() -> None:
    with pytest.raises(ValueError, match="1-D"):
        T.outer(X2, X1)
    with pytest.raises(ValueError, match="1-D"):
        T.dot(X1, X2)


# ---------------------------------------------------------------- mse_loss


@pytest.mark.parametrize(("sa", "sb"), [((4,), (4,)), ((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4))])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_loss(sa: tuple[int, ...], sb: tuple[int, ...], reduction: str) -> None:
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    squared = (a - b) ** 2
    expected = squared.mean() if reduction == "mean" else squared.sum()
    np.testing.assert_allclose(T.mse_loss(a, b, reduction=reduction).item(), expected, rtol=1e-12)
    check_grad(lambda x, y: T.mse_loss(x, y, reduction=reduction), a, b)


def test_reduction_must_be_mean_or_sum() -> None:
    with pytest.raises(ValueError, match="reduction"):
        T.mse_loss(X1, X1, reduction="max")
    with pytest.raises(ValueError, match="reduction"):
        T.nll_loss(X1, label(0), reduction="none")


# ---------------------------------------------------------------- onehot


@pytest.mark.parametrize("y", [np.array(2), np.array([0, 2, 1, 2]), np.array([[1, 0, 0], [2, 2, 1]])])
def test_onehot_values(y: np.ndarray) -> None:
    hot = T.onehot(Tensor(y, dtype=np.int64), num_classes=3)
    assert hot.shape == y.shape + (3,)
    assert hot.dtype == np.float64
    np.testing.assert_array_equal(hot.data, np.eye(3)[y])


def test_onehot_is_a_constant() -> None:
    # Even handed a tensor that requires grad, it records nothing: labels have no derivative.
    y = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    assert not T.onehot(y, num_classes=2).requires_grad
    np.testing.assert_array_equal(T.onehot(y, num_classes=2).data, np.eye(2))


def test_onehot_of_a_label_that_is_not_a_class_is_nan() -> None:
    hot = T.onehot(np.array([1, 3, -1]), num_classes=3).data
    np.testing.assert_array_equal(hot[0], [0.0, 1.0, 0.0])
    assert np.all(np.isnan(hot[1:]))


# ---------------------------------------------------------------- nll_loss and cross_entropy


def test_nll_loss_single_example() -> None:
    logp = np.log(np_softmax(X1, 0))
    for y in range(4):
        for reduction in ("mean", "sum"):
            out = T.nll_loss(logp, label(y), reduction=reduction)
            assert out.shape == ()
            np.testing.assert_allclose(out.item(), -logp[y], rtol=1e-12)
    check_grad(lambda t: T.nll_loss(t, label(2)), logp)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nll_loss_batch(reduction: str) -> None:
    logp = np.log(np_softmax(X2, 1))
    y = labels(3, 0, 3)
    picked = -logp[np.arange(3), y.data]
    expected = picked.mean() if reduction == "mean" else picked.sum()
    np.testing.assert_allclose(T.nll_loss(logp, y, reduction=reduction).item(), expected, rtol=1e-12)
    check_grad(lambda t: T.nll_loss(t, y, reduction=reduction), logp)
    x = Tensor(logp, requires_grad=True)
    T.nll_loss(x, y, reduction=reduction).backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.data, -np.eye(4)[y.data] / (3 if reduction == "mean" else 1))


@pytest.mark.parametrize(("z", "y"), [(X1, label(1)), (X2, labels(0, 2, 3))], ids=["single", "batch"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_is_nll_loss_of_log_softmax(z: np.ndarray, y: Tensor, reduction: str) -> None:
    ce = T.cross_entropy(z, y, reduction=reduction)
    np.testing.assert_allclose(
        ce.item(), T.nll_loss(T.log_softmax(z, axis=-1), y, reduction=reduction).item(), rtol=1e-15
    )
    # ... and -log of the target's softmax probability, averaged (or summed) over the batch.
    p = np_softmax(z, -1)
    picked = -np.log(p[..., y.data] if z.ndim == 1 else p[np.arange(len(z)), y.data])
    np.testing.assert_allclose(ce.item(), picked.mean() if reduction == "mean" else picked.sum(), rtol=1e-12)
    check_grad(lambda t: T.cross_entropy(t, y, reduction=reduction), z)
    check_second(lambda t: T.cross_entropy(t, y, reduction=reduction), z)


def test_nll_loss_needs_one_or_two_axes() -> None:
    with pytest.raises(ValueError, match=r"\(C,\) or \(N, C\)"):
        T.nll_loss(X3, labels(0, 1))


# ---------------------------------------------------------------- through the engine


def test_integer_inputs_stay_integers() -> None:
    prog = program("onehot(y, 3)", y=TensorType((4,), DType.INT))
    leaves, out = evaluate(prog, {"y": np.array([2, 0, 1, 2])})
    assert leaves["y"].dtype == np.int64 and not leaves["y"].requires_grad
    np.testing.assert_array_equal(out.data, np.eye(3)[[2, 0, 1, 2]])


# Every input is a float of the given shape, except the labels: y (3,) and k, a scalar.
ENGINE_CASES: list[tuple[str, dict[str, tuple[int, ...]]]] = [
    ("sum(softmax(A, axis=0) * B) + sum(log_softmax(A) * B)", {"A": (3, 4), "B": (3, 4)}),
    ("sum(logsumexp(C, axis=(0, 2), keepdims=True) * v) + logsumexp(v)", {"C": (2, 3, 2), "v": (3, 1)}),
    ("trace(outer(u, w) @ outer(w, u)) + dot(u, w) * dot(u, u)", {"u": (3,), "w": (3,)}),
    ("mse_loss(A, B) + mse_loss(A @ v, w, reduction=sum)", {"A": (3, 4), "B": (4,), "v": (4,), "w": (3,)}),
    ("cross_entropy(A, y) + nll_loss(log_softmax(A), y, reduction=sum)", {"A": (3, 4)}),
    ("cross_entropy(u, k) * sum(onehot(y, 4) * A)", {"u": (3,), "A": (3, 4)}),
]
LABELS = {"y": TensorType((3,), DType.INT), "k": TensorType((), DType.INT)}
LABEL_VALUES = {"y": np.array([3, 0, 1]), "k": np.array(2)}


@pytest.mark.parametrize(("text", "shapes"), ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_engine_gradients_match_central_differences(text: str, shapes: dict[str, tuple[int, ...]]) -> None:
    prog = bind(parse(text), {n: TensorType(s) for n, s in shapes.items()} | LABELS)
    inputs = {n: rng.normal(size=s) for n, s in shapes.items()} | LABEL_VALUES
    result = run(prog, inputs, wrt=list(prog.inputs))
    assert set(result.grads) == set(shapes)  # labels get no gradient
    for name in shapes:
        np.testing.assert_allclose(
            result.grads[name], engine_difference(prog, inputs, name), rtol=1e-6, atol=1e-7, err_msg=name
        )


def test_a_label_out_of_range_gives_nan() -> None:
    prog = program("cross_entropy(A, y)", A=(3, 4), y=LABELS["y"])
    result = run(prog, {"A": X2, "y": np.array([0, 4, 1])}, wrt=["A"])
    assert np.isnan(result.value)


# ---------------------------------------------------------------- the seed closed forms
# For z = W @ x + b and L = nll_loss(log_softmax(z), y):
#   dL/dz = softmax(z) - onehot(y, 2),  dL/dW = outer(dL/dz, x),  dL/db = dL/dz.


@pytest.mark.parametrize("y", [0, 1])
def test_softmax_classifier_closed_forms(y: int) -> None:
    types: dict[str, tuple[int, ...] | TensorType] = {
        "W": (2, 3),
        "x": (3,),
        "b": (2,),
        "y": TensorType((), DType.INT),
    }
    inputs = {
        "W": rng.normal(size=(2, 3)),
        "x": rng.normal(size=3),
        "b": rng.normal(size=2),
        "y": np.array(y),
    }
    z = inputs["W"] @ inputs["x"] + inputs["b"]
    dz = np_softmax(z, 0) - np.eye(2)[y]

    loss = program("z = W @ x + b; nll_loss(log_softmax(z), y)", **types)
    result = run(loss, inputs, wrt=["W", "x", "b", "y"])
    np.testing.assert_allclose(float(result.value), -np.log(np_softmax(z, 0)[y]), rtol=1e-12)
    np.testing.assert_allclose(result.grads["W"], np.outer(dz, inputs["x"]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.grads["b"], dz, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.grads["x"], inputs["W"].T @ dz, rtol=1e-12, atol=1e-15)
    assert "y" not in result.grads

    # The closed forms, written in the language, evaluate to the same gradients.
    for text, name in [
        ("z = W @ x + b; softmax(z) - onehot(y, 2)", "b"),
        ("z = W @ x + b; outer(softmax(z) - onehot(y, 2), x)", "W"),
    ]:
        closed = run(program(text, **types), inputs, wrt=[])
        np.testing.assert_allclose(closed.value, result.grads[name], rtol=1e-12, atol=1e-15)

    # dL/dz itself, with z as the input: the gradient tensor is differentiable again.
    grads = gradient_tensors(
        program("nll_loss(log_softmax(z), y)", z=(2,), y=types["y"]), {"z": z, "y": inputs["y"]}, ["z"]
    )
    np.testing.assert_allclose(grads.grads["z"].data, dz, rtol=1e-12, atol=1e-15)
    assert grads.grads["z"].requires_grad
