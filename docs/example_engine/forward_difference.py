"""An example engine plug-in (docs/engines.md): forward differences on symcheck's numpy evaluator.

    symcheck verify suite.yaml --allow-import --engine-plugin forward_difference:ForwardDifference

with this folder on PYTHONPATH, or install it with an entry point in the group `symcheck.engines`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from symcheck.engines import Engine, EngineOptions, EngineResult
from symcheck.engines.numeric import forward
from symcheck.language.ir import DType, Program


class ForwardDifference(Engine):
    name = "forward_difference"  # the report's column; a case's `engines:` may name it
    description = "one-sided finite differences (f(x + h e_i) - f(x)) / h"
    tolerance = (1e-5, 1e-6)  # (rtol, atol): O(h) truncation error, far above float64 rounding

    def run(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,  # this engine computes in float64 whatever options.dtype says
    ) -> EngineResult:
        start = time.perf_counter()
        point = {  # copies: perturbed in place below
            name: np.array(inputs[name], dtype=float if decl.type.dtype is DType.FLOAT else int)
            for name, decl in program.inputs.items()
        }

        def f() -> float:
            return float(np.sum(forward(program, point)[program.output.id]))

        value, f0 = np.asarray(forward(program, point)[program.output.id], dtype=float), f()
        grads = {}
        for name in wrt:
            flat = point[name].reshape(-1)  # a view of point[name]
            grad = np.zeros(flat.size)
            for i in range(flat.size if program.inputs[name].type.dtype is DType.FLOAT else 0):
                xi = flat[i]
                flat[i] = xi + np.sqrt(np.finfo(float).eps) * max(1.0, abs(xi))
                grad[i] = (f() - f0) / (flat[i] - xi)  # the step as represented, not as intended
                flat[i] = xi
            grads[name] = grad.reshape(point[name].shape)
        notes = ["second derivatives: not computed"] if options.order >= 2 else []
        return EngineResult(self.name, value, grads, notes=notes, seconds=time.perf_counter() - start)
