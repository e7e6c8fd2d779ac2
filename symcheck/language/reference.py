"""The op reference: each op's torch counterpart, and the coverage of the op families real models
use. `symcheck ops --format markdown` renders it as docs/ops.md (a test keeps that file current).

The families are tinygrad's gradient-tested ops plus the differentiable torch ops most used in
models: 52 of them. Each is covered natively (an op of the catalogue), by composition (exactly, at
any shape, written with ops of the language), or not at all.
"""

from __future__ import annotations

from symcheck.language.catalogue import CATALOGUE, OpSpec

# op -> the torch function it is checked against (the torch engine lowers to it)
TORCH: dict[str, str] = {
    "add": "torch.add (+)",
    "sub": "torch.sub (-)",
    "mul": "torch.mul (*)",
    "div": "torch.div (/)",
    "pow": "torch.pow (**)",
    "neg": "torch.neg",
    "matmul": "torch.matmul (@)",
    "exp": "torch.exp",
    "log": "torch.log",
    "log1p": "torch.log1p",
    "sqrt": "torch.sqrt",
    "sin": "torch.sin",
    "cos": "torch.cos",
    "tan": "torch.tan",
    "tanh": "torch.tanh",
    "sinh": "torch.sinh",
    "cosh": "torch.cosh",
    "atan": "torch.atan",
    "asin": "torch.asin",
    "acos": "torch.acos",
    "atan2": "torch.atan2",
    "expm1": "torch.expm1",
    "erf": "torch.erf",
    "sigmoid": "torch.sigmoid",
    "relu": "torch.relu",
    "leaky_relu": "F.leaky_relu",
    "elu": "F.elu",
    "hardtanh": "F.hardtanh",
    "abs": "torch.abs",
    "softplus": "F.softplus",
    "silu": "F.silu",
    "gelu": "F.gelu",
    "logsigmoid": "F.logsigmoid",
    "sign": "torch.sign",
    "detach": "Tensor.detach",
    "floor": "torch.floor",
    "ceil": "torch.ceil",
    "round": "torch.round",
    "step": "(x > 0) (relu's derivative)",
    "pi": "math.pi",
    "e": "math.e",
    "sum": "torch.sum",
    "mean": "torch.mean",
    "var": "torch.var",
    "std": "torch.std",
    "prod": "torch.prod",
    "norm": "torch.linalg.vector_norm",
    "cumsum": "torch.cumsum",
    "cumprod": "torch.cumprod",
    "transpose": "torch.permute (.T)",
    "expand_dims": "torch.unsqueeze",
    "reshape": "torch.reshape",
    "flatten": "torch.flatten",
    "squeeze": "torch.squeeze",
    "flip": "torch.flip",
    "tril": "torch.tril",
    "triu": "torch.triu",
    "diagonal": "torch.diagonal",
    "undiagonal": "torch.diagonal_scatter (into zeros)",
    "concat": "torch.cat",
    "stack": "torch.stack",
    "pad": "F.pad (constant)",
    "slice": "Tensor.__getitem__ (ranges)",
    "unslice": "torch.slice_scatter (into zeros)",
    "softmax": "F.softmax",
    "log_softmax": "F.log_softmax",
    "logsumexp": "torch.logsumexp",
    "einsum": "torch.einsum",
    "outer": "torch.outer",
    "dot": "torch.dot",
    "trace": "torch.trace",
    "mse_loss": "F.mse_loss",
    "layer_norm": "F.layer_norm",
    "rms_norm": "F.rms_norm",
    "batch_norm": "F.batch_norm (training)",
    "group_norm": "F.group_norm",
    "attention": "F.scaled_dot_product_attention",
    "binary_cross_entropy": "F.binary_cross_entropy",
    "binary_cross_entropy_with_logits": "F.binary_cross_entropy_with_logits",
    "l1_loss": "F.l1_loss",
    "smooth_l1_loss": "F.smooth_l1_loss",
    "kl_div": "F.kl_div",
    "det": "torch.linalg.det",
    "inv": "torch.linalg.inv",
    "logdet": "torch.logdet",
    "solve": "torch.linalg.solve",
    "cholesky": "torch.linalg.cholesky (of (A + A.T)/2)",
    "unfold": "F.unfold",
    "fold": "F.fold",
    "conv1d": "F.conv1d",
    "conv2d": "F.conv2d",
    "avg_pool2d": "F.avg_pool2d",
    "max_pool2d": "F.max_pool2d",
    "onehot": "F.one_hot",
    "nll_loss": "F.nll_loss",
    "cross_entropy": "F.cross_entropy",
    "lt": "torch.lt (<)",
    "le": "torch.le (<=)",
    "gt": "torch.gt (>)",
    "ge": "torch.ge (>=)",
    "eq": "torch.eq (==)",
    "ne": "torch.ne (!=)",
    "where": "torch.where",
    "maximum": "torch.maximum",
    "minimum": "torch.minimum",
    "clamp": "torch.clamp",
    "max": "torch.amax",
    "min": "torch.amin",
    "index": "Tensor.__getitem__ (int)",
    "take": "Tensor.__getitem__ (int tensor)",
    "gather": "torch.gather",
    "scatter_add": "torch.scatter_add",
    "index_select": "torch.index_select",
    "embedding": "F.embedding",
    "eye": "torch.eye",
    "broadcast_to": "torch.broadcast_to",
}

