"""Declarative test suites in YAML: cases of expressions, inputs and expected values/gradients.

Suites are read with ruamel's round-trip loader, so every key, value and list item keeps its
line and column: errors point at the offending line of the file, and an expression's parse error
lands on the right file line:col. Validation is pydantic (unknown keys are errors, with a
did-you-mean); its messages are translated into plain words before they reach the user.

    suite: tutorial                # optional; default the file's stem
    defaults: {samples: 2}         # optional; any case key except name/expr/inputs/expect
    cases:
      - name: seed-one-expression
        expr: mean(3*(x+2)^2)
        inputs:
          x: {shape: [2, 2], fill: 1}
        expect:
          value: 27
          grad:
            x: 3/2*(x+2)

The top level may also be a bare list of cases. A case may also carry a `train:` block (a
training run checked across engines: `TrainSpec` here, `symcheck/train.py` runs it); its data,
from a JSON/YAML file beside the suite or inline, is loaded and checked here, with errors at
the data's own file:line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError, create_model
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from symcheck.engine import BUILTIN_ENGINES, DEFAULT_ENGINES, available_engines
from symcheck.errors import Source, Span, SymcheckError, did_you_mean
from symcheck.inputs import InputSpec, RandomSpec, value_array
from symcheck.ir import DType, Program, Ref, walk
from symcheck.ops import FUNCTIONS
from symcheck.parser import ParsedProgram, bind, check_identifier, parse

DEFAULT_SAMPLES = 2
DEFAULT_SEED = 0
DEFAULT_EXPANSION_BUDGET = 256
# Training: the allowed difference at step k is the comparison tolerance times (1 + growth * k).
DEFAULT_TOLERANCE_GROWTH = 0.01
TRAIN_ENGINES = ("symbolic", "autograd", "torch")
DATA_SUFFIXES = (".json", ".yaml", ".yml")
TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16")
SUITE_SUFFIXES = (".yaml", ".yml")

YamlPath = tuple[str | int, ...]


# ---------------------------------------------------------------- what the runner gets


@dataclass(frozen=True)
class BlockSource(Source):
    """A block scalar (`|`): every line of the text is indented in the file, not only the first."""

    indent: int = 0

    def file_position(self, span: Span) -> tuple[int, int]:
        return span.line + self.line_offset, span.col + self.indent


@dataclass(frozen=True)
class Tolerance:
    """Overrides only: None leaves the runner's default (which depends on engine and dtype)."""

    rtol: float | None = None
    atol: float | None = None
    engines: Mapping[str, Tolerance] = field(default_factory=dict)

    def as_overrides(self) -> dict[str, Any] | None:
        """The shape symcheck.compare.resolve_tolerance takes: global rtol/atol, then per engine."""
        overrides: dict[str, Any] = {}
        if self.rtol is not None:
            overrides["rtol"] = self.rtol
        if self.atol is not None:
            overrides["atol"] = self.atol
        for engine, t in self.engines.items():
            overrides[engine] = {"rtol": t.rtol, "atol": t.atol}
        return overrides or None

    def for_engine(self, engine: str) -> tuple[float | None, float | None]:
        """(rtol, atol) for one engine: its own override, else the global one, else None."""
        own = self.engines.get(engine, Tolerance())
        return (
            own.rtol if own.rtol is not None else self.rtol,
            own.atol if own.atol is not None else self.atol,
        )


@dataclass(frozen=True)
class GradExpect:
    """An expected gradient: a formula in the language (over the inputs) or numbers."""

    formula: str | None
    formula_source: Source | None
    numbers: np.ndarray | None
    line: int


@dataclass(frozen=True)
class Mistake:
    """A classic wrong claim shipped with a teaching case: symcheck must refute it (and, with
    `because`, diagnose it that way)."""

    wrt: str
    formula: str
    source: Source
    because: str | None
    line: int


@dataclass(frozen=True)
class Expect:
    value: np.ndarray | None = None
    value_line: int | None = None
    grads: dict[str, GradExpect] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerSpec:
    """torch.optim.SGD's hyperparameters, with its definitions (see symcheck/autograd/optim.py)."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    def describe(self) -> str:
        parts = [f"lr={self.lr:g}", f"momentum={self.momentum:g}", f"weight_decay={self.weight_decay:g}"]
        if self.dampening:
            parts.append(f"dampening={self.dampening:g}")
        if self.nesterov:
            parts.append("nesterov=True")
        return f"SGD({', '.join(parts)})"


@dataclass(frozen=True)
class AfterCheck:
    """A check on the trained parameters: `expr` evaluated on every example of a data set."""

    expr: str
    source: Source
    data: str | None  # a set name; None: the training set (or no data at all)
    below: float | None
    above: float | None
    line: int

    def claim(self) -> str:
        bounds = [
            f"> {self.above:g}" if self.above is not None else "",
            f"< {self.below:g}" if self.below is not None else "",
        ]
        return " and ".join(b for b in bounds if b)


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class TrainSpec:
    """A case's `train:` block, validated; data sets are loaded (arrays keyed by input name)."""

    parameters: list[str]
    optimizer: OptimizerSpec
    epochs: int = 1
    zero_grad: bool = True
    compare_every: int = 1
    engines: list[str] | None = None  # None: the case's engines that can train
    # Named sets of examples: each array is (N, *input shape) (one example per step) or, for an
    # input of shape (B, ...), (N*B, ...) (batches of B rows per step). Empty without data.
    sets: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    train_set: str | None = None  # None: no data: one full-batch step per epoch on the case's inputs
    data_origin: str | None = None  # the data file as written in the suite, or "inline"
    meta: dict[str, Any] = field(default_factory=dict)  # the data file's `meta` (labels, vocabulary)
    after: list[AfterCheck] = field(default_factory=list)
    loss_decreases: bool = False
    tolerance_growth: float = DEFAULT_TOLERANCE_GROWTH
    line: int = 1


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    line: int
    expr: str
    expr_source: Source
    inputs: dict[str, InputSpec]
    wrt: list[str] | None
    expect: Expect
    engines: list[str]
    tolerance: Tolerance
    samples: int = DEFAULT_SAMPLES
    seed: int = DEFAULT_SEED
    expansion_budget: int = DEFAULT_EXPANSION_BUDGET
    dtype: str = "float64"
    device: str = "cpu"
    description: str | None = None
    input_lines: dict[str, int] = field(default_factory=dict)
    wrt_line: int | None = None
    order: int = 1  # 2: also second derivatives
    train: TrainSpec | None = None  # a training run (symcheck/train.py)
    # The user's own implementation of expr, "package.module:function" (symcheck/impl.py).
    impl: str | None = None
    impl_grad: str | None = None  # a numpy implementation's gradient function
    impl_line: int | None = None
    impl_source: Source | None = None
    impl_grad_source: Source | None = None
    allow_import: bool = False  # set by --allow-import only: a suite cannot opt itself in

    mistakes: list[Mistake] = field(default_factory=list)  # teaching: wrong claims to refute

    def error(self, message: str, line: int | None = None, hint: str | None = None) -> SymcheckError:
        return SymcheckError(message, filename=self.file, line=line or self.line, hint=hint)


