"""The symbolic engine (SymPy): exact closed forms and element-by-element expansion."""

from symcheck.engines.symbolic.engine import ClosedForm, SymbolicEngine

__all__ = ["ClosedForm", "SymbolicEngine"]
