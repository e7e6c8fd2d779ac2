"""Proofs that a claimed gradient is the true one, written the way textbooks write them.

A claim is proven when claimed - true simplifies to 0. The closed form's atoms are structural (a
matmul of two things is one symbol), so identities between tensor expressions must be brought to
one spelling first, the *normal form* (`Normal`), built from rewrites that are each an identity:

- a product of matrices is a chain, re-associated from the left (`A @ (B @ C)` is `A @ B @ C`);
  a product of vectors is read in one orientation (`x @ B` is `B.T @ x`; `u . M w` is `w . M.T u`,
  whichever spelling sorts first); `@`, outer, sums and traces distribute over `+` and scalars;
- transposes go down to the leaves: `(A @ B).T` is `B.T @ A.T`, `outer(a, b).T` is `outer(b, a)`,
  `inv(A.T)` is `inv(A).T`, `det(A.T)` is `det(A)`; an outer product inside a chain splits it:
  `M @ outer(a, b)` is `outer(M @ a, b)`; a trace is read at one rotation of its chain;
- a sum of a sum is one sum; a mean is a sum over its count; a dot of two vectors is a chain;
- optionally (a second attempt) our named functions in exp and log (sigmoid(x) is 1/(1 + exp(-x)),
  tanh in exp), softmax and logsumexp in exp, log and sums.

Where the normal form cannot decide, claim and truth are compared exactly element by element at
two small probe shapes of different sizes (each element a SymPy expression of the input elements):
a proof for those shapes, reported as such. Every attempt runs within a time budget; past it the
verdict is "undecided", never "proven". Decimals in a claim are exact rationals (0.5 is 1/2); a
rounded constant (2.302585 for log(10)) is not proven, and its difference is not simplified (a
17-digit rational against log(10) sent SymPy into minutes of work and thousand-digit integers).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sympy

from symcheck.engines.symbolic.budget import gave_up_in, raised_in_sympy, spent, time_limit
from symcheck.engines.symbolic.closed_form import Atom, Graph, SymTensor, simplify
from symcheck.engines.symbolic.functions import tie
from symcheck.engines.symbolic.probes import at_shapes, probe_point
from symcheck.engines.symbolic.rules import DEFINITIONS
from symcheck.language.catalogue import matmul_shape, reduced_count
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import Call, Const, Node, Program, TensorType
from symcheck.language.parser import ParsedProgram

# Seconds one claim's proof may take (all attempts together) unless the case allows less.
PROOF_SECONDS = 10.0
# Of which the element-by-element proof may take this much (exact elements of inv or cholesky grow fast).
ELEMENT_SECONDS = 2.0
# An expression of more operations than this is not multiplied out to split it into terms.
EXPAND_OPS_LIMIT = 400
# Past this many operations an element's difference is not given to sympy.simplify.
ELEMENT_OPS_LIMIT = 300
# Decimals with more significant digits than this are taken as rounded constants (see above).
ROUNDED_DIGITS = 5


@dataclass(frozen=True)
class Proof:
    """A claim's verdict: proven (and how), or not (with claimed - true, simplified), or undecided."""

    proven: bool
    how: str  # "equal to the closed form", "element by element at shapes ...", or why not
    difference: SymTensor | None = None  # claimed - true in the normal form, when not proven
    undecided: bool = False  # the budget ran out before a verdict


# ---------------------------------------------------------------- the normal form


Derive = Callable[[Program, Sequence[str]], Any]  # ClosedForm.derive (the prover is below the engine)
Chain = list[SymTensor]  # factors of a matrix product, left to right; vectors only at the ends


