"""The computation graph as learners draw it: a box per input, constant and op (or per named
step), arrows from arguments to the ops that use them, and on every box its forward value and its
gradient d out / d node.

Values and gradients come from symcheck's own autograd engine (`symcheck.engines.autograd`): the program
is lowered onto its Tensors exactly as the engine does, keeping the Tensor of every IR node, and
one backward pass gives the cotangent of each of them. A node whose Tensor records no gradient (the
output of `sign`, `step`, a comparison, or an op on constants only) is evaluated once more with
that node made a leaf, so its own d out / d node is still right.

The picture is laid out by grandalf's Sugiyama (layered) layout and drawn with matplotlib (the
`teaching` extra); both load only when a picture is asked for. Mermaid text needs neither.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from symcheck.checks.points import make_point
from symcheck.engines import autograd as T
from symcheck.engines.autograd.engine import keywords_of
from symcheck.engines.autograd.rules import TABLE
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref, Step
from symcheck.language.parser import format_fraction, to_source
from symcheck.suites.programs import load_case, parse_case_program

NodeKind = Literal["input", "const", "op", "step"]
GraphFormat = Literal["svg", "png", "mermaid"]
TEACHING_HINT = 'install the teaching extra: pip install "symcheck[teaching]" (matplotlib and grandalf)'
COMMUTATIVE = frozenset({"add", "mul", "maximum", "minimum", "eq", "ne", "dot", "outer"})
MAX_TITLE = 32
HOLE = "□"


# ---------------------------------------------------------------- numbers as short text


def number_text(v: float | int | np.generic) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    return "0" if f == 0 else f"{f:.4g}"


def summarize(array: Any, max_elements: int = 6) -> str:
    """A value as a learner would write it next to a node: `27`, `2x2, all 3`, `[[1, 2], [3, 4]]`,
    or for bigger tensors with differing elements `3x4, -1.2 … 2.5` (smallest … largest)."""
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.int64)
    if a.ndim == 0:
        return number_text(a.item())
    shape = "x".join(str(d) for d in a.shape)
    if a.size == 0:
        return f"{shape}, empty"
    flat = a.ravel()
    if np.array_equal(flat, np.full_like(flat, flat[0]), equal_nan=np.issubdtype(a.dtype, np.floating)):
        return f"{shape}, all {number_text(flat[0])}"
    if a.size <= max_elements and a.ndim <= 2:
        return _nested(a.tolist())
    finite = flat[np.isfinite(flat)] if np.issubdtype(a.dtype, np.floating) else flat
    if finite.size == 0:
        return f"{shape}, not finite"
    text = f"{shape}, {number_text(finite.min())} … {number_text(finite.max())}"
    return text + (" (and nan/inf)" if finite.size < flat.size else "")


def _nested(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    return number_text(value)


def _short(text: str, limit: int = MAX_TITLE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- the graph


@dataclass
class GraphNode:
    id: str
    kind: NodeKind
    title: str  # "x", "3", "y = x + 2", "□^2", "out = mean(□)"
    value: np.ndarray
    grad: np.ndarray | None  # d out / d node; None: no gradient (a constant, an int or bool value)
    name: str | None = None  # the input's or step's name
    op: str | None = None
    output: bool = False
    why_no_grad: str = ""

    @property
    def value_text(self) -> str:
        return summarize(self.value)

    @property
    def grad_text(self) -> str:
        if self.grad is None:
            return self.why_no_grad or "none"
        return summarize(self.grad)

    def lines(self) -> list[str]:
        """The text under the title; a constant's title is its value."""
        if self.kind == "const":
            return []
        return [f"value: {self.value_text}", f"grad: {self.grad_text}"]


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    count: int = 1  # y*y: y feeds the product twice
    label: str = ""  # which argument, where a title has several holes: "1", "2"
    position: int = 0  # the first argument it is, for left-to-right order into the target


