"""The Python API for tests: check a torch function against the symbolic gradient of its spec.

    symcheck.assert_gradients(my_swish, "x*sigmoid(x)", x=torch.randn(100))

The function runs as one more engine column ("fn"), differentiated by torch.autograd (its backward
may be a custom one), next to the four built-in engines; the run is the CLI's, on a case built in
memory with the given values pinned. On failure the AssertionError's message is the CLI's text
report for that case, so a failing test shows the element that differs, and both numbers.
"""

from __future__ import annotations

import inspect
import os
import sys
import unittest
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from symcheck.api.results import Result
from symcheck.checks.runner import Runner, prepare
from symcheck.engines.registry import DEFAULT_ENGINES, check_engine_names
from symcheck.engines.user import FN_ENGINE, FunctionEngine
from symcheck.language.catalogue import CONSTANTS, FUNCTIONS
from symcheck.language.errors import Source, SymcheckError, did_you_mean
from symcheck.language.inputs import InputSpec
from symcheck.language.ir import DType, Ref, walk
from symcheck.language.parser import ParsedProgram, parse
from symcheck.report.text import render_text
from symcheck.suites.case import Case, Expect, Tolerance

if TYPE_CHECKING:
    from symcheck.checks.runner import CaseResult
    from symcheck.suites.case import Tolerance

DTYPES = ("float64", "float32", "float16", "bfloat16")


# ---------------------------------------------------------------- the assertion


class GradientCheckFailed(AssertionError):
    """assert_gradients' failure: the message is symcheck's text report; `.result` the CaseResult."""

    def __init__(self, message: str, result: CaseResult) -> None:
        super().__init__(message)
        self.result = result


def assert_gradients(
    fn: Callable[..., Any],
    expr: str,
    /,
    *,
    wrt: str | Sequence[str] | None = None,
    engines: Sequence[str] | None = None,
    samples: int = 2,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    tolerance: Tolerance | Mapping[str, Any] | None = None,
    order: int = 1,
    dtype: Any = None,
    device: Any = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    **values: Any,
) -> Result:
    """Check `fn`'s value and torch-autograd gradient against the symbolic gradient of `expr`.

    `fn` takes torch tensors as keyword arguments named like `expr`'s inputs and returns a torch
    tensor of the shape `expr` computes; with `outputs=["h", "c"]` (steps of a program) a tuple of
    them, each checked with its own Jacobian (and a list of CaseResults returned). A tensor output
    is checked through its Jacobian: in full when it is small, else through vector-Jacobian products
    with random cotangents (never through a plain sum, which any backward that ignores its
    grad_output would pass). Give each input's value
    as a keyword argument (a torch tensor, numpy array or number; an input named like an option goes
    in `inputs={...}`); integer arrays and tensors are int inputs (labels), never differentiated.
    `fn` runs in the dtype and on the device of the float tensors given (or `dtype=`/`device=`, as
    torch.dtype / torch.device or their names), compared with the float64 reference within that
    dtype's tolerance. `fn` runs as an engine column named "fn" beside `engines` (default: all four
    built-in ones, plus any plug-in named). `samples` random points (default 2) are checked besides
    the given values; `rtol`/`atol` override the default tolerances of every engine, `tolerance` per
    engine (`{"fn": {"rtol": 1e-4}}`). Raises AssertionError with symcheck's text report when any
    engine disagrees, crashes or cannot compare; unittest.SkipTest (a skip in pytest) when `fn`
    cannot run here (a CUDA device on a machine without one); returns the Result (the CaseResult,
    with a short repr) when
    everything agrees. A mistake in `expr` or the options raises SymcheckError with a caret under
    the problem.
    """

    __tracebackhide__ = True  # pytest: the failure is the report, not symcheck's own frames
    given = {**(inputs or {}), **values}
    parsed = parse(expr, Source(expr, "<expr>"))
    specs = _input_specs(parsed, given)
    dtype, device = _dtype_and_device(given, dtype, device)
    if order not in (1, 2):
        raise SymcheckError(f"order must be 1 or 2, got {order!r}")
    names = list(dict.fromkeys([*(engines if engines is not None else DEFAULT_ENGINES)]))
    check_engine_names([n for n in names if n != FN_ENGINE])
    if FN_ENGINE not in names:
        names.append(FN_ENGINE)
    case = api_case(
        expr,
        specs,
        wrt=[wrt] if isinstance(wrt, str) else (list(wrt) if wrt is not None else None),
        expect=Expect(),
        engines=names,
        tolerance=_tolerance(rtol, atol, tolerance),
        samples=samples,
        seed=seed,
        dtype=dtype,
        device=device,
        order=order,
        outputs=None if outputs is None else list(outputs),
    )
    prepared, errors = prepare([case])
    if errors:
        raise errors[0]
    runner = Runner({FN_ENGINE: FunctionEngine(fn)})
    results = [runner.run(p) for p in prepared]  # one per output, with several
    failed = [r for r in results if r.status not in ("pass", "skip")]
    if failed:
        report = render_text(results)
        raise GradientCheckFailed(f"{_headline(failed[0].case.name, report)}\n{report}", failed[0])
    skipped = [r for r in results if r.status == "skip"]
    if skipped:  # fn did not run here (no CUDA device): a skip, never a pass
        raise unittest.SkipTest(skipped[0].skip_reason or "skipped")
    wrapped = [Result(r) for r in results]
    return wrapped[0] if len(wrapped) == 1 else wrapped  # type: ignore[return-value]


