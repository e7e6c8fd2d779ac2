from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import symcheck.suites.loader
from symcheck.cli import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_MISMATCH, EXIT_OK, main
from symcheck.engines.autograd.engine import AutogradEngine
from symcheck.language.catalogue import CATALOGUE

WriteSuite = Callable[..., Path]

SEED = """\
cases:
  - name: seed
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    samples: 0
    expect:
      value: 27
"""


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def python_m_symcheck(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "symcheck", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_exit_codes_are_distinct() -> None:
    assert (EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_INTERNAL) == (0, 1, 2, 3)


# ---------------------------------------------------------------- exit 0 and 1


def test_tutorial_suite_passes(tutorial: Path) -> None:
    r = cli("verify", tutorial, "--samples", "0")
    assert r.exit_code == EXIT_OK, r.output
    assert "seed-one-expression" in r.stdout
    assert r.stdout.rstrip().endswith("4 cases, 4 points: 4 passed, 0 failed")
    assert r.stderr == ""


def test_a_failed_expectation_exits_1(write_suite: WriteSuite) -> None:
    path = write_suite(SEED.replace("value: 27", "value: 28"))
    r = cli("verify", path)
    assert r.exit_code == EXIT_MISMATCH, r.output
    assert "FAIL  seed" in r.stdout
    assert "expect    value = 28: WRONG" in r.stdout


def test_an_engine_mismatch_exits_1(write_suite: WriteSuite, monkeypatch: pytest.MonkeyPatch) -> None:
    original = AutogradEngine.run

    def wrong(self, program, inputs, wrt, options):  # type: ignore[no-untyped-def]
        result = original(self, program, inputs, wrt, options)
        result.grads["x"] = result.grads["x"] * 2
        return result

    monkeypatch.setattr(AutogradEngine, "run", wrong)
    r = cli("verify", write_suite(SEED), "--engines", "torch,autograd")
    assert r.exit_code == EXIT_MISMATCH, r.output
    assert "MISMATCH  autograd vs torch, dout/dx" in r.stdout
    assert "Mismatched elements: 4 / 4 (100.0%)" in r.stdout


# ---------------------------------------------------------------- exit 2: bad input


def test_parse_error_in_a_suite_points_at_file_line_col(write_suite: WriteSuite) -> None:
    path = write_suite(SEED.replace("mean(3*(x+2)^2)", "mean(3*(x+2)^^2)"))
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    # `    expr: ` is 10 characters; the second '^' is character 14 of the expression.
    assert f"{path}:3:24: error:" in r.stderr
    lines = r.stderr.splitlines()
    source = lines.index("    mean(3*(x+2)^^2)")
    caret = lines[source + 1]
    assert caret.strip() == "^"
    assert caret.index("^") == 4 + 13
    assert "1 error(s) in the input" in r.stderr
    assert "Traceback" not in r.output
    assert r.stdout == ""


def test_parse_error_in_a_block_expression_points_at_its_file_line(write_suite: WriteSuite) -> None:
    path = write_suite(
        """\
        cases:
          - name: steps
            expr: |
              y = x + 2
              out = mean(3*y^^2)
            inputs:
              x: {shape: [2, 2], fill: 1}
        """
    )
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    # The block's text starts on line 4 and is indented by 6; the second '^' is character 16 of line 2.
    assert f"{path}:5:22: error:" in r.stderr
    lines = r.stderr.splitlines()
    source = lines.index("    out = mean(3*y^^2)")
    assert lines[source + 1].index("^") == 4 + 15


def test_unknown_yaml_key_suggests_the_right_one(write_suite: WriteSuite) -> None:
    path = write_suite(SEED.replace("    expr:", "    exprr:"))
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert f"{path}:3: error: unknown key 'exprr'" in r.stderr
    assert "did you mean 'expr'?" in r.stderr
    assert "Traceback" not in r.output


def test_malformed_yaml(write_suite: WriteSuite) -> None:
    path = write_suite("cases:\n  - name: a\n    expr: [sum(x)\n    inputs: {x: 1}\n")
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert f"{path}:" in r.stderr
    assert "malformed YAML" in r.stderr
    assert "Traceback" not in r.output


def test_unknown_engine_in_engines_option(write_suite: WriteSuite) -> None:
    r = cli("verify", write_suite(SEED), "--engines", "symbolic,torhc")
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "unknown engine 'torhc'" in r.stderr
    assert "did you mean 'torch'?" in r.stderr


def test_grad_without_an_input_spec() -> None:
    r = cli("grad", "mean(x*y)", "-i", "x:2=1")
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "no input spec for y" in r.stderr
    assert "-i y:2x2=1" in r.stderr


def test_grad_parse_error_has_a_caret() -> None:
    r = cli("grad", "mean(3*(x+2)^^2)", "-i", "x:2x2=1")
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "<command line>:1:14: error:" in r.stderr
    lines = r.stderr.splitlines()
    assert lines[lines.index("    mean(3*(x+2)^^2)") + 1].index("^") == 4 + 13


def test_no_case_matches_k(tutorial: Path) -> None:
    r = cli("verify", tutorial, "-k", "no-such-case")
    assert r.exit_code == EXIT_BAD_INPUT
    assert "no cases found matching -k 'no-such-case'" in r.stderr


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    r = cli("verify", tmp_path / "nope.yaml")
    assert r.exit_code == EXIT_BAD_INPUT


# ---------------------------------------------------------------- exit 3: our bugs


def test_internal_error_exits_3(tutorial: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(paths: object) -> None:
        raise RuntimeError("the loader broke")

    monkeypatch.setattr(symcheck.suites.loader, "load_paths", broken)
    r = cli("verify", tutorial)
    assert r.exit_code == EXIT_INTERNAL, r.output
    assert "internal error (this is a bug in symcheck" in r.stderr
    assert "RuntimeError: the loader broke" in r.stderr


def test_an_engine_crash_exits_3(write_suite: WriteSuite, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(AutogradEngine, "run", boom)
    r = cli("verify", write_suite(SEED), "--engines", "autograd,numeric")
    assert r.exit_code == EXIT_INTERNAL, r.output
    assert "CRASHED   autograd" in r.stdout


# ---------------------------------------------------------------- output formats and selection


def test_json_output(tutorial: Path) -> None:
    r = cli("verify", tutorial, "--samples", "0", "--format", "json")
    assert r.exit_code == EXIT_OK, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1
    assert doc["summary"] == {"cases": 4, "passed": 4, "failed": 0, "skipped": 0, "errors": 0}
    assert [(c["name"], c["status"]) for c in doc["cases"]] == [
        ("seed-one-expression", "pass"),
        ("seed-named-steps", "pass"),
        ("seed-grad-by-steps", "pass"),
        ("seed-larger-x", "pass"),
    ]


def test_json_output_of_a_failure(write_suite: WriteSuite) -> None:
    r = cli("verify", write_suite(SEED.replace("value: 27", "value: 28")), "--format", "json")
    assert r.exit_code == EXIT_MISMATCH
    doc = json.loads(r.stdout)
    assert doc["summary"]["failed"] == 1
    (case,) = doc["cases"]
    assert case["status"] == "fail"
    (expectation,) = case["points"][0]["expectations"]
    assert (expectation["what"], expectation["claim"], expectation["ok"]) == ("value", "28", False)


def test_k_selects_cases_by_name(repo: Path) -> None:
    r = cli("verify", repo / "expressions", "-k", "grad-by", "--format", "json", "--samples", "0")
    assert r.exit_code == EXIT_OK, r.output
    doc = json.loads(r.stdout)
    assert [c["name"] for c in doc["cases"]] == ["seed-grad-by-steps"]


def test_options_override_the_suite(write_suite: WriteSuite) -> None:
    args = ("--engines", "autograd,numeric", "--samples", "1", "--seed", "3")
    r = cli("verify", write_suite(SEED), *args, "--format", "json")
    assert r.exit_code == EXIT_OK, r.output
    (case,) = json.loads(r.stdout)["cases"]
    assert [e["engine"] for e in case["engines"]] == ["autograd", "numeric"]
    assert [p["label"] for p in case["points"]] == ["given values", "random point 1 (seed 3)"]
    assert {p["reference"] for p in case["points"]} == {"autograd"}


def test_ops_lists_every_op() -> None:
    r = cli("ops")
    assert r.exit_code == EXIT_OK, r.output
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    assert names == [op.name for op in CATALOGUE]
    relu = next(line for line in r.stdout.splitlines() if line.startswith("relu "))
    assert "relu is not differentiable at 0" in relu


def test_grad_prints_the_seed_example() -> None:
    r = cli("grad", "mean(3*(x+2)^2)", "-i", "x:2x2=1")
    assert r.exit_code == EXIT_OK, r.output
    assert "value     out = 27" in r.stdout
    assert "dout/dx = 3/2*(x + 2)" in r.stdout
    assert "x.grad = [[4.5, 4.5]," in r.stdout
    assert "[4.5, 4.5]]" in r.stdout
    assert r.stdout.rstrip().endswith("1 cases, 3 points: 1 passed, 0 failed")


def test_grad_wrt_and_named_steps() -> None:
    r = cli("grad", "y = x + 2\nout = sum(y*w)", "-i", "x=[1,2]", "-i", "w=[3,4]", "--wrt", "w")
    assert r.exit_code == EXIT_OK, r.output
    assert "dout/dw = x + 2" in r.stdout
    assert "dout/dx" not in r.stdout


# ---------------------------------------------------------------- as a program


def test_help_does_not_import_torch_or_sympy(repo: Path) -> None:
    code = (
        "import sys\n"
        "from symcheck.cli import main\n"
        "for args in (['--help'], ['verify', '--help'], ['grad', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'sympy') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Usage: " in p.stdout
    assert "heavy: []" in p.stdout


def test_python_m_symcheck_exit_codes(repo: Path, tmp_path: Path) -> None:
    ok = python_m_symcheck(
        "grad", "mean(3*(x+2)^2)", "-i", "x:2x2=1", "--engines", "autograd,numeric", cwd=repo
    )
    assert ok.returncode == EXIT_OK, ok.stderr
    assert "reference: autograd" in ok.stdout
    suite = tmp_path / "bad.yaml"
    suite.write_text(SEED.replace("mean(3*(x+2)^2)", "mean(3*(x+2)^^2)"))
    bad = python_m_symcheck("verify", str(suite), cwd=repo)
    assert bad.returncode == EXIT_BAD_INPUT
    assert f"{suite}:3:24: error:" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert bad.stdout == ""


def test_a_keywords_bare_word_value_is_not_an_input() -> None:
    """`reduction=sum` names a choice of the keyword, not an input called sum."""
    r = CliRunner().invoke(
        main, ["grad", "nll_loss(log_softmax(z), y, reduction=sum)", "-i", "z:3", "-i", "y:int"]
    )
    assert r.exit_code == 0, r.output
    assert "PASS  nll_loss(log_softmax(z), y, reduction=sum)" in r.output


@pytest.mark.parametrize(
    ("expr", "message", "col"),
    [
        ("mean(x, keepdims=maximum)", "keepdims must be True or False", 18),
        ("clamp(x, min=x)", "min must be a number", 14),
    ],
)
def test_a_keywords_wrong_bare_word_is_located_not_asked_for_as_an_input(
    expr: str, message: str, col: int
) -> None:
    r = CliRunner().invoke(main, ["grad", expr, "-i", "x:2"])
    assert r.exit_code == 2
    assert f"<command line>:1:{col}: error: {message}" in r.output
    assert "no input spec" not in r.output


@pytest.mark.parametrize("expr", ["sum(x[r, y])", "sum(x[y, 0])"])
def test_an_index_tensor_before_another_index_is_refused_not_given_another_meaning(expr: str) -> None:
    r = CliRunner().invoke(main, ["grad", expr, "-i", "x:3x3", "-i", "y:2:int=[0,2]", "-i", "r:2:int=[1,1]"])
    assert r.exit_code == 2
    assert "an index tensor followed by another index means pairs in torch" in r.output


def test_the_command_exits_with_its_status_and_all_its_output(tmp_path: Path) -> None:
    # `symcheck` ends with os._exit after flushing (no teardown of SymPy's and torch's objects):
    # the exit status, the whole report and the error messages must still all arrive.
    args = ["grad", "mean(3*(x+2)^2)", "-i", "x:2x2=1", "--engines", "autograd,numeric"]
    ok = python_m_symcheck(*args, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith("1 cases, 3 points: 1 passed, 0 failed")
    bad = python_m_symcheck("grad", "mean(x", "-i", "x:2", cwd=tmp_path)
    assert bad.returncode == 2
    assert "error: unexpected end of input" in bad.stderr and "Traceback" not in bad.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path, tutorial: Path) -> None:
    command = [sys.executable, "-m", "symcheck", "verify", str(tutorial), "--engines", "numeric"]
    reader = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None
    reader.stdout.readline()
    reader.stdout.close()  # as `| head -1` does
    _, stderr = reader.communicate(timeout=120)
    assert b"Traceback" not in stderr
