"""The user's own implementation as an engine column (`impl:`, symcheck/suites/imports.py), end to end.

tests/impl_project/ is a user's project: a package with a custom torch.autograd.Function whose
backward is right and one whose backward misses a factor on one branch, a pyproject.toml that opts
in to importing it, and a suite for each.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from symcheck.cli import EXIT_BAD_INPUT, EXIT_MISMATCH, EXIT_OK, main
from symcheck.engines.base import EngineOptions
from symcheck.engines.user import ImplEngine
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse
from symcheck.suites.loader import load_suite

PROJECT = Path(__file__).resolve().parents[1] / "impl_project"
OK_SUITE = PROJECT / "swish_ok.symcheck.yaml"
BAD_SUITE = PROJECT / "swish_bad.symcheck.yaml"
BAD_CASE_LINE = 4  # `- name: swish-negative-branch` in swish_bad.symcheck.yaml
BAD_IMPL_LINE = 6  # its `impl:` line


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


pytestmark = pytest.mark.usefixtures("isolated_imports")  # tests/suites/conftest.py


def copy_project(tmp_path: Path, *, config: str | None) -> Path:
    """The project's package and suites in tmp_path, with `config` as its pyproject.toml (None: none)."""
    shutil.copytree(PROJECT / "mylayers", tmp_path / "mylayers")
    for suite in (OK_SUITE, BAD_SUITE):
        shutil.copy(suite, tmp_path / suite.name)
    if config is not None:
        (tmp_path / "pyproject.toml").write_text(textwrap.dedent(config), encoding="utf-8")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


SUITE = """\
cases:
  - name: swish
    expr: sum(w * x * sigmoid(x))
    impl: "{impl}"
{extra}    inputs:
      x: {{value: [0.5, -1.5, 2.0, 1.0]}}
      w: {{value: [1.0, 2.0, 0.5, 1.5]}}
    samples: 0
"""


def suite(tmp_path: Path, impl: str, extra: str = "", name: str = "case.symcheck.yaml") -> Path:
    return write(tmp_path / name, SUITE.format(impl=impl, extra=extra))


# ---------------------------------------------------------------- the acceptance project


def test_the_right_backward_passes_with_an_impl_column() -> None:
    r = cli("verify", OK_SUITE)
    assert r.exit_code == EXIT_OK, r.output
    assert r.stdout.count("        impl      ok ") == 2  # the autograd.Function and the numpy one
    for engine in ("symbolic  reference", "autograd  ok", "torch     ok", "numeric   ok"):
        assert r.stdout.count(engine) == 2, engine  # the other engines run as usual
    assert r.stdout.rstrip().endswith("2 cases, 6 points: 2 passed, 0 failed")


def test_the_wrong_backward_fails_at_the_element_and_the_case_line() -> None:
    r = cli("verify", BAD_SUITE)
    assert r.exit_code == EXIT_MISMATCH, r.output
    out = r.stdout
    assert f"FAIL  swish-negative-branch  ({BAD_SUITE}:{BAD_CASE_LINE})" in out
    assert "        impl      mismatch" in out
    assert "        torch     ok" in out  # the expression itself is fine: only the implementation is off
    given = out.index("MISMATCH  impl vs symbolic, dout/dx, at the given values:")
    block = out[given:]
    # x = [0.5, -1.5, 2.0, 1.0]: only the negative element takes the wrong branch.
    assert "Mismatched elements: 1 / 4 (25.0%)" in block
    assert "at index (1,)" in block
    assert "At (1,): impl = -0.182425523806, symbolic = -0.0825883085983" in block


