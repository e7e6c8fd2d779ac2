"""Points: the domain-aware sampler, and the check of pinned points.

The sampler draws points where every op is defined (log(x) needs x > 0) and keeps away from
kinks (relu at 0), where finite differences and the other engines may legitimately disagree. It
watches the ops through the numeric engine's plain forward evaluator (`on_call`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from symcheck.engines.numeric.evaluator import forward
from symcheck.language.catalogue import OPS, OpKind
from symcheck.language.errors import SymcheckError
from symcheck.language.inputs import DEFAULT_INT_RANGE, DEFAULT_RANGE, InputSpec, RandomSpec
from symcheck.language.ir import Call, DType, Node, Program, Ref, walk
from symcheck.language.parser import to_source

MAX_TRIES = 50  # whole redraws per point
FIX_ROUNDS = 20  # element redraws per whole draw
KINK_MARGIN = 1e-3  # relative to max(1, the largest magnitude of the kink's argument)
# Second derivatives by finite differences step about 2.5e-3 (eps^(1/6)) and Richardson doubles it:
# a point for them keeps further away, or the differences straddle the kink.
SECOND_ORDER_KINK_MARGIN = 2e-2


def kink_margin(order: int) -> float:
    """How far (relative) a random point keeps from every kink, for derivatives of this order."""
    return SECOND_ORDER_KINK_MARGIN if order >= 2 else KINK_MARGIN


# ---------------------------------------------------------------- drawing


def default_ranges(program: Program) -> dict[str, tuple[float, float]]:
    """The range each float input is drawn from when it has none of its own: uniform(-2, 2), or
    the op's `sample_range` where the input is an argument with a domain (log(x): (0.2, 3)).
    Several such uses intersect (log(x) and tan(x): (0.2, 1.2))."""
    ranges: dict[str, tuple[float, float]] = {}
    for node in program.nodes():
        if not isinstance(node, Call):
            continue
        for dom in OPS[node.op].domains(node):
            arg = node.args[dom.arg]
            if dom.sample_range is None or not isinstance(arg, Ref) or arg.target not in program.inputs:
                continue
            lo, hi = dom.sample_range
            if arg.target in ranges:
                old_lo, old_hi = ranges[arg.target]
                if max(lo, old_lo) < min(hi, old_hi):
                    lo, hi = max(lo, old_lo), min(hi, old_hi)
                else:
                    lo, hi = old_lo, old_hi
            ranges[arg.target] = (lo, hi)
    return ranges


def matrix_domains(program: Program) -> dict[str, str]:
    """The float inputs that feed a matrix domain directly (inv(A), cholesky(A)), with the shape
    their random draws are given there (catalogue.Domain.sample_matrix)."""
    kinds: dict[str, str] = {}
    for node in program.nodes():
        if not isinstance(node, Call):
            continue
        for dom in OPS[node.op].domains(node):
            arg = node.args[dom.arg]
            if dom.sample_matrix is not None and isinstance(arg, Ref) and arg.target in program.inputs:
                # positive definite is also well conditioned: it wins where an input feeds both
                kinds[arg.target] = (
                    "definite"
                    if "definite" in (dom.sample_matrix, kinds.get(arg.target))
                    else dom.sample_matrix
                )
    return kinds


def shaped_matrix(values: np.ndarray, kind: str) -> np.ndarray:
    """A drawn (..., n, n) array made into a matrix of the domain: with its entries scaled into
    [-1, 1], x + (n + 1)*I is strictly diagonally dominant (invertible, determinant > 0, well
    conditioned); M M^T / n + I is positive definite."""
    n = values.shape[-1]
    eye = np.eye(n)
    unit = values / max(1.0, float(np.abs(values).max(initial=0.0)))
    if kind == "definite":
        return unit @ np.swapaxes(unit, -1, -2) / n + eye
    return unit + (n + 1) * eye


def _rng(seed: int, index: int, attempt: int, fix: int, name: str, spec: InputSpec) -> np.random.Generator:
    if spec.random is not None and spec.random.seed is not None:
        seed = spec.random.seed  # the input's own seed wins over the case's
    # Keyed by name (crc32, stable across runs) so adding an input leaves the others' draws alone.
    return np.random.default_rng([seed % 2**64, index, attempt, fix, zlib.crc32(name.encode())])


def _draw(spec: InputSpec, rng: np.random.Generator, default: tuple[float, float]) -> np.ndarray:
    shape = spec.shape
    r = spec.random or RandomSpec()
    if spec.dtype is DType.INT:
        lo, hi = DEFAULT_INT_RANGE if r.low is None or r.high is None else (int(r.low), int(r.high))
        return np.asarray(rng.integers(lo, hi, size=shape), dtype=np.int64)
    if r.distribution == "normal":
        return np.asarray(rng.normal(r.mean, r.std, size=shape), dtype=np.float64)
    lo, hi = default if r.low is None or r.high is None else (r.low, r.high)
    return np.asarray(rng.uniform(lo, hi, size=shape), dtype=np.float64)


def make_point(
    specs: Mapping[str, InputSpec],
    rng_seed: int,
    program: Program | None = None,
    *,
    notes: list[str] | None = None,
    margin: float = KINK_MARGIN,
) -> dict[str, np.ndarray]:
    """The given point: fill/value inputs as given, the others drawn. With `program`, the drawn
    inputs get domain-aware ranges and are redrawn like `sample_points` does; pinned values are
    kept even where they break a domain (report those with `check_point`)."""
    drawn = {n for n, s in specs.items() if not s.concrete()}
    if program is None:
        return {
            n: _draw(s, _rng(rng_seed, 0, 0, 0, n, s), DEFAULT_RANGE) if n in drawn else s.array()
            for n, s in specs.items()
        }
    return _Sampler(program, specs, rng_seed, notes, margin).point(0, drawn)


def sample_points(
    program: Program,
    specs: Mapping[str, InputSpec],
    count: int,
    seed: int,
    *,
    notes: list[str] | None = None,
    margin: float = KINK_MARGIN,
) -> list[dict[str, np.ndarray]]:
    """`count` random points besides the given one. Every float input is drawn (from its own random
    spec, else its default range); int inputs keep a given value or are drawn. Points are redrawn
    until every op's domain holds and no kink's argument is within a margin of the kink; kinks
    that cannot be avoided are accepted and explained in `notes`. Same seed, same points."""
    drawn = {n for n, s in specs.items() if s.dtype is DType.FLOAT or not s.concrete()}
    sampler = _Sampler(program, specs, seed, notes, margin)
    return [sampler.point(i + 1, drawn) for i in range(count)]


@dataclass
class _Issue:
    kind: Literal["domain", "kink"]
    text: str
    call: Call
    step: str
    mask: np.ndarray  # offending elements of the argument
    arg: int  # which argument of the call
    # Inputs the argument is elementwise in, shape for shape (log(x - 1): x): redrawing just the
    # offending elements of one of them can clear the issue.
    fixers: tuple[str, ...]
    deps: frozenset[str]  # inputs the argument depends on

    def describe(self) -> str:
        bad, total = int(np.count_nonzero(self.mask)), int(self.mask.size)
        return f"{self.text}: {bad} of {total} elements of {_call_text(self.call)} in step '{self.step}'"


def _call_text(call: Call) -> str:
    text = to_source(call)
    return text if len(text) <= 60 else text[:57] + "..."


class _Watcher:
    """Evaluates the program and collects domain violations and kink hits, per Call."""

    def __init__(self, program: Program, margin: float = KINK_MARGIN) -> None:
        self.program = program
        self.margin = margin
        self.step_of: dict[int, str] = {}
        self.deps: dict[int, frozenset[str]] = {}
        self.elementwise: dict[int, frozenset[str]] = {}
        step_deps: dict[str, frozenset[str]] = {}
        step_elementwise: dict[str, frozenset[str]] = {}
        for step in program.steps:
            for node in walk(step.expr):
                self.step_of[id(node)] = step.name
                self.deps[id(node)] = self._node_deps(node, step_deps)
                self.elementwise[id(node)] = self._node_elementwise(node, step_elementwise)
            step_deps[step.id] = self.deps[id(step.expr)]
            step_elementwise[step.id] = self.elementwise[id(step.expr)]

    def _node_deps(self, node: Node, step_deps: dict[str, frozenset[str]]) -> frozenset[str]:
        if isinstance(node, Ref):
            if node.target in self.program.inputs:
                return frozenset({node.target})
            return step_deps.get(node.target, frozenset())
        out: frozenset[str] = frozenset()
        for child in node.children():
            out |= self.deps[id(child)]
        return out

    def _node_elementwise(self, node: Node, step_elementwise: dict[str, frozenset[str]]) -> frozenset[str]:
        if isinstance(node, Ref):
            if node.target in self.program.inputs:
                return frozenset({node.target})
            return step_elementwise.get(node.target, frozenset())
        if not isinstance(node, Call) or OPS[node.op].kind is not OpKind.ELEMENTWISE:
            return frozenset()
        out: frozenset[str] = frozenset()
        for child in node.children():
            out |= self.elementwise[id(child)]
        return frozenset(n for n in out if self.program.inputs[n].type.shape == node.shape)

    def issues(self, point: Mapping[str, np.ndarray], *, sampling: bool = False) -> list[_Issue]:
        found: list[_Issue] = []

        def on_call(call: Call, args: list[np.ndarray], result: np.ndarray) -> None:
            op = OPS[call.op]
            for dom in op.domains(call):
                predicate = (dom.sample_predicate if sampling else None) or dom.predicate
                with np.errstate(all="ignore"):
                    ok = np.asarray(predicate(args[dom.arg]), dtype=bool)
                if not ok.all():
                    found.append(self._issue("domain", dom.text, call, dom.arg, ~ok))
            for kink in op.kinks_of(call):
                if not any(self.deps[id(a)] for a in call.args):
                    continue  # constants (tril(...) > 0): nothing there moves, no derivative to lose
                a = np.asarray(args[kink.arg], dtype=np.float64)
                finite = np.abs(a[np.isfinite(a)])
                margin = self.margin * max(1.0, float(finite.max()) if finite.size else 1.0)
                hit = kink.distance(args) <= margin
                if hit.any():
                    found.append(self._issue("kink", kink.text, call, kink.arg, hit))

        forward(self.program, point, on_call=on_call)
        return found

    def _issue(
        self, kind: Literal["domain", "kink"], text: str, call: Call, arg: int, mask: np.ndarray
    ) -> _Issue:
        node = call.args[arg]
        fixers = tuple(sorted(self.elementwise[id(node)]))
        return _Issue(
            kind, text, call, self.step_of.get(id(call), "?"), mask, arg, fixers, self.deps[id(node)]
        )


class _Sampler:
    def __init__(
        self,
        program: Program,
        specs: Mapping[str, InputSpec],
        seed: int,
        notes: list[str] | None,
        margin: float = KINK_MARGIN,
    ) -> None:
        missing = [n for n in program.inputs if n not in specs]
        if missing:
            raise SymcheckError(f"no input spec for {', '.join(missing)}")
        self.program = program
        self.specs = {n: specs[n] for n in program.inputs}
        self.seed = seed
        self.notes = notes
        self.ranges = default_ranges(program)
        self.matrices = matrix_domains(program)
        self.watcher = _Watcher(program, margin)

    def _draw(self, name: str, index: int, attempt: int, fix: int) -> np.ndarray:
        spec = self.specs[name]
        rng = _rng(self.seed, index, attempt, fix, name, spec)
        value = _draw(spec, rng, self.ranges.get(name, DEFAULT_RANGE))
        if name in self.matrices and spec.random is None:  # a distribution the user gave is kept
            value = shaped_matrix(value, self.matrices[name])
        return value

    def point(self, index: int, drawn: set[str]) -> dict[str, np.ndarray]:
        drawn = {n for n in drawn if n in self.specs}
        best: tuple[int, dict[str, np.ndarray], list[_Issue]] | None = None
        issues: list[_Issue] = []
        for attempt in range(MAX_TRIES):
            point = {
                n: self._draw(n, index, attempt, 0) if n in drawn else self.specs[n].array()
                for n in self.specs
            }
            for fix in range(1, FIX_ROUNDS + 1):
                # Pinned inputs that break a domain are check_point's business, not ours to redraw.
                issues = [i for i in self.watcher.issues(point, sampling=True) if i.deps & drawn]
                if not issues:
                    return point
                fixable = [
                    (i, next(n for n in i.fixers if n in drawn)) for i in issues if set(i.fixers) & drawn
                ]
                if not fixable:
                    break
                # A whole redraw rarely clears a kink on a large tensor: redraw just the bad elements.
                for issue, name in fixable:
                    fresh = self._draw(name, index, attempt, fix)
                    try:
                        bad = np.broadcast_to(issue.mask, fresh.shape)
                    except ValueError:  # a smaller input broadcast into the argument: redraw all of it
                        bad = np.ones(fresh.shape, dtype=bool)
                    point[name] = np.where(bad, fresh, point[name])
            else:
                issues = [i for i in self.watcher.issues(point, sampling=True) if i.deps & drawn]
                if not issues:
                    return point
            if not any(i.kind == "domain" for i in issues):
                hits = sum(int(np.count_nonzero(i.mask)) for i in issues)
                if best is None or hits < best[0]:
                    best = (hits, point, issues)
        if best is None:
            domain = next(i for i in issues if i.kind == "domain")
            self._raise_domain(domain)
        assert best is not None
        _, point, issues = best
        if self.notes is not None:
            for issue in issues:
                self.notes.append(
                    f"point {index}: could not keep away from a kink after {MAX_TRIES} tries, "
                    f"{issue.describe()}; derivatives there may disagree"
                )
        return point

    def _raise_domain(self, issue: _Issue) -> None:
        names = sorted(issue.deps & set(self.specs))
        example = names[0] if names else "x"
        shape = self.specs[example].shape if example in self.specs else ()
        cli_shape = "x".join(str(d) for d in shape or ())
        cli = f"{example}:{cli_shape}~uniform(0.1,2)" if cli_shape else f"{example}~uniform(0.1,2)"
        raise SymcheckError(
            f"no random point satisfies '{issue.text}' in step '{issue.step}' ({MAX_TRIES} tries)",
            source=self.program.source,
            span=issue.call.span,
            hint=f"give {', '.join(names) or 'the inputs'} a range where it holds, "
            f"e.g. random: {{low: 0.1, high: 2}} in a suite, or {cli} on the command line",
        )


# ---------------------------------------------------------------- pinned points


@dataclass
class PointCheck:
    domain_violations: list[str] = field(default_factory=list)
    kink_hits: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No domain violated (kink hits are allowed at a pinned point: reported, not errors)."""
        return not self.domain_violations


