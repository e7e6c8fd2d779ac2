"""Deep programs (micrograd's style: many steps on two scalars) keep their large steps shared."""

from __future__ import annotations

import time

import numpy as np
import pytest

from symcheck.engines.base import EngineOptions
from symcheck.engines.symbolic import ClosedForm, SymbolicEngine
from symcheck.engines.symbolic.closed_form import LET_SIZE, tree_size
from symcheck.language.ir import Program, TensorType
from symcheck.language.parser import bind, parse

# micrograd's test_more_ops and more steps: each rebinding doubles c and d when substituted
DEEP = (
    "c = a + b; d = a*b + b^3; c = c + c + 1; c = c + 1 + c + (-a); d = d + d*2 + relu(b + a); "
    "d = d + 3*d + relu(b - a); e = c - d; f = e^2; g = f/2.0; g = g + 10.0/f; h = tanh(g/10); "
    "k = h*a + sigmoid(b); m = k^2 + exp(b/4); n = relu(m - 1) + relu(1 - m); p = log(1 + m^2); "
    "q = p*h - k/2 + n; r = sqrt(q^2 + 1); s = softplus(r/4 + a); t = s*d/10 + c; u = tanh(t/10)*g; "
    "v = u + 2*e - f/49; w = sin(v) + cos(a*b); out = w/(1 + abs(h))"
)


def _program(text: str, **shapes: tuple[int, ...]) -> Program:
    parsed = parse(text)
    return bind(parsed, {n: TensorType(shapes.get(n, ())) for n in parsed.free_names()})


def _by_torch(a0: float, b0: float) -> tuple[float, float]:
    """DEEP written in torch, step by step, differentiated by torch's autograd."""
    import torch
    from torch.nn.functional import softplus

    a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + torch.relu(b + a)
    d = d + 3 * d + torch.relu(b - a)
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    h = torch.tanh(g / 10)
    k = h * a + torch.sigmoid(b)
    m = k**2 + torch.exp(b / 4)
    n = torch.relu(m - 1) + torch.relu(1 - m)
    p = torch.log(1 + m**2)
    q = p * h - k / 2 + n
    r = torch.sqrt(q**2 + 1)
    s = softplus(r / 4 + a)
    t = s * d / 10 + c
    u = torch.tanh(t / 10) * g
    v = u + 2 * e - f / 49
    w = torch.sin(v) + torch.cos(a * b)
    (w / (1 + torch.abs(h))).backward()
    return a.grad.item(), b.grad.item()


def test_a_deep_program_is_derived_quickly_and_right() -> None:
    program = _program(DEEP)
    start = time.perf_counter()
    closed = ClosedForm.derive(program, ["a", "b"])
    assert time.perf_counter() - start < 20  # was past 60 s with every step substituted
    _, grads = closed.evaluate({"a": np.array(-4.0), "b": np.array(2.0)})
    expected = _by_torch(-4.0, 2.0)
    assert grads["a"] == pytest.approx(expected[0], rel=1e-12)
    assert grads["b"] == pytest.approx(expected[1], rel=1e-12)
    lets = [atom for atom in closed.graph.atoms.values() if atom.op == "let"]
    assert lets and all(tree_size(atom.args[0].expr, LET_SIZE) > LET_SIZE for atom in lets)


def test_a_deep_program_says_its_expansion_is_too_large() -> None:
    result = SymbolicEngine().run(
        _program(DEEP), {"a": np.array(-4.0), "b": np.array(2.0)}, ["a", "b"], EngineOptions()
    )
    assert not result.failures
    assert result.notes[0].startswith("expansion skipped: estimated work")
    assert result.notes[1].startswith("closed form not checked by expansion: even at the probe shape")


def test_a_shared_step_prints_by_its_name_and_claims_naming_it_are_proven() -> None:
    y = " + ".join(f"sin({k}*x + 1)^2" for k in range(2, 14))  # about 100 nodes
    text = f"y = {y}; out = sum(sin(y))"
    program = _program(text, x=(3,))
    closed = ClosedForm.derive(program, ["x"])
    assert [a.kw("name") for a in closed.graph.atoms.values() if a.op == "let"] == ["y"]
    assert "cos(y)" in closed.printed["x"]
    claimed = closed.lower_formula(parse(closed.printed["x"]))
    assert closed.difference("x", claimed).expr == 0


def test_small_steps_are_still_substituted() -> None:
    closed = ClosedForm.derive(_program("y = x + 2; z = 3*y^2; out = mean(z)", x=(2, 2)), ["x"])
    assert closed.printed["x"] == "3/2*(x + 2)"
    assert not [a for a in closed.graph.atoms.values() if a.op == "let"]
