from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

from symcheck.engines.base import EngineOptions, EngineResult
from symcheck.engines.numeric.engine import NumericEngine
from symcheck.engines.numeric.evaluator import forward
from symcheck.engines.registry import load_engine
from symcheck.language.ir import Call, DType, Program, TensorType
from symcheck.language.parser import bind, parse

Arrays = dict[str, np.ndarray]


def program(text: str, inputs: Arrays, types: dict[str, TensorType] | None = None) -> Program:
    return bind(parse(text), types or {n: TensorType(np.shape(a)) for n, a in inputs.items()})


def run(text: str, inputs: Arrays, wrt: list[str] | None = None, **opts: int) -> EngineResult:
    wrt = list(inputs) if wrt is None else wrt
    return NumericEngine().run(program(text, inputs), inputs, wrt, EngineOptions(**opts))


RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 4))
Y = RNG.standard_normal(4)
P = RNG.uniform(0.2, 3.0, (3, 4))
M = RNG.standard_normal((4, 2))
X234 = RNG.standard_normal((2, 3, 4))

# expression (output `out`), inputs, the same thing written directly in numpy
FORWARD_CASES: list[tuple[str, Arrays, Callable[..., np.ndarray]]] = [
    ("x + y", {"x": X, "y": Y}, lambda x, y: x + y),
    ("x - y", {"x": X, "y": Y}, lambda x, y: x - y),
    ("x * y", {"x": X, "y": Y}, lambda x, y: x * y),
    ("x / y", {"x": X, "y": Y}, lambda x, y: x / y),
    ("p ^ y", {"p": P, "y": Y}, lambda p, y: p**y),
    ("x ^ 3", {"x": X}, lambda x: x**3),
    ("p ^ 0.5", {"p": P}, np.sqrt),
    ("x ^ -2", {"x": X}, lambda x: x**-2.0),
    ("-x", {"x": X}, lambda x: -x),
    ("x @ m", {"x": X, "m": M}, lambda x, m: x @ m),
    ("y @ y", {"y": Y}, lambda y: y @ y),
    ("x @ y", {"x": X, "y": Y}, lambda x, y: x @ y),
    ("exp(x)", {"x": X}, np.exp),
    ("log(p)", {"p": P}, np.log),
    ("log1p(p)", {"p": P}, np.log1p),
    ("sqrt(p)", {"p": P}, np.sqrt),
    ("sin(x)", {"x": X}, np.sin),
    ("cos(x)", {"x": X}, np.cos),
    ("tan(x)", {"x": X}, np.tan),
    ("tanh(x)", {"x": X}, np.tanh),
    ("sigmoid(x)", {"x": X}, lambda x: 1 / (1 + np.exp(-x))),
    ("relu(x)", {"x": X}, lambda x: np.where(x > 0, x, 0.0)),
    ("abs(x)", {"x": X}, np.abs),
    ("softplus(x)", {"x": X}, lambda x: np.log(1 + np.exp(x))),
    ("sign(x)", {"x": X}, np.sign),
    ("step(x)", {"x": X}, lambda x: np.where(x > 0, 1.0, 0.0)),
    ("sum(x)", {"x": X}, np.sum),
    ("sum(t, axis=(0, 2), keepdims=True)", {"t": X234}, lambda t: t.sum(axis=(0, 2), keepdims=True)),
    ("mean(x, axis=1)", {"x": X}, lambda x: x.mean(axis=1)),
    ("mean(x, keepdims=True)", {"x": X}, lambda x: x.mean(keepdims=True)),
    ("x.T", {"x": X}, lambda x: x.T),
    ("transpose(t, axes=(2, 0, 1))", {"t": X234}, lambda t: t.transpose(2, 0, 1)),
    ("expand_dims(x, axis=-1)", {"x": X}, lambda x: x[:, :, None]),
    ("expand_dims(x, axis=1)", {"x": X}, lambda x: x[:, None, :]),
]


