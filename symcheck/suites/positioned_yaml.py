"""YAML read with ruamel's round-trip loader, keeping the line and column of every key, value and list item.

Errors then point at the offending line of the file, and an expression's parse error lands on the
right file line:col."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from symcheck.language import limits
from symcheck.language.errors import Source, SymcheckError
from symcheck.suites.case import BlockSource, YamlPath

# ---------------------------------------------------------------- YAML with positions


@dataclass(frozen=True)
class YamlPos:
    key_line: int | None  # 1-based; None for list items and the document
    line: int  # 1-based line of the value
    col: int  # 0-based column of the value


class YamlDoc:
    """Plain Python data plus the position and scalar style of every node, by path."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.lines = text.splitlines()
        self.pos: dict[YamlPath, YamlPos] = {}
        self.style: dict[YamlPath, str] = {}
        self.nodes = 0

    def plain(self, node: Any, path: YamlPath) -> Any:
        # Aliases repeat what they name: a few lines (`a: &a [*b, *b, ...]`, a billion laughs) can
        # stand for billions of nodes. Count them as they are expanded, and stop.
        self.nodes += 1
        limit = limits.current()
        if self.nodes > limit.max_yaml_values:
            raise SymcheckError(
                f"the YAML expands to more than {limit.max_yaml_values:,} values "
                "(aliases repeating aliases?)",
                filename=self.filename,
                hint="a suite needs far fewer; use `defaults:` instead of repeated anchors; "
                + limit.describe("max_yaml_values"),
            )
        if len(path) > limit.max_yaml_depth:
            raise SymcheckError(
                f"the YAML is nested more than {limit.max_yaml_depth} levels deep",
                filename=self.filename,
                hint=limit.describe("max_yaml_depth"),
            )
        tag = _custom_tag(node)
        if tag is not None:
            raise SymcheckError(
                f"YAML tag {tag} is not part of the suite format",
                filename=self.filename,
                line=self.line(path),
                hint="write plain values: strings, numbers, booleans, lists and mappings",
            )
        if isinstance(node, CommentedMap):
            out = {}
            for key in node:
                k_line, _, v_line, v_col = _key_position(node, key)
                child = (*path, _plain_key(key))
                self.pos[child] = YamlPos(k_line + 1, v_line + 1, v_col)
                out[_plain_key(key)] = self.plain(node[key], child)
            return out
        if isinstance(node, CommentedSeq):
            out_list = []
            for i, item in enumerate(node):
                line, col = node.lc.item(i)
                self.pos[(*path, i)] = YamlPos(None, line + 1, col)
                out_list.append(self.plain(item, (*path, i)))
            return out_list
        if isinstance(node, TaggedScalar):  # !!str, explicitly: the text as written
            return str(node.value)
        if isinstance(node, str):
            self.style[path] = _style(node)
            return str(node)
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        raise SymcheckError(
            f"a YAML {type(node).__name__} value is not part of the suite format",
            filename=self.filename,
            line=self.line(path),
            hint="write plain values: strings, numbers, booleans, lists and mappings",
        )

    def line(self, path: YamlPath, *, key: bool = True) -> int | None:
        """The line of the nearest known node on `path` (its key's line, where it has a key)."""
        for n in range(len(path), -1, -1):
            p = self.pos.get(path[:n])
            if p is not None:
                return p.key_line if key and p.key_line is not None else p.line
        return None

    def source(self, text: str, path: YamlPath) -> Source:
        """Where a string value sits, so parse errors map to file line:col."""
        p = self.pos.get(path)
        if p is None:
            return Source(text, self.filename)
        style = self.style.get(path, "")
        if style in ("|", ">"):
            # The text begins on the line after the indicator; its indentation is stripped.
            indent = 0
            for raw in self.lines[p.line :]:
                if raw.strip():
                    indent = len(raw) - len(raw.lstrip(" "))
                    break
            return BlockSource(text, self.filename, line_offset=p.line, col_offset=indent, indent=indent)
        quote = 1 if style in ('"', "'") else 0
        return Source(text, self.filename, line_offset=p.line - 1, col_offset=p.col + quote)


_STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null")}


def _custom_tag(node: Any) -> str | None:
    """A tag other than the plain types' (`!!python/object:os.system`, `!custom`), as written."""
    if isinstance(node, TaggedScalar):
        tag = node.tag
    elif isinstance(node, (CommentedMap, CommentedSeq)):
        tag = getattr(node, "tag", None)
    else:
        return None
    value = getattr(tag, "value", tag)
    if not value or value in _STANDARD_TAGS:
        return None
    return str(value).replace("tag:yaml.org,2002:", "!!")