# family -> ("native", ops) | ("composed", how it is written) | ("missing", why)
FAMILIES: dict[str, tuple[str, str]] = {
    "elementwise arithmetic (+ - * / neg)": ("native", "add sub mul div neg"),
    "pow, sqrt, rsqrt": ("native", "pow sqrt (rsqrt: 1/sqrt(x))"),
    "exp, log, log1p, expm1": ("native", "exp log log1p expm1"),
    "trigonometric (sin cos tan, inverses)": ("native", "sin cos tan asin acos atan atan2"),
    "hyperbolic (sinh cosh tanh)": ("native", "sinh cosh tanh"),
    "sigmoid, logsigmoid, softplus": ("native", "sigmoid logsigmoid softplus"),
    "relu, leaky_relu, elu, hardtanh": ("native", "relu leaky_relu elu hardtanh"),
    "gelu, silu (swish)": ("native", "gelu silu"),
    "erf": ("native", "erf"),
    "abs, sign": ("native", "abs sign"),
    "floor, ceil, round (straight-through)": ("native", "floor ceil round detach"),
    "maximum, minimum, clamp": ("native", "maximum minimum clamp"),
    "where and comparisons": ("native", "where lt le gt ge eq ne"),
    "sum, mean": ("native", "sum mean"),
    "max, min (amax, amin)": ("native", "max min"),
    "prod": ("native", "prod"),
    "var, std": ("native", "var std"),
    "norm (p = 1, 2, inf, fro)": ("native", "norm"),
    "logsumexp": ("native", "logsumexp"),
    "cumsum, cumprod": ("native", "cumsum cumprod"),
    "softmax, log_softmax": ("native", "softmax log_softmax"),
    "matmul (N-D, batched)": ("native", "matmul"),
    "einsum": ("native", "einsum"),
    "outer, dot, trace": ("native", "outer dot trace"),
    "transpose, permute": ("native", "transpose"),
    "reshape, view, flatten": ("native", "reshape flatten"),
    "squeeze, unsqueeze": ("native", "squeeze expand_dims (unsqueeze)"),
    "expand, broadcast_to": ("native", "broadcast_to"),
    "concat, stack": ("native", "concat stack"),
    "slicing (ranges, steps, ...)": ("native", "slice (x[1:3, ::2])"),
    "chunk, split": ("composed", "slices: x[:, :n], x[:, n:]"),
    "flip": ("native", "flip"),
    "pad (constant)": ("native", "pad"),
    "tril, triu, diagonal": ("native", "tril triu diagonal"),
    "gather, scatter_add": ("native", "gather scatter_add"),
    "index_select, embedding": ("native", "index_select embedding take"),
    "one_hot": ("native", "onehot"),
    "conv1d, conv2d": ("native", "conv1d conv2d (unfold, fold)"),
    "max_pool2d, avg_pool2d": ("native", "max_pool2d avg_pool2d"),
    "layer_norm, rms_norm": ("native", "layer_norm rms_norm"),
    "batch_norm, group_norm": ("native", "batch_norm group_norm"),
    "scaled dot-product attention": ("native", "attention"),
    "dropout (a fixed mask)": ("composed", "x * mask / (1 - p), the mask an input"),
    "linear layer": ("composed", "x @ W.T + b"),
    "mse_loss": ("native", "mse_loss"),
    "nll_loss, cross_entropy": (
        "native",
        "nll_loss cross_entropy (weight=, ignore_index=, label_smoothing=)",
    ),
    "binary_cross_entropy (with logits)": ("native", "binary_cross_entropy binary_cross_entropy_with_logits"),
    "l1_loss, smooth_l1_loss (huber)": ("native", "l1_loss smooth_l1_loss"),
    "kl_div": ("native", "kl_div"),
    "det, inv, logdet": ("native", "det inv logdet"),
    "solve, cholesky": ("native", "solve cholesky"),
    "conv_transpose, interpolate, upsample": ("missing", "not in the language yet"),
}


