"""What the layout ops do to an array: reshape, squeeze, flip, slicing, padding, joining, triangles
and diagonals, and the adjoints closed forms print (unslice, undiagonal).

These ops move elements and compute nothing, so their meaning is the catalogue's, like a shape
rule: one numpy definition for the engines that compute on numpy arrays (the autograd engine's
forward values, the numeric engine, the symbolic engine's element arrays). Each engine still writes
its own derivative rules; torch lowers them through torch's own ops, so a mistake here shows as a
value disagreement with torch.

Every function takes any dtype (floats, ints, SymPy objects) and `lead`, a number of leading axes
to leave alone (the numeric engine's batch of points): the op's axes are counted after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symcheck.language.catalogue import (
    diagonal_length,
    pad_pairs,
    squeezed_axes,
    window_count,
    window_positions,
)

__all__ = ["window_count"]  # re-exported: the engines size windows with it

Shape = tuple[int, ...]


def filled(shape: Shape, like: np.ndarray, value: float = 0) -> np.ndarray:
    """An array of `value` in like's dtype; for SymPy object arrays the exact number."""
    if like.dtype == object:
        import sympy

        return np.full(shape, sympy.Rational(str(value)) if value else sympy.Integer(0), dtype=object)
    return np.full(shape, value, dtype=like.dtype)


def reshape(x: np.ndarray, shape: Shape, lead: int = 0) -> np.ndarray:
    return np.reshape(x, x.shape[:lead] + tuple(shape))


def flattened_shape(shape: Shape, start_dim: int, end_dim: int) -> Shape:
    return shape[:start_dim] + (int(np.prod(shape[start_dim : end_dim + 1])),) + shape[end_dim + 1 :]


def flatten(x: np.ndarray, start_dim: int, end_dim: int, lead: int = 0) -> np.ndarray:
    return reshape(x, flattened_shape(x.shape[lead:], start_dim, end_dim), lead)


def squeeze(x: np.ndarray, axis: tuple[int, ...] | None, lead: int = 0) -> np.ndarray:
    return np.squeeze(x, axis=tuple(lead + a for a in squeezed_axes(x.shape[lead:], axis)))


def flip(x: np.ndarray, axis: tuple[int, ...] | None, lead: int = 0) -> np.ndarray:
    axes = range(x.ndim - lead) if axis is None else axis
    return np.flip(x, axis=tuple(lead + a for a in axes))


def tril(x: np.ndarray, k: int, lead: int = 0) -> np.ndarray:
    """Zeros above diagonal k of the last two axes."""
    rows, columns = x.shape[-2:]
    keep = np.tri(rows, columns, k, dtype=bool)
    return np.where(keep, x, filled((), x))


def triu(x: np.ndarray, k: int, lead: int = 0) -> np.ndarray:
    """Zeros below diagonal k of the last two axes."""
    rows, columns = x.shape[-2:]
    keep = ~np.tri(rows, columns, k - 1, dtype=bool)
    return np.where(keep, x, filled((), x))


def diagonal(x: np.ndarray, offset: int, lead: int = 0) -> np.ndarray:
    """The diagonal of axes 0 and 1 (after `lead`), as a new last axis (torch.diagonal)."""
    return np.diagonal(x, offset, lead, lead + 1).copy()


def _diagonal_positions(shape: Shape, offset: int) -> tuple[np.ndarray, np.ndarray]:
    n = diagonal_length(shape[0], shape[1], offset)
    k = np.arange(n)
    return (k, k + offset) if offset >= 0 else (k - offset, k)


def undiagonal(g: np.ndarray, shape: Shape, offset: int, lead: int = 0) -> np.ndarray:
    """Zeros of `shape` with g's last axis on the diagonal `offset` of axes 0 and 1."""
    out = filled(g.shape[:lead] + tuple(shape), g)
    rows, columns = _diagonal_positions(shape, offset)
    # out[..., rows[k], columns[k], rest...] = g[..., rest..., k]: with axes 0 and 1 moved last, the
    # diagonal's positions index a view of g's own shape
    np.moveaxis(out, (lead, lead + 1), (-2, -1))[..., rows, columns] = g
    return out


