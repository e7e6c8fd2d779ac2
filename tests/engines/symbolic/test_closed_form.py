from __future__ import annotations

import numpy as np
import pytest
import sympy

from symcheck.engines.base import EngineOptions
from symcheck.engines.symbolic import ClosedForm, SymbolicEngine
from symcheck.language.ir import Program, TensorType
from symcheck.language.parser import bind, parse

SEED = "mean(3*(x+2)^2)"


def program(text: str, **shapes: tuple[int, ...]) -> Program:
    return bind(parse(text), {name: TensorType(shape) for name, shape in shapes.items()})


def derive(text: str, **shapes: tuple[int, ...]) -> ClosedForm:
    p = program(text, **shapes)
    return ClosedForm.derive(p, p.float_inputs())


# ---------------------------------------------------------------- the seed example


def test_seed_gradient_at_2x2() -> None:
    closed = derive(SEED, x=(2, 2))
    assert closed.printed == {"x": "3/2*(x + 2)"}
    x = sympy.Symbol("x", real=True)
    assert sympy.expand(closed.grads["x"].expr) == sympy.Rational(3, 2) * x + 3
    assert closed.grads["x"].shape == (2, 2)


@pytest.mark.parametrize(
    ("shape", "printed"),
    [
        ((2, 2), "3/2*(x + 2)"),
        ((100, 100), "3/5000*(x + 2)"),
        ((1000, 1000), "3/500000*(x + 2)"),
        ((7,), "6/7*(x + 2)"),
    ],
)
def test_seed_closed_form_does_not_depend_on_size(shape: tuple[int, ...], printed: str) -> None:
    closed = derive(SEED, x=shape)
    assert closed.printed == {"x": printed}
    # The derivation works on one generic element: the same atoms (x and mean(...)) at every size.
    assert len(closed.graph.atoms) == 2
    assert [a.op for a in closed.graph.atoms.values()] == ["input", "mean"]
    assert sympy.count_ops(closed.grads["x"].expr) == sympy.count_ops(derive(SEED, x=(2, 2)).grads["x"].expr)


def test_seed_on_a_scalar() -> None:
    # mean of a scalar is the scalar itself: no mean atom at all.
    closed = derive(SEED, x=())
    assert closed.printed == {"x": "6*(x + 2)"}
    assert len(closed.graph.atoms) == 1


def test_seed_exact_value_and_gradient() -> None:
    p = program(SEED, x=(2, 2))
    result = SymbolicEngine().run(p, {"x": np.ones((2, 2))}, ["x"], EngineOptions())
    assert result.exact_value == "27"
    assert float(result.value) == 27.0
    np.testing.assert_array_equal(result.grads["x"], np.full((2, 2), 4.5))
    assert result.closed_forms == {"x": "3/2*(x + 2)"}
    assert not result.failures


def test_seed_at_100x100_is_the_closed_form_evaluated() -> None:
    p = program(SEED, x=(100, 100))
    result = SymbolicEngine().run(p, {"x": np.ones((100, 100))}, ["x"], EngineOptions())
    assert result.closed_forms == {"x": "3/5000*(x + 2)"}
    assert float(result.value) == pytest.approx(27.0, rel=1e-15)
    np.testing.assert_allclose(result.grads["x"], np.full((100, 100), 9 / 5000), rtol=1e-15)
    assert result.exact_value is None  # no expansion at this size
    assert not result.failures


def test_named_steps_give_the_same_closed_form() -> None:
    closed = derive("y = x + 2\nz = 3*y^2\nout = mean(z)", x=(2, 2))
    assert closed.printed == {"x": "3/2*(x + 2)"}


# ---------------------------------------------------------------- a table of printed gradients

