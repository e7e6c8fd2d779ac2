"""A fused LayerNorm with a hand-written backward, and two subtly wrong versions of it.

LayerNorm over the last axis (N features): x_hat = (x - mean) * rstd, rstd = 1/sqrt(var + eps), var
dividing by N; y = x_hat * w + b. With g = dL/dy and gw = g * w, every mean over the last axis:

    dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat))
    dw = sum(g * x_hat)       over every leading (batch) axis
    db = sum(g)               over every leading (batch) axis

The suites (layernorm_ok / layernorm_bad.symcheck.yaml) check these against the language's
`layer_norm(x, w, b)`, which has torch.nn.functional.layer_norm's semantics.

- `FusedLayerNorm` is right.
- `FusedLayerNormNoProjection` drops the last term of dx, `- x_hat * mean(gw * x_hat)`: the part of
  the gradient that flows through rstd (the variance). Its value, dw and db are right, and so is dx
  under a plain `sum(layer_norm(x, w, b))` at the usual initial weights w = 1: there gw is constant
  along a row, mean(gw * x_hat) = 0 and the right dx is 0 too, so a test of the sum at init passes
  it. The Jacobian of the tensor output (unit cotangents) shows it at once, in dout/dx only.
- `FusedLayerNormRawDw` saves x, mean and rstd instead of x_hat (the memory-lean way fused kernels
  do it) and recomputes x_hat for dx, but its dw sums g * x, the raw input, where it needs x_hat: dx,
  db and the value are right, dw is wrong (right only for rows already normalised), in dout/dw only.
"""

from __future__ import annotations

import torch

EPS = 1e-5  # layer_norm's default, as in the suites' expr


def _leading(t: torch.Tensor) -> tuple[int, ...]:
    """The batch axes: every axis but the normalised last one."""
    return tuple(range(t.dim() - 1))


def _normalise(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(-1, keepdim=True)  # divides by N, as layer_norm does (not torch.var's N - 1)
    rstd = torch.rsqrt(var + eps)
    return xc * rstd, mean, rstd


class FusedLayerNorm(torch.autograd.Function):
    """The right one."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> torch.Tensor:
        x_hat, _, rstd = _normalise(x, eps)
        ctx.save_for_backward(x_hat, rstd, weight)
        return x_hat * weight + bias

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[no-untyped-def, override]
        x_hat, rstd, weight = ctx.saved_tensors
        gw = grad * weight
        dx = rstd * (gw - gw.mean(-1, keepdim=True) - x_hat * (gw * x_hat).mean(-1, keepdim=True))
        dw = (grad * x_hat).sum(_leading(grad))
        db = grad.sum(_leading(grad))
        return dx, dw, db, None


class FusedLayerNormNoProjection(torch.autograd.Function):
    """The same forward; dx forgets the term `- x_hat * mean(gw * x_hat)` (the path through rstd)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> torch.Tensor:
        x_hat, _, rstd = _normalise(x, eps)
        ctx.save_for_backward(x_hat, rstd, weight)
        return x_hat * weight + bias

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[no-untyped-def, override]
        x_hat, rstd, weight = ctx.saved_tensors
        gw = grad * weight
        dx = rstd * (gw - gw.mean(-1, keepdim=True))
        dw = (grad * x_hat).sum(_leading(grad))
        db = grad.sum(_leading(grad))
        return dx, dw, db, None


class FusedLayerNormRawDw(torch.autograd.Function):
    """Saves x, mean, rstd and recomputes x_hat; dw uses x where it needs x_hat."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> torch.Tensor:
        x_hat, mean, rstd = _normalise(x, eps)
        ctx.save_for_backward(x, mean, rstd, weight)
        return x_hat * weight + bias

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[no-untyped-def, override]
        x, mean, rstd, weight = ctx.saved_tensors
        x_hat = (x - mean) * rstd
        gw = grad * weight
        dx = rstd * (gw - gw.mean(-1, keepdim=True) - x_hat * (gw * x_hat).mean(-1, keepdim=True))
        dw = (grad * x).sum(_leading(grad))  # the slip: x, not x_hat
        db = grad.sum(_leading(grad))
        return dx, dw, db, None


# What symcheck calls (impl: "mylayers.fused_layernorm:<name>"): keyword arguments named after the
# suites' inputs. The tensor output's Jacobian is checked in full, through the backward.


def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return FusedLayerNorm.apply(x, w, b, EPS)


def layer_norm_loss(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """sum(layer_norm(x, w, b) * g): a loss, its upstream gradient g different at every element."""
    return (FusedLayerNorm.apply(x, w, b, EPS) * g).sum()


def layer_norm_no_projection(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return FusedLayerNormNoProjection.apply(x, w, b, EPS)


def layer_norm_raw_dw(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return FusedLayerNormRawDw.apply(x, w, b, EPS)
