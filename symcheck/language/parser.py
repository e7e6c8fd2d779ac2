"""Text to IR: parse (Lark, grammar in `grammar.lark`), then `bind` names and infer types.

User text is only ever data here: it is tokenised by Lark and lowered node by node. Nothing is
evaluated, no attribute other than `.T` exists, and identifiers cannot start with an underscore,
so dunder names are a syntax error.
"""

from __future__ import annotations

import keyword
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache, lru_cache
from importlib import resources
from typing import NoReturn

import lark
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from symcheck.language import limits
from symcheck.language.catalogue import (
    ALIASES,
    CONSTANTS,
    FUNCTIONS,
    OPS,
    OpSpec,
    ShapeError,
    canonical_kwargs,
    infer_type,
    slice_text,
)
from symcheck.language.errors import Source, Span, SymcheckError, did_you_mean
from symcheck.language.ir import Call, Const, InputDecl, KwValue, Node, Program, Ref, Step, TensorType

RESERVED = frozenset({"True", "False", "None", "true", "false", "none", "T", "inf", "nan"}) | frozenset(
    keyword.kwlist
)
OUTPUT_NAME = "out"


@dataclass(frozen=True, eq=False)
class TupleLit(Node):
    """`(0, 1)`: only meaningful as a keyword value (axis=(0, 1))."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class _Range(Node):
    """`1:3:2` inside brackets, before it is read: its bounds (nodes or None)."""

    bounds: tuple[Node | None, Node | None, Node | None]


@dataclass(frozen=True)
class _Text(Node):
    """A string literal: data, allowed only as einsum's subscripts."""

    value: str


@dataclass(frozen=True)
class _Ellipsis(Node):
    """`...` inside brackets."""


@dataclass(frozen=True)
class _Items(Node):
    """A slice's subscripts, read: ints, ("range", start, stop, step) and "..." (canonical_kwargs
    makes them one item per axis)."""

    value: tuple


@dataclass(frozen=True)
class Statement:
    name: str | None
    expr: Node
    span: Span


@dataclass(frozen=True)
class ParsedProgram:
    source: Source
    statements: tuple[Statement, ...]

    def free_names(self) -> list[str]:
        """Names used before any statement binds them: the program's inputs, in order of use."""
        bound: set[str] = set()
        free: list[str] = []
        for st in self.statements:
            for ref in _refs(st.expr):
                if ref.name not in bound and ref.name not in free:
                    free.append(ref.name)
            if st.name is not None:
                bound.add(st.name)
        return free


def _refs(node: Node) -> Iterable[Ref]:
    if isinstance(node, Ref):
        yield node
    elif isinstance(node, Call):
        for a in node.args:
            yield from _refs(a)
        # Keyword values are literals (an axis, a bool, a bare word such as reduction=sum), and
        # binding says where one is not (keepdims=maximum); but for the keywords that take a
        # tensor (weight=w of the classification losses), whose names are inputs.
        spec = OPS.get(node.op)
        for key, value in node.kwargs:
            param = spec.param(key) if spec is not None else None
            if param is not None and param.kind == "tensor" and isinstance(value, Node):
                yield from _refs(value)


# ---------------------------------------------------------------- parsing

# Facts of float64, not limits (symcheck/language/limits.py has those): a literal beyond these
# would not be a float64 number.
MAX_LITERAL_CHARS = 40  # a number's text, digits and exponent together
MAX_LITERAL_EXPONENT = 300


def _constant(node: Node) -> Fraction | None:
    """The value of a constant subexpression (2, -3, 10^10, 1/2), when it is one."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Call) and node.op == "neg":
        inner = _constant(node.args[0])
        return None if inner is None else -inner
    if isinstance(node, Call) and node.op in ("add", "sub", "mul", "div", "pow") and len(node.args) == 2:
        a, b = (_constant(x) for x in node.args)
        if a is None or b is None:
            return None
        try:
            if node.op == "pow":
                if b.denominator != 1 or abs(b) > limits.current().max_exponent:
                    return None
                return a ** int(b)
            return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b if b else None}[node.op]
        except (ZeroDivisionError, OverflowError):
            return None
    return None


@cache
def _lark() -> Lark:
    grammar = resources.files("symcheck.language").joinpath("grammar.lark").read_text()
    cache_file = _private_cache_file("grammar.lark-tables")
    return Lark(
        grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False, cache=cache_file or False
    )


def private_cache_folder() -> str | None:
    """The user's own cache folder, ~/.cache/symcheck (created 0700), for what symcheck reads back
    with pickle: never a shared temp folder. None where that folder is not the user's alone."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "symcheck")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
    except OSError:
        return None
    getuid = getattr(os, "getuid", None)
    if (getuid is not None and info.st_uid != getuid()) or info.st_mode & 0o022:
        return None  # someone else could write it
    return folder