def _key_position(node: CommentedMap, key: Any) -> tuple[int, int, int, int]:
    """(key line, key col, value line, value col), 0-based; a key merged in with `<<: *anchor`
    has them where the anchored mapping wrote it."""
    merged = getattr(node, "merge", None) or ()
    # ruamel >= 0.18.7 keeps a MergeValue (a list of mappings); older ones (position, mapping) pairs.
    sources = [m[1] if isinstance(m, tuple) else m for m in merged]
    for mapping in (node, *(m for m in sources if isinstance(m, CommentedMap))):
        try:
            k_line, k_col = mapping.lc.key(key)
            v_line, v_col = mapping.lc.value(key)
        except (KeyError, TypeError):
            continue
        return k_line, k_col, v_line, v_col
    line, col = node.lc.line, node.lc.col
    return line, col, line, col


def _plain_key(key: Any) -> Any:
    return str(key) if isinstance(key, str) else key


def _style(s: str) -> str:
    if isinstance(s, LiteralScalarString):
        return "|"
    if isinstance(s, FoldedScalarString):
        return ">"
    if isinstance(s, DoubleQuotedScalarString):
        return '"'
    if isinstance(s, SingleQuotedScalarString):
        return "'"
    return ""


def _check_flow_depth(text: str, filename: str) -> None:
    """Refuse `[[[[...` nested past the depth limit before ruamel reads it: its scanner spends time
    quadratic in the nesting (5,000 levels: past 20 s). One pass over the text, skipping quoted
    strings and comments."""
    deepest = limits.current().max_yaml_depth
    depth, line, quote, comment, previous = 0, 1, "", False, "\n"
    for ch in text:
        if ch == "\n":
            line, comment = line + 1, False  # a quoted scalar may span lines: quote stays
        elif comment:
            pass
        elif quote:
            if ch == quote and not (quote == '"' and previous == "\\"):
                quote = ""
        elif ch in "\"'" and previous in " \t\n[{,:-":
            quote = ch
        elif ch == "#" and previous in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                raise SymcheckError(
                    f"the YAML is nested too deeply to read (more than {deepest} levels)",
                    filename=filename,
                    line=line,
                    hint=limits.current().describe("max_yaml_depth"),
                )
        elif ch in "]}" and depth:
            depth -= 1
        previous = ch


def read_yaml(path: Path, what: str = "suite") -> tuple[Any, YamlDoc]:
    filename = str(path)
    if path.exists() and not path.is_file():  # a FIFO would block the read forever
        raise SymcheckError(f"the {what} is not a regular file", filename=filename)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SymcheckError(f"cannot read {what}: {e.strerror or e}", filename=filename) from None
    except UnicodeDecodeError:
        raise SymcheckError(f"{what} is not UTF-8 text", filename=filename) from None
    if path.suffix == ".json":
        # JSON's own parser says what is wrong in JSON's terms; ruamel (below) gives the positions.
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise SymcheckError(
                f"malformed JSON: {e.msg} (column {e.colno})", filename=filename, line=e.lineno
            ) from None
    _check_flow_depth(text, filename)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        data = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(p for p in (e.context, e.problem) if p) or "cannot parse"
        line = mark.line + 1 if mark is not None else None
        where = f" (column {mark.column + 1})" if mark is not None else ""
        hint = (
            "each key appears once in a mapping"
            if "duplicate key" in problem
            else "check the indentation and that every `key: value` is on its own line; "
            "quote values that contain ': ' or start with a special character"
        )
        raise SymcheckError(
            f"malformed YAML: {problem}{where}", filename=filename, line=line, hint=hint
        ) from None
    except YAMLError as e:
        raise SymcheckError(f"malformed YAML: {e}", filename=filename) from None
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
        # ruamel's constructors trip on some malformed scalars (`!!bool yes\n - 6`: KeyError)
        raise SymcheckError(
            f"malformed YAML: cannot read a value ({type(e).__name__}: {str(e)[:80]})", filename=filename
        ) from None
    except RecursionError:
        raise SymcheckError(
            f"the YAML is nested too deeply to read (more than {limits.current().max_yaml_depth} levels)",
            filename=filename,
        ) from None
    doc = YamlDoc(filename, text)
    if _expanded_size(data, limits.current().max_yaml_values) > limits.current().max_yaml_values:
        doc.nodes = limits.current().max_yaml_values  # refused by the first node plain() reads
    return doc.plain(data, ()), doc


def _expanded_size(root: Any, cap: int) -> int:
    """How many values the data stands for once its aliases are expanded, counted without
    expanding them (an anchor's size once, times its uses): a billion laughs is refused in
    milliseconds rather than after reading a million values. Capped at cap + 1; a node that
    contains itself counts once here (plain() refuses it as too deep)."""
    containers = (CommentedMap, CommentedSeq)

    def children(node: Any) -> list[Any]:
        return list(node.values()) if isinstance(node, CommentedMap) else list(node)

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, containers):
            continue
        key = id(node)
        if finished:
            total = 1 + sum(sizes.get(id(c), 1) if isinstance(c, containers) else 1 for c in children(node))
            sizes[key] = min(total, cap + 1)
            open_nodes.discard(key)
        elif key not in sizes and key not in open_nodes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children(node) if isinstance(c, containers))
    return sizes.get(id(root), 1)
