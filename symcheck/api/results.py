"""What the Python API returns: short reprs, and tables in Jupyter (_repr_html_, _repr_markdown_).

Each wraps symcheck's own result and gives its fields through (a Result's `.points` are its
CaseResult's); `str()` is the full text report, `repr()` one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy

from symcheck.checks.runner import CaseResult
from symcheck.report.markdown import case_row, render_html, render_markdown
from symcheck.report.text import render_text
from symcheck.teaching.explain import ClaimCheck, Explanation, render_claims_markdown
from symcheck.teaching.explain import render_markdown as explanation_markdown
from symcheck.teaching.explain import render_text as explanation_text


class Result:
    """One case's outcome (symcheck.checks.runner.CaseResult): `.ok`, `.status`, `.closed_forms`,
    `.proofs`, `.points`, ...; `str()` is the text report symcheck verify prints."""

    def __init__(self, result: CaseResult) -> None:
        self.result = result

    @property
    def ok(self) -> bool:
        return self.result.status == "pass"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def report(self, verbose: bool = False) -> str:
        return render_text([self.result], verbose)

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        row = case_row(self.result)
        forms = f"; {row['gradients']}" if row["gradients"] else ""
        return f"<symcheck {self.result.status.upper()} {row['case']}: {row['points']} point(s){forms}>"

    def _repr_markdown_(self) -> str:
        return render_markdown([self.result], title="symcheck")

    def _repr_html_(self) -> str:
        return render_html([self.result])


class Results(list):  # type: ignore[type-arg]
    """The results of `verify` (a list of Result): `.ok` when every case passed."""

    def __init__(self, results: Sequence[CaseResult]) -> None:
        super().__init__(Result(r) for r in results)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self if r.status in ("fail", "error")]

    def _cases(self) -> list[CaseResult]:
        return [r.result for r in self]

    def report(self, verbose: bool = False) -> str:
        return render_text(self._cases(), verbose)

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        counts = {s: sum(r.status == s for r in self) for s in ("pass", "fail", "error", "skip")}
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"<symcheck results: {len(self)} cases ({shown or 'none'})>"

    def _repr_markdown_(self) -> str:
        return render_markdown(self._cases())

    def _repr_html_(self) -> str:
        return render_html(self._cases())


@dataclass
class ClosedForms:
    """The exact gradients of an expression: in the language (`.text`), as SymPy (`.sympy`), in LaTeX.

    A SymPy expression is elementwise over the inputs' symbols (x stands for each element of x);
    a tensor op inside it (a matmul, a sum) is one symbol, whose meaning `.atoms` gives in the
    language. `cf["x"]` is `cf.sympy["x"]`.
    """

    expr: str
    output: str
    shapes: dict[str, tuple[int, ...]]
    text: dict[str, str]
    sympy: dict[str, sympy.Expr]
    latex: dict[str, str]
    atoms: dict[sympy.Symbol, str] = field(default_factory=dict)
    cotangent: str | None = None  # a tensor output: the gradients are VJPs at this cotangent
    assumed: dict[str, tuple[int, ...]] = field(default_factory=dict)  # shapes not given, chosen

    @property
    def symbols(self) -> dict[str, sympy.Symbol]:
        """Each input's SymPy symbol (real): `cf["x"].subs(cf.symbols["x"], 1)`."""
        found = {
            s.name: s for g in self.sympy.values() for s in g.free_symbols if isinstance(s, sympy.Symbol)
        }
        return {n: found.get(n, sympy.Symbol(n, real=True)) for n in self.shapes}

    def __getitem__(self, name: str) -> sympy.Expr:
        return self.sympy[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.text)

    def _label(self, name: str) -> str:
        if self.cotangent is not None:
            return f"{self.cotangent}^T d{self.output}/d{name}"
        return f"d{self.output}/d{name}"

    def __str__(self) -> str:
        return "\n".join(f"{self._label(n)} = {t}" for n, t in self.text.items())

    def __repr__(self) -> str:
        chosen = ", ".join(f"{n}: {s}" for n, s in self.assumed.items())
        at = f" (at default shapes {chosen})" if chosen else ""
        return (
            f"<symcheck closed forms of {self.expr.strip()}{at}: " + "; ".join(str(self).splitlines()) + ">"
        )

    def _repr_markdown_(self) -> str:
        from symcheck.engines.symbolic.latex import name_latex

        rows = []
        for name, latex in self.latex.items():
            left = f"\\frac{{\\partial {name_latex(self.output)}}}{{\\partial {name_latex(name)}}}"
            if self.cotangent is not None:
                left = f"{name_latex(self.cotangent)}^T {left}"
            rows.append(f"| ${left}$ | ${latex}$ | `{self.text[name]}` |")
        shapes = ", ".join(f"`{n}`: {s}" for n, s in self.shapes.items())
        head = f"Closed forms of `{self.expr.strip()}` at {shapes}"
        return "\n".join([head, "", "| | | in the language |", "|---|---|---|", *rows]) + "\n"


@dataclass
class Explained:
    """explain(): the derivation step by step (`.explanation`) and each claim's verdict (`.claims`)."""

    explanation: Explanation
    claims: list[ClaimCheck]

    @property
    def right(self) -> bool | None:
        """Whether every claim is right (None without claims)."""
        return all(c.right for c in self.claims) if self.claims else None

    def __str__(self) -> str:
        text = explanation_text(self.explanation)
        if self.claims:
            text += "\n" + "\n".join(line for c in self.claims for line in c.lines) + "\n"
        return text

    def __repr__(self) -> str:
        forms = "; ".join(f"d{self.explanation.output}/d{n} = {f.text}" for n, f in self._forms().items())
        verdicts = "; ".join(f"claim {c.wrt}: {c.verdict.split(' (')[0]}" for c in self.claims)
        tail = f"; {verdicts}" if verdicts else ""
        return f"<symcheck explain {self.explanation.source.strip()}: {forms}{tail}>"

    def _forms(self) -> Mapping[str, Any]:
        return self.explanation.closed_forms

    def _repr_markdown_(self) -> str:
        text = explanation_markdown(self.explanation)
        if self.claims:
            text += "\n" + render_claims_markdown(self.claims)
        return text


__all__ = ["ClosedForms", "Explained", "Result", "Results"]
