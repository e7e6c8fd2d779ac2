"""A plain numpy forward evaluator of the IR, op by op from the table in `rules.py`.

It is what the numeric engine differences, what the sampler watches for domains and kinks
(`on_call`), and what a plug-in engine that only needs values can build on.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from symcheck.engines.numeric.rules import FORWARD, KEEPS_DTYPE, LABEL_ARGS, LAYOUT, OnCall, layout_forward
from symcheck.language import layout
from symcheck.language.catalogue import einsum_parts
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref

T = TypeVar("T")


def cast_args(op: str, args: list[np.ndarray], dtype: np.dtype) -> list[np.ndarray]:
    """An op's arguments in the dtype computed in: integer and bool arrays become floats, except
    where the op keeps dtypes (moves elements) or takes labels, indices or conditions as they are.
    (dtype.kind "f" is np.issubdtype(..., np.floating) at a tenth of the cost.)"""
    if op in KEEPS_DTYPE:
        return args
    keep = LABEL_ARGS.get(op, frozenset())
    return [a if k in keep or a.dtype.kind == "f" else a.astype(dtype) for k, a in enumerate(args)]


def in_dtype(result: Any, dtype: np.dtype) -> np.ndarray:
    """An op's result as an array, a float one in the dtype computed in."""
    result = np.asarray(result)
    return result.astype(dtype) if result.dtype != dtype and result.dtype.kind == "f" else result


def forward(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    on_call: OnCall | None = None,
    dtype: type[np.floating] | np.dtype = np.float64,
) -> dict[str, np.ndarray]:
    """Evaluate every step. Returns values keyed by step id, plus the inputs keyed by name.

    Float inputs are computed in `dtype`; integer inputs stay int64 until an op computes on them.
    Values outside an op's domain come out as NaN or inf, silently: callers decide what that means.
    """
    dt = np.dtype(dtype)
    env: dict[str, np.ndarray] = {}
    for name, decl in program.inputs.items():
        target = dt if decl.type.dtype is DType.FLOAT else np.int64
        env[name] = np.asarray(inputs[name], dtype=target)
    evaluator = _Evaluator(env, dt, on_call)
    with np.errstate(all="ignore"):
        for step in program.steps:
            env[step.id] = evaluator.node(step.expr)
    return env


@dataclass
class _Evaluator:
    env: dict[str, np.ndarray]
    dtype: np.dtype
    on_call: OnCall | None

    def node(self, node: Node) -> np.ndarray:
        if isinstance(node, Const):
            return np.asarray(float(node.value), dtype=self.dtype)
        if isinstance(node, Ref):
            return self.env[node.target]
        assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
        args = cast_args(node.op, [self.node(a) for a in node.args], self.dtype)
        result = in_dtype(FORWARD[node.op](args, node.kwdict), self.dtype)
        if self.on_call is not None:
            self.on_call(node, args, result)
        return result


_MADE = threading.local()  # per thread: a compiled function's buffers are its own


def _per_program(make: Callable[..., T]) -> Callable[..., T]:
    """make(program, *key), made once per Program object and key in this thread (the last 64): a
    program bound again to the same types is the same object (parser.bind), and the numeric engine
    asks for the same functions at every point of every case checking it."""

    def made(program: Program, *key: Any) -> T:
        memo = _MADE.__dict__.setdefault(make.__name__, OrderedDict())
        slot = (id(program), *key)
        found = memo.get(slot)
        if found is not None and found[0] is program:  # the id of a program still held here
            memo.move_to_end(slot)
            return found[1]
        value = make(program, *key)
        memo[slot] = (program, value)
        if len(memo) > 64:
            memo.popitem(last=False)
        return value

    made.__name__ = make.__name__
    made.__doc__ = make.__doc__
    return made


