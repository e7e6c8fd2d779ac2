"""Small stand-in shapes for a program: where the symbolic engine checks its closed form against
the exact expansion, and where the prover compares a claim element by element (cheaper than the
case's own shapes, and the same program)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from symcheck.language.errors import SymcheckError
from symcheck.language.ir import Program, TensorType
from symcheck.language.parser import bind, parse


def probe_shapes(program: Program) -> dict[str, TensorType]:
    """Small stand-in shapes: each distinct size > 1 becomes 2, 3, ... (order and equality kept)."""
    sizes = sorted({d for decl in program.inputs.values() for d in decl.type.shape if d > 1})
    small = {size: 2 + i for i, size in enumerate(sizes)}
    return {
        name: TensorType(tuple(small.get(d, d) for d in decl.type.shape), decl.type.dtype)
        for name, decl in program.inputs.items()
    }


def probe_point(shapes: Mapping[str, TensorType], seed: int | list[int]) -> dict[str, np.ndarray]:
    """A point at the probe shapes, away from 0 (and from most domain edges); labels 0."""
    rng = np.random.default_rng(seed)
    return {
        name: rng.uniform(0.3, 1.2, t.shape)
        if t.dtype.value == "float"
        else np.zeros(t.shape, dtype=np.int64)
        for name, t in shapes.items()
    }


NO_PROBE = "the program does not bind at a smaller probe shape (a constant index needs its size)"


def at_shapes(program: Program, shapes: Mapping[str, TensorType]) -> Program | None:
    """The same program bound at other shapes, ending at the same step: a part of a case with
    several outputs (--outputs h0) is the program cut at that output's step. None where it does
    not bind there (x[-4] needs 4 elements)."""
    try:
        probe = bind(parse(program.source.text, program.source), shapes)
    except SymcheckError:
        return None
    if len(probe.steps) == len(program.steps):
        return probe
    return Program(probe.source, probe.inputs, probe.steps[: len(program.steps)], output_of=program.output_of)
