"""The Python API: symcheck.assert_gradients(fn, expr, **values)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import symcheck
from symcheck.language.errors import SymcheckError
from symcheck.report.summary import summarize_engines

REPO = Path(__file__).resolve().parents[2]


class Swish(torch.autograd.Function):
    """x * sigmoid(x) with a hand-written backward: s + x s (1 - s)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return g * (s + x * s * (1 - s))


class SubtlyWrongSwish(Swish):
    """The same, but the backward misses the factor x in one branch (x > 1)."""

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return g * torch.where(x > 1, s + s * (1 - s), s + x * s * (1 - s))


class DetachedSwish(Swish):
    """Right first derivative, but computed off the graph: its second derivative is lost."""

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        x = x.detach()
        s = torch.sigmoid(x)
        return g * (s + x * s * (1 - s))


POINTS = np.array([-2.0, -0.5, 0.0, 0.75, 1.5, 3.0])


def test_a_right_function_passes_and_returns_the_case_result() -> None:
    result = symcheck.assert_gradients(Swish.apply, "x*sigmoid(x)", x=torch.randn(100, dtype=torch.float64))
    assert result.status == "pass"
    assert result.case.engines == ["symbolic", "autograd", "torch", "numeric", "fn"]
    statuses = {s.engine: s.status for s in summarize_engines(result)}
    assert statuses == {"symbolic": "reference", "autograd": "ok", "torch": "ok", "numeric": "ok", "fn": "ok"}
    # a tensor output is checked through its Jacobian (VJPs above the full-Jacobian budget), not a sum
    assert result.case.expr == "x*sigmoid(x)"
    fn = result.points[0].results["fn"]
    assert fn.vjps and not fn.grads


def test_a_subtly_wrong_backward_fails_with_the_element_in_the_message() -> None:
    with pytest.raises(AssertionError) as e:
        symcheck.assert_gradients(SubtlyWrongSwish.apply, "x*sigmoid(x)", x=POINTS)
    message = str(e.value)
    # the first line says what failed (pytest's short summary shows it), then the report
    headline, report = message.split("\n", 1)
    assert headline.startswith("x*sigmoid(x): fn vs symbolic, Jacobian dout/dx, at the given values: At ")
    assert report.startswith("== ")
    assert f"FAIL  x*sigmoid(x)  ({Path('tests') / 'api' / 'test_assertions.py'}:" in message
    assert "fn        mismatch" in message
    assert "autograd  ok" in message
    assert "MISMATCH  fn vs symbolic, Jacobian dout/dx, at the given values:" in message
    assert "Mismatched elements: 2 / 36 (5.6%)" in message
    # the worst entry is x = 3 (index 5, on the diagonal): symbolic s + x s (1 - s), fn s + s (1 - s)
    s = 1 / (1 + np.exp(-3.0))
    expected = (
        f"At entry d out[5] / d x[5]: fn = {s + s * (1 - s):.12g}, symbolic = {s + 3 * s * (1 - s):.12g}"
    )
    assert expected in message
    assert message.endswith("1 cases, 3 points: 0 passed, 1 failed\n")


def test_the_message_is_the_cli_report(monkeypatch: pytest.MonkeyPatch) -> None:
    import symcheck.api.assertions

    rendered: list[str] = []
    original = symcheck.api.assertions.render_text

    def spy(results: Any, verbose: bool = False) -> str:
        rendered.append(original(results, verbose))
        return rendered[-1]

    monkeypatch.setattr(symcheck.api.assertions, "render_text", spy)
    with pytest.raises(AssertionError) as e:
        symcheck.assert_gradients(SubtlyWrongSwish.apply, "x*sigmoid(x)", x=POINTS)
    assert [str(e.value).split("\n", 1)[1]] == rendered  # after its one-line headline


def test_second_derivatives_of_the_function() -> None:
    symcheck.assert_gradients(lambda x: Swish.apply(x).sum(), "sum(x*sigmoid(x))", x=POINTS, order=2)
    with pytest.raises(AssertionError) as e:
        symcheck.assert_gradients(
            lambda x: DetachedSwish.apply(x).sum(), "sum(x*sigmoid(x))", x=POINTS, order=2
        )
    assert "MISMATCH  fn vs symbolic, d2out/dxdx" in str(e.value)
    with pytest.raises(SymcheckError, match=r"second derivatives .* need"):
        symcheck.assert_gradients(Swish.apply, "x*sigmoid(x)", x=POINTS, order=2)


