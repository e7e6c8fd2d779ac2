"""The layers, losses, linear algebra and convolutions (layer_norm, rms_norm, batch_norm, group_norm,
attention, binary_cross_entropy(_with_logits), l1_loss, smooth_l1_loss, kl_div, det, inv, logdet,
solve, cholesky, unfold, fold, conv1d, conv2d, avg_pool2d, max_pool2d, and nll_loss / cross_entropy
with weight=, ignore_index=, label_smoothing=, onehot with ignore_index=): every engine agrees at
random and at given points to second order, the numeric engine's forward is torch.nn.functional's,
closed forms print and are proven when claimed, a wrong rule in one engine is caught, bad input is
refused where it is written, the matrix and probability domains are reported at given points and
drawn valid at random ones, an ignored label counts for nothing, and a tie in a pooling window is a
kink."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from op_checks import assert_printed_form_is_proven, assert_printed_gradient, engine_comparison, grad

from symcheck.checks.points import sample_points
from symcheck.checks.runner import run_cases
from symcheck.engines.autograd import rules as autograd_rules
from symcheck.engines.autograd.tensor import VJPS
from symcheck.engines.numeric.rules import FORWARD
from symcheck.engines.torch import rules as torch_rules
from symcheck.language.ir import Call, DType, Ref, TensorType
from symcheck.language.parser import bind, parse
from symcheck.suites.programs import load_case


def _expr_of(param: Any) -> str:
    """A parametrize row's expression, for its test id (a pytest.param keeps it in .values)."""
    return getattr(param, "values", param)[0]


def _only_others_ok(result: Any, wrong: str) -> None:
    """The engine with the wrong rule disagrees somewhere; the other two agree everywhere."""
    assert not all(c.ok for c in engine_comparison(result, wrong))
    right = [e for e in ("autograd", "torch", "numeric") if e != wrong]
    assert all(c.ok for e in right for c in engine_comparison(result, e))


# a non-symmetric, well-conditioned matrix with det > 0: a transposed gradient shows there
A3 = "A=[[2, 1, 0], [0.5, 3, 1], [0, -1, 2]]"

# ---------------------------------------------------------------- every engine agrees

# (an expression with the op in the middle of something nonlinear, its inputs)
AGREEING = [
    ("sum(sin(layer_norm(x, w, b)))", ("x:2x3", "w:3", "b:3")),
    ("sum(layer_norm(x)^3)", ("x:2x3",)),
    ("sum(exp(layer_norm(x, w, dims=2, eps=0.1)))", ("x:2x2x2", "w:2x2")),
    ("sum(rms_norm(x, w)^3)", ("x:2x3", "w:3")),
    ("sum(tanh(rms_norm(x, dims=2)))", ("x:2x3",)),
    ("sum(batch_norm(x, w, b)^3)", ("x:3x2", "w:2", "b:2")),
    ("sum(sin(batch_norm(x)))", ("x:2x2x2",)),
    ("sum(group_norm(x, w, b, groups=2)^3)", ("x:1x4x2", "w:4", "b:4")),
    ("sum(sin(group_norm(x, groups=1)))", ("x:2x2x2",)),
    ("sum(sin(attention(q, k, v)))", ("q:2x3", "k:3x3", "v:3x2")),
    ("sum(attention(q, k, v, causal=True, scale=0.5)^2)", ("q:3x2", "k:3x2", "v:3x2")),
    ("sum(exp(attention(q, k, v)))", ("q:2x2x2", "k:2x2x2", "v:2x2x2")),
    ("binary_cross_entropy(sigmoid(z), y)", ("z:2x3", "y:2x3")),
    ("binary_cross_entropy(p, y, reduction=sum) * sum(p)", ("p:2x3", "y:2x3")),
    ("binary_cross_entropy_with_logits(z, y) * sum(z^2)", ("z:2x3", "y:2x3")),
    ("sum(binary_cross_entropy_with_logits(z, y, reduction=none)^2)", ("z:2x3", "y:2x3")),
    ("l1_loss(a, b) * sum(a)", ("a:2x3", "b:2x3")),
    ("sum(sin(l1_loss(a, b, reduction=none)))", ("a:2x3", "b:2x3")),
    ("smooth_l1_loss(a, b, beta=0.5) * sum(a^2)", ("a:2x3", "b:2x3")),
    ("smooth_l1_loss(a, b, reduction=sum)", ("a:2x3", "b:2x3")),
    ("kl_div(log_softmax(z), p, reduction=batchmean)", ("z:2x3", "p:2x3")),
    ("kl_div(log_softmax(z), log_softmax(t), reduction=sum, log_target=True)", ("z:2x3", "t:2x3")),
    ("sin(kl_div(q, p))", ("q:2x3", "p:2x3")),
    ("det(A) * sum(A)", ("A:3x3",)),
    ("sum(sin(det(A) * A))", ("A:2x2",)),
    ("sum(inv(A)^2)", ("A:3x3",)),
    ("sum(exp(inv(A)))", ("A:2x2",)),
    ("logdet(A) * sum(A^2)", ("A:3x3",)),
    ("sin(logdet(A))", ("A:3x3",)),
    ("sum(solve(A, b)^2)", ("A:3x3", "b:3")),
    ("sum(sin(solve(A, B)))", ("A:3x3", "B:3x2")),
    ("sum(cholesky(A)^3)", ("A:3x3",)),
    ("sum(exp(cholesky(A)))", ("A:2x2",)),
    ("sum(sin(unfold(x, kernel=(2, 2))))", ("x:1x2x3x3",)),
    ("sum(unfold(x, kernel=2, stride=2, padding=1)^3)", ("x:1x1x3x3",)),
    ("sum(unfold(x, kernel=(2, 2), dilation=2)^2 * x[0, 0, 0, 0])", ("x:1x1x4x4",)),
    ("sum(fold(p, output_size=(3, 3), kernel=(2, 2))^3)", ("p:1x4x4",)),
    ("sum(sin(fold(p, output_size=(4, 4), kernel=2, stride=2)))", ("p:1x8x4",)),
    ("sum(sin(conv1d(x, w)))", ("x:1x2x4", "w:3x2x2")),
    ("sum(conv1d(x, w, b, stride=2, padding=1, groups=2)^2)", ("x:1x2x5", "w:2x1x3", "b:2")),
    ("sum(tanh(conv2d(x, w)))", ("x:1x2x4x4", "w:3x2x2x2")),
    ("sum(conv2d(x, w, b, stride=2, padding=1)^2)", ("x:1x2x4x4", "w:3x2x2x2", "b:3")),
    ("sum(sin(conv2d(x, w, dilation=2, groups=2)))", ("x:1x2x4x4", "w:2x1x2x2")),
    ("sum(avg_pool2d(x, kernel=2)^3)", ("x:1x2x4x4",)),
    ("sum(sin(avg_pool2d(x, kernel=(2, 2), stride=1, padding=1)))", ("x:1x1x3x3",)),
    ("sum(max_pool2d(x, kernel=2)^2)", ("x:1x2x4x4",)),
    ("sum(exp(max_pool2d(x, kernel=(2, 2), stride=1)))", ("x:1x1x3x3",)),
    ("cross_entropy(z, y, weight=w)", ("z:3x4", "y:3:int=[0,2,3]", "w:4")),
    (
        "cross_entropy(sin(z), y, weight=softplus(w) + 0.5, ignore_index=1, label_smoothing=0.1)",
        ("z:3x4", "y:3:int=[0,1,3]", "w:4"),
    ),
    ("nll_loss(log_softmax(z), y, weight=w, reduction=sum)", ("z:3x4", "y:3:int=[0,2,3]", "w:4")),
    ("nll_loss(log_softmax(z), y, ignore_index=2) * sum(z)", ("z:3x4", "y:3:int=[0,2,3]")),
    ("cross_entropy(z, y, label_smoothing=0.2)", ("z:3x4", "y:3:int=[0,2,3]")),
    ("cross_entropy(z, y, ignore_index=0, reduction=sum)", ("z:4", "y:int=2")),
    ("cross_entropy(z, y, weight=w)", ("z:3x4", "y:3:int", "w:4")),  # labels drawn: symbols
    ("sum(onehot(y, 4) * exp(z))", ("z:3x4", "y:3:int=[0,1,3]")),
    pytest.param(
        "sum(onehot(y, 4, ignore_index=1) * exp(z))",
        ("z:3x4", "y:3:int=[0,1,3]"),
    ),
]
AGREEING_IDS = [_expr_of(p) for p in AGREEING]


