"""The compiled forward pass (symcheck/engines/numeric/evaluator.py `compiled`): the same numbers as
`forward`, with large elementwise results in buffers reused from call to call."""

from __future__ import annotations

import numpy as np
import pytest

from symcheck.engines.numeric.evaluator import UFUNCS, compiled, forward
from symcheck.engines.numeric.rules import FORWARD
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse

BIG = 200  # 200 x 200 = 40,000 elements: above the buffered size


def _program(text: str, **shapes: tuple[int, ...]):  # type: ignore[no-untyped-def]
    return bind(parse(text), {n: TensorType(s) for n, s in shapes.items()})


def test_every_buffered_op_is_its_forward_rule() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (3, 4))
    for op, ufunc in UFUNCS.items():
        args = [a, b][: ufunc.nin]
        np.testing.assert_array_equal(ufunc(*args, out=np.empty_like(a)), FORWARD[op](args, {}))


@pytest.mark.parametrize(
    "text",
    [
        "mean(3*(x+2)^2)",
        "sum(exp(sin(x)*x) - x.T*log(x*x))",  # x.T: a view of x, never of a buffer
        "sum(tanh(x*2).T * (x + 1))",  # the transpose of a buffered-size result
        "sum(sum(x*x, axis=0) * x) + sum(expand_dims(x*x + 1, axis=0))",  # broadcasting; a view of a result
        "tanh(x*3 + 1)",  # a tensor output: never a buffer, kept by the caller
    ],
)
def test_the_compiled_program_is_forward_and_stays_so_across_calls(text: str) -> None:
    program = _program(text, x=(BIG, BIG))
    run = compiled(program)
    rng = np.random.default_rng(1)
    first_point = {"x": rng.uniform(0.5, 2.0, (BIG, BIG))}
    second_point = {"x": rng.uniform(0.5, 2.0, (BIG, BIG))}
    first = run(first_point)
    kept = np.array(first)
    second = run(second_point)
    np.testing.assert_array_equal(first, kept)  # what the caller holds is not overwritten
    np.testing.assert_array_equal(first, forward(program, first_point)[program.output.id])
    np.testing.assert_array_equal(second, forward(program, second_point)[program.output.id])
