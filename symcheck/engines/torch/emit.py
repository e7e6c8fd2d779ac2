"""`symcheck backward EXPR --emit torch`: a program and its closed-form gradients as the Python source
of a `torch.autograd.Function`, as tensorgrad's `to_pytorch` does.

The forward is the program's steps translated op by op; the backward is each closed form the
symbolic engine printed in the language, parsed and bound again, then translated by the same table.
Where the table has no entry for an op, emitting stops with a SymcheckError: a wrong backward would
be worse than none. The closed form is read through its printed text (not the symbolic engine's
objects), so this engine imports no other (tests/test_architecture.py).
"""

from __future__ import annotations

import keyword
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from symcheck.engines.torch.rules import KEEPS_DTYPE, LABEL_ARGS
from symcheck.language.catalogue import slice_text
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref, Shape, TensorType
from symcheck.language.parser import bind, parse

# Python's operator precedence, lowest first, as far as emitted expressions use it.
COMPARE, ADD, MUL, UNARY, POW, ATOM = range(1, 7)

PI, E = "3.141592653589793", "2.718281828459045"  # float64's math.pi and math.e: no import for two numbers


class DerivedGradients(Protocol):
    """What the emitter reads of the symbolic engine's `ClosedForm`: its printed gradients and, for
    a tensor output, the name of the cotangent its vector-Jacobian products are taken at."""

    @property
    def printed(self) -> Mapping[str, str]: ...

    @property
    def cotangent(self) -> str | None: ...


@dataclass(frozen=True)
class Code:
    """An emitted expression: its text, its precedence, and whether it is a Python number (a
    literal, which torch ops that want a tensor cannot take)."""

    text: str
    prec: int = ATOM
    number: bool = False

    def at(self, least: int) -> str:
        """The text as an operand that binds at least this tightly."""
        return self.text if self.prec >= least else f"({self.text})"


def _fraction(value: Fraction) -> Code:
    prec = UNARY if value < 0 else ATOM
    if value.denominator == 1 and abs(value) < 2**53:  # beyond, torch would read a Python int as int64
        return Code(str(value.numerator), prec, number=True)
    if value.denominator == 1 or len(str(value)) > 24:  # 10^-30 as 31 digits says less than 1e-30
        try:
            return Code(repr(float(value)), prec, number=True)
        except OverflowError:  # float64 arithmetic, the torch engine's, overflows to inf too
            return Code(f'float("{"-" if value < 0 else ""}inf")', prec, number=True)
    # (3 / 2), not 3/2: Python evaluates it in float, and it stays one operand wherever it stands.
    return Code(f"({value.numerator} / {value.denominator})", number=True)


def _value(value: object) -> str:
    """A keyword argument's value as Python source."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f'float("{value}")'
    if isinstance(value, Fraction):
        return _fraction(value).text
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return _dims(value)
    return str(value)


def _dims(values: Sequence[object]) -> str:
    """A tuple as Python writes it: (3,), (2, 8), ()."""
    if len(values) == 1:
        return f"({values[0]},)"
    return "(" + ", ".join(str(v) for v in values) + ")"


def _dim(axes: Sequence[int]) -> str:
    """torch's dim=: one axis as an int, several as a tuple."""
    return str(axes[0]) if len(axes) == 1 else _dims(axes)


def _fold(node: Node) -> Fraction | None:
    """The exact value of a subexpression of literals (1/50, -(3/2), 2^3), or None."""
    if isinstance(node, Const):
        return node.value
    if not isinstance(node, Call) or node.op not in ("add", "sub", "mul", "div", "neg", "pow"):
        return None
    args = [_fold(a) for a in node.args]
    if any(a is None for a in args):
        return None
    values: list[Fraction] = [a for a in args if a is not None]
    if node.op == "neg":
        return -values[0]
    a, b = values
    if node.op == "add":
        return a + b
    if node.op == "sub":
        return a - b
    if node.op == "mul":
        return a * b
    if node.op == "div":
        return a / b if b != 0 else None
    if b.denominator == 1 and abs(b) <= 64 and (a != 0 or b >= 0):  # pow: exact only for an integer power
        return a ** int(b)
    return None


Emit = Callable[["Translator", Call], Code]


