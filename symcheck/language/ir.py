"""symcheck's typed intermediate representation.

A program is a list of named steps (`y = x + 2`, `z = 3*y^2`, `out = mean(z)`); each step's
expression is a tree of three node kinds:

- `Const`: a scalar literal, kept as an exact `Fraction` (``0.5`` is 1/2);
- `Ref`: a reference to an input or to an earlier step, by its unique binding id;
- `Call`: an op from the catalogue (`symcheck.language.catalogue`) applied to argument nodes, with canonical
  keyword arguments (``axis`` is always a sorted tuple of non-negative ints or None).

Every node carries its `TensorType` (shape and dtype), filled in by `symcheck.language.parser.bind`.
Engines walk this IR; none of them sees the source text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import Any

from symcheck.language.errors import Source, Span

Shape = tuple[int, ...]


class DType(str, Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"


@dataclass(frozen=True)
class TensorType:
    shape: Shape
    dtype: DType = DType.FLOAT

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{self.dtype.value}[{dims}]"


SCALAR = TensorType(())

KwValue = Any  # int | bool | tuple[int, ...] | None, after canonicalisation by the op catalogue


@dataclass(frozen=True, eq=False)
class Node:
    span: Span
    type: TensorType | None = field(default=None, kw_only=True)

    @property
    def shape(self) -> Shape:
        assert self.type is not None, "node is not typed yet: call symcheck.language.parser.bind first"
        return self.type.shape

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, eq=False)
class Const(Node):
    value: Fraction


@dataclass(frozen=True, eq=False)
class Ref(Node):
    """A use of an input or an earlier step. `target` is the unique binding id; `name` as written."""

    name: str
    target: str = ""


@dataclass(frozen=True, eq=False)
class Call(Node):
    op: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, KwValue], ...] = ()

    def children(self) -> tuple[Node, ...]:
        return self.args

    def kw(self, name: str) -> KwValue:
        for key, value in self.kwargs:
            if key == name:
                return value
        raise KeyError(f"{self.op} has no keyword argument {name!r}")

    @property
    def kwdict(self) -> dict[str, KwValue]:
        return dict(self.kwargs)


@dataclass(frozen=True)
class Step:
    """`name = expr`. `id` is unique in the program (a rebound `c` becomes `c`, then `c#2`)."""

    id: str
    name: str
    expr: Node
    span: Span


@dataclass(frozen=True)
class InputDecl:
    name: str
    type: TensorType


@dataclass(frozen=True)
class Program:
    source: Source
    inputs: Mapping[str, InputDecl]
    steps: tuple[Step, ...]
    # (index, count): this program computes output `index` of a function with `count` outputs,
    # which the user's code returns as a tuple. None: a single output, the last step.
    output_of: tuple[int, int] | None = None

    @property
    def output(self) -> Step:
        return self.steps[-1]

    @property
    def output_type(self) -> TensorType:
        t = self.output.expr.type
        assert t is not None
        return t

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def float_inputs(self) -> list[str]:
        return [n for n, d in self.inputs.items() if d.type.dtype is DType.FLOAT]

    def nodes(self) -> Iterator[Node]:
        """Every node, children before parents, step by step."""
        for step in self.steps:
            yield from walk(step.expr)


def walk(node: Node) -> Iterator[Node]:
    """Post-order traversal: arguments before the call that uses them."""
    for child in node.children():
        yield from walk(child)
    yield node


def is_input(program: Program, ref: Ref) -> bool:
    return ref.target in program.inputs


COTANGENT_NAMES = ("v", "u", "w", "g", "ct")


def cotangent_name(program: Program) -> str:
    """The name a tensor output's cotangent goes by in VJP formulas, printed and expected: `v`,
    unless an input or step of the program is called that."""
    taken = set(program.inputs) | {s.name for s in program.steps}
    return next((n for n in COTANGENT_NAMES if n not in taken), "v_")
