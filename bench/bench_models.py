"""Benchmark: symcheck on the issue's models at scale, and on second derivatives, against torch's checkers.

Not part of CI; nothing in tests/ imports it. Run from the repository root:

    python bench/bench_models.py             # all three parts, 5 repetitions
    python bench/bench_models.py --quick     # the scale rows and fewer second-order sizes, 2 repetitions
    python bench/bench_models.py --parts 1 3 --reps 3

Part 1, matrix factorization: sum(mask*(R - U @ V.T)^2) + lam*(sum(U^2) + sum(V^2)), wrt U and V, up to
R 200x150 and rank 10 (3500 parameters); lam is a scalar input given as a `fill`.
Part 2, batch logistic regression: cross_entropy(X @ W.T + b, y), wrt W and b, up to 512 examples x 1000
features x 10 classes (10010 parameters). X is bag-of-words counts (20 tokens per example); --dense draws
X from N(0, 1) instead.
Part 3, second order (`order: 2`): x @ A @ x wrt x (A fixed), and sum(tanh(W @ x + b)) wrt all inputs.

Each row builds a Case in memory the way `symcheck grad` builds one (samples=0, the point pinned, all
four engines, the row's wrt and order) and times `run_cases([case])`. The same float64 values go to
`torch.autograd.gradcheck` (parts 1-2) or `torch.autograd.gradgradcheck` (part 3), default tolerances,
over the same wrt inputs (the others are passed with requires_grad=False), in full mode and in
fast_mode. Full mode perturbs every wrt element; where its estimated time exceeds --max-seconds it is
skipped (fast_mode only) and the table says so. Before timing, the torch function's value is checked
against symcheck's, so both sides check the same function.

The first run of each row is reported as "cold" and is not in the median (run_cases makes a fresh
Runner, so every repetition derives the symbolic forms again; only SymPy's global cache carries over).
The very first symcheck run of the process (imports SymPy and torch) is on a tiny case of its own.
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
    NAN,
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

from symcheck.language.inputs import InputSpec
from symcheck.suites.case import DEFAULT_EXPANSION_BUDGET, Case

# (users, items, rank); (examples, features, classes); n for x @ A @ x; n for the tanh layer
MF_SIZES = {"full": ((5, 4, 2), (50, 40, 5), (200, 150, 10)), "quick": ((200, 150, 10),)}
LR_SIZES = {"full": ((16, 26, 2), (64, 100, 10), (512, 1000, 10)), "quick": ((512, 1000, 10),)}
QUAD_SIZES = {"full": (8, 32, 64), "quick": (8, 64)}
TANH_SIZES = {"full": (2, 4, 8, 16), "quick": (2, 8)}
PARTS = {
    "1": "matrix factorization (gradcheck)",
    "2": "batch logistic regression (gradcheck)",
    "3": "second order (gradgradcheck)",
}
TOKENS_PER_EXAMPLE = 20
MF_DENSITY = 0.3  # share of observed ratings


# ---------------------------------------------------------------- the models


@dataclass(frozen=True)
class Model:
    label: str
    expr: str
    values: dict[str, np.ndarray]  # every input, in torch_fn's argument order; integer arrays are labels
    wrt: tuple[str, ...]
    torch_fn: Callable[..., Any]
    order: int = 1
    fills: frozenset[str] = frozenset()  # scalar inputs given to symcheck as `fill`, not `value`

    @property
    def wrt_elements(self) -> int:
        return sum(self.values[n].size for n in self.wrt)

    @property
    def elements(self) -> int:
        return sum(v.size for v in self.values.values())

    def shape_text(self) -> str:
        groups: dict[str, list[str]] = {}
        for name, v in self.values.items():
            groups.setdefault("x".join(map(str, v.shape)) or "()", []).append(name)
        return " ".join(f"{','.join(names)}:{shape}" for shape, names in groups.items())


def matrix_factorization(users: int, items: int, rank: int, rng: np.random.Generator) -> Model:
    def fn(R: Any, mask: Any, U: Any, V: Any, lam: Any) -> Any:
        return (mask * (R - U @ V.T) ** 2).sum() + lam * ((U**2).sum() + (V**2).sum())

    mask = (rng.uniform(size=(users, items)) < MF_DENSITY).astype(np.float64)
    values = {
        "R": mask * rng.integers(1, 6, (users, items)),  # ratings 1..5 where observed, 0 elsewhere
        "mask": mask,
        "U": rng.uniform(0.0, 1.0, (users, rank)),
        "V": rng.uniform(0.0, 1.0, (items, rank)),
        "lam": np.array(0.1),
    }
    expr = "sum(mask*(R - U @ V.T)^2) + lam*(sum(U^2) + sum(V^2))"
    label = f"MF {users}x{items} rank {rank}"
    return Model(label, expr, values, ("U", "V"), fn, fills=frozenset({"lam"}))


def logistic_regression(
    examples: int, features: int, classes: int, rng: np.random.Generator, dense: bool
) -> Model:
    def fn(X: Any, W: Any, b: Any, y: Any) -> Any:
        import torch

        return torch.nn.functional.cross_entropy(X @ W.T + b, y)

    if dense:
        X = rng.standard_normal((examples, features))
        W = rng.standard_normal((classes, features)) / np.sqrt(features)  # logits O(1)
    else:
        tokens = rng.integers(0, features, (examples, TOKENS_PER_EXAMPLE))
        X = np.stack([np.bincount(t, minlength=features) for t in tokens]).astype(np.float64)
        W = 0.1 * rng.standard_normal((classes, features))
    b = 0.1 * rng.standard_normal(classes)
    values = {"X": X, "W": W, "b": b, "y": rng.integers(0, classes, examples)}
    label = f"logreg {examples}x{features}x{classes}{' dense' if dense else ''}"
    return Model(label, "cross_entropy(X @ W.T + b, y)", values, ("W", "b"), fn)


def quadratic_form(n: int, rng: np.random.Generator) -> Model:
    def fn(x: Any, A: Any) -> Any:
        return x @ A @ x

    values = {"x": rng.uniform(-1.0, 1.0, n), "A": rng.uniform(-1.0, 1.0, (n, n))}
    return Model(f"x@A@x n={n}", "x @ A @ x", values, ("x",), fn, order=2)


def tanh_layer(n: int, rng: np.random.Generator) -> Model:
    def fn(W: Any, x: Any, b: Any) -> Any:
        import torch

        return torch.tanh(W @ x + b).sum()

    values = {
        "W": rng.uniform(-1.0, 1.0, (n, n)) / np.sqrt(n),  # tanh's argument O(1) at every size
        "x": rng.uniform(-1.0, 1.0, n),
        "b": rng.uniform(-1.0, 1.0, n),
    }
    return Model(f"tanh layer n={n}", "sum(tanh(W @ x + b))", values, ("W", "x", "b"), fn, order=2)


def build_part(part: str, args: argparse.Namespace) -> list[Model]:
    size = "quick" if args.quick else "full"
    seeds = iter(range(1000))

    def rng() -> np.random.Generator:
        return np.random.default_rng([args.seed, int(part), next(seeds)])

    if part == "1":
        return [matrix_factorization(*s, rng()) for s in MF_SIZES[size]]
    if part == "2":
        return [logistic_regression(*s, rng(), args.dense) for s in LR_SIZES[size]]
    return [quadratic_form(n, rng()) for n in QUAD_SIZES[size]] + [
        tanh_layer(n, rng()) for n in TANH_SIZES[size]
    ]


# ---------------------------------------------------------------- symcheck's side


def make_case(model: Model, expansion_budget: int) -> Case:
    """What `symcheck grad EXPR -i ... --wrt ... --order ... --samples 0` builds."""
    inputs = {}
    for name, v in model.values.items():
        if name in model.fills:
            inputs[name] = InputSpec(shape=v.shape, fill=float(v.flat[0]))
        else:
            inputs[name] = pinned_input(v)
    return pinned_case(model.label, model.expr, inputs, model.wrt, expansion_budget, order=model.order)


FIRST_ORDER_MODES = (  # a symbolic note's start -> what the table shows
    ("closed form = expansion (exact", "expansion"),
    ("closed form proven equal", "closed form, proven at probe"),
    ("closed form = expansion at probe", "closed form, probe numeric"),
    ("closed form not checked", "closed form, unchecked"),
)
SECOND_ORDER_MODES = (
    ("second derivatives: exact Hessian by expansion", "H exact (expansion)"),
    ("second derivatives: full Hessian from the closed form", "H from closed-form Hv"),
    ("second derivatives: H v in closed form", "Hv closed form"),
)


def mode_text(run: SymcheckRun, order: int) -> str:
    notes = run.notes.get("symbolic", [])

    def first(table: tuple[tuple[str, str], ...], default: str) -> str:
        return next((short for start, short in table for n in notes if n.startswith(start)), default)

    text = first(FIRST_ORDER_MODES, run.mode)
    if order >= 2:
        text += " / " + first(SECOND_ORDER_MODES, "?")
    return text


def numeric_text(run: SymcheckRun) -> str:
    notes = run.notes.get("numeric", [])
    directional = next((n for n in notes if n.startswith("finite differences in")), None)
    if directional:
        return directional.split(" (")[0].replace("finite differences in ", "")  # "8 random directions"
    return "every element"


# ---------------------------------------------------------------- torch's side


def torch_inputs(model: Model) -> tuple[Any, ...]:
    import torch

    return tuple(
        torch.tensor(v, dtype=torch.int64)
        if np.issubdtype(v.dtype, np.integer)
        else torch.tensor(v, dtype=torch.float64, requires_grad=name in model.wrt)
        for name, v in model.values.items()
    )


def run_baseline(model: Model, fast: bool) -> float:
    import torch

    check = torch.autograd.gradcheck if model.order == 1 else torch.autograd.gradgradcheck
    inputs = torch_inputs(model)
    start = time.perf_counter()
    ok = check(model.torch_fn, inputs, fast_mode=fast)
    seconds = time.perf_counter() - start
    if not ok:  # raise_exception=True (the default) raises first; kept for clarity
        raise RuntimeError(f"{check.__name__} failed on {model.label}")
    return seconds


def estimate_full_seconds(model: Model) -> float:
    """Full mode perturbs each wrt element twice: that many evaluations of the function (gradcheck) or
    of its gradient with create_graph (gradgradcheck), timed here on a few calls."""
    import torch

    inputs = torch_inputs(model)

    def once() -> None:
        out = model.torch_fn(*inputs)
        if model.order >= 2:
            floats = [t for t in inputs if t.requires_grad]
            torch.autograd.grad(out, floats, create_graph=True)

    once()
    # The median of many calls: one call of a small model takes well under a millisecond, and a single
    # garbage-collector pass over the big Case objects would otherwise inflate the estimate 50-fold.
    times: list[float] = []
    while len(times) < 5 or (sum(times) < 0.1 and len(times) < 200):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return 2 * model.wrt_elements * statistics.median(times)


def same_function(model: Model, symcheck_value: float) -> None:
    import torch

    with torch.no_grad():
        mine = float(model.torch_fn(*torch_inputs(model)))
    if not np.isclose(mine, symcheck_value, rtol=1e-10, atol=1e-12):
        raise RuntimeError(f"{model.label}: torch computes {mine!r}, symcheck {symcheck_value!r}")


# ---------------------------------------------------------------- one row


@dataclass
class Row:
    model: Model
    mode: str = "-"
    numeric: str = "-"
    status: str = "-"
    sym_cold: float = NAN
    sym: float = NAN
    engines: dict[str, float] = field(default_factory=dict)
    symbolic_notes: list[str] = field(default_factory=list)
    gc_cold: float = NAN
    gc: float = NAN
    fast: float = NAN
    caps: list[str] = field(default_factory=list)


def measure(model: Model, args: argparse.Namespace) -> Row:
    row = Row(model)
    cold = time_case(make_case(model, args.expansion_budget), args.clear_sympy_cache)
    same_function(model, cold.value)
    row.sym_cold, row.status = cold.seconds, cold.status
    case = make_case(model, args.expansion_budget)
    warm = [time_case(case, args.clear_sympy_cache) for _ in range(args.reps)]
    row.sym = statistics.median(r.seconds for r in warm)
    row.engines = median_engine_seconds(warm)
    row.mode, row.numeric = mode_text(warm[0], model.order), numeric_text(warm[0])
    row.symbolic_notes = warm[0].notes.get("symbolic", [])
    if cold.status != "pass" or any(r.status != "pass" for r in warm):
        row.status = worst_status([cold, *warm])

    name = "gradcheck" if model.order == 1 else "gradgradcheck"
    estimate = estimate_full_seconds(model)
    if estimate > args.max_seconds:
        row.caps.append(
            f"{name} full mode skipped: estimated {fmt_seconds(estimate)} "
            f"({model.wrt_elements} wrt elements) > --max-seconds {args.max_seconds:g}s; fast_mode only"
        )
    else:
        row.gc_cold = run_baseline(model, fast=False)
        reps = args.reps
        if row.gc_cold * reps > args.max_seconds:
            reps = max(1, int(args.max_seconds / row.gc_cold))
            row.caps.append(
                f"{name} full mode: {reps} repetition(s), not {args.reps}: cold run took "
                f"{fmt_seconds(row.gc_cold)}, budget --max-seconds {args.max_seconds:g}s"
            )
        row.gc = statistics.median(run_baseline(model, fast=False) for _ in range(reps))
    if not args.no_fast:
        run_baseline(model, fast=True)  # warm-up
        row.fast = statistics.median(run_baseline(model, fast=True) for _ in range(args.reps))
    return row


# ---------------------------------------------------------------- output


def print_part(part: str, rows: Sequence[Row], fast: bool) -> None:
    baseline = "gradcheck" if part != "3" else "gradgradcheck"
    short = "gc" if part != "3" else "ggc"
    print(f"\n=== part {part}: {PARTS[part]} ===")
    head = ["case", "shapes", "wrt elems", "symbolic mode", "status", "sc cold", "symcheck"]
    head += [f"{short} cold", baseline]
    head += ["fast", f"sc/{short}", "sc/fast"] if fast else [f"sc/{short}"]
    body = []
    for r in rows:
        m = r.model
        line = [m.label, m.shape_text(), str(m.wrt_elements), r.mode, r.status]
        line += [fmt_seconds(r.sym_cold), fmt_seconds(r.sym), fmt_seconds(r.gc_cold), fmt_seconds(r.gc)]
        line += [fmt_seconds(r.fast)] if fast else []
        line += [ratio(r.sym, r.gc)] + ([ratio(r.sym, r.fast)] if fast else [])
        body.append(line)
    print_grid(head, body, right_from=2)

    print("\nsymcheck by engine (median EngineResult.seconds; other = run_cases minus the engines):")
    head = ["case", *ENGINES, "other", "numeric differences"]
    body = []
    for r in rows:
        other = r.sym - sum(v for v in r.engines.values() if v == v)
        line = [r.model.label, *(fmt_seconds(r.engines.get(e, NAN)) for e in ENGINES), fmt_seconds(other)]
        body.append([*line, r.numeric])
    print_grid(head, body, right_from=1)
    for r in rows:
        for cap in r.caps:
            print(f"capped: {r.model.label}: {cap}")


def print_symbolic_notes(rows: Sequence[Row]) -> None:
    print("\nsymbolic engine notes (one repetition per row):")
    for r in rows:
        print(f"  {r.model.label}:")
        for note in r.symbolic_notes:
            print(f"    - {note}")


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the scale rows, fewer second-order sizes, 2 reps")
    p.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=sorted(PARTS))
    p.add_argument("--reps", type=int, help="timed repetitions after the cold run (default 5; --quick 2)")
    p.add_argument("--expansion-budget", type=int, default=DEFAULT_EXPANSION_BUDGET)
    p.add_argument("--no-fast", action="store_true", help="skip the fast_mode baselines")
    p.add_argument("--dense", action="store_true", help="part 2: X from N(0, 1) instead of word counts")
    p.add_argument("--clear-sympy-cache", action="store_true", help="clear SymPy's cache before each run")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="a full-mode gradcheck/gradgradcheck estimated to take longer is skipped (fast_mode "
        "only); its repetitions are cut to fit in this many seconds",
    )
    p.add_argument("--seed", type=int, default=0, help="numpy seed for the input values")
    args = p.parse_args(argv)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.reps < 1:
        p.error("--reps must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    # The first symcheck run of the process, before anything imports torch or SymPy.
    tiny = quadratic_form(2, np.random.default_rng(args.seed))
    first_run = time_case(make_case(tiny, args.expansion_budget), args.clear_sympy_cache)

    import sympy
    import torch

    print(
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"sympy {sympy.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs"
    )
    cache = "cleared before each run" if args.clear_sympy_cache else "kept"
    print(
        f"parts {' '.join(args.parts)}{' (quick)' if args.quick else ''}, {args.reps} timed repetitions "
        f"(median) after a cold run, expansion budget {args.expansion_budget}, SymPy cache {cache}, "
        f"--max-seconds {args.max_seconds:g}"
    )
    print(
        f"first symcheck run of the process (imports SymPy and torch, first derivation): "
        f"{fmt_seconds(first_run.seconds)} for {tiny.expr} order 2 at {tiny.elements} elements"
    )

    started = time.perf_counter()
    all_rows: list[Row] = []
    for part in args.parts:
        rows = [measure(model, args) for model in build_part(part, args)]
        print_part(part, rows, fast=not args.no_fast)
        all_rows += rows
    print_symbolic_notes(all_rows)
    print(
        "\nsc = symcheck: run_cases on one point, all four engines, values and gradients compared "
        "(order 2: and second derivatives). gc/ggc = torch.autograd.gradcheck/gradgradcheck, full mode "
        "(every wrt element perturbed); fast = fast_mode=True. cold = first run of the row, not in "
        "the median. symbolic mode: 'expansion' = exact element by element (inputs <= budget "
        f"{args.expansion_budget}); 'closed form' = size-independent closed form evaluated in float64, "
        "checked by expansion at a small probe shape; after '/': how second derivatives were checked."
    )
    total = time.perf_counter() - started
    print(f"total wall time {total:.1f}s (plus {fmt_seconds(first_run.seconds)} for the first run)")
    return 0 if all(r.status == "pass" for r in all_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
