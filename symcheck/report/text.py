"""Reports: what each case computed, which engines agreed, and exactly where they parted.

Text for people (torch.testing-style mismatch lines), JSON for machines (schema below, versioned).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symcheck import __version__
from symcheck.compare import ArrayComparison
from symcheck.train import training_json, training_text
from symcheck.verify import CaseResult, PointResult

JSON_SCHEMA_VERSION = 1
SHOW_ARRAY_LIMIT = 16  # print gradients in full up to this many elements


@dataclass
class EngineSummary:
    """One engine across every point of a case."""

    engine: str
    status: str  # reference | ok | mismatch | convention | skipped | crashed | inconsistent
    max_abs: float = 0.0
    max_rel: float = 0.0
    points: int = 0
    detail: str = ""


def summarize_engines(result: CaseResult) -> list[EngineSummary]:
    out: dict[str, EngineSummary] = {}
    for name in result.case.engines:
        out[name] = EngineSummary(name, "skipped")
    for point in result.points:
        for name, why in point.skipped.items():
            out[name].detail = why
        for name, trace in point.crashed.items():
            out[name].status = "crashed"
            out[name].detail = trace.splitlines()[0]
        if point.reference:
            s = out[point.reference]
            if s.status in ("skipped", "reference"):
                s.status = "reference"
                s.points += 1
        explained = {c.split(":")[0] for c in point.conventions}
        for comparison in point.comparisons:
            s = out[comparison.engine]
            if comparison.engine == point.reference:
                s.status = "inconsistent"
                s.detail = comparison.failures[0]
                continue
            s.points += 1
            for check in comparison.checks:
                if check.nonfinite is None:
                    s.max_abs = max(s.max_abs, check.max_abs)
                    s.max_rel = max(s.max_rel, check.max_rel)
            if s.status in ("crashed", "inconsistent", "mismatch"):
                continue
            if comparison.failures:
                s.status, s.detail = "inconsistent", comparison.failures[0]
            elif not comparison.ok:
                s.status = "convention" if comparison.engine in explained else "mismatch"
            elif s.status == "skipped":
                s.status = "ok"
    return list(out.values())


# ---------------------------------------------------------------- text


def _array_text(array: np.ndarray) -> str:
    a = np.asarray(array)
    if a.ndim == 0:
        return f"{float(a):.10g}"
    return np.array2string(a, precision=8, separator=", ", threshold=SHOW_ARRAY_LIMIT, max_line_width=100)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _case_text(result: CaseResult, verbose: bool) -> str:
    case = result.case
    lines = [f"{result.status.upper():5} {case.name}  ({case.file}:{case.line})"]
    pad = "      "
    steps = [s for s in result.program.steps]
    if len(steps) == 1:
        lines.append(f"{pad}expr      {case.expr.strip()}")
    else:
        lines.append(
            f"{pad}program   "
            + f"\n{pad}          ".join(line.strip() for line in case.expr.strip().splitlines())
        )
    for name, spec in case.inputs.items():
        lines.append(f"{pad}input     {name}: {spec.type()} {spec.describe()}")
    output = result.program.output.name
    first = result.points[0] if result.points else None
    ref = first.results.get(first.reference) if first and first.reference else None
    if result.exact_value is not None:
        lines.append(f"{pad}value     {output} = {result.exact_value}   (exact, at the {first.label})")
    elif ref is not None:
        lines.append(f"{pad}value     {output} = {_array_text(ref.value)}   (at the {first.label})")
    for name, form in result.closed_forms.items():
        lines.append(f"{pad}gradient  d{output}/d{name} = {form}")
        if (
            ref is not None
            and name in ref.grads
            and ref.grads[name].size <= SHOW_ARRAY_LIMIT
            and _pinned(result)
        ):
            head = f"{pad}          {name}.grad = "
            grad = _indent(_array_text(ref.grads[name]), " " * len(head)).lstrip()
            lines.append(f"{head}{grad}   (at the {first.label})")
    for label, form in result.hessian_forms.items():
        lines.append(f"{pad}second    {label} = {form}")
    summaries = summarize_engines(result)
    reference = first.reference if first else None
    lines.append(
        f"{pad}engines   compared at {len(result.points)} point(s); reference: {reference or 'none'}"
    )
    width = max([9, *(len(s.engine) for s in summaries)])  # a plug-in's name may be longer
    for s in summaries:
        if s.status == "reference":
            note = (
                "exact expansion"
                if (ref is not None and ref.exact_value is not None) or _expanded(result)
                else ""
            )
            lines.append(f"{pad}  {s.engine:{width}} reference{('  (' + note + ')') if note else ''}")
        elif s.status in ("skipped", "crashed", "inconsistent"):
            lines.append(f"{pad}  {s.engine:{width}} {s.status}: {s.detail}")
        else:
            lines.append(
                f"{pad}  {s.engine:{width}} {s.status:10} "
                f"max abs err {s.max_abs:.2g}, max rel err {s.max_rel:.2g}"
            )
    if result.baseline is not None:  # --baseline: symcheck/baseline.py
        lines.append(f"{pad}baseline  {result.baseline.summary()}")
    notes = _unique(n for p in result.points for r in p.results.values() for n in r.notes)
    notes += [n for n in result.notes if n not in notes]
    for note in notes if verbose else [n for n in notes if any(w in n for w in ("skipped", "not", "probe"))]:
        lines.append(f"{pad}note      {note}")
    for m in result.mistakes:
        verdict = "refuted, as it must be" if m.refuted else "NOT REFUTED: symcheck accepted a known mistake"
        lines.append(f"{pad}mistake   d{output}/d{m.wrt} = {m.claim}: {verdict}")
        if m.likely_mistake:
            lines.append(f"{pad}          why: {m.likely_mistake}")
        if m.refuted and not m.ok:
            lines.append(f"{pad}          DIAGNOSED DIFFERENTLY: the case expects '{m.expected_reason}'")
    for proof in result.proofs:
        checks = [e for p in result.points for e in p.expectations if e.what == f"d{output}/d{proof.wrt}"]
        held = sum(e.ok for e in checks)
        if proof.proven:
            lines.append(
                f"{pad}expect    d{output}/d{proof.wrt} = {proof.claim}: proven (equal to the closed form); "
                f"holds at {held}/{len(checks)} points"
            )
        elif held == len(checks) and checks:
            lines.append(
                f"{pad}expect    d{output}/d{proof.wrt} = {proof.claim}: "
                f"holds at {held}/{len(checks)} points "
                f"(not proven symbolically: claimed - true simplifies to {proof.difference})"
            )
        else:
            lines.append(f"{pad}expect    d{output}/d{proof.wrt} = {proof.claim}: WRONG")
            lines.append(f"{pad}          claimed - true = {proof.difference}")
            if result.closed_forms.get(proof.wrt):
                lines.append(f"{pad}          true gradient  = {result.closed_forms[proof.wrt]}")
            bad = next((e for e in checks if not e.ok), None)
            if proof.differs_at is not None:  # the diagnosis: symcheck/teaching/diagnose.py
                lines.append(f"{pad}          differs {proof.differs_at}")
            elif bad is not None:
                lines.append(f"{pad}          {bad.detail}")
            if proof.likely_mistake is not None:
                lines.append(f"{pad}          likely mistake: {proof.likely_mistake}")
    for point in result.points:
        for e in point.expectations:
            if any(e.what == f"d{output}/d{p.wrt}" for p in result.proofs):
                continue
            mark = "ok" if e.ok else "WRONG"
            detail = "" if e.ok else f": {e.detail}"
            lines.append(f"{pad}expect    {e.what} = {e.claim}: {mark}{detail}")
    for point in result.points:
        lines.extend(_point_failures(point, pad, output))
    if result.training is not None:  # the training section: symcheck/train.py
        lines.extend(training_text(result.training, pad))
    return "\n".join(lines)


def _pinned(result: CaseResult) -> bool:
    """Gradients are worth printing at the values the user gave, not at a random draw."""
    return bool(result.points) and result.points[0].label == "given values"


def _expanded(result: CaseResult) -> bool:
    return any(
        "closed form = expansion (exact" in n
        for p in result.points
        for r in p.results.values()
        for n in r.notes
    )


def _unique(items: Any) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _point_failures(point: PointResult, pad: str, output: str) -> list[str]:
    lines: list[str] = []
    for problem in point.problems:
        lines.append(f"{pad}FAILED    at the {point.label}: {problem}")
    for kink in point.kink_hits:
        lines.append(f"{pad}kink      at the {point.label}: {kink}")
    for convention in point.conventions:
        lines.append(f"{pad}note      {convention}")
    explained = {c.split(":")[0] for c in point.conventions}
    for comparison in point.comparisons:
        for failure in comparison.failures:
            lines.append(f"{pad}FAILED    {comparison.engine} at the {point.label}: {failure}")
        if comparison.engine in explained:
            continue
        for check in comparison.checks:
            if not check.ok:
                lines.append(
                    f"{pad}MISMATCH  {comparison.engine} vs {comparison.reference}, {check.what}, "
                    f"at the {point.label}:"
                )
                lines.extend(
                    f"{pad}          {line}"
                    for line in mismatch_lines(check, comparison.engine, comparison.reference)
                )
    for name, trace in point.crashed.items():
        lines.append(f"{pad}CRASHED   {name} at the {point.label}: {trace.strip().splitlines()[0]}")
    for comparison in point.baseline:  # each engine against its own recorded numbers
        for check in comparison.checks:
            if not check.ok:
                lines.append(
                    f"{pad}MISMATCH  {comparison.engine} vs baseline, {check.what}, at the {point.label}:"
                )
                lines.extend(
                    f"{pad}          {line}" for line in mismatch_lines(check, comparison.engine, "baseline")
                )
    return lines


def mismatch_lines(check: ArrayComparison, engine: str, reference: str) -> list[str]:
    if check.nonfinite:
        return [check.nonfinite]
    pct = 100.0 * check.mismatched / max(check.total, 1)
    index = "(" + ", ".join(map(str, check.worst_index)) + ("," if len(check.worst_index) == 1 else "") + ")"
    tol = check.tolerance.describe() if check.tolerance else ""
    return [
        f"Mismatched elements: {check.mismatched} / {check.total} ({pct:.1f}%)",
        f"Greatest absolute difference: {check.max_abs:.6g} at index {index} (up to {check.allowed_abs:.3g} "
        f"allowed; {tol})",
        f"Greatest relative difference: {check.max_rel:.6g}",
        f"At {index}: {engine} = {check.actual:.12g}, {reference} = {check.expected:.12g}",
    ]


def render_case_text(result: CaseResult, verbose: bool = False) -> str:
    """One case's block of the text report (for the JUnit and GitHub formats: symcheck/formats.py)."""
    return _case_text(result, verbose)


