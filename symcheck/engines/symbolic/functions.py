"""SymPy functions for the ops SymPy lacks. Each owns its derivative (`fdiff`), so the chain rule
is SymPy's, written once.

`sigmoid`, `softplus`, `relu` and `step` are kept as named functions (not expanded into exp/log)
so closed forms read like the language: d/dx softplus(x) = sigmoid(x), not exp(x)/(exp(x) + 1).
The expansion mode uses their elementary definitions instead (rules.py), an independent check of
the `fdiff` rules written here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy
from sympy import Function, Integer, Piecewise


class sigmoid(Function):
    """1 / (1 + exp(-x))."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        s = sigmoid(self.args[0])
        return s * (1 - s)

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        if x.is_zero:
            return sympy.Rational(1, 2)
        return None

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_evalf(self, prec: int) -> sympy.Expr:  # a number: sigmoid(1).evalf() is 0.731...
        return (1 / (1 + sympy.exp(-self.args[0])))._eval_evalf(prec)


class softplus(Function):
    """log(1 + exp(x))."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sigmoid(self.args[0])

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_evalf(self, prec: int) -> sympy.Expr:
        return sympy.log(1 + sympy.exp(self.args[0]))._eval_evalf(prec)


class _Flat(Function):
    """A piecewise constant function (or one the program does not differentiate through): its
    derivative is 0 wherever it has one."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return Integer(0)


