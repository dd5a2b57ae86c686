"""The paper's chains as printed do not compute what its theorems state; here is what they compute.

Each proof runs the printed chain on symbolic inputs (the exact machine for
every step our instructions express; the literal row-range or column
reading where the printed step is not one of them) and shows (a) the result
differs from the theorem's, (b) it equals a stated formula instead.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from construct import Aff, programs
from construct.raw.prompt import X_IN

from .registry import proof, require, zero
from .theorems import alpha, examples, lam, ridge_weights, sgd_update, vector


def theorem1_chain(d: int):
    """Theorem 1's program on symbolic inputs: (program, initial state, example x1, y1, query q, w0)."""
    X, y, xq, xs, ys, q = examples(d, 1)
    w0 = vector("w0", d)
    program = programs.sgd_step(d, alpha, lam, np.array(list(w0), dtype=object))
    return program, program.encode(X, y, xq), xs[0], ys[0], q, w0


def query_prediction(program, H, steps):
    """Run ``steps`` (instructions, or functions of the state) on ``H``; the prediction at the query column."""
    for step in steps:
        H = step(H) if callable(step) else step.apply(H, program.layout)
    return H[program.layout.rows("pred")][0, -1]


@proof("erratum_theorem1_penalty_sign",
       "Theorem 1 printed with g = grad - lam w predicts with w0 - 2 alpha (x (x^T w0 - y) - lam w0): the penalty pushes w0 up",
       "d = 1, 2, 3; alpha, lam, w0, x1, y1, x2 symbolic; alpha lam != 0")
def erratum_theorem1_penalty_sign():
    for d in (1, 2, 3):
        program, H, x1, y1, q, w0 = theorem1_chain(d)
        printed = list(program.instructions)
        printed[5] = Aff("g", (("grad", 1), ("w", -lam)))  # step 6 as printed
        pred = query_prediction(program, H, printed)
        stated = (sgd_update(w0, x1, y1).T * q)[0]
        computed = ((w0 - 2 * alpha * (x1 * ((x1.T * w0)[0] - y1) - lam * w0)).T * q)[0]
        zero(sp.expand(pred - computed), f"d = {d}: printed chain", sp.expand)
        zero(sp.factor(pred - stated) - 4 * alpha * lam * (w0.T * q)[0], f"d = {d}: off by 4 alpha lam w0^T x2",
             sp.expand)


@proof("erratum_theorem2_final_shape",
       "Theorem 2's last step printed as mul(d, 1, 1, ...) writes the d numbers w_i x_q1, not w^T x_q",
       "d = 2, 3; the rows as printed: r1 = w (d rows), r2 = x (its first row read as 1 x 1)")
def erratum_theorem2_final_shape():
    for d in (2, 3):
        X, y, xq, xs, ys, q = examples(d, 1)
        program = programs.sherman_morrison_step(d, lam)
        H = program.encode(X, y, xq)
        for ins in program.instructions[:-1]:
            H = ins.apply(H, program.layout)
        layout = program.layout
        w = H[layout.rows("w")][:, -1]
        # mul(d, 1, 1, r1, r2, w'): r1 read as d x 1, the first row of r2 as 1 x 1, d products written
        x_first = H[layout.span(X_IN)[0], -1]
        printed = [sp.cancel(w_i * x_first) for w_i in w]
        require(len(printed) == d, "the printed step writes d numbers into a one-row register")
        weights = ridge_weights(xs, ys, d)
        for i in range(d):
            zero(sp.cancel(printed[i] - weights[i] * q[0]), f"d = {d}: entry {i} is w_i x_q1", sp.cancel)
        zero(sp.cancel(printed[0] - (weights.T * q)[0]) - (-sum(weights[i] * q[i] for i in range(1, d))),
             f"d = {d}: its first entry misses w_2 x_q2 + ...", sp.cancel)


def printed_mov(program, source_col: int, dest_col: int, src: str, dst: str):
    """mov read as printed, (destination, source): copy ``src`` of ``source_col`` into ``dst`` of ``dest_col``."""

    def step(H):
        H = H.copy()
        H[program.layout.rows(dst), dest_col] = H[program.layout.rows(src), source_col]
        return H

    return step


@proof("erratum_mov_column_order",
       "Theorem 1 with mov's columns read in the printed order predicts (1 - 2 alpha lam) w0^T x2: the example is never used",
       "d = 1, 2, 3; steps 1 and 8 printed as mov(1, 0, ...) and mov(2, 1, ...), read as (source, destination)")
def erratum_mov_column_order():
    for d in (1, 2, 3):
        program, H, x1, y1, q, w0 = theorem1_chain(d)
        steps = list(program.instructions)
        # step 1 copies x from column 1 (the y token: empty x slot) back into column 0; step 8 w from 2 into 1.
        # Causal attention cannot even read a later column; the machine applies it literally.
        steps[0] = printed_mov(program, 1, 0, X_IN, "x")
        steps[7] = printed_mov(program, 2, 1, "w", "w")
        pred = query_prediction(program, H, steps)
        zero(sp.expand(pred - (1 - 2 * alpha * lam) * (w0.T * q)[0]), f"d = {d}", sp.expand)
        require(not any(s in pred.free_symbols for s in [*x1, y1]), "the prediction ignores x1 and y1")