@pytest.mark.parametrize(("expr", "inputs"), AGREEING, ids=AGREEING_IDS)
def test_every_engine_agrees_on_the_first_derivatives(expr: str, inputs: tuple[str, ...]) -> None:
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result


# Second order: every op once, at shapes where the symbolic H v stays quick.
SECOND = [
    ("sum(layer_norm(x)^3)", ("x:2x3",)),
    ("sum(rms_norm(x, w)^3)", ("x:2x3", "w:3")),
    ("sum(tanh(rms_norm(x, dims=2)))", ("x:2x2",)),
    ("sum(batch_norm(x)^3)", ("x:2x2",)),
    ("sum(group_norm(x, groups=2)^3)", ("x:1x4x1",)),
    ("sum(attention(q, k, v, causal=True, scale=0.5)^2)", ("q:2x1", "k:2x1", "v:2x1")),
    ("binary_cross_entropy(sigmoid(z), y)", ("z:2x3", "y:2x3")),
    ("binary_cross_entropy_with_logits(z, y) * sum(z^2)", ("z:2x3", "y:2x3")),
    ("l1_loss(a, b) * sum(a^2)", ("a:2x2", "b:2x2")),
    ("smooth_l1_loss(a, b, beta=0.5, reduction=sum)", ("a:2x2", "b:2x2")),
    ("kl_div(log_softmax(z), p, reduction=batchmean)", ("z:2x3", "p:2x3")),
    ("det(A) * sum(A)", ("A:3x3",)),
    ("sum(exp(inv(A)))", ("A:2x2",)),
    ("sin(logdet(A))", ("A:3x3",)),
    ("sum(solve(A, b)^2)", ("A:2x2", "b:2")),
    ("sum(exp(cholesky(A)))", ("A:2x2",)),
    ("sum(unfold(x, kernel=2, stride=2, padding=1)^3)", ("x:1x1x3x3",)),
    ("sum(fold(p, output_size=(3, 3), kernel=(2, 2))^3)", ("p:1x4x4",)),
    ("sum(sin(conv1d(x, w, padding=1)))", ("x:1x1x3", "w:2x1x2")),
    ("sum(conv2d(x, w, b, padding=1)^2)", ("x:1x1x2x2", "w:1x1x2x2", "b:1")),
    ("sum(sin(avg_pool2d(x, kernel=(2, 2), stride=1, padding=1)))", ("x:1x1x3x3",)),
    ("sum(exp(max_pool2d(x, kernel=(2, 2), stride=1)))", ("x:1x1x3x3",)),
    ("cross_entropy(z, y, weight=w, ignore_index=1, label_smoothing=0.1)", ("z:2x2", "y:2:int=[0,1]", "w:2")),
    ("nll_loss(log_softmax(z), y, weight=w, reduction=sum)", ("z:2x3", "y:2:int=[2,0]", "w:3")),
]


@pytest.mark.parametrize(("expr", "inputs"), SECOND, ids=[expr for expr, _ in SECOND])
def test_every_engine_agrees_on_the_second_derivatives(expr: str, inputs: tuple[str, ...]) -> None:
    r = grad(expr, *inputs, extra=("--order", "2"))
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output
    if "max_pool2d" not in expr:  # a max's H v has its tie tests, which the language does not print
        assert "second    (H v)_" in r.output


@pytest.mark.parametrize(
    ("expr", "inputs"),
    [
        ("layer_norm(x, w, b)", ("x:2x3", "w:3", "b:3")),
        ("rms_norm(x)", ("x:2x3",)),
        ("batch_norm(x)", ("x:2x2",)),
        ("group_norm(x, groups=2)", ("x:1x4x1",)),
        ("attention(q, k, v, causal=True)", ("q:2x1", "k:2x1", "v:2x2")),
        ("binary_cross_entropy_with_logits(z, y, reduction=none)", ("z:2x3", "y:2x3")),
        ("kl_div(q, p, reduction=none)", ("q:2x3", "p:2x3")),
        ("smooth_l1_loss(a, b, reduction=none)", ("a:2x2", "b:2x2")),
        ("inv(A)", ("A:2x2",)),
        ("solve(A, b)", ("A:3x3", "b:3")),
        ("cholesky(A)", ("A:2x2",)),
        ("conv2d(x, w, padding=1)", ("x:1x1x2x2", "w:1x1x2x2")),
        ("max_pool2d(x, kernel=2)", ("x:1x1x4x4",)),
        ("avg_pool2d(x, kernel=2, padding=1)", ("x:1x1x3x3",)),
        ("unfold(x, kernel=2, dilation=2)", ("x:1x1x3x3",)),
        ("fold(p, output_size=(3, 3), kernel=2)", ("p:1x4x4",)),
        pytest.param(
            "onehot(y, 3, ignore_index=1) * z",
            ("z:3x3", "y:3:int=[0,1,2]"),
        ),
    ],
)
def test_a_tensor_output_of_these_ops_has_its_jacobian_checked_in_full(
    expr: str, inputs: tuple[str, ...]
) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 0, r.output
    assert "jacobian  checked in full" in r.output and "1 passed" in r.output


# ---------------------------------------------------------------- at given values

