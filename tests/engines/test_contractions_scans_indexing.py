"""The contractions, products, scans, norms and indexing ops (N-D @ with a broadcast batch, einsum,
prod, cumsum, cumprod, norm, gather, scatter_add, index_select, embedding): every engine agrees at
random and at given points to second order, their gradients print in the language and are proven
when claimed, a wrong rule in one engine is caught, bad input is refused where it is written, the
domains and kinks are reported, the numeric engine's batches and the symbolic engine's symbolic
labels give the points' own values, and the numpy meaning of the indexing ops is torch's."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from op_checks import assert_printed_form_is_proven, assert_printed_gradient, engine_comparison, grad

from symcheck.checks.runner import run_cases
from symcheck.engines.autograd import rules as autograd_rules
from symcheck.engines.autograd.tensor import VJPS
from symcheck.engines.numeric.evaluator import batched, forward
from symcheck.engines.symbolic import arrays as symbolic_arrays
from symcheck.engines.torch import rules as torch_rules
from symcheck.language import layout
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse
from symcheck.suites.programs import load_case


def _bound(
    text: str, floats: dict[str, tuple[int, ...]], ints: dict[str, tuple[int, ...]] | None = None
) -> Program:
    types = {n: TensorType(s) for n, s in floats.items()}
    types |= {n: TensorType(s, DType.INT) for n, s in (ints or {}).items()}
    return bind(parse(text), types)


# the index of gather and scatter_add along axis 0 of a 3 x 4 tensor: rows 2 and 1 read twice
I0 = "i:2x4:int=[[0,2,2,1],[1,1,0,2]]"
# along axis 1 of a 3 x 4 tensor: column 0 read twice in row 0, column 2 in row 2
I1 = "j:3x2:int=[[0,0],[3,1],[2,2]]"

# ---------------------------------------------------------------- every engine agrees

# (an expression with the op in the middle of something nonlinear, its inputs)
AGREEING = [
    ("sum(sin(A @ B))", ("A:2x3x4", "B:4x5")),
    ("sum(exp(v @ B) * v[0])", ("v:4", "B:2x4x5")),
    ("sum((A @ v)^3)", ("A:2x3x4", "v:4")),
    ("sum(tanh(M @ B))", ("M:5x3", "B:2x3x4")),
    ("sum((A @ B)^2)", ("A:2x1x3x4", "B:5x4x2")),  # the batch broadcast both ways: (2, 5)
    ('sum(einsum("ij->i", x)^3)', ("x:3x4",)),
    ('sum(sin(einsum("bij,bjk->bik", A, B)))', ("A:2x2x3", "B:2x3x2")),
    ('sum(einsum("ij,jk,kl->il", A, B, C)^2)', ("A:2x3", "B:3x2", "C:2x3")),
    ('sum(einsum("ij,jk", A, B) * A[:, :2])', ("A:2x3", "B:3x2")),  # implicit output: ik
    ('sum(einsum("ij,jk->k", A, B)^2)', ("A:2x3", "B:3x2")),  # i summed in one operand only
    ('sum(exp(einsum("i,j->ij", u, v)))', ("u:3", "v:2")),
    ('sum(einsum("ij,ij->", A, A) * A)', ("A:2x3",)),
    ("prod(x) * sum(x)", ("x:4",)),
    ("sum(prod(x, axis=1, keepdims=True) * x)", ("x:3x4",)),
    ("sum(prod(sin(x), axis=0)^2)", ("x:3x4",)),
    ("sum(prod(x) * x)", ("x:2x3",)),
    ("sum(cumsum(x, axis=1)^2)", ("x:3x4",)),
    ("sum(cumsum(x, axis=0) * x)", ("x:3x4",)),
    ("sum(cumprod(x, axis=1) * x)", ("x:3x4",)),
    ("sum(cumprod(exp(x), axis=0))", ("x:3x4",)),
    ("norm(x) * sum(x)", ("x:3x4",)),
    ("sum(norm(x, axis=1)^3)", ("x:3x4",)),
    ("sum(norm(x, p=1, axis=0, keepdims=True) * x)", ("x:2x3",)),
    ("norm(x, p=inf) * sum(x^2)", ("x:2x3",)),
    ("norm(x, p=fro) + sum(norm(x, p=fro, axis=(0, 1), keepdims=True) * x)", ("x:3x4",)),
    ("sum(gather(x, i, axis=0)^2 * gather(x, i, axis=0))", ("x:3x4", I0)),
    ("sum(gather(sin(x), j, axis=1)^2)", ("x:3x4", I1)),
    ("sum(scatter_add(x, i, s, axis=0)^2)", ("x:3x4", I0, "s:2x4")),
    ("sum(scatter_add(x^2, j, exp(s), axis=1)^2)", ("x:3x4", I1, "s:3x2")),
    ("sum(index_select(x, k, axis=1)^3)", ("x:3x4", "k:3:int=[3,0,3]")),
    ("sum(index_select(x, k, axis=0) * x[:1])", ("x:3x4", "k:4:int=[2,0,2,1]")),
    ("sum(embedding(w, j)^2 * embedding(w, j))", ("w:4x3", "j:2x3:int=[[0,3,3],[1,0,2]]")),
]
AGREEING_IDS = [expr for expr, _ in AGREEING]


@pytest.mark.parametrize(("expr", "inputs"), AGREEING, ids=AGREEING_IDS)
def test_every_engine_agrees_on_the_first_derivatives(expr: str, inputs: tuple[str, ...]) -> None:
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result


@pytest.mark.parametrize(("expr", "inputs"), AGREEING, ids=AGREEING_IDS)
def test_every_engine_agrees_on_the_second_derivatives(expr: str, inputs: tuple[str, ...]) -> None:
    r = grad(expr, *inputs, extra=("--order", "2"))
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output
    if "p=inf" not in expr:  # a max's H v has its tie tests, which the language does not print
        assert "second    (H v)_" in r.output


@pytest.mark.parametrize(
    ("expr", "inputs"),
    [
        ("A @ B", ("A:2x2x3", "B:3x2")),
        ("v @ B", ("v:3", "B:2x3x2")),
        ("A @ v", ("A:2x2x3", "v:3")),
        ("M @ B", ("M:2x3", "B:2x3x2")),
        ("(A @ B) * 2", ("A:2x1x1x2", "B:2x2x1")),  # batch (2, 1) and (2,): (2, 2)
        ('einsum("bij,bjk->bik", A, B)', ("A:2x2x3", "B:2x3x2")),
        ('einsum("i,j->ij", u, v)', ("u:3", "v:2")),
        ('einsum("ij->i", x)^2', ("x:3x4",)),
        ('einsum("ji", x) * 2', ("x:2x3",)),
        ("prod(x, axis=1)", ("x:3x4",)),
        ("prod(x, axis=0, keepdims=True) * x", ("x:3x2",)),
        ("cumsum(x, axis=1)", ("x:3x4",)),
        ("cumprod(x, axis=0)", ("x:3x4",)),
        ("norm(x, axis=1)", ("x:3x4",)),
        ("norm(x, p=1, axis=0, keepdims=True)", ("x:3x4",)),
        ("norm(x, p=inf, axis=1)", ("x:3x4",)),
        ("gather(x, i, axis=0)", ("x:3x4", I0)),
        ("scatter_add(x, i, s, axis=0)", ("x:3x4", I0, "s:2x4")),
        ("index_select(x, k, axis=1)", ("x:3x4", "k:3:int=[3,0,3]")),
        ("embedding(w, j)", ("w:4x3", "j:2x3:int=[[0,3,3],[1,0,2]]")),
    ],
)
def test_a_tensor_output_of_these_ops_has_its_jacobian_checked_in_full(
    expr: str, inputs: tuple[str, ...]
) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 0, r.output
    assert "jacobian  checked in full" in r.output and "1 passed" in r.output


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((2, 3, 4), (4, 5)),
        ((4,), (2, 4, 5)),
        ((2, 3, 4), (4,)),
        ((5, 3), (2, 3, 4)),
        ((2, 1, 3, 4), (5, 4, 2)),
    ],
)
def test_an_n_d_matmul_has_the_shape_torch_matmul_gives(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    program = _bound("A @ B", {"A": a, "B": b})
    expected = torch.matmul(torch.zeros(a), torch.zeros(b)).shape
    assert program.output_type.shape == tuple(expected)


@pytest.mark.parametrize(
    ("subscripts", "shapes"),
    [("ba,cb", ((2, 3), (4, 2))), ("ji", ((2, 3),)), ("ij,jk", ((2, 3), (3, 4))), ("i,j", ((2,), (3,)))],
)
def test_an_implicit_einsum_output_is_the_letters_written_once_in_alphabetical_order(
    subscripts: str, shapes: tuple[tuple[int, ...], ...]
) -> None:
    names = "ABC"[: len(shapes)]
    text = f'einsum("{subscripts}", {", ".join(names)})'
    program = _bound(text, dict(zip(names, shapes, strict=True)))
    rng = np.random.default_rng(3)
    values = {n: rng.normal(size=s) for n, s in zip(names, shapes, strict=True)}
    expected = torch.einsum(subscripts, *(torch.from_numpy(values[n]) for n in names)).numpy()
    assert program.output_type.shape == expected.shape
    np.testing.assert_allclose(forward(program, values)[program.output.id], expected, rtol=1e-14)


# ---------------------------------------------------------------- at given values


@pytest.mark.parametrize(
    ("expr", "inputs"),
    [
        ("sum(sin(A @ B))", ("A=[[[1, 2], [3, 4]], [[0.5, -1], [2, 0]]]", "B=[[1, 0, -1], [0.5, 2, 1]]")),
        ("sum((v @ B)^2)", ("v=[1, -2]", "B=[[[1, 0], [0.5, 2]], [[-1, 3], [2, 1]]]")),
        ('sum(einsum("bij,bjk->bik", A, B)^2)', ("A=[[[1, 2]], [[3, -1]]]", "B=[[[1], [0.5]], [[2], [-1]]]")),
        ("sum(prod(x, axis=1, keepdims=True) * x)", ("x=[[1, 2, 0], [3, 0, 0], [1, -2, 0.5]]",)),
        ("sum(cumsum(x, axis=0)^2)", ("x=[1, -2, 0, 3]",)),
        ("sum(cumprod(x, axis=1) * x)", ("x=[[1, -2, 0.5], [3, 0.25, -1]]",)),
        ("norm(x) * sum(x)", ("x=[3, 4]",)),
        ("sum(norm(x, p=fro, axis=(0, 1), keepdims=True) * x)", ("x=[[1, -2], [2, 0.5]]",)),
        ("sum(gather(x, i, axis=0)^3)", ("x=[[1, 2, 3, 4], [-1, 0.5, 2, 0], [3, -2, 1, 1]]", I0)),
        ("sum(scatter_add(x, j, s, axis=1)^2)", ("x:3x4", I1, "s=[[1, 2], [0.5, -1], [3, 1]]")),
        (
            "sum(index_select(x, k, axis=1)^2 * x[:, :1])",
            ("x=[[1, 2, 3, 4], [-1, 0.5, 2, 0]]", "k:3:int=[3,0,3]"),
        ),
        ("sum(embedding(w, j)^3)", ("w=[[1, 2], [0.5, -1], [3, 0]]", "j:2x2:int=[[0, 2], [2, 1]]")),
    ],
)
def test_every_engine_agrees_at_given_values(expr: str, inputs: tuple[str, ...]) -> None:
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result
    assert result.points[0].label == "given values"


@pytest.mark.parametrize(
    ("expr", "at", "expected"),
    [
        ("prod(x)", "x=[1, 2, 0, 3]", [0.0, 0.0, 6.0, 0.0]),  # at the zero: 1*2*3
        ("prod(x)", "x=[2, 0, 3, 0]", [0.0, 0.0, 0.0, 0.0]),  # two zeros: every other product has one
        ("prod(x)", "x=[0, 5]", [5.0, 0.0]),
        ("sum(prod(x, axis=1))", "x=[[1, 0, 4], [2, 3, -1]]", [[0.0, 4.0, 0.0], [-3.0, -2.0, 6.0]]),
        ("sum(prod(x, axis=0, keepdims=True))", "x=[[0, 2], [5, 0]]", [[5.0, 0.0], [0.0, 2.0]]),
    ],
)
def test_the_gradient_of_prod_at_a_zero_is_the_product_of_the_others_exactly(
    expr: str, at: str, expected: list
) -> None:
    (result,), errors = run_cases([load_case(expr, [at])])
    assert not errors and result.status == "pass", result
    point = result.points[0]
    assert point.label == "given values"
    for engine in ("symbolic", "autograd", "torch"):
        np.testing.assert_array_equal(point.results[engine].grads["x"], expected, err_msg=engine)
    np.testing.assert_allclose(point.results["numeric"].grads["x"], expected, atol=1e-8)


def test_the_printed_gradient_of_prod_at_a_zero_is_the_product_of_the_others() -> None:
    r = grad("prod(x)", "x=[1,2,0,3]")
    assert r.exit_code == 0, r.output
    assert "x.grad = [0., 0., 6., 0.]   (at the given values)" in r.output and "1 passed" in r.output


@pytest.mark.parametrize(
    ("expr", "inputs", "name", "expected"),
    [
        # column 0 reads row 0 twice (its gradient adds to 2), column 2 reads row 2 twice
        (
            "sum(gather(x, i, axis=0))",
            ("x:3x4", "i:2x4:int=[[0,2,2,1],[0,1,2,2]]"),
            "x",
            "[[2,0,0,0],[0,1,0,1],[0,1,2,1]]",
        ),
        ("sum(gather(x, j, axis=1))", ("x:3x4", I1), "x", "[[2,0,0,0],[0,1,0,1],[0,0,2,0]]"),
        ("sum(index_select(x, k, axis=1))", ("x:2x4", "k:3:int=[3,0,3]"), "x", "[[1,0,0,2],[1,0,0,2]]"),
        ("sum(embedding(w, j))", ("w:4x2", "j:2x3:int=[[0,3,3],[1,0,2]]"), "w", "[[2,2],[1,1],[1,1],[2,2]]"),
        # scatter_add sends each src element to one place: its gradient is 1 whatever the repeats
        ("sum(scatter_add(x, i, s, axis=0))", ("x:3x4", I0, "s:2x4"), "s", "[[1,1,1,1],[1,1,1,1]]"),
        ("sum(scatter_add(x, i, s, axis=0))", ("x:3x4", I0, "s:2x4"), "x", "[[1,1,1,1],[1,1,1,1],[1,1,1,1]]"),
    ],
)
def test_the_gradients_of_repeated_indices_add_up(
    expr: str, inputs: tuple[str, ...], name: str, expected: str
) -> None:
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result
    for engine in ("symbolic", "autograd", "torch"):
        for point in result.points:
            np.testing.assert_array_equal(
                point.results[engine].grads[name], json.loads(expected), err_msg=engine
            )


def test_a_scatter_add_with_repeated_indices_adds_every_source_there() -> None:
    x = np.zeros((3, 4))
    src = np.arange(1.0, 9.0).reshape(2, 4)
    out = layout.scatter_add(x, np.array([[0, 2, 2, 1], [0, 1, 2, 2]]), src, 0)
    np.testing.assert_array_equal(out, [[6, 0, 0, 0], [0, 6, 0, 4], [0, 2, 10, 8]])


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize(
    ("expr", "inputs", "name", "gradient"),
    [
        (
            'sum(einsum("bij,bjk->bik", A, B)^2)',
            ("A:2x2x3", "B:2x3x2"),
            "A",
            'einsum("bjk,bik->bij", B, 2*einsum("bij,bjk->bik", A, B))',
        ),
        (
            'sum(einsum("bij,bjk->bik", A, B)^2)',
            ("A:2x2x3", "B:2x3x2"),
            "B",
            'einsum("bij,bik->bjk", A, 2*einsum("bij,bjk->bik", A, B))',
        ),
        (
            'sum(exp(einsum("i,j->ij", u, v)))',
            ("u:3", "v:2"),
            "u",
            'einsum("j,ij->i", v, exp(einsum("i,j->ij", u, v)))',
        ),
        ("sum(sin(A @ B))", ("A:2x3x4", "B:4x5"), "A", "cos(A @ B) @ B.T"),
        # the sum over the batch axis the operand was broadcast along, kept to its shape
        (
            "sum((A @ B)^2)",
            ("A:2x1x3x4", "B:5x4x2"),
            "A",
            "2*sum(A @ B @ transpose(B, axes=(0, 2, 1)), axis=1, keepdims=True)",
        ),
        (
            "sum((A @ B)^2)",
            ("A:2x1x3x4", "B:5x4x2"),
            "B",
            "2*sum(transpose(A, axes=(0, 1, 3, 2)) @ (A @ B), axis=0)",
        ),
        ("norm(x)", ("x:3x4",), "x", "x/sqrt(sum(x^2))"),
        ("sum(norm(x, axis=1)^3)", ("x:3x4",), "x", "3*x*sqrt(sum(x^2, axis=1, keepdims=True))"),
        ("norm(x, p=1)", ("x:3x4",), "x", "sign(x)"),
        (
            "sum(cumsum(x, axis=1)^2)",
            ("x:3x4",),
            "x",
            "flip(cumsum(flip(2*cumsum(x, axis=1), axis=1), axis=1), axis=1)",
        ),
        (
            "sum(cumprod(x, axis=1))",
            ("x:3x4",),
            "x",
            "flip(cumsum(flip(cumprod(x, axis=1), axis=1), axis=1), axis=1)/x",
        ),
        (
            "prod(x)",
            ("x:4",),
            "x",
            "pad(cumprod(x, axis=0)[:3], widths=(1, 0), value=1)"
            "*flip(pad(cumprod(flip(x, axis=0), axis=0)[:3], widths=(1, 0), value=1), axis=0)",
        ),
        (
            "sum(gather(x, i, axis=0)^2)",
            ("x:3x4", I0),
            "x",
            "scatter_add(broadcast_to(0, shape=(3, 4)), i, 2*gather(x, i, axis=0), axis=0)",
        ),
        (
            "sum(scatter_add(x, i, s, axis=0)^2)",
            ("x:3x4", I0, "s:2x4"),
            "x",
            "2*scatter_add(x, i, s, axis=0)",
        ),
        (
            "sum(scatter_add(x, i, s, axis=0)^2)",
            ("x:3x4", I0, "s:2x4"),
            "s",
            "gather(2*scatter_add(x, i, s, axis=0), i, axis=0)",
        ),
    ],
)
def test_the_closed_form_prints_in_the_language_and_reads_well(
    expr: str, inputs: tuple[str, ...], name: str, gradient: str
) -> None:
    assert_printed_gradient(expr, inputs, name, gradient)


CLAIMED = [
    ("sum(sin(A @ B))", ("A:2x3x4", "B:4x5")),
    ("sum((A @ B)^2)", ("A:2x1x3x4", "B:5x4x2")),
    ("sum(exp(v @ B))", ("v:4", "B:2x4x5")),
    ("sum((M @ B)^2)", ("B:2x3x4", "M:5x3")),
    ('sum(einsum("bij,bjk->bik", A, B)^2)', ("A:2x2x3", "B:2x3x2")),
    ('sum(einsum("ij->i", x)^3)', ("x:3x4",)),
    ('sum(einsum("ij,jk,kl->il", A, B, C)^2)', ("A:2x3", "B:3x2", "C:2x3")),
    ("prod(x)", ("x:4",)),
    ("sum(prod(x, axis=1, keepdims=True) * x)", ("x:3x4",)),
    ("sum(cumsum(x, axis=1)^2)", ("x:3x4",)),
    ("sum(cumprod(x, axis=1))", ("x:3x4",)),
    ("norm(x)", ("x:3x4",)),
    ("sum(norm(x, axis=1)^3)", ("x:3x4",)),
    ("norm(x, p=1)", ("x:3x4",)),
    ("norm(x, p=inf)", ("x:3x4",)),  # its tie test, claimed back as ==, is the same test
    ("sum(gather(x, i, axis=0)^2)", ("x:3x4", I0)),
    ("sum(gather(sin(x), j, axis=1)^2)", ("x:3x4", I1)),
    ("sum(scatter_add(x, i, s, axis=0)^2)", ("x:3x4", I0, "s:2x4")),
    ("sum(scatter_add(x, i, s, axis=0)^2)", ("s:2x4", "x:3x4", I0)),
    ("sum(index_select(x, k, axis=1)^3)", ("x:3x4", "k:3:int=[3,0,3]")),
    ("sum(embedding(w, j)^2)", ("w:4x3", "j:2x3:int=[[0,3,3],[1,0,2]]")),
]


@pytest.mark.parametrize(("expr", "inputs"), CLAIMED)
def test_a_printed_closed_form_parses_back_and_is_proven_when_claimed(
    expr: str, inputs: tuple[str, ...]
) -> None:
    assert_printed_form_is_proven(expr, inputs)


@pytest.mark.parametrize(
    ("expr", "inputs", "claim"),
    [
        (
            'sum(einsum("bij,bjk->bik", A, B) * C)',
            ("A:2x2x3", "B:2x3x2", "C:2x2x2"),
            'A: einsum("bjk,bik->bij", B, C)',
        ),
        ("sum((A @ B)^2)", ("A:2x3x4", "B:4x5"), "A: 2*(A @ B) @ B.T"),
        ("sum(cumsum(x, axis=0))", ("x:4",), "x: flip(cumsum(flip(1 + 0*x, axis=0), axis=0), axis=0)"),
        ("norm(x)", ("x:3x4",), "x: x/norm(x)"),
        ("sum(gather(x, i, axis=0) * y)", ("x:3x4", I0, "y:2x4"), "x: scatter_add(0*x, i, y, axis=0)"),
    ],
)
def test_a_textbook_gradient_is_proven(expr: str, inputs: tuple[str, ...], claim: str) -> None:
    r = grad(expr, *inputs, extra=("--claim", claim))
    assert r.exit_code == 0, r.output
    assert "proven (equal to the closed form)" in r.output


def test_prod_over_x_claimed_is_not_proven_and_is_refuted_at_a_given_zero() -> None:
    r = grad("prod(x)", "x:4", extra=("--claim", "x: prod(x)/x"))
    assert r.exit_code == 0, r.output
    assert "holds at 2/2 points (not proven symbolically" in r.output
    r = grad("prod(x)", "x=[1,2,0,3]", extra=("--claim", "x: prod(x)/x", "--samples", "0"))
    assert r.exit_code == 1, r.output
    assert "WRONG" in r.output and "claimed nan, true 6 at index (2,)" in r.output


def test_a_wrong_claim_about_cumsum_that_forgets_to_reverse_is_refuted() -> None:
    r = grad("sum(cumsum(x, axis=0)^2)", "x:4", extra=("--claim", "x: cumsum(2*cumsum(x, axis=0), axis=0)"))
    assert r.exit_code == 1, r.output
    assert "WRONG" in r.output


# ---------------------------------------------------------------- a wrong rule is caught


def _only_others_ok(result: Any, wrong: str) -> None:
    """The engine with the wrong rule disagrees somewhere; the other two agree everywhere."""
    assert not all(c.ok for c in engine_comparison(result, wrong))
    right = [e for e in ("autograd", "torch", "numeric") if e != wrong]
    assert all(c.ok for e in right for c in engine_comparison(result, e))


@pytest.mark.parametrize(
    ("expr", "inputs", "side"),
    [
        ("sum(sin(A @ B))", ("A:2x3x4", "B:4x5"), 1),  # B broadcast along the batch (2,)
        ("sum((A @ B)^2)", ("A:2x1x3x4", "B:5x4x2"), 0),  # A broadcast along (., 5)
        ("sum((A @ B)^2)", ("A:2x1x3x4", "B:5x4x2"), 1),  # B broadcast along (2, .)
    ],
)
def test_an_autograd_batched_matmul_that_forgets_to_sum_over_the_broadcast_batch_is_caught(
    monkeypatch: pytest.MonkeyPatch, expr: str, inputs: tuple[str, ...], side: int
) -> None:
    def no_sum_a(g: Any, ans: Any, a: Any, b: Any) -> Any:
        g2, _, b2 = autograd_rules._batched_parts(g, a, b)
        return g2 @ autograd_rules._matrix_transpose(b2)

    def no_sum_b(g: Any, ans: Any, a: Any, b: Any) -> Any:
        g2, a2, _ = autograd_rules._batched_parts(g, a, b)
        return autograd_rules._matrix_transpose(a2) @ g2

    right = VJPS["matmul"]
    monkeypatch.setitem(VJPS, "matmul", (no_sum_a, right[1]) if side == 0 else (right[0], no_sum_b))
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "fail"
    (autograd,) = [c for c in result.points[0].comparisons if c.engine == "autograd"]
    worst = autograd.worst()
    assert worst is not None and not worst.ok and worst.what == f"dout/d{'AB'[side]}"
    _only_others_ok(result, "autograd")


def _prod_over_x(g: Any, ans: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    """The classic slip: d prod / dx_i = prod / x_i, right except at a zero, where it is 0/0."""
    spread = autograd_rules._unreduce
    return spread(g, x.shape, axis, keepdims) * spread(ans, x.shape, axis, keepdims) / x


def test_an_autograd_prod_written_as_prod_over_x_passes_at_random_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(VJPS, "prod", (_prod_over_x,))
    (result,), errors = run_cases([load_case("prod(x) * sum(x)", ["x:4"])])
    assert not errors and result.status == "pass", result


def test_an_autograd_prod_written_as_prod_over_x_is_caught_at_a_given_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(VJPS, "prod", (_prod_over_x,))
    (result,), errors = run_cases([load_case("prod(x) * sum(x)", ["x=[1, 2, 0, 3]"])])
    assert not errors and result.status == "fail"
    point = result.points[0]
    assert point.label == "given values"
    assert np.isnan(point.results["autograd"].grads["x"][2])
    (autograd,) = [c for c in point.comparisons if c.engine == "autograd"]
    assert not autograd.ok
    assert all(c.ok for c in point.comparisons if c.engine != "autograd")


def test_an_autograd_cumsum_that_forgets_to_reverse_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VJPS, "cumsum", (lambda g, ans, x, *, axis: autograd_rules.cumsum(g, axis=axis),))
    (result,), errors = run_cases([load_case("sum(cumsum(x, axis=1)^2)", ["x:3x4"])])
    assert not errors and result.status == "fail"
    _only_others_ok(result, "autograd")


def test_an_autograd_cumprod_that_forgets_to_reverse_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = (lambda g, ans, x, *, axis: autograd_rules.cumsum(g * ans, axis=axis) / x,)
    monkeypatch.setitem(VJPS, "cumprod", wrong)
    (result,), errors = run_cases([load_case("sum(cumprod(x, axis=0) * x)", ["x:4x2"])])
    assert not errors and result.status == "fail"
    _only_others_ok(result, "autograd")


def test_a_torch_gather_along_the_wrong_axis_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(torch_rules.TABLE, "gather", lambda a, kw: torch.gather(a[0], 1 - kw["axis"], a[1]))
    (result,), errors = run_cases([load_case("sum(gather(x, i, axis=0)^2)", ["x:3x4", I0])])
    assert not errors and result.status == "fail"
    (torch_result,) = [c for c in result.points[0].comparisons if c.engine == "torch"]
    assert not torch_result.ok
    _only_others_ok(result, "torch")


def test_an_autograd_scatter_add_whose_src_gradient_is_g_itself_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The source's cotangent is g read back at idx (gather), not g: g has x's shape, not src's."""
    right = VJPS["scatter_add"]
    monkeypatch.setitem(VJPS, "scatter_add", (right[0], right[1], lambda g, ans, x, idx, src, *, axis: g))
    (result,), errors = run_cases([load_case("sum(scatter_add(x, i, s, axis=0)^2)", ["x:3x4", I0, "s:2x4"])])
    assert not errors and result.status == "fail"
    (autograd,) = [c for c in result.points[0].comparisons if c.engine == "autograd"]
    worst = autograd.worst()
    assert worst is not None and not worst.ok and worst.what == "dout/ds"
    _only_others_ok(result, "autograd")


