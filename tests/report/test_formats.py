"""Report formats for CI (symcheck/report/formats.py): JUnit XML, GitHub annotations, colour, progress."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from symcheck.checks.runner import CaseResult, run_cases
from symcheck.cli import EXIT_INTERNAL, EXIT_MISMATCH, EXIT_OK, main
from symcheck.engines.autograd.engine import AutogradEngine
from symcheck.engines.base import EngineOptions, EngineResult
from symcheck.language.ir import Program
from symcheck.report.github import annotation, escape_data, escape_property, github_annotations
from symcheck.report.junit import render_junit
from symcheck.report.terminal import Progress, colorize, use_color
from symcheck.suites.loader import load_suite

WriteSuite = Callable[..., Path]

# Line 2: the case; line 10: the wrong formula. Symbolic + autograd keep it fast.
SUITE = """\
suite: demo
cases:
  - name: good
    expr: sum(x^2)
    inputs:
      x: {value: [1, 2]}
    samples: 0
    engines: [symbolic, autograd]
  - name: wrong-formula
    expr: sum(x^2)
    inputs:
      x: {value: [1, 2]}
    samples: 0
    engines: [symbolic, autograd]
    expect:
      grad:
        x: 3*x
"""
OTHER = """\
cases:
  - name: other
    expr: sum(2*y)
    inputs:
      y: {value: [1, 2, 3]}
    samples: 0
    engines: [symbolic, autograd]
"""


def cli(*args: str | Path, env: Mapping[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=dict(env or {}))


def run(*paths: Path) -> list[CaseResult]:
    results, errors = run_cases([c for p in paths for c in load_suite(p).cases])
    assert errors == []
    return results


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def wrong_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """autograd's d/dx is off by one at index 1 (an engine bug, not a failed expectation)."""
    original = AutogradEngine.run

    def wrong(
        self: AutogradEngine,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        result = original(self, program, inputs, wrt, options)
        result.grads = {k: v.copy() for k, v in result.grads.items()}
        result.grads["x"][1] += 1.0
        return result

    monkeypatch.setattr(AutogradEngine, "run", wrong)


@pytest.fixture
def crashing_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> EngineResult:
        raise ValueError("broken\x00engine")  # a NUL byte is not allowed in XML, even escaped

    monkeypatch.setattr(AutogradEngine, "run", crash)


# ---------------------------------------------------------------- JUnit


def test_junit_parses_with_one_suite_per_file_and_counts(write_suite: WriteSuite) -> None:
    a, b = write_suite(SUITE, "a.yaml"), write_suite(OTHER, "b.yaml")
    r = cli("verify", a, b, "--format", "junit")
    assert r.exit_code == EXIT_MISMATCH, r.output
    root = ET.fromstring(r.stdout)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["demo", "b"]  # the suite's name, else the file's stem
    assert [(s.get("tests"), s.get("failures")) for s in suites] == [("2", "1"), ("1", "0")]
    cases = suites[0].findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("line")) for c in cases] == [
        ("demo", "good", "3"),
        ("demo", "wrong-formula", "9"),
    ]
    assert cases[0].get("file") == str(a)
    assert float(cases[0].get("time") or "nan") >= 0
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "expect dout/dx = 3*x: WRONG: claimed 6, true 4 at index (1,), at the given values"
    )
    assert failure.text is not None
    assert failure.text.startswith(f"FAIL  wrong-formula  ({a}:9)")
    assert "claimed - true = x" in failure.text


