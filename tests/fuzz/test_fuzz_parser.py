"""Fuzz the parser and the binder through `symcheck grad`: random text, mutated valid expressions,
hostile identifiers, resource bombs and non-finite values given with -i. Whatever comes in, the
answer is exit 0, 1 or 2, an exit 2 has a message and no traceback, a name outside the language
is refused, a well-typed program with unusual names passes, and what is beyond a limit is refused.

The generators are shared with bench/fuzz.py, which runs them at scale (tests/fuzz/generators.py).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from fuzz.generators import CLASSES, FuzzInput, fuzz_examples, generate, judge, strategy


def test_random_text_never_crashes() -> None:
    fuzz_examples(strategy("text"), 150)


def test_mutated_expressions_never_crash() -> None:
    fuzz_examples(strategy("mutation"), 60)


def test_hostile_names_are_refused_or_checked() -> None:
    fuzz_examples(strategy("names"), 25)


def test_resource_bombs_are_refused() -> None:
    """Beyond a limit of the README's table: exit 2 (the tests assert no wall-clock time; bench/fuzz.py
    holds each input to --timeout)."""
    fuzz_examples(strategy("bombs").filter(lambda inp: inp.expect == "refuse"), 30)


def test_non_finite_values_never_pass_or_crash() -> None:
    fuzz_examples(strategy("values"), 50)


# ---------------------------------------------------------------- the harness itself


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_an_input_is_the_same_for_the_same_seed(cls: str) -> None:
    assert generate(cls, 7) == generate(cls, 7)
    assert CLASSES[cls](random.Random(3)) == CLASSES[cls](random.Random(3))


def _judge(inp: FuzzInput, code: int, stdout: str = "", stderr: str = "") -> str:
    return judge(inp, code, stdout, stderr, None, Path("/nonexistent"), inp.argv).verdict


def test_the_judge_calls_an_internal_error_a_crash() -> None:
    inp = FuzzInput("text", ["grad", "x"])
    trace = 'Traceback (most recent call last):\n  File "/a/symcheck/cli.py", line 3, in f\nValueError: no\n'
    assert _judge(inp, 3, stderr="internal error\n" + trace) == "crash"
    assert _judge(inp, 2, stderr="error: x\n" + trace) == "disagreement"  # exit 2 with a traceback
    assert _judge(inp, 2) == "disagreement"  # exit 2 without a message
    assert _judge(inp, 2, stderr="<command line>:1:1: error: unknown name 'x'") == "ok"
    try:
        raise KeyError("escaped")
    except KeyError:
        escaped = judge(inp, 1, "", "", sys.exc_info(), Path("/nonexistent"), inp.argv)
    assert escaped.verdict == "crash" and escaped.exc_type == "KeyError"


def test_the_judge_holds_each_input_to_its_expectation() -> None:
    assert _judge(
        FuzzInput("program", ["grad", "x"], expect="pass"), 1, "MISMATCH  torch vs symbolic, dout/dx, at"
    ) == ("disagreement")
    assert _judge(FuzzInput("bombs", ["grad", "x"], expect="refuse"), 0) == "disagreement"
    value = '{"cases": [{"value": NaN}]}'
    assert (
        _judge(FuzzInput("values", ["grad", "x", "--format", "json"], expect="finite"), 0, value)
        == "disagreement"
    )
    assert _judge(FuzzInput("yaml", ["verify", "s", "--format", "json"]), 0, "{not json") == "disagreement"
    assert _judge(FuzzInput("yaml", ["verify", "s", "--format", "junit"]), 1, "<a><b></a>") == "disagreement"
    assert _judge(FuzzInput("yaml", ["verify", "s", "--format", "github"]), 1, "::bogus\n") == "disagreement"


def test_the_fuzz_vocabulary_is_the_catalogue() -> None:
    """An op added to the language is fuzzed too: the generators' vocabulary follows the catalogue."""
    from fuzz.generators import FUNCTIONS
    from symcheck.language.catalogue import FUNCTIONS as CATALOGUE

    assert set(FUNCTIONS) == set(CATALOGUE), "add the new ops to tests/fuzz/generators.py: FUNCTIONS"
