"""What a suite is, as the runner gets it: cases with their inputs, expectations, tolerances and
training runs.

These are plain frozen dataclasses; `loader.py` builds them from YAML, validated by `models.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symcheck.language.errors import Source, Span, SymcheckError
from symcheck.language.inputs import InputSpec

DEFAULT_SAMPLES = 2
DEFAULT_SEED = 0
DEFAULT_EXPANSION_BUDGET = 256
# Training: the allowed difference at step k is the comparison tolerance times (1 + growth * k).
DEFAULT_TOLERANCE_GROWTH = 0.01
TRAIN_ENGINES = ("symbolic", "autograd", "torch")
DATA_SUFFIXES = (".json", ".yaml", ".yml")
TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16")
SUITE_SUFFIXES = (".yaml", ".yml")

YamlPath = tuple[str | int, ...]


# ---------------------------------------------------------------- what the runner gets


@dataclass(frozen=True)
class BlockSource(Source):
    """A block scalar (`|`): every line of the text is indented in the file, not only the first."""

    indent: int = 0

    def file_position(self, span: Span) -> tuple[int, int]:
        return span.line + self.line_offset, span.col + self.indent


@dataclass(frozen=True)
class Tolerance:
    """Overrides only: None leaves the runner's default (which depends on engine and dtype)."""

    rtol: float | None = None
    atol: float | None = None
    engines: Mapping[str, Tolerance] = field(default_factory=dict)

    def as_overrides(self) -> dict[str, Any] | None:
        """The shape symcheck.checks.compare.resolve_tolerance takes: global rtol/atol, then per engine."""
        overrides: dict[str, Any] = {}
        if self.rtol is not None:
            overrides["rtol"] = self.rtol
        if self.atol is not None:
            overrides["atol"] = self.atol
        for engine, t in self.engines.items():
            overrides[engine] = {"rtol": t.rtol, "atol": t.atol}
        return overrides or None

    def for_engine(self, engine: str) -> tuple[float | None, float | None]:
        """(rtol, atol) for one engine: its own override, else the global one, else None."""
        own = self.engines.get(engine, Tolerance())
        return (
            own.rtol if own.rtol is not None else self.rtol,
            own.atol if own.atol is not None else self.atol,
        )


@dataclass(frozen=True)
class GradExpect:
    """An expected gradient: a formula in the language (over the inputs) or numbers."""

    formula: str | None
    formula_source: Source | None
    numbers: np.ndarray | None
    line: int
    # "grad" (a scalar output's gradient), "vjp" (a tensor output's vector-Jacobian product, a formula
    # in its cotangent `v`), or "hessian" (a second-derivative block d2out/dx2).
    kind: str = "grad"
    # What messages call it: None for a suite's `expect.grad.x`; a claim given outside a suite
    # (--claim, the Python API's claim=) is "the claim for 'x'".
    label: str | None = None


@dataclass(frozen=True)
class Mistake:
    """A classic wrong claim shipped with a teaching case: symcheck must refute it (and, with
    `because`, diagnose it that way)."""

    wrt: str
    formula: str
    source: Source
    because: str | None
    line: int


@dataclass(frozen=True)
class Expect:
    value: np.ndarray | None = None
    value_line: int | None = None
    # Gradients (scalar output) or VJPs (tensor output, kind "vjp"), by input.
    grads: dict[str, GradExpect] = field(default_factory=dict)
    hessians: dict[str, GradExpect] = field(default_factory=dict)  # order 2: d2out/dx2 by input


@dataclass(frozen=True)
class OptimizerSpec:
    """torch.optim.SGD's hyperparameters, with its definitions (see symcheck/engines/autograd/optim.py)."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    def describe(self) -> str:
        parts = [f"lr={self.lr:g}", f"momentum={self.momentum:g}", f"weight_decay={self.weight_decay:g}"]
        if self.dampening:
            parts.append(f"dampening={self.dampening:g}")
        if self.nesterov:
            parts.append("nesterov=True")
        return f"SGD({', '.join(parts)})"


@dataclass(frozen=True)
class AfterCheck:
    """A check on the trained parameters: `expr` evaluated on every example of a data set."""

    expr: str
    source: Source
    data: str | None  # a set name; None: the training set (or no data at all)
    below: float | None
    above: float | None
    line: int

    def claim(self) -> str:
        bounds = [
            f"> {self.above:g}" if self.above is not None else "",
            f"< {self.below:g}" if self.below is not None else "",
        ]
        return " and ".join(b for b in bounds if b)


@dataclass(frozen=True, eq=False)  # arrays inside: compared by identity
class TrainSpec:
    """A case's `train:` block, validated; data sets are loaded (arrays keyed by input name)."""

    parameters: list[str]
    optimizer: OptimizerSpec
    epochs: int = 1
    zero_grad: bool = True
    compare_every: int = 1
    engines: list[str] | None = None  # None: the case's engines that can train
    # Named sets of examples: each array is (N, *input shape) (one example per step) or, for an
    # input of shape (B, ...), (N*B, ...) (batches of B rows per step). Empty without data.
    sets: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    train_set: str | None = None  # None: no data: one full-batch step per epoch on the case's inputs
    data_origin: str | None = None  # the data file as written in the suite, or "inline"
    meta: dict[str, Any] = field(default_factory=dict)  # the data file's `meta` (labels, vocabulary)
    after: list[AfterCheck] = field(default_factory=list)
    loss_decreases: bool = False
    tolerance_growth: float = DEFAULT_TOLERANCE_GROWTH
    line: int = 1


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    line: int
    expr: str
    expr_source: Source
    inputs: dict[str, InputSpec]
    wrt: list[str] | None
    expect: Expect
    engines: list[str]
    tolerance: Tolerance
    samples: int = DEFAULT_SAMPLES
    seed: int = DEFAULT_SEED
    expansion_budget: int = DEFAULT_EXPANSION_BUDGET
    dtype: str = "float64"
    device: str = "cpu"
    description: str | None = None
    input_lines: dict[str, int] = field(default_factory=dict)
    wrt_line: int | None = None
    order: int = 1  # 2: also second derivatives
    timeout: float = 60.0  # seconds the symbolic engine may spend on the case before it gives up
    train: TrainSpec | None = None  # a training run (symcheck/checks/training.py)
    # The user's own implementation of expr, "package.module:function" (symcheck/suites/imports.py).
    impl: str | None = None
    impl_grad: str | None = None  # a numpy implementation's gradient function
    impl_line: int | None = None
    impl_source: Source | None = None
    impl_grad_source: Source | None = None
    allow_import: bool = False  # set by --allow-import only: a suite cannot opt itself in
    # Several outputs (step names, `outputs: [h, c]`): each is checked on its own, with its own
    # Jacobian; the user's code returns them as a tuple, in this order. The runner checks output
    # `output_index[0]` of `output_index[1]` in a case of its own (see check/runner.prepare).
    outputs: list[str] | None = None
    outputs_line: int | None = None
    output_index: tuple[int, int] | None = None

    mistakes: list[Mistake] = field(default_factory=list)  # teaching: wrong claims to refute

    def error(self, message: str, line: int | None = None, hint: str | None = None) -> SymcheckError:
        return SymcheckError(message, filename=self.file, line=line or self.line, hint=hint)


@dataclass(frozen=True)
class Suite:
    path: str
    name: str
    cases: list[Case]
