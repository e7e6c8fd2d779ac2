"""The numeric engine's rule table: what every op of the catalogue computes, in plain numpy.

Values only, never derivatives: finite differences of these are the engine-free witness. One entry
per catalogue op in `FORWARD`; a missing entry fails the catalogue test (tests/engines/test_tables.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from symcheck.language import layout
from symcheck.language.ir import Call, KwValue


def layout_forward(op: str, lead: int = 0) -> Forward:
    """The layout op `op` on arrays whose first `lead` axes are a batch (numeric's points)."""
    fn = LAYOUT[op]
    if op in ("concat", "stack"):
        return lambda a, kw: fn(a, **kw, lead=lead)
    return lambda a, kw: fn(a[0], **kw, lead=lead)


OnCall = Callable[[Call, list[np.ndarray], np.ndarray], None]
Forward = Callable[[list[np.ndarray], Mapping[str, KwValue]], np.ndarray]


LAYOUT = layout.FUNCTIONS


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number never overflows, whichever side of 0 x is on.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_ERF = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    """The C library's erf element by element (numpy has none)."""
    return np.asarray(_ERF(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    """x Phi(x) with Phi(x) = (1 + erf(x/sqrt 2))/2, or torch's tanh form."""
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _norm(x: np.ndarray, p: str, axis: tuple[int, ...] | None, keepdims: bool) -> np.ndarray:
    if p == "1":
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    if p == "inf":
        return np.max(np.abs(x), axis=axis, keepdims=keepdims)
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))  # 2, and fro: over the elements


def _standardised(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    centred = x - np.mean(x, axis=axes, keepdims=True)
    return centred / np.sqrt(np.mean(centred * centred, axis=axes, keepdims=True) + eps)


def _affine(y: np.ndarray, args: list[np.ndarray], channel_axis: int | None = None) -> np.ndarray:
    """y times the optional weight, plus the optional bias (along axis 1 for the channel norms)."""
    for k, combine in ((1, np.multiply), (2, np.add)):
        if len(args) > k:
            p = args[k]
            if channel_axis is not None:
                p = p.reshape((-1,) + (1,) * (y.ndim - 2))
            y = combine(y, p)
    return y


def _layer_norm(a: list[np.ndarray], kw: Mapping[str, KwValue]) -> np.ndarray:
    x = a[0]
    return _affine(_standardised(x, tuple(range(x.ndim - kw["dims"], x.ndim)), kw["eps"]), a)


def _rms_norm(a: list[np.ndarray], kw: Mapping[str, KwValue]) -> np.ndarray:
    x = a[0]
    axes = tuple(range(x.ndim - kw["dims"], x.ndim))
    return _affine(x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + kw["eps"]), a)


def _batch_norm(a: list[np.ndarray], kw: Mapping[str, KwValue]) -> np.ndarray:
    x = a[0]
    return _affine(_standardised(x, (0, *range(2, x.ndim)), kw["eps"]), a, channel_axis=1)


def _group_norm(a: list[np.ndarray], kw: Mapping[str, KwValue]) -> np.ndarray:
    x = a[0]
    grouped = x.reshape(x.shape[0], kw["groups"], -1)
    return _affine(_standardised(grouped, (2,), kw["eps"]).reshape(x.shape), a, channel_axis=1)


def _attention(a: list[np.ndarray], kw: Mapping[str, KwValue]) -> np.ndarray:
    q, k, v = a
    scale = 1 / math.sqrt(q.shape[-1]) if kw["scale"] is None else kw["scale"]
    scores = (q @ np.swapaxes(k, -1, -2)) * scale
    if kw["causal"]:
        scores = np.where(np.tri(q.shape[-2], k.shape[-2], dtype=bool), scores, -np.inf)
    return _softmax(scores, -1) @ v


def _loss(pointwise: np.ndarray, reduction: str, batch: int = 1) -> np.ndarray:
    if reduction == "none":
        return pointwise
    if reduction == "batchmean":
        return np.sum(pointwise) / batch
    return np.mean(pointwise) if reduction == "mean" else np.sum(pointwise)


def _smooth_l1(d: np.ndarray, beta: float) -> np.ndarray:
    if beta == 0:
        return np.abs(d)
    return np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta)