class Normal:
    """Rewrites SymTensors of one graph into the normal form (new atoms join the graph)."""

    def __init__(self, graph: Graph, definitions: bool = False) -> None:
        self.graph = graph
        self.definitions = definitions
        self._memo: dict[sympy.Symbol, sympy.Expr] = {}
        self._normal: set[sympy.Symbol] = set()  # atoms built here: in the normal form already

    # ------------------------------------------------------------ expressions and atoms

    def __call__(self, t: SymTensor) -> SymTensor:
        expr = elementary(t.expr) if self.definitions else t.expr
        atoms = [s for s in expr.free_symbols if s in self.graph.atoms]
        replaced = expr.xreplace({s: self.atom(self.graph.atoms[s]) for s in atoms})
        return SymTensor(canonical_ties(replaced), t.shape)

    def atom(self, a: Atom) -> sympy.Expr:
        if a.op == "input" or a.symbol in self._normal:
            return a.symbol
        if a.symbol not in self._memo:
            result = self._rebuild(a)
            self._memo[a.symbol] = result
            self._normal.update(s for s in result.free_symbols if s in self.graph.atoms)
        return self._memo[a.symbol]

    def _full(self, t: SymTensor) -> SymTensor:
        return self.graph.full(self(t))

    def _rebuild(self, a: Atom) -> sympy.Expr:
        g = self.graph
        if a.op == "let":  # a named step: its value
            return self(a.args[0]).expr
        if a.op == "matmul" and all(len(x.shape) <= 2 for x in a.args):
            return self.matmul(self(a.args[0]), self(a.args[1])).expr
        if a.op == "transpose" and len(a.shape) == 2:
            return self.transposed(self(a.args[0])).expr
        if a.op == "outer":
            return self.outer(self(a.args[0]), self(a.args[1])).expr
        if a.op in ("sum", "mean"):
            return self.reduce(a.op, self(a.args[0]), a.kw("axis"), a.kw("keepdims")).expr
        if a.op == "trace":
            return self.trace(self(a.args[0])).expr
        if a.op in ("inv", "det", "logdet"):
            x = self._full(a.args[0])
            inner = self._is_atom(x, "transpose")
            if inner is not None and len(inner.shape) == 2:  # inv(A.T) = inv(A).T, det(A.T) = det(A)
                plain = g.atom(a.op, (inner.args[0],), a.shape)  # a normal transpose's argument is normal
                self._normal.add(plain.expr)
                return self.transposed(plain).expr if a.op == "inv" else plain.expr
            return g.atom(a.op, (x,), a.shape, **dict(a.kwargs)).expr
        if a.op == "reshape":
            return self._reshaped(self(a.args[0]), a.shape).expr
        if self.definitions and a.op in ("softmax", "log_softmax", "logsumexp"):
            return self._exp_form(a)
        args = tuple(self._full(x) for x in a.args)
        return g.atom(a.op, args, a.shape, **dict(a.kwargs)).expr

    def _exp_form(self, a: Atom) -> sympy.Expr:
        """softmax, log_softmax and logsumexp in exp, log and sums (exact, not the stable forms)."""
        x = self._full(a.args[0])
        exp = SymTensor(sympy.exp(x.expr), x.shape)
        if a.op == "logsumexp":
            total = self.reduce("sum", exp, a.kw("axis"), a.kw("keepdims"))
            return sympy.log(total.expr)
        axis = a.kw("axis")
        total = self.reduce("sum", exp, (axis % len(x.shape),) if x.shape else None, bool(x.shape))
        if a.op == "softmax":
            return exp.expr / total.expr
        return x.expr - sympy.log(total.expr)

    # ------------------------------------------------------------ linear structure

    def terms(self, t: SymTensor) -> list[tuple[sympy.Expr, SymTensor]]:
        """t as a sum of scalar * tensor terms: the scalar part has no atom of rank > 0."""
        expr = t.expr
        if sympy.count_ops(expr) <= EXPAND_OPS_LIMIT:
            expr = sympy.expand_mul(expr)
        out = []
        for term in sympy.Add.make_args(expr):
            scalar, tensor = [], []
            for factor in sympy.Mul.make_args(term):
                ranked = [
                    s for s in factor.free_symbols if s in self.graph.atoms and self.graph.atoms[s].shape
                ]
                (tensor if ranked else scalar).append(factor)
            out.append((sympy.Mul(*scalar), SymTensor(sympy.Mul(*tensor), t.shape)))
        return out

    def _is_atom(self, t: SymTensor, op: str) -> Atom | None:
        a = self.graph.atoms.get(t.expr)
        return a if a is not None and a.op == op and a.shape == t.shape else None

    # ------------------------------------------------------------ products

    def matmul(self, a: SymTensor, b: SymTensor) -> SymTensor:
        shape = matmul_shape(a.shape, b.shape)
        total = sympy.Integer(0)
        for ca, ta in self.terms(a):
            for cb, tb in self.terms(b):
                if not self.graph.atoms_of(ta) or not self.graph.atoms_of(tb):  # a constant tensor
                    product = self.graph.matmul(self.graph.full(ta), self.graph.full(tb))
                else:
                    product = self.build(self.join(self.chain(ta), self.chain(tb)))
                total += ca * cb * product.expr
        return SymTensor(total, shape)

    def chain(self, t: SymTensor) -> Chain:
        a = self._is_atom(t, "matmul")
        if a is None or any(len(x.shape) > 2 for x in a.args):
            return [self.graph.full(t)]
        return self.chain(a.args[0]) + self.chain(a.args[1])

    def join(self, left: Chain, right: Chain) -> Chain:
        """left @ right as one chain: a vector on the left is read as a row, on the right as a column."""
        return _row(self, left) + _column(self, right)

    def build(self, chain: Chain) -> SymTensor:
        """The chain's product in the normal form."""
        for i, f in enumerate(chain):
            outer = self._is_atom(f, "outer")
            if outer is not None and len(chain) > 1:
                return self._split_at_outer(chain, i, outer)
        first, last = len(chain[0].shape) == 1, len(chain[-1].shape) == 1
        if first and last and len(chain) > 1:  # a scalar u @ ... @ w, in its first orientation
            flipped = _reversed(self, chain)
            if _chain_key(flipped) < _chain_key(chain):
                chain = flipped
            column = self._left_assoc(chain[1:])
            return self.graph.reduce(
                "sum", SymTensor(chain[0].expr * column.expr, chain[0].shape), None, False
            )
        if first and len(chain) > 1:  # a row vector x @ A @ B is the column B.T @ A.T @ x
            chain = _reversed(self, chain)
        return self._left_assoc(chain)

    def _left_assoc(self, chain: Chain) -> SymTensor:
        product = chain[0]
        for f in chain[1:]:
            product = self.graph.matmul(product, f)
        return product

    def _split_at_outer(self, chain: Chain, i: int, outer: Atom) -> SymTensor:
        """L @ outer(a, b) @ R is outer(L @ a, R.T @ b), or a scalar times a vector at a chain's end."""
        a, b = (self.graph.full(x) for x in outer.args)
        left = self.build(chain[:i] + [a]) if i else a  # a column, or a scalar if L starts with a row
        right_chain = [b] + chain[i + 1 :]
        right = self.build(right_chain) if len(right_chain) > 1 else b  # a vector, or a scalar
        if left.shape and right.shape:
            return self.outer(left, right)
        return SymTensor(left.expr * right.expr, left.shape or right.shape)

    def transposed(self, t: SymTensor) -> SymTensor:
        """t.T for a matrix t, transposes taken down to the leaves."""
        shape = (t.shape[1], t.shape[0])
        total = sympy.Integer(0)
        for c, term in self.terms(t):
            total += c * self._transposed_term(term, shape).expr
        return SymTensor(total, shape)

    def _transposed_term(self, term: SymTensor, shape: tuple[int, ...]) -> SymTensor:
        g = self.graph
        atoms = g.atoms_of(term)
        if not atoms:
            return SymTensor(term.expr, shape)
        if term.expr in g.atoms:
            a = g.atoms[term.expr]
            if a.op == "matmul" and a.shape == term.shape and all(len(x.shape) == 2 for x in a.args):
                return self.build(_reversed(self, self.chain(term)))
            if a.op == "transpose" and a.shape == term.shape:
                return a.args[0]
            if a.op == "outer" and a.shape == term.shape:
                return self.outer(a.args[1], a.args[0])
            # a leaf, or another op's result: transposed as a whole
            made = g.atom("transpose", (g.full(term),), shape, axes=(1, 0))
            self._normal.add(made.expr)
            return made
        if all(len(a.shape) == 2 or a.shape == () for a in atoms):  # elementwise: each atom transposed
            swap = {
                a.symbol: self._transposed_term(SymTensor(a.symbol, a.shape), (a.shape[1], a.shape[0])).expr
                for a in atoms
                if a.shape
            }
            return SymTensor(term.expr.xreplace(swap), shape)
        made = g.atom("transpose", (g.full(term),), shape, axes=(1, 0))
        self._normal.add(made.expr)
        return made

    def outer(self, a: SymTensor, b: SymTensor) -> SymTensor:
        shape = (a.shape[0], b.shape[0])
        total = sympy.Integer(0)
        for ca, ta in self.terms(a):
            for cb, tb in self.terms(b):
                left = self.build(_column(self, self.chain(ta))) if self.graph.atoms_of(ta) else ta
                right = self.build(_column(self, self.chain(tb))) if self.graph.atoms_of(tb) else tb
                made = self.graph.outer(left, right)
                self._normal.update(s for s in made.expr.free_symbols if s in self.graph.atoms)
                total += ca * cb * made.expr
        return SymTensor(total, shape)

    def trace(self, t: SymTensor) -> SymTensor:
        total = sympy.Integer(0)
        for c, term in self.terms(t):
            total += c * self._trace_term(term).expr
        return SymTensor(total, ())

    def _trace_term(self, term: SymTensor) -> SymTensor:
        g = self.graph
        transpose = self._is_atom(term, "transpose")
        if transpose is not None:  # trace(A.T) = trace(A)
            term = transpose.args[0]
        chain = self.chain(term)
        for i, f in enumerate(chain):
            outer = self._is_atom(f, "outer")
            if outer is not None:  # trace(L outer(a, b) R) = b . R L a
                a, b = (g.full(x) for x in outer.args)
                return self.build([b] + chain[i + 1 :] + chain[:i] + [a])
        # trace(A B C) = trace(B C A) = trace((A B C).T): one rotation of one orientation
        candidates = []
        for c in (chain, _reversed(self, chain)):
            candidates += [c[k:] + c[:k] for k in range(len(c))]
        chain = min(candidates, key=_chain_key)
        made = g.atom("trace", (g.full(self._left_assoc(chain)),), ())
        self._normal.add(made.expr)
        return made

    # ------------------------------------------------------------ reductions

    def reduce(self, op: str, t: SymTensor, axes: tuple[int, ...] | None, keepdims: bool) -> SymTensor:
        g = self.graph
        if op == "mean":
            total = self.reduce("sum", t, axes, keepdims)
            return SymTensor(total.expr / reduced_count(t.shape, axes), total.shape)
        whole = axes is None or tuple(sorted(a % len(t.shape) for a in axes)) == tuple(range(len(t.shape)))
        if whole and keepdims and t.shape:  # all of it, kept as (1, 1): broadcasts as the plain sum does
            plain = self.reduce("sum", t, None, False)
            return SymTensor(plain.expr, tuple(1 for _ in t.shape))
        result = sympy.Integer(0)
        shape = g.reduce("sum", t, axes, keepdims).shape
        for c, term in self.terms(t):
            result += c * self._sum_term(term, axes, keepdims, whole).expr
        return SymTensor(result, shape)

    def _reshaped(self, t: SymTensor, shape: tuple[int, ...]) -> SymTensor:
        """reshape(t, shape): reshapes of reshapes are one, and a sum with its kept axes reshaped
        away is the sum without them."""
        g = self.graph
        if t.shape == shape:
            return t
        inner = self._is_atom(t, "reshape")
        if inner is not None:
            return self._reshaped(inner.args[0], shape)
        summed = self._is_atom(t, "sum")
        if summed is not None and summed.kw("keepdims"):
            x, axes = summed.args[0], summed.kw("axis")
            plain = g.reduce("sum", x, axes, False)
            if plain.shape == shape:
                return plain
        made = g.reshape(g.full(t), shape)
        self._normal.update(s for s in made.expr.free_symbols if s in g.atoms)
        return made

    def _sum_term(
        self, term: SymTensor, axes: tuple[int, ...] | None, keepdims: bool, whole: bool
    ) -> SymTensor:
        g = self.graph
        kept = self._is_atom(term, "sum")
        if kept is not None and kept.kw("keepdims") and kept.kw("axis") is not None and axes is not None:
            # sum(sum(x, A, keepdims=True), B) is sum(x, A and B, keepdims=True) without B's axes
            x, nd = kept.args[0], len(term.shape)
            union = tuple(sorted(set(kept.kw("axis")) | {i % nd for i in axes}))
            both = self.reduce("sum", x, union, True)
            if keepdims:
                return both
            dropped = {i % nd for i in axes}
            return self._reshaped(both, tuple(d for i, d in enumerate(term.shape) if i not in dropped))
        inner = self._is_atom(term, "sum")
        if inner is not None and not keepdims and not inner.kw("keepdims") and inner.kw("axis") is not None:
            # a sum of a sum is one sum over both sets of axes
            x = inner.args[0]
            kept = [i for i in range(len(x.shape)) if i not in inner.kw("axis")]
            outer_axes = range(len(term.shape)) if axes is None else [kept[j % len(kept)] for j in axes]
            union = tuple(sorted(set(inner.kw("axis")) | set(outer_axes)))
            return self.reduce("sum", x, None if len(union) == len(x.shape) else union, False)
        if whole and not keepdims and len(term.shape) == 1:
            # sum(u * w) of two vectors is the product u @ w: one chain
            factors = sympy.Mul.make_args(term.expr)
            vectors = [f for f in factors if f in g.atoms and g.atoms[f].shape == term.shape]
            if len(factors) == 2 and len(vectors) == 2:
                u, w = (SymTensor(f, term.shape) for f in vectors)
                return self.build(self.join(self.chain(u), self.chain(w)))
        return g.reduce("sum", term, axes, keepdims)


