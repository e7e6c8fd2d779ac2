"""symcheck graph: the computation graph with each node's value and d out / d node."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from symcheck.cli import EXIT_BAD_INPUT, EXIT_OK, main
from symcheck.engines import autograd as T
from symcheck.language.ir import Call, TensorType
from symcheck.language.parser import bind, parse
from symcheck.teaching.graph import (
    _Lowered,
    build_graph,
    graph_of_case,
    load_case,
    summarize,
    to_mermaid,
)

STEPS = "y = x + 2\nz = 3*y^2\nout = mean(z)"
ONE_EXPRESSION = "mean(3*(x+2)^2)"
SVG = "{http://www.w3.org/2000/svg}"


def seed_graph(expr: str = STEPS, steps: bool = False):  # type: ignore[no-untyped-def]
    return graph_of_case(load_case(expr, ["x:2x2=1"]), steps=steps)


def test_seed_values_and_gradients_by_step() -> None:
    # out = 1/4 Σ 3 y_i^2: d out/d z_i = 1/4, d out/d y_i = 6 y_i / 4 = 4.5 at y = 3, d out/d x = 4.5.
    g = seed_graph(steps=True)
    expected = {"x": (1, 4.5), "y": (3, 4.5), "z": (27, 0.25), "out": (27, 1)}
    for name, (value, grad) in expected.items():
        node = g.node(name)
        assert node.grad is not None
        np.testing.assert_allclose(node.value, np.full(node.value.shape, value))
        np.testing.assert_allclose(node.grad, np.full(node.value.shape, grad))
    assert g.node("y").lines() == ["value: 2x2, all 3", "grad: 2x2, all 4.5"]
    assert g.node("z").lines() == ["value: 2x2, all 27", "grad: 2x2, all 0.25"]
    assert g.node("out").lines() == ["value: 27", "grad: 1"]
    assert g.node("out").output
    assert [n.title for n in g.nodes] == ["x", "y = x + 2", "z = 3 * y^2", "out = mean(z)"]
    assert [(e.source, e.target) for e in g.edges] == [("n0", "n1"), ("n1", "n2"), ("n2", "n3")]


def test_seed_one_node_per_input_constant_and_op() -> None:
    g = seed_graph(ONE_EXPRESSION)
    by_title = {n.title: n for n in g.nodes}
    assert [n.kind for n in g.nodes].count("const") == 3  # 3, 2 and the exponent 2
    assert set(by_title) >= {"x", "3", "2", "x + 2", "□^2", "3 * □", "out = mean(□)"}
    assert by_title["x + 2"].lines() == ["value: 2x2, all 3", "grad: 2x2, all 4.5"]
    assert by_title["□^2"].lines() == ["value: 2x2, all 9", "grad: 2x2, all 0.75"]
    assert by_title["3 * □"].lines() == ["value: 2x2, all 27", "grad: 2x2, all 0.25"]
    assert by_title["x"].lines() == ["value: 2x2, all 1", "grad: 2x2, all 4.5"]
    assert by_title["3"].lines() == []  # a constant's title is its value
    square = by_title["□^2"].id
    assert {g.get(e.source).title for e in g.edges if e.target == square} == {"x + 2", "2"}


def test_a_value_used_twice_is_one_edge_counted_twice() -> None:
    g = seed_graph("y = x + 2\nz = y * y * 3\nout = mean(z)")
    product = g.node("y * y")
    (edge,) = [e for e in g.edges if e.target == product.id]
    assert edge.source == g.node("y").id and edge.count == 2
    np.testing.assert_allclose(g.node("y").grad, np.full((2, 2), 4.5))  # both uses summed


def _finite_difference(program, point, ir, i: int) -> float:  # type: ignore[no-untyped-def]
    base = np.asarray(_Lowered(program, point).tensors[id(ir)].data, dtype=np.float64)
    h = 1e-6
    outs = []
    for sign in (1, -1):
        moved = base.copy().ravel()
        moved[i] += sign * h
        leaf = T.Tensor(moved.reshape(base.shape))
        outs.append(float(_Lowered(program, point, {id(ir): leaf}).output.data))
    return (outs[0] - outs[1]) / (2 * h)


def test_every_intermediate_gradient_matches_finite_differences() -> None:
    program = bind(parse("sum(sin(x) * exp(x) / (1 + x^2))"), {"x": TensorType((3,))})
    point = {"x": np.array([0.3, -1.2, 2.0])}
    g = build_graph(program, point)
    calls = [n for n in program.nodes() if isinstance(n, Call)]
    ops = [n for n in g.nodes if n.kind == "op"]
    assert len(ops) == len(calls)
    for node, ir in zip(ops, calls, strict=True):
        assert node.grad is not None
        for i in range(node.value.size):
            fd = _finite_difference(program, point, ir, i)
            assert node.grad.ravel()[i] == pytest.approx(fd, rel=1e-6, abs=1e-8), node.title


def test_gradient_of_a_node_past_a_non_differentiable_op() -> None:
    # sign(x) records no gradient; d out / d sign(x) is still x^2, and d out/d x uses sign' = 0.
    program = bind(parse("sum(sign(x) * x^2)"), {"x": TensorType((3,))})
    g = build_graph(program, {"x": np.array([1.0, -2.0, 3.0])})
    np.testing.assert_allclose(g.node("sign(x)").grad, [1, 4, 9])
    np.testing.assert_allclose(g.node("x").grad, [2, 4, 6])


def test_integer_and_boolean_nodes_have_no_gradient() -> None:
    g = graph_of_case(load_case("nll_loss(log_softmax(W @ b), y)", ["W:2x3=0.5", "b=[1,2,3]", "y:int=1"]))
    assert g.node("y").grad is None and g.node("y").lines()[1] == "grad: none (int input)"
    np.testing.assert_allclose(g.node("log_softmax(□)").grad, [0, -1])  # -onehot(y)
    g = graph_of_case(load_case("sum(x * (x > 0))", ["x=[1,-2,3]"]))
    assert g.node("x > 0").lines()[1] == "grad: none (true/false)"
    np.testing.assert_allclose(g.node("x").grad, [1, 0, 1])


def test_a_tensor_output_gets_values_and_a_note() -> None:
    g = seed_graph("x + 2")
    assert g.node("out = x + 2").grad is None
    assert "scalar output" in g.notes[0]


def test_summaries() -> None:
    assert summarize(np.float64(27.0)) == "27"
    assert summarize(np.full((2, 2), 3.0)) == "2x2, all 3"
    assert summarize(np.array([[1.0, 2.0], [3.0, 4.5]])) == "[[1, 2], [3, 4.5]]"
    assert summarize(np.arange(12.0).reshape(3, 4)) == "3x4, 0 … 11"
    assert summarize(np.array([True, False])) == "[1, 0]"
    assert summarize(np.float64(-0.0)) == "0"


def test_mermaid() -> None:
    text = to_mermaid(seed_graph())
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    assert '    n0(["<b>x</b><br/>value: 2x2, all 1<br/>grad: 2x2, all 4.5"])' in lines
    assert '    n2["<b>y = x + 2</b><br/>value: 2x2, all 3<br/>grad: 2x2, all 4.5"]' in lines
    assert '    n7["<b>out = mean(z)</b><br/>value: 27<br/>grad: 1"]' in lines
    assert "    n2 --> n5" in lines and "    n7" not in [ln.split(" -->")[0] for ln in lines]
    assert "    class n7 output" in lines
    twice = to_mermaid(seed_graph("y = x + 2\nz = y * y * 3\nout = mean(z)"))
    assert '-->|"×2"|' in twice


def test_mermaid_escapes_quotes_and_angle_brackets() -> None:
    text = to_mermaid(graph_of_case(load_case("sum(x * (x > 0))", ["x=[1,-2,3]"])))
    assert "x #62; 0" in text
    assert '"x > 0"' not in text


def test_layout_comes_from_grandalf(monkeypatch: pytest.MonkeyPatch) -> None:
    from grandalf.layouts import SugiyamaLayout

    calls = []
    original = SugiyamaLayout.draw

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SugiyamaLayout, "draw", spy)
    g = seed_graph(ONE_EXPRESSION)
    placed = g.layout({n.id: (60.0, 40.0) for n in g.nodes})
    assert calls, "the layout did not run grandalf's Sugiyama layout"
    xs = {round(x, 6) for x, _ in placed.positions.values()}
    assert len(xs) > 1  # not a plain vertical stack
    for e in g.edges:  # every edge points down, one layer or more
        assert placed.ranks[e.target] > placed.ranks[e.source]
        assert placed.positions[e.target][1] > placed.positions[e.source][1]
    # ranking optimised: the constant 3 sits right above the product that uses it, not on top
    three = g.node("3").id
    product = g.node("3 * □").id
    assert placed.ranks[three] == placed.ranks[product] - 1
    # boxes of one layer do not overlap
    for a in g.nodes:
        for b in g.nodes:
            if a.id < b.id and placed.ranks[a.id] == placed.ranks[b.id]:
                assert abs(placed.positions[a.id][0] - placed.positions[b.id][0]) >= 60.0


def test_svg_is_xml_with_the_labels(tmp_path: Path) -> None:
    path = seed_graph().save(tmp_path / "graph.svg")
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    texts = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    for label in ("x", "y = x + 2", "z = 3 * □", "out = mean(z)", "value: 27", "grad: 2x2, all 0.25"):
        assert label in texts, label
    assert "grad: 2x2, all 4.5" in texts


def test_png(tmp_path: Path) -> None:
    path = seed_graph(steps=True).save(tmp_path / "graph.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def cli(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_prints_mermaid_and_writes_pictures(tmp_path: Path, tutorial: Path) -> None:
    r = cli("graph", STEPS, "-i", "x:2x2=1")
    assert r.exit_code == EXIT_OK, r.output
    assert r.stdout.startswith("flowchart TB\n") and "grad: 2x2, all 0.25" in r.stdout
    r = cli("graph", ONE_EXPRESSION, "-i", "x:2x2=1", "-o", tmp_path / "g.svg")
    assert r.exit_code == EXIT_OK, r.output
    assert ElementTree.parse(tmp_path / "g.svg").getroot().tag == f"{SVG}svg"
    r = cli("graph", tutorial, "--case", "seed-named-steps", "--steps", "-o", tmp_path / "g.mmd")
    assert r.exit_code == EXIT_OK, r.output
    assert "out = mean(z)" in (tmp_path / "g.mmd").read_text()
    r = cli("graph", ONE_EXPRESSION, "-i", "x:2x2=1", "-o", tmp_path / "g.txt", "--format", "png")
    assert r.exit_code == EXIT_OK, r.output
    assert (tmp_path / "g.txt").read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_input(tmp_path: Path, tutorial: Path) -> None:
    r = cli("graph", ONE_EXPRESSION, "-i", "x:2x2=1", "-o", tmp_path / "g.jpg")
    assert r.exit_code == EXIT_BAD_INPUT and ".svg, .png or .mmd" in r.output
    r = cli("graph", ONE_EXPRESSION, "--format", "svg")
    assert r.exit_code == EXIT_BAD_INPUT and "-o graph.svg" in r.output
    r = cli("graph", ONE_EXPRESSION)
    assert r.exit_code == EXIT_BAD_INPUT and "no input spec for x" in r.output
    r = cli("graph", tutorial, "--case", "seed-named-step")
    assert r.exit_code == EXIT_BAD_INPUT and "seed-named-steps" in r.output


def test_missing_packages_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grandalf", None)
    r = cli("graph", ONE_EXPRESSION, "-i", "x:2x2=1", "-o", tmp_path / "g.png")
    assert r.exit_code == EXIT_BAD_INPUT
    assert "grandalf" in r.output and "symcheck[teaching]" in r.output
    r = cli("graph", ONE_EXPRESSION, "-i", "x:2x2=1")  # Mermaid needs neither package
    assert r.exit_code == EXIT_OK, r.output
