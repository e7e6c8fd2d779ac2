"""The command line. Thin: it parses options, calls the runner and prints a report.

Exit codes: 0 every engine agrees and every expectation holds; 1 a mismatch or a failed
expectation; 2 bad input (a message with file:line:col, no traceback); 3 an internal error.
Each command imports the layers it uses when it runs (the suites, the checker, the reports, teaching),
so that `symcheck --help` stays fast and torch and sympy load only when a command runs an engine.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, NoReturn

import click

from symcheck import __version__
from symcheck.engines.registry import available_engines, entry_point_engines, plugins_loaded
from symcheck.language.catalogue import CATALOGUE
from symcheck.language.errors import Source, SymcheckError, did_you_mean

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
ENGINE_NAMES = ("symbolic", "autograd", "torch", "numeric")


def _printable(text: str) -> str:
    """Text that any UTF-8 stream takes: an argument's undecodable bytes reach Python as lone
    surrogates (`x9#\udcff`), which would raise UnicodeEncodeError at the print."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(_printable(message), err=True)
    sys.exit(code)


def _guarded(fn: Callable[..., int]) -> Callable[..., None]:
    """User mistakes become located messages (exit 2); anything else is our bug (exit 3)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:

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

    known = available_engines()  # the four, plus plug-ins (docs/engines.md); lists, imports nothing
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known) or f"engines are {', '.join(known)}"
            raise click.BadParameter(f"unknown engine '{name}'; {hint}", param_hint="--engines")
    return names


# Engine plug-ins added to every case of this command (--engine-plugin; installed entry points
# with --allow-import): set by _with_plugins while the command runs.
_plugin_columns: list[str] = []


def _with_plugins(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--engine-plugin MODULE:CLASS (repeatable): register user engines for this command.

    Importing a plug-in runs its code, so it needs --allow-import. Installed plug-ins (entry point
    group symcheck.engines) run where a case or --engines names them; --allow-import also adds
    every installed one to every case. Goes under @_guarded, so a bad plug-in is exit 2."""

    @click.option(
        "--engine-plugin",
        "engine_plugins",
        multiple=True,
        metavar="MODULE:CLASS",
        help="Also run your own engine (a symcheck.engines.Engine subclass), as one more column in "
        "every case; needs --allow-import. Repeatable. See docs/engines.md.",
    )
    @wraps(fn)
    def wrapper(*args: Any, engine_plugins: tuple[str, ...] = (), **kwargs: Any) -> Any:

        allow = bool(kwargs.get("allow_import"))
        if engine_plugins and not allow:
            raise SymcheckError(
                f"--engine-plugin {engine_plugins[0]} would import and run Python code",
                hint="add --allow-import to allow it",
            )
        with plugins_loaded(engine_plugins) as names:
            installed = [n for n in entry_point_engines() if n not in names] if allow else []
            _plugin_columns[:] = [*names, *installed]
            try:
                return fn(*args, **kwargs)
            finally:
                _plugin_columns.clear()

    return wrapper


