"""Ridge regression over n examples by recursive least squares, predicting at every prefix; its domain and its
registry entry."""

from __future__ import annotations

from functools import partial


from .. import exact, reference
from ..instructions import Aff, Div, Mov, Mul
from ..raw import domain
from ..raw.domain import Box, Domain
from ..raw.program import Program
from ..raw.prompt import Y_IN, check_count
from . import parts
from .registry import Algorithm, Parameter, register
from .residual import RidgeAnswer
from .rls import RLSState


def ridge(d: int, n: int, lam) -> Program:
    """Ridge regression over n examples by recursive least squares, at every prefix.

    The state is ``A_k^{-1}`` and the ridge weights ``w_k`` themselves, with
    ``A_k = lam I + sum_{j<=k} x_j x_j^T`` and ``w_k = A_k^{-1} sum_{j<=k} x_j y_j``
    (``A_0^{-1} = I/lam``, ``w_0 = 0``). Example k, with ``u = A_{k-1}^{-1} x_k``
    and ``den1 = 1 + x_k^T u``:

        gain = u / den1 = A_k^{-1} x_k           (Sherman-Morrison)
        A_k^{-1} = A_{k-1}^{-1} - gain u^T       (A^{-1} is symmetric: the paper's vT is u^T)
        w_k = w_{k-1} + gain (y_k - w_{k-1}^T x_k)

    The last line is ``A_k^{-1} b_k`` rewritten (``proofs/theorems.py``,
    ``rls_identity``); it never forms ``A^{-1} b``, whose terms
    (``|A^{-1}| |b|``, hundreds) cancel to ``|w|`` (a few) and cost the
    compiled network accuracy. ``A^{-1}`` and ``w`` stay in registers of
    their own: a compiled product's error scales with its operands' bounds,
    and a register's bound is that of its largest entry. Depth 3 + 12n + 2,
    data rows 3d^2 + 7d + 5: O(d^2), whatever n. Block (applied n times),
    the instructions on one line independent of each other:

        Ainv_src <- Ainv of column i-2     w_src <- w of column i-2
        u    <- Ainv_src x                 wx    <- x^T w_src
        den  <- x^T u                      e     <- y - wx
        den1 <- den + 1
        gain <- u / |den1|
        corr <- gain u^T                   step  <- gain e
        Ainv <- Ainv_src - corr            w     <- w_src + step
    """
    d, n = check_count(d, "d"), check_count(n, "n")
    lam = parts.scalar(lam, "lam", positive=True)
    layout = parts.layout(d, [("x", (d,)), ("Ainv", (d, d)), ("Ainv_src", (d, d)), ("w", (d,)), ("w_src", (d,)),
                         ("u", (d,)), ("wx", (1,)), ("den", (1,)), ("e", (1,)), ("den1", (1,)), ("gain", (d,)),
                         ("corr", (d, d)), ("step", (d,)), ("w_pred", (d,)), ("pred", (1,))])
    setup = [
        *parts.read_x_of_example("x"),
        Aff("Ainv", bias=parts.identity_over(d, lam), bias_label="I/lam"),
    ]
    block = [
        Mov("Ainv", "Ainv_src", 2),
        Mov("w", "w_src", 2),
        Mul("Ainv_src", "x", "u", (d, d, 1)),
        Mul("x", "w_src", "wx", (1, d, 1)),
        Mul("x", "u", "den", (1, d, 1)),
        Aff("e", ((Y_IN, 1), ("wx", -1))),
        Aff("den1", (("den", 1),), bias=1),
        Div("u", "den1", "gain"),
        Mul("gain", "u", "corr", (d, 1, d)),
        Mul("gain", "e", "step", (d, 1, 1)),
        Aff("Ainv", (("Ainv_src", 1), ("corr", -1))),
        Aff("w", (("w_src", 1), ("step", 1))),
    ]
    instructions = setup + block * n + parts.predict_from_previous_column(d, "w")
    return Program("ridge", d, n, layout, tuple(instructions), params={"lam": lam},
                   domain=partial(theory, d, n, lam), algorithm=ALGORITHM,
                   block=(len(setup), len(block)))


def theory(d: int, n: int, lam, box: Box) -> Domain:
    """Ridge by recursive least squares (``programs.ridge``): every column is ridge on at most n examples.

    A column's state is ``A^{-1}`` and ``w = A^{-1} X^T y`` with
    ``A = lam I + X^T X`` over its examples (rows of X, at most n, each with
    ``|x| <= R``; labels ``|y| <= Y``, so ``|y|_2 <= sqrt(n) Y``).
    """
    X, R, Y = box.x_max, box.x_norm, box.y_max
    K = 1 / (2 * domain.sqrt(lam))
    W = domain.sqrt(n, Y, lam) * Y * K         # w = V diag(s / (s^2 + lam)) U^T y (SVD of X): |w| <= K |y|
    U = R / lam                          # u = A^{-1} x, |A^{-1}| <= 1/lam (A >= lam I)
    # gain = u / den1; with v = A^{-1/2} x, |u| <= |v| / sqrt(lam) and den1 = 1 + |v|^2, so
    # |gain| <= |v| / ((1 + |v|^2) sqrt(lam)) <= K (AM-GM), and |gain| <= |u| (den1 >= 1)
    G = domain.minimum(K, U)
    E = Y + R * W                        # e = y - w^T x
    values = {
        **domain.prompt(box, n),
        "x": X,                          # x_in(i-1) - x_in(i): one of the two is 0
        "Ainv": 1 / lam,                 # 0 < A^{-1} <= I/lam: a PSD matrix's entries are at most its diagonal's
        "Ainv_src": 1 / lam,
        "w": W,
        "w_src": W,
        "u": U,
        "wx": R * W,                     # Cauchy-Schwarz
        "den": R**2 / lam,               # 0 <= x^T A^{-1} x <= |x|^2 / lam
        "e": E,
        "den1": 1 + R**2 / lam,
        "gain": G,
        "corr": domain.minimum(1 / lam, G * U),    # u u^T / den1 = A^{-1} - A'^{-1}: 0 <= corr <= A^{-1} <= I/lam
        "step": domain.minimum(G * E, 2 * W),      # gain e, and the difference of two ridge weights
        "w_pred": W,
        "pred": R * W,                   # w_pred^T x_in
    }
    return Domain(values, {"den1": 1})  # 1 + x^T A^{-1} x, A^{-1} positive definite


ALGORITHM = register(Algorithm(
    name="ridge", summary="ridge regression by recursive least squares (Sherman-Morrison), a prediction at every prefix",
    build=ridge,
    parameters=(Parameter("lam", 0.1, "the ridge penalty (> 0)", units=(2, 0)),),
    theory=theory, closed_form=reference.ridge, exact_weights=exact.ridge_weights,
    residual=RidgeAnswer("w_pred", "Ainv", 1),
    rls=RLSState("Ainv", "w", "gain"),
    paper_order="O(n) layers, O(d^2) width",
))