def _kl_div(logq: np.ndarray, p: np.ndarray, kw: Mapping[str, KwValue]) -> np.ndarray:
    pointwise = np.exp(p) * (p - logq) if kw["log_target"] else p * (np.log(p) - logq)
    return _loss(pointwise, kw["reduction"], logq.shape[0] if logq.ndim else 1)


def _logdet(a: np.ndarray) -> np.ndarray:
    """log(det(a)); NaN where det(a) < 0 (torch.logdet), -inf where it is 0."""
    sign, magnitude = np.linalg.slogdet(a)
    return np.where(sign > 0, magnitude, np.where(sign == 0, -np.inf, np.nan))


def _nonsingular(fn: Callable[..., np.ndarray], a: np.ndarray, *rest: np.ndarray) -> np.ndarray:
    """inv's, solve's: NaN for a singular matrix (outside the domain), not a LinAlgError."""
    try:
        return fn(a, *rest)
    except np.linalg.LinAlgError:
        return np.full(rest[0].shape if rest else a.shape, np.nan)


def _cholesky(a: np.ndarray) -> np.ndarray:
    """L of the symmetric part; NaN where that is not positive definite."""
    try:
        return np.linalg.cholesky((a + np.swapaxes(a, -1, -2)) / 2)
    except np.linalg.LinAlgError:
        return np.full(a.shape, np.nan)


def _conv(a: list[np.ndarray], kw: Mapping[str, KwValue], spatial: int) -> np.ndarray:
    """Each output element a sum of products over its window, through unfold's columns."""
    x, w = a[0], a[1]
    if spatial == 1:  # height 1
        x, w = x[:, :, None, :], w[:, :, None, :]
        stride, padding, dilation = (1, kw["stride"]), (0, kw["padding"]), (1, kw["dilation"])
    else:
        stride, padding, dilation = kw["stride"], kw["padding"], kw["dilation"]
    n, groups, out = x.shape[0], kw["groups"], w.shape[0]
    cols = layout.unfold(x, w.shape[2:], stride, padding, dilation)  # (N, C*kh*kw, L)
    cols = cols.reshape(n, groups, -1, cols.shape[-1])
    filters = w.reshape(groups, out // groups, -1)
    y = np.einsum("gok,ngkl->ngol", filters, cols).reshape(n, out, -1)
    if len(a) > 2:
        y = y + a[2][:, None]
    h = layout.window_count(x.shape[2], w.shape[2], stride[0], padding[0], dilation[0])
    return y.reshape(n, out, -1) if spatial == 1 else y.reshape(n, out, h, -1)


def _pool(x: np.ndarray, kw: Mapping[str, KwValue], reduce: Callable[..., np.ndarray]) -> np.ndarray:
    kernel, stride = kw["kernel"], kw["stride"]
    cols = layout.unfold(x, kernel, stride, kw["padding"], (1, 1))
    h = layout.window_count(x.shape[2], kernel[0], stride[0], kw["padding"][0], 1)
    windows = cols.reshape(x.shape[0], x.shape[1], kernel[0] * kernel[1], -1)
    return reduce(windows, axis=2).reshape(x.shape[0], x.shape[1], h, -1)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _shift(x: np.ndarray, axis: int | tuple[int, ...] | None) -> np.ndarray:
    """The max over `axis` (kept), with non-finite maxima replaced by 0.

    Subtracting it keeps exp from overflowing; an all -inf slice would otherwise give -inf - -inf.
    """
    m = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0)


