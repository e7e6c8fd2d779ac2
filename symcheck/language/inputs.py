"""Input specifications, the command-line input syntax, and the domain-aware point sampler.

An input is given by exactly one source: a fill number, a value (a number or nested list), a
random range, or nothing (random, with a default range picked from the ops the input feeds).
The sampler draws points where every op is defined (log(x) needs x > 0) and keeps away from
kinks (relu at 0), where finite differences and the other engines may legitimately disagree.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from symcheck.errors import SymcheckError
from symcheck.ir import Call, DType, Node, Program, Ref, TensorType, walk
from symcheck.ops import OPS, OpKind
from symcheck.parser import check_identifier, to_source

DEFAULT_RANGE: tuple[float, float] = (-2.0, 2.0)
DEFAULT_INT_RANGE: tuple[int, int] = (0, 2)  # labels: 0 or 1
MAX_TRIES = 50  # whole redraws per point
FIX_ROUNDS = 20  # element redraws per whole draw
KINK_MARGIN = 1e-3  # relative to max(1, the largest magnitude of the kink's argument)

Distribution = Literal["uniform", "normal"]


# ---------------------------------------------------------------- specs


@dataclass(frozen=True)
class RandomSpec:
    """A random range. For "uniform", [low, high) (None: the default, domain-aware range); for
    "normal", `low` is the mean and `high` the standard deviation (None: 0 and 1)."""

    low: float | None = None
    high: float | None = None
    distribution: Distribution = "uniform"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "normal"):
            raise SymcheckError(
                f"unknown distribution {self.distribution!r}", hint="use 'uniform' or 'normal'"
            )
        for label, v in (("low", self.low), ("high", self.high)):
            if v is not None and not math.isfinite(v):
                raise SymcheckError(f"random {label} must be a finite number, got {v}")
        if self.seed is not None and self.seed < 0:
            raise SymcheckError(f"random seed must be a non-negative integer, got {self.seed}")
        if self.distribution == "uniform":
            if (self.low is None) != (self.high is None):
                raise SymcheckError(
                    "a uniform range needs both low and high", hint="e.g. random: {low: -1, high: 1}"
                )
            if self.low is not None and self.high is not None and not self.low < self.high:
                raise SymcheckError(f"random range is empty: low={self.low} is not below high={self.high}")
        elif self.high is not None and not self.high > 0:
            raise SymcheckError(f"a normal distribution needs std > 0, got {self.high}")

    @property
    def mean(self) -> float:
        return 0.0 if self.low is None else self.low

    @property
    def std(self) -> float:
        return 1.0 if self.high is None else self.high

    def describe(self) -> str:
        if self.distribution == "normal":
            return f"normal({_num(self.mean)}, {_num(self.std)})"
        if self.low is None or self.high is None:
            return "uniform(default range)"
        return f"uniform({_num(self.low)}, {_num(self.high)})"


@dataclass(frozen=True)
class InputSpec:
    """One input. After construction `shape` is always set (inferred from `value`, else scalar) and
    `value` is a nested tuple of numbers (or a number)."""

    shape: tuple[int, ...] | None = None
    dtype: DType = DType.FLOAT
    fill: float | None = None
    value: Any = None
    random: RandomSpec | None = None

    def __post_init__(self) -> None:
        try:
            dtype = DType(self.dtype)
        except ValueError:
            raise SymcheckError(f"unknown dtype {self.dtype!r}", hint="use float or int") from None
        if dtype is DType.BOOL:
            raise SymcheckError("inputs are float or int, not bool", hint="use int with values 0 and 1")
        object.__setattr__(self, "dtype", dtype)
        given = [k for k in ("fill", "value", "random") if getattr(self, k) is not None]
        if len(given) > 1:
            raise SymcheckError(
                f"an input takes one of fill, value or random, got {' and '.join(given)}",
                hint="fill repeats one number over the shape; value spells out every element; "
                "random draws them",
            )
        shape = None if self.shape is None else _check_shape(self.shape)
        if self.value is not None:
            array = value_array(self.value, dtype)
            if shape is not None and tuple(array.shape) != shape:
                hint = None
                if array.ndim == 0:
                    hint = f"to repeat one number over a shape, use fill: {_num(array.item())}"
                raise SymcheckError(
                    f"value has shape {_fmt_shape(array.shape)} but shape is {_fmt_shape(shape)}", hint=hint
                )
            shape = tuple(array.shape)
            object.__setattr__(self, "value", _as_tuples(array))
        if self.fill is not None:
            if isinstance(self.fill, bool) or not isinstance(self.fill, (int, float)):
                raise SymcheckError(f"fill must be a number, got {self.fill!r}")
            if not math.isfinite(self.fill):
                raise SymcheckError(f"fill must be a finite number, got {self.fill}")
            if dtype is DType.INT and float(self.fill) != int(self.fill):
                raise SymcheckError(f"an int input needs an integer fill, got {self.fill}")
            object.__setattr__(self, "fill", int(self.fill) if dtype is DType.INT else float(self.fill))
        if self.random is not None and dtype is DType.INT:
            r = self.random
            if r.distribution != "uniform":
                raise SymcheckError("an int input is drawn uniformly", hint="random: {low: 0, high: 2}")
            for v in (r.low, r.high):
                if v is not None and float(v) != int(v):
                    raise SymcheckError(f"an int input needs integer low and high, got {v}")
        object.__setattr__(self, "shape", shape if shape is not None else ())

    def type(self) -> TensorType:
        assert self.shape is not None
        return TensorType(self.shape, self.dtype)

    def concrete(self) -> bool:
        """Fill or value given: the input is pinned at the given point."""
        return self.fill is not None or self.value is not None

    def array(self) -> np.ndarray:
        """The pinned value (fill or value), as float64 or int64."""
        np_dtype = np.int64 if self.dtype is DType.INT else np.float64
        if self.value is not None:
            return np.array(self.value, dtype=np_dtype)
        if self.fill is not None:
            return np.full(self.shape, self.fill, dtype=np_dtype)
        raise ValueError("a random input has no pinned value")

    def describe(self) -> str:
        if self.value is not None:
            return "value"
        if self.fill is not None:
            return f"fill {_num(self.fill)}"
        return (self.random or RandomSpec()).describe()


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    out = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise SymcheckError(
                f"shape dimensions must be positive integers, got {list(shape)}", hint="e.g. shape: [2, 3]"
            )
        out.append(int(d))
    return tuple(out)


def value_array(value: Any, dtype: DType = DType.FLOAT) -> np.ndarray:
    """A number or rectangular nested list of numbers as an array; clear errors otherwise."""
    shape = _nested_shape(value, ())
    flat: list[float | int] = []
    _flatten(value, flat)
    for v in flat:
        if not math.isfinite(v):
            raise SymcheckError(f"values must be finite numbers, got {v}")
        if dtype is DType.INT and float(v) != int(v):
            raise SymcheckError(f"an int input needs integer values, got {v}")
    np_dtype = np.int64 if dtype is DType.INT else np.float64
    return np.array(flat, dtype=np_dtype).reshape(shape)


def _nested_shape(value: Any, where: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(value, (bool, str)) or value is None:
        raise SymcheckError(
            f"expected a number or a nested list of numbers, got {value!r}"
            + (f" at index {list(where)}" if where else ""),
        )
    if isinstance(value, (int, float, np.integer, np.floating)):
        return ()
    if isinstance(value, (list, tuple)):
        if not value:
            raise SymcheckError("empty list in a value", hint="every dimension needs at least one element")
        inner = [_nested_shape(v, (*where, i)) for i, v in enumerate(value)]
        if any(s != inner[0] for s in inner):
            raise SymcheckError(
                "value is ragged: rows have different lengths"
                + (f" at index {list(where)}" if where else ""),
                hint="a value is a number or a rectangular nested list, e.g. [[1, 2], [3, 4]]",
            )
        return (len(value), *inner[0])
    raise SymcheckError(f"expected a number or a nested list of numbers, got {value!r}")


def _flatten(value: Any, out: list[float | int]) -> None:
    if isinstance(value, (list, tuple)):
        for v in value:
            _flatten(v, out)
    else:
        out.append(int(value) if isinstance(value, (int, np.integer)) else float(value))


def _as_tuples(array: np.ndarray) -> Any:
    def conv(v: Any) -> Any:
        return tuple(conv(x) for x in v) if isinstance(v, list) else v

    return conv(array.tolist())


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# ---------------------------------------------------------------- command line

CLI_SYNTAX = (
    "NAME[:SHAPE][:int][=VALUE | ~uniform(LOW,HIGH) | ~normal(MEAN,STD)], e.g. x:2x2=1 (fill), "
    "x:3x4 (random), x=[[1,2],[3,4]] (value), s=0.5, y:4:int=[0,1,1,0], x:2x2~uniform(-1,1)"
)
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SHAPE_RE = re.compile(r"\d+(?:[x,]\d+)*", re.IGNORECASE)
_DIST_RE = re.compile(r"(uniform|normal)\(([^,()]*),([^,()]*)\)", re.IGNORECASE)


def parse_cli_input(text: str) -> tuple[str, InputSpec]:
    """`x:2x2=1`, `x:3x4`, `x=[[1,2],[3,4]]`, `s=0.5`, `y:4:int=[0,1,1,0]`, `x:2x2~uniform(-1,1)`."""

    def fail(message: str) -> SymcheckError:
        return SymcheckError(f"bad input {text!r}: {message}", hint=f"write {CLI_SYNTAX}")

    cut = min((i for i in (text.find("="), text.find("~")) if i >= 0), default=len(text))
    head, sep, rhs = text[:cut], text[cut : cut + 1], text[cut + 1 :].strip()
    name, *parts = [p.strip() for p in head.split(":")]
    if not name:
        raise fail("missing the input's name")
    if not _NAME_RE.fullmatch(name):
        raise fail(f"{name!r} is not a name (a letter, then letters, digits or underscores)")
    try:
        check_identifier(name)
    except SymcheckError as e:
        raise fail(e.message) from None
    shape: tuple[int, ...] | None = None
    dtype = DType.FLOAT
    for part in parts:
        low = part.lower()
        if low in ("int", "float"):
            dtype = DType(low)
        elif low in ("scalar", "()", "[]"):
            shape = ()
        elif _SHAPE_RE.fullmatch(part):
            shape = tuple(int(d) for d in re.split(r"[x,]", low))
        else:
            raise fail(f"{part!r} is neither a shape (like 2x3) nor a dtype (int or float)")
    try:
        if sep == "~":
            m = _DIST_RE.fullmatch(rhs.replace(" ", ""))
            if m is None:
                raise fail(f"{rhs!r} is not a random range; write ~uniform(LOW,HIGH) or ~normal(MEAN,STD)")
            a, b = (_cli_number(m.group(i), fail) for i in (2, 3))
            dist: Distribution = "normal" if m.group(1).lower() == "normal" else "uniform"
            return name, InputSpec(shape=shape, dtype=dtype, random=RandomSpec(a, b, dist))
        if sep == "=":
            if not rhs:
                raise fail("nothing after '='")
            if rhs.startswith("["):
                try:
                    data = json.loads(rhs)
                except json.JSONDecodeError as e:
                    raise fail(f"the value is not a valid list ({e.msg} at character {e.pos + 1})") from None
                return name, InputSpec(shape=shape, dtype=dtype, value=data)
            number = _cli_number(rhs, fail)
            if shape is None or shape == ():
                return name, InputSpec(shape=shape, dtype=dtype, value=number)
            return name, InputSpec(shape=shape, dtype=dtype, fill=number)
        return name, InputSpec(shape=shape, dtype=dtype)
    except SymcheckError as e:
        if e.message.startswith("bad input"):
            raise
        raise SymcheckError(
            f"bad input {text!r}: {e.message}", hint=e.hint or f"write {CLI_SYNTAX}"
        ) from None


def _cli_number(text: str, fail: Callable[[str], SymcheckError]) -> float:
    text = text.strip()
    try:
        number = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    except ValueError:
        raise fail(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise fail(f"{text!r} is not a finite number")
    return number


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
    return _Sampler(program, specs, rng_seed, notes).point(0, drawn)


def sample_points(
    program: Program,
    specs: Mapping[str, InputSpec],
    count: int,
    seed: int,
    *,
    notes: list[str] | None = None,
) -> list[dict[str, np.ndarray]]:
    """`count` random points besides the given one. Every float input is drawn (from its own random
    spec, else its default range); int inputs keep a given value or are drawn. Points are redrawn
    until every op's domain holds and no kink's argument is within a margin of the kink; kinks
    that cannot be avoided are accepted and explained in `notes`. Same seed, same points."""
    drawn = {n for n, s in specs.items() if s.dtype is DType.FLOAT or not s.concrete()}
    sampler = _Sampler(program, specs, seed, notes)
    return [sampler.point(i + 1, drawn) for i in range(count)]


@dataclass
class _Issue:
    kind: Literal["domain", "kink"]
    text: str
    call: Call
    step: str
    mask: np.ndarray  # offending elements of the argument
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

    def __init__(self, program: Program) -> None:
        self.program = program
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

    def issues(self, point: Mapping[str, np.ndarray]) -> list[_Issue]:
        from symcheck.numeric import forward

        found: list[_Issue] = []

        def on_call(call: Call, args: list[np.ndarray], result: np.ndarray) -> None:
            op = OPS[call.op]
            for dom in op.domains(call):
                with np.errstate(all="ignore"):
                    ok = np.asarray(dom.predicate(args[dom.arg]), dtype=bool)
                if not ok.all():
                    found.append(self._issue("domain", dom.text, call, dom.arg, ~ok))
            for kink in op.kinks_of(call):
                a = np.asarray(args[kink.arg], dtype=np.float64)
                finite = np.abs(a[np.isfinite(a)])
                margin = KINK_MARGIN * max(1.0, float(finite.max()) if finite.size else 1.0)
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
        return _Issue(kind, text, call, self.step_of.get(id(call), "?"), mask, fixers, self.deps[id(node)])


class _Sampler:
    def __init__(
        self, program: Program, specs: Mapping[str, InputSpec], seed: int, notes: list[str] | None
    ) -> None:
        missing = [n for n in program.inputs if n not in specs]
        if missing:
            raise SymcheckError(f"no input spec for {', '.join(missing)}")
        self.program = program
        self.specs = {n: specs[n] for n in program.inputs}
        self.seed = seed
        self.notes = notes
        self.ranges = default_ranges(program)
        self.watcher = _Watcher(program)

    def _draw(self, name: str, index: int, attempt: int, fix: int) -> np.ndarray:
        rng = _rng(self.seed, index, attempt, fix, name, self.specs[name])
        return _draw(self.specs[name], rng, self.ranges.get(name, DEFAULT_RANGE))

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
                issues = [i for i in self.watcher.issues(point) if i.deps & drawn]
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
                    point[name] = np.where(np.broadcast_to(issue.mask, fresh.shape), fresh, point[name])
            else:
                issues = [i for i in self.watcher.issues(point) if i.deps & drawn]
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


def check_point(program: Program, point: Mapping[str, np.ndarray]) -> PointCheck:
    """Domain violations and kink hits at a given point, e.g. "relu is not differentiable at 0:
    2 of 4 elements of relu(x) in step 'out'"."""
    result = PointCheck()
    for issue in _Watcher(program).issues(point):
        (result.domain_violations if issue.kind == "domain" else result.kink_hits).append(issue.describe())
    return result
