"""Fuzz inputs for symcheck, and how to run and judge one: shared by the hypothesis tests beside this
file (a small example budget, in CI) and bench/fuzz.py (the same generators at scale, in a pool of
worker processes).

Every generator is a plain function of a `random.Random` that returns a `FuzzInput`, so an input is
reproducible from its seed (`generate(cls, seed)`); `strategy(cls)` draws seeds for hypothesis.
A `FuzzInput` is the argv of one symcheck command, files to write first (a suite, its data;
`@@SCRATCH@@` in the argv and the files stands for the folder they go to), and what a correct
symcheck must answer:

  any     exit 0, 1 or 2: hostile input, anything but a crash
  pass    exit 0: a well-typed program at points inside every domain, correct by construction, so
          exit 1 (the engines part) or 2 (refused) is a false alarm
  refuse  exit 2: beyond a limit of the README's "Limits" table, refused at once
  finite  never exit 0 on a non-finite value (NaN/inf/overflow given with -i)

Whatever the expectation: an exit 2 carries a message and no traceback; exit 3 or an exception that
escapes the CLI is a crash; a `--format json` / `junit` report parses; no `!!python/...` tag runs
code. `run_input` runs one input in this process (click's CliRunner on `symcheck.cli.main`) and
returns its `Outcome`; the dedup key of a finding is (class, exception type, last frame of symcheck).

The classes (`CLASSES`, each a generator): text (random text as an expression), mutation (mutated
shipped and README expressions), program (well-typed random programs, tensors of at most 4
elements, kinks and ties included), names (hostile identifiers), bombs (resource bombs), values
(NaN/inf/overflow and malformed `-i` values), yaml (mutated suites through `verify`, every output
format), flags (`grad` option combinations on well-typed programs).
"""

from __future__ import annotations

import json
import math
import random
import re
import shlex
import shutil
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRATCH = "@@SCRATCH@@"  # in argv and file contents: the folder the input's files are written to
SYMBOLIC_TIMEOUT = "5"  # symcheck's own --timeout: a runaway exact step is 'gave up', not a hang

Shape = tuple[int, ...]


# ---------------------------------------------------------------- inputs and outcomes


@dataclass
class FuzzInput:
    cls: str
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)
    expect: str = "any"  # any | pass | refuse | finite
    note: str = ""

    def command(self, folder: str = ".") -> str:
        """The command line, with the scratch folder spelled `folder`."""
        return shlex.join(["symcheck", *(a.replace(SCRATCH, folder) for a in self.argv)])


@dataclass
class Outcome:
    exit_code: int | None
    verdict: str  # ok | crash | disagreement | hang
    reason: str = ""  # one line: what was wrong
    exc_type: str = ""
    frame: str = ""  # the last frame in symcheck's own code (else the last frame)
    last_frame: str = ""
    detail: str = ""  # the traceback's or the output's tail
    seconds: float = 0.0
    gave_up: bool = False  # the symbolic engine ran out of its --timeout (the others still checked)

    def key(self, cls: str) -> tuple[str, str, str]:
        """(class, exception type, last frame): one finding, however many inputs hit it."""
        if self.verdict in ("crash", "hang"):
            return (cls, self.exc_type or self.verdict, self.frame or self.reason)
        return (cls, self.verdict, _normalise(self.reason))


def _normalise(text: str) -> str:
    """A reason without its numbers and quoted names, so that one bug is one key."""
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "N", text)[:160]


@dataclass(frozen=True)
class KnownBug:
    """A finding the other engineer is fixing: its test example is an xfail until then."""

    cls: str  # the input class, or "*"
    exc_type: str  # the exception type or verdict of the outcome ("" matches any)
    frame: str  # a substring of the outcome's frame or reason
    why: str

    def matches(self, cls: str, outcome: Outcome) -> bool:
        return (
            self.cls in ("*", cls)
            and self.exc_type in ("", outcome.exc_type, outcome.verdict)
            and (self.frame in outcome.frame or self.frame in outcome.reason)
        )


# Findings of the fuzz harness that symcheck still has (see /tmp/fuzz/findings.md); each is removed
# here when it is fixed. Tests xfail (strict=False) an example that hits one of these, and only those.
# An entry reads, e.g.:
#     KnownBug("yaml", "UnicodeEncodeError", "report/junit.py", "a lone surrogate in a case name, in JUnit")
KNOWN_BUGS: list[KnownBug] = []


def known_bug(cls: str, outcome: Outcome) -> str | None:
    for bug in KNOWN_BUGS:
        if bug.matches(cls, outcome):
            return bug.why
    return None


# ---------------------------------------------------------------- the language's vocabulary

FUNCTIONS = [
    'sum', 'mean', 'exp', 'log', 'log1p', 'sqrt', 'sin', 'cos', 'tan', 'tanh', 'sigmoid', 'softplus',
    'relu', 'abs', 'sign', 'step', 'max', 'min', 'maximum', 'minimum', 'clamp', 'softmax', 'log_softmax',
    'logsumexp', 'outer', 'dot', 'trace', 'mse_loss', 'where', 'onehot', 'nll_loss', 'cross_entropy',
    'transpose', 'expand_dims', 'broadcast_to', 'take', 'eye', 'pow', 'matmul', 'sinh', 'cosh', 'atan',
    'asin', 'acos', 'expm1', 'erf', 'silu', 'logsigmoid', 'gelu', 'leaky_relu', 'elu', 'hardtanh',
    'floor', 'ceil', 'round', 'detach', 'atan2', 'var', 'std', 'reshape', 'flatten', 'squeeze', 'flip',
    'tril', 'triu', 'diagonal', 'undiagonal', 'concat', 'stack', 'pad', 'unslice', 'einsum', 'prod', 'norm',
    'cumsum', 'cumprod', 'gather', 'scatter_add', 'index_select', 'embedding', 'layer_norm', 'rms_norm',
    'batch_norm', 'group_norm', 'attention', 'binary_cross_entropy', 'binary_cross_entropy_with_logits',
    'l1_loss', 'smooth_l1_loss', 'kl_div', 'det', 'inv', 'logdet', 'solve', 'cholesky', 'unfold', 'fold',
    'conv1d', 'conv2d', 'avg_pool2d', 'max_pool2d',
]  # fmt: skip
KEYWORDS = (
    "axis",
    "keepdims",
    "axes",
    "shape",
    "min",
    "max",
    "reduction",
    "num_classes",
    "approximate",
    "slope",
    "alpha",
    "start_dim",
    "end_dim",
    "k",
    "offset",
    "widths",
    "value",
    "start",
    "step",
    "subscripts",
    "p",
    "dims",
    "eps",
    "groups",
    "causal",
    "scale",
    "beta",
    "log_target",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "output_size",
    "weight",
    "ignore_index",
    "label_smoothing",
)
RESERVED = frozenset({
    'False', 'None', 'T', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue',
    'def', 'del', 'else', 'except', 'false', 'finally', 'for', 'from', 'global', 'if', 'import', 'in',
    'inf', 'is', 'lambda', 'nan', 'none', 'nonlocal', 'not', 'or', 'pass', 'raise', 'return', 'true',
    'try', 'while', 'with', 'yield',
})  # fmt: skip
OPERATORS = [
    '+', '-', '*', '/', '^', '**', '@', '(', ')', '[', ']', ',', '.', '=', '==', '<', '<=', '>', '>=',
    '!=', ';', '#', '.T', '\n', '\\\n', ' ', '\t', '\r', '\r\n',
]  # fmt: skip
UNICODE = [
    'é', 'π', '𝑥', 'ｘ', '∑', '√', '×', '−', '‐', '\u200b', '\u200d', '\u202e', '\ufeff', '\xa0',
    '\u3000', 'ß', 'ﬁ', 'Ⅸ', '①', '٣', '𝟙', '\u0301', '😀', '\U0010ffff', '\ue000', 'Ａ', 'ⅹ', '\u2028',
]  # fmt: skip
CONTROL = [chr(i) for i in range(32)] + ["\x7f", "\x85", "\u2029"]
ARGV_SURROGATES = ["\udc80", "\udcff", "\udcc3"]  # how Python decodes argv bytes that are not UTF-8
HOSTILE_NUMBERS = [
    '1e308', '1e309', '1e-320', '4.9e-324', '1e-400', '1e400', '0e0', '0.0', '00', '007',
    '999999999999999999999999999999999999999', '9' * 41,
    '1' + '0' * 300,
    '0.00000000000000000000000000000000000001', '1e300', '1e-300', '1.7976931348623157e308',
    '2.2250738585072014e-308', '5e-324', '.5', '5.', '1_000', '0x10', '1e+', '1e', '1.2.3', 'nan', 'inf',
    'NaN', 'Infinity', '-0', '1000', '1001', '-1001', '4096', '65536', '1e-7', '3/0', '0/0', '1e15',
    '9007199254740993', '0.1', '1e301', '1e-301', '0.000', '1E5', '1e05', '٣', '(1/3)', '2^2^2^2^2',
]  # fmt: skip