def _reversed(normal: Normal, chain: Chain) -> Chain:
    """The same product read the other way: (F1 F2 ... Fn).T = Fn.T ... F1.T (vectors as they are)."""
    return [f if len(f.shape) == 1 else normal.transposed(f) for f in reversed(chain)]


def _row(normal: Normal, chain: Chain) -> Chain:
    """A vector-valued chain with its vector first (x @ A @ B); other chains as they are."""
    if len(chain[-1].shape) == 1 and len(chain[0].shape) == 2:
        return _reversed(normal, chain)
    return chain


def _column(normal: Normal, chain: Chain) -> Chain:
    """A vector-valued chain with its vector last (B.T @ A.T @ x); other chains as they are."""
    if len(chain[0].shape) == 1 and len(chain[-1].shape) == 2:
        return _reversed(normal, chain)
    return chain


def _chain_key(chain: Chain) -> tuple[str, ...]:
    return tuple(sympy.srepr(f.expr) for f in chain)


def canonical_ties(expr: sympy.Expr) -> sympy.Expr:
    """Every comparison in one spelling: the language's `a == b` (1 where Eq(a, b), else 0) and a
    max's tie test tie(a, b) are both tie(a, b), its two sides in SymPy's sort order; the others in
    SymPy's canonical form."""

    def eq_indicator(e: sympy.Basic) -> bool:
        return (
            isinstance(e, sympy.Piecewise)
            and len(e.args) == 2
            and e.args[0].expr == 1
            and isinstance(e.args[0].cond, sympy.Eq)
            and e.args[1].expr == 0
            and e.args[1].cond == sympy.true
        )

    def ordered(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
        return tie(*sorted((a, b), key=sympy.default_sort_key))

    if not expr.has(sympy.core.relational.Relational, tie):
        return expr
    expr = expr.replace(eq_indicator, lambda e: ordered(*e.args[0].cond.args))
    expr = expr.replace(lambda e: isinstance(e, tie), lambda e: ordered(*e.args))
    # every other comparison in SymPy's canonical spelling (b > a is a < b, the sides of == sorted)
    expr = expr.replace(
        lambda e: isinstance(e, sympy.core.relational.Relational), lambda e: _canonical_relation(e)
    )
    # cases within a last case are the outer's cases: where(c1, a, where(c2, b, d)) is one list
    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), _flat_cases)


