"""Fuzz symcheck at scale: the generators of tests/fuzz/generators.py, in a pool of worker processes.

    python bench/fuzz.py --n 100000 [--seed 0] [--jobs 2] [--timeout 20] [--classes text,yaml]
                         [--save DIR] [--quiet]

Input i of a run is the class the seed's schedule gives it and that class's generator at seed
"<seed>:<i>": the same inputs on every run. Each runs in-process in a worker (click's CliRunner on
symcheck's CLI), judged as the tests judge it (tests/fuzz/generators.py: `judge`). The parent holds
the per-input wall-clock limit: a worker past it has its Python stack dumped (faulthandler, for the
report) and is killed and replaced, so a loop in C (SymPy, numpy, a big-integer power) cannot stall
the run. Each worker also has an address-space limit (--memory-mb): a MemoryError is a crash.

At the end: a table per class (inputs, exit 0/1/2/3, crashes, hangs, disagreements, seconds) and
the distinct findings, deduplicated by (class, exception type, last frame of symcheck). --save DIR
writes one reproducer per finding. Exit status 1 if any crash, hang or disagreement.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib.util
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # each worker is one core's worth of torch
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


def _load_generators() -> Any:
    """tests/fuzz/generators.py, by path (bench/ is not a package and tests/ is not installed)."""
    name = "symcheck_fuzz_generators"
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "fuzz" / "generators.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and pickle look the module up by name
    spec.loader.exec_module(module)
    return module


gen = _load_generators()

# The class mix of a run (relative weights; --weights overrides). An input that runs the four
# engines costs 0.3-0.8 s of a core, one refused by the parser a few ms; this mix makes 100,000
# inputs take about an hour on 2 cores, the cheap classes (text, mutation, values) being most of
# them. BALANCED gives the engine classes a far larger share, for runs of 10,000 or fewer.
WEIGHTS: dict[str, float] = {
    "text": 30,
    "mutation": 28,
    "values": 21,
    "program": 5.5,
    "flags": 3,
    "names": 2,
    "yaml": 3.5,
    "bombs": 0.5,
}
BALANCED: dict[str, float] = {
    "text": 15,
    "mutation": 15,
    "values": 10,
    "program": 20,
    "flags": 12,
    "names": 8,
    "yaml": 15,
    "bombs": 5,
}
RECYCLE_AFTER = 300  # inputs per worker before a fresh one replaces it (SymPy's caches grow)


# ---------------------------------------------------------------- workers


def _warm_imports() -> None:
    """Import what the commands load lazily, once in the parent, so each forked worker starts warm.
    Nothing runs here: torch's thread pools start in the workers, after the fork."""
    import symcheck.checks.runner
    import symcheck.cli
    import symcheck.engines.autograd.engine
    import symcheck.engines.numeric.engine
    import symcheck.engines.symbolic.engine
    import symcheck.engines.torch.engine
    import symcheck.report.formats
    import symcheck.suites.loader
    import symcheck.teaching.explain  # noqa: F401


def _worker(conn: Connection, memory_mb: int, dump: str, workdir: str) -> None:
    import torch

    torch.set_num_threads(1)
    if memory_mb > 0:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with open(dump, "w") as stack:  # the parent asks for the stack of a hung input with SIGUSR1
        faulthandler.register(signal.SIGUSR1, file=stack, all_threads=True)
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message is None:
                return
            index, inp = message
            try:
                outcome = gen.run_input(inp, workdir)
            except MemoryError:
                outcome = gen.Outcome(None, "crash", "MemoryError in the harness", "MemoryError")
            except BaseException as e:  # the harness's own failure: reported as a crash, never lost
                outcome = gen.Outcome(None, "crash", f"harness: {type(e).__name__}: {e}", type(e).__name__)
            conn.send((index, outcome))