def concat(xs: Sequence[np.ndarray], axis: int, lead: int = 0) -> np.ndarray:
    return np.concatenate([np.asarray(x) for x in xs], axis=lead + axis)


def stack(xs: Sequence[np.ndarray], axis: int, lead: int = 0) -> np.ndarray:
    return np.stack([np.asarray(x) for x in xs], axis=lead + axis)


def pad(x: np.ndarray, widths: tuple[int, ...], value: float, lead: int = 0) -> np.ndarray:
    """x surrounded by `value`: torch's widths, (left, right) for the last axis first."""
    if x.dtype.kind in "biu":  # the result is float (value=0.5 around labels)
        x = x.astype(np.float64)
    pairs = [(0, 0)] * lead + pad_pairs(widths, x.ndim - lead)
    out = filled(tuple(d + a + b for d, (a, b) in zip(x.shape, pairs, strict=True)), x, value)
    out[tuple(slice(a, a + d) for d, (a, _) in zip(x.shape, pairs, strict=True))] = x
    return out


def subscript(items: tuple, lead: int = 0) -> tuple[Any, ...]:
    """A slice op's items as a numpy index: ints, and slice(start, stop, step)."""
    return (slice(None),) * lead + tuple(i if isinstance(i, int) else slice(*i) for i in items)


def slice_(x: np.ndarray, items: tuple, lead: int = 0) -> np.ndarray:
    return np.asarray(x[subscript(items, lead)]).copy()


def unslice(g: np.ndarray, shape: Shape, start: Shape, step: Shape, lead: int = 0) -> np.ndarray:
    """Zeros of `shape` with g[i, j, ...] at (start[0] + i*step[0], start[1] + j*step[1], ...)."""
    out = filled(g.shape[:lead] + tuple(shape), g)
    sizes = g.shape[lead:]
    out[
        (slice(None),) * lead
        + tuple(slice(a, a + (n - 1) * s + 1, s) for a, s, n in zip(start, step, sizes, strict=True))
    ] = g
    return out


def slice_adjoint(items: tuple, shape: Shape) -> tuple[tuple[int, ...], Shape, Shape, Shape]:
    """For x[items] of x's `shape`: the axes its ints dropped (where the gradient gets them back
    as size 1) and unslice's shape, start and step."""
    dropped = tuple(axis for axis, item in enumerate(items) if isinstance(item, int))
    start = tuple(item if isinstance(item, int) else item[0] for item in items)
    step = tuple(1 if isinstance(item, int) else item[2] for item in items)
    return dropped, tuple(shape), start, step


def _indices(idx: np.ndarray, lead_shape: Shape) -> np.ndarray:
    return np.broadcast_to(np.asarray(idx, dtype=np.int64), tuple(lead_shape) + np.shape(idx))


