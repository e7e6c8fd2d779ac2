"""The training section of a case's report, as text and as JSON (runs: symcheck/checks/training.py)."""

from __future__ import annotations

from typing import Any

from symcheck.checks.compare import ArrayComparison
from symcheck.checks.training import ACCUMULATION_EXPLAINED, ZERO_GRAD_EXPLAINED, TrainingResult, Trajectory
from symcheck.report.summary import mismatch_lines


def _num(x: float) -> str:
    return f"{x:.6g}"


def training_text(t: TrainingResult, pad: str) -> list[str]:
    """The training section of a case's text report."""
    spec = t.spec
    more = " " * 10
    lines = [
        f"{pad}train     {spec.optimizer.describe()} on {', '.join(spec.parameters)}: "
        + (
            f"{spec.epochs} epochs x {t.steps_per_epoch} steps = {t.total_steps} steps"
            if t.steps_per_epoch > 1
            else f"{spec.epochs} full-batch steps (one per epoch)"
        )
    ]
    if spec.train_set is not None:
        lines.append(
            f"{pad}{more}data {spec.data_origin}, set {spec.train_set}: "
            f"{t.steps_per_epoch} step(s) per epoch, in order"
        )
    every = "every step" if spec.compare_every == 1 else f"every {spec.compare_every} steps"
    quantities = ", ".join(["loss", *spec.parameters, *(f"{p}.grad" for p in spec.parameters)])
    lines.append(
        f"{pad}{more}compared {every} ({quantities}); reference: {t.reference or 'none'}; "
        f"tolerance x (1 + {spec.tolerance_growth:g} k) at step k"
    )
    for leg in t.engines:
        run = leg.trajectory
        if leg.status == "reference" and run is not None:
            lines.append(f"{pad}  {leg.engine:9} reference  {_losses_text(t, run)}")
        elif leg.status in ("skipped", "crashed"):
            lines.append(f"{pad}  {leg.engine:9} {leg.status}: {leg.detail.splitlines()[0]}")
        elif run is not None:
            first = f"; parts at {t.where(leg.divergence.step)}" if leg.divergence else ""
            lines.append(
                f"{pad}  {leg.engine:9} {leg.status:10} max abs err {leg.max_abs:.2g}, "
                f"max rel err {leg.max_rel:.2g} over {leg.checks} checks{first}   {run.seconds:.2f} s"
            )
    if t.trend is not None:
        trend = t.trend
        shape = "every epoch lower than the one before" if trend.monotone else "not every epoch lower"
        if trend.required:
            mark = "ok" if trend.ok else "FAILED"
            lines.append(
                f"{pad}after     loss decreases: {mark} ({_num(trend.first)} in epoch 1 -> "
                f"{_num(trend.last)} in epoch {spec.epochs}; {shape})"
            )
    for a in t.after:
        on = f"each example of set {a.set_name}" if a.set_name else "the trained parameters"
        shown = ", ".join(_num(v) for v in a.values[:8]) + (", ..." if len(a.values) > 8 else "")
        mark = "ok" if a.ok else "FAILED"
        lines.append(
            f"{pad}after     {a.check.expr.strip()} {a.check.claim()} on {on}: {mark} "
            f"({a.held}/{len(a.values)}; values {shown}; {a.engine}'s parameters)"
        )
    if t.accumulation is not None:
        acc = t.accumulation
        lines.append(f"{pad}grads     zero_grad: false. {ACCUMULATION_EXPLAINED}.")
        lines.append(
            f"{pad}{more}At {t.where(acc.step)}: |.grad| = {_num(acc.grad_norm)}, the sum of "
            f"{acc.step} gradients; that step's own gradient has |g| = {_num(acc.own_norm)}."
        )
        lines.append(
            f"{pad}{more}.grad = the sum of the gradients so far, in every engine at every recorded step "
            f"(max difference {acc.max_error:.2g})."
        )
        parted = f"from {t.where(acc.parts_at)} on" if acc.parts_at is not None else "nowhere"
        ref_run = next(e.trajectory for e in t.engines if e.engine == t.reference)
        assert ref_run is not None
        last = float(ref_run.losses[-t.steps_per_epoch :].mean())
        lines.append(
            f"{pad}{more}The same run with zero_grad() differs {parted}: last epoch's mean loss "
            f"{_num(acc.cleared_final_loss)} with zero_grad(), {_num(last)} without."
        )
    elif spec.zero_grad:
        lines.append(f"{pad}grads     {ZERO_GRAD_EXPLAINED}")
    for problem in t.problems:
        lines.append(f"{pad}FAILED    training: {problem}")
    for leg in t.engines:
        if leg.divergence is not None:
            d = leg.divergence
            at = t.where(d.step)
            lines.append(f"{pad}MISMATCH  {leg.engine} vs {t.reference}, training, first at {at}: {d.what}")
            lines.extend(
                f"{pad}          {line}"
                for line in mismatch_lines(d.comparison, leg.engine, t.reference or "")
            )
            if leg.mismatched > 1:
                lines.append(f"{pad}          ({leg.mismatched} of {leg.checks} checks fail from there on)")
            ref_run = next((e.trajectory for e in t.engines if e.engine == t.reference), None)
            if leg.trajectory is not None and ref_run is not None:
                per = t.steps_per_epoch
                lines.append(
                    f"{pad}          last epoch's mean loss: {leg.engine} "
                    f"{_num(float(leg.trajectory.losses[-per:].mean()))}, "
                    f"{t.reference} {_num(float(ref_run.losses[-per:].mean()))}"
                )
        if leg.status == "crashed":
            lines.append(f"{pad}CRASHED   {leg.engine} while training: {leg.detail.strip().splitlines()[0]}")
    return lines


