"""Second derivatives in the symbolic engine: H v in closed form, Hessian matrices, exact blocks."""

from __future__ import annotations

import numpy as np
import pytest

from symcheck.engines.base import EngineOptions, hessian_key
from symcheck.engines.symbolic import SymbolicEngine
from symcheck.engines.symbolic.engine import ClosedForm
from symcheck.engines.symbolic.second_order import SecondOrder
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse

FLT, INT = DType.FLOAT, DType.INT


def program(text: str, shapes: dict[str, tuple[int, ...]], ints: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return bind(parse(text), {n: TensorType(s, INT if n in ints else FLT) for n, s in shapes.items()})


@pytest.mark.parametrize(
    ("text", "shapes", "wrt", "expected"),
    [
        ("x @ A @ x", {"x": (3,), "A": (3, 3)}, ["x"], {"d2out/dx2": "A + A.T"}),
        ("sum((X @ w - y)^2)", {"X": (5, 3), "w": (3,), "y": (5,)}, ["w"], {"d2out/dw2": "2*(X.T @ X)"}),
        ("sum(x^2) / 2", {"x": (4,)}, ["x"], {"d2out/dx2": "eye(4)"}),
        ("sum(x^3)", {"x": (2,)}, ["x"], {"(H v)_x": "6*v*x"}),
        ("mean(3*(x+2)^2)", {"x": (2, 2)}, ["x"], {"(H v)_x": "3/2*v"}),
    ],
)
def test_readable_second_derivatives(
    text: str, shapes: dict, wrt: list[str], expected: dict[str, str]
) -> None:
    closed = ClosedForm.derive(program(text, shapes), wrt)
    assert SecondOrder.derive(closed, wrt).printed == expected


def test_direction_names_avoid_the_inputs() -> None:
    closed = ClosedForm.derive(program("sum(v * x^2)", {"v": (3,), "x": (3,)}), ["x"])
    second = SecondOrder.derive(closed, ["x"])
    assert second.directions == {"x": "v_"}


@pytest.mark.parametrize(
    ("text", "shapes", "ints"),
    [
        ("x @ A @ x + sum(tanh(A @ x))", {"x": (3,), "A": (3, 3)}, ()),
        ("sum(softplus(W @ x + b)) + sum(sigmoid(x))", {"W": (2, 3), "x": (3,), "b": (2,)}, ()),
        ("cross_entropy(W @ x + b, y)", {"W": (2, 3), "x": (3,), "b": (2,), "y": ()}, ("y",)),
        ("logsumexp(x) + sum(log_softmax(x) * x)", {"x": (4,)}, ()),
        ("sum(sum(X, axis=1)^2 * c) + trace(X @ X)", {"X": (2, 2), "c": (2,)}, ()),
    ],
)
def test_closed_form_hessian_equals_the_exact_expansion(
    text: str, shapes: dict, ints: tuple[str, ...]
) -> None:
    prog = program(text, shapes, ints)
    rng = np.random.default_rng(0)
    point = {n: np.ones(s, dtype=np.int64) if n in ints else rng.uniform(-1, 1, s) for n, s in shapes.items()}
    wrt = prog.float_inputs()
    result = SymbolicEngine().run(prog, point, wrt, EngineOptions(order=2))
    assert not result.failures
    assert "exact Hessian by expansion" in result.notes[-1]
    assert set(result.hessian) == {hessian_key(a, b) for a in wrt for b in wrt}
    for a in wrt:
        for b in wrt:
            block = result.hessian[hessian_key(a, b)]
            assert block.shape == shapes[a] + shapes[b]
    # Symmetry of second derivatives, on the flattened Hessian.
    n = {name: int(np.prod(shapes[name])) for name in wrt}
    full = np.block([[result.hessian[hessian_key(a, b)].reshape(n[a], n[b]) for b in wrt] for a in wrt])
    np.testing.assert_allclose(full, full.T, rtol=1e-12, atol=1e-12)


def test_hessian_of_a_quadratic_form_is_a_plus_a_transposed() -> None:
    prog = program("x @ A @ x", {"x": (3,), "A": (3, 3)})
    A = np.arange(9.0).reshape(3, 3)
    result = SymbolicEngine().run(prog, {"x": np.ones(3), "A": A}, ["x"], EngineOptions(order=2))
    np.testing.assert_allclose(result.hessian["x,x"], A + A.T)


def test_large_inputs_get_hvps_along_shared_directions() -> None:
    prog = program("mean(3*(x+2)^2)", {"x": (10, 10)})
    result = SymbolicEngine().run(prog, {"x": np.ones((10, 10))}, ["x"], EngineOptions(order=2))
    assert result.hessian == {}
    assert len(result.hvps) == EngineOptions().hvp_directions
    for hvp in result.hvps:
        np.testing.assert_allclose(hvp.product["x"], 6 / 100 * hvp.direction["x"])


def test_order_one_leaves_second_derivatives_empty() -> None:
    prog = program("sum(x^3)", {"x": (2,)})
    result = SymbolicEngine().run(prog, {"x": np.ones(2)}, ["x"], EngineOptions())
    assert result.hessian == {} and result.hvps == [] and result.hessian_forms == {}


def test_above_the_budget_the_closed_form_of_hv_is_checked_at_a_probe_shape() -> None:
    prog = program("sum(tanh(W @ x))", {"W": (5, 4), "x": (4,)})
    rng = np.random.default_rng(1)
    point = {"W": rng.uniform(-1, 1, (5, 4)), "x": rng.uniform(-1, 1, 4)}
    result = SymbolicEngine().run(prog, point, ["W", "x"], EngineOptions(order=2, expansion_budget=10))
    assert not result.failures
    assert any(n.startswith("closed form of H v = expanded Hessian at probe shape") for n in result.notes)
    assert set(result.hessian) == {"W,W", "W,x", "x,W", "x,x"}


@pytest.mark.parametrize(
    ("expr", "specs"),
    [
        # the expansion's second derivative at the kink is DiracDelta(0): undefined, not a mismatch
        ("tanh(maximum(0, c))", ["c=0"]),
        (
            "mse_loss(abs(softmax(b, axis=0)), 0.5) + mean(minimum(max(a, axis=0, keepdims=True), r))",
            ["a=[[-1.5, -0.25], [-0.25, -0.25]]", "b=[-1.5, -1.5]", "r=[[-0.25, -0.25]]"],
        ),
        # second differences step 2.5e-3: random points keep 2e-2 from kinks, or they straddle one
        (
            "logsumexp(where(a @ a > r, a @ a, r)) + mean(abs(min(a @ a, axis=0, keepdims=True) - 0.25))",
            ["a:2x2", "r:1x2"],
        ),
    ],
)
def test_second_derivatives_at_and_near_kinks_are_conventions_not_failures(
    expr: str, specs: list[str]
) -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    args = ["grad", expr, "--order", "2"]
    for spec in specs:
        args += ["-i", spec]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