def test_a_torch_index_select_along_the_wrong_axis_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        torch_rules.TABLE, "index_select", lambda a, kw: torch.index_select(a[0], 1 - kw["axis"], a[1])
    )
    (result,), errors = run_cases(
        [load_case("sum(index_select(x, k, axis=1)^3)", ["x:3x3", "k:2:int=[2,0]"])]
    )
    assert not errors and result.status == "fail"
    _only_others_ok(result, "torch")


def test_an_autograd_einsum_rule_that_drops_a_summed_letter_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """For "ij->i" x's cotangent is g broadcast along j; a rule that reads only j = 0 is wrong."""

    def first_column_only(i: int, g: Any, ans: Any, *xs: Any, subscripts: str) -> Any:
        right = autograd_rules._einsum_vjp(i, g, ans, *xs, subscripts=subscripts)
        mask = np.zeros(xs[i].shape)
        mask[:, 0] = 1.0
        return right * mask

    monkeypatch.setitem(VJPS, "einsum", first_column_only)
    (result,), errors = run_cases([load_case('sum(einsum("ij->i", x)^3)', ["x:3x4"])])
    assert not errors and result.status == "fail"
    _only_others_ok(result, "autograd")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("expr", "inputs", "message"),
    [
        (
            'sum(einsum("...ij,jk->ik", A, B))',
            ("A:2x3", "B:3x2"),
            "einsum's ... (broadcast axes) is not supported",
        ),
        ('sum(einsum("ii->i", A))', ("A:3x3",), "einsum operand 1 repeats 'i' ('ii'): not supported"),
        ('sum(einsum("ij,jk->ik", A))', ("A:2x3",), "einsum subscripts 'ij,jk->ik' name 2 operands, got 1"),
        (
            'sum(einsum("ij,jk->ik", A, B))',
            ("A:2x3", "B:4x2"),
            "einsum axis 'j' is 3 in one operand and 4 in another",
        ),
        (
            'sum(einsum("i1,jk->ik", A, B))',
            ("A:2x3", "B:3x2"),
            "einsum subscripts take letters a-z, A-Z, got '1'",
        ),
        ('sum(einsum("ijk", A))', ("A:2x3",), "einsum operand 1 has 2 axes (2, 3), subscripts 'ijk'"),
        (
            'sum(einsum("ij->k", A))',
            ("A:2x3",),
            "einsum output 'k' must name distinct letters of the operands",
        ),
        ("sum(einsum(A, B))", ("A:2x3", "B:3x2"), "einsum needs its subscripts first"),
        ('x = "ab"', (), "a string is only allowed as einsum's subscripts"),
        ('y = "ab"\nout = sum(x)', ("x:3",), "a string is only allowed as einsum's subscripts"),
        ('sum(x, axis="0")', ("x:3x4",), "axis must be an integer literal"),
        ("sum(A @ B)", ("A:2x3x4", "B:3x4x5"), "matmul's batch axes (2,) and (3,) do not broadcast"),
        ("sum(A @ B)", ("A:2x3x4", "B:2x5x4"), "matmul shapes (2, 3, 4) @ (2, 5, 4) do not align: 4 != 5"),
        ("sum(prod(x, axis=(0, 1)))", ("x:3x4",), "prod reduces over one axis or all, got axis=(0, 1)"),
        ("sum(cumsum(x))", ("x:3x4",), "cumsum needs axis=..., the axis it runs along"),
        ("sum(cumprod(x))", ("x:3x4",), "cumprod needs axis=..., the axis it runs along"),
        ("sum(norm(x, p=fro, axis=1))", ("x:3x4",), "the Frobenius norm is over two axes (or all)"),
        ("sum(norm(x, p=3))", ("x:3x4",), "p must be one of 2, 1, inf, fro"),
        ("sum(gather(x, i, axis=0))", ("x:3x4", "i:2x4"), "gather's index must be an int tensor"),
        (
            "sum(gather(x, i, axis=0))",
            ("x:3x4", "i:4:int"),
            "gather's index needs 2 axes, as x (3, 4), got (4,)",
        ),
        (
            "sum(gather(x, i, axis=0))",
            ("x:3x4", "i:2x5:int"),
            "gather's index (2, 5) is larger than x (3, 4) off axis 0",
        ),
        (
            "sum(gather(x, i, axis=2))",
            ("x:3x4", "i:2x4:int"),
            "axis=2 is out of range for a tensor with 2 axes",
        ),
        (
            "sum(scatter_add(x, i, s, axis=0))",
            ("x:3x4", "i:2x4:int", "s:2x3"),
            "scatter_add's src needs the index's shape (2, 4), got (2, 3)",
        ),
        (
            "sum(scatter_add(x, i, s, axis=1))",
            ("x:3x4", "i:4x2:int", "s:4x2"),
            "scatter_add's index (4, 2) is larger",
        ),
        (
            "sum(index_select(x, i, axis=0))",
            ("x:3x4", "i:2x2:int"),
            "index_select takes a 1-D index, got (2, 2)",
        ),
        ("sum(embedding(w, i))", ("w:5", "i:3:int"), "embedding's weight is (num_embeddings, dim), got (5,)"),
        ("sum(embedding(w, i))", ("w:5x2", "i:3"), "embedding's index must be an int tensor"),
    ],
)
def test_bad_input_is_refused_where_it_is_written(expr: str, inputs: tuple[str, ...], message: str) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    assert message in r.output and "^" in r.output


