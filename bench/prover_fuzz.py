"""Fuzz the prover: random programs (tests/fuzz/generators.py), each gradient's printed closed form
claimed back (it must be proven, or at least never refuted) and three wrong claims made of it (+ 1/1000,
twice it, minus it), which must never be proven unless the gradient is identically 0 (then 2*0 is 0).

    PYTHONPATH=. .venv/bin/python bench/prover_fuzz.py --n 200 --seed 1

Prints the verdicts counted by kind, and every wrong claim proven (a false proof: a bug) or crash.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symcheck.engines.symbolic import ClosedForm
from symcheck.engines.symbolic.budget import gave_up_in, time_limit
from symcheck.engines.symbolic.probes import probe_point
from symcheck.language.inputs import parse_cli_input
from symcheck.language.ir import TensorType
from symcheck.language.parser import bind, parse
from tests.fuzz.generators import build_program

WRONG = {"plus": "{} + 1/1000", "twice": "2*({})", "minus": "-({})"}


def identically_zero(closed: ClosedForm, name: str) -> bool:
    """The gradient is 0 at a few random points (then scaling it is no mistake)."""
    types = {n: d.type for n, d in closed.program.inputs.items()}
    for seed in range(3):
        grads = closed.evaluate(probe_point(types, seed))[1]
        if np.any(np.abs(grads[name]) > 1e-12):
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0, help="each proof's budget")
    parser.add_argument("--show-unproven", action="store_true", help="print each right claim not proven")
    args = parser.parse_args()
    r = random.Random(args.seed)
    counts: collections.Counter[str] = collections.Counter()
    findings: list[str] = []
    start = time.perf_counter()
    for _ in range(args.n):
        spec = build_program(r, tensor_output=0.0)
        try:
            specs = dict(parse_cli_input(s) for s in spec.specs)
            program = bind(
                parse(spec.text), {k: TensorType(tuple(v.shape or ()), v.dtype) for k, v in specs.items()}
            )
            wrt = program.float_inputs()[:1]
            with time_limit(args.seconds):
                closed = ClosedForm.derive(program, wrt)
            printed = closed.printed[wrt[0]]
            parse(printed)
        except Exception:  # a program the generator drew that does not bind, or a form not printable
            counts["skipped"] += 1
            continue
        claims = {"right": printed, **{k: t.format(printed) for k, t in WRONG.items()}}
        for kind, claim in claims.items():
            try:
                proof = closed.prove(wrt[0], parse(claim), seconds=args.seconds)
            except Exception as e:
                if gave_up_in(e):
                    counts[f"{kind}: undecided"] += 1
                    continue
                counts[f"{kind}: CRASH"] += 1
                findings.append(f"CRASH {kind}: {spec.text!r} claim {claim!r}: {e!r}")
                continue
            verdict = "proven" if proof.proven else "undecided" if proof.undecided else "not proven"
            counts[f"{kind}: {verdict}"] += 1
            if kind == "right" and not proof.proven and args.show_unproven:
                print(f"unproven: {spec.text!r} d/d{wrt[0]} = {claim!r}: {proof.how}", flush=True)
            if kind != "right" and proof.proven and not (kind != "plus" and identically_zero(closed, wrt[0])):
                findings.append(f"FALSE PROOF {kind}: {spec.text!r} d/d{wrt[0]} claim {claim!r}: {proof.how}")
    for key, n in sorted(counts.items()):
        print(f"{key:24} {n}")
    print(f"{args.n} programs in {time.perf_counter() - start:.0f} s; findings: {len(findings)}")
    for f in findings:
        print(f)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
