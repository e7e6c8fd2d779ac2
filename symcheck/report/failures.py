"""What failed in a case, in a line or a few: for the JUnit and GitHub formats and pytest's summary."""

from __future__ import annotations

from symcheck.checks.runner import CaseResult
from symcheck.report.terminal import FAILURE_LINE
from symcheck.report.text import render_case_text

# ---------------------------------------------------------------- what failed


def failure_lines(result: CaseResult, verbose: bool = False) -> list[str]:
    """The lines of the case's text report that say what failed, with a mismatch's details."""
    lines = render_case_text(result, verbose).splitlines()[1:]
    found: list[str] = []
    for i, line in enumerate(lines):
        if FAILURE_LINE.search(line):
            text = " ".join(line.split())
            if text.endswith(":") and i + 1 < len(lines):  # "MISMATCH ...:" then the element, if shown
                details = [d.strip() for d in lines[i + 1 : i + 5]]
                text += " " + next((d for d in details if d.startswith(("At (", "At entry"))), details[0])
            elif text.endswith(": WRONG"):  # a claim: where it parts from the truth, if shown
                differs = next((d.strip() for d in lines[i + 1 : i + 5] if "differs at" in d), "")
                point, sep, values = differs.partition("): claimed ")
                if sep:  # "differs at x = [1, 2] (the given values): claimed 6, true 4 at index (1,)"
                    text += f": claimed {values}, at {point.rpartition('(')[2]}"
            found.append(text)
    return found


def headline(result: CaseResult) -> str:
    """One line for a failing case: the first thing its report says failed."""
    found = failure_lines(result)
    return found[0] if found else f"case {result.status}"


def failed_expectations(result: CaseResult) -> list[tuple[int, str]]:
    """(line, message) for each failed expectation whose line is known, first point first."""
    output = result.program.output.name
    proofs = {p.what or f"d{output}/d{p.wrt}": p for p in result.proofs}
    seen: dict[int, str] = {}
    for point in result.points:
        for e in point.expectations:
            if e.ok or e.line is None or e.line in seen:
                continue
            parts = [f"expect {e.what} = {e.claim}: WRONG at the {point.label}: {e.detail}"]
            proof = proofs.get(e.what)
            if proof is not None and not proof.proven and proof.difference is not None:
                parts.append(f"claimed - true = {proof.difference}")
                if proof.wrt in result.closed_forms:
                    parts.append(f"true gradient = {result.closed_forms[proof.wrt]}")
            seen[e.line] = "\n".join(parts)
    return list(seen.items())


def other_failures(result: CaseResult) -> bool:
    """Anything failed besides the expectations (engines, problems, baseline, training)?"""
    return any(not line.startswith("expect ") for line in failure_lines(result))
