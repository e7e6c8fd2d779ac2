"""symcheck: cross-check derivatives with SymPy, a hand-written autograd engine, PyTorch and
finite differences.

Importing the package is cheap: torch and sympy load only when an engine runs.
"""

__version__ = "0.1.0"
