"""Benchmark: symcheck against its peers (torch gradcheck, fast_mode, JAX's check_grads), interleaved.

Not part of CI; nothing in tests/ imports it. Run from the repository root:

    python bench/compare.py                  # sizes 4 64 256 4096 10^5 10^6, 5 repetitions, all extra rows
    python bench/compare.py --quick          # sizes 4 64 256 4096, 2 repetitions
    python bench/compare.py --sizes 4 64 --workloads seed tanh --reps 3 --no-suites --no-cli

Every contender checks the same function at the same float64 values, in one process, and the
repetitions are interleaved (symcheck, gradcheck, fast_mode, JAX, then symcheck again, ...), so a
change in the machine's load lands on all of them alike. The first repetition of each contender is
reported as "cold" and is not in the median.

- symcheck: a Case built in memory the way `symcheck grad` builds one (samples=0, the point pinned,
  all four engines, the workload's wrt), timed through `run_cases([case])` (bench/_common.py).
- gradcheck: `torch.autograd.gradcheck` in full mode (every wrt element perturbed; skipped, "capped",
  where its estimated time exceeds --max-seconds) and with `fast_mode=True`.
- JAX: `jax.test_util.check_grads(f, wrt_args, order=1, modes=["rev"])` (--jax-modes fwd rev adds the
  forward-mode check) on the same function written in jax.numpy, float64 (jax_enable_x64), not jitted.
  Without jax (`pip install -e '.[bench]'`) or with --no-jax, its columns print "-".

Workloads (--workloads), each at --sizes total input elements (all inputs, labels included):
`seed` mean(3*(x+2)^2); `tanh` sum(tanh(W @ x)), W n x n; `mf` sum((R - U @ V.T)^2) wrt U and V,
rank 8; `ce` cross_entropy(X @ W, y) wrt W, y integer labels. Before timing, the torch and JAX
functions' values are checked against symcheck's.

Extra rows: the shipped suites (`symcheck verify expressions/`, serial and -j 2, as subprocesses), the
cold CLI (`symcheck grad` of the tutorial against `python -c "import torch"`, both subprocesses), and a
micrograd-style deep scalar program of 23 named steps on two scalars.

Every contender gets one BLAS/OpenMP thread: the variables are set below before numpy, torch or jax
are imported, torch.set_num_threads(1) is called, and the subprocesses inherit the same environment.
Exit status 1 if any symcheck check (a row, a suite run, the CLI run) did not pass.
"""

from __future__ import annotations

import os

# Before numpy/torch/jax are imported (here or by _common and symcheck): their thread pools read these
# once, at import. One thread each, so no contender wins by using the second core.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators: the others run on the CPU
os.environ["JAX_ENABLE_X64"] = "1"  # float64 like the others (JAX defaults to float32)

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    NAN,
    SymcheckRun,
    fmt_seconds,
    pinned_case,
    pinned_input,
    print_grid,
    ratio,
    time_case,
    worst_status,
)

from symcheck.suites.case import DEFAULT_EXPANSION_BUDGET, Case  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FULL_SIZES = (4, 64, 256, 4096, 10**5, 10**6)
QUICK_SIZES = (4, 64, 256, 4096)
MF_RANK = 8
CE_CLASSES = 10
SUBPROCESS_TIMEOUT = 900.0  # seconds: a hung subprocess fails its row instead of stalling the run
TUTORIAL = ("y = x + 2; z = 3*y^2; out = mean(z)", "-i", "x:2x2=1")
INSTALL_HINT = "pip install -e '.[bench]'"

# micrograd's test_more_ops (a = -4, b = 2: c = a + b ... g += 10.0 / f) in symcheck's language, rebinding
# names where micrograd writes +=, then more steps through tanh, sigmoid, exp, log, sqrt, softplus, sin,
# cos and abs. No relu or abs argument is near its kink at (a, b) = (-4, 2) (checked with plain floats),
# and softplus's argument stays below 20, where torch's softplus switches to x (threshold=20) and
# would compute another function than symcheck's and JAX's.
MICROGRAD = (
    "c = a + b; d = a*b + b^3; c = c + c + 1; c = c + 1 + c + (-a); d = d + d*2 + relu(b + a); "
    "d = d + 3*d + relu(b - a); e = c - d; f = e^2; g = f/2.0; g = g + 10.0/f; h = tanh(g/10); "
    "k = h*a + sigmoid(b); m = k^2 + exp(b/4); n = relu(m - 1) + relu(1 - m); p = log(1 + m^2); "
    "q = p*h - k/2 + n; r = sqrt(q^2 + 1); s = softplus(r/4 + a); t = s*d/10 + c; u = tanh(t/10)*g; "
    "v = u + 2*e - f/49; w = sin(v) + cos(a*b); out = w/(1 + abs(h))"
)
MICROGRAD_STEPS = MICROGRAD.count(";") + 1


