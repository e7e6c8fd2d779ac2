"""Expansion: the exact ground truth, the way the seed derives it by hand.

Every input element becomes its own SymPy symbol (x[0, 1]), the output is built element by
element (out = 1/4*(3*(x[0,0] + 2)^2 + ...)), and each partial derivative is the derivative of that
one scalar (by SymEngine where it differentiates as SymPy does, else by `sympy.diff`). Nothing here
knows a tensor-level rule (no 1/N of mean, no transposes of matmul): that is what makes it a check
on the closed form. The cost grows with the tensor sizes, so it runs up to a budget of input elements."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sympy

try:  # the fast path of differentiation (term_partials); SymPy alone gives the same results
    import symengine
except ImportError:  # pragma: no cover - symengine is a dependency; kept optional for old platforms
    symengine = None

from symcheck.engines.symbolic import arrays
from symcheck.engines.symbolic.definitions import DEFINED, definition
from symcheck.engines.symbolic.functions import WITH_KEYWORDS, clamp
from symcheck.engines.symbolic.rules import EXPANDED
from symcheck.language import layout
from symcheck.language.catalogue import OPS, OpKind, reduced_count
from symcheck.language.ir import Call, Const, DType, Program, Ref


def element_symbols(name: str, shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    """An object array of symbols x[i, j]; `name` has been validated as an identifier."""
    out = np.empty(shape, dtype=object)
    integer = dtype is not DType.FLOAT
    for index in np.ndindex(*shape):
        label = f"{name}[{', '.join(map(str, index))}]" if shape else name
        out[index] = sympy.Symbol(label, real=True, integer=integer or None)
    return out


def expand(program: Program, symbols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every step of the program as an object array of scalar SymPy expressions."""
    env: dict[str, np.ndarray] = dict(symbols)
    for step in program.steps:
        env[step.id] = _expand(step.expr, env)
    return env


def _expand(node: object, env: Mapping[str, np.ndarray]) -> np.ndarray:
    if isinstance(node, Const):
        return np.asarray(sympy.Rational(node.value.numerator, node.value.denominator), dtype=object)
    if isinstance(node, Ref):
        return env[node.target]
    assert isinstance(node, Call)
    args = [_expand(a, env) for a in node.args]
    op = OPS[node.op]
    if node.op == "clamp":
        # Slope 1 on the closed interval [min, max], bounds included, as torch: SymPy's Max/Min would
        # give 1/2 at a bound.
        low, high = node.kw("min"), node.kw("max")
        return np.asarray(np.frompyfunc(lambda v: clamp(v, low, high), 1, 1)(args[0]), dtype=object)
    if node.op in WITH_KEYWORDS:
        kw = node.kwdict
        form = WITH_KEYWORDS[node.op]
        return np.asarray(np.frompyfunc(lambda v: form(v, kw), 1, 1)(args[0]), dtype=object)
    if op.kind is OpKind.ELEMENTWISE and op.arity == 0:  # a constant: pi, e
        return np.asarray(EXPANDED[node.op](), dtype=object)
    if op.kind is OpKind.ELEMENTWISE:
        fn = np.frompyfunc(EXPANDED[node.op], op.arity, 1)
        return np.asarray(fn(*args), dtype=object)
    if node.op in ("max", "min"):
        return np.asarray(
            arrays.extreme(node.op, args[0], node.kw("axis"), node.kw("keepdims")), dtype=object
        )
    if node.op in ("var", "std"):
        x, axes = args[0], node.kw("axis")
        n = reduced_count(x.shape, axes)
        centre = np.sum(x, axis=axes, keepdims=True) * sympy.Rational(1, n)
        total = np.sum((x - centre) ** 2, axis=axes, keepdims=node.kw("keepdims"))
        variance = np.asarray(total * (1 / (n - sympy.Rational(str(node.kw("correction"))))), dtype=object)
        return (
            variance
            if node.op == "var"
            else np.asarray(np.frompyfunc(sympy.sqrt, 1, 1)(variance), dtype=object)
        )
    if node.op == "prod":  # the products written out
        return np.asarray(np.prod(args[0], axis=node.kw("axis"), keepdims=node.kw("keepdims")), dtype=object)
    if node.op in ("cumsum", "cumprod"):
        scan = np.cumsum if node.op == "cumsum" else np.cumprod
        return np.asarray(scan(args[0], axis=node.kw("axis")), dtype=object)
    if node.op == "norm":  # its definition, element by element
        x, axes, keep, p = args[0], node.kw("axis"), node.kw("keepdims"), node.kw("p")
        if p == "1":
            return np.asarray(
                np.sum(np.frompyfunc(EXPANDED["abs"], 1, 1)(x), axis=axes, keepdims=keep), dtype=object
            )
        if p == "inf":
            magnitudes = np.asarray(np.frompyfunc(EXPANDED["abs"], 1, 1)(x), dtype=object)
            return np.asarray(arrays.extreme("max", magnitudes, axes, keep), dtype=object)
        total = np.asarray(np.sum(x * x, axis=axes, keepdims=keep), dtype=object)
        return np.asarray(np.frompyfunc(sympy.sqrt, 1, 1)(total), dtype=object)
    if node.op in ("sum", "mean"):
        total = np.sum(args[0], axis=node.kw("axis"), keepdims=node.kw("keepdims"))
        if node.op == "mean":
            total = total * sympy.Rational(1, reduced_count(args[0].shape, node.kw("axis")))
        return np.asarray(total, dtype=object)
    if node.op == "matmul":
        a, b = args
        # Written out as sums of products, as one would by hand.
        return np.asarray(np.matmul(a, b) if a.ndim and b.ndim else a * b, dtype=object)
    if node.op == "transpose":
        return np.transpose(args[0], node.kw("axes"))
    if node.op == "expand_dims":
        return np.expand_dims(args[0], node.kw("axis"))
    if node.op == "broadcast_to":
        return np.broadcast_to(args[0], node.kw("shape"))
    if node.op in DEFINED:  # layers and losses: their definitions, written out
        defined = definition(node)
        return expand(defined, {f"a{i}": a for i, a in enumerate(args)})[defined.output.id]
    if node.op in EXPANDED_LAYOUT:  # elements moved, as they are (zeros where pad or unslice put them)
        return np.asarray(_layout(node, [np.asarray(a, dtype=object) for a in args]), dtype=object)
    return np.asarray(_expand_model_op(node, args), dtype=object)


