"""The interface every engine implements: what `run` receives and what it returns.

An engine takes the typed IR plus concrete inputs and returns the output value and its
derivatives with respect to the requested inputs: for a scalar output the gradient; for a tensor
output the Jacobian, in full up to a size budget, else as vector-Jacobian products (reverse mode)
and Jacobian-vector products (forward mode) along probes that every engine draws alike
(`jacobian_probes`). A plain sum of a tensor output is never what is checked: the sum of a softmax
is 1 whatever its backward does. The registry of engines by name is
`registry.py`; each built-in engine is a package beside this file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

# numpy only inside functions: the interface is imported by `symcheck --help` (through the registry).
if TYPE_CHECKING:
    import numpy as np

    from symcheck.language.ir import Program


class EngineUnavailable(Exception):
    """The engine cannot run here (a missing package, no CUDA device); the message says why."""


@dataclass(frozen=True)
class EngineOptions:
    dtype: str = "float64"  # torch: float64 | float32 | float16 | bfloat16
    device: str = "cpu"  # torch: cpu | cuda | cuda:N
    expansion_budget: int = 256  # symbolic: most input elements to expand into SymPy symbols
    # symbolic: within the budget, the expansion runs at a case's own shape only while its estimated
    # work (the expanded output's size times the wrt elements, expansion.expanded_size: about 1 ms per
    # 1,000 on one core) stays under this; the probe shape may take ten times as much.
    expansion_work: float = 20_000
    fd_full_limit: int = 2048  # numeric: up to this many elements, difference every element
    fd_directions: int = 8  # numeric: random directions above fd_full_limit
    seed: int = 0
    order: int = 1  # 2: also second derivatives (Hessian blocks, or Hessian-vector products)
    hessian_full_limit: int = 64  # order 2: full Hessian up to this many wrt elements, else HVPs
    hvp_directions: int = 3  # order 2 above the limit: this many random directions
    # A tensor output: the full Jacobian up to this many entries (output elements x wrt elements),
    # else this many random cotangents (VJPs) and as many random tangents (JVPs).
    jacobian_full_limit: int = 4096
    jacobian_probes: int = 3
    # symbolic: seconds the exact work of one case may take before the engine gives up (its column
    # says so, the other engines still check the case); None: no limit.
    time_budget: float | None = 60.0
    # symbolic: the time.monotonic() by which the exact work must end: one case's budget shared by
    # all its points (the runner sets it; time_budget is then the case's whole budget, for the
    # message). None: time_budget for each call.
    deadline: float | None = None


@dataclass(frozen=True)
class Directional:
    """A directional derivative: d/dε f(x + ε·v) at ε = 0, for one random direction v."""

    direction: Mapping[str, np.ndarray]
    derivative: float


@dataclass(frozen=True)
class HVP:
    """A Hessian-vector product: H v for one direction v (one array per wrt input, both)."""

    direction: Mapping[str, np.ndarray]
    product: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Curvature:
    """A second directional derivative v^T H v = d^2/de^2 f(x + e v) at e = 0."""

    direction: Mapping[str, np.ndarray]
    value: float


def hessian_key(a: str, b: str) -> str:
    """Hessian blocks are keyed "a,b": d^2 out / (da db), of shape a.shape + b.shape."""
    return f"{a},{b}"


def second_order_directions(
    shapes: Mapping[str, tuple[int, ...]], options: EngineOptions
) -> list[dict[str, np.ndarray]]:
    """The random directions every engine uses for HVPs: same seed, same directions, so they compare."""
    import numpy as np

    rng = np.random.default_rng([options.seed, 2])
    directions = []
    for _ in range(options.hvp_directions):
        v = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
        norm = float(np.sqrt(sum(float(np.sum(a * a)) for a in v.values()))) or 1.0
        directions.append({name: a / norm for name, a in v.items()})
    return directions


def wants_full_hessian(shapes: Mapping[str, tuple[int, ...]], options: EngineOptions) -> bool:
    total = 0
    for shape in shapes.values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total <= options.hessian_full_limit


def size_of(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def wants_full_jacobian(
    out_shape: Sequence[int], shapes: Mapping[str, tuple[int, ...]], options: EngineOptions
) -> bool:
    """A tensor output's Jacobian is computed in full when it has at most jacobian_full_limit entries."""
    return size_of(out_shape) * sum(size_of(s) for s in shapes.values()) <= options.jacobian_full_limit


