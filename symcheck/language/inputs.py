"""Input specifications and the command-line input syntax (`x:2x2=1`, `y:4:int`).

An input is given by exactly one source: a fill number, a value (a number or nested list), a
random range, or nothing (random, with a default range picked from the ops the input feeds).
Drawing points from these specs is the checker's job: symcheck/checks/points.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from symcheck.language.errors import SymcheckError
from symcheck.language.ir import DType, TensorType
from symcheck.language.parser import check_identifier

DEFAULT_RANGE: tuple[float, float] = (-2.0, 2.0)
DEFAULT_INT_RANGE: tuple[int, int] = (0, 2)  # labels: 0 or 1

Distribution = Literal["uniform", "normal"]


# ---------------------------------------------------------------- specs


MAX_RANDOM_MAGNITUDE = 1e300  # a random range's bounds, mean and std: draws stay far inside float64
MAX_VALUE_AXES = 32  # a given value's nesting (numpy's arrays have at most 64 axes)
INT64_BOUND = 2**63


@dataclass(frozen=True)
class RandomSpec:
    """A random range. For "uniform", [low, high) (None: the default, domain-aware range); for
    "normal", `low` is the mean and `high` the standard deviation (None: 0 and 1)."""

    low: float | None = None
    high: float | None = None
    distribution: Distribution = "uniform"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "normal"):
            raise SymcheckError(
                f"unknown distribution {self.distribution!r}", hint="use 'uniform' or 'normal'"
            )
        for label, v in (("low", self.low), ("high", self.high)):
            if v is not None and not math.isfinite(v):
                raise SymcheckError(f"random {label} must be a finite number, got {v}")
            if v is not None and abs(v) > MAX_RANDOM_MAGNITUDE:
                # uniform(-1e308, 1e308) has a width of inf; normal(1e308, 1e308) draws inf
                raise SymcheckError(
                    f"random {label} = {v:g} is too large: draws must stay finite",
                    hint=f"random ranges lie within ±{MAX_RANDOM_MAGNITUDE:g}; pin huge values with value:",
                )
        if self.seed is not None and self.seed < 0:
            raise SymcheckError(f"random seed must be a non-negative integer, got {self.seed}")
        if self.distribution == "uniform":
            if (self.low is None) != (self.high is None):
                raise SymcheckError(
                    "a uniform range needs both low and high", hint="e.g. random: {low: -1, high: 1}"
                )
            if self.low is not None and self.high is not None and not self.low < self.high:
                raise SymcheckError(f"random range is empty: low={self.low} is not below high={self.high}")
        elif self.high is not None and not self.high > 0:
            raise SymcheckError(f"a normal distribution needs std > 0, got {self.high}")

    @property
    def mean(self) -> float:
        return 0.0 if self.low is None else self.low

    @property
    def std(self) -> float:
        return 1.0 if self.high is None else self.high

    def describe(self) -> str:
        if self.distribution == "normal":
            return f"normal({_num(self.mean)}, {_num(self.std)})"
        if self.low is None or self.high is None:
            return "uniform(default range)"
        return f"uniform({_num(self.low)}, {_num(self.high)})"


@dataclass(frozen=True)
class InputSpec:
    """One input. After construction `shape` is always set (inferred from `value`, else scalar) and
    `value` is a nested tuple of numbers (or a number)."""

    shape: tuple[int, ...] | None = None
    dtype: DType = DType.FLOAT
    fill: float | None = None
    value: Any = None
    random: RandomSpec | None = None
    # The value as an array, made once: rebuilding it from the nested tuples at every point took
    # 16 ms at 10^6 elements.
    _array: np.ndarray | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            dtype = DType(self.dtype)
        except ValueError:
            raise SymcheckError(f"unknown dtype {self.dtype!r}", hint="use float or int") from None
        if dtype is DType.BOOL:
            raise SymcheckError("inputs are float or int, not bool", hint="use int with values 0 and 1")
        object.__setattr__(self, "dtype", dtype)
        given = [k for k in ("fill", "value", "random") if getattr(self, k) is not None]
        if len(given) > 1:
            raise SymcheckError(
                f"an input takes one of fill, value or random, got {' and '.join(given)}",
                hint="fill repeats one number over the shape; value spells out every element; "
                "random draws them",
            )
        shape = None if self.shape is None else _check_shape(self.shape)
        if self.value is not None:
            array = value_array(self.value, dtype)
            if shape is not None and tuple(array.shape) != shape:
                hint = None
                if array.ndim == 0:
                    hint = f"to repeat one number over a shape, use fill: {_num(array.item())}"
                raise SymcheckError(
                    f"value has shape {_fmt_shape(array.shape)} but shape is {_fmt_shape(shape)}", hint=hint
                )
            shape = tuple(array.shape)
            object.__setattr__(self, "value", _as_tuples(array))
            array.flags.writeable = False
            object.__setattr__(self, "_array", array)
        if self.fill is not None:
            if isinstance(self.fill, bool) or not isinstance(self.fill, (int, float)):
                raise SymcheckError(f"fill must be a number, got {self.fill!r}")
            if not math.isfinite(self.fill):
                raise SymcheckError(f"fill must be a finite number, got {self.fill}")
            if dtype is DType.INT and float(self.fill) != int(self.fill):
                raise SymcheckError(f"an int input needs an integer fill, got {self.fill}")
            object.__setattr__(self, "fill", int(self.fill) if dtype is DType.INT else float(self.fill))
        if self.random is not None and dtype is DType.INT:
            r = self.random
            if r.distribution != "uniform":
                raise SymcheckError("an int input is drawn uniformly", hint="random: {low: 0, high: 2}")
            for v in (r.low, r.high):
                if v is not None and float(v) != int(v):
                    raise SymcheckError(f"an int input needs integer low and high, got {v}")
        object.__setattr__(self, "shape", shape if shape is not None else ())

    def type(self) -> TensorType:
        assert self.shape is not None
        return TensorType(self.shape, self.dtype)

    def concrete(self) -> bool:
        """Fill or value given: the input is pinned at the given point."""
        return self.fill is not None or self.value is not None

    def array(self) -> np.ndarray:
        """The pinned value (fill or value), as float64 or int64."""
        np_dtype = np.int64 if self.dtype is DType.INT else np.float64
        if self._array is not None:
            return np.array(self._array, dtype=np_dtype)  # a copy, writeable
        if self.value is not None:
            return np.array(self.value, dtype=np_dtype)
        if self.fill is not None:
            return np.full(self.shape, self.fill, dtype=np_dtype)
        raise ValueError("a random input has no pinned value")

    def describe(self) -> str:
        if self.value is not None:
            return "value"
        if self.fill is not None:
            return f"fill {_num(self.fill)}"
        return (self.random or RandomSpec()).describe()


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    out = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise SymcheckError(
                f"shape dimensions must be positive integers, got {list(shape)}", hint="e.g. shape: [2, 3]"
            )
        out.append(int(d))
    return tuple(out)


def value_array(value: Any, dtype: DType = DType.FLOAT) -> np.ndarray:
    """A number or rectangular nested list of numbers as an array; clear errors otherwise."""
    shape = _nested_shape(value, ())
    flat: list[float | int] = []
    _flatten(value, flat)
    for v in flat:
        if isinstance(v, (int, np.integer)):  # exact: a 400-digit int would overflow a float check
            if dtype is DType.INT and not -INT64_BOUND <= int(v) < INT64_BOUND:
                raise SymcheckError(f"an int input's values must fit in int64, got {str(v)[:40]}")
            if dtype is not DType.INT and abs(int(v)) > int(np.finfo(np.float64).max):
                raise SymcheckError(f"the value {str(v)[:40]}... is beyond float64")
            continue
        if not math.isfinite(v):
            raise SymcheckError(f"values must be finite numbers, got {v}")
        if dtype is DType.INT and float(v) != int(v):
            raise SymcheckError(f"an int input needs integer values, got {v}")
        if dtype is DType.INT and not -INT64_BOUND <= int(v) < INT64_BOUND:
            raise SymcheckError(f"an int input's values must fit in int64, got {v}")
    np_dtype = np.int64 if dtype is DType.INT else np.float64
    return np.array(flat, dtype=np_dtype).reshape(shape)


def _nested_shape(value: Any, where: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(value, (bool, str)) or value is None:
        raise SymcheckError(
            f"expected a number or a nested list of numbers, got {value!r}"
            + (f" at index {list(where)}" if where else ""),
        )
    if isinstance(value, (int, float, np.integer, np.floating)):
        return ()
    if isinstance(value, (list, tuple)):
        if len(where) >= MAX_VALUE_AXES:
            raise SymcheckError(
                f"the value is nested more than {MAX_VALUE_AXES} levels deep", hint="a tensor has few axes"
            )
        if not value:
            raise SymcheckError("empty list in a value", hint="every dimension needs at least one element")
        inner = [_nested_shape(v, (*where, i)) for i, v in enumerate(value)]
        if any(s != inner[0] for s in inner):
            raise SymcheckError(
                "value is ragged: rows have different lengths"
                + (f" at index {list(where)}" if where else ""),
                hint="a value is a number or a rectangular nested list, e.g. [[1, 2], [3, 4]]",
            )
        return (len(value), *inner[0])
    raise SymcheckError(f"expected a number or a nested list of numbers, got {value!r}")


def _flatten(value: Any, out: list[float | int]) -> None:
    if isinstance(value, (list, tuple)):
        for v in value:
            _flatten(v, out)
    else:
        out.append(int(value) if isinstance(value, (int, np.integer)) else float(value))


def _as_tuples(array: np.ndarray) -> Any:
    def conv(v: Any) -> Any:
        return tuple(conv(x) for x in v) if isinstance(v, list) else v

    return conv(array.tolist())


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# ---------------------------------------------------------------- command line

CLI_SYNTAX = (
    "NAME[:SHAPE][:int][=VALUE | ~uniform(LOW,HIGH) | ~normal(MEAN,STD)], e.g. x:2x2=1 (fill), "
    "x:3x4 (random), x=[[1,2],[3,4]] (value), s=0.5, y:4:int=[0,1,1,0], x:2x2~uniform(-1,1)"
)
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SHAPE_RE = re.compile(r"\d+(?:[x,]\d+)*", re.IGNORECASE)
_DIST_RE = re.compile(r"(uniform|normal)\(([^,()]*),([^,()]*)\)", re.IGNORECASE)


def parse_cli_input(text: str) -> tuple[str, InputSpec]:
    """`x:2x2=1`, `x:3x4`, `x=[[1,2],[3,4]]`, `s=0.5`, `y:4:int=[0,1,1,0]`, `x:2x2~uniform(-1,1)`."""

    shown = text if len(text) <= 80 else text[:60] + "..." + text[-10:]  # a 1 MB value is not echoed

    def fail(message: str) -> SymcheckError:
        return SymcheckError(f"bad input {shown!r}: {message}", hint=f"write {CLI_SYNTAX}")

    cut = min((i for i in (text.find("="), text.find("~")) if i >= 0), default=len(text))
    head, sep, rhs = text[:cut], text[cut : cut + 1], text[cut + 1 :].strip()
    name, *parts = [p.strip() for p in head.split(":")]
    if not name:
        raise fail("missing the input's name")
    if not _NAME_RE.fullmatch(name):
        raise fail(f"{name!r} is not a name (a letter, then letters, digits or underscores)")
    try:
        check_identifier(name)
    except SymcheckError as e:
        raise fail(e.message) from None
    shape: tuple[int, ...] | None = None
    dtype = DType.FLOAT
    for part in parts:
        low = part.lower()
        if low in ("int", "float"):
            dtype = DType(low)
        elif low in ("scalar", "()", "[]"):
            shape = ()
        elif _SHAPE_RE.fullmatch(part):
            shape = tuple(int(d) for d in re.split(r"[x,]", low))
        else:
            raise fail(f"{part!r} is neither a shape (like 2x3) nor a dtype (int or float)")
    try:
        if sep == "~":
            m = _DIST_RE.fullmatch(rhs.replace(" ", ""))
            if m is None:
                raise fail(f"{rhs!r} is not a random range; write ~uniform(LOW,HIGH) or ~normal(MEAN,STD)")
            a, b = (_cli_number(m.group(i), fail) for i in (2, 3))
            dist: Distribution = "normal" if m.group(1).lower() == "normal" else "uniform"
            return name, InputSpec(shape=shape, dtype=dtype, random=RandomSpec(a, b, dist))
        if sep == "=":
            if not rhs:
                raise fail("nothing after '='")
            if rhs.startswith("["):
                try:
                    data = json.loads(rhs)
                except json.JSONDecodeError as e:
                    raise fail(f"the value is not a valid list ({e.msg} at character {e.pos + 1})") from None
                except RecursionError:
                    raise fail(f"the value is nested more than {MAX_VALUE_AXES} levels deep") from None
                return name, InputSpec(shape=shape, dtype=dtype, value=data)
            number = _cli_number(rhs, fail)
            if shape is None or shape == ():
                return name, InputSpec(shape=shape, dtype=dtype, value=number)
            return name, InputSpec(shape=shape, dtype=dtype, fill=number)
        return name, InputSpec(shape=shape, dtype=dtype)
    except SymcheckError as e:
        if e.message.startswith("bad input"):
            raise
        raise SymcheckError(
            f"bad input {shown!r}: {e.message}", hint=e.hint or f"write {CLI_SYNTAX}"
        ) from None


def _cli_number(text: str, fail: Callable[[str], SymcheckError]) -> float:
    text = text.strip()
    try:
        number = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    except ValueError:
        raise fail(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise fail(f"{text!r} is not a finite number")
    return number
