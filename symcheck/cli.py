"""The command line. Thin: it parses options, calls the runner and prints a report.

Exit codes: 0 every engine agrees and every expectation holds; 1 a mismatch or a failed
expectation; 2 bad input (a message with file:line:col, no traceback); 3 an internal error.
Heavy modules (torch, sympy) load only when a command runs an engine, never for --help.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, NoReturn

import click

from symcheck import __version__

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
ENGINE_NAMES = ("symbolic", "autograd", "torch", "numeric")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _guarded(fn: Callable[..., int]) -> Callable[..., None]:
    """User mistakes become located messages (exit 2); anything else is our bug (exit 3)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from symcheck.errors import SymcheckError

        try:
            code = fn(*args, **kwargs)
        except SymcheckError as e:
            _fail(e.render(), EXIT_BAD_INPUT)
        except (KeyboardInterrupt, click.exceptions.Exit, click.ClickException):
            raise
        except Exception:
            import traceback

            _fail(
                "internal error (this is a bug in symcheck, please report it):\n" + traceback.format_exc(),
                EXIT_INTERNAL,
            )
        sys.exit(code)

    return wrapper


def _engine_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in ENGINE_NAMES:
            from symcheck.errors import did_you_mean

            hint = did_you_mean(name, ENGINE_NAMES) or f"engines are {', '.join(ENGINE_NAMES)}"
            raise click.BadParameter(f"unknown engine '{name}'; {hint}", param_hint="--engines")
    return names


common_options = [
    click.option("--engines", help="Comma-separated engines to run (default: all four)."),
    click.option("--samples", type=click.IntRange(min=0), help="Random points besides the given values."),
    click.option("--seed", type=click.IntRange(min=0), help="Seed for random inputs."),
    click.option(
        "--expansion-budget", type=click.IntRange(min=0), help="Most input elements to expand symbolically."
    ),
    click.option("--order", type=click.IntRange(1, 2), help="2: also check second derivatives."),
    click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True),
    click.option("-v", "--verbose", is_flag=True, help="Show every engine note."),
]


def _with_common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(common_options):
        fn = option(fn)
    return fn


def _override(cases: Sequence[Any], **changes: Any) -> list[Any]:
    from dataclasses import replace

    given = {k: v for k, v in changes.items() if v is not None}
    return [replace(c, **given) for c in cases] if given else list(cases)


def _report(results: Sequence[Any], fmt: str, verbose: bool) -> int:
    from symcheck.report import render_json, render_text

    click.echo(render_json(results) if fmt == "json" else render_text(results, verbose), nl=False)
    if any(r.status == "error" for r in results):
        return EXIT_INTERNAL
    return EXIT_OK if all(r.status == "pass" for r in results) else EXIT_MISMATCH


def _run(cases: Sequence[Any], fmt: str, verbose: bool) -> int:
    from symcheck.verify import run_cases

    results, errors = run_cases(cases)
    if errors:
        _fail(
            "\n".join(e.render() for e in errors) + f"\n{len(errors)} error(s) in the input", EXIT_BAD_INPUT
        )
    return _report(results, fmt, verbose)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="symcheck")
