"""A user's layers, with hand-written backward passes: what symcheck checks against the math.

`Swish` is right. `SwishNegBranch` computes the same forward, but its backward, split by sign
like the forward (for a stable sigmoid), misses the factor (1 - s) on the negative branch: the
gradient is right for x >= 0 and wrong for x < 0 -- the kind of slip a test at positive points
never sees. `swish_numpy` / `swish_numpy_grad` are a numpy implementation with its gradient.
"""

from __future__ import annotations

import numpy as np
import torch


def _stable_sigmoid(x: torch.Tensor) -> torch.Tensor:
    # exp of a non-positive number only: no overflow for large |x|.
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


class Swish(torch.autograd.Function):
    """swish(x) = x * sigmoid(x); d/dx = s + x * s * (1 - s)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = _stable_sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, s = ctx.saved_tensors
        return grad * (s + x * s * (1 - s))


class SwishNegBranch(torch.autograd.Function):
    """The same forward; the backward's negative branch forgets the factor (1 - s)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = _stable_sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, s = ctx.saved_tensors
        return grad * torch.where(x >= 0, s + x * s * (1 - s), s + x * s)


# What symcheck calls: the whole expr of the suites, sum(w * x * sigmoid(x)). The weights w make
# each element's upstream gradient different, so a backward that ignored `grad` would be caught.


def swish_loss(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (w * Swish.apply(x)).sum()


def swish_neg_branch_loss(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (w * SwishNegBranch.apply(x)).sum()


def swish_numpy(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x / (1 + np.exp(-x))))


def swish_numpy_grad(x: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    s = 1 / (1 + np.exp(-x))
    return {"x": w * (s + x * s * (1 - s)), "w": x * s}
