"""A case's `impl:` and `impl_grad:`: the opt-in to import user code, and loading it as an engine.

`impl: "package.module:function"` names a callable that computes the case's `expr`; the engine
that runs it is `symcheck.engines.user.ImplEngine`. Importing a module runs its code, so it happens
only on opt-in: `--allow-import` (which sets `Case.allow_import`; a suite cannot set it itself), or
`[tool.symcheck] allow-import = true` in the nearest pyproject.toml at or above the suite's folder.
A suite graded as data (students' YAML) never imports anything by default. The folder of that
pyproject.toml (else the suite's folder) goes on sys.path for the import. Opt-in, import and
attribute problems are located input errors (exit 2); what the implementation does wrong when it
runs is a failure of the case (exit 1), reported in the "impl" column.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symcheck.engines.user import IMPL_ENGINE, ImplEngine, exception_text
from symcheck.language.errors import Source, Span, SymcheckError, did_you_mean
from symcheck.suites.config import CONFIG_FILE, line_of, nearest_config, tool_table

if TYPE_CHECKING:
    from symcheck.suites.case import Case

CONFIG_KEY = "allow-import"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
TARGET_RE = re.compile(rf"(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<attr>{_IDENT}(?:\.{_IDENT})*)")


# ---------------------------------------------------------------- opt-in


@dataclass(frozen=True)
class ImportPermission:
    allowed: bool
    root: Path  # the folder put on sys.path: the pyproject.toml's, else the suite's
    config: Path | None  # the nearest pyproject.toml, if any


def suite_folder(case: Case) -> Path:
    path = Path(case.file)
    return (path.parent if case.file != "<command line>" else Path.cwd()).resolve()


def import_permission(case: Case) -> ImportPermission:
    folder = suite_folder(case)
    config = nearest_config(folder)
    root = config.parent if config is not None else folder
    if case.allow_import:
        return ImportPermission(True, root, config)
    return ImportPermission(config is not None and _config_allows(config), root, config)


def _config_allows(config: Path) -> bool:
    """The setting in `config` (read once per version of the file: the runner asks at every point)."""
    table = tool_table(config)
    if CONFIG_KEY not in table and "allow_import" in table:
        raise SymcheckError(
            "[tool.symcheck] has 'allow_import'; the setting is spelled 'allow-import'",
            filename=str(config),
            line=line_of(config, "allow_import"),
        )
    value = table.get(CONFIG_KEY, False)
    if not isinstance(value, bool):
        raise SymcheckError(
            f"[tool.symcheck] {CONFIG_KEY} must be true or false, got {value!r}",
            filename=str(config),
            line=line_of(config, CONFIG_KEY),
        )
    return value


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Target:
    text: str
    key: str  # "impl" or "impl_grad"
    source: Source
    module: str
    attr: str

    def error(
        self, message: str, hint: str | None = None, at: tuple[int, int] | None = None
    ) -> SymcheckError:
        """An error with a caret under the target, or under `at` = (offset, width) of it."""
        start, width = at if at is not None else (0, len(self.text))
        span = Span(1, start + 1, 1, start + 1 + max(width, 1))
        return SymcheckError(message, source=self.source, span=span, hint=hint)

    @property
    def module_at(self) -> tuple[int, int]:
        return 0, len(self.module)

    def attr_at(self, index: int) -> tuple[int, int]:
        parts = self.attr.split(".")
        offset = len(self.module) + 1 + sum(len(p) + 1 for p in parts[:index])
        return offset, len(parts[index])


def _target(case: Case, key: str) -> _Target:
    text = getattr(case, key).strip()
    source = getattr(case, f"{key}_source", None) or Source(text, case.file, max((case.line or 1) - 1, 0))
    match = TARGET_RE.fullmatch(text)
    if match is None:
        raise _Target(text, key, source, "", "").error(
            f"{key} must name a function as 'package.module:function', got {text!r}",
            hint='e.g. impl: "mylayers:swish" (a module importable from the project folder, a colon, '
            "a name in it)",
        )
    return _Target(text, key, source, match["module"], match["attr"])


def load_callable(target: _Target, root: Path) -> Callable[..., Any]:
    """Import the target's module (with `root` on sys.path) and fetch the attribute."""
    where = str(root)
    if where not in sys.path:
        sys.path.insert(0, where)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(target.module)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if target.module == missing or target.module.startswith(missing + "."):
            raise target.error(
                f"{target.key}: no module named '{missing}'",
                hint=f"modules are imported from {root} (the project folder) and the installed packages",
                at=target.module_at,
            ) from None
        raise target.error(
            f"{target.key}: importing '{target.module}' failed: {exception_text(e)}",
            hint="the module itself imports something that is not installed",
            at=target.module_at,
        ) from None
    except (Exception, SystemExit) as e:
        raise target.error(
            f"{target.key}: importing '{target.module}' failed: {exception_text(e)}", at=target.module_at
        ) from None
    obj: Any = module
    owner = target.module
    parts = target.attr.split(".")
    for i, part in enumerate(parts):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise target.error(
                f"{target.key}: '{owner}' has no attribute '{part}'",
                hint=did_you_mean(part, names) or (f"it defines {', '.join(names[:12])}" if names else None),
                at=target.attr_at(i),
            )
        obj = getattr(obj, part)
        owner = f"{target.module}:{'.'.join(parts[: i + 1])}"
    if not callable(obj):
        raise target.error(f"{target.key}: '{target.text}' is not callable ({type(obj).__name__})")
    if isinstance(obj, type) and any(
        c.__name__ == "Function" and c.__module__.startswith("torch.autograd") for c in obj.__mro__
    ):
        raise target.error(
            f"{target.key}: '{target.text}' is a torch.autograd.Function class",
            hint=f"name a function that calls {obj.__name__}.apply(...) and computes the whole expr",
        )
    return obj


