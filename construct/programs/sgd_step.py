"""Theorem 1: one step of SGD on one example, the paper's 9-instruction chain; its domain and its registry entry."""

from __future__ import annotations

from functools import partial


from .. import exact, reference
from ..instructions import Aff, Mov, Mul
from ..raw import domain
from ..raw.domain import Box, Domain
from ..raw.program import Program
from ..raw.prompt import X_IN, Y_IN, as_array, check_count
from . import parts
from .registry import Algorithm, Parameter, register


def sgd_step(d: int, alpha, lam, w0) -> Program:
    """Theorem 1: one SGD step on (x_1, y_1) from w0, predicted at x_2 (9 instructions).

    Loss (w^T x - y)^2 + lam |w|^2, step ``w' = w0 - 2 alpha (x (x^T w0 - y) + lam w0)``,
    prediction ``w'^T x_2``. The paper's chain, with two errata fixed: step 6
    adds ``+lam w`` (printed with -lam, the wrong sign of the penalty), and
    mov's columns are (source, destination). Data rows: 3 + 4d.

    Built for one query: at column 0 the chain takes the step on (x_1, 0),
    penalty included, so ``predict`` reports NaN there.
    """
    d = check_count(d, "d")
    alpha, lam = parts.scalar(alpha, "alpha"), parts.scalar(lam, "lam")
    w0 = as_array(w0, (d,), "w0")
    layout = parts.layout(d, [("x", (d,)), ("wx", (1,)), ("err", (1,)), ("grad", (d,)),
                         ("w", (d,)), ("g", (d,)), ("pred", (1,))])
    instructions = [
        Mov(X_IN, "x", 1),                                     # 1 x of column 0 -> column 1
        Aff("wx", (("x", w0[None, :], "w0^T"),)),              # 2 wx = w0^T x
        Aff("err", (("wx", 1), (Y_IN, -1))),                   # 3 err = wx - y
        Mul("x", "err", "grad", (d, 1, 1)),                    # 4 grad = x err
        Aff("w", bias=w0, bias_label="w0"),                    # 5 w = w0
        Aff("g", (("grad", 1), ("w", lam))),                   # 6 g = grad + lam w   (erratum: +lam)
        Aff("w", (("w", 1), ("g", -2 * alpha))),               # 7 w = w - 2 alpha g
        Mov("w", "w", 1),                                      # 8 w of column 1 -> column 2
        Mul("w", X_IN, "pred", (1, d, 1)),                     # 9 pred = w^T x_q
    ]
    return Program("sgd_step", d, 1, layout, tuple(instructions), query_only=True,
                   params={"alpha": alpha, "lam": lam, "w0": w0}, domain=partial(theory, d, alpha, lam, w0), algorithm=ALGORITHM)


def contraction(alpha, lam, R):
    """``rho = max(|1 - 2 alpha lam|, |1 - 2 alpha (lam + R^2)|)``: a bound on ``|M|``, ``M = I - 2 alpha (x x^T + lam I)``.

    M is symmetric with eigenvalues ``1 - 2 alpha (lam + |x|^2)`` (along x)
    and ``1 - 2 alpha lam`` (across it); ``|1 - 2 alpha (lam + t)|`` is convex
    in t, so over ``t = |x|^2 in [0, R^2]`` it peaks at an end.
    """
    return domain.maximum(domain.absolute(1 - 2 * alpha * lam), domain.absolute(1 - 2 * alpha * (lam + R**2)))


def theory(d: int, alpha, lam, w0, box: Box) -> Domain:
    """Theorem 1's chain: one step from w0 on ``x = x_in(i-1)``, ``y = y_in(i)`` in every column, penalty included."""
    X, R, Y = box.x_max, box.x_norm, box.y_max
    w0_norm = domain.norm(w0)
    W1 = contraction(alpha, lam, R) * w0_norm + 2 * alpha * Y * R   # |M w0 + 2 alpha y x|, one step (any rho)
    W = domain.maximum(w0_norm, W1)                                             # w0 (step 5), w1 (steps 7, 8)
    values = {
        **domain.prompt(box, 1),
        "x": X,                                        # x_in of column i-1
        "wx": domain.positive(R * w0_norm),                  # w0^T x, Cauchy-Schwarz
        "err": R * w0_norm + Y,                        # wx - y
        "grad": X * (R * w0_norm + Y),                 # x err, entrywise
        "w": domain.positive(W),
        "g": X * (R * w0_norm + Y) + lam * w0_norm,    # grad + lam w0, entrywise
        "pred": domain.positive(R * W),                      # w^T x_in
    }
    return Domain(values, {})


ALGORITHM = register(Algorithm(
    name="sgd_step", summary="Theorem 1: one SGD step on one example, the paper's 9-instruction chain",
    build=lambda d, n, alpha, lam, w0: sgd_step(d, alpha, lam, w0),
    parameters=(Parameter("alpha", 0.05, "the step size", units=(-2, 0)), Parameter("lam", 0.1, "the ridge penalty", units=(2, 0)),
                Parameter("w0", None, "the initial weights (default 0)", vector=True, units=(-1, 1))),
    theory=theory, closed_form=reference.sgd_one_step, exact_weights=exact.sgd_weights,
    paper_size=lambda d: (9, 3 + 4 * d), one_example=True,
))