EXPANDED_LAYOUT = layout.FUNCTIONS


def _layout(node: Call, args: list[np.ndarray]) -> np.ndarray:
    """A layout op on element arrays (object arrays of expressions, or _size's counts)."""
    fn = EXPANDED_LAYOUT[node.op]
    return fn(args, **node.kwdict) if node.op in ("concat", "stack") else fn(args[0], **node.kwdict)


def _expand_model_op(node: Call, args: list[np.ndarray]) -> Any:
    """Normalisations and losses, written out element by element from their definitions."""
    if node.op == "softmax":
        return arrays.softmax(args[0], node.kw("axis"))
    if node.op == "log_softmax":
        return arrays.log_softmax(args[0], node.kw("axis"))
    if node.op == "logsumexp":
        return arrays.logsumexp(args[0], node.kw("axis"), node.kw("keepdims"))
    if node.op == "outer":
        return np.multiply.outer(args[0], args[1])
    if node.op == "einsum":  # the sums of products written out
        return np.einsum(node.kw("subscripts"), *args)
    if node.op == "dot":
        return np.dot(args[0], args[1])
    if node.op == "trace":
        return np.trace(args[0])
    if node.op == "mse_loss":
        difference = args[0] - args[1]
        total = np.sum(difference * difference)
        return total * sympy.Rational(1, difference.size) if node.kw("reduction") == "mean" else total
    if node.op == "onehot":
        return arrays.onehot(args[0], node.kw("num_classes"), ignored=node.kw("ignore_index"))
    if node.op == "eye":
        return arrays.eye(node.kw("n"), symbolic=True)
    if node.op == "index":
        return args[0][node.kw("at")]
    if node.op == "take":
        return arrays.take(args[0], args[1])
    if node.op in ("det", "inv", "cholesky"):
        return arrays.linear_algebra(node.op, args[0])
    if node.op == "logdet":
        return sympy.log(arrays.linear_algebra("det", args[0]).item())
    if node.op == "solve":
        return np.matmul(arrays.linear_algebra("inv", args[0]), args[1])
    if node.op == "gather":
        return arrays.gather(args[0], args[1], node.kw("axis"))
    if node.op == "scatter_add":
        return arrays.scatter_add(args[0], args[1], args[2], node.kw("axis"))
    if node.op == "index_select":
        x, idx, axis = args[0], args[1], node.kw("axis")
        spread = np.broadcast_to(
            np.reshape(idx, tuple(-1 if a == axis else 1 for a in range(x.ndim))),
            x.shape[:axis] + idx.shape + x.shape[axis + 1 :],
        )
        return arrays.gather(x, spread, axis)
    if node.op == "embedding":
        weight, idx = args
        spread = np.broadcast_to(np.reshape(idx, (-1, 1)), (int(np.prod(idx.shape)), weight.shape[1]))
        return np.reshape(arrays.gather(weight, spread, 0), idx.shape + weight.shape[1:])
    if node.op in ("nll_loss", "cross_entropy"):
        scores, target = args[0], args[1]
        if node.op == "cross_entropy":
            scores = arrays.log_softmax(scores, scores.ndim - 1)
        classes, ignored = scores.shape[-1], node.kw("ignore_index")
        smoothing = sympy.Rational(str(node.kwdict.get("label_smoothing") or 0))
        hot = np.asarray(arrays.onehot(target, classes, ignored=ignored), dtype=object)
        if ignored is None and not node.kw("weight") and not smoothing:
            total = -np.sum(hot * scores)
            batch = scores.shape[0] if scores.ndim == 2 and node.kw("reduction") == "mean" else 1
            return total * sympy.Rational(1, batch)
        w = args[2] if node.kw("weight") else np.ones(classes, dtype=object)
        kept = np.sum(hot, axis=-1, keepdims=True)  # 0 for an ignored label's row
        total = -(
            (1 - smoothing) * np.sum(hot * w * scores) + smoothing / classes * np.sum(kept * w * scores)
        )
        return total if node.kw("reduction") == "sum" else total / np.sum(hot * w)
    raise AssertionError(f"expansion has no rule for {node.op}")


