"""`symcheck explain`: the derivation the way the seed's learner did it by hand, every step checked.

The program is cut into steps where an elementwise region meets a tensor op (mean(3*(x+2)^2)
becomes t1 = 3*(x + 2)^2, out = mean(t1)); user-named steps stay as written. The forward pass
gives each step's value; the backward pass goes from the output back to the inputs, one step at
a time: the step's local derivative, the chain rule applied to the gradient arriving from above,
its simplification, and the same in terms of the inputs. Everything printed is computed by the
symbolic engine's closed form, and the end result is compared with what the autograd engine and
torch write into `.grad`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import sympy

from symcheck.checks.diagnose import claimed_numbers, diagnose, render_diagnosis
from symcheck.checks.points import make_point
from symcheck.checks.training import examples
from symcheck.engines.base import EngineOptions, EngineUnavailable
from symcheck.engines.numeric.evaluator import forward
from symcheck.engines.registry import load_engine
from symcheck.engines.symbolic.closed_form import Graph, SymTensor, simplify
from symcheck.engines.symbolic.engine import ClosedForm
from symcheck.engines.symbolic.expansion import element_symbols, expand
from symcheck.engines.symbolic.latex import name_latex, to_latex
from symcheck.engines.symbolic.printer import LanguagePrinter, Unprintable, printable
from symcheck.engines.symbolic.rules import TEXTBOOK
from symcheck.language.catalogue import OPS, OpKind, reduced_count
from symcheck.language.errors import Source, SymcheckError
from symcheck.language.ir import Call, Const, DType, Node, Program, Ref, Step, walk
from symcheck.language.parser import parse, to_source
from symcheck.suites.programs import case_wrt, parse_case_program
from symcheck.teaching.graph import load_case

ELEMENTWISE_VIEW_LIMIT = 12  # input elements up to which the element-by-element view is shown


@dataclass(frozen=True)
class Formula:
    """One expression, as the language writes it and as LaTeX."""

    text: str
    latex: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Partial:
    """d{of}/d{by}."""

    of: str
    by: str

    @property
    def text(self) -> str:
        return f"d{self.of}/d{self.by}"

    @property
    def latex(self) -> str:
        return rf"\frac{{\partial {name_latex(self.of)}}}{{\partial {name_latex(self.by)}}}"


@dataclass
class ForwardStep:
    name: str
    expr: Formula
    value: np.ndarray

    @property
    def text(self) -> str:
        return self.expr.text


@dataclass
class Link:
    """One use of a name in a step: its local derivative, and the chain rule through it."""

    name: str
    local: tuple[Partial, Formula]  # dz/dy = 6*y, or the vector-Jacobian product of a tensor op
    local_note: str  # "for any upstream dL/dz" for a vector-Jacobian product
    chain: tuple[Partial, tuple[Partial, Partial] | None, Formula] | None  # dout/dy = dout/dz * dz/dy = ...
    accumulates: bool = False  # the name was reached before: this contribution is added
    in_inputs: Formula | None = None  # the same in terms of the inputs, when it differs


@dataclass
class BackwardStep:
    name: str
    expr: Formula
    upstream: tuple[Partial, Formula] | None  # dout/dz = 1/4 (None for the output itself)
    rules: list[str]
    links: list[Link] = field(default_factory=list)


@dataclass
class Explanation:
    source: str
    output: str
    point: dict[str, np.ndarray]
    forward: list[ForwardStep]
    elementwise: list[tuple[Partial | str, Formula, str]]  # (left side, formula, remark)
    backward: list[BackwardStep]
    closed_forms: dict[str, Formula]
    values: dict[str, np.ndarray]  # the closed form at the point
    engines: dict[str, dict[str, np.ndarray]]  # what autograd and torch wrote into .grad
    notes: list[str] = field(default_factory=list)
    # Inputs given no shape (explain EXPR without -i) and the small shapes they were given.
    assumed: dict[str, tuple[int, ...]] = field(default_factory=dict)

    assumed_hint: str = "-i NAME:SHAPE picks another"

    def assumed_text(self) -> str:
        if not self.assumed:
            return ""
        shapes = ", ".join(f"{n}: float[{', '.join(map(str, s))}]" for n, s in self.assumed.items())
        return (
            f"no shape given for {', '.join(self.assumed)}: explained at {shapes}, a default small shape "
            "(the steps read the same at any size; numbers, and counts such as a mean's 1/N, are this "
            f"shape's; {self.assumed_hint})"
        )

    def _repr_markdown_(self) -> str:
        return render_markdown(self)

    def _repr_latex_(self) -> str:
        return "$" + render_latex(self) + "$"


# ---------------------------------------------------------------- cutting a program into steps


def split_steps(program: Program) -> Program:
    """Name the tensor ops' elementwise arguments (and tensor ops inside elementwise regions)."""
    taken = {s.name for s in program.steps} | set(program.inputs)
    counter = iter(range(1, 10**6))
    steps: list[Step] = []

    def fresh() -> str:
        while True:
            name = f"t{next(counter)}"
            if name not in taken:
                taken.add(name)
                return name

    def extract(node: Node) -> Node:
        """Turn a Call into a named step and return a reference to it."""
        inner = rebuild(node)
        name = fresh()
        steps.append(Step(name, name, inner, node.span))
        return Ref(node.span, name=name, target=name, type=node.type)

    def rebuild(node: Node) -> Node:
        if not isinstance(node, Call):
            return node
        elementwise = OPS[node.op].kind is OpKind.ELEMENTWISE
        args = []
        for arg in node.args:
            if isinstance(arg, Call) and (not elementwise or OPS[arg.op].kind is not OpKind.ELEMENTWISE):
                args.append(extract(arg))
            else:
                args.append(rebuild(arg))
        return replace(node, args=tuple(args))

    for step in program.steps:
        steps.append(replace(step, expr=rebuild(step.expr)))
    return Program(program.source, program.inputs, tuple(steps))


