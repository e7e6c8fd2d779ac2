"""Custom backward passes, right and wrong, as a user writes them (tests/test_no_false_pass.py).

Each wrong one passes a check through the plain sum of its output, or at symmetric points:
- `SoftmaxZeroBackward` returns no gradient at all: the sum of a softmax is 1, so d sum / dx = 0;
- `GeluIgnoresGradOutput` returns gelu'(x) whatever grad_output is: right for an all-ones cotangent;
- `MatmulNoTranspose` forgets the transposes (g @ B, A @ g): right when A and B are symmetric.
"""

from __future__ import annotations

import math

import torch

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class SoftmaxZeroBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.softmax(x, -1)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.zeros_like(g)


class Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = torch.softmax(x, -1)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (s,) = ctx.saved_tensors
        return s * (g - (g * s).sum(-1, keepdim=True))


def _gelu_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh-approximate GELU and its derivative."""
    inner = SQRT_2_OVER_PI * (x + 0.044715 * x**3)
    t = torch.tanh(inner)
    y = 0.5 * x * (1 + t)
    dy = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x**2)
    return y, dy


class GeluIgnoresGradOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y, dy = _gelu_parts(x)
        ctx.save_for_backward(dy)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (dy,) = ctx.saved_tensors
        return dy  # forgets "g *"


class Gelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y, dy = _gelu_parts(x)
        ctx.save_for_backward(dy)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (dy,) = ctx.saved_tensors
        return g * dy


class MatmulNoTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        a, b = ctx.saved_tensors
        return g @ b, a @ g  # should be g @ b.T and a.T @ g


class Matmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        a, b = ctx.saved_tensors
        return g @ b.T, a.T @ g


# As `impl:` names them: keyword arguments named like the expression's inputs.
def softmax_zero_backward(x: torch.Tensor) -> torch.Tensor:
    return SoftmaxZeroBackward.apply(x)


def softmax(x: torch.Tensor) -> torch.Tensor:
    return Softmax.apply(x)


def gelu_ignores_grad_output(x: torch.Tensor) -> torch.Tensor:
    return GeluIgnoresGradOutput.apply(x)


def gelu(x: torch.Tensor) -> torch.Tensor:
    return Gelu.apply(x)


def matmul_no_transpose(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return MatmulNoTranspose.apply(A, B)


def matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return Matmul.apply(A, B)


class TwoOutputsSwapped(torch.autograd.Function):
    """h = sin(x), c = x^2 in one kernel; the backward hands each output's gradient to the other."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.sin(x), x**2

    @staticmethod
    def backward(ctx, gh: torch.Tensor, gc: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return gc * torch.cos(x) + gh * 2 * x  # should be gh * cos(x) + gc * 2 * x


class TwoOutputs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.sin(x), x**2

    @staticmethod
    def backward(ctx, gh: torch.Tensor, gc: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return gh * torch.cos(x) + gc * 2 * x


def two_outputs_swapped(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return TwoOutputsSwapped.apply(x)


def two_outputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return TwoOutputs.apply(x)
