from __future__ import annotations

import numpy as np
import pytest
import sympy

from symcheck.engines.base import EngineOptions
from symcheck.engines.numeric.evaluator import forward
from symcheck.engines.registry import load_engine
from symcheck.engines.symbolic import ClosedForm
from symcheck.engines.symbolic.closed_form import Graph
from symcheck.engines.symbolic.functions import Abs, relu, sigmoid, softplus, step
from symcheck.engines.symbolic.printer import LanguagePrinter, Unprintable, printable
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse

Shapes = dict[str, tuple[int, ...]]

# Programs whose every printed gradient must parse back to the same numbers.
ROUND_TRIP: list[tuple[str, Shapes]] = [
    ("mean(3*(x+2)^2)", {"x": (2, 2)}),
    ("y = x + 2\nz = 3*y^2\nout = mean(z)", {"x": (2, 2)}),
    ("sum(tanh(x) + sigmoid(x)*softplus(x))", {"x": (3,)}),
    ("sum(relu(x) * abs(x))", {"x": (4,)}),
    ("sum(log(x) + sqrt(x) + exp(-x))", {"x": (3,)}),
    ("sum(sin(x)*cos(x) + tan(x))", {"x": (3,)}),
    ("sum(x^(-1/2) - 2*x^(-3))", {"x": (3,)}),
    ("sum(x*(x^(1/2))/(y^(-3/2)))", {"x": (3,), "y": (3,)}),
    ("sum(-x*y/(z+2))", {"x": (3,), "y": (3,), "z": (3,)}),
    ("sum(x^y)", {"x": (3,), "y": (3,)}),
    ("sum(2^x * exp(-x))", {"x": (3,)}),
    ("sum(-sigmoid(x) * (y @ z))", {"x": (), "y": (3,), "z": (3,)}),
    ("sum(sum(x, axis=0)^2)", {"x": (2, 3)}),
    ("sum(mean(x, axis=1)^2)", {"x": (2, 3)}),
    ("sum(mean(x, axis=1, keepdims=True)*x)", {"x": (2, 3)}),
    ("sum(mean(x^2, axis=(0, 2), keepdims=True) * y)", {"x": (2, 3, 4), "y": (1, 3, 1)}),
    ("sum(mean(x, axis=0) * b)", {"x": (2, 3), "b": (3,)}),
    ("sum(x.T * y)", {"x": (2, 3), "y": (3, 2)}),
    ("sum(transpose(x, axes=(2, 0, 1))^2)", {"x": (2, 3, 4)}),
    ("u @ v", {"u": (3,), "v": (3,)}),
    ("v @ W @ u", {"v": (2,), "W": (2, 3), "u": (3,)}),
    ("sum(A @ B)", {"A": (2, 3), "B": (3, 4)}),
    ("sum((A @ B)^2)", {"A": (2, 3), "B": (3, 4)}),
    ("sum((W @ v)^2)", {"W": (2, 3), "v": (3,)}),
    ("sum(W @ (W.T @ u))", {"W": (2, 3), "u": (2,)}),
    ("sum(tanh(v @ W))", {"v": (2,), "W": (2, 3)}),
    ("sum(sin(x @ W) * b)", {"x": (2,), "W": (2, 3), "b": (3,)}),
    ("sum(exp(W @ v) / (1 + (A @ B) @ c))", {"W": (2, 3), "v": (3,), "A": (2, 2), "B": (2, 3), "c": (3,)}),
    ("sum(y * (W @ x) - (W @ x)^(-2))", {"W": (2, 3), "x": (3,), "y": (2,)}),
    ("sum(x * b)", {"x": (2, 3), "b": (3,)}),
    ("sum(x * b)", {"x": (2, 3), "b": (2, 1)}),
    ("sum(x * s - s^2)", {"x": (2, 3), "s": ()}),
    ("sum(expand_dims(v, axis=1) * x)", {"v": (2,), "x": (2, 3)}),
    ("sum(expand_dims(v, axis=0) * x)", {"v": (3,), "x": (2, 3)}),
    ("y = x*2\ny = y + 1\nout = sum(y^2)", {"x": (3,)}),
]

# Each exercises the same bug: see test_closed_form_printing_keeps_broadcasts below.
BROADCAST_LOST: list[tuple[str, Shapes, str]] = [
    ("sum(x.T @ y)", {"x": (3, 2), "y": (3, 4)}, "x"),  # transpose of a broadcast (3,) -> (2, 3)
    ("sum(sum(X, axis=2) * b)", {"X": (2, 3, 4), "b": (3,)}, "X"),  # expand_dims of a broadcast
    ("sum(b * (W @ V))", {"W": (2, 3), "V": (3, 4), "b": (4,)}, "V"),  # matmul with a broadcast operand
    ("sum(transpose(X, axes=(1, 2, 0)) * b)", {"X": (2, 3, 4), "b": (2,)}, "X"),
    ("sum(sum(x, axis=1, keepdims=True) * b)", {"x": (2, 3), "b": (3,)}, "x"),  # sum of a broadcast
]


