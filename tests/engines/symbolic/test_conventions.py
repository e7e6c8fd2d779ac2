"""The reference follows the documented conventions at kinks: k tied maxima share the gradient 1/k,
clamp has slope 1 at its bounds, and reduction ties are kinks (finite differences there are a
convention note, not a failure)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from symcheck.checks.runner import run_cases
from symcheck.engines import EngineOptions
from symcheck.engines.symbolic import SymbolicEngine
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse
from symcheck.suites.programs import load_case


def symbolic_grad(text: str, x: list[float]) -> np.ndarray:
    program = bind(parse(text), {"x": TensorType((len(x),))})
    result = SymbolicEngine().run(program, {"x": np.array(x)}, ["x"], EngineOptions())
    assert "expansion" in " ".join(result.notes)  # the exact expansion is the reference here
    return result.grads["x"]


@pytest.mark.parametrize(("text", "x", "expected"), [
    ("max(x)", [1.0, 1.0, 1.0], [1 / 3, 1 / 3, 1 / 3]),
    ("max(x)", [2.0, 2.0, 1.0, 2.0], [1 / 3, 1 / 3, 0.0, 1 / 3]),
    ("min(x*x)", [0.5, -0.5, 2.0], [0.5, -0.5, 0.0]),
    ("sum(clamp(x, min=0))", [0.0, -1.0, 2.0], [1.0, 0.0, 1.0]),
    ("sum(clamp(x, min=-1, max=1))", [-1.0, 1.0, 0.5, 3.0], [1.0, 1.0, 1.0, 0.0]),
])  # fmt: skip
def test_the_expansion_follows_the_conventions(text: str, x: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(symbolic_grad(text, x), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("text", ["max(x)", "min(x*x)"])
def test_a_reduction_tie_is_a_kink_not_a_failure(text: str) -> None:
    (result,), errors = run_cases([replace(load_case(text, ["x=[0.5,-0.5,0.5]"]), samples=1)])
    assert not errors and result.status == "pass"
    given = result.points[0]
    assert any("is not differentiable where its extreme is tied" in k for k in given.kink_hits)
    numeric = next(c for c in given.comparisons if c.engine == "numeric")
    if not numeric.ok:  # finite differences straddle the tie: a convention, reported as one
        assert any(c.startswith("numeric: differs at a non-differentiable point") for c in given.conventions)


def test_a_runaway_symbolic_step_gives_up_and_the_case_is_still_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A derivation that would run for minutes (sum(x^x) at rational points did, in SymPy, until its
    values went through SymEngine; here one that never ends): with a time budget the symbolic
    column says it gave up, and the other engines still check the case (it never hangs)."""
    from symcheck.engines.symbolic import ClosedForm

    def forever(cls: type, program: object, wrt: object) -> None:
        while True:
            sum(range(1000))

    monkeypatch.setattr(ClosedForm, "derive", classmethod(forever))
    (result,), errors = run_cases([replace(load_case("sum(x^x)", ["x:2x3"]), timeout=1.0)])
    assert not errors and result.status == "pass"
    first = result.points[0]
    assert "symbolic" in first.skipped and "gave up after 1 s" in first.skipped["symbolic"]
    assert first.reference == "torch"


def test_extremes_of_numbers_sympy_cannot_prove_real_still_evaluate() -> None:
    # tan(tanh(1)).is_real is None in SymPy (is tanh(1) off tan's poles?): Max stayed unevaluated
    # and a Piecewise on it never resolved (fuzz: exit 3 "not a number after substitution").
    import sympy

    from symcheck.engines.symbolic.functions import max_of, maximum, min_of

    a = sympy.tan(sympy.tanh(1))
    assert min_of(a, a) == a
    assert min_of(a, sympy.Integer(2)) == a and max_of(a, sympy.Integer(2)) == 2
    assert maximum(a, sympy.Rational(1, 3)) == a
    assert sympy.Piecewise((-1, min_of(a, a) < -1), (min_of(a, a), True)) == a


def test_a_point_where_an_engine_gave_up_and_nothing_else_compares_is_skipped_not_failed() -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    r = CliRunner().invoke(
        main, ["grad", "sum(x*x)", "-i", "x:2", "--engines", "symbolic,numeric", "--timeout", "0.000001"]
    )
    assert r.exit_code == 0, r.output
    assert "SKIP" in r.output and "nothing to compare (derivatives from numeric only)" in r.output


