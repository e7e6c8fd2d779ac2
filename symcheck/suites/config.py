"""A project's settings: the `[tool.symcheck]` table of the nearest pyproject.toml.

Two settings live there: `allow-import` (suites/imports.py reads it) and the `[tool.symcheck.limits]`
table, which raises symcheck's limits for the project (symcheck/language/limits.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from symcheck.language import limits
from symcheck.language.errors import SymcheckError

CONFIG_FILE = "pyproject.toml"


def nearest_config(start: Path) -> Path | None:
    """The pyproject.toml at `start` or in the nearest folder above it."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def tool_table(config: Path) -> dict[str, Any]:
    """`[tool.symcheck]` of `config` (empty when it has none); read once per version of the file."""
    return _tool_table(config, config.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _tool_table(config: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise SymcheckError(
                "reading [tool.symcheck] needs Python 3.11 or the tomli package",
                filename=str(config),
                hint="pip install tomli, or give the setting on the command line",
            ) from None
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise SymcheckError(f"cannot read {CONFIG_FILE}: {e}", filename=str(config)) from None
    except tomllib.TOMLDecodeError as e:
        raise SymcheckError(f"malformed TOML: {e}", filename=str(config)) from None
    tool = data.get("tool", {})
    table = tool.get("symcheck", {}) if isinstance(tool, dict) else {}
    return table if isinstance(table, dict) else {}


def line_of(config: Path, key: str) -> int | None:
    """The first line of `config` that sets `key`, for an error's location."""
    for i, line in enumerate(config.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip().startswith(key):
            return i
    return None


def project_limits(start: Path, base: limits.Limits = limits.DEFAULTS) -> limits.Limits:
    """`base` raised (or lowered) by `[tool.symcheck.limits]` of the nearest pyproject.toml."""
    config = nearest_config(start.resolve())
    if config is None:
        return base
    table = tool_table(config).get("limits", {})
    if not isinstance(table, dict):
        raise SymcheckError(
            "[tool.symcheck] limits must be a table", filename=str(config), line=line_of(config, "limits")
        )
    try:
        return limits.with_overrides(base, table, f"[tool.symcheck.limits] in {config}")
    except SymcheckError as e:
        e.filename = str(config)
        bad = next((str(k) for k in table if str(k) in e.message), None)
        e.line = line_of(config, bad) if bad else None
        raise
