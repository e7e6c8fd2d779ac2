"""Second derivatives in closed form: Hessian-vector products, and Hessians where they read well.

The gradient is already an expression; d/de of (gradient · v) at x + e v is a scalar expression,
so differentiating `sum(grad_x * v_x) + ...` once more by the same reverse mode gives H v in closed
form, at a cost that does not grow with the tensor sizes. Where H v is a matrix applied to v
(x @ A @ x gives A @ v + A.T @ v), the matrix itself is printed: `A + A.T`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from symcheck.engines.base import hessian_key
from symcheck.engines.symbolic.closed_form import SymTensor, simplify
from symcheck.engines.symbolic.expansion import Expansion, _partials
from symcheck.engines.symbolic.printer import Unprintable, printable


@dataclass
class SecondOrder:
    """H v as SymTensors over the closed form's atoms plus one direction atom per wrt input."""

    closed: object  # ClosedForm (not imported: engine.py imports this module)
    wrt: list[str]
    directions: dict[str, str]  # wrt input -> the direction input's name
    hvp: dict[str, SymTensor]
    printed: dict[str, str] = field(default_factory=dict)  # "d2out/dx2" or "(H v)_x" -> text

    @classmethod
    def derive(cls, closed: object, wrt: Sequence[str]) -> SecondOrder:
        graph = closed.graph  # type: ignore[attr-defined]
        taken = set(closed.program.inputs)  # type: ignore[attr-defined]
        directions: dict[str, str] = {}
        for name in wrt:
            label = f"v_{name}" if len(wrt) > 1 else "v"
            while label in taken:
                label += "_"
            taken.add(label)
            directions[name] = label
        # s = sum over inputs of sum(grad * v): its gradient is H v.
        total = sympy.Integer(0)
        for name in wrt:
            grad = closed.grads[name]  # type: ignore[attr-defined]
            v = graph.input(directions[name], grad.shape)
            total += graph.reduce("sum", SymTensor(grad.expr * v.expr, grad.shape), None, False).expr
        printer = closed.printer  # type: ignore[attr-defined]
        raw = graph.gradients(SymTensor(total, ()), list(wrt))
        hvp = {n: simplify(t, lambda e: printable(printer, e)) for n, t in raw.items()}
        result = cls(closed, list(wrt), directions, hvp)
        output = closed.program.output.name  # type: ignore[attr-defined]
        for name in wrt:
            matrix = result.matrix(name) if len(wrt) == 1 else None
            if matrix is not None:
                result.printed[f"d2{output}/d{name}2"] = _printed(printer, matrix.expr)
            else:
                result.printed[f"(H v)_{name}"] = _printed(printer, hvp[name].expr)
        return result

    def matrix(self, name: str) -> SymTensor | None:
        """The Hessian of a 1-D input as a matrix expression K with H v = K @ v, when H v has that form."""
        graph = self.closed.graph  # type: ignore[attr-defined]
        shape = self.hvp[name].shape
        if len(shape) != 1:
            return None
        v = graph.input(self.directions[name], shape).expr
        found = _linear_map(graph, sympy.expand(self.hvp[name].expr), v, shape[0])
        if found is None:
            return None
        printer = self.closed.printer  # type: ignore[attr-defined]
        return simplify(found, lambda e: printable(printer, e))

    def evaluate(
        self, inputs: Mapping[str, np.ndarray], direction: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        graph = self.closed.graph  # type: ignore[attr-defined]
        values = dict(inputs)
        for name, label in self.directions.items():
            values[label] = direction[name]
        cache: dict = {}
        return {n: graph.evaluate(t, values, cache) for n, t in self.hvp.items()}

    def full_hessian(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every block d2/(da db), column by column: H e_j for each unit direction e_j."""
        shapes = {n: np.shape(inputs[n]) for n in self.wrt}
        blocks = {hessian_key(a, b): np.zeros(shapes[a] + shapes[b]) for a in self.wrt for b in self.wrt}
        for b in self.wrt:
            for index in np.ndindex(*shapes[b]):
                direction = {n: np.zeros(shapes[n]) for n in self.wrt}
                direction[b][index] = 1.0
                column = self.evaluate(inputs, direction)
                for a in self.wrt:
                    blocks[hessian_key(a, b)][(Ellipsis, *index)] = column[a]
        return blocks


def _printed(printer: Any, expr: sympy.Expr) -> str:
    """The form in the language; what the language cannot say (pi) is said so, not a crash."""
    try:
        return str(printer(expr))
    except (Unprintable, ValueError) as e:  # ValueError: an integer past Python's printable digits
        return f"(no closed form in the language: {e})"


def _linear_map(graph: object, expr: sympy.Expr, v: sympy.Symbol, n: int) -> SymTensor | None:
    """K such that expr = K @ v, for sums of c*v and M @ (...) terms; None for anything else."""
    atoms = graph.atoms  # type: ignore[attr-defined]
    if expr == v:
        return SymTensor(graph.atom("eye", (), (n, n), n=n).expr, (n, n))  # type: ignore[attr-defined]
    if expr.is_Add:
        parts = [_linear_map(graph, term, v, n) for term in expr.args]
        if any(p is None for p in parts):
            return None
        return SymTensor(sympy.Add(*(p.expr for p in parts)), (n, n))  # type: ignore[union-attr]
    if expr.is_Mul:
        scalar = [f for f in expr.args if all(atoms[s].shape == () for s in f.free_symbols if s in atoms)]
        rest = [f for f in expr.args if f not in scalar]
        if len(rest) != 1:
            return None
        inner = _linear_map(graph, rest[0], v, n)
        return None if inner is None else SymTensor(sympy.Mul(*scalar) * inner.expr, (n, n))
    atom = atoms.get(expr)
    if (
        atom is not None
        and atom.op == "matmul"
        and len(atom.args[0].shape) == 2
        and len(atom.args[1].shape) == 1
    ):
        inner = _linear_map(graph, sympy.expand(atom.args[1].expr), v, n)
        if inner is None:
            return None
        return graph.matmul(atom.args[0], inner)  # type: ignore[attr-defined]
    return None


def expansion_hessian(expansion: Expansion, wrt: Sequence[str]) -> dict[str, np.ndarray]:
    """The exact Hessian blocks: each gradient element differentiated once more by sympy.diff."""
    blocks: dict[str, np.ndarray] = {}
    for a in wrt:
        grad = expansion.grads[a]
        for b in wrt:
            symbols = expansion.symbols[b]
            block = np.empty(grad.shape + symbols.shape, dtype=object)
            for i in np.ndindex(*grad.shape):
                partials = _partials(grad[i], set(symbols.flat))
                for j in np.ndindex(*symbols.shape):
                    block[i + j] = partials.get(symbols[j], sympy.Integer(0))
            blocks[hessian_key(a, b)] = block
    return blocks
