"""Nothing that did not run can pass: when the code under test cannot run (torch on a device this
machine lacks, the user's function, a plug-in), the case is skipped, in every format, never passed.

These tests need a machine without CUDA (CI's): there, `device: cuda` cannot run.
"""

from __future__ import annotations

import json
import unittest
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import symcheck
from symcheck.checks.runner import prepare, run_cases, under_test
from symcheck.cli import EXIT_MISMATCH, EXIT_OK, main
from symcheck.suites.loader import load_suite

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

CUDA_CASE = """\
cases:
  - name: on-the-gpu
    expr: x*sigmoid(x)
    device: cuda
    inputs:
      x: {value: [0.5, -1.0, 2.0]}
  - name: on-the-cpu
    expr: sum(x^2)
    inputs:
      x: {value: [1.0, 2.0]}
"""


def cli(*args: str | Path) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def suite(write_suite: Callable[..., Path]) -> Path:
    return write_suite(CUDA_CASE)


def test_a_case_on_a_missing_device_is_skipped_never_passed(suite: Path) -> None:
    results, errors = run_cases(load_suite(suite).cases)
    assert not errors
    gpu, cpu = results
    assert gpu.status == "skip" and cpu.status == "pass"
    assert gpu.skip_reason is not None and gpu.skip_reason.startswith(
        "torch did not run: CUDA is not available"
    )


def test_text_report_and_exit_codes(suite: Path) -> None:
    r = cli("verify", suite)
    assert r.exit_code == EXIT_OK, r.output  # a skip is reported, not failed, unless asked
    assert "SKIP  on-the-gpu" in r.output
    assert "      skipped   torch did not run: CUDA is not available" in r.output
    assert r.output.rstrip().endswith("2 cases, 6 points: 1 passed, 0 failed, 1 skipped")
    assert cli("verify", suite, "--fail-on-skip").exit_code == EXIT_MISMATCH


def test_grad_on_cuda_is_skipped() -> None:
    r = cli("grad", "x*sigmoid(x)", "-i", "x:3", "--device", "cuda")
    assert r.exit_code == EXIT_OK and "SKIP  x*sigmoid(x)" in r.output
    assert cli("grad", "x*sigmoid(x)", "-i", "x:3", "--device", "cuda", "--fail-on-skip").exit_code == 1


def test_json_junit_and_github_say_skipped(suite: Path) -> None:
    doc = json.loads(cli("verify", suite, "--format", "json").output)
    assert doc["summary"]["skipped"] == 1 and doc["summary"]["passed"] == 1
    assert doc["cases"][0]["status"] == "skip"
    assert "CUDA is not available" in doc["cases"][0]["skip_reason"]
    root = ET.fromstring(cli("verify", suite, "--format", "junit").output)
    assert root.get("skipped") == "1"
    (skipped,) = root.iter("skipped")
    assert "CUDA is not available" in (skipped.get("message") or "")
    github = cli("verify", suite, "--format", "github").output
    assert "::warning file=" in github and "title=symcheck%3A on-the-gpu%3A skipped::" in github


def test_the_pytest_plugin_skips(pytester: pytest.Pytester) -> None:
    (pytester.path / "gpu.symcheck.yaml").write_text(CUDA_CASE, encoding="utf-8")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "gpu.symcheck.yaml")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*torch did not run: CUDA is not available*"])


def test_assert_gradients_on_a_missing_device_raises_skip_test() -> None:
    ran: list[bool] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        ran.append(True)
        return x * torch.sigmoid(x)

    with pytest.raises(unittest.SkipTest, match="did not run: CUDA is not available"):
        symcheck.assert_gradients(fn, "x*sigmoid(x)", x=torch.ones(3, dtype=torch.float64), device="cuda")
    assert not ran  # fn never ran, so nothing passed


def test_what_counts_as_the_code_under_test(suite: Path) -> None:
    (prepared,), _ = prepare(load_suite(suite).cases[:1])
    case = prepared.case
    assert under_test("torch", case)  # asked for cuda: torch on the GPU is what is checked
    assert not under_test("numeric", case)
    assert under_test("impl", case) and under_test("fn", case) and under_test("my-plugin", case)


pytest_plugins = ["pytester"]