def compiled(program: Program, dtype: type[np.floating] | np.dtype = np.float64) -> Callable[[], np.ndarray]:
    """A function of the inputs giving forward(program, inputs)[output], the program walked into a
    flat list of calls once: what the numeric engine evaluates thousands of times per point. The
    same rules and casts as `forward`, in the same order, without walking the tree at every call."""
    dt = np.dtype(dtype)
    values, calls, names, out, floats, shapes, buffer_of = _plan(program, dt)
    # Large elementwise results go into buffers kept from call to call, each reused once the value
    # in it is dead: a fresh 8 MB array per op is 2,000 fresh pages, and at 10^6 elements the
    # program ran five times slower than numpy's own expression (which reuses its temporaries).
    # The buffers are this function's: gone with it (the plan is what is kept per program).
    buffers: dict[int, np.ndarray] = {}

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        v = list(values)
        for name, i in names.items():
            v[i] = np.asarray(inputs[name], dtype=dt if floats[name] else np.int64)
        with np.errstate(all="ignore"):
            for i, op, arg_slots, kw in calls:
                args = cast_args(op, [v[j] for j in arg_slots], dt)
                b = buffer_of.get(i)
                if b is None:
                    v[i] = in_dtype(FORWARD[op](args, kw), dt)
                    continue
                if b not in buffers:
                    buffers[b] = np.empty(shapes[i], dtype=dt)
                v[i] = UFUNCS[op](*args, out=buffers[b])
        return v[out]

    return run


@_per_program
def _plan(program: Program, dt: np.dtype) -> tuple:
    """The program walked into slots: constants, (slot, op, argument slots, kwargs) calls, input
    slots, the output slot, which inputs are floats, result shapes, and the buffer of each slot."""
    values: list[Any] = []
    calls: list[tuple[int, str, list[int], dict[str, Any]]] = []  # (slot, op, argument slots, kwargs)
    names: dict[str, int] = {}
    shapes: dict[int, tuple[int, ...]] = {}  # a float result's shape, by slot

    def slot_of(node: Node, env: dict[str, int]) -> int:
        if isinstance(node, Const):
            values.append(np.asarray(float(node.value), dtype=dt))
            return len(values) - 1
        if isinstance(node, Ref):
            return env[node.target]
        assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
        args = [slot_of(a, env) for a in node.args]
        values.append(None)
        calls.append((len(values) - 1, node.op, args, node.kwdict))
        if node.type is not None and node.type.dtype is DType.FLOAT:
            shapes[len(values) - 1] = node.type.shape
        return len(values) - 1

    env: dict[str, int] = {}
    for name in program.inputs:
        values.append(None)
        env[name] = names[name] = len(values) - 1
    for step in program.steps:
        env[step.id] = slot_of(step.expr, env)
    out = env[program.output.id]
    floats = {name: program.inputs[name].type.dtype is DType.FLOAT for name in program.inputs}
    return values, calls, names, out, floats, shapes, _buffers(calls, shapes, out)


# The elementwise ops whose FORWARD rule is exactly this ufunc on its arguments (a test checks),
# so that `compiled` can give them an out= buffer.
UFUNCS: dict[str, np.ufunc] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "neg": np.negative,
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "abs": np.abs,
}
_BUFFERED_ELEMENTS = 2**14  # from 128 KB of float64 up, where malloc hands out fresh pages
# Ops whose result never shares memory with an argument: a value read only by these may live in
# a reused buffer (a transpose or a broadcast of it would be a view of the buffer, overwritten later).
_FRESH = frozenset(UFUNCS) | {"sum", "mean", "max", "min", "logsumexp", "matmul"}

Calls = Sequence[tuple[int, str, list[int], dict[str, Any]]]


def _buffers(calls: Calls, shapes: Mapping[int, tuple[int, ...]], out: int) -> dict[int, int]:
    """Slot -> buffer number for the large float results of UFUNCS ops read only by _FRESH ops (not
    the output, which the caller keeps): a buffer is free again after the last call reading the
    value in it, as a register is, so a chain of n ops needs two or three buffers, not n."""
    last_use: dict[int, int] = {}
    viewed: set[int] = set()
    for k, (_, op, arg_slots, _) in enumerate(calls):
        for j in arg_slots:
            last_use[j] = k
            if op not in _FRESH:
                viewed.add(j)
    assigned: dict[int, int] = {}
    free: dict[tuple[int, ...], list[int]] = {}
    count = 0
    for k, (i, op, arg_slots, _) in enumerate(calls):
        shape = shapes.get(i)
        large = shape is not None and math.prod(shape) >= _BUFFERED_ELEMENTS
        if op in UFUNCS and i != out and i not in viewed and large:
            pool = free.setdefault(shape, [])
            if pool:
                assigned[i] = pool.pop()
            else:
                assigned[i], count = count, count + 1
        for j in set(arg_slots):  # dead after this call: its buffer is free for the next ones
            if last_use.get(j) == k and j in assigned:
                free.setdefault(shapes[j], []).append(assigned[j])
    return assigned