@dataclass
class Layout:
    """Node centres and edge routes in points, y growing downward (inputs on top, out at the bottom)."""

    positions: dict[str, tuple[float, float]]
    sizes: dict[str, tuple[float, float]]
    routes: dict[tuple[str, str], list[tuple[float, float]]]
    ranks: dict[str, int]

    @property
    def width(self) -> float:
        return max((x + self.sizes[n][0] / 2 for n, (x, _) in self.positions.items()), default=0.0)

    @property
    def height(self) -> float:
        return max((y + self.sizes[n][1] / 2 for n, (_, y) in self.positions.items()), default=0.0)


@dataclass
class ComputationGraph:
    expr: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    point: dict[str, np.ndarray]
    output_name: str = "out"
    notes: list[str] = field(default_factory=list)

    def node(self, key: str) -> GraphNode:
        """By id, input or step name, or title."""
        for n in self.nodes:
            if key in (n.id, n.name, n.title):
                return n
        raise KeyError(key)

    def get(self, node_id: str) -> GraphNode:
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def point_text(self) -> str:
        return ", ".join(f"{name} = {summarize(value)}" for name, value in self.point.items())

    def to_mermaid(self) -> str:
        return to_mermaid(self)

    def layout(self, sizes: Mapping[str, tuple[float, float]] | None = None) -> Layout:
        return layout(self, sizes)

    def save(self, path: str | Path, fmt: GraphFormat | None = None) -> Path:
        return save(self, path, fmt)


class _Lowered:
    """The program on autograd Tensors, remembering the Tensor of every IR node.

    `leaves` replaces the Tensor of the IR node with that id (to take d out / d node of a node
    whose own Tensor records no gradient)."""

    def __init__(self, program: Program, point: Mapping[str, np.ndarray], leaves: Mapping[int, Any] = {}):

        self._lowering = TABLE
        self._leaves = leaves
        self.tensors: dict[int, T.Tensor] = {}
        self.inputs = {
            name: T.Tensor(point[name], dtype=np.float64, requires_grad=True)
            if decl.type.dtype is DType.FLOAT
            else T.Tensor(point[name], dtype=np.int64)
            for name, decl in program.inputs.items()
        }
        self.env: dict[str, T.Tensor] = dict(self.inputs)
        with np.errstate(all="ignore"):
            for step in program.steps:
                value = self.node(step.expr)
                self.env[step.id] = value if isinstance(value, T.Tensor) else T.Tensor(value)
        self.output = self.env[program.output.id]

    def node(self, node: Node) -> Any:
        if id(node) in self._leaves:
            return self._leaves[id(node)]
        if isinstance(node, Const):
            return float(node.value)
        if isinstance(node, Ref):
            return self.env[node.target]
        assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
        args = [self.node(a) for a in node.args]
        result = self._lowering[node.op](*args, **keywords_of(node))
        self.tensors[id(node)] = result
        return result


@dataclass
class _Pending:
    """A graph node before its gradient is known: the IR node whose Tensor it shows."""

    node: GraphNode
    ir: Node | None  # None: an input (its leaf Tensor)


def build_graph(
    program: Program, point: Mapping[str, np.ndarray], *, steps: bool = False, expr: str | None = None
) -> ComputationGraph:
    """The computation graph of `program` at `point`: one node per input, constant and op
    (`steps=True`: one per input and named step), with values and d out / d node."""
    lowered = _Lowered(program, point)
    builder = _Builder(program, lowered)
    if steps:
        builder.by_steps()
    else:
        builder.by_ops()
    graph = ComputationGraph(
        expr=expr if expr is not None else program.source.text.strip(),
        nodes=[p.node for p in builder.pending],
        edges=builder.edges(),
        point={n: np.asarray(point[n]) for n in program.inputs},
        output_name=program.output.name,
    )
    _gradients(program, point, lowered, builder.pending, graph.notes)
    return graph