# ---------------------------------------------------------------- textbook rules


def rules_of(step: Step, program: Program) -> list[str]:
    found: list[str] = []
    calls = [n for n in walk(step.expr) if isinstance(n, Call)]
    for call in calls:
        if call.op == "mul":
            constant = any(isinstance(a, Const) or (isinstance(a, Call) and not a.args) for a in call.args)
            rule = "constant multiple" if constant else "product rule"
        elif call.op == "pow":
            rule = "power rule" if isinstance(call.args[1], Const) else "x^y = exp(y*log(x))"
        elif call.op == "mean":
            n = reduced_count(call.args[0].shape, call.kw("axis"))
            rule = f"mean: 1/N with N = {n}"
        else:
            rule = TEXTBOOK.get(call.op, "")
        if rule and rule not in found:
            found.append(rule)
    depth = max((_depth(n) for n in [step.expr]), default=0)
    if depth > 1:
        found.append("chain rule")
    shapes = {n.target: n.shape for n in walk(step.expr) if isinstance(n, Ref)}
    step_shape = step.expr.shape
    if any(s != step_shape and s != () and step.expr.type is not None for s in shapes.values()) and all(
        OPS[c.op].kind is OpKind.ELEMENTWISE for c in calls
    ):
        found.append("broadcasting: the gradient is summed over the broadcast axes")
    return found


def _depth(node: Node) -> int:
    if not isinstance(node, Call):
        return 0
    return 1 + max((_depth(a) for a in node.args), default=0)


# ---------------------------------------------------------------- the explanation


