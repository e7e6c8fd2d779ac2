from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy

from symcheck.engines.base import EngineOptions
from symcheck.engines.symbolic import ClosedForm, SymbolicEngine
from symcheck.engines.symbolic import closed_form as closed_form_module
from symcheck.engines.symbolic.expansion import (
    element_symbols,
    evaluate_exact,
    exact_number,
    expand,
    expand_gradient,
)
from symcheck.engines.symbolic.probes import probe_shapes
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse

SEED = "mean(3*(x+2)^2)"
R = sympy.Rational


def program(text: str, **types: tuple[int, ...] | TensorType) -> Program:
    return bind(
        parse(text),
        {n: t if isinstance(t, TensorType) else TensorType(t) for n, t in types.items()},
    )


# ---------------------------------------------------------------- element symbols


def test_element_symbols_are_named_by_index() -> None:
    syms = element_symbols("x", (2, 2), DType.FLOAT)
    assert [s.name for s in syms.flat] == ["x[0, 0]", "x[0, 1]", "x[1, 0]", "x[1, 1]"]
    assert all(s.is_real and s.is_integer is None for s in syms.flat)
    assert element_symbols("s", (), DType.FLOAT)[()].name == "s"
    assert element_symbols("v", (3,), DType.FLOAT)[2].name == "v[2]"
    assert all(s.is_integer for s in element_symbols("k", (2,), DType.INT).flat)


def test_expand_writes_the_seed_out_element_by_element() -> None:
    p = program(SEED, x=(2, 2))
    syms = element_symbols("x", (2, 2), DType.FLOAT)
    out = expand(p, {"x": syms})[p.output.id][()]
    assert sympy.expand(out - sum(3 * (s + 2) ** 2 for s in syms.flat) / 4) == 0


def test_expanded_gradient_of_the_seed() -> None:
    expansion = expand_gradient(program(SEED, x=(2, 2)), ["x"])
    for index in np.ndindex(2, 2):
        s = expansion.symbols["x"][index]
        assert sympy.expand(expansion.grads["x"][index] - R(3, 2) * (s + 2)) == 0


# ---------------------------------------------------------------- exact values


def test_exact_number_is_the_float_exactly() -> None:
    assert exact_number(0.5) == R(1, 2)
    assert exact_number(0.1) == R(Fraction(0.1)) != R(1, 10)
    assert exact_number(3) == 3 and isinstance(exact_number(3), sympy.Integer)
    assert exact_number(np.float64(0.25).item()) == R(1, 4)


def test_seed_value_and_gradient_are_exact_rationals() -> None:
    expansion = expand_gradient(program(SEED, x=(2, 2)), ["x"])
    point = {"x": np.array([[0.5, 1.0], [1.5, 2.0]])}
    subs = expansion.substitution(point)
    value, exact = evaluate_exact(expansion.output, subs)
    # mean(3*(x+2)^2) at 2.5, 3, 3.5, 4: 3*(6.25 + 9 + 12.25 + 16)/4
    assert exact == R(261, 8) and value == 32.625
    grads = [evaluate_exact(g, subs)[1] for g in expansion.grads["x"].flat]
    assert grads == [R(15, 4), R(9, 2), R(21, 4), 6]


def test_exact_value_is_reported_by_the_engine() -> None:
    p = program(SEED, x=(2, 2))
    result = SymbolicEngine().run(p, {"x": np.full((2, 2), 0.5)}, ["x"], EngineOptions())
    assert result.exact_value == "75/4"
    assert "closed form = expansion (exact, element by element) at this point" in result.notes
    assert not result.failures


def test_irrational_value_has_no_exact_text() -> None:
    p = program("sum(exp(x))", x=(2,))
    result = SymbolicEngine().run(p, {"x": np.array([0.0, 1.0])}, ["x"], EngineOptions())
    assert result.exact_value is None
    assert float(result.value) == pytest.approx(1 + np.e, rel=1e-15)


def test_non_finite_value_is_nan() -> None:
    value, _ = evaluate_exact(sympy.log(sympy.Integer(-1)), {})
    assert np.isnan(value)


