"""`symcheck plot`: pictures of a derivative.

For one scalar input: the function and its derivative over a range, as curves of the symbolic
closed form (`ClosedForm.evaluate`, densely), with every engine's value and derivative at a
handful of points marked on them, and the kinks (relu at 0, |x| at 0, ...) as dotted vertical
lines, found from the op catalogue's kinks along the range and confirmed with `check_point`.

For tensor inputs: a heatmap per engine and input of each element's gradient error against the
reference engine at the case's point, cells outside the tolerance outlined.

matplotlib (the `teaching` extra) loads only when a picture is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from symcheck.checks.compare import resolve_tolerance
from symcheck.checks.points import check_point
from symcheck.checks.runner import Runner, prepare
from symcheck.engines.base import EngineOptions, EngineUnavailable
from symcheck.engines.numeric.evaluator import forward
from symcheck.language.catalogue import OPS
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import Call, Program
from symcheck.language.parser import to_source
from symcheck.teaching.graph import (
    _matplotlib,
    case_point,
    load_case,
    number_text,
    require,
    save_figure,
    summarize,
)

DENSE = 600  # points on each curve
DEFAULT_POINTS = 7  # engine points on the curves
DEFAULT_RANGE = (-3.0, 3.0)
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
# (marker, size, filled): drawn in this order, biggest first, so every engine's mark shows.
ENGINE_MARKERS: dict[str, tuple[str, float, bool]] = {
    "symbolic": ("o", 11.0, False),
    "autograd": ("s", 8.0, False),
    "torch": ("^", 6.5, True),
    "numeric": ("x", 7.0, True),
}
OTHER_MARKERS = ("D", "v", "P", "*", "<", ">")
ENGINE_COLORS = {"symbolic": "#1d4ed8", "autograd": "#b45309", "torch": "#dc2626", "numeric": "#15803d"}


# ---------------------------------------------------------------- kinks along a line


@dataclass
class KinkMark:
    x: float
    text: str  # "relu is not differentiable at 0"
    where: str  # "relu(x)"


def _kink_offsets(program: Program, point: Mapping[str, np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
    """Signed distance of every element of every kink's argument(s) from its kink."""

    offsets: dict[tuple[int, int], np.ndarray] = {}

    def on_call(call: Call, args: list[np.ndarray], result: np.ndarray) -> None:
        for j, kink in enumerate(OPS[call.op].kinks_of(call)):
            raw = (
                kink.offset(args) if kink.offset is not None else np.asarray(args[kink.arg], float) - kink.at
            )
            offsets[(id(call), j)] = np.asarray(raw, dtype=np.float64).ravel()

    forward(program, point, on_call=on_call)
    return offsets


def find_kinks(
    program: Program, point: Mapping[str, np.ndarray], name: str, xs: np.ndarray
) -> list[KinkMark]:
    """Where along `xs` (values of input `name`, the others as in `point`) some op's argument
    crosses one of its kinks: sign changes of the op catalogue's kink offsets, bisected, then
    confirmed by `check_point` (which reports a kink hit there)."""

    calls = {id(n): n for n in program.nodes() if isinstance(n, Call)}

    def at(x: float) -> dict[str, np.ndarray]:
        return {**point, name: np.asarray(x, dtype=np.float64)}

    samples = [_kink_offsets(program, at(float(x))) for x in xs]
    found: list[KinkMark] = []
    for key in samples[0]:
        column = np.array([s[key] for s in samples])  # (len(xs), elements)
        for e in range(column.shape[1]):
            values = column[:, e]
            sign = np.sign(values)
            for i in range(len(xs)):
                if not np.isfinite(values[i]):
                    continue
                if sign[i] == 0:
                    root = float(xs[i])
                elif i + 1 < len(xs) and np.isfinite(values[i + 1]) and sign[i] * sign[i + 1] < 0:
                    root = _bisect(
                        lambda x, k=key, e=e: _kink_offsets(program, at(x))[k][e], xs[i], xs[i + 1]
                    )
                else:
                    continue
                scale = max(1.0, float(np.nanmax(np.abs(values))))
                if abs(_kink_offsets(program, at(root))[key][e]) > 1e-6 * scale:
                    continue  # a jump (1/x at 0), not a zero
                if any(abs(k.x - root) <= 1e-9 * max(1.0, abs(root)) for k in found):
                    continue
                if not check_point(program, at(root)).kink_hits:
                    continue
                call = calls[key[0]]
                kink = OPS[call.op].kinks_of(call)[key[1]]
                found.append(KinkMark(root, kink.text, _short(to_source(call), 40)))
    return sorted(found, key=lambda k: k.x)


