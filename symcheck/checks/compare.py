"""Comparison of engine results: tolerances, mismatch statistics, NaN/inf handling.

Apart from the engines on purpose: it sees only arrays. The default tolerances follow
`torch.testing.assert_close` per dtype; finite differences get their own row, scaled by the
size of the reference gradient because their error is absolute, not per element.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from symcheck.engines.base import EngineResult, JacobianProbes


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    # True: atol is multiplied by max(1, max |reference|) (finite differences' error is absolute).
    scaled: bool = False

    def describe(self) -> str:
        scale = " x max(1, |ref|)" if self.scaled else ""
        return f"rtol {self.rtol:g}, atol {self.atol:g}{scale}"


# Keyed by the dtype an engine computed in; torch.testing.assert_close's defaults.
DTYPE_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-7, atol=1e-7),
    "float32": Tolerance(rtol=1.3e-6, atol=1e-5),
    "float16": Tolerance(rtol=1e-3, atol=1e-5),
    "bfloat16": Tolerance(rtol=1.6e-2, atol=1e-5),
}
# Engines whose error is not the dtype's rounding: finite differences (step-size truncation).
ENGINE_TOLERANCES: dict[str, Tolerance] = {
    "numeric": Tolerance(rtol=1e-6, atol=1e-7, scaled=True),
}


# An element whose engine-estimated error exceeds this part of the reference's value is inconclusive.
INCONCLUSIVE = 0.05

# Second derivatives by finite differences lose more digits (h ~ eps^(1/4), error ~ 1e-8 of f).
SECOND_ORDER_ENGINE_TOLERANCES: dict[str, Tolerance] = {
    "numeric": Tolerance(rtol=1e-4, atol=1e-5, scaled=True),
}


def default_tolerance(engine: str, dtype: str, order: int = 1) -> Tolerance:
    if order >= 2 and engine in SECOND_ORDER_ENGINE_TOLERANCES:
        return SECOND_ORDER_ENGINE_TOLERANCES[engine]
    by_dtype = DTYPE_TOLERANCES.get(dtype, DTYPE_TOLERANCES["float64"])
    if engine in ENGINE_TOLERANCES:
        own = ENGINE_TOLERANCES[engine]
        if by_dtype.rtol <= own.rtol and by_dtype.atol <= own.atol:
            return own
        # compared in a lower precision (a float32 reference): the looser of the two
        return replace(own, rtol=max(own.rtol, by_dtype.rtol), atol=max(own.atol, by_dtype.atol))
    return by_dtype


def resolve_tolerance(
    engine: str, dtype: str, overrides: Mapping[str, object] | None, order: int = 1
) -> Tolerance:
    """The default for (engine, dtype), with a case's overrides: global rtol/atol, then per engine."""
    tol = default_tolerance(engine, dtype, order)
    if not overrides:
        return tol
    for source in (overrides, overrides.get(engine) or {}):
        if isinstance(source, Mapping):
            if source.get("rtol") is not None:
                tol = replace(tol, rtol=float(source["rtol"]))  # type: ignore[arg-type]
            if source.get("atol") is not None:
                tol = replace(tol, atol=float(source["atol"]))  # type: ignore[arg-type]
    return tol


