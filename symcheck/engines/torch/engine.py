"""The PyTorch engine: lowers the IR to torch ops and differentiates with torch.autograd.

Torch is the reference implementation most users already trust, so its derivative rules are
used as they are: no op is rewritten here (second derivatives too: they are torch's double
backward, in the engine's dtype). This is the only module in symcheck that imports
torch; the registry in `symcheck.engine` imports it lazily.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from symcheck.engine import (
    HVP,
    Engine,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    hessian_key,
    second_order_directions,
    wants_full_hessian,
)
from symcheck.ir import Call, Const, DType, KwValue, Node, Program, Ref

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

Lowering = Callable[[Sequence[torch.Tensor], Mapping[str, KwValue]], torch.Tensor]


def _reduce(fn: Callable[..., torch.Tensor]) -> Lowering:
    def lower(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
        (x,) = args
        axes: tuple[int, ...] | None = kw["axis"]
        keep = bool(kw["keepdims"])
        if axes is None:
            axes = tuple(range(x.ndim))
        if not axes:
            # torch reads dim=() as "every axis"; numpy (our semantics) reads it as "no axis".
            return x.clone()
        return fn(x, dim=axes, keepdim=keep)

    return lower


def _step(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    (x,) = args
    return (x.detach() > 0).to(x.dtype)


def _expand_dims(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    return torch.unsqueeze(args[0], kw["axis"])


def _mse_loss(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    # F.mse_loss wants equal shapes (it warns otherwise); ours broadcast like numpy.
    a, b = torch.broadcast_tensors(args[0], args[1])
    return F.mse_loss(a, b, reduction=kw["reduction"])


def _labels(labels: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels safe to index with, and (when some are out of [0, classes)) a mask of the valid ones.

    Torch raises on an out-of-range label; the numeric engine answers NaN for it instead, as for
    any value outside an op's domain, and so does this engine, so that a pinned bad label shows
    up as a domain problem rather than as an engine crash.
    """
    valid = (labels >= 0) & (labels < classes)
    if bool(valid.all()):
        return labels, None
    return torch.where(valid, labels, torch.zeros_like(labels)), valid


