"""Second derivatives (EngineOptions.order = 2) from the autograd, torch and numeric engines,
against Hessians worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from symcheck.engines.autograd.engine import AutogradEngine
from symcheck.engines.base import (
    Engine,
    EngineOptions,
    EngineResult,
    hessian_key,
    second_order_directions,
    wants_full_hessian,
)
from symcheck.engines.numeric.engine import NumericEngine
from symcheck.engines.torch.engine import TorchEngine
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse

Arrays = dict[str, np.ndarray]
Blocks = dict[str, np.ndarray]

ENGINES: dict[str, type[Engine]] = {
    "autograd": AutogradEngine,
    "torch": TorchEngine,
    "numeric": NumericEngine,
}
# (rtol, atol) against the exact Hessian: the differentiating engines are exact up to rounding; the
# numeric engine's extrapolated differences are good to about 1e-9 relative on these programs.
TOLERANCE: dict[str, tuple[float, float]] = {
    "autograd": (1e-10, 1e-12),
    "torch": (1e-10, 1e-12),
    "numeric": (1e-6, 1e-7),
}

RNG = np.random.default_rng(11)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


@dataclass(frozen=True)
class Case:
    """A program, its inputs, what to differentiate, and the Hessian by hand.

    `hessian` gives the blocks (a, b) for a at or before b in `wrt`; the others are their
    transposes, which `full_blocks` fills in.
    """

    id: str
    text: str
    inputs: Arrays
    wrt: tuple[str, ...]
    hessian: Callable[..., Blocks]

    def run(self, engine: str, **options: int | str) -> EngineResult:
        types = {
            n: TensorType(np.shape(a), DType.INT if np.asarray(a).dtype.kind == "i" else DType.FLOAT)
            for n, a in self.inputs.items()
        }
        program = bind(parse(self.text), types)
        return ENGINES[engine]().run(program, self.inputs, list(self.wrt), EngineOptions(**options))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: np.shape(self.inputs[n]) for n in self.wrt if np.asarray(self.inputs[n]).dtype.kind == "f"}

    def expected(self) -> Blocks:
        return full_blocks(self.hessian(**self.inputs), self.shapes)


def full_blocks(upper: Blocks, shapes: dict[str, tuple[int, ...]]) -> Blocks:
    names = list(shapes)
    blocks: Blocks = {}
    for i, a in enumerate(names):
        for b in names[i:]:
            block = np.asarray(upper[hessian_key(a, b)], dtype=np.float64)
            assert block.shape == shapes[a] + shapes[b], (a, b)
            blocks[hessian_key(a, b)] = block
            na, nb = len(shapes[a]), len(shapes[b])
            blocks[hessian_key(b, a)] = np.transpose(block, [*range(na, na + nb), *range(na)])
    return blocks


def times(blocks: Blocks, v: Arrays) -> Arrays:
    """H v, block by block."""
    return {a: sum(np.tensordot(blocks[hessian_key(a, b)], v[b], axes=np.ndim(v[b])) for b in v) for a in v}


def quadratic(blocks: Blocks, v: Arrays) -> float:
    hv = times(blocks, v)
    return float(sum(np.sum(v[a] * hv[a]) for a in v))


# ---------------------------------------------------------------- the programs and their Hessians


def _cross_entropy(W: np.ndarray, x: np.ndarray, b: np.ndarray, y: np.ndarray) -> Blocks:
    # L = logsumexp(z) - z[y] with z = W x + b: d²L/dz² = S = diag(s) - s s^T, dL/dz = r = s - e_y.
    s = softmax(W @ x + b)
    S = np.diag(s) - np.outer(s, s)
    r = s - np.eye(len(s))[int(y)]
    eye = np.eye(len(x))
    return {
        "W,W": np.einsum("ik,j,l->ijkl", S, x, x),
        "W,x": np.einsum("il,j->ijl", S @ W, x) + np.einsum("i,jl->ijl", r, eye),
        "W,b": np.einsum("ik,j->ijk", S, x),
        "x,x": W.T @ S @ W,
        "x,b": W.T @ S,
        "b,b": S,
    }


def _log_softmax(x: np.ndarray, c: np.ndarray) -> Blocks:
    # f = Σ c_i (x_i - logsumexp(x)): df/dx = c - s Σc.
    s = softmax(x)
    return {
        "x,x": -c.sum() * (np.diag(s) - np.outer(s, s)),
        "x,c": np.eye(len(x)) - np.outer(s, np.ones(len(c))),
        "c,c": np.zeros((len(c), len(c))),
    }


def _quadratic_form(x: np.ndarray, A: np.ndarray) -> Blocks:
    eye = np.eye(len(x))
    # d²/(dx_i dA_jk) of x_j A_jk x_k = δ_ij x_k + x_j δ_ik.
    return {
        "x,x": A + A.T,
        "x,A": np.einsum("ij,k->ijk", eye, x) + np.einsum("j,ik->ijk", x, eye),
        "A,A": np.zeros(A.shape + A.shape),
    }


X3 = RNG.standard_normal(3)
X4 = RNG.standard_normal(4)
A = RNG.standard_normal((3, 3))
CASES = [
    Case(
        "cubes",
        "sum(x^3)",
        {"x": RNG.standard_normal((2, 2))},
        ("x",),
        lambda x: {"x,x": np.diag(6 * x.ravel()).reshape(2, 2, 2, 2)},
    ),
    Case("quadratic_form", "x @ A @ x", {"x": X3, "A": A}, ("x", "A"), _quadratic_form),
    Case(
        "least_squares",
        "sum((X @ w - y)^2)",
        {"X": RNG.standard_normal((5, 3)), "w": X3, "y": RNG.standard_normal(5)},
        ("w",),
        lambda X, w, y: {"w,w": 2 * X.T @ X},
    ),
    Case(
        "tanh",
        "sum(tanh(x))",
        {"x": X4},
        ("x",),
        lambda x: {"x,x": np.diag(-2 * np.tanh(x) * (1 - np.tanh(x) ** 2))},
    ),
    Case(
        "softplus",
        "sum(softplus(x))",
        {"x": 2 * X4},
        ("x",),
        lambda x: {"x,x": np.diag(sigmoid(x) * (1 - sigmoid(x)))},
    ),
    Case(
        "sigmoid",
        "sum(sigmoid(x))",
        {"x": 2 * X4},
        ("x",),
        lambda x: {"x,x": np.diag(sigmoid(x) * (1 - sigmoid(x)) * (1 - 2 * sigmoid(x)))},
    ),
    Case(
        "log_softmax",
        "sum(log_softmax(x) * c)",
        {"x": X4, "c": RNG.standard_normal(4)},
        ("x", "c"),
        _log_softmax,
    ),
    Case(
        "cross_entropy",
        "cross_entropy(W @ x + b, y)",
        {"W": RNG.standard_normal((3, 4)), "x": X4, "b": RNG.standard_normal(3), "y": np.array(1)},
        ("W", "x", "b", "y"),  # y is a label: never differentiated, so in no Hessian block
        _cross_entropy,
    ),
    Case(
        "mixed",
        "sum(x * y^2) + sum(exp(x) * y)",
        {"x": X3, "y": RNG.standard_normal(3)},
        ("x", "y"),
        lambda x, y: {
            "x,x": np.diag(np.exp(x) * y),
            "x,y": np.diag(2 * y + np.exp(x)),
            "y,y": np.diag(2 * x),
        },
    ),
    Case(
        "scalar_times_vector",
        "s * sum(x^2) + sum(y)",  # y enters linearly: its gradient is a constant
        {"s": np.array(1.5), "x": X3, "y": X4},
        ("s", "x", "y"),
        lambda s, x, y: {
            "s,s": np.zeros(()),
            "s,x": 2 * x,
            "s,y": np.zeros(4),
            "x,x": 2 * s * np.eye(3),
            "x,y": np.zeros((3, 4)),
            "y,y": np.zeros((4, 4)),
        },
    ),
]
CASE_IDS = [c.id for c in CASES]


# ---------------------------------------------------------------- full Hessians


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_full_hessian_matches_the_hand_computed_one(engine: str, case: Case) -> None:
    result = case.run(engine, order=2)
    expected = case.expected()
    assert set(result.hessian) == set(expected)
    rtol, atol = TOLERANCE[engine]
    for key, block in expected.items():
        got = result.hessian[key]
        assert got.shape == block.shape, key
        assert got.dtype == np.float64, key
        np.testing.assert_allclose(got, block, rtol=rtol, atol=atol, err_msg=f"{engine} {case.id} {key}")
    assert not result.hvps and not result.curvatures


@pytest.mark.parametrize("engine", list(ENGINES))
def test_order_one_fills_no_second_order_fields_and_gives_the_same_gradients(engine: str) -> None:
    case = CASES[CASE_IDS.index("cross_entropy")]
    first, second = case.run(engine), case.run(engine, order=2)
    assert not first.hessian and not first.hvps and not first.curvatures
    assert not any("second derivatives" in note for note in first.notes)
    assert first.grads.keys() == second.grads.keys()
    for name, g in first.grads.items():
        np.testing.assert_array_equal(second.grads[name], g)
    np.testing.assert_array_equal(second.value, first.value)


# ---------------------------------------------------------------- above the full-Hessian limit


@pytest.mark.parametrize("engine", ["autograd", "torch"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_hessian_vector_products_agree_with_the_full_hessian(engine: str, case: Case) -> None:
    options = EngineOptions(order=2, hessian_full_limit=0)
    assert not wants_full_hessian(case.shapes, options)
    result = case.run(engine, order=2, hessian_full_limit=0)
    full = case.run(engine, order=2).hessian
    assert not result.hessian and not result.curvatures
    directions = second_order_directions(case.shapes, options)
    assert len(result.hvps) == len(directions) == options.hvp_directions
    expected = case.expected()
    for hvp, v in zip(result.hvps, directions, strict=True):
        assert hvp.direction.keys() == v.keys()
        for name in v:
            np.testing.assert_array_equal(hvp.direction[name], v[name])
        assert hvp.product.keys() == v.keys()
        by_hand, by_blocks = times(expected, v), times(full, v)
        for name in v:
            assert hvp.product[name].shape == case.shapes[name]
            np.testing.assert_allclose(hvp.product[name], by_hand[name], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(hvp.product[name], by_blocks[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_numeric_curvatures_above_the_limit(case: Case) -> None:
    options = EngineOptions(order=2, hessian_full_limit=0)
    result = case.run("numeric", order=2, hessian_full_limit=0)
    assert not result.hessian and not result.hvps
    assert any("second derivatives: v^T H v along 3 random directions" in note for note in result.notes)
    expected = case.expected()
    directions = second_order_directions(case.shapes, options)
    assert len(result.curvatures) == len(directions)
    for curvature, v in zip(result.curvatures, directions, strict=True):
        for name in v:
            np.testing.assert_array_equal(curvature.direction[name], v[name])
        np.testing.assert_allclose(curvature.value, quadratic(expected, v), rtol=1e-6, atol=1e-7)


def test_the_engines_agree_with_one_another_above_the_limit() -> None:
    case = CASES[CASE_IDS.index("cross_entropy")]
    options = {"order": 2, "hessian_full_limit": 10, "hvp_directions": 5}
    by_autograd = case.run("autograd", **options).hvps
    by_torch = case.run("torch", **options).hvps
    by_numeric = case.run("numeric", **options).curvatures
    assert len(by_autograd) == len(by_torch) == len(by_numeric) == 5
    for a, t, n in zip(by_autograd, by_torch, by_numeric, strict=True):
        for name in a.direction:
            np.testing.assert_array_equal(a.direction[name], t.direction[name])
            np.testing.assert_array_equal(a.direction[name], n.direction[name])
            np.testing.assert_allclose(a.product[name], t.product[name], rtol=1e-10, atol=1e-12)
        vhv = sum(float(np.sum(a.direction[m] * a.product[m])) for m in a.direction)
        np.testing.assert_allclose(n.value, vhv, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- engine by engine


def test_numeric_says_how_it_took_the_hessian() -> None:
    result = CASES[0].run("numeric", order=2)
    assert (
        "second derivatives: full Hessian (4×4) by 4-point central differences, Richardson-extrapolated"
        in (result.notes)
    )


def test_numeric_steps_back_from_a_domain_edge() -> None:
    # A step of the usual size would take p below 0, where log is nan.
    p = np.array([1e-3, 0.5, 2e-4])
    case = Case("log", "sum(log(p))", {"p": p}, ("p",), lambda p: {"p,p": np.diag(-1 / p**2)})
    result = case.run("numeric", order=2)
    expected = case.expected()["p,p"]
    # Judged on the scale of the curvatures involved, sqrt(|H_ii H_jj|): the diagonal runs to 2.5e7.
    scale = np.sqrt(np.outer(np.abs(np.diag(expected)), np.abs(np.diag(expected))))
    assert np.all(np.abs(result.hessian["p,p"] - expected) <= 1e-7 * scale)
    curvatures = case.run("numeric", order=2, hessian_full_limit=0).curvatures
    directions = second_order_directions(case.shapes, EngineOptions(order=2))
    for curvature, v in zip(curvatures, directions, strict=True):
        np.testing.assert_allclose(curvature.value, quadratic(case.expected(), v), rtol=1e-7)


def test_numeric_reports_nan_where_the_value_is_not_finite() -> None:
    case = Case("log", "sum(log(p))", {"p": np.array([-1.0, 2.0])}, ("p",), lambda p: {})
    result = case.run("numeric", order=2)
    assert np.isnan(result.hessian["p,p"]).all()
    assert any("not finite at the point; Hessian set to NaN" in note for note in result.notes)
    curvatures = case.run("numeric", order=2, hessian_full_limit=0).curvatures
    assert all(np.isnan(c.value) for c in curvatures)


@pytest.mark.parametrize("engine", ["autograd", "torch"])
def test_relu_has_torchs_second_derivative(engine: str) -> None:
    # d²/dx² relu(x)^2 = 2 relu'(x)^2 = 2 step(x), with relu'(0) = 0 as in torch; relu itself: 0.
    x = np.array([-1.5, 0.0, 0.5, 2.0])
    squared = Case("relu2", "sum(relu(x)^2)", {"x": x}, ("x",), lambda x: {"x,x": np.diag(2.0 * (x > 0))})
    np.testing.assert_array_equal(squared.run(engine, order=2).hessian["x,x"], squared.expected()["x,x"])
    plain = Case("relu", "sum(relu(x))", {"x": x}, ("x",), lambda x: {})
    np.testing.assert_array_equal(plain.run(engine, order=2).hessian["x,x"], np.zeros((4, 4)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_second_derivatives_in_its_dtype(dtype: str) -> None:
    case = CASES[CASE_IDS.index("cross_entropy")]
    result = case.run("torch", order=2, dtype=dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    for key, block in case.expected().items():
        assert result.hessian[key].dtype == np.float64
        np.testing.assert_allclose(result.hessian[key], block, rtol=rtol, atol=rtol)
    hvps = case.run("torch", order=2, dtype=dtype, hessian_full_limit=0).hvps
    for hvp in hvps:
        by_hand = times(case.expected(), dict(hvp.direction))
        for name, product in hvp.product.items():
            np.testing.assert_allclose(product, by_hand[name], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_integer_inputs_are_in_no_block(engine: str) -> None:
    case = CASES[CASE_IDS.index("cross_entropy")]
    result = case.run(engine, order=2)
    assert set(result.hessian) == {hessian_key(a, b) for a in "Wxb" for b in "Wxb"}
