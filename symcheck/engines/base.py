"""The interface every engine implements, and the registry of built-in engines.

An engine takes the typed IR plus concrete inputs and returns the output value and the gradient
of the (scalar) output with respect to the requested inputs. Engines are loaded lazily by name so
that `symcheck --help` never imports torch or sympy.

Besides the four built-in engines, plug-ins (docs/engines.md) come from two places: classes
registered in-process (`register_engine`; the command line's `--engine-plugin module:Class`) and
installed packages declaring an entry point in the group `symcheck.engines`. Listing entry points
reads package metadata only; a plug-in's module is imported when an engine of that name is loaded.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from symcheck.errors import SymcheckError, did_you_mean

if TYPE_CHECKING:
    import numpy as np

    from symcheck.ir import Program


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


BUILTIN_ENGINES: dict[str, str] = {
    "symbolic": "symcheck.symbolic:SymbolicEngine",
    "autograd": "symcheck.autograd.engine:AutogradEngine",
    "torch": "symcheck.torch_engine:TorchEngine",
    "numeric": "symcheck.numeric:NumericEngine",
}
DEFAULT_ENGINES: tuple[str, ...] = tuple(BUILTIN_ENGINES)


ENTRY_POINT_GROUP = "symcheck.engines"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# Plug-ins registered in this process: name -> an Engine subclass (instantiated per load) or instance.
_REGISTERED: dict[str, type[Engine] | Engine] = {}


def entry_point_engines() -> dict[str, str]:
    """Installed plug-ins: entry point name -> "module:Class". Reads metadata; imports nothing."""
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def registered_engines() -> dict[str, str]:
    """Plug-ins registered in this process (e.g. by --engine-plugin): name -> "module:Class"."""
    return {name: _qualname(obj) for name, obj in _REGISTERED.items()}


def available_engines() -> dict[str, str]:
    """Every engine name that can be asked for -> "module:Class". Built-ins first, then plug-ins
    registered here, then installed entry points (a name taken earlier shadows a later one)."""
    found = dict(BUILTIN_ENGINES)
    for name, where in (*registered_engines().items(), *entry_point_engines().items()):
        found.setdefault(name, where)
    return found


def check_engine_names(names: Sequence[str]) -> None:
    """SymcheckError naming the first unknown engine, with a did-you-mean hint."""
    known = available_engines()
    for name in names:
        if name not in known:
            raise SymcheckError(
                f"unknown engine '{name}'",
                hint=did_you_mean(name, known) or f"engines are {', '.join(known)}",
            )


def import_engine_class(spec: str, what: str = "engine plug-in") -> type[Engine]:
    """Import "module:Class" and check that it is an Engine; a SymcheckError says what is wrong."""
    module_name, colon, class_name = spec.partition(":")
    if not colon or not module_name or not class_name:
        raise SymcheckError(f"{what} {spec!r} is not of the form module:Class", hint="e.g. mypkg.eng:Mine")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SymcheckError(f"cannot import {what} {spec!r}: {e}") from e
    obj = module
    for part in class_name.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise SymcheckError(
                f"{what} {spec!r}: {module_name} has no attribute {part!r}", hint=did_you_mean(part, names)
            )
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Engine)):
        raise SymcheckError(
            f"{what} {spec!r} is not a subclass of symcheck.engine.Engine", hint="see docs/engines.md"
        )
    if getattr(obj, "__abstractmethods__", None):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise SymcheckError(f"{what} {spec!r} does not implement {missing}", hint="see docs/engines.md")
    return obj


def register_engine(engine: type[Engine] | Engine, name: str | None = None) -> str:
    """Make `engine` loadable by name (its `name` attribute unless given); returns the name."""
    name = name if name is not None else getattr(engine, "name", None)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SymcheckError(
            f"engine plug-in {_qualname(engine)} needs a name (a class attribute `name`), got {name!r}",
            hint="a letter, then letters, digits, '_', '.' or '-'",
        )
    if name in BUILTIN_ENGINES:
        raise SymcheckError(
            f"engine plug-in {_qualname(engine)} is named '{name}', like a built-in engine",
            hint="give the plug-in a name of its own",
        )
    _REGISTERED[name] = engine
    return name


def unregister_engine(name: str) -> None:
    _REGISTERED.pop(name, None)


def load_plugin(spec: str) -> str:
    """--engine-plugin: import "module:Class", register it under its `name`; returns the name."""
    return register_engine(import_engine_class(spec))


@contextmanager
def plugins_loaded(specs: Sequence[str]) -> Iterator[list[str]]:
    """Register the plug-ins in `specs` for the duration of a command; yields their names."""
    names: list[str] = []
    try:
        for spec in specs:
            name = load_plugin(spec)
            if name in names:
                raise SymcheckError(f"two engine plug-ins are named '{name}'", hint="name each one once")
            names.append(name)
        yield names
    finally:
        for name in names:
            unregister_engine(name)


def load_engine(name: str) -> Engine:
    if name in BUILTIN_ENGINES:
        module_name, _, class_name = BUILTIN_ENGINES[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise EngineUnavailable(f"{name} engine needs a package that is not installed: {e.name}") from e
        return getattr(module, class_name)()
    if name in _REGISTERED:
        found = _REGISTERED[name]
        return found if isinstance(found, Engine) else found()
    installed = entry_point_engines()
    if name in installed:
        cls = import_engine_class(installed[name], f"engine plug-in '{name}' (entry point)")
        return cls()
    check_engine_names([name])
    raise AssertionError("unreachable")  # pragma: no cover


def _qualname(obj: object) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"
