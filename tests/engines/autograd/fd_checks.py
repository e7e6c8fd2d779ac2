"""Finite-difference checks shared by the autograd op tests: gradients and Hessian-vector products
of sum(fn(...) * w) for random weights w, against central differences."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from symcheck.engines import autograd as T
from symcheck.engines.autograd.tensor import Tensor

Fn = Callable[..., Tensor]
rng = np.random.default_rng(7)


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x, element by element: (f(x + eps) - f(x - eps)) / (2 eps)."""
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        out[idx] = (f(plus) - f(minus)) / (2 * eps)
    return out


def check_grad(fn: Fn, *arrays: np.ndarray, tol: float = 1e-6) -> None:
    """The gradient of sum(fn(...) * w), w random, against central differences in each argument."""
    w = rng.uniform(0.5, 1.5, fn(*(Tensor(a) for a in arrays)).shape)
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    grads = T.grad(T.sum(fn(*leaves) * w), leaves)
    for i, g in enumerate(grads):

        def loss(x: np.ndarray, i: int = i) -> float:
            args = [Tensor(x) if j == i else Tensor(a) for j, a in enumerate(arrays)]
            return T.sum(fn(*args) * w).item()

        assert g.shape == arrays[i].shape
        np.testing.assert_allclose(g.data, central_difference(loss, arrays[i]), rtol=tol, atol=tol)


def check_second(fn: Fn, x: np.ndarray, tol: float = 1e-5) -> None:
    """A Hessian-vector product through create_graph against differences of the gradient."""
    w = rng.uniform(0.5, 1.5, fn(Tensor(x)).shape)
    v = rng.uniform(-1.0, 1.0, x.shape)

    def directional(x: np.ndarray, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        leaf = Tensor(x, requires_grad=True)
        (g,) = T.grad(T.sum(fn(leaf) * w), [leaf], create_graph=create_graph)
        return leaf, T.sum(g * v)

    leaf, gv = directional(x, create_graph=True)
    assert gv.requires_grad
    (hv,) = T.grad(gv, [leaf])
    np.testing.assert_allclose(
        hv.data, central_difference(lambda x: directional(x)[1].item(), x, 1e-5), rtol=tol, atol=tol
    )