def _bisect(f: Any, lo: float, hi: float) -> float:
    f_lo = f(lo)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if f_mid == 0 or mid in (lo, hi):
            return mid
        if np.sign(f_mid) == np.sign(f_lo):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- the scalar picture


@dataclass
class EnginePoints:
    engine: str
    xs: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    grads: list[float] = field(default_factory=list)


@dataclass
class CurvePlot:
    """Everything `draw_curve` needs, computed without matplotlib (and tested that way)."""

    expr: str
    name: str  # the input along the x axis
    output: str
    xs: np.ndarray
    values: np.ndarray  # the closed form's value along xs (nan outside the domain / at jumps)
    grads: np.ndarray  # its derivative along xs
    closed_form: str  # "3/2*(x + 2)"
    engines: list[EnginePoints]
    kinks: list[KinkMark]
    pinned: dict[str, np.ndarray]  # the other inputs
    notes: list[str] = field(default_factory=list)


def curve_plot(
    case: Any,
    program: Program,
    point: Mapping[str, np.ndarray],
    name: str,
    bounds: tuple[float, float],
    points: int = DEFAULT_POINTS,
) -> CurvePlot:
    from symcheck.engines.symbolic import SymbolicEngine  # lazily: the heatmap plots need no sympy

    lo, hi = bounds
    runner = Runner()
    symbolic = runner.engine("symbolic")
    assert isinstance(symbolic, SymbolicEngine)
    closed = symbolic.closed_form(program, [name])
    notes: list[str] = []

    grid = np.linspace(lo, hi, DENSE)
    kinks = find_kinks(program, point, name, grid)
    # Either side of each kink, and a gap at it, so jumps are not drawn as steep lines.
    delta = 1e-9 * max(1.0, hi - lo)
    around = [x for k in kinks for x in (k.x - delta, k.x + delta)]
    xs = np.unique(np.concatenate([grid, [x for x in around if lo <= x <= hi]]))
    values = np.empty(len(xs))
    grads = np.empty(len(xs))
    with np.errstate(all="ignore"):
        for i, x in enumerate(xs):
            value, g = closed.evaluate({**point, name: np.asarray(x, dtype=np.float64)})
            values[i], grads[i] = float(value), float(g[name])
    for k in kinks:
        xs, values, grads = _gap(xs, values, grads, k.x)

    sample_xs = list(np.linspace(lo, hi, points)) if points > 1 else [0.5 * (lo + hi)]
    given = float(np.asarray(point[name]))
    if case.inputs[name].concrete() and lo <= given <= hi and all(abs(given - x) > 1e-12 for x in sample_xs):
        sample_xs = sorted([*sample_xs, given])
    options = EngineOptions(
        dtype=case.dtype, device=case.device, expansion_budget=case.expansion_budget, seed=case.seed
    )
    engines: list[EnginePoints] = []
    for engine_name in case.engines:
        try:
            engine = runner.engine(engine_name)
        except EngineUnavailable as e:
            notes.append(f"{engine_name}: not run ({e})")
            continue
        found = EnginePoints(engine_name)
        for x in sample_xs:
            at = {**point, name: np.asarray(x, dtype=np.float64)}
            try:
                with np.errstate(all="ignore"):
                    result = engine.run(program, at, [name], options)
            except SymcheckError:
                raise
            except Exception as e:  # an engine's own failure at one point: say so, keep drawing
                notes.append(f"{engine_name} failed at {name} = {number_text(x)}: {type(e).__name__}: {e}")
                continue
            value = float(np.asarray(result.value, dtype=np.float64))
            grad = float(np.asarray(result.grads.get(name, np.nan), dtype=np.float64))
            if np.isfinite(value) or np.isfinite(grad):
                found.xs.append(float(x))
                found.values.append(value)
                found.grads.append(grad)
        engines.append(found)
    return CurvePlot(
        expr=case.expr.strip(),
        name=name,
        output=program.output.name,
        xs=xs,
        values=values,
        grads=grads,
        closed_form=closed.printed.get(name, ""),
        engines=engines,
        kinks=kinks,
        pinned={n: np.asarray(v) for n, v in point.items() if n != name},
        notes=notes,
    )


