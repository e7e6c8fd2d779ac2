"""Hostile suite input is refused or neutralised: data files outside the project, tolerances that
would pass anything, case names that would inject lines into a CI log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from symcheck.cli import main
from symcheck.language.errors import SymcheckError
from symcheck.suites.loader import load_suite

TRAIN = """\
cases:
  - name: reads-outside
    expr: sum(w * x)
    inputs:
      w: {shape: [2]}
      x: {shape: [2]}
    train:
      parameters: [w]
      data: {path}
      optimizer: {lr: 0.1}
      epochs: 1
"""


@pytest.mark.parametrize("where", ["../secret.json", "ABSOLUTE"])
def test_a_data_file_outside_the_suites_folder_is_refused_unread(
    where: str, tmp_path: Path, write_suite: Callable[..., Path]
) -> None:
    secret = tmp_path.parent / "secret.json"
    secret.write_text(json.dumps({"password": [1, 2]}), encoding="utf-8")
    path = str(secret) if where == "ABSOLUTE" else where
    with pytest.raises(SymcheckError) as e:
        load_suite(write_suite(TRAIN.replace("{path}", path)))
    assert "is outside" in e.value.message
    assert "password" not in e.value.render()  # never echoes the file's content


@pytest.mark.parametrize("tolerance", ["{atol: .inf}", "{rtol: .nan}", "{numeric: {atol: 1e400}}"])
def test_a_tolerance_that_would_pass_anything_is_refused(
    tolerance: str, write_suite: Callable[..., Path]
) -> None:
    path = write_suite(
        f"""\
        cases:
          - name: loose
            expr: sum(x^2)
            inputs: {{x: [1, 2]}}
            tolerance: {tolerance}
        """
    )
    with pytest.raises(SymcheckError):
        load_suite(path)


def test_a_case_name_cannot_inject_a_workflow_command(write_suite: Callable[..., Path]) -> None:
    path = write_suite(
        """\
        cases:
          - name: "x\\n::error file=evil.py,line=1::pwned\\r"
            expr: sum(sin(x))
            inputs: {x: [1, 2]}
            tolerance: {numeric: {rtol: 0, atol: 0}}
        """
    )
    out = CliRunner().invoke(main, ["verify", str(path), "--format", "github"]).output
    assert not any(line.startswith("::error file=evil.py") for line in out.splitlines())
    assert "x\\n::error file=evil.py,line=1::pwned\\r" in out  # shown, escaped, in the text report
    assert "\r" not in out


def test_a_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join([*lines, "cases: *a9"]) + "\n", encoding="utf-8")
    with pytest.raises(SymcheckError, match="expands to more than 1,000,000 values"):
        load_suite(path)


def test_yaml_nested_thousands_deep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("cases: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(SymcheckError, match="nested too deeply"):
        load_suite(path)


def test_merge_keys_take_their_values_and_positions_from_the_anchor(write_suite: Callable[..., Path]) -> None:
    path = write_suite(
        """\
        cases:
          - name: first
            expr: sum(x*x)
            <<: &common
              inputs: {x: 2}
              samples: 1
          - <<: *common
            name: second
            expr: sum(sin(x))
          - <<: [*common]
            name: third
            expr: sum(x^3)
            samples: 2
        """
    )
    suite = load_suite(path)
    assert [(c.name, c.samples) for c in suite.cases] == [("first", 1), ("second", 1), ("third", 2)]
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!python/object:os.system sum(x)", "YAML tag !!python/object:os.system is not part of"),
        ("!custom sum(x)", "YAML tag !custom is not part of the suite format"),
        ("!!binary aGVsbG8=", "a YAML bytes value is not part of the suite format"),
        ("!!set {a, b}", "is not part of the suite format"),
        ("2001-12-14", "a YAML date value is not part of the suite format"),
    ],
)
def test_yaml_tags_and_exotic_types_are_refused_where_they_are(
    value: str, message: str, write_suite: Callable[..., Path]
) -> None:
    path = write_suite(f"cases:\n  - name: t\n    inputs: {{x: 2}}\n    expr: {value}\n")
    with pytest.raises(SymcheckError) as e:
        load_suite(path)
    assert message in e.value.render()
    assert f"{path}:4:" in e.value.render()


def test_plain_yaml_tags_are_plain_values(write_suite: Callable[..., Path]) -> None:
    path = write_suite("cases:\n  - name: t\n    inputs: {x: !!int 2}\n    expr: !!str sum(x)\n")
    assert load_suite(path).cases[0].expr == "sum(x)"


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "github"])
def test_a_lone_surrogate_in_a_case_name_is_shown_in_every_format(
    fmt: str, write_suite: Callable[..., Path]
) -> None:
    path = write_suite('cases:\n  - name: "a\\ud800b"\n    expr: sum(x)\n    inputs: {x: 2}\n')
    result = CliRunner().invoke(main, ["verify", str(path), "--format", fmt])
    assert result.exit_code == 0, result.output
    result.output.encode("utf-8")  # printable, whatever the format


def test_a_suite_or_baseline_that_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, tutorial: Path
) -> None:
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = CliRunner().invoke(main, ["verify", str(tutorial), "--baseline", str(fifo)])
    assert r.exit_code == 2 and "is not a regular file" in r.output, r.output
    suite_fifo = tmp_path / "suite.yaml"
    os.mkfifo(suite_fifo)
    r = CliRunner().invoke(main, ["verify", str(suite_fifo)])
    assert r.exit_code == 2 and "is not a regular file" in r.output, r.output


def test_a_baseline_that_is_not_utf8_is_bad_input(tmp_path: Path, tutorial: Path) -> None:
    broken = tmp_path / "baseline.json"
    broken.write_bytes(b"\xff\xfe not text")
    r = CliRunner().invoke(main, ["verify", str(tutorial), "--baseline", str(broken)])
    assert r.exit_code == 2 and "not UTF-8 text" in r.output, r.output


def test_a_scalar_that_trips_the_yaml_library_is_malformed_yaml(write_suite: Callable[..., Path]) -> None:
    text = "cases:\n  - name: t\n    inputs:\n      x:\n        shape: !!bool yes\n          - 6\n"
    path = write_suite(text)
    with pytest.raises(SymcheckError, match="malformed YAML"):
        load_suite(path)


@pytest.mark.parametrize("separator", ["\\u0085", "\\u2028", "\\u2029"])
def test_unicode_line_separators_in_a_case_name_break_no_line(
    separator: str, write_suite: Callable[..., Path]
) -> None:
    path = write_suite(f'cases:\n  - name: "a{separator}b"\n    expr: sum(x)\n    inputs: {{x: [1, 2]}}\n')
    for fmt in ("text", "github"):
        out = CliRunner().invoke(main, ["verify", str(path), "--format", fmt, "--samples", "0"]).output
        assert all(line == line.strip("\x85\u2028\u2029") for line in out.splitlines())
        assert len(out.splitlines()) == len(out.split("\n")) - (1 if out.endswith("\n") else 0)


def test_an_undecodable_byte_in_an_argument_is_printed_escaped() -> None:
    # a command-line byte that is not UTF-8 arrives as a lone surrogate (fuzz: UnicodeEncodeError)
    r = CliRunner().invoke(main, ["grad", "sum(x9) #\udcff", "-i", "x9:2", "--samples", "0"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["grad", "sum(x9) + \udcff", "-i", "x9:2"])
    assert r.exit_code == 2, r.output


def test_yaml_flow_nesting_past_the_limit_is_refused_before_ruamel_scans_it(tmp_path: Path) -> None:
    # ruamel's scanner is quadratic in flow nesting: 5,000 levels took past 20 s (fuzz: a hang)
    path = tmp_path / "deep.yaml"
    path.write_text("cases: []\ndeep: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(SymcheckError) as e:
        load_suite(path)
    assert f"{path}:2" in e.value.render() and "nested too deeply" in e.value.render()


def test_brackets_in_quoted_scalars_and_comments_are_not_nesting(write_suite: Callable[..., Path]) -> None:
    deep = "[" * 70
    path = write_suite(f'cases:\n  - name: "{deep}"\n    expr: sum(x)  # {deep}\n    inputs: {{x: 2}}\n')
    assert load_suite(path).cases[0].name == deep