IMAGE = "x=[[[[1, 2, 0], [0.5, -1, 3], [2, 1, 1]]]]"  # (1, 1, 3, 3)
Z23 = "z=[[1, 2, 0], [0.5, -1, 3]]"


@pytest.mark.parametrize(
    ("expr", "inputs"),
    [
        ("sum(sin(layer_norm(x, w, b)))", ("x=[[1, 2, 4], [0.5, -1, 3]]", "w=[0.5, -1, 2]", "b=[0, 1, -1]")),
        ("sum(rms_norm(x, w)^3)", ("x=[[1, 2, 4], [0.5, -1, 3]]", "w=[0.5, -1, 2]")),
        ("sum(batch_norm(x, w, b)^3)", ("x=[[1, 2], [0.5, -1], [3, 0]]", "w=[2, -1]", "b=[0.5, 0]")),
        ("sum(group_norm(x, groups=2)^3)", ("x=[[[1, 2], [0.5, -1], [3, 0], [2, 2.5]]]",)),
        (
            "sum(attention(q, k, v, causal=True)^2)",
            ("q=[[1, 0], [0.5, -1], [2, 1]]", "k=[[0, 1], [1, 1], [-1, 0.5]]", "v=[[1, 2], [0, -1], [3, 1]]"),
        ),
        ("binary_cross_entropy(p, y) * sum(p)", ("p=[[0.2, 0.7], [0.9, 0.4]]", "y=[[0, 1], [1, 0.5]]")),
        # z = 40: softplus(z) - z*y, stably
        (
            "binary_cross_entropy_with_logits(z, y, reduction=sum) * sum(z)",
            ("z=[[-3, 0.5], [2, 40]]", "y=[[0, 1], [1, 0.5]]"),
        ),
        ("l1_loss(a, b) * sum(a^2)", ("a=[[1, 2], [0.5, -1]]", "b=[[0, 3], [1, 1]]")),
        # |d| on both sides of beta = 0.5
        (
            "smooth_l1_loss(a, b, beta=0.5, reduction=sum) * sum(a)",
            ("a=[[1, 2], [0.5, -1]]", "b=[[0, 2.25], [0.75, 1]]"),
        ),
        ("kl_div(log_softmax(z), p, reduction=batchmean)", (Z23, "p=[[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]")),
        ("det(A) * sum(A)", (A3,)),
        ("sum(inv(A)^3)", (A3,)),
        ("logdet(A)^2", (A3,)),
        ("sum(sin(solve(A, b)))", (A3, "b=[1, -2, 0.5]")),
        ("sum(solve(A, B)^2)", ("A=[[2, 1], [0.5, 3]]", "B=[[1, -2, 0.5], [0, 1, 2]]")),
        ("sum(cholesky(A)^3)", ("A=[[4, 1, 0.5], [0, 3, 1], [0.5, -1, 2]]",)),  # not symmetric itself
        (
            "sum(conv2d(x, w, b, stride=2, padding=1)^2)",
            (IMAGE, "w=[[[[1, -1], [0.5, 2]]], [[[0, 1], [1, 0]]]]", "b=[0.5, -1]"),
        ),
        (
            "sum(tanh(conv1d(x, w, dilation=2)))",
            ("x=[[[1, 2, 0, -1, 3], [0.5, -1, 3, 2, 1]]]", "w=[[[1, -1], [0.5, 2]]]"),
        ),
        ("sum(avg_pool2d(x, kernel=2, stride=1)^3)", (IMAGE,)),
        (
            "sum(max_pool2d(x, kernel=2)^3)",
            ("x=[[[[1, 2, 0, 4], [0.5, -1, 3, 2], [2, 1, 1, -2], [0, 3, 0.5, 1]]]]",),
        ),
        ("sum(fold(unfold(x, kernel=2)^2, output_size=(3, 3), kernel=2))", (IMAGE,)),
        (
            "cross_entropy(z, y, weight=w, ignore_index=1, label_smoothing=0.1)",
            ("z=[[1, 2, 0], [0.5, -1, 3], [2, 2, 1]]", "y:3:int=[0,1,2]", "w=[0.5, 2, 1]"),
        ),
        ("nll_loss(log_softmax(z), y, weight=w, reduction=sum)", (Z23, "y:2:int=[2,0]", "w=[0.5, 2, 1]")),
        ("sum(onehot(y, 3) * exp(z))", (Z23, "y:2:int=[2,0]")),
    ],
)
def test_every_engine_agrees_at_given_values(expr: str, inputs: tuple[str, ...]) -> None:
    (result,), errors = run_cases([load_case(expr, list(inputs))])
    assert not errors and result.status == "pass", result
    assert result.points[0].label == "given values"


# ---------------------------------------------------------------- the numeric forward is torch's

RNG = np.random.default_rng(2026)


def _normal(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape)


def _log_softmax(a: np.ndarray) -> np.ndarray:
    return F.log_softmax(torch.from_numpy(a), dim=-1).numpy()


def _numeric_forward(text: str, values: dict[str, np.ndarray]) -> np.ndarray:
    """The numeric engine's FORWARD for the program's one call, with the canonical keyword arguments
    binding gives it (kernel=2 is (2, 2), stride defaults to the kernel, weight=w is an argument)."""
    types = {
        n: TensorType(v.shape, DType.INT if v.dtype.kind == "i" else DType.FLOAT) for n, v in values.items()
    }
    program = bind(parse(text), types)
    call = program.output.expr
    assert isinstance(call, Call) and all(isinstance(a, Ref) for a in call.args)
    args = [values[a.target] for a in call.args]  # type: ignore[attr-defined]
    return FORWARD[call.op](args, call.kwdict)


SPD = _normal(3, 3) + 4 * np.eye(3)  # not symmetric; its symmetric part positive definite
LABELS = np.array([0, 2, 1, 2])
Z = _normal(4, 3)
WEIGHT = np.array([0.5, 2.0, 1.25])
P = RNG.uniform(0.05, 0.95, size=(2, 3))
Y = RNG.uniform(0, 1, size=(2, 3))
LOGQ, LOGP = _log_softmax(_normal(2, 3)), _log_softmax(_normal(2, 3))
X4 = _normal(2, 4, 5, 5)

