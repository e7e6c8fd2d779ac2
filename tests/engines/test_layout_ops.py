"""The layout ops (reshape, flatten, squeeze, unsqueeze, flip, tril, triu, diagonal, undiagonal, concat,
stack, pad, slicing x[1:3, ::2] and x[..., -1], unslice): every engine agrees at random points to second
order, the adjoints' closed forms print in the language and are proven when claimed, a wrong rule in one
engine is caught, bad input is refused where it is written, slices print back as written, and the numpy
meaning of each op (symcheck/language/layout.py) is torch's, batched or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from op_checks import assert_printed_form_is_proven, assert_printed_gradient, engine_comparison, grad

from symcheck.checks.runner import run_cases
from symcheck.engines.autograd import rules as autograd_rules
from symcheck.engines.autograd.tensor import JVPS, VJPS
from symcheck.engines.numeric.evaluator import batched, forward
from symcheck.engines.torch import rules as torch_rules
from symcheck.language import layout
from symcheck.language.catalogue import diagonal_length, normalise_slices
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref, TensorType
from symcheck.language.parser import bind, parse, to_source
from symcheck.suites.programs import load_case

# ---------------------------------------------------------------- every engine agrees

# (an expression with the op in the middle of something nonlinear, its inputs)
AGREEING = [
    ("sum(reshape(x, shape=(2, -1))^3)", ("x:3x4",)),
    ("sum(concat(x, x^2, axis=1) * concat(x, x, axis=1))", ("x:3x4",)),
    ("sum(concat(x, sin(x), axis=-1)[:, 2:6]^2)", ("x:3x4",)),
    ("sum(stack(x, 2*x, axis=1)^2)", ("x:3x4",)),
    ("sum(stack(x, x^2, axis=-1)^2 * stack(x, x, axis=2))", ("x:3x4",)),
    ("sum(pad(sin(x), widths=(1, 2, 0, 1), value=0.5)^2)", ("x:3x4",)),
    ("sum(pad(x, widths=(1, 1, 1, 1), value=2)[::2, ::3]^2 * exp(x[0, 0]))", ("x:3x4",)),
    ("sum(x[1:3, ::2]^3)", ("x:3x4",)),
    ("sum(x[..., -1] * x[0])", ("x:4x4",)),
    ("sum(x[1:3, ::2][:, 1:] * x[::2, 2:])", ("x:4x4",)),
    ("sum((2*x + b)[1:3, 1] ^ 2)", ("x:4x3", "b:4x1")),
    ("sum(tril(x, k=1)^2)", ("x:3x4",)),
    ("sum(triu(x, k=-1) * x)", ("x:3x4",)),
    ("sum(diagonal(x, offset=1)^3)", ("x:3x4",)),
    ("sum(diagonal(x, offset=-2)^2 * x[3, 0])", ("x:4x3",)),
    ("sum(flip(x, axis=1) * x)", ("x:3x4",)),
    ("sum(flip(x) * x^2)", ("x:3x4",)),
    ("sum(squeeze(unsqueeze(x, 0))^2)", ("x:3x4",)),
    ("sum(squeeze(x, axis=(0, 2))^3)", ("x:1x3x1",)),
    ("sum(flatten(x, start_dim=0)^2)", ("x:3x4",)),
    ("sum(undiagonal(v^2, shape=(3, 4), offset=1) * A)", ("v:3", "A:3x4")),
    (
        "sum(unslice(x^2, shape=(6, 4), start=(1, 0), step=(2, 1)) * exp(pad(x, widths=(0, 0, 0, 3))))",
        ("x:3x4",),
    ),
    ("sum(diagonal(x)^3)", ("x:2x3x4",)),
    ("sum(flatten(x, start_dim=1)^3)", ("x:2x3x4",)),
    ("sum(x[:, 1:, ::2]^3)", ("x:2x3x4",)),
    ("sum(tril(x)^3)", ("x:2x3x4",)),
    ("sum(x[..., 0, ::3] * x[1, ..., 0, 1:3])", ("x:2x3x4",)),
    ("y = x[:, 1:]\nz = concat(y, y^2, axis=1)\nout = sum(z * flip(z))", ("x:3x3",)),
]
AGREEING_IDS = [expr.replace("\n", "; ") for expr, _ in AGREEING]


@pytest.mark.parametrize(("expr", "inputs"), AGREEING, ids=AGREEING_IDS)
def test_every_engine_agrees_on_the_first_derivatives(expr: str, inputs: tuple[str, ...]) -> None:
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result


@pytest.mark.parametrize(("expr", "inputs"), AGREEING, ids=AGREEING_IDS)
def test_every_engine_agrees_on_the_second_derivatives(expr: str, inputs: tuple[str, ...]) -> None:
    r = grad(expr, *inputs, extra=("--order", "2"))
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output and "second    (H v)_" in r.output


@pytest.mark.parametrize(
    ("expr", "inputs"),
    [
        ("x[1:3] * 2", ("x:3x4",)),
        ("concat(x, x^2)", ("x:3x4",)),
        ("stack(x, sin(x), axis=1)", ("x:3x2",)),
        ("pad(x, widths=(1, 1), value=2) * x[0, 0]", ("x:2x3",)),
        ("diagonal(x, offset=-1)^2", ("x:3x4",)),
        ("x[..., -1] * x[0, :3]", ("x:3x4",)),
        ("flip(tril(x), axis=0)", ("x:3x3",)),
        ("reshape(x, shape=(-1,))^2", ("x:2x3",)),
        ("undiagonal(v^2, shape=(3, 3))", ("v:3",)),
        ("unslice(exp(x), shape=(5,), start=(1,), step=(2,))", ("x:2",)),
        ("flatten(x, start_dim=1) * squeeze(x[:1, :1, :1])", ("x:2x2x2",)),
    ],
)
def test_a_tensor_output_of_a_layout_op_has_its_jacobian_checked_in_full(
    expr: str, inputs: tuple[str, ...]
) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 0, r.output
    assert "jacobian  checked in full" in r.output and "1 passed" in r.output


def test_squeeze_of_an_axis_whose_size_is_not_one_keeps_it_as_torch_does() -> None:
    program = bind(parse("squeeze(x, axis=0) * 2"), {"x": TensorType((3, 4))})
    assert program.output_type.shape == (3, 4) == tuple(torch.squeeze(torch.zeros(3, 4), dim=0).shape)
    program = bind(parse("squeeze(x, axis=2)"), {"x": TensorType((1, 4, 1))})
    assert program.output_type.shape == (1, 4)
    (result,), errors = run_cases([load_case("sum(squeeze(x, axis=0)^2 * x)", ["x:3x4"])])
    assert not errors and result.status == "pass", result


def test_integer_tensors_move_through_layout_ops_as_indices() -> None:
    for expr, labels in [
        ("sum(x[y[1:3]]^2)", "y:4:int=[0,3,1,2]"),
        ("sum(x[flip(y)] * x)", "y:4:int=[0,3,1,2]"),
        ("sum(x[concat(y, y)]^2)", "y:4:int=[0,3,1,2]"),
        ("sum(x[reshape(z, shape=(4,))]^2)", "z:2x2:int=[[0,3],[1,1]]"),
        ("sum(x[diagonal(z)]^2)", "z:2x2:int=[[0,3],[1,1]]"),
    ]:
        (result,), errors = run_cases([load_case(expr, ["x:4x3", labels])])
        assert not errors and result.status == "pass", (expr, result)


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize(
    ("expr", "gradient"),
    [
        ("sum(concat(x, 2*x, axis=1)^2)", "10*x"),
        ("sum(pad(x, widths=(1, 2), value=1)^2)", "2*x"),
        ("sum(stack(x, x^2)[1])", "2*x"),
        ("sum(stack(x, 2*x, axis=1)^2)", "10*x"),
        ("sum(x[1:3, ::2]^2)", "unslice(2*x[1:, ::2], shape=(3, 4), start=(1, 0), step=(1, 2))"),
        ("sum(diagonal(x, offset=1)^3)", "undiagonal(3*diagonal(x, offset=1)^2, shape=(3, 4), offset=1)"),
        ("sum(flip(x, axis=1) * x)", "2*flip(x, axis=1)"),
        ("sum(triu(x, k=-1) * x)", "2*triu(x, k=-1)"),
        ("sum(squeeze(reshape(x, shape=(3, 1, 4)), axis=1)^3)", "3*x^2"),
    ],
)
def test_the_closed_form_prints_in_the_language_and_reads_well(expr: str, gradient: str) -> None:
    assert_printed_gradient(expr, ("x:3x4",), "x", gradient)


@pytest.mark.parametrize(("expr", "inputs"), AGREEING, ids=AGREEING_IDS)
def test_a_printed_closed_form_parses_back_and_is_proven_when_claimed(
    expr: str, inputs: tuple[str, ...]
) -> None:
    assert_printed_form_is_proven(expr, inputs)


def test_a_wrong_claim_about_a_slice_is_refuted_where_the_slice_did_not_read() -> None:
    r = grad("sum(x[1:3, ::2]^2)", "x:3x4", extra=("--claim", "x: 2*x"))
    assert r.exit_code == 1, r.output
    assert "WRONG" in r.output and "true 0 at index (0, " in r.output


@pytest.mark.parametrize(
    ("expr", "gradient"),
    [
        ("sum(reshape(x, shape=(2, -1))^3)", "3*x^2"),
        ("sum(flatten(x)^2)", "2*x"),
        ("sum(squeeze(unsqueeze(x, 0))^2)", "2*x"),
    ],
)
def test_the_gradient_through_a_reshape_of_an_elementwise_function_has_no_reshapes(
    expr: str, gradient: str
) -> None:
    assert_printed_gradient(expr, ("x:3x4",), "x", gradient)


# ---------------------------------------------------------------- a wrong rule is caught


def test_an_autograd_flip_that_forgets_to_flip_back_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VJPS, "flip", (lambda g, ans, x, *, axis: g,))
    (result,), errors = run_cases(
        [load_case("sum(flip(x, axis=1) * x)", ["x=[[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]]"])]
    )
    assert not errors and result.status == "fail"
    (autograd,) = [c for c in result.points[0].comparisons if c.engine == "autograd"]
    worst = autograd.worst()
    assert worst is not None and not worst.ok and worst.what == "dout/dx"
    assert all(c.ok for c in engine_comparison(result, "torch") + engine_comparison(result, "numeric"))


def test_an_autograd_forward_mode_flip_that_forgets_to_flip_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tensor output's Jacobian is found by reverse mode and by forward mode: each checks the other."""
    monkeypatch.setitem(JVPS, "flip", (lambda t, ans, x, *, axis: t,))
    (result,), errors = run_cases(
        [load_case("flip(x, axis=1) * x", ["x=[[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]]"])]
    )
    assert not errors and result.status == "fail"
    failures = result.points[0].results["autograd"].failures
    assert failures and "reverse mode and forward mode disagree" in failures[0]
    assert all(c.ok for c in engine_comparison(result, "torch") + engine_comparison(result, "numeric"))


