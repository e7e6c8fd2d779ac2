"""symcheck explain: the seed's hand derivation, step by step, and claims checked against it."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from symcheck.cli import main
from symcheck.ir import DType, TensorType
from symcheck.parser import bind, parse
from symcheck.teaching.explain import check_claims, explain, render_text, split_steps

SEED = "mean(3*(x+2)^2)"
ONES = {"x": np.ones((2, 2))}


def seed_program(text: str = SEED):  # type: ignore[no-untyped-def]
    return bind(parse(text), {"x": TensorType((2, 2))})


def test_a_single_expression_is_cut_where_elementwise_meets_a_reduction() -> None:
    steps = split_steps(seed_program()).steps
    assert [(s.name, s.expr.shape) for s in steps] == [("t1", (2, 2)), ("out", ())]


def test_named_steps_stay_as_written() -> None:
    steps = split_steps(seed_program("y = x + 2\nz = y * y * 3\nout = mean(z)")).steps
    assert [s.name for s in steps] == ["y", "z", "out"]


def test_the_seed_derivation_by_hand() -> None:
    ex = explain(seed_program("y = x + 2\nz = 3*y^2\nout = mean(z)"), ONES, ["x"])
    assert [(s.name, float(np.asarray(s.value).flat[0])) for s in ex.forward] == [
        ("y", 3),
        ("z", 27),
        ("out", 27),
    ]
    assert ex.elementwise[0] == "out = 3/4*((x1 + 2)^2 + (x2 + 2)^2 + (x3 + 2)^2 + (x4 + 2)^2)"
    assert ex.elementwise[1].startswith("dout/dx1 = 3/2*(x1 + 2)")
    out, z, y = ex.backward
    assert out.links[0].local == "dout/dz = 1/4"
    assert "mean: 1/N with N = 4" in out.rules
    assert z.upstream == "dout/dz = 1/4"
    assert z.links[0].local == "dz/dy = 6*y"
    assert z.links[0].chain == "dout/dy = dout/dz * dz/dy = 3/2*y"
    assert z.links[0].in_inputs == "3/2*(x + 2)"
    assert "power rule" in z.rules and "chain rule" not in y.rules
    assert ex.closed_forms == {"x": "3/2*(x + 2)"}
    np.testing.assert_allclose(ex.values["x"], 4.5)
    for grads in ex.engines.values():
        np.testing.assert_allclose(grads["x"], 4.5)
    assert set(ex.engines) == {"autograd", "torch"}


def test_logistic_regression_backward_reaches_softmax_minus_onehot() -> None:
    types = {
        "W": TensorType((2, 3)),
        "x": TensorType((3,)),
        "b": TensorType((2,)),
        "y": TensorType((), DType.INT),
    }
    program = bind(parse("z = W @ x + b\nL = nll_loss(log_softmax(z), y)"), types)
    point = {"W": np.full((2, 3), 0.1), "x": np.array([1.0, 0, 2]), "b": np.zeros(2), "y": np.array(1)}
    ex = explain(program, point, ["W", "b"])
    text = render_text(ex)
    assert "dL/dz = dL/dt2 * dt2/dz = softmax(z) - onehot(y, 2)" in text
    assert "outer(softmax(W @ x + b) - onehot(y, 2), x)" in text
    assert ex.elementwise == []  # labels would make it a case analysis


def test_claims_are_checked() -> None:
    program = seed_program()
    lines, right = check_claims(program, ["x"], ["x: 3/2*(x + 2)"])
    assert right
    lines, right = check_claims(program, ["x"], ["x: 3*(x+2)"])
    assert not right
    assert any("3/2*(x + 2)" in line for line in lines)


def test_the_command() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["explain", SEED, "-i", "x:2x2=1"])
    assert r.exit_code == 0, r.output
    assert "dout/dx = 3/2*(x + 2)" in r.output and "4.5 everywhere" in r.output
    r = runner.invoke(main, ["explain", SEED, "-i", "x:2x2=1", "--claim", "x: 3*(x+2)"])
    assert r.exit_code == 1
    r = runner.invoke(main, ["explain", "expressions/tutorial.yaml", "--case", "seed-named-steps"])
    assert r.exit_code == 0 and "dz/dy" in r.output
    r = runner.invoke(main, ["explain", "expressions/tutorial.yaml"])
    assert r.exit_code == 2 and "--case" in r.output
    r = runner.invoke(main, ["explain", "maen(x)", "-i", "x:2"])
    assert r.exit_code == 2 and "did you mean 'mean'" in r.output