@pytest.mark.parametrize(
    ("expr", "values", "message", "caret"),
    [
        ("x*sigmod(x)", {"x": POINTS}, "unknown function 'sigmod'", "      ^^^^^^"),
        ("y*sigmoid(y)", {"x": POINTS}, "'y' is used by the expression but no value is given", "    ^"),
    ],
)
def test_a_wrong_name_in_the_expression_is_a_located_error(
    expr: str, values: dict[str, Any], message: str, caret: str
) -> None:
    with pytest.raises(SymcheckError) as e:
        symcheck.assert_gradients(Swish.apply, expr, **values)
    text = str(e.value)
    assert text.startswith("<expr>:1:")
    assert message in text
    assert f"    {expr}\n{caret}\n" in text + "\n"


def test_a_value_the_expression_does_not_use_is_an_error() -> None:
    with pytest.raises(SymcheckError, match="'w' is given but the expression does not use it"):
        symcheck.assert_gradients(Swish.apply, "x*sigmoid(x)", x=POINTS, w=1.0)


def test_numpy_arrays_and_numbers_arrive_as_float64_tensors() -> None:
    seen: list[torch.Tensor] = []

    def fn(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        seen.extend([x, a])
        return torch.sum(a * torch.exp(x))

    result = symcheck.assert_gradients(fn, "sum(a*exp(x))", x=np.array([[0.5, 1.0], [-1.0, 2.0]]), a=3)
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in seen)
    assert seen[0].shape == (2, 2) and seen[1].shape == ()
    assert sorted(result.wrt) == ["a", "x"]


def test_integer_arrays_are_labels() -> None:
    def fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert y.dtype == torch.int64
        return torch.nn.functional.cross_entropy(logits, y)

    result = symcheck.assert_gradients(
        fn,
        "cross_entropy(logits, y)",
        logits=np.random.default_rng(0).normal(size=(4, 3)),
        y=np.array([0, 2, 1, 2]),
    )
    assert result.wrt == ["logits"]


def test_random_points_run_the_function_too() -> None:
    calls: list[np.ndarray] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.detach().numpy().copy())
        return Swish.apply(x)

    result = symcheck.assert_gradients(fn, "x*sigmoid(x)", x=POINTS, samples=2, seed=3)
    assert len(result.points) == 3
    assert len(calls) == 3
    assert not np.array_equal(calls[1], POINTS)


def test_tolerance_options() -> None:
    def slightly_off(x: torch.Tensor) -> torch.Tensor:
        return Swish.apply(x) * (1 + 1e-6)

    with pytest.raises(AssertionError, match="fn        mismatch"):
        symcheck.assert_gradients(slightly_off, "x*sigmoid(x)", x=POINTS)
    symcheck.assert_gradients(slightly_off, "x*sigmoid(x)", x=POINTS, rtol=1e-5)
    symcheck.assert_gradients(slightly_off, "x*sigmoid(x)", x=POINTS, tolerance={"fn": {"rtol": 1e-5}})


def test_wrt_engines_and_dtype() -> None:
    seen: list[torch.dtype] = []

    def fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        seen.append(x.dtype)
        return torch.sum(torch.tanh(x) * w)

    result = symcheck.assert_gradients(
        fn, "sum(tanh(x)*w)", x=POINTS, w=np.ones(6), wrt="x", engines=["symbolic", "torch"], dtype="float32"
    )
    assert result.wrt == ["x"]
    assert result.case.engines == ["symbolic", "torch", "fn"]
    assert seen and set(seen) == {torch.float32}  # the given values and two random points
    with pytest.raises(SymcheckError, match="unknown engine 'symbolc'"):
        symcheck.assert_gradients(fn, "sum(tanh(x)*w)", x=POINTS, w=1.0, engines=["symbolc"])


def test_an_input_named_like_an_option() -> None:
    symcheck.assert_gradients(lambda samples: samples**2, "samples^2", inputs={"samples": POINTS})


def test_what_the_function_does_wrong_is_in_its_column() -> None:
    with pytest.raises(AssertionError) as e:
        symcheck.assert_gradients(lambda x: x[:2], "x*2", x=np.ones(3))
    assert "fn returned shape [2]; expr's output has shape [3]" in str(e.value)
    with pytest.raises(AssertionError) as e:
        symcheck.assert_gradients(lambda x: 1 / 0, "x*2", x=np.ones(3))
    assert "fn raised ZeroDivisionError" in str(e.value)