class _Builder:
    def __init__(self, program: Program, lowered: _Lowered) -> None:
        self.program = program
        self.lowered = lowered
        self.pending: list[_Pending] = []
        self.of_binding: dict[str, str] = {}  # input name or step id -> graph node id
        self._edges: dict[tuple[str, str], list[tuple[int, str]]] = {}

    def add(self, kind: NodeKind, title: str, value: Any, ir: Node | None, **kw: Any) -> GraphNode:
        node = GraphNode(f"n{len(self.pending)}", kind, title, np.asarray(value), None, **kw)
        self.pending.append(_Pending(node, ir))
        return node

    def edge(self, source: str, target: str, position: int, label: str = "") -> None:
        self._edges.setdefault((source, target), []).append((position, label))

    def edges(self) -> list[GraphEdge]:
        out = []
        for (source, target), uses in self._edges.items():
            labels = [label for _, label in uses if label]
            out.append(
                GraphEdge(source, target, len(uses), ",".join(labels), position=min(p for p, _ in uses))
            )
        return out

    def inputs(self) -> None:
        for name, decl in self.program.inputs.items():
            leaf = self.lowered.inputs[name]
            why = "" if decl.type.dtype is DType.FLOAT else "none (int input)"
            node = self.add("input", name, leaf.data, None, name=name, why_no_grad=why)
            self.of_binding[name] = node.id

    def by_ops(self) -> None:
        self.inputs()
        for step in self.program.steps:
            root = self._expr(step.expr, step)
            self.of_binding[step.id] = root.id
        self._mark_output()

    def _expr(self, node: Node, step: Step) -> GraphNode:
        is_root = node is step.expr
        if isinstance(node, Ref):
            source = self.of_binding[node.target]
            if not is_root:
                return self.get(source)
            # `z = y`: a box of its own, so the step is on the picture
            alias = self.add("op", f"{step.name} = {node.name}", self.get(source).value, node, name=step.name)
            self.edge(source, alias.id, 0)
            return alias
        if isinstance(node, Const):
            title = format_fraction(node.value)
            if is_root:
                title = f"{step.name} = {title}"
            return self.add("const", title, float(node.value), node, name=step.name if is_root else None)
        assert isinstance(node, Call)
        arg_nodes = [self._expr(a, step) for a in node.args]
        holes = [i for i, a in enumerate(node.args) if isinstance(a, Call)]
        numbered = len(holes) > 1
        shown = list(node.args)
        for k, i in enumerate(holes, start=1):
            name = f"{HOLE}{'₀₁₂₃₄₅₆₇₈₉'[k]}" if numbered and k < 10 else HOLE
            shown[i] = Ref(node.args[i].span, name=name, type=node.args[i].type)
        title = _short(to_source(replace(node, args=tuple(shown))))
        if is_root:
            title = _short(f"{step.name} = {title}", MAX_TITLE + len(step.name) + 3)
        value = self.lowered.tensors[id(node)].data
        why = _why_no_grad(node)
        out = self.add(
            "op", title, value, node, op=node.op, name=step.name if is_root else None, why_no_grad=why
        )
        labelled = numbered and node.op not in COMMUTATIVE
        for i, a in enumerate(arg_nodes):
            label = str(holes.index(i) + 1) if labelled and i in holes else ""
            self.edge(a.id, out.id, i, label)
        return out

    def by_steps(self) -> None:
        self.inputs()
        for step in self.program.steps:
            kind: NodeKind = "const" if isinstance(step.expr, Const) else "step"
            value = self.lowered.env[step.id].data
            title = _short(f"{step.name} = {to_source(step.expr)}", 44)
            why = _why_no_grad(step.expr)
            node = self.add(kind, title, value, step.expr, name=step.name, why_no_grad=why)
            seen: list[str] = []
            for ref in _refs(step.expr):
                self.edge(self.of_binding[ref.target], node.id, len(seen))
                seen.append(ref.target)
            self.of_binding[step.id] = node.id
        self._mark_output()

    def _mark_output(self) -> None:
        out = self.get(self.of_binding[self.program.output.id])
        out.output = True

    def get(self, node_id: str) -> GraphNode:
        return next(p.node for p in self.pending if p.node.id == node_id)


