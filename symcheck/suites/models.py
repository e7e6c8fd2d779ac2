"""The pydantic models that validate a suite file's cases (unknown keys are errors), and the key
lists around them.

Their messages are translated into plain words by the loader before they reach the user; the JSON
Schema for editors is generated from them (`schema.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, create_model

from symcheck.engines.registry import BUILTIN_ENGINES
from symcheck.language import limits
from symcheck.suites.case import (
    DEFAULT_EXPANSION_BUDGET,
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    DEFAULT_TOLERANCE_GROWTH,
)

# ---------------------------------------------------------------- the schema


def listify(v: Any) -> Any:
    return [v] if isinstance(v, (str, int)) and not isinstance(v, bool) else v


def textify(v: Any) -> Any:
    # `expr: 3` is a valid (constant) expression that YAML reads as a number.
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


StrictFloat = Annotated[float, Strict()]
# ge=0 and le=1e300: a tolerance of inf (or nan, which fails both) would pass anything.
NonNegFloat = Annotated[float, Strict(), Field(ge=0, le=1e300)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
StrictStr = Annotated[str, Strict()]
_CONFIG = ConfigDict(extra="forbid")


def _within(limit: str) -> Callable[[int], int]:
    """A count checked against a limit in force when the suite is read (symcheck/language/limits.py)."""

    def check(value: int) -> int:
        most = getattr(limits.current(), limit)
        if value > most:
            raise ValueError(f"at most {most:,} ({limits.current().describe(limit)})")
        return value

    return check


class RandomModel(BaseModel):
    model_config = _CONFIG
    distribution: Literal["uniform", "normal"] = "uniform"
    low: StrictFloat | None = None
    high: StrictFloat | None = None
    mean: StrictFloat | None = None
    std: StrictFloat | None = None
    seed: NonNegInt | None = None


class InputModel(BaseModel):
    model_config = _CONFIG
    shape: Annotated[list[Annotated[int, Strict()]], BeforeValidator(listify)] | None = None
    dtype: Literal["float", "int"] = "float"
    fill: StrictFloat | None = None
    value: Any = None
    random: RandomModel | None = None


class ExpectModel(BaseModel):
    model_config = _CONFIG
    value: Any = None
    grad: dict[StrictStr, Any] = {}
    vjp: dict[StrictStr, StrictStr] = {}
    hessian: dict[StrictStr, StrictStr] = {}


class MistakeModel(BaseModel):
    model_config = _CONFIG
    grad: dict[StrictStr, StrictStr]
    because: StrictStr | None = None


class _TolModel(BaseModel):
    model_config = _CONFIG
    rtol: NonNegFloat | None = None
    atol: NonNegFloat | None = None


ToleranceModel = create_model(  # type: ignore[call-overload]
    "ToleranceModel",
    __base__=_TolModel,
    **{name: (_TolModel | None, None) for name in (*BUILTIN_ENGINES, "impl")},
)


class OptimizerModel(BaseModel):
    model_config = _CONFIG
    name: Literal["sgd"] = "sgd"
    lr: Annotated[float, Strict(), Field(gt=0)]
    momentum: NonNegFloat = 0.0
    weight_decay: NonNegFloat = 0.0
    dampening: NonNegFloat = 0.0
    nesterov: Annotated[bool, Strict()] = False


class AfterModel(BaseModel):
    model_config = _CONFIG
    expr: Annotated[StrictStr, BeforeValidator(textify)]
    data: StrictStr | None = None
    below: StrictFloat | None = None
    above: StrictFloat | None = None


class TrainModel(BaseModel):
    model_config = _CONFIG
    parameters: Annotated[list[StrictStr], BeforeValidator(listify)]
    data: Any = None  # a file path or inline sets: checked by the loader, which knows the inputs
    set: StrictStr = "train"
    optimizer: OptimizerModel
    epochs: Annotated[int, Strict(), Field(ge=1), AfterValidator(_within("max_epochs"))] = 1
    zero_grad: Annotated[bool, Strict()] = True
    compare_every: Annotated[int, Strict(), Field(ge=1)] = 1
    engines: Annotated[list[StrictStr], BeforeValidator(listify)] | None = None
    tolerance_growth: NonNegFloat = DEFAULT_TOLERANCE_GROWTH
    loss_decreases: Annotated[bool, Strict()] = False
    after: list[AfterModel] = []


class CaseModel(BaseModel):
    model_config = _CONFIG
    name: StrictStr
    description: StrictStr | None = None
    expr: Annotated[StrictStr, BeforeValidator(textify)]
    inputs: dict[StrictStr, InputModel] = {}
    wrt: Annotated[list[StrictStr], BeforeValidator(listify)] | None = None
    expect: ExpectModel | None = None
    mistakes: list[MistakeModel] = []
    engines: Annotated[list[StrictStr], BeforeValidator(listify)] | None = None
    tolerance: ToleranceModel | None = None  # type: ignore[valid-type]
    samples: Annotated[int, Strict(), Field(ge=0), AfterValidator(_within("max_samples"))] = DEFAULT_SAMPLES
    seed: NonNegInt = DEFAULT_SEED
    expansion_budget: NonNegInt = DEFAULT_EXPANSION_BUDGET
    dtype: Literal["float64", "float32", "float16", "bfloat16"] = "float64"
    device: Annotated[StrictStr, Field(pattern=r"^(cpu|cuda(:\d+)?|mps)$")] = "cpu"
    order: Annotated[int, Strict(), Field(ge=1, le=2)] = 1
    timeout: Annotated[float, Field(gt=0, le=86400)] = 60.0
    train: TrainModel | None = None
    impl: StrictStr | None = None
    impl_grad: StrictStr | None = None
    outputs: list[StrictStr] | None = None


TOP_KEYS = ("suite", "defaults", "cases")
NO_DEFAULT_KEYS = ("name", "expr", "inputs", "expect", "mistakes", "impl", "impl_grad", "outputs")
DEFAULT_KEYS = tuple(k for k in CaseModel.model_fields if k not in NO_DEFAULT_KEYS)
