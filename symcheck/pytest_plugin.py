"""pytest plugin: every case of a `*.symcheck.yaml` suite is one test item.

Registered through the `pytest11` entry point, so it loads in every pytest run of an environment
where symcheck is installed: importing this module must stay cheap. Suites are read at collection
(YAML and pydantic only); torch and sympy load when the first item runs.

- Which files: the `symcheck_files` ini option (space-separated glob patterns, default
  `*.symcheck.yaml`) or `--symcheck-files`; a YAML file named on the command line is collected
  whatever its name. Plain `*.yaml` suites (`expressions/`) are for `symcheck verify` only.
- A failure is symcheck's own text report for the case, located at the case's line in the YAML.
- Bad input (malformed YAML, an unknown key, a parse error in `expr`) is reported with symcheck's
  located message, no traceback: at collection for the file, when the item runs for one case.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import pytest

# pytest loads this plugin in every session of every project that has symcheck installed: symcheck's
# own modules (and the YAML, pydantic and Lark they bring) are imported inside the hooks, only once a
# session has collected a suite file.

if TYPE_CHECKING:
    from symcheck.checks.runner import CaseResult, Runner
    from symcheck.suites.case import Case

DEFAULT_PATTERNS = ("*.symcheck.yaml",)
SUITE_SUFFIXES = (".yaml", ".yml")
_RUNNER: pytest.StashKey[Runner] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "symcheck_files",
        type="args",
        default=list(DEFAULT_PATTERNS),
        help="glob patterns of symcheck suites to collect (default: *.symcheck.yaml)",
    )
    group = parser.getgroup("symcheck")
    group.addoption(
        "--symcheck-files",
        action="append",
        metavar="PATTERNS",
        help="glob patterns of symcheck suites to collect, space-separated (overrides the "
        "symcheck_files ini option)",
    )
    group.addoption(
        "--symcheck-allow-import",
        action="store_true",
        help="let cases import the code their `impl:` names (as `symcheck verify --allow-import`; "
        "[tool.symcheck] allow-import = true in the suite's pyproject.toml does it too)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "symcheck: a case of a symcheck suite (added by symcheck's plugin)")


def _patterns(config: pytest.Config) -> list[str]:
    given = config.getoption("symcheck_files", None)
    if given:
        return [p for text in given for p in text.split()]
    return list(config.getini("symcheck_files"))


def _matches(path: Path, patterns: list[str]) -> bool:
    # PurePath.match anchors at the right: `*.symcheck.yaml` matches the name at any depth,
    # `suites/*.yaml` a file directly under a `suites` directory.
    return any(PurePath(path).match(p) for p in patterns)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SymcheckFile | None:
    if file_path.suffix not in SUITE_SUFFIXES:
        return None
    explicit = parent.session.isinitpath(file_path)
    if explicit or _matches(file_path, _patterns(parent.config)):
        return SymcheckFile.from_parent(parent, path=file_path)
    return None


def _render_error(excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    from symcheck.language.errors import SymcheckError

    if isinstance(excinfo.value, SymcheckError):
        return excinfo.value.render()
    return None


def _case_report(result: CaseResult, verbose: bool) -> str:
    """`symcheck verify`'s text for one case, less the file header and the count line that pytest
    shows itself, after a first line that says what failed, which pytest's one-line summary shows
    ("swish: expect dout/dx = sigmoid(x): WRONG: claimed 0.88, true 1.09 at index (1,), ...")."""
    from symcheck.report.failures import headline
    from symcheck.report.summary import summary_line
    from symcheck.report.text import render_text

    lines = render_text([result], verbose=verbose).rstrip("\n").splitlines()
    if lines and lines[0].startswith("== "):
        lines = lines[1:]
    if lines and lines[-1] == summary_line([result]):
        lines = lines[:-1]
    return "\n".join([f"{result.case.name}: {headline(result)}", *lines])


class SymcheckFile(pytest.File):
    """One suite: its cases, in file order (stable node ids: `file::case-name`)."""

    def collect(self) -> Iterator[SymcheckItem]:
        from symcheck.suites.loader import load_suite

        # As `symcheck verify` run here would name it: reports and errors say `suites/a.symcheck.yaml:12`.
        try:
            shown = self.path.relative_to(self.config.invocation_params.dir)
        except ValueError:
            shown = self.path
        from symcheck.language import limits
        from symcheck.suites.config import project_limits

        # The project's [tool.symcheck.limits], as `symcheck verify` of this file would use them.
        self.limits = project_limits(self.path.parent)
        with limits.using(self.limits):
            suite = load_suite(shown if not shown.is_absolute() and shown.exists() else self.path)
        allow_import = self.config.getoption("symcheck_allow_import", False)
        for case in suite.cases:
            if allow_import:
                case = replace(case, allow_import=True)
            yield SymcheckItem.from_parent(self, name=case.name, case=case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        rendered = _render_error(excinfo)
        return rendered if rendered is not None else super().repr_failure(excinfo)


class CaseFailed(Exception):
    """The case ran and failed (a mismatch, a wrong expectation, a crashed engine)."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(result.case.name)
        self.result = result


class SymcheckItem(pytest.Item):
    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.add_marker("symcheck")

    def runtest(self) -> None:
        from symcheck.checks.runner import Runner, prepare
        from symcheck.language import limits

        with limits.using(getattr(self.parent, "limits", limits.DEFAULTS)):
            prepared, errors = prepare([self.case])
            if errors:
                raise errors[0]
            runner = self.config.stash.get(_RUNNER, None)
            if runner is None:  # one per process (each xdist worker has its own): engines load once
                runner = self.config.stash[_RUNNER] = Runner()
            results = [runner.run(p) for p in prepared]  # one per output, for a case with several
        for result in results:
            if result.status not in ("pass", "skip"):
                raise CaseFailed(result)
        for result in results:
            if result.status == "skip":  # what did not run is skipped, never passed
                pytest.skip(result.skip_reason or "skipped")

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> Any:
        if isinstance(excinfo.value, CaseFailed):
            return _case_report(excinfo.value.result, verbose=self.config.getoption("verbose") > 0)
        rendered = _render_error(excinfo)
        return rendered if rendered is not None else super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        # pytest's line numbers here are 0-based; it shows line + 1.
        return self.path, self.case.line - 1, f"symcheck case {self.case.name}"