def _flat_cases(e: sympy.Piecewise) -> sympy.Expr:
    *first, last = e.args
    if last.cond == sympy.true and isinstance(last.expr, sympy.Piecewise):
        return sympy.Piecewise(*first, *last.expr.args)
    return e


def _canonical_relation(e: sympy.Basic) -> sympy.Basic:
    if isinstance(e, (sympy.Eq, sympy.Ne)):
        a, b = sorted(e.args, key=sympy.default_sort_key)
        return type(e)(a, b, evaluate=False)
    return e.canonical


_HYPERBOLIC = (sympy.tanh, sympy.sinh, sympy.cosh, sympy.coth)


def elementary(expr: sympy.Expr) -> sympy.Expr:
    """Our named functions in their elementary definitions, hyperbolic functions in exp."""
    for function, definition in DEFINITIONS.items():
        expr = expr.replace(function, definition)
    return expr.replace(lambda e: isinstance(e, _HYPERBOLIC), lambda e: e.rewrite(sympy.exp))


# ---------------------------------------------------------------- the proof


def is_zero(expr: sympy.Expr) -> bool:
    """Whether expr is identically 0: multiplied out first, then sympy.simplify (within the budget)."""
    if expr == 0:
        return True
    try:
        if sympy.count_ops(expr) <= EXPAND_OPS_LIMIT and sympy.expand(expr) == 0:
            return True
        if simplify(SymTensor(expr, ()), budget=None).expr == 0:
            return True
        # Cases: simplify above keeps comparisons whole (shielded); here their logic decides, with
        # the cases folded together: (x >= -1)*(x <= 1) is where(x > 1 or x < -1, 0, 1).
        if not expr.has(sympy.Piecewise):
            return False
        folded = sympy.piecewise_fold(expr.rewrite(sympy.Piecewise))
        return sympy.count_ops(folded) <= EXPAND_OPS_LIMIT and sympy.simplify(folded) == 0
    except Exception as e:  # SymPy's own bug (a KeyError in logcombine, found by fuzzing): not decided
        if gave_up_in(e) or not raised_in_sympy(e):
            raise
        return False


