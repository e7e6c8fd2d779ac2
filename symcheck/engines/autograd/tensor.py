"""A small reverse-mode autograd on numpy arrays, written to be read.

How it works, in four ideas:

1. A `Tensor` wraps a numpy array. Every op applied to tensors that require gradients records
   the op's name, its argument tensors (the *parents*) and its keyword arguments. That record is
   the computation graph; nothing else is stored.

2. Each primitive op has one *vector-Jacobian product* (VJP) rule per argument, in the table
   `VJPS`; the rules themselves are written in `rules.py`, one primitive and its `defvjp` line at a
   time. A rule takes the cotangent `g` of the op's output (d loss / d output), the output
   `ans` itself and the op's arguments, and returns the cotangent of that argument:

       add:  z = x + y      x̄ = unbroadcast(g, x.shape)      ȳ = unbroadcast(g, y.shape)
       exp:  z = exp(x)     x̄ = g * ans

3. `backward()` visits the graph in reverse topological order, calling the rules and summing the
   cotangents that reach each tensor. Leaves (tensors made by the user) collect theirs in `.grad`,
   adding to whatever is already there, exactly like torch; call `zero_grad()` between steps.

4. The rules are written with Tensor operations, not raw numpy. Ordinarily they run with graph
   recording switched off; with `create_graph=True` they are recorded like any other computation,
   so a gradient is itself a differentiable Tensor and second derivatives come for free.

This module is the machinery (recording, `primitive`, `defvjp`, back-propagation); `rules.py`
is the rule table. A Tensor's operators (`x + y`, `x.sum()`) call the primitives of that table by
name, so the package `symcheck.engines.autograd` loads both.

Conventions at kinks follow torch: relu'(0) = 0 and abs'(0) = 0; clamp has slope 1 at its
bounds; ties of maximum/minimum split g evenly between the two sides, and tied elements of a
max/min reduction share it evenly. `sign`, `step` and the comparisons (lt le gt ge eq ne) are
piecewise constant: they are listed in `NONDIFFERENTIABLE` and their outputs never require grad.

Comparisons give bool arrays. Every op reads a bool as 0/1 in the float dtype of its other
arguments, so (x > 0) * x is x where positive, and True + True is 2 (numpy's bool + bool is a
logical or; a bool made float first cannot be one).

Class labels are integer tensors, `Tensor(labels, dtype=np.int64)`: they never require grad, and
`onehot` turns them into a constant float matrix, through which the losses are ordinary Tensor
expressions (cross_entropy = nll_loss(log_softmax(z)), nll_loss = -sum(onehot(y) * logp) / N).
"""

from __future__ import annotations

import builtins
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

ArrayLike = Any  # Tensor | np.ndarray | float | int
Shape = tuple[int, ...]
# A VJP rule: (g, ans, *args, **kwargs) -> the cotangent of one argument.
VJP = Callable[..., "Tensor"]
# A JVP rule: (t, ans, *args, **kwargs) -> what the tangent t of one argument adds to the output's.
JVP = Callable[..., "Tensor"]