# (what, the call, its inputs, torch's own on them as tensors)
TORCH_CASES: list[tuple[str, str, dict[str, np.ndarray], Callable[..., torch.Tensor]]] = [
    (
        "layer_norm dims=2",
        "layer_norm(x, w, b, dims=2, eps=0.1)",
        {"x": _normal(2, 3, 4), "w": _normal(3, 4), "b": _normal(3, 4)},
        lambda x, w, b: F.layer_norm(x, (3, 4), w, b, eps=0.1),
    ),
    ("layer_norm", "layer_norm(x)", {"x": _normal(2, 5)}, lambda x: F.layer_norm(x, (5,))),
    (
        "rms_norm",
        "rms_norm(x, w)",
        {"x": _normal(2, 5), "w": _normal(5)},
        lambda x, w: F.rms_norm(x, (5,), w, 1e-6),
    ),
    (
        "rms_norm dims=2",
        "rms_norm(x, dims=2, eps=0.01)",
        {"x": _normal(2, 3, 4)},
        lambda x: F.rms_norm(x, (3, 4), eps=0.01),
    ),
    (
        "batch_norm",
        "batch_norm(x, w, b)",
        {"x": _normal(3, 2, 4), "w": _normal(2), "b": _normal(2)},
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
    ),
    (
        "batch_norm 2-D",
        "batch_norm(x)",
        {"x": _normal(4, 3)},
        lambda x: F.batch_norm(x, None, None, training=True),
    ),
    (
        "group_norm",
        "group_norm(x, w, b, groups=2, eps=0.001)",
        {"x": _normal(2, 4, 3), "w": _normal(4), "b": _normal(4)},
        lambda x, w, b: F.group_norm(x, 2, w, b, eps=0.001),
    ),
    (
        "attention",
        "attention(q, k, v)",
        {"q": _normal(2, 3, 4), "k": _normal(2, 5, 4), "v": _normal(2, 5, 2)},
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
    ),
    (
        "attention causal scale",
        "attention(q, k, v, causal=True, scale=0.3)",
        {"q": _normal(4, 3), "k": _normal(4, 3), "v": _normal(4, 2)},
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3),
    ),
    *[
        (
            f"binary_cross_entropy {r}",
            f"binary_cross_entropy(p, y, reduction={r})",
            {"p": P, "y": Y},
            lambda p, y, r=r: F.binary_cross_entropy(p, y, reduction=r),
        )
        for r in ("mean", "sum", "none")
    ],
    (
        "binary_cross_entropy_with_logits",
        "binary_cross_entropy_with_logits(z, y, reduction=none)",
        {"z": np.array([[-60.0, -2.0, 0.5], [1.0, 3.0, 60.0]]), "y": Y},
        lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none"),
    ),
    (
        "l1_loss",
        "l1_loss(a, b, reduction=sum)",
        {"a": _normal(2, 3), "b": _normal(2, 3)},
        lambda a, b: F.l1_loss(a, b, reduction="sum"),
    ),
    *[
        (
            f"smooth_l1_loss beta={beta}",
            f"smooth_l1_loss(a, b, beta={beta}, reduction=none)",
            {"a": _normal(3, 4), "b": _normal(3, 4)},
            lambda a, b, beta=beta: F.smooth_l1_loss(a, b, beta=beta, reduction="none"),
        )
        for beta in (1.0, 0.5, 0.0)
    ],
    *[
        (
            f"kl_div {r} log_target={lt}",
            f"kl_div(q, p, reduction={r}, log_target={lt})",
            {"q": LOGQ, "p": LOGP if lt else np.exp(LOGP)},
            lambda q, p, r=r, lt=lt: F.kl_div(q, p, reduction=r, log_target=lt),
        )
        for r in ("mean", "sum", "batchmean", "none")
        for lt in (False, True)
    ],
    ("det", "det(A)", {"A": SPD}, lambda a: torch.linalg.det(a)),
    ("inv", "inv(A)", {"A": SPD}, lambda a: torch.linalg.inv(a)),
    ("logdet", "logdet(A)", {"A": SPD}, lambda a: torch.logdet(a)),
    ("solve vector", "solve(A, b)", {"A": SPD, "b": _normal(3)}, lambda a, b: torch.linalg.solve(a, b)),
    ("solve matrix", "solve(A, B)", {"A": SPD, "B": _normal(3, 2)}, lambda a, b: torch.linalg.solve(a, b)),
    # of the symmetric part: torch.linalg.cholesky itself reads only the lower triangle
    ("cholesky", "cholesky(A)", {"A": SPD}, lambda a: torch.linalg.cholesky((a + a.T) / 2)),
    (
        "unfold",
        "unfold(x, kernel=(2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1))",
        {"x": _normal(2, 3, 5, 6)},
        lambda x: F.unfold(x, (2, 3), dilation=(2, 1), padding=(1, 0), stride=(1, 2)),
    ),
    (
        "fold",
        "fold(p, output_size=(4, 5), kernel=(2, 3), stride=(1, 2), padding=(1, 0))",
        {"p": _normal(2, 18, 10)},
        lambda p: F.fold(p, (4, 5), (2, 3), padding=(1, 0), stride=(1, 2)),
    ),
    (
        "conv1d",
        "conv1d(x, w, b, stride=2, padding=2, dilation=2, groups=2)",
        {"x": _normal(2, 4, 9), "w": _normal(6, 2, 3), "b": _normal(6)},
        lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2, groups=2),
    ),
    (
        "conv1d plain",
        "conv1d(x, w)",
        {"x": _normal(1, 2, 6), "w": _normal(3, 2, 2)},
        lambda x, w: F.conv1d(x, w),
    ),
    (
        "conv2d groups dilation padding",
        "conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)",
        {"x": X4, "w": _normal(4, 2, 3, 2), "b": _normal(4)},
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
    ),
    ("conv2d plain", "conv2d(x, w)", {"x": X4, "w": _normal(3, 4, 2, 2)}, lambda x, w: F.conv2d(x, w)),
    (
        "conv2d depthwise",
        "conv2d(x, w, groups=4, padding=1)",
        {"x": X4, "w": _normal(4, 1, 3, 3)},
        lambda x, w: F.conv2d(x, w, groups=4, padding=1),
    ),
    (
        "avg_pool2d padding",  # the padding zeros counted: torch's count_include_pad=True
        "avg_pool2d(x, kernel=(2, 3), stride=(1, 2), padding=1)",
        {"x": X4},
        lambda x: F.avg_pool2d(x, (2, 3), stride=(1, 2), padding=1),
    ),
    ("avg_pool2d", "avg_pool2d(x, kernel=2)", {"x": X4}, lambda x: F.avg_pool2d(x, 2)),
    ("max_pool2d", "max_pool2d(x, kernel=2)", {"x": X4}, lambda x: F.max_pool2d(x, 2)),
    (
        "max_pool2d stride",
        "max_pool2d(x, kernel=3, stride=(1, 2))",
        {"x": X4},
        lambda x: F.max_pool2d(x, 3, (1, 2)),
    ),
    *[
        (
            f"cross_entropy weight ignore_index label_smoothing {r}",
            f"cross_entropy(z, y, weight=w, ignore_index=1, label_smoothing=0.2, reduction={r})",
            {"z": Z, "y": LABELS, "w": WEIGHT},
            lambda z, y, w, r=r: F.cross_entropy(
                z, y, weight=w, ignore_index=1, label_smoothing=0.2, reduction=r
            ),
        )
        for r in ("mean", "sum")
    ],
    (
        "cross_entropy weight",
        "cross_entropy(z, y, weight=w)",
        {"z": Z, "y": LABELS, "w": WEIGHT},
        lambda z, y, w: F.cross_entropy(z, y, weight=w),
    ),
    (
        "cross_entropy label_smoothing",
        "cross_entropy(z, y, label_smoothing=0.3)",
        {"z": Z, "y": LABELS},
        lambda z, y: F.cross_entropy(z, y, label_smoothing=0.3),
    ),
    (
        "cross_entropy ignore_index -100",
        "cross_entropy(z, y, ignore_index=-100)",
        {"z": Z, "y": np.array([0, -100, 1, 2])},
        lambda z, y: F.cross_entropy(z, y),
    ),
    (
        "nll_loss weight ignore_index",
        "nll_loss(z, y, weight=w, ignore_index=2)",
        {"z": _log_softmax(Z), "y": LABELS, "w": WEIGHT},
        lambda z, y, w: F.nll_loss(z, y, weight=w, ignore_index=2),
    ),
    (
        "nll_loss weight sum",
        "nll_loss(z, y, weight=w, reduction=sum)",
        {"z": _log_softmax(Z), "y": LABELS, "w": WEIGHT},
        lambda z, y, w: F.nll_loss(z, y, weight=w, reduction="sum"),
    ),
    (
        "onehot ignore_index",
        "onehot(y, 3, ignore_index=2)",
        {"y": LABELS},
        lambda y: F.one_hot(y, 3).double() * (y != 2)[:, None],
    ),
]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize(
    ("text", "values", "theirs"), [c[1:] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES]
)
def test_the_numeric_forward_is_torch_nn_functionals(
    text: str, values: dict[str, np.ndarray], theirs: Callable[..., torch.Tensor]
) -> None:
    ours = _numeric_forward(text, values)
    expected = theirs(*(torch.from_numpy(v) for v in values.values())).numpy()
    assert np.shape(ours) == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize(
    ("expr", "inputs", "name", "gradient"),
    [
        ("det(A)", ("A:3x3",), "A", "det(A)*inv(A).T"),
        ("logdet(A)", ("A:3x3",), "A", "inv(A).T"),
        ("binary_cross_entropy_with_logits(z, y, reduction=sum)", ("z:2x3", "y:2x3"), "z", "sigmoid(z) - y"),
        ("binary_cross_entropy_with_logits(z, y, reduction=sum)", ("z:2x3", "y:2x3"), "y", "-z"),
        ("l1_loss(a, b)", ("a:2x3", "b:2x3"), "a", "1/6*sign(a - b)"),
        ("kl_div(q, p, reduction=batchmean)", ("q:2x3", "p:2x3"), "q", "-1/2*p"),
        (
            "sum(layer_norm(x))",
            ("x:2x3",),
            "x",
            "1/3*sum((x - mean(x, axis=1, keepdims=True))/(var(x, axis=1, keepdims=True, correction=0) + "
            "0.00001)^(3/2), axis=1, keepdims=True)*(mean(x, axis=1, keepdims=True) - x)",
        ),
        (
            "cross_entropy(z, y, weight=w)",
            ("z:3x4", "y:3:int=[0,2,3]", "w:4"),
            "z",
            "softmax(z)*sum(onehot(y, 4)*w/sum(onehot(y, 4)*w), axis=1, keepdims=True) - "
            "onehot(y, 4)*w/sum(onehot(y, 4)*w)",
        ),
    ],
)
def test_the_closed_form_prints_in_the_language_and_reads_well(
    expr: str, inputs: tuple[str, ...], name: str, gradient: str
) -> None:
    assert_printed_gradient(expr, inputs, name, gradient)