@dataclass(frozen=True)
class JacobianProbes:
    """What a tensor output's Jacobian J is checked along, above the full-Jacobian budget: random
    cotangents u (each of the output's shape; reverse mode gives J^T u, one array per wrt input) and
    random tangents v (one array per wrt input; forward mode gives J v, of the output's shape)."""

    cotangents: list[np.ndarray]
    tangents: list[dict[str, np.ndarray]]


def jacobian_probes(
    out_shape: tuple[int, ...], shapes: Mapping[str, tuple[int, ...]], options: EngineOptions
) -> JacobianProbes:
    """The probes every engine uses: drawn once per point from a seeded Gaussian (a stream of its
    own), so all engines differentiate along the same vectors and their results compare."""
    import numpy as np

    rng = np.random.default_rng([options.seed, 3])
    cotangents = [rng.standard_normal(out_shape) for _ in range(options.jacobian_probes)]
    # By name, so that engines that list the inputs in different orders draw the same tangents.
    tangents = [
        {name: rng.standard_normal(shapes[name]) for name in sorted(shapes)}
        for _ in range(options.jacobian_probes)
    ]
    return JacobianProbes(cotangents, tangents)


def one_hot(shape: tuple[int, ...], index: int) -> np.ndarray:
    """The unit array of `shape` with a 1 at flat position `index`: a row or column of a Jacobian."""
    import numpy as np

    e = np.zeros(size_of(shape))
    e[index] = 1.0
    return e.reshape(shape)


@dataclass
class TensorDerivatives:
    """What an engine found for a tensor output (see EngineResult): Jacobians, or VJPs and JVPs."""

    jacobians: dict[str, np.ndarray] = field(default_factory=dict)
    vjps: list[dict[str, np.ndarray]] = field(default_factory=list)
    jvps: list[np.ndarray] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    mode: str = ""  # "full" or "probes"


def tensor_derivatives(
    out_shape: tuple[int, ...],
    shapes: Mapping[str, tuple[int, ...]],
    options: EngineOptions,
    vjp: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None,
    jvp: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None,
    rtol: float = 1e-9,
) -> TensorDerivatives:
    """An engine's derivatives of a tensor output from its reverse mode (`vjp`: a cotangent u of the
    output's shape -> J^T u per input) and its forward mode (`jvp`: tangents per input -> J v).

    Within the full-Jacobian budget the Jacobian is built row by row from `vjp` (unit cotangents)
    and column by column from `jvp` (unit tangents); when the engine has both, the two must agree
    entry by entry, or the engine's reverse and forward rules contradict each other. Above it, the
    VJPs and JVPs along `jacobian_probes` (compared across engines by the checker, and checked by
    the dot-product test u^T (J v) = (J^T u)^T v).
    """
    import numpy as np

    found = TensorDerivatives()
    if wants_full_jacobian(out_shape, shapes, options):
        found.mode = "full"
        rows: dict[str, np.ndarray] = {}
        if vjp is not None:
            per_row = [vjp(one_hot(out_shape, i)) for i in range(size_of(out_shape))]
            rows = {
                n: np.stack([np.asarray(r[n], dtype=np.float64) for r in per_row]).reshape(out_shape + s)
                if per_row
                else np.zeros(out_shape + s)
                for n, s in shapes.items()
            }
        columns: dict[str, np.ndarray] = {}
        if jvp is not None:
            for n, s in shapes.items():
                zeros = {m: np.zeros(shape) for m, shape in shapes.items()}
                cols = []
                for j in range(size_of(s)):
                    cols.append(np.asarray(jvp({**zeros, n: one_hot(s, j)}), dtype=np.float64).reshape(-1))
                flat = np.stack(cols, axis=1) if cols else np.zeros((size_of(out_shape), 0))
                columns[n] = flat.reshape(out_shape + s)
        if rows and columns:
            for n in shapes:
                a, b = rows[n], columns[n]
                scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
                # Non-finite entries (outside a domain) are the comparison's to report, not a contradiction.
                finite = np.isfinite(a) & np.isfinite(b)
                bad = finite & ~np.isclose(a, b, rtol=rtol, atol=rtol * scale)
                if bad.any():
                    at = tuple(int(i) for i in np.argwhere(bad)[0])
                    out_at, in_at = at[: len(out_shape)], at[len(out_shape) :]
                    found.failures.append(
                        f"reverse mode and forward mode disagree at Jacobian entry d out{list(out_at)} / "
                        f"d {n}{list(in_at)}: J^T u gives {float(a[at]):.12g}, J v gives {float(b[at]):.12g}"
                    )
                    break
        found.jacobians = rows or columns
        return found
    found.mode = "probes"
    probes = jacobian_probes(out_shape, dict(shapes), options)
    if vjp is not None:
        found.vjps = [
            {n: np.asarray(g, dtype=np.float64) for n, g in vjp(u).items()} for u in probes.cotangents
        ]
    if jvp is not None:
        found.jvps = [np.asarray(jvp(v), dtype=np.float64) for v in probes.tangents]
    return found


