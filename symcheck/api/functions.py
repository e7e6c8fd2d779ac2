"""check, closed_form, explain and verify: symcheck's commands as Python functions, for notebooks,
scripts and tests. Each returns an object (symcheck/api/results.py) rather than printing.

Inputs are keyword arguments: a value (a number, a numpy array, a torch tensor: pinned, as in
assert_gradients) or, through `shapes={"x": (2, 3)}`, a shape drawn at random points. An input
given neither gets a small default shape (a capital a 3x3 matrix, else a vector of 3), as
`symcheck explain` without -i; the result says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from symcheck.api.assertions import _spec, _tolerance, api_case
from symcheck.api.results import ClosedForms, Explained, Result, Results
from symcheck.checks.diagnose import claim_expectations
from symcheck.checks.points import make_point
from symcheck.checks.runner import Runner, prepare, run_cases
from symcheck.engines.registry import DEFAULT_ENGINES, check_engine_names
from symcheck.language.catalogue import CONSTANTS, FUNCTIONS
from symcheck.language.errors import Source, SymcheckError, did_you_mean, raise_all
from symcheck.language.inputs import InputSpec
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse
from symcheck.suites.case import Expect, Tolerance
from symcheck.suites.loader import load_paths
from symcheck.suites.programs import default_input_specs

Shape = int | Sequence[int]


def _shape(name: str, shape: Shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise SymcheckError(
            f"shape of '{name}': expected a tuple of sizes, got {shape!r}", hint='e.g. shapes={"x": (2, 3)}'
        ) from None
    if any(d < 1 for d in dims):
        raise SymcheckError(f"shape of '{name}': sizes must be positive, got {dims}")
    return dims


def _specs(
    expr: str,
    values: Mapping[str, Any],
    shapes: Mapping[str, Shape] | None,
    *,
    what: str,
    options: Sequence[str] = (),
) -> tuple[dict[str, InputSpec], dict[str, tuple[int, ...]]]:
    """Every input's spec (values pinned, shapes random, the rest a default shape), and the
    defaults chosen."""
    parsed = parse(expr, Source(expr, "<expr>"))
    free = [n for n in parsed.free_names() if (n not in FUNCTIONS and n not in CONSTANTS) or n in values]
    shapes = dict(shapes or {})
    for name in [*values, *shapes]:
        if name not in free:
            option = did_you_mean(name, options)
            raise SymcheckError(
                f"'{name}' is given but the expression does not use it",
                hint=(option and f"{option} (an option of {what})")
                or did_you_mean(name, [n for n in free if n not in values])
                or f"the expression's inputs are {', '.join(free) or 'none'}",
            )
    specs = {n: _spec(n, v) for n, v in values.items()}
    specs.update({n: InputSpec(shape=_shape(n, s)) for n, s in shapes.items() if n not in specs})
    missing = [n for n in free if n not in specs]
    assumed: dict[str, tuple[int, ...]] = {}
    if missing:
        defaults = default_input_specs(expr, specs, missing)
        specs.update(defaults)
        assumed = {n: tuple(s.shape or ()) for n, s in defaults.items()}
    return {n: specs[n] for n in free}, assumed


def _wrt(wrt: str | Sequence[str] | None) -> list[str] | None:
    if wrt is None:
        return None
    return [w.strip() for w in wrt.split(",")] if isinstance(wrt, str) else list(wrt)


def _claims(claim: str | Sequence[str] | Mapping[str, str] | None) -> list[str]:
    """'x: 3/2*(x + 2)', a list of them, or {"x": "3/2*(x + 2)"}, as claim texts."""
    if claim is None:
        return []
    if isinstance(claim, str):
        return [claim]
    if isinstance(claim, Mapping):
        return [f"{name}: {formula}" for name, formula in claim.items()]
    return list(claim)


def check(
    expr: str,
    /,
    *,
    wrt: str | Sequence[str] | None = None,
    claim: str | Sequence[str] | Mapping[str, str] | None = None,
    engines: Sequence[str] | None = None,
    samples: int = 2,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    tolerance: Tolerance | Mapping[str, Any] | None = None,
    order: int = 1,
    shapes: Mapping[str, Shape] | None = None,
    inputs: Mapping[str, Any] | None = None,
    **values: Any,
) -> Result:
    """Check `expr`'s derivatives with the four engines, as `symcheck grad` does, and return the
    Result (never raises for a mismatch: `.ok` says; a mistake in `expr` raises SymcheckError).

    `claim`: your derivation ("x: 3/2*(x + 2)" or {"x": ...}), proven or refuted as in `expect:`; a
    number claimed applies at the given values. Values pinned as keyword arguments (or in
    `inputs={...}`) are checked, plus `samples` random points.
    """
    given = {**(inputs or {}), **values}
    specs, assumed = _specs(expr, given, shapes, what="check", options=_options(check))
    if given and all(s.dtype is DType.INT for s in specs.values()):
        raise SymcheckError(
            "every input given holds integers, so each is a label (an int input) and nothing is "
            "differentiated",
            hint="give floats to differentiate: x=np.array([1.0, 2.0]) or x.astype(float)",
        )
    if order not in (1, 2):
        raise SymcheckError(f"order must be 1 or 2, got {order!r}")
    names = list(engines) if engines is not None else list(DEFAULT_ENGINES)
    check_engine_names(names)
    case = api_case(
        expr,
        specs,
        wrt=_wrt(wrt),
        expect=Expect(),
        engines=names,
        tolerance=_tolerance(rtol, atol, tolerance),
        samples=samples if given else max(samples, 1),
        seed=seed,
        order=order,
    )
    case = replace(case, expect=Expect(grads=claim_expectations(_claims(claim), case.line)))
    prepared, errors = prepare([case])
    raise_all(errors)
    result = Runner().run(prepared[0])
    if assumed:
        shown = ", ".join(f"{n}: {s}" for n, s in assumed.items())
        result.notes.insert(0, f"no value or shape given for {', '.join(assumed)}: checked at {shown}")
    return Result(result)


def _options(fn: Any) -> list[str]:
    import inspect

    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [n for n, p in inspect.signature(fn).parameters.items() if p.kind in kinds]


def _program(expr: str, specs: Mapping[str, InputSpec]) -> Program:
    types = {n: TensorType(tuple(s.shape or ()), s.dtype) for n, s in specs.items()}
    return bind(parse(expr, Source(expr, "<expr>")), types)


def closed_form(expr: str, /, *, wrt: str | Sequence[str] | None = None, **shapes: Any) -> ClosedForms:
    """The exact gradients of `expr` (VJPs for a tensor output) as SymPy expressions and in the
    language: `closed_form("mean(3*(x+2)^2)", x=(2, 2))["x"]` is the SymPy 3*(x + 2)/2.

    Give each input's shape (`x=(2, 2)`, `n=3`), or an array whose shape (and dtype: integers are
    labels) it has; an input not given gets a small default shape.
    """
    from symcheck.engines.symbolic import ClosedForm
    from symcheck.engines.symbolic.latex import to_latex

    values = {n: v for n, v in shapes.items() if hasattr(v, "shape") or hasattr(v, "detach")}
    sizes = {n: s for n, s in shapes.items() if n not in values}
    specs, assumed = _specs(expr, values, sizes, what="closed_form", options=["wrt"])
    program = _program(expr, specs)
    chosen = _wrt(wrt) or program.float_inputs()
    unknown = [
        n for n in chosen if n not in program.inputs or program.inputs[n].type.dtype is not DType.FLOAT
    ]
    if unknown:
        raise SymcheckError(
            f"wrt: '{unknown[0]}' is not a float input of the expression",
            hint=f"its float inputs: {', '.join(program.float_inputs()) or 'none'}",
        )
    closed = ClosedForm.derive(program, chosen)
    atoms: dict[Any, str] = {}
    for g in closed.grads.values():
        for atom in closed.graph.atoms_of(g):
            if atom.op != "input":
                atoms[atom.symbol] = closed.printer(atom.symbol)
    return ClosedForms(
        expr=expr,
        output=program.output.name,
        shapes={n: d.type.shape for n, d in program.inputs.items()},
        text=dict(closed.printed),
        sympy={n: g.expr for n, g in closed.grads.items()},
        latex={n: to_latex(closed.graph, g.expr) for n, g in closed.grads.items()},
        atoms=atoms,
        cotangent=closed.cotangent,
        assumed=assumed,
    )


def explain(
    expr: str,
    /,
    claim: str | Sequence[str] | Mapping[str, str] | None = None,
    *,
    wrt: str | Sequence[str] | None = None,
    seed: int = 0,
    shapes: Mapping[str, Shape] | None = None,
    inputs: Mapping[str, Any] | None = None,
    **values: Any,
) -> Explained:
    """The hand derivation of `expr`'s gradient, step by step (`symcheck explain`), and each claim
    checked and diagnosed. In Jupyter it renders as Markdown with the math typeset."""
    from symcheck.teaching.explain import claim_checks
    from symcheck.teaching.explain import explain as derive_steps

    given = {**(inputs or {}), **values}
    specs, assumed = _specs(expr, given, shapes, what="explain", options=_options(explain))
    program = _program(expr, specs)
    if program.output_type.shape != ():
        raise SymcheckError(
            f"explain walks a scalar output's gradient; this output has shape {program.output_type.shape}",
            hint="explain a scalar of it (a sum with a weight, a loss), or see closed_form() for its VJP",
        )
    chosen = _wrt(wrt) or program.float_inputs()
    point = make_point(specs, seed, program)
    explanation = derive_steps(program, point, chosen)
    explanation.assumed = assumed
    explanation.assumed_hint = 'shapes={"x": (2, 3)} picks another'
    claims = _claims(claim)
    label = "the given values" if given else "the point shown above"
    checks = claim_checks(program, chosen, claims, point, label) if claims else []
    return Explained(explanation, checks)


def verify(paths: str | Path | Sequence[str | Path], *, jobs: int = 1) -> Results:
    """Run the suites in `paths` (YAML files, or directories searched for them), as `symcheck
    verify` does; every mistake in the files raises one SymcheckError (all of them listed)."""
    listed = [paths] if isinstance(paths, (str, Path)) else list(paths)
    suites = load_paths(listed)
    cases = [c for s in suites for c in s.cases]
    results, errors = run_cases(cases, jobs=jobs)
    raise_all(errors)
    return Results(results)


__all__ = ["check", "closed_form", "explain", "verify"]