def prove(
    closed: Any,
    name: str,
    parsed: ParsedProgram,
    *,
    seconds: float | None = PROOF_SECONDS,
    claimed: SymTensor | None = None,
) -> Proof:
    """Whether the claimed formula `parsed` is d out/d name of `closed` (a ClosedForm)."""
    try:
        with time_limit(seconds):
            return _prove(closed, name, parsed, claimed)
    except Exception as e:  # GaveUp, or a library's wrapping of it
        if not gave_up_in(e) or spent():
            raise
        limit = f"{seconds:g} s" if seconds is not None else "the case's time"
        return Proof(False, f"undecided: the proof ran past its budget of {limit}", undecided=True)


def _prove(closed: Any, name: str, parsed: ParsedProgram, claimed: SymTensor | None) -> Proof:
    claimed = closed.lower_formula(parsed) if claimed is None else claimed
    proof = _prove_identity(closed, name, parsed, claimed)
    if proof.proven:
        true = closed.grads[name]
        singular = _singular_where_true_is_not(closed, claimed, true)
        if singular is not None:
            return Proof(False, f"not proven: {singular}", SymTensor(claimed.expr - true.expr, true.shape))
    return proof


def _singular_where_true_is_not(closed: Any, claimed: SymTensor, true: SymTensor) -> str | None:
    """A proof by SymPy holds where the claim is defined: x*y/x is y except at x = 0. Where the claim
    divides by an input the gradient does not divide by (prod(x)/x for the product of the others),
    the claim is compared with the gradient at a point where that input is 0."""
    mine = {p.base for p in claimed.expr.atoms(sympy.Pow) if p.exp.is_negative}
    theirs = {p.base for p in true.expr.atoms(sympy.Pow) if p.exp.is_negative}
    for base in mine - theirs:
        atom = closed.graph.atoms.get(base)
        if atom is None or atom.op != "input" or atom.name not in closed.program.inputs:
            continue
        point = probe_point({n: d.type for n, d in closed.program.inputs.items()}, 0)
        point[atom.name] = np.zeros_like(point[atom.name])
        if closed.cotangent is not None:
            point[closed.cotangent] = np.ones(closed.output.shape)
        with np.errstate(all="ignore"):
            truth = closed.graph.evaluate(true, point)
            value = np.broadcast_to(closed.graph.evaluate(claimed, point), np.shape(truth))
        if np.any(np.isfinite(truth) & ~np.isfinite(value)):
            return (
                f"the claim divides by {atom.name}; at {atom.name} = 0 it is not finite and the gradient is"
            )
    return None