CLAIMED = [
    ("det(A)", ("A:3x3",)),
    ("logdet(A)", ("A:3x3",)),
    ("sum(inv(A)^2)", ("A:2x2",)),
    ("sum(solve(A, b)^2)", ("A:2x2", "b:2")),
    ("sum(solve(A, b)^2)", ("b:2", "A:2x2")),
    ("sum(solve(A, B)^2)", ("A:2x2", "B:2x3")),
    ("sum(cholesky(A)^2)", ("A:2x2",)),
    ("binary_cross_entropy_with_logits(z, y, reduction=sum)", ("z:2x3", "y:2x3")),
    ("binary_cross_entropy(p, y)", ("p:2x3", "y:2x3")),
    ("sum(layer_norm(x))", ("x:2x3",)),
    ("sum(layer_norm(x, w, b)^2)", ("x:2x3", "w:3", "b:3")),
    ("sum(rms_norm(x, w)^2)", ("x:2x3", "w:3")),
    ("sum(batch_norm(x)^3)", ("x:3x2",)),
    ("sum(group_norm(x, groups=2)^3)", ("x:1x4x2",)),
    ("sum(attention(q, k, v, causal=True)^2)", ("q:2x2", "k:2x2", "v:2x2")),
    ("sum(attention(q, k, v)^2)", ("v:2x2", "k:2x2", "q:2x2")),
    ("smooth_l1_loss(a, b, beta=0.5)", ("a:2x3", "b:2x3")),
    ("kl_div(q, p, reduction=batchmean)", ("p:2x3", "q:2x3")),
    ("kl_div(q, p, reduction=sum, log_target=True)", ("p:2x3", "q:2x3")),
    ("sum(conv2d(x, w, b, padding=1)^2)", ("w:2x1x2x2", "x:1x1x3x3", "b:2")),
    ("sum(conv2d(x, w, groups=2, stride=2)^2)", ("x:1x2x4x4", "w:2x1x2x2")),
    ("sum(conv1d(x, w, dilation=2)^2)", ("x:1x2x5", "w:2x2x2")),
    ("sum(avg_pool2d(x, kernel=2, padding=1)^2)", ("x:1x1x3x3",)),
    ("sum(max_pool2d(x, kernel=2)^2)", ("x:1x1x4x4",)),  # (window == max(window)): its tie test
    ("sum(unfold(x, kernel=2, stride=1)^3)", ("x:1x1x3x3",)),
    ("sum(fold(p, output_size=(3, 3), kernel=(2, 2))^3)", ("p:1x4x4",)),
    (
        "cross_entropy(z, y, weight=w, ignore_index=1, label_smoothing=0.1)",
        ("w:4", "z:3x4", "y:3:int=[0,1,3]"),
    ),
    ("nll_loss(log_softmax(z), y, weight=w)", ("w:4", "z:3x4", "y:3:int=[0,2,3]")),
]


@pytest.mark.parametrize(("expr", "inputs"), CLAIMED, ids=[_expr_of(p) for p in CLAIMED])
def test_a_printed_closed_form_parses_back_and_is_proven_when_claimed(
    expr: str, inputs: tuple[str, ...]
) -> None:
    assert_printed_form_is_proven(expr, inputs)


