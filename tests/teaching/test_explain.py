"""symcheck explain: the seed's hand derivation, step by step, and claims checked against it."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from symcheck.cli import main
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import bind, parse
from symcheck.teaching.explain import (
    claim_checks,
    explain,
    render_latex,
    render_markdown,
    render_text,
    split_steps,
)

SEED = "mean(3*(x+2)^2)"
ONES = {"x": np.ones((2, 2))}


def seed_program(text: str = SEED):  # type: ignore[no-untyped-def]
    return bind(parse(text), {"x": TensorType((2, 2))})


def test_a_single_expression_is_cut_where_elementwise_meets_a_reduction() -> None:
    steps = split_steps(seed_program()).steps
    assert [(s.name, s.expr.shape) for s in steps] == [("t1", (2, 2)), ("out", ())]


def test_named_steps_stay_as_written() -> None:
    steps = split_steps(seed_program("y = x + 2\nz = y * y * 3\nout = mean(z)")).steps
    assert [s.name for s in steps] == ["y", "z", "out"]


def test_the_seed_derivation_by_hand() -> None:
    ex = explain(seed_program("y = x + 2\nz = 3*y^2\nout = mean(z)"), ONES, ["x"])
    assert [(s.name, float(np.asarray(s.value).flat[0])) for s in ex.forward] == [
        ("y", 3),
        ("z", 27),
        ("out", 27),
    ]
    text = render_text(ex)
    assert "  out = 3/4*((x1 + 2)^2 + (x2 + 2)^2 + (x3 + 2)^2 + (x4 + 2)^2)\n" in text
    assert "  dout/dx1 = 3/2*(x1 + 2)   (every element alike)\n" in text
    out, z, y = ex.backward
    assert (out.links[0].local[0].text, out.links[0].local[1].text) == ("dout/dz", "1/4")
    assert "mean: 1/N with N = 4" in out.rules
    assert "arriving: dout/dz = 1/4\n" in text
    assert "local:    dz/dy = 6*y\n" in text
    assert "chain:    dout/dy = dout/dz * dz/dy = 3/2*y\n" in text
    assert z.links[0].in_inputs is not None and z.links[0].in_inputs.text == "3/2*(x + 2)"
    assert "power rule" in z.rules and "chain rule" not in y.rules
    assert {n: f.text for n, f in ex.closed_forms.items()} == {"x": "3/2*(x + 2)"}
    np.testing.assert_allclose(ex.values["x"], 4.5)
    for grads in ex.engines.values():
        np.testing.assert_allclose(grads["x"], 4.5)
    assert set(ex.engines) == {"autograd", "torch"}


def test_logistic_regression_backward_reaches_softmax_minus_onehot() -> None:
    types = {
        "W": TensorType((2, 3)),
        "x": TensorType((3,)),
        "b": TensorType((2,)),
        "y": TensorType((), DType.INT),
    }
    program = bind(parse("z = W @ x + b\nL = nll_loss(log_softmax(z), y)"), types)
    point = {"W": np.full((2, 3), 0.1), "x": np.array([1.0, 0, 2]), "b": np.zeros(2), "y": np.array(1)}
    ex = explain(program, point, ["W", "b"])
    text = render_text(ex)
    assert "dL/dz = dL/dt2 * dt2/dz = softmax(z) - onehot(y, 2)" in text
    assert "outer(softmax(W @ x + b) - onehot(y, 2), x)" in text
    assert ex.elementwise == []  # labels would make it a case analysis


def test_claims_are_checked() -> None:
    program = seed_program()
    (check,) = claim_checks(program, ["x"], ["x: 3/2*(x + 2)"])
    assert check.right
    (check,) = claim_checks(program, ["x"], ["x: 3*(x+2)"])
    assert not check.right
    assert any("3/2*(x + 2)" in line for line in check.lines)


def test_the_command() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["explain", SEED, "-i", "x:2x2=1"])
    assert r.exit_code == 0, r.output
    assert "dout/dx = 3/2*(x + 2)" in r.output and "4.5 everywhere" in r.output
    r = runner.invoke(main, ["explain", SEED, "-i", "x:2x2=1", "--claim", "x: 3*(x+2)"])
    assert r.exit_code == 1
    r = runner.invoke(main, ["explain", "expressions/tutorial.yaml", "--case", "seed-named-steps"])
    assert r.exit_code == 0 and "dz/dy" in r.output
    r = runner.invoke(main, ["explain", "expressions/tutorial.yaml"])
    assert r.exit_code == 2 and "--case" in r.output
    r = runner.invoke(main, ["explain", "maen(x)", "-i", "x:2"])
    assert r.exit_code == 2 and "did you mean 'mean'" in r.output


def test_markdown_and_latex_carry_the_same_derivation() -> None:
    ex = explain(seed_program("y = x + 2\nz = 3*y^2\nout = mean(z)"), ONES, ["x"])
    markdown = render_markdown(ex)
    assert "$\\frac{\\partial z}{\\partial y} = 6 y$" in markdown
    assert "\\frac{3 \\left(x + 2\\right)}{2}" in markdown
    latex = render_latex(ex)
    assert latex.startswith("\\begin{aligned}") and latex.endswith("\\end{aligned}")
    assert ex._repr_markdown_() == markdown and ex._repr_latex_().startswith("$\\begin{aligned}")


KATEX_RENDER = (
    "const k = require('katex'); const parts = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
    "for (const p of parts) { k.renderToString(p, {throwOnError: true, displayMode: true}); }"
)


def _katex_modules() -> str | None:
    """node_modules holding KaTeX: $SYMCHECK_KATEX, or where .ci/run installs it (.venv/katex)."""
    import os
    import shutil
    from pathlib import Path

    if shutil.which("node") is None:
        return None
    for candidate in (
        os.environ.get("SYMCHECK_KATEX"),
        Path(__file__).parents[2] / ".venv/katex/node_modules",
    ):
        if candidate and (Path(candidate) / "katex").is_dir():
            return str(candidate)
    return None


def test_the_latex_and_the_markdown_math_render_in_katex() -> None:
    import json
    import os
    import re
    import subprocess

    import pytest

    modules = _katex_modules()
    if modules is None:
        pytest.skip("no LaTeX renderer: install KaTeX (npm install --prefix .venv/katex katex) and node")
    ex = explain(seed_program("y = x + 2\nz = 3*y^2\nout = mean(z)"), ONES, ["x"])
    pieces = [render_latex(ex)] + re.findall(r"\$([^$]+)\$", render_markdown(ex))
    env = {**os.environ, "NODE_PATH": modules}
    run = subprocess.run(
        ["node", "-e", KATEX_RENDER],
        input=json.dumps(pieces),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_shipped_mistakes_are_refuted_with_their_diagnosis(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A known mistake that symcheck accepted, or diagnosed otherwise, fails the case."""
    from symcheck.checks.runner import run_cases
    from symcheck.suites.loader import load_suite

    suite = tmp_path / "m.yaml"
    suite.write_text(
        "cases:\n"
        "  - name: seed\n"
        "    expr: mean(3*(x+2)^2)\n"
        "    inputs: {x: {shape: [2, 2], fill: 1}}\n"
        "    samples: 0\n"
        "    mistakes:\n"
        "      - grad: {x: '6*(x + 2)'}\n"
        "        because: the 1/N of mean is missing\n"
    )
    (result,), _ = run_cases(load_suite(suite).cases)
    assert result.status == "pass" and result.mistakes[0].refuted
    suite.write_text(suite.read_text().replace("6*(x + 2)", "3/2*(x + 2)"))  # not a mistake at all
    (result,), _ = run_cases(load_suite(suite).cases)
    assert result.status == "fail" and not result.mistakes[0].refuted
    suite.write_text(suite.read_text().replace("3/2*(x + 2)", "-3/2*(x + 2)"))  # diagnosed as a sign error
    (result,), _ = run_cases(load_suite(suite).cases)
    assert result.status == "fail" and result.mistakes[0].refuted and not result.mistakes[0].ok


