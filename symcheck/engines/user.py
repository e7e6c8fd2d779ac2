"""The user's own implementation as one more engine: a case's `impl:` (and `impl_grad:`).

`impl: "package.module:function"` names a callable that computes the case's `expr`: it takes the
case's inputs as keyword arguments and returns the output. With torch (no `impl_grad`), float inputs
arrive as tensors in the case's dtype (float64 by default), those differentiated with
`requires_grad`, int inputs as int64 tensors; it returns a tensor, and torch autograd, through
whatever custom `backward` the implementation defines, gives the gradient. With `impl_grad`, both
callables take numpy arrays (float64, int64): `impl` returns the value, `impl_grad` a dict
{input name: gradient array}. Either way the result is one more engine, "impl", compared against the
reference like the built-in engines.

How a case's `impl:` is allowed and imported is the suites' business (symcheck/suites/imports.py);
this module runs what was loaded. `FunctionEngine` is the same for `assert_gradients`' fn (column
"fn"), with second derivatives by double backward. What the implementation does wrong when it runs
(an exception, a wrong shape, a missing gradient) is a failure in its column (exit 1).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symcheck.engines.base import (
    Engine,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    second_order_directions,
    tensor_derivatives,
    wants_full_hessian,
)
from symcheck.language.ir import DType, Program

IMPL_ENGINE = "impl"
FN_ENGINE = "fn"
# Frames inside these packages are not where the user's bug is.
_NOT_USER_CODE = ("torch", "symcheck", "numpy")

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
        if self.grad_fn is None and options.device.startswith("cuda") and not result.failures:
            from symcheck.engines.torch_autograd import (  # lazily: torch
                resolve_device,
                resolve_dtype,
                tf32_note,
            )

            note = tf32_note(resolve_device(options.device), resolve_dtype(options.dtype))
            if note:
                result.notes.append(note)
        result.seconds = time.perf_counter() - start
        return result

    # ------------------------------------------------------------ torch

    def _run_torch(
        self, program: Program, inputs: Mapping[str, np.ndarray], wrt: Sequence[str], options: EngineOptions
    ) -> EngineResult:
        import torch  # lazily, here and below: an impl_grad (numpy) implementation needs no torch

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
                return self._failed(shape, f"{self.target} raised {exception_text(e)}", options.dtype)
            out, problem = pick_output(out, program, self.target)
            if problem is not None:
                return self._failed(shape, problem, options.dtype)
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
            if out.ndim:
                return self._tensor_output(out, leaves, options, value)
            notes: list[str] = []
            found: dict[str, Any] = dict.fromkeys(leaves)
            if leaves and out.requires_grad:
                try:
                    grads = torch.autograd.grad(out, list(leaves.values()), allow_unused=True)
                except Exception as e:
                    return self._failed(
                        shape, f"{self.target}'s backward raised {exception_text(e)}", options.dtype, value
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

    def _tensor_output(
        self, out: Any, leaves: Mapping[str, Any], options: EngineOptions, value: np.ndarray
    ) -> EngineResult:
        """A tensor output: the implementation's backward applied to cotangents (J^T u), unit ones
        for the full Jacobian, else the shared random ones: never to a plain sum's all-ones."""
        import torch

        shapes = {n: tuple(t.shape) for n, t in leaves.items()}
        notes = ["its backward is checked through vector-Jacobian products (J^T u)"]
        if leaves and not out.requires_grad:
            notes.append(
                f"{self.target}'s output is not connected to its inputs through torch autograd "
                "(no grad_fn: a .detach(), .numpy() or torch.no_grad() on the way?); its gradients "
                "are taken as 0"
            )

        def vjp(u: np.ndarray) -> dict[str, np.ndarray]:
            if not leaves or not out.requires_grad:
                return {n: np.zeros(s) for n, s in shapes.items()}
            cotangent = torch.as_tensor(np.asarray(u)).to(out)
            found = torch.autograd.grad(
                out, list(leaves.values()), grad_outputs=cotangent, retain_graph=True, allow_unused=True
            )
            return {
                n: np.zeros(shapes[n]) if g is None else _numpy(g) for n, g in zip(leaves, found, strict=True)
            }

        try:
            found = tensor_derivatives(tuple(out.shape), shapes, options, vjp, None)
        except Exception as e:
            message = f"{self.target}'s backward raised {exception_text(e)}"
            return self._failed(tuple(out.shape), message, options.dtype, value)
        return EngineResult(
            self.name, value, {}, jacobians=found.jacobians, vjps=found.vjps, notes=notes, dtype=options.dtype
        )

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
            return self._failed(shape, f"{self.target} raised {exception_text(e)}")
        if program.output_of is not None:
            return self._failed(
                shape, "impl_grad checks a single output; for several, write the implementation in torch"
            )
        try:
            value = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            return self._failed(
                shape, f"{self.target} returned {type(raw).__name__}, not an array of numbers"
            )
        if value.shape != tuple(shape):
            return self._failed(shape, _shape_problem(self.target, value, shape))
        if value.ndim:
            return self._failed(
                shape,
                f"impl_grad gives gradients, and a gradient needs a scalar output; this one has shape "
                f"{list(shape)}. Write {self.target} in torch (impl: without impl_grad), so that its "
                "backward is checked through vector-Jacobian products",
                value=value,
            )
        try:
            grads = self.grad_fn(**arrays())
        except Exception as e:
            return self._failed(shape, f"impl_grad raised {exception_text(e)}", value=value)
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