def test_the_json_report_carries_the_impl_column_the_element_and_the_line() -> None:
    r = cli("verify", BAD_SUITE, "--format", "json")
    assert r.exit_code == EXIT_MISMATCH, r.output
    case = json.loads(r.stdout)["cases"][0]
    assert (case["file"], case["line"], case["status"]) == (str(BAD_SUITE), BAD_CASE_LINE, "fail")
    engines = {e["engine"]: e["status"] for e in case["engines"]}
    assert engines == {
        "symbolic": "reference",
        "autograd": "ok",
        "torch": "ok",
        "numeric": "ok",
        "impl": "mismatch",
    }
    given = case["points"][0]
    assert given["label"] == "given values"
    (impl,) = [c for c in given["comparisons"] if c["engine"] == "impl"]
    (bad,) = [c for c in impl["checks"] if not c["ok"]]
    assert (bad["what"], bad["worst_index"], bad["mismatched"], bad["total"]) == ("dout/dx", [1], 1, 4)

    r = cli("verify", OK_SUITE, "--format", "json")
    assert r.exit_code == EXIT_OK, r.output
    doc = json.loads(r.stdout)
    assert [e["status"] for c in doc["cases"] for e in c["engines"] if e["engine"] == "impl"] == ["ok", "ok"]


def test_the_junit_report_fails_the_wrong_backward_at_its_line() -> None:
    r = cli("verify", BAD_SUITE, "--format", "junit")
    assert r.exit_code == EXIT_MISMATCH, r.output
    root = ET.fromstring(r.stdout)
    (testcase,) = root.iter("testcase")
    assert testcase.get("name") == "swish-negative-branch"
    assert testcase.get("line") == str(BAD_CASE_LINE)
    failure = testcase.find("failure")
    assert failure is not None
    assert "MISMATCH  impl vs symbolic, dout/dx" in (failure.text or "")
    assert "at index (1,)" in (failure.text or "")

    r = cli("verify", OK_SUITE, "--format", "junit")
    assert r.exit_code == EXIT_OK, r.output
    assert all(tc.find("failure") is None for tc in ET.fromstring(r.stdout).iter("testcase"))


def test_the_github_report_annotates_the_case_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    r = cli("verify", BAD_SUITE, "--format", "github")
    assert r.exit_code == EXIT_MISMATCH, r.output
    annotations = [line for line in r.stdout.splitlines() if line.startswith("::error ")]
    assert annotations, r.stdout
    # The file as the repository knows it (GitHub resolves it against the checkout).
    where = f"file={BAD_SUITE.relative_to(Path.cwd()) if BAD_SUITE.is_relative_to(Path.cwd()) else BAD_SUITE}"
    assert any(f"{where},line={BAD_CASE_LINE}," in a and "index (1,)" in a for a in annotations), annotations

    r = cli("verify", OK_SUITE, "--format", "github")
    assert r.exit_code == EXIT_OK, r.output
    assert "::error " not in r.stdout


# ---------------------------------------------------------------- opting in


def test_without_opt_in_nothing_is_imported_and_the_impl_line_says_how(tmp_path: Path) -> None:
    root = copy_project(tmp_path, config=None)
    # Importing this module would leave a mark: it must not happen.
    write(root / "sideeffect.py", "from pathlib import Path\nPath(__file__).with_name('ran').touch()\n")
    path = suite(root, "sideeffect:f")
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert f"{path}:4:12: error: impl: 'sideeffect:f' would import and run Python code" in r.stderr
    assert "hint: pass --allow-import, or set `allow-import = true` under [tool.symcheck]" in r.stderr
    assert not (root / "ran").exists()
    assert "sideeffect" not in sys.modules

    r = cli("verify", root / BAD_SUITE.name)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert f"{root / BAD_SUITE.name}:{BAD_IMPL_LINE}:12: error: impl:" in r.stderr

    r = cli("verify", root / BAD_SUITE.name, "--allow-import")
    assert r.exit_code == EXIT_MISMATCH, r.output
    assert "at index (1,)" in r.stdout