def main() -> None:
    """symcheck: check derivatives with four independent engines (SymPy, our own autograd,
    PyTorch, finite differences) and report where they agree or part."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-k", "keyword", help="Run only cases whose name contains this text.")
@_with_common
@_guarded
def verify(
    paths: tuple[str, ...],
    keyword: str | None,
    engines: str | None,
    samples: int | None,
    seed: int | None,
    expansion_budget: int | None,
    order: int | None,
    fmt: str,
    verbose: bool,
) -> int:
    """Run the suites in PATHS (YAML files, or directories searched for *.yaml)."""
    from symcheck.suite import load_paths

    suites = load_paths(list(paths))
    cases = [c for s in suites for c in s.cases if keyword is None or keyword in c.name]
    if not cases:
        _fail("no cases found" + (f" matching -k {keyword!r}" if keyword else f" in {', '.join(paths)}"), 2)
    cases = _override(
        cases,
        engines=_engine_list(engines),
        samples=samples,
        seed=seed,
        expansion_budget=expansion_budget,
        order=order,
    )
    return _run(cases, fmt, verbose)


@main.command()
@click.argument("expr")
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    metavar="SPEC",
    help="An input: x:2x2=1 (shape 2x2 filled with 1), x:3x4 (random), x=[[1,2],[3,4]], s=0.5, "
    "y:4:int=[0,1,1,0], x:3~uniform(-1,1). Repeat for each input.",
)
@click.option("--wrt", help="Comma-separated inputs to differentiate by (default: every float input).")
@click.option(
    "--dtype", type=click.Choice(["float64", "float32", "float16", "bfloat16"]), help="torch engine dtype."
)
@click.option("--device", help="torch engine device (cpu, cuda, cuda:1).")
@_with_common
@_guarded
def grad(
    expr: str,
    inputs: tuple[str, ...],
    wrt: str | None,
    dtype: str | None,
    device: str | None,
    engines: str | None,
    samples: int | None,
    seed: int | None,
    expansion_budget: int | None,
    order: int | None,
    fmt: str,
    verbose: bool,
) -> int:
    """Differentiate EXPR (a program: `y = x + 2; out = mean(3*y^2)`) without a suite file."""
    from symcheck.errors import Source, SymcheckError
    from symcheck.inputs import parse_cli_input
    from symcheck.parser import parse
    from symcheck.suite import Case, Expect, Tolerance

    specs = {}
    for text in inputs:
        name, spec = parse_cli_input(text)
        if name in specs:
            raise SymcheckError(f"input '{name}' is given twice", hint="give each input once with -i")
        specs[name] = spec
    source = Source(expr, "<command line>")
    missing = [n for n in parse(expr, source).free_names() if n not in specs]
    if missing:
        example = " ".join(f"-i {n}:2x2=1" for n in missing)
        raise SymcheckError(
            f"no input spec for {', '.join(missing)}",
            hint=f"give every input a shape or value, e.g. {example}",
        )
    case = Case(
        name=expr.strip().splitlines()[0] if "\n" not in expr.strip() else "<command line>",
        file="<command line>",
        line=1,
        expr=expr,
        expr_source=source,
        inputs=specs,
        wrt=[w.strip() for w in wrt.split(",")] if wrt else None,
        expect=Expect(),
        engines=list(ENGINE_NAMES),
        tolerance=Tolerance(),
        dtype=dtype or "float64",
        device=device or "cpu",
    )
    (case,) = _override(
        [case],
        engines=_engine_list(engines),
        samples=samples,
        seed=seed,
        expansion_budget=expansion_budget,
        order=order,
    )
    return _run([case], fmt, verbose)


@main.command()
def ops() -> None:
    """List the ops of the language: arity, keyword arguments, domains and kinks."""
    from symcheck.ops import CATALOGUE

    for op in CATALOGUE:
        signature = f"a {op.infix} b" if op.infix else None
        if op.name == "neg":
            signature = "-x"
        elif op.name in ("index", "take"):
            signature = "x[k]" if op.name == "index" else "x[y], take(x, y)"
        elif signature is None:
            names = ["x"] if op.arity == 1 else ["cond", "a", "b"][-op.arity :] if op.arity else []
            names += [p.name for p in op.params if p.name in op.positional]
            params = [f"{p.name}={p.default}" for p in op.params if p.name not in op.positional]
            signature = f"{op.name}({', '.join(names + params)})"
        extra = [d.text for d in op.domain] + [k.text for k in op.kinks]
        if not op.differentiable:
            extra.append("not differentiable: gradient 0")
        if op.name == "pow":
            extra.append("a non-integer exponent needs base > 0")
        click.echo(f"{op.name:12} {signature:34} {op.doc}" + (f"  [{'; '.join(extra)}]" if extra else ""))


if __name__ == "__main__":  # pragma: no cover
    main()
