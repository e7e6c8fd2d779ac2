from __future__ import annotations

import numpy as np
import pytest

from symcheck.check.points import check_point, default_ranges, make_point, sample_points
from symcheck.language.errors import SymcheckError
from symcheck.language.inputs import DEFAULT_RANGE, InputSpec, RandomSpec, parse_cli_input
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


# ---------------------------------------------------------------- the given point


def test_make_point_keeps_given_values_and_draws_the_rest() -> None:
    specs = {
        "a": InputSpec(shape=(2,), fill=3),
        "b": InputSpec(value=[[1, 2]]),
        "c": InputSpec(shape=(5,), random=RandomSpec(10, 11)),
        "y": InputSpec(shape=(100,), dtype=DType.INT, random=RandomSpec(0, 3)),
        "z": InputSpec(shape=(100,), dtype=DType.INT),
    }
    point = make_point(specs, 0)
    np.testing.assert_array_equal(point["a"], [3, 3])
    np.testing.assert_array_equal(point["b"], [[1, 2]])
    assert point["c"].dtype == np.float64 and point["c"].shape == (5,)
    assert ((point["c"] >= 10) & (point["c"] < 11)).all()
    assert point["y"].dtype == np.int64 and set(point["y"].tolist()) == {0, 1, 2}
    assert set(point["z"].tolist()) == {0, 1}
    again = make_point(specs, 0)
    for name in specs:
        np.testing.assert_array_equal(point[name], again[name])


def test_make_point_with_program_uses_domains_and_keeps_pinned() -> None:
    p = program("sum(log(x)) + sum(relu(w))", x=(4,), w=(3,))
    specs = {"x": InputSpec(shape=(4,)), "w": InputSpec(value=[0.0, 1.0, -1.0])}
    point = make_point(specs, 0, p)
    assert (point["x"] >= 0.2).all() and (point["x"] < 3).all()
    np.testing.assert_array_equal(point["w"], [0, 1, -1])  # the pinned kink stays


# ---------------------------------------------------------------- sampling


def test_sampler_is_deterministic_and_seeded() -> None:
    p = program("mean(x * w) + sum(y)", x=(3, 2), w=(2,), y=TensorType((2,), DType.INT))
    specs = specs_for(p)
    a = sample_points(p, specs, 3, seed=7)
    b = sample_points(p, specs, 3, seed=7)
    c = sample_points(p, specs, 3, seed=8)
    assert len(a) == 3
    for pa, pb in zip(a, b, strict=True):
        for name in specs:
            np.testing.assert_array_equal(pa[name], pb[name])
    assert not np.array_equal(a[0]["x"], c[0]["x"])
    assert not np.array_equal(a[0]["x"], a[1]["x"])


def test_sampler_redraws_pinned_floats_keeps_pinned_ints() -> None:
    p = program("sum(x) + sum(y)", x=(3,), y=TensorType((3,), DType.INT))
    specs = {"x": InputSpec(shape=(3,), fill=1), "y": InputSpec(shape=(3,), dtype=DType.INT, value=[5, 6, 7])}
    for point in sample_points(p, specs, 2, seed=0):
        assert not np.array_equal(point["x"], np.ones(3))
        assert ((point["x"] >= DEFAULT_RANGE[0]) & (point["x"] < DEFAULT_RANGE[1])).all()
        np.testing.assert_array_equal(point["y"], [5, 6, 7])
        assert point["y"].dtype == np.int64


def test_sampler_uses_own_random_spec() -> None:
    p = program("sum(x) + sum(z)", x=(50,), z=(2000,))
    specs = {
        "x": InputSpec(shape=(50,), random=RandomSpec(5, 6)),
        "z": InputSpec(shape=(2000,), random=RandomSpec(3, 1, "normal")),
    }
    (point,) = sample_points(p, specs, 1, seed=0)
    assert ((point["x"] >= 5) & (point["x"] < 6)).all()
    assert abs(point["z"].mean() - 3) < 0.2 and abs(point["z"].std() - 1) < 0.2


def test_input_seed_fixes_its_draws_whatever_the_case_seed() -> None:
    p = program("sum(x)", x=(4,))
    specs = {"x": InputSpec(shape=(4,), random=RandomSpec(0, 1, seed=3))}
    np.testing.assert_array_equal(make_point(specs, 0)["x"], make_point(specs, 1)["x"])
    np.testing.assert_array_equal(
        sample_points(p, specs, 1, 0)[0]["x"], sample_points(p, specs, 1, 5)[0]["x"]
    )


