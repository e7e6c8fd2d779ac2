"""Closed-form gradients: reverse-mode differentiation of the IR into an expression.

A `SymTensor` is an elementwise SymPy expression over *atoms*, each atom a tensor: an input, or a
non-elementwise op (sum, mean, matmul, transpose, expand_dims) applied to other SymTensors. The
elementwise parts are derived by SymPy on a generic element (one symbol per atom), so the cost
depends on the expression, never on the tensor sizes: mean(3*(x+2)^2) at any shape is one
`sympy.diff` of 3*(x + 2)**2 and the factor 1/N of mean.

The tensor-level rules (what each atom's op does to an incoming gradient) are written by hand in
`_vjp`; the chain rule through elementwise regions is `_through_elementwise`, written once.
"""

from __future__ import annotations

import builtins
import linecache
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from symcheck.engines.symbolic import arrays
from symcheck.engines.symbolic.budget import gave_up_in, spent, time_limit
from symcheck.engines.symbolic.definitions import DEFINED, definition
from symcheck.engines.symbolic.functions import (
    WITH_KEYWORDS,
    clamp,
    relu,
    step,
    tie,
)
from symcheck.engines.symbolic.rules import ELEMENTWISE, NUMPY_IMPLEMENTATIONS
from symcheck.language import layout
from symcheck.language.catalogue import OPS, OpKind, einsum_parts, matmul_shape, pad_pairs, reduced_count
from symcheck.language.ir import Call, Const, Program, Ref, Shape


@dataclass(frozen=True)
class SymTensor:
    """A tensor of `shape` whose every element is `expr`, with atoms broadcast to `shape`."""

    expr: sympy.Expr
    shape: Shape

    @property
    def key(self) -> tuple[sympy.Expr, Shape]:
        return (self.expr, self.shape)