@dataclass
class Worker:
    memory_mb: int
    workdir: str
    process: Any = None
    conn: Connection | None = None
    dump: str = ""
    task: tuple[int, Any] | None = None
    started: float = 0.0
    done: int = 0

    def start(self) -> None:
        ctx = get_context("fork")
        parent, child = ctx.Pipe()
        fd, self.dump = tempfile.mkstemp(prefix="stack-", suffix=".txt", dir=self.workdir)
        os.close(fd)
        self.process = ctx.Process(target=_worker, args=(child, self.memory_mb, self.dump, self.workdir))
        self.process.daemon = True
        self.process.start()
        child.close()
        self.conn = parent
        self.task = None
        self.done = 0

    def send(self, index: int, inp: Any) -> None:
        assert self.conn is not None
        self.task = (index, inp)
        self.started = time.perf_counter()
        self.conn.send((index, inp))

    def stack(self) -> str:
        """The Python stack of the running input (faulthandler's dump), then the worker is killed."""
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
            time.sleep(0.5)
        except ProcessLookupError:
            pass
        try:
            return Path(self.dump).read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        Path(self.dump).unlink(missing_ok=True)

    def stop(self) -> None:
        try:
            assert self.conn is not None
            self.conn.send(None)
            self.process.join(10)
        except (OSError, AssertionError):
            pass
        self.kill()


def _hang_outcome(stack: str, limit: float) -> Any:
    """A hung input's outcome, its frame read from the dumped stack (innermost symcheck frame)."""
    frames = [line.strip() for line in stack.splitlines() if line.strip().startswith("File ")]
    # faulthandler prints the innermost frame first: 'File "path", line N in func'
    own = [f for f in frames if "/symcheck/" in f and "/site-packages/" not in f]
    first = own[0] if own else (frames[0] if frames else "")
    frame = ""
    if first:
        path = first.split('"')[1]
        rest = first.split('"')[2].strip().lstrip(",").strip()  # 'line N in func'
        line, _, func = rest.partition(" in ")
        frame = gen._frame(path, line.replace("line", "").strip(), func)
        if not own:  # faulthandler keeps the innermost 100 frames: a deep recursion hides symcheck's
            frame = frame.split(":")[0] + " (no symcheck frame among the innermost 100)"
    return gen.Outcome(
        None,
        "hang",
        f"no answer in {limit:g} s",
        "Hang",
        frame,
        frames[0] if frames else "",
        stack[-3000:],
        limit,
    )


# ---------------------------------------------------------------- the run


@dataclass
class ClassStats:
    inputs: int = 0
    exits: Counter = field(default_factory=Counter)
    crashes: int = 0
    hangs: int = 0
    disagreements: int = 0
    gave_up: int = 0  # the symbolic engine ran out of its --timeout on the input (not a finding)
    seconds: float = 0.0


@dataclass
class Finding:
    key: tuple[str, str, str]
    inp: Any
    outcome: Any
    index: int
    count: int = 1


def schedule(n: int, seed: int, classes: list[str], mix: dict[str, float]) -> list[str]:
    """The class of each input, by seed: input i of a run is the same whatever --jobs."""
    rng = random.Random(f"schedule:{seed}")
    return rng.choices(classes, [mix.get(c, 1.0) for c in classes], k=n)


def parse_weights(text: str | None) -> dict[str, float]:
    """--weights balanced, or NAME=W,NAME=W (classes not named keep the default mix's weight)."""
    if not text:
        return dict(WEIGHTS)
    if text == "balanced":
        return dict(BALANCED)
    mix = dict(WEIGHTS)
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in gen.CLASSES:
            sys.exit(f"--weights: unknown class {name.strip()!r}; the classes are {', '.join(gen.CLASSES)}")
        mix[name.strip()] = float(value)
    return mix


