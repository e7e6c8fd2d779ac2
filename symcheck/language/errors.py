"""User-facing errors: what went wrong, where (file:line:col with a caret), and how to fix it.

A `SymcheckError` is a mistake in the user's input (exit code 2). Anything else escaping the
CLI is our bug (exit code 3).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A 1-based position range inside one `Source` text (end is exclusive)."""

    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def point(line: int, col: int) -> Span:
        return Span(line, col, line, col + 1)


@dataclass(frozen=True)
class Source:
    """Where a piece of text came from.

    `line_offset`/`col_offset` place the text inside a larger file (an expression inside a YAML
    suite), so errors can point at the file position while the caret is drawn under the
    expression's own line.
    """

    text: str
    filename: str = "<expr>"
    line_offset: int = 0
    col_offset: int = 0

    def file_position(self, span: Span) -> tuple[int, int]:
        line = span.line + self.line_offset
        col = span.col + (self.col_offset if span.line == 1 else 0)
        return line, col

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines() or [""]
        return lines[line - 1] if 0 < line <= len(lines) else ""


class SymcheckError(Exception):
    """A user mistake: rendered without a traceback, exit code 2."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        source: Source | None = None,
        span: Span | None = None,
        hint: str | None = None,
        filename: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.span = span
        self.hint = hint
        self.filename = filename
        self.line = line

    def located(self, source: Source) -> SymcheckError:
        """Attach a source if the error has a span but no source yet."""
        if self.source is None:
            self.source = source
        return self

    def location(self) -> str:
        if self.source is not None and self.span is not None:
            line, col = self.source.file_position(self.span)
            return f"{self.source.filename}:{line}:{col}"
        if self.filename is not None:
            return f"{self.filename}:{self.line}" if self.line else self.filename
        if self.source is not None:
            return self.source.filename
        return ""

    def render(self) -> str:
        where = self.location()
        parts = [f"{where}: error: {self.message}" if where else f"error: {self.message}"]
        if self.source is not None and self.span is not None:
            text = self.source.line_text(self.span.line)
            start = max(self.span.col - 1, 0)
            width = (self.span.end_col - self.span.col) if self.span.end_line == self.span.line else 1
            width = max(1, min(width, max(len(text) - start, 1)))
            parts.append(f"    {text}")
            parts.append("    " + " " * start + "^" * width)
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


class SymcheckErrors(SymcheckError):
    """Several user mistakes found in one pass (every schema error of a file), reported together."""

    def __init__(self, errors: Iterable[SymcheckError]) -> None:
        self.errors = [
            inner for e in errors for inner in (e.errors if isinstance(e, SymcheckErrors) else [e])
        ]
        first = self.errors[0]
        super().__init__(first.message, source=first.source, span=first.span, hint=first.hint,
                         filename=first.filename, line=first.line)  # fmt: skip

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors) + f"\n{len(self.errors)} error(s) in the input"


def raise_all(errors: list[SymcheckError]) -> None:
    """Raise the one error, or all of them together; nothing where there is none."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SymcheckErrors(errors)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The most similar candidate, for "did you mean ...?" hints."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    match = closest(word, candidates)
    return f"did you mean '{match}'?" if match else None