@pytest.mark.parametrize(
    ("expr", "inputs", "message"),
    [
        (
            "sum(gather(x, i, axis=0))",
            ("x:3x4", "i:1x2:int=[[0,3]]"),
            "indices must lie in [0, 3) (the size of axis 0)",
        ),
        (
            "sum(gather(x, i, axis=1))",
            ("x:3x4", "i:1x2:int=[[-1,0]]"),
            "indices must lie in [0, 4) (the size of axis 1)",
        ),
        (
            "sum(index_select(x, i, axis=1))",
            ("x:3x4", "i:2:int=[0,4]"),
            "indices must lie in [0, 4) (the size of axis 1)",
        ),
        ("sum(embedding(w, i))", ("w:5x2", "i:3:int=[0,5,-1]"), "indices must lie in [0, 5)"),
        (
            "sum(scatter_add(x, i, s, axis=0))",
            ("x:3x4", "i:1x2:int=[[0,3]]", "s:1x2"),
            "indices must lie in [0, 3)",
        ),
    ],
)
def test_a_given_index_out_of_range_is_refused_where_it_is_used(
    expr: str, inputs: tuple[str, ...], message: str
) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    assert "is out of range" in r.output and message in r.output and "^" in r.output


# ---------------------------------------------------------------- domains and kinks


