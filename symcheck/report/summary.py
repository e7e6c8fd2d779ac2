"""What every report format says of a case: each engine's status across its points, the summary
line, and the torch.testing-style lines of a mismatch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from symcheck.checks.compare import ArrayComparison
from symcheck.checks.runner import CaseResult


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


def mismatch_lines(check: ArrayComparison, engine: str, reference: str) -> list[str]:
    if check.nonfinite:
        return [check.nonfinite]
    pct = 100.0 * check.mismatched / max(check.total, 1)
    where = check.where()  # "index (1, 2)", or for a Jacobian "entry d out[1] / d x[2]"
    tol = check.tolerance.describe() if check.tolerance else ""
    at = where.removeprefix("index ")
    return [
        f"Mismatched elements: {check.mismatched} / {check.total} ({pct:.1f}%)",
        f"Greatest absolute difference: {check.max_abs:.6g} at {where} (up to {check.allowed_abs:.3g} "
        f"allowed; {tol})",
        f"Greatest relative difference: {check.max_rel:.6g}",
        f"At {at}: {engine} = {check.actual:.12g}, {reference} = {check.expected:.12g}",
    ]


def summary_line(results: Sequence[CaseResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip", "error")}
    points = sum(len(r.points) for r in results)
    parts = [f"{counts['pass']} passed", f"{counts['fail']} failed"]
    if counts["skip"]:
        parts.append(f"{counts['skip']} skipped")
    if counts["error"]:
        parts.append(f"{counts['error']} errors")
    return f"{len(results)} cases, {points} points: " + ", ".join(parts)


# C0 and C1 controls, and the Unicode line and paragraph separators: Python's splitlines (and
# some log viewers) break a line at U+0085, U+2028 and U+2029 as at a newline.
_CONTROL = (
    {i: f"\\x{i:02x}" for i in [*range(32), *range(127, 160)]}
    | {0x2028: "\\u2028", 0x2029: "\\u2029"}
    | {10: "\\n", 13: "\\r", 9: "\\t"}
)


def printable_name(text: str) -> str:
    """A case name or file as one line of plain text: control characters shown escaped (\\n,
    \\r, \\x1b), lone surrogates replaced, so that no name can start a line of its own in a log (a
    GitHub workflow command) or move the cursor of a terminal."""
    return text.translate(_CONTROL).encode("utf-8", "backslashreplace").decode("utf-8")
