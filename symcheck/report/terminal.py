"""Colour and progress, on a terminal only.

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
from collections.abc import Callable
from typing import IO, Any

from symcheck.checks.runner import CaseResult
from symcheck.report.summary import printable_name

COLOR_CHOICES = ("auto", "always", "never")

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
        text = f"[{done}/{total}] {printable_name(result.case.name)}"
        width = shutil.get_terminal_size((80, 24)).columns - 1
        self.stream.write("\r\x1b[2K" + text[:width])  # \x1b[2K clears what a longer name left
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False
