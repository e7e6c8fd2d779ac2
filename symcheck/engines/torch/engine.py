"""The PyTorch engine: lowers the IR to torch ops and differentiates with torch.autograd.

Torch is the reference implementation most users already trust, so its derivative rules are
used as they are: no op is rewritten here (second derivatives too: they are torch's double
backward, in the engine's dtype). Only the torch packages import
torch (this one, and `torch_autograd.py` beside it); the registry imports them lazily.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as forward_ad

from symcheck.engines.base import (
    HVP,
    Engine,
    EngineOptions,
    EngineResult,
    second_order_directions,
    tensor_derivatives,
    wants_full_hessian,
)
from symcheck.engines.torch.rules import KEEPS_DTYPE, LABEL_ARGS, TABLE
from symcheck.engines.torch_autograd import (
    hessian_blocks,
    hessian_vector_products,
    resolve_device,
    resolve_dtype,
    tf32_note,
    to_numpy,
    zeros_like,
)
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref


class Lowerer:
    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype = dtype
        self.device = device
        self.env: dict[str, torch.Tensor] = {}

    def node(self, node: Node) -> torch.Tensor:
        if isinstance(node, Const):
            return torch.tensor(float(node.value), dtype=self.dtype, device=self.device)
        if isinstance(node, Ref):
            return self.env[node.target]
        assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
        return self.call(node)

    def call(self, call: Call) -> torch.Tensor:
        kw = call.kwdict
        if call.op == "eye":
            return torch.eye(kw["n"], dtype=self.dtype, device=self.device)
        if call.op in ("pi", "e"):  # the constants, in the engine's dtype and on its device
            return torch.tensor(math.pi if call.op == "pi" else math.e, dtype=self.dtype, device=self.device)
        if call.op == "pow" and isinstance(call.args[1], Const):
            exponent = call.args[1].value
            number: int | float = int(exponent) if exponent.denominator == 1 else float(exponent)
            return torch.pow(self.floating(self.node(call.args[0])), number)
        args = [self.node(a) for a in call.args]
        if call.op not in KEEPS_DTYPE:
            labels = LABEL_ARGS.get(call.op, frozenset())
            args = [a if i in labels else self.floating(a) for i, a in enumerate(args)]
        out = TABLE[call.op](args, kw)
        if out.is_floating_point() and out.dtype != self.dtype:
            # Only an op that makes floats from labels alone (onehot, take's NaN rows) lands here.
            out = out.to(self.dtype)
        return out

    def floating(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.is_floating_point() else t.to(self.dtype)


_JVP_DECOMPOSITIONS = "torch._decomp.decompositions_for_jvp"


@contextmanager
def _jvp_decompositions_deferred() -> Iterator[None]:
    """torch's first make_dual imports decompositions for forward mode, compiled with
    torch.jit.script (0.35 s a process), unless PYTORCH_JIT=0. The ops of our language have forward
    formulas of their own; one that needs a decomposition fails loudly without it ("Trying to use
    forward AD with ... PYTORCH_JIT=0"), and the caller then runs it again with them loaded."""
    if _JVP_DECOMPOSITIONS in sys.modules:
        yield
        return
    before = os.environ.get("PYTORCH_JIT")
    os.environ["PYTORCH_JIT"] = "0"  # read by make_dual only: torch.jit read it at torch's import
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTORCH_JIT", None)
        else:
            os.environ["PYTORCH_JIT"] = before


class TorchEngine(Engine):
    name = "torch"
    description = "PyTorch eager ops differentiated by torch.autograd"

    def run(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        dtype = resolve_dtype(options.dtype)
        device = resolve_device(options.device)
        start = time.perf_counter()
        lowerer = Lowerer(dtype, device)
        leaves: dict[str, torch.Tensor] = {}
        notes: list[str] = [n for n in (tf32_note(device, dtype),) if n]
        for name, decl in program.inputs.items():
            array = np.asarray(inputs[name])
            if decl.type.dtype is DType.FLOAT:
                t = torch.as_tensor(array.astype(np.float64)).to(device=device, dtype=dtype)
                if name in wrt:
                    t.requires_grad_(True)
                    leaves[name] = t
            else:
                t = torch.as_tensor(array.astype(np.int64)).to(device=device)
            lowerer.env[name] = t
        hessian: dict[str, np.ndarray] = {}
        hvps: list[HVP] = []
        second_order = options.order >= 2
        with torch.enable_grad():
            for step in program.steps:
                lowerer.env[step.id] = lowerer.node(step.expr)
            out = lowerer.env[program.output.id]
            if out.ndim:
                return self._tensor_output(program, lowerer, out, leaves, options, start)
            # Order 2 keeps the gradient as a graph of its own, to be differentiated once more.
            found = self._grad_tensors(out, leaves, create_graph=second_order)
            grads = {n: zeros_like(t) if found[n] is None else to_numpy(found[n]) for n, t in leaves.items()}
            if second_order:
                # wrt's order, not the program's: second_order_directions draws in the order it is given.
                names = [n for n in dict.fromkeys(wrt) if n in leaves]
                shapes = {n: tuple(leaves[n].shape) for n in names}
                firsts = {n: found[n] for n in names}
                if wants_full_hessian(shapes, options):
                    hessian = hessian_blocks(firsts, leaves)
                else:
                    hvps = hessian_vector_products(firsts, leaves, second_order_directions(shapes, options))
        result_grads: dict[str, np.ndarray] = {}
        for name in wrt:
            if name in grads:
                result_grads[name] = grads[name]
            else:
                # Integer inputs are never differentiated; report a zero gradient of the right shape.
                result_grads[name] = np.zeros(np.shape(inputs[name]), dtype=np.float64)
                notes.append(f"{name} is not a float input; its gradient is reported as 0")
        return EngineResult(
            engine=self.name,
            value=to_numpy(out),
            grads=result_grads,
            hessian=hessian,
            hvps=hvps,
            notes=notes,
            dtype=options.dtype,
            seconds=time.perf_counter() - start,
        )

    @staticmethod
    def _grad_tensors(
        out: torch.Tensor, leaves: Mapping[str, torch.Tensor], create_graph: bool
    ) -> dict[str, torch.Tensor | None]:
        """The gradients as torch tensors (None where the output does not depend on a leaf)."""
        if not leaves or not out.requires_grad:
            return dict.fromkeys(leaves)
        target = out if out.ndim == 0 else out.sum()
        found: Any = torch.autograd.grad(
            target, list(leaves.values()), allow_unused=True, create_graph=create_graph
        )
        return dict(zip(leaves, found, strict=True))

    def _tensor_output(
        self,
        program: Program,
        lowerer: Lowerer,
        out: torch.Tensor,
        leaves: Mapping[str, torch.Tensor],
        options: EngineOptions,
        start: float,
    ) -> EngineResult:
        """A tensor output's Jacobian: VJPs by torch.autograd.grad with a cotangent, JVPs by
        torch.autograd.forward_ad (torch's forward-mode AD, dual numbers, not derived from its backward)."""
        shapes = {n: tuple(t.shape) for n, t in leaves.items()}
        notes: list[str] = []

        def vjp(u: np.ndarray) -> dict[str, np.ndarray]:
            if not out.requires_grad:
                return {n: np.zeros(s) for n, s in shapes.items()}
            cotangent = torch.as_tensor(u).to(out)
            found: Any = torch.autograd.grad(
                out, list(leaves.values()), grad_outputs=cotangent, retain_graph=True, allow_unused=True
            )
            return {
                n: zeros_like(leaves[n]) if g is None else to_numpy(g)
                for n, g in zip(leaves, found, strict=True)
            }

        names = list(leaves)

        def program_of(*values: torch.Tensor) -> torch.Tensor:
            inner = Lowerer(lowerer.dtype, lowerer.device)
            inner.env = {
                **{n: v for n, v in lowerer.env.items() if n in program.inputs},
                **dict(zip(names, values, strict=True)),
            }
            for step in program.steps:
                inner.env[step.id] = inner.node(step.expr)
            return inner.env[program.output.id]

        def jvp_once(v: Mapping[str, np.ndarray]) -> np.ndarray:
            with warnings.catch_warnings(), forward_ad.dual_level():
                # torch's first forward-mode call loads decompositions with torch.jit.script, which
                # this torch deprecates: torch's own business, not the user's.
                warnings.filterwarnings("ignore", message=".*torch.jit.script", category=DeprecationWarning)
                duals = [
                    forward_ad.make_dual(leaves[n].detach(), torch.as_tensor(np.asarray(v[n])).to(leaves[n]))
                    for n in names
                ]
                product = forward_ad.unpack_dual(program_of(*duals)).tangent
            return np.zeros(tuple(out.shape)) if product is None else to_numpy(product)

        def jvp(v: Mapping[str, np.ndarray]) -> np.ndarray:
            try:
                with _jvp_decompositions_deferred():
                    return jvp_once(v)
            except RuntimeError as e:
                if "forward AD" not in str(e):
                    raise
                return jvp_once(v)  # an op whose forward mode is one of those decompositions: loaded now

        forward: Any = jvp if names else None
        try:
            found = tensor_derivatives(
                tuple(out.shape), shapes, options, vjp, forward, rtol=self._rtol(options)
            )
        except (RuntimeError, NotImplementedError) as e:  # an op without forward-mode AD in this torch
            notes.append(f"forward mode (torch.autograd.forward_ad) unavailable: {e}; reverse mode only")
            found = tensor_derivatives(tuple(out.shape), shapes, options, vjp, None)
        if options.order >= 2:
            notes.append("second derivatives need a scalar output: not computed")
        return EngineResult(
            engine=self.name,
            value=to_numpy(out),
            grads={},
            jacobians=found.jacobians,
            vjps=found.vjps,
            jvps=found.jvps,
            failures=found.failures,
            notes=notes,
            dtype=options.dtype,
            seconds=time.perf_counter() - start,
        )

    @staticmethod
    def _rtol(options: EngineOptions) -> float:
        """How closely torch's reverse and forward modes must agree in the engine's dtype."""
        return {"float64": 1e-9, "float32": 1e-4}.get(options.dtype, 1e-2)
