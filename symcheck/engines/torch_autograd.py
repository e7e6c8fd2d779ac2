"""torch.autograd, as the torch engine and the columns of the user's own code use it.

The torch engine and the user's implementation (`impl:`, `assert_gradients`' fn) are both
differentiated by torch.autograd, so they share how a dtype and device are resolved and how a
gradient is differentiated once more (double backward) into Hessian blocks or Hessian-vector
products. It is torch's derivative either way: nothing here is a rule of symcheck's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from symcheck.engines.base import HVP, EngineUnavailable, hessian_key

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise EngineUnavailable(
            f"torch engine: unsupported dtype {name!r} (choose one of {', '.join(DTYPES)})"
        ) from None


def tf32_flags() -> list[str]:
    """The switches that let float32 GPU math run in TF32, those that are on."""
    flags = []
    if torch.backends.cuda.matmul.allow_tf32:
        flags.append("torch.backends.cuda.matmul.allow_tf32")
    if torch.backends.cudnn.allow_tf32:
        flags.append("torch.backends.cudnn.allow_tf32")
    return flags


def tf32_note(device: torch.device, dtype: torch.dtype) -> str | None:
    """A warning when float32 matmuls on a CUDA device run in TF32 (10-bit mantissas): its error is
    5-20 times float32's, so a float32 tolerance may not hold for matmul-heavy code."""
    if device.type != "cuda" or dtype != torch.float32:
        return None
    flags = tf32_flags()
    if not flags:
        return None
    return (
        f"TF32 is enabled ({' and '.join(flags)} is True): float32 matmuls and convolutions on the GPU "
        "round to 10-bit mantissas, 5-20x looser than float32; set it False, or loosen the tolerance"
    )


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise EngineUnavailable(f"torch engine: unsupported device {name!r} (use cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise EngineUnavailable(
            f"CUDA is not available (torch.cuda.is_available() is False), so device {name!r} cannot be used; "
            "use --device cpu"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise EngineUnavailable(
            f"torch engine: device {name!r} does not exist ({count} CUDA device(s) found)"
        )
    return torch.device(name)


def hessian_blocks(
    grads: Mapping[str, torch.Tensor | None], leaves: Mapping[str, torch.Tensor]
) -> dict[str, np.ndarray]:
    """Every block d² out / (da db) by double backward: element i of grad a, differentiated
    again, is row i of each block (a, ·)."""
    names = list(grads)
    targets = [leaves[n] for n in names]
    blocks: dict[str, np.ndarray] = {}
    for a, g in grads.items():
        size = leaves[a].numel()
        rows: list[list[np.ndarray]] = [[] for _ in names]
        for i in range(size):
            found: Any = (None,) * len(names)
            if g is not None and g.requires_grad:  # else the gradient is constant
                found = torch.autograd.grad(g.reshape(-1)[i], targets, retain_graph=True, allow_unused=True)
            for row, t, d in zip(rows, targets, found, strict=True):
                row.append(zeros_like(t) if d is None else to_numpy(d))
        for b, t, row in zip(names, targets, rows, strict=True):
            shape = tuple(leaves[a].shape) + tuple(t.shape)
            blocks[hessian_key(a, b)] = np.stack(row).reshape(shape) if row else np.zeros(shape)
    return blocks


def hessian_vector_products(
    grads: Mapping[str, torch.Tensor | None],
    leaves: Mapping[str, torch.Tensor],
    directions: Sequence[Mapping[str, np.ndarray]],
) -> list[HVP]:
    """H v as the gradient of Σ_a sum(grad_a * v_a), one double backward per direction."""
    names = list(grads)
    targets = [leaves[n] for n in names]
    products: list[HVP] = []
    for v in directions:
        terms = [
            (g * torch.as_tensor(np.asarray(v[n], dtype=np.float64)).to(g)).sum()
            for n, g in grads.items()
            if g is not None and g.requires_grad
        ]
        found: Any = (None,) * len(names)
        if terms:
            found = torch.autograd.grad(sum(terms), targets, retain_graph=True, allow_unused=True)
        product = {
            n: zeros_like(t) if d is None else to_numpy(d)
            for n, t, d in zip(names, targets, found, strict=True)
        }
        products.append(HVP(direction=v, product=product))
    return products


def zeros_like(t: torch.Tensor) -> np.ndarray:
    return np.zeros(tuple(t.shape), dtype=np.float64)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    # force: a ZeroTensor (what a second derivative that is identically zero may come back as)
    return t.detach().to(device="cpu", dtype=torch.float64).numpy(force=True)