def run(args: argparse.Namespace) -> int:
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else list(gen.CLASSES)
    unknown = [c for c in classes if c not in gen.CLASSES]
    if unknown:
        sys.exit(f"unknown classes {unknown}; the classes are {', '.join(gen.CLASSES)}")
    plan = schedule(args.n, args.seed, classes, parse_weights(args.weights))
    gen.SYMBOLIC_TIMEOUT = f"{args.symbolic_timeout:g}"  # the --timeout each generated command passes
    _warm_imports()
    workdir = tempfile.mkdtemp(prefix="symfuzz-run-")
    stats = {c: ClassStats() for c in classes}
    findings: dict[tuple[str, str, str], Finding] = {}
    workers = [Worker(args.memory_mb, workdir) for _ in range(args.jobs)]
    for w in workers:
        w.start()
    start = time.perf_counter()
    next_index = 0
    finished = 0
    last_progress = start

    def record(index: int, inp: Any, outcome: Any) -> None:
        nonlocal finished
        finished += 1
        s = stats[inp.cls]
        s.inputs += 1
        s.seconds += outcome.seconds
        s.exits[outcome.exit_code] += 1
        s.gave_up += outcome.gave_up
        if outcome.verdict == "ok":
            return
        if outcome.verdict == "crash":
            s.crashes += 1
        elif outcome.verdict == "hang":
            s.hangs += 1
        else:
            s.disagreements += 1
        key = outcome.key(inp.cls)
        if key in findings:
            findings[key].count += 1
        else:
            findings[key] = Finding(key, inp, outcome, index)
            if not args.quiet:
                print(f"  new finding #{len(findings)} at input {index}: {key}", flush=True)

    try:
        while finished < args.n:
            for w in workers:
                if w.task is None and next_index < args.n:
                    if w.done >= RECYCLE_AFTER:
                        w.stop()
                        w.start()
                    cls = plan[next_index]
                    w.send(next_index, gen.generate(cls, f"{args.seed}:{next_index}"))
                    next_index += 1
            busy = [w for w in workers if w.task is not None]
            if not busy:
                break
            now = time.perf_counter()
            soonest = min(w.started + args.timeout for w in busy)
            ready = wait([w.conn for w in busy], timeout=max(0.0, soonest - now))
            for w in busy:
                if w.conn in ready:
                    assert w.task is not None
                    index, inp = w.task
                    try:
                        got_index, outcome = w.conn.recv()
                        assert got_index == index
                        w.task = None
                        w.done += 1
                    except (EOFError, OSError):  # the worker died: a segfault, the OOM killer, RLIMIT_AS
                        w.process.join(1)
                        code = w.process.exitcode
                        outcome = gen.Outcome(
                            None, "crash", f"worker died (exit code {code})", f"WorkerDied({code})",
                            detail=w.stack(),
                        )  # fmt: skip
                        outcome.seconds = time.perf_counter() - w.started
                        w.kill()
                        w.start()
                    record(index, inp, outcome)
                elif time.perf_counter() - w.started > args.timeout:
                    assert w.task is not None
                    index, inp = w.task
                    outcome = _hang_outcome(w.stack(), args.timeout)
                    w.kill()
                    w.start()
                    record(index, inp, outcome)
            if not args.quiet and time.perf_counter() - last_progress > 15:
                last_progress = time.perf_counter()
                elapsed = last_progress - start
                bad = sum(s.crashes + s.hangs + s.disagreements for s in stats.values())
                print(
                    f"[{finished}/{args.n}] {elapsed:.0f} s, {finished / elapsed:.1f} inputs/s, "
                    f"{bad} crash/hang/disagreement, {len(findings)} distinct",
                    flush=True,
                )
    finally:
        for w in workers:
            w.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - start
    print(table(stats, elapsed))
    print(summary(findings))
    if args.save:
        save(Path(args.save), findings)
        print(f"reproducers in {args.save}")
    return 1 if findings else 0


