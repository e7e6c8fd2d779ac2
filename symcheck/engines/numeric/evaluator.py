"""A plain numpy forward evaluator of the IR, op by op from the table in `rules.py`.

It is what the numeric engine differences, what the sampler watches for domains and kinks
(`on_call`), and what a plug-in engine that only needs values can build on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from symcheck.engines.numeric.rules import FORWARD, KEEPS_DTYPE, LABEL_ARGS, OnCall
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref


def forward(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    on_call: OnCall | None = None,
    dtype: type[np.floating] | np.dtype = np.float64,
) -> dict[str, np.ndarray]:
    """Evaluate every step. Returns values keyed by step id, plus the inputs keyed by name.

    Float inputs are computed in `dtype`; integer inputs stay int64 until an op computes on them.
    Values outside an op's domain come out as NaN or inf, silently: callers decide what that means.
    """
    dt = np.dtype(dtype)
    env: dict[str, np.ndarray] = {}
    for name, decl in program.inputs.items():
        target = dt if decl.type.dtype is DType.FLOAT else np.int64
        env[name] = np.asarray(inputs[name], dtype=target)
    evaluator = _Evaluator(env, dt, on_call)
    with np.errstate(all="ignore"):
        for step in program.steps:
            env[step.id] = evaluator.node(step.expr)
    return env


@dataclass
class _Evaluator:
    env: dict[str, np.ndarray]
    dtype: np.dtype
    on_call: OnCall | None

    def node(self, node: Node) -> np.ndarray:
        if isinstance(node, Const):
            return np.asarray(float(node.value), dtype=self.dtype)
        if isinstance(node, Ref):
            return self.env[node.target]
        assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
        args = [self.node(a) for a in node.args]
        if node.op not in KEEPS_DTYPE:
            labels = LABEL_ARGS.get(node.op, frozenset())
            args = [
                a if i in labels or np.issubdtype(a.dtype, np.floating) else a.astype(self.dtype)
                for i, a in enumerate(args)
            ]
        result = np.asarray(FORWARD[node.op](args, node.kwdict))
        if result.dtype != self.dtype and np.issubdtype(result.dtype, np.floating):
            result = result.astype(self.dtype)
        if self.on_call is not None:
            self.on_call(node, args, result)
        return result
