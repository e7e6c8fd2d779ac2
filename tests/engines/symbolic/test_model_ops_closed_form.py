"""Closed forms of the model ops (softmax, losses, products), and the four engines agreeing on them."""

from __future__ import annotations

import numpy as np
import pytest

from symcheck.checks.compare import compare_results, resolve_tolerance
from symcheck.engines.base import EngineOptions
from symcheck.engines.numeric.evaluator import forward
from symcheck.engines.registry import load_engine
from symcheck.engines.symbolic import ClosedForm
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse

FLT, INT = DType.FLOAT, DType.INT


def derive(text: str, types: dict[str, tuple[tuple[int, ...], DType]], wrt: list[str]) -> ClosedForm:
    program = bind(parse(text), {n: TensorType(s, d) for n, (s, d) in types.items()})
    return ClosedForm.derive(program, wrt)


LOGREG = {"W": ((2, 3), FLT), "x": ((3,), FLT), "b": ((2,), FLT), "y": ((), INT)}
BATCH = {"X": ((6, 4), FLT), "W": ((3, 4), FLT), "b": ((3,), FLT), "y": ((6,), INT)}


@pytest.mark.parametrize(
    ("text", "types", "expected"),
    [
        (
            "nll_loss(log_softmax(W @ x + b), y)",
            LOGREG,
            {
                "W": "outer(softmax(W @ x + b) - onehot(y, 2), x)",
                "b": "softmax(W @ x + b) - onehot(y, 2)",
                "x": "W.T @ (softmax(W @ x + b) - onehot(y, 2))",
            },
        ),
        (
            "cross_entropy(W @ x + b, y)",
            LOGREG,
            {"W": "outer(softmax(W @ x + b) - onehot(y, 2), x)", "b": "softmax(W @ x + b) - onehot(y, 2)"},
        ),
        (
            "cross_entropy(X @ W.T + b, y)",
            BATCH,
            {
                "W": "1/6*((softmax(X @ W.T + b).T - onehot(y, 3).T) @ X)",
                "b": "1/6*sum(softmax(X @ W.T + b) - onehot(y, 3), axis=0)",
            },
        ),
        ("logsumexp(x)", {"x": ((4,), FLT)}, {"x": "softmax(x)"}),
        ("sum(logsumexp(X, axis=1))", {"X": ((3, 4), FLT)}, {"X": "softmax(X)"}),
        ("trace(A)", {"A": ((3, 3), FLT)}, {"A": "eye(3)"}),
        ("dot(u, v)", {"u": ((3,), FLT), "v": ((3,), FLT)}, {"u": "v", "v": "u"}),
        ("sum(outer(u, v))", {"u": ((3,), FLT), "v": ((2,), FLT)}, {"u": "sum(v)", "v": "sum(u)"}),
        (
            "mse_loss(a, b, reduction=sum)",
            {"a": ((3,), FLT), "b": ((3,), FLT)},
            {"a": "2*(a - b)", "b": "2*(b - a)"},
        ),
    ],
)
def test_closed_forms_read_like_the_math(text: str, types: dict, expected: dict[str, str]) -> None:
    closed = derive(text, types, list(expected))
    assert closed.printed == expected


def test_sum_of_a_onehot_over_classes_is_one() -> None:
    # The step that turns -onehot + softmax * sum(onehot) into softmax - onehot.
    closed = derive("nll_loss(log_softmax(z), y)", {"z": ((4,), FLT), "y": ((), INT)}, ["z"])
    assert closed.printed["z"] == "softmax(z) - onehot(y, 4)"


MODEL_PROGRAMS = [
    ("nll_loss(log_softmax(W @ x + b), y)", LOGREG),
    ("cross_entropy(X @ W.T + b, y, reduction=sum)", BATCH),
    ("cross_entropy(X @ W.T + b, y) + mse_loss(X @ W.T, 0.5)", BATCH),
    ("sum(softmax(X, axis=0) * X) + logsumexp(X, axis=(0, 1))", {"X": ((3, 4), FLT)}),
    ("trace(A @ A.T) + dot(v, A @ v) + sum(outer(v, v) * A)", {"A": ((3, 3), FLT), "v": ((3,), FLT)}),
]


@pytest.mark.parametrize(("text", "types"), MODEL_PROGRAMS)
def test_printed_closed_forms_evaluate_to_the_engines_gradients(text: str, types: dict) -> None:
    program = bind(parse(text), {n: TensorType(s, d) for n, (s, d) in types.items()})
    wrt = program.float_inputs()
    rng = np.random.default_rng(3)
    point = {
        n: rng.integers(0, 2, size=s) if d is INT else rng.uniform(-1, 1, s) for n, (s, d) in types.items()
    }
    closed = ClosedForm.derive(program, wrt)
    reference = load_engine("autograd").run(program, point, wrt, EngineOptions())
    for name, text_form in closed.printed.items():
        formula = bind(
            parse(text_form), {n: TensorType(s, d) for n, (s, d) in types.items() if n in text_form}
        )
        value = forward(formula, point)[formula.output.id]
        np.testing.assert_allclose(
            np.broadcast_to(value, reference.grads[name].shape), reference.grads[name], rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize(("text", "types"), MODEL_PROGRAMS)
def test_all_four_engines_agree(text: str, types: dict) -> None:
    program = bind(parse(text), {n: TensorType(s, d) for n, (s, d) in types.items()})
    wrt = program.float_inputs()
    rng = np.random.default_rng(5)
    point = {
        n: rng.integers(0, 2, size=s) if d is INT else rng.uniform(-1, 1, s) for n, (s, d) in types.items()
    }
    results = {
        e: load_engine(e).run(program, point, wrt, EngineOptions())
        for e in ("symbolic", "autograd", "torch", "numeric")
    }
    assert not results["symbolic"].failures
    for name in ("autograd", "torch", "numeric"):
        comparison = compare_results(
            results[name], results["symbolic"], resolve_tolerance(name, "float64", None)
        )
        assert comparison.ok, [c.summary() for c in comparison.checks if not c.ok]


@pytest.mark.parametrize("shape", [(2, 3, 2), (3, 1, 2, 2)])
def test_take_of_a_tensor_with_three_or_more_axes_has_a_closed_form(shape: tuple[int, ...]) -> None:
    types = {"x": (shape, FLT), "y": ((3,), INT)}
    form = derive("sum(x[y]*x[y])", types, ["x"])
    x = np.arange(np.prod(shape), dtype=float).reshape(shape) / 7
    y = np.array([0, 1, 1])
    expected = np.zeros(shape)
    for k in y:
        expected[k] += 2 * x[k]
    got = form.graph.evaluate(form.grads["x"], {"x": x, "y": y})
    np.testing.assert_allclose(got, expected)
