"""The report in the format asked for: text (people), json (machines), junit, github (CI), markdown
(pull-request comments)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from symcheck.checks.runner import CaseResult
from symcheck.report.github import render_github
from symcheck.report.json import render_json
from symcheck.report.junit import render_junit
from symcheck.report.markdown import render_markdown
from symcheck.report.terminal import COLOR_CHOICES, Progress, colorize, use_color
from symcheck.report.text import render_text

FORMATS = ("text", "json", "junit", "github", "markdown")


def render(
    results: Sequence[CaseResult],
    fmt: str,
    *,
    verbose: bool = False,
    color: bool = False,
    suite_names: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> str:
    """The report in `fmt` (one of FORMATS); `color` and `quiet` (the cases that did not pass, and
    the summary) apply to the text format only."""
    if fmt == "json":
        return render_json(results)
    if fmt == "junit":
        return render_junit(results, suite_names, verbose)
    if fmt == "github":
        return render_github(results, verbose)
    if fmt == "markdown":
        return render_markdown(results, verbose)
    text = render_text(results, verbose, quiet=quiet)
    return colorize(text) if color else text


__all__ = ["COLOR_CHOICES", "FORMATS", "Progress", "render", "use_color"]