@pytest.mark.parametrize(
    ("text", "point", "expected"),
    [
        ("sum(relu(x))", [-1.0, 0.0, 2.0], [0, 0, 1]),  # relu'(0) = 0, as torch
        ("sum(abs(x))", [-1.0, 0.0, 2.0], [-1, 0, 1]),  # abs'(0) = 0, as torch
        ("sum(x*step(x))", [-1.0, 0.0, 2.0], [0, 0, 1]),
    ],
)
def test_kink_conventions_in_the_expansion(text: str, point: list[float], expected: list[int]) -> None:
    expansion = expand_gradient(program(text, x=(3,)), ["x"])
    subs = expansion.substitution({"x": np.array(point)})
    assert [evaluate_exact(g, subs)[1] for g in expansion.grads["x"]] == expected


# ---------------------------------------------------------------- the expansion checks the closed form

RATIONAL: list[tuple[str, dict[str, tuple[int, ...]]]] = [
    (SEED, {"x": (2, 2)}),
    ("sum((W @ v)^2) + sum(b*v)", {"W": (2, 3), "v": (3,), "b": (3,)}),
    ("sum((A @ B)^2 / (1 + A @ B))", {"A": (2, 3), "B": (3, 2)}),
    ("v @ W @ u", {"v": (2,), "W": (2, 3), "u": (3,)}),
    ("sum(mean(x, axis=1, keepdims=True)*x)", {"x": (2, 3)}),
    ("sum(x.T * y) + mean(sum(x, axis=0)^3)", {"x": (2, 3), "y": (3, 2)}),
    ("sum(x * b - s/x)", {"x": (2, 3), "b": (3,), "s": ()}),
    ("sum(expand_dims(v, axis=1) * x^2)", {"v": (2,), "x": (2, 3)}),
    ("y = x*2\ny = y + 1\nout = sum(y^3)", {"x": (3,)}),
]