def test_an_autograd_diagonal_whose_adjoint_forgets_the_offset_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = (lambda g, ans, x, *, offset: autograd_rules.undiagonal(g, shape=x.shape, offset=0),)
    monkeypatch.setitem(VJPS, "diagonal", wrong)
    (result,), errors = run_cases([load_case("sum(diagonal(x, offset=1)^3)", ["x:3x4"])])
    assert not errors and result.status == "fail"
    assert not all(c.ok for c in engine_comparison(result, "autograd"))
    assert all(c.ok for c in engine_comparison(result, "torch") + engine_comparison(result, "numeric"))


def test_a_torch_slice_that_reads_one_row_late_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def late(a: Any, kw: Any) -> torch.Tensor:
        rows, *rest = kw["items"]
        return a[0][(slice(rows[0] + 1, rows[1] + 1, rows[2]), *(slice(*i) for i in rest))]

    monkeypatch.setitem(torch_rules.TABLE, "slice", late)
    (result,), errors = run_cases([load_case("sum(x[1:3, ::2]^3)", ["x:4x3"])])
    assert not errors and result.status == "fail"
    (torch_result,) = [c for c in result.points[0].comparisons if c.engine == "torch"]
    assert not torch_result.ok
    assert all(c.ok for c in engine_comparison(result, "autograd") + engine_comparison(result, "numeric"))


