"""symcheck's own reverse-mode autograd: a `Tensor` on numpy arrays with hand-written VJP rules
(`symcheck.engines.autograd.tensor`), and the engine that lowers the IR onto it
(`symcheck.engines.autograd.engine`).

It imports neither torch nor sympy: it is an independent witness of their derivatives.
"""

from symcheck.engines.autograd.tensor import (
    NONDIFFERENTIABLE,
    PRIMITIVES,
    VJPS,
    Tensor,
    grad,
    no_grad,
    unbroadcast,
)

__all__ = ["NONDIFFERENTIABLE", "PRIMITIVES", "VJPS", "Tensor", "grad", "no_grad", "unbroadcast"]
