"""symcheck plot: the function and its derivative with every engine's points, kinks marked; heatmaps
of the gradient error per element for tensor inputs."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from symcheck.cli import EXIT_BAD_INPUT, EXIT_OK, main
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse
from symcheck.teaching.graph import case_point, load_case
from symcheck.teaching.plot import as_matrix, curve_plot, find_kinks, heatmap_plot, run_plot

SEED_SCALAR = "mean(3*(x+2)^2)"
SVG = "{http://www.w3.org/2000/svg}"
PNG = b"\x89PNG\r\n\x1a\n"


def svg_texts(path: Path) -> set[str]:
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}


def scalar_plot(expr: str, x: float = 1.0, bounds: tuple[float, float] = (-3, 3), points: int = 7):  # type: ignore[no-untyped-def]
    case = load_case(expr, [f"x={x}"])
    program, point, _ = case_point(case)
    return curve_plot(case, program, point, "x", bounds, points)


def test_seed_curve_and_engine_points() -> None:
    plot = scalar_plot(SEED_SCALAR)
    np.testing.assert_allclose(plot.values, 3 * (plot.xs + 2) ** 2)
    np.testing.assert_allclose(plot.grads, 6 * (plot.xs + 2))
    assert plot.closed_form == "6*(x + 2)"
    assert [e.engine for e in plot.engines] == ["symbolic", "autograd", "torch", "numeric"]
    for e in plot.engines:
        assert 1.0 in e.xs  # the given value, among the sample points
        np.testing.assert_allclose(e.grads, 6 * (np.array(e.xs) + 2), rtol=1e-6)
        np.testing.assert_allclose(e.values, 3 * (np.array(e.xs) + 2) ** 2, rtol=1e-9)
    assert plot.kinks == []


def test_seed_png_and_svg(tmp_path: Path) -> None:
    assert run_plot(SEED_SCALAR, ["x=1"], str(tmp_path / "seed.png"), bounds="-3,3") == "curve"
    assert (tmp_path / "seed.png").read_bytes()[:8] == PNG
    assert run_plot(SEED_SCALAR, ["x=1"], str(tmp_path / "seed.svg")) == "curve"
    texts = svg_texts(tmp_path / "seed.svg")
    assert {"symbolic", "autograd", "torch", "numeric"} <= texts  # the legend
    assert "dout/dx = 6*(x + 2)" in texts


def test_relu_kink_is_found_and_marked(tmp_path: Path) -> None:
    plot = scalar_plot("relu(x)")
    assert [(k.x, k.where) for k in plot.kinks] == [(0.0, "relu(x)")]
    assert plot.kinks[0].text == "relu is not differentiable at 0"
    # the derivative curve is not drawn across the jump
    at = int(np.flatnonzero(plot.xs == 0.0)[0])
    assert np.isnan(plot.grads[at]) and plot.grads[at - 1] == 0 and plot.grads[at + 1] == 1
    # at the kink the engines' conventions part: relu'(0) = 0, central differences give 1/2
    by_engine = {e.engine: dict(zip(e.xs, e.grads, strict=True)) for e in plot.engines}
    assert by_engine["autograd"][0.0] == 0 and by_engine["torch"][0.0] == 0
    assert by_engine["numeric"][0.0] == pytest.approx(0.5)
    run_plot("relu(x)", ["x=1"], str(tmp_path / "relu.svg"))
    assert "kink of relu(x) at x = 0" in svg_texts(tmp_path / "relu.svg")
    run_plot("relu(x)", ["x=1"], str(tmp_path / "relu.png"))
    assert (tmp_path / "relu.png").read_bytes()[:8] == PNG


def test_kinks_off_the_grid_are_bisected() -> None:
    program = bind(parse("relu(x - 0.3) + abs(w * x + 1)"), {"x": TensorType(()), "w": TensorType(())})
    kinks = find_kinks(program, {"x": np.array(0.0), "w": np.array(2.0)}, "x", np.linspace(-3, 3, 101))
    assert [k.where for k in kinks] == ["abs(w * x + 1)", "relu(x - (3/10))"]
    np.testing.assert_allclose([k.x for k in kinks], [-0.5, 0.3], atol=1e-12)


def test_a_pole_is_not_a_kink() -> None:
    # sign(1/x) changes sign at 0 by jumping over it: no kink of sign is hit there.
    program = bind(parse("sign(1/x) * x"), {"x": TensorType(())})
    assert find_kinks(program, {"x": np.array(1.0)}, "x", np.linspace(-1, 1.5, 50)) == []


def test_heatmap_for_a_2x3_input(tmp_path: Path) -> None:
    case = load_case("sum(tanh(W) * 2)", ["W:2x3"])
    heat = heatmap_plot(case)
    assert heat.reference == "symbolic"
    assert [p.engine for p in heat.panels] == ["autograd", "torch", "numeric"]
    for panel in heat.panels:
        assert panel.error is not None and panel.error.shape == (2, 3)
        assert panel.failed is not None and not panel.failed.any()
    assert run_plot("sum(tanh(W) * 2)", ["W:2x3"], str(tmp_path / "heat.png")) == "heatmap"
    assert (tmp_path / "heat.png").read_bytes()[:8] == PNG
    run_plot("sum(tanh(W) * 2)", ["W:2x3"], str(tmp_path / "heat.svg"))
    assert "numeric: dout/dW" in svg_texts(tmp_path / "heat.svg")


def test_heatmap_outlines_the_elements_outside_tolerance() -> None:
    heat = heatmap_plot(load_case("sum(relu(W))", ["W=[[0,1,-1],[2,0,-3]]"]))
    numeric = next(p for p in heat.panels if p.engine == "numeric")
    assert numeric.failed is not None
    assert numeric.failed.tolist() == [[True, False, False], [False, True, False]]
    assert any("relu is not differentiable" in n for n in heat.notes)


def test_as_matrix() -> None:
    assert as_matrix(np.arange(3.0)).shape == (1, 3)
    assert as_matrix(np.float64(1)).shape == (1, 1)
    assert as_matrix(np.zeros((2, 3, 4))).shape == (6, 4)


def cli(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli(tmp_path: Path, tutorial: Path) -> None:
    r = cli("plot", SEED_SCALAR, "-i", "x=1", "--range", "-3,3", "--points", "3", "-o", tmp_path / "p.png")
    assert r.exit_code == EXIT_OK, r.output
    assert "(curve)" in r.stdout and (tmp_path / "p.png").read_bytes()[:8] == PNG
    r = cli("plot", tutorial, "--case", "seed-one-expression", "-o", tmp_path / "h.svg")
    assert r.exit_code == EXIT_OK, r.output
    assert "(heatmap)" in r.stdout
    r = cli(
        "plot",
        "x*w",
        "-i",
        "x=1",
        "-i",
        "w=2",
        "--wrt",
        "x",
        "--engines",
        "autograd",
        "-o",
        tmp_path / "q.png",
    )
    assert r.exit_code == EXIT_OK, r.output


def test_cli_bad_input(tmp_path: Path) -> None:
    r = cli("plot", SEED_SCALAR, "-i", "x=1", "--range", "3,-3", "-o", tmp_path / "p.png")
    assert r.exit_code == EXIT_BAD_INPUT and "LOW < HIGH" in r.output
    r = cli("plot", "x*w", "-i", "x=1", "-i", "w=2", "-o", tmp_path / "p.png")
    assert r.exit_code == EXIT_BAD_INPUT and "--wrt x" in r.output
    r = cli("plot", SEED_SCALAR, "-i", "x=1", "-o", tmp_path / "p.gif")
    assert r.exit_code == EXIT_BAD_INPUT and ".png, .svg or .pdf" in r.output
    r = cli("plot", "sum(W)", "-i", "W:2x2", "--range", "0,1", "-o", tmp_path / "p.png")
    assert r.exit_code == EXIT_BAD_INPUT and "heatmap" in r.output
    r = cli("plot", "W", "-i", "W:2x2", "-o", tmp_path / "p.png")
    assert r.exit_code == EXIT_BAD_INPUT and "scalar output" in r.output
