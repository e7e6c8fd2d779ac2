"""The numeric engine, the engine-free witness: a plain numpy forward evaluator (`evaluator.py`,
op by op from `rules.py`) and central finite differences of it (`engine.py`).

It knows how to *evaluate* every op and nothing about derivatives, so it cannot share a mistake
with the engines that differentiate symbolically or by hand. `forward(program, inputs)` is also
what a plug-in engine that only needs values can build on.
"""

from symcheck.engines.numeric.evaluator import forward

__all__ = ["forward"]