class step(_Flat):
    """1 where x > 0, else 0: relu's derivative, with torch's convention step(0) = 0."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        s = numeric_sign(x)
        return None if s is None else Integer(1 if s > 0 else 0)


class sign(_Flat):
    """-1, 0 or 1. Piecewise constant: its derivative is 0 (SymPy's own sign would give a DiracDelta)."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        s = numeric_sign(x)
        return None if s is None else Integer(s)


class detach(_Flat):
    """x's value, with derivative 0: what the program does not differentiate through. A number is
    itself (the expansion evaluated at a point)."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        return x if x.is_number else None


class atan2(Function):
    """atan2(y, x), the angle of (x, y) in (-pi, pi], as torch and numpy (atan2(0, 0) = 0). SymPy's
    own writes numbers whose sign it cannot decide (x = 1 + tan(tanh(2))^2) with complex logarithms;
    here the signs are decided at 50 digits (numeric_sign) and the angle is an arctangent."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        y, x = self.args
        return x / (x**2 + y**2) if argindex == 1 else -y / (x**2 + y**2)

    @classmethod
    def eval(cls, y: sympy.Expr, x: sympy.Expr) -> sympy.Expr | None:
        sy, sx = numeric_sign(y), numeric_sign(x)
        if sy is None or sx is None:
            return None
        if sx > 0:
            return sympy.atan(y / x)
        if sx < 0:
            return sympy.atan(y / x) + (sympy.pi if sy >= 0 else -sympy.pi)
        return sympy.pi / 2 * sy  # x = 0: +-pi/2, and 0 at the origin

    def _eval_evalf(self, prec: int) -> sympy.Expr | None:
        try:
            return super()._eval_evalf(prec)
        except (AttributeError, TypeError):
            # Complex arguments, which SymPy's own checks substitute at random (is_constant):
            # mpmath's atan2 takes reals only; the analytic continuation of the angle.
            y, x = self.args
            return (-sympy.I * sympy.log((x + sympy.I * y) / sympy.sqrt(x**2 + y**2)))._eval_evalf(prec)


def _real_number(x: sympy.Expr) -> sympy.Expr | None:
    """x, where it is a real number (decided at 50 digits where SymPy cannot say: tan(tanh(2))
    is real, which its assumptions leave open); else None."""
    if not x.is_number:
        return None
    if x.is_Rational:
        return x
    v = x.evalf(_PICK_DIGITS)
    return x if isinstance(v, (sympy.Float, sympy.Integer, sympy.Rational)) else None


def _integer_of(x: sympy.Expr, to_integer: Any) -> sympy.Expr | None:
    """floor or ceiling of a real number, exactly for a rational, at 50 digits otherwise."""
    real = _real_number(x)
    if real is None:
        return None
    value = to_integer(real if real.is_Rational else real.evalf(_PICK_DIGITS))
    return value if value.is_Integer else None


class floor(_Flat):
    """The largest integer <= x. Piecewise constant: its derivative is 0 (SymPy's floor has none)."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        return _integer_of(x, sympy.floor)


class ceil(_Flat):
    """The smallest integer >= x; derivative 0."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        return _integer_of(x, sympy.ceiling)


class round(_Flat):  # the language's name for it (shadows the builtin in this module only)
    """The nearest integer, halves to the even one (as torch.round and numpy); derivative 0."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        real = _real_number(x)
        if real is None:
            return None
        if real.is_Rational:
            below = sympy.floor(real)
            if real - below == sympy.Rational(1, 2):  # a tie: the even neighbour
                return below if below % 2 == 0 else below + 1
            return sympy.floor(real + sympy.Rational(1, 2))
        # irrational: never a tie; its 50 digits decide (as numeric_sign does)
        return sympy.floor(real.evalf(_PICK_DIGITS) + sympy.Rational(1, 2))


class Abs(Function):
    """|x|, with derivative sign(x): 0 at 0, as torch takes it."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sign(self.args[0])

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        s = numeric_sign(x)
        return None if s is None else (x if s >= 0 else -x)


class relu(Function):
    """max(x, 0); its derivative at 0 is taken as 0, as torch does."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return step(self.args[0])

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        s = numeric_sign(x)
        return None if s is None else (x if s > 0 else Integer(0))


class maximum(Function):
    """max(a, b) elementwise; at a tie each side gets half the gradient, as torch does."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        a, b = self.args if argindex == 1 else self.args[::-1]
        return Piecewise((1, a > b), (sympy.Rational(1, 2), sympy.Eq(a, b)), (0, True))

    @classmethod
    def eval(cls, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
        return _pick_numeric((a, b), largest=True)


class minimum(Function):
    """min(a, b) elementwise; at a tie each side gets half the gradient, as torch does."""

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        a, b = self.args if argindex == 1 else self.args[::-1]
        return Piecewise((1, a < b), (sympy.Rational(1, 2), sympy.Eq(a, b)), (0, True))

    @classmethod
    def eval(cls, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
        return _pick_numeric((a, b), largest=False)


class _Extreme(Function):
    """The largest (smallest) of its arguments, for the expansion of a max (min) reduction. Tied
    arguments share the derivative evenly, 1/k for k ties, as torch.amax does (SymPy's own Max
    would give each tie 1/2 through Heaviside(0), whatever k is)."""

    largest = True

    @classmethod
    def eval(cls, *args: sympy.Expr) -> sympy.Expr | None:
        if len(args) == 1:
            return args[0]
        return _pick_numeric(args, largest=cls.largest)

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        # tie tests, left undecided: SymPy would try to decide each a == max(...) symbolically
        # (seconds for three clamped arguments, a minute for six abs); at a point, substitution
        # resolves them exactly.
        ties = sympy.Add(*(tie(a, self) for a in self.args))
        return tie(self.args[argindex - 1], self) / ties


class max_of(_Extreme):
    largest = True


class min_of(_Extreme):
    largest = False


class tie(Function):
    """1 where a == b, else 0: the tie test of a max/min reduction's gradient, kept whole. As a
    Piecewise condition, SymPy folds a case inside `a` into branches (ITE) that compute `a` another
    way than the reduction did (x/(5/4) against 4/5*x): a tie read ulp apart, as no tie at all."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return Integer(0)  # piecewise constant

    @classmethod
    def eval(cls, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
        if a == b:
            return Integer(1)
        if not (a.is_number and b.is_number):
            return None
        decided = sympy.Eq(a, b)
        return Integer(1) if decided is sympy.true else Integer(0) if decided is sympy.false else None


def numpy_tie(a: object, b: object) -> object:
    return np.equal(a, b) * 1.0


# Digits for telling numeric arguments apart; exact ties (the same expression) need none.
_PICK_DIGITS = 50


def numeric_sign(x: sympy.Expr) -> int | None:
    """-1, 0 or 1 for a real number, decided at 50 digits where SymPy cannot compare it
    (softplus(0) > 0 is undecidable to it: it does not evaluate softplus); None otherwise."""
    if not x.is_number:
        return None
    if x.is_zero:
        return 0
    v = x.evalf(_PICK_DIGITS)
    if not isinstance(v, (sympy.Float, sympy.Integer, sympy.Rational)):
        return None  # complex or undefined
    return 1 if bool(v > 0) else -1 if bool(v < 0) else 0


def _pick_numeric(args: tuple[sympy.Expr, ...], largest: bool) -> sympy.Expr | None:
    """The largest (smallest) argument, exactly as written, once every argument is a real number.
    SymPy's own is_real cannot always say so (tan(tanh(1)): is its argument off the poles?), and
    Max then stays unevaluated: its numeric value decides instead, at 50 digits."""
    if not all(a.is_number for a in args):
        return None
    if len(set(args)) == 1:
        return args[0]
    values = []
    for a in args:
        v = a.evalf(_PICK_DIGITS)
        if not isinstance(v, (sympy.Float, sympy.Integer, sympy.Rational)):
            return None  # complex, or undefined: leave it to the caller's domain checks
        values.append(v)
    best = (
        max(range(len(args)), key=lambda i: values[i])
        if largest
        else min(range(len(args)), key=lambda i: values[i])
    )
    return args[best]


def indicator(condition: sympy.Basic) -> sympy.Expr:
    """1 where the condition holds, else 0: a comparison used as a number."""
    return Piecewise((1, condition), (0, True))


def condition_of(value: sympy.Expr) -> sympy.Basic:
    """The condition a where() tests: the comparison itself when value is one, else value != 0."""
    if (
        isinstance(value, Piecewise)
        and len(value.args) == 2
        and value.args[0].expr == 1
        and value.args[1].expr == 0
        and value.args[1].cond == sympy.true
    ):
        return value.args[0].cond
    return sympy.Ne(value, 0)


def clamp(x: sympy.Expr, low: object, high: object) -> sympy.Expr:
    """x limited to [low, high]; gradient 1 on the closed interval, 0 outside (torch's convention)."""
    branches = []
    for bound, outside in ((low, lambda b: x < b), (high, lambda b: x > b)):
        if bound is not None:
            exact = sympy.Rational(str(bound))  # the bound as written: 0.5 is 1/2
            branches.append((exact, outside(exact)))
    return Piecewise(*branches, (x, True)) if branches else x


def leaky_relu(x: sympy.Expr, slope: object) -> sympy.Expr:
    """x where x > 0, else slope*x; at 0 the derivative is slope (torch's convention)."""
    return Piecewise((x, x > 0), (sympy.Rational(str(slope)) * x, True))


def elu(x: sympy.Expr, alpha: object) -> sympy.Expr:
    """x where x > 0, else alpha*(e^x - 1); at 0 the derivative is alpha (torch's convention)."""
    return Piecewise((x, x > 0), (sympy.Rational(str(alpha)) * (sympy.exp(x) - 1), True))


def hardtanh(x: sympy.Expr, low: object, high: object) -> sympy.Expr:
    """x limited to [low, high]; gradient 1 strictly inside, 0 at the bounds and outside (torch's
    hardtanh, where clamp gives 1 at the bounds)."""
    lo, hi = sympy.Rational(str(low)), sympy.Rational(str(high))
    return Piecewise((lo, x <= lo), (hi, x >= hi), (x, True))


# The elementwise ops whose form depends on their keywords: (x, canonical kwargs) -> SymPy.
WITH_KEYWORDS: dict[str, Any] = {
    "gelu": lambda x, kw: gelu(x, str(kw["approximate"])),
    "leaky_relu": lambda x, kw: leaky_relu(x, kw["slope"]),
    "elu": lambda x, kw: elu(x, kw["alpha"]),
    "hardtanh": lambda x, kw: hardtanh(x, kw["min"], kw["max"]),
}


def elementary_relu(x: sympy.Expr) -> sympy.Expr:
    return Piecewise((x, x > 0), (0, True))


def elementary_step(x: sympy.Expr) -> sympy.Expr:
    return Piecewise((1, x > 0), (0, True))


def elementary_sign(x: sympy.Expr) -> sympy.Expr:
    return Piecewise((1, x > 0), (-1, x < 0), (0, True))


def elementary_abs(x: sympy.Expr) -> sympy.Expr:
    # The middle branch makes the derivative at 0 come out as 0, torch's convention.
    return Piecewise((x, x > 0), (-x, x < 0), (0, True))


GELU_TANH_CUBIC = sympy.Rational(44715, 1000000)  # torch's 0.044715, exactly as written


def gelu(x: sympy.Expr, approximate: str) -> sympy.Expr:
    """gelu in closed form: x Phi(x) = x/2 (1 + erf(x/sqrt(2))), or torch's tanh form."""
    if approximate == "tanh":
        inner = sympy.sqrt(2 / sympy.pi) * (x + GELU_TANH_CUBIC * x**3)
        return x / 2 * (1 + sympy.tanh(inner))
    return x / 2 * (1 + sympy.erf(x / sympy.sqrt(2)))


def numpy_erf(x: Any) -> Any:
    """erf on arrays: the C library's erf (math.erf) element by element; numpy has none."""
    return np.asarray(_ERF(np.asarray(x, dtype=np.float64)), dtype=np.float64)  # a 0-d call gives a float


_ERF = np.frompyfunc(math.erf, 1, 1)


def numpy_sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