@dataclass
class Translator:
    """IR nodes to torch source. `names`: binding id (or, in a closed form, name) -> Python variable.
    `known`: a node whose value some variable already holds (a step, a shared subexpression)."""

    names: Mapping[str, str]
    known: Callable[[Call], str | None] = lambda call: None
    uses: set[str] = field(default_factory=set)  # "dtype", "device", "F": what the lines need defined

    def node(self, node: Node) -> Code:
        if isinstance(node, Const):
            return _fraction(node.value)
        if isinstance(node, Ref):
            return Code(self.names[node.target])
        assert isinstance(node, Call), f"unexpected IR node {type(node).__name__}"
        held = self.known(node)
        return Code(held) if held is not None else self.call(node)

    def call(self, call: Call) -> Code:
        folded = _fold(call)
        if folded is not None:
            return _fraction(folded)
        emit = TABLE.get(call.op)
        if emit is None:
            raise SymcheckError(
                f"--emit torch does not translate {call.op} yet",
                hint="check the gradient with `symcheck check` instead; the emitter refuses an op it "
                "has no torch translation for rather than write a wrong backward",
            )
        return emit(self, call)

    def arg(self, call: Call, i: int) -> Code:
        """Argument i, cast to the float dtype where the torch engine casts it (an int or bool
        tensor reaching an op that computes on it)."""
        node = call.args[i]
        code = self.node(node)
        assert node.type is not None
        if (
            node.type.dtype is not DType.FLOAT
            and not code.number
            and call.op not in KEEPS_DTYPE
            and i not in LABEL_ARGS.get(call.op, frozenset())
        ):
            self.uses.add("dtype")
            return Code(f"{code.at(ATOM)}.to(dtype)")
        return code

    def tensor(self, call: Call, i: int) -> str:
        """Argument i as a tensor: a literal becomes one, in the inputs' dtype and on their device."""
        return self.as_tensor(self.arg(call, i))

    def tensor_code(self, call: Call, i: int) -> Code:
        """Argument i as a tensor, keeping its precedence (for x.T, x[1:3], x.unsqueeze(0))."""
        code = self.arg(call, i)
        return Code(self.as_tensor(code)) if code.number else code

    def as_tensor(self, code: Code) -> str:
        if not code.number:
            return code.text
        self.uses.update(("dtype", "device"))
        return f"torch.tensor({code.text}, dtype=dtype, device=device)"

    def tensors(self, call: Call) -> list[str]:
        return [self.tensor(call, i) for i in range(len(call.args))]

    def functional(self, name: str) -> str:
        self.uses.add("F")
        return f"F.{name}"

    def zeros(self, shape: Shape) -> str:
        self.uses.update(("dtype", "device"))
        return f"torch.zeros({_dims(shape)}, dtype=dtype, device=device)"


# ---------------------------------------------------------------- the table: op -> torch source


def _infix(symbol: str, prec: int) -> Emit:
    """a + b, a @ b, ...: left-associative, so the right operand binds tighter."""

    def emit(t: Translator, call: Call) -> Code:
        a, b = t.arg(call, 0), t.arg(call, 1)
        if a.number and b.number:  # 1 / 0, pi * 2 ...: computed by torch, not by Python
            a = Code(t.as_tensor(a))
        return Code(f"{a.at(prec)} {symbol} {b.at(prec + 1)}", prec)

    return emit


def _compare(symbol: str) -> Emit:
    """A comparison, a bool tensor (the torch engine's too); Python would chain a < b < c, so each
    operand is parenthesised unless it binds tighter."""

    def emit(t: Translator, call: Call) -> Code:
        a, b = t.arg(call, 0), t.arg(call, 1)
        if a.number and b.number:
            a = Code(t.as_tensor(a))
        return Code(f"{a.at(COMPARE + 1)} {symbol} {b.at(COMPARE + 1)}", COMPARE)

    return emit


def _pow(t: Translator, call: Call) -> Code:
    base, exponent = t.arg(call, 0), t.arg(call, 1)
    if base.number and exponent.number:
        base = Code(t.as_tensor(base))
    return Code(f"{base.at(ATOM)} ** {exponent.at(UNARY)}", POW)


def _neg(t: Translator, call: Call) -> Code:
    return Code(f"-{t.arg(call, 0).at(ATOM)}", UNARY)


def _function(name: str, keywords: Callable[[Call], str] | None = None) -> Emit:
    """name(tensors..., keywords): `torch.exp`, or `F.softplus` (torch.nn.functional)."""

    def emit(t: Translator, call: Call) -> Code:
        fn = t.functional(name[2:]) if name.startswith("F.") else name
        parts = t.tensors(call)
        if keywords is not None and keywords(call):
            parts.append(keywords(call))
        return Code(f"{fn}({', '.join(parts)})")

    return emit


def _reduction(name: str, always_dim: bool = False) -> Emit:
    """torch.sum and the like with numpy's axes: None is every axis, () none (the value itself)."""

    def emit(t: Translator, call: Call) -> Code:
        x = t.arg(call, 0)
        ndim = call.args[0].type.ndim if call.args[0].type is not None else 0
        axes: tuple[int, ...] | None = call.kw("axis")
        keep = bool(call.kw("keepdims"))
        every = tuple(range(ndim)) if axes is None else axes
        if not every:
            return x  # torch reads dim=() as every axis; numpy (our semantics) as no axis
        text = t.as_tensor(x)
        if axes is None and not keep and not always_dim:
            return Code(f"{name}({text})")
        return Code(f"{name}({text}, dim={_dim(every)}{', keepdim=True' if keep else ''})")

    return emit