def _check_signature(target: _Target, fn: Callable[..., Any], inputs: Sequence[str]) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or extension without one: find out when it runs
        return
    try:
        signature.bind(**dict.fromkeys(inputs))
    except TypeError as e:
        call = f"{target.attr}({', '.join(f'{n}=...' for n in inputs)})"
        raise target.error(
            f"{target.key}: '{target.text}' cannot take the case's inputs as keyword arguments: {e}",
            hint=f"symcheck calls {call}",
        ) from None


_LOADED: dict[tuple[str, str | None, Path], ImplEngine] = {}


def impl_engine(case: Case) -> ImplEngine:
    """The engine for a case with `impl:`: opt-in checked, module imported (once per process)."""
    assert case.impl is not None
    target = _target(case, "impl")
    grad_target = _target(case, "impl_grad") if case.impl_grad is not None else None
    permission = import_permission(case)
    if not permission.allowed:
        where = (
            str(permission.config)
            if permission.config is not None
            else f"a {CONFIG_FILE} in {suite_folder(case)} or a folder above it"
        )
        raise target.error(
            f"impl: '{target.text}' would import and run Python code; symcheck imports user code "
            "only when allowed",
            hint=f"pass --allow-import, or set `{CONFIG_KEY} = true` under [tool.symcheck] in {where}",
        )
    key = (target.text.strip(), None if grad_target is None else grad_target.text.strip(), permission.root)
    if key not in _LOADED:
        fn = load_callable(target, permission.root)
        grad_fn = None if grad_target is None else load_callable(grad_target, permission.root)
        _LOADED[key] = ImplEngine(fn, grad_fn, target.text.strip())
    engine = _LOADED[key]
    _check_signature(target, engine.fn, list(case.inputs))
    if grad_target is not None and engine.grad_fn is not None:
        _check_signature(grad_target, engine.grad_fn, list(case.inputs))
    return engine


def with_impl(case: Case) -> Case:
    """Check that the case's implementation loads; the case with the "impl" engine added."""
    impl_engine(case)
    if IMPL_ENGINE in case.engines:
        return case
    return replace(case, engines=[*case.engines, IMPL_ENGINE])


CONFIG_KEY = "allow-import"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
TARGET_RE = re.compile(rf"(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<attr>{_IDENT}(?:\.{_IDENT})*)")
