"""What verify tells a suite's author: numbers in expect (and in --claim) are checked where they can
be, never silently skipped; -q shows what did not pass; every schema mistake comes in one run."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from symcheck.cli import main


def _verify(tmp_path: Path, text: str) -> tuple[int, str]:
    suite = tmp_path / "s.yaml"
    suite.write_text(text, encoding="utf-8")
    r = CliRunner().invoke(main, ["verify", str(suite), "--no-cache"])
    return r.exit_code, r.output


def test_wrong_numbers_for_random_inputs_fail_instead_of_passing_unchecked(tmp_path: Path) -> None:
    code, output = _verify(
        tmp_path,
        "cases:\n  - name: wrong\n    expr: sum(x^2)\n    inputs: {x: {shape: [3]}}\n"
        "    expect: {value: 12345, grad: {x: 999}}\n",
    )
    assert code == 1, output
    assert "expect    value = 12345: WRONG" in output and "expect    dout/dx = 999: WRONG" in output


def test_a_constant_gradient_given_as_a_number_is_checked_at_random_points(tmp_path: Path) -> None:
    code, output = _verify(
        tmp_path,
        "cases:\n  - name: constant\n    expr: sum(x * b + c)\n"
        "    inputs: {x: {shape: [2, 3]}, b: {shape: [3]}, c: {shape: [2, 1]}}\n    expect: {grad: {c: 3}}\n",
    )
    assert code == 0, output
    assert "expect    dout/dc = 3: ok" in output


def test_a_number_claimed_on_the_command_line_is_the_gradient_at_the_given_values() -> None:
    """The tutorial's x.grad = 4.5 at x = 1: right there, whatever the gradient is at random points."""
    right = CliRunner().invoke(main, ["grad", "mean(3*(x+2)^2)", "-i", "x:2x2=1", "--claim", "x: 4.5"])
    assert right.exit_code == 0, right.output
    assert "expect    dout/dx = 4.5: ok" in right.output
    wrong = CliRunner().invoke(main, ["grad", "mean(3*(x+2)^2)", "-i", "x:2x2=1", "--claim", "x: 4"])
    assert wrong.exit_code == 1, wrong.output
    assert "claimed 4, true 4.5" in wrong.output


def test_verify_quiet_shows_the_failures_and_the_summary_only(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "cases:\n  - name: right\n    expr: sum(x^2)\n    inputs: {x: {value: [1, 2]}}\n"
        "    expect: {grad: {x: [2, 4]}}\n  - name: wrong\n    expr: sum(x^2)\n"
        "    inputs: {x: {value: [1, 2]}}\n    expect: {grad: {x: [2, 5]}}\n",
        encoding="utf-8",
    )
    r = CliRunner().invoke(main, ["verify", "-q", str(suite), "--no-cache"])
    assert r.exit_code == 1, r.output
    assert "FAIL  wrong" in r.output and "PASS  right" not in r.output
    assert r.output.rstrip().endswith("1 passed, 1 failed")


def test_every_schema_mistake_of_the_files_comes_in_one_run(tmp_path: Path) -> None:
    """exprr, fil and tolerence in one case, a duplicate name in another file: all four at once."""
    first = tmp_path / "a.yaml"
    first.write_text(
        "cases:\n  - name: a\n    exprr: sum(x)\n    inputs: {x: {fil: 1, shape: [2]}}\n    tolerence: 1\n",
        encoding="utf-8",
    )
    second = tmp_path / "b.yaml"
    second.write_text(
        "cases:\n  - name: b\n    expr: sum(x)\n    inputs: {x: {shape: [2]}}\n"
        "  - name: b\n    expr: sum(x)\n    inputs: {x: {shape: [2]}}\n",
        encoding="utf-8",
    )
    r = CliRunner().invoke(main, ["verify", str(first), str(second)])
    assert r.exit_code == 2, r.output
    for words in (
        "unknown key 'exprr'",
        "unknown key 'fil'",
        "unknown key 'tolerence'",
        "duplicate case name 'b'",
    ):
        assert words in r.output, r.output
    assert "4 error(s) in the input" in r.output
    assert "missing" not in r.output  # the missing expr is explained by exprr
