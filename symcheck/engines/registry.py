"""The registry of engines: the four built-in ones by name, and plug-ins.

Engines are loaded lazily by name so that `symcheck --help` never imports torch or sympy. Plug-ins
(docs/engines.md) come from two places: classes registered in-process (`register_engine`; the
command line's `--engine-plugin module:Class`) and installed packages declaring an entry point in
the group `symcheck.engines`. Listing entry points reads package metadata only; a plug-in's module
is imported when an engine of that name is loaded.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from symcheck.engines.base import Engine, EngineUnavailable
from symcheck.language.errors import SymcheckError, did_you_mean

BUILTIN_ENGINES: dict[str, str] = {
    "symbolic": "symcheck.engines.symbolic:SymbolicEngine",
    "autograd": "symcheck.engines.autograd.engine:AutogradEngine",
    "torch": "symcheck.engines.torch.engine:TorchEngine",
    "numeric": "symcheck.engines.numeric.engine:NumericEngine",
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
            f"{what} {spec!r} is not a subclass of symcheck.engines.Engine", hint="see docs/engines.md"
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