def _spread(name: str) -> Emit:
    """torch.var / torch.std with numpy's axes and the correction as given."""

    def emit(t: Translator, call: Call) -> Code:
        x = t.arg(call, 0)
        ndim = call.args[0].type.ndim if call.args[0].type is not None else 0
        axes = call.kw("axis")
        every = tuple(range(ndim)) if axes is None else axes
        if not every:  # one element per group: no spread
            return Code(f"{x.at(ADD + 1)} - {x.at(ADD + 1)}", ADD)
        keep = ", keepdim=True" if call.kw("keepdims") else ""
        correction = _value(call.kw("correction"))
        return Code(f"{name}({t.as_tensor(x)}, dim={_dim(every)}, correction={correction}{keep})")

    return emit


def _prod(t: Translator, call: Call) -> Code:
    x, axes, keep = t.tensor(call, 0), call.kw("axis"), bool(call.kw("keepdims"))
    if axes is None:
        ndim = call.args[0].type.ndim if call.args[0].type is not None else 0
        return Code(f"torch.prod({x}).reshape({_dims((1,) * ndim)})" if keep else f"torch.prod({x})")
    return Code(f"torch.prod({x}, dim={axes[0]}{', keepdim=True' if keep else ''})")


def _norm(t: Translator, call: Call) -> Code:
    order = {"1": "1", "2": "2", "fro": "2", "inf": 'float("inf")'}[call.kw("p")]
    axes = call.kw("axis")
    parts = [t.tensor(call, 0), f"ord={order}"]
    if axes is not None:
        parts.append(f"dim={_dim(axes)}")
    if call.kw("keepdims"):
        parts.append("keepdim=True")
    return Code(f"torch.linalg.vector_norm({', '.join(parts)})")


def _transpose(t: Translator, call: Call) -> Code:
    x, axes = t.tensor_code(call, 0), tuple(call.kw("axes"))
    if axes == tuple(range(len(axes))):
        return x
    if axes == (1, 0):
        return Code(f"{x.at(ATOM)}.T")
    return Code(f"torch.permute({x.text}, {_dims(axes)})")


def _squeeze(t: Translator, call: Call) -> Code:
    axes = call.kw("axis")
    x = t.tensor(call, 0)
    return Code(f"torch.squeeze({x})" if axes is None else f"torch.squeeze({x}, dim={_dims(axes)})")


def _flip(t: Translator, call: Call) -> Code:
    axes = call.kw("axis")
    ndim = call.args[0].type.ndim if call.args[0].type is not None else 0
    return Code(
        f"torch.flip({t.tensor(call, 0)}, dims={_dims(tuple(range(ndim)) if axes is None else axes)})"
    )


def _slice(t: Translator, call: Call) -> Code:
    x = t.tensor_code(call, 0)
    shape = call.args[0].shape
    texts = [slice_text(item, n) for item, n in zip(call.kw("items"), shape, strict=True)]
    while texts and texts[-1] == ":":  # trailing whole axes go without saying
        texts.pop()
    return Code(f"{x.at(ATOM)}[{', '.join(texts)}]") if texts else x


def _unslice(t: Translator, call: Call) -> Code:
    """The adjoint of slicing: the slice put back into zeros, one axis at a time (slice_scatter)."""
    g = t.tensor(call, 0)
    size = list(call.args[0].shape)
    for axis, (n, start, step) in enumerate(
        zip(call.kw("shape"), call.kw("start"), call.kw("step"), strict=True)
    ):
        if n == size[axis] and start == 0 and step == 1:
            continue  # this axis was not sliced
        end = start + (size[axis] - 1) * step + 1
        size[axis] = n
        g = (
            f"torch.slice_scatter({t.zeros(tuple(size))}, {g}, dim={axis}, start={start}, end={end}, "
            f"step={step})"
        )
    return Code(g)


def _undiagonal(t: Translator, call: Call) -> Code:
    zeros = t.zeros(tuple(call.kw("shape")))
    return Code(
        f"torch.diagonal_scatter({zeros}, {t.tensor(call, 0)}, offset={call.kw('offset')}, dim1=0, dim2=1)"
    )


def _joined(name: str) -> Emit:
    def emit(t: Translator, call: Call) -> Code:
        return Code(f"{name}([{', '.join(t.tensors(call))}], dim={call.kw('axis')})")

    return emit


def _where(t: Translator, call: Call) -> Code:
    condition = t.tensor_code(call, 0)
    assert call.args[0].type is not None
    cond = condition.text if call.args[0].type.dtype is DType.BOOL else f"{condition.at(COMPARE + 1)} != 0"
    a, b = t.arg(call, 1), t.arg(call, 2)
    if a.number and b.number:  # torch.where(c, 1, 0) would be an int64 tensor
        a = Code(t.as_tensor(a))
    return Code(f"torch.where({cond}, {a.text}, {b.text})")


