"""The autograd engine's rule table: every primitive op with its vector-jacobian products.

Each primitive is a numpy function made into a Tensor op by `primitive(name, forward)`; the
`defvjp` line below it gives, for each argument in order, the cotangent of that argument (reverse
mode), and the `defjvp` line what that argument's tangent adds to the output's (forward mode). The
primitive's name is the op's name in the catalogue, so the engine lowers the IR through this table
by name (`TABLE`). Ops that are compositions of primitives (outer, dot, the losses) are plain
functions registered with `@composite`; their derivatives follow from the primitives' rules.

Broadcasting: every binary op follows numpy's broadcasting; the adjoint of broadcasting is
summing, done in one place, `unbroadcast`.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence

import numpy as np

from symcheck.engines.autograd.tensor import (
    PRIMITIVES,
    VJP,
    ArrayLike,
    Shape,
    Tensor,
    as_tensors,
    defjvp,
    defvjp,
    defvjp_variadic,
    primitive,
)
from symcheck.language import layout
from symcheck.language.catalogue import einsum_parts, pad_pairs, squeezed_axes

_COMPOSITES: dict[str, Callable[..., Tensor]] = {}


def composite(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Register a function written in primitives as the op of its name (in `TABLE`, at the end)."""
    _COMPOSITES[fn.__name__] = fn
    return fn


# ---------------------------------------------------------------- broadcasting and its adjoint


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


def _no_tangent(t: Tensor, ans: Tensor, *args: Tensor, **kwargs: object) -> Tensor:
    """The JVP rule of an argument that does not move the output (a label, a condition)."""
    return Tensor(np.zeros(ans.shape, dtype=ans.dtype))


# ---------------------------------------------------------------- arithmetic

add = primitive("add", np.add)
defvjp(add, lambda g, ans, x, y: unbroadcast(g, x.shape),
            lambda g, ans, x, y: unbroadcast(g, y.shape))  # fmt: skip
defjvp(add, lambda t, ans, x, y: t, lambda t, ans, x, y: t)

sub = primitive("sub", np.subtract)
defvjp(sub, lambda g, ans, x, y: unbroadcast(g, x.shape),
            lambda g, ans, x, y: unbroadcast(-g, y.shape))  # fmt: skip
defjvp(sub, lambda t, ans, x, y: t, lambda t, ans, x, y: -t)

mul = primitive("mul", np.multiply)
defvjp(mul, lambda g, ans, x, y: unbroadcast(g * y, x.shape),
            lambda g, ans, x, y: unbroadcast(g * x, y.shape))  # fmt: skip
defjvp(mul, lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t)

div = primitive("div", np.divide)
defvjp(div, lambda g, ans, x, y: unbroadcast(g / y, x.shape),
            lambda g, ans, x, y: unbroadcast(-g * x / y**2, y.shape))  # fmt: skip
defjvp(div, lambda t, ans, x, y: t / y, lambda t, ans, x, y: -t * x / y**2)


