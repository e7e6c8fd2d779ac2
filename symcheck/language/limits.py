"""The limits symcheck works within, and their overrides.

Each limit keeps hostile or mistaken input (a 10^10-element tensor, x^1000000, YAML aliases that
expand to billions of values) from running out of memory or time: past it the input is refused at
once, with where. Each has a default (the README's "Limits" table) that a project can raise in
`[tool.symcheck.limits]` of its pyproject.toml and a run with `--limit NAME=VALUE` (or
`--max-elements N`). The limits in force are a context variable, set by the CLI around a run.

Two facts of float64 are not limits but properties of the number format and stay fixed: a literal
has at most 40 characters and a decimal exponent within ±300.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace

from symcheck.language.errors import SymcheckError, did_you_mean


@dataclass(frozen=True)
class Limits:
    max_elements: int = 10_000_000  # any input or intermediate tensor (80 MB in float64)
    max_program_chars: int = 100_000  # a program's text
    max_depth: int = 200  # nesting of the parse tree (each operator or call is a level)
    max_exponent: int = 1000  # x^n for exact symbolic work
    max_power_bits: int = 4096  # a constant a^b, computed exactly
    max_samples: int = 1000  # random points per case
    max_epochs: int = 100_000  # of a training loop
    max_yaml_values: int = 1_000_000  # in a suite or data file, aliases expanded
    max_yaml_depth: int = 64  # nesting of a suite or data file

    def describe(self, name: str) -> str:
        """How to raise a limit, for the hint of the error that meets it."""
        key = name.replace("_", "-")
        flag = "--max-elements N" if name == "max_elements" else f"--limit {key}=N"
        return f"raise it with {flag}, or {key} = N under [tool.symcheck.limits] in pyproject.toml"


DEFAULTS = Limits()

# Beyond these, raising a limit would trade a clear refusal for a crash: nesting deeper than this
# exhausts the C stack however high Python's recursion limit is set.
CEILINGS: dict[str, int] = {"max_depth": 2000, "max_yaml_depth": 2000}

NAMES: tuple[str, ...] = tuple(f.name.replace("_", "-") for f in fields(Limits))

_current: ContextVar[Limits] = ContextVar("symcheck_limits", default=DEFAULTS)


def current() -> Limits:
    """The limits in force."""
    return _current.get()


@contextmanager
def using(limits: Limits) -> Iterator[Limits]:
    """Run a block under `limits`; deeper nesting limits raise Python's recursion limit to match
    (the parser and the engines walk expressions recursively), and restore it after."""
    token = _current.set(limits)
    previous = sys.getrecursionlimit()
    needed = recursion_for(limits)
    if needed > previous:
        sys.setrecursionlimit(needed)
    try:
        yield limits
    finally:
        _current.reset(token)
        sys.setrecursionlimit(previous)


def recursion_for(limits: Limits) -> int:
    """Python frames for the deepest expression and YAML the limits allow: about 20 a level (SymPy's
    evaluation, printing and simplification are the deepest), as measured at 2000 levels; 6000 at
    the default depth (Python's own 1000 ran out on 50 nested sigmoids inside a matmul)."""
    depth = max(limits.max_depth, limits.max_yaml_depth)
    return 20 * depth + 2000


def with_overrides(base: Limits, overrides: Mapping[str, object], where: str) -> Limits:
    """`base` with the limits named in `overrides` (dashed or underscored names) set; each value a
    positive integer within its ceiling, else a SymcheckError naming `where` it came from."""
    changes: dict[str, int] = {}
    for raw, value in overrides.items():
        name = str(raw).replace("-", "_")
        if name not in {f.name for f in fields(Limits)}:
            raise SymcheckError(
                f"{where}: unknown limit '{raw}'",
                hint=did_you_mean(str(raw).replace("_", "-"), NAMES) or f"the limits are {', '.join(NAMES)}",
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SymcheckError(f"{where}: limit '{raw}' must be a positive whole number, got {value!r}")
        ceiling = CEILINGS.get(name)
        if ceiling is not None and value > ceiling:
            raise SymcheckError(
                f"{where}: limit '{raw}' can be at most {ceiling:,}, got {value:,}",
                hint="deeper nesting would exhaust the stack; name intermediate steps instead",
            )
        changes[name] = value
    return replace(base, **changes)


def parse_assignment(text: str) -> tuple[str, int]:
    """`max-depth=400` from the command line."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SymcheckError(f"--limit {text!r}: write NAME=VALUE", hint=f"the limits are {', '.join(NAMES)}")
    try:
        number = int(value.strip().replace("_", ""))
    except ValueError:
        raise SymcheckError(f"--limit {text!r}: {value.strip()!r} is not a whole number") from None
    return name, number