@dataclass(frozen=True)
class Atom:
    symbol: sympy.Symbol
    shape: Shape
    op: str  # "input", or a non-elementwise op of the catalogue
    args: tuple[SymTensor, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    name: str = ""  # inputs: the input's name

    def kw(self, key: str) -> Any:
        return dict(self.kwargs)[key]


def _numpy_op(atom: Atom, args: Sequence[Any], symbolic: bool = False) -> Any:
    """An atom's op on concrete arrays (float or sympy object arrays)."""
    if atom.op in ("sum", "mean"):
        axes = atom.kw("axis")
        total = np.sum(args[0], axis=axes, keepdims=atom.kw("keepdims"))
        if atom.op == "sum":
            return total
        n = reduced_count(np.shape(args[0]), axes)
        return total * (sympy.Rational(1, n) if np.asarray(args[0]).dtype == object else 1.0 / n)
    if atom.op in ("var", "std"):
        x, axes, correction = np.asarray(args[0]), atom.kw("axis"), atom.kw("correction")
        if x.dtype != object:
            spread = np.var if atom.op == "var" else np.std
            return spread(x, axis=axes, ddof=correction, keepdims=atom.kw("keepdims"))
        n = reduced_count(x.shape, axes)
        centre = np.sum(x, axis=axes, keepdims=True) * sympy.Rational(1, n)
        total = np.sum((x - centre) ** 2, axis=axes, keepdims=atom.kw("keepdims"))
        variance = np.asarray(total * (1 / (n - sympy.Rational(str(correction)))), dtype=object)
        return variance if atom.op == "var" else np.frompyfunc(sympy.sqrt, 1, 1)(variance)
    if atom.op == "prod":
        axes = atom.kw("axis")
        return np.prod(np.asarray(args[0]), axis=axes, keepdims=atom.kw("keepdims"))
    if atom.op in ("cumsum", "cumprod"):
        scan = np.cumsum if atom.op == "cumsum" else np.cumprod
        return scan(np.asarray(args[0]), axis=atom.kw("axis"))
    if atom.op == "matmul":
        return np.matmul(args[0], args[1]) if np.ndim(args[0]) and np.ndim(args[1]) else args[0] * args[1]
    if atom.op == "transpose":
        return np.transpose(args[0], atom.kw("axes"))
    if atom.op == "expand_dims":
        return np.expand_dims(args[0], atom.kw("axis"))
    if atom.op == "broadcast_to":
        return np.broadcast_to(args[0], atom.kw("shape"))
    if atom.op in LAYOUT_OPS:
        kw = dict(atom.kwargs)
        if atom.op in ("concat", "stack"):
            return LAYOUT_OPS[atom.op]([np.asarray(a) for a in args], **kw)
        return LAYOUT_OPS[atom.op](np.asarray(args[0]), **kw)
    if atom.op == "softmax":
        return arrays.softmax(args[0], atom.kw("axis"))
    if atom.op == "log_softmax":
        return arrays.log_softmax(args[0], atom.kw("axis"))
    if atom.op == "logsumexp":
        return arrays.logsumexp(args[0], atom.kw("axis"), atom.kw("keepdims"))
    if atom.op in ("det", "inv", "cholesky"):
        return arrays.linear_algebra(atom.op, np.asarray(args[0]))
    if atom.op == "einsum":
        return np.einsum(atom.kw("subscripts"), *(np.asarray(a) for a in args))
    if atom.op in ("gather", "index_select"):
        read = layout.gather if atom.op == "gather" else layout.index_select
        return read(np.asarray(args[0]), np.asarray(args[1]).astype(np.int64), atom.kw("axis"))
    if atom.op == "scatter_add":
        x, idx, src = (np.asarray(a) for a in args)
        return layout.scatter_add(x, idx.astype(np.int64), src, atom.kw("axis"))
    if atom.op == "outer":
        return np.multiply.outer(args[0], args[1])
    if atom.op == "trace":
        return np.trace(args[0])
    if atom.op == "onehot":
        return arrays.onehot(args[0], atom.kw("num_classes"), ignored=dict(atom.kwargs).get("ignore_index"))
    if atom.op == "eye":
        return arrays.eye(atom.kw("n"), symbolic=symbolic)
    if atom.op in ("max", "min"):
        return arrays.extreme(atom.op, args[0], atom.kw("axis"), atom.kw("keepdims"))
    if atom.op == "index":
        return np.asarray(args[0])[atom.kw("at")]
    if atom.op == "take":
        return arrays.take(args[0], args[1])
    if atom.op == "let":
        return args[0]
    raise AssertionError(f"no numpy op for atom {atom.op}")


# The layout ops that are atoms of closed forms, with their numpy meaning (language/layout.py);
# flatten and squeeze are lowered as the reshapes they are.
LAYOUT_OPS = {op: fn for op, fn in layout.FUNCTIONS.items() if op not in ("flatten", "squeeze")}
# Of those, the ones that only move elements: an expression without tensor atoms (a constant) is
# the same constant after them.
_MOVES = frozenset({"reshape", "flip", "slice", "stack", "concat"})


@dataclass
class Graph:
    """The atoms of one program, in creation order (a topological order: args come first)."""

    atoms: dict[sympy.Symbol, Atom] = field(default_factory=dict)
    _by_key: dict[tuple, sympy.Symbol] = field(default_factory=dict)
    _lambdified: dict[tuple, Callable[..., Any]] = field(default_factory=dict)
    _plans: dict[tuple, tuple[list[Atom], Callable[..., Any]]] = field(default_factory=dict)
    # lambdify's source of each numpy function: kept with the graph (the disk cache), so that a later
    # run compiles it (microseconds) instead of printing it again (a millisecond or more each)
    _sources: dict[tuple, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def __getstate__(self) -> dict[str, Any]:
        # numpy functions do not pickle (the disk cache): compiled again from their sources. Those
        # are stored as pairs: a dict is rebuilt while unpickling, when a SymPy key may not be
        # whole yet, and its hash then is not the one it has after (a Piecewise's, a maximum's).
        return {**self.__dict__, "_lambdified": {}, "_plans": {}, "_sources": list(self._sources.items())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sources = {}
        self._stored_sources: list[tuple[tuple, tuple[str, dict[str, Any]]]] = state.get("_sources", [])

    # ------------------------------------------------------------ building

    def input(self, name: str, shape: Shape) -> SymTensor:
        key = ("input", name)
        if key not in self._by_key:
            symbol = sympy.Symbol(name, real=True)
            self._register(key, Atom(symbol, shape, "input", name=name))
        return SymTensor(self._by_key[key], shape)

    def atom(self, op: str, args: tuple[SymTensor, ...], result_shape: Shape, /, **kwargs: Any) -> SymTensor:
        kw = tuple(sorted(kwargs.items()))
        args = tuple(SymTensor(_drop_redundant_steps(a.expr), a.shape) for a in args)
        key = (op, tuple(a.key for a in args), kw)
        if key not in self._by_key:
            symbol = sympy.Symbol(f"_a{len(self.atoms)}", real=True)
            self._register(key, Atom(symbol, result_shape, op, args, kw))
        return SymTensor(self._by_key[key], result_shape)

    def _register(self, key: tuple, atom: Atom) -> None:
        self._by_key[key] = atom.symbol
        self.atoms[atom.symbol] = atom

    def atoms_of(self, t: SymTensor) -> list[Atom]:
        return [self.atoms[s] for s in sorted(t.expr.free_symbols, key=lambda s: s.name) if s in self.atoms]

    def lower(self, program: Program, env: Mapping[str, SymTensor] | None = None) -> dict[str, SymTensor]:
        """Every input and step of `program` as a SymTensor over input atoms (steps inlined).

        `env` may give some inputs a meaning already (a formula naming a program's steps).
        """
        env = dict(env or {})
        for name, decl in program.inputs.items():
            if name not in env:
                env[name] = self.input(name, decl.type.shape)
        last = {s.name: s.id for s in program.steps}  # the value a step's name means in a formula
        for step_ in program.steps:
            lowered = self.lower_node(step_.expr, env)
            if step_.id != program.output.id and tree_size(lowered.expr, LET_SIZE) > LET_SIZE:
                # Large steps stay shared: substituted into each other, a deep program (many steps
                # on a few scalars, micrograd's style) would grow without end, and SymPy slows on
                # every function of a large argument (tanh asks whether it is real).
                named = step_.name if last.get(step_.name) == step_.id else ""
                lowered = self.let(lowered, named)
            env[step_.id] = lowered
        return env

    def let(self, t: SymTensor, name: str) -> SymTensor:
        """t as an atom of its own (op "let": its value is its argument's), printed as `name` (a
        step of the program a formula can name) or, without one, as its argument."""
        natural = self.natural_shape(t)  # an elementwise expression keeps broadcasting
        return SymTensor(self.atom("let", (SymTensor(t.expr, natural),), natural, name=name).expr, t.shape)

    def lower_node(self, node: object, env: Mapping[str, SymTensor]) -> SymTensor:
        if isinstance(node, Const):
            return SymTensor(sympy.Rational(node.value.numerator, node.value.denominator), ())
        if isinstance(node, Ref):
            return env[node.target]
        assert isinstance(node, Call)
        args = [self.lower_node(a, env) for a in node.args]
        shape = node.shape
        op = OPS[node.op]
        if node.op == "clamp":
            return SymTensor(clamp(args[0].expr, node.kw("min"), node.kw("max")), shape)
        if node.op in WITH_KEYWORDS:
            return SymTensor(WITH_KEYWORDS[node.op](args[0].expr, node.kwdict), shape)
        if op.kind is OpKind.ELEMENTWISE:
            return SymTensor(ELEMENTWISE[node.op](*(a.expr for a in args)), shape)
        if node.op in ("sum", "mean", "max", "min"):
            return self.reduce(node.op, args[0], node.kw("axis"), node.kw("keepdims"))
        if node.op == "matmul":
            return self.matmul(args[0], args[1])
        if node.op == "transpose":
            return self.transpose(args[0], node.kw("axes"))
        if node.op == "expand_dims":
            return self.expand_dims(args[0], node.kw("axis"))
        if node.op == "broadcast_to":
            return SymTensor(args[0].expr, shape)  # elementwise expressions broadcast already
        if node.op in ("reshape", "flatten", "squeeze"):
            return self.reshape(args[0], shape)
        if node.op in LAYOUT_OPS:
            return self.layout(node.op, args, shape, **node.kwdict)
        return self._lower_model_op(node, args)

    def _lower_model_op(self, node: Call, args: list[SymTensor]) -> SymTensor:
        """Normalisations and losses: atoms where they are their own functions (softmax), else
        their definitions (mse_loss is a mean of squares), so the closed forms read like the math."""
        shape = node.shape
        if node.op in DEFINED:  # layers and losses: their definitions in the language (definitions.py)
            defined = definition(node)
            env = {f"a{i}": a for i, a in enumerate(args)}
            return self.lower(defined, env)[defined.output.id]
        if node.op in ("softmax", "log_softmax"):
            return self.atom(node.op, (self.full(args[0]),), shape, axis=node.kw("axis"))
        if node.op == "logsumexp":
            return self.atom(
                "logsumexp", (self.full(args[0]),), shape, axis=node.kw("axis"), keepdims=node.kw("keepdims")
            )
        if node.op in ("det", "inv", "cholesky"):
            return self.atom(node.op, (self.full(args[0]),), shape)
        if node.op == "logdet":  # log(det(A)): its gradient inv(A).T follows from det's
            return SymTensor(sympy.log(self.atom("det", (self.full(args[0]),), ()).expr), ())
        if node.op == "solve":  # inv(A) @ b
            inverse = self.atom("inv", (self.full(args[0]),), args[0].shape)
            return self.matmul(inverse, args[1])
        if node.op in ("gather", "index_select"):
            x, idx = args
            return self.atom(node.op, (self.full(x), self.full(idx)), shape, axis=node.kw("axis"))
        if node.op == "scatter_add":
            x, idx, src = args
            parts = (self.full(x), self.full(idx), self.full(src))
            return self.atom("scatter_add", parts, shape, axis=node.kw("axis"))
        if node.op == "embedding":  # the rows of the flattened index, reshaped
            weight, idx = args
            flat = self.reshape(idx, (int(np.prod(idx.shape)),)) if len(idx.shape) != 1 else idx
            picked = (self.full(weight), self.full(flat))
            rows = self.atom("index_select", picked, flat.shape + weight.shape[1:], axis=0)
            return self.reshape(rows, shape)
        if node.op == "einsum":
            return self.atom(
                "einsum", tuple(self.full(a) for a in args), shape, subscripts=node.kw("subscripts")
            )
        if node.op == "outer":
            return self.outer(args[0], args[1])
        if node.op == "dot":
            return self.reduce("sum", SymTensor(args[0].expr * args[1].expr, args[0].shape), None, False)
        if node.op == "trace":
            return self.atom("trace", (self.full(args[0]),), ())
        if node.op == "prod":
            x, axes = args[0], node.kw("axis")
            if axes is None and len(x.shape) != 1:  # the product of all, as one axis
                x = self.reshape(x, (int(np.prod(x.shape)),))
                kept = self.atom(
                    "prod",
                    (self.full(x),),
                    () if not node.kw("keepdims") else (1,),
                    axis=(0,),
                    keepdims=node.kw("keepdims"),
                )
                return self.reshape(kept, shape) if node.kw("keepdims") else kept
            return self.atom("prod", (self.full(x),), shape, axis=axes or (0,), keepdims=node.kw("keepdims"))
        if node.op in ("cumsum", "cumprod"):
            return self.atom(node.op, (self.full(args[0]),), shape, axis=node.kw("axis"))
        if node.op == "norm":  # its definition, so that the closed form reads like the math
            x, axes, keep, p = args[0], node.kw("axis"), node.kw("keepdims"), node.kw("p")
            if p == "1":
                return self.reduce("sum", SymTensor(ELEMENTWISE["abs"](x.expr), x.shape), axes, keep)
            if p == "inf":
                return self.reduce("max", SymTensor(ELEMENTWISE["abs"](x.expr), x.shape), axes, keep)
            total = self.reduce("sum", SymTensor(x.expr**2, x.shape), axes, keep)
            return SymTensor(sympy.sqrt(total.expr), total.shape)
        if node.op in ("var", "std"):  # atoms with their own VJP (the expansion uses the definition)
            return self.atom(
                node.op,
                (self.full(args[0]),),
                shape,
                axis=node.kw("axis"),
                keepdims=node.kw("keepdims"),
                correction=node.kw("correction"),
            )
        if node.op == "mse_loss":
            a, b = args
            diff_shape = tuple(np.broadcast_shapes(a.shape, b.shape))
            return self.reduce(
                node.kw("reduction"), SymTensor((a.expr - b.expr) ** 2, diff_shape), None, False
            )
        if node.op == "onehot":
            return self.onehot(args[0], node.kw("num_classes"), node.kw("ignore_index"))
        if node.op == "eye":
            return self.atom("eye", (), shape, n=node.kw("n"))
        if node.op == "index":
            whole = args[0].expr
            if whole in self.atoms and self.atoms[whole].op == "stack" and self.atoms[whole].kw("axis") == 0:
                return self.atoms[whole].args[node.kw("at")]  # stack(a, b)[1] is b
            return self.atom("index", (self.full(args[0]),), shape, at=node.kw("at"))
        if node.op == "take":
            return self.atom("take", (self.full(args[0]), args[1]), shape)
        if node.op in ("nll_loss", "cross_entropy"):
            scores, target = args[0], args[1]
            classes = scores.shape[-1]
            if node.op == "cross_entropy":
                scores = self.atom(
                    "log_softmax", (self.full(scores),), scores.shape, axis=len(scores.shape) - 1
                )
            ignored, weighted = node.kw("ignore_index"), node.kw("weight")
            smoothing = sympy.Rational(str(node.kwdict.get("label_smoothing") or 0))
            hot = self.onehot(target, classes, ignored)
            if ignored is None and not weighted and not smoothing:
                picked = SymTensor(hot.expr * scores.expr, scores.shape)
                total = self.reduce("sum", picked, None, False)
                n = scores.shape[0] if len(scores.shape) == 2 and node.kw("reduction") == "mean" else 1
                return SymTensor(-total.expr / n, ())
            # torch's: each example weighs w[y]; smoothing spreads eps over the classes; the mean
            # divides by the weights of the examples kept
            w = args[2].expr if weighted else sympy.Integer(1)
            picked = self.reduce("sum", SymTensor(hot.expr * w * scores.expr, scores.shape), None, False)
            kept = (
                self.reduce("sum", hot, (len(hot.shape) - 1,), True).expr
                if ignored is not None
                else sympy.Integer(1)
            )
            spread = self.reduce("sum", SymTensor(kept * w * scores.expr, scores.shape), None, False)
            total = -((1 - smoothing) * picked.expr + smoothing / classes * spread.expr)
            if node.kw("reduction") == "sum":
                return SymTensor(total, ())
            weights = self.reduce("sum", SymTensor(hot.expr * w, scores.shape), None, False)
            return SymTensor(total / weights.expr, ())
        raise AssertionError(f"symbolic engine has no rule for {node.op}")

    def onehot(self, y: SymTensor, classes: int, ignored: int | None = None) -> SymTensor:
        if ignored is None:
            return self.atom("onehot", (y,), y.shape + (classes,), num_classes=classes)
        return self.atom("onehot", (y,), y.shape + (classes,), num_classes=classes, ignore_index=ignored)

    def outer(self, a: SymTensor, b: SymTensor) -> SymTensor:
        shape = (a.shape[0], b.shape[0])
        ca, ra = sympy.factor_terms(a.expr).as_coeff_Mul()
        cb, rb = sympy.factor_terms(b.expr).as_coeff_Mul()
        if ca * cb != 1:
            inner = self.outer(SymTensor(ra, a.shape), SymTensor(rb, b.shape))
            return SymTensor(ca * cb * inner.expr, shape)
        if not self.atoms_of(a):  # c * b, repeated down the rows
            return SymTensor(a.expr * b.expr, shape)
        if not self.atoms_of(b):
            return SymTensor(self.expand_dims(a, 1).expr * b.expr, shape)
        return self.atom("outer", (self.full(a), self.full(b)), shape)

    # ------------------------------------------------------------ tensor ops, simplified on the way

    def natural_shape(self, t: SymTensor) -> Shape:
        """The shape t's expression has by itself: its atoms broadcast together."""
        shapes = [a.shape for a in self.atoms_of(t)]
        return tuple(np.broadcast_shapes(*shapes)) if shapes else ()

    def full(self, t: SymTensor) -> SymTensor:
        """t with its broadcast made explicit, before a tensor op takes it as an argument.

        Elementwise, `b` of shape (3,) may stand for a (2, 3) tensor; inside `W.T @ ...` it may
        not, or the printed closed form would mean something else.
        """
        if self.natural_shape(t) == t.shape:
            return t
        return SymTensor(self.atom("broadcast_to", (t,), t.shape, shape=t.shape).expr, t.shape)

    def _constant_along(self, t: SymTensor, axes: Sequence[int]) -> bool:
        """True when every atom of t is broadcast (absent or size 1) along `axes`."""
        nd = len(t.shape)
        for a in self.atoms_of(t):
            offset = nd - len(a.shape)
            if any(ax >= offset and a.shape[ax - offset] != 1 for ax in axes):
                return False
        return True

    def reduce(self, op: str, t: SymTensor, axes: tuple[int, ...] | None, keepdims: bool) -> SymTensor:
        all_axes = tuple(range(len(t.shape))) if axes is None else axes
        if op in ("max", "min") and reduced_count(t.shape, axes) == 1:
            op = "sum"  # the extreme of one element is that element (and has no ties to share)
        if all_axes == tuple(range(len(t.shape))) and not keepdims:
            axes = None  # sum(x) rather than sum(x, axis=(0, 1)): one spelling, so atoms coincide
        coeff, rest = sympy.factor_terms(t.expr).as_coeff_Mul()
        if coeff != 1 and rest != 1 and op in ("sum", "mean"):
            # Constants come out of reductions: 3*sum(x), not sum(3*x).
            inner = self.reduce(op, SymTensor(rest, t.shape), axes, keepdims)
            return SymTensor(coeff * inner.expr, inner.shape)
        out_shape = tuple(
            1 if i in all_axes else d for i, d in enumerate(t.shape) if keepdims or i not in all_axes
        )
        if op == "sum":
            counted = self._sum_of_onehot(t, all_axes, out_shape)
            if counted is not None:
                return counted
        n = reduced_count(t.shape, axes)
        # Reducing what is constant along the axes is a multiplication, if the remaining atoms
        # still line up with the result (they do when the reduced axes are leading or kept).
        if self._constant_along(t, all_axes):
            scale = n if op == "sum" else 1
            if self._fits(t, out_shape):
                return SymTensor(t.expr * scale, out_shape)
            squeezed = self._squeeze(t, all_axes)
            if squeezed is not None and self._fits(squeezed, out_shape):
                return SymTensor(squeezed.expr * scale, out_shape)
        return self.atom(op, (self.full(t),), out_shape, axis=axes, keepdims=keepdims)

    def _sum_of_onehot(self, t: SymTensor, axes: tuple[int, ...], out_shape: Shape) -> SymTensor | None:
        """sum(c * onehot(y, C), axis=-1) is c: each label's indicator vector sums to 1."""
        if axes != (len(t.shape) - 1,):
            return None
        factors = [  # (an ignored label's row sums to 0, not 1)
            f
            for f in sympy.Mul.make_args(t.expr)
            if f in self.atoms
            and self.atoms[f].op == "onehot"
            and len(self.atoms[f].shape) == len(t.shape)
            and dict(self.atoms[f].kwargs).get("ignore_index") is None
        ]
        if len(factors) != 1:
            return None
        rest = SymTensor(t.expr / factors[0], t.shape)
        if not self._constant_along(rest, axes):
            return None
        if self._fits(rest, out_shape):
            return SymTensor(rest.expr, out_shape)
        squeezed = self._squeeze(rest, axes)
        if squeezed is not None and self._fits(squeezed, out_shape):
            return SymTensor(squeezed.expr, out_shape)
        return None

    def _squeeze(self, t: SymTensor, axes: tuple[int, ...]) -> SymTensor | None:
        """Drop size-1 axes from each atom: sum(x, axis=1, keepdims=True) becomes sum(x, axis=1)."""
        replacements = {}
        for a in self.atoms_of(t):
            if len(a.shape) != len(t.shape):
                return None
            if a.op in ("sum", "mean") and a.kw("keepdims") and set(axes) <= set(a.kw("axis") or ()):
                replacements[a.symbol] = self.reduce(a.op, a.args[0], a.kw("axis"), False).expr
            elif a.shape != ():
                return None
        shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
        return SymTensor(t.expr.xreplace(replacements), shape)

    def _fits(self, t: SymTensor, shape: Shape) -> bool:
        try:
            for a in self.atoms_of(t):
                if np.broadcast_shapes(a.shape, shape) != shape:
                    return False
        except ValueError:
            return False
        return True

    def sum_to(self, t: SymTensor, shape: Shape) -> SymTensor:
        """Undo broadcasting: sum t (of a broadcast shape) down to `shape`."""
        lead = len(t.shape) - len(shape)
        kept_ones = tuple(i + lead for i, d in enumerate(shape) if d == 1 and t.shape[i + lead] != 1)
        if kept_ones:
            t = self.reduce("sum", t, kept_ones, True)
        if lead:
            t = self.reduce("sum", t, tuple(range(lead)), False)
        return t

    def matmul(self, a: SymTensor, b: SymTensor) -> SymTensor:
        shape = matmul_shape(a.shape, b.shape)
        ca, ra = sympy.factor_terms(a.expr).as_coeff_Mul()
        cb, rb = sympy.factor_terms(b.expr).as_coeff_Mul()
        if ca * cb != 1:
            # Constants come out of products: 2*(A.T @ B), not A.T @ (2*B).
            inner = self.matmul(SymTensor(ra, a.shape), SymTensor(rb, b.shape))
            return SymTensor(ca * cb * inner.expr, shape)
        if len(a.shape) > 2 or len(b.shape) > 2:  # a batch of matrices
            return self.atom("matmul", (self.full(a), self.full(b)), shape)
        # A matrix of one repeated value c: c*ones @ B sums B's rows, A @ c*ones sums A's columns.
        if not self.atoms_of(a):
            summed = self.reduce("sum", b, (0,), False)
            return SymTensor(a.expr * summed.expr, shape)
        if not self.atoms_of(b):
            summed = self.reduce("sum", a, (len(a.shape) - 1,), len(b.shape) == 2 and len(a.shape) == 2)
            return SymTensor(b.expr * summed.expr, shape)
        for one, other in ((a, b), (b, a)):
            if one.expr in self.atoms and self.atoms[one.expr].op == "eye":  # I @ B = B, A @ I = A
                return SymTensor(other.expr, shape)
        return self.atom("matmul", (self.full(a), self.full(b)), shape)

    def transpose(self, t: SymTensor, axes: tuple[int, ...]) -> SymTensor:
        shape = tuple(t.shape[i] for i in axes)
        if axes == tuple(range(len(axes))):
            return t
        atoms = self.atoms_of(t)
        if all(a.shape == () for a in atoms):
            return SymTensor(t.expr, shape)
        if all(len(a.shape) == len(t.shape) for a in atoms):
            # Transpose each atom: (x + 2).T is x.T + 2, which reads better.
            return SymTensor(t.expr.xreplace({a.symbol: self._transpose_atom(a, axes) for a in atoms}), shape)
        return self.atom("transpose", (self.full(t),), shape, axes=axes)

    def _transpose_atom(self, a: Atom, axes: tuple[int, ...]) -> sympy.Expr:
        shape = tuple(a.shape[i] for i in axes)
        if a.op == "matmul" and len(a.args[0].shape) == 2 and len(a.args[1].shape) == 2:
            # (A @ B).T is B.T @ A.T
            left, right = a.args
            return self.matmul(self.transpose(right, (1, 0)), self.transpose(left, (1, 0))).expr
        if a.op == "transpose":
            inner = a.args[0]
            composed = tuple(a.kw("axes")[i] for i in axes)
            if composed == tuple(range(len(composed))):
                return inner.expr
            return self.atom("transpose", (inner,), shape, axes=composed).expr
        return self.atom("transpose", (SymTensor(a.symbol, a.shape),), shape, axes=axes).expr

    def expand_dims(self, t: SymTensor, axis: int) -> SymTensor:
        shape = t.shape[:axis] + (1,) + t.shape[axis:]
        atoms = self.atoms_of(t)
        if all(a.shape == () for a in atoms):
            return SymTensor(t.expr, shape)
        if all(len(a.shape) == len(t.shape) for a in atoms) and all(self._keeps(a, axis) for a in atoms):
            # expand_dims(sum(x, axis=1), axis=1) is sum(x, axis=1, keepdims=True)
            return SymTensor(
                t.expr.xreplace({a.symbol: self.reduce(a.op, a.args[0], (axis,), True).expr for a in atoms}),
                shape,
            )
        return self.atom("expand_dims", (self.full(t),), shape, axis=axis)

    def reshape(self, t: SymTensor, shape: Shape) -> SymTensor:
        shape = tuple(shape)
        if shape == t.shape:
            return t
        atoms = self.atoms_of(t)
        if t.expr in self.atoms and atoms[0].shape == t.shape:
            return self._reshape_atom(atoms[0], shape)
        if atoms and all(a.shape == t.shape for a in atoms):
            # Reshape each atom: reshape(3*x^2, ...) is 3*reshape(x, ...)^2, and reshapes then cancel.
            return SymTensor(
                t.expr.xreplace({a.symbol: self._reshape_atom(a, shape).expr for a in atoms}), shape
            )
        return self.layout("reshape", [t], shape, shape=shape)

    def _reshape_atom(self, a: Atom, shape: Shape) -> SymTensor:
        if a.op in ("reshape", "expand_dims"):  # reshape(reshape(x, a), b) is reshape(x, b), or x
            inner = a.args[0]
            return inner if inner.shape == shape else self.reshape(inner, shape)
        return self.layout("reshape", [SymTensor(a.symbol, a.shape)], shape, shape=shape)

    def layout(self, op: str, args: Sequence[SymTensor], shape: Shape, /, **kwargs: Any) -> SymTensor:
        """A layout op's atom, where it is one: zeros stay zeros, constants stay constants under the
        ops that only move elements."""
        if all(a.expr == 0 for a in args) and not (op == "pad" and kwargs.get("value")):
            return SymTensor(sympy.Integer(0), tuple(shape))
        constants = all(all(x.shape == () for x in self.atoms_of(a)) for a in args)
        if op in _MOVES and constants and len({a.expr for a in args}) == 1:  # concat(c, c): c
            return SymTensor(args[0].expr, tuple(shape))
        if op == "slice":
            return self.slice(args[0], kwargs["items"], tuple(shape))
        if op in ("flip", "tril", "triu", "reshape") and args[0].expr in self.atoms:
            inner = self.atoms[args[0].expr]  # flip(flip(x)) is x; tril(tril(x)) is tril(x)
            if (
                inner.op == op
                and inner.kwargs == tuple(sorted(kwargs.items()))
                and inner.shape == args[0].shape
            ):
                return inner.args[0] if op == "flip" else args[0]
        return self.atom(op, tuple(self.full(a) for a in args), tuple(shape), **kwargs)

    def slice(self, t: SymTensor, items: tuple, shape: Shape) -> SymTensor:
        """t[items], taken into the expression: (2*x + b)[1:3] is 2*x[1:3] + b[1:3], and a slice of
        a concat, pad, stack, unslice or slice reads its argument directly where it can."""
        if all(isinstance(i, tuple) and i == (0, n, 1) for i, n in zip(items, t.shape, strict=True)):
            return t
        atoms = self.atoms_of(t)
        if t.expr in self.atoms and self.atoms[t.expr].shape == t.shape:
            return self._slice_atom(self.atoms[t.expr], items, shape)
        replacements = {}
        for a in atoms:
            offset = len(t.shape) - len(a.shape)
            own = []
            for axis, n in enumerate(a.shape):
                item = items[offset + axis]
                if n == 1 and t.shape[offset + axis] != 1:  # broadcast along this axis
                    item = 0 if isinstance(item, int) else (0, 1, 1)
                own.append(item)
            kept = tuple(len(range(*i)) for i in own if isinstance(i, tuple))
            replacements[a.symbol] = self._slice_atom(a, tuple(own), kept).expr
        return SymTensor(t.expr.xreplace(replacements), shape)

    def _slice_atom(self, a: Atom, items: tuple, shape: Shape) -> SymTensor:
        whole = SymTensor(a.symbol, a.shape)
        if all(isinstance(i, tuple) and i == (0, n, 1) for i, n in zip(items, a.shape, strict=True)):
            return whole
        if a.op == "slice":  # x[a][b] is one slice of x
            return self.slice(a.args[0], _composed(a.kw("items"), items), shape)
        if a.op in ("pad", "unslice"):  # reading inside what pad or unslice placed: the argument
            inner = a.args[0]
            if a.op == "pad":
                pairs = pad_pairs(a.kw("widths"), len(a.shape))
                start, step = tuple(p[0] for p in pairs), (1,) * len(a.shape)
            else:
                start, step = a.kw("start"), a.kw("step")
            read = _within(items, start, step, inner.shape)
            if read is not None:
                return self.slice(inner, read, shape)
        if a.op in ("concat", "stack"):
            axis, before = a.kw("axis"), 0
            item = items[axis]
            for arg in a.args:
                if a.op == "stack":
                    if item == before:
                        return self.slice(arg, items[:axis] + items[axis + 1 :], shape)
                    before += 1
                    continue
                n = arg.shape[axis]
                if isinstance(item, int) and before <= item < before + n:
                    return self.slice(arg, items[:axis] + (item - before,) + items[axis + 1 :], shape)
                if (
                    isinstance(item, tuple)
                    and before <= item[0]
                    and item[0] + (len(range(*item)) - 1) * item[2] < before + n
                ):
                    moved = (item[0] - before, item[1] - before, item[2])
                    return self.slice(arg, items[:axis] + (moved,) + items[axis + 1 :], shape)
                before += n
        return self.atom("slice", (whole,), shape, items=items)

    @staticmethod
    def _keeps(a: Atom, axis: int) -> bool:
        return a.op in ("sum", "mean", "max", "min") and not a.kw("keepdims") and a.kw("axis") == (axis,)

    # ------------------------------------------------------------ reverse mode

    def gradients(
        self, out: SymTensor, wrt: Sequence[str], seed: SymTensor | None = None
    ) -> dict[str, SymTensor]:
        """d out / d input for each name in wrt, as SymTensors (out must be a scalar), or with a
        `seed` of out's shape the vector-Jacobian product seed · d out / d input."""
        forward_atoms = list(self.atoms.values())
        grads: dict[sympy.Symbol, SymTensor] = {}
        self._through_elementwise(out, seed or SymTensor(sympy.Integer(1), out.shape), grads)
        for atom in reversed(forward_atoms):
            if atom.op == "input" or atom.symbol not in grads:
                continue
            for arg, g_arg in zip(atom.args, self._vjp(atom, grads[atom.symbol]), strict=True):
                if g_arg is not None:
                    self._through_elementwise(arg, g_arg, grads)
        result: dict[str, SymTensor] = {}
        for name in wrt:
            symbol = self._by_key[("input", name)]
            shape = self.atoms[symbol].shape
            result[name] = grads.get(symbol, SymTensor(sympy.Integer(0), shape))
        return result

    def _through_elementwise(self, t: SymTensor, g: SymTensor, grads: dict[sympy.Symbol, SymTensor]) -> None:
        """The chain rule through t's elementwise expression: g * dt/da, summed back to a's shape."""
        for atom in self.atoms_of(t):
            local = sympy.diff(t.expr, atom.symbol)
            if local == 0:
                continue
            contribution = self.sum_to(SymTensor(g.expr * local, t.shape), atom.shape)
            previous = grads.get(atom.symbol)
            grads[atom.symbol] = (
                contribution if previous is None else SymTensor(previous.expr + contribution.expr, atom.shape)
            )

    def _vjp(self, atom: Atom, g: SymTensor) -> list[SymTensor | None]:
        """What an atom's op does to the gradient g of its result: one SymTensor per argument."""
        if atom.op in ("sum", "mean"):
            (x,) = atom.args
            axes = atom.kw("axis")
            spread = self._unreduce(g, x.shape, axes, atom.kw("keepdims"))
            if atom.op == "mean":
                spread = SymTensor(spread.expr / reduced_count(x.shape, axes), spread.shape)
            return [spread]
        if atom.op in ("var", "std"):
            # var: 2 (x - mean(x)) / (N - correction); std: (x - mean(x)) / ((N - correction) std)
            (x,) = atom.args
            axes, correction = atom.kw("axis"), atom.kw("correction")
            spread = self._unreduce(g, x.shape, axes, atom.kw("keepdims"))
            keep = axes is not None  # a scalar mean or std broadcasts as it is
            deviation = x.expr - self.reduce("mean", x, axes, keep).expr
            scale = reduced_count(x.shape, axes) - sympy.Rational(str(correction))
            if atom.op == "var":
                return [SymTensor(spread.expr * 2 * deviation / scale, x.shape)]
            kept = self.reduce("mean", x, axes, keep).shape
            std = self.atom("std", (x,), kept, axis=axes, keepdims=keep, correction=correction)
            return [SymTensor(spread.expr * deviation / (scale * std.expr), x.shape)]
        if atom.op == "matmul":
            a, b = atom.args
            if len(a.shape) > 2 or len(b.shape) > 2:
                return self._batched_matmul_vjp(a, b, g)
            if len(a.shape) == 2 and len(b.shape) == 2:  # (n,m)@(m,p): dA = G B^T, dB = A^T G
                return [self.matmul(g, self.transpose(b, (1, 0))), self.matmul(self.transpose(a, (1, 0)), g)]
            if len(a.shape) == 2:  # (n,m)@(m,): dA = outer(G, b), dB = A^T G
                return [self.outer(g, b), self.matmul(self.transpose(a, (1, 0)), g)]
            if len(b.shape) == 2:  # (m,)@(m,p): dA = B G, dB = outer(a, G)
                return [self.matmul(b, g), self.outer(a, g)]
            return [SymTensor(g.expr * b.expr, a.shape), SymTensor(g.expr * a.expr, b.shape)]  # dot product
        if atom.op == "transpose":
            perm = atom.kw("axes")
            inverse = tuple(int(i) for i in np.argsort(perm))
            return [self.transpose(g, inverse)]
        if atom.op == "expand_dims":
            return [self.reduce("sum", g, (atom.kw("axis"),), False)]
        if atom.op == "broadcast_to":  # its argument is declared at the full shape already
            return [g]
        if atom.op == "softmax":  # ds = s * (g - sum(g * s))
            s = SymTensor(atom.symbol, atom.shape)
            weighted = self.reduce("sum", SymTensor(g.expr * s.expr, s.shape), (atom.kw("axis"),), True)
            return [SymTensor(s.expr * (g.expr - weighted.expr), s.shape)]
        if atom.op == "log_softmax":  # d log_softmax = g - softmax * sum(g)
            (x,) = atom.args
            s = self.atom("softmax", (x,), x.shape, axis=atom.kw("axis"))
            total = self.reduce("sum", SymTensor(g.expr, x.shape), (atom.kw("axis"),), True)
            return [SymTensor(g.expr - s.expr * total.expr, x.shape)]
        if atom.op == "logsumexp":  # d logsumexp = g * softmax, over the reduced axes
            (x,) = atom.args
            axes, keepdims = atom.kw("axis"), atom.kw("keepdims")
            spread = self._unreduce(g, x.shape, axes, keepdims)
            if (axes is not None and len(axes) == 1) or len(x.shape) == 1:
                weights = self.atom("softmax", (x,), x.shape, axis=axes[0] if axes else 0).expr
            else:
                kept = tuple(1 if axes is None or i in axes else d for i, d in enumerate(x.shape))
                lse = self.atom("logsumexp", (x,), kept, axis=axes, keepdims=True)
                weights = sympy.exp(x.expr - lse.expr)
            return [SymTensor(spread.expr * weights, x.shape)]
        if atom.op == "outer":  # outer(a, b)[i, j] = a_i b_j
            a, b = atom.args
            return [self.matmul(g, b), self.matmul(self.transpose(g, (1, 0)), a)]
        if atom.op == "trace":
            (x,) = atom.args
            n = x.shape[0]
            identity = self.atom("eye", (), (n, n), n=n)
            return [SymTensor(g.expr * identity.expr, x.shape)]
        if atom.op in ("max", "min"):  # tied extrema share the gradient evenly
            (x,) = atom.args
            axes, keepdims = atom.kw("axis"), atom.kw("keepdims")
            extreme = self._unreduce(SymTensor(atom.symbol, atom.shape), x.shape, axes, keepdims)
            tied = tie(x.expr, extreme.expr)  # the very values the reduction compared: no ulp apart
            ties = self.reduce("sum", SymTensor(tied, x.shape), axes, True)
            spread = self._unreduce(g, x.shape, axes, keepdims)
            # 0 off the ties (there tied = 0 and ties >= 1). Where the tie count folds to a case
            # (a clamped, constant argument: 2*[x == min]), SymPy writes 1/ties with a 1/0 branch
            # (zoo): a branch no tied element reaches, so it is dropped.
            share = (1 / ties.expr).xreplace({sympy.zoo: sympy.Integer(0)})
            return [SymTensor(spread.expr * tied * share, x.shape)]
        if atom.op == "index":  # x[k]: g goes back to row k
            (x,) = atom.args
            n = x.shape[0]
            identity = self.atom("eye", (), (n, n), n=n)
            return [self._scatter_row(self.atom("index", (identity,), (n,), at=atom.kw("at")), g, x.shape)]
        if atom.op == "take":  # x[y]: g goes back to the rows y names, summed where they repeat
            x, y = atom.args
            n = x.shape[0]
            rows = self.onehot(y, n)
            if len(y.shape) == 0:
                return [self._scatter_row(rows, g, x.shape), None]
            if len(x.shape) == 1:
                return [self.matmul(g, rows), None]
            if len(x.shape) == 2:
                return [self.matmul(self.transpose(rows, (1, 0)), g), None]
            # 3 or more axes: sum over y's axis of rows (m, n, 1, ...) times g (m, 1, a, ...).
            m = y.shape[0]
            spread = rows
            for _ in range(len(x.shape) - 1):
                spread = self.expand_dims(spread, len(spread.shape))
            lifted = self.expand_dims(g, 1)
            both = SymTensor(spread.expr * lifted.expr, (m, *x.shape))
            return [self.reduce("sum", both, (0,), False), None]
        if atom.op in LAYOUT_OPS:
            return self._layout_vjp(atom, g)
        if atom.op == "prod":  # the product of the others: those before times those after
            (x,) = atom.args
            (axis,) = atom.kw("axis")
            spread = self._unreduce(g, x.shape, (axis,), atom.kw("keepdims"))
            before = self._exclusive_cumprod(x, axis)
            after = self.layout(
                "flip",
                [self._exclusive_cumprod(self.layout("flip", [x], x.shape, axis=(axis,)), axis)],
                x.shape,
                axis=(axis,),
            )
            return [SymTensor(spread.expr * before.expr * after.expr, x.shape)]
        if atom.op == "cumsum":  # a running sum of g from the far end
            (x,) = atom.args
            return [self._reverse_cumsum(g, atom.kw("axis"))]
        if atom.op == "cumprod":  # d out_k / d x_i = out_k / x_i for i <= k
            (x,) = atom.args
            weighted = SymTensor(g.expr * atom.symbol, x.shape)
            return [SymTensor(self._reverse_cumsum(weighted, atom.kw("axis")).expr / x.expr, x.shape)]
        if atom.op == "einsum":
            return [self._einsum_vjp(atom, i, g) for i in range(len(atom.args))]
        if atom.op in ("det", "inv", "cholesky"):
            return [self._linear_algebra_vjp(atom, g)]
        if atom.op == "gather":  # g scattered back where it was read (adding where idx repeats)
            x, idx = atom.args
            return [self._scattered(x.shape, idx, g, atom.kw("axis")), None]
        if atom.op == "scatter_add":  # x: g as it is; src: g read where src was added
            x, idx, src = atom.args
            read = self.atom("gather", (self.full(g), idx), src.shape, axis=atom.kw("axis"))
            return [g, None, read]
        if atom.op == "index_select":  # whole slices: the 1-D index spread along the other axes
            x, idx = atom.args
            axis = atom.kw("axis")
            lifted = self.reshape(idx, tuple(idx.shape[0] if a == axis else 1 for a in range(len(g.shape))))
            spread = self.full(SymTensor(lifted.expr, g.shape))
            return [self._scattered(x.shape, spread, g, axis), None]
        if atom.op == "let":  # a shared step: its value is its argument's
            return [g]
        if atom.op in ("onehot", "eye"):  # constants: labels are never differentiated
            return [None for _ in atom.args]
        raise AssertionError(f"no gradient rule for {atom.op}")

    def _batched_matmul_vjp(self, a: SymTensor, b: SymTensor, g: SymTensor) -> list[SymTensor | None]:
        """A batch of matrices: dA = G @ B^T and dB = A^T @ G matrix by matrix, summed back over
        the batch axes an operand was broadcast along; a 1-D operand is a row (a) or a column (b)."""
        shapes = (a.shape, b.shape)
        if len(a.shape) == 1:
            a, g = self.expand_dims(a, 0), self.expand_dims(g, len(g.shape) - 1)
        if len(b.shape) == 1:
            b, g = self.expand_dims(b, 1), self.expand_dims(g, len(g.shape))
        da = self.sum_to(self.matmul(g, self._matrix_transpose(b)), a.shape)
        db = self.sum_to(self.matmul(self._matrix_transpose(a), g), b.shape)
        return [self.reshape(da, shapes[0]), self.reshape(db, shapes[1])]

    def _einsum_vjp(self, atom: Atom, i: int, g: SymTensor) -> SymTensor:
        """The cotangent of operand i: einsum of g with the other operands onto i's letters; a
        letter only operand i has (summed in it alone) broadcasts back along its axis."""
        inputs, output = einsum_parts(atom.kw("subscripts"))
        others = [(inputs[j], x) for j, x in enumerate(atom.args) if j != i] + [(output, g)]
        known = set("".join(letters for letters, _ in others))
        mine = inputs[i]
        present = "".join(c for c in mine if c in known)
        spec = ",".join(letters for letters, _ in others) + "->" + present
        shape = tuple(d for c, d in zip(mine, atom.args[i].shape, strict=True) if c in known)
        if len(others) == 1 and others[0][0] == present:  # einsum("ij->ij", g) is g
            part = others[0][1]
        else:
            part = self.atom("einsum", tuple(self.full(x) for _, x in others), shape, subscripts=spec)
        for axis, c in enumerate(mine):
            if c not in known:
                part = self.expand_dims(part, axis)
        return SymTensor(part.expr, atom.args[i].shape)

    def _linear_algebra_vjp(self, atom: Atom, g: SymTensor) -> SymTensor:
        """With X = inv(A): det's gradient is g det(A) X^T, inv's -X^T G X^T; cholesky's (L L^T the
        symmetric part of A, Murray 2016) the symmetric part of L^-T Φ(L^T G) L^-1, Φ the lower
        triangle with the diagonal halved."""
        (a,) = atom.args
        if atom.op == "det":
            inverse = self.atom("inv", (a,), a.shape)
            return SymTensor(g.expr * atom.symbol * self.transpose(inverse, (1, 0)).expr, a.shape)
        if atom.op == "inv":
            xt = self.transpose(SymTensor(atom.symbol, atom.shape), (1, 0))
            return SymTensor(-self.matmul(self.matmul(xt, g), xt).expr, a.shape)
        chol = SymTensor(atom.symbol, atom.shape)
        back = self.atom("inv", (chol,), atom.shape)
        inner = self.matmul(self.transpose(chol, (1, 0)), g)
        diagonal = self.layout("diagonal", [inner], (atom.shape[0],), offset=0)
        halved = self.layout("undiagonal", [diagonal], atom.shape, shape=atom.shape, offset=0)
        phi = SymTensor(self.layout("tril", [inner], atom.shape, k=0).expr - halved.expr / 2, atom.shape)
        s = self.matmul(self.matmul(self.transpose(back, (1, 0)), phi), back)
        return SymTensor((s.expr + self.transpose(s, (1, 0)).expr) / 2, a.shape)

    def _scattered(self, shape: Shape, idx: SymTensor, g: SymTensor, axis: int) -> SymTensor:
        """Zeros of `shape` with g added at idx along axis: gather's adjoint."""
        if g.expr == 0:
            return SymTensor(sympy.Integer(0), shape)
        zeros = self.full(SymTensor(sympy.Integer(0), shape))
        return self.atom("scatter_add", (zeros, idx, self.full(g)), shape, axis=axis)

    def _exclusive_cumprod(self, x: SymTensor, axis: int) -> SymTensor:
        """Per position along `axis`, the product of the elements before it (1 for the first)."""
        n = x.shape[axis]
        running = self.atom("cumprod", (self.full(x),), x.shape, axis=axis)
        head = tuple((0, n - 1, 1) if a == axis else (0, d, 1) for a, d in enumerate(x.shape))
        shortened = tuple(n - 1 if a == axis else d for a, d in enumerate(x.shape))
        widths = (0, 0) * (len(x.shape) - 1 - axis) + (1, 0)
        if n == 1:
            return SymTensor(sympy.Integer(1), x.shape)
        return self.layout("pad", [self.slice(running, head, shortened)], x.shape, widths=widths, value=1.0)

    def _reverse_cumsum(self, g: SymTensor, axis: int) -> SymTensor:
        """Σ_{k >= i} g_k along `axis`: flip, cumsum, flip back."""
        flipped = self.layout("flip", [g], g.shape, axis=(axis,))
        return self.layout(
            "flip", [self.atom("cumsum", (self.full(flipped),), g.shape, axis=axis)], g.shape, axis=(axis,)
        )

    def _matrix_transpose(self, t: SymTensor) -> SymTensor:
        n = len(t.shape)
        return self.transpose(t, tuple(range(n - 2)) + (n - 1, n - 2))

    def _layout_vjp(self, atom: Atom, g: SymTensor) -> list[SymTensor | None]:
        """Layout ops put g back where each element came from."""
        kw = dict(atom.kwargs)
        x = atom.args[0]
        if atom.op == "reshape":
            return [self.reshape(g, x.shape)]
        if atom.op in ("flip", "tril", "triu"):  # their own adjoints
            return [self.layout(atom.op, [g], x.shape, **kw)]
        if atom.op == "diagonal":
            return [self.layout("undiagonal", [g], x.shape, shape=x.shape, offset=kw["offset"])]
        if atom.op == "undiagonal":
            return [self.layout("diagonal", [g], x.shape, offset=kw["offset"])]
        if atom.op == "slice":
            dropped, shape, start, step = layout.slice_adjoint(kw["items"], x.shape)
            for axis in dropped:
                g = self.expand_dims(g, axis)
            return [self.layout("unslice", [g], shape, shape=shape, start=start, step=step)]
        if atom.op == "unslice":
            items = tuple(
                (a, a + (n - 1) * s + 1, s) for a, s, n in zip(kw["start"], kw["step"], x.shape, strict=True)
            )
            return [self.layout("slice", [g], x.shape, items=items)]
        if atom.op == "unfold":  # windows' gradients summed back where they read
            return [self.layout("fold", [g], x.shape, output_size=x.shape[-2:], **kw)]
        if atom.op == "fold":
            window = {k: kw[k] for k in ("kernel", "stride", "padding", "dilation")}
            return [self.layout("unfold", [g], x.shape, **window)]
        if atom.op == "pad":
            pairs = pad_pairs(kw["widths"], len(x.shape))
            items = tuple((a, a + d, 1) for d, (a, _) in zip(x.shape, pairs, strict=True))
            return [self.layout("slice", [g], x.shape, items=items)]
        if atom.op in ("concat", "stack"):
            axis, out, before = kw["axis"], [], 0
            full = tuple((0, d, 1) for d in atom.shape)
            for arg in atom.args:
                if atom.op == "stack":
                    items = full[:axis] + (before,) + full[axis + 1 :]
                    before += 1
                else:
                    n = arg.shape[axis]
                    items = full[:axis] + ((before, before + n, 1),) + full[axis + 1 :]
                    before += n
                out.append(self.layout("slice", [g], arg.shape, items=items))
            return out
        raise AssertionError(f"no gradient rule for the layout op {atom.op}")

    def _scatter_row(self, row: SymTensor, g: SymTensor, shape: Shape) -> SymTensor:
        """An indicator row of length shape[0] times g spread over the remaining axes."""
        if len(shape) == 2:
            return self.outer(row, g)
        for _ in range(len(shape) - 1):
            row = self.expand_dims(row, len(row.shape))
        return SymTensor(row.expr * g.expr, shape)

    def _unreduce(
        self, g: SymTensor, shape: Shape, axes: tuple[int, ...] | None, keepdims: bool
    ) -> SymTensor:
        """Spread the gradient of a reduction back over the reduced axes (inverse of sum's shape)."""
        if axes is None or keepdims:
            return SymTensor(g.expr, shape)
        # Numpy broadcasting supplies leading axes; the others need an explicit axis of size 1.
        prefix = 0
        while prefix in axes:
            prefix += 1
        for ax in sorted(axes):
            if ax >= prefix:
                g = self.expand_dims(g, ax - prefix)
        return SymTensor(g.expr, shape)

    def substitute(self, t: SymTensor, mapping: Mapping[str, SymTensor]) -> SymTensor:
        """t with the named inputs replaced by SymTensors, inside atoms too (the atoms are rebuilt)."""
        replacements: dict[sympy.Symbol, sympy.Expr] = {}
        for atom in self.atoms_of(t):
            if atom.op == "input":
                if atom.name in mapping:
                    replacements[atom.symbol] = mapping[atom.name].expr
                continue
            args = tuple(self.substitute(a, mapping) for a in atom.args)
            if args != atom.args:
                replacements[atom.symbol] = self.atom(atom.op, args, atom.shape, **dict(atom.kwargs)).expr
        return SymTensor(t.expr.xreplace(replacements), t.shape)

    # ------------------------------------------------------------ evaluation

    def evaluate(self, t: SymTensor, inputs: Mapping[str, Any], cache: dict | None = None) -> np.ndarray:
        """t on concrete float arrays."""
        cache = {} if cache is None else cache
        plan = self._plans.get(t.key)  # evaluated again at every point and training step
        if plan is None:
            atoms = self.atoms_of(t)
            plan = self._plans[t.key] = (atoms, self._numpy_function(t, atoms))
        atoms, fn = plan
        values = [self._atom_value(a, inputs, cache) for a in atoms]
        with np.errstate(all="ignore"):
            try:
                result = np.asarray(fn(*values, np.nan), dtype=np.float64)
            except (ValueError, TypeError):
                # A Piecewise's conditions stacked from atoms of different shapes (ValueError), or
                # a condition on scalars only, which numpy's select takes for no array (TypeError).
                shaped = (np.broadcast_to(v, t.shape) for v in values)
                result = np.asarray(fn(*shaped, np.nan), dtype=np.float64)
        return np.broadcast_to(result, t.shape).copy()

    def prepare(self, *tensors: SymTensor) -> None:
        """Make the numpy functions evaluating `tensors` (and their atoms) now, before the graph is
        stored: their sources go with it."""
        for t in tensors:
            for atom in self.atoms_of(t):
                self.prepare(*atom.args)
            self._numpy_function(t, self.atoms_of(t))

    def _numpy_function(self, t: SymTensor, atoms: list[Atom]) -> Callable[..., Any]:
        key = (t.expr, tuple(a.symbol for a in atoms))
        fn = self._lambdified.get(key)
        if fn is None and self.__dict__.get("_stored_sources"):  # the first function made after unpickling
            self._sources.update(self._stored_sources)
            self._stored_sources = []
        if fn is None and key in self._sources:
            fn = _compiled(*self._sources[key])
        if fn is None:
            # zoo (log(0) in a branch: log(where(x > 0, x, 0))) has no numpy spelling in SymPy's
            # printer (a KeyError); as a real number it is undefined: an argument passed nan, in
            # a branch rarely taken (a symbol, as nan itself would be compared at once).
            fn = sympy.lambdify(
                [a.symbol for a in atoms] + [_UNDEFINED],
                _float_ready(t.expr.xreplace({sympy.zoo: _UNDEFINED})),
                modules=_MODULES,
                dummify=True,
            )
            stored = _source_of(fn)
            if stored is not None:
                self._sources[key] = stored
        self._lambdified[key] = fn
        return fn

    def _atom_value(self, atom: Atom, inputs: Mapping[str, Any], cache: dict) -> Any:
        if atom.symbol in cache:
            return cache[atom.symbol]
        if atom.op == "input":
            value = np.asarray(inputs[atom.name], dtype=np.float64)
        else:
            args = [self.evaluate(a, inputs, cache) for a in atom.args]
            with np.errstate(all="ignore"):
                value = _numpy_op(atom, args)
        cache[atom.symbol] = value
        return value

    def evaluate_exact(
        self, t: SymTensor, inputs: Mapping[str, np.ndarray], cache: dict | None = None
    ) -> np.ndarray:
        """t element by element as SymPy expressions, given object arrays of SymPy values/symbols."""
        cache = {} if cache is None else cache
        atoms = self.atoms_of(t)
        values = [np.broadcast_to(self._atom_exact(a, inputs, cache), t.shape) for a in atoms]
        out = np.empty(t.shape, dtype=object)
        for index in np.ndindex(*t.shape):
            out[index] = t.expr.xreplace({a.symbol: v[index] for a, v in zip(atoms, values, strict=True)})
        return out

    def _atom_exact(self, atom: Atom, inputs: Mapping[str, np.ndarray], cache: dict) -> Any:
        if atom.symbol in cache:
            return cache[atom.symbol]
        if atom.op == "input":
            value = np.asarray(inputs[atom.name], dtype=object)
        else:
            args = [self.evaluate_exact(a, inputs, cache) for a in atom.args]
            value = np.asarray(_numpy_op(atom, args, symbolic=True), dtype=object)
        cache[atom.symbol] = value
        return value


def _composed(first: tuple, second: tuple) -> tuple:
    """x[first][second] as one slice of x: `second` indexes the axes `first` kept."""
    out, rest = [], iter(second)
    for item in first:
        if isinstance(item, int):
            out.append(item)
            continue
        start, _, step = item
        outer = next(rest)
        if isinstance(outer, int):
            out.append(start + outer * step)
        else:
            count = len(range(*outer))
            first_index, stride = start + outer[0] * step, step * outer[2] if count > 1 else 1
            out.append((first_index, first_index + (count - 1) * stride + 1, stride))
    return tuple(out)


def _within(items: tuple, start: Shape, step: Shape, inner: Shape) -> tuple | None:
    """Where `items` read only positions start + i*step (i < inner) of every axis: the items that
    read those i directly; else None."""
    out: list[int | tuple[int, int, int]] = []
    for item, first, stride, n in zip(items, start, step, inner, strict=True):
        positions = [item] if isinstance(item, int) else list(range(*item))
        if any((p - first) % stride or not 0 <= (p - first) // stride < n for p in positions):
            return None
        if isinstance(item, int):
            out.append((item - first) // stride)
        else:
            i0 = (item[0] - first) // stride
            di = item[2] // stride if item[2] % stride == 0 else None
            if di is None and len(positions) > 1:
                return None
            di = di or 1
            out.append((i0, i0 + (len(positions) - 1) * di + 1, di))
    return tuple(out)


def _drop_redundant_steps(expr: sympy.Expr) -> sympy.Expr:
    """relu(u)*step(u) is relu(u): step is 1 wherever relu is not 0 (SymPy does not know it)."""

    def redundant(e: sympy.Expr) -> bool:
        if not e.is_Mul:
            return False
        relus = {f.args[0] for f in e.args if isinstance(f, relu)}
        return any(isinstance(f, step) and f.args[0] in relus for f in e.args)

    def drop(e: sympy.Expr) -> sympy.Expr:
        relus = {f.args[0] for f in e.args if isinstance(f, relu)}
        return sympy.Mul(*(f for f in e.args if not (isinstance(f, step) and f.args[0] in relus)))

    return expr.replace(redundant, drop)


_UNDEFINED = sympy.Dummy("undefined", real=True)
_MODULES = [NUMPY_IMPLEMENTATIONS, "numpy"]
_NAMESPACE: dict[str, Any] = {}  # lambdify's namespace for _MODULES: numpy's names and ours


def _namespace() -> dict[str, Any]:
    if not _NAMESPACE:
        _NAMESPACE.update(sympy.lambdify([], sympy.Integer(0), modules=_MODULES).__globals__)
    return _NAMESPACE


def _source_of(fn: Callable[..., Any]) -> tuple[str, dict[str, Any]] | None:
    """lambdify's source of fn, and what it names beyond the namespace (its printer's imports:
    functools.reduce for a maximum), or None where those would not pickle by reference."""
    source = "".join(linecache.getlines(fn.__code__.co_filename))
    namespace = _namespace()
    extras = {
        n: fn.__globals__[n]
        for n in fn.__code__.co_names
        if n not in namespace and n in fn.__globals__ and not hasattr(builtins, n)
    }
    try:
        pickle.dumps(extras)
    except Exception:
        return None
    return (source, extras) if source else None


def _compiled(source: str, extras: Mapping[str, Any]) -> Callable[..., Any] | None:
    """A numpy function from lambdify's source of it, in lambdify's namespace; None where it names
    something that namespace lacks (then lambdify makes it again)."""
    namespace = {**_namespace(), **extras} if extras else _namespace()
    code = compile(source, "<symcheck closed form>", "exec")
    defined: dict[str, Any] = {}
    exec(code, namespace, defined)  # our own lambdify's text, from a signed cache entry: not user text
    (fn,) = defined.values()
    if not all(n in namespace or hasattr(builtins, n) for n in fn.__code__.co_names):
        return None
    return fn


_INT64 = 2**63


def _float_ready(expr: sympy.Expr) -> sympy.Expr:
    """What numpy can evaluate: numbers past int64 (clamp(x, max=10^39)) as floats, which numpy
    would make objects; and if-then-else conditions as and/or, which SymPy's printer writes as a
    select whose nan default makes a float array, refused as another select's condition."""
    big = {r: sympy.Float(r) for r in expr.atoms(sympy.Rational) if abs(r.p) >= _INT64 or abs(r.q) >= _INT64}
    if big:
        expr = expr.xreplace(big)
    if expr.has(sympy.ITE):
        expr = expr.replace(lambda e: isinstance(e, sympy.ITE), lambda e: e.to_nnf())
    return expr


# Seconds factor and simplify may spend on one expression's readable form: for most they take
# milliseconds, for some (a deep scalar program's 1/(...)^3) minutes; past it the cheap form stands.
PRETTY_SECONDS = 1.0


def simplify(
    t: SymTensor,
    accept: Callable[[sympy.Expr], bool] = lambda e: True,
    *,
    budget: float | None = PRETTY_SECONDS,
) -> SymTensor:
    """The most readable of a few equivalent forms (factored first: 3/2*(x + 2)), tried for at most
    `budget` seconds (None: as long as the enclosing time limit allows; a proof needs that).

    Comparisons stay as built: a tie test `x == max(x)` is exact in float64 only while both sides
    are computed alike, and `1 - 1/(w^2 + 1)` rewritten as `w^2/(w^2 + 1)` on one side is a ulp
    off the other, which turned a tied minimum's gradient into 0 (found by bench/fuzz.py)."""
    shielded, conditions = _shield_relations(_drop_redundant_steps(t.expr))
    accepted = accept if not conditions else lambda e: accept(e.xreplace(conditions))
    best = _simplest(shielded, accepted, budget)
    return SymTensor(best.xreplace(conditions), t.shape)


def _shield_relations(expr: sympy.Expr) -> tuple[sympy.Expr, dict[sympy.Symbol, sympy.Basic]]:
    """expr with every comparison in it (and every tie test) replaced by a placeholder, and the
    placeholders' meaning: simplify rewrote cos(r)^2 inside a tie test as (cos(2*r) + 1)/2."""
    relations = [r for r in expr.atoms(sympy.core.relational.Relational, tie)]
    if not relations:
        return expr, {}
    placeholders = {r: sympy.Dummy("condition") for r in relations}
    return expr.xreplace(placeholders), {d: r for r, d in placeholders.items()}


# Past this many terms once expanded, factor and simplify are not tried (the cheap form stands).
EXPANDED_TERMS_LIMIT = 1000
LET_SIZE = 60  # a step whose expression has more nodes stays shared (Graph.lower)


def tree_size(expr: sympy.Basic, cap: int) -> int:
    """The nodes of expr's tree (shared subtrees counted each time), counting stops past cap."""
    count = 0
    for _ in sympy.preorder_traversal(expr):
        count += 1
        if count > cap:
            break
    return count


def expanded_terms(expr: sympy.Expr, cap: int) -> int:
    """About how many terms expr has once multiplied out (sums add, products and integer powers
    multiply; a function's argument is one term), capped a little above cap: a cheap measure of how
    much expanding it would swell."""
    memo: dict[sympy.Basic, int] = {}

    def terms(e: sympy.Basic) -> int:
        if e in memo:
            return memo[e]
        if e.is_Add:
            n = sum(terms(a) for a in e.args)
        elif e.is_Mul:
            n = 1
            for a in e.args:
                n = min(n * terms(a), cap + 1)
        elif e.is_Pow and e.exp.is_Integer:
            n = min(terms(e.base) ** min(abs(int(e.exp)), 64), cap + 1)
        else:
            n = 1
        memo[e] = min(n, cap + 1)
        return memo[e]

    return terms(expr)


def _simplest(expr: sympy.Expr, accept: Callable[[sympy.Expr], bool], budget: float | None) -> sympy.Expr:
    candidates: list[sympy.Expr] = []
    # factor and simplify expand: (7 terms)^3 over a 7-term numerator is thousands of terms, and
    # minutes of work for a form no more readable (a deep scalar program's gradient).
    limit = EXPANDED_TERMS_LIMIT
    small = sympy.count_ops(expr) <= 200 and expanded_terms(expr, limit) <= limit
    try:
        with time_limit(budget):
            if small:
                candidates.append(sympy.factor(expr))
            candidates.append(sympy.factor_terms(expr))
            candidates.append(expr)
            # sympy.simplify only where a proof needs it (no budget): measured over the shipped
            # suites, it made a readable form shorter by one operation three times in 170, for
            # half the time of deriving them all (trigsimp on every tanh).
            if small and budget is None:
                candidates.append(sympy.simplify(expr))
    except (sympy.PolynomialError, NotImplementedError, TypeError):  # pragma: no cover - SymPy corner cases
        candidates.append(expr)
    except Exception as e:  # GaveUp, or SymPy's SystemError around it
        if not gave_up_in(e) or spent():  # not ours, or the enclosing budget's: it goes on up
            raise
        candidates.append(expr)  # the forms found in time, and the expression as built
    # On a tie the earliest wins: factored forms first.
    return min((c for c in candidates if accept(c)), key=sympy.count_ops, default=expr)