def _gap(xs: np.ndarray, values: np.ndarray, grads: np.ndarray, at: float) -> tuple[np.ndarray, ...]:
    i = int(np.searchsorted(xs, at))
    return np.insert(xs, i, at), np.insert(values, i, np.nan), np.insert(grads, i, np.nan)


def _markers(names: Sequence[str]) -> dict[str, tuple[str, float, bool, str]]:
    out = {}
    others = iter(OTHER_MARKERS)
    for i, n in enumerate(names):
        marker, size, filled = ENGINE_MARKERS.get(n) or (next(others, "o"), 6.0, True)
        out[n] = (marker, size, filled, ENGINE_COLORS.get(n, f"C{4 + i}"))
    return out


def draw_curve(plot: CurvePlot) -> Any:
    _matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 7), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    pinned = ", ".join(f"{n} = {summarize(v)}" for n, v in plot.pinned.items())
    title = _short(plot.expr.replace("\n", "; "), 90)
    figure.suptitle(f"{title}" + (f"\nwith {_short(pinned, 90)}" if pinned else ""), fontsize=11)
    top.plot(plot.xs, plot.values, color="#374151", lw=1.8, label=f"{plot.output} (symbolic)", zorder=2)
    derivative = f"d{plot.output}/d{plot.name}"
    closed = f" = {_short(plot.closed_form, 60)}" if plot.closed_form else ""
    bottom.plot(plot.xs, plot.grads, color="#374151", lw=1.8, label=f"{derivative}{closed}", zorder=2)
    marks = _markers([e.engine for e in plot.engines])
    for e in plot.engines:
        marker, size, filled, color = marks[e.engine]
        style: dict[str, Any] = {
            "marker": marker,
            "markersize": size,
            "linestyle": "none",
            "color": color,
            "markeredgewidth": 1.6,
            "zorder": 3,
            "label": e.engine,
        }
        if not filled:
            style["markerfacecolor"] = "none"
        top.plot(e.xs, e.values, **style)
        bottom.plot(e.xs, e.grads, **style)
    for kink in plot.kinks:
        for ax in (top, bottom):
            ax.axvline(
                kink.x,
                color="#7c3aed",
                linestyle=":",
                linewidth=1.8,
                zorder=0,
                label=f"kink of {kink.where} at {plot.name} = {number_text(kink.x)}"
                if ax is bottom
                else None,
            )
    top.set_ylabel(plot.output)
    top.set_title("the function, and each engine's value", fontsize=10)
    bottom.set_ylabel(derivative)
    bottom.set_xlabel(plot.name)
    bottom.set_title("its derivative: the symbolic closed form, and each engine's gradient", fontsize=10)
    for ax in (top, bottom):
        ax.grid(True, color="#e5e7eb", linewidth=0.8)
        ax.axhline(0, color="#9ca3af", linewidth=0.8, zorder=0)
    top.legend(fontsize=8, loc="best")
    bottom.legend(fontsize=8, loc="best")
    if plot.notes:
        figure.text(0.01, 0.005, "\n".join(plot.notes[:4]), fontsize=7, color="#92400e", va="bottom")
    return figure


# ---------------------------------------------------------------- the tensor picture


@dataclass
class ErrorPanel:
    engine: str
    input: str
    reference: str
    error: np.ndarray | None  # |engine - reference| per element, None: no per-element gradient
    failed: np.ndarray | None  # elements outside the tolerance
    tolerance: str
    note: str = ""


@dataclass
class HeatmapPlot:
    expr: str
    output: str
    reference: str
    point_label: str
    point: dict[str, np.ndarray]
    panels: list[ErrorPanel]
    notes: list[str] = field(default_factory=list)


