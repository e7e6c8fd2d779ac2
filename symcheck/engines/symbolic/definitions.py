"""The layers and losses of real models as the symbolic engine reads them: each op's definition,
written in symcheck's own language over its arguments a0, a1, ... (layer_norm is
(a0 - mean(a0))/sqrt(var(a0, correction=0) + eps)*a1 + a2).

Closed forms lower the definition in place of the call, so a gradient reads like the math
(`(x - mean(x, axis=1, keepdims=True))/sqrt(var(...) + 1e-05)`); the expansion writes it out element
by element. The other engines compute these ops their own way: torch with torch.nn.functional, the
autograd engine with its own composites, the numeric engine in numpy.
"""

from __future__ import annotations

from functools import lru_cache

from symcheck.language.catalogue import window_count
from symcheck.language.ir import Call, Program, TensorType
from symcheck.language.parser import bind, parse

DEFINED = frozenset(
    {
        "layer_norm",
        "rms_norm",
        "batch_norm",
        "group_norm",
        "attention",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "l1_loss",
        "smooth_l1_loss",
        "kl_div",
        "conv1d",
        "conv2d",
        "avg_pool2d",
        "max_pool2d",
    }
)


def _number(value: float) -> str:
    """A keyword's float as a literal of the language (exact: 1e-05 is 1/100000)."""
    return repr(float(value))


def _tuple(values: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, values)) + ("," if len(values) == 1 else "") + ")"


def _normalised(x: str, axes: tuple[int, ...], eps: float) -> str:
    over = f"axis={_tuple(axes)}, keepdims=True"
    return f"({x} - mean({x}, {over}))/sqrt(var({x}, {over}, correction=0) + {_number(eps)})"


def _reduced(elementwise: str, reduction: str, batch: int = 1) -> str:
    if reduction == "none":
        return elementwise
    if reduction == "batchmean":
        return f"sum({elementwise})/{batch}"
    return f"{reduction}({elementwise})"


def _text(op: str, kw: dict, shapes: tuple[tuple[int, ...], ...]) -> str:
    x = shapes[0]
    n = len(shapes)
    if op in ("layer_norm", "rms_norm"):
        axes = tuple(range(len(x) - kw["dims"], len(x)))
        if op == "layer_norm":
            text = _normalised("a0", axes, kw["eps"])
        else:
            text = f"a0/sqrt(mean(a0^2, axis={_tuple(axes)}, keepdims=True) + {_number(kw['eps'])})"
        return text + ("*a1" if n > 1 else "") + (" + a2" if n > 2 else "")
    if op in ("batch_norm", "group_norm"):
        per_channel = (x[1],) + (1,) * (len(x) - 2)  # weight and bias along axis 1
        scale = "*a1" if len(x) == 2 else f"*reshape(a1, shape={_tuple(per_channel)})"
        shift = " + a2" if len(x) == 2 else f" + reshape(a2, shape={_tuple(per_channel)})"
        if op == "batch_norm":
            text = _normalised("a0", (0, *range(2, len(x))), kw["eps"])
        else:
            grouped = f"reshape(a0, shape=({x[0]}, {kw['groups']}, -1))"
            text = f"reshape({_normalised(grouped, (2,), kw['eps'])}, shape={_tuple(x)})"
        return text + (scale if n > 1 else "") + (shift if n > 2 else "")
    if op == "attention":
        q, k = shapes[0], shapes[1]
        rank = len(k)
        keys = (
            "a1.T" if rank == 2 else f"transpose(a1, axes={_tuple((*range(rank - 2), rank - 1, rank - 2))})"
        )
        scale = f"1/sqrt({q[-1]})" if kw["scale"] is None else _number(kw["scale"])
        scores = f"(a0 @ {keys})*{scale}"
        if not kw["causal"]:
            return f"softmax({scores}) @ a2"
        # query i sees keys 0..i: softmax over those alone, the others weighted 0
        mask = f"tril(broadcast_to(1, shape=({q[-2]}, {k[-2]})))"
        weights = f"exp({scores})*{mask}"
        return f"({weights})/sum({weights}, axis=-1, keepdims=True) @ a2"
    if op in ("conv1d", "conv2d"):
        return _convolution(op, kw, shapes)
    if op in ("avg_pool2d", "max_pool2d"):
        (n, c, h, w), kernel = x, kw["kernel"]
        ho, wo = (window_count((h, w)[i], kernel[i], kw["stride"][i], kw["padding"][i], 1) for i in (0, 1))
        window = f"kernel={_tuple(kernel)}, stride={_tuple(kw['stride'])}, padding={_tuple(kw['padding'])}"
        cols = f"unfold(a0, {window})"
        windows = f"reshape({cols}, shape=({n}, {c}, {kernel[0] * kernel[1]}, {ho * wo}))"
        reduce = "mean" if op == "avg_pool2d" else "max"
        return f"reshape({reduce}({windows}, axis=2), shape=({n}, {c}, {ho}, {wo}))"
    reduction = kw["reduction"]
    if op == "binary_cross_entropy":
        return _reduced("-(a1*log(a0) + (1 - a1)*log(1 - a0))", reduction)
    if op == "binary_cross_entropy_with_logits":
        return _reduced("softplus(a0) - a0*a1", reduction)
    if op == "l1_loss":
        return _reduced("abs(a0 - a1)", reduction)
    if op == "smooth_l1_loss":
        beta = kw["beta"]
        if beta == 0:
            return _reduced("abs(a0 - a1)", reduction)
        b = _number(beta)
        return _reduced(f"where(abs(a0 - a1) < {b}, 0.5*(a0 - a1)^2/{b}, abs(a0 - a1) - 0.5*{b})", reduction)
    if op == "kl_div":
        pointwise = "exp(a1)*(a1 - a0)" if kw["log_target"] else "a1*(log(a1) - a0)"
        return _reduced(pointwise, reduction, batch=x[0] if x else 1)
    raise AssertionError(f"no definition of {op}")


