"""The JSON report, for machines (schema versioned; documented in the README)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from symcheck import __version__
from symcheck.checks.compare import ArrayComparison
from symcheck.checks.runner import CaseResult
from symcheck.report.summary import summarize_engines
from symcheck.report.training import training_json

JSON_SCHEMA_VERSION = 1


# Schema (version 1), documented in the README:
# {"symcheck": str, "schema": 1, "summary": {"cases", "passed", "failed", "errors"},
#  "cases": [{"name", "file", "line", "expr", "status", "wrt", "value", "exact_value",
#             "closed_forms": {input: formula},
#             "engines": [{engine, status, max_abs, max_rel, points, detail}],
#             "proofs": [{wrt, claim, proven, difference, how}],
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
        # A Jacobian's worst entry, split: d out[output_index] / d input[input_index].
        "jacobian_entry": None
        if c.split is None
        else {
            "output": c.output_name,
            "output_index": list(c.worst_index[: c.split]),
            "input": c.input_name,
            "input_index": list(c.worst_index[c.split :]),
        },
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
        "skip_reason": result.skip_reason,
        "error": result.error,
        "wrt": result.wrt,
        "value": ref.value.tolist() if ref is not None else None,
        "exact_value": result.exact_value,
        "closed_forms": result.closed_forms,
        "cotangent": result.cotangent,
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
            "skipped": sum(r.status == "skip" for r in results),
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
