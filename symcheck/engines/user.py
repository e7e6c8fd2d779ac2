"""The user's own implementation as one more engine: a case's `impl:` (and `impl_grad:`).

`impl: "package.module:function"` names a callable that computes the case's `expr`: it takes the
case's inputs as keyword arguments and returns the output. With torch (no `impl_grad`), float inputs
arrive as tensors in the case's dtype (float64 by default), those differentiated with
`requires_grad`, int inputs as int64 tensors; it returns a tensor, and torch autograd, through
whatever custom `backward` the implementation defines, gives the gradient. With `impl_grad`, both
callables take numpy arrays (float64, int64): `impl` returns the value, `impl_grad` a dict
{input name: gradient array}. Either way the result is one more engine, "impl", compared against the
reference like the built-in engines.

Importing a module runs its code, so it happens only on opt-in: `--allow-import` (which sets
`Case.allow_import`; a suite cannot set it itself), or `[tool.symcheck] allow-import = true` in the
nearest pyproject.toml at or above the suite's folder. A suite graded as data (students' YAML) never
imports anything by default. The folder of that pyproject.toml (else the suite's folder) goes on
sys.path for the import. Opt-in, import and attribute problems are located input errors (exit 2);
what the implementation does wrong when it runs (an exception, a wrong shape, a missing gradient) is
a failure of the case (exit 1), reported in the "impl" column.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from symcheck.engine import Engine, EngineOptions, EngineResult, EngineUnavailable
from symcheck.errors import Source, Span, SymcheckError, did_you_mean
from symcheck.ir import DType, Program

if TYPE_CHECKING:
    from symcheck.suite import Case

IMPL_ENGINE = "impl"
CONFIG_FILE = "pyproject.toml"
CONFIG_KEY = "allow-import"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
TARGET_RE = re.compile(rf"(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<attr>{_IDENT}(?:\.{_IDENT})*)")
# Frames inside these packages are not where the user's bug is.
_NOT_USER_CODE = ("torch", "symcheck", "numpy")


# ---------------------------------------------------------------- opt-in


@dataclass(frozen=True)
class ImportPermission:
    allowed: bool
    root: Path  # the folder put on sys.path: the pyproject.toml's, else the suite's
    config: Path | None  # the nearest pyproject.toml, if any


def suite_folder(case: Case) -> Path:
    path = Path(case.file)
    return (path.parent if case.file != "<command line>" else Path.cwd()).resolve()


def nearest_config(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def import_permission(case: Case) -> ImportPermission:
    folder = suite_folder(case)
    config = nearest_config(folder)
    root = config.parent if config is not None else folder
    if case.allow_import:
        return ImportPermission(True, root, config)
    return ImportPermission(
        config is not None and _config_allows(config, config.stat().st_mtime_ns), root, config
    )


@functools.lru_cache(maxsize=64)
def _config_allows(config: Path, mtime_ns: int) -> bool:
    """The setting in `config` (read once per version of the file: the runner asks at every point)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise SymcheckError(
                "reading [tool.symcheck] needs Python 3.11 or the tomli package",
                filename=str(config),
                hint="pip install tomli, or pass --allow-import",
            ) from None
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise SymcheckError(f"cannot read {CONFIG_FILE}: {e}", filename=str(config)) from None
    except tomllib.TOMLDecodeError as e:
        raise SymcheckError(f"malformed TOML: {e}", filename=str(config)) from None
    table = data.get("tool", {}).get("symcheck", {})
    if not isinstance(table, dict):
        return False
    if CONFIG_KEY not in table and "allow_import" in table:
        raise SymcheckError(
            "[tool.symcheck] has 'allow_import'; the setting is spelled 'allow-import'",
            filename=str(config),
            line=_line_of(config, "allow_import"),
        )
    value = table.get(CONFIG_KEY, False)
    if not isinstance(value, bool):
        raise SymcheckError(
            f"[tool.symcheck] {CONFIG_KEY} must be true or false, got {value!r}",
            filename=str(config),
            line=_line_of(config, CONFIG_KEY),
        )
    return value