def _why_no_grad(node: Node) -> str:
    dtype = DType.FLOAT if node.type is None else node.type.dtype
    return {DType.FLOAT: "", DType.BOOL: "none (true/false)"}.get(dtype, "none (integer)")


def _refs(node: Node) -> list[Ref]:
    if isinstance(node, Ref):
        return [node]
    return [r for child in node.children() for r in _refs(child)]


def _gradients(
    program: Program,
    point: Mapping[str, np.ndarray],
    lowered: _Lowered,
    pending: Sequence[_Pending],
    notes: list[str],
) -> None:

    output = lowered.output
    if output.size != 1:
        shape = "x".join(str(d) for d in output.shape)
        notes.append(f"the output has shape {shape}: gradients need a scalar output (wrap it in sum or mean)")
        for p in pending:
            p.node.why_no_grad = "none (output not scalar)"
        return

    def tensor_of(p: _Pending) -> Any:
        if p.ir is None:
            return lowered.inputs[p.node.name or ""]
        if isinstance(p.ir, Ref):
            return lowered.env[p.ir.target]
        if isinstance(p.ir, Call):
            return lowered.tensors[id(p.ir)]
        return lowered.env[next(s.id for s in program.steps if s.expr is p.ir)]  # a step `c = 2`

    wanted = [p for p in pending if p.node.kind != "const" and not p.node.why_no_grad]
    recorded = [p for p in wanted if tensor_of(p).requires_grad]
    with np.errstate(all="ignore"):
        seed = np.ones_like(output.data)
        grads = T.grad(output, [tensor_of(p) for p in recorded], grad_output=seed) if recorded else []
        for p, g in zip(recorded, grads, strict=True):
            p.node.grad = np.asarray(g.data, dtype=np.float64)
        # Nodes past a non-differentiable op, or on constants only, record nothing: make each a
        # leaf in a fresh pass, so d out / d node is still that of the node itself.
        for p in wanted:
            if p in recorded:
                continue
            assert p.ir is not None
            leaf = T.Tensor(np.asarray(tensor_of(p).data, dtype=np.float64), requires_grad=True)
            again = _Lowered(program, point, {id(p.ir): leaf})
            (g,) = T.grad(again.output, [leaf], grad_output=np.ones_like(again.output.data))
            p.node.grad = np.asarray(g.data, dtype=np.float64)


# ---------------------------------------------------------------- Mermaid

_MERMAID_SHAPES = {"input": '(["{}"])', "const": '(("{}"))', "op": '["{}"]', "step": '["{}"]'}
_STYLES = {
    # kind: (fill, stroke)
    "input": ("#dbeafe", "#1d4ed8"),
    "const": ("#f3f4f6", "#6b7280"),
    "op": ("#fef9c3", "#a16207"),
    "step": ("#fef9c3", "#a16207"),
    "output": ("#dcfce7", "#15803d"),
}
GRAD_COLOR = "#b91c1c"


def _mermaid_text(text: str) -> str:
    # Mermaid's own escapes (#quot; and decimal codes): its labels are HTML in quotes.
    return text.replace("&", "#38;").replace('"', "#quot;").replace("<", "#60;").replace(">", "#62;")


