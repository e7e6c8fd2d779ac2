"""Baselines: every engine's numbers, recorded once and compared on later runs.

Cross-engine checks catch an engine that disagrees with the others; a baseline also catches all of
them moving together (a torch or numpy upgrade that changes numerics, a change in our own engines).
`symcheck verify --baseline FILE` compares each engine's value and gradients at each point with
what that engine recorded, within the same tolerances as the cross-engine comparison; a difference
is a mismatch like any other ("MISMATCH torch vs baseline"). `--update-baseline` records instead.

The file (JSON, format 1):

    {"symcheck_baseline": 1, "symcheck": "0.1.0",
     "recorded_with": {"python": "3.11.9", "numpy": "...", "torch": "...", "sympy": "..."},
     "cases": {"expressions/tutorial.yaml::seed-one-expression": {
        "points": {"given values": {
           "reference": "symbolic",
           "engines": {"torch": {"dtype": "float64",
                                 "quantities": {"value": 27.0, "dout/dx": [[4.5, 4.5], [4.5, 4.5]]}}}}}}}}

A case's key is its suite file, relative to the baseline file's directory (with "/"), "::", and
the case's name; a point is keyed by its label ("given values", "random point 1 (seed 0)").
Quantities are named as in the reports: "value", "dout/dx", "dout along random directions"
(finite differences on large inputs), "d2out/dxdy", "(H v1)_x", "v^T H v along random directions".
Arrays are nested lists of JSON numbers written with Python's repr (the shortest text that reads back
as the same float64, so nothing is lost); non-finite numbers are the strings "nan", "inf", "-inf".
Training runs are not recorded (their per-step numbers are compared across engines).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symcheck import __version__
from symcheck.checks.compare import EngineComparison, compare_arrays, resolve_tolerance
from symcheck.checks.runner import CaseResult
from symcheck.engines.base import EngineResult
from symcheck.language.errors import SymcheckError

BASELINE_FORMAT = 1
SECOND_ORDER_PREFIXES = ("d2", "(H v", "v^T H v")
VERSIONED_PACKAGES = ("numpy", "torch", "sympy")


@dataclass
class BaselineOutcome:
    """How one case's numbers compare with the baseline file."""

    file: str
    key: str
    recorded: bool = True  # False: the case is not in the file
    strict: bool = False  # --strict-baseline: anything not recorded is a failure
    points: int = 0  # points compared
    mismatched: int = 0  # of them, points where an engine moved beyond its tolerance
    missing: list[str] = field(default_factory=list)  # points, engines, quantities not recorded
    versions: list[str] = field(default_factory=list)  # "torch 2.3.0 -> 2.4.0" since recording

    @property
    def status(self) -> str:
        if self.mismatched:
            return "mismatch"
        if not self.recorded:
            return "missing"
        return "partial" if self.missing else "match"

    def summary(self) -> str:
        strict = " (a failure with --strict-baseline)" if self.strict else ""
        if not self.recorded:
            return f"not recorded in {self.file}{strict}; record it with --update-baseline"
        if self.mismatched:
            text = f"DIFFERS from {self.file} at {self.mismatched} of {self.points} point(s)"
        else:
            text = f"matches {self.file} at {self.points} point(s)"
        if self.missing:
            shown = "; ".join(self.missing[:3]) + ("; ..." if len(self.missing) > 3 else "")
            text += f"; not recorded: {shown}{strict}"
        if self.versions and self.mismatched:
            text += f" (recorded with {'; '.join(self.versions)})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "key": self.key,
            "status": self.status,
            "points": self.points,
            "mismatched": self.mismatched,
            "missing": self.missing,
            "versions": self.versions,
        }


def case_key(result: CaseResult, root: Path) -> str:
    """'<suite file relative to root>::<case name>'; files elsewhere keep an absolute path."""
    file = result.case.file
    if not file.startswith("<"):  # "<command line>" is not a path
        path = Path(file).resolve()
        try:
            file = path.relative_to(root).as_posix()
        except ValueError:
            try:
                file = Path(os.path.relpath(path, root)).as_posix()
            except ValueError:  # another drive (Windows)
                file = path.as_posix()
    return f"{file}::{result.case.name}"