def test_a_training_case_shows_what_backward_step_and_zero_grad_do() -> None:
    runner = CliRunner()
    r = runner.invoke(
        main, ["explain", "expressions/bow_logistic_regression.yaml", "--case", "bow-classifier"]
    )
    assert r.exit_code == 0, r.output
    assert "one training step" in r.output
    assert "step()       reads b.grad only" in r.output
    assert "zero_grad()  sets every .grad back to zero" in r.output
    assert "b.grad = [-0.910313,  0.910313]" in r.output  # a second backward() without zero_grad() adds


def test_element_names_do_not_collide_with_an_input_called_x1() -> None:
    result = CliRunner().invoke(main, ["explain", "out = sum(x*x) + x1", "-i", "x=[1,2]", "-i", "x1=3"])
    assert result.exit_code == 0, result.output
    assert "out = x1 + x_1^2 + x_2^2" in result.output
    assert "dout/dx_1 = 2*x_1" in result.output


def test_extremes_print_element_by_element_and_stay_quick() -> None:
    # max_of / min_of (the expanded reduction) had no printed form: exit 3; with both, the
    # "every element alike" note's simplify ran for minutes.
    for expr in ("max(x*x)", "min(x) + max(sin(x))"):
        r = CliRunner().invoke(main, ["explain", expr, "-i", "x:3"])
        assert r.exit_code == 0, r.output
        assert "maximum(maximum(" in r.output


def test_a_chain_step_in_latex_has_one_equals_sign_after_the_alignment_mark() -> None:
    r = CliRunner().invoke(main, ["explain", "sum(sin(x)*x)", "-i", "x:3", "--format", "latex"])
    assert r.exit_code == 0, r.output
    assert "&= =" not in r.output


def test_a_derivation_too_heavy_for_the_time_budget_is_refused_clearly() -> None:
    expr = "sum(tanh(sigmoid(x)^3 + softplus(x)^2)^5 * log(1 + x*x)^3)"
    r = CliRunner().invoke(main, ["explain", expr, "-i", "x:3", "--timeout", "0.01"])
    assert r.exit_code == 2, r.output
    assert "explain gave up after 0.01 s" in r.output and "--timeout" in r.output


