"""A plain numpy forward evaluator of the IR, op by op from the table in `rules.py`.

It is what the numeric engine differences, what the sampler watches for domains and kinks
(`on_call`), and what a plug-in engine that only needs values can build on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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


def compiled(program: Program, dtype: type[np.floating] | np.dtype = np.float64) -> Callable[[], np.ndarray]:
    """A function of the inputs giving forward(program, inputs)[output], the program walked into a
    flat list of calls once: what the numeric engine evaluates thousands of times per point. The
    same rules and casts as `forward`, in the same order, without walking the tree at every call."""
    dt = np.dtype(dtype)
    values: list[Any] = []
    calls: list[tuple[int, Callable[..., Any], list[int], frozenset[int] | None, dict[str, Any]]] = []
    names: dict[str, int] = {}

    def slot_of(node: Node, env: dict[str, int]) -> int:
        if isinstance(node, Const):
            values.append(np.asarray(float(node.value), dtype=dt))
            return len(values) - 1
        if isinstance(node, Ref):
            return env[node.target]
        assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
        args = [slot_of(a, env) for a in node.args]
        values.append(None)
        keep = None if node.op in KEEPS_DTYPE else LABEL_ARGS.get(node.op, frozenset())
        calls.append((len(values) - 1, FORWARD[node.op], args, keep, node.kwdict))
        return len(values) - 1

    env: dict[str, int] = {}
    for name in program.inputs:
        values.append(None)
        env[name] = names[name] = len(values) - 1
    for step in program.steps:
        env[step.id] = slot_of(step.expr, env)
    out = env[program.output.id]
    floats = {name: program.inputs[name].type.dtype is DType.FLOAT for name in program.inputs}

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        v = list(values)
        for name, i in names.items():
            v[i] = np.asarray(inputs[name], dtype=dt if floats[name] else np.int64)
        with np.errstate(all="ignore"):
            for i, fn, arg_slots, keep, kw in calls:
                args = [v[j] for j in arg_slots]
                if keep is not None:  # dtype.kind "f": np.issubdtype(..., np.floating), a tenth the cost
                    args = [
                        a if k in keep or a.dtype.kind == "f" else a.astype(dt) for k, a in enumerate(args)
                    ]
                result = np.asarray(fn(args, kw))
                if result.dtype != dt and result.dtype.kind == "f":
                    result = result.astype(dt)
                v[i] = result
        return v[out]

    return run
