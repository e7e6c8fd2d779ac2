"""`symcheck backward --emit torch`: the custom backward it writes is checked like a hand-written one.

tests/impl_project/mylayers/emitted_*.py were written by the commands below; emitted.symcheck.yaml
checks them with `impl:`. A test keeps the files equal to what the command writes today.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from symcheck.cli import EXIT_BAD_INPUT, EXIT_OK, main

PROJECT = Path(__file__).resolve().parents[1] / "impl_project"
EMITTED = {
    "emitted_tanh_layer.py": (
        "y = W @ x + b; out = sum(tanh(y)^2)",
        ["-i", "W:2x3", "-i", "x:3", "-i", "b:2", "--name", "TanhLayerLoss"],
    ),
    "emitted_softmax_regression.py": (
        "loss = nll_loss(log_softmax(W @ x + b), y)",
        ["-i", "W:2x3", "-i", "x:3", "-i", "b:2", "-i", "y:int=1", "--name", "SoftmaxRegressionLoss"],
    ),
}

pytestmark = pytest.mark.usefixtures("isolated_imports")  # tests/suites/conftest.py


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("file", sorted(EMITTED))
def test_the_shipped_emitted_backward_is_what_the_command_writes(file: str) -> None:
    expr, args = EMITTED[file]
    r = cli("backward", expr, *args, "--emit", "torch")
    assert r.exit_code == EXIT_OK, r.output
    assert r.output == (PROJECT / "mylayers" / file).read_text(), (
        f"regenerate: symcheck backward {expr!r} {' '.join(args)} -o tests/impl_project/mylayers/{file}"
    )


def test_the_emitted_backward_passes_its_suite() -> None:
    r = cli("verify", PROJECT / "emitted.symcheck.yaml")
    assert r.exit_code == EXIT_OK, r.output
    assert "2 cases, 6 points: 2 passed, 0 failed" in r.output
    assert "impl      ok" in r.output  # the emitted Function's Jacobian, against the four engines


def test_an_edited_emitted_backward_is_caught(tmp_path: Path) -> None:
    """The emitted file is the user's code from then on: a slip in its backward fails its case."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    path = project / "mylayers" / "emitted_tanh_layer.py"
    text = path.read_text()
    assert "grad_output * (2 * (W.T @ t3))" in text
    path.write_text(text.replace("grad_output * (2 * (W.T @ t3))", "grad_output * (W.T @ t3)"))  # no 2
    r = cli("verify", project / "emitted.symcheck.yaml")
    assert r.exit_code != EXIT_OK
    assert "FAIL  emitted-tanh-layer" in r.output and "MISMATCH  impl vs symbolic" in r.output
    assert "PASS  emitted-softmax-regression" in r.output


def test_backward_writes_a_file_and_refuses_what_it_cannot_translate(tmp_path: Path) -> None:
    out = tmp_path / "swish.py"
    r = cli("backward", "sum(x*sigmoid(x))", "-i", "x:4", "--name", "Swish", "-o", out)
    assert r.exit_code == EXIT_OK, r.output
    assert "class Swish(torch.autograd.Function):" in out.read_text()
    r = cli("backward", "sum(max_pool2d(x, kernel=2))", "-i", "x:1x1x2x2")
    assert r.exit_code == EXIT_BAD_INPUT and "--emit torch does not translate max_pool2d yet" in r.output
