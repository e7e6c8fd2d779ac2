"""Well-typed random programs (tensors of at most 4 elements; reductions, matmul, indexing, labels,
max/min/clamp/relu/abs with ties and exact kinks at the given values) through all four engines,
alone and under random `grad` options. They are right by construction, so every one must pass
(exit 0): a FAIL is a false alarm, since symcheck declares kinks and ties as conventions.

The generators are shared with bench/fuzz.py (tests/fuzz/generators.py: build_program).
"""

from __future__ import annotations

from fuzz.generators import fuzz_examples, strategy


def test_well_typed_programs_pass_in_every_engine() -> None:
    fuzz_examples(strategy("program"), 30)


def test_grad_options_on_well_typed_programs() -> None:
    """Sound options (samples, seed, order 2 on a scalar output, outputs, wrt, float32, formats,
    engines, budgets) must still pass; others must be refused or fail, never crash."""
    fuzz_examples(strategy("flags"), 25)
