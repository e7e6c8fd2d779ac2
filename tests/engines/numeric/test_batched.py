"""Batched evaluation: many points of one input in one forward pass, the same numbers as one by one."""

from __future__ import annotations

import numpy as np
import pytest

from symcheck.engines.base import EngineOptions
from symcheck.engines.numeric import engine as numeric_engine
from symcheck.engines.numeric.engine import NumericEngine
from symcheck.engines.numeric.evaluator import batched, forward
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse

PROGRAMS = [
    ("mean(3*(x+2)^2)", {"x": (5,)}),
    ("sum(tanh(W @ x + b))", {"W": (3, 4), "x": (4,), "b": (3,)}),
    ("sum((R - U @ transpose(V))^2)", {"R": (3, 2), "U": (3, 2), "V": (2, 2)}),
    ("sum(softmax(W @ x) * log(2 + tanh(x @ W)))", {"W": (3, 3), "x": (3,)}),
    (
        "x @ A @ x + sum(expand_dims(x, axis=0) * A) + sum(broadcast_to(x, shape=(2, 3)))",
        {"x": (3,), "A": (3, 3)},
    ),
    ("sum(where(x > 0, x, 2*x) + clamp(x, min=0) + sqrt(abs(x)) + maximum(x, 0.5))", {"x": (4,)}),
    ("sum(max(x, axis=1)) + sum(logsumexp(x, axis=0)) + mean(log_softmax(x, axis=0))", {"x": (2, 3)}),
    ("cross_entropy(X @ W, y) + nll_loss(log_softmax(X @ W), y)", {"X": (3, 2), "W": (2, 4)}),
    ("sum(x) * x @ x + dot(x, x)", {"x": (3,)}),
]


def _program(text: str, shapes: dict[str, tuple[int, ...]]) -> Program:
    labels = {"y": TensorType((3,), DType.INT)} if "y)" in text else {}  # class labels of 4 classes
    return bind(parse(text), {**{n: TensorType(s) for n, s in shapes.items()}, **labels})


@pytest.mark.parametrize(("text", "shapes"), PROGRAMS, ids=[t for t, _ in PROGRAMS])
def test_a_batch_is_the_points_one_by_one(text: str, shapes: dict[str, tuple[int, ...]]) -> None:
    program = _program(text, shapes)
    rng = np.random.default_rng(3)
    point = {n: rng.normal(size=s) for n, s in shapes.items()}
    point["y"] = np.array([0, 3, 1])
    for name in shapes:
        run = batched(program, [name])
        if "dot(" in text:  # not batched: evaluated one point at a time
            assert run is None
            continue
        assert run is not None
        xs = point[name] + 0.1 * rng.normal(size=(6, *shapes[name]))
        together = run(point, {name: xs})
        one_by_one = [forward(program, {**point, name: x})[program.output.id] for x in xs]
        np.testing.assert_allclose(together, one_by_one, rtol=1e-15, atol=0, equal_nan=True)


def test_a_tensor_output_is_not_batched() -> None:
    assert batched(_program("tanh(x)", {"x": (3,)}), ["x"]) is None


def test_several_inputs_batched_together() -> None:
    program = _program("sum(tanh(W @ x + b))", {"W": (3, 4), "x": (4,), "b": (3,)})
    rng = np.random.default_rng(4)
    batch = {"W": rng.normal(size=(5, 3, 4)), "x": rng.normal(size=(5, 4))}
    run = batched(program, ["W", "x"])
    assert run is not None
    b = rng.normal(size=3)
    together = run({"b": b}, batch)
    points = [{"W": batch["W"][i], "x": batch["x"][i], "b": b} for i in range(5)]
    one_by_one = [forward(program, p)[program.output.id] for p in points]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-15, atol=0)


@pytest.mark.parametrize(("text", "shapes"), PROGRAMS[:4], ids=[t for t, _ in PROGRAMS[:4]])
def test_finite_differences_are_the_same_batched_or_not(
    text: str, shapes: dict[str, tuple[int, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    program = _program(text, shapes)
    rng = np.random.default_rng(5)
    point = {n: rng.normal(size=s) for n, s in shapes.items()}
    wrt = program.float_inputs()
    fast = NumericEngine().run(program, point, wrt, EngineOptions())
    monkeypatch.setattr(numeric_engine, "batched", lambda program, names: None)
    slow = NumericEngine().run(program, point, wrt, EngineOptions())
    for name in wrt:
        np.testing.assert_array_equal(fast.grads[name], slow.grads[name])
        np.testing.assert_array_equal(fast.error_bounds[name], slow.error_bounds[name])