def exact_number(value: float | int) -> sympy.Rational:
    """A float as the exact rational it is (0.1 is not 1/10 in binary)."""
    return sympy.Rational(Fraction(value)) if isinstance(value, float) else sympy.Integer(int(value))


@dataclass
class Expansion:
    """The expanded output and its gradient, still symbolic."""

    symbols: dict[str, np.ndarray]
    output: sympy.Expr
    grads: dict[str, np.ndarray]

    def substitution(self, point: Mapping[str, np.ndarray]) -> dict[sympy.Symbol, sympy.Rational]:
        subs: dict[sympy.Symbol, sympy.Rational] = {}
        for name, syms in self.symbols.items():
            values = np.asarray(point[name])
            for index in np.ndindex(*syms.shape):
                if isinstance(syms[index], sympy.Symbol):  # not a fixed input's number
                    subs[syms[index]] = exact_number(values[index].item())
        return subs


def expand_gradient(
    program: Program, wrt: list[str], fixed: Mapping[str, np.ndarray] | None = None
) -> Expansion:
    """`fixed`: inputs given as numbers rather than symbols (a probe's labels: onehot(y) is then
    0s and 1s, not a case per class)."""
    symbols = _symbols(program, fixed)
    env = expand(program, symbols)
    output = env[program.output.id][()]
    partials = _partials(output, {s for name in wrt for s in symbols[name].flat})
    grads: dict[str, np.ndarray] = {}
    for name in wrt:
        syms = symbols[name]
        g = np.empty(syms.shape, dtype=object)
        for index in np.ndindex(*syms.shape):
            g[index] = partials.get(syms[index], sympy.Integer(0))
        grads[name] = g
    return Expansion(symbols, output, grads)


