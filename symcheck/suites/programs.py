"""From a case to programs: parse and bind its expression, check that inputs, wrt and expectations fit it;
the programs of its training runs and grad expectations; and a case from the command line (`load_case`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from symcheck.engines.registry import DEFAULT_ENGINES
from symcheck.language.catalogue import CONSTANTS, FUNCTIONS
from symcheck.language.errors import Source, Span, SymcheckError, did_you_mean
from symcheck.language.inputs import InputSpec, parse_cli_input
from symcheck.language.ir import DType, Program, Ref, TensorType, cotangent_name, walk
from symcheck.language.parser import ParsedProgram, bind, parse
from symcheck.suites.case import Case, Expect, Tolerance

# ---------------------------------------------------------------- from case to program


def parse_case_program(case: Case) -> Program:
    """Parse and bind `case.expr`; check that inputs, wrt and grad expectations fit it."""
    parsed = parse(case.expr, case.expr_source)
    free = parsed.free_names()
    for name in free:
        if name in case.inputs or name in FUNCTIONS or name in CONSTANTS:
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
    program = select_output(case, bind(parsed, {n: spec.type() for n, spec in case.inputs.items()}))
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
                    f"{grad.label or 'expected gradient'} for '{name}', which is not an input",
                    grad.line,
                    hint=hint,
                )
            raise case.error(
                f"{grad.label or 'expected gradient'} for '{name}', which is not in wrt",
                grad.line,
                hint=f"add it to wrt (now {', '.join(wrt) or 'empty'})"
                if case.inputs[name].dtype is DType.FLOAT
                else "int inputs are not differentiated",
            )
        if grad.numbers is not None:
            shape = case.inputs[name].type().shape
            _check_broadcast(
                case,
                grad.numbers.shape,
                shape,
                (grad.label and f"{grad.label} for '{name}'") or f"expect.grad.{name}",
                f"input '{name}'",
                grad.line,
            )
    grad_programs(case, program)
    if case.train is not None:
        training_programs(case)
    return program


def select_output(case: Case, program: Program) -> Program:
    """With `outputs: [h, c]`: check the names; for the part of the case that checks output k (the
    runner splits the case, one part per output), the program up to that output's step."""
    if case.outputs is None:
        return program
    names = list(dict.fromkeys(s.name for s in program.steps))
    if not case.outputs:
        raise case.error("'outputs' is empty", case.outputs_line, hint=f"name steps: {', '.join(names)}")
    for name in case.outputs:
        if name not in names:
            raise case.error(
                f"outputs names '{name}', which is not a step of the program",
                case.outputs_line,
                hint=did_you_mean(name, names) or f"the steps are {', '.join(names)}",
            )
    if len(set(case.outputs)) != len(case.outputs):
        raise case.error("outputs names a step twice", case.outputs_line, hint="name each output once")
    expects = bool(case.expect.grads or case.expect.value is not None)
    for what, given in (("train:", case.train is not None), ("expect:", expects)):
        if given:
            raise case.error(
                f"a case with several outputs cannot have {what} (not supported yet)",
                case.outputs_line,
                hint="check each output's expectations in a case of its own",
            )
    if case.output_index is None:
        return program
    index, count = case.output_index
    last = max(i for i, s in enumerate(program.steps) if s.name == case.outputs[index])
    return Program(program.source, program.inputs, program.steps[: last + 1], output_of=(index, count))


def output_parts(case: Case) -> list[Case]:
    """A case with several outputs as one case per output, each checked with its own Jacobian."""
    if case.outputs is None or case.output_index is not None:
        return [case]
    return [
        replace(case, name=f"{case.name} [{name}]", output_index=(k, len(case.outputs)))
        for k, name in enumerate(case.outputs)
    ]