TABLE: list[tuple[str, dict[str, tuple[int, ...]], dict[str, str]]] = [
    # elementwise functions
    ("sum(tanh(x))", {"x": (3,)}, {"x": "1 - tanh(x)^2"}),
    ("sum(sigmoid(x))", {"x": (3,)}, {"x": "(1 - sigmoid(x))*sigmoid(x)"}),
    ("sum(softplus(x))", {"x": (3,)}, {"x": "sigmoid(x)"}),
    ("sum(log1p(x)^2)", {"x": (3,)}, {"x": "2*log1p(x)/(x + 1)"}),
    ("sum(relu(x))", {"x": (3,)}, {"x": "step(x)"}),
    ("sum(abs(x))", {"x": (3,)}, {"x": "sign(x)"}),
    ("sum(step(x))", {"x": (3,)}, {"x": "0"}),
    ("sum(x*step(x))", {"x": (3,)}, {"x": "step(x)"}),
    ("sum(log(x))", {"x": (3,)}, {"x": "1/x"}),
    ("sum(sqrt(x))", {"x": (3,)}, {"x": "1/(2*sqrt(x))"}),
    ("sum(exp(-x))", {"x": (3,)}, {"x": "-exp(-x)"}),
    ("sum(-3*x^2)", {"x": (3,)}, {"x": "-6*x"}),
    ("sum(x^(-2) + x^(1/3))", {"x": (3,)}, {"x": "1/(3*x^(2/3)) - 2/x^3"}),
    ("sum(x/y)", {"x": (3,), "y": (3,)}, {"x": "1/y", "y": "-x/y^2"}),
    ("sum(x^y)", {"x": (3,), "y": (3,)}, {"x": "y*x^y/x", "y": "x^y*log(x)"}),
    ("sum(2^x * exp(-x))", {"x": (3,)}, {"x": "2^x*(log(2) - 1)*exp(-x)"}),
    # reductions
    ("sum(sum(x, axis=0)^2)", {"x": (2, 3)}, {"x": "2*sum(x, axis=0)"}),
    ("sum(mean(x, axis=1)^2)", {"x": (2, 3)}, {"x": "2/3*mean(x, axis=1, keepdims=True)"}),
    (
        "sum(mean(x, axis=1, keepdims=True)*x)",
        {"x": (2, 3)},
        {"x": "mean(x, axis=1, keepdims=True) + 1/3*sum(x, axis=1, keepdims=True)"},
    ),
    ("mean(x^2, axis=(0, 1))", {"x": (2, 3)}, {"x": "1/3*x"}),
    ("sum(mean(x, axis=0) * b)", {"x": (2, 3), "b": (3,)}, {"x": "1/2*b", "b": "mean(x, axis=0)"}),
    (
        "sum(mean(x^2, axis=(0, 2), keepdims=True) * y)",
        {"x": (2, 3, 4), "y": (1, 3, 1)},
        {"x": "1/4*x*y", "y": "mean(x^2, axis=(0, 2), keepdims=True)"},
    ),
    # transpose
    ("sum(x.T * y)", {"x": (2, 3), "y": (3, 2)}, {"x": "y.T", "y": "x.T"}),
    ("sum(transpose(x, axes=(2, 0, 1))^2)", {"x": (2, 3, 4)}, {"x": "2*x"}),
    # matmul, every 1-D/2-D combination
    ("u @ v", {"u": (3,), "v": (3,)}, {"u": "v", "v": "u"}),
    (
        "v @ W @ u",
        {"v": (2,), "W": (2, 3), "u": (3,)},
        {"v": "W @ u", "W": "outer(v, u)", "u": "v @ W"},
    ),
    (
        "sum(A @ B)",
        {"A": (2, 3), "B": (3, 4)},
        {"A": "sum(B.T, axis=0)", "B": "sum(A.T, axis=1, keepdims=True)"},
    ),
    ("sum((A @ B)^2)", {"A": (2, 3), "B": (3, 4)}, {"A": "2*(A @ B @ B.T)", "B": "2*(A.T @ (A @ B))"}),
    ("sum(W @ v)", {"W": (2, 3), "v": (3,)}, {"W": "v", "v": "sum(W.T, axis=1)"}),
    (
        "sum((W @ v)^2)",
        {"W": (2, 3), "v": (3,)},
        {"W": "2*outer(W @ v, v)", "v": "2*(W.T @ (W @ v))"},
    ),
    (
        "sum(tanh(v @ W))",
        {"v": (2,), "W": (2, 3)},
        {"v": "W @ (1 - tanh(v @ W)^2)", "W": "outer(v, 1 - tanh(v @ W)^2)"},
    ),
    # broadcasting: gradients summed back to the input's shape
    ("sum(x * b)", {"x": (2, 3), "b": (3,)}, {"x": "b", "b": "sum(x, axis=0)"}),
    ("sum(x * b)", {"x": (2, 3), "b": (2, 1)}, {"x": "b", "b": "sum(x, axis=1, keepdims=True)"}),
    ("sum(x * s)", {"x": (2, 3), "s": ()}, {"x": "s", "s": "sum(x)"}),
    ("mean(x + s)", {"x": (2, 3), "s": ()}, {"x": "1/6", "s": "1"}),
    # expand_dims
    (
        "sum(expand_dims(v, axis=1) * x)",
        {"v": (2,), "x": (2, 3)},
        {"v": "sum(x, axis=1)", "x": "expand_dims(v, axis=1)"},
    ),
    (
        "sum(expand_dims(v, axis=0) * x)",
        {"v": (3,), "x": (2, 3)},
        {"v": "sum(x, axis=0)", "x": "expand_dims(v, axis=0)"},
    ),
    # named steps and rebinding
    ("y = x*2\ny = y + 1\nout = sum(y^2)", {"x": (3,)}, {"x": "8*x + 4"}),
    ("h = tanh(x)\nout = sum(h*h)", {"x": (3,)}, {"x": "2*(1 - tanh(x)^2)*tanh(x)"}),
]