def _with_limits(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--max-elements N and --limit NAME=VALUE (repeatable): run the command under raised (or
    lowered) limits, over those of [tool.symcheck.limits] in the nearest pyproject.toml (of the
    first suite's folder for verify, else of the current folder) and the defaults. Goes under
    @_guarded, so a bad value is exit 2; --samples is checked against the max-samples in force."""

    @click.option(
        "--limit",
        "limit_assignments",
        multiple=True,
        metavar="NAME=VALUE",
        help="Raise one of symcheck's limits for this run (README, 'Limits'), e.g. max-depth=400. "
        "Repeatable.",
    )
    @click.option(
        "--max-elements",
        type=click.IntRange(min=1),
        help="Most elements of any input or intermediate tensor (default 10,000,000).",
    )
    @wraps(fn)
    def wrapper(
        *args: Any, limit_assignments: tuple[str, ...] = (), max_elements: int | None = None, **kwargs: Any
    ) -> Any:
        from pathlib import Path

        from symcheck.language import limits
        from symcheck.suites.config import project_limits

        paths = kwargs.get("paths") or ()
        start = Path(paths[0]) if paths else Path.cwd()
        found = project_limits(start if start.is_dir() else start.parent)
        given = dict(limits.parse_assignment(a) for a in limit_assignments)
        if max_elements is not None:
            given["max-elements"] = max_elements
        chosen = limits.with_overrides(found, given, "--limit")
        samples = kwargs.get("samples")
        if samples is not None and samples > chosen.max_samples:
            raise SymcheckError(
                f"--samples {samples:,}: at most {chosen.max_samples:,}", hint=chosen.describe("max_samples")
            )
        with limits.using(chosen):
            return fn(*args, **kwargs)

    return wrapper


def _add_plugin_columns(cases: Sequence[Any]) -> list[Any]:
    from dataclasses import replace

    return [
        replace(c, engines=[*c.engines, *(n for n in _plugin_columns if n not in c.engines)])
        if any(n not in c.engines for n in _plugin_columns)
        else c
        for c in cases
    ]


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """click's FloatRange lets nan through (every comparison with it is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


common_options = [
    click.option("--engines", help="Comma-separated engines to run (default: all four)."),
    click.option(
        "--samples",
        type=click.IntRange(min=0),
        help="Random points besides the given values (at most 1000, the max-samples limit).",
    ),
    click.option("--seed", type=click.IntRange(min=0), help="Seed for random inputs."),
    click.option(
        "--expansion-budget", type=click.IntRange(min=0), help="Most input elements to expand symbolically."
    ),
    click.option("--order", type=click.IntRange(1, 2), help="2: also check second derivatives."),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, max=86400, min_open=True),
        callback=_finite,
        help="Seconds the symbolic engine may spend on a case before it gives up (default 60).",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json", "junit", "github", "markdown"]),
        default="text",
        show_default=True,
        help="text for people; json (schema in the README); junit XML; github workflow annotations; "
        "markdown: a table per suite, for a pull-request comment.",
    ),
    click.option(
        "--color",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="Colour the text report; auto: on a terminal, unless NO_COLOR is set.",
    ),
    click.option("-v", "--verbose", is_flag=True, help="Show every engine note."),
    click.option(
        "--fail-on-skip",
        is_flag=True,
        help="Exit 1 when the code under test did not run (an impl, a plug-in, torch on the device asked).",
    ),
]


def _with_common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(common_options):
        fn = option(fn)
    return fn


CACHE_FOLDER = ".symcheck_cache"
NO_CACHE_ENV = "SYMCHECK_NO_CACHE"  # set (not 0): no cache, as --no-cache (engines/cache.py)