def _clamp(t: Translator, call: Call) -> Code:
    bounds = [f"{k}={_value(call.kw(k))}" for k in ("min", "max") if call.kw(k) is not None]
    x = t.arg(call, 0)
    return Code(f"torch.clamp({t.as_tensor(x)}, {', '.join(bounds)})") if bounds else x


def _onehot(t: Translator, call: Call) -> Code:
    labels, classes = t.tensor(call, 0), call.kw("num_classes")
    t.uses.add("dtype")
    ignored = call.kwdict.get("ignore_index")
    if ignored is None:
        return Code(f"{t.functional('one_hot')}({labels}, {classes}).to(dtype)")
    kept = f"({t.tensor_code(call, 0).at(COMPARE + 1)} != {ignored})"
    hot = f"{t.functional('one_hot')}(torch.where({kept}, {labels}, 0), {classes}).to(dtype)"
    return Code(f"{hot} * {kept}.unsqueeze(-1)", MUL)


def _classification(name: str) -> Emit:
    """F.nll_loss / F.cross_entropy; a single example (C,) with label () as torch's (1, C) and (1,)."""

    def emit(t: Translator, call: Call) -> Code:
        fn = t.functional(name)
        scores, labels = t.tensor_code(call, 0), t.tensor_code(call, 1)
        single = call.args[0].type is not None and call.args[0].type.ndim == 1
        parts = [f"{scores.at(ATOM)}.unsqueeze(0)" if single else scores.text]
        parts.append(f"{labels.at(ATOM)}.reshape(1)" if single else labels.text)
        kw = call.kwdict
        if kw.get("weight"):
            parts.append(f"weight={t.tensor(call, 2)}")
        if kw.get("ignore_index") is not None:
            parts.append(f"ignore_index={kw['ignore_index']}")
        if kw.get("label_smoothing"):
            parts.append(f"label_smoothing={_value(kw['label_smoothing'])}")
        parts.append(f'reduction="{kw["reduction"]}"')
        text = f"{fn}({', '.join(parts)})"
        return Code(f"{text}.reshape(())" if single else text)

    return emit


def _pad(t: Translator, call: Call) -> Code:
    widths, value = _dims(call.kw("widths")), _value(call.kw("value"))
    return Code(f"{t.functional('pad')}({t.tensor(call, 0)}, {widths}, value={value})")


def _mse_loss(t: Translator, call: Call) -> Code:
    # F.mse_loss wants equal shapes (it warns otherwise); ours broadcast like numpy.
    a, b = t.tensors(call)
    return Code(
        f'{t.functional("mse_loss")}(*torch.broadcast_tensors({a}, {b}), reduction="{call.kw("reduction")}")'
    )


def _eye(t: Translator, call: Call) -> Code:
    t.uses.update(("dtype", "device"))
    return Code(f"torch.eye({call.kw('n')}, dtype=dtype, device=device)")


def _step(t: Translator, call: Call) -> Code:
    t.uses.add("dtype")
    return Code(f"({t.tensor_code(call, 0).at(COMPARE + 1)} > 0).to(dtype)")


def _cholesky(t: Translator, call: Call) -> Code:
    a = t.tensor_code(call, 0)
    return Code(f"torch.linalg.cholesky(({a.at(ADD)} + {a.at(ATOM)}.mT) / 2)")


def _kw(
    *names: str, rename: Mapping[str, str] | None = None, skip: Mapping[str, object] | None = None
) -> Callable[[Call], str]:
    """Keyword arguments copied from the call (renamed to torch's, left out at torch's default)."""

    def keywords(call: Call) -> str:
        parts = []
        for name in names:
            value = call.kw(name)
            if skip is not None and name in skip and value == skip[name]:
                continue
            parts.append(f"{(rename or {}).get(name, name)}={_value(value)}")
        return ", ".join(parts)

    return keywords


UNARY_TORCH = (
    "exp log log1p sqrt sin cos tan tanh sinh cosh atan asin acos expm1 erf sigmoid relu abs sign "
    "floor ceil round"
)