def _signature(op: OpSpec) -> str:
    if op.infix:
        return f"a {op.infix} b" if op.arity == 2 else f"{op.infix}a"
    if op.name == "neg":
        return "-x"
    if op.name == "index":
        return "x[k]"
    if op.name == "take":
        return "x[y]"
    if op.name == "slice":
        return "x[1:3, ::2, ..., -1]"
    if op.name == "einsum":
        return 'einsum("ij,jk->ik", a, b, ...)'
    if op.arity == 0:
        return op.name
    names = ["x"] if op.arity == 1 else ["a", "b", "c"][: op.arity]
    if op.variadic:
        names.append("...")
    names += [p.name for p in op.params if p.name in op.positional]
    params = [f"{p.name}={p.default}" for p in op.params if p.name not in op.positional]
    return f"{op.name}({', '.join(names + params)})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """docs/ops.md: the ops of the catalogue with their torch counterparts, and the families' coverage."""
    lines = [
        "# The ops of symcheck's language",
        "",
        "Generated from the op catalogue by `symcheck ops --format markdown` (a test keeps this file "
        "current).",
        "Each op is checked by all four engines: symbolic (SymPy), autograd (symcheck's own), torch (the "
        "function named here) and numeric (finite differences).",
        "",
        "| op | written | what it is | torch | domain, kinks |",
        "|---|---|---|---|---|",
    ]
    for op in CATALOGUE:
        notes = [d.text for d in op.domain] + [k.text for k in op.kinks]
        if op.domain_rule is not None:
            notes.append("domain per call")
        if op.kink_rule is not None:
            notes.append("kinks per call")
        if not op.differentiable:
            notes.append("gradient 0")
        lines.append(
            f"| `{op.name}` | `{_cell(_signature(op))}` | {_cell(op.doc)} | "
            f"{_cell(TORCH.get(op.name, ''))} | "
            f"{_cell('; '.join(notes))} |"
        )
    counts = {
        kind: sum(1 for k, _ in FAMILIES.values() if k == kind) for kind in ("native", "composed", "missing")
    }
    total = len(FAMILIES)
    lines += [
        "",
        "## Coverage of the op families of real models",
        "",
        f"{total} families: tinygrad's gradient-tested ops and the differentiable torch ops most used in "
        "models. "
        f"Native: {counts['native']} ({100 * counts['native'] // total} %); composed exactly from ops of the "
        f"language: {counts['composed']}; missing: {counts['missing']}.",
        "",
        "| family | coverage | how |",
        "|---|---|---|",
    ]
    lines += [f"| {_cell(name)} | {kind} | {_cell(how)} |" for name, (kind, how) in FAMILIES.items()]
    return "\n".join(lines) + "\n"
