"""Print closed forms in symcheck's own language, so a user can paste one into `expect:`.

`3*(x + 2)/2` prints as `3/2*(x + 2)`, powers use `^`, and atoms print as what they stand for
(`W @ x`, `sum(x, axis=0)`, `x.T`). SymPy functions outside the language raise `Unprintable`;
the simplifier then keeps a form that prints.
"""

from __future__ import annotations

import sympy

from symcheck.engines.symbolic.closed_form import LAYOUT_OPS, Atom, Graph
from symcheck.engines.symbolic.functions import max_of, min_of, tie
from symcheck.engines.symbolic.rules import PRINTED_NAMES
from symcheck.language.catalogue import OPS
from symcheck.language.parser import keyword_text, subscript_text

ADD, MUL, NEG, POW, ATOM = 1, 2, 3, 4, 5

RELATIONS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}


def _decimal(r: sympy.Rational) -> str | None:
    """r as a terminating decimal, exactly (the literal a user wrote: 0.044715), or None where its
    denominator has a prime factor other than 2 and 5 (1/3). Parsed back, it is r again."""
    q, digits = int(r.q), 0
    for prime in (2, 5):
        count = 0
        while q % prime == 0:
            q //= prime
            count += 1
        digits = max(digits, count)
    if q != 1 or digits == 0:
        return None
    scaled = str(abs(int(r.p)) * (10**digits // int(r.q))).rjust(digits + 1, "0")
    return ("-" if r < 0 else "") + scaled[:-digits] + "." + scaled[-digits:]


class Unprintable(Exception):
    """The expression uses something the language cannot say (e.g. cosh, Piecewise)."""


class LanguagePrinter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def __call__(self, expr: sympy.Expr) -> str:
        return self.print(expr)[0]

    def print(self, e: sympy.Expr) -> tuple[str, int]:
        if e.is_Integer:
            return str(e), (NEG if e < 0 else ATOM)
        if e.is_Rational:
            fraction = f"{e.p}/{e.q}"
            decimal = _decimal(e)
            if decimal is not None and len(decimal) < len(fraction):  # 0.044715, not 8943/200000
                return decimal, (NEG if e < 0 else ATOM)
            return fraction, (NEG if e < 0 else MUL)
        if e.is_Float:
            text = repr(float(e))
            return text, (NEG if e < 0 else ATOM)
        if e is sympy.E:  # the constant e, unless an input of that name shadows it
            return ("exp(1)" if self._shadowed("e") else "e"), ATOM
        if e is sympy.pi:
            return ("4*atan(1)" if self._shadowed("pi") else "pi"), (MUL if self._shadowed("pi") else ATOM)
        if e.is_Symbol:
            atom = self.graph.atoms.get(e)
            if atom is None:
                return e.name, ATOM
            return self.atom(atom)
        if isinstance(e, sympy.Piecewise):
            return self.piecewise(e)
        if e.is_Add:
            return self.add(e)
        if e.is_Mul:
            return self.mul(e)
        if e.is_Pow:
            return self.pow(e)
        # an expanded max/min reduction, or SymPy's own Max/Min (the expansion's maximum), pairwise
        if isinstance(e, (max_of, min_of, sympy.Max, sympy.Min)):
            name = "maximum" if isinstance(e, (max_of, sympy.Max)) else "minimum"
            text = self.print(e.args[0])[0]
            for a in e.args[1:]:
                text = f"{name}({text}, {self.print(a)[0]})"
            return text, ATOM
        if isinstance(e, tie):  # the language's 0/1 comparison
            return f"({self.wrap(e.args[0], ADD)} == {self.wrap(e.args[1], ADD)})", ATOM
        if isinstance(e, sympy.Function):
            name = PRINTED_NAMES.get(type(e).__name__)
            if name is None:
                raise Unprintable(f"{type(e).__name__} is not in the language")
            return f"{name}({', '.join(self.print(a)[0] for a in e.args)})", ATOM
        raise Unprintable(f"cannot print {sympy.srepr(e)}")

    def _shadowed(self, name: str) -> bool:
        return any(a.op == "input" and a.name == name for a in self.graph.atoms.values())

    def piecewise(self, e: sympy.Piecewise) -> tuple[str, int]:
        """Piecewise((1, c), (0, True)) is the number (c); anything else a chain of where(...)."""
        branches = list(e.args)
        if branches[-1].cond != sympy.true:
            raise Unprintable("a Piecewise without an otherwise branch")
        if len(branches) == 2 and branches[0].expr == 1 and branches[1].expr == 0:
            return f"({self.condition(branches[0].cond)})", ATOM
        text = self.print(branches[-1].expr)[0]
        for branch in reversed(branches[:-1]):
            text = f"where({self.condition(branch.cond)}, {self.print(branch.expr)[0]}, {text})"
        return text, ATOM

    def condition(self, c: sympy.Basic) -> str:
        """A condition as the language writes it: a comparison, or 0/1 arithmetic of comparisons."""
        if c == sympy.true:
            return "1"
        if c == sympy.false:
            return "0"
        if isinstance(c, sympy.core.relational.Relational):
            op = RELATIONS.get(c.rel_op)
            if op is None:
                raise Unprintable(f"relation {c.rel_op}")
            return f"{self.wrap(c.lhs, ADD)} {op} {self.wrap(c.rhs, ADD)}"
        if isinstance(c, sympy.And):
            return "*".join(f"({self.condition(a)})" for a in c.args)
        if isinstance(c, sympy.Or):
            text = f"({self.condition(c.args[0])})"
            for a in c.args[1:]:
                text = f"maximum({text}, ({self.condition(a)}))"
            return text
        if isinstance(c, sympy.Not):
            return f"1 - ({self.condition(c.args[0])})"
        if isinstance(c, sympy.ITE):  # if c then a else b, as 0/1 arithmetic
            cond, then, other = (self.condition(a) for a in c.args)
            return f"where({cond}, {then}, {other})"
        raise Unprintable(f"cannot print the condition {c}")

    def wrap(self, e: sympy.Expr, min_prec: int) -> str:
        text, prec = self.print(e)
        return f"({text})" if prec < min_prec else text

    def add(self, e: sympy.Expr) -> tuple[str, int]:
        terms = list(e.as_ordered_terms())
        # Lead with a positive term: 1 - tanh(x)^2 rather than -tanh(x)^2 + 1.
        first_positive = next((i for i, t in enumerate(terms) if not t.could_extract_minus_sign()), None)
        if first_positive:
            terms.insert(0, terms.pop(first_positive))
        text = self.wrap(terms[0], ADD)
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                text += " - " + self.wrap(-term, MUL)
            else:
                text += " + " + self.wrap(term, MUL)
        return text, ADD

    def mul(self, e: sympy.Expr) -> tuple[str, int]:
        coeff, rest = e.as_coeff_Mul()
        factors = list(sympy.Mul.make_args(rest)) if rest != 1 else []
        if coeff < 0:
            # Fold the sign into a sum if there is one: -(s - 1)*s reads better as (1 - s)*s.
            for i, f in enumerate(factors):
                if f.is_Add:
                    factors[i] = sympy.Add(*(-t for t in f.args), evaluate=True)
                    coeff = -coeff
                    break
        if coeff < 0:
            text, prec = self.mul(-e)
            # -a*b is (-a)*b: as an operand it groups like a product, not like a lone -a.
            return "-" + text, (NEG if prec == ATOM else MUL)
        numer: list[sympy.Expr] = []
        denom: list[sympy.Expr] = []
        for f in factors:
            if f.is_Pow and f.exp.is_number and f.exp.is_negative:
                denom.append(f.base ** (-f.exp))
            else:
                numer.append(f)
        p, q = sympy.Rational(coeff).p, sympy.Rational(coeff).q
        if not numer:
            head = str(p)
            if q != 1:
                denom.insert(0, sympy.Integer(q))
        else:
            decimal = _decimal(sympy.Rational(coeff)) if q != 1 else None
            if decimal is not None and len(decimal) < len(f"{p}/{q}"):  # 0.044715*x^2
                prefix = f"{decimal}*"
            else:
                prefix = "" if coeff == 1 else (f"{p}*" if q == 1 else f"{p}/{q}*")
            head = prefix + "*".join(
                self.wrap(f, POW if _is_matmul_like(self, f) else MUL + 1) for f in numer
            )
            if not prefix and len(numer) == 1 and not denom:
                return self.print(numer[0])
        if not denom:
            return head, MUL
        if len(denom) == 1:
            tail = self.wrap(denom[0], MUL + 1)
        else:
            tail = "(" + "*".join(self.wrap(d, MUL + 1) for d in denom) + ")"
        return f"{head}/{tail}", MUL

    def pow(self, e: sympy.Expr) -> tuple[str, int]:
        base, exponent = e.as_base_exp()
        if exponent == sympy.Rational(1, 2):
            return f"sqrt({self.print(base)[0]})", ATOM
        if exponent.is_number and exponent.is_negative:
            return self.mul(e)
        if exponent == sympy.Rational(-1, 2):  # pragma: no cover - handled by mul
            return f"1/sqrt({self.print(base)[0]})", MUL
        return f"{self.wrap(base, ATOM)}^{self.wrap(exponent, POW)}", POW

    def atom(self, atom: Atom) -> tuple[str, int]:
        if atom.op == "input":
            return atom.name, ATOM
        if atom.op == "let":  # a shared step: by its name where a formula can say it, else inline
            return (atom.kw("name"), ATOM) if atom.kw("name") else self.print(atom.args[0].expr)
        args = atom.args
        if atom.op == "matmul":
            left = self._tensor(args[0], MUL)
            right = self._tensor(args[1], NEG)
            return f"{left} @ {right}", MUL
        if atom.op == "transpose":
            axes = atom.kw("axes")
            if axes == tuple(reversed(range(len(axes)))):
                return f"{self._tensor(args[0], ATOM)}.T", ATOM
            return f"transpose({self._tensor(args[0], 0)}, axes=({', '.join(map(str, axes))}))", ATOM
        if atom.op == "expand_dims":
            return f"expand_dims({self._tensor(args[0], 0)}, axis={atom.kw('axis')})", ATOM
        if atom.op == "broadcast_to":
            dims = atom.kw("shape")
            shape = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(map(str, dims))})"
            return f"broadcast_to({self._tensor(args[0], 0)}, shape={shape})", ATOM
        if atom.op in ("det", "inv", "cholesky"):
            return f"{atom.op}({self._tensor(args[0], 0)})", ATOM
        if atom.op in ("gather", "scatter_add", "index_select"):
            parts = ", ".join(self._tensor(a, 0) for a in args)
            return f"{atom.op}({parts}, axis={atom.kw('axis')})", ATOM
        if atom.op == "einsum":
            return f'einsum("{atom.kw("subscripts")}", {", ".join(self._tensor(a, 0) for a in args)})', ATOM
        if atom.op == "slice":
            return f"{self._tensor(args[0], ATOM)}[{subscript_text(atom.kw('items'), args[0].shape)}]", ATOM
        if atom.op in LAYOUT_OPS:  # reshape(x, shape=(2, 3)), concat(a, b, axis=1), ...
            parts = [self._tensor(a, 0) for a in args]
            spec = OPS[atom.op]
            given = dict(atom.kwargs)
            for param in spec.params:  # in the catalogue's order: pad(x, widths=(1, 0), value=1)
                key, value = param.name, given[param.name]
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if (
                    param is not None
                    and param.kind not in ("shape", "newshape", "widths")
                    and value == param.default
                ):
                    continue
                if (
                    isinstance(value, tuple)
                    and param is not None
                    and param.kind in ("shape", "newshape", "widths")
                ):
                    parts.append(f"{key}=({', '.join(map(str, value))}{',' if len(value) == 1 else ''})")
                else:
                    parts.append(f"{key}={keyword_text(value)}")
            return f"{atom.op}({', '.join(parts)})", ATOM
        if atom.op in ("softmax", "log_softmax"):
            axis = atom.kw("axis")
            last = axis == len(atom.shape) - 1
            return f"{atom.op}({self._tensor(args[0], 0)}{'' if last else f', axis={axis}'})", ATOM
        if atom.op in ("outer", "trace"):
            return f"{atom.op}({', '.join(self._tensor(a, 0) for a in args)})", ATOM
        if atom.op == "onehot":
            ignored = dict(atom.kwargs).get("ignore_index")
            extra = "" if ignored is None else f", ignore_index={ignored}"
            return f"onehot({self._tensor(args[0], 0)}, {atom.kw('num_classes')}{extra})", ATOM
        if atom.op == "eye":
            return f"eye({atom.kw('n')})", ATOM
        if atom.op == "index":
            return f"{self._tensor(args[0], ATOM)}[{atom.kw('at')}]", ATOM
        if atom.op == "take":
            return f"{self._tensor(args[0], ATOM)}[{self._tensor(args[1], 0)}]", ATOM
        if atom.op in ("cumsum", "cumprod"):
            return f"{atom.op}({self._tensor(args[0], 0)}, axis={atom.kw('axis')})", ATOM
        if atom.op == "prod" and len(args[0].shape) == 1 and not atom.kw("keepdims"):
            return f"prod({self._tensor(args[0], 0)})", ATOM
        if atom.op in ("sum", "mean", "logsumexp", "max", "min", "var", "std", "prod"):
            parts = [self._tensor(args[0], 0)]
            axes = atom.kw("axis")
            if axes is not None:
                parts.append(f"axis={axes[0]}" if len(axes) == 1 else f"axis=({', '.join(map(str, axes))})")
            if atom.kw("keepdims"):
                parts.append("keepdims=True")
            if atom.op in ("var", "std") and float(atom.kw("correction")) != 1:
                parts.append(f"correction={float(atom.kw('correction')):g}")
            return f"{atom.op}({', '.join(parts)})", ATOM
        raise Unprintable(f"no printed form for atom {atom.op}")

    def _tensor(self, t: object, min_prec: int) -> str:
        return self.wrap(t.expr, min_prec)  # type: ignore[attr-defined]


def _is_matmul_like(printer: LanguagePrinter, f: sympy.Expr) -> bool:
    """A matmul atom inside a product always gets parentheses: y*(W @ x), never y*W @ x."""
    return f.is_Symbol and f in printer.graph.atoms and printer.graph.atoms[f].op == "matmul"


def printable(printer: LanguagePrinter, expr: sympy.Expr) -> bool:
    try:
        printer(expr)
    except (Unprintable, ValueError):  # ValueError: an integer past Python's 4300 printable digits
        return False
    return True