@pytest.mark.parametrize(("text", "inputs", "reference"), FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_every_op(text: str, inputs: Arrays, reference: Callable[..., np.ndarray]) -> None:
    values = forward(program(f"out = {text}", inputs), inputs)
    expected = reference(*inputs.values())
    assert values["out"].shape == np.shape(expected)
    assert values["out"].dtype == np.float64
    np.testing.assert_allclose(values["out"], expected, rtol=1e-14, atol=1e-15)


def test_forward_steps_inputs_and_refs() -> None:
    x = np.ones((2, 2))
    values = forward(program("y = x + 2; y = 3*y^2; out = mean(y)", {"x": x}), {"x": x})
    assert set(values) == {"x", "y", "y#2", "out"}
    np.testing.assert_array_equal(values["y"], np.full((2, 2), 3.0))
    np.testing.assert_array_equal(values["y#2"], np.full((2, 2), 27.0))
    assert values["out"].shape == () and float(values["out"]) == 27.0


def test_forward_stable_sigmoid_and_softplus() -> None:
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = forward(program("s = sigmoid(x); out = softplus(x)", {"x": x}), {"x": x})
    np.testing.assert_allclose(
        values["s"], [0.0, np.exp(-30) / (1 + np.exp(-30)), 0.5, 1 / (1 + np.exp(-30)), 1.0]
    )
    np.testing.assert_allclose(
        values["out"], [0.0, np.log1p(np.exp(-30)), np.log(2), 30 + np.log1p(np.exp(-30)), 1000]
    )


def test_forward_outside_domain_is_silent_nan() -> None:
    x = np.array([-1.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = forward(program("out = log(x)", {"x": x}), {"x": x})
    assert np.isnan(values["out"][0]) and values["out"][1] == np.log(4.0)


def test_forward_int_inputs_and_dtype() -> None:
    n = np.array([1, 2, 3])
    types = {"x": TensorType((3,)), "n": TensorType((3,), DType.INT)}
    p = program("t = transpose(n); out = sum(x * n) / 2", {"x": Y[:3], "n": n}, types)
    values = forward(p, {"x": Y[:3], "n": n})
    assert values["t"].dtype == np.int64
    np.testing.assert_allclose(values["out"], (Y[:3] * n).sum() / 2)
    values32 = forward(p, {"x": Y[:3], "n": n}, dtype=np.float32)
    assert values32["x"].dtype == np.float32 and values32["out"].dtype == np.float32


def test_on_call_sees_every_call() -> None:
    x = np.ones((2, 3))
    p = program("y = exp(x) * 2; out = mean(sum(y, axis=0) + relu(y).T @ x)", {"x": x})
    seen: list[tuple[str, tuple, int]] = []

    def on_call(call: Call, args: list[np.ndarray], result: np.ndarray) -> None:
        assert len(args) == len(call.args)
        assert result.shape == call.shape
        seen.append((call.op, tuple(a.shape for a in args), id(call)))

    forward(p, {"x": x}, on_call=on_call)
    calls = [n for n in p.nodes() if isinstance(n, Call)]
    assert [s[2] for s in seen] == [id(c) for c in calls]
    assert [s[0] for s in seen] == ["exp", "mul", "sum", "relu", "transpose", "matmul", "add", "mean"]
    assert seen[1][1] == ((2, 3), ())  # the literal 2 arrives as a 0-d array


# ---------------------------------------------------------------- the engine


def test_seed_example() -> None:
    r = run("mean(3*(x+2)^2)", {"x": np.ones((2, 2))})
    assert r.engine == "numeric" and r.dtype == "float64"
    assert float(r.value) == 27.0
    np.testing.assert_allclose(r.grads["x"], np.full((2, 2), 4.5), rtol=1e-8)
    assert r.directional == [] and r.notes == []


SMOOTH: list[tuple[str, Arrays, Callable[..., dict[str, np.ndarray]]]] = [
    (
        "sum(sin(x) * exp(x / 3))",
        {"x": X},
        lambda x: {"x": np.cos(x) * np.exp(x / 3) + np.sin(x) * np.exp(x / 3) / 3},
    ),
    ("mean(tanh(x @ m))", {"x": X, "m": M}, None),
    ("sum(sigmoid(x) + softplus(2 * x))", {"x": X}, None),
    ("sum(p ^ y) + sum(log(p) * sqrt(p))", {"p": P, "y": Y}, None),
    ("sum(cos(mean(t, axis=1, keepdims=True) * t).T)", {"t": X234}, None),
    ("y @ y / (1 + y @ y)", {"y": Y}, lambda y: {"y": 2 * y / (1 + y @ y) ** 2}),
]


def _tanh_matmul(x: np.ndarray, m: np.ndarray) -> dict[str, np.ndarray]:
    s = (1 - np.tanh(x @ m) ** 2) / (x.shape[0] * m.shape[1])
    return {"x": s @ m.T, "m": x.T @ s}


def _sig_soft(x: np.ndarray) -> dict[str, np.ndarray]:
    sig = 1 / (1 + np.exp(-x))
    return {"x": sig * (1 - sig) + 2 / (1 + np.exp(-2 * x))}


def _pow_log(p: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    dp = y * p ** (y - 1) + np.sqrt(p) / p + np.log(p) / (2 * np.sqrt(p))
    return {"p": dp, "y": (p**y * np.log(p)).sum(0)}


def _cos_mean(t: np.ndarray) -> dict[str, np.ndarray]:
    m = t.mean(axis=1, keepdims=True)
    s = -np.sin(m * t)
    return {"t": s * m + (s * t).sum(axis=1, keepdims=True) / t.shape[1]}


_HAND = [None, _tanh_matmul, _sig_soft, _pow_log, _cos_mean, None]


@pytest.mark.parametrize("case", range(len(SMOOTH)), ids=[c[0] for c in SMOOTH])
def test_gradients_of_smooth_functions(case: int) -> None:
    text, inputs, grads = SMOOTH[case]
    expected = (grads or _HAND[case])(*inputs.values())
    r = run(text, inputs)
    assert set(r.grads) == set(inputs)
    for name, g in expected.items():
        np.testing.assert_allclose(r.grads[name], g, rtol=1e-8, atol=1e-8 * np.abs(g).max())


def test_directional_mode_above_the_limit() -> None:
    inputs = {"x": X, "m": M}  # 12 + 8 elements
    r = run("mean(tanh(x @ m))", inputs, fd_full_limit=10, fd_directions=3, seed=5)
    assert r.grads == {}
    assert r.notes[0] == "finite differences in 3 random directions (20 elements > 10)"
    assert len(r.directional) == 3
    g = _tanh_matmul(X, M)
    for d in r.directional:
        assert set(d.direction) == {"x", "m"} and d.direction["x"].shape == (3, 4)
        norm = np.sqrt(sum((v**2).sum() for v in d.direction.values()))
        assert norm == pytest.approx(1.0)
        analytic = sum((g[n] * d.direction[n]).sum() for n in g)
        assert d.derivative == pytest.approx(analytic, rel=1e-7, abs=1e-10)
    again = run("mean(tanh(x @ m))", inputs, fd_full_limit=10, fd_directions=3, seed=5)
    np.testing.assert_array_equal(again.directional[0].direction["x"], r.directional[0].direction["x"])


def test_directional_mode_on_many_elements() -> None:
    x = np.random.default_rng(3).standard_normal(3000)
    r = run("sum(sin(x) * exp(x / 3))", {"x": x}, fd_directions=2)
    assert r.notes[0] == "finite differences in 2 random directions (3000 elements > 2048)"
    g = np.cos(x) * np.exp(x / 3) + np.sin(x) * np.exp(x / 3) / 3
    for d in r.directional:
        assert d.derivative == pytest.approx((g * d.direction["x"]).sum(), rel=1e-6)


def test_step_shrinks_near_a_domain_edge() -> None:
    p = np.array([1e-6, 1.0])  # the default step (~6e-6) would take log below 0
    r = run("sum(log(p))", {"p": p})
    np.testing.assert_allclose(r.grads["p"], 1 / p, rtol=1e-6)
    assert r.notes == []


def test_nan_and_note_where_every_step_leaves_the_domain() -> None:
    r = run("sum(sqrt(p))", {"p": np.array([0.0, 4.0])})
    assert np.isnan(r.grads["p"][0])
    assert r.grads["p"][1] == pytest.approx(0.25, rel=1e-9)
    assert len(r.notes) == 1 and "p[0]" in r.notes[0] and "NaN" in r.notes[0]


def test_non_differentiable_ops_have_zero_gradient() -> None:
    r = run("sum(sign(x) + step(x) * 3)", {"x": X})
    np.testing.assert_array_equal(r.grads["x"], np.zeros_like(X))


def test_int_inputs() -> None:
    n = np.array([1, 2, 3])
    types = {"x": TensorType((3,)), "n": TensorType((3,), DType.INT)}
    p = program("sum(x * n)", {"x": Y[:3], "n": n}, types)
    r = NumericEngine().run(p, {"x": Y[:3], "n": n}, ["x", "n"], EngineOptions())
    np.testing.assert_allclose(r.grads["x"], n, rtol=1e-9)
    np.testing.assert_array_equal(r.grads["n"], np.zeros(3))


def test_inputs_are_not_modified() -> None:
    x = X.copy()
    run("sum(exp(x))", {"x": x})
    run("sum(exp(x))", {"x": x}, fd_full_limit=1)
    np.testing.assert_array_equal(x, X)


def test_registry_loads_numeric_engine() -> None:
    assert isinstance(load_engine("numeric"), NumericEngine)