@pytest.mark.parametrize(
    ("expr", "spec", "seed"),
    [
        # simplify rewrote one side of the tie test (1 - 1/(w^2+1) as w^2/(w^2+1)): a ulp apart
        ("min(1 - 1/(w*w + 1))", "w:4", "848863"),
        # a clamped, constant argument: the tie count folded to a case with a 1/0 branch (zoo)
        ("min(clamp(transpose(sqrt(q*q + 1), axes=(1, 0)), max=0.25))", "q:2x1", "848863"),
        # a case inside the argument: as a Piecewise condition, SymPy folded the tie test into
        # branches computing x/(5/4) as 4/5*x, a ulp apart (a fuzz finding)
        ("out = min(sqrt(q*q + 1)/(((0.5 <= q)*0.5)^2 + 1))", "q:2x1", "20497"),
    ],
)
def test_tie_tests_in_closed_forms_stay_exact(expr: str, spec: str, seed: str) -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    r = CliRunner().invoke(main, ["grad", expr, "-i", spec, "--samples", "2", "--seed", seed])
    assert r.exit_code == 0, r.output


def test_torch_second_derivatives_that_are_zero_tensors_read_as_zeros() -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    expr = "clamp(sum(q, axis=(0, 1)), min=-0.5) + mean(abs(u)) + mean(log_softmax(r, axis=1))"
    args = ["grad", expr, "-i", "u:3", "-i", "r:1x2", "-i", "q=[[-0.5], [-0.5]]", "--order", "2"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "argv",
    [
        # SymPy left Eq(exp(a)*exp(-a), exp(b)*exp(-b)) open in a tie test: decided at 50 digits
        [
            "h0 = tan(tanh(b)); h1 = (1/2) * (-(c)); "
            "out = max(softmax(expand_dims((b) + (h0), axis=1))) + mean(h1)",
            "-i", "b=[2.0, -0.5]", "-i", "c:scalar", "--samples", "1", "--seed", "288005",
        ],
        # ... and 1/(1 + E) + E/(1 + E) > 1 in abs(): the sum is 1
        [
            "h0 = minimum(maximum(c, c), r); h1 = (onehot(k, 2))^2; h2 = take(eye(2), y); "
            "out = abs(sum(softmax(eye(2), axis=0), axis=1, keepdims=True) - 1) "
            "+ mean(h0) + mean(h1) + mean(h2)",
            "-i", "c=1.5", "-i", "r:1x2", "-i", "y:2:int=[0, 0]", "-i", "k:scalar:int", "--samples", "0",
        ],
        # SymPy's Piecewise solving a condition as a set raised ValueError: symbolic skips, no crash
        [
            "h0 = tanh(sign(w)*(w)); out = min(((step(maximum(w, h0))*(maximum(w, h0))) <= "
            "((c) - (sign(c)*(c))))*(step(maximum(w, h0))*(maximum(w, h0))))",
            "-i", "c=1.5", "-i", "w=[2.0, 2.0, 1.5, 0.25]",
            "--samples", "2", "--seed", "355132", "--timeout", "2",
        ],
        # simplify rewrote cos(r)^2 inside a tie test as (cos(2*r) + 1)/2: a ulp apart
        [
            "h0 = where(relu(q) >= -1, relu(q), 0.5*(relu(q)))\nh0 = clamp(maximum(c, q), min=-0.5)\n"
            "out = min((cos(clamp(r, min=0)))^2) + mean(h0)",
            "-i", "c=0", "-i", "r=[[0.0, 0.0]]", "-i", "q:2x1", "--samples", "1", "--seed", "90410",
        ],
        # ties nested in ties: min(min(r, c), r) is min(r, c) (1/2), the chain rule gives 1/2 * 1/2
        [
            "h0 = clamp(where(onehot(k, 2) >= 0, onehot(k, 2), 0.5*(onehot(k, 2))), max=0)\n"
            "h1 = minimum(minimum(r, c), (r)[0])\nout = (a)[1] + mean(h0) + mean(h1)",
            "-i", "a:2x2", "-i", "c=0", "-i", "r=[[-1.5, 0.0]]", "-i", "k:int=1",
            "--samples", "2", "--seed", "63809",
        ],
    ],
)  # fmt: skip
def test_fuzz_findings_of_the_last_run_pass(argv: list[str]) -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    r = CliRunner().invoke(main, ["grad", *argv])
    assert r.exit_code == 0, r.output
