"""Helpers shared by the benchmarks in bench/: timing one symcheck Case, reading its results, tables.

Imported as `_common` by the scripts beside it (running `python bench/X.py` puts bench/ on sys.path).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from symcheck.checks.runner import CaseResult, run_cases
from symcheck.language.errors import Source
from symcheck.language.inputs import InputSpec
from symcheck.language.ir import DType
from symcheck.suites.case import Case, Expect, Tolerance

ENGINES = ("symbolic", "autograd", "torch", "numeric")
NAN = float("nan")


@dataclass
class SymcheckRun:
    seconds: float
    engine_seconds: dict[str, float]
    status: str
    mode: str  # "expansion" or "closed form"
    notes: dict[str, list[str]] = field(default_factory=dict)  # engine -> EngineResult.notes
    value: float = NAN  # the output as the first engine that ran computed it


def pinned_input(v: np.ndarray) -> InputSpec:
    """An input given by its values, as `-i name=[...]` gives it; integer arrays are labels.
    tolist() round-trips float64 exactly, so symcheck and its peer see the same numbers."""
    if np.issubdtype(v.dtype, np.integer):
        return InputSpec(value=v.tolist(), dtype=DType.INT)
    return InputSpec(value=v.tolist())


def pinned_case(
    name: str,
    expr: str,
    inputs: dict[str, InputSpec],
    wrt: Sequence[str] | None,
    expansion_budget: int,
    **extra: object,
) -> Case:
    """What `symcheck grad EXPR -i ... [--wrt ...] --samples 0` builds: all four engines, only the
    pinned point. `extra`: further Case fields (order, timeout)."""
    return Case(
        name=name,
        file="<bench>",
        line=1,
        expr=expr,
        expr_source=Source(expr, "<bench>"),
        inputs=inputs,
        wrt=None if wrt is None else list(wrt),
        expect=Expect(),
        engines=list(ENGINES),
        tolerance=Tolerance(),
        samples=0,
        expansion_budget=expansion_budget,
        **extra,  # type: ignore[arg-type]
    )


def time_case(case: Case, clear_sympy_cache: bool = False, reuse: bool = False) -> SymcheckRun:
    """Time `run_cases([case])`, which makes a fresh Runner. reuse=False: every call derives the
    symbolic forms again (SYMCHECK_NO_CACHE for the call); True: a later call of the same case reads
    them from symcheck's in-memory cache, as a test session's second check of a function does."""
    if clear_sympy_cache and "sympy" in sys.modules:
        from sympy.core.cache import clear_cache

        clear_cache()
    before = os.environ.get("SYMCHECK_NO_CACHE")
    if not reuse:
        os.environ["SYMCHECK_NO_CACHE"] = "1"
    try:
        start = time.perf_counter()
        results, errors = run_cases([case])
        seconds = time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop("SYMCHECK_NO_CACHE", None)
        else:
            os.environ["SYMCHECK_NO_CACHE"] = before
    if errors:
        raise RuntimeError("; ".join(e.render() for e in errors))
    (result,) = results
    point = result.points[0]
    notes = {name: list(res.notes) for name, res in point.results.items()}
    value = next((float(np.sum(res.value)) for res in point.results.values()), NAN)
    return SymcheckRun(seconds, engine_seconds(result), result.status, symbolic_mode(result), notes, value)


def engine_seconds(result: CaseResult) -> dict[str, float]:
    point = result.points[0]
    return {name: res.seconds for name, res in point.results.items()}


def symbolic_mode(result: CaseResult) -> str:
    """'expansion' (every element expanded exactly) or 'closed form' (the expansion skipped at this shape)."""
    sym = result.points[0].results.get("symbolic")
    if sym is None:
        return "-"
    skipped = any(n.startswith("expansion skipped") for n in sym.notes)
    return "closed form" if skipped else "expansion"


def median_engine_seconds(runs: Sequence[SymcheckRun]) -> dict[str, float]:
    return {e: statistics.median(r.engine_seconds.get(e, NAN) for r in runs) for e in ENGINES}


def worst_status(runs: Iterable[SymcheckRun]) -> str:
    statuses = [r.status for r in runs]
    return next((s for s in statuses if s != "pass"), statuses[0] if statuses else "-")


# ---------------------------------------------------------------- output


def fmt_seconds(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "-"
    return f"{seconds * 1e3:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "-"
    return f"{a / b:.1f}x" if a / b >= 0.1 else f"{a / b:.2f}x"


def print_grid(head: list[str], body: list[list[str]], right_from: int) -> None:
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def fmt(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i >= right_from else c.ljust(w) for i, (c, w) in pairs)

    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for line in body:
        print(fmt(line))
