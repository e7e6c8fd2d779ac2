"""Helpers shared by the op tests of this folder (layout ops, contractions, layers): a `symcheck
grad` run through click, and one engine's comparisons in a case's result."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from symcheck.cli import main


def grad(expr: str, *inputs: str, extra: tuple[str, ...] = ()) -> Any:
    """`symcheck grad EXPR -i SPEC ... EXTRA`, as a click result (exit_code, output)."""
    args = ["grad", expr]
    for spec in inputs:
        args += ["-i", spec]
    return CliRunner().invoke(main, [*args, *extra])


def engine_comparison(result: Any, engine: str) -> list[Any]:
    """Every comparison of `engine` with the reference, over a case's points."""
    return [c for point in result.points for c in point.comparisons if c.engine == engine]