def _prove_identity(closed: Any, name: str, parsed: ParsedProgram, claimed: SymTensor) -> Proof:
    true = closed.grads[name]
    rounded = rounded_decimals(parsed)
    plain = SymTensor(claimed.expr - true.expr, true.shape)
    if rounded:  # not simplified: see the module's docstring
        if plain.expr == 0 or sympy.expand(plain.expr) == 0:
            return Proof(True, "equal to the closed form")
        shown = ", ".join(rounded)
        off = _relative_difference(closed, claimed, true)
        size = "" if off is None else f"; claimed/true - 1 is {off:.1e} at a random point"
        return Proof(False, f"its decimal {shown} is rounded, not an exact constant{size}", plain)
    if plain.expr == 0:
        return Proof(True, "equal to the closed form")
    difference = None
    for definitions in (False, True):
        normal = Normal(closed.graph, definitions)
        d = SymTensor(normal(claimed).expr - normal(true).expr, true.shape)
        if is_zero(d.expr):
            return Proof(True, "equal to the closed form" + (" (functions in exp)" if definitions else ""))
        if difference is None:
            difference = simplify(d, budget=None)
    try:
        with time_limit(ELEMENT_SECONDS):
            elements = element_proof(type(closed).derive, closed.program, name, parsed)
    except Exception as e:  # GaveUp, or a library's wrapping of it
        if not gave_up_in(e) or spent():
            raise
        how = f"undecided: the element-by-element proof ran past its {ELEMENT_SECONDS:g} s"
        return Proof(False, how, difference, undecided=True)
    if elements is not None:
        return Proof(True, elements)
    return Proof(False, "not proven", difference)


