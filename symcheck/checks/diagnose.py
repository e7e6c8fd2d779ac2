"""A learner's hand-derived gradient: right or wrong, where it parts from the truth, and why.

The claim (`x: 3*(x+2)/2`) is lowered over the same atoms as the closed form, so claimed - true
can be simplified: the claim is proven when that is 0. When it is not, the claim and the truth are
compared at a few points (the given one, then deterministic random ones that respect the ops'
domains) and tested against the common mistakes of hand derivations, in turn:

- a constant factor: -1 (a sign error), N (the 1/N of a mean left out) or 1/N (one too many), a
  number from one chain-rule factor (the 2 of d(y^2)/dy = 2*y), or any other constant;
- the true gradient transposed, or a matmul in its rule multiplied in the wrong order;
- softmax(z) without the -onehot(y) of -log p[y];
- a chain-rule factor d(outer)/d(inner) of some step left out (or one too many).

Numbers decide, so a claim is judged the same however it is spelled; the symbolic forms (the
simplified difference, the step's local derivative) are what the learner reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy

from symcheck.checks.points import sample_points
from symcheck.engines.symbolic.closed_form import Atom, SymTensor
from symcheck.engines.symbolic.engine import ClosedForm
from symcheck.engines.symbolic.printer import Unprintable
from symcheck.engines.symbolic.prover import prove
from symcheck.language.catalogue import CONSTANTS, OPS, OpKind, reduced_count
from symcheck.language.errors import Source, SymcheckError, did_you_mean
from symcheck.language.inputs import InputSpec
from symcheck.language.ir import Call, DType, Node, Program, Ref, walk
from symcheck.language.parser import parse, to_source
from symcheck.suites.case import GradExpect

if TYPE_CHECKING:
    from symcheck.suites.case import GradExpect

# Claim and truth are both float64 evaluations of exact forms: only rounding separates equal ones.
RTOL = 1e-7
ATOL = 1e-9  # relative to the largest magnitude of the true gradient
RANDOM_POINTS = 2  # besides the given point, if any
SYMBOLIC_OPS_LIMIT = 200  # beyond this, sympy.simplify of a ratio may take long: numbers only
SHOW_INPUT_LIMIT = 16  # print an input's value in full up to this many elements


@dataclass
class Diagnosis:
    """A claimed gradient d{output}/d{wrt} against the truth."""

    wrt: str
    claim: str
    output: str
    correct: bool  # proven: claimed - true simplifies to 0
    holds: bool  # equal to the truth (float64) at every point tried
    true_form: str  # the true gradient, printed in the language
    difference: str | None  # claimed - true, simplified, printed; None when the shapes differ
    claimed_shape: tuple[int, ...]
    true_shape: tuple[int, ...]
    # A point where claim and truth differ (None when they agree everywhere tried).
    point: dict[str, np.ndarray] | None = None
    point_label: str | None = None
    index: tuple[int, ...] | None = None  # the element where they differ most
    claimed_value: float | None = None
    true_value: float | None = None
    mistake: str | None = None  # a code: see MISTAKES
    likely_mistake: str | None = None  # the step the error most likely comes from, in words
    notes: list[str] = field(default_factory=list)
    how: str = ""  # how it is proven, or why not (symcheck/engines/symbolic/prover.py)

    def where(self) -> str | None:
        """Where claim and truth part, in one line: the point, the element and both values."""
        if self.point is None:
            return None
        label = f" ({self.point_label})" if self.point_label else ""
        text = f"at {point_text(self.point)}{label}"
        if self.index is not None and self.claimed_value is not None and self.true_value is not None:
            text += f": claimed {self.claimed_value:.10g}, true {self.true_value:.10g} at index {self.index}"
        elif self.claimed_shape != self.true_shape:
            text += f": {self._shapes()}"
        return text

    def _shapes(self) -> str:
        what = f"d{self.output}/d{self.wrt}"
        return f"the claim has shape {self.claimed_shape}, {what} has shape {self.true_shape}"

    def lines(self) -> list[str]:
        what = f"d{self.output}/d{self.wrt}"
        if self.correct:
            return [f"claim {what} = {self.claim}: right (proven {self.how or 'equal to the closed form'})"]
        if self.holds:
            if self.how.startswith("its decimal"):
                return [f"claim {what} = {self.claim}: holds at every point tried, but {self.how}"]
            why = self.how if self.how.startswith("undecided") else "not proven symbolically"
            if self.how.startswith("not proven: "):
                why = f"not proven: {self.how.removeprefix('not proven: ')}"
            return [
                f"claim {what} = {self.claim}: holds at every point tried, {why}",
                f"  claimed - true simplifies to {self.difference}",
            ]
        out = [f"claim {what} = {self.claim}: WRONG"]
        if self.difference is not None:
            out.append(f"  claimed - true = {self.difference}")
        out.append(f"  true gradient  = {self.true_form}")
        where = self.where()
        if where is not None:
            out.append(f"  differs {where}")
        elif self.difference is None:
            out.append(f"  {self._shapes()}")
        if self.likely_mistake is not None:
            out.append(f"  likely mistake: {self.likely_mistake}")
        return out


# The mistakes recognised, by code (Diagnosis.mistake).
MISTAKES = {
    "shape": "the claim does not have the input's shape",
    "sign": "the claim is minus the gradient",
    "mean_count": "the 1/N of a mean is missing",
    "extra_mean_count": "an extra 1/N",
    "chain_constant": "a constant chain-rule factor is missing",
    "extra_chain_constant": "a constant chain-rule factor is counted twice",
    "constant_factor": "off by a constant factor",
    "transpose": "the gradient is transposed",
    "matmul_order": "a matmul of the rule is in the wrong order, or lacks a transpose",
    "onehot": "the -onehot(y) term of softmax + NLL is missing",
    "onehot_sign": "the onehot term has the wrong sign",
    "chain_factor": "a chain-rule factor is missing",
    "chain_factor_part": "part of a chain-rule factor is missing",
    "extra_chain_factor": "a chain-rule factor is counted twice",
}


def render_diagnosis(diagnosis: Diagnosis) -> str:
    """The diagnosis as text: the verdict, the difference, where they part and the likely mistake."""
    return "\n".join(diagnosis.lines())


def point_text(point: Mapping[str, np.ndarray]) -> str:
    """x = [[1, 1], [1, 1]], y = 0 (large inputs by shape only)."""
    parts = []
    for name, value in point.items():
        a = np.asarray(value)
        if a.size > SHOW_INPUT_LIMIT:
            parts.append(f"{name} = <{'x'.join(map(str, a.shape))} array>")
        elif a.ndim == 0:
            parts.append(f"{name} = {a.item():.6g}")
        else:
            parts.append(f"{name} = {_nested(a.tolist())}")
    return ", ".join(parts)


def _nested(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def parse_claim(text: str, known: Sequence[str] | None = None) -> tuple[str, str]:
    """`x: 3*(x+2)/2` -> ("x", "3*(x+2)/2"); with `known`, the name must be one of them."""
    name, sep, formula = text.partition(":")
    name, formula = name.strip(), formula.strip()
    if not sep or not name.isidentifier() or not formula:
        raise SymcheckError(f"bad claim {text!r}", hint='write NAME: FORMULA, e.g. --claim "x: 3/2*(x + 2)"')
    if known is not None and name not in known:
        raise SymcheckError(
            f"claim for '{name}', which is not differentiated",
            hint=did_you_mean(name, known) or f"gradients are taken with respect to {', '.join(known)}",
        )
    return name, formula


def claim_expectations(claims: Sequence[str], line: int = 1) -> dict[str, GradExpect]:
    """--claim texts as a case's expected gradients (`expect: grad:`), checked and diagnosed by verify;
    `line`: where the case is (the API's caller), which messages about a claim point at."""

    out: dict[str, GradExpect] = {}
    for text in claims:
        name, formula = parse_claim(text)
        if name in out:
            raise SymcheckError(f"two claims for '{name}'", hint="give one --claim per input")
        numbers = claimed_numbers(formula)
        if numbers is not None:  # "x: 4.5", "x: [4.5, 4.5]": numbers, as in expect:, at the given values
            out[name] = GradExpect(None, None, numbers, line, label="the claim")
        else:
            out[name] = GradExpect(formula, Source(formula, "<claim>"), None, line, label="the claim")
    return out


def claimed_numbers(text: str) -> np.ndarray | None:
    """A claim that is a number or a nested list of numbers (JSON), as an array; else None (a
    formula: `2*x`, or `3` written with an operator)."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.dtype.kind == "f" and np.all(np.isfinite(array)) else None


def diagnose(
    closed: ClosedForm,
    wrt: str,
    claim_text: str,
    source: Source | None = None,
    point: Mapping[str, np.ndarray] | None = None,
    *,
    point_label: str | None = None,
    seed: int = 0,
) -> Diagnosis:
    """Check the claimed gradient d out/d `wrt` (a formula over the inputs and steps) and, when it
    is wrong, find where it parts from the truth and the mistake it most likely comes from.

    `point`: the inputs to show the difference at first (else a random point, domain-aware,
    from `seed`). Raises SymcheckError for a claim that does not parse or names unknown things.
    """
    if wrt not in closed.grads:
        raise SymcheckError(
            f"claim for '{wrt}', which is not differentiated",
            hint=did_you_mean(wrt, list(closed.grads))
            or f"gradients are taken with respect to {', '.join(closed.grads)}",
        )
    source = source or Source(claim_text, "<claim>")
    parsed = parse(claim_text, source)
    program = closed.program
    known = set(program.inputs) | {s.name for s in program.steps}
    for name in parsed.free_names():
        if name not in known and name not in CONSTANTS:
            raise SymcheckError(
                f"unknown name '{name}' in the claimed gradient",
                source=source,
                hint=did_you_mean(name, known) or f"a claim may use the inputs and steps: {', '.join(known)}",
            )
    claimed = closed.lower_formula(parsed)
    return _Diagnoser(closed, wrt, claim_text, claimed, point, point_label, seed).run()


def check_claims(
    program: Program,
    wrt: Sequence[str],
    claims: Sequence[str],
    point: Mapping[str, np.ndarray] | None = None,
    closed: ClosedForm | None = None,
) -> list[Diagnosis]:
    """Each `name: formula` claim (as given to --claim) diagnosed against the program's gradient."""
    closed = closed or ClosedForm.derive(program, list(wrt))
    out = []
    for text in claims:
        name, formula = parse_claim(text, list(closed.grads))
        out.append(diagnose(closed, name, formula, Source(formula, "<claim>"), point))
    return out


# ---------------------------------------------------------------- the diagnosis


@dataclass
class _At:
    """Claim and truth at one point (claimed broadcast to the truth's shape when it can be)."""

    label: str
    inputs: dict[str, np.ndarray]
    claimed: np.ndarray
    true: np.ndarray


@dataclass
class _Factor:
    """A chain-rule factor: d(outer)/d(inner) = local, in some elementwise step of the program."""

    local: sympy.Expr
    outer: sympy.Expr
    inner: sympy.Expr
    shape: tuple[int, ...]


class _Diagnoser:
    def __init__(
        self,
        closed: ClosedForm,
        wrt: str,
        claim: str,
        claimed: SymTensor,
        point: Mapping[str, np.ndarray] | None,
        label: str | None,
        seed: int,
    ) -> None:
        self.closed = closed
        self.graph = closed.graph
        self.program = closed.program
        self.wrt = wrt
        self.claim = claim
        self.claimed = claimed
        self.true = closed.grads[wrt]
        self.given = None if point is None else {n: np.asarray(v) for n, v in point.items()}
        self.label = label
        self.seed = seed
        self.output = self.program.output.name
        self._factor_cache: list[_Factor] | None = None

    # ------------------------------------------------------------ driver

    def run(self) -> Diagnosis:
        fits = _broadcasts(self.claimed.shape, self.true.shape)
        difference = None
        correct = False
        how = ""
        if fits:
            proof = prove(self.closed, self.wrt, parse(self.claim), claimed=self.claimed)
            correct, how = proof.proven, proof.how
            # a rounded decimal's difference is not simplified (prover.py)
            unsimplified = SymTensor(self.claimed.expr - self.true.expr, self.true.shape)
            difference = "0" if correct else self._print((proof.difference or unsimplified).expr)
        d = Diagnosis(
            wrt=self.wrt,
            claim=self.claim,
            output=self.output,
            correct=correct,
            holds=correct,
            true_form=self.closed.printed[self.wrt],
            difference=difference,
            claimed_shape=tuple(self.claimed.shape),
            true_shape=tuple(self.true.shape),
            how=how,
        )
        if correct:
            return d
        points = self._points(d.notes)
        if not fits:
            self._shape_mistake(d, points)
            return d
        differing = [p for p in points if not _close(p.claimed, p.true)]
        d.holds = not differing
        if d.holds:
            return d
        self._locate(d, differing[0])
        found = self._explain(points)
        if found is not None:
            d.mistake, d.likely_mistake = found
        return d

    def _explain(self, points: list[_At]) -> tuple[str, str] | None:
        for test in (self._constant, self._transposed, self._matmul_order, self._onehot, self._chain_factor):
            found = test(points)
            if found is not None:
                return found
        return None

    def _locate(self, d: Diagnosis, at: _At) -> None:
        gap = np.abs(at.claimed - at.true)
        gap = np.where(np.isnan(gap), np.inf, gap)
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(gap)), gap.shape)) if gap.ndim else ()
        d.point, d.point_label, d.index = at.inputs, at.label, index
        d.claimed_value, d.true_value = float(at.claimed[index]), float(at.true[index])

    # ------------------------------------------------------------ points

    def _points(self, notes: list[str]) -> list[_At]:
        found: list[tuple[str, dict[str, np.ndarray]]] = []
        if self.given is not None:
            found.append((self.label or "the given point", self.given))
        for i, p in enumerate(self._random_points(notes)):
            found.append((f"random point {i + 1} (seed {self.seed})", p))
        out = []
        for label, inputs in found:
            cache: dict = {}
            true = self.graph.evaluate(self.true, inputs, cache)
            claimed = self.graph.evaluate(self.claimed, inputs, cache)
            if _broadcasts(claimed.shape, true.shape):
                claimed = np.broadcast_to(claimed, true.shape)
            out.append(_At(label, inputs, claimed, true))
        return out

    def _random_points(self, notes: list[str]) -> list[dict[str, np.ndarray]]:
        """Domain-aware random points (labels kept from the given point), else uniform(0.5, 1.5)."""
        specs = {}
        for name, decl in self.program.inputs.items():
            t = decl.type
            if t.dtype is not DType.FLOAT and self.given is not None and name in self.given:
                specs[name] = InputSpec(shape=t.shape, dtype=t.dtype, value=self.given[name].tolist())
            else:
                specs[name] = InputSpec(shape=t.shape, dtype=t.dtype)
        try:
            return sample_points(self.program, specs, RANDOM_POINTS, self.seed, notes=notes)
        except SymcheckError as e:  # no point where every domain holds: plain draws will do
            notes.append(f"domain-aware sampling failed ({e.message}); drawing uniform(0.5, 1.5)")
        rng = np.random.default_rng(self.seed)
        return [
            {
                name: rng.uniform(0.5, 1.5, decl.type.shape)
                if decl.type.dtype is DType.FLOAT
                else (self.given or {}).get(name, np.zeros(decl.type.shape, dtype=np.int64))
                for name, decl in self.program.inputs.items()
            }
            for _ in range(RANDOM_POINTS)
        ]

    def _variant(self, at: _At, replace: Mapping[sympy.Symbol, np.ndarray]) -> np.ndarray:
        """The true gradient at `at` with some atoms' values replaced (a mistake made on purpose)."""
        return self.graph.evaluate(self.true, at.inputs, dict(replace))

    # ------------------------------------------------------------ the mistakes

    def _shape_mistake(self, d: Diagnosis, points: list[_At]) -> None:
        at = points[0]
        d.point, d.point_label = at.inputs, at.label
        transposed = len(self.true.shape) == 2 and tuple(reversed(self.true.shape)) == self.claimed.shape
        if transposed and all(_close(p.claimed.T, p.true) for p in points):
            d.mistake = "transpose"
            d.likely_mistake = self._transpose_text("the claim is the true gradient transposed")
            return
        d.mistake = "shape"
        d.likely_mistake = (
            f"the claim has shape {tuple(self.claimed.shape)} but d{self.output}/d{self.wrt} has "
            f"{self.wrt}'s shape {tuple(self.true.shape)}: a gradient has its input's shape"
        )

    def _constant(self, points: list[_At]) -> tuple[str, str] | None:
        ratio = self._ratio(points)
        if ratio is None:
            return None
        shown = _number_text(ratio)
        times = f"(the claim is {shown} times the true gradient)"
        if ratio == -1:
            return "sign", "sign error: the claim is minus the true gradient (claim = -1 * true)"
        singles = list(self._constant_mistakes())
        for code, factor, text in singles:
            if ratio == factor:
                return code, f"{text} {times}"
        # Two slips at once (1/N forgotten and the power rule's 2 forgotten: N/2), before giving up.
        for i, (code_a, factor_a, text_a) in enumerate(singles):
            for code_b, factor_b, text_b in singles[i + 1 :]:
                if ratio == factor_a * factor_b and code_a != code_b:
                    return f"{code_a}+{code_b}", f"two mistakes: {text_a}; and {text_b} {times}"
        return (
            "constant_factor",
            f"off by a constant factor {shown}: the claim is {shown} times the true gradient",
        )

    def _constant_mistakes(self) -> Iterator[tuple[str, Fraction, str]]:
        """(code, claim / true, words) for each slip that scales the gradient by a constant."""
        yield "sign", Fraction(-1), "a sign error (the claim is minus the gradient)"
        for n, call in self._mean_counts():
            yield (
                "mean_count",
                Fraction(n),
                f"the 1/N of mean is missing: {call} averages N = {n} elements, so each element's "
                f"derivative carries a factor 1/{n}",
            )
            yield "extra_mean_count", Fraction(1, n), f"an extra 1/N: {call} contributes its 1/{n} only once"
        for k, factor in self._constants():
            own = factor.local.is_number
            which = "" if own else f"the factor {_number_text(k)} of "
            rule = f"{which}the chain rule's factor {self._factor_text(factor)}"
            yield "chain_constant", 1 / k, f"{rule} is missing"
            yield "extra_chain_constant", k, f"{rule} is counted twice"

    def _ratio(self, points: list[_At]) -> Fraction | None:
        """claim / true when it is one constant everywhere (exact when SymPy can say so)."""
        ratios = []
        for p in points:
            scale = float(np.max(np.abs(p.true))) if p.true.size else 0.0
            mask = np.abs(p.true) > ATOL * max(scale, 1.0)
            if np.any(mask):
                ratios.append(p.claimed[mask] / p.true[mask])
        if not ratios:
            return None
        r = float(np.median(np.concatenate(ratios)))
        if not np.isfinite(r) or r == 0 or not all(_close(p.claimed, r * p.true) for p in points):
            return None
        exact = self._symbolic_ratio()
        if exact is not None and abs(float(exact) - r) <= RTOL * abs(r):
            return exact
        guess = Fraction(r).limit_denominator(10**4)
        return guess if abs(float(guess) - r) <= RTOL * abs(r) else Fraction(r)

    def _symbolic_ratio(self) -> Fraction | None:
        quotient = self.claimed.expr / self.true.expr
        if sympy.count_ops(quotient) > SYMBOLIC_OPS_LIMIT:
            return None
        try:
            q = sympy.simplify(quotient)
        except (TypeError, ValueError, NotImplementedError):  # pragma: no cover - SymPy corner cases
            return None
        return Fraction(int(q.p), int(q.q)) if q.is_Rational and q != 0 else None

    def _transposed(self, points: list[_At]) -> tuple[str, str] | None:
        if len(self.true.shape) != 2 or self.true.shape[0] != self.true.shape[1]:
            return None
        if all(_close(p.claimed, p.true.T) for p in points):
            return "transpose", self._transpose_text("the claim is the true gradient transposed")
        return None

    def _matmul_order(self, points: list[_At]) -> tuple[str, str] | None:
        """The truth with one of its matmuls P @ Q changed to Q @ P, P.T @ Q, ... (where shapes allow)."""
        for atom in self._atoms_under(self.true):
            if atom.op != "matmul" or any(len(a.shape) != 2 for a in atom.args):
                continue
            for swapped, change in _matmul_variants():
                if all(self._matches_variant(p, atom, change) for p in points):
                    how = "multiplies in the wrong order" if swapped else "lacks or misplaces a transpose"
                    return "matmul_order", self._transpose_text(f"the claim {how}")
        return None

    def _matches_variant(self, at: _At, atom: Atom, change: tuple[bool, bool, bool]) -> bool:
        cache: dict = {}
        p, q = (self.graph.evaluate(a, at.inputs, cache) for a in atom.args)
        swap, tp, tq = change
        p, q = (p.T if tp else p), (q.T if tq else q)
        if swap:
            p, q = q, p
        if p.shape[1] != q.shape[0] or (p.shape[0], q.shape[1]) != tuple(atom.shape):
            return False
        return _close(at.claimed, self._variant(at, {atom.symbol: p @ q}))

    def _onehot(self, points: list[_At]) -> tuple[str, str] | None:
        for atom in self._atoms_under(self.true):
            if atom.op != "onehot":
                continue
            label = self._print(atom.args[0].expr)
            term = f"onehot({label}, {atom.kw('num_classes')})"
            missing = all(
                _close(p.claimed, self._variant(p, {atom.symbol: np.zeros(atom.shape)})) for p in points
            )
            if missing:
                return (
                    "onehot",
                    f"the -{term} term from -log p[{label}] is missing: for L = -log softmax(z)[{label}], "
                    f"dL/dz = softmax(z) - {term}",
                )
            flipped = all(
                _close(p.claimed, self._variant(p, {atom.symbol: -self._value(atom, p)})) for p in points
            )
            if flipped:
                return (
                    "onehot_sign",
                    f"the {term} term has the wrong sign: -log p[{label}] contributes -{term}, "
                    f"so dL/dz = softmax(z) - {term}",
                )
        return None

    def _chain_factor(self, points: list[_At]) -> tuple[str, str] | None:
        factors = [f for f in self._factors() if not f.local.is_number]
        values = [[self._factor_value(f, p) for p in points] for f in factors]
        for factor, vs in zip(factors, values, strict=True):
            if all(v is not None and _close(p.claimed * v, p.true) for p, v in zip(points, vs, strict=True)):
                return "chain_factor", f"the chain rule's factor {self._factor_text(factor)} is missing"
        for factor in factors:
            coeff, rest = factor.local.as_coeff_Mul()
            if coeff in (1, -1) or rest.is_number:
                continue
            part = _Factor(rest, factor.outer, factor.inner, factor.shape)
            vs = [self._factor_value(part, p) for p in points]
            if all(v is not None and _close(p.claimed * v, p.true) for p, v in zip(points, vs, strict=True)):
                return (
                    "chain_factor_part",
                    f"the chain rule's factor {self._factor_text(factor)} is incomplete: "
                    f"the claim lacks its factor {self._named(rest)}",
                )
        for factor, vs in zip(factors, values, strict=True):
            if all(v is not None and _close(p.claimed, p.true * v) for p, v in zip(points, vs, strict=True)):
                return (
                    "extra_chain_factor",
                    f"the chain rule's factor {self._factor_text(factor)} is counted twice (or where it "
                    "does not belong)",
                )
        return None

    # ------------------------------------------------------------ the program's steps

    def _mean_counts(self) -> Iterator[tuple[int, str]]:
        """(N, the call) for every mean in the program (mean-reduced losses too), then their product."""
        found: list[tuple[int, str]] = []
        for node in self.program.nodes():
            if not isinstance(node, Call):
                continue
            n = _mean_count(node)
            if n is not None and n > 1:
                found.append((n, self._as_written(node)))
        yield from found
        if len(found) > 1:
            total = int(np.prod([n for n, _ in found]))
            yield total, " and ".join(call for _, call in found)

    def _constants(self) -> Iterator[tuple[Fraction, _Factor]]:
        """Numbers in the chain rule's factors: 3 of d(3*u)/du, the 2 of d(u^2)/du = 2*u."""
        for factor in self._factors():
            coeff = factor.local if factor.local.is_number else factor.local.as_coeff_Mul()[0]
            if coeff.is_Rational and coeff not in (0, 1, -1):
                yield Fraction(int(coeff.p), int(coeff.q)), factor

    def _factors(self) -> list[_Factor]:
        """Every local derivative d(outer)/d(inner) inside the program's elementwise steps."""
        if self._factor_cache is not None:
            return self._factor_cache
        regions = [self.closed.output] + [
            a for atom in self._atoms_under(self.closed.output) for a in atom.args
        ]
        out: list[_Factor] = []
        seen: set[sympy.Expr] = set()
        for region in regions:
            for outer in sympy.preorder_traversal(region.expr):
                if not isinstance(outer, sympy.Expr):  # a case's condition (x < 2): no derivative
                    continue
                if not outer.args or outer.is_Atom or not outer.free_symbols or outer.is_Add:
                    continue
                for inner in set(outer.args):
                    if not inner.free_symbols or not isinstance(inner, sympy.Expr):
                        continue
                    local = _local_derivative(outer, inner)
                    if local is None or local in (0, 1, -1) or local in seen:
                        continue
                    # 2*(x + 2), not SymPy's 2*x + 4: the power rule's 2 stays a factor of its own
                    local = sympy.factor_terms(local)
                    if local in seen:
                        continue
                    seen.add(local)
                    out.append(_Factor(local, outer, inner, tuple(region.shape)))
        for factor in self._step_factors():
            if factor.local not in seen:
                seen.add(factor.local)
                out.append(factor)
        self._factor_cache = out
        return out

    def _step_factors(self) -> list[_Factor]:
        """d(call)/d(an input or step it reads), for each elementwise call of the program, read on the
        program itself: SymPy folds where(x > 0, x, 0.1*x)^2 into cases of squares, and the factor
        d where(x > 0, x, 0.1*x)/dx = where(x > 0, 1, 0.1) is no longer in the expression."""
        out: list[_Factor] = []
        env = self.closed.env
        for node in self.program.nodes():
            inside = list(walk(node))
            if not isinstance(node, Call) or any(
                isinstance(n, Call) and OPS[n.op].kind is not OpKind.ELEMENTWISE for n in inside
            ):
                continue
            for target in dict.fromkeys(n.target for n in inside if isinstance(n, Ref)):
                base = env.get(target)
                if base is None:
                    continue
                u = sympy.Dummy("u", real=True)
                try:
                    lowered = self.graph.lower_node(node, {**env, target: SymTensor(u, base.shape)})
                    local = sympy.diff(lowered.expr, u).xreplace({u: base.expr})
                except (TypeError, ValueError, NotImplementedError, KeyError):  # pragma: no cover
                    continue
                if local.is_number or local.has(sympy.Derivative, sympy.Subs):
                    continue
                outer = lowered.expr.xreplace({u: base.expr})
                out.append(_Factor(sympy.factor_terms(local), outer, base.expr, tuple(node.shape)))
        return out

    def _factor_value(self, factor: _Factor, at: _At) -> np.ndarray | None:
        if not _broadcasts(factor.shape, self.true.shape):
            return None
        natural = self.graph.natural_shape(SymTensor(factor.local, factor.shape))
        if not _broadcasts(natural, self.true.shape):
            return None
        try:
            value = self.graph.evaluate(SymTensor(factor.local, factor.shape), at.inputs, {})
        except (TypeError, ValueError, NameError):  # a derivative numpy cannot evaluate
            return None
        return np.broadcast_to(value, self.true.shape)

    def _atoms_under(self, t: SymTensor) -> list[Atom]:
        """Every atom t depends on, its own first, then theirs (inputs left out)."""
        out: list[Atom] = []
        stack = list(self.graph.atoms_of(t))
        while stack:
            atom = stack.pop(0)
            if atom.op == "input" or atom in out:
                continue
            out.append(atom)
            for arg in atom.args:
                stack.extend(self.graph.atoms_of(arg))
        return out

    def _value(self, atom: Atom, at: _At) -> np.ndarray:
        return self.graph.evaluate(SymTensor(atom.symbol, atom.shape), at.inputs, {})

    # ------------------------------------------------------------ words

    def _as_written(self, node: Node) -> str:
        """A call as the user spelled it (`mean(3*(x+2)^2)`), else in canonical form."""
        span, text = node.span, self.program.source.text
        if span is not None and span.line == span.end_line:
            line = text.splitlines()[span.line - 1] if span.line <= len(text.splitlines()) else ""
            written = line[span.col - 1 : span.end_col - 1]
            if written.strip():
                return written
        return to_source(node)

    def _print(self, expr: sympy.Expr) -> str:
        try:
            return self.closed.printer(expr)
        except Unprintable:
            return str(expr)

    def _step_names(self) -> dict[sympy.Expr, sympy.Symbol]:
        """Each named step's expression -> its name, so factors read like the learner's steps."""
        names: dict[sympy.Expr, sympy.Symbol] = {}
        counts: dict[str, int] = {}
        for s in self.program.steps:
            counts[s.name] = counts.get(s.name, 0) + 1
        for s in self.program.steps[:-1]:
            expr = self.closed.env[s.id].expr
            if counts[s.name] == 1 and not expr.is_Atom and s.name not in self.program.inputs:
                names[expr] = sympy.Symbol(s.name)
        return names

    def _named(self, expr: sympy.Expr) -> str:
        return self._print(expr.xreplace(self._step_names()))

    def _factor_text(self, factor: _Factor) -> str:
        """d(y^2)/dy = 2*y (with y = x + 2 where a step is named)."""
        names = self._step_names()
        outer, inner, local = (e.xreplace(names) for e in (factor.outer, factor.inner, factor.local))
        inner_text = self._print(inner)
        by = f"d{inner_text}" if inner_text.isidentifier() else f"d({inner_text})"
        text = f"d({self._print(outer)})/{by} = {self._print(local)}"
        used = [
            f"{symbol} = {self._print(expr)}"
            for expr, symbol in names.items()
            if any(symbol in e.free_symbols for e in (outer, inner, local))
        ]
        return text + (f" (where {', '.join(used)})" if used else "")

    def _transpose_text(self, what: str) -> str:
        rule = self._matmul_rule()
        if rule is None:
            return what
        return f"the matmul's gradient needs a transpose: {rule} ({what})"

    def _matmul_rule(self) -> str | None:
        """The rule for the matmul (or outer) that wrt feeds: d(A @ B)/dA = G @ B.T, ..."""
        steps = {s.id: s.expr for s in self.program.steps}
        best: tuple[int, str] | None = None
        for node in self.program.nodes():
            if not isinstance(node, Call) or node.op not in ("matmul", "outer"):
                continue
            a, b = node.args
            for side, arg in ((0, a), (1, b)):
                if self.wrt not in _inputs_of(arg, steps):
                    continue
                direct = 0 if isinstance(arg, Ref) and arg.target == self.wrt else 1
                rule = _rule_text(node, side, self.output)
                if rule is not None and (best is None or direct < best[0]):
                    best = (direct, rule)
        return None if best is None else best[1]