@dataclass(frozen=True)
class Suite:
    path: str
    name: str
    cases: list[Case]


# ---------------------------------------------------------------- the schema


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, (str, int)) and not isinstance(v, bool) else v


def _textify(v: Any) -> Any:
    # `expr: 3` is a valid (constant) expression that YAML reads as a number.
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


StrictFloat = Annotated[float, Strict()]
NonNegFloat = Annotated[float, Strict(), Field(ge=0)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
StrictStr = Annotated[str, Strict()]
_CONFIG = ConfigDict(extra="forbid")


class RandomModel(BaseModel):
    model_config = _CONFIG
    distribution: Literal["uniform", "normal"] = "uniform"
    low: StrictFloat | None = None
    high: StrictFloat | None = None
    mean: StrictFloat | None = None
    std: StrictFloat | None = None
    seed: NonNegInt | None = None


class InputModel(BaseModel):
    model_config = _CONFIG
    shape: Annotated[list[Annotated[int, Strict()]], BeforeValidator(_listify)] | None = None
    dtype: Literal["float", "int"] = "float"
    fill: StrictFloat | None = None
    value: Any = None
    random: RandomModel | None = None


class ExpectModel(BaseModel):
    model_config = _CONFIG
    value: Any = None
    grad: dict[StrictStr, Any] = {}


class MistakeModel(BaseModel):
    model_config = _CONFIG
    grad: dict[StrictStr, StrictStr]
    because: StrictStr | None = None


class _TolModel(BaseModel):
    model_config = _CONFIG
    rtol: NonNegFloat | None = None
    atol: NonNegFloat | None = None


ToleranceModel = create_model(  # type: ignore[call-overload]
    "ToleranceModel",
    __base__=_TolModel,
    **{name: (_TolModel | None, None) for name in (*BUILTIN_ENGINES, "impl")},
)


class OptimizerModel(BaseModel):
    model_config = _CONFIG
    name: Literal["sgd"] = "sgd"
    lr: Annotated[float, Strict(), Field(gt=0)]
    momentum: NonNegFloat = 0.0
    weight_decay: NonNegFloat = 0.0
    dampening: NonNegFloat = 0.0
    nesterov: Annotated[bool, Strict()] = False


class AfterModel(BaseModel):
    model_config = _CONFIG
    expr: Annotated[StrictStr, BeforeValidator(_textify)]
    data: StrictStr | None = None
    below: StrictFloat | None = None
    above: StrictFloat | None = None


class TrainModel(BaseModel):
    model_config = _CONFIG
    parameters: Annotated[list[StrictStr], BeforeValidator(_listify)]
    data: Any = None  # a file path or inline sets: checked by the loader, which knows the inputs
    set: StrictStr = "train"
    optimizer: OptimizerModel
    epochs: Annotated[int, Strict(), Field(ge=1)] = 1
    zero_grad: Annotated[bool, Strict()] = True
    compare_every: Annotated[int, Strict(), Field(ge=1)] = 1
    engines: Annotated[list[StrictStr], BeforeValidator(_listify)] | None = None
    tolerance_growth: NonNegFloat = DEFAULT_TOLERANCE_GROWTH
    loss_decreases: Annotated[bool, Strict()] = False
    after: list[AfterModel] = []


class CaseModel(BaseModel):
    model_config = _CONFIG
    name: StrictStr
    description: StrictStr | None = None
    expr: Annotated[StrictStr, BeforeValidator(_textify)]
    inputs: dict[StrictStr, InputModel] = {}
    wrt: Annotated[list[StrictStr], BeforeValidator(_listify)] | None = None
    expect: ExpectModel | None = None
    mistakes: list[MistakeModel] = []
    engines: Annotated[list[StrictStr], BeforeValidator(_listify)] | None = None
    tolerance: ToleranceModel | None = None  # type: ignore[valid-type]
    samples: NonNegInt = DEFAULT_SAMPLES
    seed: NonNegInt = DEFAULT_SEED
    expansion_budget: NonNegInt = DEFAULT_EXPANSION_BUDGET
    dtype: Literal["float64", "float32", "float16", "bfloat16"] = "float64"
    device: Annotated[StrictStr, Field(pattern=r"^(cpu|cuda(:\d+)?|mps)$")] = "cpu"
    order: Annotated[int, Strict(), Field(ge=1, le=2)] = 1
    train: TrainModel | None = None
    impl: StrictStr | None = None
    impl_grad: StrictStr | None = None


TOP_KEYS = ("suite", "defaults", "cases")
NO_DEFAULT_KEYS = ("name", "expr", "inputs", "expect", "mistakes", "impl", "impl_grad")
DEFAULT_KEYS = tuple(k for k in CaseModel.model_fields if k not in NO_DEFAULT_KEYS)


# ---------------------------------------------------------------- YAML with positions


@dataclass(frozen=True)
class _Pos:
    key_line: int | None  # 1-based; None for list items and the document
    line: int  # 1-based line of the value
    col: int  # 0-based column of the value


class _Doc:
    """Plain Python data plus the position and scalar style of every node, by path."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.lines = text.splitlines()
        self.pos: dict[YamlPath, _Pos] = {}
        self.style: dict[YamlPath, str] = {}

    def plain(self, node: Any, path: YamlPath) -> Any:
        if isinstance(node, CommentedMap):
            out = {}
            for key in node:
                k_line, _ = node.lc.key(key)
                v_line, v_col = node.lc.value(key)
                child = (*path, _plain_key(key))
                self.pos[child] = _Pos(k_line + 1, v_line + 1, v_col)
                out[_plain_key(key)] = self.plain(node[key], child)
            return out
        if isinstance(node, CommentedSeq):
            out_list = []
            for i, item in enumerate(node):
                line, col = node.lc.item(i)
                self.pos[(*path, i)] = _Pos(None, line + 1, col)
                out_list.append(self.plain(item, (*path, i)))
            return out_list
        if isinstance(node, str):
            self.style[path] = _style(node)
            return str(node)
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node

    def line(self, path: YamlPath, *, key: bool = True) -> int | None:
        """The line of the nearest known node on `path` (its key's line, where it has a key)."""
        for n in range(len(path), -1, -1):
            p = self.pos.get(path[:n])
            if p is not None:
                return p.key_line if key and p.key_line is not None else p.line
        return None

    def source(self, text: str, path: YamlPath) -> Source:
        """Where a string value sits, so parse errors map to file line:col."""
        p = self.pos.get(path)
        if p is None:
            return Source(text, self.filename)
        style = self.style.get(path, "")
        if style in ("|", ">"):
            # The text begins on the line after the indicator; its indentation is stripped.
            indent = 0
            for raw in self.lines[p.line :]:
                if raw.strip():
                    indent = len(raw) - len(raw.lstrip(" "))
                    break
            return BlockSource(text, self.filename, line_offset=p.line, col_offset=indent, indent=indent)
        quote = 1 if style in ('"', "'") else 0
        return Source(text, self.filename, line_offset=p.line - 1, col_offset=p.col + quote)


def _plain_key(key: Any) -> Any:
    return str(key) if isinstance(key, str) else key


def _style(s: str) -> str:
    if isinstance(s, LiteralScalarString):
        return "|"
    if isinstance(s, FoldedScalarString):
        return ">"
    if isinstance(s, DoubleQuotedScalarString):
        return '"'
    if isinstance(s, SingleQuotedScalarString):
        return "'"
    return ""


def _read_yaml(path: Path, what: str = "suite") -> tuple[Any, _Doc]:
    filename = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SymcheckError(f"cannot read {what}: {e.strerror or e}", filename=filename) from None
    except UnicodeDecodeError:
        raise SymcheckError(f"{what} is not UTF-8 text", filename=filename) from None
    if path.suffix == ".json":
        # JSON's own parser says what is wrong in JSON's terms; ruamel (below) gives the positions.
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise SymcheckError(
                f"malformed JSON: {e.msg} (column {e.colno})", filename=filename, line=e.lineno
            ) from None
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        data = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(p for p in (e.context, e.problem) if p) or "cannot parse"
        line = mark.line + 1 if mark is not None else None
        where = f" (column {mark.column + 1})" if mark is not None else ""
        hint = (
            "each key appears once in a mapping"
            if "duplicate key" in problem
            else "check the indentation and that every `key: value` is on its own line; "
            "quote values that contain ': ' or start with a special character"
        )
        raise SymcheckError(
            f"malformed YAML: {problem}{where}", filename=filename, line=line, hint=hint
        ) from None
    except YAMLError as e:
        raise SymcheckError(f"malformed YAML: {e}", filename=filename) from None
    doc = _Doc(filename, text)
    return doc.plain(data, ()), doc


# ---------------------------------------------------------------- loading


def load_paths(paths: Sequence[str | Path]) -> list[Suite]:
    """Suites from files, or directories searched recursively for *.yaml / *.yml (sorted)."""
    suites: list[Suite] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in SUITE_SUFFIXES and p.is_file())
            if not files:
                raise SymcheckError(f"no .yaml or .yml suites under {path}", filename=str(path))
            suites.extend(load_suite(p) for p in files)
        elif path.exists():
            suites.append(load_suite(path))
        else:
            raise SymcheckError(f"no such file or directory: {path}")
    return suites


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    data, doc = _read_yaml(path)
    return _Loader(doc, path).suite(data)


class _Loader:
    def __init__(self, doc: _Doc, path: Path) -> None:
        self.doc = doc
        self.path = path
        self.filename = str(path)

    def err(
        self, message: str, path: YamlPath = (), hint: str | None = None, key: bool = True
    ) -> SymcheckError:
        return SymcheckError(message, filename=self.filename, line=self.doc.line(path, key=key), hint=hint)

    def suite(self, data: Any) -> Suite:
        if data is None:
            raise self.err(
                "empty suite file",
                hint="a suite is `cases:` followed by a list of cases with name, expr, inputs",
            )
        name = self.path.stem
        defaults: dict[str, Any] = {}
        if isinstance(data, list):
            cases, cases_path = data, ()
        elif isinstance(data, dict):
            for key in data:
                if key not in TOP_KEYS:
                    raise self.err(f"unknown key '{key}'", (key,), hint=did_you_mean(str(key), TOP_KEYS))
            if "cases" not in data:
                raise self.err("missing 'cases'", hint="list the cases under `cases:`")
            cases, cases_path = data["cases"], ("cases",)
            if "suite" in data:
                if not isinstance(data["suite"], str) or not data["suite"].strip():
                    raise self.err("'suite' must be a name (text)", ("suite",))
                name = data["suite"]
            if data.get("defaults") is not None:
                defaults = self.defaults(data["defaults"])
        else:
            raise self.err("a suite is a mapping with `cases:` (or a bare list of cases)", key=False)
        if not isinstance(cases, list):
            raise self.err(
                "'cases' must be a list of cases (each item starts with `- name: ...`)", cases_path
            )
        if not cases:
            raise self.err("the suite has no cases", cases_path)
        out: list[Case] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(cases):
            case = self.case(raw, (*cases_path, i), defaults)
            if case.name in seen:
                raise self.err(
                    f"duplicate case name '{case.name}' (first at line {seen[case.name]})",
                    (*cases_path, i, "name"),
                    hint="case names are unique within a file",
                )
            seen[case.name] = case.line
            out.append(case)
        return Suite(self.filename, name, out)

    def defaults(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.err("'defaults' must be a mapping of case keys, e.g. {samples: 2}", ("defaults",))
        for key in raw:
            if key in NO_DEFAULT_KEYS:
                raise self.err(
                    f"'{key}' cannot have a default: it belongs to each case",
                    ("defaults", key),
                    hint=f"defaults may set {', '.join(DEFAULT_KEYS)}",
                )
            if key not in DEFAULT_KEYS:
                raise self.err(
                    f"unknown key '{key}' in defaults",
                    ("defaults", key),
                    hint=did_you_mean(str(key), DEFAULT_KEYS)
                    or f"defaults may set {', '.join(DEFAULT_KEYS)}",
                )
        return raw

    def case(self, raw: Any, path: YamlPath, defaults: dict[str, Any]) -> Case:
        if not isinstance(raw, dict):
            raise self.err(
                "each case is a mapping with name, expr and inputs",
                path,
                hint="start a case with `- name: ...`",
            )
        merged = _merge(defaults, raw)
        inputs = merged.get("inputs")
        if isinstance(inputs, dict):
            # A bare number or nested list is the value.
            merged["inputs"] = {k: v if isinstance(v, dict) else {"value": v} for k, v in inputs.items()}
        try:
            model = CaseModel.model_validate(merged)
        except ValidationError as e:
            raise self.translate(e, path, raw) from None
        return self.build(model, path)

    def translate(self, error: ValidationError, case_path: YamlPath, raw: dict[str, Any]) -> SymcheckError:
        errors = error.errors()
        # An unknown key explains a missing one (`exprr` for `expr`): report it first, then by line.
        rank = {"extra_forbidden": 0, "missing": 2}
        first = min(
            errors,
            key=lambda d: (rank.get(d["type"], 1), self.doc.line(self._path(case_path, d["loc"], raw)) or 0),
        )
        loc = tuple(first["loc"])
        path = self._path(case_path, loc, raw)
        message, hint = _plain_words(first, loc)
        if first["type"] == "missing":
            path = path[:-1]
            return self.err(message, path, hint=hint, key=False)
        if first["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), _fields_at(loc)) or f"known keys: {', '.join(_fields_at(loc))}"
        return self.err(message, path, hint=hint)

    def _path(self, case_path: YamlPath, loc: tuple[Any, ...], raw: dict[str, Any]) -> YamlPath:
        # A key the case does not set came from defaults.
        if loc and loc[0] not in raw and ("defaults", loc[0]) in self.doc.pos:
            return ("defaults", *loc)
        return (*case_path, *loc)

    def build(self, m: CaseModel, path: YamlPath) -> Case:
        line = self.doc.line(path, key=False) or 1
        inputs: dict[str, InputSpec] = {}
        input_lines: dict[str, int] = {}
        for name, im in m.inputs.items():
            ipath = (*path, "inputs", name)
            input_lines[name] = self.doc.line(ipath) or line
            inputs[name] = self.input_spec(name, im, ipath)
        expect = self.expect(m.expect, (*path, "expect"), inputs)
        engines = list(DEFAULT_ENGINES)
        if m.engines is not None:
            if not m.engines:
                raise self.err(
                    "'engines' is empty", (*path, "engines"), hint=f"pick from {', '.join(BUILTIN_ENGINES)}"
                )
            known = available_engines()  # built-ins and plug-ins (docs/engines.md); imports none
            for i, engine in enumerate(m.engines):
                if engine not in known:
                    raise self.err(
                        f"unknown engine '{engine}'",
                        (*path, "engines", i),
                        hint=did_you_mean(engine, known) or f"engines are {', '.join(known)}",
                        key=False,
                    )
            engines = list(dict.fromkeys(m.engines))
        return Case(
            name=m.name,
            file=self.filename,
            line=line,
            expr=m.expr,
            expr_source=self.doc.source(m.expr, (*path, "expr")),
            inputs=inputs,
            wrt=None if m.wrt is None else list(dict.fromkeys(m.wrt)),
            expect=expect,
            mistakes=self.mistakes(m.mistakes, (*path, "mistakes")),
            engines=engines,
            tolerance=_tolerance(m.tolerance),
            samples=m.samples,
            seed=m.seed,
            expansion_budget=m.expansion_budget,
            dtype=m.dtype,
            device=m.device,
            description=m.description,
            input_lines=input_lines,
            wrt_line=self.doc.line((*path, "wrt")) if m.wrt is not None else None,
            order=m.order,
            train=None if m.train is None else self.train(m.train, (*path, "train"), inputs),
            **self.impl(m, path),
        )

    def impl(self, m: CaseModel, path: YamlPath) -> dict[str, Any]:
        """`impl:`/`impl_grad:` as written, with where they are (loaded only on opt-in: symcheck/impl.py)."""
        if m.impl_grad is not None and m.impl is None:
            raise self.err(
                "impl_grad needs impl: the function that computes the value",
                (*path, "impl_grad"),
                hint='impl: "mypkg.mod:f" (numpy arrays in, the value out) beside impl_grad',
            )
        if m.impl is None:
            return {}
        return {
            "impl": m.impl,
            "impl_grad": m.impl_grad,
            "impl_line": self.doc.line((*path, "impl")),
            "impl_source": self.doc.source(m.impl, (*path, "impl")),
            "impl_grad_source": None
            if m.impl_grad is None
            else self.doc.source(m.impl_grad, (*path, "impl_grad")),
        }

    def input_spec(self, name: str, m: InputModel, path: YamlPath) -> InputSpec:
        try:
            check_identifier(name)
            random = None
            if m.random is not None:
                random = _random_spec(m.random)
            shape = tuple(m.shape) if m.shape is not None else None
            return InputSpec(shape=shape, dtype=DType(m.dtype), fill=m.fill, value=m.value, random=random)
        except SymcheckError as e:
            raise self.err(f"input '{name}': {e.message}", path, hint=e.hint) from None

    def expect(self, m: ExpectModel | None, path: YamlPath, inputs: dict[str, InputSpec]) -> Expect:
        if m is None:
            return Expect()
        value = None
        if m.value is not None:
            value = self.numbers(m.value, (*path, "value"), "expect.value")
        grads: dict[str, GradExpect] = {}
        for name, raw in m.grad.items():
            gpath = (*path, "grad", name)
            line = self.doc.line(gpath) or 1
            if isinstance(raw, str):
                grads[name] = GradExpect(raw, self.doc.source(raw, gpath), None, line)
            else:
                grads[name] = GradExpect(None, None, self.numbers(raw, gpath, f"expect.grad.{name}"), line)
        return Expect(value, self.doc.line((*path, "value")) if value is not None else None, grads)

    def mistakes(self, models: list[MistakeModel], path: YamlPath) -> list[Mistake]:
        out = []
        for i, m in enumerate(models):
            for name, formula in m.grad.items():
                gpath = (*path, i, "grad", name)
                out.append(
                    Mistake(
                        name, formula, self.doc.source(formula, gpath), m.because, self.doc.line(gpath) or 1
                    )
                )
        return out

    def numbers(self, raw: Any, path: YamlPath, what: str) -> np.ndarray:
        try:
            return value_array(raw)
        except SymcheckError as e:
            raise self.err(
                f"{what}: {e.message}",
                path,
                hint=e.hint or "give a number, a nested list of numbers, or (for grad) a formula",
            ) from None

    # ------------------------------------------------------------ train:

    def train(self, m: TrainModel, path: YamlPath, inputs: dict[str, InputSpec]) -> TrainSpec:
        parameters = list(dict.fromkeys(m.parameters))
        if not parameters:
            raise self.err(
                "'train.parameters' is empty", (*path, "parameters"), hint="name the inputs to train"
            )
        for i, name in enumerate(m.parameters):
            if name not in inputs:
                raise self.err(
                    f"parameter '{name}' is not an input",
                    (*path, "parameters", i),
                    hint=did_you_mean(name, inputs) or f"inputs are {', '.join(inputs) or 'none'}",
                    key=False,
                )
            if inputs[name].dtype is not DType.FLOAT:
                raise self.err(
                    f"parameter '{name}' is an int input; only float inputs are trained",
                    (*path, "parameters", i),
                    key=False,
                )
        opt = m.optimizer
        if opt.nesterov and (opt.momentum <= 0 or opt.dampening != 0):
            raise self.err(
                "nesterov momentum needs momentum > 0 and dampening 0 (as torch.optim.SGD requires)",
                (*path, "optimizer", "nesterov"),
            )
        optimizer = OptimizerSpec(
            opt.name, opt.lr, opt.momentum, opt.weight_decay, opt.dampening, opt.nesterov
        )
        engines = None
        if m.engines is not None:
            if not m.engines:
                raise self.err(
                    "'train.engines' is empty",
                    (*path, "engines"),
                    hint=f"pick from {', '.join(TRAIN_ENGINES)}",
                )
            for i, engine in enumerate(m.engines):
                if engine not in TRAIN_ENGINES:
                    hint = (
                        "finite differences give no optimizer step to compare; "
                        f"training runs in {', '.join(TRAIN_ENGINES)}"
                        if engine == "numeric"
                        else did_you_mean(engine, TRAIN_ENGINES) or f"pick from {', '.join(TRAIN_ENGINES)}"
                    )
                    raise self.err(
                        f"engine '{engine}' cannot train", (*path, "engines", i), hint=hint, key=False
                    )
            engines = list(dict.fromkeys(m.engines))
        sets: dict[str, dict[str, np.ndarray]] = {}
        meta: dict[str, Any] = {}
        origin = None
        train_set = None
        if m.data is not None:
            dpath = (*path, "data")
            if isinstance(m.data, str):
                origin = m.data
                file = (
                    (self.path.parent / m.data).resolve() if not Path(m.data).is_absolute() else Path(m.data)
                )
                if file.suffix not in DATA_SUFFIXES:
                    raise self.err(
                        f"data file '{m.data}' is neither JSON nor YAML",
                        dpath,
                        hint='a .json (or .yaml) file of named arrays, e.g. {"x": [[...], ...], "y": [...]}',
                    )
                if not file.is_file():
                    raise self.err(
                        f"data file '{m.data}' not found (looked for {file})",
                        dpath,
                        hint="the path is relative to the suite file's folder",
                    )
                raw, doc = _read_yaml(file, "data file")
                reader = _DataReader(doc, (), str(file))
            elif isinstance(m.data, dict):
                origin, raw, reader = "inline", m.data, _DataReader(self.doc, dpath, self.filename)
            else:
                raise self.err(
                    f"'train.data' must be a data file's path or a mapping of arrays, got {_show(m.data)}",
                    dpath,
                    hint="data: data/examples.json, or data: {x: [[...], ...], y: [...]}",
                )
            sets, meta = reader.sets(raw, inputs, parameters)
            if m.set not in sets:
                raise self.err(
                    f"no data set '{m.set}' in {origin} (it has {', '.join(sets)})",
                    (*path, "set") if "set" in m.model_fields_set else dpath,
                    hint=did_you_mean(m.set, sets) or f"set: {next(iter(sets))}",
                )
            train_set = m.set
        if m.loss_decreases and m.epochs < 2:
            raise self.err(
                "loss_decreases compares the first epoch with the last: it needs epochs >= 2",
                (*path, "loss_decreases"),
            )
        after: list[AfterCheck] = []
        for i, a in enumerate(m.after):
            apath = (*path, "after", i)
            if a.below is None and a.above is None:
                raise self.err(
                    "an after check needs a bound: below, above or both",
                    apath,
                    hint="e.g. {expr: ..., data: test, below: 0.6931}",
                    key=False,
                )
            if a.data is not None and a.data not in sets:
                raise self.err(
                    f"after check names data set '{a.data}', which "
                    + (f"is not in {origin} (it has {', '.join(sets)})" if sets else "needs train.data"),
                    (*apath, "data"),
                    hint=did_you_mean(a.data, sets) if sets else None,
                )
            after.append(
                AfterCheck(
                    a.expr,
                    self.doc.source(a.expr, (*apath, "expr")),
                    a.data,
                    a.below,
                    a.above,
                    self.doc.line((*apath, "expr")) or self.doc.line(apath, key=False) or 1,
                )
            )
        return TrainSpec(
            parameters=parameters,
            optimizer=optimizer,
            epochs=m.epochs,
            zero_grad=m.zero_grad,
            compare_every=m.compare_every,
            engines=engines,
            sets=sets,
            train_set=train_set,
            data_origin=origin,
            meta=meta,
            after=after,
            loss_decreases=m.loss_decreases,
            tolerance_growth=m.tolerance_growth,
            line=self.doc.line(path) or 1,
        )


class _DataReader:
    """Checks data sets against the case's inputs, with errors at the data's own file:line.

    The data is a mapping: `meta` (anything: labels, vocabulary, notes) plus either named sets
    (`train: {x: [...], y: [...]}, test: {...}`) or the arrays of one set, which is called `train`.
    """

    def __init__(self, doc: _Doc, prefix: YamlPath, filename: str) -> None:
        self.doc = doc
        self.prefix = prefix
        self.filename = filename

    def err(self, message: str, path: YamlPath = (), hint: str | None = None) -> SymcheckError:
        line = self.doc.line((*self.prefix, *path))
        return SymcheckError(message, filename=self.filename, line=line, hint=hint)

    def sets(
        self, raw: Any, inputs: Mapping[str, InputSpec], parameters: Sequence[str]
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
        example = '{"train": {"x": [[...], ...], "y": [...]}, "test": {...}}'
        if not isinstance(raw, dict):
            raise self.err("data must be a mapping of named arrays (or of named sets of them)", hint=example)
        meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
        keys = [k for k in raw if k != "meta"]
        named = [k for k in keys if isinstance(raw[k], dict)]
        arrays = [k for k in keys if not isinstance(raw[k], dict)]
        if not keys:
            raise self.err("the data has no arrays", hint=example)
        if named and arrays:
            raise self.err(
                f"data mixes named sets ({', '.join(map(str, named))}) "
                f"with arrays ({', '.join(map(str, arrays))})",
                (arrays[0],),
                hint="put every array inside a set, e.g. " + example,
            )
        raw_sets = {str(k): (raw[k], (k,)) for k in named} if named else {"train": (raw, ())}
        sets: dict[str, dict[str, np.ndarray]] = {}
        names: list[str] | None = None
        first = ""
        for set_name, (content, path) in raw_sets.items():
            sets[set_name] = self.one_set(set_name, content, path, inputs, parameters)
            these = sorted(sets[set_name])
            if names is None:
                names, first = these, set_name
            elif these != names:
                raise self.err(
                    f"set '{set_name}' gives {', '.join(these)} but set '{first}' gives {', '.join(names)}",
                    path,
                    hint="every set gives the same inputs",
                )
        return sets, dict(meta)

    def one_set(
        self,
        set_name: str,
        content: Mapping[Any, Any],
        path: YamlPath,
        inputs: Mapping[str, InputSpec],
        parameters: Sequence[str],
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        steps: dict[str, int] = {}
        if not content:
            raise self.err(f"data set '{set_name}' is empty", path)
        for key, raw in content.items():
            name = str(key)
            where = (*path, key)
            if name in parameters:
                raise self.err(
                    f"'{name}' is a parameter: its starting values come from inputs, not data",
                    where,
                    hint="data gives the other inputs (features, labels) example by example",
                )
            if name not in inputs:
                raise self.err(
                    f"data set '{set_name}' gives '{name}', which is not an input",
                    where,
                    hint=did_you_mean(name, [n for n in inputs if n not in parameters])
                    or f"the data inputs are {', '.join(n for n in inputs if n not in parameters) or 'none'}",
                )
            spec = inputs[name]
            try:
                array = value_array(raw, spec.dtype)
            except SymcheckError as e:
                raise self.err(
                    f"data '{name}' in set '{set_name}': {e.message}", where, hint=e.hint
                ) from None
            shape = tuple(spec.shape or ())
            if array.shape[1:] == shape and array.ndim == len(shape) + 1:
                steps[name] = array.shape[0]
            elif (
                shape
                and array.ndim == len(shape)
                and array.shape[1:] == shape[1:]
                and array.shape[0] % shape[0] == 0
            ):
                steps[name] = array.shape[0] // shape[0]  # batches of shape[0] rows
            else:
                raise self.err(
                    f"data '{name}' in set '{set_name}' has shape {list(array.shape)}, "
                    f"but input '{name}' has shape {list(shape)}",
                    where,
                    hint=f"give [N, {', '.join(map(str, shape))}]".replace(", ]", "]")
                    + f": N examples, each of {name}'s shape, one per step",
                )
            out[name] = array
        counts = set(steps.values())
        if len(counts) > 1:
            shown = ", ".join(f"{n}: {c}" for n, c in steps.items())
            raise self.err(
                f"data set '{set_name}' has different numbers of steps per input ({shown})",
                path,
                hint="every input of a set gives the same number of examples",
            )
        return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _random_spec(m: RandomModel) -> RandomSpec:
    if m.distribution == "normal":
        if m.low is not None or m.high is not None:
            raise SymcheckError(
                "a normal distribution takes mean and std, not low and high",
                hint="random: {distribution: normal, mean: 0, std: 1}",
            )
        return RandomSpec(m.mean, m.std, "normal", m.seed)
    if m.mean is not None or m.std is not None:
        raise SymcheckError(
            "mean and std are for a normal distribution",
            hint="random: {distribution: normal, mean: 0, std: 1}",
        )
    return RandomSpec(m.low, m.high, "uniform", m.seed)


def _tolerance(m: Any) -> Tolerance:
    if m is None:
        return Tolerance()
    engines = {
        name: Tolerance(getattr(m, name).rtol, getattr(m, name).atol)
        for name in (*BUILTIN_ENGINES, "impl")
        if getattr(m, name) is not None
    }
    return Tolerance(m.rtol, m.atol, engines)


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at `loc`'s parent accepts (for did-you-mean on an unknown key)."""
    model: Any = CaseModel
    i = 0
    while i < len(loc) - 1:
        info = model.model_fields.get(loc[i])
        if info is None:
            return []
        ann = _unwrap(info.annotation)
        if get_origin(ann) is dict:
            ann = _unwrap(get_args(ann)[1])
            i += 1
        elif get_origin(ann) is list:
            ann = _unwrap(get_args(ann)[0])
            i += 1
        model = ann
        i += 1
    return list(getattr(model, "model_fields", {}))


def _unwrap(ann: Any) -> Any:
    while True:
        args = get_args(ann)
        if get_origin(ann) is Annotated:
            ann = args[0]
        elif args and type(None) in args:
            ann = next(a for a in args if a is not type(None))
        else:
            return ann


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "text",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def _plain_words(err: Mapping[str, Any], loc: tuple[Any, ...]) -> tuple[str, str | None]:
    kind = err["type"]
    where = _key_name(loc)
    got = err.get("input")
    if kind == "missing":
        hints = {
            "name": "every case needs a unique `name:`",
            "expr": "write the expression under `expr:`, e.g. expr: mean(3*(x+2)^2)",
        }
        return f"missing required key '{loc[-1]}'", hints.get(str(loc[-1]))
    if kind == "extra_forbidden":
        parent = _key_name(loc[:-1])
        return f"unknown key '{loc[-1]}'" + (f" in {parent}" if parent else ""), None
    if kind in _EXPECTED:
        if isinstance(loc[-1], int) and len(loc) > 1 and kind in ("int_type", "float_type", "string_type"):
            return f"items of {_key_name(loc[:-1])} must be {_EXPECTED[kind]}, got {_show(got)}", None
        if kind == "string_type" and loc and loc[-1] == "name" and len(loc) == 1:
            return f"{where} must be text, got {_show(got)}", "quote it: name: '...'"
        return f"{where} must be {_EXPECTED[kind]}, got {_show(got)}", None
    if kind == "literal_error":
        return f"{where} must be one of {err.get('ctx', {}).get('expected', '?')}, got {_show(got)}", None
    if kind in ("greater_than_equal", "greater_than"):
        bound = err.get("ctx", {}).get("ge", err.get("ctx", {}).get("gt"))
        relation = "at least" if kind == "greater_than_equal" else "more than"
        return f"{where} must be {relation} {bound}, got {_show(got)}", None
    if kind == "less_than_equal":
        return f"{where} must be at most {err.get('ctx', {}).get('le')}, got {_show(got)}", None
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "device":
        return f"{where} must be cpu, cuda, cuda:N or mps, got {_show(got)}", None
    message = str(err.get("msg", "invalid value"))
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    return f"{where}: {message[0].lower() + message[1:] if message else message}", None


def _key_name(loc: Sequence[Any]) -> str:
    parts: list[str] = []
    for seg in loc:
        parts.append(f"[{seg}]" if isinstance(seg, int) else ("." if parts else "") + str(seg))
    return f"'{''.join(parts)}'" if parts else ""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- from case to program


def parse_case_program(case: Case) -> Program:
    """Parse and bind `case.expr`; check that inputs, wrt and grad expectations fit it."""
    parsed = parse(case.expr, case.expr_source)
    free = parsed.free_names()
    for name in free:
        if name in case.inputs or name in FUNCTIONS:
            continue
        span = _first_use(parsed, name)
        hint = did_you_mean(name, [n for n in case.inputs if n not in free])
        if hint is None:
            shown = ", ".join(f"{n}: {{shape: [...]}}" for n in free if n not in case.inputs)
            hint = f"add under inputs: {shown}"
        if span is None:
            raise case.error(f"'{name}' is used by the expression but not declared under inputs", hint=hint)
        raise SymcheckError(
            f"'{name}' is used by the expression but not declared under inputs",
            source=case.expr_source,
            span=span,
            hint=hint,
        )
    for name in case.inputs:
        if name not in free:
            raise case.error(
                f"input '{name}' is not used by the expression",
                case.input_lines.get(name),
                hint="remove it, or use it in expr",
            )
    program = bind(parsed, {n: spec.type() for n, spec in case.inputs.items()})
    wrt = case_wrt(case)
    if case.wrt is not None:
        for name in case.wrt:
            if name not in case.inputs:
                raise case.error(
                    f"wrt names '{name}', which is not an input",
                    case.wrt_line,
                    hint=did_you_mean(name, case.inputs) or f"inputs are {', '.join(case.inputs)}",
                )
            if case.inputs[name].dtype is not DType.FLOAT:
                raise case.error(
                    f"wrt names '{name}', an int input; int inputs are not differentiated", case.wrt_line
                )
    out_shape = program.output_type.shape
    if case.expect.value is not None:
        _check_broadcast(
            case, case.expect.value.shape, out_shape, "expect.value", "the output", case.expect.value_line
        )
    for name, grad in case.expect.grads.items():
        if name not in wrt:
            if name not in case.inputs:
                hint = (
                    did_you_mean(name, wrt)
                    or f"gradients are taken with respect to {', '.join(wrt) or 'nothing'}"
                )
                raise case.error(
                    f"expected gradient for '{name}', which is not an input", grad.line, hint=hint
                )
            raise case.error(
                f"expected gradient for '{name}', which is not in wrt",
                grad.line,
                hint=f"add it to wrt (now {', '.join(wrt) or 'empty'})"
                if case.inputs[name].dtype is DType.FLOAT
                else "int inputs are not differentiated",
            )
        if grad.numbers is not None:
            shape = case.inputs[name].type().shape
            _check_broadcast(
                case, grad.numbers.shape, shape, f"expect.grad.{name}", f"input '{name}'", grad.line
            )
    grad_programs(case, program)
    if case.train is not None:
        training_programs(case)
    return program


def training_programs(case: Case) -> list[Program]:
    """The `after` checks' expressions, parsed and bound over the case's inputs."""
    assert case.train is not None
    out = []
    for check in case.train.after:
        parsed = parse(check.expr, check.source)
        for name in parsed.free_names():
            if name not in case.inputs and name not in FUNCTIONS:
                raise SymcheckError(
                    f"unknown name '{name}' in an after check",
                    source=check.source,
                    span=_first_use(parsed, name),
                    hint=did_you_mean(name, case.inputs) or f"inputs are {', '.join(case.inputs)}",
                )
        free = [n for n in parsed.free_names() if n in case.inputs]
        out.append(bind(parsed, {n: case.inputs[n].type() for n in free}))
    return out


def case_wrt(case: Case) -> list[str]:
    """The inputs to differentiate: `wrt`, else every float input."""
    if case.wrt is not None:
        return list(case.wrt)
    return [n for n, s in case.inputs.items() if s.dtype is DType.FLOAT]


def grad_programs(case: Case, program: Program) -> dict[str, Program]:
    """The expected-gradient formulas, parsed and bound over the case's inputs and the names of
    its steps (as free names: `3/2*y` where `y = x + 2`); each one's shape must broadcast to its
    input's shape. A formula program's inputs are the names it uses."""
    known = {n: spec.type() for n, spec in case.inputs.items()}
    for step in program.steps:
        assert step.expr.type is not None
        known[step.name] = step.expr.type  # a rebound name means its last value
    out: dict[str, Program] = {}
    for name, grad in case.expect.grads.items():
        if grad.formula is None:
            continue
        source = grad.formula_source or Source(grad.formula, case.file, grad.line - 1)
        parsed = parse(grad.formula, source)
        used = parsed.free_names()
        for n in used:
            if n not in known and n not in FUNCTIONS:
                raise SymcheckError(
                    f"unknown name '{n}' in the expected gradient",
                    source=source,
                    span=_first_use(parsed, n),
                    hint=did_you_mean(n, known)
                    or f"a formula may use the inputs and steps: {', '.join(known)}",
                )
        fprog = bind(parsed, {n: known[n] for n in used if n in known})
        got, want = fprog.output_type.shape, known[name].shape
        # A transposed matrix is a classic hand-derivation slip: let it through to be diagnosed.
        transposed = len(want) == 2 and tuple(reversed(want)) == tuple(got)
        if not _broadcasts(got, want) and not transposed:
            raise SymcheckError(
                f"the expected gradient for '{name}' has shape {list(got)} "
                f"but '{name}' has shape {list(want)}",
                source=source,
                span=fprog.output.expr.span,
                hint="a gradient has its input's shape (a scalar broadcasts)",
            )
        out[name] = fprog
    return out


def _first_use(parsed: ParsedProgram, name: str) -> Span | None:
    for st in parsed.statements:
        for node in walk(st.expr):
            if isinstance(node, Ref) and node.name == name:
                return node.span
    return None


def _broadcasts(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(got, want) == tuple(want)
    except ValueError:
        return False


def _check_broadcast(
    case: Case, got: tuple[int, ...], want: tuple[int, ...], what: str, of: str, line: int | None
) -> None:
    if not _broadcasts(got, want):
        raise case.error(
            f"{what} has shape {list(got)} but {of} has shape {list(want)}",
            line,
            hint="give a number (it broadcasts) or a nested list of that shape",
        )


# ---------------------------------------------------------------- JSON Schema, for editors

SCHEMA_FILE = Path(__file__).with_name("suite.schema.json")  # shipped; `symcheck schema --output` writes it


def suite_json_schema() -> dict[str, Any]:
    """The suite format as a JSON Schema (draft 2020-12), generated from the models that validate
    suites (CaseModel and those under it) plus what the loader accepts around them: the top level,
    `defaults`, a bare number or list as an input's value."""
    from pydantic import TypeAdapter
    from pydantic.json_schema import GenerateJsonSchema

    class Generate(GenerateJsonSchema):
        # The before-validators widen what a key accepts; the schema shows the wider input.
        def function_before_schema(self, schema: Any) -> Any:
            fn = schema["function"].get("function")
            if fn is _listify:  # `wrt: x` stands for `wrt: [x]`
                inner = schema["schema"]
                return {"anyOf": [self.generate_inner(inner["items_schema"]), self.generate_inner(inner)]}
            if fn is _textify:  # `expr: 3`
                return {"anyOf": [self.generate_inner(schema["schema"]), {"type": "number"}]}
            return super().function_before_schema(schema)

    generated = TypeAdapter(list[CaseModel]).json_schema(schema_generator=Generate)
    defs = generated["$defs"]
    case = defs[CaseModel.__name__]
    case["properties"]["inputs"]["additionalProperties"] = {
        "anyOf": [
            {"$ref": f"#/$defs/{InputModel.__name__}"},
            {"type": ["number", "array"], "description": "the input's value (a number or nested list)"},
        ]
    }
    defs["Defaults"] = {
        "type": "object",
        "title": "Defaults",
        "description": "defaults for every case: any case key except " + ", ".join(NO_DEFAULT_KEYS),
        "additionalProperties": False,
        "properties": {k: v for k, v in case["properties"].items() if k in DEFAULT_KEYS},
    }
    cases = {"type": "array", "minItems": 1, "items": {"$ref": f"#/$defs/{CaseModel.__name__}"}}
    top = {
        "suite": {"type": "string", "minLength": 1, "description": "the suite's name (default: the file's)"},
        "defaults": {"$ref": "#/$defs/Defaults"},
        "cases": cases,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "symcheck suite",
        "description": "A symcheck suite (symcheck verify; pytest for *.symcheck.yaml): "
        "`cases:` (with optional `suite:` and `defaults:`), or a bare list of cases.",
        # Object keywords apply to a mapping, array keywords to a list: either form, precise errors.
        "type": ["object", "array"],
        "properties": top,
        "required": ["cases"],
        "additionalProperties": False,
        "items": cases["items"],
        "minItems": 1,
        "$defs": defs,
    }


def suite_json_schema_text() -> str:
    """The schema as `symcheck schema` prints it and symcheck/suite.schema.json holds it."""
    return json.dumps(suite_json_schema(), indent=2, ensure_ascii=False) + "\n"


def load_case(
    target: str, inputs: Sequence[str], case_name: str | None = None, wrt: str | None = None
) -> Any:
    """A Case from EXPR and -i specs (as `symcheck grad`), or from a suite file and --case NAME;
    -i specs given with a suite replace those inputs of the case."""
    from symcheck.engine import DEFAULT_ENGINES
    from symcheck.inputs import parse_cli_input
    from symcheck.parser import parse

    specs: dict[str, Any] = {}
    for text in inputs:
        name, spec = parse_cli_input(text)
        if name in specs:
            raise SymcheckError(f"input '{name}' is given twice", hint="give each input once with -i")
        specs[name] = spec
    wrt_list = [w.strip() for w in wrt.split(",") if w.strip()] if wrt else None
    if target.lower().endswith((".yaml", ".yml")):
        if not Path(target).is_file():
            raise SymcheckError(f"no suite file {target!r}")
        suite = load_suite(target)
        names = [c.name for c in suite.cases]
        if case_name is None:
            if len(names) != 1:
                raise SymcheckError(
                    f"{target} has {len(names)} cases: pick one with --case NAME",
                    hint=f"cases: {', '.join(names)}",
                )
            case_name = names[0]
        if case_name not in names:
            raise SymcheckError(
                f"no case '{case_name}' in {target}",
                hint=did_you_mean(case_name, names) or f"cases: {', '.join(names)}",
            )
        case = next(c for c in suite.cases if c.name == case_name)
        unknown = [n for n in specs if n not in case.inputs]
        if unknown:
            raise SymcheckError(
                f"case '{case_name}' has no input {unknown[0]}", hint=f"its inputs: {', '.join(case.inputs)}"
            )
        changes: dict[str, Any] = {"inputs": {**case.inputs, **specs}}
        if wrt_list is not None:
            changes["wrt"] = wrt_list
        return replace(case, **changes)
    if case_name is not None:
        raise SymcheckError(
            "--case picks a case of a suite file", hint="give a .yaml file, not an expression"
        )
    source = Source(target, "<command line>")
    missing = [n for n in parse(target, source).free_names() if n not in specs]
    if missing:
        example = " ".join(f"-i {n}:2x2=1" for n in missing)
        raise SymcheckError(
            f"no input spec for {', '.join(missing)}",
            hint=f"give every input a shape or value, e.g. {example}",
        )
    return Case(
        name=target.strip().splitlines()[0] if "\n" not in target.strip() else "<command line>",
        file="<command line>",
        line=1,
        expr=target,
        expr_source=source,
        inputs=specs,
        wrt=wrt_list,
        expect=Expect(),
        engines=list(DEFAULT_ENGINES),
        tolerance=Tolerance(),
        samples=0,
    )
