"""Input specs and the command-line input syntax (symcheck/language/inputs.py)."""

from __future__ import annotations

import numpy as np
import pytest

from symcheck.language.errors import SymcheckError
from symcheck.language.inputs import InputSpec, RandomSpec, parse_cli_input
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse


def program(text: str, **types: tuple[int, ...] | TensorType) -> Program:
    return bind(parse(text), {n: t if isinstance(t, TensorType) else TensorType(t) for n, t in types.items()})


def specs_for(p: Program, **given: InputSpec) -> dict[str, InputSpec]:
    return {n: given.get(n) or InputSpec(shape=d.type.shape, dtype=d.type.dtype) for n, d in p.inputs.items()}


# ---------------------------------------------------------------- InputSpec


def test_fill_input() -> None:
    spec = InputSpec(shape=(2, 2), fill=1)
    assert spec.type() == TensorType((2, 2))
    assert spec.concrete()
    np.testing.assert_array_equal(spec.array(), np.ones((2, 2)))
    assert spec.array().dtype == np.float64


def test_value_infers_shape() -> None:
    spec = InputSpec(value=[[1, 2], [3, 4]])
    assert spec.shape == (2, 2)
    assert spec.value == ((1.0, 2.0), (3.0, 4.0))
    np.testing.assert_array_equal(spec.array(), [[1, 2], [3, 4]])


def test_scalar_value_and_default_scalar_shape() -> None:
    assert InputSpec(value=0.5).type() == TensorType(())
    assert InputSpec().shape == ()
    assert InputSpec(fill=2).shape == ()


def test_int_value() -> None:
    spec = InputSpec(shape=(4,), dtype=DType.INT, value=[0, 1, 1, 0])
    assert spec.type() == TensorType((4,), DType.INT)
    assert spec.array().dtype == np.int64


def test_dtype_from_text() -> None:
    assert InputSpec(shape=(2,), dtype="int").dtype is DType.INT  # type: ignore[arg-type]


def test_random_and_missing_source_are_not_concrete() -> None:
    assert not InputSpec(shape=(3,)).concrete()
    assert not InputSpec(shape=(3,), random=RandomSpec(-1, 1, seed=3)).concrete()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": (2, 2), "value": [1, 2]}, "value has shape [2] but shape is [2, 2]"),
        ({"shape": (2,), "value": 1}, "value has shape [] but shape is [2]"),
        ({"fill": 1, "value": 1}, "one of fill, value or random"),
        ({"value": [[1, 2], [3]]}, "ragged"),
        ({"value": [1, "a"]}, "expected a number"),
        ({"value": [True, 1]}, "expected a number"),
        ({"value": []}, "empty list"),
        ({"value": [1.0, float("nan")]}, "finite"),
        ({"fill": float("inf")}, "finite"),
        ({"shape": (0, 2)}, "positive"),
        ({"shape": (2,), "dtype": DType.INT, "value": [0.5, 1]}, "integer values"),
        ({"dtype": DType.INT, "fill": 0.5}, "integer fill"),
        ({"dtype": DType.BOOL}, "not bool"),
        ({"dtype": "complex"}, "unknown dtype"),
        ({"dtype": DType.INT, "random": RandomSpec(0, 1, "normal")}, "uniformly"),
    ],
)
def test_input_spec_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SymcheckError, match=message.replace("[", r"\[").replace("]", r"\]")):
        InputSpec(**kwargs)


def test_scalar_value_with_shape_hints_fill() -> None:
    with pytest.raises(SymcheckError) as e:
        InputSpec(shape=(2,), value=1)
    assert e.value.hint is not None and "fill: 1" in e.value.hint


