"""Running cases: every engine at every point, compared against the reference, plus expectations.

The reference is the symbolic engine when it ran (exact), else torch, else the first engine that
produced gradients. Everything a user wrote (expressions, formulas, suites) is validated before
anything runs, so a typo is reported as bad input (exit 2), never as a half-finished run.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symcheck.compare import (
    ArrayComparison,
    EngineComparison,
    Tolerance,
    compare_arrays,
    compare_results,
    resolve_tolerance,
)
from symcheck.engine import Engine, EngineOptions, EngineResult, EngineUnavailable, load_engine
from symcheck.errors import SymcheckError
from symcheck.inputs import check_point, make_point, sample_points
from symcheck.ir import Program
from symcheck.parser import ParsedProgram, parse
from symcheck.suite import Case, GradExpect, parse_case_program

REFERENCE_ORDER = ("symbolic", "torch", "autograd", "numeric")
# Engines whose gradient is exact or computed by autodiff: a kink hit makes only FD suspect.
KINK_SENSITIVE = frozenset({"numeric"})


@dataclass
class ExpectationCheck:
    what: str  # "value", "dout/dx"
    claim: str  # as written: "27", "3/2*(x+2)"
    ok: bool
    detail: str
    line: int | None = None


@dataclass
class PointResult:
    label: str
    inputs: dict[str, np.ndarray]
    results: dict[str, EngineResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # engine -> why it did not run
    crashed: dict[str, str] = field(default_factory=dict)  # engine -> exception (our bug)
    reference: str | None = None
    comparisons: list[EngineComparison] = field(default_factory=list)
    expectations: list[ExpectationCheck] = field(default_factory=list)
    kink_hits: list[str] = field(default_factory=list)
    conventions: list[str] = field(default_factory=list)  # mismatches explained by a kink
    problems: list[str] = field(default_factory=list)  # failures not tied to one engine

    @property
    def ok(self) -> bool:
        return (
            not self.crashed
            and not self.problems
            and all(c.ok or c.engine in self._explained() for c in self.comparisons)
            and all(e.ok for e in self.expectations)
        )

    def _explained(self) -> set[str]:
        return {c.split(":")[0] for c in self.conventions}


@dataclass
class FormulaProof:
    wrt: str
    claim: str
    proven: bool
    difference: str | None  # claimed - true, simplified, when not proven
    line: int | None = None


@dataclass
class CaseResult:
    case: Case
    program: Program
    wrt: list[str]
    points: list[PointResult] = field(default_factory=list)
    closed_forms: dict[str, str] = field(default_factory=dict)
    hessian_forms: dict[str, str] = field(default_factory=dict)
    exact_value: str | None = None
    proofs: list[FormulaProof] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    training: Any = None  # symcheck.train.TrainingResult, for a case with `train:`

    @property
    def crashed(self) -> bool:
        return any(p.crashed for p in self.points) or bool(self.training and self.training.crashed)

    @property
    def status(self) -> str:
        if self.crashed:
            return "error"
        trained = self.training is None or self.training.ok
        return "pass" if all(p.ok for p in self.points) and trained else "fail"


@dataclass
class Prepared:
    case: Case
    program: Program
    formulas: dict[str, ParsedProgram]


def prepare(cases: Sequence[Case]) -> tuple[list[Prepared], list[SymcheckError]]:
    """Parse and type-check every case and formula; collect every error instead of stopping."""
    prepared: list[Prepared] = []
    errors: list[SymcheckError] = []
    for case in cases:
        try:
            program = parse_case_program(case)
            _check_output(case, program)
            formulas = {}
            for name, expect in case.expect.grads.items():
                if expect.formula is not None:
                    formulas[name] = _parse_formula(expect, program)
            prepared.append(Prepared(case, program, formulas))
        except SymcheckError as e:
            errors.append(e)
    return prepared, errors


def _check_output(case: Case, program: Program) -> None:
    shape = program.output_type.shape
    if shape != ():
        raise SymcheckError(
            f"case '{case.name}': the output has shape {shape}; gradients need a scalar output",
            source=program.source,
            span=program.output.span,
            hint="wrap it in sum(...) or mean(...)",
        )


def _parse_formula(expect: GradExpect, program: Program) -> ParsedProgram:
    assert expect.formula is not None
    parsed = parse(expect.formula, expect.formula_source)
    known = set(program.inputs) | {s.name for s in program.steps}
    for name in parsed.free_names():
        if name not in known:
            from symcheck.errors import did_you_mean

            raise SymcheckError(
                f"unknown name '{name}' in the expected gradient",
                source=expect.formula_source,
                hint=did_you_mean(name, known)
                or f"a formula may use the inputs and steps: {', '.join(sorted(known))}",
            )
    return parsed


class Runner:
    """Runs prepared cases; engines are created once and shared (the symbolic one caches)."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine | EngineUnavailable] = {}

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            try:
                self._engines[name] = load_engine(name)
            except EngineUnavailable as e:
                self._engines[name] = e
        found = self._engines[name]
        if isinstance(found, EngineUnavailable):
            raise found
        return found

    def run(self, prep: Prepared) -> CaseResult:
        case, program = prep.case, prep.program
        wrt = list(case.wrt) if case.wrt else program.float_inputs()
        result = CaseResult(case, program, wrt)
        options = EngineOptions(
            dtype=case.dtype,
            device=case.device,
            expansion_budget=case.expansion_budget,
            seed=case.seed,
            order=getattr(case, "order", 1),
        )
        for label, point in self._points(case, program, result.notes):
            result.points.append(self._run_point(prep, wrt, options, label, point))
        self._prove_formulas(prep, wrt, result)
        for p in result.points:
            sym = p.results.get("symbolic")
            if sym is not None:
                result.closed_forms = sym.closed_forms
                result.hessian_forms = sym.hessian_forms
                if p is result.points[0]:
                    result.exact_value = sym.exact_value
                break
        if case.train is not None:  # training runs: symcheck/train.py
            from symcheck.train import run_training

            result.training = run_training(prep, self)
        return result

    def _points(
        self, case: Case, program: Program, notes: list[str]
    ) -> list[tuple[str, dict[str, np.ndarray]]]:
        points: list[tuple[str, dict[str, np.ndarray]]] = []
        if any(spec.concrete() for spec in case.inputs.values()) or not case.inputs:
            points.append(("given values", make_point(case.inputs, case.seed, program, notes=notes)))
        count = case.samples if points else max(case.samples, 1)
        for i, point in enumerate(sample_points(program, case.inputs, count, case.seed, notes=notes)):
            points.append((f"random point {i + 1} (seed {case.seed})", point))
        return points

    def _run_point(
        self, prep: Prepared, wrt: list[str], options: EngineOptions, label: str, point: dict[str, np.ndarray]
    ) -> PointResult:
        case, program = prep.case, prep.program
        pr = PointResult(label, point)
        checked = check_point(program, point)
        pr.kink_hits = checked.kink_hits
        # Only pinned values can break a domain (random points are redrawn until they hold).
        pr.problems.extend(f"the given values break a domain: {v}" for v in checked.domain_violations)
        for name in case.engines:
            try:
                pr.results[name] = self.engine(name).run(program, point, wrt, options)
            except EngineUnavailable as e:
                pr.skipped[name] = str(e)
            except SymcheckError:
                raise
            except Exception as e:  # an engine's own bug: report it, keep going
                pr.crashed[name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
        with_grads = [n for n in REFERENCE_ORDER if n in pr.results and pr.results[n].grads]
        pr.reference = with_grads[0] if with_grads else None
        compared = {n for n in pr.results if pr.results[n].grads or pr.results[n].directional}
        if pr.reference is None or len(compared) < 2:
            ran = ", ".join(sorted(pr.results)) or "none"
            pr.problems.append(f"nothing to compare: engines that produced gradients: {ran}")
        if pr.reference is None:
            return pr
        ref = pr.results[pr.reference]
        output = program.output.name
        overrides = case.tolerance.as_overrides()
        for name, res in pr.results.items():
            if name == pr.reference:
                if res.failures:
                    pr.comparisons.append(EngineComparison(name, name, failures=list(res.failures)))
                continue
            tol = resolve_tolerance(name, res.dtype, overrides)
            second = resolve_tolerance(name, res.dtype, overrides, order=2)
            comparison = compare_results(res, ref, tol, output, second)
            pr.comparisons.append(comparison)
            explainable = not comparison.ok and pr.kink_hits and not comparison.failures
            if explainable and (
                name in KINK_SENSITIVE or any(c.nonfinite is None for c in comparison.checks if not c.ok)
            ):
                pr.conventions.append(
                    f"{name}: differs at a non-differentiable point ({'; '.join(pr.kink_hits)}); "
                    "engines' conventions differ there, this is not a gradient bug"
                )
        self._check_expectations(prep, pr, ref, label == "given values", overrides)
        return pr

    def _check_expectations(
        self, prep: Prepared, pr: PointResult, ref: EngineResult, given: bool, overrides: Mapping | None
    ) -> None:
        case = prep.case
        tol = resolve_tolerance("expect", "float64", overrides)
        output = prep.program.output.name
        if given and case.expect.value is not None:
            expected = np.broadcast_to(case.expect.value, ref.value.shape)
            c = compare_arrays("value", expected, ref.value, tol)
            pr.expectations.append(
                ExpectationCheck(
                    "value", _numbers_text(case.expect.value), c.ok, _detail(c), case.expect.value_line
                )
            )
        for name, expect in case.expect.grads.items():
            what = f"d{output}/d{name}"
            if name not in ref.grads:
                continue
            if expect.numbers is not None:
                if not given:
                    continue
                try:
                    expected = np.broadcast_to(expect.numbers, ref.grads[name].shape)
                except ValueError:
                    pr.expectations.append(
                        ExpectationCheck(
                            what,
                            _numbers_text(expect.numbers),
                            False,
                            f"shape {expect.numbers.shape} does not match "
                            f"{name}'s shape {ref.grads[name].shape}",
                            expect.line,
                        )
                    )
                    continue
                c = compare_arrays(what, expected, ref.grads[name], tol)
                pr.expectations.append(
                    ExpectationCheck(what, _numbers_text(expect.numbers), c.ok, _detail(c), expect.line)
                )
            else:
                closed = self._closed_form(prep, name)
                claimed = closed.lower_formula(prep.formulas[name])
                values = closed.graph.evaluate(claimed, pr.inputs)
                try:
                    values = np.broadcast_to(values, ref.grads[name].shape)
                except ValueError:
                    pr.expectations.append(
                        ExpectationCheck(
                            what,
                            expect.formula or "",
                            False,
                            f"the formula has shape {values.shape}, {name} has shape {ref.grads[name].shape}",
                            expect.line,
                        )
                    )
                    continue
                c = compare_arrays(what, values, ref.grads[name], tol)
                pr.expectations.append(
                    ExpectationCheck(what, expect.formula or "", c.ok, _detail(c), expect.line)
                )

    def _closed_form(self, prep: Prepared, name: str):  # type: ignore[no-untyped-def]
        from symcheck.symbolic import SymbolicEngine

        engine = self.engine("symbolic")
        assert isinstance(engine, SymbolicEngine)
        wrt = list(prep.case.wrt) if prep.case.wrt else prep.program.float_inputs()
        return engine.closed_form(prep.program, wrt)

    def _prove_formulas(self, prep: Prepared, wrt: list[str], result: CaseResult) -> None:
        for name, parsed in prep.formulas.items():
            expect = prep.case.expect.grads[name]
            closed = self._closed_form(prep, name)
            difference = closed.difference(name, closed.lower_formula(parsed))
            proven = difference.expr == 0
            result.proofs.append(
                FormulaProof(
                    name,
                    expect.formula or "",
                    proven,
                    None if proven else closed.printer(difference.expr),
                    expect.line,
                )
            )


def _numbers_text(numbers: np.ndarray) -> str:
    array = np.asarray(numbers)
    if array.ndim == 0:
        return f"{float(array):g}"
    if array.size > 12:
        return f"<{array.size} numbers>"
    return str(array.tolist())


def _detail(c: ArrayComparison) -> str:
    if c.ok:
        return "ok"
    if c.nonfinite:
        return c.nonfinite
    # Expectations are compared as (claim, truth): `actual` is what the user wrote.
    return (
        f"claimed {c.actual:.10g}, true {c.expected:.10g} at index {c.worst_index} "
        f"({c.mismatched} / {c.total} elements differ)"
    )


def run_cases(cases: Sequence[Case]) -> tuple[list[CaseResult], list[SymcheckError]]:
    prepared, errors = prepare(cases)
    if errors:
        return [], errors
    runner = Runner()
    return [runner.run(p) for p in prepared], []


__all__ = [
    "CaseResult",
    "ExpectationCheck",
    "PointResult",
    "Prepared",
    "Runner",
    "Tolerance",
    "prepare",
    "run_cases",
]