def _with_cache(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--cache/--no-cache and --cache-clear: closed forms derived by earlier runs, kept in
    .symcheck_cache/ in the current folder (symcheck/engines/cache.py)."""

    @wraps(fn)
    def wrapper(*args: Any, cache: bool, cache_clear: bool, **kwargs: Any) -> Any:
        from symcheck.engines import cache as derived

        folder = os.path.abspath(CACHE_FOLDER)
        if cache_clear:
            derived.clear(folder)
        before = {k: os.environ.get(k) for k in (derived.CACHE_ENV, NO_CACHE_ENV)}
        if cache and derived.enabled():
            os.environ[derived.CACHE_ENV] = folder  # -j workers inherit it
        else:
            os.environ.pop(derived.CACHE_ENV, None)
            os.environ[NO_CACHE_ENV] = "1"  # nothing reused, in memory either
        try:
            return fn(*args, **kwargs)
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    wrapper = click.option(
        "--cache-clear", is_flag=True, help=f"Remove {CACHE_FOLDER}/ first (a cache symcheck made)."
    )(wrapper)
    return click.option(
        "--cache/--no-cache",
        default=True,
        show_default=True,
        help=f"Reuse closed forms derived by earlier runs, kept (signed) in {CACHE_FOLDER}/ here; "
        f"{NO_CACHE_ENV}=1 turns it off too.",
    )(wrapper)


def _override(cases: Sequence[Any], **changes: Any) -> list[Any]:
    from dataclasses import replace

    given = {k: v for k, v in changes.items() if v is not None}
    return [replace(c, **given) for c in cases] if given else list(cases)


def _report(
    results: Sequence[Any],
    fmt: str,
    verbose: bool,
    color: str = "auto",
    suite_names: dict[str, str] | None = None,
    fail_on_skip: bool = False,
    quiet: bool = False,
) -> int:
    from symcheck.report.formats import render
    from symcheck.report.terminal import use_color

    colored = fmt == "text" and use_color(color)
    text = render(results, fmt, verbose=verbose, color=colored, suite_names=suite_names, quiet=quiet)
    click.echo(
        _printable(text), nl=False, color=colored or None
    )  # click strips ANSI off a terminal unless told
    if any(r.status == "error" for r in results):
        return EXIT_INTERNAL
    # A skip is not a failure unless asked: what did not run is reported, never counted as passed.
    passing = ("pass",) if fail_on_skip else ("pass", "skip")
    return EXIT_OK if all(r.status in passing for r in results) else EXIT_MISMATCH


def _run(
    cases: Sequence[Any],
    fmt: str,
    verbose: bool,
    color: str = "auto",
    *,
    jobs: int = 1,
    baseline: str | None = None,
    update_baseline: bool = False,
    strict_baseline: bool = False,
    suite_names: dict[str, str] | None = None,
    fail_on_skip: bool = False,
    quiet: bool = False,
) -> int:
    from symcheck.checks.runner import run_cases
    from symcheck.report.terminal import Progress

    cases = _add_plugin_columns(cases)  # --engine-plugin, and installed plug-ins with --allow-import
    recorded = _read_baseline(baseline, update_baseline)  # before running: a bad file fails fast
    progress = Progress()  # stderr, and only on a terminal
    try:
        results, errors = run_cases(cases, jobs=jobs, progress=progress)
    finally:
        progress.close()
    if errors:
        _fail(
            "\n".join(e.render() for e in errors) + f"\n{len(errors)} error(s) in the input", EXIT_BAD_INPUT
        )
    if baseline is not None:
        from symcheck.checks import baseline as baselines

        if update_baseline:  # the only file verify writes besides its cache
            baselines.write(baseline, baselines.record(results, baseline, recorded))
            click.echo(f"baseline: recorded {len(results)} case(s) in {baseline}", err=True)
        else:
            assert recorded is not None
            baselines.compare(results, recorded, baseline, strict=strict_baseline)
    return _report(results, fmt, verbose, color, suite_names, fail_on_skip, quiet)


def _read_baseline(path: str | None, update: bool) -> dict[str, Any] | None:
    """The baseline to compare with, or (updating) the one whose other cases are kept, if any."""
    if path is None or (update and not os.path.exists(path)):
        return None
    from symcheck.checks.baseline import load

    return load(path)


class _Jobs(click.ParamType):
    """-j N: a number of processes; 0 or auto: one per CPU."""

    name = "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            jobs = value
        elif str(value).strip().lower() == "auto":
            jobs = 0
        else:
            try:
                jobs = int(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a number of processes or 'auto'", param, ctx)
        if jobs < 0:
            self.fail(f"{value!r}: give 1 or more processes, or 0 / auto for one per CPU", param, ctx)
        return jobs or os.cpu_count() or 1


def _parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """--shard I/N: 1 <= I <= N."""
    if value is None:
        return None
    index, slash, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not slash or n < 1 or not 1 <= i <= n:
        raise click.BadParameter(f"{value!r} is not I/N with 1 <= I <= N (e.g. 2/4)", ctx, param)
    return i, n


def shard_cases(cases: Sequence[Any], index: int, count: int) -> list[Any]:
    """The index-th (1-based) of `count` shares: round-robin over the cases in load order (files
    sorted, cases as written), so every shard gets a fair mix and the shards partition the run."""
    return list(cases[index - 1 :: count])


def entry() -> None:
    """The `symcheck` command: main(), then the process ends without tearing its objects down one by
    one (SymPy's caches, torch's modules: 0.6 s of a suite run). Output is flushed first; nothing
    else waits for the interpreter's shutdown (reports are closed when written, workers joined)."""
    try:
        main()  # standalone: ends in SystemExit
        code: object = 0
    except SystemExit as e:
        code = e.code
    if isinstance(code, str):  # as sys.exit("message") would: the message, status 1
        print(code, file=sys.stderr)
    status = code if isinstance(code, int) else (0 if code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # a reader that left (| head); closed
            stream.flush()
    os._exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="symcheck")
def main() -> None:
    """symcheck: check derivatives with four independent engines (SymPy, our own autograd,
    PyTorch, finite differences) and report where they agree or part."""


@main.command()
@_with_cache
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-k", "keyword", help="Run only cases whose name contains this text.")
@click.option(
    "-j",
    "--jobs",
    type=_Jobs(),
    default="1",
    help="Run the cases in N processes (0 or auto: one per CPU); the report is the same.",
)
@click.option(
    "--shard",
    metavar="I/N",
    callback=_parse_shard,
    help="Run only share I of N (1-based; round-robin over the cases in load order), for a CI matrix.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False),
    help="Also compare every engine's numbers with those recorded in this JSON file.",
)
@click.option(
    "--update-baseline", is_flag=True, help="Record this run's numbers in the --baseline file instead."
)
@click.option(
    "--strict-baseline", is_flag=True, help="A case or point that the baseline lacks fails (default: noted)."
)
@click.option(
    "--allow-import",
    is_flag=True,
    help="Import the Python code that cases name with impl: (it runs). Without it, only where "
    "[tool.symcheck] allow-import = true in the suite's pyproject.toml.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="The text report shows only the cases that did not pass, and the summary.",
)
@_with_common
@_guarded
@_with_limits
@_with_plugins
def verify(
    paths: tuple[str, ...],
    keyword: str | None,
    jobs: int,
    shard: tuple[int, int] | None,
    baseline: str | None,
    update_baseline: bool,
    strict_baseline: bool,
    allow_import: bool,
    quiet: bool,
    engines: str | None,
    samples: int | None,
    seed: int | None,
    expansion_budget: int | None,
    order: int | None,
    timeout: float | None,
    fmt: str,
    color: str,
    verbose: bool,
    fail_on_skip: bool,
) -> int:
    """Run the suites in PATHS (YAML files, or directories searched for *.yaml)."""
    from symcheck.suites.loader import load_paths

    if (update_baseline or strict_baseline) and baseline is None:
        flag = "--update-baseline" if update_baseline else "--strict-baseline"
        raise click.UsageError(f"{flag} needs --baseline FILE")
    if jobs > 1:
        from symcheck.checks.runner import start_worker_server

        start_worker_server()  # its imports (2 s) go on while the suites load here
    suites = load_paths(list(paths))
    cases = [c for s in suites for c in s.cases if keyword is None or keyword in c.name]
    if not cases:
        _fail("no cases found" + (f" matching -k {keyword!r}" if keyword else f" in {', '.join(paths)}"), 2)
    if shard is not None:  # an empty share is no error: a CI matrix may have more shards than cases
        cases = shard_cases(cases, *shard)
    cases = _override(
        cases,
        engines=_engine_list(engines),
        samples=samples,
        seed=seed,
        expansion_budget=expansion_budget,
        order=order,
        timeout=timeout,
        allow_import=allow_import or None,
    )
    return _run(
        cases,
        fmt,
        verbose,
        color,
        jobs=jobs,
        baseline=baseline,
        update_baseline=update_baseline,
        strict_baseline=strict_baseline,
        suite_names={s.path: s.name for s in suites},
        fail_on_skip=fail_on_skip,
        quiet=quiet,
    )


@main.command()
@_with_cache
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
    "--outputs", help="Comma-separated steps of a program to check as outputs, each with its own Jacobian."
)
@click.option(
    "--dtype", type=click.Choice(["float64", "float32", "float16", "bfloat16"]), help="torch engine dtype."
)
@click.option("--device", help="torch engine device (cpu, cuda, cuda:1).")
@click.option(
    "--impl",
    metavar="MODULE:FUNCTION",
    help="Also check your own implementation of EXPR (its import needs --allow-import).",
)
@click.option("--impl-grad", metavar="MODULE:FUNCTION", help="The gradient function of a numpy --impl.")
@click.option(
    "--allow-import",
    is_flag=True,
    help="Import the Python code that cases name with impl: (it runs). Without it, only where "
    "[tool.symcheck] allow-import = true in the suite's pyproject.toml.",
)
@click.option(
    "--claim",
    "claims",
    multiple=True,
    metavar="NAME: FORMULA",
    help='Your hand-derived gradient, e.g. "x: 3/2*(x+2)": checked like an expect: formula; when wrong, '
    "where it parts from the truth and the likely mistake. Repeatable.",
)
@_with_common
@_guarded
@_with_limits
@_with_plugins
def grad(
    expr: str,
    inputs: tuple[str, ...],
    wrt: str | None,
    outputs: str | None,
    dtype: str | None,
    device: str | None,
    impl: str | None,
    impl_grad: str | None,
    allow_import: bool,
    claims: tuple[str, ...],
    engines: str | None,
    samples: int | None,
    seed: int | None,
    expansion_budget: int | None,
    order: int | None,
    timeout: float | None,
    fmt: str,
    color: str,
    verbose: bool,
    fail_on_skip: bool,
) -> int:
    """Differentiate EXPR (a program: `y = x + 2; out = mean(3*y^2)`) without a suite file."""
    from dataclasses import replace

    from symcheck.checks.diagnose import claim_expectations
    from symcheck.suites.case import DEFAULT_SAMPLES, Expect
    from symcheck.suites.programs import load_case

    if impl_grad is not None and impl is None:
        raise SymcheckError("--impl-grad needs --impl: the function that computes the value")
    case = replace(
        load_case(expr, inputs, None, wrt),
        samples=DEFAULT_SAMPLES,
        expect=Expect(grads=claim_expectations(claims)),  # --claim: symcheck/checks/diagnose.py
        dtype=dtype or "float64",
        device=device or "cpu",
        impl=impl,
        impl_grad=impl_grad,
        impl_source=None if impl is None else Source(impl, "<command line>"),
        impl_grad_source=None if impl_grad is None else Source(impl_grad, "<command line>"),
        allow_import=allow_import,
        outputs=[o.strip() for o in outputs.split(",") if o.strip()] if outputs else None,
    )
    (case,) = _override(
        [case],
        engines=_engine_list(engines),
        samples=samples,
        seed=seed,
        expansion_budget=expansion_budget,
        order=order,
        timeout=timeout,
    )
    return _run([case], fmt, verbose, color, fail_on_skip=fail_on_skip)


