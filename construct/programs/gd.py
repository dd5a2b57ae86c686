"""Batch gradient descent, T steps on every prefix's ridge objective, in depth independent of n; its domain and its
registry entry.

At the y~ column ``i = 2k - 1`` of example k the prefix averages
(``parts.prefix_averages``) hold ``A = (lam I + S_k) / (2k)`` and ``b =
X_k^T y_k / (2k)``, ``S_k = X_k^T X_k`` over examples 1..k. The objective

    L_k(w) = (1/k) (|X_k w - y_k|^2 + lam |w|^2)

(the mean squared error of prefix k with ridge's penalty, scaled by 1/k:
ridge's minimiser) has gradient ``(2/k)(S_k w - X_k^T y_k + lam w) = 4 (A w -
b)``, so T steps of size alpha from ``w_0 = 0`` are

    w_{s+1} = w_s - 4 alpha (A w_s - b),    w_T = (I - M^T) w*,   M = I - 4 alpha A,

(von Oswald et al.'s construction: one step per layer, the product ``A w``
in the MLP, the update in the next layer's attention). The x~ column of
example k + 1 moves the y~ column's weights over (``mov``, offset 1) and
predicts its own x with them; column 0 predicts 0 (``b = 0`` there, so ``w =
0``), as GD on no examples from 0 does. Every step reads the previous
step's ``A w`` only, so the loop is one layer, stored once: fused, the
first step shares the averages' layer and the prediction the last step's,
``max(T + 1, 3)`` layers whatever n (four stored).

Stability. ``M`` is symmetric with eigenvalues ``1 - 4 alpha lambda``,
lambda an eigenvalue of A, in ``(0, Lam]`` with ``Lam = lam + R^2/2`` at
every column (``parts.averaged_bounds``), so ``|M| <= 1`` when ``alpha <=
1 / (2 Lam)``: then ``|w_s| <= |I - M^s| |w*| <= 2 |w*|``. A box that allows
a larger alpha is refused (the iterates can grow like ``|M|^T``).

Program (one line per fused layer, phases separated by ``;;``):

    x_prev, x, bos   ;;  z <- x x_prev^T;  xy <- x y_in
    A <- Avg(z) + lam Avg(bos) I;  b <- Avg(xy)         (w and Aw start at 0)
    (T times)  w <- w - 4 alpha (Aw - b)  ;;  Aw <- A w
    w_pred <- w of column i-1  ;;  pred <- w_pred^T x_in
"""

from __future__ import annotations

import numbers
from functools import partial

from .. import exact, reference
from ..instructions import Aff, Mov, Mul
from ..raw import domain
from ..raw.domain import Box, Domain
from ..raw.program import Program
from ..raw.prompt import X_IN, check_count
from . import parts
from .registry import Algorithm, Parameter, register


def whole(value, name: str) -> int:
    """An integer count given as an int or as a float with an integral value (the command line's numbers)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return check_count(value, name)


def gd(d: int, n: int, alpha, lam, steps=10) -> Program:
    """``steps`` steps of batch gradient descent from 0 on every prefix's objective (module docstring)."""
    d, n = check_count(d, "d"), check_count(n, "n")
    alpha, lam = parts.scalar(alpha, "alpha"), parts.scalar(lam, "lam", positive=True)
    steps = whole(steps, "steps")
    layout = parts.layout(d, [*parts.averaged_registers(d), ("w", (d,)), ("Aw", (d,)), ("w_pred", (d,)),
                              ("pred", (1,))])
    setup = [*parts.prefix_averages(d, lam)]
    block = [
        Aff("w", (("w", 1), ("Aw", -4 * alpha), ("b", 4 * alpha))),
        Mul("A", "w", "Aw", (d, d, 1)),
    ]
    finish = [
        Mov("w", "w_pred", 1),
        Mul("w_pred", X_IN, "pred", (1, d, 1)),
    ]
    return Program("gd", d, n, layout, tuple(setup + block * steps + finish),
                   params={"alpha": alpha, "lam": lam, "steps": steps},
                   domain=partial(theory, d, n, alpha, lam, steps), algorithm=ALGORITHM)


def theory(d: int, n: int, alpha, lam, steps: int, box: Box) -> Domain:
    """T steps of GD (``programs.gd``): every column runs them on the averages of at most n examples of the box.

    A column's A and b are ``(lam I + S) / (i + 1)`` and ``X^T y / (i + 1)``
    over the examples before it (the x~ columns divide by one more): the
    same ``w* = (lam I + S)^-1 X^T y``, a ridge solution, and ``M = I - 4
    alpha A`` with eigenvalues in ``[1 - 4 alpha Lam, 1]``, ``Lam = lam +
    R^2/2``, so ``|M| <= 1`` when ``alpha <= 1 / (2 Lam)``.
    """
    X, R, Y = box.x_max, box.x_norm, box.y_max
    Lam = lam + R**2 / 2
    if not domain.symbolic(alpha, Lam) and 4 * alpha * Lam > 2:
        raise domain.UnboundedDomain(
            f"gd(alpha={alpha:g}, lam={lam:g}) can diverge on the box {box}: a step multiplies w's error by up to "
            f"|1 - 4 alpha Lam| = {abs(1 - 4 * alpha * Lam):.6g} > 1 with Lam = lam + R^2/2 = {Lam:.6g}, so no bound "
            f"holds for {steps} steps. The box allows alpha <= 1/(2 Lam) = {1 / (2 * Lam):.6g}; use a smaller "
            "alpha, a smaller x_max, or declare x_norm")
    K = 1 / (2 * domain.sqrt(lam))
    W = 2 * domain.sqrt(n, Y, lam) * Y * K    # |w_s| = |(I - M^s) w*| <= 2 |w*|, ridge weights: |w*| <= K |y|
    values = {
        **parts.averaged_bounds(n, lam, box),
        "w": W,
        "Aw": R * Y,                          # A w_s = (I - M^s) b: |b| <= R Y / 2
        "w_pred": W,
        "pred": R * W,                        # w_pred^T x_in, Cauchy-Schwarz
    }
    return Domain(values, {})


ALGORITHM = register(Algorithm(
    name="gd", summary="batch gradient descent, T steps on every prefix's ridge objective, a prediction at every "
                       "prefix in depth independent of n",
    build=gd,
    parameters=(Parameter("alpha", 0.01, "the step size on the objective (1/k)(|X w - y|^2 + lam |w|^2)",
                          units=(-2, 0)),
                Parameter("lam", 0.1, "the ridge penalty (> 0)", units=(2, 0)),
                Parameter("steps", 10, "the gradient steps T (depth T + 1)")),
    theory=theory, closed_form=reference.gd, exact_weights=exact.gd_weights,
    paper_order="O(n) layers, O(n + d) width (SGD)",
))
