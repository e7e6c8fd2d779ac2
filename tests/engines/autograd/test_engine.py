"""The autograd engine on parsed programs: values, gradients, Hessians."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

import symcheck.engines.autograd
from symcheck.engines import autograd as T
from symcheck.engines.autograd.engine import AutogradEngine, gradient_tensors, hessian
from symcheck.engines.autograd.rules import TABLE
from symcheck.engines.base import EngineOptions, EngineResult
from symcheck.engines.registry import load_engine
from symcheck.language.catalogue import OPS
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse

OPTIONS = EngineOptions()


def program(text: str, **shapes: tuple[int, ...] | TensorType) -> Program:
    types = {n: s if isinstance(s, TensorType) else TensorType(s) for n, s in shapes.items()}
    return bind(parse(text), types)


def run(prog: Program, inputs: Mapping[str, np.ndarray], wrt: list[str] | None = None) -> EngineResult:
    return AutogradEngine().run(prog, inputs, list(prog.inputs) if wrt is None else wrt, OPTIONS)


def central_difference(
    prog: Program, inputs: Mapping[str, np.ndarray], name: str, eps: float = 1e-6
) -> np.ndarray:
    out = np.zeros(np.shape(inputs[name]))
    for idx in np.ndindex(out.shape):
        values = []
        for sign in (1.0, -1.0):
            moved = {n: np.array(a, dtype=np.float64) for n, a in inputs.items()}
            moved[name][idx] += sign * eps
            values.append(float(run(prog, moved, wrt=[]).value))
        out[idx] = (values[0] - values[1]) / (2 * eps)
    return out


# ---------------------------------------------------------------- the seed example


def test_seed_example() -> None:
    result = run(program("mean(3*(x+2)^2)", x=(2, 2)), {"x": np.ones((2, 2))})
    assert result.engine == "autograd"
    assert result.value.dtype == np.float64 and result.value.shape == ()
    assert float(result.value) == 27.0
    assert set(result.grads) == {"x"}
    assert result.grads["x"].dtype == np.float64
    np.testing.assert_allclose(result.grads["x"], np.full((2, 2), 4.5))
    assert result.seconds >= 0.0


def test_seed_example_as_named_steps() -> None:
    result = run(program("y = x + 2\nz = 3*y^2\nout = mean(z)", x=(2, 2)), {"x": np.ones((2, 2))})
    assert float(result.value) == 27.0
    np.testing.assert_allclose(result.grads["x"], np.full((2, 2), 4.5))


def test_rebound_name() -> None:
    x = np.array([1.0, -2.0, 0.5])
    result = run(program("c = x; c = c + c + 1; sum(c)", x=(3,)), {"x": x})
    assert float(result.value) == pytest.approx(np.sum(2 * x + 1))
    np.testing.assert_array_equal(result.grads["x"], [2.0, 2.0, 2.0])


def test_a_step_may_be_a_constant() -> None:
    result = run(program("c = 2; sum(x) * c", x=(2,)), {"x": np.array([1.0, 2.0])})
    assert float(result.value) == 6.0
    np.testing.assert_array_equal(result.grads["x"], [2.0, 2.0])


# ---------------------------------------------------------------- gradients against differences

RNG = np.random.default_rng(0)
# Inputs are drawn from (0.5, 1.5), inside every op's domain and away from every kink.
CASES: list[tuple[str, dict[str, tuple[int, ...]]]] = [
    ("sum(sin(x) * cos(x) + tan(x / 4) - tanh(x))", {"x": (3, 2)}),
    ("mean(exp(x) / (1 + x^2))", {"x": (4,)}),
    ("sum(log(x^2 + 1) + sqrt(x) - -x)", {"x": (2, 3)}),
    ("sum(sigmoid(x) * softplus(x) + relu(x - 1) + abs(x - 1) + sign(x - 1) + step(x - 1))", {"x": (5,)}),
    ("sum(x ^ y)", {"x": (3, 1), "y": (1, 4)}),
    ("sum(x ^ 3 + x ^ 0.5 + 2 ^ x)", {"x": (3,)}),
    ("v @ A @ w", {"v": (3,), "A": (3, 4), "w": (4,)}),
    ("sum(A.T @ B)", {"A": (3, 2), "B": (3, 4)}),
    ("sum(A @ v) + v @ v", {"A": (2, 3), "v": (3,)}),
    ("sum(mean(B, axis=0, keepdims=True) * B)", {"B": (3, 4)}),
    ("sum(sum(C, axis=(0, 2))^2) + sum(mean(C, axis=-1)^2)", {"C": (2, 3, 4)}),
    ("sum(transpose(C, axes=(1, 0, 2)) * D)", {"C": (2, 3, 4), "D": (3, 2, 4)}),
    ("sum(expand_dims(v, axis=1) * B) + sum(expand_dims(v, axis=0) @ B)", {"v": (3,), "B": (3, 4)}),
    ("h = x * y; k = h / (1 + h); mean(k, axis=None)", {"x": (2, 3), "y": (3,)}),
]


@pytest.mark.parametrize(("text", "shapes"), CASES, ids=[c[0] for c in CASES])
def test_gradients_match_central_differences(text: str, shapes: dict[str, tuple[int, ...]]) -> None:
    prog = program(text, **shapes)
    inputs = {n: RNG.uniform(0.5, 1.5, s) for n, s in shapes.items()}
    result = run(prog, inputs)
    assert set(result.grads) == set(shapes)
    for name in shapes:
        assert result.grads[name].shape == shapes[name]
        np.testing.assert_allclose(
            result.grads[name], central_difference(prog, inputs, name), rtol=1e-6, atol=1e-7, err_msg=name
        )


def test_every_catalogue_op_is_lowered() -> None:
    assert set(OPS) <= set(TABLE)


# ---------------------------------------------------------------- which inputs get gradients


def test_integer_inputs_get_no_gradient() -> None:
    prog = program("sum(x * n)", x=(3,), n=TensorType((3,), DType.INT))
    result = run(prog, {"x": np.ones(3), "n": np.array([1, 2, 3])}, wrt=["x", "n"])
    assert set(result.grads) == {"x"}
    np.testing.assert_array_equal(result.grads["x"], [1.0, 2.0, 3.0])
    assert float(result.value) == 6.0


def test_an_input_that_does_not_influence_the_output_gets_zeros() -> None:
    prog = program("sum(x) + sum(sign(y))", x=(2,), y=(2, 3))
    result = run(prog, {"x": np.ones(2), "y": np.ones((2, 3))}, wrt=["x", "y"])
    np.testing.assert_array_equal(result.grads["y"], np.zeros((2, 3)))
    assert result.grads["y"].dtype == np.float64


def test_only_wrt_inputs_get_gradients() -> None:
    prog = program("sum(x * y)", x=(2,), y=(2,))
    result = run(prog, {"x": np.ones(2), "y": np.full(2, 3.0)}, wrt=["y"])
    assert set(result.grads) == {"y"}


def test_wrt_must_name_an_input() -> None:
    with pytest.raises(ValueError, match="not an input"):
        run(program("sum(x)", x=(2,)), {"x": np.ones(2)}, wrt=["z"])


def test_a_tensor_output_gets_its_jacobian_not_a_gradient() -> None:
    result = run(program("x * 2", x=(2,)), {"x": np.ones(2)})
    assert result.grads == {}
    np.testing.assert_array_equal(result.jacobians["x"], 2 * np.eye(2))
    result = run(program("x * 2", x=(2,)), {"x": np.ones(2)}, wrt=[])
    np.testing.assert_array_equal(result.value, [2.0, 2.0])
    with pytest.raises(ValueError, match="one-element"):
        gradient_tensors(program("x * 2", x=(2,)), {"x": np.ones(2)}, ["x"])


def test_out_of_domain_gives_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run(program("sum(log(x))", x=(2,)), {"x": np.array([-1.0, 1.0])})
    assert np.isnan(result.value)


def test_loaded_by_name() -> None:
    engine = load_engine("autograd")
    assert isinstance(engine, AutogradEngine)
    assert engine.name == "autograd" and engine.description


# ---------------------------------------------------------------- second derivatives


def test_gradient_tensors_are_differentiable() -> None:
    prog = program("sum(x^3)", x=(3,))
    x = np.array([1.0, -2.0, 0.5])
    result = gradient_tensors(prog, {"x": x}, ["x"])
    g = result.grads["x"]
    assert g.requires_grad
    np.testing.assert_allclose(g.data, 3 * x**2)
    rows = [T.grad(T.sum(g * np.eye(3)[i]), [result.inputs["x"]])[0].data for i in range(3)]
    np.testing.assert_allclose(np.stack(rows), np.diag(6 * x))


def test_hessian_of_sum_of_cubes() -> None:
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    h = hessian(program("sum(x^3)", x=(2, 2)), {"x": x}, "x")
    assert h.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(h.reshape(4, 4), np.diag(6 * x.ravel()))


def test_hessian_of_a_quadratic_form() -> None:
    A = RNG.normal(size=(3, 3))
    x = RNG.normal(size=3)
    prog = program("x.T @ A @ x", x=(3,), A=(3, 3))
    np.testing.assert_allclose(hessian(prog, {"x": x, "A": A}, "x"), A + A.T, atol=1e-12)
    # d/dA_jk of (A + A.T) x: row i is e_i x^T + x e_i^T.
    mixed = hessian(prog, {"x": x, "A": A}, "x", by="A")
    expected = np.stack([np.outer(np.eye(3)[i], x) + np.outer(x, np.eye(3)[i]) for i in range(3)])
    np.testing.assert_allclose(mixed, expected, atol=1e-12)


def test_hessian_matches_differences_of_the_gradient() -> None:
    prog = program(
        "y = sigmoid(A @ x); sum(softplus(y) * (A @ x^2)) + mean(exp(x) / (1 + x^2))", x=(3,), A=(2, 3)
    )
    inputs = {"x": RNG.uniform(-1, 1, 3), "A": RNG.uniform(-1, 1, (2, 3))}
    h = hessian(prog, inputs, "x")
    eps = 1e-5
    for i in range(3):
        plus = dict(inputs, x=inputs["x"] + eps * np.eye(3)[i])
        minus = dict(inputs, x=inputs["x"] - eps * np.eye(3)[i])
        column = (run(prog, plus, ["x"]).grads["x"] - run(prog, minus, ["x"]).grads["x"]) / (2 * eps)
        np.testing.assert_allclose(h[:, i], column, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- independence


def test_no_torch_or_sympy_anywhere_in_the_package() -> None:
    for path in Path(symcheck.engines.autograd.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] in ("torch", "sympy") for n in names), f"{path.name}: {names}"