@pytest.mark.parametrize(
    ("expr", "at", "message"),
    [
        ("sum(cumprod(x, axis=0))", "x=[1, 2, 0, 3]", "cumprod's closed-form gradient divides by x: x != 0"),
        ("sum(cumprod(x, axis=1) * x)", "x=[[1, 0], [1, 2]]", "cumprod's closed-form gradient divides by x"),
        ("norm(x)", "x=[0, 0, 0]", "a 2-norm needs norm(x) != 0"),
        ("sum(norm(x, axis=1))", "x=[[0, 0], [1, 2]]", "a 2-norm needs norm(x) != 0 (its gradient x/norm(x)"),
        ("norm(x, p=fro)", "x=[[0, 0], [0, 0]]", "a 2-norm needs norm(x) != 0"),
    ],
)
def test_a_given_point_outside_the_domain_is_reported_as_such(expr: str, at: str, message: str) -> None:
    r = grad(expr, at)
    assert r.exit_code == 1, r.output
    assert "FAILED    at the given values: the given values break a domain: " + message in r.output


@pytest.mark.parametrize(
    ("expr", "at", "kink", "expected"),
    [
        (
            "norm(x, p=1)",
            "x=[0, 1, -2]",
            "norm with p=1 (abs) is not differentiable where an element is 0",
            [0, 1, -1],
        ),
        (
            "norm(x, p=inf)",
            "x=[1, -1, 0.5]",
            "norm with p=inf is not differentiable where the largest |x| is tied",
            [0.5, -0.5, 0],
        ),
    ],
)
def test_a_norm_at_its_kink_is_reported_and_passes_with_torchs_convention(
    expr: str, at: str, kink: str, expected: list[float]
) -> None:
    r = grad(expr, at, extra=("--samples", "0"))
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output and f"kink      at the given values: {kink}" in r.output
    (result,), _ = run_cases([load_case(expr, [at])])
    for engine in ("symbolic", "autograd", "torch"):
        np.testing.assert_array_equal(result.points[0].results[engine].grads["x"], expected, err_msg=engine)


