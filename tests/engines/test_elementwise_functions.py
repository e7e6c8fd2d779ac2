"""The elementwise functions of real models (sinh, cosh, atan, asin, acos, expm1, erf, silu,
logsigmoid): every engine agrees at random points, the textbook derivative is proven equal to the
closed form, and a wrong rule in one engine is caught."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from symcheck.checks.runner import run_cases
from symcheck.cli import main
from symcheck.engines.autograd import rules as autograd_rules
from symcheck.engines.autograd.tensor import VJPS
from symcheck.suites.programs import load_case

# op -> (an expression using it, the textbook derivative of sum(op(x)) in the language)
TEXTBOOK = {
    "sinh": ("sum(sinh(x))", "cosh(x)"),
    "cosh": ("sum(cosh(x))", "sinh(x)"),
    "atan": ("sum(atan(x))", "1/(1 + x^2)"),
    "asin": ("sum(asin(x))", "1/sqrt(1 - x^2)"),
    "acos": ("sum(acos(x))", "-1/sqrt(1 - x^2)"),
    "expm1": ("sum(expm1(x))", "exp(x)"),
    # pi is not a constant of the language yet: 4*atan(1) is pi, exactly
    "erf": ("sum(erf(x))", "2/sqrt(4*atan(1))*exp(-x^2)"),
    "silu": ("sum(silu(x))", "sigmoid(x)*(1 + x*(1 - sigmoid(x)))"),
    "logsigmoid": ("sum(logsigmoid(x))", "sigmoid(-x)"),
}


@pytest.mark.parametrize("op", sorted(TEXTBOOK))
def test_the_textbook_derivative_is_proven(op: str) -> None:
    expr, derivative = TEXTBOOK[op]
    r = CliRunner().invoke(main, ["grad", expr, "-i", "x:3", "--claim", f"x: {derivative}"])
    assert r.exit_code == 0, r.output
    assert "proven (equal to the closed form)" in r.output


@pytest.mark.parametrize(
    "expr",
    [
        "sum(sinh(x) * cosh(W @ x) + atan(W @ x))",
        "mean(asin(x) + acos(x) * x)",  # x drawn inside (-1, 1): the domain's sample range
        "sum(expm1(x) * erf(W @ x))",
        "sum(silu(W @ x) + logsigmoid(x))",
        "sum(erf(x)^2 + asin(tanh(x)/2))",
    ],
)
def test_every_engine_agrees(expr: str) -> None:
    case = load_case(expr, [n for n in ("W:3x3", "x:3") if n[0] in expr])
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result


def test_asin_outside_its_domain_is_refused_at_a_given_point() -> None:
    r = CliRunner().invoke(main, ["grad", "sum(asin(x))", "-i", "x=[0.5, 1.5]"])
    assert r.exit_code != 0 or "asin needs -1 < x < 1" in r.output, r.output
    assert "asin needs -1 < x < 1" in r.output


def test_a_wrong_silu_rule_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # the classic slip: silu' written as sigmoid(x) alone, the product rule's second term lost
    monkeypatch.setitem(VJPS, "silu", (lambda g, ans, x: g * autograd_rules.sigmoid(x),))
    (result,), errors = run_cases([load_case("sum(silu(x))", ["x=[0.5, -1.0, 2.0]"])])
    assert not errors and result.status == "fail"
    (autograd,) = [c for c in result.points[0].comparisons if c.engine == "autograd"]
    worst = autograd.worst()
    assert worst is not None and not worst.ok and worst.what == "dout/dx"


def test_erf_on_arrays_is_the_c_librarys() -> None:
    import math

    from symcheck.engines.numeric.rules import FORWARD

    x = np.array([-3.0, -0.5, 0.0, 1e-9, 0.7, 6.0])
    np.testing.assert_array_equal(FORWARD["erf"]([x], {}), [math.erf(v) for v in x])


def test_second_derivatives_whose_form_the_language_cannot_print_are_still_checked() -> None:
    """Before pi was a constant, erf'' could not be printed, and the second-order form crashed the
    symbolic engine ('Unprintable: cannot print pi'); now it prints, and what cannot is said so."""
    import sympy

    from symcheck.engines.symbolic.printer import Unprintable
    from symcheck.engines.symbolic.second_order import _printed

    r = CliRunner().invoke(main, ["grad", "sum(erf(x) * silu(x))", "-i", "x:3", "--order", "2"])
    assert r.exit_code == 0, r.output
    assert "pi" in r.output and "no closed form" not in r.output

    def refuses(expr: sympy.Expr) -> str:
        raise Unprintable("cannot print besselj")

    assert _printed(refuses, sympy.Symbol("x")) == "(no closed form in the language: cannot print besselj)"


@pytest.mark.parametrize(
    ("expr", "gradient"),
    [("sum(pi*x^2)", "2*pi*x"), ("sum(e^x)", "e^x*log(e)"), ("sum(erf(x))", "2*exp(-x^2)/sqrt(pi)")],
)
def test_pi_and_e_are_constants_that_print_as_written(expr: str, gradient: str) -> None:
    r = CliRunner().invoke(main, ["grad", expr, "-i", "x:3", "--claim", f"x: {gradient}"])
    assert r.exit_code == 0, r.output
    assert "proven (equal to the closed form)" in r.output
    assert "no closed form in the language" not in r.output


def test_an_input_named_e_shadows_the_constant_and_says_so() -> None:
    r = CliRunner().invoke(main, ["grad", "sum(e*x)", "-i", "x:3", "-i", "e=2"])
    assert r.exit_code == 0, r.output
    assert "dout/dx = e" in r.output and "dout/de = sum(x)" in r.output
    assert "'e' is an input here, not the constant e: the input shadows it" in r.output
    (result,), _ = run_cases([load_case("sum(e*x)", ["x=[1, 2]", "e=2"])])
    assert result.points[0].results["symbolic"].value == pytest.approx(6.0)


@pytest.mark.parametrize("form", ["none", "tanh"])
def test_gelu_in_both_forms_agrees_across_engines_to_second_order(form: str) -> None:
    r = CliRunner().invoke(
        main,
        ["grad", f"sum(gelu(W @ x, approximate={form}) * x)", "-i", "W:3x3", "-i", "x:3", "--order", "2"],
    )
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output


def test_gelus_textbook_derivative_is_proven() -> None:
    claim = "x: (1 + erf(x/sqrt(2)))/2 + x*exp(-x^2/2)/sqrt(2*pi)"  # Phi(x) + x phi(x)
    r = CliRunner().invoke(main, ["grad", "sum(gelu(x))", "-i", "x:3", "--claim", claim])
    assert r.exit_code == 0, r.output
    assert "proven (equal to the closed form)" in r.output


def test_a_gelu_that_ignores_approximate_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    from symcheck.engines.torch import rules as torch_rules

    monkeypatch.setitem(torch_rules.TABLE, "gelu", lambda a, kw: F.gelu(a[0]))  # always the erf form
    (result,), errors = run_cases([load_case("sum(gelu(x, approximate=tanh))", ["x=[0.5, -1.0, 2.0]"])])
    assert not errors and result.status == "fail"
    (torch,) = [c for c in result.points[0].comparisons if c.engine == "torch"]
    assert not torch.ok


@pytest.mark.parametrize(
    ("expr", "at", "expected"),
    [
        ("sum(leaky_relu(x, slope=0.2))", [0.0, -1.0, 1.0], [0.2, 0.2, 1.0]),
        ("sum(elu(x, alpha=0.5))", [0.0, 1.0], [0.5, 1.0]),
        ("sum(hardtanh(x))", [-1.0, 1.0, 0.5, 3.0], [0.0, 0.0, 1.0, 0.0]),  # 0 at the bounds, as torch
        ("sum(clamp(x, min=-1, max=1))", [-1.0, 1.0, 0.5, 3.0], [1.0, 1.0, 1.0, 0.0]),  # clamp's: 1 there
    ],
)
def test_at_a_kink_every_derivative_engine_has_torchs_convention(
    expr: str, at: list[float], expected: list[float]
) -> None:
    case = load_case(expr, [f"x={at}"])
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result
    point = result.points[0]
    for engine in ("symbolic", "autograd", "torch"):
        np.testing.assert_allclose(point.results[engine].grads["x"], expected, err_msg=engine)


@pytest.mark.parametrize(
    "expr",
    [
        "sum(leaky_relu(W @ x) * x)",
        "mean(elu(W @ x, alpha=0.7)^2)",
        "sum(hardtanh(W @ x, min=-0.5, max=0.5) * x)",
    ],
)
def test_the_kinked_activations_agree_at_random_points_to_second_order(expr: str) -> None:
    r = CliRunner().invoke(main, ["grad", expr, "-i", "W:3x3", "-i", "x:3", "--order", "2"])
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output


def test_hardtanh_with_min_above_max_is_refused_where_it_is_written() -> None:
    r = CliRunner().invoke(main, ["grad", "sum(hardtanh(x, min=1, max=-1))", "-i", "x:3"])
    assert r.exit_code == 2, r.output
    assert "min=1 is above max=-1" in r.output and "^^^" in r.output


def test_erf_of_a_scalar_step_in_a_tensor_program() -> None:
    """Fuzz finding (seed 21): the closed form's erf on a 0-d value got a float from
    np.frompyfunc and crashed on .astype."""
    r = CliRunner().invoke(
        main,
        ["grad", "h = gelu(dot(w, w))\nout = softmax(a, axis=1) + mean(h)", "-i", "a:2x2", "-i", "w:4"],
    )
    assert r.exit_code == 0, r.output


def test_floor_ceil_and_round_are_torchs_with_zero_derivatives() -> None:
    """round halves to the even neighbour (torch.round, numpy), exactly in the symbolic engine too."""
    case = load_case("sum(floor(x)*x + ceil(x) + round(x)*x)", ["x=[0.5, 1.5, 2.5, -0.7, -2.5, 3.2]"])
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result
    x = np.array([0.5, 1.5, 2.5, -0.7, -2.5, 3.2])
    value = np.sum(np.floor(x) * x + np.ceil(x) + np.round(x) * x)
    for engine in ("symbolic", "autograd", "torch"):
        r = result.points[0].results[engine]
        assert float(r.value) == pytest.approx(value), engine
        np.testing.assert_allclose(r.grads["x"], np.floor(x) + np.round(x), err_msg=engine)


def test_a_jump_of_round_at_a_given_point_is_reported_as_a_kink() -> None:
    r = CliRunner().invoke(main, ["grad", "sum(round(x) * x)", "-i", "x=[0.5, 1.2]", "--samples", "0"])
    assert r.exit_code == 0, r.output
    assert "round jumps halfway between integers: 1 of 2 elements" in r.output


def test_a_straight_through_estimator_has_gradient_one_in_every_engine() -> None:
    """x + detach(round(x) - x): round's value, the identity's gradient. The numeric engine holds
    each detach(u) at the point's own value while it differences the rest."""
    case = load_case("sum(x + detach(round(x) - x))", ["x=[0.3, 1.7, -2.2]"])
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result
    for engine in ("symbolic", "autograd", "torch", "numeric"):
        r = result.points[0].results[engine]
        assert float(r.value) == pytest.approx(0.0 + 2.0 - 2.0), engine
        np.testing.assert_allclose(r.grads["x"], [1.0, 1.0, 1.0], err_msg=engine)