def explain(program: Program, point: Mapping[str, np.ndarray], wrt: list[str]) -> Explanation:

    steps_program = split_steps(program)
    output = program.output.name
    values = forward(steps_program, point)
    graph = Graph()
    printer = LanguagePrinter(graph)
    inline = graph.lower(steps_program)
    local_atoms: dict[str, SymTensor] = {}
    for name, decl in steps_program.inputs.items():
        local_atoms[name] = graph.input(name, decl.type.shape)
    for s in steps_program.steps:
        local_atoms[s.id] = graph.input(s.id, s.expr.shape)
    local_env = {
        **{n: local_atoms[n] for n in steps_program.inputs},
        **{s.id: local_atoms[s.id] for s in steps_program.steps},
    }

    def show(t: SymTensor) -> Formula:
        simple = simplify(t, lambda e: printable(printer, e)).expr
        return Formula(printer(simple), to_latex(graph, simple))

    def as_written(step: Step) -> Formula:
        return Formula(to_source(step.expr), to_latex(graph, graph.lower_node(step.expr, local_env).expr))

    forward_steps = [ForwardStep(s.name, as_written(s), values[s.id]) for s in steps_program.steps]

    upstream: dict[str, SymTensor] = {
        steps_program.output.id: SymTensor(sympy.Integer(1), program.output_type.shape)
    }
    backward: list[BackwardStep] = []
    inline_map = {s.id: inline[s.id] for s in steps_program.steps}
    # Only the paths that lead to a wrt input: --wrt W walks back to W, not to x as well.
    leads: set[str] = set(wrt)
    for s_ in steps_program.steps:
        if any(isinstance(n, Ref) and n.target in leads for n in walk(s_.expr)):
            leads.add(s_.id)
    for step in reversed(steps_program.steps):
        g = upstream.get(step.id)
        if g is None:
            continue
        local = graph.lower_node(step.expr, local_env)
        is_output = step.id == steps_program.output.id
        arriving = None if is_output else (Partial(output, step.name), show(g))
        entry = BackwardStep(step.name, as_written(step), arriving, rules_of(step, steps_program))
        referenced = []
        for node in walk(step.expr):
            if isinstance(node, Ref) and node.target not in referenced:
                referenced.append(node.target)
        elementwise = all(
            OPS[c.op].kind is OpKind.ELEMENTWISE for c in walk(step.expr) if isinstance(c, Call)
        )
        for target in referenced:
            decl = steps_program.inputs.get(target)
            if (decl is not None and decl.type.dtype is not DType.FLOAT) or target not in leads:
                continue
            name = target if decl is not None else steps_program.step(target).name
            contribution = graph.gradients(local, [target], seed=g)[target]
            shown = show(contribution)
            note = ""
            if elementwise:
                d_local = sympy.diff(local.expr, local_atoms[target].expr)
                local_part = (Partial(step.name, name), show(SymTensor(d_local, step.expr.shape)))
            elif is_output:
                local_part = (Partial(output, name), shown)
            else:
                seed = graph.input(f"d{output}/d{step.name}", step.expr.shape)
                vjp = graph.gradients(local, [target], seed=seed)[target]
                local_part = (Partial(output, name), show(vjp))
                note = f"for any upstream d{output}/d{step.name}"
            through = None if is_output else (Partial(output, step.name), Partial(step.name, name))
            chain = None if is_output and not elementwise else (Partial(output, name), through, shown)
            accumulates = target in upstream
            if accumulates:
                upstream[target] = SymTensor(upstream[target].expr + contribution.expr, contribution.shape)
            else:
                upstream[target] = contribution
            in_inputs = show(graph.substitute(contribution, inline_map))
            same = in_inputs.text == shown.text
            entry.links.append(Link(name, local_part, note, chain, accumulates, None if same else in_inputs))
        backward.append(entry)

    closed = ClosedForm.derive(program, wrt)
    _, grads = closed.evaluate(point)
    engines: dict[str, dict[str, np.ndarray]] = {}
    notes: list[str] = []
    for engine in ("autograd", "torch"):
        try:
            engines[engine] = load_engine(engine).run(program, point, wrt, EngineOptions()).grads
        except EngineUnavailable as e:
            notes.append(f"{engine}: {e}")
    return Explanation(
        source=program.source.text,
        output=output,
        point=dict(point),
        forward=forward_steps,
        elementwise=_elementwise_view_or_none(program, wrt, notes),
        backward=backward,
        closed_forms={
            n: Formula(closed.printed[n], to_latex(closed.graph, g.expr)) for n, g in closed.grads.items()
        },
        values=grads,
        engines=engines,
        notes=notes,
    )


def _elementwise_view_or_none(
    program: Program, wrt: list[str], notes: list[str]
) -> list[tuple[Partial | str, Formula, str]]:
    """The element-by-element view, left out (with a note) where SymPy writes its expansion with a
    function the language has no name for (the Heaviside of a minimum's derivative)."""
    try:
        return _elementwise_view(program, wrt)
    except Unprintable as e:
        notes.append(f"the element-by-element view is left out: {e}")
        return []


