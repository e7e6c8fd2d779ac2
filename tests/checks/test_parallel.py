"""Scale-out: -j N runs cases in worker processes with the serial report; --shard I/N splits a run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from symcheck.checks.runner import CaseResult, run_cases
from symcheck.cli import EXIT_BAD_INPUT, EXIT_MISMATCH, _Jobs, main, shard_cases
from symcheck.suites.loader import load_suite

WriteSuite = Callable[..., Path]

# autograd and finite differences only: the workers start without importing torch or sympy.
CASE = """\
  - name: {name}
    expr: {expr}
    inputs:
      x: {{value: [0.5, 1.5, 2.5]}}
    samples: 1
    engines: [autograd, numeric]
"""
EXPRS = ["sum(x^2)", "mean(exp(x))", "sum(sin(x)*x)", "sum(tanh(x))", "sum(log(x))", "sum(sqrt(x))"]


@pytest.fixture
def suites(write_suite: WriteSuite) -> list[Path]:
    first = "cases:\n" + "".join(CASE.format(name=f"a{i}", expr=e) for i, e in enumerate(EXPRS[:4]))
    first += "    expect: {value: 99}\n"  # the last case fails: exit 1 either way
    second = "cases:\n" + "".join(CASE.format(name=f"b{i}", expr=e) for i, e in enumerate(EXPRS[4:]))
    return [write_suite(first, "a.yaml"), write_suite(second, "b.yaml")]


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def without_times(report: str) -> dict[str, Any]:
    doc = json.loads(report)
    for case in doc["cases"]:
        case.pop("seconds")
    return doc


def test_jobs_give_the_serial_report(suites: list[Path]) -> None:
    serial = cli("verify", *suites, "--format", "json")
    parallel = cli("verify", *suites, "--format", "json", "-j", "2")
    assert serial.exit_code == parallel.exit_code == EXIT_MISMATCH, parallel.output
    assert without_times(parallel.stdout) == without_times(serial.stdout)
    names = [c["name"] for c in without_times(parallel.stdout)["cases"]]
    assert names == ["a0", "a1", "a2", "a3", "b0", "b1"]  # the original order
    assert parallel.stderr == ""  # no progress line off a terminal


def test_run_cases_reports_progress_in_order(suites: list[Path]) -> None:
    seen: list[tuple[int, int, str]] = []

    def progress(done: int, total: int, result: CaseResult) -> None:
        seen.append((done, total, result.case.name))

    results, errors = run_cases(load_suite(suites[1]).cases, progress=progress)
    assert errors == []
    assert seen == [(1, 2, "b0"), (2, 2, "b1")]
    assert all(r.seconds > 0 for r in results)


def test_shards_partition_the_cases(suites: list[Path]) -> None:
    def names(*args: str) -> list[str]:
        r = cli("verify", *suites, "--format", "json", "--engines", "autograd,numeric", *args)
        assert r.exit_code in (0, 1), r.output
        return [c["name"] for c in json.loads(r.stdout)["cases"]]

    everything = names()
    one, two = names("--shard", "1/2"), names("--shard", "2/2")
    assert one == ["a0", "a2", "b0"] and two == ["a1", "a3", "b1"]  # round-robin in load order
    assert sorted(one + two) == sorted(everything)
    assert names("--shard", "1/2") == one  # deterministic
    thirds = [names("--shard", f"{i}/3") for i in (1, 2, 3)]
    assert sorted(n for share in thirds for n in share) == sorted(everything)
    assert names("-k", "a", "--shard", "2/2") == ["a1", "a3"]  # shards split what -k selected


def test_more_shards_than_cases_is_an_empty_pass(suites: list[Path]) -> None:
    r = cli("verify", suites[1], "--shard", "3/3")
    assert r.exit_code == 0
    assert r.stdout.strip() == "0 cases, 0 points: 0 passed, 0 failed"


def test_shard_cases_partitions() -> None:
    items = list(range(10))
    shares = [shard_cases(items, i, 4) for i in range(1, 5)]
    assert sorted(i for share in shares for i in share) == items
    assert shares[0] == [0, 4, 8]


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "2", "a/b", "1/2/3", "-1/2", ""])
def test_bad_shard_specs_exit_2(suites: list[Path], spec: str) -> None:
    r = cli("verify", suites[1], "--shard", spec)
    assert r.exit_code == EXIT_BAD_INPUT
    assert "--shard" in r.stderr


@pytest.mark.parametrize("jobs", ["-1", "x", "1.5"])
def test_bad_jobs_exit_2(suites: list[Path], jobs: str) -> None:
    r = cli("verify", suites[1], "-j", jobs)
    assert r.exit_code == EXIT_BAD_INPUT


def test_jobs_auto_is_one_per_cpu() -> None:
    cpus = os.cpu_count() or 1
    assert _Jobs().convert("auto", None, None) == cpus
    assert _Jobs().convert("0", None, None) == cpus
    assert _Jobs().convert("3", None, None) == 3


def test_workers_see_the_parents_settings_of_now(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Workers fork from a forkserver started earlier, with the environment of its own start: the
    # settings that matter travel with each pool (the cache's, symcheck's own, the user's folders).
    from symcheck.checks.runner import _worker_env

    monkeypatch.setenv("SYMCHECK_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SYMCHECK_NO_CACHE")
    env = dict(_worker_env())
    assert env["SYMCHECK_CACHE_DIR"] == str(tmp_path)
    assert env["SYMCHECK_NO_CACHE"] is None  # unset there too
    assert "PATH" not in env