@pytest.mark.parametrize(
    ("expr", "inputs", "claim"),
    [
        ("det(A)", ("A:3x3",), "A: det(A)*inv(A).T"),
        ("logdet(A)", ("A:3x3",), "A: inv(A).T"),
        ("binary_cross_entropy_with_logits(z, y, reduction=sum)", ("z:2x3", "y:2x3"), "z: sigmoid(z) - y"),
        ("binary_cross_entropy(sigmoid(z), y, reduction=sum)", ("z:2x3", "y:2x3"), "z: sigmoid(z) - y"),
        ("sum(inv(A) * B)", ("A:2x2", "B:2x2"), "A: -inv(A).T @ B @ inv(A).T"),
        ("l1_loss(a, b, reduction=sum)", ("a:2x3", "b:2x3"), "a: sign(a - b)"),
        ("kl_div(q, p, reduction=sum)", ("q:2x3", "p:2x3"), "q: -p"),
    ],
)
def test_a_textbook_gradient_is_proven(expr: str, inputs: tuple[str, ...], claim: str) -> None:
    r = grad(expr, *inputs, extra=("--claim", claim))
    assert r.exit_code == 0, r.output
    assert "proven (equal to the closed form)" in r.output


def test_a_claimed_det_gradient_without_the_transpose_is_refuted_as_the_transpose() -> None:
    r = grad("det(A)", "A:3x3", extra=("--claim", "A: det(A)*inv(A)"))
    assert r.exit_code == 1, r.output
    assert "WRONG" in r.output and "likely mistake: the claim is the true gradient transposed" in r.output


# ---------------------------------------------------------------- a wrong rule is caught


def test_an_autograd_det_whose_vjp_forgets_to_transpose_the_inverse_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """det's gradient is det(A) inv(A)^T; without the transpose it is right only for symmetric A."""
    monkeypatch.setitem(VJPS, "det", (lambda g, ans, A: g * ans * autograd_rules.inv(A),))
    (result,), errors = run_cases([load_case("det(A) * sum(A)", [A3])])
    assert not errors and result.status == "fail"
    (autograd,) = [c for c in result.points[0].comparisons if c.engine == "autograd"]
    worst = autograd.worst()
    assert worst is not None and not worst.ok and worst.what == "dout/dA"
    _only_others_ok(result, "autograd")


def test_a_torch_cholesky_of_a_itself_rather_than_its_symmetric_part_is_caught_where_a_is_not_symmetric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch.linalg.cholesky(A) reads A's lower triangle only: at a non-symmetric A it factors
    another matrix. (At a symmetric A, as the random draws M M^T/n + I are, it agrees in value and
    gradient: torch's cholesky backward is already the symmetric one.)"""
    monkeypatch.setitem(torch_rules.TABLE, "cholesky", lambda a, kw: torch.linalg.cholesky(a[0]))
    (result,), errors = run_cases(
        [load_case("sum(cholesky(A)^3)", ["A=[[4, 1, 0.5], [0, 3, 1], [0.5, -1, 2]]"])]
    )
    assert not errors and result.status == "fail"
    (torch_result,) = [c for c in result.points[0].comparisons if c.engine == "torch"]
    assert not torch_result.ok
    _only_others_ok(result, "torch")


def _layer_norm_unbiased(x: Any, *params: Any, dims: int = 1, eps: float = 1e-5) -> Any:
    """The classic slip: torch.var's default (N - 1) where layer norm divides by N."""
    (x,) = autograd_rules.as_tensors((x,))
    axes = tuple(range(x.ndim - dims, x.ndim))
    centred = x - autograd_rules.mean(x, axis=axes, keepdims=True)
    spread = autograd_rules.var(x, axis=axes, keepdims=True, correction=1)
    return autograd_rules._scaled(
        centred / autograd_rules.sqrt(spread + eps), autograd_rules.as_tensors(params)
    )


def test_an_autograd_layer_norm_with_the_unbiased_variance_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(autograd_rules.TABLE, "layer_norm", _layer_norm_unbiased)
    (result,), errors = run_cases([load_case("sum(sin(layer_norm(x, w)))", ["x:2x3", "w:3"])])
    assert not errors and result.status == "fail"
    _only_others_ok(result, "autograd")


def test_a_torch_conv2d_that_pads_one_side_only_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """All the padding after the image rather than half before: same output shape, windows shifted."""

    def one_sided(a: Any, kw: Any) -> torch.Tensor:
        ph, pw = kw["padding"]
        bias = a[2] if len(a) > 2 else None
        padded = F.pad(a[0], (0, 2 * pw, 0, 2 * ph))
        return F.conv2d(padded, a[1], bias, stride=kw["stride"], dilation=kw["dilation"], groups=kw["groups"])

    monkeypatch.setitem(torch_rules.TABLE, "conv2d", one_sided)
    (result,), errors = run_cases(
        [load_case("sum(tanh(conv2d(x, w, padding=1)))", ["x:1x2x3x3", "w:2x2x2x2"])]
    )
    assert not errors and result.status == "fail"
    _only_others_ok(result, "torch")


def test_an_autograd_weighted_nll_loss_whose_mean_divides_by_n_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch's weighted mean divides by the sum of w[target], not by the number of examples."""

    def over_n(
        logp: Any, target: Any, *weight: Any, reduction: str = "mean", ignore_index: Any = None
    ) -> Any:
        total = autograd_rules.nll_loss(logp, target, *weight, reduction="sum", ignore_index=ignore_index)
        return total / logp.shape[0]

    monkeypatch.setitem(autograd_rules.TABLE, "nll_loss", over_n)
    (result,), errors = run_cases(
        [load_case("nll_loss(log_softmax(z), y, weight=w)", ["z:3x4", "y:3:int=[0,2,3]", "w=[0.5, 2, 1, 3]"])]
    )
    assert not errors and result.status == "fail"
    _only_others_ok(result, "autograd")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("expr", "inputs", "message"),
    [
        (
            "sum(layer_norm(x, w))",
            ("x:2x3", "w:2"),
            "layer_norm's weight needs shape (3,) (the last 1 axes of x), got (2,)",
        ),
        ("sum(layer_norm(x, w, b))", ("x:2x3", "w:3", "b:2"), "layer_norm's bias needs shape (3,)"),
        ("sum(layer_norm(x, dims=3))", ("x:2x3",), "layer_norm normalises 3 trailing axes, x has 2 (2, 3)"),
        ("sum(rms_norm(x, dims=3))", ("x:2x3",), "rms_norm normalises 3 trailing axes, x has 2 (2, 3)"),
        ("sum(group_norm(x, groups=3))", ("x:2x4x2",), "4 channels do not split into 3 groups"),
        (
            "sum(batch_norm(x))",
            ("x:1x3",),
            "batch_norm needs more than one value per channel, x has shape (1, 3)",
        ),
        ("sum(batch_norm(x, w))", ("x:2x3", "w:2"), "batch_norm's weight needs shape (3,) (one per channel)"),
        ("sum(attention(q, k, v))", ("q:2x3", "k:2x4", "v:2x3"), "q and k need the same features: 3 vs 4"),
        ("sum(attention(q, k, v))", ("q:2x3", "k:2x3", "v:3x3"), "k and v need the same length: 2 vs 3"),
        (
            "sum(attention(q, k, v))",
            ("q:2x2x3", "k:3x2x3", "v:3x2x3"),
            "attention's q, k and v need the same batch axes",
        ),
        (
            "sum(conv2d(x, w))",
            ("x:1x2x4x4", "w:3x3x2x2"),
            "conv2d: x has 2 channels, the weight (3, 3, 2, 2) takes 3 per group of 1",
        ),
        (
            "sum(conv2d(x, w, groups=2))",
            ("x:1x3x4x4", "w:2x1x2x2"),
            "conv2d: x has 3 channels, the weight (2, 1, 2, 2) takes 1 per group of 2",
        ),
        (
            "sum(conv2d(x, w))",
            ("x:1x2x2x2", "w:3x2x3x3"),
            "a 3 x 3 kernel does not fit x of shape (1, 2, 2, 2) (padding (0, 0), dilation (1, 1))",
        ),
        (
            "sum(conv2d(x, w, b))",
            ("x:1x2x4x4", "w:3x2x2x2", "b:2"),
            "conv2d's bias needs shape (3,), got (2,)",
        ),
        (
            "sum(conv1d(x, w))",
            ("x:1x2x4", "w:3x2x2x2"),
            "conv1d takes x (N, C, L) and a weight of as many axes, got (1, 2, 4), (3, 2, 2, 2)",
        ),
        ("sum(max_pool2d(x, kernel=2, padding=1))", ("x:1x1x4x4",), "max_pool2d takes padding=0 here"),
        (
            "sum(avg_pool2d(x, kernel=5))",
            ("x:1x1x4x4",),
            "a 5 x 5 kernel does not fit x of shape (1, 1, 4, 4)",
        ),
        ("sum(unfold(x, kernel=2))", ("x:2x3",), "unfold takes x of shape (N, C, H, W), got (2, 3)"),
        (
            "sum(fold(p, output_size=(3, 3), kernel=(2, 2)))",
            ("p:1x5x4",),
            "fold takes (N, C*4, L) for a 2 x 2 kernel, got (1, 5, 4)",
        ),
        ("det(A)", ("A:2x3",), "det takes a square matrix (n, n), got (2, 3)"),
        ("sum(inv(A))", ("A:3",), "inv takes a square matrix (n, n), got (3,)"),
        ("sum(solve(A, b))", ("A:3x3", "b:2"), "solve(A, b) needs b of shape (3,) or (3, k), got (2,)"),
        (
            "sum(solve(A, b))",
            ("A:3x3", "b:3x2x1"),
            "solve(A, b) needs b of shape (3,) or (3, k), got (3, 2, 1)",
        ),
        (
            "binary_cross_entropy(p, y)",
            ("p:2x3", "y:3x2"),
            "input and target need one shape, got (2, 3) and (3, 2)",
        ),
        ("kl_div(q, p)", ("q:2x3", "p:3"), "input and target need one shape, got (2, 3) and (3,)"),
        (
            "cross_entropy(z, y, label_smoothing=2)",
            ("z:3x4", "y:3:int"),
            "label_smoothing=2 must lie in [0, 1]",
        ),
        (
            "cross_entropy(z, y, weight=w)",
            ("z:3x4", "y:3:int", "w:3"),
            "weight needs one per class, shape (4,), got (3,)",
        ),
        (
            "cross_entropy(z, y, weight=w)",
            ("z:3x4", "y:3:int", "w:4:int"),
            "the weight must be a float tensor",
        ),
        ("cross_entropy(z, y, w)", ("z:3x4", "y:3:int", "w:4"), "cross_entropy takes 2 arguments, got 3"),
        ("nll_loss(z, y, w)", ("z:3x4", "y:3:int", "w:4"), "nll_loss takes 2 arguments, got 3"),
    ],
)
def test_bad_input_is_refused_where_it_is_written(expr: str, inputs: tuple[str, ...], message: str) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    assert message in r.output and "^" in r.output