@pytest.mark.parametrize(
    "config",
    [
        "[project]\nname = 'mine'\n",
        "[tool.symcheck]\nallow-import = false\n",
    ],
)
def test_a_pyproject_without_the_setting_does_not_opt_in(tmp_path: Path, config: str) -> None:
    root = copy_project(tmp_path, config=config)
    r = cli("verify", root / OK_SUITE.name)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert f"under [tool.symcheck] in {root / 'pyproject.toml'}" in r.stderr


def test_the_nearest_pyproject_above_the_suite_opts_in_and_is_the_import_root(tmp_path: Path) -> None:
    root = copy_project(tmp_path, config="[tool.symcheck]\nallow-import = true\n")
    nested = root / "checks" / "deeper" / OK_SUITE.name
    nested.parent.mkdir(parents=True)
    shutil.move(root / OK_SUITE.name, nested)
    r = cli("verify", nested)
    assert r.exit_code == EXIT_OK, r.output
    assert r.stdout.count("impl      ok") == 2

    # A nearer pyproject.toml without the setting is the one that counts.
    write(nested.parent / "pyproject.toml", "[tool.other]\nx = 1\n")
    r = cli("verify", nested)
    assert r.exit_code == EXIT_BAD_INPUT, r.output


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[tool.symcheck]\nallow-import = "yes"\n',
            "pyproject.toml:2: error: [tool.symcheck] allow-import must",
        ),
        ("[tool.symcheck]\nallow_import = true\n", "the setting is spelled 'allow-import'"),
        ("[tool.symcheck\n", "malformed TOML"),
    ],
)
def test_a_wrong_setting_is_an_error_at_the_pyproject(tmp_path: Path, config: str, message: str) -> None:
    root = copy_project(tmp_path, config=config)
    r = cli("verify", root / OK_SUITE.name)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert message in r.stderr


def test_a_suite_cannot_opt_itself_in(tmp_path: Path) -> None:
    copy_project(tmp_path, config=None)
    path = suite(tmp_path, "mylayers:swish_loss", extra="    allow_import: true\n")
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "unknown key 'allow_import'" in r.stderr


# ---------------------------------------------------------------- import problems are located errors


@pytest.mark.parametrize(
    ("impl", "files", "message", "col"),
    [
        ("nosuchmodule:f", {}, "impl: no module named 'nosuchmodule'", 12),
        ("mylayers:swish_los", {}, "impl: 'mylayers' has no attribute 'swish_los'", 21),
        ("mylayers.inner:f", {}, "impl: no module named 'mylayers.inner'", 12),
        ("broken:f", {"broken.py": "x = 1\n1 / 0\n"}, "importing 'broken' failed: ZeroDivisionError", 12),
        (
            "needsdep:f",
            {"needsdep.py": "import notinstalled_dep\n"},
            "No module named 'notinstalled_dep'",
            12,
        ),
        ("syntax:f", {"syntax.py": "def f(:\n"}, "importing 'syntax' failed: SyntaxError", 12),
        ("mylayers:Swish", {}, "is a torch.autograd.Function class", 12),
        ("mylayers:np", {}, "impl: 'mylayers:np' is not callable", 12),
        ("mylayers/swish", {}, "impl must name a function as 'package.module:function'", 12),
        ("onearg:f", {"onearg.py": "def f(x):\n    return x.sum()\n"}, "cannot take the case's inputs", 12),
    ],
)
def test_import_problems_are_located_errors(
    tmp_path: Path, impl: str, files: dict[str, str], message: str, col: int
) -> None:
    copy_project(tmp_path, config="[tool.symcheck]\nallow-import = true\n")
    for name, text in files.items():
        write(tmp_path / name, text)
    path = suite(tmp_path, impl)
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert f"{path}:4:{col}: error: " in r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.output


def test_an_import_error_names_the_line_of_the_users_code(tmp_path: Path) -> None:
    copy_project(tmp_path, config="[tool.symcheck]\nallow-import = true\n")
    broken = write(tmp_path / "broken.py", "x = 1\n1 / 0\n")
    r = cli("verify", suite(tmp_path, "broken:f"))
    assert f"(at {broken}:2 in <module>)" in r.stderr