def _private_cache_file(name: str) -> str | None:
    """A file for Lark's parse tables (analysing the grammar is most of a cold parse), which Lark
    reads back with pickle: in the private folder only."""
    folder = private_cache_folder()
    return None if folder is None else os.path.join(folder, f"{name}-lark{lark.__version__}.pickle")


def _span(meta_or_token: object) -> Span:
    m = meta_or_token
    return Span(m.line, m.column, m.end_line, m.end_column)  # type: ignore[attr-defined]


_BINARY = {"add", "sub", "mul", "div", "matmul"}
_COMPARE_OPS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}


@v_args(tree=True)
class _Lower(Transformer):
    """Lark tree to untyped IR nodes (names unresolved)."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def _err(self, message: str, span: Span, hint: str | None = None) -> SymcheckError:
        return SymcheckError(message, source=self.source, span=span, hint=hint)

    def number(self, tree: Tree) -> Node:
        tok: Token = tree.children[0]
        text = str(tok)
        _, _, exponent = text.lower().partition("e")
        if len(text) > MAX_LITERAL_CHARS or (exponent and abs(int(exponent)) > MAX_LITERAL_EXPONENT):
            raise self._err(
                f"the number {text[:40]}{'...' if len(text) > 40 else ''} is beyond float64",
                _SPAN_OF(tree),
                hint=f"literals have at most {MAX_LITERAL_CHARS} characters and exponents up to "
                f"±{MAX_LITERAL_EXPONENT} (float64 overflows at 1.8e308)",
            )
        value = Fraction(text)
        if value and not (1e-300 < abs(float(value)) < 1.7e308):
            raise self._err(
                f"the number {text} is beyond float64 (it would be {float(value)!r})",
                _SPAN_OF(tree),
                hint="float64 holds about 1e-308 to 1.8e308",
            )
        return Const(_SPAN_OF(tree), value=value)

    def string(self, tree: Tree) -> Node:
        return _Text(_SPAN_OF(tree), value=str(tree.children[0])[1:-1])

    def name(self, tree: Tree) -> Node:
        tok: Token = tree.children[0]
        return Ref(_SPAN_OF(tree), name=str(tok))

    def __default__(self, data: str, children: list, meta: object) -> object:  # pragma: no cover
        raise AssertionError(f"unhandled grammar rule {data}")

    def _binary(self, tree: Tree) -> Node:
        a, b = tree.children
        return Call(_SPAN_OF(tree), op=tree.data, args=(a, b))

    add = sub = mul = div = matmul = _binary

    def pow(self, tree: Tree) -> Node:
        base, _op, exponent = tree.children
        return Call(_SPAN_OF(tree), op="pow", args=(base, exponent))

    def neg(self, tree: Tree) -> Node:
        (a,) = tree.children
        if isinstance(a, Const):
            return Const(_SPAN_OF(tree), value=-a.value)
        return Call(_SPAN_OF(tree), op="neg", args=(a,))

    def pos(self, tree: Tree) -> Node:
        return tree.children[0]

    def attribute(self, tree: Tree) -> Node:
        obj, attr = tree.children
        if str(attr) != "T":
            raise self._err(
                f"attribute access '.{attr}' is not allowed",
                _span(attr),
                hint="the only attribute is .T (transpose); functions are called as f(x)",
            )
        return Call(_SPAN_OF(tree), op="transpose", args=(obj,))

    def range(self, tree: Tree) -> Node:
        bounds: list[Node | None] = [None, None, None]
        position = 0
        for child in tree.children:
            if isinstance(child, Token) and child.type == "COLON":
                position += 1
            else:
                bounds[position] = child
        return _Range(_SPAN_OF(tree), bounds=(bounds[0], bounds[1], bounds[2]))

    def ellipsis(self, tree: Tree) -> Node:
        return _Ellipsis(_SPAN_OF(tree))

    def _slice(self, node: Node, items: list[Node], span: Span) -> Node:
        """x[1:3, ::2, ..., -1]: one slice op; its items must be integer literals."""
        read: list[object] = []
        for item in items:
            if isinstance(item, _Ellipsis):
                read.append("...")
            elif isinstance(item, _Range):
                read.append(("range", *(None if b is None else self._literal(b) for b in item.bounds)))
            else:
                read.append(self._literal(item))
        kwargs = (("items", _Items(span, value=tuple(read))),)
        return _RawCall(span, op="slice", args=(node,), kwargs=kwargs, name_span=span)

    def _literal(self, item: Node) -> int:
        if isinstance(item, Const) and item.value.denominator == 1:
            return int(item.value)
        raise self._err(
            "with a range or ... in the brackets, every index must be an integer literal",
            item.span,
            hint="index with a tensor on its own: x[y] (rows y), then slice: x[y][:, 1:3]",
        )

    def index(self, tree: Tree) -> Node:
        """x[i, j] is x[i][j]: an int literal drops the first axis, an int tensor gathers rows;
        with a range or ... anywhere, the whole subscript is one slice."""
        node, *items = tree.children
        span = _SPAN_OF(tree)
        if any(isinstance(item, (_Range, _Ellipsis)) for item in items):
            return self._slice(node, items, span)
        for item in items[:-1]:
            if not isinstance(item, Const):
                # torch reads x[r, y] as pairs (x[r[k], y[k]]) and x[y, 0] as column 0 of the rows y;
                # chaining would silently mean something else, so it is refused.
                raise self._err(
                    "an index tensor followed by another index means pairs in torch (x[r, y] is "
                    "x[r[k], y[k]]; x[y, 0] is column 0 of the rows y), which symcheck does not support",
                    item.span,
                    hint="index one axis at a time (x[y].T[0] is column 0 of the rows y); for pairs, "
                    "sum(onehot(y, C) * x[r], axis=1)",
                )
        for item in items:
            if isinstance(item, Const):
                node = _RawCall(span, op="index", args=(node,), kwargs=(("at", item),), name_span=item.span)
            else:
                node = _RawCall(span, op="take", args=(node, item), name_span=item.span)
        return node

    def compare(self, tree: Tree) -> Node:
        a, op, b = tree.children
        return Call(_SPAN_OF(tree), op=_COMPARE_OPS[str(op)], args=(a, b))

    def tuple(self, tree: Tree) -> Node:
        return TupleLit(_SPAN_OF(tree), items=tuple(c for c in tree.children if c is not None))

    def call(self, tree: Tree) -> Node:
        fname: Token = tree.children[0]
        arglist = tree.children[1] if len(tree.children) > 1 else None
        args: list[Node] = []
        kwargs: list[tuple[str, Node]] = []
        for item in arglist.children if arglist is not None else []:
            if isinstance(item, tuple):
                key, value = item
                if any(k == key for k, _ in kwargs):
                    raise self._err(f"keyword argument '{key}' given twice", value.span)
                kwargs.append((key, value))
            else:
                if kwargs:
                    raise self._err("positional argument after a keyword argument", item.span)
                args.append(item)
        return _RawCall(
            _SPAN_OF(tree), op=str(fname), args=tuple(args), kwargs=tuple(kwargs), name_span=_span(fname)
        )

    def arglist(self, tree: Tree) -> Tree:
        return tree

    def kwarg(self, tree: Tree) -> tuple[str, Node]:
        key, value = tree.children
        return (str(key), value)

    def assign(self, tree: Tree) -> Statement:
        name, expr = tree.children
        return Statement(str(name), expr, _span(name))

    def bare(self, tree: Tree) -> Statement:
        (expr,) = tree.children
        return Statement(None, expr, _SPAN_OF(tree))

    def start(self, tree: Tree) -> list[Statement]:
        return list(tree.children)


def _SPAN_OF(tree: Tree) -> Span:
    return _span(tree.meta)


@dataclass(frozen=True, eq=False)
class _RawCall(Call):
    """A call before binding: `op` may be unknown, kwargs are unvalidated nodes."""

    name_span: Span | None = None


_EXPECTED_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "LPAR": "'('",
    "RPAR": "')'",
    "RSQB": "']'",
    "COMMA": "','",
    "EQUAL": "'='",
    "_NEWLINE": "end of line",
    "$END": "end of input",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "POW": "'^'",
}


def _describe_expected(expected: Iterable[str]) -> str:
    words = sorted({_EXPECTED_WORDS.get(e, "") for e in expected} - {""})
    if "a name" in words or "a number" in words:
        words = [w for w in words if w in ("a name", "a number", "'('")] or words
    return " or ".join(words[:4]) if words else "something else"


def parse(text: str, source: Source | None = None) -> ParsedProgram:
    """Parse a program (one expression or `name = expr` statements) into untyped IR. A program
    parsed before (the same text and source, under the same limits) is not parsed again: a case's
    program is parsed for its checks, its outputs and its probe shape (the IR is immutable)."""
    return _parse(text, source or Source(text), limits.current())


@lru_cache(maxsize=1024)
def _parse(text: str, source: Source, _limits: limits.Limits) -> ParsedProgram:
    most = limits.current().max_program_chars
    if len(text) > most:
        raise SymcheckError(
            f"the program has {len(text):,} characters, more than symcheck reads ({most:,})",
            source=source,
            span=Span.point(1, 1),
            hint="name intermediate steps (y = ...) instead of writing one huge expression; "
            + limits.current().describe("max_program_chars"),
        )
    _prescan_depth(text, source)
    try:
        tree = _lark().parse(text)
    except UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if e.pos_in_stream is not None and e.pos_in_stream < len(text) else "?"
        hint = None
        if ch == "_":
            hint = "names start with a letter; names with leading underscores (dunders) are not allowed"
        elif ch in "'\"":
            hint = "strings are not part of the language"
        elif ch in ":{}[]":
            hint = "only arithmetic, function calls and x.T are allowed"
        raise SymcheckError(
            f"unexpected character {ch!r}", source=source, span=Span.point(e.line, e.column), hint=hint
        ) from None
    except UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            line, col = _end_position(text)
            raise SymcheckError(
                f"unexpected end of input, expected {_describe_expected(e.expected)}",
                source=source,
                span=Span.point(line, col),
            ) from None
        shown = "end of line" if tok.type == "_NEWLINE" else repr(str(tok))
        hint = None
        before = text[: tok.start_pos].split()[-1:] if tok.start_pos is not None else []
        if before and before[0] in keyword.kwlist:
            hint = f"'{before[0]}' is Python, not part of the language: no lambdas, imports or statements"
        elif str(tok) == "=":
            hint = "assignments are `name = expr`, one per line or separated by ';'"
        elif str(tok) == "(" and tok.line is not None:
            hint = "a call is name(args); is an operator missing before '('?"
        raise SymcheckError(
            f"unexpected {shown}, expected {_describe_expected(e.expected)}",
            source=source,
            span=Span(tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1),
            hint=hint,
        ) from None
    except UnexpectedEOF as e:  # pragma: no cover - LALR reports UnexpectedToken($END)
        line, col = _end_position(text)
        raise SymcheckError("unexpected end of input", source=source, span=Span.point(line, col)) from e
    except UnexpectedInput as e:  # pragma: no cover
        raise SymcheckError(str(e), source=source) from None
    _check_depth(tree, source)
    try:
        statements = _Lower(source).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SymcheckError):
            raise e.orig_exc from None
        raise
    if not statements:
        raise SymcheckError(
            "empty program",
            source=source,
            span=Span.point(1, 1),
            hint="write an expression such as mean(3*(x+2)^2)",
        )
    return ParsedProgram(source, tuple(statements))


# Operator characters at one bracket level of one statement beyond which the expression is surely
# nested too deeply: a chain of k binary operators over L precedence levels is at least k / L deep,
# and two-character operators count twice. Reached only far past the depth limit.
_PRESCAN_FACTOR = 16
_OPERATOR_CHARS = frozenset("+-*/^@<>=!")


def _prescan_depth(text: str, source: Source) -> None:
    """Refuse what is surely nested past the depth limit before Lark spends seconds parsing it (a
    1 MB `x+x+...`): bracket depth, and operators at one bracket level, counted in one pass."""
    deepest = limits.current().max_depth
    most_operators = deepest * _PRESCAN_FACTOR
    brackets: list[int] = [0]  # operator count at each open bracket level of this statement
    line, col = 1, 0
    in_comment = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment = line + 1, 0, False
            brackets = [0] if len(brackets) == 1 else brackets  # a newline inside brackets continues
            continue
        if in_comment:
            continue
        if ch == "#":
            in_comment = True
        elif ch in "([":
            brackets.append(0)
            if len(brackets) > deepest:
                _too_deep(source, line, col, deepest)
        elif ch in ")]" and len(brackets) > 1:
            brackets.pop()
        elif ch == ";" and len(brackets) == 1:
            brackets = [0]
        elif ch in _OPERATOR_CHARS:
            brackets[-1] += 1
            if brackets[-1] > most_operators:
                _too_deep(source, line, col, deepest)


def _too_deep(source: Source, line: int, column: int, deepest: int) -> NoReturn:
    raise SymcheckError(
        f"the expression is nested more than {deepest} levels deep",
        source=source,
        span=Span.point(line, column),
        hint="name intermediate steps (y = ...; z = ...) to flatten it; "
        + limits.current().describe("max_depth"),
    )


def _check_depth(tree: Tree, source: Source) -> None:
    """Refuse nesting deeper than the max_depth limit (10,000 nested calls, a 1 MB x+x+...) before any
    recursive step meets it: found iteratively, with where the deepest point is."""
    deepest = limits.current().max_depth
    stack: list[tuple[object, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            meta = getattr(node, "meta", None)
            line = getattr(meta, "line", None) or getattr(node, "line", None) or 1
            column = getattr(meta, "column", None) or getattr(node, "column", None) or 1
            _too_deep(source, line, column, deepest)
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip("\n").split("\n")
    return len(lines), len(lines[-1]) + 1


# ---------------------------------------------------------------- binding and types


def check_identifier(name: str) -> None:
    """Names become SymPy symbols and lambdify arguments: they must be plain identifiers."""
    if (
        not name
        or not (name[0].isascii() and name[0].isalpha())
        or not all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    ):
        raise SymcheckError(
            f"invalid name {name!r}",
            hint="names start with a letter and contain only letters, digits and underscores",
        )
    if name in RESERVED:
        raise SymcheckError(f"{name!r} is a reserved word and cannot name a tensor")
    if name in OPS and name not in CONSTANTS:  # an input named pi or e shadows the constant
        raise SymcheckError(f"{name!r} is the name of a function and cannot name a tensor")


def bind(parsed: ParsedProgram, inputs: Mapping[str, TensorType]) -> Program:
    """Resolve names, validate calls and keyword arguments, and infer every node's type. A program
    bound before to the same input types (under the same limits) is that same Program (immutable):
    a test session checks one function at many points, each a case of its own."""
    key = (parsed, tuple(inputs.items()), limits.current())
    program = _BOUND.get(key)
    if program is None:
        program = _bind(parsed, inputs)
        _BOUND[key] = program
        if len(_BOUND) > 1024:
            _BOUND.popitem(last=False)
    else:
        _BOUND.move_to_end(key)
    return program


_BOUND: OrderedDict[tuple, Program] = OrderedDict()


def _bind(parsed: ParsedProgram, inputs: Mapping[str, TensorType]) -> Program:
    most = limits.current().max_elements
    for name in inputs:
        check_identifier(name)
        if inputs[name].size > most:
            raise SymcheckError(
                f"input '{name}' has {inputs[name].size:,} elements, more than symcheck checks ({most:,})",
                source=parsed.source,
                hint="check the function at a smaller size: its derivative rules do not depend on it; "
                + limits.current().describe("max_elements"),
            )
    binder = _Binder(parsed.source, dict(inputs))
    steps: list[Step] = []
    for i, st in enumerate(parsed.statements):
        expr = binder.node(st.expr)
        is_last = i == len(parsed.statements) - 1
        name = st.name if st.name is not None else OUTPUT_NAME
        if st.name is None and not is_last:
            raise SymcheckError(
                "only the last line may be a bare expression",
                source=parsed.source,
                span=st.span,
                hint="give this step a name: `name = ...`",
            )
        if st.name is not None:
            binder.check_target(st.name, st.span)
        step_id = binder.bind_name(name)
        assert expr.type is not None
        binder.scope[name] = (step_id, expr.type)
        steps.append(Step(step_id, name, expr, st.span))
    return Program(parsed.source, {n: InputDecl(n, t) for n, t in inputs.items()}, tuple(steps))


class _Binder:
    def __init__(self, source: Source, inputs: dict[str, TensorType]) -> None:
        self.source = source
        self.inputs = inputs
        self.scope: dict[str, tuple[str, TensorType]] = {n: (n, t) for n, t in inputs.items()}
        self.counts: dict[str, int] = {}

    def err(self, message: str, span: Span, hint: str | None = None) -> SymcheckError:
        return SymcheckError(message, source=self.source, span=span, hint=hint)

    def check_target(self, name: str, span: Span) -> None:
        if name in self.inputs:
            raise self.err(
                f"'{name}' is an input and cannot be reassigned", span, hint="name the step differently"
            )
        try:
            check_identifier(name)
        except SymcheckError as e:
            raise self.err(e.message, span, e.hint) from None

    def bind_name(self, name: str) -> str:
        n = self.counts.get(name, 0) + 1
        self.counts[name] = n
        return name if n == 1 else f"{name}#{n}"

    def node(self, node: Node) -> Node:
        if isinstance(node, Const):
            return replace(node, type=TensorType(()))
        if isinstance(node, Ref):
            return self.ref(node)
        if isinstance(node, TupleLit):
            raise self.err("a tuple is only allowed as a keyword value, e.g. axis=(0, 1)", node.span)
        if isinstance(node, _Text):
            raise self.err(
                "a string is only allowed as einsum's subscripts",
                node.span,
                hint='einsum("ij,jk->ik", A, B); names are written without quotes',
            )
        assert isinstance(node, Call)
        return self.call(node)

    def ref(self, node: Ref) -> Node:
        if node.name in self.scope:  # an input or step named pi or e shadows the constant
            target, t = self.scope[node.name]
            return replace(node, target=target, type=t)
        if node.name in CONSTANTS:
            return Call(span=node.span, type=TensorType(()), op=node.name, args=())
        if node.name in FUNCTIONS:
            raise self.err(f"'{node.name}' is a function; call it as {node.name}(...)", node.span)
        known = list(self.scope)
        hint = did_you_mean(node.name, known)
        if hint is None:
            hint = "declare it under inputs:, or bind it with `name = ...` before this line"
        raise self.err(f"unknown name '{node.name}'", node.span, hint)

    def call(self, node: Call) -> Node:
        name_span = node.name_span if isinstance(node, _RawCall) and node.name_span else node.span
        op = OPS.get(node.op)
        written = isinstance(node, _RawCall) and node.op not in ("index", "take", "slice")
        if op is None and node.op in ALIASES:
            op = OPS[ALIASES[node.op]]
        elif op is None or (written and node.op not in FUNCTIONS):
            hint = did_you_mean(node.op, FUNCTIONS)
            if hint is None:
                hint = "see `symcheck ops` for the list of functions"
            if node.op in self.scope:
                hint = f"'{node.op}' is a tensor, not a function; use * to multiply: {node.op}*(...)"
            raise self.err(f"unknown function '{node.op}'", name_span, hint)
        if op.variadic:  # concat(a, b, c): every positional argument is a tensor
            tensors, keywords = list(node.args), list(node.kwargs)
            if op.name == "einsum" and tensors and isinstance(tensors[0], _Text):
                keywords.insert(0, ("subscripts", tensors.pop(0)))
            if len(tensors) < op.arity:
                raise self.err(f"{op.name} takes at least {op.arity} tensor", node.span)
            return self._bound(node, op, tuple(self.node(a) for a in tensors), keywords)
        extra = node.args[op.arity :]
        if len(node.args) < op.arity or len(extra) > len(op.positional):
            plural = "s" if op.arity != 1 else ""
            also = f" (plus {', '.join(op.positional)})" if op.positional else ""
            raise self.err(
                f"{op.name} takes {op.arity} argument{plural}{also}, got {len(node.args)}", node.span
            )
        args = tuple(self.node(a) for a in node.args[: op.arity])
        return self._bound(node, op, args, list(zip(op.positional, extra, strict=False)) + list(node.kwargs))

    def _bound(
        self, node: Call, op: OpSpec, args: tuple[Node, ...], keywords: list[tuple[str, Node]]
    ) -> Node:
        given: dict[str, KwValue] = {}
        tensors: list[tuple[str, Node]] = []  # keywords whose value is a tensor (weight=w): arguments too
        for key, value in keywords:
            param = op.param(key)
            if param is not None and param.kind == "tensor" and key not in given:
                tensors.append((key, self.node(value)))
                given[key] = True
                continue
            if key in given:
                raise self.err(f"{op.name} got {key} twice", value.span)
            param = op.param(key)
            if param is None:
                names = [p.name for p in op.params]
                hint = did_you_mean(key, names) or (
                    f"{op.name} takes {', '.join(names)}"
                    if names
                    else f"{op.name} takes no keyword arguments"
                )
                raise self.err(f"{op.name} has no keyword argument '{key}'", value.span, hint)
            given[key] = self.kwvalue(param.kind, key, value, param.choices)
        order = [p.name for p in op.params]
        args = args + tuple(t for _, t in sorted(tensors, key=lambda kt: order.index(kt[0])))
        types = [a.type for a in args]
        assert all(t is not None for t in types)
        try:
            kwargs = canonical_kwargs(op, types, given)  # type: ignore[arg-type]
            result = infer_type(op, types, dict(kwargs))  # type: ignore[arg-type]
        except ShapeError as e:
            span = args[e.arg].span if e.arg is not None else node.span
            raise self.err(e.args[0], span, e.hint) from None
        most = limits.current().max_elements
        if result.size > most:
            raise self.err(
                f"this {op.name} makes a tensor of shape {result.shape} ({result.size:,} elements), more "
                f"than symcheck checks ({most:,})",
                node.span,
                hint="check the function at a smaller size: its derivative rules do not depend on it; "
                + limits.current().describe("max_elements"),
            )
        call = Call(node.span, op=op.name, args=args, kwargs=kwargs, type=result)
        self.check_constant_domains(call)
        return call

    def check_exponent(self, call: Call) -> None:
        """Exact symbolic work with x^1000000, or 2^2^2^2^2^2 (2^65536 digits of digits), takes hours
        or all memory in a single step no time limit can interrupt: refused at the exponent."""
        base, exponent = (_constant(a) for a in call.args)
        if exponent is None:
            return
        limit = limits.current()
        too_big = abs(exponent) > limit.max_exponent
        if not too_big and base is not None and base not in (0, 1, -1):  # |exponent| <= 1000 here
            # the exact result's size in bits: |exponent| * log2(|base|)
            bits = abs(float(exponent)) * max(1.0, math.log2(abs(float(base)) or 1))
            too_big = too_big or bits > limit.max_power_bits
            magnitude = float(exponent) * math.log10(abs(float(base)))
            if not too_big and magnitude > MAX_LITERAL_EXPONENT + 8:  # past float64's 1.8e308
                raise self.err(
                    f"this constant is about 1e{magnitude:.0f}, beyond float64 (at most about 1.8e308)",
                    call.span,
                    hint="every engine but the symbolic one computes in floats: scale the constant down",
                )
        if too_big:
            raise self.err(
                f"the exponent {format_fraction(exponent)} is too large for exact symbolic work",
                call.args[1].span,
                hint=f"exponents up to ±{limit.max_exponent} (and constant powers up to "
                f"{limit.max_power_bits} bits); {limit.describe('max_exponent')}",
            )

    def check_constant_domains(self, call: Call) -> None:
        """A constant outside an op's domain (1/0, log(0), sqrt(-1)) is a mistake in the text, not a
        point to sample around: say so where it is."""
        import numpy as np  # lazily: parsing alone (symcheck --help, ops) needs no numpy

        if call.op == "pow":  # (-2)^x is defined at whole x: its domain is the derivative's, not the value's
            self.check_exponent(call)
            return
        for domain in OPS[call.op].domains(call):
            arg = call.args[domain.arg] if domain.arg < len(call.args) else None
            if isinstance(arg, Const):
                with np.errstate(all="ignore"):
                    holds = bool(np.all(domain.predicate(np.asarray(float(arg.value)))))
                if not holds:
                    raise self.err(
                        f"{call.op} of the constant {format_fraction(arg.value)}: {domain.text}",
                        arg.span,
                        hint="the expression is undefined for every input",
                    )

    def kwvalue(self, kind: str, key: str, node: Node, choices: tuple[str, ...] = ()) -> KwValue:
        if kind == "choice":
            if isinstance(node, Ref) and node.name in choices:
                return node.name
            if isinstance(node, Const) and str(node.value) in choices:  # norm's p=2
                return str(node.value)
            raise self.err(
                f"{key} must be one of {', '.join(choices)}", node.span, hint=f"e.g. {key}={choices[0]}"
            )
        if kind == "bool":
            if isinstance(node, Ref) and node.name in ("True", "true", "False", "false"):
                return node.name in ("True", "true")
            raise self.err(f"{key} must be True or False", node.span)
        if kind == "optional_int":
            if isinstance(node, Ref) and node.name in ("None", "none"):
                return None
            return self.integer(key, node)
        if kind == "number":
            if isinstance(node, Ref) and node.name in ("None", "none"):
                return None
            if isinstance(node, Const):
                return node.value
            raise self.err(f"{key} must be a number", node.span)
        if kind == "slices" and isinstance(node, _Items):
            return node.value
        if kind == "subscripts":
            if isinstance(node, _Text):
                return node.value
            raise self.err(f'{key} must be a string, e.g. "ij,jk->ik"', node.span)
        if kind in ("axes", "perm") and isinstance(node, Ref) and node.name in ("None", "none"):
            return None
        if kind in ("axes", "perm", "shape", "newshape", "widths", "pair", "positive_pair") and isinstance(
            node, TupleLit
        ):
            return tuple(self.integer(key, item) for item in node.items)
        if kind == "widths":
            raise self.err(f"{key} must be a tuple of widths, e.g. {key}=(1, 1)", node.span)
        if kind in ("perm", "shape", "slices"):
            raise self.err(f"{key} must be a tuple of axes, e.g. {key}=(1, 0)", node.span)
        return self.integer(key, node)

    def integer(self, key: str, node: Node) -> int:
        if isinstance(node, Const) and node.value.denominator == 1:
            return int(node.value)
        raise self.err(f"{key} must be an integer literal (or a tuple of them)", node.span)


# ---------------------------------------------------------------- printing IR back as source

_PRECEDENCE = {"add": 1, "sub": 1, "mul": 2, "div": 2, "matmul": 2, "neg": 3, "pow": 4}
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "^"}
_COMPARE_SYMBOLS = {op: symbol for symbol, op in _COMPARE_OPS.items()}


def to_source(node: Node) -> str:
    """Print an IR expression in the language (round-trips through `parse`)."""
    return _print(node, 0)


def _print(node: Node, parent: int) -> str:
    if isinstance(node, Const):
        text = format_fraction(node.value)
        return f"({text})" if (node.value < 0 or "/" in text) and parent >= 2 else text
    if isinstance(node, Ref):
        return node.name
    assert isinstance(node, Call)
    if node.op in CONSTANTS and not node.args:
        return node.op
    if node.op in _INFIX:
        prec = _PRECEDENCE[node.op]
        a, b = node.args
        if node.op == "pow":
            text = f"{_print(a, prec + 1)}^{_print(b, prec)}"
        else:
            text = f"{_print(a, prec)} {_INFIX[node.op]} {_print(b, prec + 1)}"
        return f"({text})" if prec < parent or (prec == parent and parent == 4) else text
    if node.op in _COMPARE_SYMBOLS:
        a, b = node.args
        text = f"{_print(a, 1)} {_COMPARE_SYMBOLS[node.op]} {_print(b, 1)}"
        return f"({text})" if parent > 0 else text
    if node.op == "index":
        return f"{_print(node.args[0], 5)}[{node.kw('at')}]"
    if node.op == "take":
        return f"{_print(node.args[0], 5)}[{_print(node.args[1], 0)}]"
    if node.op == "slice":
        return f"{_print(node.args[0], 5)}[{subscript_text(node.kw('items'), node.args[0].shape)}]"
    if node.op == "neg":
        text = f"-{_print(node.args[0], 3)}"
        return f"({text})" if parent >= 3 else text
    if node.op == "transpose" and node.kw("axes") == tuple(reversed(range(len(node.args[0].shape)))):
        return f"{_print(node.args[0], 5)}.T"
    op = OPS[node.op]
    keyed = [p.name for p in op.params if p.kind == "tensor" and node.kw(p.name)]
    positional = node.args[: len(node.args) - len(keyed)]
    args = [_print(a, 0) for a in positional]
    tensors = dict(zip(keyed, node.args[len(positional) :], strict=True))
    if node.op == "einsum":
        return f'einsum("{node.kw("subscripts")}", {", ".join(args)})'
    for key, value in node.kwargs:
        param = op.param(key)
        if key in tensors:
            args.append(f"{key}={_print(tensors[key], 0)}")
        elif param is not None and param.kind == "tensor":
            continue
        elif key in op.positional:
            args.append(keyword_text(value))
        elif param is not None and param.kind == "dim":
            if param.default is None or value != param.default % len(node.args[0].shape):  # axis=-1 unsaid
                args.append(f"{key}={keyword_text(value)}")
        elif param is not None and value != param.default:
            args.append(f"{key}={keyword_text(value)}")
    return f"{node.op}({', '.join(args)})"


def subscript_text(items: tuple, shape: tuple[int, ...]) -> str:
    """A slice's normalised items as written in brackets, trailing full ranges left out."""
    texts = [slice_text(item, n) for item, n in zip(items, shape, strict=True)]
    while texts and texts[-1] == ":":
        texts.pop()
    return ", ".join(texts) if texts else "..."


def keyword_text(value: KwValue) -> str:
    if isinstance(value, tuple):
        return str(value[0]) if len(value) == 1 else "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def format_fraction(value: Fraction) -> str:
    text = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    if len(text) > 40:  # a 601-digit exponent is not read digit by digit
        return (
            f"about {float(value.numerator // value.denominator):.3g}"
            if abs(value) < 1e300
            else (f"a number of {len(str(abs(value.numerator // value.denominator)))} digits")
        )
    return text


def op_spec(name: str) -> OpSpec:
    return OPS[name]
