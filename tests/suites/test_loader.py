from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from symcheck.engines.registry import DEFAULT_ENGINES
from symcheck.language.errors import SymcheckError
from symcheck.language.inputs import InputSpec, RandomSpec
from symcheck.language.ir import DType
from symcheck.suites.case import Case, Suite
from symcheck.suites.loader import load_paths, load_suite
from symcheck.suites.programs import case_wrt, grad_programs, parse_case_program

FULL = """\
suite: tutorial                # optional; default the file's stem
defaults: {samples: 3}         # optional
cases:
  - name: seed-one-expression  # required, unique in the file
    description: optional text
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    wrt: [x]
    expect:
      value: 27
      grad:
        x: 3/2*(x+2)
    engines: [symbolic, autograd, torch, numeric]
    tolerance: {rtol: 1e-6, atol: 1e-9, numeric: {rtol: 1e-4, atol: 1e-6}}
    samples: 2
    seed: 0
    expansion_budget: 256
    dtype: float64
    device: cpu
  - name: steps
    expr: |
      y = x + 2
      z = 3*y^2
      out = mean(z)
    inputs:
      x: [[1, 2], [3, 4]]
    expect:
      grad:
        x: [[4.5, 6], [7.5, 9]]
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path: Path, text: str) -> SymcheckError:
    path = write(tmp_path, text)
    with pytest.raises(SymcheckError) as e:
        suite = load_suite(path)
        for case in suite.cases:
            parse_case_program(case)
    return e.value


def one_case(tmp_path: Path, text: str) -> Case:
    (case,) = load_suite(write(tmp_path, text)).cases
    return case


# ---------------------------------------------------------------- the format


def test_full_example_loads(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, FULL))
    assert isinstance(suite, Suite)
    assert suite.name == "tutorial" and suite.path == str(tmp_path / "suite.yaml")
    first, second = suite.cases
    assert (first.name, first.line, second.name, second.line) == ("seed-one-expression", 4, "steps", 21)
    assert first.description == "optional text"
    assert first.expr == "mean(3*(x+2)^2)"
    assert first.inputs == {"x": InputSpec(shape=(2, 2), fill=1)}
    assert first.wrt == ["x"]
    assert (
        first.expect.value is not None and float(first.expect.value) == 27 and first.expect.value_line == 11
    )
    grad = first.expect.grads["x"]
    assert grad.formula == "3/2*(x+2)" and grad.numbers is None and grad.line == 13
    assert first.engines == ["symbolic", "autograd", "torch", "numeric"]
    assert first.tolerance.rtol == 1e-6 and first.tolerance.atol == 1e-9
    assert first.tolerance.for_engine("numeric") == (1e-4, 1e-6)
    assert first.tolerance.for_engine("torch") == (1e-6, 1e-9)
    assert (first.samples, first.seed, first.expansion_budget, first.dtype, first.device) == (
        2,
        0,
        256,
        "float64",
        "cpu",
    )
    assert second.samples == 3  # from defaults
    assert second.wrt is None and case_wrt(second) == ["x"]
    assert second.engines == list(DEFAULT_ENGINES)
    assert second.expr == "y = x + 2\nz = 3*y^2\nout = mean(z)\n"
    np.testing.assert_array_equal(second.expect.grads["x"].numbers, [[4.5, 6], [7.5, 9]])
    for case in suite.cases:
        program = parse_case_program(case)
        assert program.output_type.shape == ()
    formulas = grad_programs(first, parse_case_program(first))
    assert set(formulas) == {"x"} and list(formulas["x"].inputs) == ["x"]


def test_grad_formula_may_use_steps(tmp_path: Path) -> None:
    case = one_case(
        tmp_path,
        """\
        - name: steps
          expr: |
            y = x + 2
            out = mean(3*y^2)
          inputs: {x: {shape: [2, 2]}}
          expect:
            grad:
              x: 3/2*y
        """,
    )
    formula = grad_programs(case, parse_case_program(case))["x"]
    assert list(formula.inputs) == ["y"] and formula.output_type.shape == (2, 2)


def test_bare_list_and_default_name(tmp_path: Path) -> None:
    suite = load_suite(
        write(
            tmp_path,
            """\
            - name: a
              expr: sum(x)
              inputs: {x: {shape: [3]}}
            - name: b
              expr: 3
            """,
            "basics.yml",
        )
    )
    assert suite.name == "basics"
    assert [c.name for c in suite.cases] == ["a", "b"]
    assert [c.line for c in suite.cases] == [1, 4]
    assert suite.cases[1].expr == "3"
    assert suite.cases[1].samples == 2 and suite.cases[1].seed == 0


def test_every_input_form(tmp_path: Path) -> None:
    case = one_case(
        tmp_path,
        """\
        - name: forms
          expr: sum(a) + sum(b) + c + sum(d) + sum(e) + sum(f) + sum(g) + sum(h)
          inputs:
            a: {shape: [2, 2], fill: 1}
            b: {value: [[1, 2], [3, 4]]}
            c: 0.5
            d: [1, 2, 3]
            e: {shape: [3], random: {low: -1, high: 1, seed: 3}}
            f: {shape: [3]}
            g: {shape: [4], dtype: int, value: [0, 1, 1, 0]}
            h: {shape: 2, random: {distribution: normal, mean: 1, std: 0.5}}
        """,
    )
    assert case.inputs == {
        "a": InputSpec(shape=(2, 2), fill=1),
        "b": InputSpec(value=[[1, 2], [3, 4]]),
        "c": InputSpec(value=0.5),
        "d": InputSpec(value=[1, 2, 3]),
        "e": InputSpec(shape=(3,), random=RandomSpec(-1, 1, seed=3)),
        "f": InputSpec(shape=(3,)),
        "g": InputSpec(shape=(4,), dtype=DType.INT, value=[0, 1, 1, 0]),
        "h": InputSpec(shape=(2,), random=RandomSpec(1, 0.5, "normal")),
    }
    assert case.input_lines == {n: 4 + i for i, n in enumerate("abcdefgh")}
    assert case_wrt(case) == ["a", "b", "c", "d", "e", "f", "h"]
    parse_case_program(case)


def test_defaults_merge_into_tolerance(tmp_path: Path) -> None:
    case = one_case(
        tmp_path,
        """\
        defaults:
          tolerance: {rtol: 1e-5}
          engines: [autograd, numeric]
          seed: 4
        cases:
          - name: a
            expr: x
            inputs: {x: 1}
            tolerance: {numeric: {atol: 1e-3}}
            seed: 5
        """,
    )
    assert case.tolerance.for_engine("numeric") == (1e-5, 1e-3)
    assert case.engines == ["autograd", "numeric"]
    assert case.seed == 5


def test_single_strings_for_lists(tmp_path: Path) -> None:
    case = one_case(tmp_path, "- {name: a, expr: x*y, inputs: {x: 1, y: 2}, wrt: x, engines: torch}\n")
    assert case.wrt == ["x"] and case.engines == ["torch"]


# ---------------------------------------------------------------- positions inside expressions


def test_parse_error_in_plain_expr_points_at_file_line_col(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """\
        cases:
          - name: a
            inputs: {x: 1}
            expr: mean(3*(x+2)^^2)
        """,
    )
    assert err.location() == f"{tmp_path / 'suite.yaml'}:4:24"
    assert "mean(3*(x+2)^^2)" in err.render()


def test_parse_error_in_block_expr(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """\
        cases:
          - name: a
            inputs: {x: 1}
            expr: |
              y = x + 2
              out = mean(y +* 2)
        """,
    )
    assert err.location().endswith("suite.yaml:6:21")
    assert "    out = mean(y +* 2)\n" + " " * 18 + "^" in err.render()


def test_parse_error_in_quoted_expr(tmp_path: Path) -> None:
    err = load_error(tmp_path, '- name: a\n  inputs: {x: 1}\n  expr: "mean(x $ 2)"\n')
    assert err.location().endswith("suite.yaml:3:17")


def test_error_in_grad_formula(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """\
        - name: a
          expr: sum(x*y)
          inputs: {x: [1, 2], y: 2}
          expect:
            grad:
              x: y + z
        """,
    )
    assert err.location().endswith("suite.yaml:6:14")
    assert "unknown name 'z'" in err.message
    assert err.hint is not None and "x, y" in err.hint


def test_undeclared_input_points_at_the_expr(tmp_path: Path) -> None:
    err = load_error(tmp_path, "- name: a\n  expr: x + yy\n  inputs: {x: 1}\n")
    assert err.location().endswith("suite.yaml:2:13")
    assert "'yy'" in err.message and err.hint is not None and "yy: {shape: [...]}" in err.hint


def test_undeclared_input_suggests_a_declared_one(tmp_path: Path) -> None:
    err = load_error(tmp_path, "- name: a\n  expr: x + yy\n  inputs: {x: 1, y: 2}\n")
    assert err.hint == "did you mean 'y'?"


def test_unused_input_points_at_its_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "- name: a\n  expr: x\n  inputs:\n    x: 1\n    y: 2\n")
    assert (err.line, err.message) == (5, "input 'y' is not used by the expression")


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        ("cases:\n  - name: a\n    exprr: x\n", 3, "unknown key 'exprr'", "did you mean 'expr'?"),
        ("suite: s\ncase:\n  - name: a\n", 2, "unknown key 'case'", "did you mean 'cases'?"),
        ("- name: a\n  expr: x\n  inputs:\n    x: {shape: [2], fil: 1}\n", 4, "unknown key 'fil'", "'fill'"),
        ("- name: a\n  expr: x\n  inputs:\n    x: {random: {lo: 1}}\n", 4, "unknown key 'lo'", "'low'"),
        ("- name: a\n  expr: x\n  tolerance: {numerc: {rtol: 1}}\n", 3, "unknown key 'numerc'", "'numeric'"),
        ("- name: a\n  expr: x\n  expect: {grads: {x: 1}}\n", 3, "unknown key 'grads'", "'grad'"),
        ("defaults: {sample: 3}\ncases:\n- name: a\n  expr: x\n", 1, "unknown key 'sample'", "'samples'"),
        ("defaults:\n  expr: x\ncases:\n- name: a\n  expr: x\n", 2, "'expr' cannot have a default", None),
        ("- name: a\n  expr: x\n  engines: [symbolc]\n", 3, "unknown engine 'symbolc'", "'symbolic'"),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, line: int, message: str, hint: str | None) -> None:
    err = load_error(tmp_path, text)
    assert err.filename == str(tmp_path / "suite.yaml")
    assert err.line == line
    assert message in err.message
    if hint is not None:
        assert err.hint is not None and hint in err.hint


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "- name: a\n  expr: x\n  inputs:\n    x: {shape: [2], fill: abc}\n",
            4,
            "'inputs.x.fill' must be a number",
        ),
        ("- name: a\n  expr: x\n  samples: many\n", 3, "'samples' must be an integer, got 'many'"),
        ("- name: a\n  expr: x\n  samples: -1\n", 3, "'samples' must be at least 0"),
        (
            "- name: a\n  expr: x\n  inputs: {x: {shape: [2, b]}}\n",
            3,
            "items of 'inputs.x.shape' must be an integer",
        ),
        ("- name: a\n  expr: x\n  dtype: float8\n", 3, "'dtype' must be one of"),
        ("- name: a\n  expr: x\n  device: gpu\n", 3, "'device' must be cpu, cuda"),
        ("- name: a\n  expr: x\n  inputs: [x]\n", 3, "'inputs' must be a mapping"),
        ("- name: 3\n  expr: x\n", 1, "'name' must be text"),
        (
            "- name: a\n  expr: x\n  tolerance: {rtol: true}\n",
            3,
            "'tolerance.rtol' must be a number, got true",
        ),
        ("defaults: {seed: x}\ncases:\n- name: a\n  expr: x\n", 1, "'seed' must be an integer"),
        ("- name: a\n  expr: x\n  inputs:\n    x: [[1, 2], [3]]\n", 4, "input 'x': value is ragged"),
        ("- name: a\n  expr: x\n  inputs:\n    x: {shape: [3], value: [1, 2]}\n", 4, "value has shape [2]"),
        ("- name: a\n  expr: x\n  inputs:\n    x: {random: {low: 1, std: 2}}\n", 4, "mean and std"),
        ("- name: a\n  expr: x\n  inputs:\n    exp: 1\n", 4, "'exp' is the name of a function"),
        ("- name: a\n  expr: x\n  expect: {value: [1, x]}\n", 3, "expect.value: expected a number"),
        ("- name: a\n  expr: x\n  engines: []\n", 3, "'engines' is empty"),
        ("cases: 3\n", 1, "'cases' must be a list"),
        ("cases: []\n", 1, "no cases"),
        ("- 3\n", 1, "each case is a mapping"),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, line: int, message: str) -> None:
    err = load_error(tmp_path, text)
    assert err.line == line
    assert message in err.message


def test_missing_name_and_expr(tmp_path: Path) -> None:
    err = load_error(tmp_path, "cases:\n  - name: a\n    inputs: {x: 1}\n")
    assert (err.line, err.message) == (2, "missing required key 'expr'")
    assert err.hint is not None and "expr:" in err.hint
    err = load_error(tmp_path, "cases:\n  - expr: x\n    inputs: {x: 1}\n")
    assert (err.line, err.message) == (2, "missing required key 'name'")


def test_duplicate_case_names(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        "- {name: a, expr: x, inputs: {x: 1}}\n- {name: b, expr: x, inputs: {x: 1}}\n- name: a\n  expr: x\n",
    )
    assert err.line == 3
    assert "duplicate case name 'a' (first at line 1)" in err.message


def test_empty_file(tmp_path: Path) -> None:
    err = load_error(tmp_path, "# nothing here\n")
    assert err.message == "empty suite file" and err.filename == str(tmp_path / "suite.yaml")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("cases:\n  - name: a\n    expr: x: y\n", 3, "mapping values are not allowed here"),
        ("cases:\n  - name: a\n   expr: x\n", 3, "malformed YAML"),
        ("- name: a\n  name: b\n", 2, "duplicate key"),
        ("cases: [\n", 2, "malformed YAML"),
    ],
)
def test_malformed_yaml(tmp_path: Path, text: str, line: int, message: str) -> None:
    err = load_error(tmp_path, text)
    assert err.line == line
    assert message in err.message and "column" in err.message
    assert err.hint


def test_program_checks(tmp_path: Path) -> None:
    cases = {
        "wrt names 'z', which is not an input": "- {name: a, expr: x*y, inputs: {x: 1, y: 2}, wrt: [z]}",
        "an int input": "- {name: a, expr: x*y, inputs: {x: 1, y: {dtype: int, value: 2}}, wrt: [y]}",
        "'y', which is not in wrt": "- {name: a, expr: x*y, inputs: {x: 1, y: 2}, wrt: x, "
        "expect: {grad: {y: 1}}}",
        "'w', which is not an input": "- {name: a, expr: x*y, inputs: {x: 1, y: 2}, expect: {grad: {w: 1}}}",
        "expect.value has shape [3] but the output has shape []": "- {name: a, expr: x, inputs: {x: 1}, "
        "expect: {value: [1, 2, 3]}}",
        "expect.grad.x has shape [3]": "- {name: a, expr: sum(x), inputs: {x: [1, 2]}, "
        "expect: {grad: {x: [1, 2, 3]}}}",
    }
    for message, text in cases.items():
        err = load_error(tmp_path, text + "\n")
        assert message in err.message
        assert err.line == 1


def test_grad_formula_shape_mismatch(tmp_path: Path) -> None:
    err = load_error(
        tmp_path, "- name: a\n  expr: sum(x)\n  inputs: {x: [1, 2]}\n  expect: {grad: {x: '[y]'}}\n"
    )
    assert "unexpected '['" in err.message
    err = load_error(
        tmp_path,
        "- name: a\n  expr: sum(x*w)\n  inputs: {x: [1, 2], w: [[1, 2], [3, 4]]}\n  wrt: x\n"
        "  expect: {grad: {x: w}}\n",
    )
    assert "has shape [2, 2] but 'x' has shape [2]" in err.message
    assert err.location().endswith("suite.yaml:5:22")


def test_numbers_broadcast(tmp_path: Path) -> None:
    case = one_case(
        tmp_path, "- {name: a, expr: 2*x, inputs: {x: [1, 2]}, expect: {value: [2, 4], grad: {x: 2}}}\n"
    )
    program = parse_case_program(case)
    assert program.output_type.shape == (2,)
    np.testing.assert_array_equal(case.expect.grads["x"].numbers, 2)


# ---------------------------------------------------------------- paths


def test_directory_loading(tmp_path: Path) -> None:
    body = "- {name: c, expr: x, inputs: {x: 1}}\n"
    write(tmp_path, body, "b.yaml")
    write(tmp_path, body, "a.yml")
    write(tmp_path, body, "sub/c.yaml")
    write(tmp_path, "not a suite", "notes.txt")
    single = write(tmp_path / "other", body, "single.yaml")
    suites = load_paths([str(tmp_path / "sub"), str(single)])
    assert [s.name for s in suites] == ["c", "single"]
    suites = load_paths([tmp_path])
    assert [Path(s.path).relative_to(tmp_path).as_posix() for s in suites] == [
        "a.yml",
        "b.yaml",
        "other/single.yaml",
        "sub/c.yaml",
    ]


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(SymcheckError, match="no such file"):
        load_paths([str(tmp_path / "nope.yaml")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SymcheckError, match=r"no \.yaml or \.yml suites"):
        load_paths([str(tmp_path / "empty")])
