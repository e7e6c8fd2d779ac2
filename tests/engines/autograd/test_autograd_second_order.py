"""The autograd engine's second derivatives: Hessian blocks and Hessian-vector products, both
by differentiating its own gradient graph."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from symcheck.engines.autograd.engine import (
    AutogradEngine,
    gradient_tensors,
    hessian,
    hessian_blocks_of,
    hessian_vector_products,
)
from symcheck.engines.base import EngineOptions, EngineResult, hessian_key, second_order_directions
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse

RNG = np.random.default_rng(5)


def program(text: str, **shapes: tuple[int, ...] | TensorType) -> Program:
    types = {n: s if isinstance(s, TensorType) else TensorType(s) for n, s in shapes.items()}
    return bind(parse(text), types)


def run(prog: Program, inputs: Mapping[str, np.ndarray], wrt: list[str], **options: int) -> EngineResult:
    return AutogradEngine().run(prog, inputs, wrt, EngineOptions(order=2, **options))


def test_blocks_agree_with_the_hessian_helper() -> None:
    prog = program("y = tanh(A @ x); out = sum(y * softplus(y)) + mean(A^2 * x)", x=(3,), A=(2, 3))
    inputs = {"x": RNG.standard_normal(3), "A": RNG.standard_normal((2, 3))}
    blocks = run(prog, inputs, ["x", "A"]).hessian
    assert set(blocks) == {hessian_key(a, b) for a in ("x", "A") for b in ("x", "A")}
    for a in ("x", "A"):
        for b in ("x", "A"):
            np.testing.assert_allclose(blocks[hessian_key(a, b)], hessian(prog, inputs, a, by=b), atol=1e-14)
    # Symmetry: the (A, x) block is the (x, A) block transposed.
    np.testing.assert_allclose(blocks["A,x"], np.transpose(blocks["x,A"], (1, 2, 0)), atol=1e-14)


def test_blocks_match_differences_of_the_gradient() -> None:
    prog = program("y = sigmoid(W @ x); out = sum(log(1 + y^2)) * sum(x)", x=(3,), W=(2, 3))
    inputs = {"x": RNG.uniform(-1, 1, 3), "W": RNG.uniform(-1, 1, (2, 3))}
    blocks = run(prog, inputs, ["x", "W"]).hessian
    eps = 1e-6
    for by, shape in (("x", (3,)), ("W", (2, 3))):
        for index in np.ndindex(shape):
            e = np.zeros(shape)
            e[index] = eps
            plus = AutogradEngine().run(
                prog, dict(inputs, **{by: inputs[by] + e}), ["x", "W"], EngineOptions()
            )
            minus = AutogradEngine().run(
                prog, dict(inputs, **{by: inputs[by] - e}), ["x", "W"], EngineOptions()
            )
            for of in ("x", "W"):
                column = (plus.grads[of] - minus.grads[of]) / (2 * eps)
                got = blocks[hessian_key(of, by)][(..., *index)]
                np.testing.assert_allclose(got, column, rtol=1e-6, atol=1e-8)


def test_hvps_above_the_limit_are_the_blocks_times_v() -> None:
    # 10 * 10 + 10 = 110 elements: over the default limit of 64.
    prog = program("sum(softplus(W @ x) * x)", W=(10, 10), x=(10,))
    inputs = {"W": RNG.standard_normal((10, 10)) / 3, "x": RNG.standard_normal(10)}
    result = run(prog, inputs, ["W", "x"])
    assert not result.hessian and len(result.hvps) == 3
    blocks = run(prog, inputs, ["W", "x"], hessian_full_limit=200).hessian
    options = EngineOptions(order=2)
    directions = second_order_directions({"W": (10, 10), "x": (10,)}, options)
    for hvp, v in zip(result.hvps, directions, strict=True):
        assert all(np.array_equal(hvp.direction[n], v[n]) for n in v)
        for a in ("W", "x"):
            expected = sum(np.tensordot(blocks[hessian_key(a, b)], v[b], axes=v[b].ndim) for b in v)
            np.testing.assert_allclose(hvp.product[a], expected, rtol=1e-12, atol=1e-12)


def test_kinks_follow_torch() -> None:
    # d²/dx² |x|^3 = 6|x| and d²/dx² relu(x)^2 = 2 step(x): both 0 at 0, as torch has them.
    x = np.array([-1.5, 0.0, 0.5])
    prog = program("sum(abs(x)^3) + sum(relu(x)^2)", x=(3,))
    np.testing.assert_allclose(
        run(prog, {"x": x}, ["x"]).hessian["x,x"], np.diag(6 * np.abs(x) + 2.0 * (x > 0))
    )


def test_repeated_integer_and_constant_names() -> None:
    prog = program("cross_entropy(z, y) + sum(c)", z=(3,), y=TensorType((), DType.INT), c=(2,))
    inputs = {"z": RNG.standard_normal(3), "y": np.array(2), "c": RNG.standard_normal(2)}
    result = run(prog, inputs, ["z", "z", "y", "c"])
    assert set(result.hessian) == {"z,z", "z,c", "c,z", "c,c"}
    s = np.exp(inputs["z"]) / np.exp(inputs["z"]).sum()
    np.testing.assert_allclose(result.hessian["z,z"], np.diag(s) - np.outer(s, s), atol=1e-15)
    # c enters linearly: its gradient is a constant, and nothing depends on it twice.
    for key in ("z,c", "c,z", "c,c"):
        assert not result.hessian[key].any()
    hvps = run(prog, inputs, ["z", "y", "c"], hessian_full_limit=1).hvps
    assert all(set(h.product) == {"z", "c"} and not h.product["c"].any() for h in hvps)


def test_no_wrt_gives_no_blocks() -> None:
    prog = program("sum(x^2)", x=(2,))
    assert run(prog, {"x": np.ones(2)}, []).hessian == {}


def test_helpers_work_on_gradient_tensors() -> None:
    prog = program("x @ A @ x", x=(3,), A=(3, 3))
    A = RNG.standard_normal((3, 3))
    grads = gradient_tensors(prog, {"x": RNG.standard_normal(3), "A": A}, ["x"], create_graph=True)
    np.testing.assert_allclose(hessian_blocks_of(grads)["x,x"], A + A.T, atol=1e-14)
    v = {"x": np.array([1.0, -2.0, 0.5])}
    (hvp,) = hessian_vector_products(grads, [v])
    np.testing.assert_allclose(hvp.product["x"], (A + A.T) @ v["x"], atol=1e-14)
