"""GitHub Actions: the text report, then workflow commands (`::error file=F,line=N,title=T::message`)
for each failing case: one at the line of each failed expectation, and one at the case's line with
its whole report for anything else."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from symcheck.checks.runner import CaseResult
from symcheck.report.failures import failed_expectations, headline, other_failures
from symcheck.report.text import render_case_text, render_text

# ---------------------------------------------------------------- GitHub Actions


# Line breaks other than \r and \n (NEL, the Unicode line and paragraph separators), which a log
# reader may split a command at: shown escaped, as in the text report.
_OTHER_BREAKS = {0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_data(text: str) -> str:
    """A workflow command's message (actions/toolkit's escapeData), other line breaks escaped."""
    return text.translate(_OTHER_BREAKS).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (escapeProperty): also ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, **properties: str | int | None) -> str:
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::{level} {props}::{escape_data(message)}" if props else f"::{level}::{escape_data(message)}"


def annotation_path(file: str) -> str:
    """GitHub places an annotation by a path relative to the repository (the workspace)."""
    if file.startswith("<"):
        return file
    path = Path(file)
    if path.is_absolute():
        for root in (os.environ.get("GITHUB_WORKSPACE"), os.getcwd()):
            if root:
                try:
                    return path.relative_to(Path(root).resolve()).as_posix()
                except ValueError:
                    continue
    return path.as_posix()


def github_annotations(results: Sequence[CaseResult], verbose: bool = False) -> list[str]:
    lines = []
    for result in results:
        if result.status == "pass":
            continue
        case = result.case
        file = annotation_path(case.file)
        nowhere = file.startswith("<")  # "<command line>": no file to point at
        if result.status == "skip":  # not a pass: say so where the case is
            lines.append(
                annotation(
                    "warning",
                    result.skip_reason or "skipped",
                    file=None if nowhere else file,
                    line=None if nowhere else case.line,
                    title=f"symcheck: {case.name}: skipped",
                )
            )
            continue
        expectations = failed_expectations(result)
        for line, message in expectations:
            lines.append(
                annotation(
                    "error",
                    message,
                    file=None if nowhere else file,
                    line=None if nowhere else line,
                    title=f"symcheck: {case.name}",
                )
            )
        if result.status == "error" or not expectations or other_failures(result):
            title = f"symcheck: {case.name}: {headline(result)}"
            text = render_case_text(result, verbose)
            lines.append(
                annotation(
                    "error",
                    text,
                    file=None if nowhere else file,
                    line=None if nowhere else case.line,
                    title=title,
                )
            )
    return lines


def render_github(results: Sequence[CaseResult], verbose: bool = False) -> str:
    """The text report for the log, then the annotations (GitHub hides the command lines)."""
    annotations = github_annotations(results, verbose)
    return render_text(results, verbose) + "".join(line + "\n" for line in annotations)