TABLE: dict[str, Emit] = {
    "add": _infix("+", ADD),
    "sub": _infix("-", ADD),
    "mul": _infix("*", MUL),
    "div": _infix("/", MUL),
    "matmul": _infix("@", MUL),
    "pow": _pow,
    "neg": _neg,
    **{op: _function(f"torch.{op}") for op in UNARY_TORCH.split()},
    "atan2": _function("torch.atan2"),
    "softplus": _function("F.softplus"),
    "silu": _function("F.silu"),
    "logsigmoid": _function("F.logsigmoid"),
    "gelu": _function("F.gelu", _kw("approximate", skip={"approximate": "none"})),
    "leaky_relu": _function("F.leaky_relu", _kw("slope", rename={"slope": "negative_slope"})),
    "elu": _function("F.elu", _kw("alpha")),
    "hardtanh": _function("F.hardtanh", _kw("min", "max", rename={"min": "min_val", "max": "max_val"})),
    "detach": lambda t, call: Code(f"{t.tensor_code(call, 0).at(ATOM)}.detach()"),
    "step": _step,
    "pi": lambda t, call: Code(PI, number=True),
    "e": lambda t, call: Code(E, number=True),
    "sum": _reduction("torch.sum"),
    "mean": _reduction("torch.mean"),
    "max": _reduction("torch.amax"),
    "min": _reduction("torch.amin"),
    "logsumexp": _reduction("torch.logsumexp", always_dim=True),
    "var": _spread("torch.var"),
    "std": _spread("torch.std"),
    "prod": _prod,
    "norm": _norm,
    "cumsum": _function("torch.cumsum", _kw("axis", rename={"axis": "dim"})),
    "cumprod": _function("torch.cumprod", _kw("axis", rename={"axis": "dim"})),
    "transpose": _transpose,
    "expand_dims": lambda t, call: Code(f"torch.unsqueeze({t.tensor(call, 0)}, {call.kw('axis')})"),
    "reshape": lambda t, call: Code(f"torch.reshape({t.tensor(call, 0)}, {_dims(call.kw('shape'))})"),
    "broadcast_to": lambda t, call: Code(
        f"torch.broadcast_to({t.tensor(call, 0)}, {_dims(call.kw('shape'))})"
    ),
    "flatten": _function("torch.flatten", _kw("start_dim", "end_dim")),
    "squeeze": _squeeze,
    "flip": _flip,
    "tril": _function("torch.tril", _kw("k", rename={"k": "diagonal"}, skip={"k": 0})),
    "triu": _function("torch.triu", _kw("k", rename={"k": "diagonal"}, skip={"k": 0})),
    "diagonal": lambda t, call: Code(
        f"torch.diagonal({t.tensor(call, 0)}, offset={call.kw('offset')}, dim1=0, dim2=1)"
    ),
    "undiagonal": _undiagonal,
    "concat": _joined("torch.cat"),
    "stack": _joined("torch.stack"),
    "pad": _pad,
    "slice": _slice,
    "unslice": _unslice,
    "index": lambda t, call: Code(f"{t.tensor_code(call, 0).at(ATOM)}[{call.kw('at')}]"),
    "take": lambda t, call: Code(f"{t.tensor_code(call, 0).at(ATOM)}[{t.tensor(call, 1)}]"),
    "softmax": _function("torch.softmax", _kw("axis", rename={"axis": "dim"})),
    "log_softmax": _function("torch.log_softmax", _kw("axis", rename={"axis": "dim"})),
    "einsum": lambda t, call: Code(f'torch.einsum("{call.kw("subscripts")}", {", ".join(t.tensors(call))})'),
    "outer": _function("torch.outer"),
    "dot": _function("torch.dot"),
    "trace": _function("torch.trace"),
    "eye": _eye,
    "onehot": _onehot,
    "nll_loss": _classification("nll_loss"),
    "cross_entropy": _classification("cross_entropy"),
    "mse_loss": _mse_loss,
    "l1_loss": _function("F.l1_loss", _kw("reduction")),
    "smooth_l1_loss": _function("F.smooth_l1_loss", _kw("reduction", "beta")),
    "binary_cross_entropy": _function("F.binary_cross_entropy", _kw("reduction")),
    "binary_cross_entropy_with_logits": _function("F.binary_cross_entropy_with_logits", _kw("reduction")),
    "lt": _compare("<"),
    "le": _compare("<="),
    "gt": _compare(">"),
    "ge": _compare(">="),
    "eq": _compare("=="),
    "ne": _compare("!="),
    "where": _where,
    "maximum": _function("torch.maximum"),
    "minimum": _function("torch.minimum"),
    "clamp": _clamp,
    "gather": lambda t, call: Code(
        f"torch.gather({t.tensor(call, 0)}, {call.kw('axis')}, {t.tensor(call, 1)})"
    ),
    "scatter_add": lambda t, call: Code(
        f"torch.scatter_add({t.tensor(call, 0)}, {call.kw('axis')}, {t.tensor(call, 1)}, {t.tensor(call, 2)})"
    ),
    "index_select": lambda t, call: Code(
        f"torch.index_select({t.tensor(call, 0)}, {call.kw('axis')}, {t.tensor(call, 1)})"
    ),
    "embedding": lambda t, call: Code(
        f"{t.functional('embedding')}({t.tensor(call, 1)}, {t.tensor(call, 0)})"
    ),
    "det": _function("torch.linalg.det"),
    "inv": _function("torch.linalg.inv"),
    "logdet": _function("torch.logdet"),
    "solve": _function("torch.linalg.solve"),
    "cholesky": _cholesky,
}
# Not translated yet (emitting one raises): the windowed ops (conv1d, conv2d, unfold, fold, the
# pools), the normalisation layers, attention and kl_div.


# ---------------------------------------------------------------- the module

