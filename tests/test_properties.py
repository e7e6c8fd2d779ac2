"""Property test: on random well-typed programs, all four engines agree on value and gradient.

Programs are generated as source text over a fixed set of inputs, shape by shape, so every one
type-checks. Functions with a restricted domain only see arguments inside it (log(e*e + 1)), and
kinked functions (relu, abs, step) only see inputs, which are drawn away from 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symcheck.checks.compare import compare_results, resolve_tolerance
from symcheck.engines.base import Engine, EngineOptions
from symcheck.engines.registry import DEFAULT_ENGINES, load_engine
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse

Shape = tuple[int, ...]
Draw = Callable[..., object]

INPUTS: dict[str, Shape] = {"a": (2, 3), "b": (3,), "c": (), "v": (2,), "M": (3, 2)}
SHAPES: tuple[Shape, ...] = ((), (2,), (3,), (2, 3), (3, 2), (2, 2))
# shape -> the (left, right) operand shapes of a matmul giving it
MATMULS: dict[Shape, list[tuple[Shape, Shape]]] = {
    (): [((3,), (3,)), ((2,), (2,))],
    (2,): [((2, 3), (3,)), ((2, 2), (2,))],
    (3,): [((2,), (2, 3)), ((3, 2), (2,))],
    (2, 3): [((2, 2), (2, 3))],
    (3, 2): [((3, 2), (2, 2))],
    (2, 2): [((2, 3), (3, 2))],
}
# shape -> (larger shape, axis) pairs whose reduction gives it
REDUCTIONS: dict[Shape, list[tuple[Shape, int]]] = {
    (2,): [((2, 3), 1), ((3, 2), 0), ((2, 2), 0)],
    (3,): [((2, 3), 0), ((3, 2), 1)],
    (): [((2,), 0), ((3,), 0)],
}
UNARY = (
    "tanh({0})",
    "sigmoid({0})",
    "softplus({0})",
    "sin({0})",
    "cos({0})",
    "-({0})",
    "exp(tanh({0}))",
    "exp(-({0})*({0}))",
    "log(({0})*({0}) + 1)",
    "sqrt(({0})*({0}) + 1)",
    "({0})^2",
    "({0})^3",
)
BINARY = (
    "({0}) + ({1})",
    "({0}) - ({1})",
    "({0}) * ({1})",
    "({0}) / (({1})*({1}) + 1)",
    "(({0})*({0}) + 1)^sigmoid({1})",
)
KINKED = ("{0}", "{0}", "relu({0})", "abs({0})", "step({0})*{0}", "sign({0})*{0}")


class Builder:
    """Draws expressions of a requested shape; `names` holds the steps so far by shape."""

    def __init__(self, draw: Draw, names: dict[Shape, list[str]]) -> None:
        self.draw = draw
        self.names = names

    def choose(self, options: list) -> object:
        return self.draw(st.sampled_from(options))

    def leaf(self, shape: Shape) -> str:
        inputs = [n for n, s in INPUTS.items() if s == shape]
        options = self.names.get(shape, []) + [str(self.choose(KINKED)).format(n) for n in inputs]
        if shape == (2, 2):
            options.append("a @ M")
        return str(self.choose(options))

    def partner(self, shape: Shape, depth: int) -> str:
        """An operand that broadcasts to `shape`."""
        kind = self.choose(["same", "scalar", "const", "trailing", "keepdims"])
        if kind == "const" or not shape:
            return str(self.choose(["2", "1/2", "3", "0.25"]))
        if kind == "scalar":
            return self.expr((), depth)
        if kind == "trailing":
            return self.expr(shape[1:], depth)
        if kind == "keepdims" and len(shape) == 2:
            axis = self.draw(st.integers(0, 1))
            op = self.choose(["sum", "mean"])
            if self.draw(st.booleans()):
                return f"{op}({self.expr(shape, depth)}, axis={axis}, keepdims=True)"
            return f"expand_dims({self.expr(shape[1 - axis : 2 - axis], depth)}, axis={axis})"
        return self.expr(shape, depth)

    def expr(self, shape: Shape, depth: int) -> str:
        if depth <= 0:
            return self.leaf(shape)
        kinds = ["leaf", "unary", "binary", "binary"]
        if shape in MATMULS:
            kinds.append("matmul")
        if shape in REDUCTIONS or shape == ():
            kinds.append("reduce")
        if len(shape) == 2:
            kinds.append("transpose")
        kind = self.choose(kinds)
        d = depth - 1
        if kind == "leaf":
            return self.leaf(shape)
        if kind == "unary":
            return str(self.choose(UNARY)).format(self.expr(shape, d))
        if kind == "binary":
            # One operand has the full shape, the other broadcasts to it: either order works.
            operands = [self.expr(shape, d), self.partner(shape, d)]
            if self.draw(st.booleans()):
                operands.reverse()
            return str(self.choose(BINARY)).format(*operands)
        if kind == "matmul":
            ls, rs = self.choose(MATMULS[shape])
            return f"({self.expr(ls, d)}) @ ({self.expr(rs, d)})"
        if kind == "reduce":
            op = self.choose(["sum", "mean"])
            if shape == ():
                source = self.choose([s for s in SHAPES if s])
                if len(source) == 2 and self.draw(st.booleans()):
                    return f"{op}({self.expr(source, d)}, axis=(0, 1))"
                return f"{op}({self.expr(source, d)})"
            source, axis = self.choose(REDUCTIONS[shape])
            return f"{op}({self.expr(source, d)}, axis={axis})"
        transposed = (shape[1], shape[0])
        if self.draw(st.booleans()):
            return f"({self.expr(transposed, d)}).T"
        return f"transpose({self.expr(transposed, d)}, axes=(1, 0))"


@st.composite
def programs(draw: Draw) -> str:
    names: dict[Shape, list[str]] = {}
    lines = []
    for i in range(draw(st.integers(0, 2))):
        shape = draw(st.sampled_from(SHAPES))
        expr = Builder(draw, names).expr(shape, draw(st.integers(1, 2)))
        earlier = names.get(shape, [])
        # Now and then rebind an earlier step of the same shape.
        name = earlier[0] if earlier and draw(st.booleans()) else f"h{i}"
        lines.append(f"{name} = {expr}")
        if name not in names.setdefault(shape, []):
            names[shape].append(name)
    shape = draw(st.sampled_from(SHAPES))
    body = Builder(draw, names).expr(shape, draw(st.integers(1, 3)))
    reduce = draw(st.sampled_from(["sum", "mean"]))
    # Steps the body does not use still reach the output, so their gradients are checked too.
    unused = [n for ns in names.values() for n in ns if not re.search(rf"\b{n}\b", body)]
    lines.append(f"out = {reduce}({body})" + "".join(f" + mean({n})" for n in unused))
    return "\n".join(lines)


def point(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # |x| in [0.3, 1.2]: away from the kinks at 0, small enough that nothing overflows.
    return {
        name: rng.uniform(0.3, 1.2, shape) * rng.choice([-1.0, 1.0], shape) for name, shape in INPUTS.items()
    }


ENGINES: dict[str, Engine] = {name: load_engine(name) for name in DEFAULT_ENGINES}
OPTIONS = EngineOptions()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=programs(), seed=st.integers(0, 2**16))
def test_engines_agree(text: str, seed: int) -> None:
    parsed = parse(text)
    program = bind(parsed, {n: TensorType(INPUTS[n]) for n in parsed.free_names()})
    wrt = program.float_inputs()
    inputs = {n: v for n, v in point(seed).items() if n in program.inputs}
    results = {name: engine.run(program, inputs, wrt, OPTIONS) for name, engine in ENGINES.items()}
    reference = results["symbolic"]
    assert not reference.failures, (text, reference.failures)
    assert np.all(np.isfinite(reference.value)), text
    for name, result in results.items():
        if name == "symbolic":
            continue
        assert set(result.grads) == set(reference.grads) == set(wrt), (name, text)
        comparison = compare_results(result, reference, resolve_tolerance(name, result.dtype, None), "out")
        problems = [f"{c.what}: {c.summary()}" for c in comparison.checks if not c.ok] + comparison.failures
        assert comparison.ok, f"{name} disagrees with symbolic on\n{text}\nat {inputs}:\n" + "\n".join(
            problems
        )