def test_a_missing_attribute_suggests_the_right_name(tmp_path: Path) -> None:
    copy_project(tmp_path, config="[tool.symcheck]\nallow-import = true\n")
    r = cli("verify", suite(tmp_path, "mylayers:swish_los"))
    assert "hint: did you mean 'swish_loss'?" in r.stderr


def test_impl_grad_needs_impl(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.symcheck.yaml",
        """\
        cases:
          - name: c
            expr: sum(x)
            impl_grad: "m:g"
            inputs: {x: [1.0, 2.0]}
        """,
    )
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert f"{path}:4: error: impl_grad needs impl" in r.stderr


# ---------------------------------------------------------------- numpy implementations


NUMPY_IMPL = """\
import numpy as np


def f(x, w):
    return np.sum(w * x / (1 + np.exp(-x)))


def grad_right(x, w):
    s = 1 / (1 + np.exp(-x))
    return {"x": w * (s + x * s * (1 - s)), "w": x * s}


def grad_wrong(x, w):
    s = 1 / (1 + np.exp(-x))
    return {"x": w * (s + x * s), "w": x * s}


def grad_missing(x, w):
    return {"w": x / (1 + np.exp(-x))}


def grad_list(x, w):
    return [x, w]


def writes_in_place(x, w):
    x *= 0  # symcheck passes copies: the next engine's inputs stay as they were
    return {"x": np.zeros_like(w), "w": np.zeros_like(w)}
"""


@pytest.mark.parametrize(
    ("grad", "code", "shown"),
    [
        ("grad_right", EXIT_OK, "impl      ok"),
        ("grad_wrong", EXIT_MISMATCH, "MISMATCH  impl vs symbolic, dout/dx"),
        ("grad_missing", EXIT_MISMATCH, "impl_grad returned no gradient for 'x' (it gave w)"),
        ("grad_list", EXIT_MISMATCH, "impl_grad returned list, not a dict {input name: gradient array}"),
    ],
)
def test_a_numpy_impl_with_its_gradient_function(tmp_path: Path, grad: str, code: int, shown: str) -> None:
    write(tmp_path / "npimpl.py", NUMPY_IMPL)
    path = suite(tmp_path, "npimpl:f", extra=f'    impl_grad: "npimpl:{grad}"\n')
    r = cli("verify", path, "--allow-import")
    assert r.exit_code == code, r.output
    assert shown in r.stdout


def test_a_numpy_impl_gets_copies_of_the_inputs(tmp_path: Path) -> None:
    write(tmp_path / "npimpl.py", NUMPY_IMPL)
    path = suite(tmp_path, "npimpl:f", extra='    impl_grad: "npimpl:writes_in_place"\n')
    r = cli("verify", path, "--allow-import", "--format", "json")
    assert r.exit_code == EXIT_MISMATCH, r.output
    point = json.loads(r.stdout)["cases"][0]["points"][0]
    assert {c["engine"]: c["ok"] for c in point["comparisons"]} == {
        "autograd": True,
        "torch": True,
        "numeric": True,
        "impl": False,
    }


# ---------------------------------------------------------------- what an implementation does wrong when run


RUNTIME = """\
import torch


def raises(x, w):
    raise ValueError("kernel not built for this shape")


def elementwise(x, w):
    return w * x * torch.sigmoid(x)  # forgot the sum


def detached(x, w):
    return (w * x * torch.sigmoid(x)).sum().detach()


class BadShape(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, g):
        return g[:-1]


def bad_backward(x, w):
    return (w * BadShape.apply(x)).sum()
"""


