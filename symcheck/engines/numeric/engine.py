"""The engine-free witness: central finite differences on a plain numpy forward evaluator.

This module knows how to *evaluate* every op and nothing about derivatives, so it cannot share a
mistake with the engines that differentiate symbolically or by hand. Its forward evaluator is also
what the sampler uses to watch op domains and kinks (through `on_call`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from symcheck.engines.base import (
    Curvature,
    Directional,
    Engine,
    EngineOptions,
    EngineResult,
    hessian_key,
    jacobian_probes,
    second_order_directions,
    wants_full_hessian,
    wants_full_jacobian,
)
from symcheck.engines.numeric.evaluator import Batched, batched, compiled, forward
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import Call, DType, InputDecl, Node, Program, Ref, walk

# ---------------------------------------------------------------- the engine

_EPS = float(np.finfo(np.float64).eps)
# Richardson extrapolation leaves O(h^4) truncation against O(eps/h) rounding: h ~ eps^(1/5).
_H_SCALE = _EPS ** (1 / 5)
_HALVINGS = 50  # how far to shrink a step that leaves the domain before giving up
_BACKOFF = 64.0  # then step this much further inside than the largest step that stayed in
_RETRIES = 2
_REFINEMENTS = 4  # steps h, h/16, h/256, h/4096 while the error estimate is too large
_DECIDES = 1e-7  # an error estimate this small (relative) decides at any tolerance we compare with
_MAX_ELEMENT_NOTES = 5


def _richardson(d_h: float, d_h2: float, h: float, h2: float) -> float:
    """Cancel the h^2 term of two central differences taken with steps h and h2 (about h/2)."""
    r2 = (h / h2) ** 2
    return (r2 * d_h2 - d_h) / (r2 - 1)


def _derivative(g: Callable[[float], Any], h: float, exact: Callable[[float], float]) -> Any:
    """d/dt g(t) at t = 0 by Richardson-extrapolated central differences; None if g is not finite.

    g may return a number or an array (a tensor output: every element differenced at once).
    `exact(h)` turns a step into one that the perturbed point represents exactly.
    """

    def attempt(h: float) -> Any:
        h1, h2 = exact(h), exact(h / 2)
        if not (h1 > 0 and h2 > 0 and h1 != h2):
            return None
        f = [g(h1), g(-h1), g(h2), g(-h2)]
        if not all(np.all(np.isfinite(v)) for v in f):
            return None
        return _richardson((f[0] - f[1]) / (2 * h1), (f[2] - f[3]) / (2 * h2), h1, h2)

    def inside(h: float) -> bool:
        h1 = exact(h)
        return h1 > 0 and bool(np.all(np.isfinite(g(h1))) and np.all(np.isfinite(g(-h1))))

    return _retreating(attempt, inside, h)


def _retreating(attempt: Callable[[float], Any], inside: Callable[[float], bool], h: float) -> Any:
    """attempt(h); where the step crossed a domain edge (log near 0, say), halve it until the
    points stay `inside`, then difference well inside that: the extrapolated error grows like
    (h / distance)^4, so a step `_BACKOFF` times smaller than the distance is accurate."""
    d = attempt(h)
    if d is not None:
        return d
    for _ in range(_HALVINGS):
        h /= 2
        if inside(h):
            break
    else:
        return None
    for _ in range(_RETRIES):
        h /= _BACKOFF
        d = attempt(h)
        if d is not None:
            return d
    return None


def _element_derivative_and_error(
    flat: np.ndarray, i: int, f: Callable[[], Any], noise: Any = 0.0
) -> tuple[Any, Any] | None:
    """d f / d flat[i] and an estimate of its error, for a scalar f or, elementwise, an array f (a
    tensor output's Jacobian column); see `_refined`."""
    xi = float(flat[i])

    def g(t: float) -> Any:
        flat[i] = xi + t
        try:
            return f()
        finally:
            flat[i] = xi

    return _refined(g, _H_SCALE * max(1.0, abs(xi)), lambda step: (xi + step) - xi, noise)


def _refined(
    g: Callable[[float], Any], h: float, exact: Callable[[float], float], noise: Any = 0.0
) -> tuple[Any, Any] | None:
    """d/dt g(t) at 0 and an estimate of its error (see `_estimate`), elementwise where g returns
    an array. Where the estimate cannot decide at the comparison's rtol the step moves by 16:
    smaller where truncation dominates the estimate, larger where rounding does (g's own noise,
    `noise`, over a small step: `(x + 1e8) - 1e8` is exactly linear, and only a large step sees
    past its rounding). Each element keeps its best estimate."""
    best_value = best_error = previous_value = previous_error = None
    from_previous: Any = None  # the elements whose best came from the previous step
    factor: float | None = None  # the direction the step moves, chosen once
    for _ in range(_REFINEMENTS):
        found = _estimate(g, h, exact, noise)
        if found is None:
            break
        value, error, rounding = found
        if best_value is None:
            best_value, best_error = value, error
            from_previous = np.ones(np.shape(value), dtype=bool)
        else:
            if factor is not None and factor < 1:
                # A smaller step moved the value more than the earlier estimate allowed: that
                # estimate was too small (a step across a pole: tan near pi/2), and where the new
                # one is mostly rounding, the function's own noise is what the steps see. Trust no
                # step below that.
                change = np.abs(value - previous_value)
                moved = change > previous_error
                best_error = np.where(moved & from_previous, np.maximum(best_error, change), best_error)
                if np.any(moved & (rounding >= error / 2)):
                    break
            better = error < best_error
            best_value = np.where(better, value, best_value)
            best_error = np.where(better, error, best_error)
            from_previous = better
        previous_value, previous_error = value, error
        allowed = _DECIDES * np.maximum(np.abs(value), 1.0)
        if np.all(error <= allowed):
            break
        if factor is None:
            worst = (
                np.unravel_index(int(np.argmax(error / allowed)), np.shape(error)) if np.ndim(error) else ()
            )
            r, e = np.asarray(rounding)[worst], np.asarray(error)[worst]
            factor = 16.0 if r > e - r else 1 / 16
        h *= factor
    if best_value is None:  # a domain edge within a step: retreat from it, as before (no estimate)
        d = _derivative(g, h, exact)
        return None if d is None else (d, np.zeros(np.shape(d)))
    if np.ndim(best_value) == 0:
        return float(best_value), float(best_error)
    return best_value, best_error


def _estimate(
    g: Callable[[float], Any], h: float, exact: Callable[[float], float], noise: Any = 0.0
) -> tuple[Any, Any, Any] | None:
    """The Richardson value at step h, an estimate of its error, and the rounding part of it
    (elementwise for an array g). The error: the two central differences' disagreement
    (truncation, and noise a function's own rounding adds) plus the rounding of the differences
    themselves, about eps * |f| / h, or the noise measured around the point (`_noise_level`) over
    h where that is larger."""
    h1, h2 = exact(h), exact(h / 2)
    if not (h1 > 0 and h2 > 0 and h1 != h2):
        return None
    f = [np.asarray(g(t), dtype=np.float64) for t in (h1, -h1, h2, -h2)]
    if not all(np.all(np.isfinite(v)) for v in f):
        return None
    d1, d2 = (f[0] - f[1]) / (2 * h1), (f[2] - f[3]) / (2 * h2)
    scale = np.max(np.abs(np.stack(f)), axis=0)
    rounding = np.maximum(4 * _EPS * scale, 2 * np.asarray(noise)) / h2
    return _richardson(d1, d2, h1, h2), np.abs(d1 - d2) + rounding, rounding


# The noise probe (after Moré and Wild's ECnoise): f at 13 points evenly spaced along a fixed sign
# pattern, with spacings far below any difference step, relative to each element's magnitude; two
# of them, so at least one crosses a coarse rounding grid, and neither a power of two, which
# would step along a binary rounding grid exactly and see no noise at all.
_NOISE_SPACINGS = (1.1e-9, 7.3e-8)
_NOISE_POINTS = 13
_NOISE_ORDERS = (3, 4, 5, 6)


_BATCH_ELEMENTS = 2**20  # the most input elements one batched evaluation holds (8 MB of float64)


def _first_steps(
    run: Batched,
    point: dict[str, np.ndarray],
    names: Sequence[str],
    noise: float,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`_refined`'s first step for every element of every input of `names` at once (its four
    points of each element in batched evaluations, as few as fit in `_BATCH_ELEMENTS`): per input,
    the value, the error estimate, and whether that step decides the element, as it would one
    element at a time. The undecided (a large error, a point not finite, a step too small to
    represent) are then refined one by one."""
    flats = {n: point[n].reshape(-1) for n in names}
    sizes = [flats[n].size for n in names]
    owner = np.repeat(np.arange(len(names)), sizes)  # each element's input, in names' order
    element = np.concatenate([np.arange(k) for k in sizes]) if sizes else np.zeros(0, dtype=int)
    x = np.concatenate([flats[n] for n in names]) if sizes else np.zeros(0)
    n = x.size
    h = _H_SCALE * np.maximum(1.0, np.abs(x))
    h1, h2 = (x + h) - x, (x + h / 2) - x  # the steps the perturbed points represent
    values, errors = np.full(n, np.nan), np.full(n, np.nan)
    chunk = max(1, _BATCH_ELEMENTS // (4 * max(n, 1)))
    for start in range(0, n, chunk):
        idx = np.arange(start, min(n, start + chunk))
        moved = np.repeat(idx, 4)
        steps = np.stack([h1[idx], -h1[idx], h2[idx], -h2[idx]], axis=1).reshape(-1)
        batch = {}
        for k, name in enumerate(names):
            rows = np.repeat(flats[name][None, :], len(moved), axis=0)
            mine = owner[moved] == k
            rows[np.flatnonzero(mine), element[moved[mine]]] = x[moved[mine]] + steps[mine]
            batch[name] = rows.reshape((len(moved), *point[name].shape))
        f = np.asarray(run(point, batch), dtype=np.float64).reshape(-1, 4)
        a, b = h1[idx], h2[idx]
        d1, d2 = (f[:, 0] - f[:, 1]) / (2 * a), (f[:, 2] - f[:, 3]) / (2 * b)
        rounding = np.maximum(4 * _EPS * np.max(np.abs(f), axis=1), 2 * noise) / b
        values[idx] = _richardson(d1, d2, a, b)  # type: ignore[arg-type]
        errors[idx] = np.abs(d1 - d2) + rounding
    with np.errstate(invalid="ignore"):
        representable = (h1 > 0) & (h2 > 0) & (h1 != h2)
        decided = representable & np.isfinite(values) & (errors <= _DECIDES * np.maximum(np.abs(values), 1.0))
    bounds = np.cumsum([0, *sizes])
    return {
        name: (values[lo:hi], errors[lo:hi], decided[lo:hi])
        for name, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)
    }


@functools.lru_cache(maxsize=256)
def _noise_signs(shapes: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
    """The noise probe's fixed sign pattern of each input (seed 0, drawn in order), read-only."""
    rng = np.random.default_rng(0)
    signs = tuple(rng.choice((-1.0, 1.0), size=shape) for shape in shapes)
    for array in signs:
        array.flags.writeable = False
    return signs


def _median_of_four(stacked: np.ndarray) -> np.ndarray:
    """np.median(stacked, axis=0) of 4 rows, as np.median computes it (the middle two's mean; NaN
    where a row is), at a third of its cost."""
    assert len(stacked) == 4
    ordered = np.sort(stacked, axis=0)
    middle = (ordered[1] + ordered[2]) / 2
    return np.where(np.isnan(stacked).any(axis=0), np.nan, middle)


def _noise_level(
    point: dict[str, np.ndarray], names: Sequence[str], f: Callable[[], Any], run: Batched | None = None
) -> Any:
    """How much f's own rounding moves it near the point: the k-th differences of f at evenly
    spaced points cancel its smooth part (up to spacing^k times the k-th derivative, nothing at
    these spacings) and leave the noise, scaled by gamma_k = k!^2 / (2k)! to its standard deviation;
    the median over k = 3..6, the largest over the two spacings. `(x + 1e8) - 1e8` is exact in
    value but rounds on a grid of 1.5e-8: its noise is about that, where eps * |f| would say 2e-16.
    Elementwise for an array f; `run`: the program batched over `names` (the points at once)."""
    originals = {n: point[n].copy() for n in names}
    signs = dict(zip(names, _noise_signs(tuple(originals[n].shape for n in names)), strict=True))
    # rows[n][s, k]: input n at the k-th point of spacing s
    steps = np.multiply.outer(np.asarray(_NOISE_SPACINGS), np.arange(_NOISE_POINTS, dtype=np.float64))
    rows = {
        n: x + np.multiply.outer(steps, signs[n] * np.maximum(1.0, np.abs(x))) for n, x in originals.items()
    }
    count = len(_NOISE_SPACINGS) * _NOISE_POINTS
    if run is not None:  # every point of both spacings in one batched evaluation
        batch = {n: r.reshape((count, *originals[n].shape)) for n, r in rows.items()}
        table = np.asarray(run(point, batch), dtype=np.float64)
    else:
        found = []
        try:
            for s in range(len(_NOISE_SPACINGS)):
                for k in range(_NOISE_POINTS):
                    for n in names:
                        point[n][...] = rows[n][s, k]
                    found.append(f())
        finally:
            for n in names:
                point[n][...] = originals[n]
        table = np.asarray(found, dtype=np.float64)
    table = table.reshape((len(_NOISE_SPACINGS), _NOISE_POINTS, *table.shape[1:]))
    level: Any = 0.0
    for one in table:  # a spacing
        if not np.all(np.isfinite(one)):
            continue
        estimates = []
        differences = one
        for order in range(1, max(_NOISE_ORDERS) + 1):
            differences = differences[1:] - differences[:-1]  # np.diff's n-th difference, step by step
            if order in _NOISE_ORDERS:
                gamma = math.factorial(order) ** 2 / math.factorial(2 * order)
                estimates.append(np.sqrt(gamma * np.mean(differences**2, axis=0)))
        level = np.maximum(level, _median_of_four(np.stack(estimates)))
    return float(level) if np.ndim(level) == 0 else level


# Second differences: a Richardson-extrapolated second difference leaves O(h^4) truncation against
# O(eps/h^2) rounding, so h ~ eps^(1/6); see `_second_derivative`.
_H2_SCALE = _EPS ** (1 / 6)


def _second_derivative(quotient: Callable[[float], tuple[float, float] | None], h: float) -> float | None:
    """A second derivative from `quotient(h)`, which returns (difference quotient, step actually
    taken) for a step of about h, or None where a point it needs is not finite.

    The quotients are even in the step, D(h) = f'' + c h^2 + O(h^4), so two of them at h and h/2
    extrapolate to O(h^4). Where a step crosses a domain edge, the step is halved until it stays
    inside and then taken further inside, as `_derivative` does for first derivatives. The extra
    rounding costs little there: near an edge at distance d the second derivative itself grows
    like 1/d^2, as fast as the rounding error of a step proportional to d.
    """

    def attempt(h: float) -> float | None:
        first, second = quotient(h), quotient(h / 2)
        if first is None or second is None or not first[1] > second[1] > 0:
            return None
        return _richardson(first[0], second[0], first[1], second[1])

    return _retreating(attempt, lambda h: quotient(h) is not None, h)


def _along(
    f: Callable[[], float],
    point: dict[str, np.ndarray],
    base: Mapping[str, np.ndarray],
    direction: Mapping[str, np.ndarray],
    restore: bool = True,
    scratch: dict[str, np.ndarray] | None = None,
) -> Callable[[float], float]:
    """t -> f at base + t*direction: moves `point` (the arrays f reads) there and back (with
    `restore`; else the caller puts it back). |t|*direction is kept for the -t that follows t:
    at 10^6 elements moving the point cost more than f itself. `scratch`: arrays of direction's
    shapes to hold it (fresh ones cost their pages' first writes)."""
    product = scratch if scratch is not None else {n: np.empty_like(d) for n, d in direction.items()}
    size: list[float | None] = [None]  # the |t| in `product`

    def g(t: float) -> float:
        if size[0] != abs(t):
            for n, d in direction.items():
                np.multiply(d, abs(t), out=product[n])
            size[0] = abs(t)
        for n in direction:  # base + t*d exactly: adding -(|t|*d) is subtracting |t|*d
            (np.add if t >= 0 else np.subtract)(base[n], product[n], out=point[n])
        try:
            return f()
        finally:
            if restore:
                for n in direction:
                    point[n][...] = base[n]

    return g


def _frozen_detached(
    program: Program, inputs: Mapping[str, np.ndarray]
) -> tuple[Program, Mapping[str, np.ndarray]]:
    """The program with each detach(u) made an input holding u's value at this point, which no
    difference moves: a perturbed x changes x + detach(round(x) - x) by the step alone, as the
    derivative 1 of a straight-through estimator says. Unchanged without detach. (The inputs'
    names start with `_`, which no name of the language can.)"""
    calls = [n for step in program.steps for n in walk(step.expr) if isinstance(n, Call) and n.op == "detach"]
    if not calls:
        return program, inputs
    seen: dict[int, np.ndarray] = {}

    def record(node: Call, args: list[np.ndarray], result: np.ndarray) -> None:
        if node.op == "detach":
            seen[id(node)] = np.array(result)

    forward(program, inputs, on_call=record)
    names = {id(c): f"_detached{k}" for k, c in enumerate(calls)}

    def frozen(node: Node) -> Node:
        if isinstance(node, Call):
            if id(node) in names:
                return Ref(node.span, type=node.type, name=names[id(node)], target=names[id(node)])
            return replace(node, args=tuple(frozen(a) for a in node.args))
        return node

    decls = {n: InputDecl(n, c.type) for c, n in ((c, names[id(c)]) for c in calls) if c.type is not None}
    steps = tuple(replace(step, expr=frozen(step.expr)) for step in program.steps)
    rewritten = replace(program, inputs={**program.inputs, **decls}, steps=steps)
    values = {**inputs, **{names[i]: v for i, v in seen.items()}}
    return rewritten, values


def _count(n: int) -> str:
    k = len(str(n)) - 1
    return f"10^{k}" if n >= 1000 and n == 10**k else str(n)


class NumericEngine(Engine):
    name = "numeric"
    description = "central finite differences (Richardson-extrapolated) on a numpy forward pass"

    def run(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        start = time.perf_counter()
        for name in wrt:
            if name not in program.inputs:
                raise SymcheckError(f"cannot differentiate with respect to {name!r}: it is not an input")
        program, inputs = _frozen_detached(program, inputs)
        point: dict[str, np.ndarray] = {}
        for name, decl in program.inputs.items():
            target = np.float64 if decl.type.dtype is DType.FLOAT else np.int64
            point[name] = np.array(inputs[name], dtype=target)  # a copy: perturbed in place below
        output = compiled(program)
        value = output(point).astype(np.float64)
        if value.ndim:
            return self._tensor_output(program, point, wrt, options, value, start)

        def f() -> float:
            return float(output(point))

        floats = [n for n in wrt if program.inputs[n].type.dtype is DType.FLOAT]
        notes: list[str] = []
        if not np.all(np.isfinite(value)):
            notes.append("the value is not finite at this point")
        grads: dict[str, np.ndarray] = {}
        error_bounds: dict[str, np.ndarray] = {}
        directional: list[Directional] = []
        total = sum(point[n].size for n in floats)
        if total <= options.fd_full_limit:
            grads, error_bounds = self._full(point, floats, f, notes, program)
            for name in wrt:
                if name not in grads:
                    grads[name] = np.zeros(point[name].shape, dtype=np.float64)
                    notes.append(f"{name} is not a float input; its gradient is reported as 0")
        else:
            directional = self._directional(point, floats, f, options, notes)
            notes.insert(
                0,
                f"finite differences in {options.fd_directions} random directions "
                f"({_count(total)} elements > {options.fd_full_limit})",
            )
        hessian: dict[str, np.ndarray] = {}
        curvatures: list[Curvature] = []
        if options.order >= 2:
            names = list(dict.fromkeys(floats))  # wrt's order: second_order_directions draws in it
            shapes = {n: point[n].shape for n in names}
            size = sum(point[n].size for n in names)
            if wants_full_hessian(shapes, options):
                hessian = self._hessian(point, names, f, notes)
                notes.append(
                    f"second derivatives: full Hessian ({size}×{size}) by 4-point central differences, "
                    "Richardson-extrapolated"
                )
            else:
                directions = second_order_directions(shapes, options)
                curvatures = self._curvatures(point, names, f, directions, notes)
                notes.append(
                    f"second derivatives: v^T H v along {len(directions)} random directions by second "
                    f"differences, Richardson-extrapolated ({_count(size)} elements > "
                    f"{options.hessian_full_limit}, too many for a full Hessian)"
                )
        return EngineResult(
            engine=self.name,
            value=value,
            grads=grads,
            error_bounds=error_bounds,
            directional=directional,
            hessian=hessian,
            curvatures=curvatures,
            notes=notes,
            dtype="float64",
            seconds=time.perf_counter() - start,
        )

    @staticmethod
    def _full(
        point: dict[str, np.ndarray],
        names: Sequence[str],
        f: Callable[[], float],
        notes: list[str],
        program: Program | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        grads: dict[str, np.ndarray] = {}
        errors: dict[str, np.ndarray] = {}
        failed: list[str] = []
        run = None if program is None else batched(program, names)
        noise = _noise_level(point, names, f, run)
        first = _first_steps(run, point, names, float(noise)) if run is not None else {}
        for name in names:
            x = point[name]
            flat = x.reshape(-1)  # a view: writing it perturbs the point
            grad = np.empty(x.size, dtype=np.float64)
            error = np.zeros(x.size, dtype=np.float64)
            decided = np.zeros(x.size, dtype=bool)
            if name in first:
                grad[:], error[:], decided[:] = first[name]
            for i in np.flatnonzero(~decided):
                found = _element_derivative_and_error(flat, int(i), f, noise)
                if found is None:
                    grad[i] = np.nan
                    index = ", ".join(str(int(j)) for j in np.unravel_index(i, x.shape))
                    failed.append(f"{name}[{index}]" if x.ndim else name)
                else:
                    grad[i], error[i] = found
            grads[name] = grad.reshape(x.shape)
            errors[name] = error.reshape(x.shape)
        if failed:
            shown = ", ".join(failed[:_MAX_ELEMENT_NOTES])
            more = f" and {len(failed) - _MAX_ELEMENT_NOTES} more" if len(failed) > _MAX_ELEMENT_NOTES else ""
            notes.append(
                f"the output is not finite on both sides of {shown}{more} at any step size tried; "
                "gradient set to NaN there"
            )
        return grads, errors

    @staticmethod
    def _directional(
        point: dict[str, np.ndarray],
        names: Sequence[str],
        f: Callable[[], float],
        options: EngineOptions,
        notes: list[str],
    ) -> list[Directional]:
        # A stream of its own, so directions never line up with data a user drew with the same seed.
        rng = np.random.default_rng([options.seed, 0x5EED])
        base = {n: point[n].copy() for n in names}
        flat_x = np.concatenate([base[n].reshape(-1) for n in names])
        total = flat_x.size
        # Scale the step so that each element moves about as far as in the element-by-element mode
        # (a unit vector's entries are ~1/sqrt(n)); otherwise rounding swamps the difference.
        rms_x = float(np.sqrt(np.mean(flat_x**2))) if total else 0.0
        h = _H_SCALE * max(1.0, rms_x) * np.sqrt(total)
        result: list[Directional] = []
        unit = 1.0 / np.sqrt(total) if total else 0.0
        scratch = {n: np.empty_like(base[n]) for n in names}
        try:
            for k in range(options.fd_directions):
                # Random signs, scaled to unit length: every element takes part equally, and drawing
                # them is a sixth of the cost of normal draws (10 ms per 10^6 elements, 8 per point).
                bits = rng.integers(0, 2, total, dtype=np.int8)
                # (2 b - 1) / sqrt(n), bit for bit (2s - s and 0 - s are exact), in two passes, not four
                v = np.multiply(bits, 2.0 * unit)
                v -= unit
                parts = np.split(v, np.cumsum([base[n].size for n in names])[:-1])
                direction = {n: p.reshape(base[n].shape) for n, p in zip(names, parts, strict=True)}

                g = _along(f, point, base, direction, restore=False, scratch=scratch)  # put back below

                d = _derivative(g, h, lambda t: t)
                if d is None:
                    notes.append(
                        f"direction {k}: the output is not finite on both sides of the point "
                        "at any step size tried; derivative set to NaN"
                    )
                    d = float("nan")
                result.append(Directional(direction=direction, derivative=d))
        finally:
            for n in names:
                point[n][...] = base[n]
        return result

    @staticmethod
    def _hessian(
        point: dict[str, np.ndarray], names: Sequence[str], f: Callable[[], float], notes: list[str]
    ) -> dict[str, np.ndarray]:
        """Every block d² f / (da db) by central differences over all the elements of `names`
        together, each pair once (the Hessian is symmetric), perturbing `point` in place:

            H_ij ≈ [f(+h_i, +h_j) - f(+h_i, -h_j) - f(-h_i, +h_j) + f(-h_i, -h_j)] / (4 h_i h_j)
            H_ii ≈ [f(+2h_i) - 2 f(x) + f(-2h_i)] / (2h_i)^2     (the same formula with j = i)
        """
        flats = [point[n].reshape(-1) for n in names]  # views: writing them perturbs the point
        elements = [(flat, i) for flat in flats for i in range(flat.size)]
        labels = [
            f"{n}[{', '.join(str(int(j)) for j in np.unravel_index(i, point[n].shape))}]"
            if point[n].ndim
            else n
            for n in names
            for i in range(point[n].size)
        ]
        base = [float(flat[i]) for flat, i in elements]
        scale = [max(1.0, abs(x)) for x in base]

        def exact(k: int, h: float) -> float:
            # A step that the perturbed element represents exactly, so the quotient divides by it.
            return (base[k] + h * scale[k]) - base[k]

        def at(moves: Mapping[int, float]) -> float:
            for k, t in moves.items():
                flat, i = elements[k]
                flat[i] = base[k] + t
            try:
                return f()
            finally:
                for k in moves:
                    flat, i = elements[k]
                    flat[i] = base[k]

        f0 = f()

        def diagonal(k: int) -> Callable[[float], tuple[float, float] | None]:
            def quotient(h: float) -> tuple[float, float] | None:
                s = exact(k, 2 * h)
                values = [at({k: s}), at({k: -s})]
                if not (s > 0 and all(np.isfinite(values))):
                    return None
                return (values[0] - 2 * f0 + values[1]) / (s * s), s

            return quotient

        def mixed(k: int, m: int) -> Callable[[float], tuple[float, float] | None]:
            def quotient(h: float) -> tuple[float, float] | None:
                s, t = exact(k, h), exact(m, h)
                values = [at({k: s, m: t}), at({k: s, m: -t}), at({k: -s, m: t}), at({k: -s, m: -t})]
                if not (s > 0 and t > 0 and all(np.isfinite(values))):
                    return None
                # The error is a quadratic form in (s, t); both halve together, so it shrinks like s t.
                return (values[0] - values[1] - values[2] + values[3]) / (4 * s * t), float(np.sqrt(s * t))

            return quotient

        n = len(elements)
        matrix = np.full((n, n), np.nan)
        failed: list[str] = []
        if not np.isfinite(f0):
            # Every difference is taken around the point; none can be trusted, and trying each
            # pair at every step size would cost n^2 times the halvings.
            notes.append("second derivatives: the output is not finite at the point; Hessian set to NaN")
            n = 0
        for k in range(n):
            for m in range(k, n):
                d = _second_derivative(diagonal(k) if k == m else mixed(k, m), _H2_SCALE)
                if d is None:
                    failed.append(labels[k] if k == m else f"({labels[k]}, {labels[m]})")
                else:
                    matrix[k, m] = matrix[m, k] = d
        if failed:
            shown = ", ".join(failed[:_MAX_ELEMENT_NOTES])
            more = f" and {len(failed) - _MAX_ELEMENT_NOTES} more" if len(failed) > _MAX_ELEMENT_NOTES else ""
            notes.append(
                f"second derivatives: the output is not finite around {shown}{more} at any step size "
                "tried; Hessian set to NaN there"
            )
        offsets = np.cumsum([0] + [point[name].size for name in names])
        return {
            hessian_key(a, b): matrix[offsets[i] : offsets[i + 1], offsets[j] : offsets[j + 1]].reshape(
                point[a].shape + point[b].shape
            )
            for i, a in enumerate(names)
            for j, b in enumerate(names)
        }

    @staticmethod
    def _curvatures(
        point: dict[str, np.ndarray],
        names: Sequence[str],
        f: Callable[[], float],
        directions: Sequence[Mapping[str, np.ndarray]],
        notes: list[str],
    ) -> list[Curvature]:
        """v^T H v = d²/dt² f(x + t v) at t = 0 for each direction v, by second differences
        [f(x + hv) - 2 f(x) + f(x - hv)] / h^2."""
        base = {n: point[n].copy() for n in names}
        flat_x = np.concatenate([base[n].reshape(-1) for n in names]) if names else np.zeros(0)
        total = flat_x.size
        # As in `_directional`: each element moves about as far as in the element-by-element mode.
        rms_x = float(np.sqrt(np.mean(flat_x**2))) if total else 0.0
        step = _H2_SCALE * max(1.0, rms_x) * np.sqrt(max(total, 1))
        f0 = f()
        if not np.isfinite(f0):
            notes.append("second derivatives: the output is not finite at the point; curvatures set to NaN")
            return [Curvature(direction=v, value=float("nan")) for v in directions]
        result: list[Curvature] = []
        for k, v in enumerate(directions):
            g = _along(f, point, base, v)

            def quotient(h: float, g: Callable[[float], float] = g) -> tuple[float, float] | None:
                values = [g(h), g(-h)]
                if not all(np.isfinite(values)):
                    return None
                return (values[0] - 2 * f0 + values[1]) / (h * h), h

            d = _second_derivative(quotient, step)
            if d is None:
                notes.append(
                    f"second derivatives: direction {k}: the output is not finite on both sides of the point "
                    "at any step size tried; curvature set to NaN"
                )
                d = float("nan")
            result.append(Curvature(direction=v, value=d))
        return result

    def _tensor_output(
        self,
        program: Program,
        point: dict[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
        value: np.ndarray,
        start: float,
    ) -> EngineResult:
        """A tensor output: the Jacobian column by column (one input element moved at a time, every
        output element differenced at once), or J v along each shared random tangent."""
        output = compiled(program)

        def f() -> np.ndarray:
            return np.array(output(point), dtype=np.float64)

        floats = [n for n in wrt if program.inputs[n].type.dtype is DType.FLOAT]
        shapes = {n: point[n].shape for n in floats}
        notes: list[str] = []
        jacobians: dict[str, np.ndarray] = {}
        jacobian_errors: dict[str, np.ndarray] = {}
        jvps: list[np.ndarray] = []
        jvp_errors: list[np.ndarray] = []
        noise = _noise_level(point, floats, f) if floats else 0.0
        if wants_full_jacobian(value.shape, shapes, options):
            for name in floats:
                flat = point[name].reshape(-1)  # a view: writing it perturbs the point
                columns, errors = [], []
                for i in range(flat.size):
                    found = _element_derivative_and_error(flat, i, f, noise)
                    d, e = (np.full(value.shape, np.nan), np.zeros(value.shape)) if found is None else found
                    columns.append(np.broadcast_to(d, value.shape))
                    errors.append(np.broadcast_to(e, value.shape))
                jacobians[name] = _columns(columns, value.shape, shapes[name])
                jacobian_errors[name] = _columns(errors, value.shape, shapes[name])
            notes.append("Jacobian in full by central differences, one input element at a time")
        else:
            base = {n: point[n].copy() for n in floats}
            total = sum(base[n].size for n in floats)
            flat_x = np.concatenate([base[n].reshape(-1) for n in floats]) if floats else np.zeros(0)
            rms_x = float(np.sqrt(np.mean(flat_x**2))) if total else 0.0
            h = _H_SCALE * max(1.0, rms_x) * np.sqrt(max(total, 1))
            for k, v in enumerate(jacobian_probes(value.shape, shapes, options).tangents):
                norm = float(np.sqrt(sum(float(np.sum(v[n] ** 2)) for n in floats))) or 1.0
                unit = {n: v[n] / norm for n in floats}
                found = _refined(_along(f, point, base, unit), h, lambda t: t, noise)
                if found is None:
                    notes.append(f"tangent {k + 1}: the output is not finite on both sides; J v set to NaN")
                    found = (np.full(value.shape, np.nan), np.zeros(value.shape))
                jvps.append(np.broadcast_to(found[0], value.shape) * norm)
                jvp_errors.append(np.broadcast_to(found[1], value.shape) * norm)
            notes.append(f"J v along {len(jvps)} shared random tangents by central differences")
        if options.order >= 2:
            notes.append("second derivatives need a scalar output: not computed")
        return EngineResult(
            engine=self.name,
            value=value,
            grads={},
            jacobians=jacobians,
            jvps=jvps,
            jacobian_error_bounds=jacobian_errors,
            jvp_error_bounds=jvp_errors,
            notes=notes,
            dtype="float64",
            seconds=time.perf_counter() - start,
        )


def _columns(
    columns: Sequence[np.ndarray], out_shape: tuple[int, ...], in_shape: tuple[int, ...]
) -> np.ndarray:
    """Jacobian columns (one per input element, each of the output's shape) as out_shape + in_shape."""
    size = int(np.prod(out_shape, dtype=np.int64))
    stacked = np.stack([c.reshape(-1) for c in columns], axis=1) if columns else np.zeros((size, 0))
    return stacked.reshape(out_shape + in_shape)