def _elementwise_view(program: Program, wrt: list[str]) -> list[tuple[Partial | str, Formula, str]]:
    """out written out element by element (x1, x2, ... numbered like the seed), and one partial."""
    sizes = sum(d.type.size for d in program.inputs.values())
    # Labels turn into case analyses element by element: readable only without them.
    if sizes > ELEMENTWISE_VIEW_LIMIT or any(
        d.type.dtype is not DType.FLOAT for d in program.inputs.values()
    ):
        return []
    symbols = {}
    renamed = {}
    taken = set(program.inputs) | {step.name for step in program.steps}
    for name, decl in program.inputs.items():
        syms = element_symbols(name, decl.type.shape, decl.type.dtype)
        symbols[name] = syms
        labels = _element_labels(name, syms.size, taken) if decl.type.shape else [name]
        taken.update(labels)
        for s, label in zip(syms.flat, labels, strict=True):
            renamed[s] = sympy.Symbol(label, real=True)
    output = expand(program, symbols)[program.output.id][()]
    graph = Graph()
    printer = LanguagePrinter(graph)
    out_name = program.output.name
    whole = sympy.factor_terms(output.xreplace(renamed))
    lines: list[tuple[Partial | str, Formula, str]] = [
        (out_name, Formula(printer(whole), to_latex(graph, whole)), "")
    ]
    for name in wrt:
        first = symbols[name].flat[0]
        partial = sympy.factor(sympy.diff(output, first).xreplace(renamed))
        label = renamed[first]
        alike = _alike(output, symbols[name], partial, renamed)
        formula = Formula(printer(partial), to_latex(graph, partial))
        lines.append((Partial(out_name, label.name), formula, "every element alike" if alike else ""))
    return lines


def _element_labels(name: str, size: int, taken: set[str]) -> list[str]:
    """x1, x2, ... as the seed numbers them; x_1, x_2, ... (x__1, ...) where an input or step is
    already called x1, so `out = sum(x*x) + x1` does not read as x1^2 + x1."""
    separator = ""
    while True:
        labels = [f"{name}{separator}{k + 1}" for k in range(size)]
        if taken.isdisjoint(labels):
            return labels
        separator += "_"


# Larger partials are compared as written only.
ALIKE_EXPAND_OPS = 200


def _alike(output: sympy.Expr, syms: np.ndarray, first: sympy.Expr, renamed: dict) -> bool:
    base = renamed[syms.flat[0]]
    for s in list(syms.flat)[1:]:
        other = sympy.diff(output, s).xreplace(renamed)
        alike = first.xreplace({base: renamed[s]})
        if other == alike:
            continue
        # A note, not a verdict: too big to compare is "not said alike". expand, not simplify:
        # simplify runs for minutes on the tie cases of a max.
        if sympy.count_ops(other) + sympy.count_ops(alike) > ALIKE_EXPAND_OPS:
            return False
        if sympy.expand(other - alike) != 0:
            return False
    return True


# ---------------------------------------------------------------- text


def _array(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.10g}"
    flat = a.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return f"{float(flat[0]):.10g} everywhere (shape {a.shape})"
    return np.array2string(a, precision=6, separator=", ", threshold=12, max_line_width=90).replace("\n", " ")


def _label(left: Partial | str, latex: bool) -> str:
    if isinstance(left, Partial):
        return left.latex if latex else left.text
    return name_latex(left) if latex else left


def _chain_text(
    chain: tuple[Partial, tuple[Partial, Partial] | None, Formula], accumulates: bool, latex: bool
) -> str:
    left, through, value = chain
    sign = "+=" if accumulates else "="
    if latex:
        sign = "\\mathrel{+}=" if accumulates else "="
        if through:
            return f"{left.latex} {sign} {through[0].latex} {through[1].latex} = {value.latex}"
        return f"{left.latex} {sign} {value.latex}"
    middle = f" {through[0].text} * {through[1].text} =" if through else ""
    return f"{left.text} {sign}{middle} {value.text}" + (
        "   (used more than once: added)" if accumulates else ""
    )


