"""How accurate the averaging head (``avg``) is over a long prompt, against the exact rational mean; a results file.

    python -m construct.cli.averaging                        # print the numbers
    python -m construct.cli.averaging --out FILE.json        # and write them (docs/CONSTRUCTION.md's come from
                                                             # construct/results/averaging.json, written so)

Two measurements over ``TOKENS`` = 2,049 columns (n = 1024 examples), in
float64 and float32, the exact mean computed in rationals from the values
as the dtype holds them:

* **the head**: values ``v ~ N(0, 1)`` (``COLUMNS`` value columns,
  ``SEEDS`` seeds) averaged as the numpy pass averages them, ``A V`` with
  ``A`` the causal softmax of zero scores (``transformer.forward``). Its
  error at column i is divided by ``mean_{j<=i} |v_j|``, the scale of lemma
  ``uniform_attention``, whose bound ``u + gamma_{i+1} (1 + u)`` is given
  beside it (at its largest, i = 2048);
* **the network**: ``Avg(x_in, pred)`` compiled (d = 1, n = 1024) for the
  box ``|x| <= 4``, run on ``TASKS`` prompts with ``x ~ N(0, 1)``: its
  answers' largest error against the exact mean and the certificate's
  largest bound, and the ratio of bound to error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..transformer import forward, rounding

TOKENS, COLUMNS, SEEDS, TASKS, BOX = 2049, 4, 2, 2, 4.0
DTYPES = (np.float64, np.float32)


def exact_means(values: np.ndarray) -> np.ndarray:
    """The prefix means (T, k) of ``values`` (T, k) in exact rationals, rounded once to float64 at the end (the
    comparison's own rounding, ``u`` of float64, is below what it measures in both dtypes)."""
    out = np.empty(values.shape)
    for c in range(values.shape[1]):
        total = Fraction(0)
        for i, v in enumerate(values[:, c].tolist()):
            total += Fraction(v)
            out[i, c] = float(total / (i + 1))
    return out


def head(dtype) -> dict:
    """The averaging head as the numpy pass computes it: relative error (to the mean of |v|) and the lemma's bound."""
    u = rounding.unit_roundoff(dtype)
    A = forward.causal_softmax(np.zeros((TOKENS, TOKENS), dtype))
    worst = 0.0
    for seed in range(SEEDS):
        V = np.random.default_rng(seed).normal(size=(TOKENS, COLUMNS)).astype(dtype)
        got = (A @ V).astype(np.float64)
        scale = np.cumsum(np.abs(V.astype(np.float64)), axis=0) / np.arange(1, TOKENS + 1)[:, None]
        worst = max(worst, float(np.max(np.abs(got - exact_means(V)) / scale)))
    lemma = u + float(rounding.gamma(TOKENS, u)) * (1 + u)
    return {"relative_error": worst, "lemma_bound": lemma}


def network(dtype) -> dict:
    """``Avg(x_in, pred)`` compiled for n = 1024: the answers' largest error against the exact mean, and the
    certificate's largest bound."""
    from ..compiler import Bounds, compile
    from ..instructions import Avg
    from ..raw.program import Program
    from ..raw.prompt import input_registers, tokens
    from ..raw.registers import Layout, Register

    n = (TOKENS - 1) // 2
    program = Program("running_mean", 1, n, Layout(input_registers(1) + [Register("pred", (1,))]),
                      (Avg("x_in", "pred"),))
    net = compile(program, Bounds({"y_in": BOX, "x_in": BOX, "pos": float(TOKENS - 1), "pred": BOX}, {}), dtype=dtype)
    error = bound = 0.0
    for seed in range(TASKS):
        rng = np.random.default_rng(100 + seed)
        X, y, q = np.clip(rng.normal(size=(n, 1)), -BOX, BOX), np.zeros(n), np.clip(rng.normal(size=1), -BOX, BOX)
        got, bounds = net.predict(X, y, q, tolerance=None, return_bound=True)
        xs = tokens(X, y, q)[:, 1:].astype(dtype).astype(np.float64)  # the x slots as the network holds them
        want = exact_means(xs)[::2, 0]
        error, bound = max(error, float(np.max(np.abs(got - want)))), max(bound, float(np.max(bounds)))
    return {"error": error, "bound": bound}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.cli.averaging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the numbers to this JSON file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = {"command": "python -m construct.cli.averaging --out construct/results/averaging.json",
              "tokens": TOKENS, "columns": COLUMNS, "seeds": SEEDS, "tasks": TASKS, "box": BOX,
              "head": {np.dtype(d).name: head(d) for d in DTYPES},
              "network": {np.dtype(d).name: network(d) for d in DTYPES}}
    result["seconds"] = round(time.perf_counter() - start, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