def _choice(r: random.Random, items: Sequence[Any]) -> Any:
    return items[r.randrange(len(items))]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _shape_text(shape: Shape) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _nested(values: list[float], shape: Shape) -> Any:
    if not shape:
        return values[0]
    step = len(values) // shape[0]
    return [_nested(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def free_names(text: str) -> list[str]:
    """The names a text would need as inputs: not called, not assigned, not keywords or reserved."""
    assigned = set(re.findall(r"(?m)^[ \t]*([A-Za-z][A-Za-z0-9_]*)[ \t]*=(?!=)", text))
    assigned |= set(re.findall(r";[ \t]*([A-Za-z][A-Za-z0-9_]*)[ \t]*=(?!=)", text))
    found: list[str] = []
    for m in re.finditer(r"(?<![A-Za-z0-9_.])([A-Za-z][A-Za-z0-9_]*)(?![A-Za-z0-9_])", text):
        name, rest = m.group(1), text[m.end() :].lstrip(" \t")
        if rest.startswith("(") or (rest.startswith("=") and not rest.startswith("==")):
            continue
        if name in RESERVED or name in FUNCTIONS or name in KEYWORDS or name in assigned or name in found:
            continue
        if name in ("mean", "sum", "none"):  # reduction=sum / mean: choices, not inputs
            continue
        found.append(name)
    return found


def _spec_args(specs: Sequence[str]) -> list[str]:
    return [a for s in specs for a in ("-i", s)]


# ---------------------------------------------------------------- shipped expressions (seeds)


@dataclass(frozen=True)
class Seed:
    expr: str
    specs: tuple[str, ...]  # -i specs, shapes mapped small


README_EXAMPLES: list[Seed] = [
    Seed("mean(3*(x+2)^2)", ("x:2x2=1",)),
    Seed("y = x + 2\nz = 3*y^2\nout = mean(z)", ("x:2x2=1",)),
    Seed("y = x + 2; z = 3*y^2; out = mean(z)", ("x:2x2",)),
    Seed("sum((x > 0)*x)", ("x:3",)),
    Seed("-x^2 + 2^3^2", ("x=0.5",)),
    Seed("x*sigmoid(x)", ("x:3",)),
    Seed("softmax(W @ x)", ("W:3x2", "x:2")),
    Seed("sum(logp[y])", ("logp:3x2", "y:2:int=[0,2]")),
    Seed("c = x + 1\nc = c + c + 1\nout = sum(c)", ("x:2",)),
    Seed("sum(x, axis=0)", ("x:2x3",)),
    Seed("mean(x, axis=(0, 1), keepdims=True)", ("x:2x2",)),
    Seed("x @ A @ x", ("x:3", "A:3x3")),
    Seed(
        "sum(mask*(R - U @ V.T)^2) + lam*(sum(U^2) + sum(V^2))",
        ("mask:3x2", "R:3x2", "U:3x2", "V:2x2", "lam=0.1"),
    ),
    Seed("cross_entropy(X @ W.T + b, y)", ("X:3x2", "W:2x2", "b:2", "y:3:int=[0,1,1]")),
    Seed("sum(tanh(W @ x + b))", ("W:2x2", "x:2", "b:2")),
    Seed("trace(A @ B) + dot(v, v) + sum(outer(v, u))", ("A:2x2", "B:2x2", "v:2", "u:3")),
    Seed("sum(where(x > 0, x, 0.1*x)) + sum(maximum(x, y)) + sum(clamp(x, min=-0.5, max=0.5))",
         ("x:3", "y:3")),
    Seed("max(x) + min(x, axis=0)", ("x:3",)),
    Seed("nll_loss(log_softmax(z), y)", ("z:3", "y:int=1")),
    Seed("sum(onehot(y, 3) * z) + sum(eye(2) * A)", ("y:2:int=[0,2]", "z:2x3", "A:2x2")),
    Seed("sum(broadcast_to(x, shape=(2, 3))) + sum(expand_dims(x, axis=0))", ("x:3",)),
    Seed("sum(transpose(x, axes=(1, 0, 2)))", ("x:2x2x2",)),
    Seed("logsumexp(x) + sum(log_softmax(x, axis=-1))", ("x:4",)),
    Seed("mse_loss(a, b, reduction=sum) + sum(x[0]) + x[-1][1]", ("a:3", "b:3", "x:2x2")),
]  # fmt: skip


def _small_shapes(inputs: dict[str, Any]) -> dict[int, int]:
    """Each distinct size above 1 mapped to 2, 3, 4, ... in order: equal sizes stay equal."""
    sizes: set[int] = set()
    for spec in inputs.values():
        if isinstance(spec, dict) and isinstance(spec.get("shape"), list):
            sizes |= {d for d in spec["shape"] if isinstance(d, int) and d > 1}
        else:
            value = spec.get("value") if isinstance(spec, dict) else spec
            sizes |= {d for d in _list_shape(value) if d > 1}
    return {d: min(d, i + 2) for i, d in enumerate(sorted(sizes))}


def _list_shape(value: Any) -> Shape:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def yaml_input_spec(name: str, spec: Any, sizes: dict[int, int]) -> str:
    """A suite's input as a `-i` spec, its shape mapped small (a value that no longer fits is dropped)."""
    if not isinstance(spec, dict):
        spec = {"value": spec}
    dtype = ":int" if spec.get("dtype") == "int" else ""
    if "value" in spec:
        value = spec["value"]
        shape = _list_shape(value)
        small = tuple(sizes.get(d, d) for d in shape)
        if small == shape:
            return f"{name}{dtype}={json.dumps(value)}" if shape else f"{name}{dtype}={_num(value)}"
        return f"{name}:{_shape_text(small)}{dtype}"
    shape = tuple(sizes.get(d, d) for d in spec.get("shape", []))
    text = f"{name}:{_shape_text(shape)}{dtype}"
    if "fill" in spec:
        return (
            f"{name}:{_shape_text(shape)}{dtype}={_num(spec['fill'])}" if shape else f"{name}={spec['fill']}"
        )
    rnd = spec.get("random")
    if isinstance(rnd, dict) and rnd.get("distribution") == "normal":
        return f"{text}~normal({rnd.get('mean', 0)},{rnd.get('std', 1)})"
    if isinstance(rnd, dict) and "low" in rnd and "high" in rnd:
        return f"{text}~uniform({rnd['low']},{rnd['high']})"
    return text


@cache
def shipped_cases() -> list[tuple[str, dict[str, Any]]]:
    """(suite file relative to expressions/, case) for every case of the shipped suites."""
    from ruamel.yaml import YAML

    out = []
    for path in sorted((REPO / "expressions").rglob("*.yaml")):
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        cases = data.get("cases", []) if isinstance(data, dict) else data
        out.extend((str(path.relative_to(REPO / "expressions")), c) for c in cases if isinstance(c, dict))
    return out


@cache
def seeds() -> list[Seed]:
    found = list(README_EXAMPLES)
    for _, case in shipped_cases():
        inputs = case.get("inputs") or {}
        sizes = _small_shapes(inputs)
        found.append(Seed(str(case["expr"]), tuple(yaml_input_spec(n, s, sizes) for n, s in inputs.items())))
    return found


# ---------------------------------------------------------------- 1. random text


def _random_chars(r: random.Random, n: int) -> str:
    pools = [
        [chr(c) for c in range(32, 127)],
        OPERATORS,
        list("0123456789.eE+-"),
        list("xyzabWAT_"),
        UNICODE,
        CONTROL,
        ARGV_SURROGATES,
    ]
    weights = [8, 6, 3, 4, 2, 1, 1]
    return "".join(_choice(r, r.choices(pools, weights)[0]) for _ in range(n))


def _token_soup(r: random.Random, n: int) -> str:
    pool: list[Callable[[], str]] = [
        lambda: _choice(r, OPERATORS),
        lambda: _choice(r, FUNCTIONS),
        lambda: _choice(r, ["x", "y", "W", "b", "out", "h", "T", "v"]),
        lambda: _choice(r, ["0", "1", "2", "0.5", "1e-3", "3/2", "-1", "10"] + HOSTILE_NUMBERS),
        lambda: _choice(r, [k + "=" for k in KEYWORDS] + ["True", "None", "(0, 1)", "(0,)", "()"]),
        lambda: _choice(r, UNICODE + CONTROL),
    ]
    weights = [10, 5, 6, 4, 2, 1]
    return "".join(r.choices(pool, weights)[0]() for _ in range(n))


def gen_text(r: random.Random) -> FuzzInput:
    mode = r.randrange(3)
    if mode == 0:
        text = _random_chars(r, r.randint(0, 120))
    elif mode == 1:
        text = _token_soup(r, r.randint(1, 40))
    else:  # a valid expression with a soup spliced in
        seed = _choice(r, seeds())
        cut = r.randint(0, len(seed.expr))
        text = seed.expr[:cut] + _token_soup(r, r.randint(1, 6)) + seed.expr[cut:]
    names = free_names(text)[:6]
    specs = [f"{n}:{_choice(r, ['2', '2x2', 'scalar', '3', '1'])}" for n in names]
    if not specs or r.random() < 0.2:
        specs.append(_choice(r, ["x:2", "y:2x2", "x=1", "W:2x3"]))
    return FuzzInput(
        "text", ["grad", text, *_spec_args(specs), "--samples", "1", "--timeout", SYMBOLIC_TIMEOUT]
    )


# ---------------------------------------------------------------- 2. mutations of valid expressions

TOKEN_RE = re.compile(
    r"\s+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|\*\*|<=|>=|==|!=|.", re.S
)


def _tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def _deep(r: random.Random, core: str) -> str:
    k = _choice(r, [10, 50, 150, 190, 199, 200, 201, 250, 1000, 5000])
    kind = r.randrange(6)
    if kind == 0:
        return "(" * k + core + ")" * k
    if kind == 1:
        return "-" * k + core
    if kind == 2:
        f = _choice(r, ["sin", "tanh", "relu", "abs", "sigmoid", "sum", "exp"])
        return f"{f}(" * k + core + ")" * k
    if kind == 3:
        return core + "".join(f" {_choice(r, '+-*')} {core}" for _ in range(k))
    if kind == 4:
        return core + "^" + "^".join(["1"] * k)
    return "(" + core + ")" + ".T" * k


def mutate_expression(r: random.Random, text: str) -> str:
    toks = _tokens(text) or [""]
    for _ in range(_choice(r, [1, 1, 1, 2, 3])):
        op = r.randrange(10)
        i = r.randrange(len(toks))
        if op == 0 and len(toks) > 1:
            del toks[i]
        elif op == 1:
            toks.insert(i, _token_soup(r, 1))
        elif op == 2:
            toks.insert(i, toks[i])
        elif op == 3:
            j = r.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif op == 4:  # a number becomes huge, tiny, nan-ish or malformed
            nums = [k for k, t in enumerate(toks) if re.fullmatch(r"[\d.]+(e[-+]?\d+)?", t, re.I)]
            toks[_choice(r, nums) if nums else i] = _choice(r, HOSTILE_NUMBERS)
        elif op == 5:  # a name becomes another
            names = [k for k, t in enumerate(toks) if re.fullmatch(r"[A-Za-z_]\w*", t)]
            pool = FUNCTIONS + list(RESERVED)[:10] + ["x", "y", "E", "pi", "out", "__import__", "_x", "T"]
            toks[_choice(r, names) if names else i] = _choice(r, pool)
        elif op == 6:  # deep nesting or a long chain around one token
            toks[i] = _deep(r, toks[i] if toks[i].strip() else "x")
        elif op == 7:  # a keyword argument
            closes = [k for k, t in enumerate(toks) if t == ")"]
            arg = _choice(
                r,
                [", axis=5", ", axis=-3", ", axis=(0, 0)", ", keepdims=True", ", axis=None", ", axes=(0,)",
                 ", min=1, max=0", ", reduction=median", ", shape=(0,)", ", 2", ", x=1", ", axis=1.5"],
            )  # fmt: skip
            toks.insert(_choice(r, closes) if closes else len(toks), arg)
        elif op == 8:  # an operator swapped
            ops = [k for k, t in enumerate(toks) if t in ("+", "-", "*", "/", "^", "@", "**", "<", ">")]
            if ops:
                toks[_choice(r, ops)] = _choice(r, ["+", "-", "*", "/", "^", "@", "**", "==", "<", "."])
        else:  # a statement separator, a rebinding, a comment
            toks.insert(i, _choice(r, ["\n", "; ", "\nout = ", "\nx = 1\n", " # ", "\\\n", "\n\n", ";;"]))
    return "".join(toks)


def gen_mutation(r: random.Random) -> FuzzInput:
    seed = _choice(r, seeds())
    text = mutate_expression(r, seed.expr)
    specs = list(seed.specs)
    declared = {s.split(":")[0].split("=")[0].split("~")[0] for s in specs}
    extra = [n for n in free_names(text) if n not in declared]
    if extra and r.random() < 0.6:
        specs += [f"{n}:{_choice(r, ['2', 'scalar', '2x2'])}" for n in extra[:4]]
    flags = ["--samples", str(r.randint(0, 2)), "--seed", str(r.randrange(1000))]
    return FuzzInput("mutation", ["grad", text, *_spec_args(specs), *flags, "--timeout", SYMBOLIC_TIMEOUT])


# ---------------------------------------------------------------- 3. well-typed random programs

P_INPUTS: dict[str, Shape] = {"a": (2, 2), "b": (2,), "c": (), "u": (3,), "w": (4,), "r": (1, 2), "q": (2, 1)}
P_LABELS: dict[str, Shape] = {"y": (2,), "k": ()}  # int labels in {0, 1}
P_SHAPES: tuple[Shape, ...] = ((), (2,), (3,), (4,), (2, 2), (1, 2), (2, 1))
GRID = (-2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
MATMULS: dict[Shape, list[tuple[Shape, Shape]]] = {
    (): [((2,), (2,)), ((3,), (3,)), ((4,), (4,))],
    (2,): [((2, 2), (2,)), ((2,), (2, 2))],
    (2, 2): [((2, 2), (2, 2)), ((2, 1), (1, 2))],
    (1, 2): [((1, 2), (2, 2))],
    (2, 1): [((2, 2), (2, 1))],
}
REDUCE_TO: dict[Shape, list[tuple[Shape, int, bool]]] = {
    (2,): [((2, 2), 0, False), ((2, 2), 1, False), ((1, 2), 0, False), ((2, 1), 1, False)],
    (1, 2): [((2, 2), 0, True)],
    (2, 1): [((2, 2), 1, True)],
}
INDEX_FROM: dict[Shape, list[tuple[Shape, list[str]]]] = {
    (): [((2,), ["0", "1", "-1", "-2"]), ((3,), ["0", "2", "-1"]), ((4,), ["3", "-4"]), ((2, 1), ["1, 0"]),
         ((2, 2), ["0, 1", "-1, 0"])],
    (2,): [((2, 2), ["0", "1", "-1"]), ((1, 2), ["0"])],
}  # fmt: skip
TAKE_FROM: dict[Shape, list[tuple[Shape, str]]] = {
    (): [((2,), "k")],
    (2,): [((2,), "y")],
    (2, 2): [((2, 2), "y")],
}
UNARY = (
    'tanh({0})', 'sigmoid({0})', 'softplus({0})', 'sin({0})', 'cos({0})', '-({0})', 'exp(tanh({0}))',
    'exp(-({0})*({0}))', 'log(({0})*({0}) + 1)', 'sqrt(({0})*({0}) + 1)', '({0})^2', '({0})^3',
    'log1p(({0})*({0}))', 'tan(tanh({0}))', '1/(({0})*({0}) + 1)', 'pow(({0})*({0}) + 1, 0.5)',
    'atan({0})', 'asin(tanh({0})/2)', 'acos(sigmoid({0}))', 'sinh(tanh({0}))', 'cosh(tanh({0}))',
    'expm1(tanh({0}))', 'erf({0})', 'silu({0})', 'logsigmoid({0})', 'gelu({0})',
    'gelu({0}, approximate=tanh)', 'pi*({0})', 'e^tanh({0})', '({0})*detach({0})',
    '({0}) + detach(round({0}) - ({0}))',
)  # fmt: skip
KINKED = (
    'relu({0})', 'abs({0})', 'sign({0})*({0})', 'step({0})*({0})', 'clamp({0}, min={lo}, max={hi})',
    'clamp({0}, min={lo})', 'clamp({0}, max={hi})', '(({0}) > 0)*({0})',
    'where({0} >= {lo}, {0}, 0.5*({0}))', 'relu({0} - {lo})', 'abs({0} - {hi})',
    'leaky_relu({0})', 'leaky_relu({0} - {lo}, slope=0.3)', 'elu({0}, alpha=0.5)',
    'hardtanh({0}, min={lo}, max={hi})', 'hardtanh({0})', 'floor({0})*({0})', 'round(({0})*3) + ({0})',
    'ceil({0})',
)  # fmt: skip
BINARY = (
    '({0}) + ({1})', '({0}) - ({1})', '({0}) * ({1})', '({0}) / (({1})*({1}) + 1)',
    '(({0})*({0}) + 1)^sigmoid({1})', 'maximum({0}, {1})', 'minimum({0}, {1})',
    'where({0} > {1}, {0}, {1})', '(({0}) <= ({1}))*({0})', 'atan2({0}, ({1})*({1}) + 1)',
)  # fmt: skip
# shape -> layout ops that make it: a template over operands of the given shapes
LAYOUTS: dict[Shape, list[tuple[str, tuple[Shape, ...]]]] = {
    (): [
        ("cross_entropy({0}, y, weight=softplus({1}) + 0.5, label_smoothing=0.1)", ((2, 2), (2,))),
        ("nll_loss(log_softmax({0}), y, ignore_index=1, reduction=sum)", ((2, 2),)),
        ("sum(onehot(y, 2, ignore_index=0) * {0})", ((2, 2),)),
        (
            "sum(conv2d(reshape({0}, shape=(1, 1, 2, 2)), reshape({1}, shape=(1, 1, 2, 1)), padding=(0, 1)))",
            ((2, 2), (2,)),
        ),
        ("sum(conv1d(reshape({0}, shape=(1, 1, 4)), reshape({1}, shape=(1, 1, 2)), stride=2))", ((4,), (2,))),
        ("sum(avg_pool2d(reshape({0}, shape=(1, 1, 2, 2)), kernel=(1, 2)))", ((2, 2),)),
        ("sum(max_pool2d(reshape({0}, shape=(1, 1, 2, 2)), kernel=(2, 1)))", ((2, 2),)),
        (
            "sum(fold(unfold(reshape({0}, shape=(1, 1, 2, 2)), kernel=(1, 2)), output_size=(2, 2), "
            "kernel=(1, 2)))",
            ((2, 2),),
        ),
        ("det(tanh({0}) + 3*eye(2))", ((2, 2),)),
        ("logdet(tanh({0}) + 3*eye(2))", ((2, 2),)),
        ("binary_cross_entropy(sigmoid({0}), sigmoid({1}))", ((2,), (2,))),
        ("binary_cross_entropy_with_logits({0}, {1}, reduction=sum)", ((2, 2), (2, 2))),
        ("l1_loss({0}, {1})", ((3,), (3,))),
        ("smooth_l1_loss({0}, {1}, beta=0.5)", ((2,), (2,))),
        ("kl_div(log_softmax({0}), softmax({1}), reduction=batchmean)", ((2, 2), (2, 2))),
        ("prod({0})", ((2, 2),)),
        ("prod({0})", ((3,),)),
        ("norm(({0})*({0}) + 1)", ((2, 2),)),
        ("norm({0}, p=1)", ((2,),)),
        ("norm({0}, p=inf)", ((3,),)),
        ("norm(({0})*({0}) + 1, p=fro)", ((2, 2),)),
        ('einsum("i,i->", {0}, {1})', ((2,), (2,))),
        ('einsum("ij->", {0})', ((2, 2),)),
        ("({0})[1:, 0][0]", ((2, 2),)),
    ],
    (2,): [
        ("solve(tanh({0}) + 3*eye(2), {1})", ((2, 2), (2,))),
        ("gather({0}, y, axis=0)", ((2,),)),
        ("scatter_add({0}, y, {1}, axis=0)", ((2,), (2,))),
        ("embedding({0}, k)", ((2, 2),)),
        ("cumsum({0}, axis=0)", ((2,),)),
        ("cumprod(({0})*({0}) + 1, axis=0)", ((2,),)),
        ("prod({0}, axis=1)", ((2, 2),)),
        ("norm(({0})*({0}) + 1, axis=0)", ((2, 2),)),
        ("({0})[1:3]", ((4,),)),
        ("({0})[::2]", ((4,),)),
        ("({0})[:, 0]", ((2, 2),)),
        ("({0})[..., -1]", ((2, 2),)),
        ("diagonal({0})", ((2, 2),)),
        ("({0})[:2]", ((3,),)),
        ("squeeze({0})", ((1, 2),)),
        ("squeeze({0}, axis=1)", ((2, 1),)),
        ("flip({0})", ((2,),)),
        ('einsum("ij,j->i", {0}, {1})', ((2, 2), (2,))),
        ("({0})[1:]", ((3,),)),
    ],
    (3,): [
        ("pad({0}, widths=(1, 0))", ((2,),)),
        ("({0})[1:]", ((4,),)),
        ("flip({0}, axis=0)", ((3,),)),
        ("concat({0}, reshape({1}, shape=(1,)))", ((2,), ())),
    ],
    (4,): [
        ("flatten({0})", ((2, 2),)),
        ("reshape({0}, shape=(4,))", ((2, 2),)),
        ("concat({0}, {1})", ((2,), (2,))),
        ("pad({0}, widths=(1, 1), value=0.5)", ((2,),)),
        ("unslice({0}, shape=(4,), start=(1,), step=(2,))", ((2,),)),
        ("flip({0})", ((4,),)),
    ],
    (2, 2): [
        ("inv(tanh({0}) + 3*eye(2))", ((2, 2),)),
        ("cholesky(tanh({0}) @ tanh({0}).T + eye(2))", ((2, 2),)),
        ("solve(tanh({0}) + 3*eye(2), {1})", ((2, 2), (2, 2))),
        ("layer_norm({0}, {1}, {2})", ((2, 2), (2,), (2,))),
        ("rms_norm({0}, {1})", ((2, 2), (2,))),
        ("batch_norm({0})", ((2, 2),)),
        ("group_norm({0}, groups=1)", ((2, 2),)),
        ("attention({0}, {1}, {2})", ((2, 2), (2, 2), (2, 2))),
        ("attention({0}, {1}, {2}, causal=True)", ((2, 2), (2, 2), (2, 2))),
        ("index_select({0}, y, axis=1)", ((2, 2),)),
        ("embedding({0}, y)", ((2, 2),)),
        ("reshape({0}, shape=(2, -1))", ((4,),)),
        ("stack({0}, {1})", ((2,), (2,))),
        ("stack({0}, {1}, axis=1)", ((2,), (2,))),
        ("tril({0})", ((2, 2),)),
        ("triu({0}, k=1)", ((2, 2),)),
        ("flip({0}, axis=0)", ((2, 2),)),
        ("concat({0}, {1})", ((1, 2), (1, 2))),
        ("concat({0}, {1}, axis=1)", ((2, 1), (2, 1))),
        ('einsum("ij,jk->ik", {0}, {1})', ((2, 2), (2, 2))),
        ("undiagonal({0}, shape=(2, 2))", ((2,),)),
        ("flatten(unsqueeze({0}, 0), end_dim=1)", ((2, 2),)),
    ],
    (1, 2): [
        ("unsqueeze({0}, 0)", ((2,),)),
        ("reshape({0}, shape=(1, 2))", ((2,),)),
        ("({0})[:1]", ((2, 2),)),
    ],
    (2, 1): [
        ("({0})[:, 1:]", ((2, 2),)),
        ("unsqueeze({0}, 1)", ((2,),)),
        ("reshape({0}, shape=(2, 1))", ((2,),)),
    ],
}
CONSTANTS = ("2", "1/2", "3", "0.25", "-1", "0", "1", "0.5")
KINK_POINTS = ("-1", "-0.5", "0", "0.5", "1", "0.25")


@dataclass
class ProgramSpec:
    text: str
    specs: list[str]
    steps: dict[str, Shape]  # each step's shape, at its last binding
    scalar: bool
    floats: list[str]
    ints: list[str]


class Builder:
    """Draws source text of a requested shape; `names` holds the steps so far, by shape."""

    def __init__(self, r: random.Random, names: dict[Shape, list[str]]) -> None:
        self.r = r
        self.names = names

    def leaf(self, shape: Shape) -> str:
        options = list(self.names.get(shape, [])) + [n for n, s in P_INPUTS.items() if s == shape] * 2
        if shape == (2, 2):
            options += ["eye(2)", "onehot(y, 2)", "a @ a"]
        if shape == (2,):
            options.append("onehot(k, 2)")
        if not options:  # no input of this shape: broadcast one
            return (
                f"broadcast_to(c, shape={shape})"
                if len(shape) != 1
                else f"broadcast_to(c, shape=({shape[0]},))"
            )
        return _choice(self.r, options)

    def partner(self, shape: Shape, depth: int) -> str:
        """An operand that broadcasts to `shape`."""
        kind = _choice(self.r, ["same", "same", "scalar", "const", "trailing", "keepdims"])
        if kind == "const" or not shape:
            return (
                _choice(self.r, CONSTANTS)
                if kind == "const" or self.r.random() < 0.3
                else self.expr((), depth)
            )
        if kind == "scalar":
            return self.expr((), depth)
        if kind == "trailing" and shape[1:] in P_SHAPES:
            return self.expr(shape[1:], depth)
        if kind == "keepdims" and shape == (2, 2):
            return self.expr(_choice(self.r, [(1, 2), (2, 1)]), depth)
        return self.expr(shape, depth)

    def expr(self, shape: Shape, depth: int) -> str:
        r = self.r
        if depth <= 0:
            return self.leaf(shape)
        kinds = ["leaf", "unary", "unary", "kinked", "kinked", "binary", "binary", "binary"]
        if shape in MATMULS:
            kinds.append("matmul")
        if shape in REDUCE_TO or shape == ():
            kinds += ["reduce", "reduce"]
        if shape in INDEX_FROM:
            kinds.append("index")
        if shape in TAKE_FROM:
            kinds.append("take")
        if len(shape) == 2:
            kinds.append("transpose")
        if shape and shape != (3,) and shape != (4,):
            kinds.append("softmax")
        if shape == (2, 2):
            kinds += ["outer", "broadcast"]
        if shape in ((1, 2), (2, 1)):
            kinds.append("expand")
        if shape in LAYOUTS:
            kinds.append("layout")
        kind = _choice(r, kinds)
        d = depth - 1
        if kind == "leaf":
            return self.leaf(shape)
        if kind == "unary":
            return _choice(r, UNARY).format(self.expr(shape, d))
        if kind == "kinked":
            lo, hi = sorted(r.sample(KINK_POINTS, 2), key=float)
            return _choice(r, KINKED).format(self.expr(shape, d), lo=lo, hi=hi)
        if kind == "binary":
            operands = [self.expr(shape, d), self.partner(shape, d)]
            if r.random() < 0.5:
                operands.reverse()
            return _choice(r, BINARY).format(*operands)
        if kind == "matmul":
            ls, rs = _choice(r, MATMULS[shape])
            if shape == () and r.random() < 0.3:
                return f"dot({self.expr(ls, d)}, {self.expr(rs, d)})"
            return f"({self.expr(ls, d)}) @ ({self.expr(rs, d)})"
        if kind == "reduce":
            op = _choice(r, ["sum", "mean", "max", "min", "logsumexp"])
            if shape == ():
                pick = r.randrange(10)
                if pick == 0:
                    return f"trace({self.expr((2, 2), d)})"
                if pick == 1:
                    return f"cross_entropy({self.expr((2, 2), d)}, y)"
                if pick == 2:
                    return f"cross_entropy({self.expr((2,), d)}, k)"
                if pick == 3:
                    red = _choice(r, ["", ", reduction=sum"])
                    return f"nll_loss(log_softmax({self.expr((2, 2), d)}, axis=1), y{red})"
                if pick == 4:
                    s = _choice(r, [x for x in P_SHAPES if x])
                    red = _choice(r, ["", ", reduction=sum"])
                    return f"mse_loss({self.expr(s, d)}, {self.partner(s, d)}{red})"
                source = _choice(r, [x for x in P_SHAPES if x])
                if len(source) == 2 and r.random() < 0.5:
                    return f"{op}({self.expr(source, d)}, axis=(0, 1))"
                return f"{op}({self.expr(source, d)})"
            source, axis, keep = _choice(r, REDUCE_TO[shape])
            return f"{op}({self.expr(source, d)}, axis={axis}{', keepdims=True' if keep else ''})"
        if kind == "index":
            source, idx = _choice(r, INDEX_FROM[shape])
            return f"({self.expr(source, d)})[{_choice(r, idx)}]"
        if kind == "take":
            source, labels = _choice(r, TAKE_FROM[shape])
            inner = self.expr(source, d)
            return f"take({inner}, {labels})" if r.random() < 0.3 else f"({inner})[{labels}]"
        if kind == "softmax":
            axis = _choice(
                r, ["", ", axis=0", ", axis=-1"] if len(shape) == 1 else [", axis=0", ", axis=1", ""]
            )
            return f"{_choice(r, ['softmax', 'log_softmax'])}({self.expr(shape, d)}{axis})"
        if kind == "layout":
            template, shapes = _choice(r, LAYOUTS[shape])
            return template.format(*(self.expr(s, d) for s in shapes))
        if kind == "outer":
            return f"outer({self.expr((2,), d)}, {self.expr((2,), d)})"
        if kind == "broadcast":
            src = _choice(r, [(2,), (), (1, 2), (2, 1)])
            return f"broadcast_to({self.expr(src, d)}, shape=(2, 2))"
        if kind == "expand":
            return (
                f"expand_dims({self.expr((2,), d)}, axis={0 if shape == (1, 2) else _choice(r, ['1', '-1'])})"
            )
        transposed = (shape[1], shape[0])
        if r.random() < 0.5:
            return f"({self.expr(transposed, d)}).T"
        return f"transpose({self.expr(transposed, d)}, axes=(1, 0))"


def _uses(text: str, name: str) -> bool:
    # `k=1` is a keyword (triu's), not the label k
    return re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_]|\s*=(?!=))", text) is not None


def _value_spec(r: random.Random, name: str, shape: Shape, pool: Sequence[float]) -> str:
    """Pinned values from a small pool (ties and exact kinks come often), or a random range."""
    kind = r.random()
    if kind < 0.2:
        return f"{name}:{_shape_text(shape)}"
    if kind < 0.3:
        lo = _choice(r, ["-1", "-2", "0", "0.5"])
        return f"{name}:{_shape_text(shape)}~uniform({lo},{float(lo) + _choice(r, [0.5, 1, 3])})"
    if kind < 0.35:
        return f"{name}:{_shape_text(shape)}~normal(0,1)"
    n = math.prod(shape)
    values = [_choice(r, pool) for _ in range(n)]
    if kind < 0.45 and shape:
        return f"{name}:{_shape_text(shape)}={_num(values[0])}"
    return f"{name}={json.dumps(_nested(values, shape))}" if shape else f"{name}={_num(values[0])}"


def build_program(r: random.Random, tensor_output: float = 0.25) -> ProgramSpec:
    names: dict[Shape, list[str]] = {}
    lines: list[str] = []
    steps: dict[str, Shape] = {}
    for i in range(_choice(r, [0, 1, 1, 2, 2, 3])):
        shape = _choice(r, P_SHAPES)
        expr = Builder(r, names).expr(shape, r.randint(1, 2))
        earlier = names.get(shape, [])
        name = earlier[0] if earlier and r.random() < 0.3 else f"h{i}"
        lines.append(f"{name} = {expr}")
        if name not in names.setdefault(shape, []):
            names[shape].append(name)
        steps[name] = shape
    scalar = r.random() >= tensor_output
    shape = _choice(r, P_SHAPES if scalar else [s for s in P_SHAPES if s])
    body = Builder(r, names).expr(shape, r.randint(1, 3))
    if scalar and shape:
        body = f"{_choice(r, ['sum', 'mean', 'max', 'min', 'logsumexp'])}({body})"
    unused = [n for ns in names.values() for n in ns if not _uses(body, n)]
    out = body + "".join(f" + mean({n})" for n in unused)
    floats_used = [n for n in P_INPUTS if _uses("\n".join([*lines, out]), n)]
    if not floats_used:
        out += " + mean(b)"
    lines.append(f"out = {out}")
    text = _choice(r, ["\n", "; "]).join(lines)
    pool = r.sample(GRID, r.randint(2, 5))
    floats = [n for n in P_INPUTS if _uses(text, n)]
    ints = [n for n in P_LABELS if _uses(text, n)]
    specs = [_value_spec(r, n, P_INPUTS[n], pool) for n in floats]
    for n in ints:
        shape = P_LABELS[n]
        if r.random() < 0.2:
            specs.append(f"{n}:{_shape_text(shape)}:int")
        elif shape:
            specs.append(
                f"{n}:{_shape_text(shape)}:int={json.dumps([r.randint(0, 1) for _ in range(shape[0])])}"
            )
        else:
            specs.append(f"{n}:int={r.randint(0, 1)}")
    return ProgramSpec(text, specs, steps, scalar, floats, ints)


def gen_program(r: random.Random) -> FuzzInput:
    p = build_program(r)
    argv = [
        "grad",
        p.text,
        *_spec_args(p.specs),
        "--samples",
        _choice(r, ["0", "1", "1", "2"]),
        "--seed",
        str(r.randrange(10**6)),
    ]
    return FuzzInput("program", [*argv, "--timeout", SYMBOLIC_TIMEOUT], expect="pass")


# ---------------------------------------------------------------- 4. special names

VALID_NAMES = [
    'E', 'I', 'pi', 'S', 'N', 'O', 'Q', 'oo', 'zoo', 'nan1', 'lambdify', 'sympify', 'Symbol', 'Function',
    'Integer', 'Float', 'Rational', 'Max', 'Min', 'Abs', 'Heaviside', 'Piecewise', 'DiracDelta', 'gamma',
    'beta', 'zeta', 'alpha', 'lambda_', 're', 'im', 'diff', 'grad', 'Derivative', 'eval', 'exec', 'print',
    'open', 'system', 'globals', 'x1', 'x2', 'x_1', 'x0', 'x00', 'x_0_0', 'x_1_1', 'v', 'u', 'dout', 'J',
    'H', 'A1', 'l', 'O0', 'sigma', 'Sum', 'Product', 'evaluate', 'numpy', 'torch', 'np', 'Tensor', 'self',
    'cls', 'args', 'kwargs', 'len', 'float', 'int', 'e', 'i', 'j', 'dx', 'd', 'X', 'xT', 'T1', 'inf1',
    'NaN1', 'Eq', 'Ne', 'Lt', 'And', 'Or', 'Not', 'ITE', 'true_', 'False_', 'series', 'integrate',
    'limit', 'subs', 'doit', 'expand', 'simplify', 'n', 'N_', 'C', 'K', 'Dummy', 'Wild',
    'x' * 200,
    'a' + '_' * 50 + 'b',
]  # fmt: skip
SHADOWING = [
    'sum', 'mean', 'exp', 'log', 'relu', 'max', 'min', 'eye', 'onehot', 'where', 'pow', 'take', 'index',
    'add', 'mul', 'neg', 'matmul', 'tanh', 'out',
]  # fmt: skip
INVALID_NAMES = [
    '__import__', '_x', '__class__', '__builtins__', 'True', 'None', 'lambda', 'def', 'import', 'class',
    'nan', 'inf', 'T', 'true', 'none', 'π', 'x̄', 'ｘ', '𝑥', 'ß', '1x', 'é', 'Σ', 'x\u200b',
    'x\udcff', 'and', 'not', 'is', 'if', 'x\u0301',
]  # fmt: skip


def gen_names(r: random.Random) -> FuzzInput:
    group = r.choices(["valid", "shadow", "invalid"], [6, 2, 2])[0]
    pool = {"valid": VALID_NAMES, "shadow": SHADOWING, "invalid": INVALID_NAMES}[group]
    n = _choice(r, pool)
    m = _choice(r, VALID_NAMES)
    if m == n:
        m = "x"
    template = r.randrange(7)
    shape_n, shape_m = _choice(r, ["2", "scalar", "2x2"]), "2"
    if template == 0:
        text = f"sum({n}*{m} + {n}^2)"
    elif template == 1:  # the name as a step
        text = f"{n} = {m} + 1\nout = sum({n}*{m})"
        shape_n = ""
    elif template == 2:  # element names of the expansion (x1, x2, ...) beside an input x
        m = "x"
        n = _choice(r, ["x1", "x2", "x_1", "x0", "x11", "x_0_0", "x1_1"]) if group == "valid" else n
        text = f"sum(x*{n}) + sum({n}^2) + sum(x)^2"
        shape_m = _choice(r, ["4", "2x2"])
        shape_n = _choice(r, ["scalar", "4"] if shape_m == "4" else ["scalar", "2", "2x2"])
    elif template == 3:  # a tensor output: the cotangent is called v (u when an input is v)
        text = f"{n}*sigmoid({m}) + {m}"
        shape_n = "2"
    elif template == 4:
        text = f"mean(tanh({n} @ {m})) + sum({n})"
        shape_n = "2x2"
    elif template == 5:
        text = f"y = {n}^2\nz = 3*y + {m}\nout = mean(z)"
        shape_n = "2"
    else:
        text = f"sum(exp(-{n}*{n})*{m})"
    specs = [f"{n}:{shape_n}"] if shape_n else []
    specs.append(f"{m}:{shape_m}")
    command = "explain" if r.random() < 0.25 and template != 3 else "grad"  # explain: scalar outputs
    argv = [command, text, *_spec_args(specs)]
    if command == "grad":
        argv += ["--samples", "0", "--timeout", SYMBOLIC_TIMEOUT]
    elif r.random() < 0.3:
        argv += ["--format", _choice(r, ["markdown", "latex"])]
    expect = {"valid": "pass", "shadow": "any", "invalid": "refuse"}[group]
    return FuzzInput("names", argv, expect=expect, note=f"name {n!r} ({group})")


# ---------------------------------------------------------------- 5. resource bombs


def _chain_program(k: int, op: str) -> str:
    lines = ["h0 = x"] + [f"h{i} = h{i - 1}{op}" for i in range(1, k)]
    return "\n".join([*lines, f"out = sum(h{k - 1})"])


def gen_bomb(r: random.Random) -> FuzzInput:
    t = SYMBOLIC_TIMEOUT
    refused: list[tuple[str, list[str]]] = [
        ("sum(x)", ["x:100000x100000"]),
        ("sum(x)", ["x:10000001"]),
        ("sum(x)", ["x:1000x1000x11"]),
        ("sum(x)", ["x:" + "x".join(["2"] * 24)]),
        ("sum(x)", ["x:99999999999999999999999"]),
        ("sum(outer(x, x))", ["x:3163"]),
        ("sum(x @ x.T)", ["x:4000x3"]),
        ("sum(broadcast_to(x, shape=(4000, 4000)))", ["x:1"]),
        ("sum(eye(100000))", ["x:1"]),
        ("sum(eye(100000)) + sum(x)", ["x:1"]),
        ("sum(onehot(y, 100000000)) + sum(x)", ["y:1:int=[0]", "x:1"]),
        ("sum(x + x.T)", ["x:1x5000"]),
        ("sum(x^1001)", ["x:2"]),
        ("sum(x^-1001)", ["x:2"]),
        ("sum(x^10^10)", ["x:2"]),
        ("sum(x*2^2^2^2^2^2)", ["x:2"]),
        ("sum(x^(2^20))", ["x:2"]),
        ("sum(x^1e5)", ["x:2"]),
        ("sum(x)*2^5000", ["x:2"]),
        ("sum(x)*3^3000", ["x:2"]),
        ("sum(" + "-" * 300 + "x)", ["x:2"]),
        ("sum(" + "sin(" * 250 + "x" + ")" * 250 + ")", ["x:2"]),
        ("sum(x" + "+x" * 250 + ")", ["x:2"]),
        ("sum(x" + "^x" * 250 + ")", ["x:2"]),
        ("sum(x" + "[0]" * 250 + ")", ["x:2"]),
        ("sum(x" + ".T" * 250 + ")", ["x:2x2"]),
        ("sum(x)" + " " * 100_000, ["x:2"]),
        ("sum(x) #" + "#" * 100_000, ["x:2"]),
        ("sum(x)*" + "1" * 41, ["x:2"]),
        ("sum(x)*1e301", ["x:2"]),
        ("sum(x)", ["x:2", "--samples", "1001"]),
        ("x" + "+x" * 60_000, ["x:2"]),
    ]
    accepted: list[tuple[str, list[str]]] = [  # within the limits: must finish, with any verdict
        (
            "sum(" + "(" * _choice(r, [190, 201, 10_000]) + "x" + ")" * 10_000 + ")",
            ["x:2"],
        ),  # parens: no levels
        ("sum(x" + "+x" * 180 + ")", ["x:2"]),
        (_chain_program(_choice(r, [200, 1000, 3000]), " + 1"), ["x:2"]),
        (_chain_program(_choice(r, [30, 60, 200]), "*h0"), ["x:2"]),
        ("\n".join(["c = x"] + ["c = c*c"] * _choice(r, [20, 40, 64]) + ["out = sum(c)"]), ["x=[1.5,0.5]"]),
        ("\n".join(["c = x"] + ["c = c + c + 1"] * _choice(r, [50, 200, 1000]) + ["out = sum(c)"]), ["x:2"]),
        ("sum(x^1000)", ["x=[1.5,0.5]"]),
        ("sum((x+1)^1000)", ["x:2"]),
        ("sum(((x+1)^100)^10)", ["x=[0.5,1.5]"]),
        ("sum(x*2^4000)", ["x:2"]),
        ("sum(x)", [f"x:{_choice(r, ['1000000', '3000x3000', '10000000'])}"]),
        ("sum(outer(x, x))", ["x:3000"]),
        ("sum(x^2)", ["x:3000", "--expansion-budget", "100000"]),
        ("sum(tanh(x))", ["x:300", "--order", "2"]),
        ("sum(x*x)", ["x:2", "--samples", _choice(r, ["200", "1000"])]),
        ("sum(" + "+".join(f"x{i}" for i in range(300)) + ")", [f"x{i}:1" for i in range(300)]),
    ]
    if r.random() < 0.7:
        expr, rest = _choice(r, refused)
        expect = "refuse"
    else:
        expr, rest = _choice(r, accepted)
        expect = "any"
    args: list[str] = []
    for a in rest:
        args += [a] if a.startswith("--") or (args and args[-1].startswith("--")) else ["-i", a]
    if "--samples" not in args:
        args += ["--samples", "1"]
    return FuzzInput("bombs", ["grad", expr, *args, "--timeout", t], expect=expect)


# ---------------------------------------------------------------- 6. NaN, inf, overflow with -i

VALUE_EXPRS = [
    ('sum(exp(x))', ['x']), ('sum(x*x)', ['x']), ('sum(log(x))', ['x']), ('sum(sqrt(x))', ['x']),
    ('sum(x/y)', ['x', 'y']), ('sum(softmax(x)*y)', ['x', 'y']), ('logsumexp(x)', ['x']),
    ('sum(x^3)', ['x']), ('sum(sigmoid(x)*y)', ['x', 'y']), ('sum(tanh(x))', ['x']), ('mean(x)', ['x']),
    ('max(x)', ['x']), ('sum(relu(x))', ['x']), ('sum(x)*sum(y)', ['x', 'y']), ('sum(x^y)', ['x', 'y']),
    ('sum(softplus(x))', ['x']), ('cross_entropy(x, k)', ['x', 'k']), ('sum(x[k])', ['x', 'k']),
    ('sum(x*x)/sum(y*y)', ['x', 'y']), ('sum(log1p(x))', ['x']), ('sum(maximum(x, y))', ['x', 'y']),
    ('sum(x)', ['x']), ('sum(cos(x)*1e300)', ['x']),
]  # fmt: skip
HOSTILE_VALUES = [
    '=[NaN,1]', '=[Infinity,1]', '=[-Infinity,2]', '=[1e308,1e308]', '=[1e400]', ':2=1e308', ':2=nan',
    ':2=inf', '=1e-320', ':2=5e-324', '=[[1,2],[3]]', '=[]', '=[[]]', '=[true,false]', '=["a"]',
    '=[null]', '=[1,', '=[1e999999]',
    '=' + '[' * 5000 + '1' + ']' * 5000,
    '=' + '[' * 100 + '1' + ']' * 100,
    ':2~uniform(1e308,-1e308)', ':2~uniform(0,0)', ':2~normal(0,1e308)', ':2~uniform(nan,1)',
    ':2~uniform(inf,1)', ':2~normal(1e308,1e308)', ':2~uniform(1,1e-320)', ':2:int=[1e20,2]',
    ':2:int=[0.5,1]', ':2:int=[9223372036854775808,1]', ':3=[1,2]', ':2x2=[1,2,3,4]', ':0', ':0x3',
    ':2x0=1', '=-0', '=0.1e-310', ':2~uniform(-1e-320,1e-320)', '=[1e-320,-1e-320]', '=[709.8,1]',
    '=[710,1]', '=[-745.2,1]', '=[1e154,1e154]', '=[1.3407807929942596e154]', ':2=1e200', '=[0,0]',
    '=[-1,-2]', '=1e308', ':int=9223372036854775807', ':int=-1', ':int=7', ':scalar:int', '=[1,NaN]',
    '=NaN', '=1e310', '~uniform(1,2)', ':2~uniform(2,1)', ':2~normal(0,-1)', ':2~normal(0,0)',
    ':2:float=[1,2]', ':2x2x2x2x2x2x2x2=1', ':1=[[1]]', '=[[1e308],[1e308]]', '=[2e-308,3e-308]',
]  # fmt: skip


def gen_values(r: random.Random) -> FuzzInput:
    expr, names = _choice(r, VALUE_EXPRS)
    specs = []
    for name in names:
        if name == "k":
            specs.append(
                _choice(r, ["k:int=1", "k:int=-1", "k:int=5", "k:int=9223372036854775807", "k:int=[0]"])
            )
        elif r.random() < 0.7:
            specs.append(name + _choice(r, HOSTILE_VALUES))
        else:
            specs.append(f"{name}:2")
    fmt = ["--format", "json"]
    flags = ["--samples", str(r.randint(0, 2)), "--timeout", SYMBOLIC_TIMEOUT]
    return FuzzInput("values", ["grad", expr, *_spec_args(specs), *fmt, *flags], expect="finite")


# ---------------------------------------------------------------- 7. mutated suite YAML

HOSTILE_CASE_NAMES = [
    'a\nb', 'x::y', '::error::injected', 'a\rb', 'tab\there', '\x1b[31mred\x1b[0m', '\x00nul', '\ud800',
    'lone \udfff surrogate',
    'x' * 5000,
    '', ' ', '<![CDATA[', ']]>', '&amp;<tag/>', '%0A%25', '\u202eevil', '😀', 'a\u2028b', 'a\x85b',
    '--format', '-k', 'name,with,commas', 'key: value', '# comment', '\'"', '\x7f\x08', '\\n', 'a%b',
    '\ufeffbom',
]  # fmt: skip
HOSTILE_VALUES_YAML: list[Any] = [
    None, True, False, '', 'abc', -1, 0, 1, 2.5, 1e308, 1e-320, math.nan, math.inf, -math.inf, [], {},
    [[1, 2], [3]], 'x' * 3000, 2**70, -(2**63), [1, 'a', None], {'a': {'b': {'c': 1}}}, '2x2', [2, 3],
    [0], [-1, 2], [2.5], 'sum(x)', '\ud800', '..', '/etc/passwd', {'shape': [2]},
]  # fmt: skip
DATA_PATHS = [
    '../../../etc/passwd', '/etc/passwd', 'data/../../x.json', 'data/missing.json', '.', 'data',
    'data/bow_tutorial.json', '/dev/zero', 'data/mutated.json', 'data/mutated.yaml',
    'data/bow_tutorial.txt', 'data/empty.json', '../data/bow_tutorial.json',
    'data/bow_tutorial.json\x00.json', '~/x.json',
]  # fmt: skip
CASE_KEYS = [
    'name', 'description', 'expr', 'inputs', 'wrt', 'expect', 'engines', 'tolerance', 'samples', 'seed',
    'expansion_budget', 'order', 'timeout', 'outputs', 'train', 'impl', 'impl_grad', 'dtype', 'device',
    'mistakes',
]  # fmt: skip


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _deep_value(r: random.Random) -> Any:
    depth = _choice(r, [10, 63, 65, 100, 300])
    value: Any = 1
    for _ in range(depth):
        value = [value] if r.random() < 0.5 else {"k": value}
    return value


def mutate_data(r: random.Random, suite: dict[str, Any]) -> None:
    """Structural mutations of a suite's data, in place."""
    for _ in range(_choice(r, [0, 1, 1, 1, 2, 3])):
        paths = [p for p in _paths(suite) if p]
        if not paths:  # an earlier mutation left nothing to mutate (the suite emptied)
            return
        path = _choice(r, paths)
        parent = _get(suite, path[:-1])
        last = path[-1]
        op = r.choices(range(12), [3, 3, 3, 4, 1, 1, 6, 4, 2, 2, 3, 2])[0]
        if op == 0 and isinstance(parent, dict):
            del parent[last]
        elif op == 1 and isinstance(parent, dict) and isinstance(last, str):  # a key renamed or retyped
            new = _choice(
                r, [last + "r", last[:-1], last.upper(), _choice(r, CASE_KEYS), "<<", "", "x" * 100, 5]
            )
            parent[new] = parent.pop(last)
        elif op == 2 and isinstance(parent, dict):
            parent[_choice(r, [*CASE_KEYS, "unknown", "suite", "defaults", "cases"])] = _choice(
                r, HOSTILE_VALUES_YAML
            )
        elif op == 3:
            parent[last] = _choice(r, HOSTILE_VALUES_YAML)
        elif op == 4:
            parent[last] = _deep_value(r)
        elif op == 5 and isinstance(parent, list):
            parent.insert(r.randint(0, len(parent)), parent[last])
        else:
            cases = suite.get("cases")
            if not isinstance(cases, list) or not cases or not isinstance(cases[0], dict):
                continue
            case = _choice(r, [c for c in cases if isinstance(c, dict)] or [{}])
            if op == 6:
                case["name"] = _choice(r, HOSTILE_CASE_NAMES) + _choice(r, ["", " tail", "\n"])
            elif op == 7 and isinstance(case.get("expr"), str):
                case["expr"] = mutate_expression(r, case["expr"])
            elif op == 8:
                train = case.setdefault("train", {"parameters": list(case.get("inputs") or {"x": 0})[:1]})
                if isinstance(train, dict):
                    train["data"] = _choice(r, DATA_PATHS)
                    train["epochs"] = _choice(r, [1, 2, 0, -1, 100001, "x"])
            elif op == 9 and isinstance(case.get("inputs"), dict) and case["inputs"]:
                name = _choice(r, list(case["inputs"]))
                case["inputs"][name] = _choice(
                    r,
                    [{"shape": [100000, 100000]}, {"shape": [-1]}, {"shape": [2.5]}, {"shape": "2x2"},
                     {"value": [float("nan")]}, {"value": [1e308, -1e308]},
                     {"shape": [2], "fill": float("inf")},
                     {"shape": [2], "random": {"low": 1, "high": 0}}, {"shape": [2], "dtype": "complex"},
                     {"shape": [2], "random": {"distribution": "cauchy"}}, {"value": []}, {"shape": [0]}],
                )  # fmt: skip
            elif op == 10:
                case[
                    _choice(
                        r, ["tolerance", "engines", "timeout", "samples", "order", "outputs", "impl", "seed"]
                    )
                ] = _choice(
                    r,
                    [
                        {"rtol": -1},
                        {"atol": 1e308},
                        {"numeric": {"rtol": float("nan")}},
                        ["nope"],
                        [],
                        "symbolic",
                        ["symbolic"],
                        "os:system",
                        0,
                        -1,
                        1e308,
                        1001,
                        2.5,
                        3,
                        ["h", "nope"],
                        2**64,
                    ],
                )  # fmt: skip
            else:
                cases.append(dict(case))  # a duplicate name


YAML_WORDS = ("null", "true", "false", "yes", "no", "on", "off", "y", "n", "~")


def _scalar(value: Any, r: random.Random) -> str:
    if value is None:
        return _choice(r, ["null", "~", ""])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z(][^#:\[\]{},&*!|>'\"%@`]*", text) and text == text.strip()
    if plain and len(text) < 200 and text.lower() not in YAML_WORDS:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar, escapes and all


def _block_ok(text: str) -> bool:
    """Whether a string can be a `|` block scalar as written (printable lines, none indented first)."""
    lines = text.strip("\n").split("\n")
    return all(line.isprintable() and line == line.rstrip() for line in lines) and not lines[0].startswith(
        " "
    )


def emit_yaml(obj: Any, r: random.Random, indent: int = 0) -> str:
    """Block-style YAML for plain data; deep parts in flow style; strings quoted only when needed."""
    pad = " " * indent
    if indent > 60:
        return pad + json.dumps(obj, default=str) + "\n"
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        lines = []
        for k, v in obj.items():
            key = _scalar(k, r) if not isinstance(k, str) or k else '""'
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{key}:\n" + emit_yaml(v, r, indent + 2))
            elif isinstance(v, str) and "\n" in v.strip() and _block_ok(v):
                body = "".join(f"{pad}  {line}\n" for line in v.splitlines())
                lines.append(f"{pad}{key}: |\n{body}")
            else:
                value = emit_yaml(v, r, 0).strip() if isinstance(v, (dict, list)) else _scalar(v, r)
                lines.append(f"{pad}{key}: {value}\n")
        return "".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        out = []
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = emit_yaml(v, r, indent + 2)
                out.append(f"{pad}- " + inner[indent + 2 :])
            else:
                out.append(
                    f"{pad}- {emit_yaml(v, r, 0).strip() if isinstance(v, (dict, list)) else _scalar(v, r)}\n"
                )
        return "".join(out)
    return pad + _scalar(obj, r) + "\n"


YAML_TAGS = [
    f'!!python/object/apply:os.system ["touch {SCRATCH}/PWNED"]',
    f"!!python/object/apply:subprocess.check_output [[touch, {SCRATCH}/PWNED]]",
    "!!python/name:os.system", "!!python/object:builtins.object {}", "!!binary aGVsbG8=", "!!set {a, b}",
    "!!omap [a: 1]", "!!timestamp 2001-12-14", "!custom x", '!!float "1e5"', '!!int "0x10"', "!!str 5",
    '!!null ""', "!!bool yes", "!!python/tuple [1, 2]", "!!python/complex 1+2j", "!<tag:yaml.org,2002:str> x",
]  # fmt: skip


def mutate_yaml_text(r: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(_choice(r, [0, 0, 1, 1, 2])):
        op = r.randrange(16)
        i = r.randrange(len(lines))
        if op == 0:  # an anchor on a case (or the defaults), merged or aliased into a new case
            text = "\n".join(lines)
            if "\ndefaults:\n" in text and r.random() < 0.5:
                text = text.replace("\ndefaults:\n", "\ndefaults: &C\n", 1)
            else:
                text = text.replace("\n  - name:", "\n  - &C\n    name:", 1)
            lines = text.split("\n")
            lines.append(
                _choice(r, ["  - *C", "  - {<<: *C, name: merged}", "  - {<<: [*C, *C], name: merged}",
                            "  - {<<: *C, name: m2, expr: sum(x), inputs: {x: [1, 2]}}", "  - <<: *C",
                            "  - {<<: *C, <<: *C, name: m3}", "  - {<<: *nope, name: m4}"])
            )  # fmt: skip
        elif op == 1:  # a billion laughs, small or large (refusing the large one takes seconds)
            depth = _choice(r, [3, 3, 4, 6, 6, 9])
            laughs = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
            laughs += [f"l{j}: &l{j} [" + ", ".join([f"*l{j - 1}"] * 9) + "]" for j in range(1, depth)]
            lines = laughs + lines
        elif op == 2:
            lines[i] = lines[i] + " " + _choice(r, ["*nope", "&a [*a]", "*l0"])
        elif op == 3:  # a tag on a value
            m = re.match(r"^(\s*-?\s*[\w<]+:)\s*(.*)$", lines[i])
            if m:
                lines[i] = f"{m.group(1)} {_choice(r, YAML_TAGS)}"
        elif op == 4:
            lines.insert(i, lines[i])  # a duplicate key
        elif op == 5:
            lines[i] = lines[i].replace("  ", "\t", 1)
        elif op == 6:
            del lines[i]
        elif op == 7:
            j = r.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 8:
            lines[i] = " " * r.randint(1, 3) + lines[i] if r.random() < 0.5 else lines[i].lstrip()
        elif op == 9:
            lines.insert(
                i,
                _choice(
                    r, ["---", "...", "%YAML 1.1", "%TAG ! tag:evil.com,2000:", "--- !!map", "? complex key"]
                ),
            )
        elif op == 10:
            deep = _choice(r, [70, 100, 100, 300, 1000, 5000])
            lines.insert(i, "deep: " + "[" * deep + "]" * deep)
        elif op == 11:
            cut = r.randrange(len("\n".join(lines)) + 1)
            return "\n".join(lines)[:cut]
        elif op == 12:
            lines[i] = lines[i] + _choice(r, CONTROL + UNICODE + ["\x00", "\ufeff"])
        elif op == 13:
            lines[i] = lines[i].replace(
                ": ",
                ": "
                + _choice(
                    r, ["yes", "no", "0o17", "1_000", ".inf", "~", "2001-12-14", "0x1F", "+.5", "=", "<<"]
                )
                + " #",
                1,
            )
        elif op == 14:
            lines[i] = lines[i] + " " + "x" * _choice(r, [1000, 100_000])
        else:
            return ("\ufeff" if r.random() < 0.5 else "") + "\r\n".join(lines)
    return "\n".join(lines)


def _small_case(case: dict[str, Any]) -> dict[str, Any]:
    """A shipped case made cheap: inputs mapped small where that keeps them valid, training short."""
    case = json.loads(json.dumps(case))
    inputs = case.get("inputs") or {}
    total = 0
    for spec in inputs.values():
        if isinstance(spec, dict) and isinstance(spec.get("shape"), list):
            total += math.prod(spec["shape"])
    if total > 64 and "expect" not in case and "train" not in case:
        sizes = _small_shapes(inputs)
        for spec in inputs.values():
            if isinstance(spec, dict) and isinstance(spec.get("shape"), list):
                spec["shape"] = [sizes.get(d, d) for d in spec["shape"]]
    if isinstance(case.get("train"), dict):
        case["train"]["epochs"] = min(int(case["train"].get("epochs", 1)), 2)
    return case


def gen_yaml(r: random.Random) -> FuzzInput:
    pool = shipped_cases()
    picked = [_small_case(_choice(r, pool)[1]) for _ in range(r.randint(1, 2))]
    suite: dict[str, Any] = {"suite": "fuzz", "cases": picked}
    if r.random() < 0.3:
        suite["defaults"] = {"samples": r.randint(0, 2)}
    mutate_data(r, suite)
    text = mutate_yaml_text(r, emit_yaml(suite, r))
    files = {"suite.yaml": text}
    if "data/" in text or "data:" in text:
        files["data/bow_tutorial.json"] = (REPO / "expressions" / "data" / "bow_tutorial.json").read_text()
        files["data/mutated.json"] = mutate_yaml_text(r, files["data/bow_tutorial.json"])
        files["data/mutated.yaml"] = emit_yaml({"train": {"x": [[1, 0]], "y": [0]}}, r)
        files["data/empty.json"] = ""
    fmt = _choice(r, ["text", "json", "junit", "github"])
    argv = ["verify", f"{SCRATCH}/suite.yaml", "--format", fmt, "--samples", str(r.randint(0, 2))]
    if r.random() < 0.15:
        argv += ["-k", _choice(r, ["seed", "a", "", "\n", "x::y"])]
    return FuzzInput("yaml", [*argv, "--timeout", SYMBOLIC_TIMEOUT], files=files)


# ---------------------------------------------------------------- 8. flag combinations for grad


def gen_flags(r: random.Random) -> FuzzInput:
    p = build_program(r, tensor_output=0.3)
    if r.random() < 0.12:  # the other commands that derive: never a crash, whatever they refuse
        return _other_command(r, p)
    argv = ["grad", p.text, *_spec_args(p.specs)]
    sound = True

    def add(*items: str, ok: bool = True) -> None:
        nonlocal sound
        argv.extend(items)
        sound = sound and ok

    if r.random() < 0.4:
        if r.random() < 0.8:
            add("--samples", _choice(r, ["0", "1", "3", "5"]))
        else:
            add("--samples", _choice(r, ["-1", "1001", "abc", "2.5", ""]), ok=False)
    if r.random() < 0.3:
        if r.random() < 0.9:
            add("--seed", _choice(r, [str(r.randrange(2**32)), "0"]))
        else:
            add("--seed", _choice(r, ["-5", "x", "1e3"]), ok=False)
    outputs: list[str] = []
    if r.random() < 0.2:
        if p.steps and r.random() < 0.7:
            outputs = r.sample(sorted(p.steps), r.randint(1, len(p.steps)))
            add("--outputs", ",".join(outputs))
        else:
            add("--outputs", _choice(r, ["nope", "", ",", "a", "out", "h0,h0"]), ok=False)
    if r.random() < 0.25:  # second derivatives need scalar outputs
        add("--order", "2", ok=all(p.steps[o] == () for o in outputs) if outputs else p.scalar)
    if r.random() < 0.3:
        if p.floats and r.random() < 0.7:
            add("--wrt", ",".join(r.sample(p.floats, r.randint(1, len(p.floats)))))
        else:
            add("--wrt", _choice(r, ["y", "k", "nope", "", ",,", "a,a", "out"]), ok=False)
    if r.random() < 0.3:
        dtype = _choice(r, ["float64", "float32", "float32", "float16", "bfloat16", "int8"])
        add("--dtype", dtype, ok=dtype in ("float64", "float32"))
    if r.random() < 0.15:
        device = _choice(r, ["cpu", "cuda", "cuda:99", "tpu", "", "meta"])
        add("--device", device, ok=device == "cpu")
    if r.random() < 0.5:
        add("--format", _choice(r, ["text", "json", "junit", "github", "markdown"]))
    if r.random() < 0.2:
        add("--color", _choice(r, ["always", "never", "auto"]))
    if r.random() < 0.25:
        engines = ["symbolic", "autograd", "torch", "numeric"]
        pick = r.sample(engines, r.randint(1, 4))
        if r.random() < 0.1:
            pick.append(_choice(r, ["nope", "", "impl", "Torch"]))
        # Two engines with symbolic among them: where it gives up (its --timeout), one is left, and a
        # point with one engine fails by design (a check that cannot fail is a defect).
        enough = len(pick) >= 3 or (len(pick) == 2 and "symbolic" not in pick)
        add("--engines", ",".join(pick), ok=enough and set(pick) <= set(engines))
    if r.random() < 0.2:
        add("--expansion-budget", _choice(r, ["0", "1", "3", "1000"]))
    if r.random() < 0.2:
        add("-v")
    if r.random() < 0.1:
        add("--fail-on-skip")
    if r.random() < 0.1:
        name = _choice(r, p.floats or ["b"])
        add(
            "--claim",
            _choice(r, [f"{name}: 2*{name}", f"{name}: garbage(", "nope: 1", f"{name}:", "::"]),
            ok=False,
        )
    if r.random() < 0.05:
        add(
            "--impl",
            _choice(r, ["math:sqrt", "builtins:len", "nonexistent_mod:f", "json:dumps", "os", ":"]),
            ok=False,
        )
        if r.random() < 0.5:
            add("--allow-import", ok=False)
    if r.random() < 0.03:
        add("--engine-plugin", _choice(r, ["nope:X", "json:JSONDecoder", "x"]), ok=False)
    if r.random() < 0.15:
        add("--timeout", _choice(r, ["0.01", "1", "0", "-1", "nan", "inf", "1e-300"]))
        sound = sound and argv[-1] in ("0.01", "1")
    else:
        argv += ["--timeout", SYMBOLIC_TIMEOUT]
    return FuzzInput("flags", argv, expect="pass" if sound else "any")


def _other_command(r: random.Random, p: ProgramSpec) -> FuzzInput:
    """`backward --emit torch` (an op it cannot translate is refused) or `explain`, with or without
    the input specs (explain picks default shapes), in its formats, with a claim or not."""
    specs = _spec_args(p.specs) if r.random() < 0.8 else []
    if r.random() < 0.5:
        argv = ["backward", p.text, *specs, "--emit", "torch"]
        if r.random() < 0.3:
            argv += ["--name", _choice(r, ["Fn", "my_fn", "1bad", "class", ""])]
    else:
        argv = ["explain", p.text, *specs, "--format", _choice(r, ["text", "markdown", "latex"])]
        if p.floats and r.random() < 0.5:
            name = _choice(r, p.floats)
            argv += [
                "--claim",
                _choice(r, [f"{name}: 2*{name}", f"{name}: 1", f"{name}: where({name} > 0, 1, 0)"]),
            ]
    if p.floats and r.random() < 0.3:
        argv += ["--wrt", _choice(r, p.floats)]
    return FuzzInput("flags", [*argv, "--timeout", SYMBOLIC_TIMEOUT], expect="any")


# ---------------------------------------------------------------- the classes

CLASSES: dict[str, Callable[[random.Random], FuzzInput]] = {
    "text": gen_text,
    "mutation": gen_mutation,
    "program": gen_program,
    "names": gen_names,
    "bombs": gen_bomb,
    "values": gen_values,
    "yaml": gen_yaml,
    "flags": gen_flags,
}


def generate(cls: str, seed: int | str) -> FuzzInput:
    """The input of a class for a seed: the same on every run and machine."""
    return CLASSES[cls](random.Random(f"{cls}:{seed}"))


def strategy(cls: str) -> Any:
    """A hypothesis strategy of the class's inputs: `generate(cls, seed)` over integer seeds, so the
    tests draw from the same distribution as bench/fuzz.py (hypothesis's own `st.randoms()` favours
    boundary values: every optional flag at once, the same input again and again)."""
    from hypothesis import strategies as st

    return st.integers(0, 2**32 - 1).map(lambda seed: generate(cls, seed))


# ---------------------------------------------------------------- running and judging one input

FRAME_RE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
EXC_RE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration|Fault))\b")
GITHUB_RE = re.compile(r"^::(error|warning|notice|debug|group|endgroup)( [^:]*)?::")


def _frame(path: str, line: str, func: str) -> str:
    """`symcheck/x/y.py:12 in f`, or for a library `ruamel/yaml/scanner.py:346 in f`."""
    for marker, keep in (("/site-packages/", False), ("/symcheck/", True)):
        if marker in path:
            cut = path.rindex(marker)
            short = path[cut + 1 :] if keep else path[cut + len(marker) :]
            break
    else:
        short = Path(path).name
    return f"{short}:{line} in {func}"


def parse_traceback(text: str) -> tuple[str, str, str]:
    """(exception type, last symcheck frame or last frame, last frame) of the last traceback in text."""
    start = text.rfind("Traceback (most recent call last)")
    block = text[start:] if start >= 0 else text
    frames = FRAME_RE.findall(block)
    if not frames:
        return "", "", ""
    last = _frame(*frames[-1])
    own = [f for f in frames if "/symcheck/" in f[0] and "/tests/" not in f[0]]
    exc = ""
    tail = block[block.rfind(frames[-1][0]) :].splitlines()
    for line in tail[1:]:
        m = EXC_RE.match(line.strip())
        if m:
            exc = m.group(1).rsplit(".", 1)[-1]
    return exc, _frame(*own[-1]) if own else last, last


def _crash_from_exception(exc_info: Any) -> tuple[str, str, str, str]:
    text = "".join(traceback.format_exception(*exc_info))
    exc, frame, last = parse_traceback(text)
    return exc or exc_info[0].__name__, frame, last, text[-3000:]


def _json_traces(stdout: str) -> str:
    """The tracebacks a JSON report holds (a case's error, an engine's crash), as one text."""
    try:
        report = json.loads(stdout)
    except ValueError:
        return ""
    traces = []
    for case in report.get("cases", []):
        if case.get("error"):
            traces.append(str(case["error"]))
        for point in case.get("points", []):
            traces.extend(str(t) for t in (point.get("crashed") or {}).values())
    return "\n".join(traces)


def _with_json_format(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--format":
            skip = True
            continue
        out.append(a)
    return [*out, "--format", "json"]


def _mismatch_summary(output: str) -> str:
    """Which engines part, from a report: the first MISMATCH/FAILED/CRASHED lines."""
    found = []
    for line in output.splitlines():
        s = line.strip()
        m = re.match(r"MISMATCH\s+(\S+) vs (\S+), ([^,]+),", s)
        if m:
            found.append(f"{m.group(1)} vs {m.group(2)}: {m.group(3)}")
        elif (s.startswith(("FAILED", "CRASHED", "expect")) and "WRONG" in s) or s.startswith(
            ("FAILED", "CRASHED")
        ):
            found.append(re.sub(r"\s+", " ", s)[:140])
    if not found:
        for line in output.splitlines():
            if "error" in line.lower() or "FAIL" in line:
                found.append(line.strip()[:140])
                break
    return "; ".join(dict.fromkeys(found).keys()) or output.strip()[-200:]


def _nonfinite(value: Any) -> bool:
    if isinstance(value, list):
        return any(_nonfinite(v) for v in value)
    if isinstance(value, (int, float)):
        return not math.isfinite(value)
    return isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity")


def _format_problem(argv: list[str], stdout: str) -> str | None:
    """What is wrong with a machine-readable report, if anything."""
    fmt = argv[argv.index("--format") + 1] if "--format" in argv[:-1] else "text"
    if argv[0] not in ("grad", "verify"):
        return None
    if fmt == "json":
        try:
            json.loads(stdout)
        except ValueError as e:
            return f"--format json wrote no JSON: {e}"
    elif fmt == "junit":
        try:
            ET.fromstring(stdout.encode("utf-8", "surrogatepass"))
        except (ET.ParseError, ValueError) as e:
            return f"--format junit wrote malformed XML: {e}"
    elif fmt == "github":
        for line in stdout.split("\n"):  # the runner splits on \n only: \x85 or \u2028 start no line
            if line.startswith("::") and not GITHUB_RE.match(line):
                return f"--format github wrote a line that is no workflow command: {line[:80]!r}"
    return None


def judge(
    inp: FuzzInput, code: int | None, stdout: str, stderr: str, exc_info: Any, scratch: Path, argv: list[str]
) -> Outcome:
    output = stdout + stderr
    tail = output[-2000:]
    if exc_info is not None and not isinstance(exc_info[1], SystemExit):
        exc, frame, last, text = _crash_from_exception(exc_info)
        return Outcome(code, "crash", f"{exc} escaped the CLI", exc, frame, last, text)
    if code == 3:
        exc, frame, last = parse_traceback(output)
        return Outcome(code, "crash", "exit 3 (internal error)", exc, frame, last, tail)
    if code not in (0, 1, 2):
        return Outcome(code, "crash", f"exit code {code}", detail=tail)
    if (scratch / "PWNED").exists():
        return Outcome(
            code, "crash", "a YAML tag ran code", "CodeExecution", "suites/positioned_yaml.py", detail=tail
        )
    if code == 2:
        if not output.strip():
            return Outcome(code, "disagreement", "exit 2 without a message", detail=tail)
        if "Traceback (most recent call last)" in output:
            exc, frame, last = parse_traceback(output)
            return Outcome(code, "disagreement", "exit 2 with a traceback", exc, frame, last, tail)
    else:
        problem = _format_problem(argv, stdout)
        if problem:
            return Outcome(code, "disagreement", problem, detail=tail)
    if inp.expect == "pass" and code != 0:
        what = _mismatch_summary(output)
        verdict = "engines part" if code == 1 else "refused a well-typed program"
        return Outcome(code, "disagreement", f"{verdict}: {what}", detail=tail)
    if inp.expect == "refuse" and code != 2:
        return Outcome(code, "disagreement", f"beyond a limit, yet exit {code}", detail=tail)
    if inp.expect == "finite" and code == 0:
        try:
            cases = json.loads(stdout).get("cases", [])
        except ValueError:
            cases = []
        if any(_nonfinite(c.get("value")) for c in cases):
            return Outcome(code, "disagreement", "passed with a non-finite value", detail=tail)
    return Outcome(code, "ok")


def write_files(inp: FuzzInput, folder: Path) -> None:
    for name, text in inp.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.replace(SCRATCH, str(folder)).encode("utf-8", "surrogatepass"))


def _invoke(argv: list[str]) -> tuple[int | None, str, str, Any]:
    from click.testing import CliRunner

    from symcheck.cli import main

    result = CliRunner().invoke(main, argv, catch_exceptions=True)
    return result.exit_code, _text(result, "stdout"), _text(result, "stderr"), result.exc_info


def _text(result: Any, stream: str) -> str:
    data: bytes = getattr(result, f"{stream}_bytes") or b""
    return data.decode("utf-8", "backslashreplace")


def run_input(inp: FuzzInput, workdir: str | Path | None = None) -> Outcome:
    """Run one input in this process and judge it. Files go to a fresh folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="symfuzz-", dir=workdir))
    try:
        write_files(inp, folder)
        argv = [a.replace(SCRATCH, str(folder)) for a in inp.argv]
        start = time.perf_counter()
        code, stdout, stderr, exc_info = _invoke(argv)
        seconds = time.perf_counter() - start
        outcome = judge(inp, code, stdout, stderr, exc_info, folder, argv)
        if outcome.verdict == "crash" and not outcome.frame and argv[0] in ("grad", "verify"):
            # An engine's crash or a case's error: the JSON report holds the traceback.
            _, stdout2, _, _ = _invoke(_with_json_format(argv))
            exc, frame, last = parse_traceback(_json_traces(stdout2))
            outcome.exc_type, outcome.frame, outcome.last_frame = exc, frame, last
            outcome.detail += "\n" + _json_traces(stdout2)[-2000:]
        outcome.seconds = seconds
        outcome.gave_up = "gave up after" in stdout
        return outcome
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def describe(inp: FuzzInput, outcome: Outcome) -> str:
    """A failure message: the reproducer and what went wrong."""
    files = "".join(f"\n--- {name}\n{text[:3000]}" for name, text in inp.files.items())
    return (
        f"{inp.cls}: {outcome.verdict}: {outcome.reason} (exit {outcome.exit_code}; expected {inp.expect})\n"
        f"  {outcome.exc_type} at {outcome.frame}\n  reproduce: {inp.command()}{files}\n"
        f"{outcome.detail[-2500:]}"
    )


# ---------------------------------------------------------------- the hypothesis side


def fuzz_examples(strategy_: Any, max_examples: int) -> None:
    """Run a strategy's inputs through `run_input` at a small example budget (deterministic: the
    same examples on every run). A finding fails the test with its reproducer; a finding of
    KNOWN_BUGS does not stop the run but makes the test an xfail, listing which were hit."""
    import pytest
    from hypothesis import HealthCheck, Phase, given, settings

    known: list[str] = []

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # a smaller seed is no simpler input: no shrinking
    )
    @given(strategy_)
    def one(inp: FuzzInput) -> None:
        outcome = run_input(inp)
        if outcome.verdict == "ok":
            return
        why = known_bug(inp.cls, outcome)
        if why is not None:
            known.append(f"{why} ({inp.command()[:160]})")
            return
        raise AssertionError(describe(inp, outcome))

    one()
    if known:
        pytest.xfail(
            "known bug(s), see KNOWN_BUGS in tests/fuzz/generators.py: " + "; ".join(sorted(set(known)))
        )