def render_text(ex: Explanation) -> str:
    pad = "  "
    lines = [f"symcheck explain: {ex.source.strip()}"]
    lines.append("at " + ", ".join(f"{n} = {_array(v)}" for n, v in ex.point.items()))
    if ex.assumed:
        lines.append(ex.assumed_text())
    lines.append("")
    lines.append("forward pass")
    width = max(len(f"{s.name} = {s.text}") for s in ex.forward)
    for s in ex.forward:
        lines.append(f"{pad}{s.name + ' = ' + s.text:<{width}}   -> {_array(s.value)}")
    if ex.elementwise:
        lines.append("")
        lines.append("element by element")
        for left, formula, remark in ex.elementwise:
            lines.append(
                f"{pad}{_label(left, False)} = {formula.text}" + (f"   ({remark})" if remark else "")
            )
    lines.append("")
    lines.append(f"backward pass, from {ex.output} back to the inputs")
    for b in ex.backward:
        lines.append(f"{pad}{b.name} = {b.expr.text}")
        if b.upstream:
            lines.append(f"{pad * 2}arriving: {b.upstream[0].text} = {b.upstream[1].text}")
        for link in b.links:
            note = f"   ({link.local_note})" if link.local_note else ""
            local = f"{link.local[0].text} = {link.local[1].text}"
            lines.append(f"{pad * 2}local:    {local}{note}")
            if link.chain:
                chain = _chain_text(link.chain, link.accumulates, False)
                if chain != local:
                    lines.append(f"{pad * 2}chain:    {chain}")
            if link.in_inputs:
                lines.append(f"{pad * 2}          = {link.in_inputs.text}   (in terms of the inputs)")
        if b.rules:
            lines.append(f"{pad * 2}rules:    {'; '.join(b.rules)}")
    lines.append("")
    lines.append("result")
    for name, form in ex.closed_forms.items():
        lines.append(f"{pad}d{ex.output}/d{name} = {form.text}")
        lines.extend(f"{pad}  {line}" for line in _grad_lines(ex, name))
    lines.extend(f"{pad}note: {n}" for n in ex.notes)
    return "\n".join(lines) + "\n"


def _grad_lines(ex: Explanation, name: str) -> list[str]:
    lines = [f"symbolic  {name}.grad = {_array(ex.values[name])}"]
    for engine, grads in ex.engines.items():
        if name in grads:
            same = np.allclose(grads[name], ex.values[name], rtol=1e-7, atol=1e-9)
            lines.append(f"{engine:9} {name}.grad = {_array(grads[name])}" + ("" if same else "   DIFFERS"))
    return lines


def render_markdown(ex: Explanation) -> str:
    """Markdown with LaTeX math ($...$), for notes and GitHub."""
    lines = [f"### `symcheck explain`: `{ex.source.strip()}`", ""]
    lines.append("At " + ", ".join(f"`{n}` = {_array(v)}" for n, v in ex.point.items()) + ".")
    if ex.assumed:
        lines += ["", f"*{ex.assumed_text()}*"]
    lines += ["", "**Forward pass**", ""]
    for s in ex.forward:
        lines.append(f"- ${name_latex(s.name)} = {s.expr.latex}$ → {_array(s.value)}")
    if ex.elementwise:
        lines += ["", "**Element by element**", ""]
        for left, formula, remark in ex.elementwise:
            lines.append(f"- ${_label(left, True)} = {formula.latex}$" + (f" ({remark})" if remark else ""))
    lines += ["", f"**Backward pass**, from ${name_latex(ex.output)}$ back to the inputs", ""]
    for b in ex.backward:
        lines.append(
            f"- ${name_latex(b.name)} = {b.expr.latex}$" + (f" — {'; '.join(b.rules)}" if b.rules else "")
        )
        if b.upstream:
            lines.append(f"  - arriving: ${b.upstream[0].latex} = {b.upstream[1].latex}$")
        for link in b.links:
            lines.append(
                f"  - local: ${link.local[0].latex} = {link.local[1].latex}$"
                + (f" ({link.local_note})" if link.local_note else "")
            )
            if link.chain:
                lines.append(f"  - chain rule: ${_chain_text(link.chain, link.accumulates, True)}$")
            if link.in_inputs:
                lines.append(f"  - in terms of the inputs: ${link.in_inputs.latex}$")
    lines += ["", "**Result**", ""]
    for name, form in ex.closed_forms.items():
        lines.append(
            f"- $\\frac{{\\partial {name_latex(ex.output)}}}{{\\partial {name_latex(name)}}} = {form.latex}$"
        )
        lines.extend(f"  - `{line}`" for line in _grad_lines(ex, name))
    return "\n".join(lines) + "\n"


def render_latex(ex: Explanation) -> str:
    """A LaTeX fragment (an aligned block of the derivation) for papers and slides."""
    rows = []
    for b in ex.backward:
        for link in b.links:
            rows.append(f"{link.local[0].latex} &= {link.local[1].latex}")
            if link.chain:
                rows.append(_chain_text(link.chain, link.accumulates, True).replace(" = ", " &= ", 1))
    for name, form in ex.closed_forms.items():
        rows.append(
            f"\\frac{{\\partial {name_latex(ex.output)}}}{{\\partial {name_latex(name)}}} &= {form.latex}"
        )
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


# ---------------------------------------------------------------- the command


