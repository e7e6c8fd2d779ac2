"""Engine plug-ins: --engine-plugin, the symcheck.engines entry point group, and the example engine."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from symcheck.cli import EXIT_BAD_INPUT, EXIT_MISMATCH, EXIT_OK, main
from symcheck.engines import registry as engine_module
from symcheck.engines.registry import (
    BUILTIN_ENGINES,
    available_engines,
    import_engine_class,
    load_engine,
    register_engine,
    registered_engines,
)
from symcheck.language.errors import SymcheckError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "example_engine"
FD = "forward_difference:ForwardDifference"

SUITE = """\
cases:
  - name: seed
    expr: mean(3*(x+2)^2)
    inputs:
      x: {shape: [2, 2], fill: 1}
    samples: 1
  - name: swish
    expr: sum(x*sigmoid(x))
    inputs:
      x: {value: [-1.5, 0.25, 2]}
    samples: 0
"""

# Plug-ins written per test into their own folder, so that "was it imported?" can be asked.
PLUGINS = '''\
from symcheck.engines.base import Engine, EngineResult
from symcheck.engines.numeric.engine import NumericEngine


class Doubled(NumericEngine):
    """Finite differences, but every gradient twice as large: a wrong engine."""

    name = "doubled"

    def run(self, program, inputs, wrt, options):
        result = super().run(program, inputs, wrt, options)
        result.grads = {n: 2 * g for n, g in result.grads.items()}
        return result


class Raises(Engine):
    name = "raises"
    description = "always fails"

    def run(self, program, inputs, wrt, options):
        raise RuntimeError("the plug-in's own bug")


class Breaks(Engine):
    name = "breaks"
    description = "fails when constructed"

    def __init__(self):
        raise RuntimeError("cannot start")

    def run(self, program, inputs, wrt, options):
        raise AssertionError("unreachable")


class NotAnEngine:
    name = "nope"


class Unnamed(Engine):
    description = "no name"

    def run(self, program, inputs, wrt, options):
        return EngineResult("?", 0.0, {})


class Numeric(NumericEngine):
    name = "numeric"
'''


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/example_engine importable, as a user's PYTHONPATH would make it."""
    monkeypatch.syspath_prepend(str(EXAMPLE))


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of test plug-ins under a name unique to the test; returns the module's name."""
    name = f"symcheck_test_plugins_{uuid.uuid4().hex[:12]}"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{name}.py").write_text(PLUGINS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """installed({name: "module:Class"}): pretend packages declare these symcheck.engines entry points."""
    original = importlib.metadata.entry_points

    def install(found: dict[str, str]) -> None:
        eps = [importlib.metadata.EntryPoint(n, v, "symcheck.engines") for n, v in found.items()]

        def entry_points(**params: object) -> object:
            if params.get("group") == "symcheck.engines":
                return importlib.metadata.EntryPoints(eps)
            return original(**params)  # type: ignore[arg-type]

        monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)

    return install


@pytest.fixture
def suite(write_suite: Callable[..., Path]) -> Path:
    return write_suite(SUITE)


# ---------------------------------------------------------------- --engine-plugin


def test_the_example_engine_runs_as_a_column_in_every_case(example: None, suite: Path) -> None:
    r = cli("verify", suite, "--allow-import", "--engine-plugin", FD)
    assert r.exit_code == EXIT_OK, r.output
    assert r.stdout.count("forward_difference ok") == 2
    # the column lines stay aligned under the longest name
    assert "  symbolic           reference" in r.stdout
    assert registered_engines() == {}  # registrations end with the command


def test_the_plugin_column_in_the_json_report(example: None, suite: Path) -> None:
    r = cli("verify", suite, "--allow-import", "--engine-plugin", FD, "--format", "json")
    assert r.exit_code == EXIT_OK, r.output
    doc = json.loads(r.stdout)
    for case in doc["cases"]:
        engines = {e["engine"]: e["status"] for e in case["engines"]}
        assert engines["forward_difference"] == "ok"
        compared = {c["engine"] for p in case["points"] for c in p["comparisons"]}
        assert "forward_difference" in compared


def test_grad_takes_plugins_too(example: None) -> None:
    r = cli("grad", "sum(exp(x))", "-i", "x=[0.5,1]", "--allow-import", "--engine-plugin", FD)
    assert r.exit_code == EXIT_OK, r.output
    assert "forward_difference ok" in r.stdout


def test_a_case_may_name_a_plugin_alone(example: None, write_suite: Callable[..., Path]) -> None:
    path = write_suite(SUITE.replace("    samples: 0\n", "    samples: 0\n    engines: [symbolic]\n"))
    r = cli(
        "verify", path, "--allow-import", "--engine-plugin", FD, "--engines", "symbolic,forward_difference"
    )
    assert r.exit_code == EXIT_OK, r.output
    assert "autograd" not in r.stdout
    assert r.stdout.count("forward_difference ok") == 2


def test_engine_plugin_needs_allow_import(example: None, suite: Path) -> None:
    r = cli("verify", suite, "--engine-plugin", FD)
    assert r.exit_code == EXIT_BAD_INPUT
    assert "--engine-plugin forward_difference:ForwardDifference would import and run Python code" in r.stderr
    assert "add --allow-import" in r.stderr


def test_a_wrong_plugin_is_found_out(plugins: str, suite: Path) -> None:
    r = cli("verify", suite, "--allow-import", "--engine-plugin", f"{plugins}:Doubled")
    assert r.exit_code == EXIT_MISMATCH, r.output
    assert "doubled   mismatch" in r.stdout
    assert "MISMATCH  doubled vs symbolic, dout/dx, at the given values:" in r.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("symcheck_no_such_module:X", "cannot import engine plug-in 'symcheck_no_such_module:X'"),
        ("{m}:Dubled", "has no attribute 'Dubled'"),
        ("{m}:NotAnEngine", "is not a subclass of symcheck.engines.Engine"),
        ("{m}:Unnamed", "needs a name (a class attribute `name`)"),
        ("{m}:Numeric", "is named 'numeric', like a built-in engine"),
        ("{m}", "is not of the form module:Class"),
    ],
)
def test_bad_plugins_are_bad_input(plugins: str, suite: Path, spec: str, message: str) -> None:
    r = cli("verify", suite, "--allow-import", "--engine-plugin", spec.format(m=plugins))
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    if "Dubled" in spec:
        assert "did you mean 'Doubled'?" in r.stderr


def test_an_unknown_engine_name_is_bad_input(suite: Path, write_suite: Callable[..., Path]) -> None:
    r = cli("verify", suite, "--engines", "symbolic,forward_diference")
    assert r.exit_code == EXIT_BAD_INPUT
    assert "unknown engine 'forward_diference'" in r.stderr
    path = write_suite(SUITE.replace("    samples: 0\n", "    samples: 0\n    engines: [mine]\n"), "b.yaml")
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT
    assert "unknown engine 'mine'" in r.stderr


def test_a_plugin_that_raises_fails_its_column(plugins: str, suite: Path) -> None:
    """A plug-in's exception is a failure of that column (exit 1), not a bug of symcheck's (exit 3)."""
    r = cli(
        "verify",
        suite,
        "--allow-import",
        "--engine-plugin",
        f"{plugins}:Raises",
        "--engine-plugin",
        f"{plugins}:Breaks",
    )
    assert r.exit_code == EXIT_MISMATCH, r.output
    assert "raises    inconsistent: the engine plug-in raised RuntimeError: the plug-in's own bug" in r.stdout
    assert "FAILED    raises at the given values: the engine plug-in raised RuntimeError" in r.stdout
    assert "breaks    inconsistent: the engine plug-in raised RuntimeError: cannot start" in r.stdout
    assert "symbolic  reference" in r.stdout  # the other engines still ran
    doc = json.loads(
        cli(
            "verify", suite, "--allow-import", "--engine-plugin", f"{plugins}:Raises", "--format", "json"
        ).stdout
    )
    assert doc["summary"]["errors"] == 0 and doc["summary"]["failed"] == 2
    failures = doc["cases"][0]["points"][0]["comparisons"]
    assert any("RuntimeError" in f for c in failures if c["engine"] == "raises" for f in c["failures"])


# ---------------------------------------------------------------- installed plug-ins (entry points)


def test_an_installed_plugin_runs_where_a_case_names_it(
    plugins: str, installed: Callable[[dict[str, str]], None], write_suite: Callable[..., Path]
) -> None:
    installed({"doubled_by_ep": f"{plugins}:Doubled"})
    assert available_engines()["doubled_by_ep"] == f"{plugins}:Doubled"
    path = write_suite(
        SUITE.replace("    samples: 0\n", "    samples: 0\n    engines: [symbolic, doubled_by_ep]\n")
    )
    r = cli("verify", path, "-k", "swish")
    assert r.exit_code == EXIT_MISMATCH, r.output
    # the entry point's name is the column, whatever the class calls itself
    assert "MISMATCH  doubled_by_ep vs symbolic, dout/dx" in r.stdout


def test_an_installed_plugin_is_not_imported_unless_asked_for(
    plugins: str, installed: Callable[[dict[str, str]], None], suite: Path
) -> None:
    installed({"raises": f"{plugins}:Raises"})
    r = cli("verify", suite)
    assert r.exit_code == EXIT_OK, r.output
    assert "raises" not in r.stdout
    assert plugins not in sys.modules


def test_allow_import_adds_every_installed_plugin(
    example: None, installed: Callable[[dict[str, str]], None], suite: Path
) -> None:
    installed({"fd": FD})
    r = cli("verify", suite, "--allow-import")
    assert r.exit_code == EXIT_OK, r.output
    assert r.stdout.count("fd        ok") == 2


def test_a_broken_entry_point_is_bad_input(
    installed: Callable[[dict[str, str]], None], write_suite: Callable[..., Path]
) -> None:
    installed({"gone": "symcheck_no_such_module:Engine"})
    path = write_suite(SUITE.replace("    samples: 0\n", "    samples: 0\n    engines: [symbolic, gone]\n"))
    r = cli("verify", path)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "cannot import engine plug-in 'gone' (entry point)" in r.stderr


# ---------------------------------------------------------------- the registry


def test_the_registry(plugins: str, example: None) -> None:
    assert list(available_engines())[:4] == list(BUILTIN_ENGINES)
    cls = import_engine_class(FD)
    name = register_engine(cls)
    try:
        assert name == "forward_difference"
        assert registered_engines() == {name: "forward_difference:ForwardDifference"}
        assert type(load_engine(name)) is cls
        instance = cls()
        register_engine(instance, "fd2")
        assert load_engine("fd2") is instance
    finally:
        engine_module.unregister_engine("forward_difference")
        engine_module.unregister_engine("fd2")
    with pytest.raises(SymcheckError, match="unknown engine 'forward_diference'") as e:
        load_engine("forward_diference")
    assert "engines are symbolic, autograd, torch, numeric" in str(e.value)


def test_the_docs_show_the_example_engine() -> None:
    docs = (REPO / "docs" / "engines.md").read_text(encoding="utf-8")
    assert "docs/example_engine/forward_difference.py" in docs
    assert "```python\n" + (EXAMPLE / "forward_difference.py").read_text(encoding="utf-8") + "```" in docs
    assert "--engine-plugin" in docs and "symcheck.engines" in docs


def test_the_example_engine_on_its_own(example: None) -> None:
    import numpy as np

    from symcheck.engines.base import EngineOptions
    from symcheck.language.ir import TensorType
    from symcheck.language.parser import bind, parse

    program = bind(parse("sum(x*x) + y"), {"x": TensorType((2,)), "y": TensorType(())})
    engine = import_engine_class(FD)()
    result = engine.run(
        program, {"x": np.array([1.0, -2.0]), "y": np.array(3.0)}, ["x", "y"], EngineOptions()
    )
    assert float(result.value) == 8.0
    np.testing.assert_allclose(result.grads["x"], [2.0, -4.0], rtol=1e-6)
    np.testing.assert_allclose(result.grads["y"], 1.0, rtol=1e-6)
