"""Report formats for CI besides text and JSON (symcheck/report.py), colour, and progress.

- `junit`: JUnit XML as GitLab and the common GitHub actions read it: one <testsuite> per suite
  file, one <testcase> per case (classname = suite name, file and line of the case), the case's
  text report in the <failure> (a mismatch or failed expectation) or <error> (an engine crashed).
- `github`: the text report, then GitHub Actions workflow commands
  (`::error file=F,line=N,title=T::message`) for each failing case: one at the line of each failed
  expectation, and one at the case's line with its whole report for anything else.
- Colour (ANSI) in the text report only when asked (`--color always`) or, by default, when stdout
  is a terminal and NO_COLOR is unset or empty (https://no-color.org).
- A progress line on stderr ("[3/25] case-name", rewritten in place) only when stderr is a terminal.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from symcheck.report import render_case_text, render_json, render_text
from symcheck.verify import CaseResult

FORMATS = ("text", "json", "junit", "github")
COLOR_CHOICES = ("auto", "always", "never")


def render(
    results: Sequence[CaseResult],
    fmt: str,
    *,
    verbose: bool = False,
    color: bool = False,
    suite_names: Mapping[str, str] | None = None,
) -> str:
    """The report in `fmt` (one of FORMATS); `color` applies to the text format only."""
    if fmt == "json":
        return render_json(results)
    if fmt == "junit":
        return render_junit(results, suite_names, verbose)
    if fmt == "github":
        return render_github(results, verbose)
    text = render_text(results, verbose)
    return colorize(text) if color else text


# ---------------------------------------------------------------- colour

RESET, RED, GREEN, DIM = "\x1b[0m", "\x1b[31m", "\x1b[32m", "\x1b[2m"
# A line of the text report that says something failed (the case, an engine, an expectation).
FAILURE_LINE = re.compile(r"^\s*(MISMATCH|FAILED|CRASHED)\b|: (WRONG|FAILED)\b|\bDIFFERS from\b")
SUMMARY_LINE = re.compile(r"^\d+ cases, \d+ points: ")


def use_color(choice: str, stream: IO[str] | None = None) -> bool:
    """--color: `always`, `never`, or `auto` (a terminal). NO_COLOR (set and non-empty) turns
    colour off whatever the flag says: the project promises no colour with NO_COLOR, ever."""
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    if choice == "always":
        return True
    return _isatty(stream if stream is not None else sys.stdout)


def colorize(text: str) -> str:
    """PASS green; FAIL, ERROR and the lines that say what failed red; notes dim."""
    out = []
    for line in text.split("\n"):
        if line.startswith("PASS "):
            line = GREEN + line[:4] + RESET + line[4:]
        elif line.startswith(("FAIL ", "ERROR ")):
            word = line.split(" ", 1)[0]
            line = RED + word + RESET + line[len(word) :]
        elif FAILURE_LINE.search(line):
            line = RED + line + RESET
        elif line.lstrip().startswith("note "):
            line = DIM + line + RESET
        elif SUMMARY_LINE.match(line):
            failed = re.search(r"[1-9]\d* (failed|errors)", line)
            line = (RED if failed else GREEN) + line + RESET
        out.append(line)
    return "\n".join(out)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


# ---------------------------------------------------------------- progress


class Progress:
    """`[3/25] case-name` on one terminal line, rewritten after each case; nothing at all unless
    `stream` is a terminal (CI logs stay clean), and nothing for runs shorter than `delay` seconds."""

    def __init__(
        self, stream: IO[str] | None = None, delay: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream)
        self.delay = delay
        self.clock = clock
        self.start = clock()
        self.shown = False

    def __call__(self, done: int, total: int, result: CaseResult) -> None:
        if not self.enabled or self.clock() - self.start < self.delay:
            return
        text = f"[{done}/{total}] {result.case.name}"
        width = shutil.get_terminal_size((80, 24)).columns - 1
        self.stream.write("\r\x1b[2K" + text[:width])  # \x1b[2K clears what a longer name left
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


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
                text += " " + next((d for d in details if d.startswith("At (")), details[0])
            found.append(text)
    return found


def headline(result: CaseResult) -> str:
    """One line for a failing case: the first thing its report says failed."""
    found = failure_lines(result)
    return found[0] if found else f"case {result.status}"


def _failed_expectations(result: CaseResult) -> list[tuple[int, str]]:
    """(line, message) for each failed expectation whose line is known, first point first."""
    output = result.program.output.name
    proofs = {f"d{output}/d{p.wrt}": p for p in result.proofs}
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


def _other_failures(result: CaseResult) -> bool:
    """Anything failed besides the expectations (engines, problems, baseline, training)?"""
    return any(not line.startswith("expect ") for line in failure_lines(result))


# ---------------------------------------------------------------- JUnit XML

# XML 1.0 forbids most control characters even escaped; an engine's message might carry one.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("?", text)


def render_junit(
    results: Sequence[CaseResult], suite_names: Mapping[str, str] | None = None, verbose: bool = False
) -> str:
    """JUnit XML: <testsuites> of one <testsuite> per suite file, in the order the files ran."""
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.case.file, []).append(result)
    root = ET.Element("testsuites", name="symcheck")
    for file, group in by_file.items():
        name = (suite_names or {}).get(file) or Path(file).stem
        suite = ET.SubElement(root, "testsuite", name=_xml_text(name), file=_xml_text(file))
        for result in group:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(name),
                name=_xml_text(result.case.name),
                file=_xml_text(file),
                line=str(result.case.line),
                time=f"{result.seconds:.3f}",
            )
            if result.status != "pass":
                tag, kind = ("error", "crash") if result.status == "error" else ("failure", "mismatch")
                body = ET.SubElement(case, tag, message=_xml_text(headline(result)), type=kind)
                body.text = _xml_text(render_case_text(result, verbose) + "\n")
        _counts(suite, group)
    _counts(root, results)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _counts(element: ET.Element, results: Sequence[CaseResult]) -> None:
    element.set("tests", str(len(results)))
    element.set("failures", str(sum(r.status == "fail" for r in results)))
    element.set("errors", str(sum(r.status == "error" for r in results)))
    element.set("skipped", "0")
    element.set("time", f"{sum(r.seconds for r in results):.3f}")


# ---------------------------------------------------------------- GitHub Actions


def escape_data(text: str) -> str:
    """A workflow command's message (actions/toolkit's escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


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
        expectations = _failed_expectations(result)
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
        if result.status == "error" or not expectations or _other_failures(result):
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


__all__ = [
    "COLOR_CHOICES",
    "FORMATS",
    "Progress",
    "annotation",
    "colorize",
    "escape_data",
    "escape_property",
    "github_annotations",
    "headline",
    "render",
    "render_github",
    "render_junit",
    "use_color",
]
