"""The model suites shipped in expressions/models/ (a transformer block, a small CNN, normalisation
layers, GLUs, straight-through estimators, linear algebra) verify: every engine agrees on every
case and every expectation holds, as `symcheck verify expressions/models/` says in CI."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from symcheck.cli import EXIT_OK, main

MODELS = Path(__file__).resolve().parents[2] / "expressions" / "models"


def test_model_suites_verify() -> None:
    r = CliRunner().invoke(main, ["verify", str(MODELS), "--format", "json"])
    assert r.exit_code == EXIT_OK, r.output
    doc = json.loads(r.stdout)
    assert doc["summary"]["cases"] > 0
    assert doc["summary"]["passed"] == doc["summary"]["cases"], doc["summary"]
    files = {Path(c["file"]).name for c in doc["cases"]}
    assert files == {p.name for p in MODELS.glob("*.yaml")}
