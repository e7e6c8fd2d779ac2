"""The symbolic engine: closed forms and expansion, each checking the other."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import sympy

from symcheck.engines import cache as derived
from symcheck.engines.base import (
    HVP,
    Engine,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    second_order_directions,
    tensor_derivatives,
    wants_full_hessian,
    wants_full_jacobian,
)
from symcheck.engines.symbolic.budget import GaveUp, gave_up_in, raised_in_sympy, time_limit
from symcheck.engines.symbolic.closed_form import Graph, SymTensor, simplify
from symcheck.engines.symbolic.expansion import (
    Expansion,
    JacobianExpansion,
    NotEvaluable,
    WithSymEngineForms,
    exact_floats,
    exact_number,
    exact_value,
    expand_gradient,
    expand_jacobian,
    expanded_size,
    symengine_substitution,
)
from symcheck.engines.symbolic.printer import LanguagePrinter, Unprintable, printable
from symcheck.engines.symbolic.probes import NO_PROBE, at_shapes, probe_point, probe_shapes
from symcheck.engines.symbolic.rules import DEFINITIONS
from symcheck.engines.symbolic.second_order import SecondOrder, expansion_hessian
from symcheck.language.ir import Program, TensorType, cotangent_name
from symcheck.language.parser import ParsedProgram, bind

T = TypeVar("T")

# Closed form and expansion are both exact; they may differ only by float64 evaluation noise.
AGREEMENT_RTOL = 1e-9
AGREEMENT_ATOL = 1e-12


TANGENT_PREFIX = "_tangent_"  # never a user's name: identifiers cannot start with "_"


@dataclass
class ClosedForm:
    """A program's output and gradients as SymTensors, with their printed forms.

    For a tensor output the "gradient" of each input is the vector-Jacobian product at a generic
    cotangent `cotangent` of the output's shape (J^T v, printed `v*sigmoid(x)*(...)`), an input atom
    of the graph like the others; `jvp()` derives the Jacobian-vector product from it.
    """

    program: Program
    graph: Graph
    env: dict[str, SymTensor]
    output: SymTensor
    grads: dict[str, SymTensor]
    printer: LanguagePrinter
    printed: dict[str, str] = field(default_factory=dict)
    cotangent: str | None = None
    _jvp: SymTensor | None = None

    @classmethod
    def derive(cls, program: Program, wrt: Sequence[str]) -> ClosedForm:
        graph = Graph()
        env = graph.lower(program)
        output = env[program.output.id]
        printer = LanguagePrinter(graph)
        cotangent = cotangent_name(program) if output.shape != () else None
        seed = graph.input(cotangent, output.shape) if cotangent is not None else None
        raw = graph.gradients(output, list(wrt), seed=seed)
        grads = {n: simplify(g, lambda e: printable(printer, e)) for n, g in raw.items()}
        printed = {n: _printed(printer, g.expr) for n, g in grads.items()}
        return cls(program, graph, env, output, grads, printer, printed, cotangent)

    @classmethod
    def lowered(cls, program: Program) -> ClosedForm:
        """The program's graph without its gradients: enough to evaluate a user's formula at points
        (lower_formula, graph.evaluate) in milliseconds, where deriving the gradients may not end."""
        graph = Graph()
        env = graph.lower(program)
        output = env[program.output.id]
        cotangent = cotangent_name(program) if output.shape != () else None
        return cls(program, graph, env, output, {}, LanguagePrinter(graph), {}, cotangent)

    def evaluate_vjp(self, inputs: Mapping[str, np.ndarray], u: np.ndarray) -> dict[str, np.ndarray]:
        """J^T u for each input, at a point, for a tensor output."""
        assert self.cotangent is not None
        point = {**inputs, self.cotangent: np.asarray(u, dtype=np.float64)}
        cache: dict = {}
        return {n: self.graph.evaluate(g, point, cache) for n, g in self.grads.items()}

    def jvp(self) -> SymTensor:
        """J v in closed form: the gradient, with respect to the cotangent, of sum(VJP * tangent)
        over the inputs (the VJP is linear in the cotangent, so this is exact, not an estimate)."""
        assert self.cotangent is not None
        if self._jvp is None:
            terms = []
            for n, g in self.grads.items():
                tangent = self.graph.input(TANGENT_PREFIX + n, g.shape)
                terms.append(
                    self.graph.reduce("sum", SymTensor(g.expr * tangent.expr, g.shape), None, False).expr
                )
            inner = SymTensor(sympy.Add(*terms), ())
            self._jvp = self.graph.gradients(inner, [self.cotangent])[self.cotangent]
        return self._jvp

    def evaluate_jvp(self, inputs: Mapping[str, np.ndarray], v: Mapping[str, np.ndarray]) -> np.ndarray:
        assert self.cotangent is not None
        point = {**inputs, **{TANGENT_PREFIX + n: np.asarray(v[n], dtype=np.float64) for n in self.grads}}
        point[self.cotangent] = np.ones(self.output.shape)  # J v does not depend on it
        return self.graph.evaluate(self.jvp(), point)

    def evaluate(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        cache: dict = {}
        value = self.graph.evaluate(self.output, inputs, cache)
        return value, {n: self.graph.evaluate(g, inputs, cache) for n, g in self.grads.items()}

    def lower_formula(self, parsed: ParsedProgram) -> SymTensor:
        """A user's formula (e.g. an expected gradient) over the same atoms as the closed form.

        It may name inputs and the program's steps (a rebound step means its last value), and for a
        tensor output the cotangent (`v`) of a VJP formula.
        """
        types: dict[str, TensorType] = {n: d.type for n, d in self.program.inputs.items()}
        steps = {s.name: s for s in self.program.steps}
        names = parsed.free_names()
        for name in names:
            if name not in types and name in steps:
                t = steps[name].expr.type
                assert t is not None
                types[name] = t
        if self.cotangent is not None and self.cotangent in names:  # a VJP formula names the cotangent
            types[self.cotangent] = TensorType(self.output.shape)
        formula = bind(parsed, {n: types[n] for n in names if n in types})
        env = dict(self.env)
        for name in names:
            if name in steps and name not in self.program.inputs:
                env[name] = self.env[steps[name].id]
        if self.cotangent is not None and self.cotangent in names:
            env[self.cotangent] = self.graph.input(self.cotangent, self.output.shape)
        return self.graph.lower(formula, env)[formula.output.id]

    def prove(self, name: str, parsed: ParsedProgram, seconds: float | None = None) -> Any:
        """Whether the claimed formula is d out/d name: a prover.Proof (proven, how, difference)."""
        from symcheck.engines.symbolic import prover

        return prover.prove(self, name, parsed, seconds=prover.PROOF_SECONDS if seconds is None else seconds)

    def difference(self, name: str, claimed: SymTensor) -> SymTensor:
        """claimed - true gradient, simplified; zero when the claim is proven."""
        true = self.grads[name]
        difference = SymTensor(claimed.expr - true.expr, true.shape)
        return simplify(difference, lambda e: printable(self.printer, e), budget=None)  # a proof


def _printed(printer: LanguagePrinter, expr: sympy.Expr) -> str:
    """The closed form in the language; what the language cannot say is said so, not a crash."""
    try:
        return printer(expr)
    except Unprintable as e:
        return f"(no closed form in the language: {e})"


def exact_text(value: sympy.Expr) -> str | None:
    """The exact value when it is a readable rational (27, 9/2), else None."""
    if value.is_Rational and abs(value.q) < 10**6 and abs(value.p) < 10**15:
        return str(value)
    return None


class SymbolicEngine(Engine):
    name = "symbolic"
    description = "SymPy: exact closed forms (size-independent) and element-by-element expansion"

    def __init__(self) -> None:
        self._closed: dict[tuple[int, tuple[str, ...]], ClosedForm] = {}
        self._expanded: dict[tuple[int, tuple[str, ...]], Expansion] = {}
        self._second: dict[tuple[int, tuple[str, ...]], SecondOrder] = {}
        self._exact_hessians: dict[tuple[int, tuple[str, ...]], dict[str, np.ndarray]] = {}
        self._jacobians: dict[tuple[int, tuple[str, ...]], JacobianExpansion] = {}
        self._gave_up: dict[tuple[int, tuple[str, ...]], str] = {}
        self._lowered: dict[int, ClosedForm] = {}
        self._probes: dict[tuple[int, tuple[str, ...], int, int, float], str | ClosedFormDisagreement] = {}
        self._second_probes: dict[tuple[int, tuple[str, ...], int, int, float], tuple[str, list[str]]] = {}
        self._keep: list[Program] = []  # keeps cached programs alive so their ids stay unique

    def closed_form(self, program: Program, wrt: Sequence[str]) -> ClosedForm:
        key = (id(program), tuple(wrt))
        if key not in self._closed:
            self._keep.append(program)

            def dump(c: ClosedForm) -> tuple:
                c.graph.prepare(c.output, *c.grads.values())  # the numpy functions' sources go with it
                return (c.graph, c.env, c.output, c.grads, c.printed, c.cotangent)

            def load(stored: tuple) -> ClosedForm:
                graph, env, output, grads, printed, cotangent = stored
                printer = LanguagePrinter(graph)
                return ClosedForm(program, graph, env, output, grads, printer, printed, cotangent)

            self._closed[key] = derived.reuse(
                "closed-form",
                derived.program_key(program, wrt),
                lambda: ClosedForm.derive(program, wrt),
                dump,
                load,
            )
        return self._closed[key]

    def lowered(self, program: Program) -> ClosedForm:
        """The closed form when derived already, else the program's graph alone (ClosedForm.lowered)."""
        derived = next((c for (pid, _), c in self._closed.items() if pid == id(program)), None)
        if derived is not None:
            return derived
        if id(program) not in self._lowered:
            self._keep.append(program)
            self._lowered[id(program)] = ClosedForm.lowered(program)
        return self._lowered[id(program)]

    def expansion(self, program: Program, wrt: Sequence[str]) -> Expansion:
        key = (id(program), tuple(wrt))
        if key not in self._expanded:
            self._keep.append(program)
            self._expanded[key] = _kept("expansion", program, wrt, expand_gradient)
        return self._expanded[key]

    def second_order(self, program: Program, wrt: Sequence[str]) -> SecondOrder:
        key = (id(program), tuple(wrt))
        if key not in self._second:
            self._second[key] = SecondOrder.derive(self.closed_form(program, wrt), wrt)
        return self._second[key]

    def jacobian_expansion(self, program: Program, wrt: Sequence[str]) -> JacobianExpansion:
        key = (id(program), tuple(wrt))
        if key not in self._jacobians:
            self._keep.append(program)
            self._jacobians[key] = _kept("jacobian-expansion", program, wrt, expand_jacobian)
        return self._jacobians[key]

    def run(
        self, program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str], options: EngineOptions
    ) -> EngineResult:
        key = (id(program), tuple(wrt))
        if key in self._gave_up:  # the same exact work again would take as long again
            raise EngineUnavailable(self._gave_up[key])
        seconds = options.time_budget
        if options.deadline is not None:
            seconds = options.deadline - time.monotonic()
        try:
            if seconds is not None and seconds <= 0:  # the case's budget is spent already
                raise GaveUp()
            with time_limit(seconds):
                return self._run(program, inputs, wrt, options)
        except NotEvaluable as e:  # where no closed-form fallback was at hand (a Hessian, a probe)
            raise EngineUnavailable(f"the expansion cannot be evaluated at this point (SymPy: {e})") from None
        except (ValueError, TypeError) as e:
            if not raised_in_sympy(e):
                raise
            # SymPy's own failure on a valid expression (its Piecewise solving a condition as a set:
            # "The argument ... is not comparable"): a limit of the engine here, not a crash of ours.
            raise EngineUnavailable(
                f"SymPy cannot build this expression's exact form ({type(e).__name__}: {str(e)[:120]})"
            ) from None
        except RecursionError:  # outside the CLI's recursion allowance (limits.using)
            raise EngineUnavailable(
                "the expression nests too deeply for SymPy's recursion here (name intermediate steps)"
            ) from None
        except Exception as e:
            # The alarm can land inside a C-level call of SymPy's, which then reports the GaveUp
            # as "SystemError: ... returned a result with an exception set", or inside Lark.
            if not gave_up_in(e):
                raise
            self._keep.append(program)
            self._gave_up[key] = (
                f"gave up after {options.time_budget:g} s: the exact work is too heavy for this "
                "expression (the other engines still check it; --timeout gives it longer)"
            )
            raise EngineUnavailable(self._gave_up[key]) from None

    def _run(
        self, program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str], options: EngineOptions
    ) -> EngineResult:
        start = time.perf_counter()
        if program.output_type.shape != ():
            return self._tensor_output(program, inputs, wrt, options, start)
        closed = self.closed_form(program, wrt)
        value, grads = closed.evaluate(inputs)
        result = EngineResult(
            engine=self.name, value=value, grads=grads, closed_forms=dict(closed.printed), dtype="float64"
        )
        too_large = self._too_large(program, wrt, options)
        if too_large is None:
            try:
                self._use_expansion(program, inputs, wrt, result)
            except NotEvaluable as e:
                result.notes.append(_not_evaluable(e))
        else:
            result.notes.append(
                f"expansion skipped: {too_large}; "
                "values and gradients are the closed form evaluated in float64"
            )
            try:
                result.notes.append(self._probe(program, wrt, options))
            except ClosedFormDisagreement as e:
                result.failures.append(f"closed form disagrees with the expansion {e}")
        if options.order >= 2:
            self._second_derivatives(program, inputs, wrt, options, result, too_large is None)
        result.seconds = time.perf_counter() - start
        return result

    def _too_large(
        self, program: Program, wrt: Sequence[str], options: EngineOptions, probe: bool = False
    ) -> str | None:
        """Why the expansion does not run on `program` (None: it does): more input elements than the
        budget, or more estimated work than it is worth where the probe shape proves the closed form
        (a probe may take ten times a case's work: it is the proof then)."""
        elements = sum(d.type.size for d in program.inputs.values())
        if elements > options.expansion_budget:
            return f"{elements} input elements > budget {options.expansion_budget}"
        key = derived.program_key(program, wrt, probe, options.expansion_work)
        return derived.reuse(
            "too-large", key, lambda: self._too_much_work(program, wrt, options, probe), on_disk=False
        )

    @staticmethod
    def _too_much_work(
        program: Program, wrt: Sequence[str], options: EngineOptions, probe: bool
    ) -> str | None:
        work = _expansion_work(program, wrt)
        # Where the probe shape is no smaller than the case's (or there is none), the case is its own probe.
        smaller = None if probe else at_shapes(program, probe_shapes(program))
        if smaller is None or _expansion_work(smaller, wrt) >= work:
            limit = options.expansion_work * 10
        else:
            limit = options.expansion_work
        if work > limit:
            return f"estimated work {_magnitude(work)} > {_magnitude(limit)} (expanded size x wrt elements)"
        return None

    def _second_derivatives(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
        result: EngineResult,
        expanded: bool,
    ) -> None:
        second = self.second_order(program, wrt)
        result.hessian_forms = dict(second.printed)
        shapes = {n: program.inputs[n].type.shape for n in wrt}
        if not expanded:
            result.notes.append(self._probe_second_order(program, wrt, options, result))
        if not wants_full_hessian(shapes, options):
            directions = second_order_directions(shapes, options)
            result.hvps = [HVP(d, second.evaluate(inputs, d)) for d in directions]
            result.notes.append(
                f"second derivatives: H v in closed form along {len(directions)} random directions"
            )
            return
        closed = second.full_hessian(inputs)
        if not expanded:
            result.hessian = closed
            result.notes.append("second derivatives: full Hessian from the closed form of H v")
            return
        key = (id(program), tuple(wrt))
        if key not in self._exact_hessians:
            self._exact_hessians[key] = _kept(
                "exact-hessian", program, wrt, lambda p, w: expansion_hessian(self.expansion(p, w), w)
            )
        subs = self.expansion(program, wrt).substitution(inputs)
        exact = {
            k: exact_floats(block, subs) if block.size else np.zeros(block.shape)
            for k, block in self._exact_hessians[key].items()
        }
        # At a kink the expansion's second derivative is DiracDelta(0), undefined (nan): there the
        # closed form's convention stands in, as the first derivative's does, and says so.
        undefined = 0
        for k, block in exact.items():
            gap = np.isnan(block) & np.isfinite(closed[k])
            if gap.any():
                undefined += int(gap.sum())
                exact[k] = np.where(gap, closed[k], block)
        if undefined:
            result.notes.append(
                f"second derivatives: {undefined} element(s) undefined at this point (a kink: the "
                "expansion's DiracDelta); the closed form's convention is used there"
            )
        disagreements = _disagreements(closed, exact)
        if disagreements:
            result.failures.extend(
                f"closed-form H v disagrees with the expanded Hessian: {d}" for d in disagreements
            )
        else:
            result.notes.append(
                "second derivatives: exact Hessian by expansion; closed-form H v agrees with it"
            )
        result.hessian = exact

    def _use_expansion(
        self, program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str], result: EngineResult
    ) -> None:
        expansion = self.expansion(program, wrt)
        subs = expansion.substitution(inputs)
        fast_subs = symengine_substitution(subs)
        value, exact = exact_value(expansion.output, subs, fast_subs)
        grads = {
            name: exact_floats(g, subs, fast_subs) if g.size else np.zeros(g.shape)
            for name, g in expansion.grads.items()
        }
        disagreements = _disagreements(result.grads, grads)
        if disagreements:
            found = [f"closed form disagrees with the expansion: {d}" for d in disagreements]
            result.expansion_failures = found
            result.failures.extend(result.expansion_failures)
        else:
            result.notes.append("closed form = expansion (exact, element by element) at this point")
        result.value = np.asarray(value, dtype=np.float64)
        result.grads = grads
        result.exact_value = None if exact is None else exact_text(exact)

    def _probe_second_order(
        self, program: Program, wrt: Sequence[str], options: EngineOptions, result: EngineResult
    ) -> str:
        """Above the budget, the closed form of H v against the exact expanded Hessian at a probe
        shape: once per program (the probe point is its own), its failures replayed at each point."""
        key = (id(program), tuple(wrt), options.seed, options.expansion_budget, options.expansion_work)
        if key not in self._second_probes:
            self._keep.append(program)
            found = EngineResult(engine=self.name, value=np.zeros(()), grads={})
            note = self._probe_second_order_once(program, wrt, options, found)
            self._second_probes[key] = (note, list(found.failures))
        note, failures = self._second_probes[key]
        result.failures.extend(failures)
        return note

    def _probe_second_order_once(
        self, program: Program, wrt: Sequence[str], options: EngineOptions, result: EngineResult
    ) -> str:
        shapes = probe_shapes(program)
        probe = at_shapes(program, shapes)
        if probe is None:
            return "closed form of H v not checked by expansion: " + NO_PROBE
        too_large = self._too_large(probe, wrt, options, probe=True)
        if too_large is not None:
            return f"closed form of H v not checked by expansion: even at the probe shape, {too_large}"
        point = probe_point(shapes, [options.seed, 1])
        closed = SecondOrder.derive(ClosedForm.derive(probe, wrt), wrt).full_hessian(point)
        expansion = expand_gradient(probe, list(wrt), fixed=_labels(point, shapes))
        subs = expansion.substitution(point)
        exact = {k: exact_floats(block, subs) for k, block in expansion_hessian(expansion, wrt).items()}
        shown = ", ".join(f"{n}: {t.shape}" for n, t in shapes.items())
        disagreements = _disagreements(closed, exact)
        if disagreements:
            result.failures.append(
                f"closed form of H v disagrees with the expanded Hessian at probe shape "
                f"{shown}: {disagreements[0]}"
            )
            return "second derivatives: probe check failed"
        return f"closed form of H v = expanded Hessian at probe shape ({shown}) at a random point"

    def _tensor_output(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
        start: float,
    ) -> EngineResult:
        """A tensor output: the closed form of the VJP at a generic cotangent, printed; the exact
        Jacobian by expansion where it fits (the closed form checked against it entry by entry),
        else the closed forms' VJPs and JVPs along the shared probes."""
        closed = self.closed_form(program, wrt)
        shapes = {n: program.inputs[n].type.shape for n in closed.grads}
        out_shape = closed.output.shape
        result = EngineResult(
            engine=self.name,
            value=closed.graph.evaluate(closed.output, inputs),
            grads={},
            closed_forms=dict(closed.printed),
            dtype="float64",
            cotangent=closed.cotangent,
        )

        def vjp(u: np.ndarray) -> dict[str, np.ndarray]:
            return closed.evaluate_vjp(inputs, u)

        def jvp(v: Mapping[str, np.ndarray]) -> np.ndarray:
            return closed.evaluate_jvp(inputs, v)

        too_large = self._too_large(program, wrt, options)
        full = wants_full_jacobian(out_shape, shapes, options)
        evaluated = None
        if full and too_large is None:
            try:
                evaluated = self.jacobian_expansion(program, wrt).evaluate(inputs)
            except NotEvaluable as e:
                result.notes.append(_not_evaluable(e))
        if evaluated is not None:
            value, exact = evaluated
            found = tensor_derivatives(out_shape, shapes, options, vjp, None)
            disagreements = _disagreements(found.jacobians, exact)
            if disagreements:
                parted = [
                    f"the closed-form VJP disagrees with the expanded Jacobian: {d}" for d in disagreements
                ]
                result.expansion_failures.extend(parted)
                result.failures.extend(parted)
            else:
                result.notes.append(
                    "Jacobian exact by expansion; the closed-form VJP agrees with it, entry by entry"
                )
            result.value, result.jacobians = value, exact
        else:
            found = tensor_derivatives(out_shape, shapes, options, vjp, jvp)
            result.jacobians, result.vjps, result.jvps = found.jacobians, found.vjps, found.jvps
            result.failures.extend(found.failures)
            how = "in full from the closed form" if full else "along the shared probes, in closed form"
            result.notes.append(f"Jacobian {how} (VJPs and JVPs)")
            if too_large is not None:
                result.notes.append(f"expansion skipped: {too_large}")
                result.notes.append(self._probe_tensor(program, wrt, options, result))
        if options.order >= 2:
            result.notes.append("second derivatives need a scalar output: not computed")
        result.seconds = time.perf_counter() - start
        return result

    def _probe_tensor(
        self, program: Program, wrt: Sequence[str], options: EngineOptions, result: EngineResult
    ) -> str:
        """Above the budget, the closed-form VJP against the exact expanded Jacobian at a probe shape."""
        shapes = probe_shapes(program)
        probe = at_shapes(program, shapes)
        if probe is None:
            return "closed-form VJP not checked by expansion: " + NO_PROBE
        too_large = self._too_large(probe, wrt, options, probe=True)
        if too_large is not None:
            return f"closed-form VJP not checked by expansion: even at the probe shape, {too_large}"
        point = probe_point(shapes, options.seed)
        closed = ClosedForm.derive(probe, wrt)
        out_shape = closed.output.shape
        probe_wrt = {n: shapes[n].shape for n in closed.grads}
        rows = tensor_derivatives(
            out_shape,
            probe_wrt,
            EngineOptions(jacobian_full_limit=10**9),
            lambda u: closed.evaluate_vjp(point, u),
            None,
        ).jacobians
        _, exact = expand_jacobian(probe, list(wrt), fixed=_labels(point, shapes)).evaluate(point)
        shown = ", ".join(f"{n}: {t.shape}" for n, t in shapes.items())
        disagreements = _disagreements(rows, exact)
        if disagreements:
            result.failures.append(
                f"the closed-form VJP disagrees with the expansion at probe shape {shown}: {disagreements[0]}"
            )
            return "closed-form VJP: probe check failed"
        return f"closed-form VJP = expanded Jacobian at probe shape ({shown}), entry by entry"

    def _probe(self, program: Program, wrt: Sequence[str], options: EngineOptions) -> str:
        """The closed form against the expansion at the probe shape: the same at every point of a
        case (its own probe point), so done once per program; a disagreement is replayed."""
        key = (id(program), tuple(wrt), options.seed, options.expansion_budget, options.expansion_work)
        if key not in self._probes:
            self._keep.append(program)
            try:  # a verdict is kept; a disagreement is found again (reuse keeps no exception)
                self._probes[key] = derived.reuse(
                    "probe",
                    derived.program_key(program, wrt, *key[2:]),
                    lambda: self._probe_once(program, wrt, options),
                )
            except ClosedFormDisagreement as e:
                self._probes[key] = e
        found = self._probes[key]
        if isinstance(found, ClosedFormDisagreement):
            raise found
        return found

    def _probe_once(self, program: Program, wrt: Sequence[str], options: EngineOptions) -> str:
        shapes = probe_shapes(program)
        probe = at_shapes(program, shapes)
        if probe is None:
            return "closed form not checked by expansion: " + NO_PROBE
        too_large = self._too_large(probe, wrt, options, probe=True)
        if too_large is not None:
            return f"closed form not checked by expansion: even at the probe shape, {too_large}"
        point = probe_point(shapes, options.seed)
        closed = ClosedForm.derive(probe, wrt)
        _, closed_grads = closed.evaluate(point)
        labels = _labels(point, shapes)
        expansion = expand_gradient(probe, list(wrt), fixed=labels)
        subs = expansion.substitution(point)
        exact_grads = {name: exact_floats(g, subs) for name, g in expansion.grads.items()}
        shown = ", ".join(f"{n}: {t.shape}" for n, t in shapes.items())
        disagreements = _disagreements(closed_grads, exact_grads)
        if disagreements:
            raise ClosedFormDisagreement(f"at probe shape {shown}: {disagreements[0]}")
        if proven_equal(closed, expansion, labels):
            return f"closed form proven equal to the expansion, element by element, at probe shape ({shown})"
        return (
            f"closed form = expansion at probe shape ({shown}) at a random point "
            "(SymPy could not decide the identity symbolically)"
        )