def _relative_difference(closed: Any, claimed: SymTensor, true: SymTensor) -> float | None:
    """The largest |claimed/true - 1| at a random point (the probe's), in float64."""
    point = probe_point({n: d.type for n, d in closed.program.inputs.items()}, 0)
    if closed.cotangent is not None:
        point[closed.cotangent] = np.ones(closed.output.shape)
    try:
        with np.errstate(all="ignore"):
            mine = closed.graph.evaluate(claimed, point)
            truth = closed.graph.evaluate(true, point)
            ratio = np.abs(np.broadcast_to(mine, np.shape(truth)) / truth - 1)
    except Exception:  # pragma: no cover - a value the float evaluation cannot take
        return None
    finite = ratio[np.isfinite(ratio)]
    return float(np.max(finite)) if finite.size else None


def rounded_decimals(parsed: ParsedProgram) -> list[str]:
    """The claim's decimals written with more significant digits than a textbook's exact ones."""
    found = []
    for st in parsed.statements:
        for node in _nodes(st.expr):
            if isinstance(node, Const) and _decimal_digits(node.value) > ROUNDED_DIGITS:
                found.append(_decimal_text(node.value))
    return found


def _decimal_digits(value: Fraction) -> int:
    q = value.denominator
    if q == 1:
        return 0
    twos = fives = 0
    while q % 2 == 0:
        q //= 2
        twos += 1
    while q % 5 == 0:
        q //= 5
        fives += 1
    if q != 1:
        return 0  # not a decimal (1/3): exact
    return len(str(abs(value.numerator) * 10 ** max(twos, fives) // value.denominator).strip("0"))


def _decimal_text(value: Fraction) -> str:
    """A terminating decimal as written: 2.302585 (exact: its denominator divides a power of 10)."""
    with decimal.localcontext() as context:
        context.prec = 100
        return str(decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator))


def _nodes(node: Node) -> Sequence[Node]:
    out = [node]
    if isinstance(node, Call):
        for a in node.args:
            out.extend(_nodes(a))
        for _, v in node.kwargs:
            if isinstance(v, Node):
                out.extend(_nodes(v))
    return out


# ---------------------------------------------------------------- element by element

# Probe shapes: each distinct size > 1 of the case becomes one of these (in order), in two sets.
PROBE_SIZES = ((2, 3, 4, 5, 6), (3, 4, 5, 6, 7))
ELEMENT_PROOF_ELEMENTS = 64  # the largest input (elements) the element proof expands


def element_proof(derive: Derive, program: Program, name: str, parsed: ParsedProgram) -> str | None:
    """'element by element at ...' when claim and truth are equal in every element: at the case's
    own shapes when they are small (a proof for the case), else at two probe shapes of different
    sizes (a proof for those). None when not shown equal, or the program does not bind there.
    GaveUp (the budget) goes on up."""
    types = {n: d.type for n, d in program.inputs.items()}
    if any(t.dtype.value != "float" for t in types.values()):
        return None  # labels: the elements would hold at some labels only
    if all(t.size <= ELEMENT_PROOF_ELEMENTS for t in types.values()):
        return (
            "element by element at the case's shapes"
            if _equal_elements(derive, program, name, parsed)
            else None
        )
    sizes = sorted({d for t in types.values() for d in t.shape if d > 1})
    if len(sizes) > len(PROBE_SIZES[0]):
        return None
    shown = []
    for probe_sizes in PROBE_SIZES:
        small = dict(zip(sizes, probe_sizes, strict=False))
        shapes = {n: TensorType(tuple(small.get(d, d) for d in t.shape), t.dtype) for n, t in types.items()}
        if any(t.size > ELEMENT_PROOF_ELEMENTS for t in shapes.values()):
            return None
        probe = at_shapes(program, shapes)
        if probe is None or not _equal_elements(derive, probe, name, parsed):
            return None
        shown.append(", ".join(f"{n}: {t.shape}" for n, t in shapes.items() if t.shape))
    return "element by element at probe shapes (" + ") and (".join(shown) + ")"


def _equal_elements(derive: Derive, program: Program, name: str, parsed: ParsedProgram) -> bool:
    """Whether the claim equals d out/d name in every element, exactly, at the program's shapes."""
    closed = derive(program, [name])
    try:
        claimed = closed.lower_formula(parsed)
    except SymcheckError:  # the claim does not bind at this shape (a size written in it)
        return False
    symbols = {n: _element_symbols(n, d.type.shape) for n, d in program.inputs.items()}
    if closed.cotangent is not None:  # a VJP's cotangent: generic too
        symbols[closed.cotangent] = _element_symbols(closed.cotangent, closed.output.shape)
    cache: dict = {}
    truth = closed.graph.evaluate_exact(closed.grads[name], symbols, cache)
    try:
        mine = np.broadcast_to(closed.graph.evaluate_exact(claimed, symbols, cache), truth.shape)
    except ValueError:
        return False
    for index in np.ndindex(*truth.shape):
        difference = elementary(mine[index] - truth[index])
        if difference == 0 or sympy.expand(difference) == 0:
            continue
        if sympy.count_ops(difference) > ELEMENT_OPS_LIMIT or not is_zero(difference):
            return False
    return True


def _element_symbols(name: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = sympy.Symbol(f"{name}[{', '.join(map(str, index))}]", real=True)
    return out


__all__ = ["Normal", "Proof", "elementary", "prove", "rounded_decimals"]