def _losses_text(t: TrainingResult, run: Trajectory) -> str:
    per = t.steps_per_epoch
    first, last = float(run.losses[:per].mean()), float(run.losses[-per:].mean())
    what = "loss" if per == 1 else "mean loss"
    if t.spec.epochs == 1:
        return f"{what} {_num(first)}   {run.seconds:.2f} s"
    return f"{what} {_num(first)} (epoch 1) -> {_num(last)} (epoch {t.spec.epochs})   {run.seconds:.2f} s"


def _check_json(c: ArrayComparison) -> dict[str, Any]:
    return {
        "what": c.what,
        "ok": c.ok,
        "total": c.total,
        "mismatched": c.mismatched,
        "max_abs": c.max_abs,
        "max_rel": c.max_rel,
        "worst_index": list(c.worst_index),
        "actual": c.actual,
        "expected": c.expected,
        "nonfinite": c.nonfinite,
        "rtol": c.tolerance.rtol if c.tolerance else None,
        "atol": c.tolerance.atol if c.tolerance else None,
    }


def training_json(t: TrainingResult) -> dict[str, Any]:
    """The training section of a case's JSON report (non-finite floats are made strings later)."""
    spec = t.spec
    opt = spec.optimizer
    engines = []
    for leg in t.engines:
        run = leg.trajectory
        engines.append(
            {
                "engine": leg.engine,
                "status": leg.status,
                "detail": leg.detail.splitlines()[0] if leg.detail else "",
                "max_abs": leg.max_abs,
                "max_rel": leg.max_rel,
                "checks": leg.checks,
                "mismatched": leg.mismatched,
                "first_divergence": None
                if leg.divergence is None
                else {
                    "step": leg.divergence.step,
                    "where": t.where(leg.divergence.step),
                    "what": leg.divergence.what,
                    "check": _check_json(leg.divergence.comparison),
                },
                "losses": None if run is None else run.losses.tolist(),
                "final_parameters": None if run is None else {n: v.tolist() for n, v in run.final().items()},
                "accumulation_error": None if run is None else run.accumulation_error,
                "seconds": None if run is None else run.seconds,
                "dtype": None if run is None else run.dtype,
            }
        )
    acc = t.accumulation
    return {
        "ok": t.ok,
        "parameters": spec.parameters,
        "optimizer": {
            "name": opt.name,
            "lr": opt.lr,
            "momentum": opt.momentum,
            "weight_decay": opt.weight_decay,
            "dampening": opt.dampening,
            "nesterov": opt.nesterov,
        },
        "epochs": spec.epochs,
        "steps_per_epoch": t.steps_per_epoch,
        "steps": t.total_steps,
        "zero_grad": spec.zero_grad,
        "compare_every": spec.compare_every,
        "tolerance_growth": spec.tolerance_growth,
        "data": spec.data_origin,
        "set": spec.train_set,
        "reference": t.reference,
        "engines": engines,
        "after": [
            {
                "expr": a.check.expr,
                "data": a.set_name,
                "below": a.check.below,
                "above": a.check.above,
                "ok": a.ok,
                "values": a.values,
                "held": a.held,
                "engine": a.engine,
                "line": a.check.line,
            }
            for a in t.after
        ],
        "loss_trend": None
        if t.trend is None
        else {
            "first_epoch": t.trend.first,
            "last_epoch": t.trend.last,
            "monotone": t.trend.monotone,
            "required": t.trend.required,
            "ok": t.trend.ok,
        },
        "accumulation": None
        if acc is None
        else {
            "explanation": ACCUMULATION_EXPLAINED,
            "step": acc.step,
            "grad_norm": acc.grad_norm,
            "own_gradient_norm": acc.own_norm,
            "max_error": acc.max_error,
            "final_loss_with_zero_grad": acc.cleared_final_loss,
            "parts_from_zero_grad_run_at": acc.parts_at,
        },
        "problems": t.problems,
        "notes": t.notes,
    }