def test_junit_engine_mismatch_and_crash(
    write_suite: WriteSuite, wrong_autograd: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_suite(SUITE)
    root = ET.fromstring(render_junit(run(path)))
    failure = root.find("testsuite/testcase[@name='good']/failure")
    assert failure is not None
    assert failure.get("message") == (
        "MISMATCH autograd vs symbolic, dout/dx, at the given values: At (1,): autograd = 5, symbolic = 4"
    )
    assert "At (1,): autograd = 5, symbolic = 4" in (failure.text or "")

    monkeypatch.setattr(AutogradEngine, "run", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad\x00")))
    results = run(path)
    assert {r.status for r in results} == {"error"}
    text = render_junit(results)
    root = ET.fromstring(text)  # well-formed despite the NUL in the engine's message
    assert root.get("errors") == "2"
    error = root.find("testsuite/testcase/error")
    assert error is not None
    assert "CRASHED   autograd" in (error.text or "")


def test_junit_from_the_cli_exits_3_on_a_crash(write_suite: WriteSuite, crashing_autograd: None) -> None:
    r = cli("verify", write_suite(SUITE), "--format", "junit")
    assert r.exit_code == EXIT_INTERNAL
    assert ET.fromstring(r.stdout).get("errors") == "2"


# ---------------------------------------------------------------- GitHub


def test_github_escaping_follows_the_toolkit() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert annotation("error", "x: y, z", file="s.yaml", line=3, title="t: 1, 2") == (
        "::error file=s.yaml,line=3,title=t%3A 1%2C 2::x: y, z"
    )


ANNOTATION = re.compile(r"^::error file=([^,]*),line=(\d+),title=([^:]*)::(.*)$")


def test_github_points_at_the_expectation_and_the_case(write_suite: WriteSuite, wrong_autograd: None) -> None:
    path = write_suite(SUITE)
    lines = github_annotations(run(path))
    parsed = [ANNOTATION.match(line) for line in lines]
    assert all(parsed), lines
    where = [(m.group(1), int(m.group(2))) for m in parsed if m]
    # good: autograd mismatch at the case line; wrong-formula: its formula's own line (17), and the
    # case line for the autograd mismatch that it has too.
    assert where == [(path.as_posix(), 3), (path.as_posix(), 17), (path.as_posix(), 9)]
    assert all("\n" not in line and "\r" not in line for line in lines)
    first = parsed[0]
    assert first is not None
    assert first.group(3).startswith("symcheck%3A good%3A MISMATCH autograd vs symbolic")
    assert "%0A" in first.group(4)  # the whole case report, one line
    second = parsed[1]
    assert second is not None
    assert second.group(4).startswith("expect dout/dx = 3*x: WRONG at the given values")


def test_github_format_from_the_cli(write_suite: WriteSuite, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_suite(SUITE)
    monkeypatch.chdir(path.parent)
    r = cli("verify", path, "--format", "github")
    assert r.exit_code == EXIT_MISMATCH
    out = r.stdout.splitlines()
    assert "2 cases, 2 points: 1 passed, 1 failed" in out  # the text report for the log
    errors = [line for line in out if line.startswith("::")]
    # Relative to the working directory, which GitHub runs in: the repository.
    assert errors == [line for line in errors if line.startswith("::error file=suite.yaml,line=17,")]
    assert len(errors) == 1
    assert cli("verify", write_suite(OTHER, "b.yaml"), "--format", "github").stdout.count("::") == 0


# ---------------------------------------------------------------- colour


def test_use_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color("auto", FakeTTY())
    assert not use_color("auto", io.StringIO())
    assert not use_color("never", FakeTTY())
    assert use_color("always", io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", FakeTTY())
    assert not use_color("always", FakeTTY())  # NO_COLOR means no colour, ever (issue 4)
    monkeypatch.setenv("NO_COLOR", "")  # set but empty: ignored
    assert use_color("auto", FakeTTY())


def test_colorize() -> None:
    text = "\n".join(
        [
            "PASS  a  (s.yaml:1)",
            "FAIL  b  (s.yaml:5)",
            "      note      kink",
            "      MISMATCH  torch vs symbolic, dout/dx, at the given values:",
            "      expect    dout/dx = 3*x: WRONG",
            "      expect    value = 5: ok",
            "2 cases, 2 points: 1 passed, 1 failed",
        ]
    )
    lines = colorize(text).split("\n")
    assert lines[0] == "\x1b[32mPASS\x1b[0m  a  (s.yaml:1)"
    assert lines[1] == "\x1b[31mFAIL\x1b[0m  b  (s.yaml:5)"
    assert lines[2].startswith("\x1b[2m")
    assert lines[3].startswith("\x1b[31m") and lines[3].endswith("\x1b[0m")
    assert lines[4].startswith("\x1b[31m")
    assert lines[5] == "      expect    value = 5: ok"
    assert lines[6].startswith("\x1b[31m")
    assert re.sub(r"\x1b\[\d+m", "", colorize(text)) == text


def test_color_flag_and_no_color(write_suite: WriteSuite) -> None:
    path = write_suite(OTHER)
    plain = cli("verify", path)
    assert plain.exit_code == EXIT_OK
    assert "\x1b[" not in plain.stdout  # not a terminal
    colored = cli("verify", path, "--color", "always")
    assert "\x1b[32mPASS\x1b[0m  other" in colored.stdout
    assert re.sub(r"\x1b\[\d+m", "", colored.stdout) == plain.stdout
    assert "\x1b[" not in cli("verify", path, "--color", "auto", env={"NO_COLOR": "1"}).stdout
    assert "\x1b[" not in cli("verify", path, "--color", "always", "--format", "json").stdout
    assert cli("verify", path, "--color", "sometimes").exit_code == 2


# ---------------------------------------------------------------- progress


def test_progress_only_on_a_terminal(write_suite: WriteSuite) -> None:
    (result,) = run(write_suite(OTHER))
    quiet = io.StringIO()
    progress = Progress(quiet, delay=0)
    progress(1, 3, result)
    progress.close()
    assert quiet.getvalue() == ""

    tty = FakeTTY()
    progress = Progress(tty, delay=0)
    progress(1, 3, result)
    progress(2, 3, result)
    assert tty.getvalue() == "\r\x1b[2K[1/3] other\r\x1b[2K[2/3] other"
    progress.close()
    assert tty.getvalue().endswith("\r\x1b[2K")  # the line is cleared before the report

    now = [0.0]
    slow = FakeTTY()
    progress = Progress(slow, delay=0.5, clock=lambda: now[0])
    progress(1, 3, result)  # a quick suite shows nothing
    assert slow.getvalue() == ""
    now[0] = 1.0
    progress(2, 3, result)
    assert "[2/3] other" in slow.getvalue()


def test_no_progress_in_a_log(write_suite: WriteSuite) -> None:
    r = cli("verify", write_suite(SUITE), write_suite(OTHER, "b.yaml"))
    assert r.stderr == ""


# ---------------------------------------------------------------- Markdown (pull-request comments)


def test_markdown_has_a_table_per_suite_file_and_folds_the_failures(write_suite: WriteSuite) -> None:
    a = write_suite(SUITE, "a.yaml")
    b = write_suite(OTHER, "b.yaml")
    r = cli("verify", a, b, "--format", "markdown")
    assert r.exit_code == EXIT_MISMATCH, r.output
    out = r.output
    assert out.startswith("**symcheck verify**: 3 cases: 2 passed, 1 failed\n")
    assert f"#### `{a}`: 1 passed, 1 failed" in out and f"#### `{b}`: 1 passed, 0 failed" in out
    assert out.count("| case | status | gradients | engines | claims |") == 2
    assert "| good | ✅ pass | `dout/dx = 2*x` | symbolic: reference, autograd: ok (0.0e+00) |  |" in out
    assert "| wrong-formula | ❌ FAIL | `dout/dx = 2*x` |" in out and "dout/dx = 3*x: not proven |" in out
    # only the failure's report, folded
    assert out.count("<details>") == 1 and "<summary>wrong-formula: fail</summary>" in out
    assert "expect    dout/dx = 3*x: WRONG" in out


def test_markdown_escapes_a_pipe_in_a_cell(write_suite: WriteSuite) -> None:
    from symcheck.report.markdown import render_markdown

    (result,) = run(write_suite(SUITE.replace("name: good", "name: a|b"), "p.yaml"))[:1]
    assert "| a\\|b |" in render_markdown([result])