PROOF_OPS_LIMIT = 120  # beyond this, sympy.simplify may take minutes: fall back to numbers


def proven_equal(closed: ClosedForm, expansion: Expansion, labels: Mapping[str, np.ndarray]) -> bool:
    """Whether every element of the closed form is identically the expanded derivative.

    The closed form is evaluated on the expansion's element symbols; its named functions are
    rewritten into the same elementary definitions the expansion uses, then the difference must
    simplify to 0. Integer inputs (labels) are fixed at the given values: the identity is proven
    for every float input, at those labels.
    """
    fixed = {
        expansion.symbols[name][index]: sympy.Integer(int(values[index]))
        for name, values in labels.items()
        for index in np.ndindex(*np.shape(values))
    }
    for name, exact in expansion.grads.items():
        mine = closed.graph.evaluate_exact(closed.grads[name], expansion.symbols)
        for index in np.ndindex(*exact.shape):
            difference = (mine[index] - exact[index]).xreplace(fixed)
            for function, definition in DEFINITIONS.items():
                difference = difference.replace(function, definition)
            if sympy.expand(difference) == 0:
                continue
            if sympy.count_ops(difference) > PROOF_OPS_LIMIT or sympy.simplify(difference) != 0:
                return False
    return True


class ClosedFormDisagreement(Exception):
    """The closed form and the expansion differ: a bug in the symbolic engine itself."""


