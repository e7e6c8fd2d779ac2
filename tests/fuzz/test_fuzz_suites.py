"""Mutated suite files through `symcheck verify` in every output format: shipped cases with keys,
values and types mutated, anchors, aliases and merge keys, `!!python/...` tags (which must never
run code), billion laughs, deep nesting, hostile data paths and case names with newlines, `::`,
control characters and lone surrogates. The answer is exit 0, 1 or 2 with a located message, and
a JSON or JUnit report parses.

The generators are shared with bench/fuzz.py (tests/fuzz/generators.py: gen_yaml).
"""

from __future__ import annotations

from fuzz.generators import fuzz_examples, strategy


def test_mutated_suites_never_crash() -> None:
    fuzz_examples(strategy("yaml"), 30)