Key = tuple[object, ...]

# Ops cheap enough on a variable to write twice rather than name: views, no arithmetic.
CHEAP = frozenset(
    {"transpose", "expand_dims", "reshape", "squeeze", "flatten", "broadcast_to", "index", "slice"}
)
# Names the emitted code uses itself (float: float("inf")); an input called so is renamed.
RESERVED = frozenset({"torch", "F", "ctx", "grad_output", "dtype", "device", "float"})


class _Names:
    """Python variables, each unique: a user's name where it is free, else with a suffix."""

    def __init__(self, reserved: set[str]) -> None:
        self.taken = set(reserved)

    def take(self, wanted: str) -> str:
        name, n = wanted, 2
        while name in self.taken or keyword.iskeyword(name):
            name, n = f"{wanted}_{n}", n + 1
        self.taken.add(name)
        return name


def _snake(name: str) -> str:
    """MyLoss -> my_loss, MLPLoss -> mlp_loss."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text).lower()


def _broadcasts(shape: Shape, to: Shape) -> bool:
    if len(shape) > len(to):
        return False
    return all(a in (1, b) for a, b in zip(reversed(shape), reversed(to), strict=False))


class _Structure:
    """Structural keys of expressions, steps' references inlined: a closed form's `tanh(W @ x + b)`
    and the program's `tanh(y)` (with y = W @ x + b) are the same key."""

    def __init__(self, resolve: Callable[[Ref], Key]) -> None:
        self.resolve = resolve
        self.memo: dict[int, Key] = {}

    def key(self, node: Node) -> Key:
        found = self.memo.get(id(node))
        if found is not None:
            return found
        if isinstance(node, Const):
            key: Key = ("const", node.value)
        elif isinstance(node, Ref):
            key = self.resolve(node)
        else:
            assert isinstance(node, Call)
            key = (node.op, node.kwargs, *(self.key(a) for a in node.args))
        self.memo[id(node)] = key
        return key


def emit_function(program: Program, closed: DerivedGradients, class_name: str = "Backward") -> str:
    """Python source of a module defining `class <class_name>(torch.autograd.Function)`, whose
    forward computes the program and whose backward is its closed-form gradient, and a function
    `<snake_name>(<inputs>)` applying it. `closed` is the symbolic engine's `ClosedForm.derive(program,
    wrt)`; inputs outside its wrt (and integer inputs) get no gradient (None)."""
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise SymcheckError(f"{class_name!r} cannot name a Python class", hint="a name such as TanhLoss")
    function_name = _snake(class_name)
    if function_name == class_name or keyword.iskeyword(function_name):
        function_name += "_apply"
    names = _Names(set(RESERVED) | {class_name, function_name})
    var: dict[str, str] = {n: names.take(n) for n in program.inputs}  # binding id -> Python variable
    for s in program.steps:
        var[s.id] = names.take(s.id.replace("#", "_"))  # a rebound c#2 is c_2
    inputs = [var[n] for n in program.inputs]

    steps = Translator(var)  # the program's steps as written: the forward, and recomputed in backward
    step_lines = {s.id: f"{var[s.id]} = {steps.as_tensor(steps.node(s.expr))}" for s in program.steps}
    forward = [f"ctx.save_for_backward({', '.join(inputs)})"] if inputs else []
    forward += _dtype_lines(steps.uses, program, var)
    forward += [*step_lines.values(), f"return {var[program.output.id]}"]
    derived = _Backward(program, closed, var, names)
    backward = derived.lines(step_lines, steps.uses)

    lines = _header(program, closed)
    lines.append("import torch")
    if "F" in steps.uses | derived.uses:
        lines.append("import torch.nn.functional as F")
    lines += ["", "", f"class {class_name}(torch.autograd.Function):"]
    lines += ["    @staticmethod", f"    def forward(ctx{''.join(', ' + n for n in inputs)}):"]
    lines += [f"        {line}" for line in forward]
    lines += ["", "    @staticmethod", "    def backward(ctx, grad_output):"]
    lines += [f"        {line}" for line in backward]
    # Named parameters, so that a suite's `impl:` (which passes the inputs by name) can call it.
    lines += ["", "", f"def {function_name}({', '.join(inputs)}):"]
    lines.append(f'    """{class_name}.apply: the program, its backward the closed form."""')
    lines.append(f"    return {class_name}.apply({', '.join(inputs)})")
    return "\n".join(lines) + "\n"


def _dtype_lines(uses: set[str], program: Program, var: Mapping[str, str]) -> list[str]:
    """dtype and device of the first float input, which literals, eye and onehot follow."""
    wanted = [w for w in ("dtype", "device") if w in uses]
    if not wanted:
        return []
    floats = program.float_inputs()
    first = floats[0] if floats else next(iter(program.inputs), None)
    values = {
        "dtype": f"{var[first]}.dtype" if floats else "torch.get_default_dtype()",
        "device": f"{var[first]}.device" if first is not None else "None",
    }
    return [f"{', '.join(wanted)} = {', '.join(values[w] for w in wanted)}"]