# ---------------------------------------------------------------- helpers


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return bool(np.allclose(a, b, rtol=RTOL, atol=ATOL * max(scale, 1.0)))


def _broadcasts(got: Sequence[int], want: Sequence[int]) -> bool:
    try:
        return tuple(np.broadcast_shapes(tuple(got), tuple(want))) == tuple(want)
    except ValueError:
        return False


def _number_text(r: Fraction) -> str:
    return str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}"


def _mean_count(node: Call) -> int | None:
    """How many elements a mean (or a mean-reduced loss) divides by."""
    if node.op == "mean":
        return reduced_count(node.args[0].shape, node.kw("axis"))
    if node.op == "mse_loss" and node.kw("reduction") == "mean":
        return int(np.prod(np.broadcast_shapes(node.args[0].shape, node.args[1].shape)))
    if node.op in ("nll_loss", "cross_entropy") and node.kw("reduction") == "mean":
        scores = node.args[0].shape
        return scores[0] if len(scores) == 2 else None
    return None


def _local_derivative(outer: sympy.Expr, inner: sympy.Expr) -> sympy.Expr | None:
    """d outer / d inner, with inner treated as one variable."""
    var = sympy.Dummy("u", real=True)
    try:
        local = sympy.diff(outer.xreplace({inner: var}), var).xreplace({var: inner})
    except (TypeError, ValueError, NotImplementedError):  # pragma: no cover - SymPy corner cases
        return None
    return None if local.has(sympy.Derivative, sympy.Subs) else local