# ---------------------------------------------------------------- the workloads


@dataclass(frozen=True)
class Workload:
    key: str
    expr: str
    size: int  # the requested size; the actual element count is `elements`
    values: dict[str, np.ndarray]  # every input, in the functions' argument order; integer arrays are labels
    wrt: tuple[str, ...]
    torch_fn: Callable[..., Any]  # called with every input by name
    jax_fn: Callable[..., Any]  # the same function in jax.numpy, called with every input by name
    jax_eps: float | None = None  # check_grads' finite-difference step, where its default 1e-4 is too coarse

    @property
    def elements(self) -> int:
        return sum(v.size for v in self.values.values())

    @property
    def wrt_elements(self) -> int:
        return sum(self.values[n].size for n in self.wrt)

    def shape_text(self) -> str:
        return " ".join(f"{n}:{'x'.join(map(str, v.shape)) or '()'}" for n, v in self.values.items())


def _jnp() -> Any:
    import jax.numpy as jnp

    return jnp


def best_pair(size: int, elements: Callable[[int, int], int]) -> tuple[int, int]:
    """The squarest (m, k) (m close to k) whose `elements(m, k)` is within 1% of `size`, or else the
    closest. `elements` is affine in k at fixed m, so only the k next to the exact solution are tried."""
    candidates: list[tuple[int, int, int]] = []  # (distance to size, m, k)
    for m in range(1, math.isqrt(size) + 2):
        slope = elements(m, 2) - elements(m, 1)
        k0 = round((size - elements(m, 1)) / slope) + 1
        candidates += [(abs(elements(m, k) - size), m, k) for k in (k0 - 1, k0, k0 + 1) if k >= 1]
    near = [c for c in candidates if c[0] <= max(1, size // 100)]
    if near:
        return min(near, key=lambda c: (abs(c[2] - c[1]), c[0]))[1:]
    return min(candidates, key=lambda c: (c[0], abs(c[2] - c[1])))[1:]


def seed_workload(size: int, rng: np.random.Generator) -> Workload:
    def torch_fn(x: Any) -> Any:
        return (3 * (x + 2) ** 2).mean()

    def jax_fn(x: Any) -> Any:
        return _jnp().mean(3 * (x + 2) ** 2)

    values = {"x": rng.uniform(-1.0, 1.0, size)}
    return Workload("seed", "mean(3*(x+2)^2)", size, values, ("x",), torch_fn, jax_fn)


def tanh_workload(size: int, rng: np.random.Generator) -> Workload:
    def torch_fn(W: Any, x: Any) -> Any:
        import torch

        return torch.tanh(W @ x).sum()

    def jax_fn(W: Any, x: Any) -> Any:
        jnp = _jnp()
        return jnp.sum(jnp.tanh(W @ x))

    # W n x n and x of n: n*n + n elements (at a tie, the larger n).
    n = min(range(1, math.isqrt(size) + 2), key=lambda n: (abs(n * n + n - size), -n))
    values = {
        "W": rng.uniform(-1.0, 1.0, (n, n)) / np.sqrt(n),  # tanh's argument O(1), away from saturation
        "x": rng.uniform(-1.0, 1.0, n),
    }
    return Workload("tanh", "sum(tanh(W @ x))", size, values, ("W", "x"), torch_fn, jax_fn)


def mf_workload(size: int, rng: np.random.Generator) -> Workload:
    def torch_fn(R: Any, U: Any, V: Any) -> Any:
        return ((R - U @ V.T) ** 2).sum()

    def jax_fn(R: Any, U: Any, V: Any) -> Any:
        return _jnp().sum((R - U @ V.T) ** 2)

    # Rank 8 needs at least 1 + 2*8 elements (R 1x1); below that, rank 1.
    rank = MF_RANK if size >= 1 + 2 * MF_RANK else 1
    users, items = best_pair(size, lambda m, k: m * k + rank * (m + k))
    values = {
        "R": rng.uniform(0.0, 1.0, (users, items)),
        "U": rng.uniform(0.0, 1.0, (users, rank)) / np.sqrt(rank),  # U @ V.T of the order of R
        "V": rng.uniform(0.0, 1.0, (items, rank)),
    }
    return Workload("mf", "sum((R - U @ V.T)^2)", size, values, ("U", "V"), torch_fn, jax_fn)


def ce_workload(size: int, rng: np.random.Generator) -> Workload:
    def torch_fn(X: Any, W: Any, y: Any) -> Any:
        import torch

        return torch.nn.functional.cross_entropy(X @ W, y)

    def jax_fn(X: Any, W: Any, y: Any) -> Any:
        import jax

        jnp = _jnp()
        logits = X @ W
        picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

    # 10 classes, or 2 where W's 10 columns would be most of the elements.
    classes = CE_CLASSES if size >= 4 * CE_CLASSES else 2
    examples, features = best_pair(size, lambda m, k: m * k + k * classes + m)
    values = {
        "X": rng.standard_normal((examples, features)),
        "W": rng.standard_normal((features, classes)) / np.sqrt(features),  # logits O(1)
        "y": rng.integers(0, classes, examples),
    }
    return Workload("ce", "cross_entropy(X @ W, y)", size, values, ("W",), torch_fn, jax_fn)


def micrograd_workload() -> Workload:
    def steps(a: Any, b: Any, lib: Any, relu: Any, sigmoid: Any, softplus: Any) -> Any:
        c = a + b
        d = a * b + b**3
        c = c + c + 1
        c = c + 1 + c + (-a)
        d = d + d * 2 + relu(b + a)
        d = d + 3 * d + relu(b - a)
        e = c - d
        f = e**2
        g = f / 2.0
        g = g + 10.0 / f
        h = lib.tanh(g / 10)
        k = h * a + sigmoid(b)
        m = k**2 + lib.exp(b / 4)
        n = relu(m - 1) + relu(1 - m)
        p = lib.log(1 + m**2)
        q = p * h - k / 2 + n
        r = lib.sqrt(q**2 + 1)
        s = softplus(r / 4 + a)
        t = s * d / 10 + c
        u = lib.tanh(t / 10) * g
        v = u + 2 * e - f / 49
        w = lib.sin(v) + lib.cos(a * b)
        return w / (1 + lib.abs(h))

    def torch_fn(a: Any, b: Any) -> Any:
        import torch

        return steps(a, b, torch, torch.relu, torch.sigmoid, torch.nn.functional.softplus)

    def jax_fn(a: Any, b: Any) -> Any:
        import jax

        return steps(a, b, _jnp(), jax.nn.relu, jax.nn.sigmoid, jax.nn.softplus)

    values = {"a": np.array(-4.0), "b": np.array(2.0)}
    # With check_grads' default step (1e-4) its central difference is off by 4e-5 relative here (the
    # program's curvature), past its own 1e-5 tolerance: a false alarm. 1e-5 passes.
    return Workload("micrograd", MICROGRAD, 2, values, ("a", "b"), torch_fn, jax_fn, jax_eps=1e-5)


BUILDERS: dict[str, Callable[[int, np.random.Generator], Workload]] = {
    "seed": seed_workload,
    "tanh": tanh_workload,
    "mf": mf_workload,
    "ce": ce_workload,
}


# ---------------------------------------------------------------- the contenders


def make_case(work: Workload, expansion_budget: int, timeout: float | None) -> Case:
    """What `symcheck grad EXPR -i ... --wrt ... --samples 0` builds."""
    inputs = {name: pinned_input(v) for name, v in work.values.items()}
    extra = {} if timeout is None else {"timeout": timeout}
    return pinned_case(work.key, work.expr, inputs, work.wrt, expansion_budget, **extra)


def torch_inputs(work: Workload) -> dict[str, Any]:
    import torch

    return {
        name: torch.tensor(v, dtype=torch.int64)
        if np.issubdtype(v.dtype, np.integer)
        else torch.tensor(v, dtype=torch.float64, requires_grad=name in work.wrt)
        for name, v in work.values.items()
    }


def gradcheck_call(work: Workload, fast: bool) -> Callable[[], float]:
    import torch

    names = list(work.values)

    def fn(*tensors: Any) -> Any:
        return work.torch_fn(**dict(zip(names, tensors, strict=True)))

    def once() -> float:
        inputs = tuple(torch_inputs(work).values())  # fresh tensors: no .grad carried over
        start = time.perf_counter()
        ok = torch.autograd.gradcheck(fn, inputs, fast_mode=fast)
        seconds = time.perf_counter() - start
        if not ok:  # raise_exception=True (the default) raises first; kept for clarity
            raise RuntimeError(f"gradcheck failed on {work.key}")
        return seconds

    return once


def estimate_full_seconds(work: Workload) -> float:
    """Full-mode gradcheck evaluates the function twice per wrt element (central differences): that
    many calls, timed here on a few (as bench_models.py estimates it)."""
    import torch

    inputs = torch_inputs(work)
    with torch.no_grad():
        work.torch_fn(**inputs)
        # The median of many calls: one call of a small function takes microseconds, and a single
        # garbage-collector pass over the big Case objects would otherwise inflate the estimate.
        times: list[float] = []
        while len(times) < 5 or (sum(times) < 0.1 and len(times) < 200):
            start = time.perf_counter()
            work.torch_fn(**inputs)
            times.append(time.perf_counter() - start)
    return 2 * work.wrt_elements * statistics.median(times)


def jax_args(work: Workload) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """f of the wrt inputs only (the others are closed over), and the wrt values, as jax arrays made
    outside the timed call."""
    jnp = _jnp()
    fixed = {n: jnp.asarray(v) for n, v in work.values.items() if n not in work.wrt}
    wrt = tuple(jnp.asarray(work.values[n]) for n in work.wrt)

    def f(*args: Any) -> Any:
        return work.jax_fn(**fixed, **dict(zip(work.wrt, args, strict=True)))

    return f, wrt


def jax_call(work: Workload, modes: Sequence[str]) -> Callable[[], float]:
    from jax.test_util import check_grads

    f, args = jax_args(work)

    def once() -> float:
        start = time.perf_counter()
        check_grads(f, args, order=1, modes=list(modes), eps=work.jax_eps)  # AssertionError on a mismatch
        return time.perf_counter() - start

    return once


def same_value(work: Workload, symcheck_value: float, with_jax: bool) -> None:
    """Every contender must check the same function: torch's and JAX's values against symcheck's."""
    import torch

    with torch.no_grad():
        values = {"torch": float(work.torch_fn(**torch_inputs(work)))}
    if with_jax:
        f, args = jax_args(work)
        values["jax"] = float(f(*args))
    for who, value in values.items():
        if not np.isclose(value, symcheck_value, rtol=1e-10, atol=1e-12):
            raise RuntimeError(
                f"{work.key} at {work.elements}: {who} computes {value!r}, symcheck {symcheck_value!r}"
            )


# ---------------------------------------------------------------- interleaved repetitions


@dataclass
class Timing:
    cold: float = NAN
    warm: list[float] = field(default_factory=list)
    error: str | None = None
    capped: str | None = None  # why this contender ran fewer repetitions, or not at all

    @property
    def median(self) -> float:
        return statistics.median(self.warm) if self.warm else NAN

    def cell(self, seconds: float) -> str:
        if self.error:
            return "error"
        if seconds != seconds and self.capped:
            return "capped"
        return fmt_seconds(seconds)


def interleave(
    calls: dict[str, Callable[[], float]],
    reps: int,
    max_seconds: float,
    after_first: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Repetition 0 (cold) of every contender, then repetition 1 of every contender, and so on. A
    contender whose time in this row passes max_seconds stops after its first warm repetition."""
    timings = {name: Timing() for name in calls}
    for rep in range(reps + 1):
        for i, (name, call) in enumerate(calls.items()):
            t = timings[name]
            if t.error or t.capped:
                continue
            spent = (t.cold if t.cold == t.cold else 0.0) + sum(t.warm)
            if rep >= 2 and spent > max_seconds:
                t.capped = (
                    f"{len(t.warm)} of {reps} repetitions: {fmt_seconds(spent)} spent, "
                    f"past --max-seconds {max_seconds:g}"
                )
                continue
            # A collection of the previous contender's garbage (symcheck's Case objects and SymPy
            # trees are large) would otherwise land in the next one's timing.
            gc.collect()
            try:
                seconds = call()
            except Exception as e:
                t.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                continue
            if rep == 0:
                t.cold = seconds
                if i == 0 and after_first is not None:
                    after_first()
            else:
                t.warm.append(seconds)
    return timings


# ---------------------------------------------------------------- one row


@dataclass
class Row:
    work: Workload
    timings: dict[str, Timing]
    runs: list[SymcheckRun]

    @property
    def status(self) -> str:
        if self.timings["symcheck"].error:
            return "error"
        return worst_status(self.runs) if self.runs else "-"

    @property
    def mode(self) -> str:
        modes = [r.mode for r in self.runs]
        if not modes:
            return "-"
        return "not run" if modes[-1] == "-" else modes[-1]  # "-": the symbolic engine gave up or was skipped

    def median(self, name: str) -> float:
        return self.timings[name].median if name in self.timings else NAN


def measure(work: Workload, args: argparse.Namespace, with_jax: bool) -> Row:
    runs: list[SymcheckRun] = []
    case = make_case(work, args.expansion_budget, args.timeout)

    def symcheck_once() -> float:
        run = time_case(case, reuse=True)  # its cold repetition derives, the others reuse
        runs.append(run)
        return run.seconds

    calls: dict[str, Callable[[], float]] = {"symcheck": symcheck_once}
    full_cap = None
    estimate = estimate_full_seconds(work)
    if estimate > args.max_seconds:
        full_cap = (
            f"full mode skipped: estimated {fmt_seconds(estimate)} ({work.wrt_elements} wrt elements, "
            f"two evaluations each) > --max-seconds {args.max_seconds:g}"
        )
    else:
        calls["gradcheck"] = gradcheck_call(work, fast=False)
    calls["fast"] = gradcheck_call(work, fast=True)
    if with_jax:
        calls["jax"] = jax_call(work, args.jax_modes)

    def check_values() -> None:
        same_value(work, runs[0].value, with_jax)

    timings = interleave(calls, args.reps, args.max_seconds, after_first=check_values)
    if full_cap:
        timings["gradcheck"] = Timing(capped=full_cap)
    return Row(work, timings, runs)


# ---------------------------------------------------------------- subprocess rows


def symcheck_command() -> list[str]:
    """The console script beside this interpreter (what a user types), else `python -m symcheck`."""
    python = os.path.abspath(sys.executable)  # not resolve(): a venv's python is a symlink out of the venv
    script = shutil.which("symcheck", path=os.path.dirname(python))
    return [script] if script else [python, "-m", "symcheck"]


def subprocess_call(argv: list[str], failures: list[str]) -> Callable[[], float]:
    def once() -> float:
        start = time.perf_counter()
        done = subprocess.run(
            argv, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            failures.append(f"{' '.join(argv[-3:])}: exit {done.returncode}: {' | '.join(tail)}")
        return seconds

    return once


@dataclass
class Extra:
    label: str
    timing: Timing
    baseline_label: str = "-"
    baseline: Timing | None = None


def measure_suites(args: argparse.Namespace, failures: list[str]) -> list[Extra]:
    cmd = symcheck_command()
    # --no-cache derives every closed form again; with the cache (the default) the cold repetition
    # fills .symcheck_cache/ (cleared first) and the others read it, as a second run in a project does.
    calls = {
        "serial": subprocess_call([*cmd, "verify", "expressions/", "--no-cache"], failures),
        "-j 2": subprocess_call([*cmd, "verify", "expressions/", "-j", "2", "--no-cache"], failures),
        "cached": subprocess_call([*cmd, "verify", "expressions/"], failures),
        "cached -j 2": subprocess_call([*cmd, "verify", "expressions/", "-j", "2"], failures),
    }
    subprocess_call([*cmd, "verify", "expressions/", "-k", "no case has this name", "--cache-clear"], [])()
    t = interleave(calls, args.reps, args.max_seconds)
    return [
        Extra("symcheck verify expressions/ --no-cache", t["serial"]),
        Extra("symcheck verify expressions/ -j 2 --no-cache", t["-j 2"], "serial", t["serial"]),
        Extra("symcheck verify expressions/ (cache warm)", t["cached"], "--no-cache", t["serial"]),
        Extra("symcheck verify expressions/ -j 2 (cache warm)", t["cached -j 2"], "serial", t["cached"]),
    ]


def measure_cli(args: argparse.Namespace, failures: list[str]) -> Extra:
    calls = {
        "grad": subprocess_call([*symcheck_command(), "grad", *TUTORIAL, "--no-cache"], failures),
        "torch": subprocess_call([os.path.abspath(sys.executable), "-c", "import torch"], failures),
    }
    t = interleave(calls, args.reps, args.max_seconds)
    label = "symcheck grad (tutorial), cold process, --no-cache"
    return Extra(label, t["grad"], 'python -c "import torch"', t["torch"])


# ---------------------------------------------------------------- output


COLUMNS = ("symcheck", "gradcheck", "fast", "jax")


def print_rows(rows: Sequence[Row]) -> None:
    head = ["workload", "elements", "symcheck", "gradcheck", "fast_mode", "jax"]
    head += ["sc/gc", "sc/fast", "sc/jax", "symbolic mode", "status"]
    body = []
    for r in rows:
        t = r.timings
        line = [r.work.key, str(r.work.elements)]
        line += [t[c].cell(t[c].median) if c in t else "-" for c in COLUMNS]
        sc = r.median("symcheck")
        line += [ratio(sc, r.median("gradcheck")), ratio(sc, r.median("fast")), ratio(sc, r.median("jax"))]
        body.append([*line, r.mode, r.status])
    print_grid(head, body, right_from=1)

    print("\ncold runs (each contender's first repetition of the row, not in the medians):")
    head = ["workload", "elements", "shapes", "wrt", "symcheck", "gradcheck", "fast_mode", "jax"]
    body = []
    for r in rows:
        t = r.timings
        line = [r.work.key, str(r.work.elements), r.work.shape_text(), ",".join(r.work.wrt)]
        body.append(line + [t[c].cell(t[c].cold) if c in t else "-" for c in COLUMNS])
    print_grid(head, body, right_from=4)
    for r in rows:
        for c in COLUMNS:
            t = r.timings.get(c)
            if t and t.capped:
                print(f"capped: {r.work.key} at {r.work.elements} elements: {c}: {t.capped}")
            if t and t.error:
                print(f"error: {r.work.key} at {r.work.elements} elements: {c}: {t.error}")


def print_extras(extras: Sequence[Extra]) -> None:
    head = ["row", "median", "cold", "against", "its median", "ratio"]
    body = []
    for e in extras:
        b = e.baseline
        line = [e.label, e.timing.cell(e.timing.median), e.timing.cell(e.timing.cold), e.baseline_label]
        line += [b.cell(b.median), ratio(e.timing.median, b.median)] if b else ["-", "-"]
        body.append(line)
    print_grid(head, body, right_from=1)
    for e in extras:
        for t in (e.timing, e.baseline):
            if t and t.capped:
                print(f"capped: {e.label}: {t.capped}")
            if t and t.error:
                print(f"error: {e.label}: {t.error}")


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "MISSED"


def ratios(rows: Sequence[Row], peer: str) -> list[tuple[str, float]]:
    """(label, symcheck median / the peer's median) for the rows where both were measured."""
    pairs = [(f"{r.work.key} {r.work.elements}", r.median("symcheck") / r.median(peer)) for r in rows]
    return [(label, x) for label, x in pairs if x == x]


def print_target(text: str, figures: Sequence[tuple[str, float]], limit: float, unit: str = "x") -> None:
    ok = all(x <= limit for _, x in figures) if figures else None
    shown = ", ".join(f"{label}: {x:.2f}{unit}".lstrip(": ") for label, x in figures)
    print(f"  {text}: {verdict(ok)}{f' ({shown})' if shown else ''}")


def print_targets(rows: Sequence[Row], micro: Row | None, extras: dict[str, Extra]) -> None:
    """The performance issue's targets, each with the figures it was judged on."""
    print("\ntargets:")
    small = [r for r in rows if r.work.size <= 256]
    print_target("<= 256 elements, symcheck no slower than full gradcheck", ratios(small, "gradcheck"), 1)
    print_target("<= 256 elements, symcheck within 3x of JAX", ratios(small, "jax"), 3)
    big = [r for r in rows if r.work.size == 10**6]
    print_target("10^6 elements, symcheck no slower than fast_mode", ratios(big, "fast"), 1)
    serial = [
        (label, extras[key].timing.median)
        for key, label in (("suites", "--no-cache"), ("suites cached", "cache warm"))
        if key in extras and extras[key].timing.warm
    ]
    print_target("shipped suites serial under 5 s", serial, 5, " s")
    cli = extras.get("cli")
    c = cli.timing.median / cli.baseline.median if cli and cli.baseline else NAN
    print_target("cold tutorial within 1.3x of importing torch", [("", c)] if c == c else [], 1.3)
    m = micro.median("symcheck") if micro else NAN
    print_target("micrograd program under 1 s", [("", m)] if m == m else [], 1, " s")


def print_machine(with_jax: bool, jax_note: str) -> None:
    import sympy
    import torch

    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    versions = [
        f"python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"torch {torch.__version__} ({torch.get_num_threads()} thread)",
        f"sympy {sympy.__version__}",
    ]
    try:  # symcheck's exact arithmetic uses it where installed: its version matters to the figures
        import symengine

        versions.append(f"symengine {symengine.__version__}")
    except ImportError:
        pass
    if with_jax:
        import jax
        import jaxlib

        versions.append(f"jax {jax.__version__} (jaxlib {jaxlib.__version__})")
    print("versions: " + ", ".join(versions))
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    threads = ", ".join(f"{v}={os.environ[v]}" for v in names)
    print(f"threads: {threads}, torch.set_num_threads(1), XLA_FLAGS={os.environ['XLA_FLAGS']!r}")
    if jax_note:
        print(jax_note)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"sizes {list(QUICK_SIZES)}, 2 repetitions")
    p.add_argument("--sizes", type=int, nargs="+", help=f"total input elements (default {list(FULL_SIZES)})")
    p.add_argument(
        "--workloads",
        nargs="+",
        choices=list(BUILDERS),
        default=list(BUILDERS),
        help="seed: mean(3*(x+2)^2); tanh: sum(tanh(W @ x)); mf: sum((R - U @ V.T)^2) rank 8; "
        "ce: cross_entropy(X @ W, y) (default: all)",
    )
    p.add_argument("--reps", type=int, help="timed repetitions after the cold one (default 5; --quick 2)")
    p.add_argument("--no-jax", action="store_true", help="skip JAX's check_grads even where jax is installed")
    p.add_argument(
        "--jax-modes",
        nargs="+",
        choices=["rev", "fwd"],
        default=["rev"],
        help="check_grads modes (default rev: one VJP against one finite difference)",
    )
    p.add_argument("--no-suites", action="store_true", help="skip `symcheck verify expressions/`")
    p.add_argument(
        "--no-cli", action="store_true", help="skip the cold `symcheck grad` against `import torch`"
    )
    p.add_argument("--no-micrograd", action="store_true", help="skip the deep scalar program")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="full gradcheck estimated to take longer is skipped (capped); a contender past this many "
        "seconds in a row stops after one warm repetition; a workload whose cold symcheck run takes "
        "longer stops before its larger sizes",
    )
    p.add_argument("--expansion-budget", type=int, default=DEFAULT_EXPANSION_BUDGET)
    p.add_argument("--timeout", type=float, help="symcheck's time budget per case (as grad --timeout)")
    p.add_argument("--seed", type=int, default=0, help="numpy seed for the input values")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.reps < 1 or any(s < 1 for s in args.sizes):
        p.error("--reps and --sizes must be positive")
    args.jax_modes = sorted(set(args.jax_modes), key=["fwd", "rev"].index)
    return args


def import_jax(no_jax: bool) -> tuple[bool, str]:
    if no_jax:
        return False, "jax: skipped (--no-jax); its columns print '-'"
    try:
        import jax  # noqa: F401
        from jax.test_util import check_grads  # noqa: F401
    except ImportError:
        return False, f"jax is not installed ({INSTALL_HINT}); its columns print '-'"
    return True, ""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    # The first symcheck run of the process (imports SymPy and torch, first derivation), on its own.
    tiny = seed_workload(4, np.random.default_rng(args.seed))
    first = time_case(make_case(tiny, args.expansion_budget, args.timeout))

    import torch

    torch.set_num_threads(1)
    with_jax, jax_note = import_jax(args.no_jax)
    first_jax = NAN
    if with_jax:  # jax's first call starts its backend: kept out of every row
        first_jax = jax_call(tiny, args.jax_modes)()
    print_machine(with_jax, jax_note)
    modes = "+".join(args.jax_modes)
    reps = f"{args.reps} repetition{'s' if args.reps != 1 else ''}"
    print(
        f"sizes {args.sizes}, workloads {' '.join(args.workloads)}, {reps} (median) after a "
        f"cold one, interleaved; expansion budget {args.expansion_budget}; "
        f"--max-seconds {args.max_seconds:g}; "
        f"jax check_grads order 1, modes {modes}"
    )
    print(
        f"first run of the process (imports, first derivation), not in any row: symcheck "
        f"{fmt_seconds(first.seconds)}, jax {fmt_seconds(first_jax)}\n"
    )

    rows: list[Row] = []
    for key in args.workloads:
        for i, size in enumerate(sorted(args.sizes)):
            work = BUILDERS[key](size, np.random.default_rng([args.seed, i]))
            row = measure(work, args, with_jax)
            rows.append(row)
            cold = row.timings["symcheck"].cold
            if cold > args.max_seconds:
                print(
                    f"stopping {key} above {work.elements} elements: symcheck's cold run took "
                    f"{fmt_seconds(cold)} > --max-seconds {args.max_seconds:g}",
                    file=sys.stderr,
                )
                break
    micro = None if args.no_micrograd else measure(micrograd_workload(), args, with_jax)

    failures: list[str] = []
    extras: dict[str, Extra] = {}
    suite_rows: list[Extra] = []
    if not args.no_suites:
        suite_rows = measure_suites(args, failures)
        extras["suites"], extras["suites cached"] = suite_rows[0], suite_rows[2]
    if not args.no_cli:
        extras["cli"] = measure_cli(args, failures)

    print_rows(rows)
    if micro:
        print(
            f"\nmicrograd-style deep scalar program ({MICROGRAD_STEPS} named steps on a = -4, b = 2; "
            "check_grads with eps=1e-5, see micrograd_workload):"
        )
        print_rows([micro])
    shown = suite_rows + ([extras["cli"]] if "cli" in extras else [])
    if shown:
        print("\nsubprocesses (wall time, one thread each):")
        print_extras(shown)
    for failure in failures:
        print(f"failed: {failure}")
    for r in [*rows, *([micro] if micro else [])]:
        if r.timings["symcheck"].error:
            print(f"symcheck error: {r.work.key} at {r.work.elements}: {r.timings['symcheck'].error}")
    print_targets(rows, micro, extras)
    print(
        "\nsc = symcheck: run_cases on one point, all four engines, value and gradients compared. gc = "
        "torch.autograd.gradcheck, full mode (every wrt element perturbed); fast_mode = gradcheck(..., "
        f"fast_mode=True); jax = jax.test_util.check_grads(order=1, modes={args.jax_modes}), not jitted. "
        "Medians over the repetitions after the cold one (symcheck's read its closed forms from memory). "
        "symbolic mode: 'expansion' = exact element by element at the case's shape (inputs <= budget "
        f"{args.expansion_budget} and estimated work <= the expansion_work limit); 'closed form' = the "
        "closed form in float64, proven at the probe shape; 'not run' = the symbolic engine gave up or "
        "was skipped."
    )
    print(f"total wall time {time.perf_counter() - started:.1f}s")
    passed = all(r.status == "pass" for r in [*rows, *([micro] if micro else [])])
    return 0 if passed and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
