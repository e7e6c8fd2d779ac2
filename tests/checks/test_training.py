"""Training runs (symcheck/checks/training.py), autograd's SGD (engines/autograd/optim.py) and the `train:`
schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from symcheck.checks.runner import CaseResult, run_cases
from symcheck.checks.training import TorchSGD, examples, sgd_update, step_tolerance
from symcheck.cli import main
from symcheck.engines.autograd.optim import SGD
from symcheck.engines.autograd.tensor import Tensor
from symcheck.language.errors import SymcheckError
from symcheck.report.json import render_json
from symcheck.report.text import render_text
from symcheck.suites.case import OptimizerSpec
from symcheck.suites.loader import load_suite

WriteSuite = Callable[..., Path]

# A small logistic regression on four inline examples: fast, and every engine can train it.
SMALL = """\
cases:
  - name: small
    expr: nll_loss(log_softmax(W @ x + b), y)
    inputs:
      W: {{shape: [2, 3], random: {{low: -0.1, high: 0.1, seed: 1}}}}
      b: {{shape: [2], fill: 0}}
      x: {{shape: [3], fill: 0}}
      y: {{shape: [], dtype: int, value: 0}}
    wrt: [W, b]
    samples: 0
    train:
      parameters: [W, b]
      data:
        train: {{x: [[1, 0, 2], [0, 1, 0], [2, 1, 0], [0, 0, 1]], y: [0, 1, 0, 1]}}
        test: {{x: [[1, 0, 1], [0, 2, 0]], y: [0, 1]}}
      optimizer: {{lr: 0.5{optimizer}}}
      epochs: 6
{extra}"""


def small(write_suite: WriteSuite, optimizer: str = "", extra: str = "") -> Path:
    return write_suite(SMALL.format(optimizer=optimizer, extra=extra))


def run_one(path: Path) -> CaseResult:
    results, errors = run_cases(load_suite(path).cases)
    assert errors == []
    (result,) = results
    return result


# ---------------------------------------------------------------- SGD, as torch defines it

OPTIMIZERS = [
    {},
    {"momentum": 0.9},
    {"weight_decay": 0.1},
    {"momentum": 0.8, "weight_decay": 0.05, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.5, "weight_decay": 0.2, "nesterov": True},
]


def _gradient_sequence(steps: int = 5) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(3, 2)), [rng.normal(size=(3, 2)) for _ in range(steps)]


def _torch_sgd(start: np.ndarray, grads: list[np.ndarray], **kw: Any) -> np.ndarray:
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, **kw)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("kw", OPTIMIZERS, ids=lambda kw: ",".join(kw) or "plain")
def test_autograd_sgd_matches_torch(kw: dict[str, Any]) -> None:
    start, grads = _gradient_sequence()
    p = Tensor(start.copy(), requires_grad=True)
    opt = SGD([p], lr=0.1, **kw)
    for g in grads:
        p.grad = Tensor(g)
        opt.step()
    np.testing.assert_allclose(p.data, _torch_sgd(start, grads, **kw), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kw", OPTIMIZERS, ids=lambda kw: ",".join(kw) or "plain")
def test_numpy_sgd_update_matches_torch(kw: dict[str, Any]) -> None:
    start, grads = _gradient_sequence()
    params = {"p": start.copy()}
    buffers: dict[str, np.ndarray] = {}
    spec = OptimizerSpec(lr=0.1, **kw)
    for g in grads:
        sgd_update(params, {"p": g}, buffers, spec)
    np.testing.assert_allclose(params["p"], _torch_sgd(start, grads, **kw), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kw", OPTIMIZERS, ids=lambda kw: ",".join(kw) or "plain")
def test_the_torch_legs_sgd_is_torch_optim_sgd_bit_for_bit(kw: dict[str, Any]) -> None:
    start, grads = _gradient_sequence()
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    q = torch.tensor(start, dtype=torch.float64, requires_grad=True)  # never given a .grad
    opt = TorchSGD([p, q], OptimizerSpec(lr=0.1, **kw))
    for g in grads:
        opt.zero_grad()
        assert p.grad is None
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_array_equal(p.detach().numpy(), _torch_sgd(start, grads, **kw))
    np.testing.assert_array_equal(q.detach().numpy(), start)


def test_weight_decay_leaves_grad_alone_and_unset_grads_are_skipped() -> None:
    p = Tensor(np.ones(2), requires_grad=True)
    q = Tensor(np.ones(2), requires_grad=True)
    opt = SGD([p, q], lr=0.5, weight_decay=1.0, momentum=0.9)
    p.grad = Tensor(np.full(2, 2.0))
    opt.step()
    np.testing.assert_array_equal(p.grad.data, [2.0, 2.0])
    np.testing.assert_array_equal(p.data, 1 - 0.5 * (2 + 1))
    np.testing.assert_array_equal(q.data, [1.0, 1.0])  # no .grad: not even weight decay, as in torch
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_sgd_rejects_what_torch_rejects() -> None:
    p = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        SGD([p], lr=-1)
    with pytest.raises(ValueError, match="leaf"):
        SGD([p * 2], lr=0.1)


def test_backward_accumulates_and_step_uses_the_sum() -> None:
    """Without zero_grad(), .grad after two backward() calls is the sum of both gradients, in our
    autograd as in torch, and step() moves by that sum."""
    x1, x2 = np.array([1.0, 2.0]), np.array([-3.0, 0.5])
    w = Tensor(np.array([0.5, -0.25]), requires_grad=True)
    tw = torch.tensor([0.5, -0.25], dtype=torch.float64, requires_grad=True)
    for x in (x1, x2):
        ((w * x).sum() ** 2).backward()
        ((tw * torch.tensor(x)).sum() ** 2).backward()
    assert w.grad is not None and tw.grad is not None
    expected = sum(2 * float(np.dot([0.5, -0.25], x)) * x for x in (x1, x2))
    np.testing.assert_allclose(w.grad.data, expected, rtol=1e-15)
    np.testing.assert_allclose(tw.grad.numpy(), expected, rtol=1e-15)
    SGD([w], lr=0.1).step()
    np.testing.assert_allclose(w.data, np.array([0.5, -0.25]) - 0.1 * expected, rtol=1e-15)


# ---------------------------------------------------------------- training runs across engines


def test_small_run_agrees_and_reports(write_suite: WriteSuite) -> None:
    extra = (
        "      loss_decreases: true\n"
        '      after: [{expr: "nll_loss(log_softmax(W @ x + b), y)", data: test, below: 0.6931}]\n'
    )
    r = run_one(small(write_suite, extra=extra))
    t = r.training
    assert r.status == "pass" and t is not None and t.ok
    assert t.reference == "symbolic" and t.steps_per_epoch == 4 and t.total_steps == 24
    assert [(e.engine, e.status) for e in t.engines] == [
        ("symbolic", "reference"),
        ("autograd", "ok"),
        ("torch", "ok"),
    ]
    for e in t.engines[1:]:
        assert e.checks == 24 + 25 * 2 + 24 * 2 and e.mismatched == 0 and e.max_abs < 1e-12
    ref = t.engines[0].trajectory
    assert ref is not None and ref.record_steps == list(range(25))
    assert t.trend is not None and t.trend.ok and t.trend.last < t.trend.first
    (after,) = t.after
    assert after.ok and after.set_name == "test" and len(after.values) == 2 and after.held == 2
    text = render_text([r])
    assert "train     SGD(lr=0.5, momentum=0, weight_decay=0) on W, b: 6 epochs x 4 steps = 24 steps" in text
    assert "after     loss decreases: ok" in text
    assert "on each example of set test: ok (2/2" in text
    assert "step() never sees the loss" in text
    doc = json.loads(render_json([r]))
    training = doc["cases"][0]["training"]
    assert training["ok"] and training["steps"] == 24 and len(training["engines"][0]["losses"]) == 24
    assert training["engines"][1]["first_divergence"] is None


def test_momentum_and_weight_decay_agree(write_suite: WriteSuite) -> None:
    r = run_one(small(write_suite, ", momentum: 0.9, weight_decay: 0.01, nesterov: true"))
    assert r.status == "pass"
    assert r.training is not None and all(e.mismatched == 0 for e in r.training.engines)


def test_a_wrong_update_is_caught_at_its_first_step(
    write_suite: WriteSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = SGD.step
    calls = [0]

    def wrong(self: SGD) -> None:
        original(self)
        calls[0] += 1
        if calls[0] >= 3:
            for p in self.params:
                if p.shape == (2,):
                    p.data -= 1e-4  # from the third step on, b is nudged

    monkeypatch.setattr(SGD, "step", wrong)
    r = run_one(small(write_suite))
    assert r.status == "fail"
    t = r.training
    assert t is not None and not t.ok
    autograd = next(e for e in t.engines if e.engine == "autograd")
    torch_leg = next(e for e in t.engines if e.engine == "torch")
    assert autograd.status == "parted" and torch_leg.status == "ok"
    assert autograd.divergence is not None
    assert (autograd.divergence.step, autograd.divergence.what) == (3, "b (after the step)")
    assert autograd.divergence.comparison.mismatched == 2
    text = render_text([r])
    assert (
        "MISMATCH  autograd vs symbolic, training, first at step 3 (epoch 1, example 3): b (after the step)"
        in text
    )
    assert "Mismatched elements: 2 / 2 (100.0%)" in text
    assert "parts at step 3 (epoch 1, example 3)" in text


def test_a_wrong_gradient_shows_first_in_grad(
    write_suite: WriteSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symcheck.engines import autograd as T

    x_rule, y_rule = T.VJPS["add"]
    monkeypatch.setitem(T.VJPS, "add", (x_rule, lambda g, ans, x, y: 2 * y_rule(g, ans, x, y)))
    r = run_one(small(write_suite))
    assert r.status == "fail" and r.training is not None
    autograd = next(e for e in r.training.engines if e.engine == "autograd")
    assert autograd.divergence is not None
    # The loss of step 1 agrees; what backward() left in b.grad does not, before any update.
    assert (autograd.divergence.step, autograd.divergence.what) == (1, "b.grad (read by step())")


def test_step_tolerance_grows_linearly() -> None:
    from symcheck.checks.compare import Tolerance

    tol = step_tolerance(Tolerance(1e-7, 1e-8), 0.01, 100)
    assert tol.rtol == pytest.approx(2e-7) and tol.atol == pytest.approx(2e-8)


def test_without_zero_grad_gradients_accumulate(write_suite: WriteSuite) -> None:
    r = run_one(small(write_suite, extra="      zero_grad: false\n"))
    t = r.training
    assert r.status == "pass" and t is not None and t.accumulation is not None
    acc = t.accumulation
    assert acc.step == 4 and acc.max_error < 1e-12 and acc.parts_at == 2
    ref = t.engines[0].trajectory
    assert ref is not None
    # The .grad step k read is the sum of the first k steps' own gradients, in every engine.
    for e in t.engines:
        run = e.trajectory
        assert run is not None
        for name in ("W", "b"):
            np.testing.assert_allclose(
                np.array(run.grads[name]), np.cumsum(np.array(run.fresh[name]), axis=0), atol=1e-12
            )
    cleared = run_one(small(write_suite)).training
    assert cleared is not None
    assert not np.allclose(cleared.engines[0].trajectory.losses, ref.losses)  # type: ignore[union-attr]
    assert acc.cleared_final_loss == pytest.approx(float(cleared.engines[0].trajectory.losses[-4:].mean()))  # type: ignore[union-attr]
    text = render_text([r])
    assert (
        "zero_grad: false. step() never sees the loss: it reads .grad, and backward() adds to .grad" in text
    )
    assert "the sum of 4 gradients" in text
    assert "The same run with zero_grad() differs from step 2 (epoch 1, example 2) on" in text


def test_full_batch_without_data(write_suite: WriteSuite) -> None:
    path = write_suite(
        """\
        cases:
          - name: mf
            expr: sum(mask*(R - U @ V.T)^2) + lam*(sum(U^2) + sum(V^2))
            inputs:
              R: [[5, 3], [4, 0], [1, 1]]
              mask: [[1, 1], [1, 0], [1, 1]]
              U: {shape: [3, 1], random: {low: 0.5, high: 1, seed: 2}}
              V: {shape: [2, 1], random: {low: 0.5, high: 1, seed: 3}}
              lam: {shape: [], fill: 0.1}
            samples: 0
            wrt: [U, V]
            train:
              parameters: [U, V]
              optimizer: {lr: 0.02, momentum: 0.5}
              epochs: 30
              compare_every: 7
              loss_decreases: true
              after: [{expr: "sum(mask*(R - U @ V.T)^2)", below: 20, above: 0}]
        """
    )
    r = run_one(path)
    t = r.training
    assert r.status == "pass" and t is not None
    assert t.steps_per_epoch == 1 and t.total_steps == 30
    assert t.engines[0].trajectory is not None and t.engines[0].trajectory.record_steps == [
        0,
        7,
        14,
        21,
        28,
        30,
    ]
    assert t.trend is not None and t.trend.ok
    assert "30 full-batch steps (one per epoch)" in render_text([r])


def test_batches_of_rows(write_suite: WriteSuite) -> None:
    path = write_suite(
        """\
        cases:
          - name: batches
            expr: cross_entropy(X @ W.T, y)
            inputs:
              W: {shape: [2, 2], fill: 0}
              X: {shape: [2, 2], fill: 1}
              y: {shape: [2], dtype: int, value: [0, 1]}
            samples: 0
            train:
              parameters: [W]
              data: {X: [[1, 0], [0, 1], [1, 1], [2, 0]], y: [0, 1, 1, 0]}
              optimizer: {lr: 0.1}
              epochs: 2
        """
    )
    case = load_suite(path).cases[0]
    assert case.train is not None
    steps = examples(case.train, case, "train")
    assert len(steps) == 2
    np.testing.assert_array_equal(steps[1]["X"], [[1, 1], [2, 0]])
    np.testing.assert_array_equal(steps[1]["y"], [1, 0])
    r = run_one(path)
    assert r.status == "pass" and r.training is not None and r.training.total_steps == 4


def test_a_diverging_run_fails(write_suite: WriteSuite) -> None:
    path = write_suite(
        """\
        cases:
          - name: diverges
            expr: sum(w^4)
            inputs: {w: {shape: [2], fill: 3}}
            samples: 0
            train: {parameters: [w], optimizer: {lr: 10}, epochs: 5}
        """
    )
    r = run_one(path)
    assert r.status == "fail" and r.training is not None
    assert any("not finite" in p for p in r.training.problems)


def test_training_engines_default_to_the_cases(write_suite: WriteSuite) -> None:
    path = small(write_suite, extra="")
    text = path.read_text().replace(
        "    samples: 0\n", "    samples: 0\n    engines: [torch, autograd, numeric]\n"
    )
    path.write_text(text)
    r = run_one(path)
    assert r.training is not None and r.training.reference == "torch"
    assert [e.engine for e in r.training.engines] == ["torch", "autograd"]


# ---------------------------------------------------------------- the schema and the data


def load_error(write_suite: WriteSuite, text: str, name: str = "suite.yaml") -> SymcheckError:
    path = write_suite(text, name)
    with pytest.raises(SymcheckError) as e:
        _, errors = run_cases(load_suite(path).cases)
        if errors:
            raise errors[0]
    return e.value


def train_case(train: str, inputs: str = "") -> str:
    return (
        "cases:\n"
        "  - name: c\n"
        "    expr: nll_loss(log_softmax(W @ x + b), y)\n"
        "    inputs:\n"
        "      W: {shape: [2, 3]}\n"
        "      b: {shape: [2], fill: 0}\n"
        "      x: {shape: [3], fill: 0}\n"
        "      y: {shape: [], dtype: int, value: 0}\n" + inputs + "    train:\n" + train
    )


def test_data_file_relative_to_the_suite(write_suite: WriteSuite, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.json").write_text(
        json.dumps({"meta": {"labels": {"a": 0}}, "train": {"x": [[1, 2, 3]], "y": [1]}})
    )
    path = write_suite(
        train_case("      parameters: [W, b]\n      data: data/d.json\n      optimizer: {lr: 0.1}\n")
    )
    (case,) = load_suite(path).cases
    assert case.train is not None and case.train.train_set == "train"
    assert case.train.meta == {"labels": {"a": 0}} and case.train.data_origin == "data/d.json"
    np.testing.assert_array_equal(case.train.sets["train"]["y"], [1])
    assert case.train.sets["train"]["y"].dtype == np.int64


@pytest.mark.parametrize(
    ("data", "message", "line"),
    [
        ('{"train": {"x": [[1, 2, 3]], "z": [0]}}', "gives 'z', which is not an input", 2),
        (
            '{"train": {"x": [[1, 2]], "y": [0]}}',
            "data 'x' in set 'train' has shape [1, 2], but input 'x' has shape [3]",
            2,
        ),
        ('{"train": {"W": [[1, 2, 3]], "y": [0]}}', "'W' is a parameter", 2),
        ('{"train": {"x": [[1, 2, 3]], "y": [0.5]}}', "an int input needs integer values", 3),
        (
            '{"train": {"x": [[1, 2, 3], [1, 1, 1]], "y": [0]}}',
            "different numbers of steps per input (x: 2, y: 1)",
            1,
        ),
        ('{"x": [[1, 2, 3]], "test": {"y": [0]}}', "data mixes named sets (test) with arrays (x)", 1),
        (
            '{"train": {"x": [[1, 2, 3]], "y": [0]}, "test": {"x": [[1, 2, 3]]}}',
            "set 'test' gives x but set 'train' gives x, y",
            4,
        ),
        ('{"train": {"x": [[1, 2, 3]], "y": [0],}}', "malformed JSON", 3),
    ],
)
def test_data_file_errors_point_into_the_file(
    write_suite: WriteSuite, tmp_path: Path, data: str, message: str, line: int
) -> None:
    # Multi-line JSON so that lines are distinguishable: each key of a set on its own line.
    pretty = (
        data.replace('{"train": {', '{"train": {\n')
        .replace(', "y"', ',\n"y"')
        .replace(', "test"', ',\n"test"')
    )
    (tmp_path / "d.json").write_text(pretty)
    e = load_error(
        write_suite, train_case("      parameters: [W, b]\n      data: d.json\n      optimizer: {lr: 0.1}\n")
    )
    assert message in e.message
    assert e.filename == str(tmp_path / "d.json")
    assert e.line == line


def test_missing_data_file_points_at_the_suite(write_suite: WriteSuite, tmp_path: Path) -> None:
    e = load_error(
        write_suite,
        train_case("      parameters: [W, b]\n      data: nowhere.json\n      optimizer: {lr: 0.1}\n"),
    )
    assert "data file 'nowhere.json' not found" in e.message
    assert e.filename == str(tmp_path / "suite.yaml") and e.line == 11
    assert e.hint is not None and "relative to the suite file" in e.hint


W_LR = "      parameters: [W]\n      optimizer: {lr: 0.1}\n"


@pytest.mark.parametrize(
    ("train", "message", "line"),
    [
        ("      parameters: [W, q]\n      optimizer: {lr: 0.1}\n", "parameter 'q' is not an input", 10),
        ("      parameters: [y]\n      optimizer: {lr: 0.1}\n", "parameter 'y' is an int input", 10),
        ("      parameters: [W]\n      optimizer: {lr: 0}\n", "'train.optimizer.lr' must be more than 0", 11),
        ("      parameters: [W]\n      optimizer: {lr: 0.1, name: adam}\n", "must be one of 'sgd'", 11),
        (
            "      parameters: [W]\n      optimizer: {lr: 0.1, nesterov: true}\n",
            "nesterov momentum needs momentum > 0",
            11,
        ),
        ("      parameters: [W]\n      optimzer: {lr: 0.1}\n", "unknown key 'optimzer' in 'train'", 11),
        (
            W_LR + "      engines: [numeric]\n",
            "engine 'numeric' cannot train",
            12,
        ),
        (
            W_LR + "      epochs: 0\n",
            "'train.epochs' must be at least 1",
            12,
        ),
        (
            W_LR + "      loss_decreases: true\n",
            "needs epochs >= 2",
            12,
        ),
        (
            W_LR + "      data: {x: [[1, 2, 3]], y: [7, 8]}\n",
            "different numbers of steps",
            12,
        ),
        (
            W_LR + "      data: {x: [[1, 2, 3]], y: [0]}\n      set: tset\n",
            "no data set 'tset' in inline",
            13,
        ),
        (
            W_LR + "      data: 3\n",
            "must be a data file's path or a mapping",
            12,
        ),
        (
            W_LR + "      after: [{expr: sum(W)}]\n",
            "needs a bound",
            12,
        ),
        (
            W_LR + "      after: [{expr: sum(W), data: test, below: 1}]\n",
            "needs train.data",
            12,
        ),
        (
            W_LR + "      after: [{exprr: sum(W), below: 1}]\n",
            "unknown key 'exprr'",
            12,
        ),
    ],
)
def test_train_block_errors(
    write_suite: WriteSuite, tmp_path: Path, train: str, message: str, line: int
) -> None:
    e = load_error(write_suite, train_case(train))
    assert message in e.message
    assert (e.filename, e.line) == (str(tmp_path / "suite.yaml"), line)


def test_unknown_key_in_after_suggests(write_suite: WriteSuite) -> None:
    e = load_error(
        write_suite,
        train_case(
            "      parameters: [W]\n      optimizer: {lr: 0.1}\n      after: [{exprr: sum(W), below: 1}]\n"
        ),
    )
    assert e.hint == "did you mean 'expr'?"


def test_after_expression_errors_point_at_the_file(write_suite: WriteSuite, tmp_path: Path) -> None:
    e = load_error(
        write_suite,
        train_case(
            '      parameters: [W]\n      optimizer: {lr: 0.1}\n      after: [{expr: "sum(Q)", below: 1}]\n'
        ),
    )
    assert "unknown name 'Q' in an after check" in e.message
    assert e.source is not None and e.span is not None
    assert e.source.file_position(e.span) == (12, 27)


def test_order_key(write_suite: WriteSuite) -> None:
    base = "cases:\n  - name: o\n    expr: sum(x^3)\n    inputs: {x: {shape: [2]}}\n"
    (case,) = load_suite(write_suite(base + "    order: 2\n")).cases
    assert case.order == 2
    (case,) = load_suite(write_suite(base)).cases
    assert case.order == 1
    e = load_error(write_suite, base + "    order: 3\n")
    assert "'order' must be at most 2, got 3" in e.message and e.line == 5


# ---------------------------------------------------------------- the shipped suites


def test_shipped_training_suites_pass(repo: Path) -> None:
    files = [
        repo / "expressions" / "bow_logistic_regression.yaml",
        repo / "expressions" / "matrix_factorization.yaml",
    ]
    result = CliRunner().invoke(main, ["verify", *map(str, files)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "4 cases" in out and "4 passed" in out
    assert "outer(softmax(W @ x + b) - onehot(y, 2), x): proven" in out
    assert "100 epochs x 4 steps = 400 steps" in out
    assert "< 0.6931 on each example of set test: ok (2/2" in out
    assert "zero_grad: false." in out


def test_bow_data_matches_its_script(repo: Path) -> None:
    import importlib.util

    script = repo / "expressions" / "data" / "make_bow_tutorial.py"
    spec = importlib.util.spec_from_file_location("make_bow_tutorial", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    shipped = json.loads((repo / "expressions" / "data" / "bow_tutorial.json").read_text())
    assert shipped == built
    assert len(built["meta"]["vocabulary"]) == 26
    assert built["meta"]["labels"] == {"SPANISH": 0, "ENGLISH": 1}
    assert built["train"]["y"] == [0, 1, 0, 1] and built["test"]["y"] == [0, 1]
