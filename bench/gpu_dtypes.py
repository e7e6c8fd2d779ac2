"""On a CUDA machine: each dtype's worst error against the float64 reference, with and without TF32.

    python bench/gpu_dtypes.py            # prints a table; exits 0 with a message where there is no GPU

For a matmul-heavy function (softmax(W @ x) with W 256x256) and an elementwise one (x*sigmoid(x)),
the function runs through `symcheck.assert_gradients` on the GPU in float32, float16 and bfloat16,
and its VJPs are compared with the exact symbolic reference. The table shows the worst absolute and
relative error of the function's column, and whether it passed the dtype's tolerance; float32 runs
twice, with TF32 matmuls off and on, since TF32 is 5-20x looser than float32.
"""

from __future__ import annotations

import sys

import torch

import symcheck
from symcheck.api import GradientCheckFailed
from symcheck.report.summary import summarize_engines

CASES = {
    "x*sigmoid(x)": lambda n, dev, dt: {"x": torch.randn(n, device=dev, dtype=dt)},
    "softmax(W @ x)": lambda n, dev, dt: {
        "W": torch.randn(n, n, device=dev, dtype=dt) / n**0.5,
        "x": torch.randn(n, device=dev, dtype=dt),
    },
}


def functions() -> dict[str, object]:
    return {
        "x*sigmoid(x)": lambda x: x * torch.sigmoid(x),
        "softmax(W @ x)": lambda W, x: torch.softmax(W @ x, -1),
    }


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure (run this on a machine with a GPU)")
        return 0
    torch.manual_seed(0)
    print(f"{'function':16} {'dtype':9} {'tf32':5} {'status':7} {'max abs err':>12} {'max rel err':>12}")
    for expr, fn in functions().items():
        for dtype, tf32 in (
            (torch.float32, False),
            (torch.float32, True),
            (torch.float16, False),
            (torch.bfloat16, False),
        ):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            values = CASES[expr](256, "cuda", dtype)
            try:
                result = symcheck.assert_gradients(fn, expr, **values, engines=["symbolic"])
                status = "pass"
            except GradientCheckFailed as e:
                status, result = "FAIL", e.result
            summary = next(s for s in summarize_engines(result) if s.engine == "fn")
            name = str(dtype).removeprefix("torch.")
            print(f"{expr:16} {name:9} {tf32!s:5} {status:7} {summary.max_abs:12.3g} {summary.max_rel:12.3g}")
    torch.backends.cuda.matmul.allow_tf32 = False
    return 0


if __name__ == "__main__":
    sys.exit(main())