# Ops whose batched form `batched` knows: every elementwise op, and these, with their axes moved
# past the batch axis. A program with any other op on a batched value is evaluated one point at a time.
_SHIFTED_AXES = frozenset({"sum", "mean", "max", "min", "logsumexp", "var", "std", "prod", "norm"})
_SHIFTED_AXIS = frozenset({"softmax", "log_softmax", "expand_dims", "cumsum", "cumprod"})


Batched = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], np.ndarray]


def batched(program: Program, names: Collection[str]) -> Batched | None:
    """See _batched."""
    return _batched(program, tuple(names))


@_per_program
def _batched(program: Program, names: tuple[str, ...]) -> Batched | None:
    """A function (inputs, batch) -> the output at B points at once, where batch[n] (B, *shape of n)
    holds B values of each input n of `names` and the other inputs are as given: for finite
    differences, one call instead of B. Each op works on its logical shape with the batch axis in
    front (elementwise operands aligned past it, reduction and softmax axes moved by one, matmul's
    1-D operands as numpy treats them). None where the program has an op this does not batch, or a
    tensor output."""
    from symcheck.language.catalogue import OPS, OpKind

    if program.output_type.shape != () or not names:
        return None
    dt = np.dtype(np.float64)
    steps: list[tuple[str, Node]] = [(s.id, s.expr) for s in program.steps]
    depends: dict[str, bool] = {n: n in names for n in program.inputs}

    def uses(node: Node) -> bool:
        if isinstance(node, Ref):
            return depends[node.target]
        return any(uses(a) for a in node.children())

    for step_id, expr in steps:
        depends[step_id] = uses(expr)

    def supported(node: Node) -> bool:
        if not isinstance(node, Call):
            return True
        if uses(node) and not (
            OPS[node.op].kind is OpKind.ELEMENTWISE
            or node.op in _SHIFTED_AXES | _SHIFTED_AXIS
            or node.op in ("clamp", "matmul", "transpose", "broadcast_to")
            or (node.op in ("nll_loss", "cross_entropy") and _plain(node))
            or node.op in LAYOUT
            or node.op == "einsum"
            or node.op in INDEXING
        ):
            return False
        return all(supported(a) for a in node.args)

    if not all(supported(expr) for _, expr in steps):
        return None
    floats = {n: program.inputs[n].type.dtype is DType.FLOAT for n in program.inputs}

    def run(inputs: Mapping[str, np.ndarray], batch: Mapping[str, np.ndarray]) -> np.ndarray:
        env: dict[str, tuple[np.ndarray, bool]] = {}
        for n in program.inputs:
            if n in names:
                env[n] = (np.asarray(batch[n], dtype=dt), True)
            else:
                env[n] = (np.asarray(inputs[n], dtype=dt if floats[n] else np.int64), False)
        with np.errstate(all="ignore"):
            for step_id, expr in steps:
                env[step_id] = _batched_node(expr, env, dt)
        value, is_batched = env[program.output.id]
        return value if is_batched else np.broadcast_to(value, (len(next(iter(batch.values()))),))

    return run