def _derivation_timeout(command: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--timeout of a command whose exact derivation may run away (explain, backward)."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, max=86400, min_open=True),
        default=60.0,
        show_default=True,
        callback=_finite,
        help=f"Seconds {what} may take before {command} gives up.",
    )


def _gave_up(command: str, timeout: float, more: str = "") -> SymcheckError:
    return SymcheckError(
        f"{command} gave up after {timeout:g} s: the exact derivation is too heavy for this expression",
        hint=f"--timeout gives it longer{more}",
    )


@main.command()
@click.argument("target", metavar="EXPR|SUITE")
@click.option("-i", "--input", "inputs", multiple=True, metavar="SPEC", help="An input, as for `grad`.")
@click.option("--case", "case_name", help="With a suite file: the case to explain.")
@click.option("--wrt", help="Comma-separated inputs to differentiate by (default: every float input).")
@click.option("--claim", "claims", multiple=True, metavar="NAME: FORMULA", help="A hand derivation to check.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "latex"]),
    default="text",
    show_default=True,
    help="Unicode text, Markdown with LaTeX math, or a LaTeX fragment.",
)
@_derivation_timeout("explain", "the exact derivation (and each --claim's check)")
@_guarded
@_with_limits
def explain(
    target: str,
    inputs: tuple[str, ...],
    case_name: str | None,
    wrt: str | None,
    claims: tuple[str, ...],
    fmt: str,
    timeout: float,
) -> int:
    """Derive the gradient step by step, as by hand, and check each step (and your --claim)."""
    from symcheck.engines.symbolic.budget import gave_up_in, time_limit
    from symcheck.teaching import explain as teaching

    program, point, chosen, case = teaching.load_target(target, inputs, case_name, wrt)
    render = {
        "text": teaching.render_text,
        "markdown": teaching.render_markdown,
        "latex": teaching.render_latex,
    }
    try:
        with time_limit(timeout):
            explained = teaching.explain(program, point, chosen)
            explained.assumed = teaching.assumed_shapes(target, inputs, program)
            pinned = any(s.value is not None or s.fill is not None for s in case.inputs.values())
            label = "the given values" if pinned else "the point shown above"
            checked = teaching.claim_checks(program, chosen, claims, point, label) if claims else None
    except Exception as e:  # GaveUp, or a library's wrapping of it
        if not gave_up_in(e):
            raise
        raise _gave_up(
            "explain", timeout, "; `symcheck grad` still checks it with the other engines"
        ) from None
    click.echo(_printable(render[fmt](explained)))
    if getattr(case, "train", None) is not None and fmt == "text":
        click.echo("\n".join(teaching.sgd_step_lines(case, program, point)))
    if checked is None:
        return EXIT_OK
    if fmt == "markdown":
        click.echo("\n" + _printable(teaching.render_claims_markdown(checked)))
    elif fmt == "latex":
        click.echo("\n" + _printable(teaching.render_claims_latex(checked)))
    else:
        click.echo("\n" + "\n".join(line for c in checked for line in c.lines))
    return EXIT_OK if all(c.right for c in checked) else EXIT_MISMATCH


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="markdown: the reference with each op's torch counterpart and the coverage table (docs/ops.md).",
)
def ops(fmt: str) -> None:
    """List the ops of the language: arity, keyword arguments, domains and kinks."""
    if fmt == "markdown":
        from symcheck.language.reference import markdown

        click.echo(markdown(), nl=False)
        return
    for op in CATALOGUE:
        signature = f"a {op.infix} b" if op.infix else None
        if op.name == "neg":
            signature = "-x"
        elif op.name in ("index", "take", "slice"):
            signature = {"index": "x[k]", "take": "x[y], take(x, y)", "slice": "x[1:3, ::2], x[..., -1]"}[
                op.name
            ]
        elif op.name == "einsum":
            signature = 'einsum("ij,jk->ik", a, b, ...)'
        elif op.variadic:
            params = [f"{p.name}={p.default}" for p in op.params]
            signature = f"{op.name}(a, b, ..., {', '.join(params)})"
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