def quantities(result: EngineResult, output: str) -> dict[str, np.ndarray]:
    """An engine's numbers at one point, named as the reports name them."""
    out: dict[str, np.ndarray] = {"value": np.asarray(result.value, dtype=np.float64)}
    for name, grad in result.grads.items():
        out[f"d{output}/d{name}"] = np.asarray(grad, dtype=np.float64)
    if result.directional:
        out[f"d{output} along random directions"] = np.array([d.derivative for d in result.directional])
    for key, block in result.hessian.items():
        a, b = key.split(",")
        out[f"d2{output}/d{a}d{b}"] = np.asarray(block, dtype=np.float64)
    for i, hvp in enumerate(result.hvps):
        for name, product in hvp.product.items():
            out[f"(H v{i + 1})_{name}"] = np.asarray(product, dtype=np.float64)
    if result.curvatures:
        out["v^T H v along random directions"] = np.array([c.value for c in result.curvatures])
    # A tensor output: its Jacobian, or its VJPs and JVPs along the shared probes.
    for name, jacobian in result.jacobians.items():
        out[f"Jacobian d{output}/d{name}"] = np.asarray(jacobian, dtype=np.float64)
    for k, vjp in enumerate(result.vjps):
        for name, product in vjp.items():
            out[f"VJP u{k + 1}^T d{output}/d{name}"] = np.asarray(product, dtype=np.float64)
    for k, jvp in enumerate(result.jvps):
        out[f"JVP d{output} along t{k + 1}"] = np.asarray(jvp, dtype=np.float64)
    return out


# ---------------------------------------------------------------- reading and writing


def load(path: str | Path) -> dict[str, Any]:
    """The baseline document; a SymcheckError (exit 2) when it is missing or malformed."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO would block the read forever
        raise SymcheckError(f"the baseline {path} is not a regular file", filename=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SymcheckError(
            f"no baseline file {path}", hint="record one with --baseline FILE --update-baseline"
        ) from None
    except OSError as e:
        raise SymcheckError(f"cannot read the baseline {path}: {e.strerror}", filename=str(path)) from e
    except UnicodeDecodeError as e:
        raise SymcheckError(
            f"the baseline is not UTF-8 text (byte {e.start})",
            filename=str(path),
            hint="record it again with --update-baseline (delete the broken file first)",
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SymcheckError(
            f"the baseline is not valid JSON: {e.msg}",
            filename=str(path),
            line=e.lineno,
            hint="record it again with --update-baseline (delete the broken file first)",
        ) from None
    if not isinstance(doc, dict) or doc.get("symcheck_baseline") != BASELINE_FORMAT:
        found = doc.get("symcheck_baseline") if isinstance(doc, dict) else None
        raise SymcheckError(
            f"{path} is not a symcheck baseline of format {BASELINE_FORMAT} (symcheck_baseline: {found!r})",
            filename=str(path),
            hint="record it with --update-baseline",
        )
    if not isinstance(doc.get("cases"), dict):
        raise SymcheckError("the baseline has no 'cases' mapping", filename=str(path))
    return doc


def record(
    results: Sequence[CaseResult], path: str | Path, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The baseline document for `results`; cases of `previous` that did not run here are kept
    (a run with -k or --shard updates its own cases only)."""
    root = Path(path).resolve().parent
    cases: dict[str, Any] = dict(previous["cases"]) if previous else {}
    for result in results:
        output = result.program.output.name
        points: dict[str, Any] = {}
        for point in result.points:
            points[point.label] = {
                "reference": point.reference,
                "engines": {
                    name: {
                        "dtype": res.dtype,
                        "quantities": {what: _encode(a) for what, a in quantities(res, output).items()},
                    }
                    for name, res in point.results.items()
                },
            }
        cases[case_key(result, root)] = {"points": points}
    return {
        "symcheck_baseline": BASELINE_FORMAT,
        "symcheck": __version__,
        "recorded_with": _versions(),
        "cases": dict(sorted(cases.items())),
    }


def write(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Atomically: a temporary file beside `path`, flushed to disk, then renamed over it. A crash
    leaves the old baseline or the new one, never half of one."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise SymcheckError(f"cannot write the baseline {path}: no directory {directory}")
    text = _dumps(doc) + "\n"
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes it 0600; keep the permissions a plain write would give
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise SymcheckError(f"cannot write the baseline {path}: {e}; it is unchanged") from e
        raise
    # The rename is durable only once the directory entry is on disk (POSIX; not possible on Windows).
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": ".".join(map(str, sys.version_info[:3]))}
    for package in VERSIONED_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)  # from metadata: torch is not imported for this
    return found


