"""The prover (symcheck/engines/symbolic/prover.py): textbook answers proven, wrong claims never."""

from __future__ import annotations

import time

import pytest

from symcheck.engines.symbolic import ClosedForm
from symcheck.engines.symbolic.prover import Proof
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse
from tests.engines.op_checks import grad
from tests.engines.symbolic.claims import RIGHT, RIGHT_VJP, WRONG, WRONG_VJP, Shapes


def prove(expr: str, shapes: Shapes, wrt: str, claim: str, seconds: float | None = None) -> Proof:
    program = bind(parse(expr), {n: TensorType(s) for n, s in shapes.items()})
    closed = ClosedForm.derive(program, [wrt])
    return closed.prove(wrt, parse(claim), seconds=seconds)


def _id(claim: tuple) -> str:
    return f"{claim[0]} d/d{claim[2]} = {claim[3]}"


@pytest.mark.parametrize("claim", RIGHT, ids=[_id(c) for c in RIGHT])
def test_a_textbook_answer_is_proven(claim: tuple) -> None:
    start = time.perf_counter()
    proof = prove(*claim)
    assert proof.proven, (proof.how, proof.difference)
    assert proof.how.startswith(("equal to the closed form", "element by element"))
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("claim", WRONG, ids=[_id(c) for c in WRONG])
def test_a_wrong_claim_is_never_proven(claim: tuple) -> None:
    proof = prove(*claim)
    assert not proof.proven, proof.how


@pytest.mark.parametrize("claim", RIGHT_VJP, ids=[_id(c) for c in RIGHT_VJP])
def test_a_derivatives_table_backward_formula_is_proven(claim: tuple) -> None:
    proof = prove(*claim)
    assert proof.proven, (proof.how, proof.difference)


@pytest.mark.parametrize("claim", WRONG_VJP, ids=[_id(c) for c in WRONG_VJP])
def test_a_wrong_backward_formula_is_never_proven(claim: tuple) -> None:
    assert not prove(*claim).proven


def test_the_normal_form_decides_the_identities_that_were_only_numerical() -> None:
    # Each was "holds at N/N points (not proven symbolically)" before the normal form.
    for claim in [
        ("sum(A.T @ G @ C.T * X)", {"A": (3, 4), "G": (3, 5), "C": (2, 5), "X": (4, 2)}, "G", "A @ X @ C"),
        ("x @ A @ x", {"A": (3, 3), "x": (3,)}, "x", "(A + A.T) @ x"),
        ("sum((x @ B) * y)", {"x": (3,), "B": (3, 4), "y": (4,)}, "y", "B.T @ x"),
        ("a @ X.T @ b", {"a": (4,), "X": (3, 4), "b": (3,)}, "X", "outer(b, a)"),
        ("sum(softplus(x))", {"x": (3,)}, "x", "exp(x)/(exp(x) + 1)"),
        ("sum((x - mean(x))^2)", {"x": (4,)}, "x", "2*(x - mean(x))"),
        ("logdet(X)", {"X": (3, 3)}, "X", "inv(X.T)"),
    ]:
        proof = prove(*claim)
        assert proof.proven and proof.how.startswith("equal to the closed form"), (claim, proof)


def test_where_the_normal_form_cannot_decide_the_elements_do_at_two_probe_shapes() -> None:
    # the closed form is W.T @ ones, the claim a sum over rows: equal element by element
    proof = prove("sum(W @ x)", {"W": (20, 30), "x": (30,)}, "x", "sum(W, axis=0)")
    assert proof.proven
    assert proof.how == "element by element at probe shapes (W: (2, 3), x: (3,)) and (W: (3, 4), x: (4,))"
    small = prove("sum(W @ x)", {"W": (2, 3), "x": (3,)}, "x", "sum(W, axis=0)")
    assert small.how == "element by element at the case's shapes"  # small enough: the case itself
    assert not prove("sum(W @ x)", {"W": (20, 30), "x": (30,)}, "x", "sum(W, axis=1)[0] + 0*x").proven


def test_a_rounded_decimal_is_not_proven_quickly_and_says_why() -> None:
    for decimal in ("2.302585", "2.3025850929940456"):
        start = time.perf_counter()
        proof = prove("sum(log(x)/log(10))", {"x": (3,)}, "x", f"1/(x*{decimal})")
        assert time.perf_counter() - start < 2  # was past 120 s (and a crash printing 4,300 digits)
        assert not proof.proven and not proof.undecided
        assert proof.how.startswith(f"its decimal {decimal} is rounded, not an exact constant")
    six_digits = prove("sum(log(x)/log(10))", {"x": (3,)}, "x", "1/(x*2.302585)")
    assert "claimed/true - 1 is 4.0e-08" in six_digits.how
    # an exact decimal is a rational like any other
    assert prove("sum(0.25*x^2)", {"x": (3,)}, "x", "0.5*x").proven


def test_a_rounded_decimal_claim_holds_at_the_points_and_is_reported_so() -> None:
    r = grad("sum(log(x)/log(10))", "x:3", extra=("--claim", "x: 1/(x*2.3025850929940456)"))
    assert r.exit_code == 0, r.output
    assert "holds at 2/2 points (not proven symbolically: its decimal 2.3025850929940456 is rounded" in (
        r.output
    )


def test_a_proof_past_its_budget_is_undecided_never_proven() -> None:
    claim = "exp(x)/(exp(x) + 1)*tanh(x) + 1"
    proof = prove("sum(softplus(x)*tanh(x))", {"x": (3,)}, "x", claim, seconds=1e-3)
    assert proof.undecided and not proof.proven
    assert proof.how.startswith("undecided: the proof ran past its budget")


def test_a_claim_that_divides_by_an_input_is_not_proven_where_the_gradient_is_defined() -> None:
    # prod(x)/x is the product of the others wherever x != 0, and not finite where x = 0
    proof = prove("prod(x)", {"x": (4,)}, "x", "prod(x)/x")
    assert not proof.proven
    assert "the claim divides by x; at x = 0 it is not finite and the gradient is" in proof.how
    assert prove("sum(log(x))", {"x": (3,)}, "x", "1/x").proven  # the gradient divides by x too


def test_an_equality_test_and_a_max_tie_are_one_test() -> None:
    # the printed gradient of max(x) reads (x == max(x))/sum(x == max(x)); claimed back, it is proven
    proof = prove("max(x)", {"x": (4,)}, "x", "(x == max(x))/sum(x == max(x))")
    assert proof.proven, proof
    assert prove("max(x)", {"x": (4,)}, "x", "(max(x) == x)/sum(x == max(x))").proven
    assert not prove("max(x)", {"x": (4,)}, "x", "(x == max(x))").proven
