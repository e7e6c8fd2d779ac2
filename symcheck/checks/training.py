"""Training runs, checked across engines: the same SGD loop in torch, our autograd and SymPy.

A case's `train:` block (see `symcheck.suites.case.TrainSpec`) names the inputs that are parameters,
the data, the optimizer and the number of epochs. Each engine runs the loop the PyTorch tutorial
writes, over the training examples in file order, epoch after epoch:

    for each example:
        zero_grad()          # unless train.zero_grad is false
        loss = f(params, example); loss.backward()
        step()               # reads .grad

- torch: the parameters are leaf tensors, the update is torch's own SGD (`torch.optim.sgd.sgd`, what
  `torch.optim.SGD.step` runs; see `TorchSGD`);
- autograd: leaf `symcheck.engines.autograd.Tensor`s and `symcheck.engines.autograd.optim.SGD`;
- symbolic: the exact closed-form gradient (`ClosedForm.evaluate`) at each step, and the numpy
  update in `sgd_update` below, which emulates `.grad` (a buffer that gradients are added to).

The three optimizers are written independently, like the engines' derivative rules. Every step's
loss is recorded, and the parameters and the `.grad` each `step()` read every `compare_every`
steps. They are compared against the reference (symbolic when it trained, else torch) with the
comparison tolerances of `symcheck.checks.compare`, grown with the step number: rounding differences
(one ulp here and there, from a different order of operations) are fed back through every later
update, so the difference allowed at step k is tolerance x (1 + tolerance_growth x k). A wrong
update is off by far more than the tolerance at the first step it happens, so the growth does not
hide it; the report names that step.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from symcheck.checks.compare import ArrayComparison, Tolerance, compare_arrays, resolve_tolerance
from symcheck.checks.points import make_point
from symcheck.engines.autograd.engine import lower_node
from symcheck.engines.autograd.optim import SGD
from symcheck.engines.autograd.tensor import Tensor
from symcheck.engines.base import Engine, EngineUnavailable
from symcheck.engines.numeric.evaluator import forward
from symcheck.language.errors import SymcheckError
from symcheck.language.ir import DType, Program
from symcheck.suites.case import TRAIN_ENGINES, AfterCheck, Case, OptimizerSpec, TrainSpec
from symcheck.suites.programs import training_programs

# Loads an engine by name: the runner's `engine`, so that each engine is loaded once per run.
EngineLoader = Callable[[str], Engine]

REFERENCE_ORDER = ("symbolic", "torch", "autograd")
ACCUMULATION_EXPLAINED = (
    "step() never sees the loss: it reads .grad, and backward() adds to .grad; without zero_grad() "
    "nothing clears it, so the gradient step k uses is the sum of the first k gradients"
)
ZERO_GRAD_EXPLAINED = (
    "step() never sees the loss: it reads .grad, which backward() adds to; zero_grad() clears .grad "
    "before every backward(), so each step uses its own gradient"
)


# ---------------------------------------------------------------- what a run records


@dataclass
class Trajectory:
    """One engine's run. Step k (1-based) starts from the parameters after step k - 1."""

    engine: str
    losses: np.ndarray  # (steps,): the loss each step's backward() started from
    record_steps: list[int]  # 0 (the initial values), every compare_every-th step, and the last
    params: dict[str, list[np.ndarray]]  # after each recorded step
    grads: dict[str, list[np.ndarray]]  # the .grad that step() read, at each recorded step >= 1
    fresh: dict[str, list[np.ndarray]]  # what that step's backward() added to .grad
    accumulation_error: float = 0.0  # max |.grad - (sum of gradients since the last clear)|
    dtype: str = "float64"
    seconds: float = 0.0

    def final(self) -> dict[str, np.ndarray]:
        return {n: v[-1] for n, v in self.params.items()}


@dataclass
class Divergence:
    """The first step where an engine's run left the reference's."""

    step: int
    what: str  # "loss", "W (after the step)", "W.grad (read by step())"
    comparison: ArrayComparison


@dataclass
class EngineTraining:
    engine: str
    status: str  # reference | ok | parted | skipped | crashed
    trajectory: Trajectory | None = None
    detail: str = ""
    divergence: Divergence | None = None
    max_abs: float = 0.0
    max_rel: float = 0.0
    checks: int = 0
    mismatched: int = 0  # failed checks, over every step and quantity


