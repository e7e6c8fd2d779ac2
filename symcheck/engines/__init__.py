"""The engines: the interface they implement (`base.py`), the registry that loads them by name
(`registry.py`), and the four built-in ones side by side, each a package whose op rules sit in
one table file (`rules.py`): symbolic (SymPy), autograd (our own numpy reverse mode), torch
(torch.autograd) and numeric (finite differences). `user.py` holds the columns of the user's own
code (`impl:`, `assert_gradients`' fn).

No engine imports another: each is an independent witness. They share only the language (the IR
and the op catalogue) and this package's interface. Importing this package is cheap; an engine's
package (and torch or sympy) loads when that engine is loaded.

For plug-ins (docs/engines.md), the interface is importable from here:

    from symcheck.engines import Engine, EngineOptions, EngineResult
"""

from symcheck.engines.base import (
    HVP,
    Curvature,
    Directional,
    Engine,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    JacobianProbes,
    hessian_key,
    jacobian_probes,
    second_order_directions,
    tensor_derivatives,
    wants_full_hessian,
    wants_full_jacobian,
)
from symcheck.engines.registry import (
    available_engines,
    load_engine,
    register_engine,
    unregister_engine,
)

__all__ = [
    "HVP",
    "Curvature",
    "Directional",
    "Engine",
    "EngineOptions",
    "EngineResult",
    "EngineUnavailable",
    "JacobianProbes",
    "available_engines",
    "hessian_key",
    "jacobian_probes",
    "load_engine",
    "register_engine",
    "second_order_directions",
    "tensor_derivatives",
    "unregister_engine",
    "wants_full_hessian",
    "wants_full_jacobian",
]