def heatmap_plot(case: Any, wrt: Sequence[str] | None = None) -> HeatmapPlot:
    """Every engine against the reference at the case's first point (its given values, else its
    first random point), element by element."""

    case = replace(case, samples=0 if any(s.concrete() for s in case.inputs.values()) else 1)
    if wrt is not None:
        case = replace(case, wrt=list(wrt))
    prepared, errors = prepare([case])
    if errors:
        raise errors[0]
    result = Runner().run(prepared[0])
    p = result.points[0]
    if p.reference is None:
        raise SymcheckError(f"no engine produced gradients for {case.name!r}: {'; '.join(p.problems)}")
    ref = p.results[p.reference]
    overrides = case.tolerance.as_overrides()
    panels: list[ErrorPanel] = []
    for name in result.wrt:
        if name not in ref.grads:
            continue
        expected = np.asarray(ref.grads[name], dtype=np.float64)
        for engine, res in p.results.items():
            if engine == p.reference:
                continue
            tol = resolve_tolerance(engine, res.dtype, overrides)
            if name not in res.grads:
                note = "directional derivatives only" if res.directional else "no gradient"
                panels.append(ErrorPanel(engine, name, p.reference, None, None, tol.describe(), note))
                continue
            actual = np.asarray(res.grads[name], dtype=np.float64)
            with np.errstate(all="ignore"):
                error = np.abs(actual - expected)
                atol = tol.atol * (max(1.0, float(np.nanmax(np.abs(expected)))) if tol.scaled else 1.0)
                failed = ~(error <= atol + tol.rtol * np.abs(expected))
            panels.append(ErrorPanel(engine, name, p.reference, error, failed, tol.describe()))
    notes = [f"{e}: not run ({why})" for e, why in p.skipped.items()]
    notes += [f"{e}: crashed" for e in p.crashed]
    notes += [f"at a kink: {hit}" for hit in p.kink_hits]
    return HeatmapPlot(
        expr=case.expr.strip(),
        output=result.program.output.name,
        reference=p.reference,
        point_label=p.label,
        point={n: np.asarray(v) for n, v in p.inputs.items()},
        panels=panels,
        notes=notes,
    )


def as_matrix(array: np.ndarray) -> np.ndarray:
    """2-D as is, 1-D as one row, a scalar as 1x1, more dimensions folded into rows."""
    a = np.asarray(array)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a.reshape(-1, a.shape[-1])


def _error_text(err: float) -> str:
    return f"{err:.2g}" if err >= 1e-3 else f"{err:.0e}"


FLOOR = 1e-17  # errors of exactly 0 are drawn at this level of the log scale


def draw_heatmap(plot: HeatmapPlot) -> Any:
    _matplotlib()
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    inputs = list(dict.fromkeys(p.input for p in plot.panels))
    engines = list(dict.fromkeys(p.engine for p in plot.panels))
    if not plot.panels:
        raise SymcheckError("nothing to compare: only one engine produced gradients", hint="run more engines")
    shapes = [as_matrix(p.error).shape for p in plot.panels if p.error is not None] or [(1, 1)]
    rows, cols = max(s[0] for s in shapes), max(s[1] for s in shapes)
    cell = min(0.6, 3.2 / max(cols, 1), 2.6 / max(rows, 1))
    width = max(6.0, len(engines) * max(2.4, cols * cell + 0.9) + 1.4)
    height = max(3.2, len(inputs) * max(1.6, rows * cell + 1.0) + 1.2)
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = np.asarray(figure.subplots(len(inputs), len(engines), squeeze=False))
    errors = [p.error[np.isfinite(p.error)] for p in plot.panels if p.error is not None]
    largest = max((float(e.max()) for e in errors if e.size), default=0.0)
    norm = LogNorm(vmin=FLOOR, vmax=max(largest, 1e-15) * 1.01)
    image = None
    point = ", ".join(f"{n} = {summarize(v)}" for n, v in plot.point.items())
    figure.suptitle(
        f"{_short(plot.expr.replace(chr(10), '; '), 80)}: |engine − {plot.reference}| per element of "
        f"d{plot.output}/d·\nat {plot.point_label}: {_short(point, 100)}",
        fontsize=10,
    )
    for panel in plot.panels:
        ax = axes[inputs.index(panel.input), engines.index(panel.engine)]
        ax.set_title(f"{panel.engine}: d{plot.output}/d{panel.input}", fontsize=9)
        if panel.error is None or panel.failed is None:
            ax.text(0.5, 0.5, panel.note, ha="center", va="center", transform=ax.transAxes, fontsize=9)
            ax.set_axis_off()
            continue
        matrix = as_matrix(panel.error)
        failed = as_matrix(panel.failed)
        shown = np.where(np.isfinite(matrix), np.maximum(matrix, FLOOR), np.nan)
        image = ax.imshow(shown, norm=norm, cmap="viridis", aspect="equal")
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_yticks(range(matrix.shape[0]))
        ax.tick_params(labelsize=7)
        if matrix.size <= 48:
            for (r, c), err in np.ndenumerate(matrix):
                text = "nan" if not np.isfinite(err) else "0" if err == 0 else _error_text(err)
                light = np.isfinite(err) and norm(max(err, FLOOR)) < 0.6
                ax.text(c, r, text, ha="center", va="center", fontsize=7, color="white" if light else "black")
        for (r, c), bad in np.ndenumerate(failed):
            if bad:
                ax.add_patch(
                    Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="#dc2626", linewidth=2.2)
                )
        bad_count = int(failed.sum())
        verdict = f"{bad_count} of {failed.size} outside tolerance" if bad_count else "all within tolerance"
        ax.set_xlabel(f"{verdict}\n({panel.tolerance})", fontsize=7)
    if image is not None:
        figure.colorbar(image, ax=axes.ravel().tolist(), label="absolute error", shrink=0.9)
    if plot.notes:
        figure.text(0.01, 0.005, "\n".join(plot.notes[:3]), fontsize=7, color="#92400e", va="bottom")
    return figure


