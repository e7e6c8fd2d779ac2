"""symcheck's pytest plugin (symcheck/pytest_plugin.py), run on temporary projects with pytester.

In-process runs load only our plugin (`-p symcheck.pytest_plugin`, other installed plugins off:
they would be re-imported by every run); the subprocess run finds it through its entry point.
The suites use the autograd and numeric engines only, so no torch or sympy to import.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from importlib.metadata import entry_points

import pytest

# pytester's in-process runs drop the modules first imported inside them, and numpy cannot be
# imported twice in one process: import what the items use here, once.
from symcheck.checks import runner
from symcheck.engines.registry import load_engine
from symcheck.report import text
from symcheck.suites import loader

pytest_plugins = ["pytester"]
PRELOADED = (text, loader, runner, load_engine("autograd"), load_engine("numeric"))

SUITE = """\
cases:
  - name: good
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    engines: [autograd, numeric]
    expect:
      grad:
        x: 4.5

  - name: bad
    expr: sum(sin(x))
    inputs:
      x: {shape: [3], fill: 1}
    engines: [autograd, numeric]
    tolerance: {numeric: {rtol: 0, atol: 0}}  # finite differences are never exact: a mismatch
    expect:
      grad:
        x: 0.5
"""
BAD_LINE = 11  # the line of `- name: bad`

ONE_CASE = """\
cases:
  - name: {name}
    expr: sum(x^2)
    inputs:
      x: {{shape: [2], fill: 1}}
    engines: [autograd, numeric]
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Callable[..., pytest.RunResult]:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "symcheck.pytest_plugin", *args)

    return run


def write(pytester: pytest.Pytester, name: str, text: str) -> None:
    path = pytester.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_one_item_per_case_pass_and_fail(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    write(pytester, "grads.symcheck.yaml", SUITE)
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*symcheck case bad*",
            # first, what failed: the line pytest's short summary shows
            "bad: expect dout/dx = 0.5: WRONG: claimed 0.5, true 0.5403023059 at index (0,)*",
            f"FAIL  bad  (grads.symcheck.yaml:{BAD_LINE})",
            "*expect    dout/dx = 0.5: WRONG: claimed 0.5, true 0.5403023059*",
            "*MISMATCH  numeric vs autograd, dout/dx, at the given values:",
            "*Mismatched elements: * / 3 *",
            "*Greatest absolute difference: *",
            "FAILED grads.symcheck.yaml::bad - bad: expect dout/dx = 0.5: WRONG*",
        ]
    )
    # symcheck's report, not a traceback of the plugin
    assert "Traceback" not in out and "pytest_plugin.py" not in out and "CaseFailed" not in out


def test_node_ids_and_location_point_at_the_case_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pytester, "sub/grads.symcheck.yaml", SUITE)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    reprec = pytester.inline_run("-p", "symcheck.pytest_plugin")
    reports = {r.nodeid: r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"}
    assert sorted(reports) == ["sub/grads.symcheck.yaml::bad", "sub/grads.symcheck.yaml::good"]
    bad = reports["sub/grads.symcheck.yaml::bad"]
    assert bad.failed
    path, line, domain = bad.location
    assert path == "sub/grads.symcheck.yaml"
    assert line + 1 == BAD_LINE  # pytest's locations are 0-based
    assert "bad" in domain
    assert reports["sub/grads.symcheck.yaml::good"].location[1] + 1 == 2


def test_plain_yaml_is_not_collected_unless_named(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    write(pytester, "expressions/plain.yaml", ONE_CASE.format(name="plain"))
    write(pytester, "a.symcheck.yaml", ONE_CASE.format(name="collected"))
    run().assert_outcomes(passed=1)
    # a YAML file named on the command line is a suite, whatever its name
    result = run("expressions/plain.yaml", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*expressions/plain.yaml::plain PASSED*"])


def test_ini_and_command_line_patterns(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    write(pytester, "one.suite.yaml", ONE_CASE.format(name="one"))
    write(pytester, "suites/two.yml", ONE_CASE.format(name="two"))
    write(pytester, "three.symcheck.yaml", ONE_CASE.format(name="three"))
    pytester.makeini("[pytest]\nsymcheck_files = *.suite.yaml suites/*.yml\n")
    result = run("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*one.suite.yaml::one PASSED*", "*suites/two.yml::two PASSED*"])
    assert "three" not in result.stdout.str()
    result = run("-v", "--symcheck-files", "*.symcheck.yaml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*three.symcheck.yaml::three PASSED*"])


def test_keyword_and_marker_select_cases(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    write(pytester, "grads.symcheck.yaml", SUITE)
    run("-k", "good").assert_outcomes(passed=1, deselected=1)
    run("-m", "not symcheck").assert_outcomes(deselected=2)


def test_bad_yaml_is_a_located_collection_error(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    write(pytester, "typo.symcheck.yaml", "cases:\n  - name: a\n    exprr: sum(x)\n")
    write(pytester, "broken.symcheck.yaml", "cases:\n  - name: a\n   expr: [\n")
    write(pytester, "fine.symcheck.yaml", ONE_CASE.format(name="fine"))
    result = run("--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting broken.symcheck.yaml*",
            "*broken.symcheck.yaml:*: error: malformed YAML*",
            "*ERROR collecting typo.symcheck.yaml*",
            "*typo.symcheck.yaml:3: error: unknown key 'exprr'",
            "*hint: did you mean 'expr'?",
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out and "SymcheckError" not in out


def test_a_case_that_does_not_prepare_fails_with_the_located_message(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    write(
        pytester,
        "cases.symcheck.yaml",
        """\
        cases:
          - name: undeclared
            expr: sum(x * y)
            inputs:
              x: {shape: [2], fill: 1}
            engines: [autograd, numeric]
          - name: fine
            expr: sum(x^2)
            inputs:
              x: {shape: [2], fill: 1}
            engines: [autograd, numeric]
        """,
    )
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cases.symcheck.yaml:3:*: error: 'y' is used by the expression but not declared under inputs",
            "*sum(x * y)",
            "*^*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_impl_imports_only_with_the_opt_in(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    write(
        pytester,
        "squares.py",
        """\
        def value(x):
            return float((x**2).sum())


        def grad(x):
            return {"x": 2 * x}
        """,
    )
    write(
        pytester,
        "impl.symcheck.yaml",
        """\
        cases:
          - name: mine
            expr: sum(x^2)
            impl: "squares:value"
            impl_grad: "squares:grad"
            inputs:
              x: {value: [1, -2, 3]}
            engines: [autograd, numeric]
        """,
    )
    refused = run()
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*impl.symcheck.yaml:*: error: *"])
    assert "Traceback" not in refused.stdout.str()
    run("--symcheck-allow-import").assert_outcomes(passed=1)


def test_the_entry_point_registers_the_plugin() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("symcheck") == "symcheck.pytest_plugin"


def test_xdist_runs_the_cases_with_stable_node_ids(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pytester, "grads.symcheck.yaml", SUITE)
    for i in range(3):
        write(pytester, f"more_{i}.symcheck.yaml", ONE_CASE.format(name=f"case-{i}"))
    first = run("--collect-only", "-q")
    again = run("--collect-only", "-q")
    ids = [line for line in first.stdout.lines if "::" in line]
    assert ids == [line for line in again.stdout.lines if "::" in line] and len(ids) == 5
    # a fresh process that finds the plugin (and xdist) through the installed entry points
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["FAIL  bad  (grads.symcheck.yaml:11)", "*Mismatched elements*"])
