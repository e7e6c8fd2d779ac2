"""No false PASS: backward passes that a check through a plain sum (or at symmetric points) would
pass must FAIL, with default settings, in assert_gradients, in `impl:` suites and in the pytest
plugin, naming the output, the input and the element; written right, they pass.

The kernels are tests/false_pass/kernels.py: a softmax whose backward returns zeros, a GELU whose
backward ignores grad_output, a matmul whose backward forgets the transposes (on square all-ones
inputs, where the transposes do not show), a two-output kernel whose backward swaps its outputs'
gradients.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import symcheck

PROJECT = Path(__file__).resolve().parent / "false_pass"
GELU = "0.5*x*(1 + tanh(0.7978845608028654*(x + 0.044715*x^3)))"


def kernels() -> ModuleType:
    spec = importlib.util.spec_from_file_location("false_pass_kernels", PROJECT / "kernels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


K = kernels()
X5 = torch.tensor([0.3, -1.2, 0.8, 2.0, -0.4], dtype=torch.float64)
X4 = torch.tensor([-1.5, -0.2, 0.4, 1.1], dtype=torch.float64)
ONES = torch.ones(3, 3, dtype=torch.float64)

# (wrong function, right function, expression, inputs, the input the report must name)
CASES = [
    pytest.param(
        K.softmax_zero_backward, K.softmax, "softmax(x)", {"x": X5}, "x", id="softmax-zero-backward"
    ),
    pytest.param(K.gelu_ignores_grad_output, K.gelu, GELU, {"x": X4}, "x", id="gelu-ignores-grad-output"),
    pytest.param(
        K.matmul_no_transpose, K.matmul, "A @ B", {"A": ONES, "B": ONES}, "A", id="matmul-no-transpose"
    ),
]


@pytest.mark.parametrize(("wrong", "right", "expr", "values", "name"), CASES)
def test_assert_gradients_fails_the_wrong_backward(wrong, right, expr, values, name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError) as e:
        symcheck.assert_gradients(wrong, expr, **values)
    message = str(e.value)
    assert "MISMATCH  fn vs symbolic, Jacobian dout/d" in message
    assert "At entry d out[" in message and f" / d {name}[" in message
    result = symcheck.assert_gradients(right, expr, **values)
    assert result.status == "pass"


def test_a_backward_that_swaps_its_outputs_gradients_fails() -> None:
    x = torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64)
    program = "h = sin(x); c = x^2"
    with pytest.raises(AssertionError) as e:
        symcheck.assert_gradients(K.two_outputs_swapped, program, x=x, outputs=["h", "c"])
    message = str(e.value)
    assert "MISMATCH  fn vs symbolic, Jacobian dh/dx" in message and "At entry d h[" in message
    assert "MISMATCH  fn vs symbolic, Jacobian dc/dx" in message and "At entry d c[" in message
    results = symcheck.assert_gradients(K.two_outputs, program, x=x, outputs=["h", "c"])
    assert [r.case.name for r in results] == [f"{program} [h]", f"{program} [c]"]  # type: ignore[union-attr]


def test_the_matmul_slip_is_invisible_at_the_symmetric_given_values_alone() -> None:
    """Why the default random points matter: at all-ones A and B the transposes do not show."""
    result = symcheck.assert_gradients(K.matmul_no_transpose, "A @ B", A=ONES, B=ONES, samples=0)
    assert result.status == "pass"


def test_impl_suites_fail_the_wrong_backwards_and_pass_the_right_ones(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    wrong = _verify(project / "wrong.symcheck.yaml")
    assert wrong.returncode == 1, wrong.stdout
    for case in ("softmax-zero-backward", "gelu-ignores-grad-output", "matmul-no-transpose"):
        assert f"FAIL  {case}" in wrong.stdout
    assert "FAIL  two-outputs-swapped [h]" in wrong.stdout and "FAIL  two-outputs-swapped [c]" in wrong.stdout
    assert "At entry d h[" in wrong.stdout and "At entry d c[" in wrong.stdout
    assert "MISMATCH  impl vs symbolic, Jacobian dout/dx" in wrong.stdout
    assert "At entry d out[0, " in wrong.stdout and " / d A[" in wrong.stdout
    right = _verify(project / "right.symcheck.yaml")
    assert right.returncode == 0, right.stdout
    assert right.stdout.rstrip().endswith("5 passed, 0 failed")


def test_the_pytest_plugin_fails_the_wrong_backwards(pytester: pytest.Pytester) -> None:
    for path in PROJECT.iterdir():
        if path.is_file():
            shutil.copy(path, pytester.path / path.name)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "wrong.symcheck.yaml", "right.symcheck.yaml"
    )
    result.assert_outcomes(passed=4, failed=4)
    result.stdout.fnmatch_lines(["*At entry d out[[]*[]] / d x[[]*"])


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "symcheck", "verify", str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


pytest_plugins = ["pytester"]