@main.command()
@click.argument("target", metavar="EXPR|SUITE")
@click.option("-i", "--input", "inputs", multiple=True, metavar="SPEC", help="An input, as for `grad`.")
@click.option("--case", "case_name", metavar="NAME", help="With a suite file: the case to emit.")
@click.option("--wrt", help="Comma-separated inputs given a gradient (default: every float input).")
@click.option(
    "--emit",
    type=click.Choice(["torch"]),
    default="torch",
    show_default=True,
    help="torch: a torch.autograd.Function whose backward is the derived closed form.",
)
@click.option("--name", "class_name", default="Backward", show_default=True, help="The class's name.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the module to this file instead of printing it.",
)
@_derivation_timeout("backward", "the exact derivation")
@_guarded
@_with_limits
def backward(
    target: str,
    inputs: tuple[str, ...],
    case_name: str | None,
    wrt: str | None,
    emit: str,
    class_name: str,
    output: str | None,
    timeout: float,
) -> int:
    """Write a custom backward: a torch.autograd.Function computing EXPR, whose backward is the
    closed-form gradient symcheck derived (check it with an `impl:` case, docs in the README)."""
    from pathlib import Path

    from symcheck.engines.symbolic import ClosedForm
    from symcheck.engines.symbolic.budget import gave_up_in, time_limit
    from symcheck.engines.torch.emit import emit_function
    from symcheck.suites.programs import case_wrt, load_case, parse_case_program

    case = load_case(target, inputs, case_name, wrt)
    program = parse_case_program(case)
    try:
        with time_limit(timeout):
            closed = ClosedForm.derive(program, case_wrt(case))
    except Exception as e:  # GaveUp, or a library's wrapping of it
        if not gave_up_in(e):
            raise
        raise _gave_up("backward", timeout) from None
    source = emit_function(program, closed, class_name)
    if output is None:
        click.echo(source, nl=False)
    else:
        Path(output).write_text(source, encoding="utf-8")
        click.echo(f"wrote {output}: class {class_name}(torch.autograd.Function)", err=True)
    return EXIT_OK


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the schema to this file instead of printing it (symcheck/suites/suite.schema.json "
    "regenerates the shipped copy).",
)
def schema(output: str | None) -> None:
    """Print the JSON Schema of suite files, for editors (see the README's "Editor support")."""
    from pathlib import Path

    from symcheck.suites.schema import suite_json_schema_text

    text = suite_json_schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")


