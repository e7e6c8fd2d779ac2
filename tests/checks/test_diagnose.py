"""A learner's hand derivation: proven when right; when wrong, where it parts and the likely mistake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from symcheck.checks.diagnose import Diagnosis, check_claims, diagnose, parse_claim, render_diagnosis
from symcheck.checks.runner import run_cases
from symcheck.cli import main
from symcheck.engines.symbolic.engine import ClosedForm
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse
from symcheck.report.json import render_json
from symcheck.report.text import render_text
from symcheck.suites.loader import load_suite

SEED = "mean(3*(x+2)^2)"
SEED_STEPS = "y = x + 2\nz = 3*y^2\nout = mean(z)"
LOGISTIC = "nll_loss(log_softmax(W @ x + b), y)"
ONES = {"x": np.ones((2, 2))}


def closed_form(expr: str, types: dict[str, TensorType], wrt: list[str]) -> ClosedForm:
    return ClosedForm.derive(bind(parse(expr), types), wrt)


@pytest.fixture(scope="module")
def seed() -> ClosedForm:
    return closed_form(SEED, {"x": TensorType((2, 2))}, ["x"])


@pytest.fixture(scope="module")
def logistic() -> ClosedForm:
    types = {
        "W": TensorType((2, 3)),
        "x": TensorType((3,)),
        "b": TensorType((2,)),
        "y": TensorType((), DType.INT),
    }
    return closed_form(LOGISTIC, types, ["W", "b"])


@pytest.fixture(scope="module")
def matmul() -> ClosedForm:
    return closed_form("sum((A @ B)^2)", {"A": TensorType((2, 3)), "B": TensorType((3, 4))}, ["A", "B"])


def wrong(d: Diagnosis, mistake: str) -> str:
    assert not d.correct and not d.holds
    assert d.mistake == mistake, d.likely_mistake
    assert d.likely_mistake is not None
    return d.likely_mistake


# ---------------------------------------------------------------- right claims


def test_a_right_claim_is_proven(seed: ClosedForm) -> None:
    d = diagnose(seed, "x", "1/4*2*3*(x+2)", point=ONES)
    assert d.correct and d.holds
    assert d.mistake is None and d.point is None
    assert d.true_form == "3/2*(x + 2)"
    assert render_diagnosis(d) == "claim dout/dx = 1/4*2*3*(x+2): right (proven equal to the closed form)"


def test_right_claims_of_the_logistic_regression_are_proven(logistic: ClosedForm) -> None:
    assert diagnose(logistic, "W", "outer(softmax(W @ x + b) - onehot(y, 2), x)").correct
    assert diagnose(logistic, "b", "softmax(W @ x + b) - onehot(y, 2)").correct


def test_a_claim_over_the_named_steps_is_proven() -> None:
    closed = closed_form(SEED_STEPS, {"x": TensorType((2, 2))}, ["x"])
    assert diagnose(closed, "x", "3/2*y").correct


# ---------------------------------------------------------------- the common mistakes


def test_missing_one_over_n_of_mean(seed: ClosedForm) -> None:
    d = diagnose(seed, "x", "6*(x+2)", point=ONES, point_label="the given values")
    text = wrong(d, "mean_count")
    assert text.startswith("the 1/N of mean is missing: mean(3*(x+2)^2) averages N = 4 elements")
    assert "4 times" in text
    assert d.difference == "9/2*(x + 2)"
    assert d.true_form == "3/2*(x + 2)"
    np.testing.assert_array_equal(d.point["x"], np.ones((2, 2)))
    assert (d.claimed_value, d.true_value, d.index) == (18.0, 4.5, (0, 0))
    assert d.where() == "at x = [[1, 1], [1, 1]] (the given values): claimed 18, true 4.5 at index (0, 0)"


def test_an_extra_one_over_n(seed: ClosedForm) -> None:
    assert wrong(diagnose(seed, "x", "3/8*(x+2)"), "extra_mean_count").startswith("an extra 1/N")


def test_missing_one_over_n_named_by_its_step() -> None:
    closed = closed_form(SEED_STEPS, {"x": TensorType((2, 2))}, ["x"])
    assert "mean(z) averages N = 4" in wrong(diagnose(closed, "x", "6*y"), "mean_count")


def test_missing_chain_factor(seed: ClosedForm) -> None:
    # 1/4 * 3 * 2 without the (x + 2) of d(u^2)/du = 2*u
    text = wrong(diagnose(seed, "x", "1/4*3*2", point=ONES), "chain_factor_part")
    assert text == (
        "the chain rule's factor d((x + 2)^2)/d(x + 2) = 2*(x + 2) is incomplete: "
        "the claim lacks its factor x + 2"
    )


def test_missing_chain_factor_named_by_the_steps() -> None:
    closed = closed_form(SEED_STEPS, {"x": TensorType((2, 2))}, ["x"])
    text = wrong(diagnose(closed, "x", "3/4*y"), "chain_constant")
    assert text.startswith(
        "the factor 2 of the chain rule's factor d(y^2)/dy = 2*y (where y = x + 2) is missing"
    )


def test_missing_inner_derivative() -> None:
    closed = closed_form("mean(sin(x^2))", {"x": TensorType((3,))}, ["x"])
    text = wrong(diagnose(closed, "x", "cos(x^2)/3"), "chain_factor")
    assert text == "the chain rule's factor d(x^2)/dx = 2*x is missing"
    closed = closed_form("sum(exp(2*x))", {"x": TensorType((3,))}, ["x"])
    assert wrong(diagnose(closed, "x", "exp(2*x)"), "chain_constant") == (
        "the chain rule's factor d(2*x)/dx = 2 is missing (the claim is 1/2 times the true gradient)"
    )


def test_sign_error(seed: ClosedForm, logistic: ClosedForm) -> None:
    assert wrong(diagnose(seed, "x", "-3/2*(x+2)"), "sign").startswith("sign error")
    assert wrong(diagnose(logistic, "b", "onehot(y, 2) - softmax(W @ x + b)"), "sign").startswith(
        "sign error"
    )


def test_constant_factor(seed: ClosedForm) -> None:
    text = wrong(diagnose(seed, "x", "7*(x+2)"), "constant_factor")
    assert text.startswith("off by a constant factor 14/3")


def test_two_slips_at_once() -> None:
    closed = closed_form("mean(exp(2*x))", {"x": TensorType((3,))}, ["x"])
    text = wrong(diagnose(closed, "x", "exp(2*x)"), "mean_count+chain_constant")
    assert "the 1/N of mean is missing" in text and "d(2*x)/dx = 2 is missing" in text


def test_softmax_without_the_onehot_term(logistic: ClosedForm) -> None:
    d = diagnose(logistic, "b", "softmax(W @ x + b)")
    assert wrong(d, "onehot").startswith("the -onehot(y, 2) term from -log p[y] is missing")
    assert d.difference == "onehot(y, 2)"
    d = diagnose(logistic, "W", "outer(softmax(W @ x + b), x)")
    assert wrong(d, "onehot").startswith("the -onehot(y, 2) term from -log p[y] is missing")
    assert "wrong sign" in wrong(diagnose(logistic, "b", "softmax(W @ x + b) + onehot(y, 2)"), "onehot_sign")


def test_softmax_without_the_onehot_term_over_a_batch() -> None:
    types = {"Z": TensorType((3, 2)), "y": TensorType((3,), DType.INT)}
    closed = closed_form("cross_entropy(Z, y)", types, ["Z"])
    d = diagnose(closed, "Z", "softmax(Z, axis=1)/3")
    assert wrong(d, "onehot").startswith("the -onehot(y, 2) term")


def test_transposed_outer_product(logistic: ClosedForm) -> None:
    d = diagnose(logistic, "W", "outer(x, softmax(W @ x + b) - onehot(y, 2))")
    text = wrong(d, "transpose")
    assert text.startswith("the matmul's gradient needs a transpose: d(W @ x)/dW = outer(G, x)")
    assert "transposed" in text
    assert (d.claimed_shape, d.true_shape, d.difference) == ((3, 2), (2, 3), None)
    assert d.where() is not None and "the claim has shape (3, 2), dout/dW has shape (2, 3)" in d.where()


def test_matmul_gradient_transposed(matmul: ClosedForm) -> None:
    text = wrong(diagnose(matmul, "A", "2*(B @ (A @ B).T)"), "transpose")
    assert text.startswith("the matmul's gradient needs a transpose: d(A @ B)/dA = G @ B.T")
    text = wrong(diagnose(matmul, "B", "2*((A @ B).T @ A)"), "transpose")
    assert text.startswith("the matmul's gradient needs a transpose: d(A @ B)/dB = A.T @ G")


def test_matmul_in_the_wrong_order() -> None:
    # Square matrices: B.T @ G has the right shape, but is not G @ B.T
    closed = closed_form("sum((A @ B)^2)", {"A": TensorType((3, 3)), "B": TensorType((3, 3))}, ["A"])
    d = diagnose(closed, "A", "2*B.T @ (A @ B)")
    text = wrong(d, "matmul_order")
    assert text.startswith("the matmul's gradient needs a transpose: d(A @ B)/dA = G @ B.T")
    assert "wrong order" in text
    assert "transpose" in wrong(diagnose(closed, "A", "2*(A @ B) @ B"), "matmul_order")
    assert d.index is not None and d.claimed_value != d.true_value


def test_an_unexplained_mistake_still_shows_where(seed: ClosedForm) -> None:
    d = diagnose(seed, "x", "x^2")
    assert not d.correct and d.mistake is None and d.likely_mistake is None
    assert d.point is not None and d.claimed_value is not None
    assert "likely mistake" not in render_diagnosis(d)


def test_deterministic(logistic: ClosedForm) -> None:
    first = diagnose(logistic, "b", "softmax(W @ x + b)")
    again = diagnose(logistic, "b", "softmax(W @ x + b)")
    assert first.where() == again.where()
    assert first.point_label == "random point 1 (seed 0)"


# ---------------------------------------------------------------- claims as text


def test_parse_claim() -> None:
    assert parse_claim("x: 3*(x+2)/2") == ("x", "3*(x+2)/2")
    with pytest.raises(SymcheckError, match="bad claim"):
        parse_claim("x 3*(x+2)")
    with pytest.raises(SymcheckError, match="not differentiated"):
        parse_claim("y: 1", ["x"])


def test_bad_names_in_a_claim(seed: ClosedForm) -> None:
    with pytest.raises(SymcheckError, match="unknown name 'xx'"):
        diagnose(seed, "x", "3/2*(xx+2)")
    with pytest.raises(SymcheckError, match="not differentiated"):
        diagnose(seed, "w", "1")


def test_check_claims() -> None:
    program = bind(parse(SEED), {"x": TensorType((2, 2))})
    right, wrong_one = check_claims(program, ["x"], ["x: 3/2*(x+2)", "x: 6*(x+2)"], point=ONES)
    assert right.correct and wrong_one.mistake == "mean_count"
    lines = wrong_one.lines()
    assert lines[0] == "claim dout/dx = 6*(x+2): WRONG"
    assert "  claimed - true = 9/2*(x + 2)" in lines
    assert any(line.startswith("  likely mistake: the 1/N of mean is missing") for line in lines)


# ---------------------------------------------------------------- in verify's report and the CLI

CLAIMS_YAML = """\
suite: claims
cases:
  - name: seed-right
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    engines: [symbolic, autograd]
    expect:
      grad:
        x: 3/2*(x+2)
  - name: seed-missing-one-over-n
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    engines: [symbolic, autograd]
    expect:
      grad:
        x: 6*(x+2)
  - name: logistic-regression-without-onehot
    expr: nll_loss(log_softmax(W @ x + b), y)
    inputs:
      W: {shape: [2, 3], random: {low: -0.1, high: 0.1, seed: 1}}
      b: {shape: [2], fill: 0}
      x: {value: [1, 0, 2]}
      y: {shape: [], dtype: int, value: 0}
    wrt: [W, b]
    engines: [symbolic, autograd]
    expect:
      grad:
        W: outer(softmax(W @ x + b) - onehot(y, 2), x)
        b: softmax(W @ x + b)
