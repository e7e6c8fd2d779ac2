"""The text report, for people: what each case computed, which engines agreed, and exactly where
they parted (torch.testing-style mismatch lines)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symcheck.checks.runner import CaseResult, PointResult
from symcheck.report.summary import mismatch_lines, printable_name, summarize_engines, summary_line
from symcheck.report.training import training_text

SHOW_ARRAY_LIMIT = 16  # print gradients in full up to this many elements


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
    lines = [
        f"{result.status.upper():5} {printable_name(case.name)}  ({printable_name(case.file)}:{case.line})"
    ]
    pad = "      "
    if result.skip_reason is not None:
        lines.append(f"{pad}skipped   {result.skip_reason}")
    if result.error is not None:  # symcheck's own bug: the case could not be checked
        first, _, trace = result.error.partition("\n")
        lines.append(f"{pad}CRASHED   symcheck, while checking this case: {first}")
        lines.append(f"{pad}          (a bug in symcheck: please report it; -v shows the traceback)")
        if verbose:
            lines.extend(f"{pad}          {line}" for line in trace.rstrip().splitlines())
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
    shape = result.program.output_type.shape
    if shape != ():
        lines.extend(_jacobian_lines(result, ref, pad, output))
    for name, form in result.closed_forms.items() if shape == () else ():
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
    if result.baseline is not None:  # --baseline: symcheck/checks/baseline.py
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
        label = proof.what or f"d{output}/d{proof.wrt}"
        checks = [e for p in result.points for e in p.expectations if e.what == label]
        held = sum(e.ok for e in checks)
        if proof.proven:
            lines.append(
                f"{pad}expect    {label} = {proof.claim}: "
                f"proven ({proof.how or 'equal to the closed form'}); "
                f"holds at {held}/{len(checks)} points"
            )
        elif held == len(checks) and checks:
            why = (
                proof.difference
                if (proof.difference or "").startswith("undecided")
                else f"claimed - true simplifies to {proof.difference}"
            )
            if proof.how.startswith("its decimal"):
                why = proof.how
            elif proof.how.startswith("not proven: "):  # a reason, then the difference
                why = f"{proof.how.removeprefix('not proven: ')}; claimed - true = {proof.difference}"
            lines.append(
                f"{pad}expect    {label} = {proof.claim}: "
                f"holds at {held}/{len(checks)} points (not proven symbolically: {why})"
            )
        else:
            lines.append(f"{pad}expect    {label} = {proof.claim}: WRONG")
            lines.append(f"{pad}          claimed - true = {proof.difference}")
            if result.closed_forms.get(proof.wrt) and not label.startswith("d2"):
                lines.append(
                    f"{pad}          true {'gradient ' if label.startswith('d') else 'VJP      '} = "
                    f"{result.closed_forms[proof.wrt]}"
                )
            bad = next((e for e in checks if not e.ok), None)
            if proof.differs_at is not None:  # the diagnosis: symcheck/checks/diagnose.py
                lines.append(f"{pad}          differs {proof.differs_at}")
            elif bad is not None:
                lines.append(f"{pad}          {bad.detail}")
            if proof.likely_mistake is not None:
                lines.append(f"{pad}          likely mistake: {proof.likely_mistake}")
    for point in result.points:
        for e in point.expectations:
            if any(e.what == (p.what or f"d{output}/d{p.wrt}") for p in result.proofs):
                continue
            mark = "ok" if e.ok else "WRONG"
            detail = "" if e.ok else f": {e.detail}"
            lines.append(f"{pad}expect    {e.what} = {e.claim}: {mark}{detail}")
    for point in result.points:
        lines.extend(_point_failures(point, pad, output))
    if result.training is not None:  # the training section: symcheck/checks/training.py
        lines.extend(training_text(result.training, pad))
    return "\n".join(lines)


def _jacobian_lines(result: CaseResult, ref: Any, pad: str, output: str) -> list[str]:
    """A tensor output: what of its Jacobian was checked, and the closed form of the VJP."""
    shape = result.program.output_type.shape
    lines = []
    if ref is not None and ref.jacobians:
        sizes = ", ".join(
            f"d{output}/d{n}: {_shape_text(j.shape[: len(shape)])} x {_shape_text(j.shape[len(shape) :])}"
            for n, j in ref.jacobians.items()
        )
        lines.append(f"{pad}jacobian  checked in full, entry by entry ({sizes})")
    elif ref is not None and (ref.vjps or ref.jvps):
        lines.append(
            f"{pad}jacobian  checked along {len(ref.vjps)} random cotangents u (VJPs J^T u) and "
            f"{len(ref.jvps)} random tangents t (JVPs J t),"
        )
        lines.append(f"{pad}          the same for every engine: too large to compare entry by entry")
    cotangent = result.cotangent or "v"
    for name, form in result.closed_forms.items():
        lines.append(f"{pad}vjp       {cotangent}^T d{output}/d{name} = {form}")
    if result.closed_forms:
        lines.append(f"{pad}          ({cotangent}: any cotangent of {output}'s shape {_shape_text(shape)})")
    return lines


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _pinned(result: CaseResult) -> bool:
    """Gradients are worth printing at the values the user gave, not at a random draw."""
    return bool(result.points) and result.points[0].label == "given values"


def _expanded(result: CaseResult) -> bool:
    return any(
        ("closed form = expansion (exact" in n or "Jacobian exact by expansion" in n)
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
        for check in comparison.checks:
            if check.inconclusive:
                lines.append(
                    f"{pad}note      {comparison.engine} at the {point.label}: inconclusive at "
                    f"{check.inconclusive} of {check.total} elements of {check.what} (its own error "
                    f"estimate, up to {check.largest_error_estimate:.3g}, is too large to decide there)"
                )
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


def render_case_text(result: CaseResult, verbose: bool = False) -> str:
    """One case's block of the text report (for the JUnit and GitHub formats: symcheck/report/formats.py)."""
    return _case_text(result, verbose)


def render_text(results: Sequence[CaseResult], verbose: bool = False, *, quiet: bool = False) -> str:
    """Every case's block under its file's heading, then the summary; `quiet`: only the cases that
    did not pass (failed, errors, skipped), then the summary."""
    blocks: list[str] = []
    current_file = None
    for result in results:
        if quiet and result.status == "pass":
            continue
        if result.case.file != current_file:
            current_file = result.case.file
            blocks.append(f"== {printable_name(current_file)}")
        blocks.append(_case_text(result, verbose))
    blocks.append(summary_line(results))
    return "\n".join(blocks) + "\n"