@pytest.mark.parametrize(
    "expr", ["sum(x * detach(x))", "mean(detach(W @ x) * (W @ x))", "softmax(detach(W @ x) + x)"]
)
def test_detach_agrees_across_engines_to_second_order(expr: str) -> None:
    args = ["grad", expr, "-i", "x:3"] + (["-i", "W:3x3"] if "W" in expr else [])
    order = [] if expr.startswith("softmax") else ["--order", "2"]
    r = CliRunner().invoke(main, args + order)
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output


def test_a_detach_that_lets_the_gradient_through_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from symcheck.engines.torch import rules as torch_rules

    monkeypatch.setitem(torch_rules.TABLE, "detach", lambda a, kw: a[0] * 1)  # forgot .detach()
    (result,), errors = run_cases([load_case("sum(x * detach(x))", ["x=[0.5, -1.0, 2.0]"])])
    assert not errors and result.status == "fail"
    (torch,) = [c for c in result.points[0].comparisons if c.engine == "torch"]
    assert not torch.ok


def test_atan2_agrees_and_its_textbook_derivatives_are_proven() -> None:
    args = ["grad", "sum(atan2(y, x))", "-i", "x:3", "-i", "y:3", "--order", "2"]
    args += ["--claim", "x: -y/(x^2 + y^2)", "--claim", "y: x/(x^2 + y^2)"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert r.output.count("proven (equal to the closed form)") == 2 and "1 passed" in r.output


def test_atan2_on_its_branch_cut_is_a_kink() -> None:
    r = CliRunner().invoke(
        main, ["grad", "sum(atan2(y, x))", "-i", "x=[-1.0, 2.0]", "-i", "y=[0.0, 1.0]", "--samples", "0"]
    )
    assert r.exit_code == 0, r.output
    assert "atan2 jumps by 2 pi across y = 0 where x < 0: 1 of 2 elements" in r.output


@pytest.mark.parametrize(
    ("expr", "claim"),
    [
        ("var(x)", "x: 2*(x - mean(x))/11"),  # x of 3x4: N - 1 = 11
        ("std(x)", "x: (x - mean(x))/(11*std(x))"),
        ("var(x, correction=0)", "x: 2*(x - mean(x))/12"),
    ],
)
def test_the_textbook_derivatives_of_var_and_std_are_proven(expr: str, claim: str) -> None:
    r = CliRunner().invoke(main, ["grad", expr, "-i", "x:3x4", "--claim", claim])
    assert r.exit_code == 0, r.output
    assert "proven (equal to the closed form)" in r.output


@pytest.mark.parametrize(
    "expr",
    [
        "sum(var(x, axis=1) * x[0])",
        "mean(std(W @ x, axis=0))",
        "sum(var(x, axis=(0, 1), correction=0, keepdims=True) * x)",
        "sum(std(x, axis=1, keepdims=True) * x)",
    ],
)
def test_var_and_std_agree_across_engines_to_second_order(expr: str) -> None:
    shapes = ["-i", "x:4x4"] + (["-i", "W:4x4"] if "W" in expr else [])
    r = CliRunner().invoke(main, ["grad", expr, *shapes, "--order", "2"])
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output


def test_a_variance_over_one_element_with_correction_one_is_refused() -> None:
    r = CliRunner().invoke(main, ["grad", "sum(var(x, axis=0))", "-i", "x:1x4"])
    assert r.exit_code == 2, r.output
    assert "N - correction = 1 - 1 is not positive" in r.output


def test_atan2_of_numbers_sympy_writes_with_complex_logs_is_still_real() -> None:
    """Fuzz finding (seed 25): SymPy evaluated atan2 of these exact numbers as -I*log(...), whose
    evalf kept an imaginary part at the level of its working precision: the reference value was NaN
    where every other engine had 0.659."""
    case = load_case("sum(atan2(log1p(w*w), tan(tanh(w))^2 + 1))", ["w=[-2.0, 0.5]"])
    (result,), errors = run_cases([case])
    assert not errors and result.status == "pass", result
    assert float(result.points[0].results["symbolic"].value) == pytest.approx(0.6590340037)


def test_round_and_atan2_of_numbers_sympy_cannot_call_real_are_evaluated() -> None:
    """Fuzz finding (seed 26): round(atan2(w, w^2 + 1)/(tan(tanh(w))^2 + 1)) stayed unevaluated in the
    exact reference (SymPy leaves tan(tanh(1)) of unknown reality), which was NaN there."""
    expr = "sum(detach(round(atan2(w, w*w + 1)/(tan(tanh(w))^2 + 1)) - w) + w)"
    (result,), errors = run_cases([load_case(expr, ["w=[1.0, 0.0, -2.0]"])])
    assert not errors and result.status == "pass", result