def _point(shapes: Shapes, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Positive and away from 0: every program above is smooth there (log, sqrt, x^y, relu, abs).
    return {name: rng.uniform(0.5, 1.5, shape) for name, shape in shapes.items()}


def _printed_values(text: str, types: dict[str, TensorType], point: dict[str, np.ndarray]) -> np.ndarray:
    parsed = parse(text)
    formula = bind(parsed, {n: types[n] for n in parsed.free_names()})
    return forward(formula, point)[formula.output.id]


def _round_trip(text: str, shapes: Shapes, only: str | None = None) -> None:
    types = {name: TensorType(shape) for name, shape in shapes.items()}
    program = bind(parse(text), types)
    wrt = program.float_inputs()
    closed = ClosedForm.derive(program, wrt)
    point = _point(shapes)
    _, closed_grads = closed.evaluate(point)
    auto = load_engine("autograd").run(program, point, wrt, EngineOptions())
    for name in [only] if only else wrt:
        np.testing.assert_allclose(closed_grads[name], auto.grads[name], rtol=1e-12, atol=1e-12)
        printed = closed.printed[name]
        values = _printed_values(printed, types, point)
        assert np.broadcast_shapes(values.shape, shapes[name]) == shapes[name], (name, printed)
        np.testing.assert_allclose(
            np.broadcast_to(values, shapes[name]), closed_grads[name], rtol=1e-12, atol=1e-12, err_msg=printed
        )


@pytest.mark.parametrize(("text", "shapes"), ROUND_TRIP, ids=[f"{t}-{s}" for t, s in ROUND_TRIP])
def test_printed_closed_form_round_trips(text: str, shapes: Shapes) -> None:
    _round_trip(text, shapes)


@pytest.mark.parametrize(
    ("text", "shapes", "name"), BROADCAST_LOST, ids=[f"{t}-{n}" for t, _, n in BROADCAST_LOST]
)
def test_closed_form_printing_keeps_broadcasts(text: str, shapes: Shapes, name: str) -> None:
    _round_trip(text, shapes, only=name)


# ---------------------------------------------------------------- printing SymPy expressions

GRAPH = Graph()
X = GRAPH.input("x", (3,)).expr
Y = GRAPH.input("y", (3,)).expr
S = GRAPH.input("s", ()).expr
V = GRAPH.input("v", (2,)).expr
WX = GRAPH.matmul(GRAPH.input("W", (2, 3)), GRAPH.input("x", (3,))).expr  # W @ x, shape (2,)
TYPES = {
    "x": TensorType((3,)),
    "y": TensorType((3,)),
    "s": TensorType(()),
    "v": TensorType((2,)),
    "u": TensorType((2,)),
    "U": TensorType((2,)),
    "W": TensorType((2, 3)),
}
R = sympy.Rational

PRINTED: list[tuple[sympy.Expr, str]] = [
    (R(3, 2) * (X + 2), "3/2*x + 3"),
    (sympy.Mul(R(3, 2), X + 2, evaluate=False), "3/2*(x + 2)"),
    (-X * Y, "-x*y"),
    (X - Y, "x - y"),
    (1 - sympy.tanh(X) ** 2, "1 - tanh(x)^2"),
    (-(X**2), "-x^2"),
    ((-X) ** 3, "-x^3"),
    (-((X + Y) ** 3), "-(x + y)^3"),
    (X**-2, "1/x^2"),
    (X ** R(-1, 2), "1/sqrt(x)"),
    (X ** R(-3, 2), "1/x^(3/2)"),
    (X ** R(2, 3), "x^(2/3)"),
    ((X + 1) ** -1, "1/(x + 1)"),
    (-1 / (X * Y), "-1/(x*y)"),
    (X / (Y + 1) ** 2, "x/(y + 1)^2"),
    (Y**2 / (S * X), "y^2/(s*x)"),
    (X ** (Y + 1), "x^(y + 1)"),
    (X ** (-Y), "x^(-y)"),
    (X ** (2**Y), "x^2^y"),
    (sympy.Integer(-2) ** X, "(-2)^x"),
    (R(1, 2) ** X, "2^(-x)"),
    (R(2, 3) ** X, "(2/3)^x"),
    (2**X, "2^x"),
    (sympy.exp(-X), "exp(-x)"),
    (-(X - 1) * (Y - 2), "(1 - x)*(y - 2)"),
    (sigmoid(-X), "sigmoid(-x)"),
    (relu(X - 1) * step(-X), "relu(x - 1)*step(-x)"),
    (softplus(X) ** 2, "softplus(x)^2"),
    (Abs(X - Y), "abs(x - y)"),
    (R(-1, 2), "-1/2"),
    (sympy.Integer(-3), "-3"),
    (V * WX, "(W @ x)*v"),
    (WX * S, "(W @ x)*s"),
    (V / WX, "v/(W @ x)"),
    (WX / V, "(W @ x)/v"),
    (-V * WX, "-(W @ x)*v"),
    (2 * V * WX, "2*(W @ x)*v"),
    (V * WX * GRAPH.input("u", (2,)).expr, "(W @ x)*u*v"),
    (GRAPH.input("U", (2,)).expr * WX, "U*(W @ x)"),  # upper case sorts first: a matmul mid-product
    (-WX, "-W @ x"),
    (WX**2, "(W @ x)^2"),
    (S - WX, "s - W @ x"),
]


@pytest.mark.parametrize(("expr", "text"), PRINTED, ids=[t for _, t in PRINTED])
def test_printed_text(expr: sympy.Expr, text: str) -> None:
    assert LanguagePrinter(GRAPH)(expr) == text


@pytest.mark.parametrize(("expr", "text"), PRINTED, ids=[t for _, t in PRINTED])
def test_printed_text_parses_back_to_the_same_expression(expr: sympy.Expr, text: str) -> None:
    parsed = parse(text)
    formula = bind(parsed, {n: TYPES[n] for n in parsed.free_names()})
    back = GRAPH.lower(formula)[formula.output.id].expr
    assert sympy.simplify(back - expr) == 0


def test_negative_exponent_binds_tighter_than_unary_minus() -> None:
    # -x^2 is -(x^2) in the language; the printer must not need parentheses there, and must use
    # them for a negative base.
    point = {"x": np.array([1.5, -2.0, 3.0])}
    types = {"x": TensorType((3,))}
    np.testing.assert_allclose(_printed_values("-x^2", types, point), -(point["x"] ** 2))
    np.testing.assert_allclose(
        _printed_values("(-2)^x", types, {"x": np.array([1.0, 2.0, 3.0])}), [-2, 4, -8]
    )


@pytest.mark.parametrize(
    "expr", [sympy.besselj(0, X), sympy.Piecewise((X, X > 0)), sympy.EulerGamma * X, sympy.DiracDelta(X)]
)
def test_outside_the_language_is_unprintable(expr: sympy.Expr) -> None:
    printer = LanguagePrinter(GRAPH)
    with pytest.raises(Unprintable):
        printer(expr)
    assert not printable(printer, expr)


def test_a_decimal_literal_prints_as_written_and_parses_back_exactly() -> None:
    """gelu's 0.044715 printed as 8943/200000, a leaky_relu slope 0.01 as 1/100; a terminating
    decimal prints as one where that is shorter (1/2 and 3/4 stay fractions), exactly."""
    from fractions import Fraction

    from click.testing import CliRunner

    from symcheck.cli import main
    from symcheck.engines.symbolic.printer import _decimal

    assert _decimal(sympy.Rational(8943, 200000)) == "0.044715"
    assert _decimal(sympy.Rational(-1, 20)) == "-0.05"
    assert _decimal(sympy.Rational(1, 3)) is None and _decimal(sympy.Integer(2)) is None
    for r in (sympy.Rational(8943, 200000), sympy.Rational(-3, 8), sympy.Rational(7, 10**30)):
        assert Fraction(_decimal(r)) == Fraction(int(r.p), int(r.q))  # type: ignore[arg-type]
    r = CliRunner().invoke(main, ["grad", "sum(leaky_relu(x) + 0.044715*x^2)", "-i", "x:2"])
    assert r.exit_code == 0, r.output
    assert "where(x > 0, 1, 0.01)" in r.output and "0.08943*x" in r.output


def test_sympys_own_max_and_min_print_as_the_pairwise_ops() -> None:
    """The element-by-element expansion writes maximum as SymPy's Max: explain printed it (fuzz #424
    of seed 43 crashed, 'cannot print Min(...)')."""
    x, y, z = sympy.symbols("x y z", real=True)
    printer = LanguagePrinter(Graph())
    assert printer(sympy.Min(x**2, y)) in ("minimum(x^2, y)", "minimum(y, x^2)")
    assert printer(sympy.Max(x, y, z)).count("maximum(") == 2
