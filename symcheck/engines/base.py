"""The interface every engine implements: what `run` receives and what it returns.

An engine takes the typed IR plus concrete inputs and returns the output value and the gradient
of the (scalar) output with respect to the requested inputs. The registry of engines by name is
`registry.py`; each built-in engine is a package beside this file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
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
    fd_full_limit: int = 2048  # numeric: up to this many elements, difference every element
    fd_directions: int = 8  # numeric: random directions above fd_full_limit
    seed: int = 0
    order: int = 1  # 2: also second derivatives (Hessian blocks, or Hessian-vector products)
    hessian_full_limit: int = 64  # order 2: full Hessian up to this many wrt elements, else HVPs
    hvp_directions: int = 3  # order 2 above the limit: this many random directions


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


@dataclass
class EngineResult:
    engine: str
    value: np.ndarray  # the output, as float64
    grads: dict[str, np.ndarray]  # d out / d input, float64, one array per wrt input
    directional: list[Directional] = field(default_factory=list)  # numeric engine on large inputs
    closed_forms: dict[str, str] = field(default_factory=dict)  # symbolic: gradients in the language
    exact_value: str | None = None  # symbolic: the value as an exact number, when it is one
    notes: list[str] = field(default_factory=list)  # e.g. "expansion skipped: 10^6 elements > budget"
    failures: list[str] = field(default_factory=list)  # the engine found itself inconsistent
    # order 2 (see EngineOptions.order): full blocks keyed by hessian_key(a, b) for every pair of
    # wrt inputs, or HVPs along second_order_directions(...); the numeric engine above its
    # full-difference limit gives curvatures v^T H v instead.
    hessian: dict[str, np.ndarray] = field(default_factory=dict)
    hessian_forms: dict[str, str] = field(default_factory=dict)  # symbolic: "d2out/dx2" -> "A + A.T"
    hvps: list[HVP] = field(default_factory=list)
    curvatures: list[Curvature] = field(default_factory=list)
    dtype: str = "float64"  # the precision the engine computed in (picks the tolerance)
    seconds: float = 0.0


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
        """Evaluate `program` at `inputs`; gradients of the scalar output w.r.t. `wrt`."""