def _line_of(config: Path, key: str) -> int | None:
    for i, line in enumerate(config.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip().startswith(key):
            return i
    return None


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
            f"{target.key}: importing '{target.module}' failed: {_exception_text(e)}",
            hint="the module itself imports something that is not installed",
            at=target.module_at,
        ) from None
    except (Exception, SystemExit) as e:
        raise target.error(
            f"{target.key}: importing '{target.module}' failed: {_exception_text(e)}", at=target.module_at
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


# ---------------------------------------------------------------- the engine


class ImplEngine(Engine):
    name = IMPL_ENGINE
    description = "the user's implementation (impl:), differentiated by torch autograd or its impl_grad"

    def __init__(
        self, fn: Callable[..., Any], grad_fn: Callable[..., Any] | None = None, target: str = "impl"
    ) -> None:
        self.fn = fn
        self.grad_fn = grad_fn
        self.target = target

    def run(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        start = time.perf_counter()
        if self.grad_fn is None:
            result = self._run_torch(program, inputs, wrt, options)
        else:
            result = self._run_numpy(program, inputs, wrt)
        if options.order >= 2:
            result.notes.append("impl: second derivatives are not checked, first order only")
        result.seconds = time.perf_counter() - start
        return result

    # ------------------------------------------------------------ torch

    def _run_torch(
        self, program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str], options: EngineOptions
    ) -> EngineResult:
        import torch

        dtype = _torch_dtype(options.dtype)
        device = _torch_device(options.device)
        shape = program.output_type.shape
        kwargs: dict[str, Any] = {}
        leaves: dict[str, Any] = {}
        for name, decl in program.inputs.items():
            array = np.asarray(inputs[name])
            if decl.type.dtype is DType.FLOAT:
                t = torch.tensor(array.astype(np.float64), dtype=dtype, device=device)
                if name in wrt:
                    t.requires_grad_(True)
                    leaves[name] = t
            else:
                t = torch.tensor(array.astype(np.int64), device=device)
            kwargs[name] = t
        with torch.enable_grad():
            try:
                out = self.fn(**kwargs)
            except Exception as e:
                return self._failed(shape, f"{self.target} raised {_exception_text(e)}", options.dtype)
            if not isinstance(out, torch.Tensor):
                return self._failed(
                    shape,
                    f"{self.target} returned {type(out).__name__}, not a torch tensor "
                    "(a numpy implementation also names its gradient function: impl_grad)",
                    options.dtype,
                )
            if tuple(out.shape) != tuple(shape) or not out.is_floating_point():
                return self._failed(shape, _shape_problem(self.target, out, shape), options.dtype)
            value = _numpy(out)
            notes: list[str] = []
            found: dict[str, Any] = dict.fromkeys(leaves)
            if leaves and out.requires_grad:
                try:
                    grads = torch.autograd.grad(out, list(leaves.values()), allow_unused=True)
                except Exception as e:
                    return self._failed(
                        shape, f"{self.target}'s backward raised {_exception_text(e)}", options.dtype, value
                    )
                found = dict(zip(leaves, grads, strict=True))
            elif leaves:
                notes.append(
                    f"{self.target}'s output is not connected to its inputs through torch autograd "
                    "(no grad_fn: a .detach(), .numpy() or torch.no_grad() on the way?); its gradients "
                    "are taken as 0"
                )
        result_grads: dict[str, np.ndarray] = {}
        for name in wrt:
            g = found.get(name)
            if g is None:
                if out.requires_grad and name in leaves:
                    notes.append(f"{self.target}'s output does not depend on {name}; its gradient is 0")
                result_grads[name] = np.zeros(np.shape(inputs[name]), dtype=np.float64)
            else:
                result_grads[name] = _numpy(g)
        return EngineResult(self.name, value, result_grads, notes=notes, dtype=options.dtype)

    # ------------------------------------------------------------ numpy

    def _run_numpy(
        self, program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str]
    ) -> EngineResult:
        assert self.grad_fn is not None
        shape = program.output_type.shape

        def arrays() -> dict[str, np.ndarray]:
            # Fresh copies for each call: an implementation may write into its arguments.
            return {
                name: np.array(inputs[name], dtype=np.float64 if decl.type.dtype is DType.FLOAT else np.int64)
                for name, decl in program.inputs.items()
            }

        try:
            raw = self.fn(**arrays())
        except Exception as e:
            return self._failed(shape, f"{self.target} raised {_exception_text(e)}")
        try:
            value = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            return self._failed(
                shape, f"{self.target} returned {type(raw).__name__}, not an array of numbers"
            )
        if value.shape != tuple(shape):
            return self._failed(shape, _shape_problem(self.target, value, shape))
        try:
            grads = self.grad_fn(**arrays())
        except Exception as e:
            return self._failed(shape, f"impl_grad raised {_exception_text(e)}", value=value)
        if not isinstance(grads, Mapping):
            return self._failed(
                shape,
                f"impl_grad returned {type(grads).__name__}, not a dict {{input name: gradient array}}",
                value=value,
            )
        result_grads: dict[str, np.ndarray] = {}
        for name in wrt:
            if name not in grads:
                gave = ", ".join(map(str, grads)) or "nothing"
                return self._failed(
                    shape, f"impl_grad returned no gradient for '{name}' (it gave {gave})", value=value
                )
            try:
                result_grads[name] = np.array(grads[name], dtype=np.float64)
            except (TypeError, ValueError, RuntimeError):
                return self._failed(
                    shape,
                    f"impl_grad's gradient for '{name}' is {type(grads[name]).__name__}, "
                    "not an array of numbers",
                    value=value,
                )
        return EngineResult(self.name, value, result_grads)

    def _failed(
        self, shape: tuple[int, ...], message: str, dtype: str = "float64", value: np.ndarray | None = None
    ) -> EngineResult:
        """The implementation misbehaved: a failure of the case, not of symcheck."""
        if value is None:
            value = np.full(shape, np.nan)
        return EngineResult(self.name, value, {}, failures=[message], dtype=dtype)