# ---------------------------------------------------------------- the numeric engine's batches

I0_VALUES = np.array([[0, 2, 2, 1], [1, 1, 0, 2]])
BATCHED = [
    ("sum(sin(A @ B))", {"A": (2, 3, 4), "B": (4, 5)}, {}),
    ("sum(v @ B) + sum((A @ v)^2)", {"v": (4,), "B": (2, 4, 5), "A": (2, 3, 4)}, {}),
    ("sum(M @ B) + sum((C @ D)^2)", {"M": (5, 3), "B": (2, 3, 4), "C": (2, 1, 3, 4), "D": (5, 4, 2)}, {}),
    (
        'sum(einsum("bij,bjk->bik", A, B)^2) + sum(einsum("ij->i", C)^3)',
        {"A": (2, 2, 3), "B": (2, 3, 2), "C": (3, 4)},
        {},
    ),
    (
        'sum(einsum("ij,jk,kl", C, D, C) * C) + sum(einsum("i,j->ij", u, u))',
        {"C": (3, 4), "D": (4, 3), "u": (2,)},
        {},
    ),
    ("prod(x) + sum(prod(x, axis=1, keepdims=True) * x)", {"x": (3, 4)}, {}),
    ("sum(cumsum(x, axis=1)^2) + sum(cumprod(x, axis=0))", {"x": (3, 4)}, {}),
    (
        "norm(x) + sum(norm(x, p=1, axis=0)) + norm(x, p=inf)"
        " + sum(norm(x, p=fro, axis=(0, 1), keepdims=True) * x)",
        {"x": (3, 4)},
        {},
    ),
    ("sum(gather(x, i, axis=0)^2)", {"x": (3, 4)}, {"i": I0_VALUES}),
    ("sum(gather(x, j, axis=1) * x[:, :2])", {"x": (3, 4)}, {"j": np.array([[0, 0], [3, 1], [2, 2]])}),
    ("sum(scatter_add(x, i, s, axis=0)^2)", {"x": (3, 4), "s": (2, 4)}, {"i": I0_VALUES}),
    ("sum(index_select(x, k, axis=1)^3)", {"x": (3, 4)}, {"k": np.array([3, 0, 3])}),
    ("sum(embedding(w, j)^2)", {"w": (4, 3)}, {"j": np.array([[0, 3, 3], [1, 0, 2]])}),
]


