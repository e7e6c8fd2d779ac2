"""Forward values of the symbolic engine's tensor ops, on float arrays or on object arrays of
SymPy expressions (the expansion, and closed forms evaluated element by element)."""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from symcheck.engines.symbolic.functions import max_of, min_of
from symcheck.language import layout


def is_symbolic(a: Any) -> bool:
    return np.asarray(a).dtype == object


def exp(a: Any) -> Any:
    return np.frompyfunc(sympy.exp, 1, 1)(a) if is_symbolic(a) else np.exp(a)


def log(a: Any) -> Any:
    return np.frompyfunc(sympy.log, 1, 1)(a) if is_symbolic(a) else np.log(a)


def logsumexp(a: Any, axis: int | tuple[int, ...] | None, keepdims: bool) -> Any:
    if is_symbolic(a):
        return np.asarray(log(np.sum(exp(a), axis=axis, keepdims=keepdims)), dtype=object)
    peak = np.max(a, axis=axis, keepdims=True)
    total = peak + np.log(np.sum(np.exp(a - peak), axis=axis, keepdims=True))
    return total if keepdims else np.squeeze(total, axis=axis)


def softmax(a: Any, axis: int) -> Any:
    if is_symbolic(a):
        e = exp(a)
        return e / np.sum(e, axis=axis, keepdims=True)
    return np.exp(log_softmax(a, axis))


def log_softmax(a: Any, axis: int) -> Any:
    return a - logsumexp(a, axis, True)


def onehot(y: Any, classes: int, *, wrap: bool = False, ignored: int | None = None) -> Any:
    """Labels to indicator vectors; symbolic labels become Piecewise 0/1 that resolve on substitution.
    `wrap`: an index as x[y] reads it, where -1 names the last row (as in torch and numpy).
    `ignored`: a label whose row is zeros."""
    if ignored is not None:
        if is_symbolic(y):
            hot = np.array(onehot(y, classes, wrap=wrap), dtype=object)
            if 0 <= ignored < classes:  # y == ignored reads that class: zero it (other labels never do)
                hot[..., ignored] = sympy.Integer(0)
            return hot
        labels = np.asarray(y, dtype=np.int64)
        kept = labels != ignored
        return onehot(np.where(kept, labels, 0), classes, wrap=wrap) * kept[..., None]
    if is_symbolic(y):
        y = np.asarray(y, dtype=object)
        out = np.empty(y.shape + (classes,), dtype=object)
        for index in np.ndindex(*y.shape):
            for k in range(classes):
                hit = sympy.Eq(y[index], k)
                if wrap:
                    hit = sympy.Or(hit, sympy.Eq(y[index], k - classes))
                out[index + (k,)] = sympy.Piecewise((1, hit), (0, True))
        return out
    return np.eye(classes)[np.asarray(y, dtype=np.int64)]


def eye(n: int, symbolic: bool) -> Any:
    if symbolic:
        out = np.full((n, n), sympy.Integer(0), dtype=object)
        for i in range(n):
            out[i, i] = sympy.Integer(1)
        return out
    return np.eye(n)


def extreme(op: str, a: Any, axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    """max or min over axes; on object arrays, sympy.Max/Min of each reduced slice."""
    if not is_symbolic(a):
        return (np.max if op == "max" else np.min)(a, axis=axis, keepdims=keepdims)
    a = np.asarray(a, dtype=object)
    axes = tuple(range(a.ndim)) if axis is None else axis
    kept = [i for i in range(a.ndim) if i not in axes]
    moved = np.transpose(a, kept + list(axes)).reshape([a.shape[i] for i in kept] + [-1])
    pick = max_of if op == "max" else min_of  # ties share the derivative 1/k (functions.py)
    out = np.empty(moved.shape[:-1], dtype=object)
    for index in np.ndindex(*out.shape):
        out[index] = pick(*moved[index])
    if keepdims:
        out = out.reshape([1 if i in axes else d for i, d in enumerate(a.shape)])
    return out


def take(x: Any, y: Any) -> Any:
    """x[y] along the first axis; with symbolic labels, a sum of onehot-weighted rows."""
    if is_symbolic(y):
        weights = onehot(y, np.shape(x)[0], wrap=True)
        return np.tensordot(weights, np.asarray(x, dtype=object), axes=([-1], [0]))
    return np.asarray(x)[np.asarray(y, dtype=np.int64)]


def gather(x: Any, idx: Any, axis: int) -> Any:
    """torch.gather; with symbolic labels, each element a onehot-weighted sum along the axis."""
    x = np.asarray(x, dtype=object)
    if not is_symbolic(idx):
        return layout.gather(x, np.asarray(idx, dtype=np.int64), axis)
    idx = np.asarray(idx, dtype=object)
    inside = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(idx.shape))
    along = np.expand_dims(np.moveaxis(x[inside], axis, -1), axis)  # idx's shape, 1 at axis, then n
    return np.sum(onehot(idx, x.shape[axis]) * along, axis=-1)


def scatter_add(x: Any, idx: Any, src: Any, axis: int) -> Any:
    """torch.scatter_add; with symbolic labels, each element of x plus the src its label sends there."""
    x = np.asarray(x, dtype=object)
    if not is_symbolic(idx):
        return layout.scatter_add(x, np.asarray(idx, dtype=np.int64), np.asarray(src, dtype=object), axis)
    weights = onehot(np.asarray(idx, dtype=object), x.shape[axis])  # idx's shape + (n,)
    sent = np.moveaxis(np.sum(weights * np.asarray(src, dtype=object)[..., None], axis=axis), -1, axis)
    out = np.array(x, dtype=object)
    out[tuple(slice(0, n) for n in sent.shape)] += sent
    return out


def linear_algebra(op: str, a: Any) -> Any:
    """det, inv, cholesky (of the symmetric part) of a square matrix: numpy's on floats, SymPy's
    exact ones on expressions."""
    if not is_symbolic(a):
        m = np.asarray(a, dtype=np.float64)
        if op == "det":
            return np.linalg.det(m)
        if op == "inv":
            try:
                return np.linalg.inv(m)
            except np.linalg.LinAlgError:  # singular: outside the domain, which the checker reports
                return np.full(m.shape, np.nan)
        try:
            return np.linalg.cholesky((m + m.T) / 2)
        except np.linalg.LinAlgError:
            return np.full(m.shape, np.nan)
    m = sympy.Matrix(np.asarray(a, dtype=object).tolist())
    if op == "det":
        return np.asarray(m.det(method="berkowitz"), dtype=object)
    if op == "inv":
        return np.array((m.adjugate() / m.det(method="berkowitz")).tolist(), dtype=object)
    symmetric = (m + m.T) / 2
    return np.array(symmetric.cholesky(hermitian=False).tolist(), dtype=object)
