"""Benchmark: symcheck's four-engine check against torch.autograd.gradcheck on the same functions.

Not part of CI; nothing in tests/ imports it. Run from the repository root:

    python bench/bench_gradcheck.py            # sizes 4 16 64 256 1024, 5 repetitions
    python bench/bench_gradcheck.py --quick    # sizes 4 64 1024, 2 repetitions
    python bench/bench_gradcheck.py --sizes 8 32 --reps 3

For every (expression, size) a Case is built in memory the way `symcheck grad` builds one
(samples=0, the point pinned with `value`, all four engines) and timed through `run_cases([case])`.
The same float64 values go to `torch.autograd.gradcheck` (default tolerances) and, unless
--no-fast, to `gradcheck(..., fast_mode=True)`.

Cold vs warm: `run_cases` makes a fresh Runner, so every repetition derives the symbolic closed
form (and expansion) again; only SymPy's own global cache survives between repetitions. The first
repetition of a row is reported as "cold" and is not in the median. The very first symcheck run of
the process also imports SymPy and torch (torch is not imported by this script before it), and is
reported on its own line. --clear-sympy-cache clears SymPy's cache before every symcheck run, which
times each repetition as if the expression were new.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symcheck.errors import Source
from symcheck.inputs import InputSpec
from symcheck.suite import DEFAULT_EXPANSION_BUDGET, Case, Expect, Tolerance
from symcheck.verify import CaseResult, run_cases

ENGINES = ("symbolic", "autograd", "torch", "numeric")
FULL_SIZES = (4, 16, 64, 256, 1024)
QUICK_SIZES = (4, 64, 1024)


# ---------------------------------------------------------------- the two expressions


@dataclass(frozen=True)
class Workload:
    expr: str
    shapes: dict[str, tuple[int, ...]]
    values: dict[str, np.ndarray]
    torch_fn: Callable[..., Any]  # takes the inputs in `shapes` order

    @property
    def elements(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes.values())

    def shape_text(self) -> str:
        return " ".join(f"{n}:{'x'.join(map(str, s))}" for n, s in self.shapes.items())


def seed_workload(size: int, rng: np.random.Generator) -> Workload:
    def fn(x: Any) -> Any:
        return (3 * (x + 2) ** 2).mean()

    shapes = {"x": (size,)}
    return Workload("mean(3*(x+2)^2)", shapes, _draw(shapes, rng), fn)


def matmul_shape(size: int) -> int:
    """n for W: n x n, x: n, b: n, whose n*n + 2n = (n+1)^2 - 1 elements are closest to `size`."""
    return min(range(1, size + 1), key=lambda n: (abs(n * n + 2 * n - size), n))


def matmul_workload(size: int, rng: np.random.Generator) -> Workload:
    def fn(W: Any, x: Any, b: Any) -> Any:
        import torch

        return torch.tanh(W @ x + b).sum()

    # Square W: the shapes a layer has, and the element count lands within one of 4, 16, ... 1024.
    n = matmul_shape(size)
    shapes = {"W": (n, n), "x": (n,), "b": (n,)}
    values = _draw(shapes, rng)
    values["W"] /= np.sqrt(n)  # keeps tanh's argument O(1), away from saturation, at every size
    return Workload("sum(tanh(W @ x + b))", shapes, values, fn)


def _draw(shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.uniform(-1.0, 1.0, shape) for name, shape in shapes.items()}


# ---------------------------------------------------------------- the two ways of checking


def make_case(work: Workload, expansion_budget: int) -> Case:
    """What `symcheck grad EXPR -i name=[...]` builds, with samples=0: only the pinned point."""
    return Case(
        name=work.expr,
        file="<bench>",
        line=1,
        expr=work.expr,
        expr_source=Source(work.expr, "<bench>"),
        # tolist() round-trips float64 exactly, so symcheck and gradcheck see the same numbers.
        inputs={name: InputSpec(value=v.tolist()) for name, v in work.values.items()},
        wrt=None,
        expect=Expect(),
        engines=list(ENGINES),
        tolerance=Tolerance(),
        samples=0,
        expansion_budget=expansion_budget,
    )


@dataclass
class SymcheckRun:
    seconds: float
    engine_seconds: dict[str, float]
    status: str
    mode: str  # "expansion" or "closed form"
    notes: list[str] = field(default_factory=list)


def run_symcheck(work: Workload, expansion_budget: int, clear_sympy_cache: bool) -> SymcheckRun:
    if clear_sympy_cache and "sympy" in sys.modules:
        from sympy.core.cache import clear_cache

        clear_cache()
    case = make_case(work, expansion_budget)
    start = time.perf_counter()
    results, errors = run_cases([case])
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError("; ".join(e.render() for e in errors))
    (result,) = results
    return SymcheckRun(seconds, _engine_seconds(result), result.status, *_mode(result))


def _engine_seconds(result: CaseResult) -> dict[str, float]:
    point = result.points[0]
    return {name: res.seconds for name, res in point.results.items()}


def _mode(result: CaseResult) -> tuple[str, list[str]]:
    sym = result.points[0].results.get("symbolic")
    if sym is None:
        return "-", []
    skipped = any(n.startswith("expansion skipped") for n in sym.notes)
    return ("closed form" if skipped else "expansion"), list(sym.notes)


def run_gradcheck(work: Workload, fast: bool) -> float:
    import torch

    tensors = [torch.tensor(work.values[n], dtype=torch.float64, requires_grad=True) for n in work.shapes]
    start = time.perf_counter()
    ok = torch.autograd.gradcheck(work.torch_fn, tuple(tensors), fast_mode=fast)
    seconds = time.perf_counter() - start
    if not ok:  # default raise_exception=True makes this unreachable; kept for raise_exception=False
        raise RuntimeError(f"gradcheck failed on {work.expr}")
    return seconds


# ---------------------------------------------------------------- one row of the table


@dataclass
class Row:
    work: Workload
    size: int
    mode: str = "-"
    status: str = "-"
    sym_cold: float = float("nan")
    sym: float = float("nan")
    engines: dict[str, float] = field(default_factory=dict)
    gc_cold: float = float("nan")
    gc: float = float("nan")
    fast: float = float("nan")
    capped: str | None = None


def measure(work: Workload, size: int, args: argparse.Namespace) -> Row:
    row = Row(work, size)
    cold = run_symcheck(work, args.expansion_budget, args.clear_sympy_cache)
    row.sym_cold, row.mode, row.status = cold.seconds, cold.mode, cold.status
    reps = args.reps
    if cold.seconds > args.max_seconds:
        row.capped = f"cold symcheck run took {_s(cold.seconds)} > --max-seconds {args.max_seconds:g}s"
        reps = 1
    warm = [run_symcheck(work, args.expansion_budget, args.clear_sympy_cache) for _ in range(reps)]
    row.sym = statistics.median(r.seconds for r in warm)
    row.engines = {e: statistics.median(r.engine_seconds.get(e, float("nan")) for r in warm) for e in ENGINES}
    if any(r.status != "pass" for r in warm):
        row.status = next(r.status for r in warm if r.status != "pass")

    row.gc_cold = run_gradcheck(work, fast=False)
    row.gc = statistics.median(run_gradcheck(work, fast=False) for _ in range(reps))
    if not args.no_fast:
        run_gradcheck(work, fast=True)  # warm-up
        row.fast = statistics.median(run_gradcheck(work, fast=True) for _ in range(reps))
    return row


# ---------------------------------------------------------------- output


def _s(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "-"
    return f"{seconds * 1e3:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "-"
    return f"{a / b:.1f}x"


def print_table(rows: Sequence[Row], fast: bool) -> None:
    head = ["expression", "elems", "shapes", "symbolic mode", "status", "sym cold", "symcheck", "gradcheck"]
    head += ["fast", "sc/gc", "sc/fast"] if fast else ["sc/gc"]
    body = []
    for r in rows:
        line = [r.work.expr, str(r.work.elements), r.work.shape_text(), r.mode, r.status]
        line += [_s(r.sym_cold), _s(r.sym), _s(r.gc)]
        line += [_s(r.fast), _ratio(r.sym, r.gc), _ratio(r.sym, r.fast)] if fast else [_ratio(r.sym, r.gc)]
        body.append(line)
    _print_grid(head, body, right_from=5)

    print("\nsymcheck time by engine (median EngineResult.seconds; 'other' = run_cases minus the engines:")
    print("parsing, binding, point checks, comparison):")
    head = ["expression", "elems", *ENGINES, "other", "gradcheck cold"]
    body = []
    for r in rows:
        other = r.sym - sum(v for v in r.engines.values() if v == v)
        line = [r.work.expr, str(r.work.elements)]
        line += [_s(r.engines.get(e, float("nan"))) for e in ENGINES]
        line += [_s(other), _s(r.gc_cold)]
        body.append(line)
    _print_grid(head, body, right_from=1)
    for r in rows:
        if r.capped:
            print(f"capped: {r.work.expr} at {r.work.elements} elements: {r.capped}; one repetition only")


def _print_grid(head: list[str], body: list[list[str]], right_from: int) -> None:
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def fmt(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i >= right_from else c.ljust(w) for i, (c, w) in pairs)

    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for line in body:
        print(fmt(line))


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 2 repetitions")
    p.add_argument("--sizes", type=int, nargs="+", help=f"total input elements (default {FULL_SIZES})")
    p.add_argument("--reps", type=int, help="timed repetitions after the warm-up (default 5; --quick 2)")
    p.add_argument("--expansion-budget", type=int, default=DEFAULT_EXPANSION_BUDGET)
    p.add_argument("--no-fast", action="store_true", help="skip the gradcheck fast_mode baseline")
    p.add_argument("--clear-sympy-cache", action="store_true", help="clear SymPy's cache before each run")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="a row whose cold symcheck run takes longer gets one repetition, and larger sizes of "
        "that expression are skipped",
    )
    p.add_argument("--seed", type=int, default=0, help="numpy seed for the input values")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.reps < 1 or any(s < 1 for s in args.sizes):
        p.error("--reps and --sizes must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    builders = (seed_workload, matmul_workload)

    # The first symcheck run of the process, before anything imports torch or SymPy.
    first = builders[0](args.sizes[0], np.random.default_rng(args.seed))
    first_run = run_symcheck(first, args.expansion_budget, args.clear_sympy_cache)

    import sympy
    import torch

    print(
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"sympy {sympy.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs"
    )
    cache = "cleared before each run" if args.clear_sympy_cache else "kept"
    print(
        f"sizes {args.sizes}, {args.reps} timed repetitions (median) after a warm-up, expansion budget "
        f"{args.expansion_budget}, SymPy cache {cache}"
    )
    print(
        f"first symcheck run of the process (imports SymPy and torch, first derivation): "
        f"{_s(first_run.seconds)} for {first.expr} at {first.elements} elements\n"
    )

    rows: list[Row] = []
    started = time.perf_counter()
    for build in builders:
        for i, size in enumerate(sorted(args.sizes)):
            work = build(size, np.random.default_rng([args.seed, i]))
            row = measure(work, size, args)
            rows.append(row)
            if row.capped:
                print(f"skipping {work.expr} above {work.elements} elements: {row.capped}", file=sys.stderr)
                break
    print_table(rows, fast=not args.no_fast)
    print(
        "\nsym cold = first run_cases of the row (not in the median). symbolic mode: 'expansion' = every "
        f"element expanded exactly (inputs <= budget {args.expansion_budget}); 'closed form' = closed form "
        "evaluated in float64, checked by expansion at a small probe shape."
    )
    print(f"total wall time {time.perf_counter() - started:.1f}s")
    return 0 if all(r.status == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