def _convolution(op: str, kw: dict, shapes: tuple[tuple[int, ...], ...]) -> str:
    """A convolution as torch documents it: the weight's filters as rows, times unfold's columns,
    group by group (the groups a batch axis of @)."""
    x, w = shapes[0], shapes[1]
    groups = kw["groups"]
    if op == "conv1d":  # a 2-D convolution of height 1
        image, weight = (
            f"reshape(a0, shape=({x[0]}, {x[1]}, 1, {x[2]}))",
            f"reshape(a1, shape=({w[0]}, {w[1]}, 1, {w[2]}))",
        )
        size, kernel = (1, x[2]), (1, w[2])
        stride, padding, dilation = (1, kw["stride"]), (0, kw["padding"]), (1, kw["dilation"])
    else:
        image, weight = "a0", "a1"
        size, kernel = x[2:], w[2:]
        stride, padding, dilation = kw["stride"], kw["padding"], kw["dilation"]
    ho, wo = (window_count(size[i], kernel[i], stride[i], padding[i], dilation[i]) for i in (0, 1))
    cols = (
        f"unfold({image}, kernel={_tuple(kernel)}, stride={_tuple(stride)}, padding={_tuple(padding)}, "
        f"dilation={_tuple(dilation)})"
    )
    if groups == 1:
        product = f"reshape({weight}, shape=({w[0]}, -1)) @ {cols}"
    else:
        product = (
            f"reshape({weight}, shape=({groups}, {w[0] // groups}, -1)) @ "
            f"reshape({cols}, shape=({x[0]}, {groups}, -1, {ho * wo}))"
        )
    out_shape = (x[0], w[0], wo) if op == "conv1d" else (x[0], w[0], ho, wo)
    text = f"reshape({product}, shape={_tuple(out_shape)})"
    if len(shapes) > 2:
        text += f" + reshape(a2, shape={_tuple((w[0],) + (1,) * (len(out_shape) - 2))})"
    return text


@lru_cache(maxsize=256)
def _bound(op: str, kwargs: tuple, types: tuple[TensorType, ...]) -> Program:
    text = _text(op, dict(kwargs), tuple(t.shape for t in types))
    return bind(parse(text), {f"a{i}": t for i, t in enumerate(types)})


def definition(call: Call) -> Program:
    """The call's op as a program over inputs a0, a1, ... of its arguments' types."""
    types = tuple(a.type for a in call.args)
    assert all(t is not None for t in types)
    return _bound(call.op, call.kwargs, types)  # type: ignore[arg-type]