def to_mermaid(graph: ComputationGraph) -> str:
    """A Mermaid flowchart (top to bottom) for Markdown: ```mermaid ... ``` on GitHub."""
    lines = [
        "flowchart TB",
        f"    %% symcheck graph: {_mermaid_text(graph.expr.replace(chr(10), '; '))}",
        f"    %% at {_mermaid_text(graph.point_text)}; grad = d {graph.output_name} / d node",
    ]
    for n in graph.nodes:
        label = "<br/>".join([f"<b>{_mermaid_text(n.title)}</b>", *(_mermaid_text(t) for t in n.lines())])
        lines.append(f"    {n.id}{_MERMAID_SHAPES[n.kind].format(label)}")
    for e in graph.edges:
        tag = " & ".join(t for t in (f"×{e.count}" if e.count > 1 else "", e.label) if t)
        arrow = f'-->|"{tag}"|' if tag else "-->"
        lines.append(f"    {e.source} {arrow} {e.target}")
    for kind, (fill, stroke) in _STYLES.items():
        lines.append(f"    classDef {kind} fill:{fill},stroke:{stroke},color:#111827")
    for kind in ("input", "const", "op", "step"):
        ids = [n.id for n in graph.nodes if n.kind == kind and not n.output]
        if ids:
            lines.append(f"    class {','.join(ids)} {kind}")
    outputs = [n.id for n in graph.nodes if n.output]
    if outputs:
        lines.append(f"    class {','.join(outputs)} output")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- layout (grandalf)


def require(*modules: str, what: str = "this picture") -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SymcheckError(
            f"{what} needs {' and '.join(missing)}, which is not installed", hint=TEACHING_HINT
        )


class _VertexView:
    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.xy = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = [(float(x), float(y)) for x, y in points]


X_SPACE, Y_SPACE, COMPONENT_GAP = 28.0, 44.0, 40.0


def layout(graph: ComputationGraph, sizes: Mapping[str, tuple[float, float]] | None = None) -> Layout:
    """Sugiyama's layered layout (grandalf): arguments in the layer above the op that uses them,
    crossings reduced, each connected part side by side. `sizes`: the boxes, in points."""
    require("grandalf", what="the graph layout")
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    sizes = dict(sizes) if sizes is not None else {n.id: (80.0, 40.0) for n in graph.nodes}
    vertices = {n.id: Vertex(n.id) for n in graph.nodes}
    for node_id, v in vertices.items():
        v.view = _VertexView(*sizes[node_id])
    edges = {}
    for e in graph.edges:
        edge = Edge(vertices[e.source], vertices[e.target])
        edge.view = _EdgeView()
        edges[(e.source, e.target)] = edge
    g = Graph(list(vertices.values()), list(edges.values()))
    positions: dict[str, tuple[float, float]] = {}
    ranks: dict[str, int] = {}
    routes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    left = 0.0
    for component in g.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = X_SPACE, Y_SPACE
        # optimize: constants sit just above the op that uses them, not all in the top layer
        sugiyama.init_all(optimize=True)
        sugiyama.draw()
        shift = left - min(v.view.xy[0] - v.view.w / 2 for v in component.sV)
        for v in component.sV:
            positions[v.data] = (v.view.xy[0] + shift, v.view.xy[1])
            ranks[v.data] = sugiyama.grx[v].rank
        for e in component.sE:
            routes[(e.v[0].data, e.v[1].data)] = [(x + shift, y) for x, y in e.view.points]
        left = max(positions[v.data][0] + v.view.w / 2 for v in component.sV) + COMPONENT_GAP
    top = min((y - sizes[n][1] / 2 for n, (_, y) in positions.items()), default=0.0)
    positions = {n: (x, y - top) for n, (x, y) in positions.items()}
    routes = {k: [(x, y - top) for x, y in pts] for k, pts in routes.items()}
    return Layout(positions, sizes, routes, ranks)


# ---------------------------------------------------------------- drawing (matplotlib)

TITLE_SIZE, BODY_SIZE, HEADER_SIZE = 10.0, 9.0, 10.5
PAD_X, PAD_Y, LINE_GAP = 8.0, 5.0, 3.0
MARGIN = 16.0


def _text_size(text: str, size: float, bold: bool = False) -> tuple[float, float]:
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    w, _, _ = TextToPath().get_text_width_height_descent(text or " ", prop, ismath=False)
    return float(w), float(size * 1.2)


def _box_size(node: GraphNode) -> tuple[float, float]:
    rows = [_text_size(node.title, TITLE_SIZE, bold=True)] + [_text_size(t, BODY_SIZE) for t in node.lines()]
    w = max(r[0] for r in rows) + 2 * PAD_X
    h = sum(r[1] for r in rows) + LINE_GAP * (len(rows) - 1) + 2 * PAD_Y
    return max(w, 30.0), h