"""


def test_a_suite_with_claims_reports_the_likely_mistake(write_suite: Callable[..., Path]) -> None:
    results, errors = run_cases(load_suite(write_suite(CLAIMS_YAML)).cases)
    assert errors == []
    right, mean_case, logistic_case = results
    assert right.status == "pass" and right.proofs[0].likely_mistake is None
    assert mean_case.status == "fail"
    (proof,) = mean_case.proofs
    assert proof.likely_mistake is not None and proof.likely_mistake.startswith("the 1/N of mean is missing")
    assert proof.differs_at == (
        "at x = [[1, 1], [1, 1]] (the given values): claimed 18, true 4.5 at index (0, 0)"
    )
    text = render_text(results)
    assert "      expect    dout/dx = 6*(x+2): WRONG" in text
    assert "                claimed - true = 9/2*(x + 2)" in text
    assert "                differs at x = [[1, 1], [1, 1]] (the given values): claimed 18, true 4.5" in text
    assert "                likely mistake: the 1/N of mean is missing" in text
    w, b = logistic_case.proofs
    assert w.proven and not b.proven
    assert b.likely_mistake is not None and b.likely_mistake.startswith("the -onehot(y, 2) term")
    assert "(the given values)" in (b.differs_at or "")
    assert '"likely_mistake": "the -onehot(y, 2) term' in render_json(results)


def test_grad_claim_option() -> None:
    runner = CliRunner()
    args = ["grad", SEED, "-i", "x:2x2=1", "--engines", "symbolic,autograd"]
    r = runner.invoke(main, [*args, "--claim", "x: 3/2*(x+2)"])
    assert r.exit_code == 0, r.output
    assert "expect    dout/dx = 3/2*(x+2): proven" in r.output
    r = runner.invoke(main, [*args, "--claim", "x: -3/2*(x+2)"])
    assert r.exit_code == 1, r.output
    assert "expect    dout/dx = -3/2*(x+2): WRONG" in r.output
    assert "likely mistake: sign error" in r.output
    r = runner.invoke(main, [*args, "--claim", "x 3/2*(x+2)"])
    assert r.exit_code == 2 and "bad claim" in r.output
    r = runner.invoke(main, [*args, "--claim", "x: 1", "--claim", "x: 2"])
    assert r.exit_code == 2 and "two claims for 'x'" in r.output


def test_a_comparison_inside_the_program_is_no_chain_rule_factor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Diagnosing a mistake walked into a case's condition (x < 2) and differentiated it: exit 3."""
    from click.testing import CliRunner

    from symcheck.cli import main

    path = tmp_path / "suite.yaml"
    path.write_text(
        "cases:\n"
        "  - name: comparison\n"
        "    expr: |\n"
        "      y = x < 2\n"
        "      z = 3*y^2 + x*x\n"
        "      out = mean(z)\n"
        "    inputs:\n"
        "      x: {shape: [2, 2], fill: 1}\n"
        "    mistakes:\n"
        '      - grad: {x: "3/2*(x + 2)"}\n'
    )
    r = CliRunner().invoke(main, ["verify", str(path), "--samples", "0"])
    assert r.exit_code == 0, r.output
    assert "refuted, as it must be" in r.output


