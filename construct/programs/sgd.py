"""One pass of SGD over n examples, predicting at every prefix; its domain and its registry entry."""

from __future__ import annotations

from functools import partial

import numpy as np

from .. import exact, reference
from ..instructions import Aff, Mov, Mul
from ..raw import domain
from ..raw.domain import Box, Domain
from ..raw.program import Program
from ..raw.prompt import POS, Y_IN, as_array, check_count
from . import parts
from .registry import Algorithm, Parameter, register
from .sgd_step import contraction


def sgd(d: int, n: int, alpha, lam, w0=None) -> Program:
    """One pass of SGD over n examples from w0 (default 0), predicting at every prefix.

    Example k updates ``w <- w - 2 alpha (x_k (x_k^T w - y_k) + lam w)``; the
    x~ column of example k+1 predicts with the weights after example k.
    Depth 5 + 6n + 2, width d + 2 input rows and 6d + 5 data rows: O(d),
    whatever n. Block (applied n times):

        w_src <- w of column i-2        err  <- x^T w_src - y
        grad  <- x err                  pen  <- gate w_src
        w     <- w_src - 2 alpha (grad + pen)
    """
    d, n = check_count(d, "d"), check_count(n, "n")
    alpha, lam = parts.scalar(alpha, "alpha"), parts.scalar(lam, "lam")
    w0 = np.zeros(d) if w0 is None else as_array(w0, (d,), "w0")
    layout = parts.layout(d, [("pos_prev", (1,)), ("gate", (1,)), ("x", (d,)), ("w", (d,)), ("w_src", (d,)),
                         ("wx", (1,)), ("err", (1,)), ("grad", (d,)), ("pen", (d,)),
                         ("w_pred", (d,)), ("pred", (1,))])
    setup = [
        Mov(POS, "pos_prev", 1),
        Aff("gate", ((POS, lam), ("pos_prev", -lam))),          # lam, but 0 at column 0
        *parts.read_x_of_example("x"),
        Aff("w", bias=w0, bias_label="w0"),
    ]
    block = [
        Mov("w", "w_src", 2),
        Mul("x", "w_src", "wx", (1, d, 1)),
        Aff("err", (("wx", 1), (Y_IN, -1))),
        Mul("x", "err", "grad", (d, 1, 1)),
        Mul("gate", "w_src", "pen", (1, 1, d)),
        Aff("w", (("w_src", 1), ("grad", -2 * alpha), ("pen", -2 * alpha))),
    ]
    instructions = setup + block * n + parts.predict_from_previous_column(d, "w")
    return Program("sgd", d, n, layout, tuple(instructions),
                   params={"alpha": alpha, "lam": lam, "w0": w0}, domain=partial(theory, d, n, alpha, lam, w0), algorithm=ALGORITHM,
                   block=(len(setup), len(block)))


def sgd_radius(n: int, alpha, lam, w0, box: Box):
    """``W``, a bound on ``|w|_2`` after at most n steps ``w' = M w + 2 alpha y x``, ``M = I - 2 alpha (x x^T + g I)``.

    The gate g is lam (``|M| <= rho``, ``contraction``) except at column 0,
    where ``x = 0``, ``g = 0`` and M = I: those steps only repeat w0, before
    any other. So ``|w_m| <= rho |w_{m-1}| + 2 alpha Y R`` over the other
    steps: ``|w_m| <= B_m = rho^m |w0| + 2 alpha Y R sum_{j<m} rho^j`` and
    ``W = max_{m <= n} B_m``. When ``rho > 1`` the bound grows like rho^n:
    refused, with the largest alpha the box allows (``rho <= 1`` iff
    ``alpha (R^2 + lam) <= 1``).
    """
    R, Y = box.x_norm, box.y_max
    rho = contraction(alpha, lam, R)
    if not domain.symbolic(rho) and rho > 1:
        raise domain.UnboundedDomain(
            f"sgd(alpha={alpha:g}, lam={lam:g}) diverges on the box {box}: a step can multiply |w| by "
            f"rho = max(|1 - 2 alpha lam|, |1 - 2 alpha (lam + R^2)|) = {rho:.6g} > 1 with R = {R:.6g}, so no bound "
            f"holds for n = {n} examples. The box allows alpha <= 1/(R^2 + lam) = {1 / (R**2 + lam):.6g}; use a "
            f"smaller alpha, a smaller x_max, or declare x_norm (a bound on |x|_2, default sqrt(d) x_max)")
    radii = [domain.norm(w0)]
    for _ in range(n):
        radii.append(rho * radii[-1] + 2 * alpha * Y * R)
    return domain.maximum(*radii)


def theory(d: int, n: int, alpha, lam, w0, box: Box) -> Domain:
    """One pass of SGD (``programs.sgd``): every column runs the recurrence on examples of the box."""
    X, R, Y = box.x_max, box.x_norm, box.y_max
    W = sgd_radius(n, alpha, lam, w0, box)
    values = {
        **domain.prompt(box, n),
        "pos_prev": 2 * n - 1,              # pos of column i-1, clamped to 0
        "gate": domain.positive(lam),             # lam (pos - pos_prev): lam, or 0 at column 0
        "x": X,                             # x_in(i-1) - x_in(i): one of the two is 0
        "w": domain.positive(W),                  # sgd_radius; an entry is at most the norm
        "w_src": domain.positive(W),              # w of column i-2
        "wx": domain.positive(R * W),             # Cauchy-Schwarz: |x^T w| <= |x| |w|
        "err": R * W + Y,                   # |x^T w - y| <= R W + Y
        "grad": X * (R * W + Y),            # x err, entrywise
        "pen": domain.positive(lam * W),          # gate w_src, gate <= lam
        "w_pred": domain.positive(W),             # w of column i-1
        "pred": domain.positive(R * W),           # w_pred^T x_in, Cauchy-Schwarz
    }
    return Domain(values, {})


ALGORITHM = register(Algorithm(
    name="sgd", summary="one pass of SGD over the n examples, a prediction at every prefix",
    build=sgd,
    parameters=(Parameter("alpha", 0.05, "the step size", units=(-2, 0)), Parameter("lam", 0.1, "the ridge penalty", units=(2, 0)),
                Parameter("w0", None, "the initial weights (default 0)", vector=True, units=(-1, 1))),
    theory=theory, closed_form=reference.sgd_one_pass, exact_weights=exact.sgd_weights,
    paper_order="O(n) layers, O(n + d) width",
))
