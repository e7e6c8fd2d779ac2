"""The PyTorch engine: lowers the IR to torch ops and differentiates with torch.autograd.

Torch is the reference implementation most users already trust, so its derivative rules are
used as they are: no op is rewritten here (second derivatives too: they are torch's double
backward, in the engine's dtype). Only the torch packages import
torch (this one, and `torch_autograd.py` beside it); the registry imports them lazily.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from symcheck.engines.base import (
    HVP,
    Engine,
    EngineOptions,
    EngineResult,
    second_order_directions,
    wants_full_hessian,
)
from symcheck.engines.torch.rules import KEEPS_DTYPE, LABEL_ARGS, TABLE
from symcheck.engines.torch_autograd import (
    hessian_blocks,
    hessian_vector_products,
    resolve_device,
    resolve_dtype,
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
        notes: list[str] = []
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