# ---------------------------------------------------------------- --wrt, no -i, claims in Markdown and LaTeX


def _explain(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["explain", *args])
    return r.exit_code, r.output


def test_explain_wrt_walks_back_to_that_input_only() -> None:
    code, out = _explain("y = W @ x; loss = sum(y^2)", "-i", "W:2x3", "-i", "x:3", "--wrt", "W")
    assert code == 0, out
    assert "dloss/dW = 2*outer(W @ x, x)" in out
    assert "dloss/dx" not in out and "x.grad" not in out


def test_explain_without_inputs_picks_small_shapes_and_says_so() -> None:
    code, out = _explain("mean(3*(x+2)^2)")
    assert code == 0, out
    assert "no shape given for x: explained at x: float[3], a default small shape" in out
    assert "dout/dx = 2*(x + 2)" in out  # the 1/N of mean at N = 3
    code, out = _explain("sum(W @ x + b)", "--claim", "W: outer(1 + 0*b, x)")
    assert code == 0, out
    assert "explained at W: float[3, 3], x: float[3], b: float[3]" in out  # a capital is a matrix
    assert "right (proven" in out
    code, out = _explain("sum(reshape(x, (2, 5)))")
    assert code == 2 and "no small default shape fits the expression" in out


def test_a_where_claim_is_diagnosed_through_explain() -> None:
    code, out = _explain(
        "sum(where(x > 0, x, 0.1*x)^2)", "-i", "x:3", "--claim", "x: 2*where(x > 0, x, 0.1*x)"
    )
    assert code == 1, out
    assert (
        "likely mistake: the chain rule's factor d(where(x > 0, x, 0.1*x))/dx = where(x > 0, 1, 0.1)" in out
    )


CLAIMED = (
    "y = x + 2\nz = 3*y^2\nout = mean(z)",
    "-i",
    "x:2x2",
    "--claim",
    "x: 3*(x+2)",
    "--claim",
    "x: 3/2*y",
)


def test_claims_are_typeset_in_markdown_and_latex() -> None:
    code, markdown = _explain(*CLAIMED, "--format", "markdown")
    assert code == 1, markdown
    # typeset as written: 3*(x+2), not SymPy's 3*x + 6
    assert "- $\\frac{\\partial \\mathrm{out}}{\\partial x} = 3 \\left(x + 2\\right)$: **WRONG**" in markdown
    right = "\\frac{\\partial \\mathrm{out}}{\\partial x} = \\frac{3}{2} \\left(x + 2\\right)"
    assert f"- ${right}$: **right** (proven" in markdown
    assert "`likely mistake: the factor 2 of the chain rule's factor d(y^2)/dy" in markdown
    code, latex = _explain(*CLAIMED, "--format", "latex")
    assert "\\overset{?}{=} 3 \\left(x + 2\\right) \\quad \\text{WRONG}" in latex
    assert "d(y\\textasciicircum{}2)/dy" in latex  # text made safe: no bare ^ in \text{}
    assert latex.rstrip().endswith("\\end{aligned}")  # the verdicts inside the math, not after it
    for out in (markdown, latex):
        assert "= =" not in out and "&= &=" not in out


def test_the_claims_render_in_katex() -> None:
    import json
    import os
    import re
    import subprocess

    import pytest

    modules = _katex_modules()
    if modules is None:
        pytest.skip("no LaTeX renderer: install KaTeX (npm install --prefix .venv/katex katex) and node")
    _, markdown = _explain(*CLAIMED, "--format", "markdown")
    _, latex = _explain(*CLAIMED, "--format", "latex")
    blocks = re.findall(r"\\begin\{aligned\}.*?\\end\{aligned\}", latex, flags=re.S)
    assert len(blocks) == 2  # the derivation, then the claims
    pieces = blocks + re.findall(r"\$([^$]+)\$", markdown)
    run = subprocess.run(
        ["node", "-e", KATEX_RENDER],
        input=json.dumps(pieces),
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": modules},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_an_expansion_the_language_cannot_print_leaves_out_the_element_view_with_a_note() -> None:
    """Fuzz (seed 45, #133): SymPy differentiates the expansion's Min into Heaviside, which the
    language has no name for; explain crashed. The view is left out, the derivation stands."""
    code, out = _explain(
        "logsumexp(minimum(expand_dims(b, axis=0), r))", "-i", "b=[-1.0, -0.5]", "-i", "r:1x2"
    )
    assert code == 0, out
    assert "note: the element-by-element view is left out: Heaviside is not in the language" in out
    assert "backward pass" in out


def test_a_number_claimed_at_random_inputs_is_judged_at_the_point_shown() -> None:
    code, out = _explain("sum(x^2)", "-i", "x:3", "--claim", "x: 1")
    assert code == 1 and "claim dout/dx = 1: WRONG (at the point shown above)" in out
