"""Closed forms on disk: reused across runs, keyed by all that decides them, signed, clearable."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from symcheck.cli import main
from symcheck.engines import cache as derived
from symcheck.engines.base import EngineOptions
from symcheck.engines.symbolic import ClosedForm, SymbolicEngine
from symcheck.language.ir import Program, TensorType
from symcheck.language.parser import bind, parse

_WORTH_STORING = derived.worth_storing


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the signing key lives there
    monkeypatch.setenv(derived.CACHE_ENV, str(tmp_path / ".symcheck_cache"))
    monkeypatch.delenv(derived.NO_CACHE_ENV)  # tests run without a cache (conftest)
    monkeypatch.setattr(derived, "worth_storing", lambda made_in, read_in: True)  # small forms, quick to make
    derived._open.cache_clear()
    derived.forget()
    yield tmp_path / ".symcheck_cache"
    derived._open.cache_clear()
    derived.forget()


def _program(text: str, **shapes: tuple[int, ...]) -> Program:
    parsed = parse(text)
    return bind(parsed, {n: TensorType(shapes[n]) for n in parsed.free_names()})


def _derivations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    derive = ClosedForm.derive.__func__  # type: ignore[attr-defined]

    def counted(cls: type[ClosedForm], program: Program, wrt: list[str]) -> ClosedForm:
        calls.append(program.source.text)
        return derive(cls, program, wrt)

    monkeypatch.setattr(ClosedForm, "derive", classmethod(counted))
    return calls


def _run(program: Program, x: np.ndarray) -> object:
    return SymbolicEngine().run(program, {"x": x}, ["x"], EngineOptions(expansion_budget=2))


def test_a_closed_form_is_derived_once_across_runs(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _derivations(monkeypatch)
    x = np.array([1.0, 2.0, 3.0])
    first = _run(_program("mean(3*(x+2)^2)", x=(3,)), x)
    derived.forget()  # a new process
    again = _run(_program("mean(3*(x+2)^2)", x=(3,)), x)
    assert calls == ["mean(3*(x+2)^2)", "mean(3*(x+2)^2)"]  # the case, then its probe shape
    assert again.closed_forms == first.closed_forms == {"x": "2*(x + 2)"}
    np.testing.assert_array_equal(again.grads["x"], first.grads["x"])
    assert again.notes == first.notes  # the probe's proof, read back
    assert (cache_dir / ".gitignore").read_text().endswith("*\n")
    assert (cache_dir / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")


def test_another_shape_or_wrt_is_another_entry(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _derivations(monkeypatch)
    SymbolicEngine().closed_form(_program("sum(x*y)", x=(2,), y=(2,)), ["x"])
    SymbolicEngine().closed_form(_program("sum(x*y)", x=(3,), y=(3,)), ["x"])
    SymbolicEngine().closed_form(_program("sum(x*y)", x=(2,), y=(2,)), ["y"])
    SymbolicEngine().closed_form(_program("sum(x*y)", x=(2,), y=(2,)), ["x"])  # from memory
    derived.forget()
    SymbolicEngine().closed_form(_program("sum(x*y)", x=(2,), y=(2,)), ["x"])  # from disk
    assert len(calls) == 3


def test_in_one_process_the_cache_needs_no_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _derivations(monkeypatch)
    monkeypatch.delenv(derived.NO_CACHE_ENV)
    derived.forget()
    try:
        for x in ([1.0, 2.0], [3.0, 4.0]):  # a test session checking one function at two points
            result = _run(_program("sum(x^3)", x=(2,)), np.array(x))
            assert result.grads["x"].tolist() == [3 * v * v for v in x]
        assert calls == ["sum(x^3)"]
        monkeypatch.setenv(derived.NO_CACHE_ENV, "1")
        _run(_program("sum(x^3)", x=(2,)), np.array([1.0, 2.0]))
        assert calls == ["sum(x^3)"] * 2
    finally:
        derived.forget()


def test_an_entry_that_does_not_verify_is_never_unpickled(cache_dir: Path, tmp_path: Path) -> None:
    program = _program("sum(x^2)", x=(2,))
    SymbolicEngine().closed_form(program, ["x"])
    (entry,) = (cache_dir / derived.fingerprint()[:16] / "closed-form").iterdir()
    witness = tmp_path / "ran"

    class Payload:  # unpickling this would create the witness file
        def __reduce__(self) -> tuple:
            return (os.mkdir, (str(witness),))

    entry.write_bytes(b"\0" * 32 + pickle.dumps(Payload()))
    derived.forget()
    assert SymbolicEngine().closed_form(program, ["x"]).printed == {"x": "2*x"}  # derived again
    assert not witness.exists()
    (entry,) = (cache_dir / derived.fingerprint()[:16] / "closed-form").iterdir()  # replaced by a good one
    assert derived.active().get("closed-form", derived.program_key(program, ["x"])) is not None


def test_what_is_quicker_made_than_read_is_not_stored(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(derived, "worth_storing", _WORTH_STORING)  # the fixture's says always
    monkeypatch.setattr(derived, "WORTH_STORING_SECONDS", 60.0)
    SymbolicEngine().closed_form(_program("sum(x^2)", x=(2,)), ["x"])
    assert not cache_dir.exists()


def test_an_entry_is_stored_where_reading_it_back_is_quicker_than_making_it() -> None:
    assert not derived.worth_storing(0.0005, None)  # quicker made than a file opened
    assert not derived.worth_storing(0.01, 0.02)  # a large expression SymPy rebuilds slowly
    assert derived.worth_storing(0.05, None) and derived.worth_storing(0.05, 0.002)


def test_another_versions_entries_are_removed_at_the_first_write(cache_dir: Path) -> None:
    old = cache_dir / "0123456789abcdef" / "closed-form"
    old.mkdir(parents=True)
    (old / "entry.pickle").write_bytes(b"of another symcheck")
    SymbolicEngine().closed_form(_program("sum(x^2)", x=(2,)), ["x"])
    assert not old.parent.exists()
    assert (cache_dir / derived.fingerprint()[:16] / "closed-form").is_dir()


def test_without_a_private_folder_there_is_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    (shared / "symcheck").mkdir(parents=True)
    (shared / "symcheck").chmod(0o777)  # anyone could plant a key or an entry
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    monkeypatch.setenv(derived.CACHE_ENV, str(tmp_path / ".symcheck_cache"))
    monkeypatch.delenv(derived.NO_CACHE_ENV)
    derived._open.cache_clear()
    try:
        assert derived.active() is None
    finally:
        derived._open.cache_clear()
        derived.forget()


def test_the_signing_key_is_the_users_alone(cache_dir: Path, tmp_path: Path) -> None:
    assert derived.active() is not None
    key = tmp_path / "xdg" / "symcheck" / "cache-signing.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) == 32


def test_clear_removes_only_a_folder_symcheck_made(tmp_path: Path) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    (other / "README.md").write_text("my notes\n")
    derived.clear(other)
    assert other.exists()


def test_the_cli_keeps_clears_and_skips_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SYMCHECK_NO_CACHE")
    monkeypatch.setattr(derived, "worth_storing", lambda made_in, read_in: True)
    monkeypatch.chdir(tmp_path)
    derived._open.cache_clear()
    derived.forget()
    runner = CliRunner()
    folder = tmp_path / ".symcheck_cache"
    try:
        assert runner.invoke(main, ["grad", "mean(3*(x+2)^2)", "-i", "x=[1,2]"]).exit_code == 0
        assert (folder / derived.fingerprint()[:16] / "closed-form").is_dir()
        assert derived.CACHE_ENV not in os.environ  # set for the run only
        assert derived.NO_CACHE_ENV not in os.environ
        args = ["grad", "mean(3*(x+2)^2)", "-i", "x=[1,2]", "--cache-clear", "--no-cache"]
        assert runner.invoke(main, args).exit_code == 0
        assert not folder.exists()
        monkeypatch.setenv("SYMCHECK_NO_CACHE", "1")
        assert runner.invoke(main, ["grad", "mean(3*(x+2)^2)", "-i", "x=[1,2]"]).exit_code == 0
        assert not folder.exists()
    finally:
        derived._open.cache_clear()
        derived.forget()


def test_a_proof_is_decided_once(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from symcheck.checks.runner import run_cases
    from symcheck.suites.loader import load_suite

    tutorial = Path(__file__).resolve().parents[2] / "expressions" / "tutorial.yaml"
    cases = [c for c in load_suite(tutorial).cases if c.name == "seed-one-expression"]
    differences: list[str] = []
    prove = ClosedForm.prove

    def counted(self: ClosedForm, name: str, *args: object, **kwargs: object) -> object:
        differences.append(name)
        return prove(self, name, *args, **kwargs)

    monkeypatch.setattr(ClosedForm, "prove", counted)
    for _ in range(2):
        (result,), errors = run_cases(cases)
        assert not errors and result.status == "pass"
        assert [(p.wrt, p.proven) for p in result.proofs] == [("x", True)]
    assert differences == ["x"]


def test_a_stored_closed_form_evaluates_without_lambdify(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lambdify printed every numpy function again in each run (0.5 s of the shipped suites): its
    sources go with the stored graph, and a later run compiles them."""
    import sympy

    x = np.array([0.5, -1.0, 2.0])
    program = _program("sum(tanh(x)*relu(x) + maximum(x, 0.3)*sigmoid(x))", x=(3,))
    first = _run(program, x)
    derived.forget()  # a new process
    made: list[tuple] = []
    lambdify = sympy.lambdify
    monkeypatch.setattr(sympy, "lambdify", lambda *a, **k: made.append(a) or lambdify(*a, **k))
    again = _run(program, x)
    assert [args for args in made if args[0]] == []  # at most the namespace's own, of no argument
    np.testing.assert_array_equal(again.grads["x"], first.grads["x"])
    assert again.value == first.value


