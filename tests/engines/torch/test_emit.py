"""`--emit torch`: the emitted torch.autograd.Function runs, its forward is the program and its
backward (the closed form) passes torch's gradcheck and equals torch autograd of a plain version."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from symcheck.engines.symbolic import ClosedForm
from symcheck.engines.torch.emit import emit_function
from symcheck.engines.torch.engine import Lowerer
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse

Shapes = Mapping[str, tuple[int, ...] | TensorType]
INT = DType.INT


def program_of(text: str, shapes: Shapes) -> Program:
    types = {n: s if isinstance(s, TensorType) else TensorType(s) for n, s in shapes.items()}
    return bind(parse(text), types)


def load(source: str, class_name: str = "Backward") -> tuple[Any, Callable[..., torch.Tensor]]:
    """The emitted module, run: our own generated code, in a namespace of its own."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<emitted>", "exec"), namespace)
    return namespace[class_name], namespace[_snake(class_name)]


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def points(
    program: Program, seed: int = 0, labels: Mapping[str, list[int]] | None = None
) -> list[torch.Tensor]:
    """float64 inputs drawn at random (off every kink: a tie or a zero has probability 0), the
    int ones as given."""
    rng = np.random.default_rng(seed)
    out = []
    for name, decl in program.inputs.items():
        if decl.type.dtype is DType.FLOAT:
            out.append(torch.tensor(rng.normal(size=decl.type.shape), dtype=torch.float64))
        else:
            out.append(torch.tensor((labels or {})[name], dtype=torch.int64))
    return out


@dataclass
class Case:
    id: str
    text: str
    shapes: Shapes
    plain: Callable[..., torch.Tensor]  # the same function, written in torch by hand
    labels: dict[str, list[int]] = field(default_factory=dict)


CASES = [
    Case("tutorial", "mean(3*(x+2)^2)", {"x": (2, 2)}, lambda x: torch.mean(3 * (x + 2) ** 2)),
    Case(
        "tanh_layer",
        "y = W @ x + b\nout = sum(tanh(y)^2)",
        {"W": (2, 3), "x": (3,), "b": (2,)},
        lambda W, x, b: torch.sum(torch.tanh(W @ x + b) ** 2),
    ),
    Case("quadratic_form", "x @ A @ x", {"x": (3,), "A": (3, 3)}, lambda x, A: x @ A @ x),
    Case("logsumexp", "logsumexp(x)", {"x": (4,)}, lambda x: torch.logsumexp(x, dim=0)),
    Case(
        "cross_entropy",
        "-sum(log_softmax(z) * onehot(y, 3))",
        {"z": (4, 3), "y": TensorType((4,), INT)},
        lambda z, y: F.cross_entropy(z, y, reduction="sum"),
        labels={"y": [0, 2, 1, 2]},
    ),
    Case(
        "leaky_where",
        "sum(where(x > 0, x, 0.1*x)^2)",
        {"x": (5,)},
        lambda x: torch.sum(F.leaky_relu(x, 0.1) ** 2),
    ),
    Case("sigmoid_layer", "sigmoid(W @ x)", {"W": (2, 3), "x": (3,)}, lambda W, x: torch.sigmoid(W @ x)),
    Case(
        "softmax_rows",
        "sum(softmax(z, axis=1) * t)",
        {"z": (2, 3), "t": (2, 3)},
        lambda z, t: torch.sum(torch.softmax(z, dim=1) * t),
    ),
    Case("trace_gram", "trace(X @ X.T)", {"X": (2, 3)}, lambda X: torch.trace(X @ X.T)),
    Case(
        "clamp",
        "mean(clamp(x, min=-0.5, max=0.5)^2)",
        {"x": (6,)},
        lambda x: torch.mean(torch.clamp(x, -0.5, 0.5) ** 2),
    ),
    Case(
        "row_max",
        "sum(max(x, axis=1)^2) + mean(min(x, axis=0, keepdims=True) * x)",
        {"x": (2, 3)},
        lambda x: torch.sum(x.amax(1) ** 2) + torch.mean(x.amin(0, keepdim=True) * x),
    ),
    Case(
        "slices",
        "sum(x[1:3, ::2]^2) + sum(x[0] * x[:, 1])",
        {"x": (4, 4)},
        lambda x: torch.sum(x[1:3, ::2] ** 2) + torch.sum(x[0] * x[:, 1]),
    ),
    Case(
        "elementwise",
        "sum(relu(x) * sqrt(abs(x) + 1) + softplus(x) * exp(-x^2) + log(x^2 + 1))",
        {"x": (5,)},
        lambda x: torch.sum(
            torch.relu(x) * torch.sqrt(x.abs() + 1) + F.softplus(x) * torch.exp(-(x**2)) + torch.log(x**2 + 1)
        ),
    ),
    Case(
        "outer_dot",
        "sum(outer(a, b) * M) + dot(a, M @ b)^2",
        {"a": (2,), "b": (3,), "M": (2, 3)},
        lambda a, b, M: torch.sum(torch.outer(a, b) * M) + torch.dot(a, M @ b) ** 2,
    ),
    Case(
        "layout",
        "sum(reshape(x, shape=(3, 2)) @ a) + sum(expand_dims(a, axis=1) * transpose(x)[:2])",
        {"x": (2, 3), "a": (2,)},
        lambda x, a: torch.sum(x.reshape(3, 2) @ a) + torch.sum(a.unsqueeze(1) * x.T[:2]),
    ),
    Case(
        "mean_keepdims_eye",
        "sum(mean(x, axis=1, keepdims=True) * x) + sum(eye(3) * (A @ A))",
        {"x": (2, 3), "A": (3, 3)},
        lambda x, A: (
            torch.sum(x.mean(1, keepdim=True) * x) + torch.sum(torch.eye(3, dtype=A.dtype) * (A @ A))
        ),
    ),
    Case(
        "rebound_steps",
        "c = 2*x\nc = c + 1\nout = sum(c^2 * w)",
        {"x": (3,), "w": (3,)},
        lambda x, w: torch.sum((2 * x + 1) ** 2 * w),
    ),
    Case(
        "int_weights_literal_step",
        "c = 2\nout = sum(c * x * k) + sum(sign(x)) + sum(x * y)",
        {"x": (2, 3), "k": TensorType((3,), INT), "y": (3,)},
        lambda x, k, y: torch.sum(2 * x * k) + torch.sum(torch.sign(x)) + torch.sum(x * y),
        labels={"k": [1, -2, 3]},
    ),
    Case(
        "tensor_softmax",
        "softmax(x @ W, axis=1) - log_softmax(x, axis=0)[:, :1]",
        {"x": (2, 3), "W": (3, 3)},
        lambda x, W: torch.softmax(x @ W, dim=1) - torch.log_softmax(x, dim=0)[:, :1],
    ),
]


