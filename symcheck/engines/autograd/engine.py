"""The autograd engine: lower symcheck's IR onto `symcheck.engines.autograd.tensor` and back-propagate.

Lowering is a walk over each step's expression: a `Ref` is the tensor already computed for its
binding id (an input or an earlier step), a `Const` is a plain float, and a `Call` is the Tensor
function of the same name from the rule table (`rules.TABLE`), given the call's canonical keyword arguments.

Second derivatives (EngineOptions.order = 2) come from the same rules: the gradient is computed
with create_graph=True, so it is itself a graph, and differentiating it once more gives Hessian
blocks (one backward pass per gradient element) or Hessian-vector products (one per direction).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from symcheck.engines.autograd import rules as T
from symcheck.engines.autograd.rules import TABLE
from symcheck.engines.autograd.tensor import Tensor, grad, jvp
from symcheck.engines.base import (
    HVP,
    Engine,
    EngineOptions,
    EngineResult,
    hessian_key,
    second_order_directions,
    tensor_derivatives,
    wants_full_hessian,
)
from symcheck.language.catalogue import OPS
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref


@dataclass
class Gradients:
    """What `gradient_tensors` computed, as Tensors (differentiable when create_graph=True)."""

    output: Tensor
    inputs: dict[str, Tensor]  # every input, as the leaf the program was evaluated on
    grads: dict[str, Tensor]  # d output / d input, for each float input in wrt


def evaluate(
    program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str] = ()
) -> tuple[dict[str, Tensor], Tensor]:
    """Evaluate `program` on float64 tensors; the float inputs named in `wrt` require grad.
    Integer inputs (class labels) stay int64 tensors and never require grad.

    Returns the input leaves by name and the output tensor.
    """
    for name in wrt:
        if name not in program.inputs:
            raise ValueError(f"wrt names {name!r}, which is not an input of the program")
    leaves = {
        name: Tensor(inputs[name], dtype=np.float64, requires_grad=name in wrt)
        if decl.type.dtype is DType.FLOAT
        else Tensor(inputs[name], dtype=np.int64)
        for name, decl in program.inputs.items()
    }
    env: dict[str, Tensor] = dict(leaves)
    for step in program.steps:
        value = lower_node(step.expr, env)
        env[step.id] = value if isinstance(value, Tensor) else Tensor(value)  # a step may be a bare constant
    return leaves, env[program.output.id]


def lower_node(node: Node, env: Mapping[str, Tensor]) -> Tensor | float:
    if isinstance(node, Const):
        return float(node.value)
    if isinstance(node, Ref):
        return env[node.target]
    assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
    args = [lower_node(a, env) for a in node.args]
    return _rule(node.op)(*args, **keywords_of(node))


def keywords_of(node: Call) -> dict[str, object]:
    """The call's keyword arguments for the rule table: a keyword that takes a tensor (weight=w) is
    an argument already, its entry only says that it is there."""
    spec = OPS[node.op]
    return {k: v for k, v in node.kwargs if getattr(spec.param(k), "kind", None) != "tensor"}


def _rule(op: str) -> Callable[..., Tensor]:
    rule = TABLE.get(op)
    if rule is None:
        raise NotImplementedError(f"autograd has no rule for '{op}' (symcheck/engines/autograd/rules.py)")
    return rule


def gradient_tensors(
    program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str], create_graph: bool = True
) -> Gradients:
    """The output and its gradients as Tensors. With create_graph=True the gradients can be
    differentiated again (Hessians: see `hessian`). Integer inputs get no gradient; a float input
    that does not influence the output gets zeros."""
    leaves, output = evaluate(program, inputs, wrt)
    float_wrt = [n for n in wrt if program.inputs[n].type.dtype is DType.FLOAT]
    if float_wrt and output.size != 1:
        raise ValueError(f"gradients need a one-element output, got shape {output.shape}")
    seed = np.ones_like(output.data) if float_wrt else None
    grads = grad(output, [leaves[n] for n in float_wrt], grad_output=seed, create_graph=create_graph)
    return Gradients(output, leaves, dict(zip(float_wrt, grads, strict=True)))


def hessian(program: Program, inputs: Mapping[str, np.ndarray], of: str, by: str | None = None) -> np.ndarray:
    """d² output / d of d by (by defaults to `of`), shape of.shape + by.shape, one row at a time:
    row i is the gradient of (d output / d of)[i]."""
    by = of if by is None else by
    result = gradient_tensors(program, inputs, list(dict.fromkeys([of, by])), create_graph=True)
    g = result.grads[of]
    x = result.inputs[by]
    rows = []
    for i in range(g.size):
        onehot = np.zeros(g.size)
        onehot[i] = 1.0
        (row,) = grad(T.sum(g * onehot.reshape(g.shape)), [x])
        rows.append(row.data)
    return np.stack(rows).reshape(g.shape + x.shape) if rows else np.zeros(g.shape + x.shape)


def hessian_blocks_of(result: Gradients) -> dict[str, np.ndarray]:
    """Every block d² output / (da db), keyed by `hessian_key(a, b)`, for the inputs in
    `result.grads` (which must have been computed with create_graph=True).

    Element i of the gradient of a, differentiated once more, is row i of every block (a, ·) at
    once, so this takes one backward pass per gradient element.
    """
    names = list(result.grads)
    leaves = [result.inputs[n] for n in names]
    blocks: dict[str, np.ndarray] = {}
    for a in names:
        g = result.grads[a]
        rows: list[list[np.ndarray]] = [[] for _ in names]
        for i in range(g.size):
            onehot = np.zeros(g.size)
            onehot[i] = 1.0
            for row, d in zip(rows, grad(g, leaves, grad_output=onehot.reshape(g.shape)), strict=True):
                row.append(np.asarray(d.data, dtype=np.float64))
        for b, leaf, row in zip(names, leaves, rows, strict=True):
            shape = g.shape + leaf.shape
            blocks[hessian_key(a, b)] = np.stack(row).reshape(shape) if row else np.zeros(shape)
    return blocks


def hessian_vector_products(result: Gradients, directions: Sequence[Mapping[str, np.ndarray]]) -> list[HVP]:
    """H v for each direction v: the gradient of Σ_a sum(grad_a * v_a), one backward pass each
    (`result` must have been computed with create_graph=True)."""
    names = list(result.grads)
    leaves = [result.inputs[n] for n in names]
    products: list[HVP] = []
    for v in directions:
        inner: Tensor | float = 0.0
        for n in names:
            inner = inner + T.sum(result.grads[n] * np.asarray(v[n], dtype=np.float64))
        if isinstance(inner, Tensor):
            hv = [np.asarray(d.data, dtype=np.float64) for d in grad(inner, leaves)]
        else:
            hv = []
        products.append(HVP(direction=v, product=dict(zip(names, hv, strict=True))))
    return products


class AutogradEngine(Engine):
    name = "autograd"
    description = "symcheck's own reverse-mode autograd on numpy arrays (hand-written VJP rules)"

    def run(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        start = time.perf_counter()
        if program.output_type.shape != ():
            with np.errstate(all="ignore"):
                return self._tensor_output(program, inputs, wrt, options, start)
        second_order = options.order >= 2
        hessian_blocks: dict[str, np.ndarray] = {}
        hvps: list[HVP] = []
        # Out-of-domain points give nan/inf, which the comparison reports; numpy need not warn too.
        with np.errstate(all="ignore"):
            # Only order 2 records the rules: first derivatives alone need no graph of the gradient.
            result = gradient_tensors(program, inputs, wrt, create_graph=second_order)
            if second_order:
                shapes = {n: g.shape for n, g in result.grads.items()}
                if wants_full_hessian(shapes, options):
                    hessian_blocks = hessian_blocks_of(result)
                else:
                    hvps = hessian_vector_products(result, second_order_directions(shapes, options))
        seconds = time.perf_counter() - start
        return EngineResult(
            engine=self.name,
            value=np.asarray(result.output.data, dtype=np.float64),
            grads={n: np.asarray(g.data, dtype=np.float64) for n, g in result.grads.items()},
            hessian=hessian_blocks,
            hvps=hvps,
            dtype="float64",
            seconds=seconds,
        )

    def _tensor_output(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
        start: float,
    ) -> EngineResult:
        """The Jacobian of a tensor output, by reverse mode (the VJP rules) and forward mode (the
        JVP rules, written apart), each checking the other."""
        leaves, output = evaluate(program, inputs, wrt)
        floats = [n for n in wrt if program.inputs[n].type.dtype is DType.FLOAT]
        xs = [leaves[n] for n in floats]
        shapes = {n: tuple(leaves[n].shape) for n in floats}

        def vjp(u: np.ndarray) -> dict[str, np.ndarray]:
            found = grad(output, xs, grad_output=u) if xs else []
            return {n: np.asarray(g.data, dtype=np.float64) for n, g in zip(floats, found, strict=True)}

        def forward(v: Mapping[str, np.ndarray]) -> np.ndarray:
            return np.asarray(jvp(output, xs, [v[n] for n in floats]).data, dtype=np.float64)

        found = tensor_derivatives(tuple(output.shape), shapes, options, vjp, forward)
        notes = [
            "Jacobian in full by reverse mode, checked against forward mode"
            if found.mode == "full"
            else f"{options.jacobian_probes} VJPs (reverse mode) and {options.jacobian_probes} JVPs "
            "(forward mode) along shared random probes"
        ]
        if options.order >= 2:
            notes.append("second derivatives need a scalar output: not computed")
        return EngineResult(
            engine=self.name,
            value=np.asarray(output.data, dtype=np.float64),
            grads={},
            jacobians=found.jacobians,
            vjps=found.vjps,
            jvps=found.jvps,
            failures=found.failures,
            notes=notes,
            dtype="float64",
            seconds=time.perf_counter() - start,
        )