def render_text(results: Sequence[CaseResult], verbose: bool = False) -> str:
    blocks: list[str] = []
    current_file = None
    for result in results:
        if result.case.file != current_file:
            current_file = result.case.file
            blocks.append(f"== {current_file}")
        blocks.append(_case_text(result, verbose))
    blocks.append(summary_line(results))
    return "\n".join(blocks) + "\n"


def summary_line(results: Sequence[CaseResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "error")}
    points = sum(len(r.points) for r in results)
    parts = [f"{counts['pass']} passed", f"{counts['fail']} failed"]
    if counts["error"]:
        parts.append(f"{counts['error']} errors")
    return f"{len(results)} cases, {points} points: " + ", ".join(parts)


# ---------------------------------------------------------------- JSON

# Schema (version 1), documented in the README:
# {"symcheck": str, "schema": 1, "summary": {"cases", "passed", "failed", "errors"},
#  "cases": [{"name", "file", "line", "expr", "status", "wrt", "value", "exact_value",
#             "closed_forms": {input: formula},
#             "engines": [{engine, status, max_abs, max_rel, points, detail}],
#             "proofs": [{wrt, claim, proven, difference}],
#             "points": [{label, reference, kink_hits, conventions, problems, skipped, crashed,
#                         "comparisons": [{engine, reference, ok, failures, checks: [check]}],
#                         "expectations": [{what, claim, ok, detail, line}]}]}]}
# Added compatibly: case "seconds" and "baseline" (null, or {file, key, status, points, mismatched,
# missing, versions}); point "baseline" ([comparison] of each engine against its recorded numbers);
# proof "likely_mistake" and "differs_at" (null, or the diagnosis of a wrong formula in words).
# check: {what, ok, total, mismatched, max_abs, max_rel, worst_index, actual, expected, nonfinite, rtol, atol}