@main.command()
@click.argument("target", metavar="EXPR|SUITE")
@click.option("-i", "--input", "inputs", multiple=True, metavar="SPEC", help="An input, as for `grad`.")
@click.option("--case", "case_name", metavar="NAME", help="With a suite file: the case to draw.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write here (.svg, .png, or .mmd for Mermaid)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["svg", "png", "mermaid"]),
    help="Default: from the -o suffix; without -o, Mermaid text on stdout.",
)
@click.option("--steps", is_flag=True, help="One box per named step instead of one per op.")
@_guarded
@_with_limits
def graph(
    target: str,
    inputs: tuple[str, ...],
    case_name: str | None,
    output: str | None,
    fmt: str | None,
    steps: bool,
) -> int:
    """Draw the computation graph: each node's value and gradient d out/d node (symcheck/teaching)."""
    from symcheck.teaching.graph import run_graph

    text = run_graph(target, inputs, case_name=case_name, output=output, fmt=fmt, steps=steps)  # type: ignore[arg-type]
    click.echo(text if text is not None else f"wrote {output}", nl=text is None)
    return EXIT_OK


@main.command()
@click.argument("target", metavar="EXPR|SUITE")
@click.option("-i", "--input", "inputs", multiple=True, metavar="SPEC", help="An input, as for `grad`.")
@click.option("--case", "case_name", metavar="NAME", help="With a suite file: the case to plot.")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="A .png, .svg or .pdf file."
)
@click.option(
    "--wrt", help="The input along the x axis (one scalar input); the others stay at their -i values."
)
@click.option("--range", "bounds", metavar="LOW,HIGH", help="The x range of a scalar input (default -3,3).")
@click.option("--points", type=click.IntRange(1, 50), default=7, show_default=True, help="Engine points.")
@click.option("--engines", help="Comma-separated engines to mark (default: all four).")
@_guarded
@_with_limits
def plot(
    target: str,
    inputs: tuple[str, ...],
    case_name: str | None,
    output: str,
    wrt: str | None,
    bounds: str | None,
    points: int,
    engines: str | None,
) -> int:
    """Plot the function and its derivative over a range (one scalar input), or each engine's
    gradient error per element as heatmaps (tensor inputs)."""
    from symcheck.teaching.plot import run_plot

    kind = run_plot(
        target,
        inputs,
        output,
        case_name=case_name,
        wrt=wrt,
        bounds=bounds,
        points=points,
        engines=_engine_list(engines),
    )
    click.echo(f"wrote {output} ({kind})")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    main()
