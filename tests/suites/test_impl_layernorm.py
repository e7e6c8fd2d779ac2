"""A fused LayerNorm with a hand-written backward, checked with `impl:` end to end.

tests/impl_project/mylayers/fused_layernorm.py holds a right torch.autograd.Function and two subtly
wrong ones: one whose dx drops the term through the variance, one whose dw uses the raw input where
it needs x_hat. Their suites, layernorm_ok/layernorm_bad.symcheck.yaml, are checked here as a user
would run them: the right one passes in every engine, each wrong one fails in one Jacobian only,
at a named entry, at its case's line.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import torch
from click.testing import CliRunner, Result

from symcheck.cli import EXIT_MISMATCH, EXIT_OK, main

PROJECT = Path(__file__).resolve().parents[1] / "impl_project"
OK_SUITE = PROJECT / "layernorm_ok.symcheck.yaml"
BAD_SUITE = PROJECT / "layernorm_bad.symcheck.yaml"
NO_PROJECTION_LINE = 5  # `- name: layernorm-no-projection` in layernorm_bad.symcheck.yaml
RAW_DW_LINE = 13  # `- name: layernorm-raw-dw`
ENGINES_OK = ("symbolic  reference", "autograd  ok", "torch     ok", "numeric   ok")


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


pytestmark = pytest.mark.usefixtures("isolated_imports")  # tests/suites/conftest.py


def layers() -> ModuleType:
    """The module itself, loaded from its file under a name of its own (nothing on sys.path)."""
    spec = importlib.util.spec_from_file_location(
        "impl_project_fused_layernorm", PROJECT / "mylayers" / "fused_layernorm.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def case_block(out: str, name: str) -> str:
    """The text report of one case: from its FAIL/PASS line to the next case's (or the summary)."""
    lines = out.splitlines()
    (start,) = [i for i, line in enumerate(lines) if line[6:].startswith(f"{name}  (")]
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1].strip()), len(lines))
    return "\n".join(lines[start:end])


def mismatches(block: str) -> list[str]:
    """The report's MISMATCH lines: which output, input and point each is about."""
    return [line.strip() for line in block.splitlines() if line.strip().startswith("MISMATCH")]


# ---------------------------------------------------------------- the suites


def test_the_right_backward_passes_in_every_engine() -> None:
    r = cli("verify", OK_SUITE)
    assert r.exit_code == EXIT_OK, r.output
    out = r.stdout
    for name in ("layernorm-jacobian", "layernorm-loss", "layernorm-batch-and-time"):
        assert f"PASS  {name}  (" in out, name
    assert out.count("        impl      ok ") == 3
    for engine in ENGINES_OK:
        assert out.count(engine) == 3, engine
    assert "MISMATCH" not in out and "FAILED" not in out
    assert "jacobian  checked in full, entry by entry (dout/dx: (3, 5) x (3, 5)" in out  # not a sum
    assert out.rstrip().endswith("3 cases, 7 points: 3 passed, 0 failed")


def test_the_missing_variance_term_fails_in_dout_dx_only() -> None:
    r = cli("verify", BAD_SUITE)
    assert r.exit_code == EXIT_MISMATCH, r.output
    block = case_block(r.stdout, "layernorm-no-projection")
    assert block.startswith(f"FAIL  layernorm-no-projection  ({BAD_SUITE}:{NO_PROJECTION_LINE})")
    for engine in ENGINES_OK:
        assert engine in block, engine  # the math is fine: only the implementation is off
    assert "        impl      mismatch" in block
    given = block.index("MISMATCH  impl vs symbolic, Jacobian dout/dx, at the given values:")
    at_given = block[given:]
    # Only entries within a row differ (3 rows of 4 x 4): d out[i, :] / d x[i, :], 48 of 144.
    assert "Mismatched elements: 48 / 144 (33.3%)" in at_given
    assert "At entry d out[0, 1] / d x[0, 1]: impl = 1.15641158016, symbolic = 0.193600132655" in at_given
    # The value, dw and db are right: only dout/dx differs, at the given values and both random points.
    assert [m.split(", at ")[0] for m in mismatches(block)] == [
        "MISMATCH  impl vs symbolic, Jacobian dout/dx"
    ] * 3


def test_the_raw_input_in_dw_fails_in_dout_dw_only() -> None:
    r = cli("verify", BAD_SUITE)
    assert r.exit_code == EXIT_MISMATCH, r.output
    block = case_block(r.stdout, "layernorm-raw-dw")
    assert block.startswith(f"FAIL  layernorm-raw-dw  ({BAD_SUITE}:{RAW_DW_LINE})")
    for engine in ENGINES_OK:
        assert engine in block, engine
    assert "        impl      mismatch" in block
    given = block.index("MISMATCH  impl vs symbolic, Jacobian dout/dw, at the given values:")
    at_given = block[given:]
    # d out[i, j] / d w[j] is x_hat[i, j]; the slip gives x[i, j] (x[1, 0] = 3).
    assert "Mismatched elements: 12 / 48 (25.0%)" in at_given
    assert "At entry d out[1, 0] / d w[0]: impl = 3, symbolic = 1.43165600946" in at_given
    assert [m.split(", at ")[0] for m in mismatches(block)] == [
        "MISMATCH  impl vs symbolic, Jacobian dout/dw"
    ] * 3
    assert r.stdout.rstrip().endswith("2 cases, 6 points: 0 passed, 2 failed")