def api_case(expr: str, specs: dict[str, InputSpec], **fields: Any) -> Case:
    """A case built in memory for an API call: named after its expression, placed at the caller's
    line (the test's, the notebook cell's), with `fields` as the Case's own."""
    file, line = _caller()
    return Case(
        name=expr.strip() if "\n" not in expr.strip() else "<program>",
        file=file,
        line=line,
        expr=expr,
        expr_source=Source(expr, "<expr>"),
        inputs=specs,
        **fields,
    )


def _headline(name: str, report: str) -> str:
    """The report's first problem in one line, for pytest's short summary: "sum(x^2): fn vs
    symbolic, dout/dx, at the given values: At (1,): fn = 12, symbolic = 4"."""
    lines = [line.strip() for line in report.splitlines()]
    for i, line in enumerate(lines):
        for word in ("MISMATCH", "FAILED", "CRASHED", "WRONG"):
            if line.startswith(word):
                what = line[len(word) :].strip()
                at = next((x for x in lines[i + 1 : i + 8] if x.startswith("At ")), "")
                return f"{name}: {what} {at}".strip()
    return f"{name}: failed"


# assert_gradients' own keyword options: a misspelt one (rtoll=) lands among the input values
_OPTIONS = tuple(
    name
    for name, p in inspect.signature(assert_gradients).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)


def _input_specs(parsed: ParsedProgram, given: Mapping[str, Any]) -> dict[str, InputSpec]:

    free = [n for n in parsed.free_names() if (n not in FUNCTIONS and n not in CONSTANTS) or n in given]
    for name in free:
        if name not in given:
            unused = [n for n in given if n not in free]
            raise SymcheckError(
                f"'{name}' is used by the expression but no value is given for it",
                source=parsed.source,
                span=_first_use(parsed, name),
                hint=did_you_mean(name, unused)
                or f"pass it as a keyword argument ({name}=...)"
                + (f"; given: {', '.join(given)}" if given else ""),
            )
    for name in given:
        if name not in free:
            option = did_you_mean(name, _OPTIONS)
            raise SymcheckError(
                f"'{name}' is given but the expression does not use it",
                hint=(option and f"{option} (an option of assert_gradients)")
                or did_you_mean(name, [n for n in free if n not in given])
                or f"the expression's inputs are {', '.join(free) or 'none'}",
            )
    return {name: _spec(name, given[name]) for name in free}


def _first_use(parsed: ParsedProgram, name: str) -> Any:
    for st in parsed.statements:
        for node in walk(st.expr):
            if isinstance(node, Ref) and node.name == name:
                return node.span
    return None