def test_random_spec_errors() -> None:
    with pytest.raises(SymcheckError, match="empty"):
        RandomSpec(2, 1)
    with pytest.raises(SymcheckError, match="both low and high"):
        RandomSpec(low=1)
    with pytest.raises(SymcheckError, match="std > 0"):
        RandomSpec(0, 0, "normal")
    with pytest.raises(SymcheckError, match="distribution"):
        RandomSpec(0, 1, "cauchy")  # type: ignore[arg-type]


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("x:2x2=1", "x", InputSpec(shape=(2, 2), fill=1.0)),
        ("x:3x4", "x", InputSpec(shape=(3, 4))),
        ("x=[[1,2],[3,4]]", "x", InputSpec(value=[[1, 2], [3, 4]])),
        ("s=0.5", "s", InputSpec(value=0.5)),
        ("x:3", "x", InputSpec(shape=(3,))),
        ("y:4:int=[0,1,1,0]", "y", InputSpec(shape=(4,), dtype=DType.INT, value=[0, 1, 1, 0])),
        ("x:2x2~uniform(-1,1)", "x", InputSpec(shape=(2, 2), random=RandomSpec(-1, 1))),
        ("x:2x2~normal(0,1)", "x", InputSpec(shape=(2, 2), random=RandomSpec(0, 1, "normal"))),
        ("x:2x2~uniform(-1, 1.5)", "x", InputSpec(shape=(2, 2), random=RandomSpec(-1, 1.5))),
        ("x:2,3", "x", InputSpec(shape=(2, 3))),
        ("w_1:scalar=2", "w_1", InputSpec(value=2)),
        ("y:int:3", "y", InputSpec(shape=(3,), dtype=DType.INT)),
        ("x:2=[1e-3, -2.5]", "x", InputSpec(value=[0.001, -2.5])),
    ],
)
def test_parse_cli_input(text: str, name: str, expected: InputSpec) -> None:
    assert parse_cli_input(text) == (name, expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x:2y2=1", "neither a shape"),
        ("x=[1,2", "not a valid list"),
        ("x=[[1,2],[3]]", "ragged"),
        ('x=[1,"a"]', "expected a number"),
        ("x=__import__('os')", "not a number"),
        ("2x=1", "not a name"),
        ("=1", "missing the input's name"),
        ("x=", "nothing after"),
        ("x=abc", "not a number"),
        ("x=inf", "not a finite number"),
        ("x:2x2=[1,2]", "value has shape"),
        ("x~foo(1,2)", "not a random range"),
        ("x~uniform(1,0)", "empty"),
        ("x~uniform(a,1)", "not a number"),
        ("x:2:int=0.5", "integer fill"),
        ("exp=1", "name of a function"),
    ],
)
def test_parse_cli_input_errors(text: str, message: str) -> None:
    with pytest.raises(SymcheckError) as e:
        parse_cli_input(text)
    assert message in e.value.message
    assert repr(text) in e.value.message  # the offending text is quoted back
    assert e.value.hint  # and the syntax (or a specific fix) is shown


def test_cli_error_hint_shows_syntax() -> None:
    with pytest.raises(SymcheckError) as e:
        parse_cli_input("x:2y2")
    assert e.value.hint is not None and "x:2x2=1" in e.value.hint


# ---------------------------------------------------------------- extreme values (found by bench/fuzz.py)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("x:2~normal(1e308,1e308)", "draws must stay finite"),
        ("x:2~uniform(-1e308,1e308)", "draws must stay finite"),
        ("x:2:int=[9223372036854775808,1]", "must fit in int64"),
        ("x=" + "[" * 100 + "1" + "]" * 100, "nested more than 32 levels deep"),
        ("x=" + "[" * 5000 + "1" + "]" * 5000, "nested more than 32 levels deep"),
        ("x=[" + "9" * 400 + "]", "beyond float64"),
    ],
)
def test_extreme_values_are_bad_input_not_a_crash(spec: str, message: str) -> None:
    with pytest.raises(SymcheckError) as e:
        parse_cli_input(spec)
    assert message in e.value.message
    assert len(e.value.message) < 300  # a huge spec is not echoed whole


@pytest.mark.parametrize("timeout", ["nan", "inf", "1e9", "0"])
def test_a_timeout_must_be_a_finite_number_of_seconds(timeout: str) -> None:
    from click.testing import CliRunner

    from symcheck.cli import main

    r = CliRunner().invoke(main, ["grad", "sum(x)", "-i", "x:2", "--timeout", timeout])
    assert r.exit_code == 2 and "Invalid value for '--timeout'" in r.output, r.output