# d/dx x^y = y x^(y-1). Where y == 0 the exponent is nudged to 0 so that 0^-1 = inf never meets
# the factor y = 0 (that would be nan); the term is zero there either way.
def _power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x^y; integers in float (numpy refuses an integer to a negative integer power)."""
    if x.dtype.kind in "iub" and y.dtype.kind in "iub":
        return np.power(x.astype(np.float64), y)
    return np.power(x, y)


pow = primitive("pow", _power)
defvjp(pow, lambda g, ans, x, y: unbroadcast(g * y * x ** (y - 1 + (y.data == 0)), x.shape),
            lambda g, ans, x, y: unbroadcast(g * ans * log(x), y.shape))  # fmt: skip
defjvp(pow, lambda t, ans, x, y: t * y * x ** (y - 1 + (y.data == 0)),
            lambda t, ans, x, y: t * ans * log(x))  # fmt: skip

neg = primitive("neg", np.negative)
defvjp(neg, lambda g, ans, x: -g)
defjvp(neg, lambda t, ans, x: -t)

# ---------------------------------------------------------------- constants: no argument, no rule

pi = primitive("pi", lambda: np.asarray(np.pi))
defvjp(pi)
e = primitive("e", lambda: np.asarray(np.e))
defvjp(e)

# ---------------------------------------------------------------- elementwise functions

exp = primitive("exp", np.exp)
defvjp(exp, lambda g, ans, x: g * ans)
defjvp(exp, lambda t, ans, x: t * ans)

log = primitive("log", np.log)
defvjp(log, lambda g, ans, x: g / x)
defjvp(log, lambda t, ans, x: t / x)

log1p = primitive("log1p", np.log1p)
defvjp(log1p, lambda g, ans, x: g / (1 + x))
defjvp(log1p, lambda t, ans, x: t / (1 + x))

sqrt = primitive("sqrt", np.sqrt)
defvjp(sqrt, lambda g, ans, x: g / (2 * ans))
defjvp(sqrt, lambda t, ans, x: t / (2 * ans))

sin = primitive("sin", np.sin)
defvjp(sin, lambda g, ans, x: g * cos(x))
defjvp(sin, lambda t, ans, x: t * cos(x))

cos = primitive("cos", np.cos)
defvjp(cos, lambda g, ans, x: -g * sin(x))
defjvp(cos, lambda t, ans, x: -t * sin(x))

tan = primitive("tan", np.tan)
defvjp(tan, lambda g, ans, x: g / cos(x) ** 2)
defjvp(tan, lambda t, ans, x: t / cos(x) ** 2)

tanh = primitive("tanh", np.tanh)
defvjp(tanh, lambda g, ans, x: g * (1 - ans**2))
defjvp(tanh, lambda t, ans, x: t * (1 - ans**2))

sinh = primitive("sinh", np.sinh)
defvjp(sinh, lambda g, ans, x: g * cosh(x))
defjvp(sinh, lambda t, ans, x: t * cosh(x))

cosh = primitive("cosh", np.cosh)
defvjp(cosh, lambda g, ans, x: g * sinh(x))
defjvp(cosh, lambda t, ans, x: t * sinh(x))

atan = primitive("atan", np.arctan)
defvjp(atan, lambda g, ans, x: g / (1 + x**2))
defjvp(atan, lambda t, ans, x: t / (1 + x**2))

asin = primitive("asin", np.arcsin)
defvjp(asin, lambda g, ans, x: g / sqrt(1 - x**2))
defjvp(asin, lambda t, ans, x: t / sqrt(1 - x**2))

acos = primitive("acos", np.arccos)
defvjp(acos, lambda g, ans, x: -g / sqrt(1 - x**2))
defjvp(acos, lambda t, ans, x: -t / sqrt(1 - x**2))

# atan2(y, x): d/dy = x/(x^2 + y^2), d/dx = -y/(x^2 + y^2)
atan2 = primitive("atan2", np.arctan2)
defvjp(atan2, lambda g, ans, y, x: unbroadcast(g * x / (x**2 + y**2), y.shape),
              lambda g, ans, y, x: unbroadcast(-g * y / (x**2 + y**2), x.shape))  # fmt: skip
defjvp(atan2, lambda t, ans, y, x: t * x / (x**2 + y**2),
              lambda t, ans, y, x: -t * y / (x**2 + y**2))  # fmt: skip

expm1 = primitive("expm1", np.expm1)
defvjp(expm1, lambda g, ans, x: g * exp(x))
defjvp(expm1, lambda t, ans, x: t * exp(x))

_ERF = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    """The C library's erf element by element (numpy has none)."""
    return np.asarray(_ERF(x), dtype=x.dtype if x.dtype.kind == "f" else np.float64)


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
erf = primitive("erf", _erf)
defvjp(erf, lambda g, ans, x: g * _TWO_OVER_SQRT_PI * exp(-(x**2)))
defjvp(erf, lambda t, ans, x: t * _TWO_OVER_SQRT_PI * exp(-(x**2)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), as e^-log(1 + e^-x): no overflow for any x, accurate in both tails."""
    return np.exp(-np.logaddexp(0, -x))


sigmoid = primitive("sigmoid", _sigmoid)
defvjp(sigmoid, lambda g, ans, x: g * ans * (1 - ans))
defjvp(sigmoid, lambda t, ans, x: t * ans * (1 - ans))


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), computed as logaddexp(0, x) so that large x does not overflow."""
    return np.logaddexp(0, x)


softplus = primitive("softplus", _softplus)
defvjp(softplus, lambda g, ans, x: g * sigmoid(x))
defjvp(softplus, lambda t, ans, x: t * sigmoid(x))

# silu(x) = x sigmoid(x): silu' = s + x s (1 - s) = s (1 + x (1 - s)), with s = sigmoid(x)
silu = primitive("silu", lambda x: x * _sigmoid(x))
defvjp(silu, lambda g, ans, x: g * sigmoid(x) * (1 + x * (1 - sigmoid(x))))
defjvp(silu, lambda t, ans, x: t * sigmoid(x) * (1 + x * (1 - sigmoid(x))))

# gelu(x) = x Phi(x), Phi the normal CDF: gelu' = Phi(x) + x phi(x), phi(x) = exp(-x^2/2)/sqrt(2 pi).
# approximate="tanh": gelu = x/2 (1 + tanh u), u = c (x + k x^3), c = sqrt(2/pi), k = 0.044715:
# gelu' = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) c (1 + 3 k x^2)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_CUBIC = 0.044715


def _gelu(x: np.ndarray, *, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _gelu_slope(x: Tensor, approximate: str) -> Tensor:
    if approximate == "tanh":
        t = tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x**2)
    cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
    return cdf + x * exp(-(x**2) / 2) / math.sqrt(2 * math.pi)


gelu = primitive("gelu", _gelu)
defvjp(gelu, lambda g, ans, x, *, approximate: g * _gelu_slope(x, approximate))
defjvp(gelu, lambda t, ans, x, *, approximate: t * _gelu_slope(x, approximate))

# logsigmoid(x) = -softplus(-x): logsigmoid' = sigmoid(-x)
logsigmoid = primitive("logsigmoid", lambda x: -_softplus(-x))
defvjp(logsigmoid, lambda g, ans, x: g * sigmoid(-x))
defjvp(logsigmoid, lambda t, ans, x: t * sigmoid(-x))

relu = primitive("relu", lambda x: np.maximum(x, 0))
defvjp(relu, lambda g, ans, x: g * step(x))  # step(0) = 0: relu'(0) = 0, as in torch
defjvp(relu, lambda t, ans, x: t * step(x))

# leaky_relu: slope where x <= 0 (at 0 too, as torch); elu: alpha*e^x where x <= 0 (alpha at 0)
leaky_relu = primitive("leaky_relu", lambda x, *, slope: np.where(x > 0, x, slope * x))
defvjp(leaky_relu, lambda g, ans, x, *, slope: g * (step(x) + slope * (1 - step(x))))
defjvp(leaky_relu, lambda t, ans, x, *, slope: t * (step(x) + slope * (1 - step(x))))

elu = primitive("elu", lambda x, *, alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))))
defvjp(elu, lambda g, ans, x, *, alpha: g * (step(x) + alpha * exp(x) * (1 - step(x))))
defjvp(elu, lambda t, ans, x, *, alpha: t * (step(x) + alpha * exp(x) * (1 - step(x))))

# hardtanh: 1 strictly inside (min, max), 0 at the bounds and outside (torch's; clamp's is 1 at them)
hardtanh = primitive("hardtanh", lambda x, *, min, max: np.clip(x, min, max))
defvjp(hardtanh, lambda g, ans, x, *, min, max: g * gt(x, min) * lt(x, max))
defjvp(hardtanh, lambda t, ans, x, *, min, max: t * gt(x, min) * lt(x, max))

abs = primitive("abs", np.abs)
defvjp(abs, lambda g, ans, x: g * sign(x))  # sign(0) = 0: abs'(0) = 0, as in torch
defjvp(abs, lambda t, ans, x: t * sign(x))

# ---------------------------------------------------------------- non-differentiable
# Piecewise constant: the derivative is 0 wherever it exists. Their outputs are constants (see
# NONDIFFERENTIABLE), so no rule is ever called; the zero rules are here to make that explicit.

sign = primitive("sign", np.sign)
defvjp(sign, lambda g, ans, x: 0 * g)
defjvp(sign, _no_tangent)

step = primitive("step", lambda x: (x > 0).astype(x.dtype))
defvjp(step, lambda g, ans, x: 0 * g)
defjvp(step, _no_tangent)

detach = primitive("detach", lambda x: np.array(x))  # the value, a constant: no gradient flows back
defvjp(detach, lambda g, ans, x: 0 * g)
defjvp(detach, _no_tangent)

floor = primitive("floor", np.floor)
defvjp(floor, lambda g, ans, x: 0 * g)
defjvp(floor, _no_tangent)

ceil = primitive("ceil", np.ceil)
defvjp(ceil, lambda g, ans, x: 0 * g)
defjvp(ceil, _no_tangent)

round = primitive("round", np.round)  # halves to even, as torch.round
defvjp(round, lambda g, ans, x: 0 * g)
defjvp(round, _no_tangent)


def _no_gradient(arg: int) -> VJP:
    """The rule of an argument nothing flows back to: zeros of its shape (never 0 * g, which is nan
    where g is infinite)."""
    return lambda g, ans, *args, **kwargs: Tensor(np.zeros(args[arg].shape, dtype=g.dtype))


# Comparisons give bools; an op that meets one reads it as 0/1 (see `_numbers`).
lt = primitive("lt", np.less)
defvjp(lt, _no_gradient(0), _no_gradient(1))
defjvp(lt, _no_tangent, _no_tangent)

le = primitive("le", np.less_equal)
defvjp(le, _no_gradient(0), _no_gradient(1))
defjvp(le, _no_tangent, _no_tangent)

gt = primitive("gt", np.greater)
defvjp(gt, _no_gradient(0), _no_gradient(1))
defjvp(gt, _no_tangent, _no_tangent)

