"""Baselines (symcheck/checks/baseline.py): recorded numbers per case, point and engine, compared later."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from symcheck.checks import baseline as baselines
from symcheck.cli import EXIT_BAD_INPUT, EXIT_MISMATCH, EXIT_OK, main

WriteSuite = Callable[..., Path]

SUITE = """\
cases:
  - name: square
    expr: sum(x^2)
    inputs:
      x: {value: [[1, 2], [3, 4]]}
    samples: 1
    engines: [symbolic, autograd, numeric]
  - name: scale
    expr: sum(3*y)
    inputs:
      y: {value: [1, 2]}
    samples: 0
    engines: [symbolic, autograd]
"""


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def suite(write_suite: WriteSuite) -> Path:
    return write_suite(SUITE)


def record(suite: Path, *extra: str) -> Path:
    path = suite.parent / "baseline.json"
    r = cli("verify", suite, "--baseline", path, "--update-baseline", *extra)
    assert r.exit_code == EXIT_OK, r.output
    assert "baseline: recorded" in r.stderr
    return path


def quantity(doc: Mapping[str, Any], case: str, point: str, engine: str) -> dict[str, Any]:
    return doc["cases"][f"suite.yaml::{case}"]["points"][point]["engines"][engine]["quantities"]


def test_record_keys_and_exact_numbers(suite: Path) -> None:
    path = record(suite)
    doc = json.loads(path.read_text())
    assert doc["symcheck_baseline"] == baselines.BASELINE_FORMAT
    assert {"python", "numpy"} <= set(doc["recorded_with"])
    assert sorted(doc["cases"]) == ["suite.yaml::scale", "suite.yaml::square"]  # relative to the file
    points = doc["cases"]["suite.yaml::square"]["points"]
    assert list(points) == ["given values", "random point 1 (seed 0)"]
    assert points["given values"]["reference"] == "symbolic"
    assert sorted(points["given values"]["engines"]) == ["autograd", "numeric", "symbolic"]
    given = quantity(doc, "square", "given values", "symbolic")
    assert given == {"value": 30.0, "dout/dx": [[2.0, 4.0], [6.0, 8.0]]}
    # Random points and finite differences keep every bit: repr round-trips float64.
    from symcheck.checks.runner import run_cases
    from symcheck.suites.loader import load_suite

    results, _ = run_cases(load_suite(suite).cases[:1])
    ours = results[0].points[1].results["numeric"].grads["x"]
    theirs = baselines._decode(quantity(doc, "square", "random point 1 (seed 0)", "numeric")["dout/dx"])
    assert np.array_equal(ours, theirs)
    assert ours.tobytes() == theirs.tobytes()


def test_non_finite_numbers_round_trip() -> None:
    array = np.array([[np.nan, np.inf], [-np.inf, 0.1 + 0.2]])
    encoded = baselines._encode(array)
    assert encoded == [["nan", "inf"], ["-inf", 0.30000000000000004]]
    assert json.loads(json.dumps(encoded)) == encoded
    decoded = baselines._decode(encoded)
    assert np.array_equal(decoded, array, equal_nan=True)


def test_unchanged_numbers_pass(suite: Path) -> None:
    path = record(suite)
    before = sorted(os.listdir(suite.parent))
    r = cli("verify", suite, "--baseline", path)
    assert r.exit_code == EXIT_OK, r.output
    assert f"      baseline  matches {path} at 2 point(s)" in r.stdout
    assert f"      baseline  matches {path} at 1 point(s)" in r.stdout
    assert sorted(os.listdir(suite.parent)) == before  # verify writes nothing without --update-baseline
    doc = json.loads(cli("verify", suite, "--baseline", path, "--format", "json").stdout)
    case = doc["cases"][0]
    assert case["baseline"]["status"] == "match"
    assert case["baseline"]["key"] == "suite.yaml::square"
    assert {c["engine"] for c in case["points"][0]["baseline"]} == {"symbolic", "autograd", "numeric"}


def test_a_perturbed_baseline_fails_at_the_element(suite: Path) -> None:
    path = record(suite)
    doc = json.loads(path.read_text())
    quantity(doc, "square", "given values", "autograd")["dout/dx"][1][0] = 6.001
    path.write_text(json.dumps(doc))
    r = cli("verify", suite, "--baseline", path)
    assert r.exit_code == EXIT_MISMATCH, r.output
    out = r.stdout
    assert "FAIL  square" in out and "PASS  scale" in out
    assert f"      baseline  DIFFERS from {path} at 1 of 2 point(s)" in out
    assert "      MISMATCH  autograd vs baseline, dout/dx, at the given values:" in out
    assert "                Mismatched elements: 1 / 4 (25.0%)" in out
    assert "                At (1, 0): autograd = 6, baseline = 6.001" in out
    # Within the tolerance (float64: rtol 1e-7) is not a difference.
    quantity(doc, "square", "given values", "autograd")["dout/dx"][1][0] = 6 * (1 + 1e-9)
    path.write_text(json.dumps(doc))
    assert cli("verify", suite, "--baseline", path).exit_code == EXIT_OK


def test_a_missing_case_is_reported_and_strict_fails(suite: Path) -> None:
    path = record(suite, "-k", "square")
    r = cli("verify", suite, "--baseline", path)
    assert r.exit_code == EXIT_OK, r.output
    assert f"      baseline  not recorded in {path}; record it with --update-baseline" in r.stdout
    strict = cli("verify", suite, "--baseline", path, "--strict-baseline")
    assert strict.exit_code == EXIT_MISMATCH
    assert "PASS  square" in strict.stdout
    assert "FAIL  scale" in strict.stdout
    assert f"FAILED    at the given values: the case is not recorded in the baseline {path}" in strict.stdout


def test_a_missing_point_and_engine(suite: Path) -> None:
    path = record(suite, "--samples", "0")
    r = cli("verify", suite, "--baseline", path)  # the suite's own samples: 1 random point more
    assert r.exit_code == EXIT_OK, r.output
    assert "not recorded: the random point 1 (seed 0)" in r.stdout
    assert cli("verify", suite, "--baseline", path, "--strict-baseline").exit_code == EXIT_MISMATCH


def test_update_keeps_other_cases_and_is_atomic(suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = record(suite, "-k", "square")
    record(suite, "-k", "scale")
    assert sorted(json.loads(path.read_text())["cases"]) == ["suite.yaml::scale", "suite.yaml::square"]
    assert sorted(os.listdir(suite.parent)) == ["baseline.json", "suite.yaml"]  # no temporary files left

    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    r = cli("verify", suite, "--baseline", path, "--update-baseline")
    assert r.exit_code == EXIT_BAD_INPUT
    assert f"cannot write the baseline {path}: disk full; it is unchanged" in r.stderr
    assert path.read_bytes() == before  # the old baseline, whole
    assert sorted(os.listdir(suite.parent)) == ["baseline.json", "suite.yaml"]


def test_write_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    baselines.write(path, {"symcheck_baseline": 1, "cases": {}})
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    path.chmod(0o640)
    baselines.write(path, {"symcheck_baseline": 1, "cases": {}})
    assert path.stat().st_mode & 0o777 == 0o640
    assert json.loads(path.read_text()) == {"symcheck_baseline": 1, "cases": {}}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_bad_baseline_usage(suite: Path) -> None:
    missing = suite.parent / "nope.json"
    r = cli("verify", suite, "--baseline", missing)
    assert r.exit_code == EXIT_BAD_INPUT
    assert f"no baseline file {missing}" in r.stderr
    assert not missing.exists()
    for flag in ("--update-baseline", "--strict-baseline"):
        r = cli("verify", suite, flag)
        assert r.exit_code == EXIT_BAD_INPUT
        assert f"{flag} needs --baseline FILE" in r.output
    broken = suite.parent / "broken.json"
    broken.write_text('{"symcheck_baseline": 1,\n "cases": [}\n')
    r = cli("verify", suite, "--baseline", broken)
    assert r.exit_code == EXIT_BAD_INPUT
    assert f"{broken}:2: error: the baseline is not valid JSON" in r.stderr
    other = suite.parent / "other.json"
    other.write_text('{"schema": 1}')
    r = cli("verify", suite, "--baseline", other)
    assert r.exit_code == EXIT_BAD_INPUT
    assert "is not a symcheck baseline of format 1" in r.stderr