# ---------------------------------------------------------------- domains, labels and kinks


@pytest.mark.parametrize(
    ("expr", "inputs", "message"),
    [
        (
            "sum(inv(A))",
            ("A=[[1, 2], [2, 4.0000000001]]",),  # condition number about 1e11
            "inv needs an invertible matrix (condition number below 1e10)",
        ),
        (
            "sum(solve(A, b))",
            ("A=[[1, 2], [2, 4.0000000001]]", "b:2"),
            "solve needs an invertible A (condition number below 1e10)",
        ),
        ("logdet(A)", ("A=[[0, 1], [1, 0]]",), "logdet needs det(A) > 0"),  # det -1
        ("logdet(A)", ("A=[[1, 2], [3, 4]]",), "logdet needs det(A) > 0"),  # det -2, not symmetric
        ("binary_cross_entropy(p, y)", ("p=[0.5, 1.5]", "y=[0, 1]"), "binary_cross_entropy needs 0 < p < 1"),
        ("binary_cross_entropy(p, y)", ("p=[-0.2, 0.5]", "y=[0, 1]"), "binary_cross_entropy needs 0 < p < 1"),
        ("kl_div(q, p)", ("q=[-1, -2]", "p=[0.5, -0.5]"), "kl_div needs p > 0 (log p)"),
        pytest.param(
            "sum(inv(A))",
            ("A=[[1, 2], [2, 4]]",),
            "inv needs an invertible matrix",
        ),
        pytest.param(
            "sum(solve(A, b))",
            ("A=[[1, 2], [2, 4]]", "b:2"),
            "solve needs an invertible A",
        ),
        pytest.param(
            "sum(cholesky(A))",
            ("A=[[1, 2], [2, 1]]",),
            "cholesky needs (A + A.T)/2 positive definite",
        ),
    ],
)
def test_a_given_matrix_or_probability_outside_the_domain_is_reported_as_such(
    expr: str, inputs: tuple[str, ...], message: str
) -> None:
    r = grad(expr, *inputs)
    assert r.exit_code == 1, r.output
    assert "CRASHED" not in r.output
    assert "FAILED    at the given values: the given values break a domain: " + message in r.output


def test_cholesky_at_a_given_matrix_that_is_not_positive_definite_names_the_domain() -> None:
    r = grad("sum(cholesky(A))", "A=[[1, 2], [2, 1]]")
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "the given values break a domain: cholesky needs (A + A.T)/2 positive definite" in r.output