def pick_output(out: Any, program: Program, target: str) -> tuple[Any, str | None]:
    """The output a (part of a) case checks: the whole result, or for a case with several outputs
    (program.output_of = (index, count)) element `index` of the tuple the code returned."""
    several = isinstance(out, (tuple, list))
    if program.output_of is None:
        if several:
            return None, (
                f"{target} returned a {type(out).__name__} of {len(out)}; the expression has one output "
                "(name several with `outputs: [h, c]`)"
            )
        return out, None
    index, count = program.output_of
    if not several:
        if count == 1:
            return out, None
        return None, f"{target} returned {type(out).__name__}, not a tuple of the case's {count} outputs"
    if len(out) != count:
        return None, f"{target} returned {len(out)} outputs; the case names {count}"
    return out[index], None


def _shape_problem(target: str, out: Any, shape: tuple[int, ...]) -> str:
    got = list(out.shape)
    kind = "" if getattr(out, "is_floating_point", lambda: True)() else " of integers"
    return (
        f"{target} returned shape {got}{kind}; expr's output has shape {list(shape)}: the implementation "
        "computes the whole expr, reductions included"
    )


def exception_text(e: BaseException) -> str:
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


# ---------------------------------------------------------------- assert_gradients' function


class FunctionEngine(ImplEngine):
    """A torch function as an engine: tensors named like the program's inputs in, a tensor out.

    First order is a case's `impl:` engine (ImplEngine) under another name: its value and
    torch-autograd gradient, through whatever backward the function defines; what the function
    does wrong when it runs is a failure in its column. Order 2 differentiates that gradient once
    more (double backward) into Hessian blocks or Hessian-vector products.
    """

    name = FN_ENGINE
    description = "the function under test, differentiated by torch.autograd"

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__(self._call, None, FN_ENGINE)
        self.user_fn = fn

    def _call(self, **args: Any) -> Any:
        return self.user_fn(**args)

    def run(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
    ) -> EngineResult:
        result = super().run(program, inputs, wrt, options)
        if options.order >= 2:
            result.notes = [n for n in result.notes if "second derivatives are not checked" not in n]
            if not result.failures:
                try:
                    self._second_order(program, inputs, wrt, options, result)
                except Exception as e:
                    result.failures.append(f"fn's double backward raised {type(e).__name__}: {e}")
        return result

    def _second_order(
        self,
        program: Program,
        inputs: Mapping[str, np.ndarray],
        wrt: Sequence[str],
        options: EngineOptions,
        result: EngineResult,
    ) -> None:
        import torch

        # Lazily: a numpy-only impl never needs torch.
        from symcheck.engines.torch_autograd import (
            hessian_blocks,
            hessian_vector_products,
            resolve_device,
            resolve_dtype,
        )

        dtype, device = resolve_dtype(options.dtype), resolve_device(options.device)
        args: dict[str, torch.Tensor] = {}
        leaves: dict[str, torch.Tensor] = {}
        for name, decl in program.inputs.items():
            array = np.asarray(inputs[name])
            if decl.type.dtype is DType.FLOAT:
                t = torch.as_tensor(array.astype(np.float64)).to(device=device, dtype=dtype)
                if name in wrt:
                    leaves[name] = t.requires_grad_(True)
            else:
                t = torch.as_tensor(array.astype(np.int64)).to(device=device)
            args[name] = t
        with torch.enable_grad():
            out, problem = pick_output(self._call(**args), program, self.target)
            if problem is not None:
                raise ValueError(problem)
            found: Sequence[torch.Tensor | None] = (None,) * len(leaves)
            if leaves and out.requires_grad:
                found = torch.autograd.grad(out, list(leaves.values()), allow_unused=True, create_graph=True)
            firsts = dict(zip(leaves, found, strict=True))
            names = [n for n in dict.fromkeys(wrt) if n in leaves]
            shapes = {n: tuple(leaves[n].shape) for n in names}
            if wants_full_hessian(shapes, options):
                # fn is differentiated by torch: the same double backward as the torch engine's.
                result.hessian = hessian_blocks({n: firsts[n] for n in names}, leaves)
            else:
                directions = second_order_directions(shapes, options)
                result.hvps = hessian_vector_products({n: firsts[n] for n in names}, leaves, directions)