def load_target(
    target: str, inputs: Sequence[str], case_name: str | None, wrt: str | None
) -> tuple[Program, dict[str, np.ndarray], list[str], object]:
    """EXPR with -i specs, or a suite file and --case NAME: the program, the point, the wrt inputs."""

    case = load_case(target, inputs, case_name, wrt, default_shapes=True)
    program = parse_case_program(case)
    shape = program.output_type.shape
    if shape != ():
        raise SymcheckError(
            f"explain walks a scalar output's gradient step by step; this output has shape {shape}",
            source=program.source,
            span=program.output.span,
            hint="explain a scalar of it (sum(...) with a weight, a loss), or see its Jacobian and the "
            "closed form of its VJP with symcheck grad",
        )
    return program, make_point(case.inputs, case.seed, program), case_wrt(case), case


@dataclass
class ClaimCheck:
    """One --claim against the closed form: the verdict and its explanation, in text and LaTeX."""

    output: str
    wrt: str
    claim: str  # as written
    claim_latex: str
    right: bool
    verdict: str  # "right (proven equal to the closed form)", "WRONG", "holds at every point tried, ..."
    details: list[str]  # the diagnosis' further lines (claimed - true, where they differ, why)

    @property
    def lines(self) -> list[str]:
        return [f"claim d{self.output}/d{self.wrt} = {self.claim}: {self.verdict}", *self.details]


def claim_checks(
    program: Program,
    wrt: list[str],
    claims: Sequence[str],
    point: Mapping[str, np.ndarray] | None = None,
    label: str | None = "the given values",
) -> list[ClaimCheck]:
    """`name: formula` claims against the closed form, each diagnosed (symcheck/checks/diagnose.py).
    A claim that is a number (or a list of them) is the gradient at `point`, as numbers in expect:."""
    closed = ClosedForm.derive(program, wrt)
    label = label if point else None
    checks = []
    for claim in claims:
        name, sep, formula = claim.partition(":")
        name, formula = name.strip(), formula.strip()
        if not sep or name not in closed.grads:
            raise SymcheckError(
                f"bad claim {claim!r}", hint=f"write NAME: FORMULA with NAME one of {', '.join(closed.grads)}"
            )
        numbers = claimed_numbers(formula)
        if numbers is not None:  # "x: 4.5": the gradient at the given values, as in expect:
            checks.append(_numbers_check(program, closed, name, formula, numbers, point, label))
            continue
        result = diagnose(closed, name, formula, point=point, point_label=label)
        first, *details = render_diagnosis(result).splitlines()
        verdict = first.split(f" = {formula}: ", 1)[-1]
        latex = _claim_latex(program, closed, formula)
        checks.append(
            ClaimCheck(program.output.name, name, formula, latex, bool(result.correct), verdict, details)
        )
    return checks


def assumed_shapes(target: str, inputs: Sequence[str], program: Program) -> dict[str, tuple[int, ...]]:
    """The inputs of EXPR that no -i named (load_target gave them default shapes), with their shapes."""
    if target.lower().endswith((".yaml", ".yml")):
        return {}
    named = {text.partition(":")[0].partition("=")[0].strip() for text in inputs}
    return {n: d.type.shape for n, d in program.inputs.items() if n not in named}


def _claim_latex(program: Program, closed: ClosedForm, formula: str) -> str:
    """The claim typeset as written: lowered unevaluated (3*(x + 2), not SymPy's 3*x + 6), on a graph
    of its own; evaluated where that fails (a tensor op's simplification needs its terms)."""
    parsed = parse(formula, Source(formula, "<claim>"))
    try:
        shown = ClosedForm.lowered(program)
        with sympy.evaluate(False):
            lowered = shown.lower_formula(parsed)
        return to_latex(shown.graph, lowered.expr)
    except Exception:  # SymPy unevaluated is fragile: the evaluated form, still the same claim
        pass
    try:
        return to_latex(closed.graph, closed.lower_formula(parsed).expr)
    except Exception:  # pragma: no cover - the diagnosis parsed it already; a printer corner case
        return r"\texttt{" + latex_text(formula) + "}"


