"""symcheck.check, closed_form, explain, verify and assert_module_gradients (symcheck/api/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

import symcheck
from symcheck.language.errors import SymcheckError

REPO = Path(__file__).resolve().parents[2]
SEED = "mean(3*(x+2)^2)"


def test_check_returns_a_result_with_a_short_repr_and_tables() -> None:
    r = symcheck.check(SEED, x=np.ones((2, 2)), claim="x: 3/2*(x + 2)")
    assert r.ok and r.status == "pass"
    assert repr(r) == "<symcheck PASS mean(3*(x+2)^2): 3 point(s); dout/dx = 3/2*(x + 2)>"
    assert r.closed_forms == {"x": "3/2*(x + 2)"}  # the CaseResult's fields, through
    assert r.proofs[0].proven
    assert "| mean(3*(x+2)^2) | ✅ pass | `dout/dx = 3/2*(x + 2)` |" in r._repr_markdown_()
    assert r._repr_html_().startswith("<table>") and "3/2*(x + 2)" in r._repr_html_()
    assert "PASS  mean(3*(x+2)^2)  (tests/api/test_functions.py:" in str(r)  # the report, this line


def test_check_without_values_draws_random_points_at_a_default_shape() -> None:
    r = symcheck.check("sum(x*sigmoid(x))", claim="x: sigmoid(x)")
    assert not r.ok  # the claim forgets the product rule
    assert r.notes[0] == "no value or shape given for x: checked at x: (3,)"
    shaped = symcheck.check("sum(W @ x)", shapes={"W": (2, 3), "x": 3})
    assert shaped.ok and shaped.program.inputs["W"].type.shape == (2, 3)


def test_a_number_claimed_in_check_applies_at_the_given_values() -> None:
    assert symcheck.check("sum(x^2)", x=[1.0, 2.0], claim={"x": "[2, 4]"}).ok


def test_check_refuses_an_input_it_does_not_use() -> None:
    with pytest.raises(SymcheckError, match="'y' is given but the expression does not use it"):
        symcheck.check("sum(x^2)", x=[1.0], y=2.0)


def test_closed_form_gives_sympy_and_the_language() -> None:
    cf = symcheck.closed_form(SEED, x=(2, 2))
    x = sympy.Symbol("x", real=True)
    assert sympy.simplify(cf["x"] - sympy.Rational(3, 2) * (x + 2)) == 0
    assert cf.text == {"x": "3/2*(x + 2)"} and str(cf) == "dout/dx = 3/2*(x + 2)"
    assert repr(cf) == "<symcheck closed forms of mean(3*(x+2)^2): dout/dx = 3/2*(x + 2)>"
    assert "$\\frac{3 \\left(x + 2\\right)}{2}$" in cf._repr_markdown_()
    matrix = symcheck.closed_form("sum((W @ x)^2)", W=(2, 3), x=3, wrt="x")
    assert matrix.text == {"x": "2*(W.T @ (W @ x))"}
    assert set(matrix.atoms.values()) == {"W.T @ (W @ x)"}  # what each tensor symbol stands for
    assert symcheck.closed_form("sum(W @ x)").shapes == {"W": (3, 3), "x": (3,)}


def test_closed_form_of_a_tensor_output_is_a_vjp() -> None:
    cf = symcheck.closed_form("sigmoid(x)", x=3)
    assert cf.cotangent == "v" and str(cf) == "v^T dout/dx = v*(1 - sigmoid(x))*sigmoid(x)"


def test_explain_returns_an_object_that_renders_in_jupyter() -> None:
    e = symcheck.explain(SEED, claim="x: 3*(x + 2)", x=np.ones((2, 2)))
    assert e.right is False
    assert repr(e) == "<symcheck explain mean(3*(x+2)^2): dout/dx = 3/2*(x + 2); claim x: WRONG>"
    markdown = e._repr_markdown_()
    assert "**Backward pass**" in markdown and "**Claims**" in markdown and "**WRONG**" in markdown
    assert "likely mistake: the factor 2 of the chain rule's factor" in str(e)
    assert symcheck.explain(SEED, claim={"x": "3/2*(x + 2)"}, x=np.ones((2, 2))).right is True


def test_verify_runs_suites_and_reports_them() -> None:
    results = symcheck.verify(REPO / "expressions" / "tutorial.yaml")
    assert results.ok and len(results) == 4
    assert repr(results) == "<symcheck results: 4 cases (4 pass)>"
    assert results._repr_markdown_().startswith("**symcheck verify**: 4 cases: 4 passed, 0 failed")
    assert "seed-one-expression" in results._repr_html_()


def test_verify_reports_every_schema_mistake_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - name: a\n    exprr: x\n  - name: b\n    expr: x\n    fil: 1\n")
    with pytest.raises(SymcheckError) as e:
        symcheck.verify(bad)
    assert len(getattr(e.value, "errors", [e.value])) == 2


class Swish(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.beta = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


def test_assert_module_gradients_checks_parameters_by_name() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2).double()
    result = symcheck.assert_module_gradients(layer, "weight @ input + bias", input=torch.randn(3).double())
    assert result.status == "pass" and result.wrt == ["weight", "bias"]
    swish = symcheck.assert_module_gradients(Swish(), "x*sigmoid(beta*x)", x=torch.randn(4).double())
    assert swish.wrt == ["beta"]


def test_assert_module_gradients_names_what_is_wrong() -> None:
    layer = torch.nn.Linear(3, 2).double()
    with pytest.raises(SymcheckError, match=r"'x' is not an argument of Linear\.forward"):
        symcheck.assert_module_gradients(layer, "weight @ x + bias", x=torch.randn(3).double())
    with pytest.raises(SymcheckError, match="names none of the module's parameters"):
        symcheck.assert_module_gradients(layer, "input*2", input=torch.randn(3).double())
    with pytest.raises(AssertionError, match="weight @ input: fn"):  # the bias is left out: wrong
        symcheck.assert_module_gradients(layer, "weight @ input", input=torch.randn(3).double())


def test_a_notebook_cell_is_named_in_the_header_not_the_kernels_file() -> None:
    code = compile(
        "import symcheck\nr = symcheck.check('sum(x^2)', x=[1.0])", "/tmp/ipykernel_42/123.py", "exec"
    )
    scope: dict = {}
    exec(code, scope)
    assert scope["r"].case.file.startswith("<cell")


def test_the_rough_edges_found_writing_the_docs() -> None:
    # a number claimed in explain is the gradient at the given values, as in check and expect:
    e = symcheck.explain(SEED, x=np.ones((2, 2)), claim="x: 4.5")
    assert e.right is True and e.claims[0].verdict == "right (at the given values)"
    assert symcheck.explain(SEED, x=np.ones((2, 2)), claim="x: 9").right is False
    # a tensor output's row is a VJP, and one result's table is not headed as a verify run
    vjp = symcheck.check("x*sigmoid(x)", x=[0.5, -1.0])
    assert "v^T dout/dx = " in repr(vjp)
    assert vjp._repr_markdown_().startswith("**symcheck**: 1 case: 1 passed, 0 failed")
    # assert_gradients returns a Result: a short repr, not a 20,000-character dataclass
    r = symcheck.assert_gradients(lambda x: (x * x).sum(), "sum(x^2)", x=torch.ones(2, dtype=torch.float64))
    assert r.ok and repr(r).startswith("<symcheck PASS sum(x^2)")
    # the names a user reaches for are exported
    assert symcheck.SymcheckError is SymcheckError and symcheck.Result is symcheck.api.Result
    # integers only: nothing to differentiate, said so
    with pytest.raises(SymcheckError, match="holds integers, so each is a label"):
        symcheck.check("sum(x^2)", x=np.array([1, 2]))
    # a misspelt option is suggested
    with pytest.raises(SymcheckError) as err:
        symcheck.check("sum(x^2)", x=[1.0], rtoll=1e-3)
    assert err.value.hint == "did you mean 'rtol'? (an option of check)"
    # closed forms' symbols are given, since they are real
    cf = symcheck.closed_form(SEED, x=(2, 2))
    assert cf["x"].subs(cf.symbols["x"], 1) == sympy.Rational(9, 2)


def test_a_claims_mistake_points_at_the_call_and_names_the_claim() -> None:
    with pytest.raises(SymcheckError) as err:
        symcheck.check("sum(x^2)", claim={"x": "[2, 4]"})  # x defaults to 3 elements
    line = err.value.span.line if err.value.span is not None else None
    text = str(err.value)
    assert "the claim for 'x' has shape [2] but input 'x' has shape [3]" in text
    assert "test_functions.py:" in text and ":1:" not in text.split("error")[0], (text, line)
    with pytest.raises(SymcheckError, match="the claim for 'y', which is not an input"):
        symcheck.check("sum(x^2)", x=np.array([1.0, 2.0]), claim="y: 2*x")
