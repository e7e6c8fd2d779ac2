"""The Python API: symcheck's checks as functions, for tests, notebooks and scripts (docs/api.md).

symcheck.check("mean(3*(x+2)^2)", x=np.ones((2, 2)), claim="x: 3/2*(x + 2)")  # -> Result
symcheck.closed_form("mean(3*(x+2)^2)", x=(2, 2))["x"]                           # SymPy 3*(x + 2)/2
symcheck.explain("mean(3*(x+2)^2)", claim="x: 3*(x + 2)")                        # renders in Jupyter
symcheck.verify("expressions/")                                                  # -> Results
symcheck.assert_gradients(my_swish, "x*sigmoid(x)", x=torch.randn(100))         # in a test
symcheck.assert_module_gradients(nn.Linear(3, 2), "sum(tanh(weight @ x + bias))", x=torch.randn(3))
"""

from __future__ import annotations

from symcheck.api.assertions import GradientCheckFailed, assert_gradients, assert_module_gradients
from symcheck.api.functions import check, closed_form, explain, verify
from symcheck.api.results import ClosedForms, Explained, Result, Results
from symcheck.engines.user import FunctionEngine

__all__ = [
    "ClosedForms",
    "Explained",
    "FunctionEngine",
    "GradientCheckFailed",
    "Result",
    "Results",
    "assert_gradients",
    "assert_module_gradients",
    "check",
    "closed_form",
    "explain",
    "verify",
]
