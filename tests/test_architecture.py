"""The house's rule, written down: imports point down only, no circle, no engine imports another.

Every `import` and `from ... import` in symcheck/ is read with `ast`, those inside functions and
under `if TYPE_CHECKING:` too, so that a lazy import cannot hide a circle or an upward reach.
docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "symcheck"

# Lowest first. A module may import modules of its own unit and of lower layers only; units that
# share a layer (report and teaching, api and the pytest plugin) do not import each other.
LAYERS: dict[str, int] = {
    "symcheck.language": 0,
    "symcheck.engines": 1,
    "symcheck.suites": 2,
    "symcheck.checks": 3,
    "symcheck.report": 4,
    "symcheck.teaching": 4,
    "symcheck.api": 5,
    "symcheck.pytest_plugin": 5,
    "symcheck.cli": 6,
    "symcheck.__main__": 7,
}
# Inside engines/: the interface, then what torch-differentiated columns share, then the engines
# (each its own unit: none imports another), then the columns of the user's code and the registry.
ENGINE_LAYERS: dict[str, int] = {
    "symcheck.engines.base": 0,
    "symcheck.engines.cache": 0,  # derived forms kept for every engine that derives them (the symbolic one)
    "symcheck.engines.torch_autograd": 1,
    "symcheck.engines.symbolic": 2,
    "symcheck.engines.autograd": 2,
    "symcheck.engines.torch": 2,
    "symcheck.engines.numeric": 2,
    "symcheck.engines.user": 3,
    "symcheck.engines.registry": 3,
    "symcheck.engines": 4,  # the package's __init__: the interface for plug-ins, re-exported
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str) -> Iterator[tuple[str, int]]:
    """(module, line) for every symcheck module that `path` imports, wherever the import stands.

    `from symcheck.x import y` counts as importing symcheck.x.y when that is a module, else
    symcheck.x."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("symcheck"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("symcheck"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in known else base), node.lineno


def unit(name: str, table: dict[str, int]) -> str | None:
    """The longest entry of `table` that `name` is or lies inside."""
    found = [u for u in table if name == u or name.startswith(u + ".")]
    return max(found, key=len, default=None)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m, _ in imported(path, name) if m in known} for name, path in known.items()}


def test_every_module_has_a_layer() -> None:
    """A new top-level module must be given its place in the house (here and in the docs)."""
    homeless = [n for n in modules() if n != "symcheck" and unit(n, LAYERS) is None]
    assert not homeless, f"modules outside every layer: {homeless}; add them to LAYERS"


def layer_violations() -> list[str]:
    found = []
    for name, path in modules().items():
        if name == "symcheck":
            continue  # the package's __init__: __version__ and a lazy attribute, no imports
        mine = unit(name, LAYERS)
        assert mine is not None
        for target, line in imported(path, name):
            if target == "symcheck":
                continue  # __version__
            theirs = unit(target, LAYERS)
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {target}"
            if theirs is None:
                found.append(f"{where}, which is in no layer")
            elif theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
                found.append(f"{where}, a layer above or beside it")
            elif theirs == mine == "symcheck.engines":
                own, other = unit(name, ENGINE_LAYERS), unit(target, ENGINE_LAYERS)
                assert own is not None and other is not None
                if own != other and ENGINE_LAYERS[other] >= ENGINE_LAYERS[own]:
                    found.append(f"{where}: an engine imports another engine, or reaches up inside engines/")
    return found


def test_imports_point_down_only() -> None:
    violations = layer_violations()
    assert not violations, "\n".join(violations)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected


def test_the_layer_check_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule itself is tested: a language module importing the checker is reported."""
    fake = tmp_path / "symcheck"
    (fake / "language").mkdir(parents=True)
    (fake / "checks").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "language" / "__init__.py").write_text("")
    (fake / "checks" / "__init__.py").write_text("")
    (fake / "checks" / "runner.py").write_text("from symcheck.language import ir\n")
    (fake / "language" / "ir.py").write_text("def f():\n    from symcheck.checks.runner import Runner\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    violations = layer_violations()
    assert len(violations) == 1 and "symcheck.language.ir imports symcheck.checks.runner" in violations[0]
    assert cycles(graph()) == [["symcheck.checks.runner", "symcheck.language.ir"]]
