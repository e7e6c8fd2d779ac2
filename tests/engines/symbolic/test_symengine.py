"""SymEngine differentiates the expansion's terms where it does so as SymPy does; both must agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from symcheck.checks.runner import prepare
from symcheck.engines.symbolic import expansion
from symcheck.engines.symbolic.expansion import expand, symengine_can, term_partials
from symcheck.suites.programs import load_case

PROGRAMS = [
    ("mean(3*(x+2)^2)", ["x:2x2"]),
    ("sum(tanh(W @ x + b))", ["W:2x3", "x:3", "b:2"]),
    ("sum(mask*(R - U @ transpose(V))^2)", ["R:3x2", "U:3x2", "V:2x2", "mask:3x2"]),
    ("cross_entropy(X @ W, y)", ["X:3x2", "W:2x3", "y:3:int=[0,2,1]"]),
    ("sum(relu(x) * sigmoid(x) + softplus(x) + abs(x) + clamp(x, min=0))", ["x:3"]),
    ("max(x*x) + min(sin(x)) + sum(maximum(x, 0.5))", ["x:3"]),
    ("sum(exp(x) / (1 + x*x) + log(1 + x*x) + sqrt(x*x + 1) + x^(3/2))", ["x:3"]),
    ("sum(where(x > 0, cos(x), tan(x)))", ["x:3"]),
]


def _terms(text: str, specs: list[str]) -> tuple[list[sympy.Expr], set[sympy.Symbol]]:
    (prep,), errors = prepare([load_case(text, specs)])
    assert not errors
    program = prep.program
    symbols = {n: expansion.element_symbols(n, d.type.shape, d.type.dtype) for n, d in program.inputs.items()}
    out = expand(program, symbols)[program.output.id][()]
    wanted = {s for n in program.float_inputs() for s in symbols[n].flat}
    _, rest = out.as_coeff_Mul()
    return list(rest.args if rest.is_Add else (rest,)), wanted


@pytest.mark.parametrize(("text", "specs"), PROGRAMS)
def test_symengine_and_sympy_differentiate_alike(text: str, specs: list[str]) -> None:
    terms, wanted = _terms(text, specs)
    for term in terms:
        symbols = term.free_symbols & wanted
        fast = term_partials(term, symbols)
        for s in symbols:
            assert sympy.simplify(fast[s] - sympy.diff(term, s)) == 0, (term, s)


def test_the_fast_path_is_taken_where_it_may_be_and_not_elsewhere() -> None:
    x, y = sympy.symbols("x y", real=True)
    assert symengine_can(sympy.Piecewise((x**2, x > 0), (sympy.exp(-x), True)) * sympy.tanh(y))
    # SymEngine takes Heaviside's derivative as 0 (SymPy: DiracDelta); our functions carry conventions
    from symcheck.engines.symbolic.functions import max_of

    for e in (sympy.Heaviside(x), sympy.Abs(x), sympy.sign(x), max_of(x, y), sympy.Max(x, y)):
        assert not symengine_can(e)


def test_assumptions_survive_the_round_trip() -> None:
    terms, wanted = _terms("sum(x*x)", ["x:2"])
    for term in terms:
        for s, d in term_partials(term, term.free_symbols & wanted).items():
            assert d.free_symbols <= wanted and s in wanted
            assert all(sym.is_real for sym in d.free_symbols)


@pytest.mark.parametrize(("text", "specs"), PROGRAMS)
def test_exact_values_by_symengine_are_sympys(text: str, specs: list[str]) -> None:
    import numpy as np

    from symcheck.engines.symbolic.expansion import evaluate_exact, exact_floats, exact_value, expand_gradient

    (prep,), _ = prepare([load_case(text, specs)])
    program = prep.program
    wrt = program.float_inputs()
    found = expand_gradient(program, wrt)
    rng = np.random.default_rng(7)
    for _ in range(2):
        point = {
            n: (rng.integers(0, 2, d.type.shape) if n == "y" else rng.uniform(-2, 2, d.type.shape))
            for n, d in program.inputs.items()
        }
        if "y" in point:
            point["y"] = np.asarray([0, 2, 1])
        subs = found.substitution(point)
        for g in found.grads.values():
            slow = np.vectorize(lambda e, at=subs: evaluate_exact(e, at)[0], otypes=[float])(g)
            np.testing.assert_array_equal(exact_floats(g, subs), slow)
        # The output: the same exact rational, and the float (evaluate_exact rounds a 30-digit value,
        # SymEngine a 200-bit one: the same to an ulp)
        value, exact = evaluate_exact(found.output, subs)
        fast, fast_exact = exact_value(found.output, subs)
        assert fast_exact == (exact if exact.is_Rational else None)
        np.testing.assert_allclose(fast, value, rtol=4e-16, atol=0, equal_nan=True)


def test_what_symengine_cannot_decide_falls_back_to_sympy() -> None:
    import numpy as np

    from symcheck.engines.symbolic.expansion import exact_floats

    x = sympy.Symbol("x", real=True)
    cases = np.array(
        [
            sympy.Piecewise((x, sympy.exp(x) > 2), (0, True)),  # a transcendental condition
            sympy.sqrt(x - 1),  # complex at x = 1/2: nan, as SymPy says
            1 / (x - sympy.Rational(1, 2)),  # a pole at the point
        ],
        dtype=object,
    )
    values = exact_floats(cases, {x: sympy.Rational(1, 2)})
    assert values[0] == 0 and np.isnan(values[1]) and not np.isfinite(values[2])


def test_a_power_too_large_for_symengine_falls_back_to_sympy() -> None:
    # SymEngine's exact 2^(10^154) raises "powrat: 'exp' does not fit ulong" (fuzz: exit 3)
    import sympy

    from symcheck.engines.symbolic.budget import gave_up_in, time_limit
    from symcheck.engines.symbolic.expansion import NotEvaluable, exact_value

    x, y = sympy.Symbol("x", real=True), sympy.Symbol("y", real=True)
    try:
        with time_limit(1.0):  # SymPy works on it exactly until the case's budget ends, as in a run
            exact_value(x**y, {x: sympy.Rational(3, 2), y: sympy.Integer(10**154)})
    except NotEvaluable:
        pass  # SymPy's own verdict on it; not a crash of ours
    except Exception as e:
        assert gave_up_in(e), e


def test_a_power_with_an_input_in_its_exponent_is_never_evaluated_by_symengine(tmp_path: Path) -> None:
    # SymEngine raises a rational to an integer power exactly: x^y at y = 2^63 - 1 aborted the whole
    # process with SIGFPE (fuzz: "worker died (exit code -8)"). Such powers go to SymPy, in budget.
    import subprocess
    import sys

    import sympy

    from symcheck.engines.symbolic.expansion import _in_symengine

    x, y = sympy.Symbol("x", real=True), sympy.Symbol("y", real=True)
    assert _in_symengine(x**y * sympy.log(x)) is None
    assert _in_symengine(x**3 + y) is not None
    args = ["grad", "sum(x^y)", "-i", "x:2", "-i", "y:int=9223372036854775807", "--samples", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "symcheck", *args, "--timeout", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1, 2), done.stderr[-500:]
