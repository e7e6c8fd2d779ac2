"""Stochastic gradient descent for `symcheck.engines.autograd` tensors, with torch.optim.SGD's definitions.

The optimizer never sees the loss. `Tensor.backward()` *adds* d loss / d p to each leaf's `.grad`;
`step()` reads `.grad` and moves the parameter; `zero_grad()` clears `.grad` so that the next
`backward()` starts from nothing. Skip `zero_grad()` and `.grad` keeps the sum of every gradient
since the last clear, which is what `step()` then uses.

One step, for each parameter p whose `.grad` is set (g = p.grad):

    g = g + weight_decay * p                     (L2 penalty; `.grad` itself is left unchanged)
    momentum > 0:
        b = g                                    on the first step (no dampening then)
        b = momentum * b + (1 - dampening) * g   afterwards
        g = g + momentum * b  if nesterov  else  b
    p = p - lr * g                               (in place: the leaf stays the same object)

A parameter whose `.grad` is None is skipped entirely, as torch skips it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from symcheck.engines.autograd.tensor import Tensor


class SGD:
    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if lr < 0:
            raise ValueError(f"invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"invalid momentum value: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.params = list(params)
        for p in self.params:
            if not p.requires_grad or p._op is not None:
                raise ValueError("SGD optimizes leaf tensors that require grad")
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.momentum_buffers: dict[int, np.ndarray] = {}  # by id(param)

    def zero_grad(self) -> None:
        """Forget the accumulated gradients (torch's default, set_to_none=True)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            d_p = np.array(p.grad.data, dtype=p.data.dtype)
            if self.weight_decay != 0:
                d_p = d_p + self.weight_decay * p.data
            if self.momentum != 0:
                buf = self.momentum_buffers.get(id(p))
                buf = d_p.copy() if buf is None else self.momentum * buf + (1 - self.dampening) * d_p
                self.momentum_buffers[id(p)] = buf
                d_p = d_p + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * d_p