def _in_range(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The index with positions outside [0, n) read as 0, and where it was inside. An index out of
    range is outside the op's domain (the caller reports it, as for x[y]): NaN, not an IndexError."""
    idx = np.asarray(idx, dtype=np.int64)
    valid = (idx >= 0) & (idx < n)
    return np.where(valid, idx, 0), valid


def _poisoned(out: np.ndarray, bad: np.ndarray) -> np.ndarray:
    if out.dtype == object or not bad.any():
        return out
    out = out.astype(np.result_type(out.dtype, np.float64))
    out[np.broadcast_to(bad, out.shape)] = np.nan
    return out


def gather(x: np.ndarray, idx: np.ndarray, axis: int, lead: int = 0) -> np.ndarray:
    """out[p] = x[p with p[axis] replaced by idx[p]] (torch.gather), idx no larger than x off axis."""
    idx, valid = _in_range(idx, x.shape[lead + axis])
    inside = (slice(None),) * lead + tuple(
        slice(None) if d == axis else slice(0, n) for d, n in enumerate(idx.shape)
    )
    return _poisoned(np.take_along_axis(x[inside], _indices(idx, x.shape[:lead]), axis=lead + axis), ~valid)


def scatter_add(x: np.ndarray, idx: np.ndarray, src: np.ndarray, axis: int, lead: int = 0) -> np.ndarray:
    """x with src[p] added at p with p[axis] replaced by idx[p] (torch.scatter_add); repeats add up."""
    idx, valid = _in_range(idx, x.shape[lead + axis])
    shape = np.broadcast_shapes(np.shape(x)[:lead], np.shape(src)[:lead]) + tuple(x.shape[lead:])
    symbolic = object in (x.dtype, np.asarray(src).dtype)  # SymPy expressions: kept exact
    out = np.array(np.broadcast_to(x, shape), dtype=object if symbolic else np.float64)
    full = _indices(idx, shape[:lead])
    where = list(np.indices(full.shape, sparse=True))
    where[lead + axis] = full
    np.add.at(out, tuple(where), np.broadcast_to(src, full.shape))
    return _poisoned(out, np.asarray(not valid.all()))


def index_select(x: np.ndarray, idx: np.ndarray, axis: int, lead: int = 0) -> np.ndarray:
    idx, valid = _in_range(idx, x.shape[lead + axis])
    out = np.take(x, idx, axis=lead + axis)
    bad = np.reshape(~valid, tuple(-1 if d == lead + axis else 1 for d in range(out.ndim)))
    return _poisoned(out, bad)


def embedding(weight: np.ndarray, idx: np.ndarray, lead: int = 0) -> np.ndarray:
    idx, valid = _in_range(idx, weight.shape[lead])
    out = np.take(weight, idx, axis=lead)
    return _poisoned(out, np.reshape(~valid, valid.shape + (1,) * (out.ndim - lead - valid.ndim)))


def unfold(
    x: np.ndarray, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape, lead: int = 0
) -> np.ndarray:
    """x (..., N, C, H, W) as columns (..., N, C*kh*kw, L): column l holds window l, channel by
    channel (torch.nn.functional.unfold's order)."""
    widths = (padding[1], padding[1], padding[0], padding[0])
    padded = pad(x, widths, 0.0, lead) if any(padding) else x
    rows, cols, ho, wo = window_positions(x.shape[-2:], kernel, stride, padding, dilation)
    windows = padded[..., rows, cols]  # (..., N, C, kh, kw, Ho, Wo)
    return windows.reshape(x.shape[:-2][:-1] + (x.shape[-3] * kernel[0] * kernel[1], ho * wo))


def fold(
    p: np.ndarray,
    output_size: Shape,
    kernel: Shape,
    stride: Shape,
    padding: Shape,
    dilation: Shape,
    lead: int = 0,
) -> np.ndarray:
    """unfold's adjoint: each column's elements added back where its window read them."""
    rows, cols, ho, wo = window_positions(output_size, kernel, stride, padding, dilation)
    channels = p.shape[-2] // (kernel[0] * kernel[1])
    windows = p.reshape(p.shape[:-2] + (channels, kernel[0], kernel[1], ho, wo))
    height, width = output_size[0] + 2 * padding[0], output_size[1] + 2 * padding[1]
    out = filled(p.shape[:-2] + (channels, height, width), p if p.dtype == object else p.astype(np.float64))
    index = (slice(None),) * (out.ndim - 2) + (
        np.broadcast_to(rows, windows.shape[-4:]),
        np.broadcast_to(cols, windows.shape[-4:]),
    )
    np.add.at(out, index, windows)
    return out[..., padding[0] : padding[0] + output_size[0], padding[1] : padding[1] + output_size[1]]


# Every layout op of the catalogue by name. concat and stack take a sequence of arrays, the others one.
FUNCTIONS = {
    "reshape": reshape,
    "flatten": flatten,
    "squeeze": squeeze,
    "flip": flip,
    "tril": tril,
    "triu": triu,
    "diagonal": diagonal,
    "undiagonal": undiagonal,
    "concat": concat,
    "stack": stack,
    "pad": pad,
    "slice": slice_,
    "unslice": unslice,
    "unfold": unfold,
    "fold": fold,
}