def _exact_point(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    # Dyadic rationals: exact in binary, so float inputs are the rationals they look like.
    rng = np.random.default_rng(3)
    return {n: rng.integers(1, 16, shape) / 8 for n, shape in shapes.items()}


@pytest.mark.parametrize(("text", "shapes"), RATIONAL, ids=[t for t, _ in RATIONAL])
def test_closed_form_equals_expansion_exactly(text: str, shapes: dict[str, tuple[int, ...]]) -> None:
    p = program(text, **shapes)
    wrt = p.float_inputs()
    closed = ClosedForm.derive(p, wrt)
    expansion = expand_gradient(p, wrt)
    point = _exact_point(shapes)
    subs = expansion.substitution(point)
    exact_inputs = {n: np.vectorize(exact_number, otypes=[object])(v) for n, v in point.items()}
    for name in wrt:
        mine = closed.graph.evaluate_exact(closed.grads[name], exact_inputs)
        truth = expansion.grads[name]
        assert mine.shape == truth.shape == shapes[name]
        for index in np.ndindex(*truth.shape):
            expected = evaluate_exact(truth[index], subs)[1]
            assert expected.is_Rational
            assert sympy.nsimplify(mine[index]) == expected, (name, index)


@pytest.mark.parametrize(
    "text",
    ["sum(tanh(x) * sigmoid(y))", "sum(softplus(x*y) + log(x*x + 1))", "sum(sqrt(x*x + 1) * exp(-y))"],
)
def test_closed_form_equals_expansion_for_transcendental_functions(text: str) -> None:
    # sigmoid/softplus are named functions in the closed form, elementary ones in the expansion.
    p = program(text, x=(2,), y=(2,))
    result = SymbolicEngine().run(
        p, {"x": np.array([0.5, -1.25]), "y": np.array([2.0, 0.75])}, ["x", "y"], EngineOptions()
    )
    assert not result.failures
    assert "closed form = expansion (exact, element by element) at this point" in result.notes


# ---------------------------------------------------------------- above the budget: probe shapes


def test_expansion_skipped_above_budget_and_checked_at_probe_shape() -> None:
    p = program(SEED, x=(4, 4))
    result = SymbolicEngine().run(p, {"x": np.ones((4, 4))}, ["x"], EngineOptions(expansion_budget=10))
    assert result.notes[0].startswith("expansion skipped: 16 input elements > budget 10")
    assert (
        result.notes[1]
        == "closed form proven equal to the expansion, element by element, at probe shape (x: (2, 2))"
    )
    assert not result.failures
    assert result.exact_value is None
    np.testing.assert_allclose(result.grads["x"], np.full((4, 4), 18 / 16))


def test_probe_too_big_is_noted() -> None:
    p = program(SEED, x=(4, 4))
    result = SymbolicEngine().run(p, {"x": np.ones((4, 4))}, ["x"], EngineOptions(expansion_budget=3))
    assert result.notes[1] == (
        "closed form not checked by expansion: even at the probe shape, 4 input elements > budget 3"
    )


def test_within_the_budget_a_costly_expansion_runs_at_the_probe_shape_only() -> None:
    p = program("mean(3*(x+2)^2)", x=(8, 8))  # 64 elements: estimated 449 nodes x 64 wrt elements
    small = EngineOptions(expansion_work=10_000)
    result = SymbolicEngine().run(p, {"x": np.ones((8, 8))}, ["x"], small)
    assert result.notes[0].startswith("expansion skipped: estimated work 2.87e+04 > 1e+04")
    assert result.notes[1].startswith("closed form proven equal to the expansion, element by element")
    assert result.exact_value is None
    result = SymbolicEngine().run(p, {"x": np.ones((8, 8))}, ["x"], EngineOptions(expansion_work=30_000))
    assert result.exact_value == "27"


def test_a_case_no_larger_than_its_probe_is_its_own_probe() -> None:
    p = program("mean(3*(x+2)^2)", x=(2, 3))  # the probe shape is (2, 3) itself
    # estimated 43 nodes x 6 wrt elements: over a case's work, within a probe's (ten times as much)
    result = SymbolicEngine().run(p, {"x": np.ones((2, 3))}, ["x"], EngineOptions(expansion_work=30))
    assert result.exact_value == "27"
    p = program("mean(3*(x+2)^2)", x=(2, 3))
    result = SymbolicEngine().run(p, {"x": np.ones((2, 3))}, ["x"], EngineOptions(expansion_work=20))
    assert result.notes[0].startswith("expansion skipped: estimated work 258 > 200")


def test_at_the_budget_the_expansion_runs() -> None:
    p = program(SEED, x=(4, 4))
    result = SymbolicEngine().run(p, {"x": np.ones((4, 4))}, ["x"], EngineOptions(expansion_budget=16))
    assert result.exact_value == "27"


def test_probe_shapes_keep_equal_sizes_equal() -> None:
    p = program(
        "sum((W @ v)^2) + sum(b * (W @ v)) + sum(r * W) + k",
        W=(50, 40),
        v=(40,),
        b=(50,),
        r=(1, 40),
        k=TensorType((), DType.INT),
    )
    shapes = probe_shapes(p)
    assert shapes == {
        "W": TensorType((3, 2)),
        "v": TensorType((2,)),
        "b": TensorType((3,)),
        "r": TensorType((1, 2)),
        "k": TensorType((), DType.INT),
    }


def test_large_matmul_checked_at_probe_shape() -> None:
    p = program("sum((W @ v)^2) + sum(b*v)", W=(50, 40), v=(40,), b=(40,))
    rng = np.random.default_rng(0)
    point = {"W": rng.normal(size=(50, 40)), "v": rng.normal(size=40), "b": rng.normal(size=40)}
    result = SymbolicEngine().run(p, point, ["W", "v", "b"], EngineOptions())
    assert result.notes[0].startswith("expansion skipped: 2080 input elements > budget 256")
    assert (
        result.notes[1] == "closed form proven equal to the expansion, element by element, "
        "at probe shape (W: (3, 2), v: (2,), b: (2,))"
    )
    np.testing.assert_allclose(result.grads["v"], 2 * point["W"].T @ (point["W"] @ point["v"]) + point["b"])


# ---------------------------------------------------------------- a wrong closed form is caught


@pytest.fixture
def wrong_sin(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the closed form's table: the expansion keeps its own copy of the right one.
    monkeypatch.setitem(closed_form_module.ELEMENTWISE, "sin", sympy.cos)


@pytest.mark.usefixtures("wrong_sin")
def test_wrong_closed_form_disagrees_with_expansion() -> None:
    p = program("sum(sin(x))", x=(3,))
    result = SymbolicEngine().run(p, {"x": np.array([0.5, 1.0, 1.5])}, ["x"], EngineOptions())
    assert result.failures
    assert result.failures[0].startswith(
        "closed form disagrees with the expansion: d/dx at (0,): closed form"
    )


@pytest.mark.usefixtures("wrong_sin")
def test_wrong_closed_form_disagrees_at_probe_shape() -> None:
    p = program("sum(sin(x))", x=(300,))
    result = SymbolicEngine().run(p, {"x": np.ones(300)}, ["x"], EngineOptions())
    assert len(result.failures) == 1
    assert result.failures[0].startswith(
        "closed form disagrees with the expansion at probe shape x: (2,): d/dx at (0,)"
    )


def test_an_expansion_sympy_cannot_evaluate_falls_back_to_the_closed_form() -> None:
    # 0^|x| simplified case by case leaves `zoo**x > 0` in a branch not taken; substituting the
    # point raised "Invalid comparison of non-real zoo" (fuzz: exit 3)
    from click.testing import CliRunner

    from symcheck.cli import main

    r = CliRunner().invoke(
        main, ["grad", "sign(relu(x) ^ abs(x))", "-i", "x:2", "--samples", "0", "--seed", "167", "-v"]
    )
    assert r.exit_code == 0, r.output
    assert "expansion not evaluable at this point" in r.output


@pytest.mark.parametrize("expr", ["log((x > 0)*x)", "sum(log((x > 0)*x))"])
def test_a_closed_form_with_zoo_in_a_branch_evaluates(expr: str) -> None:
    # log(where(x > 0, x, 0)) has log(0) = zoo in the branch not taken; SymPy's numpy printer has
    # no spelling for zoo (fuzz: exit 3, KeyError 'ComplexInfinity')
    from click.testing import CliRunner

    from symcheck.cli import main

    r = CliRunner().invoke(main, ["grad", expr, "-i", "x:3", "--seed", "274"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "expr",
    [
        # relu(softplus(0)): SymPy cannot decide softplus(0) > 0 (fuzz: exit 3, truth value of Relational)
        "h = relu(softplus(u)); out = min(where(h >= -0.5, h, 0.5*h)) + mean(-abs(u))",
        # a bound past int64: numpy made the closed form's numbers objects (fuzz: exit 3)
        "sum(clamp(u, min=-0.5, max=999999999999999999999999999999999999999))",
    ],
)
def test_numbers_sympy_cannot_compare_or_numpy_cannot_hold_evaluate(expr: str) -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    r = CliRunner().invoke(main, ["grad", expr, "-i", "u=[1.0, 1.0, -1.0]", "--samples", "1"])
    assert r.exit_code == 0, r.output


def test_sigmoid_and_softplus_of_numbers_evaluate() -> None:
    import sympy

    from symcheck.engines.symbolic.functions import numeric_sign, relu, sigmoid, softplus

    assert abs(float(softplus(0).evalf()) - float(sympy.log(2))) < 1e-15
    assert abs(float(sigmoid(1).evalf()) - 1 / (1 + float(sympy.exp(-1)))) < 1e-15
    assert numeric_sign(-softplus(0)) == -1 and numeric_sign(sympy.Integer(0)) == 0
    assert relu(-softplus(0)) == 0


@pytest.mark.parametrize(
    ("expr", "specs"),
    [
        # nested if-then-else conditions: SymPy's printer made a float select a select's condition
        (
            "h1 = pow(u*u + 1, 0.5) - c/(u*u + 1); "
            "out = mean(((clamp(h1, min=-0.5) + softplus(u)) <= clamp(clamp(u, max=0.25), min=-1))"
            "*(clamp(h1, min=-0.5) + softplus(u)))",
            ["u=[0.25, 0.25, -1.0]", "c=0.25"],
        ),
        # every element tied with c = 1/2 where softmax([1/2, 1/2]) is 0.49999999999999994 in float
        (
            "max(minimum(minimum(c, c), softmax(b, axis=-1))) + mean(where(c > b, c, b))",
            ["b:2=0.5", "c=0.5"],
        ),
    ],
)
def test_more_fuzz_findings_in_the_closed_form_evaluate(expr: str, specs: list[str]) -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    args = ["grad", expr, "--samples", "0"]
    for spec in specs:
        args += ["-i", spec]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output


def test_a_program_that_does_not_bind_at_the_probe_shape_is_still_checked() -> None:
    # x[-5] needs 5 elements; the probe shape would give x 2 (was: exit 2 on a valid program)
    p = program("sum(x)*x[-5]", x=(6,))
    x = np.arange(1.0, 7.0)
    result = SymbolicEngine().run(p, {"x": x}, ["x"], EngineOptions(expansion_budget=3))
    assert result.notes[1] == (
        "closed form not checked by expansion: the program does not bind at a smaller probe shape "
        "(a constant index needs its size)"
    )
    assert result.grads["x"].tolist() == [2.0, 23.0, 2.0, 2.0, 2.0, 2.0]
    own = SymbolicEngine().run(p, {"x": x}, ["x"], EngineOptions(expansion_work=10))
    assert own.exact_value == "42"  # no smaller probe: the case is its own