@pytest.mark.parametrize(("text", "shapes", "ints"), BATCHED, ids=[t for t, _, _ in BATCHED])
def test_a_batch_of_points_through_these_ops_is_the_points_one_by_one(
    text: str, shapes: dict[str, tuple[int, ...]], ints: dict[str, np.ndarray]
) -> None:
    program = _bound(text, shapes, {n: v.shape for n, v in ints.items()})
    rng = np.random.default_rng(7)
    point = {n: rng.normal(size=s) for n, s in shapes.items()} | ints
    for name in shapes:
        run = batched(program, [name])
        assert run is not None, f"{text} is not batched in {name}"
        xs = point[name] + 0.1 * rng.normal(size=(5, *shapes[name]))
        together = run(point, {name: xs})
        one_by_one = [forward(program, {**point, name: x})[program.output.id] for x in xs]
        np.testing.assert_allclose(together, one_by_one, rtol=1e-15, atol=0)


# ---------------------------------------------------------------- symbolic labels


@pytest.mark.parametrize(
    ("expr", "inputs", "reader"),
    [
        ("sum(gather(x, i, axis=0)^2)", ("x:3x4", "i:2x4:int"), "gather"),
        ("sum(gather(sin(x), i, axis=1)^2)", ("x:3x4", "i:2x3:int"), "gather"),  # smaller off the axis
        ("sum(scatter_add(x, i, s, axis=0)^2)", ("x:3x4", "i:2x4:int", "s:2x4"), "scatter_add"),
        ("sum(scatter_add(x, i, exp(s), axis=1)^2)", ("x:3x4", "i:2x3:int", "s:2x3"), "scatter_add"),
        ("sum(index_select(x, k, axis=1)^3)", ("x:3x4", "k:3:int"), "gather"),
        ("sum(embedding(w, j)^2 * embedding(w, j))", ("w:4x3", "j:2x3:int"), "gather"),
    ],
)
def test_random_labels_expanded_as_symbols_give_every_engines_values(
    monkeypatch: pytest.MonkeyPatch, expr: str, inputs: tuple[str, ...], reader: str
) -> None:
    """Labels drawn at random (no values given) are symbols in the exact expansion: each read is a
    onehot-weighted sum (symcheck/engines/symbolic/arrays.py) that resolves when they are substituted."""
    symbolic_reads: list[bool] = []
    original = getattr(symbolic_arrays, reader)

    def spy(*args: Any) -> Any:
        symbolic_reads.append(symbolic_arrays.is_symbolic(args[1]))
        return original(*args)

    monkeypatch.setattr(symbolic_arrays, reader, spy)
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result
    assert symbolic_reads and all(symbolic_reads)
    assert result.points[0].reference == "symbolic"


