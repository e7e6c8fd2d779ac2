"""docs/ops.md is the catalogue's reference, kept current; every op names its torch counterpart."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from symcheck.cli import main
from symcheck.language.catalogue import OPS
from symcheck.language.reference import FAMILIES, TORCH, markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ops.md"


def test_docs_ops_md_is_what_symcheck_ops_prints() -> None:
    r = CliRunner().invoke(main, ["ops", "--format", "markdown"])
    assert r.exit_code == 0, r.output
    assert r.output == markdown()
    assert DOCS.read_text(encoding="utf-8") == markdown(), (
        "docs/ops.md is stale: symcheck ops --format markdown > docs/ops.md"
    )


def test_every_op_names_its_torch_counterpart_and_no_other() -> None:
    assert set(TORCH) == set(OPS)


def test_the_coverage_table_has_the_52_families_and_its_native_ops_exist() -> None:
    assert len(FAMILIES) == 52
    for family, (kind, how) in FAMILIES.items():
        assert kind in ("native", "composed", "missing"), family
        if kind == "native":
            named = [w for w in how.replace("(", " ").replace(")", " ").split() if w.isidentifier()]
            assert any(w in OPS for w in named), family