def emitted(case: Case) -> tuple[Program, Any, list[torch.Tensor]]:
    program = program_of(case.text, case.shapes)
    closed = ClosedForm.derive(program, program.float_inputs())
    source = emit_function(program, closed)
    fn, _ = load(source)
    return program, fn, points(program, labels=case.labels)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_emitted_function_is_the_program_and_its_gradient(case: Case) -> None:
    program, fn, inputs = emitted(case)
    value = fn.apply(*inputs)
    expected = case.plain(*inputs)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    # symcheck's own (numpy) evaluation of the program agrees too.
    closed = ClosedForm.lowered(program)
    arrays = {n: t.numpy() for n, t in zip(program.inputs, inputs, strict=True)}
    np.testing.assert_allclose(value.numpy(), closed.graph.evaluate(closed.output, arrays), rtol=1e-12)

    floats = [t.requires_grad_() if t.is_floating_point() else t for t in inputs]
    assert torch.autograd.gradcheck(fn.apply, tuple(floats))

    leaves = [t for t in floats if t.requires_grad]
    mine, theirs = fn.apply(*floats), case.plain(*floats)
    cotangent = torch.randn(mine.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = torch.autograd.grad(mine, leaves, grad_outputs=cotangent)
    want = torch.autograd.grad(theirs, leaves, grad_outputs=cotangent)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_sample_module_reads_as_documented() -> None:
    """The issue's example: the forward is the program's steps, the backward the closed forms,
    the repeated tanh(y) named once, and only torch imported."""
    program = program_of("y = W @ x + b\nout = sum(tanh(y)^2)", {"W": (2, 3), "x": (3,), "b": (2,)})
    source = emit_function(program, ClosedForm.derive(program, ["W", "x", "b"]), class_name="TanhLoss")
    assert source.startswith("# A torch.autograd.Function emitted by `symcheck backward --emit torch`")
    assert "#     y = W @ x + b\n#     out = sum(tanh(y)^2)\n" in source
    assert "W: float[2, 3], x: float[3], b: float[2]" in source
    assert "class TanhLoss(torch.autograd.Function):" in source
    assert "def forward(ctx, W, x, b):" in source
    assert (
        "        y = W @ x + b\n        out = torch.sum(torch.tanh(y) ** 2)\n        return out\n" in source
    )
    assert "ctx.save_for_backward(W, x, b)" in source
    assert source.count("torch.tanh(y)") == 2  # once in the forward, once (named) in the backward
    assert "def tanh_loss(W, x, b):" in source  # by name: a suite's impl: passes the inputs so
    assert "return grad_W, grad_x, grad_b" in source
    imported = [
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert imported == ["torch"]
    _, apply = load(source, "TanhLoss")
    W, x, b = points(program)
    torch.testing.assert_close(apply(W, x, b), torch.sum(torch.tanh(W @ x + b) ** 2))


def test_backward_is_differentiable_again() -> None:
    """The backward is torch ops on the saved inputs, so double backward (gradgradcheck) works."""
    _, fn, inputs = emitted(CASES[1])
    assert torch.autograd.gradgradcheck(fn.apply, tuple(t.requires_grad_() for t in inputs))


def test_inputs_outside_wrt_and_int_inputs_get_none() -> None:
    program = program_of(
        "sum(W @ x) * sum(onehot(y, 2))", {"W": (2, 3), "x": (3,), "y": TensorType((2,), INT)}
    )
    source = emit_function(program, ClosedForm.derive(program, ["x"]))
    assert "return None, grad_x, None" in source
    fn, _ = load(source)
    W, x, y = points(program, labels={"y": [1, 0]})
    x.requires_grad_()
    (grad,) = torch.autograd.grad(fn.apply(W, x, y), [x])
    torch.testing.assert_close(grad, 2 * W.sum(0))


def test_names_that_would_shadow_the_module_or_its_locals() -> None:
    """Inputs called torch and dtype are renamed in the emitted code, not shadowing what it uses."""
    program = program_of("sum(eye(2) * (torch @ dtype))", {"torch": (2, 2), "dtype": (2, 2)})
    source = emit_function(program, ClosedForm.derive(program, ["torch", "dtype"]))
    assert "def forward(ctx, torch_2, dtype_2):" in source
    fn, _ = load(source)
    a, b = (t.requires_grad_() for t in points(program))
    assert torch.autograd.gradcheck(fn.apply, (a, b))


@dataclass
class Stub:
    """A closed form by hand: the emitter reads only these two attributes."""

    printed: dict[str, str] = field(default_factory=dict)
    cotangent: str | None = None


# Forward translations, op by op, against the torch engine's own lowering (no gradients: a stub
# closed form with none, so that no SymPy runs). Inputs: x, y (3, 4); a, b (4,); P (3, 3); k ints.
FORWARD_SHAPES: dict[str, tuple[int, ...] | TensorType] = {
    "x": (3, 4),
    "y": (3, 4),
    "a": (4,),
    "b": (4,),
    "P": (3, 3),
    "k": TensorType((3,), INT),
}
FORWARD = [
    "x + a - y * 2 / (b^2 + 1) - -a",
    "x^3 + 2^a + x^(1/2) * 0",
    "exp(a) + log(abs(a)) + log1p(abs(a)) + sqrt(abs(a)) + sin(a) + cos(a) + tan(a/4)",
    "tanh(a) + sinh(a) + cosh(a) + atan(a) + asin(a/9) + acos(a/9) + atan2(a, b) + expm1(a) + erf(a)",
    "sigmoid(x) + relu(x) + softplus(x) + silu(x) + logsigmoid(x) + gelu(x) + gelu(x, approximate=tanh)",
    "leaky_relu(x, slope=0.2) + elu(x, alpha=0.5) + hardtanh(x, min=-0.5, max=0.25) + sign(x) + step(x)",
    "floor(x) + ceil(x) + round(x) + detach(x) + pi * e",
    "sum(x) + expand_dims(sum(x, axis=1), axis=1) + mean(x, axis=(0, 1), keepdims=True) + max(x)",
    "min(x, axis=0) + max(x, axis=1, keepdims=True) + min(x, axis=(0, 1)) + sum(x, keepdims=True)",
    "logsumexp(sum(x)) + var(sum(x), correction=0) + norm(sum(x))",
    "logsumexp(x, axis=0) + logsumexp(x) + var(x, axis=1, keepdims=True) + std(x, correction=0)",
    "prod(x, axis=1, keepdims=True) + prod(a) + norm(x, axis=0) + norm(a, p=1) + norm(x, p=inf)",
    "cumsum(x, axis=1) + cumprod(x, axis=0) + x.T.T + transpose(x).T",
    "expand_dims(a, axis=0) + reshape(x, shape=(4, 3)).T + flatten(x)[:4] + squeeze(expand_dims(a, axis=1))",
    "flip(x) + flip(x, axis=1) + concat(x, y, axis=0)[1:4] + stack(a, b, axis=0)[0]",
    "tril(P) + triu(P, k=1) + diagonal(P) + undiagonal(diagonal(P), shape=(3, 3))",
    "pad(a, widths=(1, 2), value=1.5)[:4] + unslice(a[1:3], shape=(4,), start=(1,), step=(1,))",
    "x[1:3, ::2] + x[0, 1] + x[..., 2][:2]",
    "softmax(x) + softmax(x, axis=0) + log_softmax(x) + log_softmax(x, axis=0)",
    'einsum("ij,jk->ik", x.T, y) + outer(a, b) + dot(a, b) + trace(P) + eye(4)',
    "where(x > 0, x, 0) + where(x >= y, 1, 0) + (x < y) + (x <= 0.5) * (x != y) - (k == 1)[0]",
    "maximum(x, y) + minimum(x, 0) + clamp(x, min=0) + clamp(x, max=0.5)",
    "onehot(k, 4) + onehot(k, 4, ignore_index=1) + x[k] + sum(gather(a, k, axis=0))",
    "index_select(x, k, axis=0) + scatter_add(a, k, b[:3], axis=0)",
    "sum(embedding(x, k), axis=0) + det(P) + logdet(P @ P.T + eye(3)) + trace(inv(P @ P.T + eye(3)))",
    "solve(P @ P.T + eye(3), P) + cholesky(P @ P.T + eye(3))",
    "mse_loss(x, a) + mse_loss(x, y, reduction=sum) + l1_loss(x, y) + smooth_l1_loss(x, y, beta=0.5)",
    "binary_cross_entropy(sigmoid(x), sigmoid(y)) + binary_cross_entropy_with_logits(x, sigmoid(y))",
    "cross_entropy(x, k) + nll_loss(log_softmax(x), k, reduction=sum) + cross_entropy(a, k[0])",
    "cross_entropy(x, k, label_smoothing=0.1) + nll_loss(x, k, ignore_index=2)",
    "cross_entropy(x, k, weight=a) + nll_loss(x, k, weight=a, reduction=sum)",
    "broadcast_to(a, shape=(3, 4)) + k[0] * x + sum(k) / 2",
]


@pytest.mark.parametrize("text", FORWARD)
def test_forward_translation_matches_the_torch_engine(text: str) -> None:
    program = program_of(text, FORWARD_SHAPES)
    fn, _ = load(emit_function(program, Stub()))
    inputs = points(program, seed=3, labels={"k": [2, 0, 1]})
    lowerer = Lowerer(torch.float64, torch.device("cpu"))
    lowerer.env = dict(zip(program.inputs, inputs, strict=True))
    for step in program.steps:
        lowerer.env[step.id] = lowerer.node(step.expr)
    want = lowerer.env[program.output.id]
    got = fn.apply(*inputs)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_an_op_without_a_translation_is_refused() -> None:
    program = program_of("sum(max_pool2d(x, kernel=2))", {"x": (1, 1, 4, 4)})
    with pytest.raises(SymcheckError, match="--emit torch does not translate max_pool2d yet"):
        emit_function(program, Stub())
    # in a closed form as well: no backward is emitted rather than a wrong one
    program = program_of("sum(x^2)", {"x": (3,)})
    with pytest.raises(SymcheckError, match="does not translate kl_div"):
        emit_function(program, Stub({"x": "kl_div(x, x) + 2*x"}))


def test_a_gradient_without_closed_form_is_refused() -> None:
    program = program_of("sum(x^2)", {"x": (3,)})
    with pytest.raises(SymcheckError, match="no closed form to emit"):
        emit_function(program, Stub({"x": "(no closed form in the language: Piecewise)"}))
    with pytest.raises(SymcheckError, match="does not read back"):
        emit_function(program, Stub({"x": "2*"}))
    with pytest.raises(SymcheckError, match="does not broadcast"):
        emit_function(program, Stub({"x": "outer(x, x)"}))
    with pytest.raises(SymcheckError, match="cannot name a Python class"):
        emit_function(program, Stub(), class_name="not a name")