@pytest.mark.parametrize(
    ("impl", "shown"),
    [
        ("raises", "FAILED    impl at the given values: runtime:raises raised ValueError: kernel not built"),
        ("elementwise", "runtime:elementwise returned shape [4]; expr's output has shape []"),
        ("detached", "output is not connected to its inputs through torch autograd"),
        ("bad_backward", "runtime:bad_backward's backward raised RuntimeError"),
    ],
)
def test_a_misbehaving_implementation_fails_the_case(tmp_path: Path, impl: str, shown: str) -> None:
    runtime = write(tmp_path / "runtime.py", RUNTIME)
    r = cli("verify", suite(tmp_path, f"runtime:{impl}"), "--allow-import")
    assert r.exit_code == EXIT_MISMATCH, r.output  # the implementation's fault: a failure, not exit 3
    assert shown in r.stdout
    if impl == "raises":
        assert f"(at {runtime}:5 in raises)" in r.stdout


# ---------------------------------------------------------------- the grad command, the engine itself


def test_grad_takes_an_impl_from_the_current_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)  # its pyproject.toml opts in; its folder is the import root
    args = ["grad", "sum(w * x * sigmoid(x))", "-i", "x=[0.5,-1.5,2,1]", "-i", "w=[1,2,0.5,1.5]"]
    r = cli(*args, "--impl", "mylayers:swish_loss", "--samples", "0")
    assert r.exit_code == EXIT_OK, r.output
    assert "impl      ok" in r.stdout
    r = cli(*args, "--impl", "mylayers:swish_neg_branch_loss", "--samples", "0")
    assert r.exit_code == EXIT_MISMATCH, r.output
    assert "at index (1,)" in r.stdout
    r = cli(*args, "--impl", "mylayers:swish_numpy", "--impl-grad", "mylayers:swish_numpy_grad")
    assert r.exit_code == EXIT_OK, r.output


def test_grad_without_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_project(tmp_path, config=None)
    monkeypatch.chdir(tmp_path)
    args = ["grad", "sum(w * x * sigmoid(x))", "-i", "x=[0.5,-1.5]", "-i", "w=[1,2]"]
    r = cli(*args, "--impl", "mylayers:swish_loss")
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "<command line>:1:1: error: impl: 'mylayers:swish_loss' would import" in r.stderr
    r = cli(*args, "--impl", "mylayers:swish_loss", "--allow-import")
    assert r.exit_code == EXIT_OK, r.output
    r = cli(*args, "--impl-grad", "mylayers:swish_numpy_grad")
    assert r.exit_code == EXIT_BAD_INPUT, r.output


def test_the_engine_in_the_cases_dtype() -> None:
    import torch

    seen: dict[str, torch.dtype] = {}

    def impl(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        seen["x"], seen["k"] = x.dtype, k.dtype
        assert x.requires_grad and not k.requires_grad
        return (x * x).sum() * k.sum()

    program = bind(parse("sum(x * x) * sum(k)"), {"x": TensorType((3,)), "k": TensorType((2,), DType.INT)})
    inputs = {"x": np.array([1.0, 2.0, 3.0]), "k": np.array([1, 2])}
    result = ImplEngine(impl).run(program, inputs, ["x"], EngineOptions(dtype="float32"))
    assert seen == {"x": torch.float32, "k": torch.int64}
    assert result.dtype == "float32" and not result.failures
    np.testing.assert_allclose(result.grads["x"], [6.0, 12.0, 18.0])
    assert float(result.value) == pytest.approx(42.0)


def test_a_case_tolerance_may_name_impl(tmp_path: Path) -> None:
    copy_project(tmp_path, config="[tool.symcheck]\nallow-import = true\n")
    path = suite(tmp_path, "mylayers:swish_neg_branch_loss", extra="    tolerance: {impl: {atol: 1}}\n")
    (case,) = load_suite(path).cases
    assert case.tolerance.for_engine("impl") == (None, 1.0)
    assert case.impl_line == 4
    r = cli("verify", path)
    assert r.exit_code == EXIT_OK, r.output  # off by 0.1 at most: within atol 1