def _symbols(program: Program, fixed: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    fixed = fixed or {}
    return {
        name: np.vectorize(exact_number, otypes=[object])(np.asarray(fixed[name]))
        if name in fixed
        else element_symbols(name, d.type.shape, d.type.dtype)
        for name, d in program.inputs.items()
    }


def _partials(expr: sympy.Expr, wanted: set[sympy.Symbol]) -> dict[sympy.Symbol, sympy.Expr]:
    """d expr / d s for every wanted s.

    An expanded output is mostly a long sum (sum, mean, a matmul's dot products): each term is
    differentiated only by the symbols it contains, instead of every symbol visiting every term.
    """
    coeff, rest = expr.as_coeff_Mul()
    terms = rest.args if rest.is_Add else (rest,)
    collected: dict[sympy.Symbol, list[tuple[sympy.Expr, Any]]] = {}
    for term in terms:
        for s, both in _term_partials(term, term.free_symbols & wanted).items():
            collected.setdefault(s, []).append(both)
    partials = {}
    for s, pairs in collected.items():
        partials[s] = coeff * sympy.Add(*(d for d, _ in pairs))
        if all(fast is not None for _, fast in pairs):
            # Its SymEngine form is at hand: exact_floats need not convert it back again. (One
            # conversion of the sum instead of one per term is slower: SymPy's Add of it all at once.)
            _remember(partials[s], symengine.sympify(coeff) * symengine.Add(*(fast for _, fast in pairs)))
    return partials


# What SymEngine (C++) differentiates exactly as SymPy does: arithmetic, the elementary functions
# and cases (each branch differentiated, its condition kept). Not our functions with their own
# conventions (the 1/k of tied extrema, sign(0) = 0), nor Heaviside, whose derivative SymEngine
# takes as 0 where SymPy gives DiracDelta: a term holding any of those goes to sympy.diff.
_SYMENGINE_CLASSES: tuple[type, ...] = (
    sympy.Symbol,
    sympy.Number,
    sympy.NumberSymbol,
    sympy.Add,
    sympy.Mul,
    sympy.Pow,
    sympy.Piecewise,
    sympy.functions.elementary.piecewise.ExprCondPair,
    sympy.exp,
    sympy.log,
    sympy.sin,
    sympy.cos,
    sympy.tan,
    sympy.sinh,
    sympy.cosh,
    sympy.tanh,
    sympy.asin,
    sympy.acos,
    sympy.atan,
    sympy.core.relational.Relational,
    sympy.logic.boolalg.BooleanAtom,
    sympy.And,
    sympy.Or,
    sympy.Not,
)


def symengine_can(expr: sympy.Basic) -> bool:
    """Whether every node of expr is one SymEngine differentiates as SymPy does."""
    return all(isinstance(node, _SYMENGINE_CLASSES) for node in sympy.preorder_traversal(expr))


def _symengine_evaluates(expr: sympy.Basic) -> bool:
    """Whether SymEngine may evaluate expr at points: as `symengine_can`, and no power with an input
    in its exponent. SymEngine raises the power of a rational exactly, whatever the exponent: at
    x^y with y = 2^63 - 1 its arithmetic aborts the process (SIGFPE), where SymPy works within the
    case's time budget and gives up."""
    return symengine_can(expr) and not any(
        node.is_Pow and node.exp.free_symbols for node in sympy.preorder_traversal(expr)
    )


def term_partials(term: sympy.Expr, symbols: set[sympy.Symbol]) -> dict[sympy.Symbol, sympy.Expr]:
    """d term / d s for each s: by SymEngine where it differentiates as SymPy does (ten to a
    hundred times faster on the expansion's terms), else by sympy.diff. Same results either way
    (tests/engines/symbolic/test_symengine.py)."""
    return {
        s: d if d is not None else fast._sympy_() for s, (d, fast) in _term_partials(term, symbols).items()
    }


def _term_partials(
    term: sympy.Expr, symbols: set[sympy.Symbol]
) -> dict[sympy.Symbol, tuple[sympy.Expr, Any]]:
    """term_partials, each with its SymEngine form where SymEngine made it (else None)."""
    if not symbols:
        return {}
    if symengine is None or not symengine_can(term):
        return {s: (sympy.diff(term, s), None) for s in symbols}
    # SymEngine's symbols carry ours along, so that back in SymPy they keep their assumptions.
    ours = {symengine.Symbol(s.name): _carrying(s) for s in term.free_symbols}
    fast = symengine.sympify(term).xreplace(ours)
    evaluates = _symengine_evaluates(term)  # else its derivatives are evaluated by SymPy
    found = {}
    for s in symbols:
        d = fast.diff(_carrying(s))
        found[s] = (d._sympy_(), d if evaluates else None)
    return found


if symengine is not None:

    class _Carrying(symengine.Symbol):
        """A SymEngine symbol that turns back into the very SymPy symbol it stands for."""

        def __init__(self, symbol: sympy.Symbol) -> None:
            super().__init__(symbol.name)
            self.symbol = symbol

        def _sympy_(self) -> sympy.Symbol:
            return self.symbol


_CARRIERS: dict[sympy.Symbol, Any] = {}


def _carrying(symbol: sympy.Symbol) -> Any:
    if symbol not in _CARRIERS:
        if len(_CARRIERS) > 100_000:  # a long-lived process: stay bounded, as _IN_SYMENGINE does
            _CARRIERS.clear()
        _CARRIERS[symbol] = _Carrying(symbol)
    return _CARRIERS[symbol]


class NotEvaluable(Exception):
    """SymPy cannot evaluate an expanded expression at a point: a branch that is not taken still
    holds a comparison it refuses (`zoo**x > 0`, from 0^|x| simplified case by case)."""


def evaluate_exact(expr: sympy.Expr, subs: Mapping[sympy.Symbol, Any], digits: int = 30) -> tuple[float, Any]:
    """(float value, exact SymPy number) of expr at a point; piecewise parts resolve exactly."""
    try:
        exact = expr.xreplace(subs)
    except TypeError as e:  # "Invalid comparison of non-real zoo", in a branch not taken
        raise NotEvaluable(str(e)) from None
    if not exact.is_number:  # a case whose condition SymPy cannot decide (exp(a)*exp(-a) == 1)
        exact = decide_relations(exact)
    if not exact.is_number:
        raise NotEvaluable(f"not a number after substitution: {str(exact)[:200]}")
    value = exact.evalf(digits)
    try:
        return float(value), exact
    except TypeError:  # complex or undefined (e.g. log of a negative number)
        pass
    # A real number SymPy writes through complex logarithms (atan2 of numbers: -I*log((x + I*y)/r))
    # evaluates with an imaginary part at the level of its working precision: that is 0.
    real, imaginary = value.as_real_imag()
    finite = real.is_number and imaginary.is_number and real.is_finite and imaginary.is_finite
    if finite and abs(imaginary) <= sympy.Float(10) ** (5 - digits) * max(1, abs(real)):
        return float(real), exact
    return float("nan"), exact


def symengine_substitution(subs: Mapping[sympy.Symbol, Any]) -> dict[Any, Any] | None:
    """A point's substitution for SymEngine's forms (None without SymEngine): made once per point
    and handed to `exact_value` and `exact_floats`."""
    if symengine is None:
        return None
    return {_carrying(s): symengine.sympify(v) for s, v in subs.items()}


def exact_value(
    expr: sympy.Expr, subs: Mapping[sympy.Symbol, Any], fast_subs: Mapping[Any, Any] | None = None
) -> tuple[float, sympy.Expr | None]:
    """(float value, the exact value where it is rational, else None) of expr at a point: by SymEngine
    where it evaluates as SymPy does (a rational stays exact: 27/4), else by `evaluate_exact`.
    `fast_subs`: symengine_substitution(subs), where made already."""
    fast = _in_symengine(expr)
    if fast is not None:
        if fast_subs is None:
            fast_subs = symengine_substitution(subs)
        try:
            number = fast.xreplace(fast_subs)
        except (RuntimeError, TypeError, ValueError, NotImplementedError):  # 2^(10^154): too large
            number = None
        if number is not None and number.is_Rational:
            return float(number), number._sympy_()
        value = None if number is None else _fast_float(number, {})
        if value is not None:
            return value, None
    value, exact = evaluate_exact(expr, subs)
    return value, exact if exact.is_Rational else None


def exact_floats(
    array: np.ndarray, subs: Mapping[sympy.Symbol, Any], fast_subs: Mapping[Any, Any] | None = None
) -> np.ndarray:
    """float64 values of an object array of expressions at a point, each computed exactly and then
    rounded once: by SymEngine (exact rationals, 200-bit MPFR for what is irrational) where it
    evaluates as SymPy does, else, or where it cannot decide (a case on exp(2/3) > 2), by
    `evaluate_exact`. Same values either way (tests/engines/symbolic/test_symengine.py)."""
    out = np.zeros(array.shape, dtype=np.float64)
    fast_subs: dict[Any, Any] | None = None
    for index in np.ndindex(*array.shape):
        expr = array[index]
        value = None
        fast = _in_symengine(expr)
        if fast is not None:
            if fast_subs is None:
                fast_subs = symengine_substitution(subs)
            value = _fast_float(fast, fast_subs)  # type: ignore[arg-type]
        out[index] = evaluate_exact(expr, subs)[0] if value is None else value
    return out


# Expressions already in SymEngine (None: not for SymEngine), so that each point only substitutes.
_IN_SYMENGINE: dict[sympy.Expr, Any] = {}


def _in_symengine(expr: sympy.Expr) -> Any:
    if symengine is None:
        return None
    if expr not in _IN_SYMENGINE:
        fast = None
        if _symengine_evaluates(expr):
            ours = {symengine.Symbol(s.name): _carrying(s) for s in expr.free_symbols}
            fast = symengine.sympify(expr).xreplace(ours)
        _remember(expr, fast)
    return _IN_SYMENGINE[expr]


class WithSymEngineForms:
    """A value holding SymPy expressions to evaluate at points (an Expansion, a JacobianExpansion,
    exact Hessian blocks), pickled (the disk cache) with their SymEngine forms, in SymEngine's own
    serialization: converting from SymPy again costs ten times reading them back."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __getstate__(self) -> dict[str, Any]:
        forms: list[bytes | None] = []
        symbols: dict[str, sympy.Symbol] = {}
        for expr in _expressions_in(self.value):
            fast = _in_symengine(expr)
            if fast is None:
                forms.append(_NOT_FOR_SYMENGINE)
                continue
            carriers = fast.free_symbols
            symbols.update((c.name, c.symbol) for c in carriers)
            try:
                forms.append(pickle.dumps(fast.xreplace({c: symengine.Symbol(c.name) for c in carriers})))
            except Exception:  # a form SymEngine does not serialize: converted again when needed
                forms.append(None)
        return {"value": self.value, "forms": forms, "symbols": list(symbols.values())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.value = state["value"]
        if symengine is None:
            return
        symbols = {s.name: s for s in state["symbols"]}
        for expr, stored in zip(_expressions_in(self.value), state["forms"], strict=True):
            if stored == _NOT_FOR_SYMENGINE:
                _remember(expr, None)
            elif stored is not None:
                fast = pickle.loads(stored)  # inside a signed cache entry: ours
                plain = {str(p): p for p in fast.free_symbols}
                if plain.keys() <= symbols.keys():
                    _remember(expr, fast.xreplace({p: _carrying(symbols[n]) for n, p in plain.items()}))


_NOT_FOR_SYMENGINE = b""  # a stored form's marker: SymPy evaluates this one


def _expressions_in(value: Any) -> list[sympy.Expr]:
    if isinstance(value, Expansion):
        return [value.output, *_expressions_in(value.grads)]
    if isinstance(value, JacobianExpansion):
        return [*value.output.flat, *_expressions_in(value.jacobians)]
    if isinstance(value, dict):
        return [e for array in value.values() for e in array.flat]
    raise TypeError(f"no expressions known in {type(value).__name__}")


def _remember(expr: sympy.Expr, fast: Any) -> None:
    if len(_IN_SYMENGINE) > 100_000:  # a long-lived process (the pytest plugin): stay bounded
        _IN_SYMENGINE.clear()
    _IN_SYMENGINE[expr] = fast


def _fast_float(fast: Any, subs: Mapping[Any, Any]) -> float | None:
    try:
        number = fast.xreplace(subs).n(200, real=True)
        value = float(number)
    except (RuntimeError, TypeError, ValueError, AttributeError, NotImplementedError):
        return None  # complex, undefined (1/0) or undecided: SymPy says which
    return value if np.isfinite(value) else None


# Numbers within this (relative, at 50 digits) of each other are equal: a tie, as _pick_numeric.
_TIE_DIGITS = 50
_TIE_RELATIVE = sympy.Float("1e-40")


def decide_relations(expr: sympy.Basic) -> sympy.Basic:
    """expr with every comparison of two numbers decided at 50 digits, where SymPy left it open
    (1/(1 + E) + E/(1 + E) > 1: the sum is 1, which it does not see)."""

    def decided(rel: sympy.Basic) -> sympy.Basic:
        gap = (rel.lhs - rel.rhs).evalf(_TIE_DIGITS)
        scale = max(abs(rel.lhs.evalf(_TIE_DIGITS)), abs(rel.rhs.evalf(_TIE_DIGITS)), sympy.Integer(1))
        if not (gap.is_real and scale.is_real):
            return rel  # complex or undefined: left to the caller
        sign = 0 if abs(gap) <= _TIE_RELATIVE * scale else (1 if gap > 0 else -1)
        holds = {
            "==": sign == 0,
            "!=": sign != 0,
            ">": sign > 0,
            ">=": sign >= 0,
            "<": sign < 0,
            "<=": sign <= 0,
        }
        return sympy.true if holds[rel.rel_op] else sympy.false

    return expr.replace(
        lambda e: isinstance(e, sympy.core.relational.Relational) and e.lhs.is_number and e.rhs.is_number,
        decided,
    )


@dataclass
class JacobianExpansion:
    """A tensor output expanded element by element, and its full Jacobian, still symbolic: the
    exact ground truth for tensor outputs, as `Expansion` is for scalar ones."""

    symbols: dict[str, np.ndarray]
    output: np.ndarray  # object array of the output's shape
    jacobians: dict[str, np.ndarray]  # object arrays of shape output.shape + input.shape

    def substitution(self, point: Mapping[str, np.ndarray]) -> dict[sympy.Symbol, sympy.Rational]:
        return Expansion(self.symbols, sympy.Integer(0), {}).substitution(point)

    def evaluate(self, point: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The output and every Jacobian at a point, exactly, then as float64."""
        subs = self.substitution(point)

        def exact(array: np.ndarray) -> np.ndarray:
            if not array.size:
                return np.zeros(array.shape)
            return exact_floats(array, subs)

        return exact(self.output), {n: exact(j) for n, j in self.jacobians.items()}


def expand_jacobian(
    program: Program, wrt: list[str], fixed: Mapping[str, np.ndarray] | None = None
) -> JacobianExpansion:
    """d out[i] / d x[j] for every output element i and input element j, by `sympy.diff`."""
    symbols = _symbols(program, fixed)
    output = np.asarray(expand(program, symbols)[program.output.id], dtype=object)
    wanted = {s for name in wrt for s in symbols[name].flat}
    rows = [_partials(output[i], wanted) for i in np.ndindex(*output.shape)]
    jacobians: dict[str, np.ndarray] = {}
    for name in wrt:
        syms = symbols[name]
        j = np.empty(output.shape + syms.shape, dtype=object)
        for row, i in zip(rows, np.ndindex(*output.shape), strict=True):
            for k in np.ndindex(*syms.shape):
                j[i + k] = row.get(syms[k], sympy.Integer(0))
        jacobians[name] = j
    return JacobianExpansion(symbols, output, jacobians)


# ---------------------------------------------------------------- what an expansion would cost


def expanded_size(program: Program) -> float:
    """The expansion's size, estimated from shapes alone: how many nodes the output's expression
    trees would have (every element's, every step inlined as `expand` inlines it). The expansion's
    cost (building, differentiating, evaluating exactly) grows with it; `SymbolicEngine` expands at
    a case's own shape only while it is small. An upper estimate where an op is not modelled."""
    env: dict[str, np.ndarray] = {name: np.ones(d.type.shape) for name, d in program.inputs.items()}
    for step in program.steps:
        env[step.id] = _size(step.expr, env)
    return float(np.sum(env[program.output.id]))


_ARITHMETIC = frozenset(
    {"add", "sub", "mul", "div", "neg", "pow", "lt", "le", "gt", "ge", "eq", "ne", "where"}
)


def _size(node: object, env: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per element of node's result, the number of nodes of its expanded expression."""
    if isinstance(node, Const):
        return np.ones(())
    if isinstance(node, Ref):
        return env[node.target]
    assert isinstance(node, Call)
    args = [_size(a, env) for a in node.args]
    shape = node.shape
    if OPS[node.op].kind is OpKind.ELEMENTWISE or node.op == "clamp":
        # SymPy's work on a function grows with its argument beyond the argument's size (tanh asks
        # whether its argument is real, finite, ... each time it is built or differentiated): nested
        # functions weigh more than their nodes.
        weight = 1.0 if node.op in _ARITHMETIC else 3.0
        return np.broadcast_to(weight * sum(args) + 1.0, shape)
    if node.op in ("sum", "mean"):
        return np.asarray(np.sum(args[0], axis=node.kw("axis"), keepdims=node.kw("keepdims")) + 1.0)
    if node.op in ("prod", "norm"):
        return np.asarray(np.sum(args[0], axis=node.kw("axis"), keepdims=node.kw("keepdims")) * 3.0 + 2.0)
    if node.op in ("cumsum", "cumprod"):  # element k holds k + 1 terms
        return np.asarray(np.cumsum(args[0], axis=node.kw("axis")) + 1.0)
    if node.op in ("max", "min"):  # nested extremes, each argument compared with the others
        return np.asarray(2 * np.sum(args[0], axis=node.kw("axis"), keepdims=node.kw("keepdims")) + 1.0)
    if node.op == "matmul":
        a, b = args
        if not (a.ndim and b.ndim):
            return a * 0 + b + a + 1.0
        # one product per term of each dot product: sizes of a's row and b's column, plus the + and *
        return np.matmul(a, np.ones_like(b)) + np.matmul(np.ones_like(a), b) + 2.0 * a.shape[-1]
    if node.op == "transpose":
        return np.transpose(args[0], node.kw("axes"))
    if node.op == "expand_dims":
        return np.expand_dims(args[0], node.kw("axis"))
    if node.op == "broadcast_to":
        return np.broadcast_to(args[0], node.kw("shape"))
    if node.op in DEFINED:
        defined = definition(node)
        inner: dict[str, np.ndarray] = {
            f"a{i}": np.broadcast_to(a, t.type.shape)
            for i, (a, t) in enumerate(zip(args, node.args, strict=True))
        }
        for step in defined.steps:
            inner[step.id] = _size(step.expr, inner)
        return np.asarray(inner[defined.output.id])
    if node.op in EXPANDED_LAYOUT:  # moved elements keep their sizes; new zeros weigh 1
        return np.asarray(_layout(node, [np.asarray(a, dtype=float) for a in args]), dtype=float) + (
            1.0 if node.op in ("pad", "unslice", "undiagonal", "tril", "triu") else 0.0
        )
    if node.op in ("softmax", "log_softmax"):  # each element over the sum of its row's exponentials
        axis = node.kw("axis")
        return args[0] + np.sum(args[0], axis=axis, keepdims=True) + 2.0 * args[0].shape[axis]
    if node.op == "logsumexp":
        return np.asarray(np.sum(args[0], axis=node.kw("axis"), keepdims=node.kw("keepdims")) * 2.0 + 2.0)
    if node.op == "outer":
        return np.add.outer(args[0], args[1]) + 1.0
    if node.op == "index":
        return np.asarray(args[0][node.kw("at")])
    if node.op in ("nll_loss", "cross_entropy"):
        scores = args[0]
        if node.op == "cross_entropy":  # log_softmax of each row
            scores = scores + np.sum(scores, axis=-1, keepdims=True) + 2.0 * scores.shape[-1]
        return np.asarray(np.sum(scores * 4.0) + 2.0)  # each picked by a onehot case (label == class)
    if node.op in ("onehot", "eye"):
        return np.full(shape, 4.0)
    # Anything else (dot, trace, mse_loss, take): every result element as large as all its arguments.
    return np.full(shape, sum(float(np.sum(a)) for a in args) + 1.0)