@dataclass
class ArrayComparison:
    """One quantity (the value, or d out/d x) of one engine against the reference."""

    what: str
    ok: bool
    total: int
    mismatched: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_index: tuple[int, ...] = ()
    actual: float = 0.0
    expected: float = 0.0
    nonfinite: str | None = None  # "NaN at index (0, 1)": never a pass
    allowed_abs: float = 0.0
    tolerance: Tolerance | None = None
    # A Jacobian: its first `split` axes are the output's, the rest the input's (for the report).
    split: int | None = None
    input_name: str = ""
    output_name: str = "out"
    # Elements where the engine's own error estimate is too large to decide (finite differences
    # against rounding or a steep function): never a mismatch, said in the report.
    inconclusive: int = 0
    largest_error_estimate: float = 0.0

    def where(self) -> str:
        """The worst element: `index (1, 2)`, or for a Jacobian `entry d out[1] / d x[2]`."""
        if self.split is None:
            return f"index {_index(self.worst_index)}"
        out, inp = self.worst_index[: self.split], self.worst_index[self.split :]
        return f"entry d {self.output_name}{list(out)} / d {self.input_name}{list(inp)}"

    def summary(self) -> str:
        if self.nonfinite:
            return self.nonfinite
        if self.ok:
            return f"ok (max abs {self.max_abs:.2g}, max rel {self.max_rel:.2g})"
        pct = 100.0 * self.mismatched / max(self.total, 1)
        return (
            f"Mismatched elements: {self.mismatched} / {self.total} ({pct:.1f}%); greatest absolute "
            f"difference {self.max_abs:.6g} at {self.where()} "
            f"(up to {self.allowed_abs:.3g} allowed); greatest relative difference {self.max_rel:.6g}"
        )


def _index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in index) + ("," if len(index) == 1 else "") + ")"


def compare_arrays(
    what: str,
    actual: np.ndarray,
    expected: np.ndarray,
    tol: Tolerance,
    split: int | None = None,
    input_name: str = "",
    output_name: str = "out",
    error_estimate: np.ndarray | None = None,
) -> ArrayComparison:
    found = _compare_arrays(what, actual, expected, tol, error_estimate)
    if split is not None:
        found = replace(found, split=split, input_name=input_name, output_name=output_name)
    return found


def _compare_arrays(
    what: str,
    actual: np.ndarray,
    expected: np.ndarray,
    tol: Tolerance,
    error_estimate: np.ndarray | None = None,
) -> ArrayComparison:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return ArrayComparison(
            what,
            False,
            int(expected.size),
            nonfinite=f"shape {actual.shape} != expected shape {expected.shape}",
        )
    total = int(expected.size)
    if total == 0:
        return ArrayComparison(what, True, 0, tolerance=tol)
    # Every check of every engine at every point and training step comes here: the common case (all
    # finite) in as few numpy calls as it takes; a non-finite element is located below.
    if not (np.isfinite(expected).all() and np.isfinite(actual).all()):
        return _not_finite(what, actual, expected, tol)
    magnitude = np.abs(expected)
    atol = tol.atol * max(1.0, float(magnitude.max())) if tol.scaled else tol.atol
    diff = np.abs(actual - expected)
    allowed = atol + tol.rtol * magnitude
    inconclusive = None
    if error_estimate is not None and error_estimate.shape == diff.shape:
        # An engine that knows its own error is held to the table and to that error (twice it, as
        # estimates are rough); where that error is a sizeable part of the value it cannot decide.
        estimate = np.where(np.isfinite(error_estimate), error_estimate, np.inf)
        allowed = allowed + 2 * estimate
        inconclusive = estimate > atol + INCONCLUSIVE * magnitude
    bad = diff > allowed
    if inconclusive is not None:
        bad &= ~inconclusive
    max_abs = float(diff.max())
    smallest = float(magnitude.min())
    if smallest > 0 and max_abs < smallest * 1e300:  # no division by 0, none overflowing
        max_rel = float((diff / magnitude).max())
    else:  # relative to 0: nothing where equal, infinitely far where not
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rel = np.where(magnitude != 0, diff / magnitude, np.where(diff == 0, 0.0, np.inf))
        max_rel = float(rel.max())
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff - allowed)), diff.shape))
    undecided = 0 if inconclusive is None else int(np.count_nonzero(inconclusive))
    mismatched = int(np.count_nonzero(bad))
    return ArrayComparison(
        what,
        ok=mismatched == 0,
        total=total,
        mismatched=mismatched,
        inconclusive=undecided,
        largest_error_estimate=float(np.max(error_estimate[inconclusive])) if undecided else 0.0,  # type: ignore[index]
        max_abs=max_abs,
        max_rel=max_rel,
        worst_index=worst,
        actual=float(actual[worst]),
        expected=float(expected[worst]),
        allowed_abs=float(allowed[worst]),
        tolerance=tol,
    )


