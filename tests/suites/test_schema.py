"""The suite format's JSON Schema (suite_json_schema in symcheck/suites/schema.py), for editors.

It is generated from the pydantic models that validate suites; the shipped copy must equal the
generated one, and every shipped suite must validate against it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from symcheck.cli import main
from symcheck.language.errors import SymcheckError
from symcheck.suites.loader import load_suite
from symcheck.suites.models import DEFAULT_KEYS, TOP_KEYS, CaseModel
from symcheck.suites.schema import SCHEMA_FILE, suite_json_schema, suite_json_schema_text

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    [
        p
        for p in (REPO / "expressions").rglob("*")
        if p.suffix in (".yaml", ".yml") and "data" not in p.relative_to(REPO / "expressions").parts[:-1]
    ]
    + list((REPO / "tests").rglob("*.symcheck.yaml"))
)


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: Any, data: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == suite_json_schema_text(), (
        "symcheck/suites/suite.schema.json is stale: regenerate it with "
        "`symcheck schema --output symcheck/suites/suite.schema.json`"
    )


def test_symcheck_schema_prints_it_and_writes_it(tmp_path: Path) -> None:
    printed = CliRunner().invoke(main, ["schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.output) == suite_json_schema()
    out = tmp_path / "suite.schema.json"
    written = CliRunner().invoke(main, ["schema", "--output", str(out)])
    assert written.exit_code == 0 and written.output == ""
    assert out.read_text(encoding="utf-8") == suite_json_schema_text()


def test_symcheck_schema_imports_neither_torch_nor_sympy() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom symcheck.cli import main\n"
        "assert CliRunner().invoke(main, ['schema']).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'sympy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_schema_has_the_loaders_keys() -> None:
    schema = suite_json_schema()
    assert tuple(schema["properties"]) == TOP_KEYS, "a new top-level key needs its place in the schema"
    assert tuple(schema["$defs"]["Defaults"]["properties"]) == DEFAULT_KEYS
    assert tuple(schema["$defs"]["CaseModel"]["properties"]) == tuple(CaseModel.model_fields)


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"tutorial.yaml", "ops.yaml"} <= names
    assert not any("data" in p.parts for p in EXAMPLES if p.is_relative_to(REPO / "expressions"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_suite_validates(validator: Any, path: Path) -> None:
    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    assert errors(validator, data) == []


# The schema accepts what the loader accepts (the shorthands), and rejects what it rejects.
ACCEPTED = {
    "shorthands": """\
        - name: a
          expr: 3
          inputs: {x: 2, y: [1, 2], z: {shape: 2}}
          wrt: x
          engines: autograd
        """,
    "defaults": """\
        suite: s
        defaults: {samples: 0, engines: [autograd, numeric], tolerance: {numeric: {atol: 1e-6}}}
        cases:
          - {name: a, expr: sum(x), inputs: {x: {shape: [2], random: {distribution: normal, std: 2}}}}
        """,
}
REJECTED = {
    "unknown case key": ("cases:\n  - {name: a, exprr: x}\n", "'exprr' was unexpected"),
    "unknown top key": ("suit: s\ncases:\n  - {name: a, expr: x}\n", "'suit' was unexpected"),
    "no expr": ("- {name: a}\n", "'expr' is a required property"),
    "no cases": ("cases: []\n", "should be non-empty"),
    "a default for expr": ("defaults: {expr: x}\ncases:\n  - {name: a, expr: x}\n", "'expr' was unexpected"),
    "a bad dtype": ("- {name: a, expr: x, dtype: float8}\n", "'float8' is not one of"),
    "a bad device": ("- {name: a, expr: x, device: gpu}\n", "does not match"),
    "order 3": ("- {name: a, expr: x, order: 3}\n", "3 is greater than the maximum of 2"),
    "negative samples": ("- {name: a, expr: x, samples: -1}\n", "-1 is less than the minimum of 0"),
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_by_both(validator: Any, tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    load_suite(path)
    assert errors(validator, YAML(typ="safe", pure=True).load(path.read_text())) == []


@pytest.mark.parametrize(("text", "message"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected_by_both(validator: Any, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SymcheckError):
        load_suite(path)
    found = errors(validator, YAML(typ="safe", pure=True).load(text))
    assert any(message in e for e in found), found