def test_a_torch_pad_with_its_widths_in_axis_order_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's widths pad the last axis first; numpy's pairs go first axis first: the classic slip."""

    def axis_order(a: Any, kw: Any) -> torch.Tensor:
        pairs = [kw["widths"][k : k + 2] for k in range(0, len(kw["widths"]), 2)]
        return F.pad(a[0], tuple(w for pair in reversed(pairs) for w in pair), value=kw["value"])

    monkeypatch.setitem(torch_rules.TABLE, "pad", axis_order)
    (result,), errors = run_cases([load_case("sum(pad(x, widths=(2, 0, 1, 1)) * A)", ["x:2x3", "A:4x5"])])
    assert not errors and result.status == "fail"
    assert not all(c.ok for c in engine_comparison(result, "torch"))
    assert all(c.ok for c in engine_comparison(result, "autograd") + engine_comparison(result, "numeric"))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("expr", "inputs", "message"),
    [
        ("sum(x[::-1])", ("x:3x4",), "a slice's step must be positive, got -1"),
        ("sum(x[:, ::0])", ("x:3x4",), "a slice's step must be positive, got 0"),
        ("sum(x[5:2])", ("x:3x4",), "selects nothing"),
        ("sum(x[..., ...])", ("x:3x4",), "an index may have only one ..."),
        ("sum(x[1:2, 1:2, 1:2])", ("x:3x4",), "3 indices for a tensor with 2 axes (3, 4)"),
        ("sum(x[0:1, -5])", ("x:3x4",), "index -5 is out of range for axis 1 of size 4"),
        ("sum(x[1:3, y])", ("x:3x4", "y:2:int=[0,1]"), "every index must be an integer literal"),
        ("sum(x[1.5:2])", ("x:3x4",), "every index must be an integer literal"),
        ("sum(reshape(x, shape=(5, -1)))", ("x:3x4",), "12 elements (3, 4) do not fill shape=(5, -1)"),
        ("sum(reshape(x, shape=(5, 3)))", ("x:3x4",), "cannot reshape 12 elements (3, 4) to shape=(5, 3)"),
        ("sum(reshape(x, shape=(-1, -1)))", ("x:3x4",), "with at most one -1"),
        ("sum(pad(x, widths=(1,)))", ("x:3x4",), "widths=(1,) needs an even count"),
        ("sum(pad(x, widths=(1, 1, 1, 1, 1, 1)))", ("x:3x4",), "at most 2 per axis (4 here)"),
        ("sum(pad(x, widths=(-1, 1)))", ("x:3x4",), "widths=(-1, 1) has a negative width"),
        ("sum(concat(x, y))", ("x:3x4", "y:3x5"), "concat along axis 0: argument 2 has shape (3, 5)"),
        ("sum(stack(x, y))", ("x:3x4", "y:4x3"), "stack needs equal shapes: argument 2 has (4, 3)"),
        ("sum(diagonal(v))", ("v:3",), "diagonal needs a matrix (2 or more axes), got shape (3,)"),
        ("sum(diagonal(x, offset=4))", ("x:3x4",), "a 3 x 4 matrix has no diagonal at offset 4"),
        ("sum(tril(v))", ("v:3",), "tril needs a matrix (2 or more axes), got shape (3,)"),
        ("sum(triu(v))", ("v:3",), "triu needs a matrix"),
        ("sum(flatten(x, start_dim=1, end_dim=0))", ("x:3x4",), "start_dim=1 comes after end_dim=0"),
        (
            "sum(unslice(x, shape=(4, 4), start=(2, 0), step=(1, 1)))",
            ("x:3x4",),
            "unslice: 3 elements from 2 by 1 do not fit axis 0 of size 4",
        ),
        ("sum(unslice(x, shape=(4,), start=(0,), step=(1,)))", ("x:3x4",), "one entry per axis of g (2)"),
        ("sum(undiagonal(v, shape=(3, 3), offset=1))", ("v:3",), "has shape (2,), got (3,)"),
    ],
)
def test_bad_input_is_refused_where_it_is_written(expr: str, inputs: tuple[str, ...], message: str) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    assert message in r.output and "^" in r.output


def test_a_negative_step_is_refused_with_flip_as_the_hint() -> None:
    r = grad("sum(x[::-1])", "x:3x4")
    assert r.exit_code == 2 and "hint: reverse an axis with flip(x, axis=...)" in r.output


# ---------------------------------------------------------------- printing back


def _bound(text: str, **shapes: tuple[int, ...]) -> Program:
    return bind(parse(text), {n: TensorType(s) for n, s in shapes.items()})


def _tree(node: Node) -> tuple:
    """A node as nested tuples, its spans left out: two programs are the same where these are."""
    if isinstance(node, Const):
        return ("const", node.value, node.type)
    if isinstance(node, Ref):
        return ("ref", node.name, node.type)
    assert isinstance(node, Call)
    return (node.op, node.kwargs, node.type, tuple(_tree(a) for a in node.args))


@pytest.mark.parametrize(
    ("text", "shape", "printed"),
    [
        ("x[1:3]", (4, 6), "x[1:3]"),
        ("x[:, ::2]", (4, 6), "x[:, ::2]"),
        ("x[2:, 0]", (4, 6), "x[2:, 0]"),
        ("x[..., -1]", (4, 6), "x[:, 5]"),
        ("x[-3:-1, 1::2]", (4, 6), "x[1:3, 1::2]"),
        ("x[3:100]", (4, 6), "x[3:]"),
        ("x[0:1:5]", (4, 6), "x[:1]"),
        ("x[..., 1:3]", (2, 3, 4), "x[:, :, 1:3]"),
        ("concat(x, 2*x, axis=1)", (4, 6), "concat(x, 2 * x, axis=1)"),
        ("stack(x, x, axis=2)", (4, 6), "stack(x, x, axis=2)"),
        ("pad(x, widths=(1, 2), value=0.5)", (4, 6), "pad(x, widths=(1, 2), value=0.5)"),
        ("reshape(x, shape=(2, -1))", (4, 6), "reshape(x, shape=(2, 12))"),
        ("flatten(x, start_dim=1)", (2, 3, 4), "flatten(x, start_dim=1)"),
        ("flip(x, axis=1)", (4, 6), "flip(x, axis=1)"),
        ("tril(x, k=1)", (4, 6), "tril(x, k=1)"),
        ("diagonal(x, offset=-1)", (4, 6), "diagonal(x, offset=-1)"),
        ("squeeze(x, axis=2)", (1, 4, 1), "squeeze(x, axis=2)"),
    ],
)
def test_a_bound_program_prints_as_written_and_parses_back_to_the_same_program(
    text: str, shape: tuple[int, ...], printed: str
) -> None:
    program = _bound(text, x=shape)
    assert to_source(program.output.expr) == printed
    again = _bound(printed, x=shape)
    assert _tree(again.output.expr) == _tree(program.output.expr)


def test_a_slice_that_reads_one_row_prints_as_the_index_it_equals() -> None:
    program = _bound("x[1, ...]", x=(2, 3, 4))
    assert program.output.expr.op == "slice" and to_source(program.output.expr) == "x[1]"
    x = np.arange(24.0).reshape(2, 3, 4)
    again = _bound("x[1]", x=(2, 3, 4))
    np.testing.assert_array_equal(forward(again, {"x": x})[again.output.id], x[1])
    np.testing.assert_array_equal(forward(program, {"x": x})[program.output.id], x[1])


def test_unsqueeze_binds_as_expand_dims() -> None:
    program = _bound("unsqueeze(x, 0)", x=(4, 6))
    expr = program.output.expr
    assert isinstance(expr, Call) and expr.op == "expand_dims" and expr.kw("axis") == 0
    assert program.output_type.shape == (1, 4, 6)
    assert to_source(expr) == "expand_dims(x, 0)"


# ---------------------------------------------------------------- layout.py against torch

RNG = np.random.default_rng(12)


def _array(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape)


@pytest.mark.parametrize(
    ("shape", "widths"),
    [((3, 4), (1, 2)), ((3, 4), (1, 2, 0, 1)), ((2, 3, 4), (0, 1, 2, 0, 1, 1)), ((5,), (3, 0))],
)
def test_pad_in_torchs_width_order_is_torchs_pad(shape: tuple[int, ...], widths: tuple[int, ...]) -> None:
    x = _array(*shape)
    expected = F.pad(torch.from_numpy(x), widths, mode="constant", value=0.25).numpy()
    np.testing.assert_array_equal(layout.pad(x, widths, 0.25), expected)


@pytest.mark.parametrize(
    ("raw", "shape"),
    [
        ((("range", 1, 3, None),), (4, 5)),
        ((("range", None, None, 2), ("range", 1, None, 3)), (4, 5)),
        ((2, ("range", 1, None, 2)), (4, 5)),
        (("...", -1), (3, 4)),
        ((("range", None, None, 2), 1, "..."), (3, 2, 4)),
    ],
)
def test_unslice_is_the_gradient_torch_computes_for_a_slice(raw: tuple, shape: tuple[int, ...]) -> None:
    items = normalise_slices(raw, shape)
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    y = x[layout.subscript(items)]
    g = _array(*y.shape)
    y.backward(torch.from_numpy(g))
    dropped, full, start, step = layout.slice_adjoint(items, shape)
    for axis in dropped:
        g = np.expand_dims(g, axis)
    assert x.grad is not None
    np.testing.assert_array_equal(layout.unslice(g, full, start, step), x.grad.numpy())
    np.testing.assert_array_equal(layout.slice_(x.detach().numpy() + 1, items), y.detach().numpy() + 1)


@pytest.mark.parametrize(
    ("shape", "offset"), [((3, 4), 0), ((3, 4), 2), ((4, 3), -1), ((3, 3, 2), 1), ((2, 4, 3), -1)]
)
def test_undiagonal_is_torchs_diagonal_scatter_into_zeros(shape: tuple[int, ...], offset: int) -> None:
    n = diagonal_length(shape[0], shape[1], offset)
    g = _array(*shape[2:], n)
    zeros = torch.zeros(shape, dtype=torch.float64)
    expected = torch.diagonal_scatter(zeros, torch.from_numpy(g), offset=offset, dim1=0, dim2=1).numpy()
    np.testing.assert_array_equal(layout.undiagonal(g, shape, offset), expected)
    x = torch.from_numpy(_array(*shape))
    np.testing.assert_array_equal(
        layout.diagonal(x.numpy(), offset), torch.diagonal(x, offset=offset, dim1=0, dim2=1).numpy()
    )


def test_the_element_moving_ops_are_torchs() -> None:
    x, cube = _array(3, 4), _array(2, 3, 4)
    t = torch.from_numpy(x)
    pairs = [
        (layout.reshape(x, (2, 6)), torch.reshape(t, (2, 6))),
        (layout.flatten(cube, 1, 2), torch.flatten(torch.from_numpy(cube), 1, 2)),
        (layout.squeeze(x[None, :, None], None), torch.squeeze(t[None, :, None])),
        (layout.squeeze(x[None], (1,)), torch.squeeze(t[None], dim=1)),  # size 3: kept
        (layout.flip(x, (1,)), torch.flip(t, dims=(1,))),
        (layout.flip(x, None), torch.flip(t, dims=(0, 1))),
        (layout.tril(x, 1), torch.tril(t, diagonal=1)),
        (layout.triu(x, -1), torch.triu(t, diagonal=-1)),
        (layout.concat([x, 2 * x], 1), torch.cat([t, 2 * t], dim=1)),
        (layout.stack([x, 2 * x], 2), torch.stack([t, 2 * t], dim=2)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_array_equal(ours, theirs.numpy())


def test_pad_of_exact_numbers_pads_with_the_exact_value() -> None:
    import sympy

    a = sympy.Symbol("a")
    out = layout.pad(np.array([a], dtype=object), (1, 0), 0.5)
    assert list(out) == [sympy.Rational(1, 2), a]


# op -> (the arguments of one element, as arrays; the keyword arguments)
PER_ELEMENT: dict[str, tuple[Callable[[], list[np.ndarray]], dict[str, Any]]] = {
    "reshape": (lambda: [_array(3, 4)], {"shape": (2, 6)}),
    "flatten": (lambda: [_array(2, 3, 4)], {"start_dim": 1, "end_dim": 2}),
    "squeeze": (lambda: [_array(1, 3, 1)], {"axis": None}),
    "flip": (lambda: [_array(3, 4)], {"axis": (1,)}),
    "tril": (lambda: [_array(3, 4)], {"k": 1}),
    "triu": (lambda: [_array(3, 4)], {"k": -1}),
    "diagonal": (lambda: [_array(3, 4, 2)], {"offset": 1}),
    "undiagonal": (lambda: [_array(2, 3)], {"shape": (3, 4, 2), "offset": 1}),
    "concat": (lambda: [_array(3, 2), _array(3, 4)], {"axis": 1}),
    "stack": (lambda: [_array(3, 4), _array(3, 4)], {"axis": 1}),
    "pad": (lambda: [_array(3, 4)], {"widths": (1, 2, 0, 1), "value": 0.5}),
    "slice": (lambda: [_array(4, 5)], {"items": (2, (1, 5, 2))}),
    "unslice": (lambda: [_array(2, 2)], {"shape": (4, 5), "start": (1, 0), "step": (2, 3)}),
    "unfold": (
        lambda: [_array(2, 3, 4, 5)],
        {"kernel": (2, 3), "stride": (1, 2), "padding": (1, 0), "dilation": (1, 1)},
    ),
    "fold": (
        lambda: [_array(2, 18, 10)],
        {"output_size": (4, 5), "kernel": (2, 3), "stride": (1, 2), "padding": (1, 0), "dilation": (1, 1)},
    ),
}


def test_every_layout_function_is_checked_per_batch_element() -> None:
    assert set(PER_ELEMENT) == set(layout.FUNCTIONS)


@pytest.mark.parametrize("op", sorted(PER_ELEMENT))
def test_a_layout_function_with_a_leading_batch_axis_is_the_function_per_element(op: str) -> None:
    make, kwargs = PER_ELEMENT[op]
    fn = layout.FUNCTIONS[op]
    batch = [make() for _ in range(3)]  # 3 elements, each a list of the op's arguments
    together_args = [np.stack([element[k] for element in batch]) for k in range(len(batch[0]))]
    if op in ("concat", "stack"):
        together = fn(together_args, **kwargs, lead=1)
        one_by_one = [fn(element, **kwargs) for element in batch]
    else:
        together = fn(together_args[0], **kwargs, lead=1)
        one_by_one = [fn(element[0], **kwargs) for element in batch]
    np.testing.assert_array_equal(together, np.stack(one_by_one))


# ---------------------------------------------------------------- the numeric engine's batches

BATCHED = [
    ("sum(reshape(x, shape=(2, -1))^3)", {"x": (3, 4)}),
    ("sum(flatten(x, start_dim=1)^2 * x[0, :1, 0])", {"x": (2, 3, 2)}),
    ("sum(squeeze(unsqueeze(x, 0)) * x)", {"x": (3, 4)}),
    ("sum(flip(x, axis=1) * x) + sum(flip(x) * x^2)", {"x": (3, 4)}),
    ("sum(tril(x, k=1)^2) + sum(triu(x, k=-1) * x)", {"x": (3, 4)}),
    ("sum(tril(x)^2 * x)", {"x": (2, 3, 3)}),
    ("sum(diagonal(x, offset=1)^3) + sum(diagonal(x)^2)", {"x": (3, 4)}),
    ("sum(diagonal(x)^3)", {"x": (2, 3, 4)}),
    ("sum(undiagonal(v^2, shape=(3, 4), offset=1) * A)", {"v": (3,), "A": (3, 4)}),
    ("sum(concat(x, x^2, axis=1) * concat(x, A, axis=1))", {"x": (3, 4), "A": (3, 4)}),
    ("sum(stack(x, A, axis=1)^2 * stack(A, x, axis=-2))", {"x": (3, 4), "A": (3, 4)}),
    ("sum(pad(sin(x), widths=(1, 2, 0, 1), value=0.5)^2)", {"x": (3, 4)}),
    ("sum(x[1:3, ::2]^3) + sum(x[..., -1] * x[:, 0])", {"x": (3, 4)}),
    ("sum(x[:, 1:, ::2]^3)", {"x": (2, 3, 4)}),
    ("sum(unslice(x^2, shape=(6, 4), start=(1, 0), step=(2, 1)) * A)", {"x": (3, 4), "A": (6, 4)}),
]


@pytest.mark.parametrize(("text", "shapes"), BATCHED, ids=[t for t, _ in BATCHED])
def test_a_batch_of_points_through_layout_ops_is_the_points_one_by_one(
    text: str, shapes: dict[str, tuple[int, ...]]
) -> None:
    program = _bound(text, **shapes)
    rng = np.random.default_rng(7)
    point = {n: rng.normal(size=s) for n, s in shapes.items()}
    for name in shapes:
        run = batched(program, [name])
        assert run is not None, f"{text} is not batched in {name}"
        xs = point[name] + 0.1 * rng.normal(size=(5, *shapes[name]))
        together = run(point, {name: xs})
        one_by_one = [forward(program, {**point, name: x})[program.output.id] for x in xs]
        np.testing.assert_allclose(together, one_by_one, rtol=1e-15, atol=0)


def test_a_batch_joined_with_an_integer_tensor_is_the_points_one_by_one() -> None:
    types = {"x": TensorType((3, 2)), "y": TensorType((2, 2), DType.INT)}
    program = bind(parse("sum(concat(x, flip(y)) * pad(x^2, widths=(0, 0, 0, 2)))"), types)
    point = {"x": RNG.normal(size=(3, 2)), "y": np.array([[2, 0], [-1, 3]])}
    run = batched(program, ["x"])
    assert run is not None
    xs = RNG.normal(size=(4, 3, 2))
    one_by_one = [forward(program, {**point, "x": x})[program.output.id] for x in xs]
    np.testing.assert_allclose(run(point, {"x": xs}), one_by_one, rtol=1e-15, atol=0)


# ---------------------------------------------------------------- bugs the tests found, fixed


@pytest.mark.parametrize(
    ("expr", "inputs"),
    [
        ("sum(stack(x, 2*x) * x)", ("x:3",)),  # crash: zip() argument 2 is shorter than argument 1
        ("sum(stack(x, x^2) * x[:1])", ("x:3",)),  # was closed form 2*x[1]*x where 2*x[0]*x is right
        ("sum(pad(x, widths=(1, 1)) * x[:1])", ("x:3",)),  # crash: operands could not be broadcast
        ("sum(concat(x, x^2, axis=1) * x[:, :1])", ("x:2x3",)),
    ],
)
def test_a_layout_op_times_a_broadcast_tensor_agrees_across_engines(
    expr: str, inputs: tuple[str, ...]
) -> None:
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result


def test_padding_an_integer_tensor_with_a_fraction_agrees_across_engines() -> None:
    case = load_case("sum(pad(y, widths=(1, 1), value=0.5) * x)", ["x:5", "y:3:int=[1,2,3]"])
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result