def _kept(kind: str, program: Program, wrt: Sequence[str], make: Callable[[Program, list[str]], T]) -> T:
    """make(program, wrt), or what an earlier case or run made of it (symcheck/engines/cache.py)."""
    stored = derived.reuse(
        kind, derived.program_key(program, wrt), lambda: WithSymEngineForms(make(program, list(wrt)))
    )
    return stored.value


def _labels(point: Mapping[str, np.ndarray], shapes: Mapping[str, TensorType]) -> dict[str, np.ndarray]:
    """A probe point's integer inputs: the probe expands at them (its proofs hold at those labels)."""
    return {n: v for n, v in point.items() if shapes[n].dtype.value != "float"}


def _expansion_work(program: Program, wrt: Sequence[str]) -> float:
    return expanded_size(program) * max(1, sum(program.inputs[n].type.size for n in wrt))


def _magnitude(n: float) -> str:
    return f"{n:.3g}" if n < 1e6 else f"{n:.1e}"


def _not_evaluable(e: NotEvaluable) -> str:
    return (
        f"expansion not evaluable at this point (SymPy: {e}); values and derivatives are the closed "
        "form evaluated in float64"
    )


def _disagreements(closed: Mapping[str, np.ndarray], exact: Mapping[str, np.ndarray]) -> list[str]:
    found = []
    for name, truth in exact.items():
        mine = closed[name]
        ok = np.isclose(mine, truth, rtol=AGREEMENT_RTOL, atol=AGREEMENT_ATOL, equal_nan=True)
        if not np.all(ok):
            index = tuple(int(i) for i in np.argwhere(~ok)[0])
            found.append(f"d/d{name} at {index}: closed form {mine[index]!r}, expansion {truth[index]!r}")
    return found


__all__ = ["ClosedForm", "SymbolicEngine", "exact_number", "probe_shapes"]
