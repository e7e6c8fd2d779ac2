"""docs/api.ipynb runs from start to end, in this venv's Python, and shows what docs/api.md says."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOTEBOOK = DOCS / "api.ipynb"
KERNEL = "symcheck-test"


def _text(cell: Any) -> str:
    """A code cell's outputs as text: what it printed, then each result's text/plain and Markdown."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.extend(
                output.data[kind] + "\n" for kind in ("text/plain", "text/markdown") if kind in output.data
            )
    return "".join(parts)


def test_the_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The notebook run by a kernel of this interpreter (sys.executable), whatever "python3" is here;
    its code cells by id."""
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "symcheck test", "language": "python"})
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(home))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(home / "runtime"))
        mp.setenv("IPYTHONDIR", str(home / "ipython"))  # no profile or startup file of the user's
        mp.setenv("SYMCHECK_NO_CACHE", "1")  # as in every test (tests/conftest.py), in the kernel too
        mp.delenv("SYMCHECK_CACHE_DIR", raising=False)
        nb = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name=KERNEL, resources={"metadata": {"path": str(DOCS)}}
        )
        client.execute()  # a cell that raises raises CellExecutionError here
    return {c.id: c for c in nb.cells if c.cell_type == "code"}


def test_every_cell_runs_without_error(executed: dict[str, Any]) -> None:
    errors = [(i, o.ename) for i, c in executed.items() for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count for c in executed.values())


def test_check_and_its_report(executed: dict[str, Any]) -> None:
    shown = executed["check"].outputs[0].data
    assert shown["text/plain"].startswith("<symcheck PASS mean(3*(x+2)^2)")
    assert "| mean(3*(x+2)^2) | ✅ pass | `dout/dx = 3/2*(x + 2)` |" in shown["text/markdown"]
    assert shown["text/html"].startswith("<table>")
    assert "(True, {'x': '3/2*(x + 2)'}, True)" in _text(executed["fields"])
    report = _text(executed["report"])
    assert "x.grad = [[4.5, 4.5]," in report and "proven (equal to the closed form)" in report
    assert _text(executed["number"]).startswith("True\nFalse ['no value or shape given for x")


def test_closed_form_as_sympy(executed: dict[str, Any]) -> None:
    assert "3*(x + 2)/2" in _text(executed["closed-sympy"])
    assert "(0, 9/2, 3*x/2 + 3)" in _text(executed["closed-subs"])
    matrix = _text(executed["matrix"])
    assert "dout/dx = 2*(W.T @ (W @ x))" in matrix and "'W.T @ (W @ x)'" in matrix


def test_explain_diagnoses_the_wrong_claim(executed: dict[str, Any]) -> None:
    markdown = executed["explain"].outputs[0].data["text/markdown"]
    assert "**Backward pass**" in markdown and "**WRONG**" in markdown
    text = _text(executed["explain-fields"])
    assert "claim x: WRONG>\nFalse\n" in text
    assert "likely mistake: the factor 2 of the chain rule's factor" in text


def test_verify_the_tutorial_suite(executed: dict[str, Any]) -> None:
    assert "<symcheck results: 4 cases (4 pass)>" in _text(executed["verify"])
    assert "seed-larger-x" in _text(executed["verify-fields"])


def test_the_torch_checks(executed: dict[str, Any]) -> None:
    assert _text(executed["swish-check"]) == "'pass'\n"
    wrong = _text(executed["wrong"])
    assert wrong.startswith("x*sigmoid(x): fn vs symbolic, Jacobian dout/dx, at the given values: At entry")
    assert wrong.count("\n") == 1  # the first line only
    assert "('pass', ['weight', 'bias'])" in _text(executed["linear"])
    net = _text(executed["net"])
    assert net.startswith("pass\nsum(tanh(lin_weight @ x)): fn vs symbolic, value")
    assert "error: unknown function 'sigmod'" in _text(executed["errors"])