@pytest.mark.parametrize(("text", "shapes", "printed"), TABLE, ids=[f"{t}-{s}" for t, s, _ in TABLE])
def test_printed_gradient(text: str, shapes: dict[str, tuple[int, ...]], printed: dict[str, str]) -> None:
    assert derive(text, **shapes).printed == printed


@pytest.mark.parametrize(("text", "printed"), [("sum(sign(x))", "0"), ("sum(x*sign(x))", "sign(x)")])
def test_sign_has_zero_derivative(text: str, printed: str) -> None:
    assert derive(text, x=(3,)).printed == {"x": printed}


def test_gradient_of_unused_input_is_zero() -> None:
    p = program("sum(x^2)", x=(3,), y=(2,))
    closed = ClosedForm.derive(p, ["x", "y"])
    assert closed.printed["y"] == "0"
    _, grads = closed.evaluate({"x": np.ones(3), "y": np.ones(2)})
    np.testing.assert_array_equal(grads["y"], np.zeros(2))


def test_closed_form_evaluates_to_the_right_numbers() -> None:
    closed = derive("sum((W @ v)^2)", W=(2, 3), v=(3,))
    rng = np.random.default_rng(1)
    W, v = rng.normal(size=(2, 3)), rng.normal(size=3)
    value, grads = closed.evaluate({"W": W, "v": v})
    np.testing.assert_allclose(value, np.sum((W @ v) ** 2))
    np.testing.assert_allclose(grads["W"], 2 * np.outer(W @ v, v))
    np.testing.assert_allclose(grads["v"], 2 * W.T @ (W @ v))


# ---------------------------------------------------------------- claimed formulas


@pytest.mark.parametrize("claim", ["3/2*(x+2)", "3*x/2 + 3", "(3*x + 6)/2", "3/2*(x + 2) + 0*x"])
def test_correct_claim_has_zero_difference(claim: str) -> None:
    closed = derive(SEED, x=(2, 2))
    difference = closed.difference("x", closed.lower_formula(parse(claim)))
    assert difference.expr == 0
    assert difference.shape == (2, 2)


def test_wrong_claim_difference_is_printed() -> None:
    closed = derive(SEED, x=(2, 2))
    difference = closed.difference("x", closed.lower_formula(parse("3*(x+2)")))
    assert closed.printer(difference.expr) == "3/2*(x + 2)"


def test_claim_may_name_steps_and_rebound_steps() -> None:
    closed = derive("y = x + 2\nz = 3*y^2\nout = mean(z)", x=(2, 2))
    assert closed.difference("x", closed.lower_formula(parse("3/2*y"))).expr == 0
    assert closed.difference("x", closed.lower_formula(parse("z/(2*y)"))).expr == 0
    rebound = derive("y = x*2\ny = y + 1\nout = sum(y^2)", x=(3,))
    # `y` in a formula means its last value, 2*x + 1.
    assert rebound.difference("x", rebound.lower_formula(parse("4*y"))).expr == 0


def test_claim_over_tensor_atoms() -> None:
    closed = derive("sum((W @ v)^2)", W=(2, 3), v=(3,))
    claim = closed.lower_formula(parse("2*(W.T @ (W @ v))"))
    assert closed.difference("v", claim).expr == 0
    wrong = closed.difference("v", closed.lower_formula(parse("W.T @ (W @ v)")))
    assert closed.printer(wrong.expr) == "-W.T @ (W @ v)"


def test_relu_times_its_step_reads_as_relu() -> None:
    from symcheck.engines.symbolic import ClosedForm
    from symcheck.language.ir import TensorType
    from symcheck.language.parser import bind, parse

    types = {"W": TensorType((2, 3)), "x": TensorType((3,)), "b": TensorType((2,))}
    closed = ClosedForm.derive(bind(parse("sum(relu(W @ x + b)^2)"), types), ["W", "x", "b"])
    assert closed.printed == {
        "W": "2*outer(relu(W @ x + b), x)",
        "x": "2*(W.T @ relu(W @ x + b))",
        "b": "2*relu(W @ x + b)",
    }