def training_programs(case: Case) -> list[Program]:
    """The `after` checks' expressions, parsed and bound over the case's inputs."""
    assert case.train is not None
    out = []
    for check in case.train.after:
        parsed = parse(check.expr, check.source)
        for name in parsed.free_names():
            if name not in case.inputs and name not in FUNCTIONS and name not in CONSTANTS:
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
    if program.output_type.shape != ():  # a VJP formula names the output's cotangent
        known[cotangent_name(program)] = program.output_type
    out: dict[str, Program] = {}
    for name, grad in [*case.expect.grads.items(), *case.expect.hessians.items()]:
        if grad.formula is None:
            continue
        if grad.kind == "hessian":
            if name not in case.inputs:
                raise case.error(
                    f"expected Hessian for '{name}', which is not an input",
                    grad.line,
                    hint=did_you_mean(name, case.inputs) or f"inputs are {', '.join(case.inputs)}",
                )
            shape = case.inputs[name].type().shape
            known_h = {**known, "__block__": program.output_type.__class__(shape + shape)}
            want_h: tuple[int, ...] = shape + shape
        else:
            known_h, want_h = known, ()
        source = grad.formula_source or Source(grad.formula, case.file, grad.line - 1)
        parsed = parse(grad.formula, source)
        used = parsed.free_names()
        for n in used:
            if n not in known and n not in FUNCTIONS and n not in CONSTANTS:
                raise SymcheckError(
                    f"unknown name '{n}' in the expected gradient",
                    source=source,
                    span=_first_use(parsed, n),
                    hint=did_you_mean(n, known)
                    or f"a formula may use the inputs and steps: {', '.join(known)}",
                )
        fprog = bind(parsed, {n: known_h[n] for n in used if n in known_h})
        got, want = fprog.output_type.shape, (want_h if grad.kind == "hessian" else known[name].shape)
        # A transposed matrix is a classic hand-derivation slip: let it through to be diagnosed.
        transposed = len(want) == 2 and tuple(reversed(want)) == tuple(got)
        if not _broadcasts(got, want) and not transposed:
            raise SymcheckError(
                f"the expected {'Hessian' if grad.kind == 'hessian' else 'gradient'} for '{name}' has "
                f"shape {list(got)} but '{name}' has shape {list(known[name].shape)}"
                + (f" (its Hessian block: {list(want)})" if grad.kind == "hessian" else ""),
                source=source,
                span=fprog.output.expr.span,
                hint="a gradient has its input's shape, a Hessian block that shape twice "
                "(a scalar broadcasts)",
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


# Shapes tried for an input given no -i (explain): every dimension of size 3, so that matrix
# products line up.
DEFAULT_SHAPES = ((3,), (), (3, 3), (3, 3, 3))
DEFAULT_SEARCH_LIMIT = 4  # inputs without a spec searched over (4^4 binds at most)


def default_input_specs(target: str, specs: Mapping[str, Any], missing: Sequence[str]) -> dict[str, Any]:
    """A small shape for each input in `missing` at which the program binds: a 3x3 matrix for a
    capitalised name and a vector of 3 for another if that binds, else the combination closest to
    that (fewest dimensions first) that does. Raises
    SymcheckError when none does (a reshape to a fixed size, a label)."""
    from itertools import product

    parsed = parse(target, Source(target, "<command line>"))
    given = {n: TensorType(tuple(sp.shape or ()), sp.dtype) for n, sp in specs.items()}
    # The field's convention first: W, A, X (capitals) are matrices, x, b, t vectors.
    preferred = [2 if n[:1].isupper() else 0 for n in missing]

    def order(combo: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]]:
        return (sum(c != p for c, p in zip(combo, preferred, strict=True)), sum(combo), combo)

    combos = sorted(product(range(len(DEFAULT_SHAPES)), repeat=len(missing)), key=order)
    if len(missing) <= DEFAULT_SEARCH_LIMIT:
        for combo in combos:
            shapes = {n: DEFAULT_SHAPES[i] for n, i in zip(missing, combo, strict=True)}
            try:
                bind(parsed, {**given, **{n: TensorType(s) for n, s in shapes.items()}})
            except SymcheckError:
                continue
            return {n: InputSpec(shape=s) for n, s in shapes.items()}
    example = " ".join(f"-i {n}:2x2=1" for n in missing)
    raise SymcheckError(
        f"no input spec for {', '.join(missing)}, and no small default shape fits the expression",
        hint=f"give every input a shape or value, e.g. {example}",
    )


def load_case(
    target: str,
    inputs: Sequence[str],
    case_name: str | None = None,
    wrt: str | None = None,
    *,
    default_shapes: bool = False,
) -> Any:
    """A Case from EXPR and -i specs (as `symcheck grad`), or from a suite file and --case NAME;
    -i specs given with a suite replace those inputs of the case. With `default_shapes`, an input
    without a spec gets a small shape (default_input_specs) instead of an error."""

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
        from symcheck.suites.loader import load_suite  # lazily: pydantic's models cost 0.2 s to build

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
    missing = [n for n in parse(target, source).free_names() if n not in specs and n not in CONSTANTS]
    if missing and default_shapes:
        specs.update(default_input_specs(target, specs, missing))
    elif missing:
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