def test_default_ranges_follow_domains() -> None:
    assert default_ranges(program("sum(log(x)) + sum(y)", x=(2,), y=(2,))) == {"x": (0.2, 3.0)}
    assert default_ranges(program("sum(log(x) + tan(x))", x=(2,))) == {"x": (0.2, 1.2)}
    assert default_ranges(program("sum(x^0.5)", x=(2,))) == {"x": (0.2, 3.0)}
    assert default_ranges(program("sum(log(x + 1))", x=(2,))) == {}  # not a direct argument


def test_log_domain_respected() -> None:
    p = program("sum(log(x))", x=(20,))
    for point in sample_points(p, specs_for(p), 4, seed=0):
        assert (point["x"] >= 0.2).all() and (point["x"] < 3).all()


def test_compound_domain_by_rejection() -> None:
    p = program("sqrt(s - 1) + sum(sqrt(x - 1))", s=(), x=(50,))
    points = sample_points(p, specs_for(p), 4, seed=0)
    for point in points:
        assert point["s"] > 1
        assert (point["x"] > 1).all()


def test_division_domain_respected() -> None:
    p = program("sum(1/x) + sum(1/y)", x=(5,), y=TensorType((8,), DType.INT))
    for point in sample_points(p, specs_for(p), 3, seed=0):
        assert (point["x"] != 0).all()
        np.testing.assert_array_equal(point["y"], np.ones(8))  # ints in [0, 2) that are not 0


def test_relu_kinks_avoided_on_a_large_tensor() -> None:
    p = program("sum(relu(x))", x=(1000,))
    notes: list[str] = []
    points = sample_points(p, specs_for(p), 3, seed=0, notes=notes)
    for point in points:
        assert np.abs(point["x"]).min() > 2e-3  # the margin: 1e-3 * max(1, |x|max ~ 2)
    assert notes == []
    assert check_point(p, points[0]).kink_hits == []


def test_kinks_of_an_elementwise_expression_avoided() -> None:
    p = program("sum(abs(x - 1))", x=(1000,))
    for point in sample_points(p, specs_for(p), 2, seed=1):
        assert np.abs(point["x"] - 1).min() > 1e-3


def test_unavoidable_kink_accepted_with_a_note() -> None:
    p = program("relu(0 * sum(x))", x=(3,))
    notes: list[str] = []
    (point,) = sample_points(p, specs_for(p), 1, seed=0, notes=notes)
    assert point["x"].shape == (3,)
    assert len(notes) == 1 and "relu is not differentiable at 0" in notes[0]


def test_impossible_domain_raises_with_a_hint() -> None:
    p = program("y = log(x)\nout = sum(y)", x=(3,))
    specs = {"x": InputSpec(shape=(3,), random=RandomSpec(-2, -1))}
    with pytest.raises(SymcheckError) as e:
        sample_points(p, specs, 1, seed=0)
    err = e.value
    assert "log needs x > 0" in err.message and "step 'y'" in err.message
    assert err.hint is not None and "random: {low: 0.1, high: 2}" in err.hint and "x" in err.hint
    assert err.span is not None and err.source is p.source


def test_pinned_domain_violation_is_not_the_samplers_problem() -> None:
    p = program("sum(log(x)) + sum(w)", x=(2,), w=(2,))
    specs = {"x": InputSpec(value=[-1.0, 1.0]), "w": InputSpec(shape=(2,))}
    point = make_point(specs, 0, p)
    np.testing.assert_array_equal(point["x"], [-1, 1])
    assert check_point(p, point).domain_violations == [
        "log needs x > 0: 1 of 2 elements of log(x) in step 'out'"
    ]


def test_missing_spec_is_an_error() -> None:
    p = program("sum(x * y)", x=(2,), y=(2,))
    with pytest.raises(SymcheckError, match="no input spec for y"):
        sample_points(p, {"x": InputSpec(shape=(2,))}, 1, seed=0)


# ---------------------------------------------------------------- pinned points


def test_check_point_reports_pinned_kinks() -> None:
    p = program("sum(relu(x))", x=(4,))
    check = check_point(p, {"x": np.array([0.0, 1.0, 0.0, -1.0])})
    assert check.ok
    assert check.domain_violations == []
    assert check.kink_hits == ["relu is not differentiable at 0: 2 of 4 elements of relu(x) in step 'out'"]


def test_check_point_clean() -> None:
    p = program("sum(relu(x)) + sum(log(x^2 + 1))", x=(3,))
    check = check_point(p, {"x": np.array([1.0, -2.0, 0.5])})
    assert check.ok and check.kink_hits == [] and check.domain_violations == []


def test_check_point_domain_violation() -> None:
    p = program("s = x - 1\nout = sum(sqrt(s))", x=(3,))
    check = check_point(p, {"x": np.array([0.0, 2.0, 3.0])})
    assert not check.ok
    assert check.domain_violations == [
        "sqrt needs x > 0 (its derivative is infinite at 0): 1 of 3 elements of sqrt(s) in step 'out'"
    ]