class Tensor:
    """A numpy array that remembers how it was computed.

    `data` is the array; `grad` is None or a Tensor of the same shape; `requires_grad` says
    whether gradients flow to (or through) this tensor. `_op`, `_parents` and `_kwargs` record the
    primitive that produced it; a leaf has no `_op`.

    Data that is not floating point becomes float64, unless `dtype` asks otherwise (class labels
    stay int64 with `dtype=np.int64`).
    """

    # Make numpy hand `array + tensor` to Tensor.__radd__ instead of looping over the tensor.
    __array_ufunc__ = None

    def __init__(
        self, data: ArrayLike, requires_grad: bool = False, dtype: np.dtype | type | None = None
    ) -> None:
        array = np.asarray(data.data if isinstance(data, Tensor) else data, dtype=dtype)
        if dtype is None and array.dtype.kind != "f":  # not a floating dtype
            array = array.astype(np.float64)
        self.data: np.ndarray = array
        self.grad: Tensor | None = None
        self.requires_grad = requires_grad
        self._op: str | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._kwargs: dict[str, Any] = {}

    # ------------------------------------------------------------ array-like properties

    @property
    def shape(self) -> Shape:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def T(self) -> Tensor:
        return _apply("transpose", self)

    def item(self) -> float:
        return float(self.data.item())

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> Tensor:
        """The same values, cut off from the graph."""
        return Tensor(self.data, dtype=self.dtype)

    def __repr__(self) -> str:
        flags = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._op}" if self._op else ""
        return f"Tensor({np.array2string(self.data, precision=6)}{flags}{op})"

    # ------------------------------------------------------------ gradients

    def backward(self, grad: ArrayLike | None = None, create_graph: bool = False) -> None:
        """Add d self / d leaf to every leaf's `.grad` (torch semantics: it accumulates).

        `grad` is the cotangent to start from; it may be omitted only for a one-element tensor.
        With `create_graph=True` the gradients are themselves differentiable.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        cotangents = _backprop(self, _seed(self, grad), create_graph)
        with _recording(create_graph):
            for node, g in cotangents.values():
                if node._op is None and node.grad is None:
                    # A rule may pass its cotangent on unchanged (add); give each leaf its own array.
                    node.grad = g if create_graph else Tensor(g.data.copy())
                elif node._op is None:
                    node.grad = node.grad + g

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------ operators

    def __add__(self, other: ArrayLike) -> Tensor:
        return _apply("add", self, other)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _apply("add", other, self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return _apply("sub", self, other)

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _apply("sub", other, self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return _apply("mul", self, other)

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _apply("mul", other, self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return _apply("div", self, other)

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _apply("div", other, self)

    def __pow__(self, other: ArrayLike) -> Tensor:
        return _apply("pow", self, other)

    def __rpow__(self, other: ArrayLike) -> Tensor:
        return _apply("pow", other, self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return _apply("matmul", self, other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _apply("matmul", other, self)

    def __neg__(self) -> Tensor:
        return _apply("neg", self)

    def __abs__(self) -> Tensor:
        return _apply("abs", self)

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return _apply("sum", self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return _apply("mean", self, axis=axis, keepdims=keepdims)

    def transpose(self, axes: Sequence[int] | None = None) -> Tensor:
        return _apply("transpose", self, axes=axes)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return _apply("max", self, axis=axis, keepdims=keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return _apply("min", self, axis=axis, keepdims=keepdims)


# ================================================================ recording the graph

_RECORDING = True


@contextmanager
def _recording(enabled: bool) -> Iterator[None]:
    global _RECORDING
    saved, _RECORDING = _RECORDING, enabled
    try:
        yield
    finally:
        _RECORDING = saved


def no_grad() -> AbstractContextManager[None]:
    """`with no_grad(): ...` computes values without recording a graph."""
    return _recording(False)


VJPS: dict[str, tuple[VJP, ...]] = {}  # op name -> one VJP rule per argument
JVPS: dict[str, tuple[JVP, ...]] = {}  # op name -> one JVP rule per argument (forward mode)
# Zero derivative wherever it exists: their outputs are constants.
NONDIFFERENTIABLE: frozenset[str] = frozenset(
    {"sign", "step", "detach", "floor", "ceil", "round", "lt", "le", "gt", "ge", "eq", "ne"}
)
PRIMITIVES: dict[str, Callable[..., Tensor]] = {}


def primitive(name: str, forward: Callable[..., np.ndarray]) -> Callable[..., Tensor]:
    """Turn a numpy function into a Tensor op that records itself in the graph.

    Positional arguments are tensors (plain numbers and arrays become constants); keyword-only
    arguments (axis, keepdims, ...) are static and are handed to the VJP rules as recorded.
    """
    # The keyword-only defaults of a Python forward function (axis=None, ...), so that the rules
    # always receive every keyword. numpy ufuncs take no static keywords here.
    params = inspect.signature(forward).parameters.values() if inspect.isfunction(forward) else ()
    defaults = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}

    def op(*args: ArrayLike, **kwargs: Any) -> Tensor:
        tensors = as_tensors(args)
        result = np.asarray(forward(*_numbers(tensors), **kwargs))
        out = Tensor(result, dtype=result.dtype)  # numpy's dtype: integer labels moved around stay integers
        if _RECORDING and name not in NONDIFFERENTIABLE and builtins.any(t.requires_grad for t in tensors):
            out.requires_grad = True
            out._op, out._parents, out._kwargs = name, tensors, {**defaults, **kwargs}
        return out

    op.__name__ = op.__qualname__ = name
    op.__doc__ = forward.__doc__
    PRIMITIVES[name] = op
    return op


def _apply(name: str, *args: ArrayLike, **kwargs: Any) -> Tensor:
    """The primitive `name` of the rule table (rules.py) applied to `args`: how a Tensor's operators
    reach the rules without this module importing them. A missing rule fails loudly."""
    op = PRIMITIVES.get(name)
    if op is None:
        raise NotImplementedError(
            f"autograd has no rule for '{name}': the rules are in symcheck/engines/autograd/rules.py "
            "(import symcheck.engines.autograd, which loads them)"
        )
    return op(*args, **kwargs)


def _rules(table: dict[str, Any], node: Tensor) -> Sequence[Callable[..., Tensor]]:
    """A node's rules, one per parent: a variadic op (einsum) has one rule taking the argument's
    position first."""
    rules = table[node._op]  # type: ignore[index]
    if callable(rules):
        return [functools.partial(rules, i) for i in range(len(node._parents))]
    return rules


def defvjp(op: Callable[..., Tensor], *rules: VJP) -> None:
    """Record the VJP rules of `op`, one per positional argument, in the table `VJPS`."""
    VJPS[op.__name__] = rules


def defjvp(op: Callable[..., Tensor], *rules: JVP) -> None:
    """Record the JVP rules of `op` (forward mode), one per positional argument, in `JVPS`."""
    JVPS[op.__name__] = rules


def defvjp_variadic(
    op: Callable[..., Tensor], vjp: Callable[..., Tensor], jvp: Callable[..., Tensor]
) -> None:
    """The rules of an op with any number of arguments: vjp(i, g, ans, *args, **kwargs) is the
    cotangent of argument i, jvp(i, t, ans, *args, **kwargs) what its tangent adds."""
    VJPS[op.__name__] = vjp  # type: ignore[assignment]
    JVPS[op.__name__] = jvp  # type: ignore[assignment]


_FLOAT64 = np.dtype(np.float64)


def _float_dtype(args: Sequence[ArrayLike]) -> np.dtype:
    """The dtype of the first floating-point tensor among `args`; float64 if there is none."""
    # dtype.kind "f" is np.issubdtype(dtype, np.floating), at a fiftieth of the cost (every op asks)
    floats = (a.dtype for a in args if isinstance(a, Tensor) and a.dtype.kind == "f")
    return next(floats, _FLOAT64)


def as_tensors(args: Sequence[ArrayLike]) -> tuple[Tensor, ...]:
    """Wrap constants as tensors. A bare Python number takes the dtype of the float tensor arguments
    (like numpy's weak scalars), so `x * 2` and `x * 0.5` stay float32 when x is float32."""
    dtype = _float_dtype(args)
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        else:
            array = np.asarray(a)
            weak = type(a) in (int, float) or array.dtype.kind != "f"
            out.append(Tensor(array.astype(dtype) if weak else array))
    return tuple(out)


def _numbers(tensors: Sequence[Tensor]) -> tuple[np.ndarray, ...]:
    """The arrays an op computes with: a bool (a comparison's result) becomes 0/1 in the float dtype
    of the other arguments; integers (labels, indices) stay integers."""
    if not builtins.any(t.data.dtype.kind == "b" for t in tensors):
        return tuple(t.data for t in tensors)
    dtype = _float_dtype(tensors)
    return tuple(t.data.astype(dtype) if t.dtype == np.bool_ else t.data for t in tensors)


# ================================================================ back-propagation


def _toposort(root: Tensor) -> list[Tensor]:
    """Every tensor that requires grad and feeds `root`, each after all of its parents.

    Iterative depth-first search, so that long chains do not hit Python's recursion limit.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in seen)
    return order


def _backprop(root: Tensor, seed: Tensor, create_graph: bool) -> dict[int, tuple[Tensor, Tensor]]:
    """The cotangent d root / d node (contracted with `seed`) of every node that feeds `root`.

    Returns {id(node): (node, cotangent)}. With `create_graph=False` the rules run unrecorded and
    the cotangents are constants.
    """
    cotangents: dict[int, tuple[Tensor, Tensor]] = {id(root): (root, seed)}
    with _recording(create_graph):
        for node in reversed(_toposort(root)):
            if node._op is None:
                continue
            g = cotangents[id(node)][1]
            for rule, parent in zip(_rules(VJPS, node), node._parents, strict=True):
                if not parent.requires_grad:
                    continue
                contribution = rule(g, node, *node._parents, **node._kwargs)
                if id(parent) in cotangents:
                    contribution = cotangents[id(parent)][1] + contribution
                cotangents[id(parent)] = (parent, contribution)
    return cotangents


def _seed(output: Tensor, grad: ArrayLike | None) -> Tensor:
    if grad is None:
        if output.size != 1:
            raise RuntimeError(f"grad can be omitted only for a one-element output, not shape {output.shape}")
        return Tensor(np.ones_like(output.data))
    seed = grad if isinstance(grad, Tensor) else Tensor(np.asarray(grad, dtype=output.dtype))
    if seed.shape != output.shape:
        raise ValueError(f"grad has shape {seed.shape}, output has shape {output.shape}")
    return seed


def grad(
    output: Tensor,
    inputs: Sequence[Tensor],
    grad_output: ArrayLike | None = None,
    create_graph: bool = False,
) -> list[Tensor]:
    """d output / d input for each input, without touching any `.grad` (like torch.autograd.grad).

    An input that does not influence `output` gets zeros. With `create_graph=True` the results
    are differentiable Tensors: call `grad` on them again for second derivatives.
    """
    if not output.requires_grad:
        cotangents: dict[int, tuple[Tensor, Tensor]] = {}
    else:
        cotangents = _backprop(output, _seed(output, grad_output), create_graph)
    return [cotangents[id(x)][1] if id(x) in cotangents else Tensor(np.zeros_like(x.data)) for x in inputs]


# ================================================================ forward mode


def jvp(output: Tensor, inputs: Sequence[Tensor], tangents: Sequence[ArrayLike]) -> Tensor:
    """J v: how `output` moves when each input moves along its tangent (forward mode).

    The graph recorded when `output` was computed is walked forward, parents before children; each
    op's JVP rules (table `JVPS`) turn the tangents of its arguments into the tangent of its result:

        mul:  z = x * y      ż = ẋ * y + x * ẏ
        exp:  z = exp(x)     ż = ẋ * ans

    It is independent of the VJP rules, so reverse and forward mode check each other:
    u^T (J v) = (J^T u)^T v for any u and v.
    """
    tangent: dict[int, Tensor] = {}
    for x, t in zip(inputs, tangents, strict=True):
        tangent[id(x)] = t if isinstance(t, Tensor) else Tensor(np.asarray(t, dtype=x.dtype))
    if not output.requires_grad:
        return Tensor(np.zeros_like(output.data))
    with _recording(False):
        for node in _toposort(output):
            if node._op is None:
                continue  # a leaf: its tangent is given, or it has none
            if node._op not in JVPS:
                raise NotImplementedError(f"autograd has no forward-mode (JVP) rule for '{node._op}'")
            rules = _rules(JVPS, node)
            total: Tensor | None = None
            for rule, parent in zip(rules, node._parents, strict=True):
                t = tangent.get(id(parent))
                if t is None:
                    continue
                part = rule(t, node, *node._parents, **node._kwargs)
                total = part if total is None else total + part
            if total is not None:
                if total.shape != node.shape:  # a broadcast argument: its tangent broadcasts too
                    total = _apply("broadcast_to", total, shape=node.shape)
                tangent[id(node)] = total
    found = tangent.get(id(output))
    return found if found is not None else Tensor(np.zeros_like(output.data))
