"""symcheck's own reverse-mode autograd: a `Tensor` on numpy arrays (`tensor.py`: recording the
graph and back-propagating), its hand-written rules (`rules.py`: every primitive with its VJP, one
table), SGD (`optim.py`), and the engine that lowers the IR onto it (`engine.py`).

It imports neither torch nor sympy: it is an independent witness of their derivatives.

    from symcheck.engines import autograd as ag
    x = ag.Tensor([1.0, 2.0], requires_grad=True)
    ag.sum(ag.sigmoid(x) * x).backward()
"""

from symcheck.engines.autograd import rules
from symcheck.engines.autograd.rules import *  # noqa: F403 - the ops, as the tests and learners use them
from symcheck.engines.autograd.rules import TABLE, composite, unbroadcast
from symcheck.engines.autograd.tensor import (
    JVPS,
    NONDIFFERENTIABLE,
    PRIMITIVES,
    VJPS,
    Tensor,
    defjvp,
    defvjp,
    grad,
    jvp,
    no_grad,
    primitive,
)

__all__ = [
    "JVPS",
    "NONDIFFERENTIABLE",
    "PRIMITIVES",
    "TABLE",
    "VJPS",
    "Tensor",
    "composite",
    "defjvp",
    "defvjp",
    "grad",
    "jvp",
    "no_grad",
    "primitive",
    "rules",
    "unbroadcast",
    *rules.__all__,
]
