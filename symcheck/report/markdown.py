"""Tables: Markdown for pull-request comments (`verify --format markdown`), HTML for notebooks.

One table per suite file, one row per case: its status, what was checked, the closed forms and each
engine's verdict; under a table the cases that did not pass, each with its text report folded in a
<details> block (GitHub renders it collapsed), so a PR comment stays short and loses nothing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from symcheck.checks.runner import CaseResult
from symcheck.report.summary import summarize_engines
from symcheck.report.text import render_text

STATUS_MARK = {"pass": "✅ pass", "fail": "❌ FAIL", "error": "💥 ERROR", "skip": "⏭️ skip"}
FORM_LIMIT = 80  # characters of a closed form shown in a table cell (the report has it whole)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, one line, code spans kept whole."""
    return text.replace("|", "\\|").replace("\n", " ")


def _short(text: str) -> str:
    return text if len(text) <= FORM_LIMIT else text[: FORM_LIMIT - 1] + "…"


def case_row(result: CaseResult) -> dict[str, str]:
    """A case in a few words per column: name, status, gradients, engines, claims."""
    output = result.program.output.name
    what = f"{result.cotangent}^T d{output}" if result.cotangent else f"d{output}"  # a VJP, for a tensor
    forms = "; ".join(f"{what}/d{n} = {_short(f)}" for n, f in result.closed_forms.items())
    engines = []
    for s in summarize_engines(result):
        if s.status == "reference":
            engines.append(f"{s.engine}: reference")
        elif s.status in ("ok", "mismatch", "convention"):
            engines.append(f"{s.engine}: {s.status} ({s.max_abs:.1e})")
        else:
            engines.append(f"{s.engine}: {s.status}")
    claims = [
        f"d{output}/d{p.wrt} = {p.claim}: " + ("proven" if p.proven else "not proven") for p in result.proofs
    ]
    claims += [f"mistake {m.claim}: " + ("refuted" if m.refuted else "NOT REFUTED") for m in result.mistakes]
    return {
        "case": result.case.name,
        "status": result.status,
        "points": str(len(result.points)),
        "gradients": forms,
        "engines": ", ".join(engines),
        "claims": "; ".join(claims),
    }


def _by_file(results: Sequence[CaseResult]) -> dict[str, list[CaseResult]]:
    files: dict[str, list[CaseResult]] = {}
    for r in results:
        files.setdefault(r.case.file, []).append(r)
    return files


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _counts(results: Sequence[CaseResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "error", "skip")}
    words = {"pass": "passed", "fail": "failed", "error": "errors", "skip": "skipped"}
    return ", ".join(f"{n} {words[s]}" for s, n in counts.items() if n or s in ("pass", "fail"))


def render_markdown(
    results: Sequence[CaseResult], verbose: bool = False, title: str = "symcheck verify"
) -> str:
    """A table per suite file, then the failures' reports folded; a summary line first."""
    lines = [f"**{title}**: {_cases(len(results))}: {_counts(results)}", ""]
    for file, cases in _by_file(results).items():
        lines += [f"#### `{file}`: {_counts(cases)}", ""]
        lines += ["| case | status | gradients | engines | claims |", "|---|---|---|---|---|"]
        for r in cases:
            row = case_row(r)
            gradients = f"`{_cell(row['gradients'])}`" if row["gradients"] else ""
            lines.append(
                f"| {_cell(row['case'])} | {STATUS_MARK.get(row['status'], row['status'])} | {gradients} "
                f"| {_cell(row['engines'])} | {_cell(row['claims'])} |"
            )
        lines.append("")
        for r in cases:
            if r.status != "pass" or verbose:
                lines += [
                    f"<details><summary>{html.escape(r.case.name)}: {r.status}</summary>",
                    "",
                    "```",
                    render_text([r], verbose).rstrip(),
                    "```",
                    "</details>",
                    "",
                ]
    return "\n".join(lines).rstrip() + "\n"


def render_html(results: Sequence[CaseResult]) -> str:
    """One HTML table of the cases (a notebook's view of results)."""
    head = "".join(f"<th>{h}</th>" for h in ("case", "status", "gradients", "engines", "claims"))
    rows = []
    for r in results:
        row = case_row(r)
        status = html.escape(STATUS_MARK.get(row["status"], row["status"]))
        cells = [
            html.escape(row["case"]),
            status,
            f"<code>{html.escape(row['gradients'])}</code>",
            html.escape(row["engines"]),
            html.escape(row["claims"]),
        ]
        rows.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>")
    summary = html.escape(f"{_cases(len(results))}: {_counts(results)}")
    return f"<table><caption>symcheck: {summary}</caption><tr>{head}</tr>{''.join(rows)}</table>"


__all__ = ["case_row", "render_html", "render_markdown"]