def _poison(value: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    # Adding NaN * sum(scores) (rather than replacing the value) makes every score's gradient NaN,
    # as finite differences of a NaN output are; the loss's own gradient is sparse, so scaling it
    # by NaN would leave zeros.
    if valid is None:
        return value
    return value + scores.sum() * float("nan")


def _onehot(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    # float64 holds 0, 1 and NaN exactly; `Lowerer.call` casts the result to the engine's dtype.
    classes: int = kw["num_classes"]
    labels, valid = _labels(args[0], classes)
    out = F.one_hot(labels, classes).to(torch.float64)
    if valid is None:
        return out
    return torch.where(valid.unsqueeze(-1), out, torch.full_like(out, float("nan")))


def _where(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    cond, a, b = args
    return torch.where(cond if cond.dtype == torch.bool else cond != 0, a, b)


def _clamp(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    (x,) = args
    lo: float | None = kw["min"]
    hi: float | None = kw["max"]
    if lo is None and hi is None:
        return x.clone()  # torch.clamp refuses to be called without a bound
    return torch.clamp(x, min=lo, max=hi)


def _take(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    x, index = args
    n = x.shape[0]
    valid = (index >= -n) & (index < n)
    if bool(valid.all()):
        return x[index]
    # Torch raises on an out-of-range index; answer NaN there, as the numeric engine does (see
    # `_labels`). NaN * sum(x) in those rows makes every element's gradient NaN, as finite
    # differences of a sum with a NaN in it are.
    picked = x[torch.where(valid, index, torch.zeros_like(index))]
    if not picked.is_floating_point():
        picked = picked.to(torch.float64)  # an int tensor cannot hold NaN
    mask = valid.reshape(valid.shape + (1,) * (picked.ndim - valid.ndim))
    bad = x.sum() * float("nan") if x.requires_grad else torch.tensor(float("nan"), dtype=picked.dtype)
    return torch.where(mask, picked, bad.to(device=picked.device, dtype=picked.dtype))


def _classification(fn: Callable[..., torch.Tensor]) -> Lowering:
    def lower(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
        scores, target = args
        labels, valid = _labels(target, scores.shape[-1])
        if scores.ndim == 1:
            # A single example: torch's (C,) / () form is newer and less travelled than (1, C) / (1,).
            value = fn(scores.unsqueeze(0), labels.reshape(1), reduction=kw["reduction"]).reshape(())
        else:
            value = fn(scores, labels, reduction=kw["reduction"])
        return _poison(value, scores, valid)

    return lower


# One entry per catalogue op. `pow` with a literal exponent is special-cased in `Lowerer.call`
# so that torch sees a Python number (and uses its own scalar-exponent derivative rule).
TABLE: dict[str, Lowering] = {
    "add": lambda a, kw: torch.add(a[0], a[1]),
    "sub": lambda a, kw: torch.sub(a[0], a[1]),
    "mul": lambda a, kw: torch.mul(a[0], a[1]),
    "div": lambda a, kw: torch.div(a[0], a[1]),
    "pow": lambda a, kw: torch.pow(a[0], a[1]),
    "neg": lambda a, kw: torch.neg(a[0]),
    "matmul": lambda a, kw: torch.matmul(a[0], a[1]),
    "exp": lambda a, kw: torch.exp(a[0]),
    "log": lambda a, kw: torch.log(a[0]),
    "sqrt": lambda a, kw: torch.sqrt(a[0]),
    "sin": lambda a, kw: torch.sin(a[0]),
    "cos": lambda a, kw: torch.cos(a[0]),
    "tan": lambda a, kw: torch.tan(a[0]),
    "tanh": lambda a, kw: torch.tanh(a[0]),
    "sigmoid": lambda a, kw: torch.sigmoid(a[0]),
    "relu": lambda a, kw: torch.relu(a[0]),
    "abs": lambda a, kw: torch.abs(a[0]),
    "softplus": lambda a, kw: F.softplus(a[0]),
    "sign": lambda a, kw: torch.sign(a[0]),
    "step": _step,
    "sum": _reduce(torch.sum),
    "mean": _reduce(torch.mean),
    "transpose": lambda a, kw: torch.permute(a[0], kw["axes"]),
    "expand_dims": _expand_dims,
    "broadcast_to": lambda a, kw: torch.broadcast_to(a[0], kw["shape"]),
    "softmax": lambda a, kw: F.softmax(a[0], dim=kw["axis"]),
    "log_softmax": lambda a, kw: F.log_softmax(a[0], dim=kw["axis"]),
    "logsumexp": _reduce(torch.logsumexp),
    "outer": lambda a, kw: torch.outer(a[0], a[1]),
    "dot": lambda a, kw: torch.dot(a[0], a[1]),
    "trace": lambda a, kw: torch.trace(a[0]),
    "eye": lambda a, kw: torch.eye(kw["n"]),  # dtype and device are set in `Lowerer.call`
    "mse_loss": _mse_loss,
    "onehot": _onehot,
    "nll_loss": _classification(F.nll_loss),
    "cross_entropy": _classification(F.cross_entropy),
    "lt": lambda a, kw: torch.lt(a[0], a[1]),
    "le": lambda a, kw: torch.le(a[0], a[1]),
    "gt": lambda a, kw: torch.gt(a[0], a[1]),
    "ge": lambda a, kw: torch.ge(a[0], a[1]),
    "eq": lambda a, kw: torch.eq(a[0], a[1]),
    "ne": lambda a, kw: torch.ne(a[0], a[1]),
    "where": _where,
    # torch splits the gradient evenly at ties, for maximum/minimum and for amax/amin alike.
    "maximum": lambda a, kw: torch.maximum(a[0], a[1]),
    "minimum": lambda a, kw: torch.minimum(a[0], a[1]),
    "clamp": _clamp,
    "max": _reduce(torch.amax),
    "min": _reduce(torch.amin),
    "index": lambda a, kw: a[0][kw["at"]],
    "take": _take,
}

# Ops that move elements without computing on them keep integer (and bool) tensors as they are.
_KEEPS_DTYPE = frozenset({"transpose", "expand_dims", "broadcast_to", "index", "take"})
# Arguments that reach the op as they are: class labels and indices must stay integers, and
# comparisons and where's condition need no float (comparing ints as ints is exact).
_LABEL_ARGS: dict[str, frozenset[int]] = {
    "onehot": frozenset({0}),
    "nll_loss": frozenset({1}),
    "cross_entropy": frozenset({1}),
    "take": frozenset({1}),
    "where": frozenset({0}),
    **{op: frozenset({0, 1}) for op in ("lt", "le", "gt", "ge", "eq", "ne")},
}


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise EngineUnavailable(
            f"torch engine: unsupported dtype {name!r} (choose one of {', '.join(DTYPES)})"
        ) from None


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise EngineUnavailable(f"torch engine: unsupported device {name!r} (use cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise EngineUnavailable(
            f"CUDA is not available (torch.cuda.is_available() is False), so device {name!r} cannot be used; "
            "use --device cpu"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise EngineUnavailable(
            f"torch engine: device {name!r} does not exist ({count} CUDA device(s) found)"
        )
    return torch.device(name)


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
        if call.op not in _KEEPS_DTYPE:
            labels = _LABEL_ARGS.get(call.op, frozenset())
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
            grads = {n: _zeros(t) if found[n] is None else _numpy(found[n]) for n, t in leaves.items()}
            if second_order:
                # wrt's order, not the program's: second_order_directions draws in the order it is given.
                names = [n for n in dict.fromkeys(wrt) if n in leaves]
                shapes = {n: tuple(leaves[n].shape) for n in names}
                firsts = {n: found[n] for n in names}
                if wants_full_hessian(shapes, options):
                    hessian = self._hessian(firsts, leaves)
                else:
                    hvps = self._hvps(firsts, leaves, second_order_directions(shapes, options))
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
            value=_numpy(out),
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

    @staticmethod
    def _hessian(
        grads: Mapping[str, torch.Tensor | None], leaves: Mapping[str, torch.Tensor]
    ) -> dict[str, np.ndarray]:
        """Every block d² out / (da db) by double backward: element i of grad a, differentiated
        again, is row i of each block (a, ·)."""
        names = list(grads)
        targets = [leaves[n] for n in names]
        blocks: dict[str, np.ndarray] = {}
        for a, g in grads.items():
            size = leaves[a].numel()
            rows: list[list[np.ndarray]] = [[] for _ in names]
            for i in range(size):
                found: Any = (None,) * len(names)
                if g is not None and g.requires_grad:  # else the gradient is constant
                    found = torch.autograd.grad(
                        g.reshape(-1)[i], targets, retain_graph=True, allow_unused=True
                    )
                for row, t, d in zip(rows, targets, found, strict=True):
                    row.append(_zeros(t) if d is None else _numpy(d))
            for b, t, row in zip(names, targets, rows, strict=True):
                shape = tuple(leaves[a].shape) + tuple(t.shape)
                blocks[hessian_key(a, b)] = np.stack(row).reshape(shape) if row else np.zeros(shape)
        return blocks

    @staticmethod
    def _hvps(
        grads: Mapping[str, torch.Tensor | None],
        leaves: Mapping[str, torch.Tensor],
        directions: Sequence[Mapping[str, np.ndarray]],
    ) -> list[HVP]:
        """H v as the gradient of Σ_a sum(grad_a * v_a), one double backward per direction."""
        names = list(grads)
        targets = [leaves[n] for n in names]
        products: list[HVP] = []
        for v in directions:
            terms = [
                (g * torch.as_tensor(np.asarray(v[n], dtype=np.float64)).to(g)).sum()
                for n, g in grads.items()
                if g is not None and g.requires_grad
            ]
            found: Any = (None,) * len(names)
            if terms:
                found = torch.autograd.grad(sum(terms), targets, retain_graph=True, allow_unused=True)
            product = {
                n: _zeros(t) if d is None else _numpy(d)
                for n, t, d in zip(names, targets, found, strict=True)
            }
            products.append(HVP(direction=v, product=product))
        return products


def _zeros(t: torch.Tensor) -> np.ndarray:
    return np.zeros(tuple(t.shape), dtype=np.float64)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()
