"""A small reverse-mode autograd on numpy arrays, written to be read.

How it works, in four ideas:

1. A `Tensor` wraps a numpy array. Every op applied to tensors that require gradients records
   the op's name, its argument tensors (the *parents*) and its keyword arguments. That record is
   the computation graph; nothing else is stored.

2. Each primitive op has one *vector-Jacobian product* (VJP) rule per argument, in the table
   `VJPS` below. A rule takes the cotangent `g` of the op's output (d loss / d output), the output
   `ans` itself and the op's arguments, and returns the cotangent of that argument:

       add:  z = x + y      x̄ = unbroadcast(g, x.shape)      ȳ = unbroadcast(g, y.shape)
       exp:  z = exp(x)     x̄ = g * ans

3. `backward()` visits the graph in reverse topological order, calling the rules and summing the
   cotangents that reach each tensor. Leaves (tensors made by the user) collect theirs in `.grad`,
   adding to whatever is already there, exactly like torch; call `zero_grad()` between steps.

4. The rules are written with Tensor operations, not raw numpy. Ordinarily they run with graph
   recording switched off; with `create_graph=True` they are recorded like any other computation,
   so a gradient is itself a differentiable Tensor and second derivatives come for free.

Broadcasting: every binary op follows numpy's broadcasting; the adjoint of broadcasting is
summing, done in one place, `unbroadcast`.

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
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

ArrayLike = Any  # Tensor | np.ndarray | float | int
Shape = tuple[int, ...]
# A VJP rule: (g, ans, *args, **kwargs) -> the cotangent of one argument.
VJP = Callable[..., "Tensor"]


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
        if dtype is None and not np.issubdtype(array.dtype, np.floating):
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
        return transpose(self)

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
        return add(self, other)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return add(other, self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return sub(self, other)

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return sub(other, self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return mul(self, other)

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return mul(other, self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return div(self, other)

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return div(other, self)

    def __pow__(self, other: ArrayLike) -> Tensor:
        return pow(self, other)

    def __rpow__(self, other: ArrayLike) -> Tensor:
        return pow(other, self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return matmul(other, self)

    def __neg__(self) -> Tensor:
        return neg(self)

    def __abs__(self) -> Tensor:
        return abs(self)

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return mean(self, axis=axis, keepdims=keepdims)

    def transpose(self, axes: Sequence[int] | None = None) -> Tensor:
        return transpose(self, axes=axes)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return max(self, axis=axis, keepdims=keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return min(self, axis=axis, keepdims=keepdims)


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
# Zero derivative wherever it exists: their outputs are constants.
NONDIFFERENTIABLE: frozenset[str] = frozenset({"sign", "step", "lt", "le", "gt", "ge", "eq", "ne"})
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
        tensors = _as_tensors(args)
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


def defvjp(op: Callable[..., Tensor], *rules: VJP) -> None:
    """Record the VJP rules of `op`, one per positional argument, in the table `VJPS`."""
    VJPS[op.__name__] = rules


def _float_dtype(args: Sequence[ArrayLike]) -> np.dtype:
    """The dtype of the first floating-point tensor among `args`; float64 if there is none."""
    floats = (a.dtype for a in args if isinstance(a, Tensor) and np.issubdtype(a.dtype, np.floating))
    return next(floats, np.dtype(np.float64))


def _as_tensors(args: Sequence[ArrayLike]) -> tuple[Tensor, ...]:
    """Wrap constants as tensors. A bare Python number takes the dtype of the float tensor arguments
    (like numpy's weak scalars), so `x * 2` and `x * 0.5` stay float32 when x is float32."""
    dtype = _float_dtype(args)
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        else:
            array = np.asarray(a)
            weak = type(a) in (int, float) or not np.issubdtype(array.dtype, np.floating)
            out.append(Tensor(array.astype(dtype) if weak else array))
    return tuple(out)


def _numbers(tensors: Sequence[Tensor]) -> tuple[np.ndarray, ...]:
    """The arrays an op computes with: a bool (a comparison's result) becomes 0/1 in the float dtype
    of the other arguments; integers (labels, indices) stay integers."""
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
            for rule, parent in zip(VJPS[node._op], node._parents, strict=True):
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


# ================================================================ broadcasting and its adjoint


def unbroadcast(g: Tensor, shape: Shape) -> Tensor:
    """Sum the cotangent `g` down to `shape`: the adjoint of numpy broadcasting.

    Broadcasting copies x along the axes numpy prepends and along the size-1 axes it stretches;
    each copy's cotangent flows back to the same element of x, so they are added up.
    """
    if g.shape == shape:
        return g
    prepended = g.ndim - len(shape)
    if prepended:
        g = sum(g, axis=tuple(range(prepended)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = sum(g, axis=stretched, keepdims=True)
    return g


def _reduced_axes(ndim: int, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(int(a) % ndim for a in axes))


def _unreduce(g: Tensor, shape: Shape, axis: int | Sequence[int] | None, keepdims: bool) -> Tensor:
    """Give `g` back the axes a reduction removed, then copy it along them: the adjoint of sum."""
    if not keepdims:
        for a in _reduced_axes(len(shape), axis):  # ascending, so each lands at its final position
            g = expand_dims(g, axis=a)
    return broadcast_to(g, shape=shape)


# ================================================================ primitives and their VJPs
#
# Each primitive is a numpy function made into a Tensor op; the `defvjp` line below it gives,
# for each argument in order, the cotangent of that argument as a function of
#   g    the cotangent of the output,
#   ans  the output,
#   the arguments (x, y, ...) and the op's keyword arguments.
# Every rule uses Tensor ops only, so that rules can be differentiated again.

# ---------------------------------------------------------------- arithmetic

add = primitive("add", np.add)
defvjp(add, lambda g, ans, x, y: unbroadcast(g, x.shape),
            lambda g, ans, x, y: unbroadcast(g, y.shape))  # fmt: skip

sub = primitive("sub", np.subtract)
defvjp(sub, lambda g, ans, x, y: unbroadcast(g, x.shape),
            lambda g, ans, x, y: unbroadcast(-g, y.shape))  # fmt: skip

mul = primitive("mul", np.multiply)
defvjp(mul, lambda g, ans, x, y: unbroadcast(g * y, x.shape),
            lambda g, ans, x, y: unbroadcast(g * x, y.shape))  # fmt: skip

div = primitive("div", np.divide)
defvjp(div, lambda g, ans, x, y: unbroadcast(g / y, x.shape),
            lambda g, ans, x, y: unbroadcast(-g * x / y**2, y.shape))  # fmt: skip

# d/dx x^y = y x^(y-1). Where y == 0 the exponent is nudged to 0 so that 0^-1 = inf never meets
# the factor y = 0 (that would be nan); the term is zero there either way.
pow = primitive("pow", np.power)
defvjp(pow, lambda g, ans, x, y: unbroadcast(g * y * x ** (y - 1 + (y.data == 0)), x.shape),
            lambda g, ans, x, y: unbroadcast(g * ans * log(x), y.shape))  # fmt: skip

neg = primitive("neg", np.negative)
defvjp(neg, lambda g, ans, x: -g)

# ---------------------------------------------------------------- elementwise functions

exp = primitive("exp", np.exp)
defvjp(exp, lambda g, ans, x: g * ans)

log = primitive("log", np.log)
defvjp(log, lambda g, ans, x: g / x)

sqrt = primitive("sqrt", np.sqrt)
defvjp(sqrt, lambda g, ans, x: g / (2 * ans))

sin = primitive("sin", np.sin)
defvjp(sin, lambda g, ans, x: g * cos(x))

cos = primitive("cos", np.cos)
defvjp(cos, lambda g, ans, x: -g * sin(x))

tan = primitive("tan", np.tan)
defvjp(tan, lambda g, ans, x: g / cos(x) ** 2)

tanh = primitive("tanh", np.tanh)
defvjp(tanh, lambda g, ans, x: g * (1 - ans**2))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), as e^-log(1 + e^-x): no overflow for any x, accurate in both tails."""
    return np.exp(-np.logaddexp(0, -x))


sigmoid = primitive("sigmoid", _sigmoid)
defvjp(sigmoid, lambda g, ans, x: g * ans * (1 - ans))


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), computed as logaddexp(0, x) so that large x does not overflow."""
    return np.logaddexp(0, x)


softplus = primitive("softplus", _softplus)
defvjp(softplus, lambda g, ans, x: g * sigmoid(x))

relu = primitive("relu", lambda x: np.maximum(x, 0))
defvjp(relu, lambda g, ans, x: g * step(x))  # step(0) = 0: relu'(0) = 0, as in torch

abs = primitive("abs", np.abs)
defvjp(abs, lambda g, ans, x: g * sign(x))  # sign(0) = 0: abs'(0) = 0, as in torch

# ---------------------------------------------------------------- non-differentiable
# Piecewise constant: the derivative is 0 wherever it exists. Their outputs are constants (see
# NONDIFFERENTIABLE), so no rule is ever called; the zero rules are here to make that explicit.

sign = primitive("sign", np.sign)
defvjp(sign, lambda g, ans, x: 0 * g)

step = primitive("step", lambda x: (x > 0).astype(x.dtype))
defvjp(step, lambda g, ans, x: 0 * g)


def _no_gradient(arg: int) -> VJP:
    """The rule of an argument nothing flows back to: zeros of its shape (never 0 * g, which is nan
    where g is infinite)."""
    return lambda g, ans, *args, **kwargs: Tensor(np.zeros(args[arg].shape, dtype=g.dtype))


# Comparisons give bools; an op that meets one reads it as 0/1 (see `_numbers`).
lt = primitive("lt", np.less)
defvjp(lt, _no_gradient(0), _no_gradient(1))

le = primitive("le", np.less_equal)
defvjp(le, _no_gradient(0), _no_gradient(1))

gt = primitive("gt", np.greater)
defvjp(gt, _no_gradient(0), _no_gradient(1))

ge = primitive("ge", np.greater_equal)
defvjp(ge, _no_gradient(0), _no_gradient(1))

eq = primitive("eq", np.equal)
defvjp(eq, _no_gradient(0), _no_gradient(1))

ne = primitive("ne", np.not_equal)
defvjp(ne, _no_gradient(0), _no_gradient(1))

# ---------------------------------------------------------------- piecewise: selection and clamping
# Each picks, element by element, one of its inputs (or a bound); g flows to what was picked. The
# masks are comparisons, constants, so the rules stay differentiable in g for second derivatives.

# cond is a bool, or a number that counts as true where nonzero; it gets no gradient.
where = primitive("where", lambda cond, a, b: np.where(cond != 0, a, b))
defvjp(where, _no_gradient(0),
              lambda g, ans, cond, a, b: unbroadcast(where(cond, g, 0), a.shape),
              lambda g, ans, cond, a, b: unbroadcast(where(cond, 0, g), b.shape))  # fmt: skip

# At a tie a == b each side gets half of g, as in torch. (g comes first in each product, so the
# masks take g's dtype: float32 stays float32.)
maximum = primitive("maximum", np.maximum)
defvjp(maximum, lambda g, ans, a, b: unbroadcast(g * gt(a, b) + 0.5 * g * eq(a, b), a.shape),
                lambda g, ans, a, b: unbroadcast(g * lt(a, b) + 0.5 * g * eq(a, b), b.shape))  # fmt: skip

minimum = primitive("minimum", np.minimum)
defvjp(minimum, lambda g, ans, a, b: unbroadcast(g * lt(a, b) + 0.5 * g * eq(a, b), a.shape),
                lambda g, ans, a, b: unbroadcast(g * gt(a, b) + 0.5 * g * eq(a, b), b.shape))  # fmt: skip


def _clamp(x: np.ndarray, *, min: float | None = None, max: float | None = None) -> np.ndarray:
    """x limited to [min, max]; a bound of None is no bound. When min > max every element becomes
    max, as in torch."""
    if min is not None:
        x = np.maximum(x, min)
    if max is not None:
        x = np.minimum(x, max)
    return x


# Slope 1 on [min, max], bounds included (as torch), 0 outside; a missing bound is infinite.
clamp = primitive("clamp", _clamp)
defvjp(clamp, lambda g, ans, x, *, min, max:
       g * ge(x, -np.inf if min is None else min) * le(x, np.inf if max is None else max))  # fmt: skip

# ---------------------------------------------------------------- reductions and broadcasting
# sum adds copies together and its rule copies g back out; broadcast_to makes copies and its
# rule adds their cotangents together: each is the other's adjoint.


def _sum(x: np.ndarray, *, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.sum(x, axis=None if axis is None else _reduced_axes(x.ndim, axis), keepdims=keepdims)


def _mean(x: np.ndarray, *, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.mean(x, axis=None if axis is None else _reduced_axes(x.ndim, axis), keepdims=keepdims)


sum = primitive("sum", _sum)
defvjp(sum, lambda g, ans, x, *, axis, keepdims: _unreduce(g, x.shape, axis, keepdims))

mean = primitive("mean", _mean)
defvjp(mean, lambda g, ans, x, *, axis, keepdims: _unreduce(g, x.shape, axis, keepdims) / (x.size / ans.size))

broadcast_to = primitive("broadcast_to", lambda x, *, shape: np.broadcast_to(x, shape).copy())
defvjp(broadcast_to, lambda g, ans, x, *, shape: unbroadcast(g, x.shape))

# ---------------------------------------------------------------- max and min
# Reductions like sum, but g goes back only to the elements equal to the result; tied elements
# share it evenly (torch.amax/amin), so the cotangents still add up to g.


def _max(x: np.ndarray, *, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.max(x, axis=None if axis is None else _reduced_axes(x.ndim, axis), keepdims=keepdims)


def _min(x: np.ndarray, *, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.min(x, axis=None if axis is None else _reduced_axes(x.ndim, axis), keepdims=keepdims)


def _extremum_vjp(
    g: Tensor, ans: Tensor, x: Tensor, *, axis: int | Sequence[int] | None, keepdims: bool
) -> Tensor:
    ties = eq(x, _unreduce(ans, x.shape, axis, keepdims))
    count = _unreduce(sum(ties, axis=axis, keepdims=keepdims), x.shape, axis, keepdims)
    return _unreduce(g, x.shape, axis, keepdims) * ties / count


max = primitive("max", _max)
defvjp(max, _extremum_vjp)

min = primitive("min", _min)
defvjp(min, _extremum_vjp)

# ---------------------------------------------------------------- logsumexp and softmax
# logsumexp is a reduction like sum: its rule spreads g (and ans) back with `_unreduce`.
# softmax and log_softmax act along one axis; their rules sum along it with keepdims, so that the
# sums broadcast back against it. With s = softmax(x), ds_i/dx_j = s_i (δ_ij - s_j), and
# log_softmax(x) = x - logsumexp(x) has the Jacobian δ_ij - s_j, where s = exp(ans).


def _logsumexp(
    x: np.ndarray, *, axis: int | Sequence[int] | None = None, keepdims: bool = False
) -> np.ndarray:
    """log(sum(exp(x))), as m + log(sum(exp(x - m))) with m the maximum: exp never overflows.

    Where the maximum is infinite the shift would give inf - inf = nan; there exp(x) itself is
    harmless (all -inf sums to 0, whose log is -inf; +inf stays +inf), so m is 0.
    """
    axes = None if axis is None else _reduced_axes(x.ndim, axis)
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axes)


# d/dx_i log Σ_j e^(x_j) = e^(x_i) / Σ_j e^(x_j) = exp(x_i - ans), the softmax of x.
logsumexp = primitive("logsumexp", _logsumexp)
defvjp(logsumexp, lambda g, ans, x, *, axis, keepdims:
       _unreduce(g, x.shape, axis, keepdims) * exp(x - _unreduce(ans, x.shape, axis, keepdims)))  # fmt: skip


def _softmax(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)), shifted by the maximum first so that exp never overflows."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x) along axis: stable, and exact in the tails where log(softmax) gives -inf."""
    return x - _logsumexp(x, axis=axis, keepdims=True)


softmax = primitive("softmax", _softmax)
defvjp(softmax, lambda g, ans, x, *, axis: ans * (g - sum(g * ans, axis=axis, keepdims=True)))

log_softmax = primitive("log_softmax", _log_softmax)
defvjp(log_softmax, lambda g, ans, x, *, axis: g - exp(ans) * sum(g, axis=axis, keepdims=True))

# ---------------------------------------------------------------- shape


def _inverse(ndim: int, axes: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if axes is None else tuple(int(i) for i in np.argsort([a % ndim for a in axes]))


transpose = primitive("transpose", lambda x, *, axes=None: np.transpose(x, axes))
defvjp(transpose, lambda g, ans, x, *, axes: transpose(g, axes=_inverse(x.ndim, axes)))

expand_dims = primitive("expand_dims", lambda x, *, axis=0: np.expand_dims(x, axis))
defvjp(expand_dims, lambda g, ans, x, *, axis: sum(g, axis=axis))

# ---------------------------------------------------------------- indexing along the first axis
# index reads one row, x[at]; take reads the rows y (an int tensor, a scalar or 1-D), x[y]. Their
# adjoint, index_add, puts g's rows back where they were read, adding where a row was read twice.
# An index out of [-n, n) reads a row of nan, so that an engine comparison reports it (torch
# would raise), and index_add drops it.


def _in_range(y: np.ndarray, n: int) -> np.ndarray:
    return (y >= -n) & (y < n)


def _take(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"take needs integer indices, got {y.dtype}")
    ok = _in_range(y, len(x))
    if ok.all():
        return x[y]
    out = np.array(x[np.where(ok, y, 0)], dtype=x.dtype if np.issubdtype(x.dtype, np.floating) else float)
    out[~ok] = np.nan
    return out


def _index_add(h: np.ndarray, y: np.ndarray, *, n: int) -> np.ndarray:
    """Zeros of shape (n, ...) with the rows of h added at the positions y (np.add.at, so a
    position named twice gets both)."""
    out = np.zeros((n, *h.shape[y.ndim :]), dtype=h.dtype)
    ok = _in_range(y, n)
    np.add.at(out, y[ok], h[ok])
    return out


def _position(at: int) -> Tensor:
    return Tensor(at, dtype=np.int64)


index = primitive("index", lambda x, *, at: x[at])
defvjp(index, lambda g, ans, x, *, at: index_add(g, _position(at), n=x.shape[0]))

_take_rows = primitive("take", _take)
defvjp(_take_rows, lambda g, ans, x, y: index_add(g, y, n=x.shape[0]), _no_gradient(1))

index_add = primitive("index_add", _index_add)
defvjp(index_add, lambda g, ans, h, y, *, n: take(g, y), _no_gradient(1))


def take(x: ArrayLike, y: ArrayLike) -> Tensor:
    """x[y] along the first axis, for integer indices y (a scalar or 1-D): y's shape, then x's
    other axes. Indices given as a list or number stay integers."""
    return _take_rows(x, y if isinstance(y, Tensor) else Tensor(y, dtype=np.asarray(y).dtype))


# ---------------------------------------------------------------- linear algebra
# numpy semantics for 1-D and 2-D operands: a 1-D left operand is a row, a 1-D right operand a
# column, and the added axis is dropped from the result. The rules, case by case:
#   (m,k) @ (k,n):  ā = g @ b.T          b̄ = a.T @ g
#   (k,)  @ (k,n):  ā = g @ b.T          b̄ = outer(a, g)
#   (m,k) @ (k,):   ā = outer(g, b)      b̄ = a.T @ g
#   (k,)  @ (k,):   ā = g * b            b̄ = g * a        (g is a scalar)


def _matmul_vjp_a(g: Tensor, ans: Tensor, a: Tensor, b: Tensor) -> Tensor:
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    return outer(g, b) if b.ndim == 1 else g @ b.T


def _matmul_vjp_b(g: Tensor, ans: Tensor, a: Tensor, b: Tensor) -> Tensor:
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    return outer(a, g) if a.ndim == 1 else a.T @ g


matmul = primitive("matmul", np.matmul)
defvjp(matmul, _matmul_vjp_a, _matmul_vjp_b)

# d/dA_ij Σ_k A_kk = δ_ij: the cotangent is g on the diagonal.
trace = primitive("trace", np.trace)
defvjp(trace, lambda g, ans, A: g * np.eye(A.shape[0], dtype=A.dtype))


def _vectors(op: str, a: ArrayLike, b: ArrayLike) -> tuple[Tensor, Tensor]:
    a, b = _as_tensors((a, b))
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{op} takes 1-D tensors, got shapes {a.shape} and {b.shape}")
    return a, b


# outer and dot are written as the products and sums they are; those ops' rules differentiate them.


def outer(a: ArrayLike, b: ArrayLike) -> Tensor:
    """The matrix a[i] * b[j], for 1-D a and b."""
    a, b = _vectors("outer", a, b)
    return expand_dims(a, axis=1) * b


def dot(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Σ_i a[i] * b[i], for 1-D a and b of equal length."""
    a, b = _vectors("dot", a, b)
    return sum(a * b)


# ---------------------------------------------------------------- losses
# Written in the ops above, as the formulas read; their derivatives follow from those rules.


def mse_loss(a: ArrayLike, b: ArrayLike, *, reduction: str = "mean") -> Tensor:
    """The mean (or sum) of (a - b)^2 over the broadcast shape."""
    squared = sub(a, b) ** 2
    return _reduce(sum(squared), reduction, count=squared.size)


def onehot(y: ArrayLike, *, num_classes: int) -> Tensor:
    """A float matrix with a new last axis of size num_classes: 1 at each label's index, else 0.

    A constant: labels are not differentiable, so nothing is recorded. A label that is not a
    class index (out of range, or not a whole number) gets a row of nan, so that an engine
    comparison reports it instead of silently dropping the example.
    """
    labels = y.data if isinstance(y, Tensor) else np.asarray(y)
    hot = labels[..., np.newaxis] == np.arange(num_classes)
    return Tensor(np.where(hot.any(axis=-1, keepdims=True), hot.astype(np.float64), np.nan))


def nll_loss(logp: ArrayLike, target: ArrayLike, *, reduction: str = "mean") -> Tensor:
    """-logp[target] for log-probabilities (C,) and a scalar label; for a batch (N, C) with
    labels (N,), the mean (or sum) over i of -logp[i, target[i]].

    The onehot matrix picks logp[i, target[i]] out of each row, so d/dlogp = -onehot / N.
    """
    (logp,) = _as_tensors((logp,))
    if logp.ndim not in (1, 2):
        raise ValueError(f"nll_loss takes log-probabilities (C,) or (N, C), got shape {logp.shape}")
    total = -sum(onehot(target, num_classes=logp.shape[-1]) * logp)
    return _reduce(total, reduction, count=1 if logp.ndim == 1 else logp.shape[0])


def cross_entropy(z: ArrayLike, target: ArrayLike, *, reduction: str = "mean") -> Tensor:
    """nll_loss(log_softmax(z)): scores (C,) with a scalar label, or (N, C) with labels (N,)."""
    return nll_loss(log_softmax(z, axis=-1), target, reduction=reduction)


def _reduce(total: Tensor, reduction: str, count: int) -> Tensor:
    """A loss summed over `count` terms: as it is for "sum", divided by count for "mean"."""
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / count
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


__all__ = [
    "NONDIFFERENTIABLE",
    "PRIMITIVES",
    "VJPS",
    "Tensor",
    "abs",
    "add",
    "broadcast_to",
    "clamp",
    "cos",
    "cross_entropy",
    "defvjp",
    "div",
    "dot",
    "eq",
    "exp",
    "expand_dims",
    "ge",
    "grad",
    "gt",
    "index",
    "index_add",
    "le",
    "log",
    "log_softmax",
    "logsumexp",
    "lt",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mse_loss",
    "mul",
    "ne",
    "neg",
    "nll_loss",
    "no_grad",
    "onehot",
    "outer",
    "pow",
    "primitive",
    "relu",
    "sigmoid",
    "sign",
    "sin",
    "softmax",
    "softplus",
    "sqrt",
    "step",
    "sub",
    "sum",
    "take",
    "tan",
    "tanh",
    "trace",
    "transpose",
    "unbroadcast",
    "where",
]