def test_a_stored_closed_form_comes_back_as_it_was_built(cache_dir: Path) -> None:
    """Unpickling SymPy evaluated every product again: factor's 3/2*(x + 2) came back as
    3*x/2 + 3 (and three times slower)."""
    import sympy

    program = _program("mean(3*(x+2)^2)", x=(2,))
    first = SymbolicEngine().closed_form(program, ["x"])
    derived.forget()
    again = SymbolicEngine().closed_form(_program("mean(3*(x+2)^2)", x=(2,)), ["x"])
    assert sympy.srepr(again.grads["x"].expr) == sympy.srepr(first.grads["x"].expr)
    assert sympy.srepr(again.output.expr) == sympy.srepr(first.output.expr)
    assert isinstance(again.grads["x"].expr, sympy.Mul)  # 3/2*(x + 2), as factor left it


def test_a_stored_expansion_brings_its_symengine_forms(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converting the expansion from SymPy to SymEngine at every run was a tenth of the shipped
    suites' time: the forms are stored with it (SymEngine's serialization), and give the same
    exact values."""
    from symcheck.engines.symbolic import expansion

    program = _program("sum(exp(sin(x^2))*x + log(1 + x*x)^2)", x=(3,))
    x = np.array([0.5, -1.0, 2.0])
    first = SymbolicEngine().run(program, {"x": x}, ["x"], EngineOptions())
    derived.forget()
    expansion._IN_SYMENGINE.clear()  # a new process
    converted: list[object] = []
    sympify = expansion.symengine.sympify
    monkeypatch.setattr(expansion.symengine, "sympify", lambda e: converted.append(e) or sympify(e))
    again = SymbolicEngine().run(
        _program("sum(exp(sin(x^2))*x + log(1 + x*x)^2)", x=(3,)), {"x": x}, ["x"], EngineOptions()
    )
    assert "closed form = expansion (exact, element by element) at this point" in again.notes
    assert [
        e for e in converted if not isinstance(e, (int, float)) and not getattr(e, "is_Number", False)
    ] == []
    np.testing.assert_array_equal(again.grads["x"], first.grads["x"])
    assert again.value == first.value


def test_an_undecided_proof_is_not_kept(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proof past its budget is tried again by a later run (given longer, it may decide)."""
    from symcheck.checks.runner import run_cases
    from symcheck.engines.symbolic.prover import Proof
    from symcheck.suites.loader import load_suite

    tutorial = Path(__file__).resolve().parents[2] / "expressions" / "tutorial.yaml"
    cases = [c for c in load_suite(tutorial).cases if c.name == "seed-one-expression"]
    calls: list[str] = []

    def undecided(self: ClosedForm, name: str, *args: object, **kwargs: object) -> Proof:
        calls.append(name)
        return Proof(False, "undecided: the proof ran past its budget of 1 s", undecided=True)

    monkeypatch.setattr(ClosedForm, "prove", undecided)
    for _ in range(2):
        (result,), errors = run_cases(cases)
        assert not errors and [p.how for p in result.proofs] == [
            "undecided: the proof ran past its budget of 1 s"
        ]
    assert calls == ["x", "x"]