ge = primitive("ge", np.greater_equal)
defvjp(ge, _no_gradient(0), _no_gradient(1))
defjvp(ge, _no_tangent, _no_tangent)

eq = primitive("eq", np.equal)
defvjp(eq, _no_gradient(0), _no_gradient(1))
defjvp(eq, _no_tangent, _no_tangent)

ne = primitive("ne", np.not_equal)
defvjp(ne, _no_gradient(0), _no_gradient(1))
defjvp(ne, _no_tangent, _no_tangent)

# ---------------------------------------------------------------- piecewise: selection and clamping
# Each picks, element by element, one of its inputs (or a bound); g flows to what was picked. The
# masks are comparisons, constants, so the rules stay differentiable in g for second derivatives.

# cond is a bool, or a number that counts as true where nonzero; it gets no gradient.
where = primitive("where", lambda cond, a, b: np.where(cond != 0, a, b))
defvjp(where, _no_gradient(0),
              lambda g, ans, cond, a, b: unbroadcast(where(cond, g, 0), a.shape),
              lambda g, ans, cond, a, b: unbroadcast(where(cond, 0, g), b.shape))  # fmt: skip
defjvp(where, _no_tangent,
              lambda t, ans, cond, a, b: where(cond, t, 0),
              lambda t, ans, cond, a, b: where(cond, 0, t))  # fmt: skip

# At a tie a == b each side gets half of g, as in torch. (g comes first in each product, so the
# masks take g's dtype: float32 stays float32.)
maximum = primitive("maximum", np.maximum)
defvjp(maximum, lambda g, ans, a, b: unbroadcast(g * gt(a, b) + 0.5 * g * eq(a, b), a.shape),
                lambda g, ans, a, b: unbroadcast(g * lt(a, b) + 0.5 * g * eq(a, b), b.shape))  # fmt: skip
defjvp(maximum, lambda t, ans, a, b: t * gt(a, b) + 0.5 * t * eq(a, b),
                lambda t, ans, a, b: t * lt(a, b) + 0.5 * t * eq(a, b))  # fmt: skip

minimum = primitive("minimum", np.minimum)
defvjp(minimum, lambda g, ans, a, b: unbroadcast(g * lt(a, b) + 0.5 * g * eq(a, b), a.shape),
                lambda g, ans, a, b: unbroadcast(g * gt(a, b) + 0.5 * g * eq(a, b), b.shape))  # fmt: skip
defjvp(minimum, lambda t, ans, a, b: t * lt(a, b) + 0.5 * t * eq(a, b),
                lambda t, ans, a, b: t * gt(a, b) + 0.5 * t * eq(a, b))  # fmt: skip


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
defjvp(clamp, lambda t, ans, x, *, min, max:
       t * ge(x, -np.inf if min is None else min) * le(x, np.inf if max is None else max))  # fmt: skip

# ---------------------------------------------------------------- reductions and broadcasting
# sum adds copies together and its rule copies g back out; broadcast_to makes copies and its
# rule adds their cotangents together: each is the other's adjoint.