# ---------------------------------------------------------------- layout.py against torch

RNG = np.random.default_rng(12)


@pytest.mark.parametrize(
    ("shape", "idx", "axis"),
    [
        ((3, 4), [[0, 2, 2, 1], [1, 1, 0, 2]], 0),
        ((3, 4), [[0, 0], [3, 1], [2, 2]], 1),
        ((3, 4), [[1, 1, 0]], 1),  # smaller than x on the other axis
        ((2, 3, 4), [[[0, 1], [1, 1]], [[1, 0], [0, 0]]], 0),
    ],
)
def test_gather_and_scatter_add_are_torchs_and_each_others_adjoint(
    shape: tuple[int, ...], idx: list, axis: int
) -> None:
    x = RNG.normal(size=shape)
    index = np.array(idx)
    src = RNG.normal(size=index.shape)
    t, ti = torch.from_numpy(x), torch.from_numpy(index)
    np.testing.assert_array_equal(layout.gather(x, index, axis), torch.gather(t, axis, ti).numpy())
    expected = torch.scatter_add(t, axis, ti, torch.from_numpy(src)).numpy()
    np.testing.assert_allclose(layout.scatter_add(x, index, src, axis), expected, rtol=1e-15, atol=1e-15)
    # <gather(x), src> = <x, scatter_add(0, src)>
    left = np.sum(layout.gather(x, index, axis) * src)
    right = np.sum(x * layout.scatter_add(np.zeros(shape), index, src, axis))
    assert left == pytest.approx(right, rel=1e-13)


