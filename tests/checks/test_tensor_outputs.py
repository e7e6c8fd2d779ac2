"""Tensor outputs are checked through their Jacobian, in full or along shared probes, by every engine."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from symcheck.checks.compare import Tolerance, adjoint_failures
from symcheck.checks.runner import run_cases
from symcheck.cli import EXIT_OK, main
from symcheck.engines import EngineOptions, EngineResult, jacobian_probes
from symcheck.engines.autograd import tensor
from symcheck.suites.programs import load_case


def grad(*args: str) -> object:
    return CliRunner().invoke(main, ["grad", *args])


def test_grad_checks_the_full_jacobian_and_prints_the_vjp() -> None:
    r = grad("x*sigmoid(x)", "-i", "x:3")
    assert r.exit_code == EXIT_OK, r.output
    assert "jacobian  checked in full, entry by entry (dout/dx: (3,) x (3,))" in r.output
    assert "vjp       v^T dout/dx = v*(x*(1 - sigmoid(x)) + 1)*sigmoid(x)" in r.output
    for engine in ("autograd", "torch", "numeric"):
        assert f"  {engine:9} ok" in r.output


def test_a_large_softmax_is_checked_along_random_probes_in_all_four_engines() -> None:
    (result,), errors = run_cases([load_case("softmax(W @ x)", ["W:512x256", "x:256"])])
    assert not errors and result.status == "pass"
    for point in result.points:
        assert set(point.results) == {"symbolic", "autograd", "torch", "numeric"}
        for name, res in point.results.items():
            assert not res.jacobians and not res.grads, name
            assert len(res.jvps) == 3, name  # every engine has a forward mode
            if name != "numeric":
                assert len(res.vjps) == 3, name
        checked = {c.what for comparison in point.comparisons for c in comparison.checks}
        assert "VJP u1^T dout/dW" in checked and "JVP dout along t3" in checked


def test_the_probes_are_shared_whatever_order_the_inputs_come_in() -> None:
    a = jacobian_probes((2,), {"W": (2, 3), "x": (3,)}, EngineOptions(seed=4))
    b = jacobian_probes((2,), {"x": (3,), "W": (2, 3)}, EngineOptions(seed=4))
    assert all(np.array_equal(p, q) for p, q in zip(a.cotangents, b.cotangents, strict=True))
    assert all(np.array_equal(p["W"], q["W"]) for p, q in zip(a.tangents, b.tangents, strict=True))


def test_the_dot_product_test_catches_a_vjp_that_is_not_the_jvps_transpose() -> None:
    probes = jacobian_probes((3,), {"x": (3,)}, EngineOptions())
    J = np.arange(9.0).reshape(3, 3)
    right = EngineResult(
        "e",
        np.zeros(3),
        {},
        vjps=[{"x": J.T @ u} for u in probes.cotangents],
        jvps=[J @ t["x"] for t in probes.tangents],
    )
    assert adjoint_failures(right, probes, Tolerance(1e-9, 1e-12)) == []
    wrong = EngineResult(
        "e", np.zeros(3), {}, vjps=[{"x": J @ u} for u in probes.cotangents], jvps=right.jvps
    )
    (failure, *_) = adjoint_failures(wrong, probes, Tolerance(1e-9, 1e-12))
    assert "dot-product test, probe 1" in failure


def test_a_wrong_jvp_rule_is_caught_by_the_reverse_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward mode written apart from reverse mode: a wrong JVP rule contradicts the VJP rule."""
    monkeypatch.setitem(tensor.JVPS, "tanh", (lambda t, ans, x: t * (1 + ans**2),))
    (result,), _ = run_cases([load_case("tanh(x)", ["x:3"])])
    assert result.status == "fail"
    failures = [f for p in result.points for c in p.comparisons for f in c.failures]
    assert any(
        "reverse mode and forward mode disagree at Jacobian entry d out[0] / d x[0]" in f for f in failures
    )


def test_an_engine_without_derivatives_does_not_pass_on_its_value() -> None:
    from symcheck.checks.compare import compare_results

    reference = EngineResult("symbolic", np.ones(2), {}, jacobians={"x": np.eye(2)})
    lazy = EngineResult("plugin", np.ones(2), {})
    comparison = compare_results(lazy, reference, Tolerance(1e-7, 1e-7))
    assert not comparison.ok
    assert "produced no derivative" in comparison.failures[0]


def test_grad_checks_several_outputs_each_with_its_own_jacobian() -> None:
    r = grad("h = sin(x); c = x^2", "-i", "x:3", "--outputs", "h,c")
    assert r.exit_code == EXIT_OK, r.output
    assert "PASS  h = sin(x); c = x^2 [h]" in r.output and "PASS  h = sin(x); c = x^2 [c]" in r.output
    assert "vjp       v^T dh/dx = v*cos(x)" in r.output and "vjp       v^T dc/dx = 2*v*x" in r.output
    bad = grad("h = sin(x); c = x^2", "-i", "x:3", "--outputs", "h,q")
    assert bad.exit_code == 2 and "outputs names 'q', which is not a step of the program" in bad.output


def test_baselines_record_a_tensor_outputs_derivatives() -> None:
    from symcheck.checks.baseline import quantities

    result = EngineResult("e", np.zeros(2), {}, jacobians={"x": np.eye(2)}, jvps=[np.ones(2)])
    assert set(quantities(result, "out")) == {"value", "Jacobian dout/dx", "JVP dout along t1"}


def test_explain_says_it_needs_a_scalar_output() -> None:
    r = CliRunner().invoke(main, ["explain", "x*sigmoid(x)", "-i", "x:3"])
    assert r.exit_code == 2 and "explain walks a scalar output's gradient" in r.output


def test_the_probe_shape_of_one_output_of_several_is_that_output() -> None:
    # --outputs h0 above the expansion budget: the probe re-bound the whole program, whose output
    # is the scalar `out`, and asserted on its missing cotangent (fuzz: exit 3)
    from click.testing import CliRunner

    from symcheck.cli import main

    program = "h0 = w\nout = log1p(c*c) + 0.5 + mean(h0)"
    args = ["grad", program, "-i", "c=-1", "-i", "w=[1.5, 0.25, 0.25, 0.25]", "--outputs", "h0"]
    r = CliRunner().invoke(main, [*args, "--expansion-budget", "3"])
    assert r.exit_code == 0, r.output