def _numbers_check(
    program: Program,
    closed: ClosedForm,
    name: str,
    formula: str,
    numbers: np.ndarray,
    point: Mapping[str, np.ndarray] | None,
    label: str | None,
) -> ClaimCheck:
    latex = r"\texttt{" + latex_text(formula) + "}"
    output = program.output.name
    if point is None:
        raise SymcheckError(
            f"claim for '{name}' is a number, the gradient at the given values; no value is given",
            hint="give the inputs' values (-i x:2x2=1), or claim a formula",
        )
    true = closed.evaluate(point)[1][name]
    try:
        claimed = np.broadcast_to(numbers, true.shape)
    except ValueError:
        return ClaimCheck(
            output,
            name,
            formula,
            latex,
            False,
            "WRONG",
            [f"  the claim has shape {numbers.shape}, d{output}/d{name} has {name}'s shape {true.shape}"],
        )
    if np.allclose(claimed, true, rtol=1e-7, atol=1e-9):
        return ClaimCheck(output, name, formula, latex, True, f"right (at {label})", [])
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(claimed - true))), true.shape))
    where = f"  differs at index {index}: claimed {claimed[index]:.10g}, true {true[index]:.10g}"
    return ClaimCheck(output, name, formula, latex, False, f"WRONG (at {label})", [where])


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "$": r"\$",
    "~": r"\textasciitilde{}",
}


def latex_text(text: str) -> str:
    """Plain text made safe inside LaTeX's \\text{...} (and KaTeX's)."""
    import re

    return re.sub(r"[\\{}^_&%#$~]", lambda m: _LATEX_SPECIALS[m.group(0)], text)


def _partial_latex(output: str, wrt: str) -> str:
    return f"\\frac{{\\partial {name_latex(output)}}}{{\\partial {name_latex(wrt)}}}"


def render_claims_markdown(checks: Sequence[ClaimCheck]) -> str:
    """The claims' verdicts as a Markdown list: each claim typeset, its verdict in bold."""
    lines = ["**Claims**", ""]
    for c in checks:
        verdict, _, rest = c.verdict.partition(" (")
        shown = f"**{verdict}**" + (f" ({rest}" if rest else "")
        lines.append(f"- ${_partial_latex(c.output, c.wrt)} = {c.claim_latex}$: {shown}")
        lines.extend(f"  - `{d.strip()}`" for d in c.details)
    return "\n".join(lines) + "\n"


def render_claims_latex(checks: Sequence[ClaimCheck]) -> str:
    """The claims' verdicts as LaTeX rows: the claim as math, the verdict and its reasons as text."""
    rows = []
    for c in checks:
        rows.append(
            f"{_partial_latex(c.output, c.wrt)} &\\overset{{?}}{{=}} {c.claim_latex}"
            f" \\quad \\text{{{latex_text(c.verdict)}}}"
        )
        rows.extend(f"&\\quad \\text{{{latex_text(d.strip())}}}" for d in c.details)
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


# ---------------------------------------------------------------- the SGD step, made visible


def sgd_step_lines(case: object, program: Program, point: Mapping[str, np.ndarray]) -> list[str]:
    """For a case with a `train:` block: what backward(), step() and zero_grad() do to .grad,
    on the first training example, with the exact gradient (the seed's confusion, answered)."""

    spec = case.train  # type: ignore[attr-defined]
    params = list(spec.parameters)
    first = {**point, **examples(spec, case, None)[0]}
    closed = ClosedForm.derive(program, params)
    _, grads = closed.evaluate(first)
    lr = spec.optimizer.lr
    out = program.output.name
    lines = ["", f"one training step ({spec.optimizer.describe()}), on the first example"]
    lines.append(
        f"  {out} = {to_source(program.output.expr)}   (loss.backward() never passes {out} to the optimizer)"
    )
    for name in params:
        g = grads[name]
        new = np.asarray(first[name], dtype=float) - lr * g
        lines.append(f"  backward()   adds d{out}/d{name} to .grad: {name}.grad = {_array(g)}")
        lines.append(
            f"  step()       reads {name}.grad only:  {name} <- {name} - {lr:g}*{name}.grad = {_array(new)}"
        )
    lines.append("  zero_grad()  sets every .grad back to zero before the next backward()")
    lines.append(
        "  without it   a second backward() adds again: .grad = "
        + ", ".join(f"{n}.grad = {_array(2 * grads[n])}" for n in params[-1:])
        + " on the same example (the sum of both gradients), and step() moves by that sum"
    )
    if spec.optimizer.momentum or spec.optimizer.weight_decay:
        lines.append("  (momentum and weight decay change what step() does with .grad; see torch.optim.SGD)")
    return lines