@dataclass
class EngineResult:
    engine: str
    value: np.ndarray  # the output, as float64
    grads: dict[str, np.ndarray]  # scalar output: d out / d input, float64, one array per wrt input
    directional: list[Directional] = field(default_factory=list)  # numeric engine on large inputs
    # numeric: the engine's own estimate of its error in each gradient element (truncation and
    # rounding); the comparison allows it, and calls an element inconclusive where it is too large.
    error_bounds: dict[str, np.ndarray] = field(default_factory=dict)
    closed_forms: dict[str, str] = field(default_factory=dict)  # symbolic: gradients in the language
    exact_value: str | None = None  # symbolic: the value as an exact number, when it is one
    notes: list[str] = field(default_factory=list)  # e.g. "expansion skipped: 10^6 elements > budget"
    failures: list[str] = field(default_factory=list)  # the engine found itself inconsistent
    # symbolic: those of `failures` where the closed form parts from the exact expansion at this very
    # point; at a kink hit that is a tie decided in float64, a convention (the runner says so).
    expansion_failures: list[str] = field(default_factory=list)
    # order 2 (see EngineOptions.order): full blocks keyed by hessian_key(a, b) for every pair of
    # wrt inputs, or HVPs along second_order_directions(...); the numeric engine above its
    # full-difference limit gives curvatures v^T H v instead.
    hessian: dict[str, np.ndarray] = field(default_factory=dict)
    hessian_forms: dict[str, str] = field(default_factory=dict)  # symbolic: "d2out/dx2" -> "A + A.T"
    hvps: list[HVP] = field(default_factory=list)
    curvatures: list[Curvature] = field(default_factory=list)
    dtype: str = "float64"  # the precision the engine computed in (picks the tolerance)
    seconds: float = 0.0
    # A tensor output (grads stays empty): within wants_full_jacobian, the Jacobian d out / d x of
    # each wrt input, of shape out.shape + x.shape; else, along jacobian_probes(...), `vjps[k]` is
    # J^T u_k (one array per wrt input) and `jvps[k]` is J v_k (the output's shape). An engine may
    # give one mode only (finite differences: JVPs; the user's code: VJPs); the comparison takes
    # what both sides have, and each engine's reverse and forward modes are checked against each
    # other (u^T (J v) = (J^T u)^T v).
    jacobians: dict[str, np.ndarray] = field(default_factory=dict)
    vjps: list[dict[str, np.ndarray]] = field(default_factory=list)
    jvps: list[np.ndarray] = field(default_factory=list)
    # numeric: its own error estimates of each Jacobian entry and JVP element, as error_bounds.
    jacobian_error_bounds: dict[str, np.ndarray] = field(default_factory=dict)
    jvp_error_bounds: list[np.ndarray] = field(default_factory=list)
    cotangent: str | None = None  # symbolic: the cotangent's name in the printed VJPs (closed_forms)

    @property
    def has_derivatives(self) -> bool:
        return bool(self.grads or self.directional or self.jacobians or self.vjps or self.jvps)


class Engine(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # (rtol, atol) this engine's results are held to, instead of the dtype's default; a case's own
    # tolerance still wins. For plug-ins whose error is not rounding (a finite-difference engine).
    tolerance: ClassVar[tuple[float, float] | None] = None

    @abstractmethod
    def run(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        """Evaluate `program` at `inputs`; derivatives of the output w.r.t. `wrt` (see EngineResult)."""