def _matplotlib() -> Any:
    require("matplotlib", what="drawing a picture")
    import matplotlib

    return matplotlib


def save(graph: ComputationGraph, path: str | Path, fmt: GraphFormat | None = None) -> Path:
    """Write the picture (svg or png, from the suffix unless `fmt`) or the Mermaid text."""
    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt == "mermaid":
        path.write_text(graph.to_mermaid(), encoding="utf-8")
        return path
    require("matplotlib", "grandalf", what=f"a {fmt.upper()} picture")
    figure = draw(graph)
    save_figure(figure, path, fmt)
    return path


def save_figure(figure: Any, path: Path, fmt: str) -> None:
    matplotlib = _matplotlib()
    # svg.fonttype none: text stays text (searchable, selectable, testable); hashsalt and no date:
    # the same graph gives the same file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "symcheck"}):
        metadata = {"Date": None} if fmt == "svg" else None
        figure.savefig(path, format=fmt, dpi=160, metadata=metadata)


def format_of(path: Path) -> GraphFormat:
    suffix = path.suffix.lower()
    if suffix == ".svg":
        return "svg"
    if suffix == ".png":
        return "png"
    if suffix in (".mmd", ".mermaid", ".md"):
        return "mermaid"
    raise SymcheckError(
        f"cannot tell the format of {path.name!r} from its suffix",
        hint="name the file .svg, .png or .mmd, or give --format svg|png|mermaid",
    )