def _dtype_and_device(given: Mapping[str, Any], dtype: Any, device: Any) -> tuple[str, str]:
    """The dtype and device fn runs in: as asked (a torch.dtype or torch.device, or their names),
    else those of the float tensors given (float64 on the CPU when none is a torch tensor)."""
    tensors = [v for v in given.values() if hasattr(v, "is_floating_point") and v.is_floating_point()]
    if dtype is None:
        found = {str(t.dtype).removeprefix("torch.") for t in tensors}
        if len(found) > 1:
            raise SymcheckError(
                f"the float tensors given have different dtypes ({', '.join(sorted(found))})",
                hint="give them one dtype, or pass dtype=... to run fn in one",
            )
        dtype = found.pop() if found else "float64"
    dtype = str(dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise SymcheckError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
    if device is None:
        devices = {str(t.device) for t in tensors}
        if len(devices) > 1:
            raise SymcheckError(
                f"the float tensors given are on different devices ({', '.join(sorted(devices))})",
                hint="put them on one device, or pass device=...",
            )
        device = devices.pop() if devices else "cpu"
    return dtype, str(device)


def _spec(name: str, value: Any) -> InputSpec:
    """A pinned input from a torch tensor, numpy array or number; float unless it holds integers."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        t = value.detach().cpu()
        value = (t.double() if t.is_floating_point() else t).numpy()  # numpy has no bfloat16
    array = np.asarray(value)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.number)):
        raise SymcheckError(f"input '{name}': expected numbers, got an array of {array.dtype}")
    # A Python int is a float input (x=2); integer arrays and tensors are int inputs (labels).
    is_int = np.issubdtype(array.dtype, np.integer) and not isinstance(value, int)
    if is_int:
        return InputSpec(value=array.astype(np.int64).tolist(), dtype=DType.INT)
    try:
        return InputSpec(value=array.astype(np.float64).tolist())
    except SymcheckError as e:
        raise SymcheckError(f"input '{name}': {e.message}", hint=e.hint) from None


def _tolerance(
    rtol: float | None, atol: float | None, tolerance: Tolerance | Mapping[str, Any] | None
) -> Tolerance:

    if isinstance(tolerance, Tolerance):
        base = tolerance
    else:
        per_engine: dict[str, Tolerance] = {}
        top: dict[str, float | None] = {"rtol": None, "atol": None}
        for key, v in (tolerance or {}).items():
            if key in top:
                top[key] = float(v)
            elif isinstance(v, Mapping):
                per_engine[key] = Tolerance(v.get("rtol"), v.get("atol"))
            else:
                raise SymcheckError(
                    f"tolerance: {key!r} is neither rtol, atol nor an engine with {{rtol, atol}}",
                    hint='e.g. tolerance={"fn": {"rtol": 1e-4}}',
                )
        base = Tolerance(top["rtol"], top["atol"], per_engine)
    return Tolerance(
        rtol if rtol is not None else base.rtol, atol if atol is not None else base.atol, base.engines
    )


def _caller() -> tuple[str, int]:
    """The test's file and line, for the report's header (where a case's YAML line would be); in
    Jupyter the cell ("<cell 3>"), not the kernel's temporary file for it."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_API_DIR):
        frame = frame.f_back  # called through another API function (check, assert_module_gradients)
    filename = frame.f_code.co_filename
    if "ipykernel_" in filename or filename.startswith("<ipython-input"):
        count = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
        # ipykernel counts the running cell already: execution_count is the next cell's number
        number = getattr(count, "execution_count", None)
        return (f"<cell {number - 1}>" if number and number > 1 else "<cell>"), frame.f_lineno
    try:
        relative = os.path.relpath(filename)
        filename = relative if not relative.startswith("..") else filename
    except ValueError:  # another drive, on Windows
        pass
    return filename, frame.f_lineno


_API_DIR = os.path.dirname(os.path.abspath(__file__))


def assert_module_gradients(
    module: Any,
    expr: str,
    /,
    *,
    wrt: str | Sequence[str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    **options_and_values: Any,
) -> Result:
    """assert_gradients for an `nn.Module`: `expr` names the module's parameters (a dot in a name
    becomes `_`: `0.weight` is `0_weight`... write `layer.weight` as `layer_weight`) and the
    forward's arguments, which are given as keyword arguments. The module's own parameter values
    are used; the gradients checked are the parameters' (default: every parameter `expr` names).

        assert_module_gradients(nn.Linear(3, 2), "sigmoid(weight @ x + bias)", x=torch.randn(3))

    A parameter `expr` does not name keeps its value and is not checked (the result notes it);
    other options are assert_gradients'.
    """
    import torch

    __tracebackhide__ = True
    params = {name.replace(".", "_"): (name, p) for name, p in module.named_parameters()}
    options = {k: v for k, v in options_and_values.items() if k in _OPTIONS}
    given = {**(inputs or {}), **{k: v for k, v in options_and_values.items() if k not in _OPTIONS}}
    clash = [n for n in given if n in params]
    if clash:
        raise SymcheckError(
            f"'{clash[0]}' is a parameter of the module and is given as an input too",
            hint="the module's parameters take their values from the module: do not pass them",
        )
    free = parse(expr, Source(expr, "<expr>")).free_names()
    used = [n for n in free if n in params]
    if not used:
        raise SymcheckError(
            "the expression names none of the module's parameters",
            hint=f"its parameters: {', '.join(params) or 'none'}",
        )
    forward = inspect.signature(module.forward).parameters
    for name in given:
        if name not in forward and name in free:
            raise SymcheckError(
                f"'{name}' is not an argument of {type(module).__name__}.forward",
                hint=did_you_mean(name, list(forward)) or f"its arguments: {', '.join(forward)}",
            )
    values = {n: params[n][1].detach().clone() for n in used}

    def call(**kw: Any) -> Any:
        weights = {params[n][0]: kw[n] for n in used}
        arguments = {n: v for n, v in kw.items() if n not in params}
        return torch.func.functional_call(module, weights, args=(), kwargs=arguments)

    chosen = wrt if wrt is not None else used
    result = assert_gradients(call, expr, wrt=chosen, inputs={**values, **given}, **options)
    unnamed = [n for n in params if n not in used]
    for r in result if isinstance(result, list) else [result]:
        if unnamed:
            r.notes.append(f"parameters not in the expression, held at their values: {', '.join(unnamed)}")
    return result


__all__ = ["FunctionEngine", "GradientCheckFailed", "assert_gradients", "assert_module_gradients"]