def _matmul_variants() -> Iterator[tuple[bool, tuple[bool, bool, bool]]]:
    """(swapped, (swap, transpose P, transpose Q)) for every way to get P @ Q wrong."""
    for swap in (False, True):
        for tp in (False, True):
            for tq in (False, True):
                if swap or tp or tq:
                    yield swap, (swap, tp, tq)


def _inputs_of(node: Node, steps: Mapping[str, Node]) -> set[str]:
    found: set[str] = set()
    for n in walk(node):
        if isinstance(n, Ref):
            found |= _inputs_of(steps[n.target], steps) if n.target in steps else {n.target}
    return found


def _operand(node: Node) -> str:
    text = to_source(node)
    called = isinstance(node, Call) and OPS[node.op].infix is None and node.op != "neg"
    return text if text.isidentifier() or called else f"({text})"


def _rule_text(node: Call, side: int, output: str) -> str | None:
    a, b = node.args
    left, right = _operand(a), _operand(b)
    if node.op == "outer":
        call = f"outer({to_source(a)}, {to_source(b)})"
        rule = f"G @ {right}" if side == 0 else f"G.T @ {left}"
        return f"d{call}/d{left if side == 0 else right} = {rule}, with G = d{output}/d{call}"
    na, nb = len(a.shape), len(b.shape)
    product = f"{left} @ {right}"
    rules = {
        (2, 2): (f"G @ {right}.T", f"{left}.T @ G"),
        (2, 1): (f"outer(G, {to_source(b)})", f"{left}.T @ G"),
        (1, 2): (f"{right} @ G", f"outer({to_source(a)}, G)"),
    }
    if (na, nb) not in rules:
        return None
    rule = rules[(na, nb)][side]
    by = left if side == 0 else right
    return f"d({product})/d{by} = {rule}, with G = d{output}/d({product})"


__all__ = [
    "MISTAKES",
    "Diagnosis",
    "check_claims",
    "claim_expectations",
    "diagnose",
    "parse_claim",
    "point_text",
    "render_diagnosis",
]