def _sum(x: np.ndarray, *, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.sum(x, axis=None if axis is None else _reduced_axes(x.ndim, axis), keepdims=keepdims)


def _mean(x: np.ndarray, *, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.mean(x, axis=None if axis is None else _reduced_axes(x.ndim, axis), keepdims=keepdims)


sum = primitive("sum", _sum)
defvjp(sum, lambda g, ans, x, *, axis, keepdims: _unreduce(g, x.shape, axis, keepdims))
defjvp(sum, lambda t, ans, x, *, axis, keepdims: sum(t, axis=axis, keepdims=keepdims))

mean = primitive("mean", _mean)
defvjp(mean, lambda g, ans, x, *, axis, keepdims: _unreduce(g, x.shape, axis, keepdims) / (x.size / ans.size))
defjvp(mean, lambda t, ans, x, *, axis, keepdims: mean(t, axis=axis, keepdims=keepdims))

broadcast_to = primitive("broadcast_to", lambda x, *, shape: np.broadcast_to(x, shape).copy())
defvjp(broadcast_to, lambda g, ans, x, *, shape: unbroadcast(g, x.shape))
defjvp(broadcast_to, lambda t, ans, x, *, shape: broadcast_to(t, shape=shape))

# ---------------------------------------------------------------- products and running sums
# d/dx_i Π_j x_j is the product of the others, Π_{j≠i} x_j: written as the product of those before
# i times those after it (exclusive running products), never as prod/x_i, which is 0/0 at a zero.


def _exclusive_cumprod(x: Tensor, axis: int) -> Tensor:
    """Per position along `axis`, the product of the elements before it (1 for the first)."""
    n = x.shape[axis]
    head = tuple((0, n - 1, 1) if a == axis else (0, d, 1) for a, d in enumerate(x.shape))
    widths = (0, 0) * (x.ndim - 1 - axis) + (1, 0)  # torch's order: the last axis first
    return pad(slice_(cumprod(x, axis=axis), items=head), widths=widths, value=1.0)


def _product_of_others(x: Tensor, axis: int | None) -> Tensor:
    if axis is None:
        return reshape(_product_of_others(reshape(x, shape=(x.size,)), 0), shape=x.shape)
    before = _exclusive_cumprod(x, axis)
    after = flip(_exclusive_cumprod(flip(x, axis=(axis,)), axis), axis=(axis,))
    return before * after


def _prod(x: np.ndarray, *, axis: tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    return np.prod(x, axis=None if axis is None else _reduced_axes(x.ndim, axis), keepdims=keepdims)


def _one(axis: tuple[int, ...] | None, ndim: int) -> int | None:
    return None if axis is None else _reduced_axes(ndim, axis)[0]


prod = primitive("prod", _prod)
defvjp(prod, lambda g, ans, x, *, axis, keepdims:
       _unreduce(g, x.shape, axis, keepdims) * _product_of_others(x, _one(axis, x.ndim)))  # fmt: skip
defjvp(prod, lambda t, ans, x, *, axis, keepdims:
       sum(t * _product_of_others(x, _one(axis, x.ndim)), axis=axis, keepdims=keepdims))  # fmt: skip

# cumsum: out_k = Σ_{i<=k} x_i, so x̄_i = Σ_{k>=i} g_k, a running sum from the far end.
cumsum = primitive("cumsum", lambda x, *, axis: np.cumsum(x, axis=axis))
defvjp(cumsum, lambda g, ans, x, *, axis: flip(cumsum(flip(g, axis=(axis,)), axis=axis), axis=(axis,)))
defjvp(cumsum, lambda t, ans, x, *, axis: cumsum(t, axis=axis))

# cumprod: d out_k / d x_i = out_k / x_i for i <= k (x != 0, the catalogue's domain).
cumprod = primitive("cumprod", lambda x, *, axis: np.cumprod(x, axis=axis))
defvjp(
    cumprod, lambda g, ans, x, *, axis: flip(cumsum(flip(g * ans, axis=(axis,)), axis=axis), axis=(axis,)) / x
)
defjvp(cumprod, lambda t, ans, x, *, axis: ans * cumsum(t / x, axis=axis))

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


def _extremum_jvp(
    t: Tensor, ans: Tensor, x: Tensor, *, axis: int | Sequence[int] | None, keepdims: bool
) -> Tensor:
    ties = eq(x, _unreduce(ans, x.shape, axis, keepdims))
    return sum(t * ties, axis=axis, keepdims=keepdims) / sum(ties, axis=axis, keepdims=keepdims)


max = primitive("max", _max)
defvjp(max, _extremum_vjp)
defjvp(max, _extremum_jvp)

min = primitive("min", _min)
defvjp(min, _extremum_vjp)
defjvp(min, _extremum_jvp)

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
defjvp(logsumexp, lambda t, ans, x, *, axis, keepdims:
       sum(t * exp(x - _unreduce(ans, x.shape, axis, keepdims)), axis=axis, keepdims=keepdims))  # fmt: skip


def _softmax(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)), shifted by the maximum first so that exp never overflows."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x) along axis: stable, and exact in the tails where log(softmax) gives -inf."""
    return x - _logsumexp(x, axis=axis, keepdims=True)


softmax = primitive("softmax", _softmax)
defvjp(softmax, lambda g, ans, x, *, axis: ans * (g - sum(g * ans, axis=axis, keepdims=True)))
defjvp(softmax, lambda t, ans, x, *, axis: ans * (t - sum(t * ans, axis=axis, keepdims=True)))

log_softmax = primitive("log_softmax", _log_softmax)
defvjp(log_softmax, lambda g, ans, x, *, axis: g - exp(ans) * sum(g, axis=axis, keepdims=True))
defjvp(log_softmax, lambda t, ans, x, *, axis: t - sum(exp(ans) * t, axis=axis, keepdims=True))

# ---------------------------------------------------------------- shape


def _inverse(ndim: int, axes: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if axes is None else tuple(int(i) for i in np.argsort([a % ndim for a in axes]))


transpose = primitive("transpose", lambda x, *, axes=None: np.transpose(x, axes))
defvjp(transpose, lambda g, ans, x, *, axes: transpose(g, axes=_inverse(x.ndim, axes)))
defjvp(transpose, lambda t, ans, x, *, axes: transpose(t, axes=axes))

expand_dims = primitive("expand_dims", lambda x, *, axis=0: np.expand_dims(x, axis))
defvjp(expand_dims, lambda g, ans, x, *, axis: sum(g, axis=axis))
defjvp(expand_dims, lambda t, ans, x, *, axis: expand_dims(t, axis=axis))

# ---------------------------------------------------------------- layout
# Ops that move elements (their forward meaning: symcheck/language/layout.py). Each adjoint puts
# the cotangent back where the element came from: reshape undoes itself, flip and the triangles
# are their own adjoints, a slice's is unslice (zeros, with g where the slice read), pad's a slice.

reshape = primitive("reshape", lambda x, *, shape: layout.reshape(x, shape))
defvjp(reshape, lambda g, ans, x, *, shape: reshape(g, shape=x.shape))
defjvp(reshape, lambda t, ans, x, *, shape: reshape(t, shape=shape))

flip = primitive("flip", lambda x, *, axis=None: layout.flip(x, axis))
defvjp(flip, lambda g, ans, x, *, axis: flip(g, axis=axis))
defjvp(flip, lambda t, ans, x, *, axis: flip(t, axis=axis))

tril = primitive("tril", lambda x, *, k=0: layout.tril(x, k))
defvjp(tril, lambda g, ans, x, *, k: tril(g, k=k))
defjvp(tril, lambda t, ans, x, *, k: tril(t, k=k))

triu = primitive("triu", lambda x, *, k=0: layout.triu(x, k))
defvjp(triu, lambda g, ans, x, *, k: triu(g, k=k))
defjvp(triu, lambda t, ans, x, *, k: triu(t, k=k))

# diagonal reads x[i, i + offset]; undiagonal writes g there into zeros: each is the other's adjoint.
diagonal = primitive("diagonal", lambda x, *, offset=0: layout.diagonal(x, offset))
defvjp(diagonal, lambda g, ans, x, *, offset: undiagonal(g, shape=x.shape, offset=offset))
defjvp(diagonal, lambda t, ans, x, *, offset: diagonal(t, offset=offset))

undiagonal = primitive("undiagonal", lambda g, *, shape, offset=0: layout.undiagonal(g, shape, offset))
defvjp(undiagonal, lambda g, ans, h, *, shape, offset: diagonal(g, offset=offset))
defjvp(undiagonal, lambda t, ans, h, *, shape, offset: undiagonal(t, shape=shape, offset=offset))


def _slice_vjp(g: Tensor, ans: Tensor, x: Tensor, *, items: tuple) -> Tensor:
    """Zeros of x's shape with g where x[items] read: the axes an int index dropped come back first."""
    dropped, shape, start, step = layout.slice_adjoint(items, x.shape)
    for axis in dropped:  # ascending: each lands at its place in x's axes
        g = expand_dims(g, axis=axis)
    return unslice(g, shape=shape, start=start, step=step)


def _read_back(h: Tensor, start: Shape, step: Shape) -> tuple:
    """The slice that reads unslice's h back out of its result."""
    return tuple((a, a + (n - 1) * s + 1, s) for a, s, n in zip(start, step, h.shape, strict=True))


slice_ = primitive("slice", lambda x, *, items: layout.slice_(x, items))
defvjp(slice_, _slice_vjp)
defjvp(slice_, lambda t, ans, x, *, items: slice_(t, items=items))

unslice = primitive("unslice", lambda h, *, shape, start, step: layout.unslice(h, shape, start, step))
defvjp(unslice, lambda g, ans, h, *, shape, start, step: slice_(g, items=_read_back(h, start, step)))
defjvp(unslice, lambda t, ans, h, *, shape, start, step: unslice(t, shape=shape, start=start, step=step))


def _unpadded(x: Tensor, widths: tuple[int, ...]) -> tuple:
    """The slice of pad's result that is x."""
    pairs = pad_pairs(widths, x.ndim)
    return tuple((a, a + d, 1) for d, (a, _) in zip(x.shape, pairs, strict=True))


pad = primitive("pad", lambda x, *, widths, value=0.0: layout.pad(x, widths, value))
defvjp(pad, lambda g, ans, x, *, widths, value: slice_(g, items=_unpadded(x, widths)))
defjvp(pad, lambda t, ans, x, *, widths, value: pad(t, widths=widths, value=0.0))


# unfold reads sliding windows into columns; fold sums columns back into their windows: each is
# the other's adjoint.
unfold = primitive(
    "unfold",
    lambda x, *, kernel, stride, padding, dilation: layout.unfold(x, kernel, stride, padding, dilation),
)
defvjp(unfold, lambda g, ans, x, *, kernel, stride, padding, dilation:
       fold(g, output_size=x.shape[-2:], kernel=kernel, stride=stride, padding=padding,
            dilation=dilation))  # fmt: skip
defjvp(unfold, lambda t, ans, x, *, kernel, stride, padding, dilation:
       unfold(t, kernel=kernel, stride=stride, padding=padding, dilation=dilation))  # fmt: skip

fold = primitive("fold", lambda p, *, output_size, kernel, stride, padding, dilation:
                 layout.fold(p, output_size, kernel, stride, padding, dilation))  # fmt: skip
defvjp(fold, lambda g, ans, p, *, output_size, kernel, stride, padding, dilation:
       unfold(g, kernel=kernel, stride=stride, padding=padding, dilation=dilation))  # fmt: skip
defjvp(fold, lambda t, ans, p, *, output_size, kernel, stride, padding, dilation:
       fold(t, output_size=output_size, kernel=kernel, stride=stride, padding=padding,
            dilation=dilation))  # fmt: skip


def _convolve(
    x: Tensor, w: Tensor, bias: Tensor | None, stride: Shape, padding: Shape, dilation: Shape, groups: int
) -> Tensor:
    """The filters (rows) times unfold's columns, group by group: out (N, C_out, Ho, Wo)."""
    n, out = x.shape[0], w.shape[0]
    cols = unfold(x, kernel=w.shape[2:], stride=stride, padding=padding, dilation=dilation)
    grouped = reshape(cols, shape=(n, groups, cols.shape[1] // groups, cols.shape[2]))
    filters = reshape(w, shape=(groups, out // groups, w.size // out))
    heights = layout.window_count(x.shape[2], w.shape[2], stride[0], padding[0], dilation[0])
    y = reshape(filters @ grouped, shape=(n, out, heights, cols.shape[2] // heights))
    return y if bias is None else y + reshape(bias, shape=(out, 1, 1))


@composite
def conv2d(x: ArrayLike, w: ArrayLike, *bias: ArrayLike, stride: Shape = (1, 1), padding: Shape = (0, 0),
           dilation: Shape = (1, 1), groups: int = 1) -> Tensor:  # fmt: skip
    x, w = as_tensors((x, w))
    return _convolve(x, w, as_tensors(bias)[0] if bias else None, stride, padding, dilation, groups)


@composite
def conv1d(x: ArrayLike, w: ArrayLike, *bias: ArrayLike, stride: int = 1, padding: int = 0, dilation: int = 1,
           groups: int = 1) -> Tensor:  # fmt: skip
    """A 2-D convolution of height 1."""
    x, w = as_tensors((x, w))
    planar = _convolve(
        reshape(x, shape=(x.shape[0], x.shape[1], 1, x.shape[2])),
        reshape(w, shape=(w.shape[0], w.shape[1], 1, w.shape[2])),
        as_tensors(bias)[0] if bias else None, (1, stride), (0, padding), (1, dilation), groups,
    )  # fmt: skip
    return reshape(planar, shape=planar.shape[:2] + planar.shape[3:])


def _pooled(x: Tensor, kernel: Shape, stride: Shape, padding: Shape, reduce: Callable[..., Tensor]) -> Tensor:
    cols = unfold(x, kernel=kernel, stride=stride, padding=padding, dilation=(1, 1))
    windows = reshape(cols, shape=(x.shape[0], x.shape[1], kernel[0] * kernel[1], cols.shape[2]))
    heights = layout.window_count(x.shape[2], kernel[0], stride[0], padding[0], 1)
    return reshape(
        reduce(windows, axis=(2,)), shape=(x.shape[0], x.shape[1], heights, cols.shape[2] // heights)
    )


@composite
def avg_pool2d(x: ArrayLike, *, kernel: Shape, stride: Shape, padding: Shape = (0, 0)) -> Tensor:
    (x,) = as_tensors((x,))
    return _pooled(x, kernel, stride, padding, mean)


@composite
def max_pool2d(x: ArrayLike, *, kernel: Shape, stride: Shape, padding: Shape = (0, 0)) -> Tensor:
    (x,) = as_tensors((x,))
    return _pooled(x, kernel, stride, padding, max)


@composite
def flatten(x: ArrayLike, *, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Axes start_dim..end_dim merged into one: a reshape."""
    (x,) = as_tensors((x,))
    return reshape(x, shape=layout.flattened_shape(x.shape, start_dim % x.ndim, end_dim % x.ndim))


@composite
def squeeze(x: ArrayLike, *, axis: tuple[int, ...] | None = None) -> Tensor:
    """The axes of size 1 (of `axis`, or all) dropped: a reshape."""
    (x,) = as_tensors((x,))
    axes = None if axis is None else tuple(a % x.ndim for a in axis)
    dropped = squeezed_axes(x.shape, axes)
    return reshape(x, shape=tuple(d for i, d in enumerate(x.shape) if i not in dropped))


@composite
def concat(*xs: ArrayLike, axis: int = 0) -> Tensor:
    """The tensors joined along `axis`: each padded with zeros to the joined length, then added."""
    tensors = as_tensors(xs)
    axis %= tensors[0].ndim
    if not builtins.any(t.dtype.kind == "f" for t in tensors):  # labels: a constant, kept integer
        return Tensor(layout.concat([t.data for t in tensors], axis), dtype=tensors[0].dtype)
    total = builtins.sum(t.shape[axis] for t in tensors)
    joined: Tensor | None = None
    before = 0
    for t in tensors:
        after = total - before - t.shape[axis]
        widths = (0, 0) * (t.ndim - 1 - axis) + (before, after)  # torch's order: the last axis first
        placed = pad(t, widths=widths, value=0.0)
        joined = placed if joined is None else joined + placed
        before += t.shape[axis]
    assert joined is not None
    return joined


@composite
def stack(*xs: ArrayLike, axis: int = 0) -> Tensor:
    """The tensors (of one shape) joined along a new axis: concat of each with that axis added."""
    tensors = as_tensors(xs)
    return concat(*(expand_dims(t, axis=axis) for t in tensors), axis=axis)


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
defjvp(index, lambda t, ans, x, *, at: index(t, at=at))

_take_rows = primitive("take", _take)
defvjp(_take_rows, lambda g, ans, x, y: index_add(g, y, n=x.shape[0]), _no_gradient(1))
defjvp(_take_rows, lambda t, ans, x, y: take(t, y), _no_tangent)

index_add = primitive("index_add", _index_add)
defvjp(index_add, lambda g, ans, h, y, *, n: take(g, y), _no_gradient(1))
defjvp(index_add, lambda t, ans, h, y, *, n: index_add(t, y, n=n), _no_tangent)


@composite
def take(x: ArrayLike, y: ArrayLike) -> Tensor:
    """x[y] along the first axis, for integer indices y (a scalar or 1-D): y's shape, then x's
    other axes. Indices given as a list or number stay integers."""
    return _take_rows(x, y if isinstance(y, Tensor) else Tensor(y, dtype=np.asarray(y).dtype))


# ---------------------------------------------------------------- indexing along any axis
# gather reads x at idx along an axis; scatter_add adds src into x there. Each is the other's
# adjoint: gather's cotangent is g scattered back (adding where idx repeats a position), and
# scatter_add's is g for x and g gathered at idx for src. index_select reads whole slices, so its
# index is the 1-D idx broadcast along the other axes.


def _zeros(x: Tensor) -> Tensor:
    return Tensor(np.zeros(x.shape))


gather = primitive("gather", lambda x, idx, *, axis: layout.gather(x, idx, axis))
defvjp(gather, lambda g, ans, x, idx, *, axis: scatter_add(_zeros(x), idx, g, axis=axis), _no_gradient(1))
defjvp(gather, lambda t, ans, x, idx, *, axis: gather(t, idx, axis=axis), _no_tangent)

scatter_add = primitive("scatter_add", lambda x, idx, src, *, axis: layout.scatter_add(x, idx, src, axis))
defvjp(scatter_add, lambda g, ans, x, idx, src, *, axis: g, _no_gradient(1),
                    lambda g, ans, x, idx, src, *, axis: gather(g, idx, axis=axis))  # fmt: skip
defjvp(
    scatter_add,
    lambda t, ans, x, idx, src, *, axis: t,
    _no_tangent,
    lambda t, ans, x, idx, src, *, axis: scatter_add(_zeros(x), idx, t, axis=axis),
)


def _spread_index(idx: Tensor, shape: Shape, axis: int) -> Tensor:
    """A 1-D index along `axis`, repeated along every other axis of `shape` (gather's index)."""
    lifted = np.reshape(idx.data, tuple(-1 if a == axis else 1 for a in range(len(shape))))
    return Tensor(np.broadcast_to(lifted, shape), dtype=idx.dtype)


index_select = primitive("index_select", lambda x, idx, *, axis: layout.index_select(x, idx, axis))
defvjp(index_select, lambda g, ans, x, idx, *, axis:
       scatter_add(_zeros(x), _spread_index(idx, g.shape, axis), g, axis=axis), _no_gradient(1))  # fmt: skip
defjvp(index_select, lambda t, ans, x, idx, *, axis: index_select(t, idx, axis=axis), _no_tangent)


@composite
def embedding(weight: ArrayLike, idx: ArrayLike) -> Tensor:
    """weight's rows at idx (any shape): the rows of the flattened index, reshaped."""
    (weight,) = as_tensors((weight,))
    labels = idx if isinstance(idx, Tensor) else Tensor(idx, dtype=np.asarray(idx).dtype)
    flat = Tensor(np.reshape(labels.data, (-1,)), dtype=labels.dtype)
    return reshape(index_select(weight, flat, axis=0), shape=labels.shape + weight.shape[1:])


# ---------------------------------------------------------------- linear algebra
# numpy semantics for 1-D and 2-D operands: a 1-D left operand is a row, a 1-D right operand a
# column, and the added axis is dropped from the result. The rules, case by case:
#   (m,k) @ (k,n):  ā = g @ b.T          b̄ = a.T @ g
#   (k,)  @ (k,n):  ā = g @ b.T          b̄ = outer(a, g)
#   (m,k) @ (k,):   ā = outer(g, b)      b̄ = a.T @ g
#   (k,)  @ (k,):   ā = g * b            b̄ = g * a        (g is a scalar)


#   3-D and more (a batch of matrices, broadcast): the same with each matrix transposed, summed
#   back over the batch axes an operand was broadcast along; a 1-D operand is a row or a column.


def _matrix_transpose(x: Tensor) -> Tensor:
    """Each matrix of a batch transposed: the last two axes swapped."""
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, axes=axes)


def _batched_parts(g: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """a, b and g with 1-D operands as a (1, k) row and a (k, 1) column, g with their axes back."""
    if a.ndim == 1:
        a, g = expand_dims(a, axis=0), expand_dims(g, axis=g.ndim - 1)
    if b.ndim == 1:
        b, g = expand_dims(b, axis=1), expand_dims(g, axis=g.ndim)
    return g, a, b


def _matmul_vjp_a(g: Tensor, ans: Tensor, a: Tensor, b: Tensor) -> Tensor:
    if a.ndim > 2 or b.ndim > 2:
        g2, a2, b2 = _batched_parts(g, a, b)
        return reshape(unbroadcast(g2 @ _matrix_transpose(b2), a2.shape), shape=a.shape)
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    return outer(g, b) if b.ndim == 1 else g @ b.T


def _matmul_vjp_b(g: Tensor, ans: Tensor, a: Tensor, b: Tensor) -> Tensor:
    if a.ndim > 2 or b.ndim > 2:
        g2, a2, b2 = _batched_parts(g, a, b)
        return reshape(unbroadcast(_matrix_transpose(a2) @ g2, b2.shape), shape=b.shape)
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    return outer(a, g) if a.ndim == 1 else a.T @ g


matmul = primitive("matmul", np.matmul)
defvjp(matmul, _matmul_vjp_a, _matmul_vjp_b)
defjvp(matmul, lambda t, ans, a, b: t @ b, lambda t, ans, a, b: a @ t)

# einsum: out[o] = Σ over the other letters of Π_k x_k[letters_k]. Its derivative in x_i is the
# same sum without x_i: the cotangent of x_i is einsum of g (letters o) with the other operands,
# onto x_i's letters; a letter of x_i alone (summed over in x_i only) broadcasts g back along it.


def _einsum_vjp(i: int, g: Tensor, ans: Tensor, *xs: Tensor, subscripts: str) -> Tensor:
    inputs, output = einsum_parts(subscripts)
    others = [(inputs[j], x) for j, x in enumerate(xs) if j != i] + [(output, g)]
    known = set("".join(letters for letters, _ in others))
    mine = inputs[i]
    present = "".join(c for c in mine if c in known)
    spec = ",".join(letters for letters, _ in others) + "->" + present
    part = einsum(*(x for _, x in others), subscripts=spec)
    for axis, c in enumerate(mine):  # ascending: each missing letter's axis lands at its place
        if c not in known:
            part = expand_dims(part, axis=axis)
    return part if part.shape == xs[i].shape else broadcast_to(part, shape=xs[i].shape)


def _einsum_jvp(i: int, t: Tensor, ans: Tensor, *xs: Tensor, subscripts: str) -> Tensor:
    return einsum(*(t if j == i else x for j, x in enumerate(xs)), subscripts=subscripts)


einsum = primitive("einsum", lambda *xs, subscripts: np.einsum(subscripts, *xs))
defvjp_variadic(einsum, _einsum_vjp, _einsum_jvp)

# d/dA_ij Σ_k A_kk = δ_ij: the cotangent is g on the diagonal.
trace = primitive("trace", np.trace)
defvjp(trace, lambda g, ans, A: g * np.eye(A.shape[0], dtype=A.dtype))
defjvp(trace, lambda t, ans, A: trace(t))


# Square matrices: with X = inv(A), d det(A) = det(A) tr(X dA) and d inv(A) = -X dA X, so
#   det:     Ā = g det(A) X^T          logdet: Ā = g X^T
#   inv:     Ā = -X^T G X^T            solve (x = X b): b̄ = A^-T g, Ā = -b̄ x^T
#   cholesky (L L^T = S, S = (A + A^T)/2; Murray 2016): S̄ = L^-T Φ(L^T G) L^-1, with Φ the lower
#            triangle and half the diagonal; Ā is its symmetric part.


def _logdet(a: np.ndarray) -> np.ndarray:
    sign, magnitude = np.linalg.slogdet(a)
    return np.where(sign > 0, magnitude, np.where(sign == 0, -np.inf, np.nan))


def _or_nan(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """fn, answering NaN for a singular matrix (outside the domain: the checker reports it)."""

    def guarded(a: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        try:
            return fn(a, *rest)
        except np.linalg.LinAlgError:
            return np.full(rest[0].shape if rest else a.shape, np.nan)

    return guarded


det = primitive("det", np.linalg.det)
defvjp(det, lambda g, ans, A: g * ans * inv(A).T)
defjvp(det, lambda t, ans, A: ans * trace(inv(A) @ t))

inv = primitive("inv", _or_nan(np.linalg.inv))
defvjp(inv, lambda g, ans, A: -(ans.T @ g @ ans.T))
defjvp(inv, lambda t, ans, A: -(ans @ t @ ans))

logdet = primitive("logdet", _logdet)
defvjp(logdet, lambda g, ans, A: g * inv(A).T)
defjvp(logdet, lambda t, ans, A: trace(inv(A) @ t))


def _solve_vjp_a(g: Tensor, ans: Tensor, A: Tensor, b: Tensor) -> Tensor:
    back = solve(A.T, g)
    return -(outer(back, ans) if b.ndim == 1 else back @ ans.T)


solve = primitive("solve", _or_nan(np.linalg.solve))
defvjp(solve, _solve_vjp_a, lambda g, ans, A, b: solve(A.T, g))
defjvp(solve, lambda t, ans, A, b: -solve(A, t @ ans), lambda t, ans, A, b: solve(A, t))


def _phi(x: Tensor) -> Tensor:
    """The lower triangle with the diagonal halved."""
    return tril(x) - 0.5 * undiagonal(diagonal(x), shape=x.shape)


def _cholesky(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky((a + a.T) / 2)
    except np.linalg.LinAlgError:
        return np.full(a.shape, np.nan)


def _cholesky_vjp(g: Tensor, ans: Tensor, A: Tensor) -> Tensor:
    back = inv(ans)
    s = back.T @ _phi(ans.T @ g) @ back
    return 0.5 * (s + s.T)


def _cholesky_jvp(t: Tensor, ans: Tensor, A: Tensor) -> Tensor:
    back = inv(ans)  # dL = L Φ(L^-1 dS L^-T), dS the symmetric part of dA
    return ans @ _phi(back @ (0.5 * (t + t.T)) @ back.T)


cholesky = primitive("cholesky", _cholesky)
defvjp(cholesky, _cholesky_vjp)
defjvp(cholesky, _cholesky_jvp)


def _vectors(op: str, a: ArrayLike, b: ArrayLike) -> tuple[Tensor, Tensor]:
    a, b = as_tensors((a, b))
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{op} takes 1-D tensors, got shapes {a.shape} and {b.shape}")
    return a, b


# outer and dot are written as the products and sums they are; those ops' rules differentiate them.


@composite
def outer(a: ArrayLike, b: ArrayLike) -> Tensor:
    """The matrix a[i] * b[j], for 1-D a and b."""
    a, b = _vectors("outer", a, b)
    return expand_dims(a, axis=1) * b


@composite
def dot(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Σ_i a[i] * b[i], for 1-D a and b of equal length."""
    a, b = _vectors("dot", a, b)
    return sum(a * b)


@composite
def norm(
    x: ArrayLike, *, p: str = "2", axis: tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """The p-norm over `axis`, as its definition reads: sqrt(sum(x^2)), sum(abs(x)), max(abs(x))."""
    if p == "1":
        return sum(abs(x), axis=axis, keepdims=keepdims)
    if p == "inf":
        return max(abs(x), axis=axis, keepdims=keepdims)
    return sqrt(sum(mul(x, x), axis=axis, keepdims=keepdims))  # 2, and fro: over the elements


# ---------------------------------------------------------------- spread
# Written in mean, sum and sqrt, as the definitions read; their derivatives follow from those rules.


@composite
def var(
    x: ArrayLike, *, axis: tuple[int, ...] | None = None, keepdims: bool = False, correction: float = 1
) -> Tensor:
    """sum((x - mean(x))^2) / (N - correction) over `axis`."""
    (x,) = as_tensors((x,))
    n = int(np.prod([d for i, d in enumerate(x.shape) if axis is None or i in axis]))
    centre = mean(x, axis=axis, keepdims=True)
    return sum((x - centre) ** 2, axis=axis, keepdims=keepdims) / (n - correction)


@composite
def std(
    x: ArrayLike, *, axis: tuple[int, ...] | None = None, keepdims: bool = False, correction: float = 1
) -> Tensor:
    """sqrt(var(x))."""
    return sqrt(var(x, axis=axis, keepdims=keepdims, correction=correction))


# ---------------------------------------------------------------- layers
# Written in the ops above, as the formulas read; their derivatives follow from those rules.


def _standardised(x: Tensor, axes: tuple[int, ...], eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) over `axes`, var the mean square deviation (divided by N)."""
    centred = x - mean(x, axis=axes, keepdims=True)
    return centred / sqrt(mean(centred * centred, axis=axes, keepdims=True) + eps)


def _scaled(y: Tensor, params: Sequence[Tensor], along_channels: bool = False) -> Tensor:
    """y times the optional weight, plus the optional bias (per channel: along axis 1)."""
    for k, p in enumerate(params):
        if along_channels and y.ndim > 2:
            p = reshape(p, shape=(p.shape[0],) + (1,) * (y.ndim - 2))
        y = y * p if k == 0 else y + p
    return y


@composite
def layer_norm(x: ArrayLike, *params: ArrayLike, dims: int = 1, eps: float = 1e-5) -> Tensor:
    (x,) = as_tensors((x,))
    return _scaled(_standardised(x, tuple(range(x.ndim - dims, x.ndim)), eps), as_tensors(params))


@composite
def rms_norm(x: ArrayLike, *params: ArrayLike, dims: int = 1, eps: float = 1e-6) -> Tensor:
    (x,) = as_tensors((x,))
    axes = tuple(range(x.ndim - dims, x.ndim))
    return _scaled(x / sqrt(mean(x * x, axis=axes, keepdims=True) + eps), as_tensors(params))


@composite
def batch_norm(x: ArrayLike, *params: ArrayLike, eps: float = 1e-5) -> Tensor:
    """Per channel (axis 1), with the batch's own statistics over every other axis."""
    (x,) = as_tensors((x,))
    return _scaled(_standardised(x, (0, *range(2, x.ndim)), eps), as_tensors(params), along_channels=True)


@composite
def group_norm(x: ArrayLike, *params: ArrayLike, groups: int, eps: float = 1e-5) -> Tensor:
    """Each group of channels (with the other axes) standardised together, then per channel."""
    (x,) = as_tensors((x,))
    grouped = reshape(x, shape=(x.shape[0], groups, x.size // (x.shape[0] * groups)))
    standard = reshape(_standardised(grouped, (2,), eps), shape=x.shape)
    return _scaled(standard, as_tensors(params), along_channels=True)


@composite
def attention(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, *, causal: bool = False, scale: float | None = None
) -> Tensor:
    """softmax(q @ k^T * scale) @ v; causal: the keys after each query weigh 0 (their scores -inf)."""
    q, k, v = as_tensors((q, k, v))
    factor = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    axes = tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2)
    scores = (q @ transpose(k, axes=axes)) * factor
    if causal:
        scores = scores + Tensor(np.where(np.tri(q.shape[-2], k.shape[-2], dtype=bool), 0.0, -np.inf))
    return softmax(scores, axis=-1) @ v


# ---------------------------------------------------------------- losses
# Written in the ops above, as the formulas read; their derivatives follow from those rules.


@composite
def mse_loss(a: ArrayLike, b: ArrayLike, *, reduction: str = "mean") -> Tensor:
    """The mean (or sum) of (a - b)^2 over the broadcast shape."""
    squared = sub(a, b) ** 2
    return _reduce(sum(squared), reduction, count=squared.size)


def _loss(pointwise: Tensor, reduction: str, batch: int = 1) -> Tensor:
    if reduction == "none":
        return pointwise
    if reduction == "batchmean":
        return sum(pointwise) / batch
    return _reduce(sum(pointwise), reduction, count=pointwise.size)


@composite
def binary_cross_entropy(p: ArrayLike, y: ArrayLike, *, reduction: str = "mean") -> Tensor:
    """-(y log p + (1 - y) log(1 - p)), elementwise, then reduced."""
    p, y = as_tensors((p, y))
    return _loss(-(y * log(p) + (1 - y) * log1p(-p)), reduction)


@composite
def binary_cross_entropy_with_logits(z: ArrayLike, y: ArrayLike, *, reduction: str = "mean") -> Tensor:
    """binary_cross_entropy(sigmoid(z), y) = softplus(z) - z*y, stable for any z."""
    z, y = as_tensors((z, y))
    return _loss(softplus(z) - z * y, reduction)


@composite
def l1_loss(a: ArrayLike, b: ArrayLike, *, reduction: str = "mean") -> Tensor:
    return _loss(abs(sub(a, b)), reduction)


@composite
def smooth_l1_loss(a: ArrayLike, b: ArrayLike, *, beta: float = 1.0, reduction: str = "mean") -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - beta/2 (d = a - b); beta = 0 is l1_loss."""
    d = sub(a, b)
    if beta == 0:
        return _loss(abs(d), reduction)
    return _loss(where(lt(abs(d), beta), 0.5 * d * d / beta, abs(d) - 0.5 * beta), reduction)


@composite
def kl_div(logq: ArrayLike, p: ArrayLike, *, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Σ p (log p - log q), with log q given; log_target: p given as log p."""
    logq, p = as_tensors((logq, p))
    pointwise = exp(p) * (p - logq) if log_target else p * (log(p) - logq)
    return _loss(pointwise, reduction, logq.shape[0] if logq.ndim else 1)


@composite
def onehot(y: ArrayLike, *, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """A float matrix with a new last axis of size num_classes: 1 at each label's index, else 0;
    a row of zeros for a label equal to ignore_index.

    A constant: labels are not differentiable, so nothing is recorded. A label that is not a
    class index (out of range, or not a whole number) gets a row of nan, so that an engine
    comparison reports it instead of silently dropping the example.
    """
    labels = y.data if isinstance(y, Tensor) else np.asarray(y)
    kept = np.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
    hot = (labels[..., np.newaxis] == np.arange(num_classes)) & kept[..., np.newaxis]
    valid = hot.any(axis=-1, keepdims=True) | ~kept[..., np.newaxis]
    return Tensor(np.where(valid, hot.astype(np.float64), np.nan))


@composite
def nll_loss(
    logp: ArrayLike,
    target: ArrayLike,
    *weight: ArrayLike,
    reduction: str = "mean",
    ignore_index: int | None = None,
) -> Tensor:
    """-logp[target] for log-probabilities (C,) and a scalar label; for a batch (N, C) with
    labels (N,), the mean (or sum) over i of -logp[i, target[i]].

    The onehot matrix picks logp[i, target[i]] out of each row, so d/dlogp = -onehot / N. With a
    weight w (C,), each example counts w[target[i]] times, and the mean divides by their sum; an
    ignored label's row of the onehot matrix is zeros: it counts for nothing.
    """
    return _classified(logp, target, weight, reduction, ignore_index, 0.0)


@composite
def cross_entropy(
    z: ArrayLike,
    target: ArrayLike,
    *weight: ArrayLike,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """nll_loss(log_softmax(z)): scores (C,) with a scalar label, or (N, C) with labels (N,). With
    label smoothing eps the target is (1 - eps) onehot + eps/C on every class."""
    return _classified(log_softmax(z, axis=-1), target, weight, reduction, ignore_index, label_smoothing)


def _classified(
    logp: ArrayLike,
    target: ArrayLike,
    weight: Sequence[ArrayLike],
    reduction: str,
    ignore_index: int | None,
    smoothing: float,
) -> Tensor:
    (logp,) = as_tensors((logp,))
    if logp.ndim not in (1, 2):
        raise ValueError(f"nll_loss takes log-probabilities (C,) or (N, C), got shape {logp.shape}")
    classes = logp.shape[-1]
    hot = onehot(target, num_classes=classes, ignore_index=ignore_index)
    if not weight and ignore_index is None and not smoothing:
        total = -sum(hot * logp)
        return _reduce(total, reduction, count=1 if logp.ndim == 1 else logp.shape[0])
    w = as_tensors(weight)[0] if weight else Tensor(np.ones(classes))
    kept = sum(hot, axis=(hot.ndim - 1,), keepdims=True) if ignore_index is not None else Tensor(1.0)
    picked = -sum(hot * w * logp)
    smooth = -sum(kept * w * logp) / classes
    total = (1 - smoothing) * picked + smoothing * smooth
    return total if reduction == "sum" else total / sum(hot * w)


def _reduce(total: Tensor, reduction: str, count: int) -> Tensor:
    """A loss summed over `count` terms: as it is for "sum", divided by count for "mean"."""
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / count
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


@composite
def eye(*, n: int) -> Tensor:
    """The n x n identity, a constant."""
    return Tensor(np.eye(n))


# The catalogue's op name -> the Tensor function that computes it: every primitive by its name, and
# the compositions. A catalogue op missing here fails loudly, in the engine and in the table test.
TABLE: dict[str, Callable[..., Tensor]] = {**PRIMITIVES, **_COMPOSITES}

# The ops by name (the package re-exports them: `symcheck.engines.autograd.sigmoid`).
# (slice is `slice_` in Python, leaving the builtin alone)
__all__ = ["unbroadcast", *sorted("slice_" if name == "slice" else name for name in TABLE)]
