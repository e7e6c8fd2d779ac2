"""The symbolic engine's rule table: what each op of the catalogue is to SymPy, in one place.

For an elementwise op a row says
- `closed`: its meaning on SymPy expressions, as closed forms use it. Where SymPy has no function
  of that name, a SymPy `Function` of ours (functions.py) that owns its derivative, so that closed
  forms read like the language: d/dx softplus(x) = sigmoid(x), not exp(x)/(exp(x) + 1);
- `elementary`: the same op written with exp, log and Piecewise, which the expansion (the exact
  ground truth) uses instead, and which proofs rewrite the named functions into. It is an
  independent check of the `fdiff` rules in functions.py. None: `closed` is elementary already;
- `function`: the SymPy function that stands for the op in closed forms: printed with the op's
  name by the language printer, and with `latex` in LaTeX (None: SymPy's own LaTeX);
- `numpy`: how lambdify evaluates that function on arrays (None: numpy's function of its name);
- `textbook`: the rule `symcheck explain` cites.

Tensor ops (sum, matmul, softmax, ...) are atoms of the closed form (closed_form.py): their rows
carry only the textbook rule; their tensor-level VJPs are written in `Graph._vjp`.

Adding an elementwise op is one row here; a catalogue op without a row fails the table test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1, log1p

from symcheck.engines.symbolic.functions import (
    Abs,
    atan2,
    ceil,
    condition_of,
    detach,
    elementary_abs,
    elementary_relu,
    elementary_sign,
    elementary_step,
    floor,
    indicator,
    maximum,
    minimum,
    numpy_erf,
    numpy_sigmoid,
    numpy_tie,
    relu,
    sigmoid,
    sign,
    softplus,
    step,
)
from symcheck.engines.symbolic.functions import (
    round as round_,
)


@dataclass(frozen=True)
class Rule:
    closed: Callable[..., sympy.Expr] | None = None
    elementary: Callable[..., sympy.Expr] | None = None
    function: Any = None  # a SymPy function class (sympy.exp, or one of functions.py)
    latex: str | None = None
    numpy: Callable[..., Any] | None = None
    textbook: str = ""


RULES: dict[str, Rule] = {
    # constants (their derivative is 0)
    "pi": Rule(lambda: sympy.pi),
    "e": Rule(lambda: sympy.E),
    # arithmetic
    "add": Rule(lambda a, b: a + b, textbook="sum rule"),
    "sub": Rule(lambda a, b: a - b, textbook="sum rule"),
    "mul": Rule(lambda a, b: a * b),  # product rule or constant multiple: explain decides per call
    "div": Rule(lambda a, b: a / b, textbook="quotient rule"),
    "pow": Rule(lambda a, b: a**b),  # power rule, or x^y = exp(y*log(x)): per call
    "neg": Rule(lambda a: -a, textbook="constant multiple"),
    # functions SymPy has
    "exp": Rule(sympy.exp, function=sympy.exp, textbook="exp rule: (e^u)' = e^u"),
    "log": Rule(sympy.log, function=sympy.log, textbook="log rule: (log u)' = 1/u"),
    "log1p": Rule(log1p, lambda x: sympy.log(1 + x), log1p, None, np.log1p, "log1p' = 1/(1 + u)"),
    "sqrt": Rule(sympy.sqrt, textbook="power rule: sqrt(u) = u^(1/2)"),
    "sin": Rule(sympy.sin, function=sympy.sin, textbook="sin' = cos"),
    "cos": Rule(sympy.cos, function=sympy.cos, textbook="cos' = -sin"),
    "tan": Rule(sympy.tan, function=sympy.tan, textbook="tan' = 1 + tan^2"),
    "tanh": Rule(sympy.tanh, function=sympy.tanh, textbook="tanh' = 1 - tanh^2"),
    "sinh": Rule(sympy.sinh, function=sympy.sinh, textbook="sinh' = cosh"),
    "cosh": Rule(sympy.cosh, function=sympy.cosh, textbook="cosh' = sinh"),
    "atan": Rule(
        sympy.atan, function=sympy.atan, latex=r"\arctan", numpy=np.arctan, textbook="atan' = 1/(1 + u^2)"
    ),
    "asin": Rule(sympy.asin, None, sympy.asin, r"\arcsin", np.arcsin, "asin' = 1/sqrt(1 - u^2)"),
    "acos": Rule(
        sympy.acos,
        function=sympy.acos,
        latex=r"\arccos",
        numpy=np.arccos,
        textbook="acos' = -1/sqrt(1 - u^2)",
    ),
    "atan2": Rule(
        atan2,
        None,
        atan2,
        r"\operatorname{atan2}",
        np.arctan2,
        "atan2: d/dy = x/(x^2 + y^2), d/dx = -y/(x^2 + y^2)",
    ),
    "expm1": Rule(expm1, lambda x: sympy.exp(x) - 1, expm1, None, np.expm1, "expm1' = exp"),
    "erf": Rule(sympy.erf, function=sympy.erf, numpy=numpy_erf, textbook="erf' = 2/sqrt(pi)*exp(-u^2)"),
    # functions of ours (functions.py), each with its elementary definition
    "sigmoid": Rule(
        sigmoid,
        lambda x: 1 / (1 + sympy.exp(-x)),
        sigmoid,
        r"\sigma",
        numpy_sigmoid,
        "sigmoid' = sigmoid*(1 - sigmoid)",
    ),
    "softplus": Rule(
        softplus,
        lambda x: sympy.log(1 + sympy.exp(x)),
        softplus,
        r"\operatorname{softplus}",
        lambda x: np.logaddexp(0.0, x),
        "softplus' = sigmoid",
    ),
    # compositions: their closed forms are written with the functions above
    "silu": Rule(lambda x: x * sigmoid(x), textbook="silu(u) = u*sigmoid(u)"),
    "logsigmoid": Rule(lambda x: -softplus(-x), textbook="logsigmoid(u) = -softplus(-u)"),
    # its form depends on a keyword (approximate): functions.gelu, lowered by the graph
    "gelu": Rule(textbook="gelu(u) = u*Phi(u) = u/2*(1 + erf(u/sqrt(2)))"),
    "leaky_relu": Rule(textbook="leaky_relu' = 1 where u > 0, else slope (slope at 0)"),
    "elu": Rule(textbook="elu' = 1 where u > 0, else alpha*e^u (alpha at 0)"),
    "hardtanh": Rule(textbook="hardtanh' = 1 strictly between the bounds, else 0"),
    "relu": Rule(
        relu,
        elementary_relu,
        relu,
        r"\operatorname{relu}",
        lambda x: np.maximum(x, 0.0),
        "relu' = step (0 at 0)",
    ),
    "abs": Rule(Abs, elementary_abs, Abs, None, np.abs, "abs' = sign (0 at 0)"),
    "sign": Rule(sign, elementary_sign, sign, r"\operatorname{sign}", np.sign),
    "detach": Rule(detach, None, detach, r"\operatorname{detach}", lambda x: x, "detach' = 0 (no gradient)"),
    "floor": Rule(floor, None, floor, r"\operatorname{floor}", np.floor, "floor' = 0 (piecewise constant)"),
    "ceil": Rule(ceil, None, ceil, r"\operatorname{ceil}", np.ceil, "ceil' = 0 (piecewise constant)"),
    "round": Rule(round_, None, round_, r"\operatorname{round}", np.round, "round' = 0 (piecewise constant)"),
    "step": Rule(
        step,
        elementary_step,
        step,
        r"\operatorname{step}",
        lambda x: (np.asarray(x) > 0).astype(float),
    ),
    # comparisons are numbers in arithmetic: 1 where they hold, else 0
    "lt": Rule(lambda a, b: indicator(a < b)),
    "le": Rule(lambda a, b: indicator(a <= b)),
    "gt": Rule(lambda a, b: indicator(a > b)),
    "ge": Rule(lambda a, b: indicator(a >= b)),
    "eq": Rule(lambda a, b: indicator(sympy.Eq(a, b))),
    "ne": Rule(lambda a, b: indicator(sympy.Ne(a, b))),
    "where": Rule(
        lambda c, a, b: sympy.Piecewise((a, condition_of(c)), (b, True)),
        textbook="where: the gradient goes to the branch that was chosen",
    ),
    "maximum": Rule(
        maximum,
        sympy.Max,
        maximum,
        r"\max",
        np.maximum,
        "maximum: the gradient goes to the larger argument",
    ),
    "minimum": Rule(
        minimum,
        sympy.Min,
        minimum,
        r"\min",
        np.minimum,
        "minimum: the gradient goes to the smaller argument",
    ),
    "clamp": Rule(),  # its bounds are keyword arguments: functions.clamp, lowered by the graph
    # tensor ops: atoms of the closed form, with their rules in Graph._vjp
    "sum": Rule(textbook="sum: every element receives the upstream gradient"),
    "mean": Rule(),  # mean: 1/N, with N counted per call
    "var": Rule(textbook="var: d/dx_i = 2*(x_i - mean(x))/(N - correction)"),
    "std": Rule(textbook="std = sqrt(var): d/dx_i = (x_i - mean(x))/((N - correction)*std)"),
    "matmul": Rule(textbook="matmul rule: d(A @ B) gives G @ B.T for A and A.T @ G for B"),
    "transpose": Rule(textbook="transpose: the gradient is transposed back"),
    "prod": Rule(textbook="prod: each element's gradient is the product of the others"),
    "norm": Rule(textbook="norm: d||x||_2 = x/||x||_2; d||x||_1 = sign(x)"),
    "cumsum": Rule(textbook="cumsum: each element gets the sum of the gradients from it to the end"),
    "cumprod": Rule(textbook="cumprod: d out_k/d x_i = out_k/x_i for i <= k"),
    "expand_dims": Rule(textbook="expand_dims: the gradient is summed over the new axis"),
    "reshape": Rule(textbook="reshape: the gradient is reshaped back"),
    "flatten": Rule(textbook="flatten: the gradient is reshaped back"),
    "squeeze": Rule(textbook="squeeze: the gradient is reshaped back"),
    "flip": Rule(textbook="flip: the gradient is flipped back"),
    "tril": Rule(textbook="tril: the gradient keeps the lower triangle"),
    "triu": Rule(textbook="triu: the gradient keeps the upper triangle"),
    "diagonal": Rule(textbook="diagonal: the gradient goes back onto the diagonal (undiagonal)"),
    "undiagonal": Rule(textbook="undiagonal: the gradient is read off the diagonal"),
    "concat": Rule(textbook="concat: each argument gets its slice of the gradient"),
    "stack": Rule(textbook="stack: each argument gets its index of the gradient"),
    "pad": Rule(textbook="pad: the gradient is cropped back (a slice)"),
    "slice": Rule(textbook="slicing: the gradient goes back where the slice read, zeros elsewhere (unslice)"),
    "unslice": Rule(textbook="unslice: the gradient is sliced back out"),
    "broadcast_to": Rule(),
    "softmax": Rule(textbook="softmax rule: s*(g - sum(g*s))"),
    "log_softmax": Rule(textbook="log_softmax rule: g - softmax*sum(g)"),
    "logsumexp": Rule(textbook="logsumexp' = softmax"),
    "nll_loss": Rule(textbook="nll_loss: -log p[y] picks the label's entry: -onehot(y)"),
    "cross_entropy": Rule(textbook="cross_entropy: softmax(z) - onehot(y)"),
    "mse_loss": Rule(),
    "einsum": Rule(textbook="einsum: each operand's gradient is the einsum of g with the other operands"),
    "outer": Rule(textbook="outer product rule"),
    "dot": Rule(textbook="dot product rule"),
    "trace": Rule(textbook="trace' = eye(n)"),
    "eye": Rule(),
    "onehot": Rule(),
    "max": Rule(),
    "min": Rule(),
    "gather": Rule(textbook="gather: the gradient is scattered back where it was read (scatter_add)"),
    "scatter_add": Rule(textbook="scatter_add: x gets g; src gets g gathered where it was added"),
    "index_select": Rule(textbook="index_select: the gradient is scattered back to the rows it read"),
    "embedding": Rule(textbook="embedding: each row gets the sum of the gradients of its lookups"),
    "layer_norm": Rule(textbook="layer_norm: its definition, (x - mean)/sqrt(var + eps)*w + b"),
    "rms_norm": Rule(textbook="rms_norm: its definition, x/sqrt(mean(x^2) + eps)*w"),
    "batch_norm": Rule(textbook="batch_norm: its definition, per channel over the batch"),
    "group_norm": Rule(textbook="group_norm: its definition, per group of channels"),
    "attention": Rule(textbook="attention: its definition, softmax(q @ k.T*scale) @ v"),
    "binary_cross_entropy": Rule(textbook="binary_cross_entropy: d/dp = (p - y)/(p*(1 - p))"),
    "binary_cross_entropy_with_logits": Rule(
        textbook="binary_cross_entropy_with_logits: d/dz = sigmoid(z) - y"
    ),
    "l1_loss": Rule(textbook="l1_loss: sign(a - b)"),
    "smooth_l1_loss": Rule(textbook="smooth_l1_loss: (a - b)/beta inside beta, else sign(a - b)"),
    "kl_div": Rule(textbook="kl_div: d/dlogq = -p"),
    "det": Rule(textbook="det: d det(A) = det(A)*inv(A).T (Jacobi's formula)"),
    "inv": Rule(textbook="inv: d inv(A) = -inv(A).T @ G @ inv(A).T"),
    "logdet": Rule(textbook="logdet: d log det(A) = inv(A).T"),
    "solve": Rule(textbook="solve(A, b) = inv(A) @ b"),
    "cholesky": Rule(textbook="cholesky: L^-T Phi(L^T G) L^-1, symmetrised (Murray 2016)"),
    "unfold": Rule(textbook="unfold: each window's gradient is summed back where it read (fold)"),
    "fold": Rule(textbook="fold: the gradient is read window by window (unfold)"),
    "conv1d": Rule(textbook="conv1d: its definition, the filters times unfold's windows"),
    "conv2d": Rule(textbook="conv2d: its definition, the filters times unfold's windows"),
    "avg_pool2d": Rule(textbook="avg_pool2d: each window's mean"),
    "max_pool2d": Rule(textbook="max_pool2d: each window's maximum gets the gradient"),
    "index": Rule(),
    "take": Rule(),
}

# The views of the table that the engine's parts read.

# op -> its meaning on SymPy expressions (closed forms).
ELEMENTWISE: dict[str, Callable[..., sympy.Expr]] = {
    op: rule.closed for op, rule in RULES.items() if rule.closed is not None
}
# op -> its meaning in elementary functions (the expansion).
EXPANDED: dict[str, Callable[..., sympy.Expr]] = {
    op: rule.elementary or rule.closed for op, rule in RULES.items() if rule.closed is not None
}
# SymPy function class name -> the op name it prints as (`Abs` prints as `abs`).
PRINTED_NAMES: dict[str, str] = {
    rule.function.__name__: op for op, rule in RULES.items() if rule.function is not None
}
# SymPy function class name -> LaTeX, where SymPy's own would not do.
LATEX_NAMES: dict[str, str] = {
    rule.function.__name__: rule.latex for rule in RULES.values() if rule.function is not None and rule.latex
}
# SymPy function class name -> numpy implementation, for lambdify.
NUMPY_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    rule.function.__name__: rule.numpy for rule in RULES.values() if rule.function is not None and rule.numpy
}
NUMPY_IMPLEMENTATIONS["tie"] = numpy_tie  # a max/min reduction's tie test, in its gradient only

# Our named functions -> their elementary definitions, for proofs against the expansion.
DEFINITIONS: dict[Any, Callable[..., sympy.Expr]] = {
    rule.function: rule.elementary
    for rule in RULES.values()
    if rule.function is not None and rule.elementary is not None
}
# op -> the textbook rule explain cites.
TEXTBOOK: dict[str, str] = {op: rule.textbook for op, rule in RULES.items() if rule.textbook}
