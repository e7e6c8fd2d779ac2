from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from symcheck import __version__
from symcheck.checks.runner import CaseResult, run_cases
from symcheck.engines.autograd.engine import AutogradEngine
from symcheck.engines.base import EngineOptions, EngineResult
from symcheck.language.ir import Program
from symcheck.report.json import JSON_SCHEMA_VERSION, render_json
from symcheck.report.summary import summary_line
from symcheck.report.text import render_text
from symcheck.suites.loader import load_suite

WriteSuite = Callable[..., Path]

SEED = """\
cases:
  - name: seed
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    samples: 0
    engines: [symbolic, autograd]
    expect:
      value: 27
      grad:
        x: 3/2*(x+2)
"""

KINK = """\
cases:
  - name: kink
    expr: sum(relu(x))
    inputs:
      x: {value: [-1, 0, 2]}
    samples: 0
"""


def run(path: Path) -> list[CaseResult]:
    results, errors = run_cases(load_suite(path).cases)
    assert errors == []
    return results


@pytest.fixture
def wrong_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """The autograd engine returns d/dx off by one at index (0, 1)."""
    original = AutogradEngine.run

    def wrong(
        self: AutogradEngine,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        result = original(self, program, inputs, wrt, options)
        result.grads["x"] = result.grads["x"].copy()
        result.grads["x"][0, 1] += 1.0
        return result

    monkeypatch.setattr(AutogradEngine, "run", wrong)


def test_text_for_a_pass(write_suite: WriteSuite) -> None:
    path = write_suite(SEED)
    text = render_text(run(path))
    lines = text.splitlines()
    assert lines[0] == f"== {path}"
    assert lines[1] == f"PASS  seed  ({path}:2)"
    assert "      expr      mean(3*(x+2)^2)" in lines
    assert "      input     x: float[2, 2] fill 1" in lines
    assert "      value     out = 27   (exact, at the given values)" in lines
    assert "      gradient  dout/dx = 3/2*(x + 2)" in lines
    assert "      engines   compared at 1 point(s); reference: symbolic" in lines
    assert any(line.startswith("        autograd  ok") for line in lines)
    assert "proven (equal to the closed form); holds at 1/1 points" in text
    assert "      expect    value = 27: ok" in lines
    assert lines[-1] == "1 cases, 1 points: 1 passed, 0 failed"
    assert text.endswith("\n")


def test_text_for_a_mismatch_is_torch_testing_style(write_suite: WriteSuite, wrong_autograd: None) -> None:
    (result,) = run(write_suite(SEED))
    assert result.status == "fail"
    text = render_text([result])
    assert text.splitlines()[1].startswith("FAIL  seed")
    assert "MISMATCH  autograd vs symbolic, dout/dx, at the given values:" in text
    assert "Mismatched elements: 1 / 4 (25.0%)" in text
    assert "Greatest absolute difference: 1 at index (0, 1) (up to " in text
    assert "rtol 1e-07, atol 1e-07" in text
    assert "Greatest relative difference: 0.222222" in text  # 1 / 4.5
    assert "At (0, 1): autograd = 5.5, symbolic = 4.5" in text
    assert "autograd  mismatch" in text
    assert text.rstrip().endswith("1 cases, 1 points: 0 passed, 1 failed")


def test_verbose_shows_every_engine_note(write_suite: WriteSuite) -> None:
    results = run(write_suite(SEED))
    quiet, verbose = render_text(results), render_text(results, verbose=True)
    assert len(verbose.splitlines()) >= len(quiet.splitlines())


def test_text_groups_cases_by_file(write_suite: WriteSuite) -> None:
    a = write_suite(SEED, "a.yaml")
    b = write_suite(SEED.replace("name: seed", "name: other"), "b.yaml")
    results, errors = run_cases([*load_suite(a).cases, *load_suite(b).cases])
    assert errors == []
    headers = [line for line in render_text(results).splitlines() if line.startswith("== ")]
    assert headers == [f"== {a}", f"== {b}"]
    assert summary_line(results) == "2 cases, 2 points: 2 passed, 0 failed"


def strict_json(text: str) -> Any:
    def reject(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def test_json_round_trips(write_suite: WriteSuite, wrong_autograd: None) -> None:
    results = run(write_suite(SEED))
    text = render_json(results)
    doc = json.loads(text)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["symcheck"] == __version__
    assert doc["schema"] == JSON_SCHEMA_VERSION == 1
    assert doc["summary"] == {"cases": 1, "passed": 0, "failed": 1, "skipped": 0, "errors": 0}
    (case,) = doc["cases"]
    assert (case["name"], case["status"], case["line"], case["wrt"]) == ("seed", "fail", 2, ["x"])
    assert case["value"] == 27.0
    assert case["exact_value"] == "27"
    assert case["closed_forms"] == {"x": "3/2*(x + 2)"}
    assert [e["engine"] for e in case["engines"]] == ["symbolic", "autograd"]
    assert [e["status"] for e in case["engines"]] == ["reference", "mismatch"]
    assert case["proofs"][0]["proven"] is True
    (point,) = case["points"]
    assert point["label"] == "given values"
    assert point["reference"] == "symbolic"
    (comparison,) = point["comparisons"]
    assert (comparison["engine"], comparison["reference"], comparison["ok"]) == (
        "autograd",
        "symbolic",
        False,
    )
    check = next(c for c in comparison["checks"] if c["what"] == "dout/dx")
    assert check["ok"] is False
    assert (check["mismatched"], check["total"]) == (1, 4)
    assert check["worst_index"] == [0, 1]
    assert (check["actual"], check["expected"]) == (5.5, 4.5)
    assert (check["rtol"], check["atol"]) == (1e-7, 1e-7)
    assert [e["what"] for e in point["expectations"]] == ["value", "dout/dx"]


def test_json_of_a_pass_is_strict_json(write_suite: WriteSuite) -> None:
    doc = strict_json(render_json(run(write_suite(SEED))))
    assert doc["summary"]["passed"] == 1


def test_json_is_strict_json_even_with_infinite_errors(write_suite: WriteSuite) -> None:
    strict_json(render_json(run(write_suite(KINK))))


def test_every_line_of_a_case_block_is_indented(write_suite: WriteSuite) -> None:
    path = write_suite(SEED.replace("x: 3/2*(x+2)", "x: [[4.5, 4.5], [4.5, 5]]"))
    lines = render_text(run(path)).splitlines()
    body = lines[2:-1]  # after "== file" and the status line, before the summary
    assert all(line.startswith("      ") for line in body), body
    assert "      expect    dout/dx = [[4.5, 4.5], [4.5, 5.0]]: WRONG" in "\n".join(body)