# ---------------------------------------------------------------- the command


def parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = text.replace(":", ",").split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise SymcheckError(f"--range {text!r} is not LOW,HIGH", hint="e.g. --range -3,3") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise SymcheckError(f"--range {text!r}: give finite LOW < HIGH", hint="e.g. --range -3,3")
    return lo, hi


def plot_format(path: Path) -> str:
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SymcheckError(
            f"cannot tell the format of {path.name!r} from its suffix",
            hint="name the file .png, .svg or .pdf",
        )
    return fmt


def run_plot(
    target: str,
    inputs: Sequence[str],
    output: str,
    *,
    case_name: str | None = None,
    wrt: str | None = None,
    bounds: str | None = None,
    points: int = DEFAULT_POINTS,
    engines: Sequence[str] | None = None,
) -> str:
    """`symcheck plot`: write the picture; returns what kind it drew ("curve" or "heatmap")."""

    path = Path(output)
    fmt = plot_format(path)
    require("matplotlib", what="symcheck plot")
    case = load_case(target, inputs, case_name, wrt)
    if engines is not None:
        case = replace(case, engines=list(engines))
    program, point, notes = case_point(case)
    names = list(case.wrt) if case.wrt else program.float_inputs()
    if not names:
        raise SymcheckError("nothing to differentiate: the expression has no float input")
    scalar = [n for n in names if program.inputs[n].type.shape == ()]
    if program.output_type.shape != ():
        raise SymcheckError(
            f"the output has shape {program.output_type.shape}; a plot needs a scalar output",
            hint="wrap it in sum(...) or mean(...)",
        )
    if len(names) == 1 and scalar:
        name = names[0]
        given = float(np.asarray(point[name]))
        lo, hi = parse_range(bounds) or _default_range(given if case.inputs[name].concrete() else None)
        plot = curve_plot(case, program, point, name, (lo, hi), points)
        plot.notes[:0] = notes
        figure = draw_curve(plot)
        kind = "curve"
    elif len(scalar) == len(names):
        raise SymcheckError(
            f"{len(names)} scalar inputs ({', '.join(names)}): pick the one along the x axis",
            hint=f"add --wrt {names[0]}; the others stay at their -i values",
        )
    else:
        if bounds is not None:
            raise SymcheckError(
                "--range is for one scalar input; with tensor inputs the plot is a heatmap of the "
                "gradient error per element at the given point",
                hint="drop --range",
            )
        heat = heatmap_plot(case, names)
        heat.notes[:0] = notes
        figure = draw_heatmap(heat)
        kind = "heatmap"
    save_figure(figure, path, fmt)
    return kind


def _default_range(given: float | None) -> tuple[float, float]:
    lo, hi = DEFAULT_RANGE
    if given is None or lo <= given <= hi:
        return lo, hi
    return given - 3.0, given + 3.0
