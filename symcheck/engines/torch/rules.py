"""The torch engine's rule table: each op of the catalogue as torch ops (`TABLE`).

Torch's own derivatives are used as they are; this table only says which torch op computes each
catalogue op, so that torch.autograd differentiates it. One entry per catalogue op.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from symcheck.language.ir import KwValue

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


def _spread(fn: Callable[..., torch.Tensor]) -> Lowering:
    """torch.var / torch.std with numpy's axes (None: all; (): none, where each is its own mean)."""

    def lower(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
        (x,) = args
        axes: tuple[int, ...] | None = kw["axis"]
        if axes is None:
            axes = tuple(range(x.ndim))
        if not axes:
            return x - x  # one element per group: no spread (N - correction > 0 means correction 0)
        return fn(x, dim=axes, correction=kw["correction"], keepdim=bool(kw["keepdims"]))

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


def _onehot_ignoring(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    ignored = kw.get("ignore_index")
    if ignored is None:
        return _onehot(args, kw)
    labels = args[0]
    kept = labels != ignored
    hot = _onehot([torch.where(kept, labels, torch.zeros_like(labels))], kw)
    return hot * kept[..., None]


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
        if kw.get("weight") or kw.get("ignore_index") is not None or kw.get("label_smoothing"):
            return _weighted_classification(fn, args, kw)
        scores, target = args
        labels, valid = _labels(target, scores.shape[-1])
        if scores.ndim == 1:
            # A single example: torch's (C,) / () form is newer and less travelled than (1, C) / (1,).
            value = fn(scores.unsqueeze(0), labels.reshape(1), reduction=kw["reduction"]).reshape(())
        else:
            value = fn(scores, labels, reduction=kw["reduction"])
        return _poison(value, scores, valid)

    return lower


def _weighted_classification(
    fn: Callable[..., torch.Tensor], args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]
) -> torch.Tensor:
    """torch's own with weight=, ignore_index=, label_smoothing=; where the weight needs a
    gradient (torch has none for it), torch's formula written in torch ops."""
    scores, target = args[0], args[1]
    weight = args[2] if kw.get("weight") else None
    ignored = kw.get("ignore_index")
    smoothing = float(kw.get("label_smoothing") or 0.0)
    if scores.ndim == 1:
        scores, target = scores.unsqueeze(0), target.reshape(1)
    extra = {"label_smoothing": smoothing} if fn is F.cross_entropy else {}
    if weight is None or not weight.requires_grad:
        return fn(scores, target, weight=weight, ignore_index=-100 if ignored is None else ignored,
                  reduction=kw["reduction"], **extra).reshape(())  # fmt: skip
    logp = F.log_softmax(scores, dim=-1) if fn is F.cross_entropy else scores
    kept = (target != ignored) if ignored is not None else torch.ones_like(target, dtype=torch.bool)
    hot = F.one_hot(torch.where(kept, target, torch.zeros_like(target)), scores.shape[-1]).to(logp.dtype)
    hot = hot * kept[:, None]
    picked = -(hot * weight * logp).sum(-1)
    smooth = -(kept[:, None] * weight * logp).sum(-1) / scores.shape[-1]
    losses = (1 - smoothing) * picked + smoothing * smooth
    return losses.sum() if kw["reduction"] == "sum" else losses.sum() / (hot * weight).sum()


def _convolution(fn: Callable[..., torch.Tensor]) -> Lowering:
    def lower(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
        window = {key: kw[key] for key in ("stride", "padding", "dilation", "groups")}
        return fn(args[0], args[1], _optional(args, 2), **window)

    return lower


def _singular_nan(result: torch.Tensor, info: torch.Tensor) -> torch.Tensor:
    """A linear-algebra result, NaN where torch reports the matrix singular (not positive definite):
    a domain the checker reports, where torch.linalg.inv would raise."""
    return torch.where(info.reshape(info.shape + (1,) * (result.ndim - info.ndim)) == 0, result, torch.nan)


def _prod(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    axes = kw["axis"]
    if axes is None:
        out = torch.prod(args[0])
        return out.reshape((1,) * args[0].ndim) if kw["keepdims"] else out
    return torch.prod(args[0], dim=axes[0], keepdim=bool(kw["keepdims"]))


def _squeeze(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    axes = kw["axis"]
    return torch.squeeze(args[0]) if axes is None else torch.squeeze(args[0], dim=tuple(axes))


def _flip(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    axes = kw["axis"]
    return torch.flip(args[0], dims=tuple(range(args[0].ndim)) if axes is None else tuple(axes))


def _slice(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    return args[0][tuple(i if isinstance(i, int) else slice(*i) for i in kw["items"])]


def _unslice(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    """torch's own adjoint of slicing, slice_scatter, one axis at a time into zeros."""
    g = args[0]
    for axis, (n, start, step) in enumerate(zip(kw["shape"], kw["start"], kw["step"], strict=True)):
        size = list(g.shape)
        size[axis] = n
        end = start + (g.shape[axis] - 1) * step + 1
        g = torch.slice_scatter(g.new_zeros(size), g, dim=axis, start=start, end=end, step=step)
    return g


def _undiagonal(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    """torch's adjoint of diagonal, diagonal_scatter, into zeros."""
    g = args[0]
    zeros = g.new_zeros(kw["shape"])
    return torch.diagonal_scatter(zeros, g, offset=kw["offset"], dim1=0, dim2=1)


def _optional(args: Sequence[torch.Tensor], k: int) -> torch.Tensor | None:
    return args[k] if len(args) > k else None


def _layer_norm(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    x = args[0]
    shape = tuple(x.shape[x.ndim - kw["dims"] :])
    return F.layer_norm(x, shape, _optional(args, 1), _optional(args, 2), eps=kw["eps"])


def _rms_norm(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    x = args[0]
    return F.rms_norm(x, tuple(x.shape[x.ndim - kw["dims"] :]), _optional(args, 1), eps=kw["eps"])


def _batch_norm(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    return F.batch_norm(
        args[0], None, None, _optional(args, 1), _optional(args, 2), training=True, eps=kw["eps"]
    )


def _attention(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    q, k, v = args
    return F.scaled_dot_product_attention(q, k, v, is_causal=bool(kw["causal"]), scale=kw["scale"])


def _kl_div(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    with warnings.catch_warnings():  # reduction=mean is torch's default and warns that it is: asked for here
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(args[0], args[1], reduction=kw["reduction"], log_target=bool(kw["log_target"]))


def _binary_cross_entropy(args: Sequence[torch.Tensor], kw: Mapping[str, KwValue]) -> torch.Tensor:
    p, y = args
    if y.requires_grad:  # torch's own has no derivative for the target: its formula, in torch
        losses = -(y * torch.clamp(torch.log(p), min=-100) + (1 - y) * torch.clamp(torch.log1p(-p), min=-100))
        return {"mean": torch.mean, "sum": torch.sum}.get(kw["reduction"], lambda t: t)(losses)
    return F.binary_cross_entropy(p, y, reduction=kw["reduction"])


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
    "log1p": lambda a, kw: torch.log1p(a[0]),
    "sqrt": lambda a, kw: torch.sqrt(a[0]),
    "sin": lambda a, kw: torch.sin(a[0]),
    "cos": lambda a, kw: torch.cos(a[0]),
    "tan": lambda a, kw: torch.tan(a[0]),
    "tanh": lambda a, kw: torch.tanh(a[0]),
    "sinh": lambda a, kw: torch.sinh(a[0]),
    "cosh": lambda a, kw: torch.cosh(a[0]),
    "atan": lambda a, kw: torch.atan(a[0]),
    "asin": lambda a, kw: torch.asin(a[0]),
    "acos": lambda a, kw: torch.acos(a[0]),
    "atan2": lambda a, kw: torch.atan2(a[0], a[1]),
    "expm1": lambda a, kw: torch.expm1(a[0]),
    "erf": lambda a, kw: torch.erf(a[0]),
    "sigmoid": lambda a, kw: torch.sigmoid(a[0]),
    "relu": lambda a, kw: torch.relu(a[0]),
    "abs": lambda a, kw: torch.abs(a[0]),
    "softplus": lambda a, kw: F.softplus(a[0]),
    "silu": lambda a, kw: F.silu(a[0]),
    "gelu": lambda a, kw: F.gelu(a[0], approximate=kw["approximate"]),
    "leaky_relu": lambda a, kw: F.leaky_relu(a[0], negative_slope=kw["slope"]),
    "elu": lambda a, kw: F.elu(a[0], alpha=kw["alpha"]),
    "hardtanh": lambda a, kw: F.hardtanh(a[0], min_val=kw["min"], max_val=kw["max"]),
    "logsigmoid": lambda a, kw: F.logsigmoid(a[0]),
    "sign": lambda a, kw: torch.sign(a[0]),
    "detach": lambda a, kw: a[0].detach(),
    "floor": lambda a, kw: torch.floor(a[0]),
    "ceil": lambda a, kw: torch.ceil(a[0]),
    "round": lambda a, kw: torch.round(a[0]),
    "step": _step,
    "sum": _reduce(torch.sum),
    "mean": _reduce(torch.mean),
    "var": _spread(torch.var),
    "std": _spread(torch.std),
    "prod": _prod,
    "norm": lambda a, kw: torch.linalg.vector_norm(
        a[0], ord={"1": 1, "2": 2, "fro": 2, "inf": math.inf}[kw["p"]], dim=kw["axis"], keepdim=kw["keepdims"]
    ),
    "cumsum": lambda a, kw: torch.cumsum(a[0], dim=kw["axis"]),
    "cumprod": lambda a, kw: torch.cumprod(a[0], dim=kw["axis"]),
    "transpose": lambda a, kw: torch.permute(a[0], kw["axes"]),
    "expand_dims": _expand_dims,
    "broadcast_to": lambda a, kw: torch.broadcast_to(a[0], kw["shape"]),
    "reshape": lambda a, kw: torch.reshape(a[0], kw["shape"]),
    "flatten": lambda a, kw: torch.flatten(a[0], start_dim=kw["start_dim"], end_dim=kw["end_dim"]),
    "squeeze": _squeeze,
    "flip": _flip,
    "tril": lambda a, kw: torch.tril(a[0], diagonal=kw["k"]),
    "triu": lambda a, kw: torch.triu(a[0], diagonal=kw["k"]),
    "diagonal": lambda a, kw: torch.diagonal(a[0], offset=kw["offset"], dim1=0, dim2=1),
    "undiagonal": _undiagonal,
    "concat": lambda a, kw: torch.cat(list(a), dim=kw["axis"]),
    "stack": lambda a, kw: torch.stack(list(a), dim=kw["axis"]),
    "pad": lambda a, kw: F.pad(a[0], tuple(kw["widths"]), mode="constant", value=kw["value"]),
    "slice": _slice,
    "unslice": _unslice,
    "unfold": lambda a, kw: F.unfold(
        a[0], kw["kernel"], dilation=kw["dilation"], padding=kw["padding"], stride=kw["stride"]
    ),
    "fold": lambda a, kw: F.fold(
        a[0],
        kw["output_size"],
        kw["kernel"],
        dilation=kw["dilation"],
        padding=kw["padding"],
        stride=kw["stride"],
    ),
    "conv1d": _convolution(F.conv1d),
    "conv2d": _convolution(F.conv2d),
    "avg_pool2d": lambda a, kw: F.avg_pool2d(a[0], kw["kernel"], stride=kw["stride"], padding=kw["padding"]),
    "max_pool2d": lambda a, kw: F.max_pool2d(a[0], kw["kernel"], stride=kw["stride"]),
    "softmax": lambda a, kw: F.softmax(a[0], dim=kw["axis"]),
    "log_softmax": lambda a, kw: F.log_softmax(a[0], dim=kw["axis"]),
    "logsumexp": _reduce(torch.logsumexp),
    "einsum": lambda a, kw: torch.einsum(kw["subscripts"], *a),
    "outer": lambda a, kw: torch.outer(a[0], a[1]),
    "dot": lambda a, kw: torch.dot(a[0], a[1]),
    "trace": lambda a, kw: torch.trace(a[0]),
    "eye": lambda a, kw: torch.eye(kw["n"]),  # dtype and device are set in `Lowerer.call`
    "mse_loss": _mse_loss,
    "onehot": _onehot_ignoring,
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
    "gather": lambda a, kw: torch.gather(a[0], kw["axis"], a[1]),
    "scatter_add": lambda a, kw: torch.scatter_add(a[0], kw["axis"], a[1], a[2]),
    "index_select": lambda a, kw: torch.index_select(a[0], kw["axis"], a[1]),
    "embedding": lambda a, kw: F.embedding(a[1], a[0]),
    "layer_norm": _layer_norm,
    "rms_norm": _rms_norm,
    "batch_norm": _batch_norm,
    "group_norm": lambda a, kw: F.group_norm(
        a[0], kw["groups"], _optional(a, 1), _optional(a, 2), eps=kw["eps"]
    ),
    "attention": _attention,
    "binary_cross_entropy": _binary_cross_entropy,
    "binary_cross_entropy_with_logits": lambda a, kw: F.binary_cross_entropy_with_logits(
        a[0], a[1], reduction=kw["reduction"]
    ),
    "l1_loss": lambda a, kw: F.l1_loss(a[0], a[1], reduction=kw["reduction"]),
    "smooth_l1_loss": lambda a, kw: F.smooth_l1_loss(a[0], a[1], reduction=kw["reduction"], beta=kw["beta"]),
    "kl_div": _kl_div,
    "det": lambda a, kw: torch.linalg.det(a[0]),
    "inv": lambda a, kw: _singular_nan(*torch.linalg.inv_ex(a[0])),
    "logdet": lambda a, kw: torch.logdet(a[0]),
    "solve": lambda a, kw: _singular_nan(*torch.linalg.solve_ex(a[0], a[1])),
    "cholesky": lambda a, kw: _singular_nan(*torch.linalg.cholesky_ex((a[0] + a[0].mT) / 2)),
    "index": lambda a, kw: a[0][kw["at"]],
    "take": _take,
}

# Ops that move elements without computing on them keep integer (and bool) tensors as they are.
KEEPS_DTYPE = frozenset(
    {"transpose", "expand_dims", "broadcast_to", "index", "take", "reshape", "flatten", "squeeze", "flip"}
    | {"tril", "triu", "diagonal", "concat", "stack", "slice"}
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
