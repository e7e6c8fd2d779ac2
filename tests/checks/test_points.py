"""Points: the domain-aware sampler and the check of pinned points (symcheck/checks/points.py)."""

from __future__ import annotations

import numpy as np
import pytest

from symcheck.checks.points import check_point, default_ranges, make_point, sample_points
from symcheck.language.errors import SymcheckError
from symcheck.language.inputs import DEFAULT_RANGE, InputSpec, RandomSpec
from symcheck.language.ir import DType, Program, TensorType
from symcheck.language.parser import bind, parse


def program(text: str, **types: tuple[int, ...] | TensorType) -> Program:
    return bind(parse(text), {n: t if isinstance(t, TensorType) else TensorType(t) for n, t in types.items()})


def specs_for(p: Program, **given: InputSpec) -> dict[str, InputSpec]:
    return {n: given.get(n) or InputSpec(shape=d.type.shape, dtype=d.type.dtype) for n, d in p.inputs.items()}


# ---------------------------------------------------------------- InputSpec

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


# ---------------------------------------------------------------- given labels out of range


@pytest.mark.parametrize(
    ("expr", "specs", "message"),
    [
        ("sum(x[j])", ["x:3x2", "j:int=5"], "the given j = 5 is out of range: indices must lie in [-3, 3)"),
        ("sum(x[j])", ["x:3x2", "j:int=-4"], "the given j = -4 is out of range"),
        ("nll_loss(log_softmax(z), y)", ["z:2x3", "y:2:int=[0,3]"], "the given y = [0, 3] is out of range"),
        ("sum(onehot(y, 2))", ["y:int=2"], "labels must be class indices in [0, 2)"),
    ],
)
def test_a_given_index_out_of_range_is_bad_input_where_it_is_used(
    expr: str, specs: list[str], message: str
) -> None:
    from click.testing import CliRunner

    from symcheck.cli import EXIT_BAD_INPUT, main

    args = ["grad", expr]
    for spec in specs:
        args += ["-i", spec]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert message in r.output
    assert "^" in r.output


@pytest.mark.parametrize("given", ["j:int=-1", "j:int=2"])
def test_negative_and_last_indices_are_checked_like_torch(given: str) -> None:
    from click.testing import CliRunner

    from symcheck.cli import EXIT_OK, main

    r = CliRunner().invoke(main, ["grad", "sum(x[j]^2)", "-i", "x:3x2", "-i", given])
    assert r.exit_code == EXIT_OK, r.output


def test_a_kink_on_a_broadcast_scalar_redraws_the_scalar_whole() -> None:
    # minimum(c, c) is always tied; its mask has the broadcast shape (4,), the input c is a scalar
    p = program("sum(minimum(minimum(c, c), relu(w - 0.25)))", c=(), w=(4,))
    notes: list[str] = []
    specs = specs_for(p, w=InputSpec(shape=(4,), value=[0.25, 2.0, -1.0, -1.5]))
    points = sample_points(p, specs, 2, seed=876519, notes=notes)
    assert len(points) == 2 and all(np.shape(pt["c"]) == () for pt in points)
