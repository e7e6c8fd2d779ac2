from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from symcheck.engines.base import EngineOptions, EngineResult, EngineUnavailable
from symcheck.engines.registry import load_engine
from symcheck.engines.torch.engine import TorchEngine
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse

Arrays = dict[str, np.ndarray]


def run(
    text: str,
    inputs: Arrays,
    wrt: list[str] | None = None,
    types: dict[str, TensorType] | None = None,
    **opts: str,
) -> EngineResult:
    types = types or {n: TensorType(np.shape(a)) for n, a in inputs.items()}
    program = bind(parse(text), types)
    wrt = list(inputs) if wrt is None else wrt
    return TorchEngine().run(program, inputs, wrt, EngineOptions(**opts))


POS = np.array([0.3, 0.7, 1.9])
MIXED = np.array([-1.5, 0.0, 0.5, 2.0])  # 0 pins the kink conventions: relu'(0) = abs'(0) = 0

# op, input, f, f' (by hand) for `sum(op(x))`
UNARY: list[
    tuple[str, np.ndarray, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]
] = [
    ("exp", POS, np.exp, np.exp),
    ("log", POS, np.log, lambda x: 1 / x),
    ("sqrt", POS, np.sqrt, lambda x: 0.5 / np.sqrt(x)),
    ("log1p", POS, np.log1p, lambda x: 1 / (1 + x)),
    ("sin", MIXED, np.sin, np.cos),
    ("cos", MIXED, np.cos, lambda x: -np.sin(x)),
    ("tan", MIXED / 2, np.tan, lambda x: 1 / np.cos(x) ** 2),
    ("tanh", MIXED, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    ("sigmoid", MIXED, lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    ("relu", MIXED, lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    ("abs", MIXED, np.abs, np.sign),
    ("softplus", MIXED, lambda x: np.log1p(np.exp(x)), lambda x: 1 / (1 + np.exp(-x))),
    ("sign", MIXED, np.sign, np.zeros_like),
    ("step", MIXED, lambda x: (x > 0).astype(float), np.zeros_like),
]


@pytest.mark.parametrize(("op", "x", "f", "df"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops(op: str, x: np.ndarray, f: Callable, df: Callable) -> None:
    r = run(f"sum({op}(x))", {"x": x})
    np.testing.assert_allclose(r.value, f(x).sum(), rtol=1e-12)
    np.testing.assert_allclose(r.grads["x"], df(x), rtol=1e-12, atol=1e-15)


def test_neg() -> None:
    r = run("sum(-x)", {"x": MIXED})
    assert r.value == -MIXED.sum()
    np.testing.assert_array_equal(r.grads["x"], -np.ones(4))


X23 = np.array([[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]])
Y3 = np.array([0.4, 1.2, 2.0])

# expression, inputs, value, grads (by hand; y broadcasts along axis 0 of x)
BINARY: list[tuple[str, Arrays, float, Arrays]] = [
    (
        "sum(x + y)",
        {"x": X23, "y": Y3},
        X23.sum() + 2 * Y3.sum(),
        {"x": np.ones((2, 3)), "y": np.full(3, 2.0)},
    ),
    (
        "sum(x - y)",
        {"x": X23, "y": Y3},
        X23.sum() - 2 * Y3.sum(),
        {"x": np.ones((2, 3)), "y": np.full(3, -2.0)},
    ),
    ("sum(x * y)", {"x": X23, "y": Y3}, (X23 * Y3).sum(), {"x": np.tile(Y3, (2, 1)), "y": X23.sum(0)}),
    (
        "sum(x / y)",
        {"x": X23, "y": Y3},
        (X23 / Y3).sum(),
        {"x": np.tile(1 / Y3, (2, 1)), "y": -(X23 / Y3**2).sum(0)},
    ),
    (
        "sum(x ^ y)",
        {"x": X23, "y": Y3},
        (X23**Y3).sum(),
        {"x": Y3 * X23 ** (Y3 - 1), "y": (X23**Y3 * np.log(X23)).sum(0)},
    ),
    ("sum(x^3)", {"x": X23}, (X23**3).sum(), {"x": 3 * X23**2}),
    ("sum(x^0.5)", {"x": X23}, np.sqrt(X23).sum(), {"x": 0.5 / np.sqrt(X23)}),
    ("sum(x^-2)", {"x": X23}, (X23**-2.0).sum(), {"x": -2 * X23**-3.0}),
    ("sum(2^x)", {"x": Y3}, (2**Y3).sum(), {"x": 2**Y3 * np.log(2)}),
]


@pytest.mark.parametrize(("text", "inputs", "value", "grads"), BINARY, ids=[b[0] for b in BINARY])
def test_binary_ops(text: str, inputs: Arrays, value: float, grads: Arrays) -> None:
    r = run(text, inputs)
    np.testing.assert_allclose(r.value, value, rtol=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(r.grads[name], g, rtol=1e-12)


A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
B = np.array([[1.0, -1.0], [0.5, 2.0], [3.0, 0.0]])
U = np.array([1.0, 2.0, 3.0])
V = np.array([-1.0, 0.5])


@pytest.mark.parametrize(
    ("text", "inputs", "value", "grads"),
    [
        (
            "sum(a @ b)",
            {"a": A, "b": B},
            (A @ B).sum(),
            {"a": np.ones((2, 2)) @ B.T, "b": A.T @ np.ones((2, 2))},
        ),
        ("sum(u @ b)", {"u": U, "b": B}, (U @ B).sum(), {"u": B.sum(1), "b": np.outer(U, np.ones(2))}),
        ("sum(a @ u)", {"a": A, "u": U}, (A @ U).sum(), {"a": np.outer(np.ones(2), U), "u": A.sum(0)}),
        ("u @ u", {"u": U}, U @ U, {"u": 2 * U}),
    ],
    ids=["2d@2d", "1d@2d", "2d@1d", "1d@1d"],
)
def test_matmul(text: str, inputs: Arrays, value: float, grads: Arrays) -> None:
    r = run(text, inputs)
    np.testing.assert_allclose(r.value, value, rtol=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(r.grads[name], g, rtol=1e-12)


X234 = np.arange(24.0).reshape(2, 3, 4) / 10


def test_sum_axis_keepdims() -> None:
    w = np.array([[2.0], [-1.0]])
    r = run("sum(sum(x, axis=1, keepdims=True) * w)", {"x": X23, "w": w})
    assert r.value.shape == ()
    np.testing.assert_allclose(r.value, (X23.sum(1, keepdims=True) * w).sum())
    np.testing.assert_allclose(r.grads["x"], np.broadcast_to(w, (2, 3)))
    np.testing.assert_allclose(r.grads["w"], X23.sum(1, keepdims=True))


def test_mean_axes() -> None:
    w = np.array([1.0, 2.0, 3.0])
    r = run("sum(mean(x, axis=(0, 2)) * w)", {"x": X234, "w": w})
    np.testing.assert_allclose(r.value, (X234.mean((0, 2)) * w).sum())
    np.testing.assert_allclose(r.grads["x"], np.broadcast_to(w[None, :, None] / 8, X234.shape))


def test_mean_all_and_keepdims_all() -> None:
    r = run("sum(mean(x, keepdims=True) * x)", {"x": X23})
    m = X23.mean()
    np.testing.assert_allclose(r.value, m * X23.sum())
    # d/dx_i (m * S) = S/N + m
    np.testing.assert_allclose(r.grads["x"], np.full((2, 3), X23.sum() / 6 + m))


def test_transpose_perm_and_T() -> None:
    w = np.arange(24.0).reshape(3, 2, 4)
    r = run("sum(transpose(x, axes=(1, 0, 2)) * w)", {"x": X234, "w": w})
    np.testing.assert_allclose(r.value, (X234.transpose(1, 0, 2) * w).sum())
    np.testing.assert_allclose(r.grads["x"], w.transpose(1, 0, 2))
    w2 = np.arange(6.0).reshape(3, 2)
    r = run("sum(x.T * w)", {"x": X23, "w": w2})
    np.testing.assert_allclose(r.grads["x"], w2.T)


def test_expand_dims() -> None:
    w = np.arange(6.0).reshape(2, 1, 3)
    r = run("sum(expand_dims(x, axis=1) * w)", {"x": X23, "w": w})
    np.testing.assert_allclose(r.value, (X23[:, None, :] * w).sum())
    np.testing.assert_allclose(r.grads["x"], w[:, 0, :])


def test_seed_example() -> None:
    r = run("mean(3*(x+2)^2)", {"x": np.ones((2, 2))})
    assert r.engine == "torch"
    assert r.dtype == "float64"
    assert float(r.value) == 27.0
    np.testing.assert_array_equal(r.grads["x"], np.full((2, 2), 4.5))
    assert r.value.dtype == np.float64 and r.grads["x"].dtype == np.float64


def test_named_steps_and_rebinding() -> None:
    r = run("y = x + 2; y = 3*y^2; out = mean(y)", {"x": np.ones((2, 2))})
    assert float(r.value) == 27.0
    np.testing.assert_array_equal(r.grads["x"], np.full((2, 2), 4.5))


def test_float32() -> None:
    x = np.array([1.0, 1e-8])  # 1 + 1e-8 rounds to 1 in float32 but not in float64
    r = run("sum(x)", {"x": x}, dtype="float32")
    assert r.dtype == "float32"
    assert r.value.dtype == np.float64
    assert float(r.value) == 1.0
    assert float(run("sum(x)", {"x": x}).value) == 1.00000001
    np.testing.assert_array_equal(r.grads["x"], np.ones(2))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precisions(dtype: str) -> None:
    r = run("mean(3*(x+2)^2)", {"x": np.ones((2, 2))}, dtype=dtype)
    assert r.dtype == dtype
    assert float(r.value) == 27.0
    np.testing.assert_array_equal(r.grads["x"], np.full((2, 2), 4.5))


def test_unsupported_dtype() -> None:
    with pytest.raises(EngineUnavailable, match="unsupported dtype 'int8'"):
        run("sum(x)", {"x": U}, dtype="int8")


def test_unsupported_device() -> None:
    with pytest.raises(EngineUnavailable, match="unsupported device"):
        run("sum(x)", {"x": U}, device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_unavailable(device: str) -> None:
    with pytest.raises(EngineUnavailable, match="CUDA is not available"):
        run("sum(x)", {"x": U}, device=device)


def test_int_inputs() -> None:
    n = np.array([1, 2, 3])
    types = {"x": TensorType((3,)), "n": TensorType((3,), DType.INT)}
    r = run("sum(x * n) + sum(n^2) + sum(transpose(n))", {"x": U, "n": n}, wrt=["x"], types=types)
    np.testing.assert_allclose(r.value, (U * n).sum() + (n**2).sum() + n.sum())
    np.testing.assert_array_equal(r.grads["x"], n.astype(float))
    assert set(r.grads) == {"x"}


def test_int_input_in_wrt_gets_zero_gradient() -> None:
    types = {"x": TensorType((3,)), "n": TensorType((2,), DType.INT)}
    r = run("sum(x) * mean(n)", {"x": U, "n": np.array([1, 4])}, wrt=["x", "n"], types=types)
    np.testing.assert_allclose(r.grads["x"], np.full(3, 2.5))
    np.testing.assert_array_equal(r.grads["n"], np.zeros(2))
    assert any("n is not a float input" in note for note in r.notes)


def test_unused_input_and_constant_output() -> None:
    r = run("sum(x)", {"x": U, "y": V})
    np.testing.assert_array_equal(r.grads["y"], np.zeros(2))
    r = run("out = 2 + 3", {"x": U})
    assert float(r.value) == 5.0
    np.testing.assert_array_equal(r.grads["x"], np.zeros(3))


def test_tensor_output_value_is_returned_whole() -> None:
    r = run("x * 2", {"x": X23})
    np.testing.assert_array_equal(r.value, X23 * 2)


def test_registry_loads_torch_engine() -> None:
    engine = load_engine("torch")
    assert isinstance(engine, TorchEngine)
    assert engine.name == "torch"


def test_forward_mode_runs_without_torchs_jit_compiled_decompositions() -> None:
    """make_dual's first call compiles decompositions with torch.jit.script (0.35 s a process); the
    ops of the language have forward formulas of their own, so they are not loaded, and the
    JVPs still agree with the VJPs (the dot-product test)."""
    import subprocess
    import sys

    script = (
        "import sys, os\n"
        "import torch.autograd.forward_ad as fa\n"
        "calls = []\n"
        "make_dual = fa.make_dual\n"
        "fa.make_dual = lambda *a, **k: calls.append(1) or make_dual(*a, **k)\n"
        "from symcheck.checks.runner import run_cases\n"
        "from symcheck.suites.programs import load_case\n"
        "case = load_case('log_softmax(W @ x) * sigmoid(x[0]) + softplus(W @ x)', ['W:4x3', 'x:3'])\n"
        "(r,), errors = run_cases([case])\n"
        "assert not errors and r.status == 'pass', r\n"
        "assert calls, 'no forward mode ran'\n"
        "assert not any('unavailable' in n for n in r.points[0].results['torch'].notes)\n"
        "assert 'torch._decomp.decompositions_for_jvp' not in sys.modules\n"
        "assert 'PYTORCH_JIT' not in os.environ\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
