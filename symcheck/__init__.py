"""symcheck: cross-check derivatives with SymPy, a hand-written autograd engine, PyTorch and
finite differences.

Importing the package is cheap: torch and sympy load only when an engine runs, and the Python API
(`symcheck.check`, `symcheck.assert_gradients`, ...: symcheck/api/, docs/api.md) loads on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "assert_gradients": "symcheck.api",
    "assert_module_gradients": "symcheck.api",
    "GradientCheckFailed": "symcheck.api",
    "check": "symcheck.api",
    "closed_form": "symcheck.api",
    "explain": "symcheck.api",
    "verify": "symcheck.api",
    "Result": "symcheck.api",
    "Results": "symcheck.api",
    "ClosedForms": "symcheck.api",
    "Explained": "symcheck.api",
    "SymcheckError": "symcheck.language.errors",
    "FunctionEngine": "symcheck.engines.user",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'symcheck' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