@pytest.mark.parametrize(
    ("shape", "idx", "axis"), [((3, 4), [3, 0, 3], 1), ((3, 4), [2, 2, 0, 1], 0), ((2, 3, 2), [1], 1)]
)
def test_index_select_is_torchs(shape: tuple[int, ...], idx: list[int], axis: int) -> None:
    x = RNG.normal(size=shape)
    expected = torch.index_select(torch.from_numpy(x), axis, torch.tensor(idx)).numpy()
    np.testing.assert_array_equal(layout.index_select(x, np.array(idx), axis), expected)


@pytest.mark.parametrize("idx", [[[0, 3, 3], [1, 0, 2]], [2, 0], [[[1]]]])
def test_embedding_is_torchs(idx: list) -> None:
    weight = RNG.normal(size=(4, 3))
    expected = F.embedding(torch.tensor(idx), torch.from_numpy(weight)).numpy()
    np.testing.assert_array_equal(layout.embedding(weight, np.array(idx)), expected)


def test_an_index_out_of_range_is_nan_inside_the_engines_not_an_index_error() -> None:
    x = RNG.normal(size=(3, 4))
    out = layout.gather(x, np.array([[0, 3, 1, -1]]), 0)
    np.testing.assert_array_equal(np.isnan(out), [[False, True, False, True]])
    assert np.isnan(layout.index_select(x, np.array([1, 4]), 1)[:, 1]).all()
    assert not np.isnan(layout.index_select(x, np.array([1, 4]), 1)[:, 0]).any()
    assert np.isnan(layout.embedding(x, np.array([0, 3]))[1]).all()
    assert np.isnan(layout.scatter_add(x, np.array([[0, 3]]), np.ones((1, 2)), 0)).all()


@pytest.mark.parametrize("op", ["gather", "scatter_add", "index_select", "embedding"])
def test_an_indexing_function_with_a_leading_batch_axis_is_the_function_per_element(op: str) -> None:
    xs = RNG.normal(size=(3, 3, 4))
    idx2 = np.array([[0, 2, 2, 1], [1, 1, 0, 2]])
    if op == "gather":
        together, one = layout.gather(xs, idx2, 0, lead=1), [layout.gather(x, idx2, 0) for x in xs]
    elif op == "scatter_add":
        srcs = RNG.normal(size=(3, 2, 4))
        together = layout.scatter_add(xs, idx2, srcs, 0, lead=1)
        one = [layout.scatter_add(x, idx2, s, 0) for x, s in zip(xs, srcs, strict=True)]
    elif op == "index_select":
        k = np.array([3, 0, 3])
        together, one = layout.index_select(xs, k, 1, lead=1), [layout.index_select(x, k, 1) for x in xs]
    else:
        j = np.array([[0, 2], [2, 1]])
        together, one = layout.embedding(xs, j, lead=1), [layout.embedding(x, j) for x in xs]
    np.testing.assert_array_equal(together, np.stack(one))
