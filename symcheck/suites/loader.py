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
training run checked across engines: `TrainSpec` here, `symcheck/checks/training.py` runs it); its data,
from a JSON/YAML file beside the suite or inline, is loaded and checked here, with errors at
the data's own file:line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import numpy as np
from pydantic import ValidationError

from symcheck.engines.registry import BUILTIN_ENGINES, DEFAULT_ENGINES, available_engines
from symcheck.language.errors import SymcheckError, SymcheckErrors, did_you_mean, raise_all
from symcheck.language.inputs import InputSpec, RandomSpec, value_array
from symcheck.language.ir import DType
from symcheck.language.parser import check_identifier
from symcheck.suites.case import (
    DATA_SUFFIXES,
    SUITE_SUFFIXES,
    TRAIN_ENGINES,
    AfterCheck,
    Case,
    Expect,
    GradExpect,
    Mistake,
    OptimizerSpec,
    Suite,
    Tolerance,
    TrainSpec,
    YamlPath,
)
from symcheck.suites.data import DataReader
from symcheck.suites.models import (
    DEFAULT_KEYS,
    NO_DEFAULT_KEYS,
    TOP_KEYS,
    CaseModel,
    ExpectModel,
    InputModel,
    MistakeModel,
    RandomModel,
    TrainModel,
)
from symcheck.suites.positioned_yaml import YamlDoc, read_yaml

# ---------------------------------------------------------------- loading


def load_paths(paths: Sequence[str | Path]) -> list[Suite]:
    """Suites from files, or directories searched recursively for *.yaml / *.yml (sorted)."""
    suites: list[Suite] = []
    errors: list[SymcheckError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in SUITE_SUFFIXES and p.is_file())
            if not files:
                raise SymcheckError(f"no .yaml or .yml suites under {path}", filename=str(path))
            found = files
        elif path.exists():
            found = [path]
        else:
            raise SymcheckError(f"no such file or directory: {path}")
        for file in found:
            try:
                suites.append(load_suite(file))
            except SymcheckError as e:  # every file's mistakes in one run
                errors.append(e)
    raise_all(errors)
    return suites


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    data, doc = read_yaml(path)
    return _Loader(doc, path).suite(data)


class _Loader:
    def __init__(self, doc: YamlDoc, path: Path) -> None:
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
        errors: list[SymcheckError] = []  # every case's mistakes in one run, not one per run
        for i, raw in enumerate(cases):
            try:
                case = self.case(raw, (*cases_path, i), defaults)
            except SymcheckError as e:
                errors.append(e)
                continue
            if case.name in seen:
                errors.append(
                    self.err(
                        f"duplicate case name '{case.name}' (first at line {seen[case.name]})",
                        (*cases_path, i, "name"),
                        hint="case names are unique within a file",
                    )
                )
                continue
            seen[case.name] = case.line
            out.append(case)
        raise_all(errors)
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
        """Every mistake of the case, by line; an unknown key explains a missing one (`exprr` for
        `expr`), so a missing key is reported only where no unknown key stands beside it."""
        errors = error.errors()
        unknown_parents = {tuple(d["loc"][:-1]) for d in errors if d["type"] == "extra_forbidden"}
        shown = [
            d for d in errors if not (d["type"] == "missing" and tuple(d["loc"][:-1]) in unknown_parents)
        ]
        shown.sort(key=lambda d: self.doc.line(self._path(case_path, d["loc"], raw)) or 0)
        found = [self._one(d, case_path, raw) for d in shown]
        return found[0] if len(found) == 1 else SymcheckErrors(found)

    def _one(self, first: Any, case_path: YamlPath, raw: dict[str, Any]) -> SymcheckError:
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
            timeout=float(m.timeout),
            train=None if m.train is None else self.train(m.train, (*path, "train"), inputs),
            outputs=None if m.outputs is None else list(m.outputs),
            outputs_line=self.doc.line((*path, "outputs")) if m.outputs is not None else None,
            **self.impl(m, path),
        )

    def impl(self, m: CaseModel, path: YamlPath) -> dict[str, Any]:
        """`impl:`/`impl_grad:` as written, with where they are (loaded only on opt-in: suites/imports.py)."""
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
        for name, formula in m.vjp.items():
            vpath = (*path, "vjp", name)
            if name in grads:
                raise self.err(f"expect gives both grad and vjp for '{name}'", vpath, hint="keep one")
            line = self.doc.line(vpath) or 1
            grads[name] = GradExpect(formula, self.doc.source(formula, vpath), None, line, kind="vjp")
        hessians: dict[str, GradExpect] = {}
        for name, formula in m.hessian.items():
            hpath = (*path, "hessian", name)
            line = self.doc.line(hpath) or 1
            hessians[name] = GradExpect(formula, self.doc.source(formula, hpath), None, line, kind="hessian")
        value_line = self.doc.line((*path, "value")) if value is not None else None
        return Expect(value, value_line, grads, hessians)

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
                file = (self.path.parent / m.data).resolve()
                allowed = _data_root(self.path)
                if Path(m.data).is_absolute() or not file.is_relative_to(allowed):
                    # Never read (nor echo the keys of) a file outside the suite's project.
                    raise self.err(
                        f"data file '{m.data}' is outside {allowed}",
                        dpath,
                        hint="give a path relative to the suite file, inside its folder "
                        "(or the folder of the pyproject.toml above it)",
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
                raw, doc = read_yaml(file, "data file")
                reader = DataReader(doc, (), str(file))
            elif isinstance(m.data, dict):
                origin, raw, reader = "inline", m.data, DataReader(self.doc, dpath, self.filename)
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


def _data_root(suite: Path) -> Path:
    """Where a suite's data files may be: its folder, or the project's (the nearest folder above
    that holds a pyproject.toml)."""
    folder = suite.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return folder


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
