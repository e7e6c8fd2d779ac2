"""JUnit XML as GitLab and the common GitHub actions read it: one <testsuite> per suite file, one
<testcase> per case (classname = suite name, file and line of the case), the case's text report in
the <failure> (a mismatch or failed expectation) or <error> (an engine crashed)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from symcheck.checks.runner import CaseResult
from symcheck.report.failures import headline
from symcheck.report.text import render_case_text

# ---------------------------------------------------------------- JUnit XML

# XML 1.0 forbids most control characters even escaped; an engine's message might carry one. A
# lone surrogate (a case name "\ud800" in YAML) cannot even be encoded as UTF-8.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


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
            if result.status == "skip":
                ET.SubElement(case, "skipped", message=_xml_text(result.skip_reason or "skipped"))
            elif result.status != "pass":
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
    element.set("skipped", str(sum(r.status == "skip" for r in results)))
    element.set("time", f"{sum(r.seconds for r in results):.3f}")