def test_a_plugin_engine_in_the_api() -> None:
    from symcheck.engines.numeric.engine import NumericEngine
    from symcheck.engines.registry import register_engine, unregister_engine

    class Again(NumericEngine):
        name = "again"

    register_engine(Again)
    try:
        result = symcheck.assert_gradients(
            Swish.apply, "x*sigmoid(x)", x=POINTS, engines=["symbolic", "again"]
        )
    finally:
        unregister_engine("again")
    assert {s.engine: s.status for s in summarize_engines(result)}["again"] == "ok"


def test_importing_symcheck_stays_cheap() -> None:
    code = (
        "import sys, symcheck\n"
        "print(sorted(m for m in ('torch', 'sympy', 'numpy', 'symcheck.api') if m in sys.modules))\n"
        "print(callable(symcheck.assert_gradients), 'symcheck.api' in sys.modules)\n"
        "try:\n"
        "    symcheck.no_such_name\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "[]",
        "True True",
        "module 'symcheck' has no attribute 'no_such_name'",
    ]


# ---------------------------------------------------------------- dtypes and devices, as given


def test_fn_runs_in_the_dtype_of_the_tensors_given() -> None:
    seen: list[torch.dtype] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.dtype)
        return x * torch.sigmoid(x)

    result = symcheck.assert_gradients(fn, "x*sigmoid(x)", x=torch.randn(4, dtype=torch.float32))
    assert seen and set(seen) == {torch.float32}
    assert result.case.dtype == "float32"
    assert result.points[0].results["fn"].dtype == "float32"  # held to float32's tolerance
    symcheck.assert_gradients(fn, "x*sigmoid(x)", x=POINTS, dtype=torch.float32)
    assert seen[-1] == torch.float32
    on_cpu = symcheck.assert_gradients(fn, "x*sigmoid(x)", x=POINTS, device=torch.device("cpu"))
    assert on_cpu.case.device == "cpu"  # a torch.device, as well as its name
    with pytest.raises(SymcheckError, match="different dtypes"):
        symcheck.assert_gradients(
            lambda x, y: x * y, "x*y", x=torch.ones(2), y=torch.ones(2, dtype=torch.float64)
        )


def test_a_float32_kernel_is_compared_within_float32s_tolerance() -> None:
    """A float32 function is not held to float64's 1e-7, nor let off: a wrong one still fails."""
    symcheck.assert_gradients(Swish.apply, "x*sigmoid(x)", x=torch.tensor(POINTS, dtype=torch.float32))
    with pytest.raises(AssertionError, match="fn        mismatch"):
        symcheck.assert_gradients(
            SubtlyWrongSwish.apply, "x*sigmoid(x)", x=torch.tensor(POINTS, dtype=torch.float32)
        )


def test_tf32_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    from symcheck.engines import torch_autograd
    from symcheck.engines.torch_autograd import tf32_note

    monkeypatch.setattr(torch_autograd, "tf32_flags", lambda: ["torch.backends.cuda.matmul.allow_tf32"])
    note = tf32_note(torch.device("cuda"), torch.float32)
    assert note is not None and "TF32 is enabled" in note and "5-20x looser" in note
    assert tf32_note(torch.device("cuda"), torch.float64) is None
    assert tf32_note(torch.device("cpu"), torch.float32) is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_fn_on_the_gpu_in_each_dtype(dtype: torch.dtype) -> None:
    devices: list[str] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        devices.append(x.device.type)
        return Swish.apply(x)

    symcheck.assert_gradients(fn, "x*sigmoid(x)", x=torch.tensor(POINTS, dtype=dtype, device="cuda"))
    assert set(devices) == {"cuda"}


def test_the_failure_carries_the_case_result() -> None:
    with pytest.raises(symcheck.GradientCheckFailed) as e:
        symcheck.assert_gradients(SubtlyWrongSwish.apply, "x*sigmoid(x)", x=POINTS)
    assert isinstance(e.value, AssertionError)
    assert e.value.result.status == "fail"


def test_a_misspelt_option_is_suggested_by_name() -> None:
    """rtoll=1e-3 lands among the inputs' values: the hint names the option it looks like."""
    with pytest.raises(SymcheckError, match="did you mean 'rtol'"):
        symcheck.assert_gradients(
            lambda x: (x**2).sum(), "sum(x^2)", x=torch.ones(2, dtype=torch.float64), rtoll=1e-3
        )
