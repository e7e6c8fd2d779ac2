"""The model-building ops (softmax, losses, outer, ...) in the torch and finite-difference engines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from symcheck.engines.base import EngineOptions, EngineResult
from symcheck.engines.numeric.engine import NumericEngine
from symcheck.engines.numeric.evaluator import forward
from symcheck.engines.torch.engine import TorchEngine
from symcheck.language.ir import Call, DType, Program, TensorType
from symcheck.language.parser import bind, parse

Arrays = dict[str, np.ndarray]
ENGINES = {"torch": TorchEngine, "numeric": NumericEngine}


def program(text: str, inputs: Arrays) -> Program:
    # Integer arrays declare int inputs (labels); everything else is float.
    types = {
        n: TensorType(
            np.shape(a), DType.INT if np.issubdtype(np.asarray(a).dtype, np.integer) else DType.FLOAT
        )
        for n, a in inputs.items()
    }
    return bind(parse(text), types)


def run(engine: str, text: str, inputs: Arrays, wrt: list[str] | None = None, **opts: str) -> EngineResult:
    wrt = list(inputs) if wrt is None else wrt
    return ENGINES[engine]().run(program(text, inputs), inputs, wrt, EngineOptions(**opts))


# ---------------------------------------------------------------- plain numpy formulas


def np_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def np_onehot(y: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[y]


RNG = np.random.default_rng(11)
X = RNG.standard_normal((2, 3))
V = RNG.standard_normal(3)
A = RNG.standard_normal(3)
B = RNG.standard_normal(4)
SQ = RNG.standard_normal((3, 3))
Z1 = RNG.standard_normal(4)  # one example, C = 4
ZN = RNG.standard_normal((5, 4))  # a batch of 5, C = 4
Y1 = np.array(3)  # the last class: a label cast to float would not index
YN = np.array([0, 3, 1, 3, 2])
Y22 = np.array([[2, 0], [1, 2]])
LP1 = np_log_softmax(Z1)
LPN = np_log_softmax(ZN)

# expression, inputs, the same value in plain numpy
VALUES: list[tuple[str, Arrays, Callable[..., np.ndarray]]] = [
    ("softmax(x)", {"x": X}, lambda x: np_softmax(x, 1)),
    ("softmax(x, axis=0)", {"x": X}, lambda x: np_softmax(x, 0)),
    ("softmax(x + 1000)", {"x": X}, lambda x: np_softmax(x, 1)),  # stable: no overflow
    ("log_softmax(x)", {"x": X}, lambda x: np_log_softmax(x, 1)),
    ("log_softmax(x, axis=-2)", {"x": X}, lambda x: np_log_softmax(x, 0)),
    ("log_softmax(x - 1000)", {"x": X}, lambda x: np_log_softmax(x, 1)),  # shift-invariant
    ("logsumexp(x)", {"x": X}, lambda x: np.log(np.exp(x).sum())),
    ("logsumexp(x, axis=1)", {"x": X}, lambda x: np.log(np.exp(x).sum(axis=1))),
    ("logsumexp(x, axis=0, keepdims=True)", {"x": X}, lambda x: np.log(np.exp(x).sum(axis=0, keepdims=True))),
    ("logsumexp(x, axis=(0, 1), keepdims=True)", {"x": X}, lambda x: np.log(np.exp(x).sum()).reshape(1, 1)),
    ("logsumexp(x + 1000)", {"x": X}, lambda x: np.log(np.exp(x).sum()) + 1000),
    ("logsumexp(v)", {"v": V}, lambda v: np.log(np.exp(v).sum())),
    ("outer(a, b)", {"a": A, "b": B}, lambda a, b: a[:, None] * b[None, :]),
    ("dot(a, v)", {"a": A, "v": V}, lambda a, v: (a * v).sum()),
    ("trace(m)", {"m": SQ}, lambda m: m[0, 0] + m[1, 1] + m[2, 2]),
    ("mse_loss(x, v)", {"x": X, "v": V}, lambda x, v: ((x - v) ** 2).mean()),
    ("mse_loss(x, v, reduction=sum)", {"x": X, "v": V}, lambda x, v: ((x - v) ** 2).sum()),
    ("mse_loss(x, 2)", {"x": X}, lambda x: ((x - 2) ** 2).mean()),
    ("onehot(y, 4)", {"y": YN}, lambda y: np_onehot(y, 4)),
    ("onehot(y, num_classes=3)", {"y": Y22}, lambda y: np_onehot(y, 3)),
    ("onehot(y.T, 3)", {"y": Y22}, lambda y: np_onehot(y.T, 3)),
    ("onehot(y, 4)", {"y": Y1}, lambda y: np_onehot(y, 4)),
    ("nll_loss(lp, y)", {"lp": LP1, "y": Y1}, lambda lp, y: -lp[3]),
    ("nll_loss(lp, y, reduction=sum)", {"lp": LP1, "y": Y1}, lambda lp, y: -lp[3]),
    ("nll_loss(lp, y)", {"lp": LPN, "y": YN}, lambda lp, y: -np.mean([lp[i, y[i]] for i in range(5)])),
    (
        "nll_loss(lp, y, reduction=sum)",
        {"lp": LPN, "y": YN},
        lambda lp, y: -sum(lp[i, y[i]] for i in range(5)),
    ),
    ("cross_entropy(z, y)", {"z": Z1, "y": Y1}, lambda z, y: -np_log_softmax(z)[3]),
    (
        "cross_entropy(z, y)",
        {"z": ZN, "y": YN},
        lambda z, y: -np.mean([np_log_softmax(z)[i, y[i]] for i in range(5)]),
    ),
    (
        "cross_entropy(z, y, reduction=sum)",
        {"z": ZN, "y": YN},
        lambda z, y: -sum(np_log_softmax(z)[i, y[i]] for i in range(5)),
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("text", "inputs", "f"), VALUES, ids=[v[0] for v in VALUES])
def test_values(engine: str, text: str, inputs: Arrays, f: Callable[..., np.ndarray]) -> None:
    r = run(engine, text, inputs, wrt=[])
    expected = f(*inputs.values())
    assert r.value.shape == np.shape(expected)
    np.testing.assert_allclose(r.value, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- torch gradients against finite differences

W23 = RNG.standard_normal((2, 3))
W4 = RNG.standard_normal(4)
W54 = RNG.standard_normal((5, 4))

# Weights keep the gradients informative: the gradient of sum(softmax(x)) is 0 whatever the rule.
GRADS: list[tuple[str, Arrays]] = [
    ("sum(w * softmax(x))", {"x": X, "w": W23}),
    ("sum(w * softmax(x, axis=0))", {"x": X, "w": W23}),
    ("sum(w * log_softmax(x))", {"x": X, "w": W23}),
    ("sum(w * log_softmax(x, axis=0))", {"x": X, "w": W23}),
    ("logsumexp(x)", {"x": X}),
    ("sum(v * logsumexp(x, axis=0))", {"x": X, "v": V}),
    ("sum(w * logsumexp(x, axis=1, keepdims=True))", {"x": X, "w": W23}),
    ("sum(w * outer(a, b))", {"a": A, "b": B, "w": RNG.standard_normal((3, 4))}),
    ("dot(a, v)", {"a": A, "v": V}),
    ("trace(m @ m)", {"m": SQ}),
    ("mse_loss(x, v)", {"x": X, "v": V}),
    ("mse_loss(x, v, reduction=sum)", {"x": X, "v": V}),
    ("sum(w * onehot(y, 4))", {"w": W54, "y": YN}),
    ("nll_loss(lp, y)", {"lp": Z1, "y": Y1}),
    ("nll_loss(lp, y, reduction=sum)", {"lp": Z1, "y": Y1}),
    ("nll_loss(lp, y)", {"lp": ZN, "y": YN}),
    ("nll_loss(lp, y, reduction=sum)", {"lp": ZN, "y": YN}),
    ("nll_loss(log_softmax(z), y)", {"z": ZN, "y": YN}),
    ("cross_entropy(z, y)", {"z": Z1, "y": Y1}),
    ("cross_entropy(z, y, reduction=sum)", {"z": Z1, "y": Y1}),
    ("cross_entropy(z, y)", {"z": ZN, "y": YN}),
    ("cross_entropy(z, y, reduction=sum)", {"z": ZN, "y": YN}),
]


@pytest.mark.parametrize(("text", "inputs"), GRADS, ids=[g[0] for g in GRADS])
def test_torch_grads_match_finite_differences(text: str, inputs: Arrays) -> None:
    torch_r = run("torch", text, inputs)
    fd = run("numeric", text, inputs)
    np.testing.assert_allclose(torch_r.value, fd.value, rtol=1e-12, atol=1e-12)
    assert set(torch_r.grads) == set(fd.grads) == set(inputs)
    for name in inputs:
        np.testing.assert_allclose(torch_r.grads[name], fd.grads[name], rtol=1e-7, atol=1e-9, err_msg=name)
        assert torch_r.grads[name].shape == np.shape(inputs[name])


def test_label_gradients_are_zero() -> None:
    for engine in ENGINES:
        r = run(engine, "cross_entropy(z, y)", {"z": ZN, "y": YN})
        np.testing.assert_array_equal(r.grads["y"], np.zeros(5))
        assert any("y is not a float input" in n for n in r.notes)


# ---------------------------------------------------------------- logistic regression closed forms

LR = {"W": RNG.standard_normal((2, 3)), "x": RNG.standard_normal(3), "b": RNG.standard_normal(2)}


@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize(
    "text", ["z = W @ x + b; out = nll_loss(log_softmax(z), y)", "z = W @ x + b; out = cross_entropy(z, y)"]
)
def test_logistic_regression_closed_forms(text: str, label: int) -> None:
    inputs = {**LR, "y": np.array(label)}
    r = run("torch", text, inputs, wrt=["W", "b", "x"])
    z = LR["W"] @ LR["x"] + LR["b"]
    delta = np_softmax(z) - np_onehot(np.array(label), 2)
    np.testing.assert_allclose(r.value, -np_log_softmax(z)[label], rtol=1e-12)
    np.testing.assert_allclose(r.grads["W"], np.outer(delta, LR["x"]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.grads["b"], delta, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.grads["x"], LR["W"].T @ delta, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_closed_form_written_in_the_language(engine: str) -> None:
    inputs = {**LR, "y": np.array(1)}
    r = run(engine, "outer(softmax(W @ x + b) - onehot(y, 2), x)", inputs, wrt=[])
    z = LR["W"] @ LR["x"] + LR["b"]
    np.testing.assert_allclose(r.value, np.outer(np_softmax(z) - np.array([0.0, 1.0]), LR["x"]), rtol=1e-12)


# ---------------------------------------------------------------- labels stay integers


def test_labels_reach_the_ops_as_integers() -> None:
    seen: dict[str, list[np.dtype]] = {}

    def on_call(call: Call, args: list[np.ndarray], result: np.ndarray) -> None:
        seen[call.op] = [a.dtype for a in args]

    text = "a = onehot(y, 4); b = nll_loss(lp, y); c = cross_entropy(lp, y); out = sum(a) + b + c + sum(y)"
    inputs = {"lp": LPN, "y": YN}
    forward(program(text, inputs), inputs, on_call)
    assert seen["onehot"] == [np.dtype(np.int64)]
    assert seen["nll_loss"] == [np.dtype(np.float64), np.dtype(np.int64)]
    assert seen["cross_entropy"] == [np.dtype(np.float64), np.dtype(np.int64)]
    assert seen["sum"][-1] == np.dtype(np.float64)  # an op that computes on labels still gets floats


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_low_precision(dtype: str) -> None:
    text = "sum(onehot(y, 4) * log_softmax(z)) + cross_entropy(z, y)"
    inputs = {"z": ZN, "y": YN}
    low = run("torch", text, inputs, dtype=dtype)
    ref = run("torch", text, inputs)
    assert low.dtype == dtype
    np.testing.assert_allclose(low.value, ref.value, rtol=5e-2)
    np.testing.assert_allclose(low.grads["z"], ref.grads["z"], rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", [-1, 4])
def test_out_of_range_labels_give_nan(engine: str, bad: int) -> None:
    # Outside the op's domain: NaN in both engines (torch alone would raise), never a wrapped index.
    y = YN.copy()
    y[1] = bad
    for text in ["nll_loss(lp, y)", "cross_entropy(lp, y, reduction=sum)"]:
        r = run(engine, text, {"lp": LPN, "y": y}, wrt=["lp"])
        assert np.isnan(r.value)
        assert np.isnan(r.grads["lp"]).all()
    r = run(engine, "onehot(y, 4)", {"y": y}, wrt=[])
    assert np.isnan(r.value[1]).all()
    np.testing.assert_array_equal(np.delete(r.value, 1, axis=0), np_onehot(np.delete(y, 1), 4))