def table(stats: dict[str, ClassStats], elapsed: float) -> str:
    names = (
        "inputs",
        "exit 0",
        "exit 1",
        "exit 2",
        "exit 3",
        "crashes",
        "hangs",
        "disagr.",
        "gave up",
        "seconds",
    )
    head = f"{'class':10} " + " ".join(f"{n:>8}" for n in names)
    rows = [head, "-" * len(head)]
    total = ClassStats()
    for name, s in stats.items():
        rows.append(_row(name, s))
        total.inputs += s.inputs
        total.exits.update(s.exits)
        total.crashes += s.crashes
        total.hangs += s.hangs
        total.disagreements += s.disagreements
        total.gave_up += s.gave_up
        total.seconds += s.seconds
    rows += [
        "-" * len(head),
        _row("total", total),
        f"wall clock {elapsed:.0f} s ({total.inputs / max(elapsed, 1e-9):.1f} inputs/s)",
    ]
    return "\n".join(rows)


def _row(name: str, s: ClassStats) -> str:
    e = s.exits
    return (
        f"{name:10} {s.inputs:8} {e[0]:8} {e[1]:8} {e[2]:8} {e[3]:8} {s.crashes:8} {s.hangs:8} "
        f"{s.disagreements:8} {s.gave_up:8} {s.seconds:8.0f}"
    )


def summary(findings: dict[tuple[str, str, str], Finding]) -> str:
    if not findings:
        return "no findings: 0 crashes, 0 hangs, 0 disagreements"
    lines = [f"{len(findings)} distinct finding(s):"]
    for i, f in enumerate(sorted(findings.values(), key=lambda f: f.key), 1):
        cls, kind, where = f.key
        lines.append(
            f"{i:3}. [{cls}] {kind} at {where}  ({f.count} input(s), first #{f.index}): {f.outcome.reason}"
        )
        lines.append(f"       {f.inp.command()[:300]}")
    return "\n".join(lines)


def save(folder: Path, findings: dict[tuple[str, str, str], Finding]) -> None:
    """One folder per finding: command.sh (run from that folder), the input's files, what happened."""
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for i, f in enumerate(sorted(findings.values(), key=lambda f: f.key), 1):
        cls, kind, _ = f.key
        slug = "".join(ch if ch.isalnum() else "-" for ch in f"{i:03d}-{cls}-{kind}")[:60]
        d = folder / slug
        d.mkdir(exist_ok=True)
        gen.write_files(f.inp, d)
        (d / "command.sh").write_text(
            '#!/bin/sh\n# run from this folder\ncd "$(dirname "$0")"\n' + f.inp.command(".") + "\n",
            encoding="utf-8",
            errors="surrogateescape",
        )
        (d / "outcome.txt").write_text(
            f"key: {f.key}\ncount: {f.count}\nfirst input: #{f.index}\nexpect: {f.inp.expect}\n"
            f"exit: {f.outcome.exit_code}\nverdict: {f.outcome.verdict}\nreason: {f.outcome.reason}\n"
            f"exception: {f.outcome.exc_type}\nframe: {f.outcome.frame}\nlast frame: {f.outcome.last_frame}\n"
            f"seconds: {f.outcome.seconds:.2f}\n\n{f.outcome.detail}\n",
            encoding="utf-8",
            errors="backslashreplace",
        )
        (d / "argv.json").write_text(json.dumps(f.inp.argv, ensure_ascii=True))
        index.append({"folder": slug, "key": list(f.key), "count": f.count, "reason": f.outcome.reason})
    (folder / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=True))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="inputs to run (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--timeout", type=float, default=20.0, help="seconds an input may take before it is a hang"
    )
    p.add_argument(
        "--symbolic-timeout",
        type=float,
        default=float(gen.SYMBOLIC_TIMEOUT),
        help="symcheck's own --timeout in the generated commands (default %(default)g s)",
    )
    p.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per worker (0: none)")
    p.add_argument("--classes", help=f"comma-separated subset of: {', '.join(gen.CLASSES)}")
    p.add_argument(
        "--weights",
        metavar="MIX",
        help="the class mix: 'balanced' (more engine runs), or NAME=W,... over the default (see WEIGHTS)",
    )
    p.add_argument("--save", metavar="DIR", help="write a reproducer per distinct finding here")
    p.add_argument("--quiet", action="store_true", help="only the final table and findings")
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
