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
from _common import (
    ENGINES,
    SymcheckRun,
    fmt_seconds,
    median_engine_seconds,
    pinned_case,
    pinned_input,
    print_grid,
    ratio,
    time_case,
    worst_status,
)

from symcheck.suites.case import DEFAULT_EXPANSION_BUDGET, Case

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
    inputs = {name: pinned_input(v) for name, v in work.values.items()}
    return pinned_case(work.expr, work.expr, inputs, None, expansion_budget)


def run_symcheck(work: Workload, expansion_budget: int, clear_sympy_cache: bool) -> SymcheckRun:
    return time_case(make_case(work, expansion_budget), clear_sympy_cache)


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
        row.capped = (
            f"cold symcheck run took {fmt_seconds(cold.seconds)} > --max-seconds {args.max_seconds:g}s"
        )
        reps = 1
    warm = [run_symcheck(work, args.expansion_budget, args.clear_sympy_cache) for _ in range(reps)]
    row.sym = statistics.median(r.seconds for r in warm)
    row.engines = median_engine_seconds(warm)
    if any(r.status != "pass" for r in warm):
        row.status = worst_status(warm)

    row.gc_cold = run_gradcheck(work, fast=False)
    row.gc = statistics.median(run_gradcheck(work, fast=False) for _ in range(reps))
    if not args.no_fast:
        run_gradcheck(work, fast=True)  # warm-up
        row.fast = statistics.median(run_gradcheck(work, fast=True) for _ in range(reps))
    return row


# ---------------------------------------------------------------- output


def print_table(rows: Sequence[Row], fast: bool) -> None:
    head = ["expression", "elems", "shapes", "symbolic mode", "status", "sym cold", "symcheck", "gradcheck"]
    head += ["fast", "sc/gc", "sc/fast"] if fast else ["sc/gc"]
    body = []
    for r in rows:
        line = [r.work.expr, str(r.work.elements), r.work.shape_text(), r.mode, r.status]
        line += [fmt_seconds(r.sym_cold), fmt_seconds(r.sym), fmt_seconds(r.gc)]
        line += (
            [fmt_seconds(r.fast), ratio(r.sym, r.gc), ratio(r.sym, r.fast)] if fast else [ratio(r.sym, r.gc)]
        )
        body.append(line)
    print_grid(head, body, right_from=5)

    print("\nsymcheck time by engine (median EngineResult.seconds; 'other' = run_cases minus the engines:")
    print("parsing, binding, point checks, comparison):")
    head = ["expression", "elems", *ENGINES, "other", "gradcheck cold"]
    body = []
    for r in rows:
        other = r.sym - sum(v for v in r.engines.values() if v == v)
        line = [r.work.expr, str(r.work.elements)]
        line += [fmt_seconds(r.engines.get(e, float("nan"))) for e in ENGINES]
        line += [fmt_seconds(other), fmt_seconds(r.gc_cold)]
        body.append(line)
    print_grid(head, body, right_from=1)
    for r in rows:
        if r.capped:
            print(f"capped: {r.work.expr} at {r.work.elements} elements: {r.capped}; one repetition only")


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
        f"{fmt_seconds(first_run.seconds)} for {first.expr} at {first.elements} elements\n"
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