def _header(program: Program, closed: DerivedGradients) -> list[str]:
    shapes = ", ".join(f"{n}: {d.type}" for n, d in program.inputs.items())
    wrt = [n for n, d in program.inputs.items() if n in closed.printed and d.type.dtype is DType.FLOAT]
    lines = ["# A torch.autograd.Function emitted by `symcheck backward --emit torch` from the program", "#"]
    lines += [f"#     {line.rstrip()}" for line in program.source.text.strip().splitlines()]
    lines += [
        "#",
        f"# at the shapes {shapes} (output {program.output_type}).",
        f"# Its backward is the closed-form gradient with respect to {', '.join(wrt) or 'no input'} that",
        "# symcheck's symbolic engine derived from the program, not a trace of the forward.",
        "",
    ]
    return lines


class _Backward:
    """The backward's lines: the steps its closed forms use, their shared subexpressions (named
    once), and one gradient per input."""

    def __init__(
        self, program: Program, closed: DerivedGradients, var: dict[str, str], names: _Names
    ) -> None:
        self.program = program
        self.var = var
        self.uses: set[str] = set()  # the Translator's, once `lines` has run
        self.tensor_output = bool(program.output_type.shape)
        cotangent = closed.cotangent if self.tensor_output else None
        if self.tensor_output and cotangent is None and closed.printed:
            raise SymcheckError(
                "a tensor output's closed forms are VJPs, at a cotangent whose name is missing"
            )
        self.cotangent = names.take(cotangent) if cotangent is not None else None
        self.last = {s.name: s.id for s in program.steps}  # a step's name in a formula: its last value

        def program_ref(ref: Ref) -> Key:
            if ref.target in program.inputs:
                return ("input", ref.target)
            return self.program_keys.key(program.step(ref.target).expr)

        def formula_ref(ref: Ref) -> Key:
            if ref.target in program.inputs:
                return ("input", ref.target)
            if ref.target == cotangent:
                return ("cotangent",)
            return self.program_keys.key(program.step(self.last[ref.target]).expr)

        self.program_keys = _Structure(program_ref)
        self.keys = _Structure(formula_ref)
        # A closed form's subexpression with the value of a step is that step's variable.
        self.step_of: dict[Key, str] = {}
        for s in program.steps:
            if isinstance(s.expr, Call) and _fold(s.expr) is None:
                self.step_of.setdefault(self.program_keys.key(s.expr), s.id)
        self.formula_names = {n: var[n] for n in program.inputs} | {n: var[i] for n, i in self.last.items()}
        if cotangent is not None and self.cotangent is not None:
            self.formula_names[cotangent] = self.cotangent
        self.printed: dict[str, str] = {}
        self.formulas: dict[str, Node] = {}
        for name, decl in program.inputs.items():
            if name in closed.printed and decl.type.dtype is DType.FLOAT:
                self.printed[name] = closed.printed[name]
                self.formulas[name] = self._formula(name, closed.printed[name], cotangent)
        self.grad_names = {n: names.take(f"grad_{var[n]}") for n in self.formulas}
        self._share(names)

    def _formula(self, name: str, text: str, cotangent: str | None) -> Node:
        """The printed closed form, parsed and bound over the inputs, the steps and the cotangent
        (as the symbolic engine's ClosedForm.lower_formula binds a formula)."""
        if text.startswith("(no closed form"):
            raise SymcheckError(f"the gradient with respect to {name} has no closed form to emit: {text}")
        types: dict[str, TensorType] = {n: d.type for n, d in self.program.inputs.items()}
        for s in self.program.steps:
            if s.name not in types and s.expr.type is not None and self.last[s.name] == s.id:
                types[s.name] = s.expr.type
        if cotangent is not None:
            types[cotangent] = TensorType(self.program.output_type.shape)
        try:
            parsed = parse(text)
            expr = bind(parsed, {n: types[n] for n in parsed.free_names() if n in types}).output.expr
        except SymcheckError as e:  # the printer wrote what the parser does not read back
            raise SymcheckError(
                f"the closed form of the gradient with respect to {name} does not read back: {e.message}",
                hint=f"it was printed as {text}",
            ) from e
        want = self.program.inputs[name].type.shape
        if not _broadcasts(expr.shape, want):
            raise SymcheckError(
                f"the closed form of the gradient with respect to {name} has shape {expr.shape}, "
                f"which does not broadcast to the input's {want}: {text}"
            )
        return expr

    def _share(self, names: _Names) -> None:
        """The subexpressions the closed forms use more than once, each named (t1, t2, ...); the
        gradients each serves; the steps to recompute from the saved inputs."""
        counts: Counter[Key] = Counter()
        order: list[Key] = []  # arguments before the calls that use them
        self.node_of: dict[Key, Call] = {}
        self.needed: set[str] = set()  # step ids

        def visit(node: Node) -> None:
            if isinstance(node, Ref):
                if node.target not in self.program.inputs and node.target in self.last:
                    self.needed.add(self.last[node.target])
                return
            if not isinstance(node, Call) or _fold(node) is not None or node.op in ("pi", "e"):
                return
            key = self.keys.key(node)
            if key in self.step_of:
                self.needed.add(self.step_of[key])
                return
            counts[key] += 1
            if counts[key] == 1:  # a repeat is the same value: its parts are counted once
                for a in node.args:
                    visit(a)
                order.append(key)
                self.node_of[key] = node

        for expr in self.formulas.values():
            visit(expr)
        named = [
            k
            for k in order
            if counts[k] > 1
            and not (
                self.node_of[k].op in CHEAP and all(isinstance(a, (Ref, Const)) for a in self.node_of[k].args)
            )
        ]
        self.temp = {k: names.take(f"t{i}") for i, k in enumerate(named, 1)}
        self.served: dict[Key, set[str]] = {k: set() for k in named}

        def reach(node: Node, grad: str) -> None:
            if not isinstance(node, Call):
                return
            key = self.keys.key(node)
            if key in self.step_of or grad in self.served.get(key, ()):
                return
            if key in self.served:
                self.served[key].add(grad)
            for a in node.args:
                reach(a, grad)

        for grad, expr in self.formulas.items():
            reach(expr, grad)
        for s in reversed(self.program.steps):  # the steps those steps use (earlier ones)
            if s.id in self.needed:
                for node in _walk(s.expr):
                    if isinstance(node, Ref) and node.target not in self.program.inputs:
                        self.needed.add(node.target)

    def _known(self, call: Call) -> str | None:
        key = self.keys.key(call)
        if key in self.step_of:
            return self.var[self.step_of[key]]
        return self.temp.get(key)

    def lines(self, step_lines: Mapping[str, str], step_uses: set[str]) -> list[str]:
        if not self.formulas:
            return [f"return {', '.join('None' for _ in self.program.inputs) or 'None'}"]
        t = Translator(self.formula_names, self._known, self.uses)
        inputs = [self.var[n] for n in self.program.inputs]
        body = [
            f"({inputs[0]},) = ctx.saved_tensors"
            if len(inputs) == 1
            else f"{', '.join(inputs)} = ctx.saved_tensors"
        ]
        if self.cotangent is not None:
            body.append(f"{self.cotangent} = grad_output  # the cotangent the closed forms are VJPs at")
        middle: list[str] = []
        recomputed = [step_lines[s.id] for s in self.program.steps if s.id in self.needed]
        if recomputed:
            middle += [
                "# the program's steps the closed forms use, recomputed from the saved inputs",
                *recomputed,
            ]
        shared = [k for k in self.temp if len(self.served[k]) > 1]
        if shared:
            middle.append("# shared by the gradients")
            middle += [f"{self.temp[k]} = {t.call(self.node_of[k]).text}" for k in shared]
        blocks: list[str] = []
        positions = {n: i for i, n in enumerate(self.program.inputs)}
        for name, expr in self.formulas.items():
            blocks.append(f"if ctx.needs_input_grad[{positions[name]}]:")
            blocks += [
                f"    {self.temp[k]} = {t.call(self.node_of[k]).text}"
                for k in self.temp
                if self.served[k] == {name}
            ]
            if self.tensor_output:
                blocks.append(
                    f"    # {name}'s vector-Jacobian product at {self.cotangent}: {self.printed[name]}"
                )
            else:
                blocks.append(f"    # d {self.program.output.name}/d {name} = {self.printed[name]}")
            blocks.append(f"    {self.grad_names[name]} = {self._gradient(t, name, expr)}")
        body += _dtype_lines(t.uses | (step_uses if recomputed else set()), self.program, self.var)
        body += middle
        body.append(" = ".join([*self.grad_names.values(), "None"]))
        body += blocks
        body.append(f"return {', '.join(self.grad_names.get(n, 'None') for n in self.program.inputs)}")
        return body

    def _gradient(self, t: Translator, name: str, expr: Node) -> str:
        """The closed form as the input's gradient: times grad_output for a scalar output (the chain
        rule's last factor), expanded to the input's shape where it broadcasts to it."""
        code = t.node(expr)
        x = self.var[name]
        fits = expr.shape == self.program.inputs[name].type.shape
        if not self.tensor_output:
            scaled = f"grad_output * {code.at(MUL + 1)}"
            return scaled if fits and not code.number else f"({scaled}).expand_as({x})"
        if code.number:
            return f"torch.zeros_like({x})" if code.text == "0" else f"torch.full_like({x}, {code.text})"
        return code.text if fits else f"{code.at(ATOM)}.expand_as({x})"


def _walk(node: Node) -> list[Node]:
    found = [node]
    for child in node.children():
        found += _walk(child)
    return found
