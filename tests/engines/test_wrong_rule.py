"""A deliberately wrong rule in one engine is caught by the others.

Each test breaks one engine through its own table (monkeypatch restores it), runs a suite through
symcheck.checks.runner, and checks that the case fails, that the mismatch is that engine's against the
symbolic reference, and that it names the element where they differ.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from symcheck.checks.compare import ArrayComparison
from symcheck.checks.runner import CaseResult, run_cases
from symcheck.engines import autograd as T
from symcheck.engines.numeric import rules as numeric_rules
from symcheck.engines.torch import rules as torch_rules
from symcheck.report.text import render_text
from symcheck.suites.loader import load_suite

# tanh at -1.5 is the largest of |t - t^2| over these: the element a wrong tanh rule hurts most.
SUITE = """\
cases:
  - name: tanh
    expr: sum(tanh(x) * w)
    inputs:
      x: [0.1, 0.2, -1.5]
      w: [1, 1, 1]
    wrt: [x]
  - name: seed
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    expect:
      value: 27
      grad:
        x: 3/2*(x+2)
  - name: trig
    expr: sum(sin(x) * y)
    inputs:
      x: [[0.5, 1.0], [1.5, 2.0]]
      y: [[1, 2], [3, 4]]
"""


def run(tmp_path: Path, case: str) -> CaseResult:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE))
    cases = [c for c in load_suite(path).cases if c.name == case]
    results, errors = run_cases(cases)
    assert not errors
    (result,) = results
    return result


def bad_checks(result: CaseResult, engine: str) -> list[ArrayComparison]:
    """The failed checks of `engine` against the symbolic reference, over every point."""
    found = []
    for point in result.points:
        assert point.reference == "symbolic"
        assert not point.crashed
        for comparison in point.comparisons:
            if comparison.engine == engine:
                assert comparison.reference == "symbolic"
                found.extend(c for c in comparison.checks if not c.ok)
            elif comparison.engine != "symbolic":
                assert comparison.ok, f"{comparison.engine} should still agree"
    return found


@pytest.mark.parametrize("case", ["tanh", "seed", "trig"])
def test_unbroken_engines_agree(tmp_path: Path, case: str) -> None:
    result = run(tmp_path, case)
    assert result.status == "pass", render_text([result])


# ---------------------------------------------------------------- autograd: a VJP rule


def test_wrong_tanh_rule_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(T.VJPS, "tanh", (lambda g, ans, x: g * (1 - ans),))  # should be 1 - ans^2
    result = run(tmp_path, "tanh")
    assert result.status == "fail"
    bad = bad_checks(result, "autograd")
    assert bad and {c.what for c in bad} == {"dout/dx"}  # the value is right, the gradient is not
    given = bad[0]
    assert given.worst_index == (2,)
    expected = 1 - np.tanh(-1.5) ** 2
    assert given.expected == pytest.approx(expected)
    assert given.actual == pytest.approx(1 - np.tanh(-1.5))
    text = render_text([result])
    assert "MISMATCH  autograd vs symbolic, dout/dx, at the given values:" in text
    assert "Greatest absolute difference" in text and "at index (2,)" in text


def test_mean_without_its_one_over_n_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        T.VJPS, "mean", (lambda g, ans, x, *, axis, keepdims: T.rules._unreduce(g, x.shape, axis, keepdims),)
    )
    result = run(tmp_path, "seed")
    assert result.status == "fail"
    bad = bad_checks(result, "autograd")
    assert bad and all(c.what == "dout/dx" for c in bad)
    given = bad[0]
    assert given.mismatched == given.total == 4  # every element is 4x too big
    assert given.actual == pytest.approx(4 * given.expected)
    assert given.expected == pytest.approx(4.5)
    # The closed form itself is untouched: the formula is still proven, the value still 27.
    assert all(p.proven for p in result.proofs)
    assert result.exact_value == "27"


def test_table_is_restored_after_monkeypatch() -> None:
    # Runs after the tests above in file order: their broken rules are gone.
    x = T.Tensor(np.array([0.5]), requires_grad=True)
    (g,) = T.grad(T.sum(T.tanh(x)), [x])
    np.testing.assert_allclose(g.data, 1 - np.tanh(0.5) ** 2)


# ---------------------------------------------------------------- torch: a lowering


def test_wrong_torch_lowering_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The right value with the wrong derivative: sin(x) whose gradient flows as if it were x.
    def wrong_sin(args: list[torch.Tensor], kw: object) -> torch.Tensor:
        (x,) = args
        return torch.sin(x).detach() + x - x.detach()

    monkeypatch.setitem(torch_rules.TABLE, "sin", wrong_sin)
    result = run(tmp_path, "trig")
    assert result.status == "fail"
    bad = bad_checks(result, "torch")
    assert bad and {c.what for c in bad} == {"dout/dx"}
    given = bad[0]
    # d/dx sin(x)*y is y*cos(x); torch now says y. The worst element is the largest |y*(1 - cos x)|.
    x, y = np.array([[0.5, 1.0], [1.5, 2.0]]), np.array([[1, 2], [3, 4]])
    assert given.worst_index == (1, 1)
    assert given.actual == pytest.approx(y[1, 1])
    assert given.expected == pytest.approx(y[1, 1] * np.cos(x[1, 1]))
    assert "MISMATCH  torch vs symbolic, dout/dx" in render_text([result])


# ---------------------------------------------------------------- numeric: a forward evaluation


def test_wrong_finite_difference_forward_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(numeric_rules.FORWARD, "sin", lambda a, kw: np.sin(a[0]) + 1e-3 * a[0] ** 2)
    result = run(tmp_path, "trig")
    assert result.status == "fail"
    bad = bad_checks(result, "numeric")
    assert {c.what for c in bad} == {"value", "dout/dx", "dout/dy"}  # sin(x)*y: dy = sin(x) is off too
    grad = next(c for c in bad if c.what == "dout/dx")
    # The extra term's derivative is 2e-3 * x * y: largest at x = 2, y = 4.
    assert grad.worst_index == (1, 1)
    assert grad.actual - grad.expected == pytest.approx(2e-3 * 2.0 * 4, rel=1e-4)
    assert not any(p.conventions for p in result.points)  # no kink to excuse it
    assert "MISMATCH  numeric vs symbolic, dout/dx" in render_text([result])