@dataclass
class AfterResult:
    check: AfterCheck
    ok: bool
    set_name: str | None
    values: list[float]  # one per example (its largest element for `below`, else its smallest)
    held: int  # examples where the bounds hold
    engine: str  # whose trained parameters
    detail: str = ""


@dataclass
class LossTrend:
    first: float  # mean loss over the first epoch
    last: float  # ... and over the last
    monotone: bool  # every epoch's mean below the one before
    required: bool  # train.loss_decreases

    @property
    def ok(self) -> bool:
        return self.last < self.first or not self.required


@dataclass
class Accumulation:
    """What skipping zero_grad() did, shown on the reference's run."""

    step: int  # the step shown
    grad_norm: float  # |.grad| that step() read there
    own_norm: float  # |that step's own gradient|
    max_error: float  # max over engines and recorded steps of |.grad - sum of gradients|
    cleared_final_loss: float  # the same run with zero_grad: true (last epoch's mean loss)
    parts_at: int | None  # first step where the two runs' parameters differ


@dataclass
class TrainingResult:
    spec: TrainSpec
    steps_per_epoch: int
    reference: str | None = None
    engines: list[EngineTraining] = field(default_factory=list)
    after: list[AfterResult] = field(default_factory=list)
    trend: LossTrend | None = None
    accumulation: Accumulation | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return self.spec.epochs * self.steps_per_epoch

    @property
    def crashed(self) -> bool:
        return any(e.status == "crashed" for e in self.engines)

    @property
    def ok(self) -> bool:
        return (
            not self.crashed
            and not self.problems
            and all(e.status in ("reference", "ok", "skipped") for e in self.engines)
            and all(a.ok for a in self.after)
            and (self.trend is None or self.trend.ok)
        )

    def where(self, step: int) -> str:
        """'step 7 (epoch 2, example 3)'; full-batch runs have one step per epoch."""
        if step == 0:
            return "the start"
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        if self.steps_per_epoch == 1:
            return f"step {step} (epoch {epoch + 1})"
        return f"step {step} (epoch {epoch + 1}, example {index + 1})"


# ---------------------------------------------------------------- the data, step by step


def examples(spec: TrainSpec, case: Case, set_name: str | None) -> list[dict[str, np.ndarray]]:
    """The inputs each step replaces, in order: one example (or one batch of B rows, for an input
    declared with B rows) per step; [{}] without data (each step sees the case's own inputs)."""
    if set_name is None:
        return [{}]
    arrays = spec.sets[set_name]
    out: list[dict[str, np.ndarray]] = []
    for name, array in arrays.items():
        shape = case.inputs[name].shape or ()
        if array.ndim == len(shape) + 1:
            parts = [array[i] for i in range(array.shape[0])]
        else:
            rows = shape[0]
            parts = [array[i : i + rows] for i in range(0, array.shape[0], rows)]
        if not out:
            out = [{} for _ in parts]
        for step, part in zip(out, parts, strict=True):
            step[name] = part
    return out