# ---------------------------------------------------------------- every elementwise op


OUTERS = [
    "where(x > 0, x, 0.1*x)",
    "where(x > 0.5, x^2, -x)",
    "clamp(x, min=-0.5, max=0.5)",
    "leaky_relu(x, slope=0.2)",
    "abs(x)",
    "sigmoid(x)",
    "tanh(x)",
    "exp(x)",
    "log(x + 3)",
    "sqrt(x + 3)",
    "softplus(x)",
    "gelu(x)",
    "silu(x)",
    "elu(x)",
    "hardtanh(x)",
    "erf(x)",
    "atan(x)",
    "sin(x)",
    "cosh(x)",
]


@pytest.mark.parametrize("inner", OUTERS)
def test_a_forgotten_inner_derivative_is_diagnosed_for_every_elementwise_op(inner: str) -> None:
    """sum(f(x)^2) claimed as 2*f(x): the factor f'(x) is missing, whichever op f is (where's was
    lost: SymPy folds where(c, x, 0.1*x)^2 into cases of squares). Not relu: 2*relu(x) is right."""
    closed = closed_form(f"sum({inner}^2)", {"x": TensorType((4,))}, ["x"])
    point = {"x": np.array([-1.3, -0.2, 0.4, 1.1])}
    d = diagnose(closed, "x", f"2*{inner}", point=point)
    assert not d.correct and not d.holds
    assert d.mistake == "chain_factor", (d.mistake, d.likely_mistake)
    assert "is missing" in (d.likely_mistake or "")