def _logsumexp(x: np.ndarray, axis: int | tuple[int, ...] | None, keepdims: bool) -> np.ndarray:
    m = _shift(x, axis)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    return np.squeeze(out, axis=tuple(axes))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - _shift(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return x - _logsumexp(x, axis, keepdims=True)


def _mse_loss(a: np.ndarray, b: np.ndarray, reduction: str) -> np.ndarray:
    d = np.subtract(a, b)
    return np.mean(d * d) if reduction == "mean" else np.sum(d * d)


def _onehot(labels: np.ndarray, classes: int) -> np.ndarray:
    out = (labels[..., None] == np.arange(classes)).astype(np.float64)
    # An out-of-range label is outside the op's domain: NaN, not a silent row of zeros.
    valid = (labels >= 0) & (labels < classes)
    return np.where(valid[..., None], out, np.nan)


def _onehot_ignoring(labels: np.ndarray, classes: int, ignored: int | None) -> np.ndarray:
    if ignored is None:
        return _onehot(labels, classes)
    kept = labels != ignored
    return _onehot(np.where(kept, labels, 0), classes) * kept[..., None]


def _nll_loss(logp: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
    classes = logp.shape[-1]
    valid = (target >= 0) & (target < classes)
    # numpy would wrap a negative label round to the end; index with 0 there and NaN it out below.
    index = np.where(valid, target, 0)
    picked = np.take_along_axis(logp, index[..., None], axis=-1)[..., 0]
    losses = np.where(valid, -picked, np.nan)
    if logp.ndim == 1:
        return losses
    return np.mean(losses) if reduction == "mean" else np.sum(losses)


def _classify(logp: np.ndarray, a: list[np.ndarray], kw: Mapping[str, KwValue]) -> np.ndarray:
    """nll_loss (and cross_entropy, given log_softmax): the plain form, or with a weight, an
    ignored label or label smoothing, as torch computes them."""
    target = a[1]
    weighted, ignored = kw.get("weight"), kw.get("ignore_index")
    smoothing = float(kw.get("label_smoothing") or 0.0)
    if not weighted and ignored is None and not smoothing:
        return _nll_loss(logp, target, kw["reduction"])
    classes = logp.shape[-1]
    weight = a[2] if weighted else np.ones(classes)
    kept = target != ignored if ignored is not None else np.ones(target.shape, dtype=bool)
    valid = ((target >= 0) & (target < classes)) | ~kept
    hot = _onehot(np.where(kept & valid, target, 0), classes) * kept[..., None]
    picked = -np.sum(hot * weight * logp, axis=-1)  # -w[y] logp[y] per example
    smooth = -np.sum(kept[..., None] * weight * logp, axis=-1) / classes
    losses = np.where(valid, (1 - smoothing) * picked + smoothing * smooth, np.nan)
    if kw["reduction"] == "sum":
        return np.sum(losses)
    return np.sum(losses) / np.sum(hot * weight)


def _where(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(cond if cond.dtype == np.bool_ else cond != 0, a, b)


def _clamp(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    # maximum then minimum, as torch.clamp: with lo > hi every element becomes hi.
    out = x if lo is None else np.maximum(x, lo)
    return out if hi is None else np.minimum(out, hi)


def _take(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    valid = (index >= -n) & (index < n)
    if np.all(valid):
        return x[index]
    # An out-of-range index is outside the op's domain: NaN rows, not an IndexError.
    picked = x[np.where(valid, index, 0)].astype(np.result_type(x.dtype, np.float64))
    mask = valid.reshape(valid.shape + (1,) * (picked.ndim - valid.ndim))
    return np.where(mask, picked, np.nan)


# One entry per catalogue op: args in order, canonical kwargs (see catalogue.canonical_kwargs).
FORWARD: dict[str, Forward] = {
    "pi": lambda a, kw: np.asarray(np.pi),
    "e": lambda a, kw: np.asarray(np.e),
    "add": lambda a, kw: np.add(a[0], a[1]),
    "sub": lambda a, kw: np.subtract(a[0], a[1]),
    "mul": lambda a, kw: np.multiply(a[0], a[1]),
    "div": lambda a, kw: np.divide(a[0], a[1]),
    "pow": lambda a, kw: np.power(a[0], a[1]),
    "neg": lambda a, kw: np.negative(a[0]),
    "matmul": lambda a, kw: np.matmul(a[0], a[1]),
    "exp": lambda a, kw: np.exp(a[0]),
    "log": lambda a, kw: np.log(a[0]),
    "log1p": lambda a, kw: np.log1p(a[0]),
    "sqrt": lambda a, kw: np.sqrt(a[0]),
    "sin": lambda a, kw: np.sin(a[0]),
    "cos": lambda a, kw: np.cos(a[0]),
    "tan": lambda a, kw: np.tan(a[0]),
    "tanh": lambda a, kw: np.tanh(a[0]),
    "sinh": lambda a, kw: np.sinh(a[0]),
    "cosh": lambda a, kw: np.cosh(a[0]),
    "atan": lambda a, kw: np.arctan(a[0]),
    "asin": lambda a, kw: np.arcsin(a[0]),
    "acos": lambda a, kw: np.arccos(a[0]),
    "atan2": lambda a, kw: np.arctan2(a[0], a[1]),
    "expm1": lambda a, kw: np.expm1(a[0]),
    "erf": lambda a, kw: _erf(a[0]),
    "sigmoid": lambda a, kw: _sigmoid(a[0]),
    "relu": lambda a, kw: np.maximum(a[0], 0),
    "abs": lambda a, kw: np.abs(a[0]),
    "softplus": lambda a, kw: _softplus(a[0]),
    "silu": lambda a, kw: a[0] * _sigmoid(a[0]),
    "gelu": lambda a, kw: _gelu(a[0], kw["approximate"]),
    "leaky_relu": lambda a, kw: np.where(a[0] > 0, a[0], kw["slope"] * a[0]),
    "elu": lambda a, kw: np.where(a[0] > 0, a[0], kw["alpha"] * np.expm1(np.minimum(a[0], 0))),
    "hardtanh": lambda a, kw: np.clip(a[0], kw["min"], kw["max"]),
    "logsigmoid": lambda a, kw: -_softplus(-a[0]),
    "sign": lambda a, kw: np.sign(a[0]),
    # the value; the numeric engine holds it at the point's own (engine.py, _frozen_detached)
    "detach": lambda a, kw: np.array(a[0]),
    "floor": lambda a, kw: np.floor(a[0]),
    "ceil": lambda a, kw: np.ceil(a[0]),
    "round": lambda a, kw: np.round(a[0]),
    "step": lambda a, kw: (a[0] > 0).astype(a[0].dtype),
    "sum": lambda a, kw: np.sum(a[0], axis=kw["axis"], keepdims=kw["keepdims"]),
    "mean": lambda a, kw: np.mean(a[0], axis=kw["axis"], keepdims=kw["keepdims"]),
    "var": lambda a, kw: np.var(a[0], axis=kw["axis"], ddof=kw["correction"], keepdims=kw["keepdims"]),
    "std": lambda a, kw: np.std(a[0], axis=kw["axis"], ddof=kw["correction"], keepdims=kw["keepdims"]),
    "prod": lambda a, kw: np.prod(a[0], axis=kw["axis"], keepdims=kw["keepdims"]),
    "norm": lambda a, kw: _norm(a[0], kw["p"], kw["axis"], kw["keepdims"]),
    "cumsum": lambda a, kw: np.cumsum(a[0], axis=kw["axis"]),
    "cumprod": lambda a, kw: np.cumprod(a[0], axis=kw["axis"]),
    "transpose": lambda a, kw: np.transpose(a[0], kw["axes"]),
    "expand_dims": lambda a, kw: np.expand_dims(a[0], kw["axis"]),
    "broadcast_to": lambda a, kw: np.broadcast_to(a[0], kw["shape"]),
    # the layout ops move elements: their numpy meaning is the catalogue's (language/layout.py)
    **{op: layout_forward(op) for op in LAYOUT},
    "softmax": lambda a, kw: _softmax(a[0], kw["axis"]),
    "log_softmax": lambda a, kw: _log_softmax(a[0], kw["axis"]),
    "logsumexp": lambda a, kw: _logsumexp(a[0], kw["axis"], kw["keepdims"]),
    "einsum": lambda a, kw: np.einsum(kw["subscripts"], *a),
    "outer": lambda a, kw: np.multiply.outer(a[0], a[1]),
    "dot": lambda a, kw: np.dot(a[0], a[1]),
    "trace": lambda a, kw: np.trace(a[0]),
    "eye": lambda a, kw: np.eye(kw["n"]),
    "mse_loss": lambda a, kw: _mse_loss(a[0], a[1], kw["reduction"]),
    "onehot": lambda a, kw: _onehot_ignoring(a[0], kw["num_classes"], kw.get("ignore_index")),
    "nll_loss": lambda a, kw: _classify(a[0], a, kw),
    "cross_entropy": lambda a, kw: _classify(_log_softmax(a[0], -1), a, kw),
    "lt": lambda a, kw: np.less(a[0], a[1]),
    "le": lambda a, kw: np.less_equal(a[0], a[1]),
    "gt": lambda a, kw: np.greater(a[0], a[1]),
    "ge": lambda a, kw: np.greater_equal(a[0], a[1]),
    "eq": lambda a, kw: np.equal(a[0], a[1]),
    "ne": lambda a, kw: np.not_equal(a[0], a[1]),
    "where": lambda a, kw: _where(a[0], a[1], a[2]),
    "maximum": lambda a, kw: np.maximum(a[0], a[1]),
    "minimum": lambda a, kw: np.minimum(a[0], a[1]),
    "clamp": lambda a, kw: _clamp(a[0], kw["min"], kw["max"]),
    "max": lambda a, kw: np.max(a[0], axis=kw["axis"], keepdims=kw["keepdims"]),
    "min": lambda a, kw: np.min(a[0], axis=kw["axis"], keepdims=kw["keepdims"]),
    "gather": lambda a, kw: layout.gather(a[0], a[1], kw["axis"]),
    "scatter_add": lambda a, kw: layout.scatter_add(a[0], a[1], a[2], kw["axis"]),
    "index_select": lambda a, kw: layout.index_select(a[0], a[1], kw["axis"]),
    "embedding": lambda a, kw: layout.embedding(a[0], a[1]),
    "layer_norm": _layer_norm,
    "rms_norm": _rms_norm,
    "batch_norm": _batch_norm,
    "group_norm": _group_norm,
    "attention": _attention,
    "binary_cross_entropy": lambda a, kw: _loss(
        -(a[1] * np.log(a[0]) + (1 - a[1]) * np.log1p(-a[0])), kw["reduction"]
    ),
    "binary_cross_entropy_with_logits": lambda a, kw: _loss(_softplus(a[0]) - a[0] * a[1], kw["reduction"]),
    "l1_loss": lambda a, kw: _loss(np.abs(a[0] - a[1]), kw["reduction"]),
    "smooth_l1_loss": lambda a, kw: _loss(_smooth_l1(a[0] - a[1], kw["beta"]), kw["reduction"]),
    "kl_div": lambda a, kw: _kl_div(a[0], a[1], kw),
    "conv1d": lambda a, kw: _conv(a, kw, 1),
    "conv2d": lambda a, kw: _conv(a, kw, 2),
    "avg_pool2d": lambda a, kw: _pool(a[0], kw, np.mean),
    "max_pool2d": lambda a, kw: _pool(a[0], kw, np.max),
    "det": lambda a, kw: np.linalg.det(a[0]),
    "inv": lambda a, kw: _nonsingular(np.linalg.inv, a[0]),
    "logdet": lambda a, kw: _logdet(a[0]),
    "solve": lambda a, kw: _nonsingular(np.linalg.solve, a[0], a[1]),
    "cholesky": lambda a, kw: _cholesky(a[0]),
    "index": lambda a, kw: a[0][kw["at"]],
    "take": lambda a, kw: _take(a[0], a[1]),
}

# Ops that move elements without computing on them keep integer (and bool) arrays as they are.
KEEPS_DTYPE = frozenset(
    {
        "transpose",
        "expand_dims",
        "broadcast_to",
        "index",
        "take",
        *(set(LAYOUT) - {"pad", "unslice", "undiagonal"}),
    }
)
# Arguments that reach the op as they are: class labels and indices must stay integers, and
# comparisons and where's condition need no float (comparing ints as ints is exact).
LABEL_ARGS: dict[str, frozenset[int]] = {
    "onehot": frozenset({0}),
    "nll_loss": frozenset({1}),
    "cross_entropy": frozenset({1}),
    "take": frozenset({1}),
    **{op: frozenset({1}) for op in ("gather", "scatter_add", "index_select", "embedding")},
    "where": frozenset({0}),
    **{op: frozenset({0, 1}) for op in ("lt", "le", "gt", "ge", "eq", "ne")},
}
