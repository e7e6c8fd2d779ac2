"""Running cases: every engine at every point, compared against the reference, plus expectations.

The reference is the symbolic engine when it ran (exact), else torch, else the first engine that
produced gradients. Everything a user wrote (expressions, formulas, suites) is validated before
anything runs, so a typo is reported as bad input (exit 2), never as a half-finished run.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from symcheck.checks.compare import (
    ArrayComparison,
    EngineComparison,
    Tolerance,
    adjoint_failures,
    compare_arrays,
    compare_results,
    resolve_tolerance,
)
from symcheck.checks.points import check_given_labels, check_point, kink_margin, make_point, sample_points
from symcheck.checks.training import TrainingResult, run_training
from symcheck.engines import registry as engine_module
from symcheck.engines.base import (
    Engine,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    hessian_key,
    jacobian_probes,
)
from symcheck.engines.registry import BUILTIN_ENGINES, load_engine
from symcheck.language import limits
from symcheck.language.catalogue import CONSTANTS
from symcheck.language.errors import SymcheckError, did_you_mean
from symcheck.language.ir import DType, Program, cotangent_name
from symcheck.language.limits import Limits
from symcheck.language.parser import ParsedProgram, parse
from symcheck.suites.case import Case, GradExpect
from symcheck.suites.imports import impl_engine, with_impl
from symcheck.suites.programs import output_parts, parse_case_program

REFERENCE_ORDER = ("symbolic", "torch", "autograd", "numeric")
PRECISION = {"float64": 3, "float32": 2, "bfloat16": 1, "float16": 1}  # significand bits, ranked
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
    # Why nothing was compared here, where that is because engines did not run (gave up, skipped):
    # the point checked nothing, so the case is skipped, not passed, and not failed either.
    uncompared: str | None = None
    # Each engine against its own recorded numbers (--baseline; symcheck/checks/baseline.py).
    baseline: list[EngineComparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.crashed
            and not self.problems
            and all(c.ok or c.engine in self._explained() for c in self.comparisons)
            and all(e.ok for e in self.expectations)
            and all(c.ok for c in self.baseline)
        )

    def _explained(self) -> set[str]:
        return {c.split(":")[0] for c in self.conventions}


@dataclass
class MistakeCheck:
    """A shipped wrong claim: refuted as it must be, and diagnosed as the case says."""

    wrt: str
    claim: str
    refuted: bool
    likely_mistake: str | None
    expected_reason: str | None
    line: int
    # The diagnosis ran out of the case's time: refuted (or not) at the points alone, and the
    # reason the case expects is not checked (skipped, not failed).
    undecided: bool = False

    @property
    def ok(self) -> bool:
        reason_ok = (
            self.undecided
            or self.expected_reason is None
            or self.expected_reason.lower() in (self.likely_mistake or "").lower()
        )
        return self.refuted and reason_ok


@dataclass
class FormulaProof:
    wrt: str
    claim: str
    proven: bool
    difference: str | None  # claimed - true, simplified, when not proven
    line: int | None = None
    # How it is proven ("equal to the closed form", "element by element at probe shapes ..."), or
    # why not ("not proven", "undecided: ...", "its decimal ... is a rounded number ...").
    how: str = ""
    # When not proven (symcheck/checks/diagnose.py): the common mistake the claim most likely
    # comes from, and where claim and truth differ ("at x = [[1, 1], [1, 1]] (...): claimed 18, ...").
    likely_mistake: str | None = None
    differs_at: str | None = None
    what: str = ""  # the quantity: "dout/dx" (the default), "v^T dout/dx", "d2out/dx2"


@dataclass
class CaseResult:
    case: Case
    program: Program
    wrt: list[str]
    points: list[PointResult] = field(default_factory=list)
    closed_forms: dict[str, str] = field(default_factory=dict)
    hessian_forms: dict[str, str] = field(default_factory=dict)
    exact_value: str | None = None
    # A tensor output: the closed forms are VJPs at a generic cotangent of this name.
    cotangent: str | None = None
    proofs: list[FormulaProof] = field(default_factory=list)
    mistakes: list[MistakeCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    training: TrainingResult | None = None  # for a case with `train:`
    baseline: Any = None  # symcheck.checks.baseline.BaselineOutcome, with --baseline
    seconds: float = 0.0  # wall time of Runner.run
    # symcheck's own bug while running this case (the traceback); the other cases still ran.
    error: str | None = None

    @property
    def crashed(self) -> bool:
        return (
            self.error is not None
            or any(p.crashed for p in self.points)
            or bool(self.training and self.training.crashed)
        )

    @property
    def status(self) -> str:
        """error (symcheck's own bug), fail, skip (the code under test did not run), or pass."""
        if self.crashed:
            return "error"
        trained = self.training is None or self.training.ok
        refuted = all(m.ok for m in self.mistakes)
        if not (all(p.ok for p in self.points) and trained and refuted):
            return "fail"
        return "skip" if self.skip_reason is not None else "pass"

    @property
    def skip_reason(self) -> str | None:
        """Why the code under test did not run, if it did not: the user's implementation (impl:),
        the function of assert_gradients (fn), a plug-in engine, or torch on the device and in the
        dtype the case asks for. What did not run can never pass."""
        for point in self.points:
            for name, why in point.skipped.items():
                if under_test(name, self.case):
                    return f"{name} did not run: {why}"
        for point in self.points:
            if point.uncompared is not None:
                return f"at the {point.label}: {point.uncompared}"
        return None


def under_test(engine: str, case: Case) -> bool:
    """Whether `engine` is code the case exists to check, rather than one more witness: the user's
    code, a plug-in, or torch when the case asks for a device or dtype only torch honours."""
    if engine not in BUILTIN_ENGINES:
        return True
    return engine == "torch" and (case.device != "cpu" or case.dtype != "float64")


@dataclass
class Prepared:
    case: Case
    program: Program
    formulas: dict[str, ParsedProgram]  # expected gradients (or, for a tensor output, VJPs)
    hessians: dict[str, ParsedProgram] = field(default_factory=dict)  # expected d2out/dx2


def prepare(cases: Sequence[Case]) -> tuple[list[Prepared], list[SymcheckError]]:
    """Parse and type-check every case and formula; collect every error instead of stopping."""
    prepared: list[Prepared] = []
    errors: list[SymcheckError] = []
    for whole in cases:
        try:
            parse_case_program(whole)  # the whole case first: its outputs, if several, are checked
            parts = output_parts(whole)
        except SymcheckError as e:
            errors.append(e)
            continue
        for case in parts:
            _prepare_one(case, prepared, errors)
    return prepared, errors


def _prepare_one(case: Case, prepared: list[Prepared], errors: list[SymcheckError]) -> None:
    """One case, or one output's part of a case with several."""
    try:
        program = parse_case_program(case)
        _check_output(case, program)
        check_given_labels(program, case.inputs, case.seed)
        formulas = {}
        extra = {cotangent_name(program)} if program.output_type.shape != () else set()
        for name, expect in case.expect.grads.items():
            if expect.formula is not None:
                formulas[name] = _parse_formula(expect, program, extra)
        hessians = {name: _parse_formula(e, program) for name, e in case.expect.hessians.items()}
        if case.impl is not None:  # the user's own implementation, one more engine (suites/imports.py)
            case = with_impl(case)
        prepared.append(Prepared(case, program, formulas, hessians))
    except SymcheckError as e:
        errors.append(e)


def _check_output(case: Case, program: Program) -> None:
    """A tensor output is checked through its Jacobian; what needs a scalar output says so."""
    shape = program.output_type.shape
    for name, e in case.expect.hessians.items():
        if getattr(case, "order", 1) < 2:
            raise case.error(f"expect: hessian for '{name}' needs order: 2", e.line, hint="add order: 2")
        if len(program.inputs[name].type.shape) > 1:  # suites/programs.py checked it is an input
            raise case.error(
                f"expect: hessian for '{name}': a Hessian formula is for a scalar or 1-D input",
                e.line,
                hint="for larger inputs the Hessian is checked through H v, without a formula",
            )
    if shape == ():
        for name, e in case.expect.grads.items():
            if e.kind == "vjp":
                raise case.error(
                    f"expect: vjp for '{name}': the output is a scalar; its derivative is a gradient",
                    e.line,
                    hint="write it under grad:",
                )
        return
    for name, e in case.expect.grads.items():
        if e.kind != "vjp":
            raise case.error(
                f"expect: grad for '{name}': the output has shape {shape}, so it has a Jacobian, not a "
                "gradient",
                e.line,
                hint=f"give the vector-Jacobian product under vjp:, a formula in the cotangent "
                f"{cotangent_name(program)} (of the output's shape)",
            )
    needs_scalar = [
        (getattr(case, "order", 1) >= 2, "second derivatives (order: 2)"),
    ]
    for wanted, what in needs_scalar:
        if wanted:
            raise SymcheckError(
                f"case '{case.name}': the output has shape {shape}; {what} need a scalar output",
                source=program.source,
                span=program.output.span,
                hint="its Jacobian is checked as it is; for this, reduce the output to a scalar loss",
            )


def _parse_formula(expect: GradExpect, program: Program, extra: set[str] | None = None) -> ParsedProgram:
    assert expect.formula is not None
    parsed = parse(expect.formula, expect.formula_source)
    known = set(program.inputs) | {s.name for s in program.steps} | (extra or set())
    for name in parsed.free_names():
        if name not in known and name not in CONSTANTS:
            raise SymcheckError(
                f"unknown name '{name}' in the expected gradient",
                source=expect.formula_source,
                hint=did_you_mean(name, known)
                or f"a formula may use the inputs and steps: {', '.join(sorted(known))}",
            )
    return parsed


class Runner:
    """Runs prepared cases; engines are created once and shared (the symbolic one caches)."""

    def __init__(self, engines: Mapping[str, Engine] | None = None) -> None:
        # `engines`: ready instances that take precedence over the registry (the Python API's "fn").
        self._engines: dict[str, Engine | EngineUnavailable] = dict(engines or {})

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

    def run_safely(self, prep: Prepared) -> CaseResult:
        """`run`, except that a bug of symcheck's in this case becomes an errored result (exit 3 at
        the end) instead of stopping the run: the other cases still run and are reported."""
        try:
            return self.run(prep)
        except SymcheckError:
            raise
        except Exception as e:
            wrt = list(prep.case.wrt) if prep.case.wrt else prep.program.float_inputs()
            trace = traceback.format_exc(limit=8)
            return CaseResult(prep.case, prep.program, wrt, error=f"{type(e).__name__}: {e}\n{trace}")

    def run(self, prep: Prepared) -> CaseResult:
        start = time.perf_counter()
        case, program = prep.case, prep.program
        wrt = list(case.wrt) if case.wrt else program.float_inputs()
        result = CaseResult(case, program, wrt)
        for name in sorted(CONSTANTS & set(program.inputs)):
            result.notes.append(f"'{name}' is an input here, not the constant {name}: the input shadows it")
        options = EngineOptions(
            dtype=case.dtype,
            device=case.device,
            expansion_budget=case.expansion_budget,
            seed=case.seed,
            order=getattr(case, "order", 1),
            time_budget=case.timeout,
            deadline=None if case.timeout is None else time.monotonic() + case.timeout,
        )
        for label, point in self._points(case, program, result.notes):
            result.points.append(self._run_point(prep, wrt, options, label, point))
        self._prove_formulas(prep, wrt, result, options.deadline)
        self._refute_mistakes(prep, result, options.deadline)
        for p in result.points:
            sym = p.results.get("symbolic")
            if sym is not None:
                result.closed_forms = sym.closed_forms
                result.hessian_forms = sym.hessian_forms
                result.cotangent = sym.cotangent
                if p is result.points[0]:
                    result.exact_value = sym.exact_value
                break
        if case.train is not None:  # training runs: symcheck/checks/training.py
            result.training = run_training(prep.case, prep.program, self.engine)
        result.seconds = time.perf_counter() - start
        return result

    def _points(
        self, case: Case, program: Program, notes: list[str]
    ) -> list[tuple[str, dict[str, np.ndarray]]]:
        points: list[tuple[str, dict[str, np.ndarray]]] = []
        margin = kink_margin(getattr(case, "order", 1))
        if any(spec.concrete() for spec in case.inputs.values()) or not case.inputs:
            points.append(
                ("given values", make_point(case.inputs, case.seed, program, notes=notes, margin=margin))
            )
        count = case.samples if points else max(case.samples, 1)
        drawn = sample_points(program, case.inputs, count, case.seed, notes=notes, margin=margin)
        for i, point in enumerate(drawn):
            points.append((f"random point {i + 1} (seed {case.seed})", point))
        return points

    def _run_point(
        self, prep: Prepared, wrt: list[str], options: EngineOptions, label: str, point: dict[str, np.ndarray]
    ) -> PointResult:
        case, program = prep.case, prep.program
        pr = PointResult(label, point)
        checked = check_point(program, point, kink_margin(getattr(case, "order", 1)))
        pr.kink_hits = checked.kink_hits
        # Only pinned values can break a domain (random points are redrawn until they hold).
        pr.problems.extend(f"the given values break a domain: {v}" for v in checked.domain_violations)
        for name in case.engines:
            try:
                engine = self._impl(case) if name == "impl" and case.impl is not None else self.engine(name)
                pr.results[name] = engine.run(program, point, wrt, options)
                pr.results[name].engine = name  # the column is the name asked for (a plug-in's entry point)
            except EngineUnavailable as e:
                pr.skipped[name] = str(e)
            except SymcheckError:
                raise
            except Exception as e:
                if name in BUILTIN_ENGINES:  # symcheck's own engine: our bug; report it, keep going
                    pr.crashed[name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
                else:  # a user's plug-in that raised: a failure of its column, not symcheck's bug
                    pr.results[name] = _raised(name, program, e)
        self._ties_in_float(pr)
        self._dot_product_test(program, wrt, options, pr, case)
        able = [n for n in REFERENCE_ORDER if n in pr.results and _can_reference(pr.results[n])]
        # A float64 engine before one in lower precision (torch at float32 when symbolic gave up).
        able.sort(key=lambda n: PRECISION.get(pr.results[n].dtype, 0), reverse=True)
        pr.reference = able[0] if able else None
        compared = {n for n in pr.results if pr.results[n].has_derivatives}
        if pr.reference is None or len(compared) < 2:
            ran = ", ".join(sorted(compared)) or "none"
            if pr.skipped and not pr.crashed:
                why = "; ".join(f"{n} {reason}" for n, reason in pr.skipped.items())
                pr.uncompared = f"nothing to compare (derivatives from {ran} only): {why}"
            else:
                pr.problems.append(f"nothing to compare: engines that produced derivatives: {ran}")
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
            own = self._own_tolerance(name, overrides)
            # Held to the coarser of the two precisions: float64 against a float32 reference is
            # as good as that reference, no better.
            dtype = min((res.dtype, ref.dtype), key=lambda d: PRECISION.get(d, 0))
            tol = resolve_tolerance(name, dtype, own)
            second = resolve_tolerance(name, dtype, own, order=2)
            if own and (own.get("rtol") is not None or own.get("atol") is not None or own.get(name)):
                # a tolerance the case sets is the one it is held to, as written
                res.error_bounds, res.jacobian_error_bounds, res.jvp_error_bounds = {}, {}, []
            comparison = compare_results(res, ref, tol, output, second)
            pr.comparisons.append(comparison)
            explainable = not comparison.ok and pr.kink_hits and not comparison.failures
            failing = [c for c in comparison.checks if not c.ok]
            # A second derivative at a kink does not exist (the first jumps): every engine's
            # number there is a convention, whichever engine it is.
            second_only = bool(failing) and all(_second_order(c.what) for c in failing)
            if explainable and (
                name in KINK_SENSITIVE or second_only or any(c.nonfinite is None for c in failing)
            ):
                pr.conventions.append(
                    f"{name}: differs at a non-differentiable point ({'; '.join(pr.kink_hits)}); "
                    "engines' conventions differ there, this is not a gradient bug"
                )
        # Numbers are checked at the given values; a case with none (every input random) checks
        # them at every point, as constants (c: 3, a gradient that does not depend on the point),
        # rather than never.
        pinned = any(spec.concrete() for spec in prep.case.inputs.values()) or not prep.case.inputs
        self._check_expectations(prep, pr, ref, label == "given values" or not pinned, overrides)
        return pr

    @staticmethod
    def _ties_in_float(pr: PointResult) -> None:
        """At a non-differentiable point the symbolic closed form and the exact expansion can take
        the derivative by different conventions, neither wrong: the closed form, evaluated in
        float64, can miss an exact tie of computed values (softmax([1/2, 1/2]) is
        0.49999999999999994, not c = 1/2), and at ties nested in ties the chain rule of two
        conventions (min(min(r, c), r): 1/2 * 1/2) is not the convention of the whole, which the
        expansion may see (min(r, c): 1/2). The expansion's numbers stand as the reference there."""
        symbolic = pr.results.get("symbolic")
        if symbolic is None or not pr.kink_hits or not symbolic.failures:
            return
        if set(symbolic.failures) <= set(symbolic.expansion_failures):
            first = symbolic.failures[0]
            pr.conventions.append(
                f"symbolic: its closed form and the exact expansion take the derivative at this "
                f"non-differentiable point by different conventions ({first}); the expansion is the reference"
            )
            symbolic.failures = []

    def _dot_product_test(
        self, program: Program, wrt: list[str], options: EngineOptions, pr: PointResult, case: Case
    ) -> None:
        """Each engine that gave both VJPs and JVPs of a tensor output: u^T (J v) = (J^T u)^T v."""
        if program.output_type.shape == ():
            return
        floats = {n: program.inputs[n].type.shape for n in wrt if program.inputs[n].type.dtype is DType.FLOAT}
        probes = jacobian_probes(program.output_type.shape, floats, options)
        overrides = case.tolerance.as_overrides()
        for name, res in pr.results.items():
            if res.vjps and res.jvps:
                tol = resolve_tolerance(name, res.dtype, self._own_tolerance(name, overrides))
                res.failures.extend(adjoint_failures(res, probes, tol))

    @staticmethod
    def _impl(case: Case) -> Engine:

        return impl_engine(case)

    def _own_tolerance(self, name: str, overrides: Mapping | None) -> Mapping | None:
        """A plug-in's declared tolerance (Engine.tolerance) under the case's own overrides."""
        engine = self._engines.get(name)
        own = getattr(engine, "tolerance", None) if isinstance(engine, Engine) else None
        if own is None:
            return overrides
        return {"rtol": own[0], "atol": own[1], **(overrides or {})}

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
                closed = self._lowered(prep)
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
        self._check_tensor_expectations(prep, pr, ref, tol)

    def _check_tensor_expectations(
        self, prep: Prepared, pr: PointResult, ref: EngineResult, tol: Tolerance
    ) -> None:
        """VJP formulas at the shared first cotangent, and Hessian formulas, at this point."""
        program, output = prep.program, prep.program.output.name
        if program.output_type.shape != () and prep.formulas:
            floats = {n: program.inputs[n].type.shape for n in prep.formulas}
            options = EngineOptions(seed=prep.case.seed)
            u = jacobian_probes(program.output_type.shape, floats, options).cotangents[0]
            for name, parsed in prep.formulas.items():
                expect = prep.case.expect.grads[name]
                closed = self._lowered(prep)
                truth = _vjp_of(ref, name, u)
                if truth is None:
                    continue
                what = f"{closed.cotangent}^T d{output}/d{name}"
                values = closed.graph.evaluate(
                    closed.lower_formula(parsed), {**pr.inputs, closed.cotangent: u}
                )
                c = compare_arrays(what, np.broadcast_to(values, truth.shape), truth, tol)
                pr.expectations.append(
                    ExpectationCheck(what, expect.formula or "", c.ok, _detail(c), expect.line)
                )
        for name, parsed in prep.hessians.items():
            expect = prep.case.expect.hessians[name]
            block = ref.hessian.get(hessian_key(name, name))
            if block is None:
                continue
            closed = self._lowered(prep)
            what = f"d2{output}/d{name}2"
            values = closed.graph.evaluate(closed.lower_formula(parsed), pr.inputs)
            try:
                values = np.broadcast_to(values, block.shape)
            except ValueError:
                detail = f"the formula has shape {values.shape}, the Hessian block {block.shape}"
                pr.expectations.append(
                    ExpectationCheck(what, expect.formula or "", False, detail, expect.line)
                )
                continue
            c = compare_arrays(what, values, block, tol)
            pr.expectations.append(
                ExpectationCheck(what, expect.formula or "", c.ok, _detail(c), expect.line)
            )

    def _lowered(self, prep: Prepared):  # type: ignore[no-untyped-def]
        """Enough of the closed form to evaluate a claimed formula at points: never runs away."""
        from symcheck.engines.symbolic import SymbolicEngine

        engine = self.engine("symbolic")
        assert isinstance(engine, SymbolicEngine)
        return engine.lowered(prep.program)

    def _closed_form(self, prep: Prepared, name: str):  # type: ignore[no-untyped-def]
        # Lazily, here and below: sympy loads only for cases whose expectations or mistakes need it.
        from symcheck.engines.symbolic import SymbolicEngine

        engine = self.engine("symbolic")
        assert isinstance(engine, SymbolicEngine)
        wrt = list(prep.case.wrt) if prep.case.wrt else prep.program.float_inputs()
        return engine.closed_form(prep.program, wrt)

    def _refute_mistakes(self, prep: Prepared, result: CaseResult, deadline: float | None) -> None:
        from symcheck.checks.diagnose import diagnose
        from symcheck.engines import cache as derived
        from symcheck.engines.symbolic.budget import gave_up_in, time_limit

        given = result.points[0] if result.points else None
        budget = getattr(prep.case, "timeout", None)
        for mistake in prep.case.mistakes:
            try:
                with time_limit(_remaining(deadline)):  # simplifying a candidate can run away
                    closed = self._closed_form(prep, mistake.wrt)
                    point = given.inputs if given else None
                    label = given.label if given else None
                    # Decided by the program, the claim, the point and the seed only: kept (in
                    # memory and on disk) as proofs are; simplify is the slow part of it.
                    key = derived.program_key(
                        prep.program,
                        list(closed.grads),
                        mistake.wrt,
                        mistake.formula,
                        _point_key(point),
                        label,
                        prep.case.seed,
                    )
                    d = derived.reuse(
                        "diagnosis",
                        key,
                        partial(
                            diagnose,
                            closed,
                            mistake.wrt,
                            mistake.formula,
                            source=mistake.source,
                            point=point,
                            point_label=label,
                            seed=prep.case.seed,
                        ),
                    )
            except Exception as e:  # GaveUp, or a library's wrapping of it
                if not gave_up_in(e):
                    raise
                refuted, where = self._refuted_at_points(prep, mistake, result)
                undecided = f"undecided: the diagnosis gave up after {budget:g} s" + (
                    f"; refuted {where} (the reason is not checked)" if refuted else ""
                )
                result.mistakes.append(
                    MistakeCheck(
                        mistake.wrt,
                        mistake.formula,
                        refuted,
                        undecided,
                        mistake.because,
                        mistake.line,
                        undecided=True,
                    )
                )
                continue
            result.mistakes.append(
                MistakeCheck(
                    mistake.wrt,
                    mistake.formula,
                    not d.correct and not d.holds,
                    d.likely_mistake,
                    mistake.because,
                    mistake.line,
                )
            )

    def _refuted_at_points(self, prep: Prepared, mistake: Any, result: CaseResult) -> tuple[bool, str]:
        """Whether a mistaken formula differs from the reference's gradient at one of the points
        (and at which): what is left to check when the symbolic diagnosis runs out of time."""
        lowered = self._lowered(prep)
        claimed = lowered.lower_formula(parse(mistake.formula, mistake.source))
        tol = resolve_tolerance("expect", "float64", None)
        for p in result.points:
            ref = p.results.get(p.reference or "")
            truth = None if ref is None else ref.grads.get(mistake.wrt)
            if truth is None:
                continue
            try:
                values = np.broadcast_to(lowered.graph.evaluate(claimed, p.inputs), truth.shape)
            except ValueError:
                return True, f"at the {p.label} (its shape is not {mistake.wrt}'s)"
            if not compare_arrays(mistake.wrt, values, truth, tol).ok:
                return True, f"at the {p.label}"
        return False, ""

    def _prove_formulas(
        self, prep: Prepared, wrt: list[str], result: CaseResult, deadline: float | None
    ) -> None:
        # lazily: only cases with formulas need SymPy here
        from symcheck.engines import cache as derived
        from symcheck.engines.symbolic.budget import gave_up_in, time_limit

        budget = getattr(prep.case, "timeout", None)
        for name, parsed in prep.formulas.items():
            expect = prep.case.expect.grads[name]
            proof: FormulaProof | None = None
            # One budget for the proof and the diagnosis of a claim: simplifying claimed - true
            # can run away (a 17-digit decimal against log(10)), and so can each candidate mistake.
            try:
                with time_limit(_remaining(deadline)):
                    closed = self._closed_form(prep, name)
                    # The verdict depends on the program, its shapes, wrt and the formula only: kept
                    # (in memory and on disk) as closed forms are, since simplify is the slow part.
                    wrt_of_closed = list(prep.case.wrt) if prep.case.wrt else prep.program.float_inputs()
                    key = derived.program_key(prep.program, wrt_of_closed, name, parsed.source.text)
                    try:
                        proven, shown, how = derived.reuse(
                            "proof", key, partial(_verdict, closed, name, parsed, _remaining(deadline))
                        )
                    except _Undecided as undecided:  # not kept: a later run, given longer, tries again
                        proven, shown, how = undecided.verdict
                    proof = FormulaProof(name, expect.formula or "", proven, shown, expect.line, how=how)
                    result.proofs.append(proof)
                    if not proven and expect.kind == "grad":
                        self._diagnose(closed, name, expect, result)
            except Exception as e:  # GaveUp, or a library's wrapping of it
                if not gave_up_in(e):
                    raise
                if proof is None:
                    undecided = f"undecided: the proof gave up after {budget:g} s"
                    result.proofs.append(
                        FormulaProof(name, expect.formula or "", False, undecided, expect.line)
                    )
                else:
                    proof.likely_mistake = None  # the diagnosis ran out of time; the checks at points stand
            if expect.kind == "vjp":
                cotangent = self._lowered(prep).cotangent
                result.proofs[-1].what = f"{cotangent}^T d{prep.program.output.name}/d{name}"
        for name, parsed in prep.hessians.items():
            try:
                with time_limit(_remaining(deadline)):
                    self._prove_hessian(prep, wrt, name, parsed, result)
            except Exception as e:  # GaveUp, or a library's wrapping of it
                if not gave_up_in(e):
                    raise
                expect = prep.case.expect.hessians[name]
                undecided = f"undecided: the proof gave up after {budget:g} s"
                what = f"d2{prep.program.output.name}/d{name}2"
                result.proofs.append(
                    FormulaProof(name, expect.formula or "", False, undecided, expect.line, what=what)
                )

    def _prove_hessian(
        self, prep: Prepared, wrt: list[str], name: str, parsed: ParsedProgram, result: CaseResult
    ) -> None:
        """K claimed for d2out/dx2: proven when K v equals the closed form of H v along x alone."""
        import sympy  # lazily: only cases with Hessian formulas need it here

        from symcheck.engines.symbolic import SymbolicEngine
        from symcheck.engines.symbolic.closed_form import SymTensor, simplify

        expect = prep.case.expect.hessians[name]
        engine = self.engine("symbolic")
        assert isinstance(engine, SymbolicEngine)
        closed = self._closed_form(prep, name)
        second = engine.second_order(
            prep.program, list(prep.case.wrt) if prep.case.wrt else prep.program.float_inputs()
        )
        graph = closed.graph
        shape = prep.program.inputs[name].type.shape
        v = graph.input(second.directions[name], shape)
        claimed = closed.lower_formula(parsed)
        applied = _apply_matrix(graph, claimed, v) if shape else SymTensor(claimed.expr * v.expr, ())
        others = {
            graph.input(label, prep.program.inputs[m].type.shape).expr: sympy.Integer(0)
            for m, label in second.directions.items()
            if m != name
        }
        true = second.hvp[name].expr.xreplace(others)
        difference = simplify(SymTensor(applied.expr - true, shape), lambda e: True, budget=None)
        proven = difference.expr == 0
        output = prep.program.output.name
        result.proofs.append(
            FormulaProof(
                name,
                expect.formula or "",
                proven,
                None if proven else f"{closed.printer(difference.expr)}   (as (claimed - true) @ {v.expr})",
                expect.line,
                how="equal to the closed form of H v" if proven else "not proven",
                what=f"d2{output}/d{name}2",
            )
        )

    @staticmethod
    def _diagnose(closed: Any, name: str, expect: GradExpect, result: CaseResult) -> None:
        """Where a wrong formula parts from the truth, at the first point where its check failed."""
        from symcheck.checks.diagnose import diagnose

        what = f"d{result.program.output.name}/d{name}"
        failed = next((p for p in result.points for e in p.expectations if e.what == what and not e.ok), None)
        point = failed or (result.points[0] if result.points else None)
        proof = result.proofs[-1]
        try:
            found = diagnose(
                closed,
                name,
                expect.formula or "",
                expect.formula_source,
                None if point is None else point.inputs,
                point_label=None if point is None else f"the {point.label}",
                seed=result.case.seed,
            )
        except Exception as e:  # a heuristic must never turn a clear WRONG into a crash
            result.notes.append(f"could not diagnose the expected {what}: {type(e).__name__}: {e}")
            return
        proof.likely_mistake, proof.differs_at = found.likely_mistake, found.where()


def _raised(name: str, program: Program, e: Exception) -> EngineResult:
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" (at {where.filename}:{where.lineno} in {where.name})" if where else ""
    return EngineResult(
        name,
        np.full(program.output_type.shape, np.nan),
        {},
        failures=[f"the engine plug-in raised {type(e).__name__}: {e}{at}"],
    )


def _apply_matrix(graph: Any, matrix: Any, v: Any) -> Any:
    """K @ v with K distributed over its terms, (A + A.T) @ v as A @ v + A.T @ v, so that it meets
    the closed form of H v term by term."""
    import sympy  # lazily: only Hessian formulas get here

    from symcheck.engines.symbolic.closed_form import SymTensor

    terms = []
    for term in sympy.Add.make_args(sympy.expand(matrix.expr)):
        coeff, rest = term.as_coeff_Mul()
        atom = graph.atoms.get(rest)
        if atom is not None and atom.op == "eye":
            terms.append(coeff * v.expr)
        elif atom is not None and atom.op == "matmul" and all(len(a.shape) == 2 for a in atom.args):
            # (M1 @ M2) @ v as M1 @ (M2 @ v): the order reverse mode produces
            inner = _apply_matrix(graph, atom.args[1], v)
            terms.append(coeff * _apply_matrix(graph, atom.args[0], inner).expr)
        else:
            terms.append(coeff * graph.matmul(SymTensor(rest, matrix.shape), v).expr)
    return SymTensor(sympy.Add(*terms), matrix.shape[:1])


def _vjp_of(result: EngineResult, name: str, u: np.ndarray) -> np.ndarray | None:
    """J^T u from an engine's result: its VJP along the first shared cotangent, or its Jacobian."""
    if result.vjps and name in result.vjps[0]:
        return result.vjps[0][name]
    if name in result.jacobians:
        return np.tensordot(u, result.jacobians[name], axes=u.ndim)
    return None


def _printed_difference(printer: Callable[[Any], str], expr: Any) -> str:
    """claimed - true in the language, or why it cannot be shown."""
    from symcheck.engines.symbolic.printer import Unprintable  # lazily: cases with formulas only

    try:
        return printer(expr)
    except ValueError:  # an integer past Python's 4300 printable digits
        return "(a difference too large to print)"
    except Unprintable as e:
        return f"(no form in the language: {e})"


def _second_order(what: str) -> bool:
    """Whether a comparison's quantity is a second derivative (a Hessian block, H v, v^T H v)."""
    return what.startswith(("d2", "(H v", "v^T H v"))


def _can_reference(result: EngineResult) -> bool:
    """A reference gives every derivative the others are compared with: the gradient, the Jacobian,
    or (above the Jacobian budget) the VJPs along the shared cotangents."""
    return bool(result.grads or result.jacobians or result.vjps)


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


# (cases done, cases in all, the case just done): a progress display's hook.
ProgressHook = Callable[[int, int, CaseResult], None]


def run_cases(
    cases: Sequence[Case],
    engines: Mapping[str, Engine] | None = None,
    *,
    jobs: int = 1,
    progress: ProgressHook | None = None,
) -> tuple[list[CaseResult], list[SymcheckError]]:
    """Every case, in order. `jobs` > 1 runs them in that many worker processes (results still
    in the cases' order); ready engine instances (`engines`) cannot cross processes, so they run here."""
    prepared, errors = prepare(cases)
    if errors:
        return [], errors
    if jobs > 1 and len(prepared) > 1 and not engines:
        return _run_parallel(cases, len(prepared), min(jobs, len(prepared)), progress), []
    runner = Runner(engines)
    results: list[CaseResult] = []
    for p in prepared:
        results.append(runner.run_safely(p))
        if progress is not None:
            progress(len(results), len(prepared), results[-1])
    return results, []


# A worker process's own prepared cases and Runner (engines load once per process).
_worker: tuple[list[Prepared], Runner] | None = None


def _init_worker(
    cases: Sequence[Case],
    plugins: Mapping[str, str],
    threads: int,
    limit: Limits,
    env: Mapping[str, str | None],
    cwd: str,
) -> None:
    global _worker
    import os
    import sys

    # A forkserver's child has the environment and folder of the server's start, not the parent's now.
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    os.chdir(cwd)

    # The parent's limits (--limit, [tool.symcheck.limits]) hold here too, for the rest of the process.
    limits.using(limit).__enter__()

    # N workers each with a full-size torch thread pool would oversubscribe the cores.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if "torch" in sys.modules:  # preloaded by the forkserver: its pool size was read at import
        sys.modules["torch"].set_num_threads(threads)

    for name, spec in plugins.items():  # --engine-plugin registrations live in the parent only
        engine_module.register_engine(engine_module.import_engine_class(spec), name)
    prepared, _ = prepare(cases)  # the parent has checked them: no errors here
    _worker = (prepared, Runner())


def run_one(index: int) -> CaseResult:
    """In a worker process: run the prepared case at `index` of the cases it was started with."""
    assert _worker is not None, "run_one runs in a worker started by run_cases(jobs=...)"
    prepared, runner = _worker
    return runner.run_safely(prepared[index])


def _run_parallel(
    cases: Sequence[Case], count: int, jobs: int, progress: ProgressHook | None
) -> list[CaseResult]:
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    plugins = getattr(engine_module, "registered_engines", dict)()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    results: list[CaseResult | None] = [None] * count
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=_worker_context(),
        initializer=_init_worker,
        initargs=(list(cases), plugins, threads, limits.current(), dict(_worker_env()), os.getcwd()),
    )
    try:
        # The longest first: a long case started last would leave the other workers idle at the end.
        order = sorted(range(count), key=lambda i: -_expected_cost(cases[i]))
        futures = {pool.submit(run_one, i): i for i in order}
        for done, future in enumerate(as_completed(futures), start=1):
            result = results[futures[future]] = future.result()
            if progress is not None:
                progress(done, count, result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]


__all__ = [
    "CaseResult",
    "ExpectationCheck",
    "PointResult",
    "Prepared",
    "Runner",
    "Tolerance",
    "prepare",
    "run_cases",
    "run_one",
    "start_worker_server",
]


# What every worker imports: loaded once in the forkserver, so each worker starts with them (about
# 2.5 s of imports otherwise, per worker). Modules that fail to import are skipped there.
_PRELOAD = [
    "symcheck.checks.runner",
    "symcheck.engines.symbolic.engine",
    "symcheck.engines.autograd.engine",
    "symcheck.engines.numeric.engine",
    "symcheck.engines.torch.engine",
]


def _worker_context() -> Any:
    """A forkserver that has imported the engines (torch, SymPy) and forks each worker from there.
    Never plain fork: a forked child of a process that has started torch's threads can deadlock;
    the server only imports, it runs nothing. spawn where there is no forkserver (Windows)."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def start_worker_server() -> None:
    """Start the forkserver (`_worker_context`) now, so that its imports run while this process
    does other work (loads the suites); run_cases(jobs=...) forks its workers from it later."""
    context = _worker_context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _worker_env() -> Iterator[tuple[str, str | None]]:
    """The parent's settings a worker must see (the forkserver keeps those of its own start)."""
    import os

    for key in os.environ.keys() | {"SYMCHECK_CACHE_DIR", "SYMCHECK_NO_CACHE"}:
        if key.startswith("SYMCHECK_") or key in ("OMP_NUM_THREADS", "XDG_CACHE_HOME", "HOME"):
            yield key, os.environ.get(key)


class _Undecided(Exception):
    """A proof that ran out of its budget: its verdict, raised so that the cache does not keep it."""

    def __init__(self, verdict: tuple[bool, str | None, str]) -> None:
        super().__init__(verdict[2])
        self.verdict = verdict


def _verdict(
    closed: Any, name: str, parsed: ParsedProgram, seconds: float | None
) -> tuple[bool, str | None, str]:
    """Whether a claimed formula is the closed form's gradient (symcheck/engines/symbolic/prover.py):
    proven, claimed - true shown when not (or why it is undecided), and how."""
    from symcheck.engines.symbolic.prover import PROOF_SECONDS

    budget = PROOF_SECONDS if seconds is None else min(seconds, PROOF_SECONDS)
    proof = closed.prove(name, parsed, seconds=budget)
    if proof.proven:
        return True, None, proof.how
    if proof.undecided:
        raise _Undecided((False, proof.how, proof.how))
    if proof.difference is None:
        return False, proof.how, proof.how
    return False, _printed_difference(closed.printer, proof.difference.expr), proof.how


def _expected_cost(case: Case) -> float:
    """A rough guess at a case's time, for scheduling only: the exact expansion grows with the input
    elements (up to the budget, past it a probe shape), second order and training cost more, and
    each point, claim and mistake adds its share."""
    elements = sum(int(np.prod(spec.shape or ())) for spec in case.inputs.values())
    expansion = min(elements, case.expansion_budget or 0) + 10
    points = 1 + (case.samples or 0)
    claims = len(case.expect.grads) + len(case.expect.hessians) + len(case.mistakes)
    order = 4 if getattr(case, "order", 1) >= 2 else 1
    train = 5 if case.train is not None else 1
    return expansion * order * train * points + 50 * claims


def _point_key(point: Mapping[str, np.ndarray] | None) -> tuple | None:
    """A point as a cache key: every input's dtype, shape and bytes."""
    if point is None:
        return None
    arrays = {n: np.asarray(v) for n, v in point.items()}
    return tuple((n, v.dtype.str, v.shape, v.tobytes()) for n, v in arrays.items())


def _remaining(deadline: float | None) -> float | None:
    """Seconds left of a case's time budget: its points, proofs and diagnoses share one budget.
    Spent already: a millisecond, so the next exact step gives up at once (0 would mean no limit)."""
    return None if deadline is None else max(deadline - time.monotonic(), 1e-3)
