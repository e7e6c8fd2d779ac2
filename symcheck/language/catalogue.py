"""The op catalogue: the one list of ops that the parser, shape checker, sampler and every engine
lower from.

An entry says what an op *is* (name, arity, keyword arguments, shape rule, domain, kinks). It
says nothing about derivatives: each engine owns its own rules, written by hand, so that the
engines stay independent witnesses of each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

from symcheck.language.ir import Call, Const, DType, KwValue, Shape, TensorType

# numpy is imported inside the few functions that compute (domains, kinks), so that `symcheck --help`
# and `symcheck ops` never load it.
if TYPE_CHECKING:
    import numpy as np


class OpKind(str, Enum):
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    MATMUL = "matmul"
    SHAPE = "shape"
    TENSOR = "tensor"  # anything else that is not elementwise (softmax, outer, losses): its own shape rule


class ShapeError(Exception):
    """Raised by a shape rule; `arg` is the index of the offending argument (None: the call)."""

    def __init__(self, message: str, arg: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.arg = arg
        self.hint = hint


@dataclass(frozen=True)
class Param:
    """A keyword argument. `kind` is one of: axes (int, tuple of ints or None), axis (a new
    axis' position), dim (an existing axis), bool, perm (tuple of ints), shape (tuple of sizes),
    newshape (a shape with at most one -1, reshape's), widths (pad's flat tuple of widths), int,
    count (a positive int), number, choice (one of `choices`, written as a bare word), and the
    parser's own: index (x[k]), slices (x[1:3, ::2], one item per axis)."""

    name: str
    kind: str
    default: KwValue = None
    doc: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Domain:
    """Where an argument must lie for the op (and its derivative) to be defined."""

    arg: int
    text: str
    predicate: Callable[[np.ndarray], np.ndarray]
    # Range to draw an input from when it feeds this argument directly (e.g. log(x)).
    sample_range: tuple[float, float] | None = None
    # Stricter, for random points only: keep them off a pole's slopes (tan near pi/2), where a
    # given point is still valid.
    sample_predicate: Callable[[np.ndarray], np.ndarray] | None = None
    # For matrix domains: how a random input feeding this argument is shaped after it is drawn
    # ("conditioned": x + n*I, invertible with positive determinant; "definite": M M^T / n + I).
    sample_matrix: str | None = None


@dataclass(frozen=True)
class Kink:
    """A point where the op is continuous (or not) but has no derivative, e.g. relu at 0.

    `offset` gives, per element, how far the arguments are from the kink (signed); by default
    args[arg] - at. Ties of maximum(a, b) use a - b. Redraws near a kink change argument `arg`.
    """

    arg: int
    at: float
    text: str
    offset: Callable[[Sequence[np.ndarray]], np.ndarray] | None = field(default=None, repr=False)

    def distance(self, args: Sequence[np.ndarray]) -> np.ndarray:
        import numpy as np

        if self.offset is not None:
            return np.abs(np.asarray(self.offset(args), dtype=np.float64))
        return np.abs(np.asarray(args[self.arg], dtype=np.float64) - self.at)


@dataclass(frozen=True)
class OpSpec:
    name: str
    kind: OpKind
    arity: int
    doc: str
    params: tuple[Param, ...] = ()
    infix: str | None = None
    domain: tuple[Domain, ...] = ()
    kinks: tuple[Kink, ...] = ()
    # False: the op's derivative is zero wherever it exists (sign, step); gradients stop here.
    differentiable: bool = True
    # For ops whose domain depends on the call (pow: on its exponent).
    domain_rule: Callable[[Call], tuple[Domain, ...]] | None = field(default=None, repr=False)
    # OpKind.TENSOR ops: argument types and canonical kwargs to the result type (raise ShapeError).
    shape_rule: Callable[[Sequence[TensorType], dict[str, KwValue]], TensorType] | None = field(
        default=None, repr=False
    )
    # Params that may also be given positionally after the tensor arguments: onehot(y, 3).
    positional: tuple[str, ...] = ()
    # For ops whose kinks depend on the call (clamp: on its bounds).
    kink_rule: Callable[[Call], tuple[Kink, ...]] | None = field(default=None, repr=False)
    result_dtype: DType = DType.FLOAT  # comparisons give BOOL
    # `arity` is the fewest tensor arguments; more may follow (concat(a, b, c), stack(a, b)).
    variadic: bool = False

    def kinks_of(self, call: Call) -> tuple[Kink, ...]:
        return self.kink_rule(call) if self.kink_rule is not None else self.kinks

    def domains(self, call: Call) -> tuple[Domain, ...]:
        return self.domain_rule(call) if self.domain_rule is not None else self.domain

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


# ---------------------------------------------------------------- shape rules


def broadcast_shapes(*shapes: Shape) -> Shape:
    """Numpy broadcasting; raises ShapeError naming the argument that does not fit."""
    ndim = max((len(s) for s in shapes), default=0)
    out: list[int] = []
    for axis in range(-ndim, 0):
        size = 1
        for s in shapes:
            if -axis <= len(s) and s[axis] != 1:
                if size not in (1, s[axis]):
                    raise ShapeError(
                        f"shapes {' and '.join(_fmt(s) for s in shapes)} do not broadcast "
                        f"(axis {axis}: {size} vs {s[axis]})",
                        hint="numpy broadcasting aligns trailing axes; sizes must match or be 1",
                    )
                size = s[axis]
        out.append(size)
    return tuple(out)


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _float(*types: TensorType) -> DType:
    return DType.FLOAT


def _elementwise(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    return TensorType(broadcast_shapes(*(t.shape for t in types)), _float(*types))


def _atan2_cut(args: Sequence[np.ndarray]) -> np.ndarray:
    """How far (y, x) is from atan2's branch cut, the half-line y = 0, x < 0 (inf where x >= 0)."""
    import numpy as np

    y, x = (np.asarray(a, dtype=float) for a in args)
    return np.where(x < 0, y, np.inf)


def _from_integers(args: Sequence[np.ndarray]) -> np.ndarray:
    """How far each element is from the nearest integer (floor's and ceil's jumps), signed."""
    import numpy as np

    x = np.asarray(args[0], dtype=float)
    return x - np.round(x)


def _from_halves(args: Sequence[np.ndarray]) -> np.ndarray:
    """How far each element is from the nearest half-integer (round's jumps), signed."""
    import numpy as np

    x = np.asarray(args[0], dtype=float)
    return x - (np.floor(x) + 0.5)


def _bounded(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """hardtanh's: elementwise, with min <= max (torch refuses the rest)."""
    low, high = kwargs["min"], kwargs["max"]
    if low is not None and high is not None and float(low) > float(high):  # type: ignore[arg-type]
        raise ShapeError(f"min={low:g} is above max={high:g}", hint="give min <= max, e.g. min=-1, max=1")
    return _elementwise(types, kwargs)


def _comparison(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    return TensorType(broadcast_shapes(*(t.shape for t in types)), DType.BOOL)


def _index(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """x[k] for an int literal k: the first axis goes."""
    (t,) = types
    if t.ndim == 0:
        raise ShapeError("a scalar cannot be indexed", arg=0)
    return TensorType(t.shape[1:], t.dtype)


def _take(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """x[y] for an int tensor y (a scalar or 1-D): y's shape, then x's axes after the first."""
    t, index = types
    if t.ndim == 0:
        raise ShapeError("a scalar cannot be indexed", arg=0)
    if index.dtype is not DType.INT:
        raise ShapeError(
            "an index must be an int literal or an int tensor", arg=1, hint="declare it with dtype: int"
        )
    if index.ndim > 1:
        raise ShapeError(f"an index tensor must be a scalar or 1-D, got {_fmt(index.shape)}", arg=1)
    return TensorType(index.shape + t.shape[1:], t.dtype)


def _reduction(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    axes = kwargs.get("axis")
    keep = bool(kwargs.get("keepdims"))
    if axes is None:
        return TensorType(tuple(1 for _ in t.shape) if keep else (), DType.FLOAT)
    shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape) if keep or i not in axes)
    return TensorType(shape, DType.FLOAT)


def _spread(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """var's and std's: a reduction whose N - correction must be positive."""
    n = reduced_count(types[0].shape, kwargs.get("axis"))  # type: ignore[arg-type]
    correction = float(kwargs.get("correction") or 0)  # type: ignore[arg-type]
    if n - correction <= 0:
        raise ShapeError(
            f"N - correction = {n} - {correction:g} is not positive: the variance divides by it",
            hint="reduce over more elements, or give correction=0",
        )
    return _reduction(types, kwargs)


def _one_axis(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """prod's: a reduction over every axis or one (torch.prod takes one dim)."""
    axes = kwargs.get("axis")
    if axes is not None and len(axes) > 1:
        raise ShapeError(
            f"prod reduces over one axis or all, got axis={axes}", hint="prod(prod(x, axis=1), axis=0)"
        )
    return _reduction(types, kwargs)


def _norm(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    if kwargs["p"] == "fro" and kwargs.get("axis") is not None and len(kwargs["axis"]) != 2:
        raise ShapeError("the Frobenius norm is over two axes (or all)", hint="axis=(0, 1), or p=2 over one")
    return _reduction(types, kwargs)


def _scan(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """cumsum's and cumprod's: the shape of the argument."""
    return TensorType(types[0].shape, DType.FLOAT)


def _matmul(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    a, b = types
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            "matmul needs tensors, not scalars",
            arg=0 if a.ndim == 0 else 1,
            hint="use * to scale by a scalar",
        )
    inner_a = a.shape[-1]
    inner_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if inner_a != inner_b:
        raise ShapeError(
            f"matmul shapes {_fmt(a.shape)} @ {_fmt(b.shape)} do not align: {inner_a} != {inner_b}",
            hint="the last axis of the left operand must equal the "
            + (
                "first axis of the right; transpose one with .T?"
                if b.ndim <= 2
                else "second-last axis of the right"
            ),
        )
    return TensorType(matmul_shape(a.shape, b.shape), DType.FLOAT)


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """numpy's (and torch's) matmul: a 1-D left operand is a row, a 1-D right one a column (the
    added axis dropped after), and the axes before the last two broadcast as a batch."""
    try:
        batch = broadcast_shapes(a[:-2], b[:-2])
    except ShapeError as e:
        raise ShapeError(
            f"matmul's batch axes {_fmt(a[:-2])} and {_fmt(b[:-2])} do not broadcast", hint=e.hint
        ) from None
    rows = a[-2:-1] if len(a) >= 2 else ()
    columns = b[-1:] if len(b) >= 2 else ()
    return batch + rows + columns


def _transpose(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    perm = kwargs["axes"]
    return TensorType(tuple(t.shape[i] for i in perm), t.dtype)


def _broadcast_to(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    target = tuple(kwargs["shape"])
    if broadcast_shapes(t.shape, target) != target:
        raise ShapeError(
            f"cannot broadcast shape {_fmt(t.shape)} to {_fmt(target)}",
            arg=0,
            hint="numpy broadcasting aligns trailing axes; sizes must match or be 1",
        )
    return TensorType(target, t.dtype)


def _expand_dims(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    axis = kwargs["axis"]
    return TensorType(t.shape[:axis] + (1,) + t.shape[axis:], t.dtype)


def _reshape(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """The size check and the -1 are settled in canonical_kwargs, which knows the argument."""
    return TensorType(tuple(kwargs["shape"]), types[0].dtype)


def _flatten(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    start, end = kwargs["start_dim"], kwargs["end_dim"]
    if start > end:
        raise ShapeError(
            f"start_dim={start} comes after end_dim={end}", hint="flatten merges start_dim..end_dim"
        )
    merged = 1
    for d in t.shape[start : end + 1]:
        merged *= d
    return TensorType(t.shape[:start] + (merged,) + t.shape[end + 1 :], t.dtype)


def squeezed_axes(shape: Shape, axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The axes squeeze drops: the given (or every) axis of size 1; others stay, as in torch."""
    return tuple(i for i, d in enumerate(shape) if d == 1 and (axes is None or i in axes))


def _squeeze(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    dropped = squeezed_axes(t.shape, kwargs["axis"])
    return TensorType(tuple(d for i, d in enumerate(t.shape) if i not in dropped), t.dtype)


def _same_layout(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """flip's: the argument's shape and dtype."""
    return types[0]


def _matrices(types: Sequence[TensorType], kwargs: dict[str, KwValue], name: str) -> TensorType:
    (t,) = types
    if t.ndim < 2:
        raise ShapeError(f"{name} needs a matrix (2 or more axes), got shape {_fmt(t.shape)}", arg=0)
    return t


def diagonal_length(rows: int, columns: int, offset: int) -> int:
    """How many elements the diagonal `offset` of a rows x columns matrix has (0 where it has none)."""
    return max(0, min(rows, columns - offset) if offset >= 0 else min(rows + offset, columns))


def _diagonal(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    t = _matrices(types, kwargs, "diagonal")
    n = diagonal_length(t.shape[0], t.shape[1], kwargs["offset"])
    if n == 0:
        raise ShapeError(
            f"a {t.shape[0]} x {t.shape[1]} matrix has no diagonal at offset {kwargs['offset']}", arg=0
        )
    return TensorType(t.shape[2:] + (n,), t.dtype)


def _undiagonal(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (g,) = types
    shape, offset = tuple(kwargs["shape"]), kwargs["offset"]
    if len(shape) < 2:
        raise ShapeError(f"undiagonal needs shape= of a matrix (2 or more axes), got {_fmt(shape)}")
    want = shape[2:] + (diagonal_length(shape[0], shape[1], offset),)
    if g.shape != want:
        raise ShapeError(
            f"the diagonal at offset {offset} of shape {_fmt(shape)} has shape {_fmt(want)}, "
            f"got {_fmt(g.shape)}",
            arg=0,
        )
    return TensorType(shape, g.dtype)


def _joined_dtype(types: Sequence[TensorType]) -> DType:
    dtypes = {t.dtype for t in types}
    return dtypes.pop() if len(dtypes) == 1 else DType.FLOAT


def _concat(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    axis = kwargs["axis"]
    first = types[0]
    for i, t in enumerate(types[1:], start=1):
        if t.ndim != first.ndim or any(
            a != b for k, (a, b) in enumerate(zip(t.shape, first.shape, strict=True)) if k != axis
        ):
            raise ShapeError(
                f"concat along axis {axis}: argument {i + 1} has shape {_fmt(t.shape)}, argument 1 "
                f"{_fmt(first.shape)}",
                arg=i,
                hint="every axis but the joined one must match",
            )
    total = sum(t.shape[axis] for t in types)
    return TensorType(first.shape[:axis] + (total,) + first.shape[axis + 1 :], _joined_dtype(types))


def _stack(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    first = types[0]
    for i, t in enumerate(types[1:], start=1):
        if t.shape != first.shape:
            raise ShapeError(
                f"stack needs equal shapes: argument {i + 1} has {_fmt(t.shape)}, "
                f"argument 1 {_fmt(first.shape)}",
                arg=i,
            )
    axis = kwargs["axis"]
    return TensorType(first.shape[:axis] + (len(types),) + first.shape[axis:], _joined_dtype(types))


def pad_pairs(widths: tuple[int, ...], ndim: int) -> list[tuple[int, int]]:
    """torch's flat pad widths (last axis first: left, right, then the axis before) as one
    (before, after) pair per axis, in axis order."""
    pairs = [(0, 0)] * ndim
    for k in range(len(widths) // 2):
        pairs[ndim - 1 - k] = (widths[2 * k], widths[2 * k + 1])
    return pairs


def _pad(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    widths = kwargs["widths"]
    if len(widths) % 2 or len(widths) > 2 * t.ndim:
        raise ShapeError(
            f"widths={_fmt(widths)} needs an even count, at most 2 per axis ({2 * t.ndim} here)",
            hint="torch's order: (left, right) pads the last axis, (left, right, top, bottom) the last two",
        )
    if any(w < 0 for w in widths):
        raise ShapeError(f"widths={_fmt(widths)} has a negative width", hint="crop with slicing: x[1:-1]")
    pairs = pad_pairs(widths, t.ndim)
    return TensorType(tuple(d + a + b for d, (a, b) in zip(t.shape, pairs, strict=True)), DType.FLOAT)


def sliced_shape(shape: Shape, items: tuple) -> Shape:
    """The shape x[items] has: an int item drops its axis, a (start, stop, step) one keeps len(range)."""
    return tuple(len(range(*item)) for item in items if isinstance(item, tuple)) + tuple(shape[len(items) :])


def _slice(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    return TensorType(sliced_shape(t.shape, kwargs["items"]), t.dtype)


def _unslice(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (g,) = types
    shape, start, step = (tuple(kwargs[k]) for k in ("shape", "start", "step"))
    if not len(shape) == len(start) == len(step) == g.ndim:
        raise ShapeError(
            f"unslice needs shape, start and step with one entry per axis of g ({g.ndim})",
            hint="e.g. unslice(g, shape=(5,), start=(1,), step=(2,)) for the gradient of x[1::2]",
        )
    for axis, (n, first, stride, size) in enumerate(zip(shape, start, step, g.shape, strict=True)):
        if stride < 1:
            raise ShapeError(f"unslice: step {stride} on axis {axis} is not positive")
        if first + (size - 1) * stride >= n:
            raise ShapeError(
                f"unslice: {size} elements from {first} by {stride} do not fit axis {axis} of size {n}", arg=0
            )
    return TensorType(shape, g.dtype)


def einsum_parts(subscripts: str) -> tuple[list[str], str]:
    """ "ij,jk->ik" as (["ij", "jk"], "ik"): canonical subscripts always have their output."""
    inputs, _, output = subscripts.partition("->")
    return inputs.split(","), output


def canonical_subscripts(text: str) -> str:
    """einsum's subscripts without spaces and with the output written out (implicit: the letters
    that appear once, in alphabetical order, as numpy and torch read them)."""
    text = text.replace(" ", "")
    if "..." in text:
        raise ShapeError(
            "einsum's ... (broadcast axes) is not supported", hint="name every axis with a letter"
        )
    if text.count("->") > 1 or not text or text.startswith("->"):
        raise ShapeError(f"einsum subscripts {text!r} need the form 'ij,jk->ik'")
    inputs, arrow, output = text.partition("->")
    for part in [*inputs.split(","), output]:
        bad = next((c for c in part if not c.isascii() or not c.isalpha()), None)
        if bad is not None:
            raise ShapeError(f"einsum subscripts take letters a-z, A-Z, got {bad!r} in {text!r}")
    if not arrow:
        letters = inputs.replace(",", "")
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return f"{inputs}->{output}"


def _einsum(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    inputs, output = einsum_parts(kwargs["subscripts"])
    if len(inputs) != len(types):
        raise ShapeError(
            f"einsum subscripts {kwargs['subscripts']!r} name {len(inputs)} operands, got {len(types)}"
        )
    sizes: dict[str, int] = {}
    for i, (letters, t) in enumerate(zip(inputs, types, strict=True)):
        if len(letters) != t.ndim:
            raise ShapeError(
                f"einsum operand {i + 1} has {t.ndim} axes {_fmt(t.shape)}, subscripts {letters!r}", arg=i
            )
        repeated = next((c for c in letters if letters.count(c) > 1), None)
        if repeated is not None:
            raise ShapeError(
                f"einsum operand {i + 1} repeats {repeated!r} ({letters!r}): not supported",
                arg=i,
                hint="take the diagonal first: diagonal(x), trace(x)",
            )
        for c, d in zip(letters, t.shape, strict=True):
            if sizes.setdefault(c, d) != d:
                raise ShapeError(f"einsum axis {c!r} is {sizes[c]} in one operand and {d} in another", arg=i)
    if len(set(output)) != len(output) or any(c not in sizes for c in output):
        raise ShapeError(f"einsum output {output!r} must name distinct letters of the operands")
    return TensorType(tuple(sizes[c] for c in output), DType.FLOAT)


def _gather(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """gather(x, idx, axis): idx of x's rank, no larger on the other axes; idx's shape."""
    x, idx = types[0], types[1]
    _need_int(idx, 1, "gather's index")
    _fits_within(x, idx, kwargs["axis"], "gather")
    return TensorType(idx.shape, x.dtype)


def _fits_within(x: TensorType, idx: TensorType, axis: int, op: str) -> None:
    if idx.ndim != x.ndim:
        raise ShapeError(
            f"{op}'s index needs {x.ndim} axes, as x {_fmt(x.shape)}, got {_fmt(idx.shape)}", arg=1
        )
    if any(i > n for k, (i, n) in enumerate(zip(idx.shape, x.shape, strict=True)) if k != axis):
        raise ShapeError(
            f"{op}'s index {_fmt(idx.shape)} is larger than x {_fmt(x.shape)} off axis {axis}", arg=1
        )


def _scatter_add(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    x, idx, src = types
    _need_int(idx, 1, "scatter_add's index")
    _fits_within(x, idx, kwargs["axis"], "scatter_add")
    if src.shape != idx.shape:
        raise ShapeError(
            f"scatter_add's src needs the index's shape {_fmt(idx.shape)}, got {_fmt(src.shape)}", arg=2
        )
    return TensorType(x.shape, DType.FLOAT)


def _index_select(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    x, idx = types
    _need_int(idx, 1, "index_select's index")
    if idx.ndim != 1:
        raise ShapeError(f"index_select takes a 1-D index, got {_fmt(idx.shape)}", arg=1)
    axis = kwargs["axis"]
    return TensorType(x.shape[:axis] + idx.shape + x.shape[axis + 1 :], x.dtype)


def _embedding(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    weight, idx = types
    _need_float(weight, 0, "the weight")
    _need_int(idx, 1, "embedding's index")
    if weight.ndim != 2:
        raise ShapeError(f"embedding's weight is (num_embeddings, dim), got {_fmt(weight.shape)}", arg=0)
    return TensorType(idx.shape + weight.shape[1:], DType.FLOAT)


def _affine(types: Sequence[TensorType], name: str, want: Shape, what: str) -> None:
    """A normalisation's optional weight and bias: arguments 2 and 3, of shape `want`."""
    if len(types) > 3:
        raise ShapeError(f"{name} takes x, and optionally a weight and a bias ({len(types)} given)", arg=3)
    for i, t in enumerate(types[1:], start=1):
        _need_float(t, i, f"{name}'s {'weight' if i == 1 else 'bias'}")
        if t.shape != want:
            role = "weight" if i == 1 else "bias"
            raise ShapeError(f"{name}'s {role} needs shape {_fmt(want)} ({what}), got {_fmt(t.shape)}", arg=i)


def _trailing_norm(name: str) -> Callable[[Sequence[TensorType], dict[str, KwValue]], TensorType]:
    """layer_norm's and rms_norm's: over the last `dims` axes, weight and bias of their shape."""

    def rule(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
        x, dims = types[0], kwargs["dims"]
        if dims > x.ndim:
            raise ShapeError(f"{name} normalises {dims} trailing axes, x has {x.ndim} {_fmt(x.shape)}", arg=0)
        _affine(types, name, x.shape[x.ndim - dims :], f"the last {dims} axes of x")
        return TensorType(x.shape, DType.FLOAT)

    return rule


def _channels(types: Sequence[TensorType], name: str) -> TensorType:
    x = types[0]
    if x.ndim < 2:
        raise ShapeError(f"{name} takes x of shape (N, C, ...), got {_fmt(x.shape)}", arg=0)
    _affine(types, name, (x.shape[1],), "one per channel")
    return x


def _batch_norm(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    x = _channels(types, "batch_norm")
    if x.size // x.shape[1] < 2:
        raise ShapeError(
            f"batch_norm needs more than one value per channel, x has shape {_fmt(x.shape)}", arg=0
        )
    return TensorType(x.shape, DType.FLOAT)


def _group_norm(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    x = _channels(types, "group_norm")
    groups = kwargs["groups"]
    if x.shape[1] % groups:
        raise ShapeError(f"{x.shape[1]} channels do not split into {groups} groups", arg=0)
    return TensorType(x.shape, DType.FLOAT)


def _attention(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    q, k, v = types
    for i, t in enumerate(types):
        _need_float(t, i, ("the queries", "the keys", "the values")[i])
        if t.ndim < 2:
            raise ShapeError(
                f"attention's {'qkv'[i]} needs (..., length, features), got {_fmt(t.shape)}", arg=i
            )
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ShapeError("attention's q, k and v need the same batch axes", arg=1)
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"q and k need the same features: {q.shape[-1]} vs {k.shape[-1]}", arg=1)
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"k and v need the same length: {k.shape[-2]} vs {v.shape[-2]}", arg=2)
    return TensorType(q.shape[:-1] + v.shape[-1:], DType.FLOAT)


def _pointwise_loss(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """binary_cross_entropy's, kl_div's, ...: two float tensors of one shape; a scalar, or their
    shape with reduction=none."""
    a, b = types
    _need_float(a, 0, "the input")
    _need_float(b, 1, "the target")
    if a.shape != b.shape:
        raise ShapeError(f"input and target need one shape, got {_fmt(a.shape)} and {_fmt(b.shape)}", arg=1)
    return TensorType(a.shape if kwargs.get("reduction") == "none" else (), DType.FLOAT)


def _square(types: Sequence[TensorType], name: str) -> TensorType:
    a = types[0]
    _need_float(a, 0, f"{name}'s matrix")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"{name} takes a square matrix (n, n), got {_fmt(a.shape)}", arg=0)
    return a


def _square_scalar(types: Sequence[TensorType], name: str) -> TensorType:
    _square(types, name)
    return TensorType((), DType.FLOAT)


def _solve(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    a, b = _square(types, "solve"), types[1]
    _need_float(b, 1, "solve's right-hand side")
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ShapeError(
            f"solve(A, b) needs b of shape ({a.shape[0]},) or ({a.shape[0]}, k), got {_fmt(b.shape)}", arg=1
        )
    return TensorType(b.shape, DType.FLOAT)


def window_count(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """How many windows of a (dilated) kernel fit along an axis of `size` padded on both sides."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(x: TensorType, kernel: tuple[int, int], kw: dict[str, KwValue], name: str) -> tuple[int, int]:
    if x.ndim != 4:
        raise ShapeError(f"{name} takes x of shape (N, C, H, W), got {_fmt(x.shape)}", arg=0)
    out = tuple(
        window_count(x.shape[2 + i], kernel[i], kw["stride"][i], kw["padding"][i], kw["dilation"][i])
        for i in (0, 1)
    )
    if min(out) < 1:
        raise ShapeError(
            f"a {kernel[0]} x {kernel[1]} kernel does not fit x of shape {_fmt(x.shape)} "
            f"(padding {kw['padding']}, dilation {kw['dilation']})",
            arg=0,
        )
    return out  # type: ignore[return-value]


def _unfold(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    x = types[0]
    kernel = kwargs["kernel"]
    ho, wo = _windows(x, kernel, kwargs, "unfold")
    return TensorType((x.shape[0], x.shape[1] * kernel[0] * kernel[1], ho * wo), x.dtype)


def _fold(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    p = types[0]
    kernel, (h, w) = kwargs["kernel"], kwargs["output_size"]
    cells = kernel[0] * kernel[1]
    if p.ndim != 3 or p.shape[1] % cells:
        raise ShapeError(
            f"fold takes (N, C*{cells}, L) for a {kernel[0]} x {kernel[1]} kernel, got {_fmt(p.shape)}", arg=0
        )
    full = TensorType((p.shape[0], p.shape[1] // cells, h, w))
    ho, wo = _windows(full, kernel, kwargs, "fold")
    if ho * wo != p.shape[2]:
        raise ShapeError(
            f"fold: {ho} x {wo} windows of output_size {_fmt((h, w))}, got {p.shape[2]} columns", arg=0
        )
    return TensorType(full.shape, DType.FLOAT)


def _conv(types: Sequence[TensorType], kwargs: dict[str, KwValue], spatial: int) -> TensorType:
    name = f"conv{spatial}d"
    if len(types) > 3:
        raise ShapeError(f"{name} takes x, weight and optionally a bias", arg=3)
    x, w = types[0], types[1]
    for i, t in enumerate(types):
        _need_float(t, i, ("the input", "the weight", "the bias")[i])
    if x.ndim != 2 + spatial or w.ndim != 2 + spatial:
        shape = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
        raise ShapeError(
            f"{name} takes x {shape} and a weight of as many axes, got {_fmt(x.shape)}, {_fmt(w.shape)}",
            arg=0,
        )
    groups = kwargs["groups"]
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise ShapeError(
            f"{name}: x has {x.shape[1]} channels, the weight {w.shape} takes {w.shape[1]} per group "
            f"of {groups}",
            arg=1,
            hint="weight (C_out, C_in/groups, kernel...), C_out divisible by groups",
        )
    if len(types) == 3 and types[2].shape != (w.shape[0],):
        raise ShapeError(f"{name}'s bias needs shape ({w.shape[0]},), got {_fmt(types[2].shape)}", arg=2)
    pair = (lambda v: (1, v)) if spatial == 1 else (lambda v: v)
    planar = {key: pair(kwargs[key]) for key in ("stride", "padding", "dilation")}
    flat = TensorType((x.shape[0], x.shape[1], 1, x.shape[2]) if spatial == 1 else x.shape)
    kernel = (1, w.shape[2]) if spatial == 1 else (w.shape[2], w.shape[3])
    ho, wo = _windows(flat, kernel, planar, name)
    return TensorType((x.shape[0], w.shape[0]) + ((wo,) if spatial == 1 else (ho, wo)), DType.FLOAT)


def _pool(types: Sequence[TensorType], kwargs: dict[str, KwValue], name: str) -> TensorType:
    (x,) = types
    _need_float(x, 0, "the input")
    if name == "max_pool2d" and any(kwargs["padding"]):
        raise ShapeError(
            "max_pool2d takes padding=0 here (torch pads with -inf)", hint="pad(x, widths=..., value=-1e9)"
        )
    ho, wo = _windows(x, kwargs["kernel"], {**kwargs, "dilation": (1, 1)}, name)
    return TensorType(x.shape[:2] + (ho, wo), DType.FLOAT)


def _need_int(t: TensorType, arg: int, what: str) -> None:
    if t.dtype is not DType.INT:
        raise ShapeError(
            f"{what} must be an int tensor (class labels)", arg=arg, hint="declare it with dtype: int"
        )


def _need_float(t: TensorType, arg: int, what: str) -> None:
    if t.dtype is not DType.FLOAT:
        raise ShapeError(f"{what} must be a float tensor", arg=arg)


def _same_shape(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """softmax, log_softmax: the input's shape (the axis was checked when it was normalised)."""
    (t,) = types
    _need_float(t, 0, "the input")
    return TensorType(t.shape, DType.FLOAT)


def _outer(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    a, b = types
    for i, t in enumerate(types):
        if t.ndim != 1:
            raise ShapeError(f"outer takes 1-D tensors, argument {i + 1} has shape {_fmt(t.shape)}", arg=i)
    return TensorType((a.shape[0], b.shape[0]), DType.FLOAT)


def _dot(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    a, b = types
    for i, t in enumerate(types):
        if t.ndim != 1:
            raise ShapeError(f"dot takes 1-D tensors, argument {i + 1} has shape {_fmt(t.shape)}", arg=i)
    if a.shape != b.shape:
        raise ShapeError(f"dot needs equal lengths, got {a.shape[0]} and {b.shape[0]}", arg=1)
    return TensorType((), DType.FLOAT)


def _trace(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ShapeError(f"trace takes a square matrix, got shape {_fmt(t.shape)}", arg=0)
    return TensorType((), DType.FLOAT)


def _mse(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    broadcast_shapes(*(t.shape for t in types))
    return TensorType((), DType.FLOAT)


def _onehot(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    (t,) = types
    _need_int(t, 0, "onehot's argument")
    return TensorType(t.shape + (kwargs["num_classes"],), DType.FLOAT)


def _classification(types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    """nll_loss / cross_entropy: scores (C,) with a scalar label, or (N, C) with labels (N,); a
    weight (C,) given by keyword comes third."""
    scores, target = types[0], types[1]
    if len(types) > 2:
        _need_float(types[2], 2, "the weight")
        if types[2].shape != scores.shape[-1:]:
            raise ShapeError(
                f"weight needs one per class, shape ({scores.shape[-1]},), got {_fmt(types[2].shape)}", arg=2
            )
    smoothing = kwargs.get("label_smoothing")
    if smoothing is not None and not 0 <= float(smoothing) <= 1:  # type: ignore[arg-type]
        raise ShapeError(f"label_smoothing={smoothing:g} must lie in [0, 1]")
    _need_float(scores, 0, "the scores")
    _need_int(target, 1, "the target")
    if scores.ndim not in (1, 2):
        raise ShapeError(f"scores must be (C,) or (N, C), got {_fmt(scores.shape)}", arg=0)
    if target.shape != scores.shape[:-1]:
        want = "a scalar label" if scores.ndim == 1 else f"labels of shape ({scores.shape[0]},)"
        raise ShapeError(f"scores of shape {_fmt(scores.shape)} need {want}, got {_fmt(target.shape)}", arg=1)
    return TensorType((), DType.FLOAT)


# ---------------------------------------------------------------- domains


def _positive(arg: int, text: str) -> Domain:
    return Domain(arg, text, lambda a: a > 0, sample_range=(0.2, 3.0))


def _inside_one(arg: int, text: str) -> Domain:
    return Domain(arg, text, lambda a: (a > -1) & (a < 1), sample_range=(-0.9, 0.9))


def _difference(args: Sequence[np.ndarray]) -> np.ndarray:
    import numpy as np

    return np.asarray(args[0], dtype=float) - np.asarray(args[1], dtype=float)


def _clamp_kinks(call: Call) -> tuple[Kink, ...]:
    bounds = [b for b in (call.kw("min"), call.kw("max")) if b is not None]
    return tuple(Kink(0, float(b), f"clamp is not differentiable at its bound {b:g}") for b in bounds)


def _tie_gap(op: str, axis: tuple[int, ...] | None) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """Per element, how far its slice's extreme is from a tie: the gap between the two largest
    (max) or smallest (min) elements of the slice the reduction takes it from; inf for one element."""

    def gap(args: Sequence[np.ndarray]) -> np.ndarray:
        import numpy as np

        x = np.asarray(args[0], dtype=np.float64)
        axes = tuple(range(x.ndim)) if axis is None else tuple(axis)
        kept = [i for i in range(x.ndim) if i not in axes]
        moved = np.transpose(x, kept + list(axes)).reshape([x.shape[i] for i in kept] + [-1])
        if moved.shape[-1] < 2:
            return np.full(x.shape, np.inf)
        ordered = np.sort(moved, axis=-1)
        top = ordered[..., -1] - ordered[..., -2] if op == "max" else ordered[..., 1] - ordered[..., 0]
        back = top.reshape([x.shape[i] for i in kept] + [1] * len(axes))
        return np.broadcast_to(np.transpose(back, np.argsort(kept + list(axes))), x.shape)

    return gap


def _extreme_kinks(call: Call) -> tuple[Kink, ...]:
    """max/min reductions are not differentiable where the extreme is tied (torch splits it 1/k)."""
    text = f"{call.op} is not differentiable where its extreme is tied"
    return (Kink(0, 0.0, text, offset=_tie_gap(call.op, call.kw("axis"))),)


def _norm_kinks(call: Call) -> tuple[Kink, ...]:
    """Where a norm has no derivative: p=1 at an element 0, p=inf where the largest |x| is tied,
    p=2 (and fro) where the whole norm is 0."""
    p, axis = call.kw("p"), call.kw("axis")
    if p == "1":
        return (Kink(0, 0.0, "norm with p=1 (abs) is not differentiable where an element is 0"),)
    if p == "inf":
        ties = _tie_gap("max", axis)
        text = "norm with p=inf is not differentiable where the largest |x| is tied"
        return (Kink(0, 0.0, text, offset=lambda args: ties([_abs(args[0])])),)
    return ()


def _norm_domain(call: Call) -> tuple[Domain, ...]:
    """A 2-norm's gradient x/norm(x) is undefined where the norm is 0 (as sqrt's at 0)."""
    if call.kw("p") in ("1", "inf"):
        return ()
    gap = _norm_gap(call.kw("axis"))
    text = "a 2-norm needs norm(x) != 0 (its gradient x/norm(x) is undefined at 0)"
    return (Domain(0, text, lambda a: gap([a]) != 0),)


def _abs(a: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.abs(np.asarray(a, dtype=np.float64))


def _norm_gap(axis: tuple[int, ...] | None) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    def gap(args: Sequence[np.ndarray]) -> np.ndarray:
        import numpy as np

        x = np.asarray(args[0], dtype=np.float64)
        return np.broadcast_to(np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), x.shape)

    return gap


def _along_domain(call: Call) -> tuple[Domain, ...]:
    """gather's, scatter_add's, index_select's, embedding's: indices in [0, n) of the axis read."""
    axis = call.kw("axis") if call.op != "embedding" else 0
    n = call.args[0].shape[axis]
    return (
        Domain(1, f"indices must lie in [0, {n}) (the size of axis {axis})", lambda a: (a >= 0) & (a < n)),
    )


def _per_matrix(test: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A matrix property as the elementwise mask domains give: every element of a good matrix holds."""

    def predicate(a: np.ndarray) -> np.ndarray:
        import numpy as np

        m = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(m)):
            return np.zeros(m.shape, dtype=bool)
        return np.broadcast_to(np.asarray(test(m), dtype=bool)[..., None, None], m.shape)

    return predicate


def _conditioned(m: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.linalg.cond(m) < 1e10


def _positive_determinant(m: np.ndarray) -> np.ndarray:
    import numpy as np

    sign, _ = np.linalg.slogdet(m)
    return (sign > 0) & _conditioned(m)


def _definite(m: np.ndarray) -> np.ndarray:
    import numpy as np

    symmetric = (m + np.swapaxes(m, -1, -2)) / 2
    eigenvalues = np.linalg.eigvalsh(symmetric)
    return eigenvalues.min(axis=-1) > 1e-10 * np.maximum(1.0, np.abs(eigenvalues).max(axis=-1))


INVERTIBLE = Domain(
    0,
    "needs an invertible matrix (condition number below 1e10)",
    _per_matrix(_conditioned),
    sample_matrix="conditioned",
)


def window_positions(
    size: Shape, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Row and column indices into the padded image of every window element, shaped (kh, 1, Ho, 1)
    and (1, kw, 1, Wo), and the window counts Ho, Wo."""
    import numpy as np

    counts = [window_count(size[i], kernel[i], stride[i], padding[i], dilation[i]) for i in (0, 1)]
    rows = (np.arange(kernel[0]) * dilation[0])[:, None] + (np.arange(counts[0]) * stride[0])[None, :]
    cols = (np.arange(kernel[1]) * dilation[1])[:, None] + (np.arange(counts[1]) * stride[1])[None, :]
    return rows[:, None, :, None], cols[None, :, None, :], counts[0], counts[1]


def _window_tie_gap(call: Call) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """Per element of max_pool2d's input, the smallest gap between the two largest elements of a
    window reading it (inf where no window reads it, or a window has one element)."""
    kernel, stride = call.kw("kernel"), call.kw("stride")

    def gap(args: Sequence[np.ndarray]) -> np.ndarray:
        import numpy as np

        x = np.asarray(args[0], dtype=np.float64)
        rows, cols, _, _ = window_positions(x.shape[2:], kernel, stride, (0, 0), (1, 1))
        windows = x[..., rows, cols]  # (N, C, kh, kw, Ho, Wo)
        flat = windows.reshape(windows.shape[:2] + (-1,) + windows.shape[4:])
        if flat.shape[2] < 2:
            return np.full(x.shape, np.inf)
        top = np.sort(flat, axis=2)
        spread = np.broadcast_to((top[:, :, -1] - top[:, :, -2])[:, :, None, None], windows.shape)
        out = np.full(x.shape, np.inf)
        where = (slice(None), slice(None), *np.broadcast_arrays(rows, cols))
        np.minimum.at(out, where, spread)
        return out

    return gap


def _take_domain(call: Call) -> tuple[Domain, ...]:
    n = call.args[0].shape[0]
    return (Domain(1, f"indices must lie in [-{n}, {n})", lambda a: (a >= -n) & (a < n)),)


def _label_domain(call: Call) -> tuple[Domain, ...]:
    classes, ignored = call.args[0].shape[-1], call.kw("ignore_index")
    text = f"targets must be class indices in [0, {classes})"
    if ignored is None:
        return (Domain(1, text, lambda a: (a >= 0) & (a < classes)),)
    return (Domain(1, f"{text} or {ignored}", lambda a: ((a >= 0) & (a < classes)) | (a == ignored)),)


def _onehot_domain(call: Call) -> tuple[Domain, ...]:
    classes, ignored = call.kw("num_classes"), call.kw("ignore_index")
    text = f"labels must be class indices in [0, {classes})"
    if ignored is None:
        return (Domain(0, text, lambda a: (a >= 0) & (a < classes)),)
    return (Domain(0, f"{text} or {ignored}", lambda a: ((a >= 0) & (a < classes)) | (a == ignored)),)


def _pow_domain(call: Call) -> tuple[Domain, ...]:
    exponent = call.args[1]
    if isinstance(exponent, Const):
        if exponent.value.denominator == 1:
            if exponent.value < 0:
                return (Domain(0, "a negative integer power needs base != 0", lambda a: a != 0),)
            return ()
        return (_positive(0, "a fractional power needs base > 0"),)
    return (_positive(0, "x^y with a tensor exponent needs x > 0"),)


# ---------------------------------------------------------------- the catalogue

AXES = Param("axis", "axes", None, "axis or tuple of axes to reduce; None reduces all")
KEEPDIMS = Param("keepdims", "bool", False, "keep reduced axes with size 1")
DIM = Param("axis", "dim", -1, "the axis to normalise over")
CORRECTION = Param(
    "correction", "number", 1, "N - correction divides: 1 is the sample variance, 0 the population's"
)
REDUCTION = Param("reduction", "choice", "mean", "mean or sum over the examples", choices=("mean", "sum"))
LOSS_REDUCTION = Param(
    "reduction",
    "choice",
    "mean",
    "mean, sum, or none (the elementwise losses)",
    choices=("mean", "sum", "none"),
)
WEIGHT = Param("weight", "tensor", False, "a float tensor (C,) of per-class weights (torch's weight=)")
IGNORE_INDEX = Param(
    "ignore_index",
    "optional_int",
    None,
    "a label that counts for nothing (torch's default -100 is not assumed)",
)
NORMALISED = Param("dims", "count", 1, "how many trailing axes are normalised (torch's normalized_shape)")


def _compare(name: str, infix: str, doc: str) -> OpSpec:
    return OpSpec(
        name,
        OpKind.ELEMENTWISE,
        2,
        doc,
        infix=infix,
        differentiable=False,
        shape_rule=_comparison,
        result_dtype=DType.BOOL,
        kinks=(Kink(0, 0.0, f"a {infix} b jumps where a == b", offset=_difference),),
    )


def _unary(name: str, doc: str, **extra: object) -> OpSpec:
    return OpSpec(name, OpKind.ELEMENTWISE, 1, doc, **extra)  # type: ignore[arg-type]


def _convolution_op(spatial: int, positive: str, size: str, shapes: str) -> OpSpec:
    return OpSpec(
        f"conv{spatial}d",
        OpKind.TENSOR,
        2,
        f"conv{spatial}d(x, weight, bias, stride=1, padding=0, dilation=1, groups=1): {shapes} "
        f"(torch.nn.functional.conv{spatial}d, a cross-correlation)",
        params=(
            Param("stride", positive, 1, "the step between windows"),
            Param("padding", size, 0, "zeros added on each side"),
            Param("dilation", positive, 1, "the spacing of the kernel's elements"),
            Param("groups", "count", 1, "channels split into groups, each with its own filters"),
        ),
        shape_rule=lambda types, kwargs: _conv(types, kwargs, spatial),
        variadic=True,
    )


def _spread_op(name: str, doc: str) -> OpSpec:
    return OpSpec(name, OpKind.REDUCTION, 1, doc, params=(AXES, KEEPDIMS, CORRECTION), shape_rule=_spread)


def _binary(name: str, infix: str, doc: str, **extra: object) -> OpSpec:
    return OpSpec(name, OpKind.ELEMENTWISE, 2, doc, infix=infix, **extra)  # type: ignore[arg-type]


CATALOGUE: tuple[OpSpec, ...] = (
    # arithmetic (written as operators)
    _binary("add", "+", "a + b, broadcasting"),
    _binary("sub", "-", "a - b, broadcasting"),
    _binary("mul", "*", "a * b, elementwise, broadcasting"),
    _binary("div", "/", "a / b, elementwise", domain=(Domain(1, "division needs b != 0", lambda a: a != 0),)),
    _binary("pow", "^", "a ^ b (also a ** b), elementwise, right-associative", domain_rule=_pow_domain),
    _unary("neg", "-a"),
    OpSpec(
        "matmul",
        OpKind.MATMUL,
        2,
        "a @ b (torch.matmul): 1-D operands as a row or a column, axes before the last two a broadcast batch",
        infix="@",
    ),
    # elementwise functions
    _unary("exp", "e^x"),
    _unary("log", "natural logarithm", domain=(_positive(0, "log needs x > 0"),)),
    _unary(
        "log1p",
        "log(1 + x), accurate for small x",
        domain=(Domain(0, "log1p needs x > -1", lambda a: a > -1, sample_range=(-0.8, 3.0)),),
    ),
    _unary(
        "sqrt", "square root", domain=(_positive(0, "sqrt needs x > 0 (its derivative is infinite at 0)"),)
    ),
    _unary("sin", "sine"),
    _unary("cos", "cosine"),
    _unary(
        "tan",
        "tangent",
        domain=(
            Domain(
                0,
                "tan needs cos(x) != 0",
                lambda a: _cos(a) != 0,
                sample_range=(-1.2, 1.2),
                sample_predicate=lambda a: abs(_cos(a)) > 1e-3,
            ),
        ),
    ),
    _unary("tanh", "hyperbolic tangent"),
    _unary("sinh", "hyperbolic sine"),
    _unary("cosh", "hyperbolic cosine"),
    _unary("atan", "inverse tangent (torch.atan)"),
    _unary(
        "asin",
        "inverse sine (torch.asin)",
        domain=(_inside_one(0, "asin needs -1 < x < 1 (its derivative is infinite at +-1)"),),
    ),
    _unary(
        "acos",
        "inverse cosine (torch.acos)",
        domain=(_inside_one(0, "acos needs -1 < x < 1 (its derivative is infinite at +-1)"),),
    ),
    OpSpec(
        "atan2",
        OpKind.ELEMENTWISE,
        2,
        "atan2(y, x): the angle of the point (x, y), in (-pi, pi] (torch.atan2); broadcasting",
        # x is drawn in (0.2, 3): random points keep off the origin and off the branch cut
        domain=(Domain(1, "atan2(y, x) is drawn with x > 0", lambda a: a == a, sample_range=(0.2, 3.0)),),
        kinks=(Kink(0, 0.0, "atan2 jumps by 2 pi across y = 0 where x < 0", offset=_atan2_cut),),
    ),
    _unary("expm1", "exp(x) - 1, accurate for small x"),
    _unary("erf", "the error function, 2/sqrt(pi) * integral of exp(-t^2) from 0 to x"),
    _unary("sigmoid", "1 / (1 + exp(-x))"),
    _unary("relu", "max(x, 0)", kinks=(Kink(0, 0.0, "relu is not differentiable at 0"),)),
    _unary(
        "leaky_relu",
        "x where x > 0, else slope*x (torch's negative_slope); derivative slope at 0",
        params=(Param("slope", "number", 0.01, "the slope below 0"),),
        kinks=(Kink(0, 0.0, "leaky_relu is not differentiable at 0"),),
    ),
    _unary(
        "elu",
        "x where x > 0, else alpha*(exp(x) - 1); derivative alpha at 0",
        params=(Param("alpha", "number", 1.0, "the scale below 0"),),
        kinks=(Kink(0, 0.0, "elu's derivative jumps at 0 (unless alpha = 1; its second derivative does)"),),
    ),
    _unary(
        "hardtanh",
        "x limited to [min, max]; gradient 1 strictly inside, 0 at the bounds (torch's hardtanh)",
        params=(
            Param("min", "number", -1.0, "the lower bound"),
            Param("max", "number", 1.0, "the upper bound"),
        ),
        shape_rule=_bounded,
        kink_rule=lambda call: tuple(
            Kink(0, float(b), f"hardtanh is not differentiable at its bound {b:g}")  # type: ignore[arg-type]
            for b in (call.kw("min"), call.kw("max"))
        ),
    ),
    _unary("abs", "|x|", kinks=(Kink(0, 0.0, "abs is not differentiable at 0"),)),
    _unary("softplus", "log(1 + exp(x))"),
    _unary("silu", "x * sigmoid(x) (swish; torch.nn.functional.silu)"),
    _unary(
        "gelu",
        "x * Phi(x), Phi the standard normal CDF (torch.nn.functional.gelu); approximate=tanh: "
        "x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))",
        params=(
            Param(
                "approximate",
                "choice",
                "none",
                "none: exact (erf); tanh: the tanh form",
                choices=("none", "tanh"),
            ),
        ),
    ),
    _unary("logsigmoid", "log(sigmoid(x)) = -softplus(-x) (torch.nn.functional.logsigmoid)"),
    _unary(
        "sign", "-1, 0 or 1; derivative 0", differentiable=False, kinks=(Kink(0, 0.0, "sign jumps at 0"),)
    ),
    _unary(
        "detach",
        "x's value with no gradient (torch's x.detach()): x + detach(round(x) - x) is a "
        "straight-through estimator, whose gradient is 1",
        differentiable=False,
    ),
    _unary(
        "floor",
        "the largest integer <= x; derivative 0",
        differentiable=False,
        kinks=(Kink(0, 0.0, "floor jumps at every integer", offset=_from_integers),),
    ),
    _unary(
        "ceil",
        "the smallest integer >= x; derivative 0",
        differentiable=False,
        kinks=(Kink(0, 0.0, "ceil jumps at every integer", offset=_from_integers),),
    ),
    _unary(
        "round",
        "the nearest integer, halves to even (torch.round); derivative 0",
        differentiable=False,
        kinks=(Kink(0, 0.5, "round jumps halfway between integers", offset=_from_halves),),
    ),
    _unary(
        "step",
        "1 where x > 0 else 0 (relu's derivative); derivative 0",
        differentiable=False,
        kinks=(Kink(0, 0.0, "step jumps at 0"),),
    ),
    # constants: the names `pi` and `e`, where no input or step has that name (then they are that)
    OpSpec("pi", OpKind.ELEMENTWISE, 0, "the constant pi = 3.14159... (written `pi`)", differentiable=False),
    OpSpec("e", OpKind.ELEMENTWISE, 0, "the constant e = 2.71828... (written `e`)", differentiable=False),
    # reductions
    OpSpec("sum", OpKind.REDUCTION, 1, "sum over axes", params=(AXES, KEEPDIMS)),
    OpSpec("mean", OpKind.REDUCTION, 1, "mean over axes", params=(AXES, KEEPDIMS)),
    _spread_op("var", "variance over axes: sum((x - mean(x))^2) / (N - correction) (torch.var)"),
    _spread_op(
        "std", "standard deviation over axes: sqrt(var(x, correction=...)) (torch.std); x not constant there"
    ),
    OpSpec(
        "prod",
        OpKind.REDUCTION,
        1,
        "product over every axis or one (torch.prod); its gradient is the product of the others (zeros "
        "included)",
        params=(Param("axis", "axes", None, "one axis, or None for all"), KEEPDIMS),
        shape_rule=_one_axis,
    ),
    OpSpec(
        "norm",
        OpKind.REDUCTION,
        1,
        "the p-norm over axes (torch.linalg.vector_norm): p=2 sqrt(sum(x^2)), p=1 sum(abs(x)), p=inf "
        "max(abs(x)), p=fro the Frobenius norm (p=2 over two axes or all)",
        params=(
            Param("p", "choice", "2", "2, 1, inf or fro", choices=("2", "1", "inf", "fro")),
            AXES,
            KEEPDIMS,
        ),
        shape_rule=_norm,
        kink_rule=_norm_kinks,
        domain_rule=_norm_domain,
    ),
    OpSpec(
        "cumsum",
        OpKind.TENSOR,
        1,
        "running sums along an axis (torch.cumsum)",
        params=(Param("axis", "dim", None, "the axis summed along (torch's dim)"),),
        shape_rule=_scan,
    ),
    OpSpec(
        "cumprod",
        OpKind.TENSOR,
        1,
        "running products along an axis (torch.cumprod); x != 0, as its closed form divides by x",
        params=(Param("axis", "dim", None, "the axis multiplied along (torch's dim)"),),
        shape_rule=_scan,
        domain=(Domain(0, "cumprod's closed-form gradient divides by x: x != 0", lambda a: a != 0),),
    ),
    # shape
    OpSpec(
        "transpose",
        OpKind.SHAPE,
        1,
        "reverse the axes (x.T), or permute them with axes=(...)",
        params=(Param("axes", "perm", None, "permutation of the axes; default reverses them"),),
    ),
    OpSpec(
        "expand_dims",
        OpKind.SHAPE,
        1,
        "insert an axis of size 1 at position axis",
        params=(Param("axis", "axis", 0, "where the new axis goes"),),
        positional=("axis",),
    ),
    OpSpec(
        "reshape",
        OpKind.SHAPE,
        1,
        "the elements in row-major order, in a new shape (torch.reshape); one size may be -1",
        params=(Param("shape", "newshape", None, "the new shape, e.g. shape=(2, -1)"),),
        shape_rule=_reshape,
    ),
    OpSpec(
        "flatten",
        OpKind.SHAPE,
        1,
        "merge axes start_dim..end_dim into one (torch.flatten; all of them by default)",
        params=(
            Param("start_dim", "dim", 0, "the first axis merged"),
            Param("end_dim", "dim", -1, "the last axis merged"),
        ),
        shape_rule=_flatten,
    ),
    OpSpec(
        "squeeze",
        OpKind.SHAPE,
        1,
        "drop axes of size 1: all of them, or those of axis=... (an axis of another size stays, as in torch)",
        params=(Param("axis", "axes", None, "the axes to drop (torch's dim); None: every axis of size 1"),),
        shape_rule=_squeeze,
    ),
    OpSpec(
        "flip",
        OpKind.SHAPE,
        1,
        "reverse the order of elements along axes (torch.flip's dims; default all)",
        params=(Param("axis", "axes", None, "the axes to reverse; None: every axis"),),
        shape_rule=_same_layout,
    ),
    OpSpec(
        "tril",
        OpKind.SHAPE,
        1,
        "the lower triangle of the last two axes, zeros above diagonal k (torch.tril's diagonal=k)",
        params=(Param("k", "int", 0, "the diagonal kept last: 0 main, 1 one above, -1 one below"),),
        shape_rule=lambda types, kwargs: _matrices(types, kwargs, "tril"),
    ),
    OpSpec(
        "triu",
        OpKind.SHAPE,
        1,
        "the upper triangle of the last two axes, zeros below diagonal k (torch.triu's diagonal=k)",
        params=(Param("k", "int", 0, "the diagonal kept first: 0 main, 1 one above, -1 one below"),),
        shape_rule=lambda types, kwargs: _matrices(types, kwargs, "triu"),
    ),
    OpSpec(
        "diagonal",
        OpKind.SHAPE,
        1,
        "the diagonal of axes 0 and 1, as a new last axis (torch.diagonal with dim1=0, dim2=1)",
        params=(Param("offset", "int", 0, "0 the main diagonal, 1 the one above, -1 the one below"),),
        shape_rule=_diagonal,
    ),
    OpSpec(
        "undiagonal",
        OpKind.SHAPE,
        1,
        "the adjoint of diagonal: zeros of shape, with g's last axis on the diagonal offset (closed forms "
        "use it; torch.diagonal_scatter into zeros)",
        params=(
            Param("shape", "shape", None, "the full shape, e.g. shape=(3, 3)"),
            Param("offset", "int", 0, "the diagonal g goes on"),
        ),
        shape_rule=_undiagonal,
    ),
    OpSpec(
        "concat",
        OpKind.SHAPE,
        1,
        "concat(a, b, ..., axis=0): join tensors along an existing axis (torch.cat's dim)",
        params=(Param("axis", "dim", 0, "the axis joined along"),),
        shape_rule=_concat,
        variadic=True,
    ),
    OpSpec(
        "stack",
        OpKind.SHAPE,
        1,
        "stack(a, b, ..., axis=0): join tensors of one shape along a new axis (torch.stack's dim)",
        params=(Param("axis", "axis", 0, "where the new axis goes"),),
        shape_rule=_stack,
        variadic=True,
    ),
    OpSpec(
        "pad",
        OpKind.SHAPE,
        1,
        "surround x with value (torch.nn.functional.pad, constant mode): widths=(left, right) pads the last "
        "axis, (left, right, top, bottom) the last two, ...",
        params=(
            Param("widths", "widths", None, "torch's pad: before and after, from the last axis back"),
            Param("value", "number", 0, "what the new elements are"),
        ),
        shape_rule=_pad,
    ),
    OpSpec(
        "slice",
        OpKind.SHAPE,
        1,
        "x[1:3], x[:, ::2], x[..., -1]: ranges with positive steps, negative indices and ... on any axis",
        params=(Param("items", "slices", None, "one int or (start, stop, step) per axis"),),
        shape_rule=_slice,
    ),
    OpSpec(
        "unslice",
        OpKind.SHAPE,
        1,
        "the adjoint of slicing (torch's slice_backward): zeros of shape, with g[i, ...] at start + i*step "
        "(closed forms use it)",
        params=(
            Param("shape", "shape", None, "the full shape"),
            Param("start", "shape", None, "per axis, where g's first element goes"),
            Param("step", "shape", None, "per axis, the stride between g's elements"),
        ),
        shape_rule=_unslice,
    ),
    # normalisation and losses (non-elementwise; each engine has its own rules)
    OpSpec(
        "softmax", OpKind.TENSOR, 1, "exp(x)/sum(exp(x)) along axis", params=(DIM,), shape_rule=_same_shape
    ),
    OpSpec(
        "log_softmax",
        OpKind.TENSOR,
        1,
        "x - logsumexp(x) along axis (stable)",
        params=(DIM,),
        shape_rule=_same_shape,
    ),
    OpSpec("logsumexp", OpKind.REDUCTION, 1, "log(sum(exp(x))) over axes, stably", params=(AXES, KEEPDIMS)),
    OpSpec(
        "einsum",
        OpKind.TENSOR,
        1,
        'einsum("bij,bjk->bik", A, B): sums of products over the letters the output leaves out '
        "(torch.einsum; no ..., no letter twice in one operand)",
        params=(
            Param(
                "subscripts", "subscripts", None, "the subscripts, a string: the one string of the language"
            ),
        ),
        shape_rule=_einsum,
        variadic=True,
    ),
    OpSpec("outer", OpKind.TENSOR, 2, "outer product of two 1-D tensors", shape_rule=_outer),
    OpSpec("dot", OpKind.TENSOR, 2, "inner product of two 1-D tensors", shape_rule=_dot),
    OpSpec("trace", OpKind.TENSOR, 1, "sum of the diagonal of a square matrix", shape_rule=_trace),
    OpSpec(
        "mse_loss",
        OpKind.TENSOR,
        2,
        "mean (or sum) of (a - b)^2, broadcasting",
        params=(REDUCTION,),
        shape_rule=_mse,
    ),
    OpSpec(
        "layer_norm",
        OpKind.TENSOR,
        1,
        "layer_norm(x, weight, bias, dims=1, eps=1e-5): (x - mean)/sqrt(var + eps) over the last dims axes, "
        "times weight plus bias, both optional (torch.nn.functional.layer_norm; var divides by N)",
        params=(NORMALISED, Param("eps", "number", 1e-5, "added to the variance")),
        shape_rule=_trailing_norm("layer_norm"),
        variadic=True,
    ),
    OpSpec(
        "rms_norm",
        OpKind.TENSOR,
        1,
        "rms_norm(x, weight, dims=1, eps=1e-6): x/sqrt(mean(x^2) + eps) over the last dims axes, times "
        "weight (torch.nn.functional.rms_norm, with eps given)",
        params=(NORMALISED, Param("eps", "number", 1e-6, "added to the mean square")),
        shape_rule=_trailing_norm("rms_norm"),
        variadic=True,
    ),
    OpSpec(
        "batch_norm",
        OpKind.TENSOR,
        1,
        "batch_norm(x, weight, bias, eps=1e-5): x (N, C, ...) normalised per channel over the batch and the "
        "other axes, with the batch's own statistics (torch's training mode; var divides by N)",
        params=(Param("eps", "number", 1e-5, "added to the variance"),),
        shape_rule=_batch_norm,
        variadic=True,
    ),
    OpSpec(
        "group_norm",
        OpKind.TENSOR,
        1,
        "group_norm(x, weight, bias, groups=G, eps=1e-5): x (N, C, ...) normalised over each group of C/G "
        "channels and the other axes, then per channel weight and bias (torch.nn.functional.group_norm)",
        params=(
            Param("groups", "count", None, "how many groups the channels split into"),
            Param("eps", "number", 1e-5, "added to the variance"),
        ),
        shape_rule=_group_norm,
        variadic=True,
    ),
    OpSpec(
        "attention",
        OpKind.TENSOR,
        3,
        "attention(q, k, v, causal=False, scale=None): softmax(q @ k^T * scale) @ v over the last two axes, "
        "scale 1/sqrt(features) by default; causal: position i sees keys 0..i (torch's "
        "scaled_dot_product_attention)",
        params=(
            Param("causal", "bool", False, "mask the keys after each query (is_causal)"),
            Param("scale", "number", None, "the factor of q @ k^T; None: 1/sqrt(q's features)"),
        ),
        shape_rule=_attention,
    ),
    OpSpec(
        "binary_cross_entropy",
        OpKind.TENSOR,
        2,
        "binary_cross_entropy(p, y): -(y log p + (1 - y) log(1 - p)), each log at least -100 as torch's",
        params=(LOSS_REDUCTION,),
        shape_rule=_pointwise_loss,
        domain=(
            Domain(0, "binary_cross_entropy needs 0 < p < 1", lambda a: (a > 0) & (a < 1), (0.05, 0.95)),
        ),
    ),
    OpSpec(
        "binary_cross_entropy_with_logits",
        OpKind.TENSOR,
        2,
        "binary_cross_entropy_with_logits(z, y): binary_cross_entropy(sigmoid(z), y), stably: "
        "softplus(z) - z*y",
        params=(LOSS_REDUCTION,),
        shape_rule=_pointwise_loss,
    ),
    OpSpec(
        "l1_loss",
        OpKind.TENSOR,
        2,
        "l1_loss(a, b): the mean (or sum) of |a - b|",
        params=(LOSS_REDUCTION,),
        shape_rule=_pointwise_loss,
        kinks=(Kink(0, 0.0, "l1_loss is not differentiable where a == b", offset=_difference),),
    ),
    OpSpec(
        "smooth_l1_loss",
        OpKind.TENSOR,
        2,
        "smooth_l1_loss(a, b, beta=1): 0.5 d^2/beta where |d| < beta, else |d| - 0.5 beta, d = a - b "
        "(torch's)",
        params=(Param("beta", "number", 1.0, "where the square turns linear"), LOSS_REDUCTION),
        shape_rule=_pointwise_loss,
    ),
    OpSpec(
        "kl_div",
        OpKind.TENSOR,
        2,
        "kl_div(logq, p): sum of p*(log p - logq), logq log-probabilities (torch.nn.functional.kl_div; "
        "log_target=True: p given as log p)",
        params=(
            Param(
                "reduction",
                "choice",
                "mean",
                "mean, sum, batchmean (sum / N) or none",
                choices=("mean", "sum", "batchmean", "none"),
            ),
            Param("log_target", "bool", False, "the target is given as log-probabilities"),
        ),
        shape_rule=_pointwise_loss,
        domain_rule=lambda call: (
            () if call.kw("log_target") else (_positive(1, "kl_div needs p > 0 (log p)"),)
        ),
    ),
    OpSpec(
        "det",
        OpKind.TENSOR,
        1,
        "det(A): the determinant of a square matrix (torch.linalg.det); its gradient det(A)*inv(A).T",
        shape_rule=lambda types, kwargs: _square_scalar(types, "det"),
        domain=(replace(INVERTIBLE, text="det is drawn invertible (its gradient is written with inv(A))"),),
    ),
    OpSpec(
        "inv",
        OpKind.TENSOR,
        1,
        "inv(A): the inverse of a square matrix (torch.linalg.inv)",
        shape_rule=lambda types, kwargs: _square(types, "inv"),
        domain=(replace(INVERTIBLE, text="inv needs an invertible matrix (condition number below 1e10)"),),
    ),
    OpSpec(
        "logdet",
        OpKind.TENSOR,
        1,
        "logdet(A): log(det(A)), for det(A) > 0 (torch.logdet)",
        shape_rule=lambda types, kwargs: _square_scalar(types, "logdet"),
        domain=(
            Domain(
                0, "logdet needs det(A) > 0", _per_matrix(_positive_determinant), sample_matrix="conditioned"
            ),
        ),
    ),
    OpSpec(
        "solve",
        OpKind.TENSOR,
        2,
        "solve(A, b): x with A @ x = b, b a vector or a matrix of columns (torch.linalg.solve)",
        shape_rule=_solve,
        domain=(replace(INVERTIBLE, text="solve needs an invertible A (condition number below 1e10)"),),
    ),
    OpSpec(
        "cholesky",
        OpKind.TENSOR,
        1,
        "cholesky(A): the lower-triangular L with L @ L.T = (A + A.T)/2, positive definite (torch.linalg."
        "cholesky of the symmetric part: its gradient is the one torch gives for symmetric A)",
        shape_rule=lambda types, kwargs: _square(types, "cholesky"),
        domain=(
            Domain(
                0,
                "cholesky needs (A + A.T)/2 positive definite",
                _per_matrix(_definite),
                sample_matrix="definite",
            ),
        ),
    ),
    OpSpec(
        "unfold",
        OpKind.SHAPE,
        1,
        "unfold(x, kernel=(kh, kw), stride=1, padding=0, dilation=1): the sliding windows of x (N, C, H, W) "
        "as columns (N, C*kh*kw, L) (torch.nn.functional.unfold); convolutions are written with it",
        params=(
            Param("kernel", "positive_pair", None, "the window, (height, width) or one size"),
            Param("stride", "positive_pair", 1, "the step between windows"),
            Param("padding", "pair", 0, "zeros added on each side"),
            Param("dilation", "positive_pair", 1, "the spacing of a window's elements"),
        ),
        shape_rule=_unfold,
    ),
    OpSpec(
        "fold",
        OpKind.SHAPE,
        1,
        "fold(p, output_size=(H, W), kernel=..., ...): unfold's adjoint, columns summed back into their "
        "windows (torch.nn.functional.fold)",
        params=(
            Param("output_size", "positive_pair", None, "the (H, W) the windows cover"),
            Param("kernel", "positive_pair", None, "the window"),
            Param("stride", "positive_pair", 1, "the step between windows"),
            Param("padding", "pair", 0, "zeros added on each side"),
            Param("dilation", "positive_pair", 1, "the spacing of a window's elements"),
        ),
        shape_rule=_fold,
    ),
    _convolution_op(1, "count", "int", "x (N, C, L), weight (C_out, C/groups, K)"),
    _convolution_op(2, "positive_pair", "pair", "x (N, C, H, W), weight (C_out, C/groups, kh, kw)"),
    OpSpec(
        "avg_pool2d",
        OpKind.TENSOR,
        1,
        "avg_pool2d(x, kernel=(kh, kw), stride=kernel, padding=0): the mean of each window, padding zeros "
        "counted (torch.nn.functional.avg_pool2d)",
        params=(
            Param("kernel", "positive_pair", None, "the window"),
            Param("stride", "positive_pair", None, "the step between windows; None: the kernel"),
            Param("padding", "pair", 0, "zeros added on each side"),
        ),
        shape_rule=lambda types, kwargs: _pool(types, kwargs, "avg_pool2d"),
    ),
    OpSpec(
        "max_pool2d",
        OpKind.TENSOR,
        1,
        "max_pool2d(x, kernel=(kh, kw), stride=kernel): the largest element of each window "
        "(torch.nn.functional.max_pool2d; a tie in a window is a kink: torch gives its gradient to one)",
        params=(
            Param("kernel", "positive_pair", None, "the window"),
            Param("stride", "positive_pair", None, "the step between windows; None: the kernel"),
            Param("padding", "pair", 0, "0 only here"),
        ),
        shape_rule=lambda types, kwargs: _pool(types, kwargs, "max_pool2d"),
        kink_rule=lambda call: (
            Kink(
                0,
                0.0,
                "max_pool2d is not differentiable where a window's maximum is tied",
                offset=_window_tie_gap(call),
            ),
        ),
    ),
    OpSpec(
        "onehot",
        OpKind.TENSOR,
        1,
        "onehot(y, C): 1 at each label's index of a new last axis of size C, else 0; a label equal to "
        "ignore_index gets a row of zeros",
        params=(Param("num_classes", "count", None, "C, the number of classes"), IGNORE_INDEX),
        shape_rule=_onehot,
        domain_rule=_onehot_domain,
        differentiable=False,
        positional=("num_classes",),
    ),
    OpSpec(
        "nll_loss",
        OpKind.TENSOR,
        2,
        "nll_loss(log_probs, target, weight=w, ignore_index=k): -w[target]*log_probs[target], over a batch "
        "its sum, or divided by the sum of w[target] (mean); targets equal to ignore_index count for nothing",
        params=(REDUCTION, WEIGHT, IGNORE_INDEX),
        shape_rule=_classification,
        domain_rule=_label_domain,
    ),
    OpSpec(
        "cross_entropy",
        OpKind.TENSOR,
        2,
        "cross_entropy(scores, target) = nll_loss(log_softmax(scores), target)",
        params=(
            REDUCTION,
            WEIGHT,
            IGNORE_INDEX,
            Param("label_smoothing", "number", 0.0, "eps: the target is (1 - eps) onehot + eps/C everywhere"),
        ),
        shape_rule=_classification,
        domain_rule=_label_domain,
    ),
    # comparisons, selection, piecewise (issue 3): comparisons give bools, 1/0 in arithmetic
    _compare("lt", "<", "a < b"),
    _compare("le", "<=", "a <= b"),
    _compare("gt", ">", "a > b"),
    _compare("ge", ">=", "a >= b"),
    _compare("eq", "==", "a == b"),
    _compare("ne", "!=", "a != b"),
    OpSpec("where", OpKind.ELEMENTWISE, 3, "where(cond, a, b): a where cond holds (is nonzero), else b"),
    OpSpec(
        "maximum",
        OpKind.ELEMENTWISE,
        2,
        "elementwise max; at a tie each side gets half the gradient (torch's convention)",
        kinks=(Kink(0, 0.0, "maximum is not differentiable where a == b", offset=_difference),),
    ),
    OpSpec(
        "minimum",
        OpKind.ELEMENTWISE,
        2,
        "elementwise min; at a tie each side gets half the gradient (torch's convention)",
        kinks=(Kink(0, 0.0, "minimum is not differentiable where a == b", offset=_difference),),
    ),
    OpSpec(
        "clamp",
        OpKind.ELEMENTWISE,
        1,
        "clamp(x, min=lo, max=hi): x limited to [lo, hi]; gradient 1 inside, 0 outside",
        params=(
            Param("min", "number", None, "lower bound (None: none)"),
            Param("max", "number", None, "upper bound"),
        ),
        kink_rule=_clamp_kinks,
    ),
    OpSpec(
        "max",
        OpKind.REDUCTION,
        1,
        "largest element over axes; tied maxima share the gradient evenly (torch.amax)",
        params=(AXES, KEEPDIMS),
        kink_rule=_extreme_kinks,
    ),
    OpSpec(
        "min",
        OpKind.REDUCTION,
        1,
        "smallest element over axes; tied minima share the gradient evenly (torch.amin)",
        params=(AXES, KEEPDIMS),
        kink_rule=_extreme_kinks,
    ),
    OpSpec(
        "index",
        OpKind.TENSOR,
        1,
        "x[k] for an int literal k (x[i, j] is x[i][j])",
        params=(Param("at", "index", 0, "the position along the first axis"),),
        shape_rule=_index,
    ),
    OpSpec(
        "take",
        OpKind.TENSOR,
        2,
        "x[y] for an int tensor y, scalar or 1-D: rows of x along the first axis",
        shape_rule=_take,
        domain_rule=_take_domain,
    ),
    OpSpec(
        "gather",
        OpKind.TENSOR,
        2,
        "gather(x, idx, axis=0): x read along axis at idx, elsewhere at idx's own position (torch.gather)",
        params=(Param("axis", "dim", None, "the axis read along (torch's dim)"),),
        shape_rule=_gather,
        domain_rule=_along_domain,
    ),
    OpSpec(
        "scatter_add",
        OpKind.TENSOR,
        3,
        "scatter_add(x, idx, src, axis=0): x with src added at idx along axis (torch.scatter_add; src has "
        "idx's shape); gather's adjoint",
        params=(Param("axis", "dim", None, "the axis written along (torch's dim)"),),
        shape_rule=_scatter_add,
        domain_rule=_along_domain,
    ),
    OpSpec(
        "index_select",
        OpKind.TENSOR,
        2,
        "index_select(x, idx, axis=0): the slices of x along axis the 1-D idx names (torch.index_select)",
        params=(Param("axis", "dim", None, "the axis selected along (torch's dim)"),),
        shape_rule=_index_select,
        domain_rule=_along_domain,
    ),
    OpSpec(
        "embedding",
        OpKind.TENSOR,
        2,
        "embedding(weight, idx): weight's rows at idx, idx of any shape (torch.nn.functional.embedding)",
        shape_rule=_embedding,
        domain_rule=_along_domain,
    ),
    OpSpec(
        "eye",
        OpKind.TENSOR,
        0,
        "eye(n): the n x n identity matrix (trace's gradient)",
        params=(Param("n", "count", None, "the size"),),
        shape_rule=lambda types, kwargs: TensorType((kwargs["n"], kwargs["n"])),
        differentiable=False,
        positional=("n",),
    ),
    OpSpec(
        "broadcast_to",
        OpKind.SHAPE,
        1,
        "repeat x to a larger shape by numpy broadcasting (closed forms use it)",
        params=(Param("shape", "shape", None, "the target shape, e.g. shape=(2, 3)"),),
    ),
)


def _cos(a: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.cos(a)


OPS: dict[str, OpSpec] = {op.name: op for op in CATALOGUE}

# The constants of the language: a name that is an op of no arguments, where nothing else has it.
CONSTANTS = frozenset({"pi", "e"})
# Names callable as functions: everything but the operator-only entries and the constants.
OPERATOR_ONLY = frozenset(
    {"add", "sub", "mul", "div", "neg", "lt", "le", "gt", "ge", "eq", "ne", "index", "slice"}
)
# Other names of ops, resolved by the parser (torch's name for numpy's).
ALIASES = {"unsqueeze": "expand_dims"}
FUNCTIONS: dict[str, OpSpec] = {
    name: op for name, op in OPS.items() if name not in OPERATOR_ONLY and name not in CONSTANTS
}

SHAPE_RULES: dict[OpKind, Callable[[Sequence[TensorType], dict[str, KwValue]], TensorType]] = {
    OpKind.ELEMENTWISE: _elementwise,
    OpKind.REDUCTION: _reduction,
    OpKind.MATMUL: _matmul,
}


def infer_type(op: OpSpec, types: Sequence[TensorType], kwargs: dict[str, KwValue]) -> TensorType:
    if op.shape_rule is not None:
        return op.shape_rule(types, kwargs)
    if op.kind is OpKind.SHAPE:
        return {"transpose": _transpose, "expand_dims": _expand_dims, "broadcast_to": _broadcast_to}[op.name](
            types, kwargs
        )
    return SHAPE_RULES[op.kind](types, kwargs)


def canonical_kwargs(
    op: OpSpec, arg_types: Sequence[TensorType], given: dict[str, KwValue]
) -> tuple[tuple[str, KwValue], ...]:
    """Fill defaults and normalise: axes become sorted non-negative tuples, perms full tuples.

    Raises ShapeError (with arg=None) for an out-of-range or repeated axis.
    """
    ndim = arg_types[0].ndim if arg_types else 0
    out: list[tuple[str, KwValue]] = []
    for param in op.params:
        value = given.get(param.name, param.default)
        if param.kind == "axes" and value is not None:
            axes = (value,) if isinstance(value, int) else tuple(value)
            value = tuple(sorted(_norm_axis(a, ndim, param.name) for a in axes))
            if len(set(value)) != len(value):
                raise ShapeError(f"repeated axis in {param.name}={given[param.name]}")
        elif param.kind == "perm":
            if value is None:
                value = tuple(reversed(range(ndim)))
            else:
                value = tuple(_norm_axis(a, ndim, param.name) for a in value)
                if sorted(value) != list(range(ndim)):
                    raise ShapeError(f"axes={given[param.name]} is not a permutation of {ndim} axes")
        elif param.kind == "axis":
            value = _norm_axis(int(value), ndim + 1, param.name)
        elif param.kind == "dim":
            if ndim == 0:
                raise ShapeError(f"{op.name} needs a tensor with at least one axis, got a scalar", arg=0)
            if value is None:
                raise ShapeError(f"{op.name} needs {param.name}=..., the axis it runs along (torch's dim)")
            value = _norm_axis(int(value), ndim, param.name)
        elif param.kind == "count":
            if value is None:
                raise ShapeError(f"{op.name} needs {param.name}, e.g. {op.name}(y, 3)")
            if int(value) < 1:
                raise ShapeError(f"{param.name} must be at least 1, got {value}")
            value = int(value)
        elif param.kind == "number":
            value = None if value is None else float(value)
        elif param.kind == "index":
            n = arg_types[0].shape[0] if arg_types and arg_types[0].ndim else 0
            if not -n <= int(value) < n:
                raise ShapeError(f"index {value} is out of range for an axis of size {n}")
            value = int(value) % n
        elif param.kind == "choice":
            if value not in param.choices:
                raise ShapeError(f"{param.name} must be one of {', '.join(param.choices)}, got {value}")
        elif param.kind == "bool":
            value = bool(value)
        elif param.kind == "int":
            value = int(value)
        elif param.kind == "optional_int":
            value = None if value is None else int(value)
        elif param.kind == "tensor":
            value = bool(value)  # the tensor itself is an argument after the positional ones
        elif param.kind in ("pair", "positive_pair"):
            if value is None and param.name == "stride" and "kernel" in dict(out):
                value = dict(out)["kernel"]  # pooling: windows side by side
            if value is None:
                raise ShapeError(f"{op.name} needs {param.name}=, e.g. {param.name}=(2, 2)")
            value = (int(value),) * 2 if isinstance(value, int) else tuple(int(v) for v in value)
            if len(value) != 2:
                raise ShapeError(f"{param.name}={given[param.name]} needs one or two sizes (height, width)")
            low = 1 if param.kind == "positive_pair" else 0
            if min(value) < low:
                raise ShapeError(f"{param.name}={given[param.name]} needs sizes of at least {low}")
        elif param.kind == "newshape":
            value = _new_shape(op.name, value, arg_types[0].shape)
        elif param.kind == "widths":
            if value is None:
                raise ShapeError(f"{op.name} needs widths=(...), e.g. widths=(1, 1) for the last axis")
            value = (value,) if isinstance(value, int) else tuple(value)
        elif param.kind == "subscripts":
            if not isinstance(value, str):
                raise ShapeError(f'{op.name} needs its subscripts first, e.g. {op.name}("ij,jk->ik", A, B)')
            value = canonical_subscripts(value)
        elif param.kind == "slices":
            value = normalise_slices(value, arg_types[0].shape)
        elif param.kind == "shape":
            if value is None:
                raise ShapeError(f"{op.name} needs {param.name}=(...), e.g. {param.name}=(2, 3)")
            value = (value,) if isinstance(value, int) else tuple(value)
            if any(d < 0 for d in value):
                raise ShapeError(f"{param.name}={given[param.name]} has a negative size")
        out.append((param.name, value))
    return tuple(out)


def _new_shape(op: str, value: KwValue, shape: Shape) -> tuple[int, ...]:
    """reshape's shape= with its one -1 worked out; it must hold the elements there are."""
    if value is None:
        raise ShapeError(f"{op} needs shape=(...), e.g. shape=(2, -1)")
    target = (value,) if isinstance(value, int) else tuple(value)
    size = 1
    for d in shape:
        size *= d
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in target):
        raise ShapeError(f"shape={_fmt(target)}: sizes are positive, with at most one -1 (the rest)")
    known = 1
    for d in target:
        known *= d if d != -1 else 1
    if unknown:
        if known == 0 or size % known:
            raise ShapeError(f"{size} elements {_fmt(shape)} do not fill shape={_fmt(target)}")
        target = tuple(size // known if d == -1 else d for d in target)
    elif known != size:
        raise ShapeError(
            f"cannot reshape {size} elements {_fmt(shape)} to shape={_fmt(target)} ({known} elements)",
            hint="the sizes' product must stay the same; one of them may be -1",
        )
    return target


FULL_RANGE = ("range", None, None, None)


def normalise_slices(raw: KwValue, shape: Shape) -> tuple:
    """The parser's subscripts (ints, ("range", start, stop, step) with Nones, "...") as one item
    per axis: an int in [0, n), or (start, stop, step) as Python's slice(...).indices(n) gives it."""
    items = tuple(raw)
    ellipses = [i for i, item in enumerate(items) if item == "..."]
    if len(ellipses) > 1:
        raise ShapeError("an index may have only one ...")
    used = len(items) - len(ellipses)
    if used > len(shape):
        raise ShapeError(f"{used} indices for a tensor with {len(shape)} axes {_fmt(shape)}")
    fill = (FULL_RANGE,) * (len(shape) - used)
    items = items[: ellipses[0]] + fill + items[ellipses[0] + 1 :] if ellipses else items + fill
    out: list[int | tuple[int, int, int]] = []
    for axis, (item, n) in enumerate(zip(items, shape, strict=True)):
        if isinstance(item, int):
            if not -n <= item < n:
                raise ShapeError(f"index {item} is out of range for axis {axis} of size {n}")
            out.append(item % n)
            continue
        _, start, stop, step = item
        if step is not None and step <= 0:
            raise ShapeError(
                f"a slice's step must be positive, got {step} (torch refuses the others)",
                hint="reverse an axis with flip(x, axis=...)",
            )
        picked = range(*slice(start, stop, step).indices(n))
        if len(picked) == 0:
            written = ":".join("" if b is None else str(b) for b in (start, stop, step)).rstrip(":")
            raise ShapeError(f"the slice {written or ':'} of axis {axis} (size {n}) selects nothing")
        # one element read is start:start + 1, whatever the step said
        out.append(
            (picked.start, picked.stop, picked.step)
            if len(picked) > 1
            else (picked.start, picked.start + 1, 1)
        )
    return tuple(out)


def slice_text(item: int | tuple[int, int, int], n: int) -> str:
    """One normalised item as written: 2, 1:3, ::2, : (defaults left out)."""
    if isinstance(item, int):
        return str(item)
    start, stop, step = item
    text = f"{start or ''}:{'' if stop >= n else stop}"
    return text + (f":{step}" if step != 1 else "")


def _norm_axis(axis: int, ndim: int, name: str) -> int:
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{name}={axis} is out of range for a tensor with {ndim} axes")
    return axis % ndim


def reduced_count(in_shape: Shape, axes: tuple[int, ...] | None) -> int:
    """How many elements a reduction folds into each output element (the N of mean's 1/N)."""
    n = 1
    for i, d in enumerate(in_shape):
        if axes is None or i in axes:
            n *= d
    return n


def integer_exponent(call: Call) -> int | None:
    """The exponent of x^n when it is an integer literal (engines may use x*x... forms)."""
    if call.op == "pow" and isinstance(call.args[1], Const) and call.args[1].value.denominator == 1:
        return int(call.args[1].value)
    return None


def const_value(node: object) -> Fraction | None:
    return node.value if isinstance(node, Const) else None