def _batched_node(
    node: Node, env: dict[str, tuple[np.ndarray, bool]], dt: np.dtype
) -> tuple[np.ndarray, bool]:
    if isinstance(node, Const):
        return np.asarray(float(node.value), dtype=dt), False
    if isinstance(node, Ref):
        return env[node.target]
    assert isinstance(node, Call)
    evaluated = [_batched_node(a, env, dt) for a in node.args]
    args = cast_args(node.op, [value for value, _ in evaluated], dt)
    kw = node.kwdict
    if not any(b for _, b in evaluated):
        return in_dtype(FORWARD[node.op](args, kw), dt), False
    flags = [b for _, b in evaluated]
    shapes = [a.shape for a in node.args]
    if node.op == "matmul":
        a, b = args
        ra, rb = len(shapes[0]), len(shapes[1])
        if ra == 0 or rb == 0:
            return np.multiply(*_aligned(args, flags, shapes, len(node.shape))), True
        a = a[..., None, :] if ra == 1 else a  # numpy's reading of 1-D operands, batch axis kept apart
        b = b[..., None] if rb == 1 else b
        # the points' axis apart from matmul's own batch axes: a batched operand gets 1s after it
        rank = max(max(ra, 2), max(rb, 2))
        a = a.reshape(a.shape[:1] + (1,) * (rank - max(ra, 2)) + a.shape[1:]) if flags[0] else a
        b = b.reshape(b.shape[:1] + (1,) * (rank - max(rb, 2)) + b.shape[1:]) if flags[1] else b
        out = np.matmul(a, b)
        if rb == 1:
            out = out[..., 0]
        if ra == 1:
            out = out[..., 0, :] if rb != 1 else out[..., 0]
        return out, True
    plain = not (kw.get("weight") or kw.get("ignore_index") is not None or kw.get("label_smoothing"))
    if node.op in ("nll_loss", "cross_entropy") and not flags[1] and plain:  # batched scores, labels as given
        scores, target = args
        logp = FORWARD["log_softmax"]([scores], {"axis": -1}) if node.op == "cross_entropy" else scores
        return _batched_nll(logp, target, kw["reduction"], len(shapes[0])), True
    if node.op in _SHIFTED_AXES:
        axes = kw["axis"]
        kw = {
            **kw,
            "axis": tuple(range(1, len(shapes[0]) + 1)) if axes is None else tuple(a + 1 for a in axes),
        }
    elif node.op in _SHIFTED_AXIS:
        kw = {**kw, "axis": kw["axis"] + 1}
    elif node.op == "transpose":
        kw = {**kw, "axes": (0, *(a + 1 for a in kw["axes"]))}
    elif node.op == "einsum":  # the points' axis as einsum's ... on the batched operands
        inputs, output = einsum_parts(kw["subscripts"])
        spec = (
            ",".join(("..." if b else "") + s for s, b in zip(inputs, flags, strict=True)) + "->..." + output
        )
        return np.einsum(spec, *args), True
    elif node.op in INDEXING:  # the op past the batch axis; the index is never batched
        count = len(next(a for a, b in zip(args, flags, strict=True) if b))
        lifted = [
            a if b or i == 1 else np.broadcast_to(a, (count, *a.shape))
            for i, (a, b) in enumerate(zip(args, flags, strict=True))
        ]
        return in_dtype(INDEXING[node.op](*lifted, **kw, lead=1), dt), True
    elif node.op in LAYOUT:  # the op on the axes after the batch's
        count = len(next(a for a, b in zip(args, flags, strict=True) if b))
        lifted = [a if b else np.broadcast_to(a, (count, *a.shape)) for a, b in zip(args, flags, strict=True)]
        return in_dtype(layout_forward(node.op, lead=1)(lifted, kw), dt), True
    elif node.op == "broadcast_to":
        (x,) = _aligned(args, flags, shapes, len(node.shape))
        return np.broadcast_to(x, (x.shape[0], *node.shape)), True
    else:  # elementwise: each batched operand aligned to the result's rank past the batch axis
        args = _aligned(args, flags, shapes, len(node.shape))
    return in_dtype(FORWARD[node.op](args, kw), dt), True


def _plain(node: Call) -> bool:
    """A classification loss without weight, ignored label or smoothing (those run point by point)."""
    kw = node.kwdict
    return not (kw.get("weight") or kw.get("ignore_index") is not None or kw.get("label_smoothing"))


INDEXING = {
    "gather": layout.gather,
    "scatter_add": layout.scatter_add,
    "index_select": layout.index_select,
    "embedding": layout.embedding,
}


def _batched_nll(logp: np.ndarray, target: np.ndarray, reduction: str, ndim: int) -> np.ndarray:
    """rules._nll_loss with logp (B, *S): the same picks, NaNs and reductions, for each of B rows."""
    classes = logp.shape[-1]
    valid = (target >= 0) & (target < classes)
    index = np.broadcast_to(np.where(valid, target, 0)[None, ..., None], (*logp.shape[:-1], 1))
    losses = np.where(valid, -np.take_along_axis(logp, index, axis=-1)[..., 0], np.nan)
    if ndim == 1:
        return losses
    return np.mean(losses, axis=-1) if reduction == "mean" else np.sum(losses, axis=-1)


def _aligned(
    args: list[np.ndarray], flags: list[bool], shapes: list[tuple[int, ...]], rank: int
) -> list[np.ndarray]:
    """Batched operands (B, *S) as (B, 1, ..., 1, *S) of 1 + rank axes, so that numpy lines up S
    with the other operands' trailing axes and B with nothing of theirs."""
    return [
        a.reshape((a.shape[0],) + (1,) * (rank - len(s)) + tuple(s)) if batched else a
        for a, batched, s in zip(args, flags, shapes, strict=True)
    ]