@dataclass
class _Plan:
    """Everything the engines share: where to start, what each step sees, when to record."""

    program: Program
    parameters: list[str]
    init: dict[str, np.ndarray]
    constants: dict[str, np.ndarray]  # the inputs that are neither parameters nor data
    steps: list[dict[str, np.ndarray]]  # one epoch
    epochs: int
    optimizer: OptimizerSpec
    zero_grad: bool
    compare_every: int
    dtype: str
    device: str

    @property
    def total(self) -> int:
        return self.epochs * len(self.steps)

    def schedule(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        k = 0
        for _ in range(self.epochs):
            for example in self.steps:
                k += 1
                yield k, {**self.constants, **example}

    def records(self, k: int) -> bool:
        return k % self.compare_every == 0 or k == self.total


class _Recorder:
    """Collects a trajectory and checks, on the way, that .grad is the sum of the gradients that
    backward() added since the last clear (the accumulation the optimizer relies on)."""

    def __init__(self, engine: str, plan: _Plan, dtype: str) -> None:
        self.plan = plan
        self.losses = np.zeros(plan.total)
        self.traj = Trajectory(
            engine,
            self.losses,
            [0],
            {n: [np.array(plan.init[n], dtype=np.float64)] for n in plan.parameters},
            {n: [] for n in plan.parameters},
            {n: [] for n in plan.parameters},
            dtype=dtype,
        )
        self.since_clear: dict[str, np.ndarray] | None = None
        self.start = time.perf_counter()

    def cleared(self) -> None:
        self.since_clear = None

    def step(
        self,
        k: int,
        loss: float,
        grads: Mapping[str, np.ndarray],
        fresh: Mapping[str, np.ndarray],
        params: Callable[[], Mapping[str, np.ndarray]],
    ) -> None:
        """`grads`: the .grad step() read; `fresh`: what backward() added; `params`: after the step."""
        self.losses[k - 1] = loss
        if self.since_clear is None:
            self.since_clear = {n: np.array(g, dtype=np.float64) for n, g in fresh.items()}
        else:
            self.since_clear = {n: self.since_clear[n] + fresh[n] for n in fresh}
        if not self.plan.records(k):
            return
        self.traj.record_steps.append(k)
        now = params()
        for n in self.plan.parameters:
            self.traj.params[n].append(np.array(now[n], dtype=np.float64))
            self.traj.grads[n].append(np.array(grads[n], dtype=np.float64))
            self.traj.fresh[n].append(np.array(fresh[n], dtype=np.float64))
            error = float(np.max(np.abs(grads[n] - self.since_clear[n]), initial=0.0))
            self.traj.accumulation_error = max(self.traj.accumulation_error, error)

    def done(self) -> Trajectory:
        self.traj.seconds = time.perf_counter() - self.start
        return self.traj


# ---------------------------------------------------------------- the symbolic leg


def sgd_update(
    params: dict[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    buffers: dict[str, np.ndarray],
    opt: OptimizerSpec,
) -> None:
    """One torch.optim.SGD step on plain arrays (written apart from symcheck.engines.autograd.optim on
    purpose: two implementations of torch's definition, each a check on the other)."""
    for name, g in grads.items():
        d_p = g + opt.weight_decay * params[name] if opt.weight_decay else g
        if opt.momentum:
            if name in buffers:
                buffers[name] = opt.momentum * buffers[name] + (1.0 - opt.dampening) * d_p
            else:
                buffers[name] = np.array(d_p, dtype=np.float64)
            d_p = d_p + opt.momentum * buffers[name] if opt.nesterov else buffers[name]
        params[name] = params[name] - opt.lr * d_p


def _train_symbolic(plan: _Plan, load: EngineLoader) -> Trajectory:
    # Lazily, here and in _train_torch: each leg loads only its own engine's sympy or torch.
    from symcheck.engines.symbolic import SymbolicEngine

    engine = load("symbolic")
    assert isinstance(engine, SymbolicEngine)
    closed = engine.closed_form(plan.program, plan.parameters)
    rec = _Recorder("symbolic", plan, "float64")
    params = {n: np.array(v, dtype=np.float64) for n, v in plan.init.items()}
    buffers: dict[str, np.ndarray] = {}
    grad_buffer: dict[str, np.ndarray] | None = None  # what torch keeps in .grad
    for k, inputs in plan.schedule():
        if plan.zero_grad:
            grad_buffer = None
            rec.cleared()
        value, fresh = closed.evaluate({**inputs, **params})
        grad_buffer = (
            dict(fresh) if grad_buffer is None else {n: grad_buffer[n] + fresh[n] for n in grad_buffer}
        )
        sgd_update(params, grad_buffer, buffers, plan.optimizer)
        rec.step(k, float(value), grad_buffer, fresh, lambda: params)
    return rec.done()


# ---------------------------------------------------------------- the autograd leg


def _train_autograd(plan: _Plan, load: EngineLoader) -> Trajectory:

    load("autograd")
    leaves = {n: Tensor(np.array(v, dtype=np.float64), requires_grad=True) for n, v in plan.init.items()}
    opt = plan.optimizer
    optimizer = SGD(
        list(leaves.values()),
        lr=opt.lr,
        momentum=opt.momentum,
        dampening=opt.dampening,
        weight_decay=opt.weight_decay,
        nesterov=opt.nesterov,
    )
    rec = _Recorder("autograd", plan, "float64")
    program = plan.program
    for k, inputs in plan.schedule():
        if plan.zero_grad:
            optimizer.zero_grad()
            rec.cleared()
        before = {n: _zeros_or(p.grad, p.shape) for n, p in leaves.items()}
        env: dict[str, Any] = dict(leaves)
        for name, decl in program.inputs.items():
            if name not in leaves:
                is_float = decl.type.dtype is DType.FLOAT
                env[name] = Tensor(inputs[name], dtype=np.float64 if is_float else np.int64)
        for st in program.steps:
            value = lower_node(st.expr, env)
            env[st.id] = value if isinstance(value, Tensor) else Tensor(value)
        loss = env[program.output.id]
        if loss.requires_grad:
            loss.backward()
        grads = {n: _zeros_or(p.grad, p.shape) for n, p in leaves.items()}
        optimizer.step()
        rec.step(
            k,
            loss.item(),
            grads,
            {n: grads[n] - before[n] for n in leaves},
            lambda: {n: p.data for n, p in leaves.items()},
        )
    return rec.done()


def _zeros_or(grad: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape) if grad is None else np.array(grad.data, dtype=np.float64)


# ---------------------------------------------------------------- the torch leg


def _train_torch(plan: _Plan, load: EngineLoader) -> Trajectory:
    load("torch")  # EngineUnavailable when torch is not installed
    import torch

    from symcheck.engines.torch.engine import Lowerer
    from symcheck.engines.torch_autograd import resolve_device, resolve_dtype

    dtype, device = resolve_dtype(plan.dtype), resolve_device(plan.device)
    # As the seed writes it: parameters are leaf tensors, the optimizer is torch's own.
    params = {
        n: torch.tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device, requires_grad=True)
        for n, v in plan.init.items()
    }
    optimizer = TorchSGD(list(params.values()), plan.optimizer)
    rec = _Recorder("torch", plan, plan.dtype)
    program = plan.program

    def numpy(t: torch.Tensor | None, like: torch.Tensor) -> np.ndarray:
        t = torch.zeros_like(like) if t is None else t
        return t.detach().to(device="cpu", dtype=torch.float64).numpy().copy()

    for k, inputs in plan.schedule():
        if plan.zero_grad:
            optimizer.zero_grad()
            rec.cleared()
        before = {n: numpy(p.grad, p) for n, p in params.items()}
        lowerer = Lowerer(dtype, device)
        for name, decl in program.inputs.items():
            if name in params:
                lowerer.env[name] = params[name]
            elif decl.type.dtype is DType.FLOAT:
                array = np.asarray(inputs[name], dtype=np.float64)
                lowerer.env[name] = torch.as_tensor(array).to(device=device, dtype=dtype)
            else:
                lowerer.env[name] = torch.as_tensor(np.asarray(inputs[name], dtype=np.int64)).to(device)
        with torch.enable_grad():
            for st in program.steps:
                lowerer.env[st.id] = lowerer.node(st.expr)
            loss = lowerer.env[program.output.id]
            if loss.requires_grad:
                loss.backward()
        grads = {n: numpy(p.grad, p) for n, p in params.items()}
        optimizer.step()
        rec.step(
            k,
            float(loss.detach().to("cpu", torch.float64)),
            grads,
            {n: grads[n] - before[n] for n in params},
            lambda: {n: numpy(p, p) for n, p in params.items()},
        )
    return rec.done()


class TorchSGD:
    """torch.optim.SGD's step and zero_grad: torch's own update function (`torch.optim.sgd.sgd`,
    called as `SGD.step` calls it, grad mode off), with the optimizer's bookkeeping (which parameters
    have a .grad, the momentum buffers) written here. Constructing torch.optim.SGD itself imports
    torch._dynamo: 1.6 s, most of a training case's time."""

    def __init__(self, params: list[Any], spec: OptimizerSpec) -> None:
        self.params = params
        self.spec = spec
        self.buffers: dict[int, Any] = {}  # id(param) -> momentum buffer, once it has one

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None  # torch's default (set_to_none=True)

    def step(self) -> None:
        import torch
        from torch.optim.sgd import sgd

        with torch.no_grad():
            params = [p for p in self.params if p.grad is not None]
            momentum = self.spec.momentum != 0
            buffers = [self.buffers.get(id(p)) for p in params] if momentum else []
            sgd(
                params,
                [p.grad for p in params],
                buffers,
                weight_decay=self.spec.weight_decay,
                momentum=self.spec.momentum,
                lr=self.spec.lr,
                dampening=self.spec.dampening,
                nesterov=self.spec.nesterov,
                maximize=False,
                has_sparse_grad=False,
                foreach=None,
                fused=None,
            )
            if momentum:
                self.buffers.update((id(p), b) for p, b in zip(params, buffers, strict=True))


LEGS: dict[str, Callable[[_Plan, EngineLoader], Trajectory]] = {
    "symbolic": _train_symbolic,
    "autograd": _train_autograd,
    "torch": _train_torch,
}


# ---------------------------------------------------------------- running and comparing


def run_training(case: Case, program: Program, load: EngineLoader) -> TrainingResult:
    """Train in every engine, compare the runs, then check the trained parameters. `load` gives an
    engine by name (the runner's, so that each engine is loaded once per run)."""
    spec = case.train
    assert spec is not None
    data_names = set(spec.sets[spec.train_set]) if spec.train_set else set()
    notes: list[str] = []
    point = make_point(case.inputs, case.seed, program, notes=notes)
    plan = _Plan(
        program=program,
        parameters=list(spec.parameters),
        init={n: np.asarray(point[n], dtype=np.float64) for n in spec.parameters},
        constants={n: v for n, v in point.items() if n not in spec.parameters and n not in data_names},
        steps=examples(spec, case, spec.train_set),
        epochs=spec.epochs,
        optimizer=spec.optimizer,
        zero_grad=spec.zero_grad,
        compare_every=spec.compare_every,
        dtype=case.dtype,
        device=case.device,
    )
    result = TrainingResult(spec, len(plan.steps), notes=notes)
    legs = spec.engines or [e for e in case.engines if e in TRAIN_ENGINES]
    for name in legs:
        result.engines.append(_run_leg(name, plan, load))
    trained = {e.engine: e for e in result.engines if e.trajectory is not None}
    result.reference = next((n for n in REFERENCE_ORDER if n in trained), None)
    if len(trained) < 2:
        ran = ", ".join(trained) or "none"
        result.problems.append(f"nothing to compare: engines that trained: {ran}")
    if result.reference is None:
        return result
    ref = trained[result.reference]
    assert ref.trajectory is not None
    ref.status = "reference"
    if not np.all(np.isfinite(ref.trajectory.losses)):
        bad = int(np.argmax(~np.isfinite(ref.trajectory.losses))) + 1
        result.problems.append(
            f"the loss is not finite from {result.where(bad)} on: the run diverged (try a smaller lr)"
        )
    overrides = case.tolerance.as_overrides()
    for leg in result.engines:
        if leg.trajectory is not None and leg is not ref:
            _compare(leg, ref.trajectory, overrides, spec.tolerance_growth)
    _check_after(result, case, plan, ref.trajectory)
    if spec.epochs >= 2 or spec.loss_decreases:
        result.trend = _trend(ref.trajectory.losses, spec, len(plan.steps))
    if not spec.zero_grad:
        result.accumulation = _accumulation(result, plan, load, ref.trajectory)
    return result


def _run_leg(name: str, plan: _Plan, load: EngineLoader) -> EngineTraining:
    try:
        with np.errstate(all="ignore"):  # a diverging run is reported as such (non-finite losses)
            return EngineTraining(name, "ok", LEGS[name](plan, load))
    except EngineUnavailable as e:
        return EngineTraining(name, "skipped", detail=str(e))
    except SymcheckError:
        raise
    except Exception as e:  # an engine's own bug: report it, keep going
        return EngineTraining(
            name, "crashed", detail=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
        )


def step_tolerance(base: Tolerance, growth: float, step: int) -> Tolerance:
    """The tolerance at step k: rounding differences are fed back through every later update."""
    factor = 1.0 + growth * step
    return Tolerance(base.rtol * factor, base.atol * factor, base.scaled)


def _compare(
    leg: EngineTraining, ref: Trajectory, overrides: Mapping[str, Any] | None, growth: float
) -> None:
    run = leg.trajectory
    assert run is not None
    base = resolve_tolerance(leg.engine, run.dtype, overrides)
    checks: list[tuple[int, str, np.ndarray, np.ndarray]] = []
    for k in range(1, len(ref.losses) + 1):
        checks.append((k, "loss", run.losses[k - 1], ref.losses[k - 1]))
    for r, k in enumerate(ref.record_steps):
        for name in ref.params:
            checks.append(
                (k, f"{name} (after the step)" if k else name, run.params[name][r], ref.params[name][r])
            )
            if k:
                checks.append(
                    (k, f"{name}.grad (read by step())", run.grads[name][r - 1], ref.grads[name][r - 1])
                )
    # Within one step: the loss first, then what backward() left in .grad, then the update.
    order = {"loss": 0, "grad": 1, "param": 2}
    checks.sort(
        key=lambda c: (c[0], order["loss" if c[1] == "loss" else "grad" if ".grad" in c[1] else "param"])
    )
    for k, what, actual, expected in checks:
        c = compare_arrays(what, actual, expected, step_tolerance(base, growth, k))
        leg.checks += 1
        if c.nonfinite is None:
            leg.max_abs = max(leg.max_abs, c.max_abs)
            leg.max_rel = max(leg.max_rel, c.max_rel)
        if not c.ok:
            leg.mismatched += 1
            if leg.divergence is None:
                leg.divergence = Divergence(k, what, c)
    leg.status = "parted" if leg.divergence is not None else "ok"


def _check_after(result: TrainingResult, case: Case, plan: _Plan, ref: Trajectory) -> None:

    spec = result.spec
    params = ref.final()
    for check, program in zip(spec.after, training_programs(case), strict=True):
        set_name = check.data if check.data is not None else spec.train_set
        values: list[float] = []
        held = 0
        for example in examples(spec, case, set_name):
            point = {**plan.constants, **params, **example}
            out = np.asarray(forward(program, {n: point[n] for n in program.inputs})[program.output.id])
            out = out.astype(np.float64)
            values.append(float(np.max(out)) if check.below is not None else float(np.min(out)))
            held += bool(
                np.all(np.isfinite(out))
                and (check.below is None or np.all(out < check.below))
                and (check.above is None or np.all(out > check.above))
            )
        result.after.append(AfterResult(check, held == len(values), set_name, values, held, ref.engine))


def _trend(losses: np.ndarray, spec: TrainSpec, per_epoch: int) -> LossTrend:
    means = losses.reshape(spec.epochs, per_epoch).mean(axis=1)
    monotone = bool(np.all(np.diff(means) < 0))
    return LossTrend(float(means[0]), float(means[-1]), monotone, spec.loss_decreases)


def _accumulation(result: TrainingResult, plan: _Plan, load: EngineLoader, ref: Trajectory) -> Accumulation:
    def norm(arrays: Mapping[str, np.ndarray]) -> float:
        return float(np.sqrt(sum(float(np.sum(np.square(a))) for a in arrays.values())))

    # Shown at the end of the first epoch (at least step 3), or the first recorded step after it.
    target = min(len(ref.losses), max(result.steps_per_epoch, 3))
    r = next(i for i, k in enumerate(ref.record_steps) if k >= target)
    step = ref.record_steps[r]
    grads = {n: ref.grads[n][r - 1] for n in ref.grads}
    own = {n: ref.fresh[n][r - 1] for n in ref.fresh}
    # .grad at `step` = the sum of every gradient so far; their sum is what the recorder checked.
    errors = [e.trajectory.accumulation_error for e in result.engines if e.trajectory is not None]
    # The same run with zero_grad(), for contrast; the reference's own engine runs it.
    cleared = LEGS[ref.engine](replace(plan, zero_grad=True), load)
    parts_at = None
    for i, k in enumerate(ref.record_steps):
        if any(not np.array_equal(ref.params[n][i], cleared.params[n][i]) for n in ref.params):
            parts_at = k
            break
    final = float(cleared.losses[-len(plan.steps) :].mean())
    return Accumulation(step, norm(grads), norm(own), max(errors, default=0.0), final, parts_at)


__all__ = [
    "Accumulation",
    "AfterResult",
    "Divergence",
    "EngineTraining",
    "LossTrend",
    "TrainingResult",
    "Trajectory",
    "examples",
    "run_training",
    "sgd_update",
    "step_tolerance",
]