def test_the_json_report_names_the_input_and_the_entry_of_each_slip() -> None:
    r = cli("verify", BAD_SUITE, "--format", "json")
    assert r.exit_code == EXIT_MISMATCH, r.output
    cases = {c["name"]: c for c in json.loads(r.stdout)["cases"]}
    expected = {
        "layernorm-no-projection": (NO_PROJECTION_LINE, "x", [0, 1], [0, 1]),
        "layernorm-raw-dw": (RAW_DW_LINE, "w", [1, 0], [0]),
    }
    for name, (line, wrong_input, out_index, in_index) in expected.items():
        case = cases[name]
        assert (case["line"], case["status"]) == (line, "fail"), name
        engines = {e["engine"]: e["status"] for e in case["engines"]}
        assert engines == {
            "symbolic": "reference",
            "autograd": "ok",
            "torch": "ok",
            "numeric": "ok",
            "impl": "mismatch",
        }
        for point in case["points"]:  # at the given values and at both random points
            (impl,) = [c for c in point["comparisons"] if c["engine"] == "impl"]
            bad = [c for c in impl["checks"] if not c["ok"]]
            assert [c["what"] for c in bad] == [f"Jacobian dout/d{wrong_input}"], (name, point["label"])
        given = cases[name]["points"][0]
        assert given["label"] == "given values"
        (impl,) = [c for c in given["comparisons"] if c["engine"] == "impl"]
        (bad,) = [c for c in impl["checks"] if not c["ok"]]
        assert bad["jacobian_entry"] == {
            "output": "out",
            "output_index": out_index,
            "input": wrong_input,
            "input_index": in_index,
        }

    r = cli("verify", OK_SUITE, "--format", "json")
    assert r.exit_code == EXIT_OK, r.output
    doc = json.loads(r.stdout)
    assert [e["status"] for c in doc["cases"] for e in c["engines"] if e["engine"] == "impl"] == ["ok"] * 3


def test_a_plain_sum_at_init_weights_misses_the_missing_term(tmp_path: Path) -> None:
    """Why the suite checks the tensor output: under sum(layer_norm(x, w, b)) at w = 1 the right dx
    is 0, and so is the wrong one (mean(g * w * x_hat) = mean(x_hat) = 0)."""
    shutil.copytree(PROJECT / "mylayers", tmp_path / "mylayers")
    (tmp_path / "plain.py").write_text(
        "from mylayers.fused_layernorm import layer_norm_no_projection\n\n\n"
        "def loss(x, w, b):\n    return layer_norm_no_projection(x, w, b).sum()\n",
        encoding="utf-8",
    )
    suite = tmp_path / "plain.symcheck.yaml"
    suite.write_text(
        textwrap.dedent(
            """\
            cases:
              - name: plain-sum-at-init
                expr: sum(layer_norm(x, w, b))
                impl: "plain:loss"
                samples: 0
                inputs:
                  x: {value: [[0.5, -1.5, 2.0, 1.2], [3.0, 0.1, -2.0, 0.7], [-0.4, -0.9, 0.3, 2.5]]}
                  w: {shape: [4], fill: 1}
                  b: {shape: [4], fill: 0}
            """
        ),
        encoding="utf-8",
    )
    r = cli("verify", suite, "--allow-import")
    assert r.exit_code == EXIT_OK, r.output  # a false pass: the bad suite's tensor output catches it
    assert "impl      ok" in r.stdout


# ---------------------------------------------------------------- the example is what it says


def test_the_layers_against_torch_itself() -> None:
    """Independently of symcheck: the forward is torch's layer_norm, the right backward passes
    torch.autograd.gradcheck, and each wrong one fails it."""
    m = layers()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(4, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    b = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    reference = torch.nn.functional.layer_norm(x, (4,), w, b, eps=m.EPS)
    for fn in (m.layer_norm, m.layer_norm_no_projection, m.layer_norm_raw_dw):
        torch.testing.assert_close(fn(x, w, b), reference)
    assert torch.autograd.gradcheck(m.layer_norm, (x, w, b))
    for fn in (m.layer_norm_no_projection, m.layer_norm_raw_dw):
        assert not torch.autograd.gradcheck(fn, (x, w, b), raise_exception=False)
