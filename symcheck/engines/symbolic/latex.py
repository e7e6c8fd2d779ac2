"""Closed forms as LaTeX, for notes, slides and Jupyter: the same SymPy expressions the language
printer prints, with atoms written the way papers write them (W x, x^T, softmax(z), onehot(y, 2))."""

from __future__ import annotations

import sympy
from sympy.printing.latex import LatexPrinter

from symcheck.engines.symbolic.closed_form import Graph
from symcheck.engines.symbolic.rules import LATEX_NAMES


def name_latex(name: str) -> str:
    """x1 as x_{1}, W as W, long names upright; '#' of rebound steps as a prime."""
    name = name.replace("#", "'")
    head = name.rstrip("0123456789")
    digits = name[len(head) :]
    base = head if len(head) == 1 else rf"\mathrm{{{head}}}"
    return f"{base}_{{{digits}}}" if digits else base


class SymcheckLatexPrinter(LatexPrinter):
    def __init__(self, graph: Graph) -> None:
        super().__init__({"mul_symbol": None, "fold_short_frac": False})
        self.graph = graph

    def _print_Symbol(self, expr: sympy.Symbol, style: str = "plain") -> str:
        atom = self.graph.atoms.get(expr)
        if atom is None:
            return name_latex(expr.name)
        if atom.op == "input":
            return name_latex(atom.name)
        if atom.op == "let":  # a shared step: by its name, else inline
            return name_latex(atom.kw("name")) if atom.kw("name") else self._print(atom.args[0].expr)
        args = [self._print(a.expr) for a in atom.args]
        wrapped = [self._wrap(a.expr, text) for a, text in zip(atom.args, args, strict=True)]
        if atom.op == "matmul":
            return rf"\left({wrapped[0]} {wrapped[1]}\right)"
        if atom.op == "transpose":
            return f"{wrapped[0]}^{{\\top}}"
        if atom.op == "outer":
            return rf"\left({wrapped[0]} \otimes {wrapped[1]}\right)"
        if atom.op == "eye":
            return f"I_{{{atom.kw('n')}}}"
        if atom.op == "index":
            return f"{wrapped[0]}_{{[{atom.kw('at')}]}}"
        if atom.op == "take":
            return f"{wrapped[0]}_{{[{args[1]}]}}"
        if atom.op == "trace":
            return rf"\operatorname{{tr}}\left({args[0]}\right)"
        if atom.op == "onehot":
            return rf"\operatorname{{onehot}}\left({args[0]}, {atom.kw('num_classes')}\right)"
        kwargs = [f"{k}={v}" for k, v in atom.kwargs if v is not None and v is not False]
        extra = (", " + ", ".join(kwargs).replace("_", r"\_")) if kwargs else ""
        name = atom.op.replace("_", r"\_")
        return rf"\operatorname{{{name}}}\left({', '.join(args)}{extra}\right)"

    def _wrap(self, expr: sympy.Expr, text: str) -> str:
        return text if expr.is_Symbol or expr.is_Number else rf"\left({text}\right)"

    def _print_Function(self, expr: sympy.Function, exp: str | None = None) -> str:
        name = LATEX_NAMES.get(type(expr).__name__)
        if name is None:
            return super()._print_Function(expr, exp)
        args = ", ".join(self._print(a) for a in expr.args)
        text = rf"{name}\left({args}\right)"
        return f"{text}^{{{exp}}}" if exp else text

    def _print_max_of(self, expr: sympy.Expr, exp: str | None = None) -> str:
        return self._extreme(r"\max", expr, exp)

    def _print_min_of(self, expr: sympy.Expr, exp: str | None = None) -> str:
        return self._extreme(r"\min", expr, exp)

    def _extreme(self, name: str, expr: sympy.Expr, exp: str | None) -> str:
        text = rf"{name}\left({', '.join(self._print(a) for a in expr.args)}\right)"
        return f"{text}^{{{exp}}}" if exp else text

    def _print_tie(self, expr: sympy.Expr, exp: str | None = None) -> str:
        a, b = (self._print(arg) for arg in expr.args)
        text = rf"\left[{a} = {b}\right]"  # Iverson bracket
        return f"{text}^{{{exp}}}" if exp else text

    def _print_Abs(self, expr: sympy.Expr, exp: str | None = None) -> str:
        text = rf"\left|{self._print(expr.args[0])}\right|"
        return f"{text}^{{{exp}}}" if exp else text


def to_latex(graph: Graph, expr: sympy.Expr) -> str:
    return SymcheckLatexPrinter(graph).doprint(expr)