def _finite(x: float) -> float | str:
    return x if np.isfinite(x) else str(x)


def _check_json(c: ArrayComparison) -> dict[str, Any]:
    return {
        "what": c.what,
        "ok": c.ok,
        "total": c.total,
        "mismatched": c.mismatched,
        "max_abs": _finite(c.max_abs),
        "max_rel": _finite(c.max_rel),
        "worst_index": list(c.worst_index),
        "actual": _finite(c.actual),
        "expected": _finite(c.expected),
        "nonfinite": c.nonfinite,
        "rtol": c.tolerance.rtol if c.tolerance else None,
        "atol": c.tolerance.atol if c.tolerance else None,
    }


def _case_json(result: CaseResult) -> dict[str, Any]:
    first = result.points[0] if result.points else None
    ref = first.results.get(first.reference) if first and first.reference else None
    return {
        "name": result.case.name,
        "file": result.case.file,
        "line": result.case.line,
        "expr": result.case.expr,
        "status": result.status,
        "wrt": result.wrt,
        "value": ref.value.tolist() if ref is not None else None,
        "exact_value": result.exact_value,
        "closed_forms": result.closed_forms,
        "hessian_forms": result.hessian_forms,
        "engines": [s.__dict__ for s in summarize_engines(result)],
        "proofs": [p.__dict__ for p in result.proofs],
        "mistakes": [{**m.__dict__, "ok": m.ok} for m in result.mistakes],
        "notes": result.notes,
        "training": None if result.training is None else training_json(result.training),
        "seconds": result.seconds,
        "baseline": None if result.baseline is None else result.baseline.to_json(),
        "points": [
            {
                "label": p.label,
                "reference": p.reference,
                "kink_hits": p.kink_hits,
                "conventions": p.conventions,
                "problems": p.problems,
                "skipped": p.skipped,
                "crashed": p.crashed,
                "notes": {n: r.notes for n, r in p.results.items()},
                "comparisons": [
                    {
                        "engine": c.engine,
                        "reference": c.reference,
                        "ok": c.ok,
                        "failures": c.failures,
                        "checks": [_check_json(x) for x in c.checks],
                    }
                    for c in p.comparisons
                ],
                "expectations": [e.__dict__ for e in p.expectations],
                "baseline": [
                    {"engine": c.engine, "ok": c.ok, "checks": [_check_json(x) for x in c.checks]}
                    for c in p.baseline
                ],
            }
            for p in result.points
        ],
    }


def render_json(results: Sequence[CaseResult]) -> str:
    doc = {
        "symcheck": __version__,
        "schema": JSON_SCHEMA_VERSION,
        "summary": {
            "cases": len(results),
            "passed": sum(r.status == "pass" for r in results),
            "failed": sum(r.status == "fail" for r in results),
            "errors": sum(r.status == "error" for r in results),
        },
        "cases": [_case_json(r) for r in results],
    }
    return json.dumps(_strict(doc), indent=2, default=str, allow_nan=False) + "\n"


def _strict(value: Any) -> Any:
    """Strict JSON has no NaN or Infinity: non-finite numbers become the strings "nan", "inf"."""
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value