def _encode(array: np.ndarray) -> Any:
    def strict(x: Any) -> Any:
        if isinstance(x, list):
            return [strict(v) for v in x]
        return x if np.isfinite(x) else str(x)  # "nan", "inf", "-inf"

    return strict(np.asarray(array, dtype=np.float64).tolist())


def _decode(value: Any) -> np.ndarray:
    def number(x: Any) -> Any:
        if isinstance(x, list):
            return [number(v) for v in x]
        return float(x)  # float("nan"), float("-inf") read the strings back

    return np.asarray(number(value), dtype=np.float64)


def _read(value: Any, path: str | Path) -> np.ndarray:
    try:
        return _decode(value)
    except (TypeError, ValueError):
        raise SymcheckError(
            f"the baseline holds something that is not an array of numbers: {str(value)[:60]}",
            filename=str(path),
            hint="record it again with --update-baseline",
        ) from None


def _dumps(value: Any, depth: int = 0) -> str:
    """Indented JSON with each array on one line, so a diff of two baselines reads per quantity."""
    if isinstance(value, Mapping) and value:
        pad = "  " * (depth + 1)
        items = [f"{pad}{json.dumps(k)}: {_dumps(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
    return json.dumps(value, allow_nan=False)


# ---------------------------------------------------------------- comparing


def compare(
    results: Iterable[CaseResult], doc: Mapping[str, Any], path: str | Path, strict: bool = False
) -> None:
    """Compare every engine at every point with its recorded numbers. Differences go to each
    point's `baseline` comparisons (failing the point); each case gets a BaselineOutcome. With
    `strict`, a case, point, engine or quantity that was not recorded fails its point."""
    root = Path(path).resolve().parent
    changed = _changed_versions(doc.get("recorded_with"))
    for result in results:
        outcome = BaselineOutcome(str(path), case_key(result, root), strict=strict, versions=changed)
        result.baseline = outcome
        entry = doc["cases"].get(outcome.key)
        if not isinstance(entry, Mapping):
            outcome.recorded = False
            if strict:
                for point in result.points:
                    point.problems.append(f"the case is not recorded in the baseline {path}")
            continue
        overrides = result.case.tolerance.as_overrides()
        output = result.program.output.name
        for point in result.points:
            recorded = (entry.get("points") or {}).get(point.label)
            if not isinstance(recorded, Mapping):
                _missing(outcome, point, f"the {point.label}")
                continue
            engines = recorded.get("engines") or {}
            for name, res in point.results.items():
                theirs = (engines.get(name) or {}).get("quantities")
                if not isinstance(theirs, Mapping):
                    _missing(outcome, point, f"{name} at the {point.label}")
                    continue
                comparison = EngineComparison(name, "baseline")
                for what, ours in quantities(res, output).items():
                    if what not in theirs:
                        _missing(outcome, point, f"{name}'s {what} at the {point.label}")
                        continue
                    order = 2 if what.startswith(SECOND_ORDER_PREFIXES) else 1
                    tol = resolve_tolerance(name, res.dtype, overrides, order=order)
                    comparison.checks.append(compare_arrays(what, ours, _read(theirs[what], path), tol))
                point.baseline.append(comparison)
            outcome.points += 1
            if not all(c.ok for c in point.baseline):
                outcome.mismatched += 1


def _missing(outcome: BaselineOutcome, point: Any, what: str) -> None:
    outcome.missing.append(what)
    if outcome.strict:
        point.problems.append(f"not recorded in the baseline {outcome.file}: {what}")


def _changed_versions(recorded: Any) -> list[str]:
    if not isinstance(recorded, Mapping):
        return []
    now = _versions()
    return [
        f"{name} {recorded[name]}, now {now[name]}"
        for name in ("python", *VERSIONED_PACKAGES)
        if name in recorded and name in now and recorded[name] != now[name]
    ]


__all__ = [
    "BASELINE_FORMAT",
    "BaselineOutcome",
    "case_key",
    "compare",
    "load",
    "quantities",
    "record",
    "write",
]
