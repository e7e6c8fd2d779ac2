"""Time budgets that nest, and the readable form's bounded search (symcheck/engines/symbolic/budget.py)."""

from __future__ import annotations

import contextlib
import time

import pytest
import sympy

from symcheck.checks.runner import run_cases
from symcheck.engines.symbolic.budget import GaveUp, spent, time_limit
from symcheck.engines.symbolic.closed_form import EXPANDED_TERMS_LIMIT, expanded_terms
from symcheck.suites.programs import load_case


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_an_inner_limit_gives_up_and_the_outer_one_goes_on() -> None:
    with time_limit(5):
        with pytest.raises(GaveUp), time_limit(0.05):
            _spin(1)
        assert not spent()
        _spin(0.1)  # the outer limit is re-armed, not gone: still inside it


def test_the_outer_limit_ending_inside_an_inner_one_reaches_the_outer_caller() -> None:
    with pytest.raises(GaveUp), time_limit(0.05):
        try:
            with time_limit(5):  # ends later than the outer one: the outer one stands
                _spin(1)
        except GaveUp:
            assert spent()
            raise


def test_no_limit_is_left_armed() -> None:
    with time_limit(0.05):
        pass
    _spin(0.1)  # no stray alarm


def test_expanded_terms_measures_the_swell() -> None:
    a, b, c = sympy.symbols("a b c")
    assert expanded_terms(a + b, 100) == 2
    assert expanded_terms((a + b + c) ** 3 * (a + b), 100) == 54
    assert expanded_terms((a + b) ** 40, EXPANDED_TERMS_LIMIT) > EXPANDED_TERMS_LIMIT


MICROGRAD = """
c = a + b
d = a*b + b^3
c = c + c + 1
c = c + 1 + c + (-a)
d = d + d*2 + relu(b + a)
d = d + 3*d + relu(b - a)
e = c - d
f = e^2
g = f/2.0
g = g + 10.0/f
"""


def test_a_deep_scalar_program_gets_its_exact_gradient() -> None:
    """micrograd's test_more_ops: simplify on its 1/(...)^3 ran for minutes (the symbolic engine gave
    up after 60 s); the readable form's search is bounded, and the values are micrograd's."""
    (result,), errors = run_cases([load_case(MICROGRAD, ["a=-4", "b=2"])])
    assert not errors and result.status == "pass"
    symbolic = result.points[0].results["symbolic"]
    assert symbolic.grads["a"] == pytest.approx(138.83381924198252)
    assert symbolic.grads["b"] == pytest.approx(645.5772594752186)


def test_a_gave_up_wrapped_by_a_library_is_still_a_gave_up() -> None:
    from lark.exceptions import VisitError

    from symcheck.engines.symbolic.budget import gave_up_in

    # Lark wraps what its transformer raises (the alarm landing while a claim is parsed): was exit 3
    try:
        try:
            raise GaveUp()
        except GaveUp as inner:
            raise VisitError("bare", None, inner) from None
    except VisitError as e:
        assert gave_up_in(e)
    try:
        try:
            raise GaveUp()
        except GaveUp as inner:
            raise SystemError("returned a result with an exception set") from inner
    except SystemError as e:
        assert gave_up_in(e)
    assert not gave_up_in(ValueError("ours"))


def test_a_gave_up_swallowed_where_it_landed_is_raised_again() -> None:
    """The alarm landed in hypothesis's gc callback, which swallowed the GaveUp: explain with
    --timeout 0.01 ran to the end (CI, 1 run in 4). It fires again until the block ends."""
    started = time.monotonic()
    with pytest.raises(GaveUp), time_limit(0.02):
        with contextlib.suppress(GaveUp):  # what a gc callback, a __del__ or a bare except does
            _spin(1)
        _spin(1)
    assert time.monotonic() - started < 0.5


def test_a_late_alarm_after_the_block_raises_nothing() -> None:
    import signal

    with time_limit(5):
        with time_limit(0.01):
            pass
        signal.raise_signal(signal.SIGALRM)  # an inner limit's alarm delivered after its block ended
        _spin(0.02)
    assert not spent()