MATRIX_OPS = ["sum(inv(A)^2)", "logdet(A)", "sum(cholesky(A)^2)", "sum(solve(A, b)^2)", "det(A) * sum(A)"]


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("expr", MATRIX_OPS)
def test_random_matrices_for_the_matrix_ops_are_drawn_inside_their_domains(expr: str, n: int) -> None:
    inputs = [f"A:{n}x{n}"] + ([f"b:{n}"] if "solve" in expr else [])
    case = dataclasses.replace(load_case(expr, inputs), samples=4)
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result
    assert len(result.points) == 4
    for point in result.points:
        a = point.inputs["A"]
        assert np.linalg.cond(a) < 1e10 and np.linalg.det(a) > 0
        if "cholesky" in expr:
            assert np.allclose(a, a.T) and np.linalg.eigvalsh(a).min() > 0
        else:  # x + (n + 1) I: not symmetric, so a transposed gradient shows
            assert not np.allclose(a, a.T)


def test_the_sampler_draws_positive_definite_and_invertible_matrices_at_every_seed() -> None:
    program = bind(
        parse("sum(cholesky(A)) + logdet(B) + sum(inv(C))"), {n: TensorType((4, 4)) for n in "ABC"}
    )
    specs = load_case("sum(cholesky(A)) + logdet(B) + sum(inv(C))", ["A:4x4", "B:4x4", "C:4x4"]).inputs
    for seed in range(3):
        for point in sample_points(program, specs, 5, seed):
            assert np.linalg.eigvalsh((point["A"] + point["A"].T) / 2).min() > 0
            assert np.linalg.det(point["B"]) > 0 and np.linalg.cond(point["B"]) < 1e10
            assert np.linalg.cond(point["C"]) < 1e10


def test_random_probabilities_for_binary_cross_entropy_are_drawn_inside_zero_one() -> None:
    case = dataclasses.replace(load_case("binary_cross_entropy(p, y)", ["p:3x4", "y:3x4"]), samples=4)
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result
    for point in result.points:
        assert np.all((point.inputs["p"] > 0) & (point.inputs["p"] < 1))


Z34 = [[1.0, 2.0, 0.0, -1.0], [0.5, -1.0, 3.0, 2.0], [2.0, 2.0, 1.0, 0.0]]


@pytest.mark.parametrize(
    ("expr", "labels", "theirs"),
    [
        ("cross_entropy(z, y, ignore_index=1)", [0, 1, 3], lambda z, y, w: F.cross_entropy(z, y)),
        (
            "cross_entropy(z, y, weight=w, ignore_index=1, label_smoothing=0.1)",
            [0, 1, 3],
            lambda z, y, w: F.cross_entropy(z, y, weight=w, label_smoothing=0.1),
        ),
        (
            "nll_loss(log_softmax(z), y, weight=w, ignore_index=2, reduction=sum)",
            [0, 2, 3],
            lambda z, y, w: F.nll_loss(F.log_softmax(z, dim=-1), y, weight=w, reduction="sum"),
        ),
        ("cross_entropy(z, y, ignore_index=-100)", [0, -100, 3], lambda z, y, w: F.cross_entropy(z, y)),
    ],
)
def test_a_label_equal_to_ignore_index_counts_for_nothing_as_in_torch(
    expr: str, labels: list[int], theirs: Callable[..., torch.Tensor]
) -> None:
    """The loss is torch's over the other examples alone; the ignored example's scores get no gradient."""
    inputs = [f"z={Z34}", f"y:3:int={labels}".replace(" ", "")]
    weight = [0.5, 2.0, 1.0, 3.0]
    if "weight=w" in expr:
        inputs.append(f"w={weight}")
    (result,), errors = run_cases([load_case(expr, inputs)])
    assert not errors and result.status == "pass", result
    kept = [0, 2]
    z, y = torch.tensor(Z34, dtype=torch.float64), torch.tensor(labels)
    expected = theirs(z[kept], y[kept], torch.tensor(weight, dtype=torch.float64)).item()
    point = result.points[0]
    assert point.label == "given values"
    for engine in ("symbolic", "autograd", "torch", "numeric"):
        assert float(point.results[engine].value) == pytest.approx(expected, rel=1e-12), engine
        np.testing.assert_allclose(point.results[engine].grads["z"][1], 0.0, atol=1e-9, err_msg=engine)


def test_a_label_of_minus_100_without_ignore_index_is_refused_as_out_of_range() -> None:
    r = grad("cross_entropy(z, y)", "z:3x4", "y:3:int=[0,-100,1]")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "^" in r.output
    assert "the given y = [0, -100, 1] is out of range: targets must be class indices in [0, 4)" in r.output


def test_onehot_with_ignore_index_gives_an_ignored_label_a_row_of_zeros_in_every_engine() -> None:
    (result,), errors = run_cases(
        [load_case("sum(onehot(y, 3, ignore_index=1) * z)", ["z:2x3", "y:2:int=[1,2]"])]
    )
    assert not errors
    for engine in ("symbolic", "autograd", "torch", "numeric"):
        np.testing.assert_allclose(
            result.points[0].results[engine].grads["z"], [[0, 0, 0], [0, 0, 1]], atol=1e-9
        )


def test_a_tie_inside_a_max_pool2d_window_is_a_kink_not_a_failure() -> None:
    r = grad("sum(max_pool2d(x, kernel=2))", "x=[[[[1, 1], [0, 0.5]]]]", extra=("--samples", "0"))
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output
    assert (
        "kink      at the given values: max_pool2d is not differentiable where a window's maximum is tied"
        in r.output
    )
    assert "torch     convention" in r.output  # torch gives the gradient to one of the tied elements


def test_a_max_pool2d_tie_in_one_window_leaves_the_other_windows_without_a_kink() -> None:
    """Only the input elements a tied window reads are at the kink; the others are compared as usual."""
    x = "x=[[[[1, 1, 0, 4], [0, 0.5, 3, 2]]]]"  # window 1 tied (1, 1), window 2 not
    (result,), errors = run_cases([load_case("sum(max_pool2d(x, kernel=2)^2)", [x])])
    assert not errors and result.status == "pass", result
    point = result.points[0]
    assert len(point.kink_hits) == 1 and "tied: 4 of 8 elements of max_pool2d" in point.kink_hits[0]
    for engine in ("symbolic", "autograd", "torch", "numeric"):
        np.testing.assert_allclose(point.results[engine].grads["x"][0, 0, :, 2:], [[0, 8], [0, 0]], atol=1e-8)


def test_l1_loss_where_a_equals_b_is_a_kink_not_a_failure() -> None:
    r = grad("l1_loss(a, b)", "a=[1, 2]", "b=[1, 0]", extra=("--samples", "0"))
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output
    assert "kink      at the given values: l1_loss is not differentiable where a == b" in r.output