def draw(graph: ComputationGraph) -> Any:
    """A matplotlib Figure of the graph, 1 data unit = 1 point, so text fits the boxes it was
    measured for at any resolution."""
    _matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    sizes = {n.id: _box_size(n) for n in graph.nodes}
    placed = graph.layout(sizes)
    header = [f"{graph.expr.replace(chr(10), '; ')}", f"at {graph.point_text}"]
    footer = f"value: forward value    grad: ∂{graph.output_name}/∂node (symcheck's autograd engine)"
    header_h = 2 * HEADER_SIZE * 1.35 + 10
    footer_h = BODY_SIZE * 1.35 + 10 + sum(BODY_SIZE * 1.35 for _ in graph.notes)
    text_w = max(
        [_text_size(_short(t, 120), HEADER_SIZE, bold=i == 0)[0] for i, t in enumerate(header)]
        + [_text_size(footer, BODY_SIZE)[0]]
        + [_text_size(note, BODY_SIZE)[0] for note in graph.notes]
    )
    inner_w = max(placed.width, text_w)
    width = inner_w + 2 * MARGIN
    height = placed.height + header_h + footer_h + 2 * MARGIN
    x0 = MARGIN + (inner_w - placed.width) / 2  # the graph centred under a wider header

    def at(x: float, y: float) -> tuple[float, float]:
        return x0 + x, height - MARGIN - header_h - y  # y up on the page

    figure = Figure(figsize=(width / 72, height / 72))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    ax.text(MARGIN, height - MARGIN, _short(header[0], 120), fontsize=HEADER_SIZE, weight="bold", va="top")
    ax.text(
        MARGIN, height - MARGIN - HEADER_SIZE * 1.45, _short(header[1], 120), fontsize=HEADER_SIZE, va="top"
    )
    y = MARGIN
    for note in reversed(graph.notes):
        ax.text(MARGIN, y, note, fontsize=BODY_SIZE, color="#92400e", va="bottom")
        y += BODY_SIZE * 1.35
    ax.text(MARGIN, y, footer, fontsize=BODY_SIZE, color="#374151", va="bottom")

    incoming: dict[str, list[GraphEdge]] = {}
    for e in graph.edges:
        incoming.setdefault(e.target, []).append(e)
    for target, edges in incoming.items():
        edges.sort(key=lambda e: (e.position, placed.positions[e.source][0]))
        tx, ty = placed.positions[target]
        tw, th = placed.sizes[target]
        step = min(tw / (len(edges) + 1), 26.0)
        for k, e in enumerate(edges):
            sx, sy = placed.positions[e.source]
            route = placed.routes.get((e.source, e.target)) or [(sx, sy), (tx, ty)]
            start = (sx, sy + placed.sizes[e.source][1] / 2)
            end = (tx + (k - (len(edges) - 1) / 2) * step, ty - th / 2)
            points = [at(*start), *(at(*p) for p in route[1:-1]), at(*end)]
            arrow = FancyArrowPatch(
                path=MplPath(points),
                arrowstyle="-|>",
                mutation_scale=11,
                linewidth=1.1,
                color="#4b5563",
                zorder=1,
            )
            ax.add_patch(arrow)
            tag = " ".join(t for t in (f"×{e.count}" if e.count > 1 else "", e.label) if t)
            if tag:
                (ax_, ay_), (bx, by) = points[-2], points[-1]
                ax.text(
                    ax_ + 0.7 * (bx - ax_),
                    ay_ + 0.7 * (by - ay_),
                    tag,
                    fontsize=BODY_SIZE - 1,
                    ha="center",
                    va="center",
                    color="#111827",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "#9ca3af", "lw": 0.6},
                    zorder=3,
                )

    for n in graph.nodes:
        cx, cy = at(*placed.positions[n.id])
        w, h = placed.sizes[n.id]
        fill, stroke = _STYLES["output" if n.output else n.kind]
        style = (
            "round,pad=0,rounding_size=10" if n.kind in ("input", "const") else "round,pad=0,rounding_size=3"
        )
        ax.add_patch(
            FancyBboxPatch(
                (cx - w / 2, cy - h / 2),
                w,
                h,
                boxstyle=style,
                facecolor=fill,
                edgecolor=stroke,
                linewidth=1.6 if n.output else 1.1,
                zorder=2,
            )
        )
        top = cy + h / 2 - PAD_Y
        ax.text(cx, top, n.title, fontsize=TITLE_SIZE, weight="bold", ha="center", va="top", zorder=4)
        top -= TITLE_SIZE * 1.2 + LINE_GAP
        for i, line in enumerate(n.lines()):
            color = GRAD_COLOR if i == 1 else "#111827"
            ax.text(cx, top, line, fontsize=BODY_SIZE, ha="center", va="top", color=color, zorder=4)
            top -= BODY_SIZE * 1.2 + LINE_GAP
    return figure


# ---------------------------------------------------------------- cases from the command line


def case_point(case: Any) -> tuple[Program, dict[str, np.ndarray], list[str]]:
    """The case's program and its given point (inputs without a value drawn with the case's seed)."""

    program = parse_case_program(case)
    notes: list[str] = []
    point = make_point(case.inputs, case.seed, program, notes=notes)
    return program, point, notes


def graph_of_case(case: Any, *, steps: bool = False) -> ComputationGraph:
    program, point, notes = case_point(case)
    graph = build_graph(program, point, steps=steps, expr=case.expr.strip())
    graph.notes[:0] = notes
    return graph


def run_graph(
    target: str,
    inputs: Sequence[str],
    *,
    case_name: str | None = None,
    output: str | None = None,
    fmt: GraphFormat | None = None,
    steps: bool = False,
) -> str | None:
    """`symcheck graph`: the Mermaid text to print, or None after writing `output`."""
    if output is not None and fmt is None:
        fmt = format_of(Path(output))
    if output is None and fmt in ("svg", "png"):
        raise SymcheckError(f"a {fmt.upper()} picture needs a file", hint=f"add -o graph.{fmt}")
    if fmt in ("svg", "png"):
        require("matplotlib", "grandalf", what=f"a {fmt.upper()} picture")  # before any work
    graph = graph_of_case(load_case(target, inputs, case_name), steps=steps)
    if output is None:
        return graph.to_mermaid()
    save(graph, output, fmt)
    return None