def _not_finite(what: str, actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> ArrayComparison:
    """A NaN or an infinity is never a pass: the first one, the reference's before the engine's."""
    total = int(expected.size)
    for name, array in (("expected", expected), ("actual", actual)):
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            kind = "NaN" if np.isnan(array[index]) else "inf"
            whose = "the reference" if name == "expected" else "this engine"
            return ArrayComparison(
                what,
                False,
                total,
                mismatched=int(bad.sum()),
                worst_index=index,
                actual=float(actual[index]),
                expected=float(expected[index]),
                nonfinite=f"{kind} from {whose} at index {_index(index)} "
                f"({int(bad.sum())} of {total} elements not finite)",
                tolerance=tol,
            )
    raise AssertionError("called with finite arrays")


@dataclass
class EngineComparison:
    engine: str
    reference: str
    checks: list[ArrayComparison] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # the engine's own inconsistencies

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.failures

    def worst(self) -> ArrayComparison | None:
        bad = [c for c in self.checks if not c.ok]
        if bad:
            return bad[0]
        return max(self.checks, key=lambda c: c.max_rel, default=None)


def compare_results(
    result: EngineResult,
    reference: EngineResult,
    tol: Tolerance,
    output_name: str = "out",
    second_tol: Tolerance | None = None,
) -> EngineComparison:
    """Value and every gradient of `result` against `reference` (or directional derivatives),
    and second derivatives when both have them (with `second_tol`)."""
    comparison = EngineComparison(result.engine, reference.engine, failures=list(result.failures))
    comparison.checks.append(compare_arrays("value", result.value, reference.value, tol))
    for name, grad in result.grads.items():
        if name in reference.grads:
            estimate = result.error_bounds.get(name)
            what = f"d{output_name}/d{name}"
            comparison.checks.append(
                compare_arrays(what, grad, reference.grads[name], tol, error_estimate=estimate)
            )
    tensor = _tensor_checks(result, reference, tol, output_name)
    comparison.checks.extend(tensor)
    if not result.failures and not _compared_derivatives(result, reference, tensor):
        comparison.failures.append(
            "produced no derivative to compare with the reference's"
            + (" (a tensor output needs its Jacobian, VJPs or JVPs)" if reference.value.ndim else "")
        )
    if result.directional and reference.grads:
        ours = np.array([d.derivative for d in result.directional])
        theirs = np.array(
            [
                sum(float(np.sum(reference.grads[n] * v)) for n, v in d.direction.items())
                for d in result.directional
            ]
        )
        comparison.checks.append(
            compare_arrays(f"d{output_name} along {len(ours)} random directions", ours, theirs, tol)
        )
    comparison.checks.extend(_second_order_checks(result, reference, second_tol or tol, output_name))
    return comparison


def _compared_derivatives(result: EngineResult, reference: EngineResult, tensor: list) -> bool:
    """Whether anything beyond the value was compared: an engine that gives no derivative at all
    (a plug-in that forgot them, an implementation that returned none) must not pass on its value."""
    if not reference.has_derivatives:
        return True
    return (
        bool(tensor)
        or bool(set(result.grads) & set(reference.grads))
        or bool(result.directional and reference.grads)
    )


def _tensor_checks(
    result: EngineResult, reference: EngineResult, tol: Tolerance, output: str
) -> list[ArrayComparison]:
    """A tensor output: Jacobians entry by entry, or the VJPs of each shared cotangent u_k and the
    JVPs of each shared tangent v_k, whichever both engines have."""
    split = int(np.ndim(reference.value))
    checks = []
    for name, jacobian in result.jacobians.items():
        if name in reference.jacobians:
            checks.append(
                compare_arrays(
                    f"Jacobian d{output}/d{name}",
                    jacobian,
                    reference.jacobians[name],
                    tol,
                    split,
                    name,
                    output,
                    error_estimate=result.jacobian_error_bounds.get(name),
                )
            )
    for k, (mine, theirs) in enumerate(zip(result.vjps, reference.vjps, strict=False)):
        for name, product in mine.items():
            if name in theirs:
                checks.append(compare_arrays(f"VJP u{k + 1}^T d{output}/d{name}", product, theirs[name], tol))
    for k, (mine_v, theirs_v) in enumerate(zip(result.jvps, reference.jvps, strict=False)):
        estimate = result.jvp_error_bounds[k] if k < len(result.jvp_error_bounds) else None
        checks.append(
            compare_arrays(f"JVP d{output} along t{k + 1}", mine_v, theirs_v, tol, error_estimate=estimate)
        )
    return checks


def adjoint_failures(result: EngineResult, probes: JacobianProbes, tol: Tolerance) -> list[str]:
    """The dot-product test between an engine's reverse and forward modes: for each probe k,
    u_k^T (J v_k) must equal (J^T u_k)^T v_k, whatever J is. A VJP rule and a JVP rule written
    apart that do not transpose each other fail it."""
    failures = []
    for k, (vjp, jvp) in enumerate(zip(result.vjps, result.jvps, strict=False)):
        u, v = probes.cotangents[k], probes.tangents[k]
        forward_terms = u * jvp
        reverse_terms = [vjp[n] * v[n] for n in vjp if n in v]
        forward = float(np.sum(forward_terms))
        reverse = float(sum(np.sum(t) for t in reverse_terms))
        scale = max(
            1.0, float(np.sum(np.abs(forward_terms))), float(sum(np.sum(np.abs(t)) for t in reverse_terms))
        )
        if not (np.isfinite(forward) and np.isfinite(reverse)):
            continue  # non-finite derivatives are reported by the comparison itself
        if abs(forward - reverse) > tol.atol + tol.rtol * scale:
            failures.append(
                f"reverse and forward mode disagree (dot-product test, probe {k + 1}): "
                f"u^T (J t) = {forward:.12g} but (J^T u)^T t = {reverse:.12g}"
            )
    return failures


def _second_order_checks(
    result: EngineResult, reference: EngineResult, tol: Tolerance, output: str
) -> list[ArrayComparison]:
    checks = []
    for key, block in result.hessian.items():
        if key in reference.hessian:
            a, b = key.split(",")
            checks.append(compare_arrays(f"d2{output}/d{a}d{b}", block, reference.hessian[key], tol))
    for i, (mine, theirs) in enumerate(zip(result.hvps, reference.hvps, strict=False)):
        for name, product in mine.product.items():
            checks.append(compare_arrays(f"(H v{i + 1})_{name}", product, theirs.product[name], tol))
    if result.curvatures and (reference.hvps or reference.hessian):
        ours = np.array([c.value for c in result.curvatures])
        theirs = np.array([_curvature(reference, c.direction) for c in result.curvatures])
        checks.append(compare_arrays(f"v^T H v along {len(ours)} random directions", ours, theirs, tol))
    return checks


def _curvature(reference: EngineResult, direction: Mapping[str, np.ndarray]) -> float:
    """v^T H v from the reference's HVPs (same directions) or its full Hessian blocks."""
    for hvp in reference.hvps:
        if all(np.array_equal(hvp.direction[n], direction[n]) for n in direction):
            return sum(float(np.sum(direction[n] * hvp.product[n])) for n in direction)
    total = 0.0
    for a, va in direction.items():
        for b, vb in direction.items():
            block = reference.hessian[f"{a},{b}"]
            total += float(np.tensordot(np.tensordot(va, block, axes=va.ndim), vb, axes=vb.ndim))
    return total
