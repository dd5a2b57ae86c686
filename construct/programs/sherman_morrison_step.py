"""Theorem 2: ridge on one example by a Sherman-Morrison update, the paper's 14-instruction chain; its domain and its
registry entry."""

from __future__ import annotations

from functools import partial


from .. import exact, reference
from ..instructions import Aff, Div, Mov, Mul
from ..raw import domain
from ..raw.domain import Box, Domain
from ..raw.program import Program
from ..raw.prompt import X_IN, Y_IN, check_count
from . import parts
from .registry import Algorithm, Parameter, register
from .residual import RidgeAnswer


def sherman_morrison_step(d: int, lam) -> Program:
    """Theorem 2: ridge on one example by a Sherman-Morrison update (14 instructions).

    ``A1^{-1} = A0^{-1} - A0^{-1} x x^T A0^{-1} / (1 + x^T A0^{-1} x)`` with
    ``A0 = lam I``; ``w = A1^{-1} x_1 y_1``; prediction ``w^T x_2``. The
    paper's chain with its errata fixed: step 14 has shape (1, d, 1) (printed
    (d, 1, 1)), and mov's columns are (source, destination). Data rows:
    3 + 5d + 3d^2 (``den`` and ``den1`` are separate rows). Step 2's ``xy``
    is unused here; the n-example program accumulates it.

    Built for one query: ``predict`` reports NaN at column 0.
    """
    d = check_count(d, "d")
    lam = parts.scalar(lam, "lam", positive=True)
    layout = parts.layout(d, [("x", (d,)), ("xy", (d,)), ("Ainv", (d, d)), ("u", (d,)), ("vT", (d,)),
                         ("uvT", (d, d)), ("den", (1,)), ("den1", (1,)), ("corr", (d, d)),
                         ("w", (d,)), ("pred", (1,))])
    instructions = [
        Mov(X_IN, "x", 1),                                      # 1  x of column 0 -> column 1
        Mul("x", Y_IN, "xy", (d, 1, 1)),                        # 2  xy = x y
        Aff("Ainv", bias=parts.identity_over(d, lam), bias_label="I/lam"),  # 3  Ainv = I / lam
        Mul("Ainv", "x", "u", (d, d, 1)),                       # 4  u = Ainv x
        Mul("x", "Ainv", "vT", (1, d, d)),                      # 5  vT = x^T Ainv
        Mul("u", "vT", "uvT", (d, 1, d)),                       # 6  uvT = u vT
        Mul("vT", "x", "den", (1, d, 1)),                       # 7  den = vT x
        Aff("den1", (("den", 1),), bias=1),                     # 8  den1 = den + 1
        Div("uvT", "den1", "corr"),                             # 9  corr = uvT / |den1|
        Aff("Ainv", (("Ainv", 1), ("corr", -1))),               # 10 Ainv = Ainv - corr
        Mul("Ainv", "x", "w", (d, d, 1)),                       # 11 w = Ainv x
        Mul("w", Y_IN, "w", (d, 1, 1)),                         # 12 w = w y
        Mov("w", "w", 1),                                       # 13 w of column 1 -> column 2
        Mul("w", X_IN, "pred", (1, d, 1)),                      # 14 pred = w^T x_q  (erratum: (1, d, 1))
    ]
    return Program("sherman_morrison_step", d, 1, layout, tuple(instructions), query_only=True,
                   params={"lam": lam}, domain=partial(theory, d, lam), algorithm=ALGORITHM)


def theory(d: int, lam, box: Box) -> Domain:
    """Theorem 2's chain on ``x = x_in(i-1)``: ``A1 = lam I + x x^T`` in every column (x = 0 at column 2)."""
    X, R, Y = box.x_max, box.x_norm, box.y_max
    G = domain.minimum(1 / (2 * domain.sqrt(lam)), R / lam)   # |A1^{-1} x| = |x| / (lam + |x|^2) <= K, and <= R / lam
    values = {
        **domain.prompt(box, 1),
        "x": X,                          # x_in of column i-1
        "xy": X * Y,                     # x y
        "Ainv": 1 / lam,                 # I/lam, then A1^{-1} <= I/lam (Loewner), entries of a PSD matrix
        "u": X / lam,                    # A0^{-1} x = x / lam
        "vT": X / lam,                   # x^T A0^{-1}
        "uvT": X**2 / lam**2,            # x x^T / lam^2
        "den": R**2 / lam,               # |x|^2 / lam
        "den1": 1 + R**2 / lam,          # 1 + |x|^2 / lam
        "corr": domain.minimum(1 / lam, X**2 / lam**2),  # 0 <= corr = A0^{-1} - A1^{-1} <= I/lam; also <= uvT (den1 >= 1)
        "w": domain.maximum(G, G * Y),             # A1^{-1} x (step 11), times y (step 12)
        "pred": R * domain.maximum(G, G * Y),      # w^T x_in
    }
    return Domain(values, {"den1": 1})  # 1 + x^T x / lam >= 1


ALGORITHM = register(Algorithm(
    name="sherman_morrison_step",
    summary="Theorem 2: ridge on one example by a Sherman-Morrison update, the paper's 14-instruction chain",
    build=lambda d, n, lam: sherman_morrison_step(d, lam),
    parameters=(Parameter("lam", 0.1, "the ridge penalty (> 0)", units=(2, 0)),),
    theory=theory, closed_form=reference.ridge, exact_weights=exact.ridge_weights,
    residual=RidgeAnswer("w", "Ainv", 1),
    paper_size=lambda d: (14, 3 + 5 * d + 3 * d * d), one_example=True,
))