def check_point(program: Program, point: Mapping[str, np.ndarray], margin: float = KINK_MARGIN) -> PointCheck:
    """Domain violations and kink hits at a given point, e.g. "relu is not differentiable at 0:
    2 of 4 elements of relu(x) in step 'out'"."""
    result = PointCheck()
    for issue in _Watcher(program, margin).issues(point):
        (result.domain_violations if issue.kind == "domain" else result.kink_hits).append(issue.describe())
    return result


def check_given_labels(program: Program, specs: Mapping[str, InputSpec], seed: int) -> None:
    """A given int input outside what it indexes (j = 5 for x[j] with 3 rows, a label past the last
    class) has no meaning at all, unlike a float outside a domain: refuse it where it is used."""
    if not any(s.dtype is not DType.FLOAT and s.concrete() for s in specs.values()):
        return
    point = make_point(specs, seed)
    for issue in _Watcher(program).issues(point):
        node = issue.call.args[issue.arg]
        if issue.kind != "domain" or node.type is None or node.type.dtype is DType.FLOAT:
            continue
        given = sorted(n for n in issue.deps if specs[n].concrete())
        if not given:
            continue
        shown = ", ".join(f"{n} = {_short(point[n])}" for n in given)
        raise SymcheckError(
            f"the given {shown} is out of range: {issue.describe()}",
            source=program.source,
            span=issue.call.span,
            hint=f"give {', '.join(given)} values in that range",
        )


def _short(values: np.ndarray) -> str:
    flat = np.asarray(values).ravel()
    text = ", ".join(str(v) for v in flat[:8]) + (", ..." if flat.size > 8 else "")
    return text if np.ndim(values) == 0 else f"[{text}]"