def _shape_problem(target: str, out: Any, shape: tuple[int, ...]) -> str:
    got = list(out.shape)
    kind = "" if getattr(out, "is_floating_point", lambda: True)() else " of integers"
    return (
        f"{target} returned shape {got}{kind}; expr's output has shape {list(shape)}: the implementation "
        "computes the whole expr, reductions included"
    )


def _exception_text(e: BaseException) -> str:
    """`Type: message (at file:line in function)`, at the innermost frame of the user's code."""
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, SyntaxError) and e.filename:
        return f"{text} (at {e.filename}:{e.lineno})"
    frames = traceback.extract_tb(e.__traceback__)
    user = [f for f in frames if not _library_frame(f.filename)]
    if user:
        f = user[-1]
        text += f" (at {f.filename}:{f.lineno} in {f.name})"
    return text


def _library_frame(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>
        return True
    path = Path(filename).resolve()
    for name in _NOT_USER_CODE:
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if where and path.is_relative_to(Path(where).resolve().parent):
            return True
    return False


def _torch_dtype(name: str) -> Any:
    import torch

    dtypes = {
        "float64": torch.float64,
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }
    if name not in dtypes:
        raise EngineUnavailable(f"impl: unsupported dtype {name!r} (choose one of {', '.join(dtypes)})")
    return dtypes[name]


def _torch_device(name: str) -> Any:
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EngineUnavailable(f"CUDA is not available, so device {name!r} cannot be used; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise EngineUnavailable(f"impl: unsupported device {name!r}: {e}") from None


def _numpy(t: Any) -> np.ndarray:
    import torch

    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


__all__ = ["IMPL_ENGINE", "ImplEngine", "ImportPermission", "impl_engine", "import_permission", "with_impl"]
