"""Ridge regression at every prefix in depth independent of n: prefix averages and Newton-Schulz in product form;
its domain and its registry entry.

Averages instead of sums. At column ``i`` the prefix average (``Avg``) of
``z = x x^T`` (nonzero at y~ columns only) and of the indicator ``bos`` of
column 0 give

    A' = (lam I + S_k) / (i + 1),      b' = X_k^T y_k / (i + 1),

with ``S_k = X_k^T X_k`` over the k examples before column i (y~ column
``2k - 1`` and x~ column ``2k`` both see examples 1..k). So ``A'^-1 b' =
A_k^-1 b_k``, the ridge weights of prefix k, at both columns: every x~
column can predict with its own weights.

One constant for the whole domain. Every x has ``|x| <= R`` (``x_norm``),
so ``lambda_max(A') <= Lam = lam + R^2 / 2`` (column 0: ``A' = lam I``;
column ``i >= 1`` has ``k <= (i + 1)/2`` examples: ``(lam + k R^2)/(i + 1) <=
lam/2 + R^2/2``) and ``lambda_min(A') >= lam / (i + 1) >= lam / (2n + 1)``.
With ``c = 1 / Lam``, ``R_0 = I - c A'`` is symmetric with eigenvalues in
``[0, 1 - 1/kappa]``, ``kappa = Lam (2n + 1) / lam`` (or the bound the user
declares, below).

Newton-Schulz in product form. ``P_t = sum_{j < 2^t} R_0^j`` satisfies

    P_{t+1} = P_t (I + R_0^(2^t)),     R_0^(2^(t+1)) = (R_0^(2^t))^2,

(``proofs``: ``newton_schulz_product``), so one MLP per step forms both
products from the previous step's R and P: the same layer every step, stored
once. ``P_t (c A') = I - R_0^(2^t)`` (telescoping), so ``w_t = c P_t b'`` is
``(I - R_0^(2^t)) w*`` and, R_0 being symmetric with eigenvalues in
``[0, 1 - 1/kappa]``,

    |w_t - w*| <= (1 - 1/kappa)^(2^t) |w*| <= exp(-2^t / kappa) |w*| <= eps |w*|

once ``2^t >= kappa ln(1/eps)`` (``proofs``: ``newton_schulz_convergence``):
``t = ceil(log2(kappa ln(1/eps)))``, ``steps``. The iterate is the
Newton-Schulz iterate ``X_{t+1} = X_t (2I - A' X_t)`` from ``X_0 = c I``
(``X_t = c P_t``), with one product per step instead of two.

A declared conditioning bound. The box's ``kappa`` is the worst prompt's
(a column whose examples span nothing, at the last column). A user whose
prompts are better conditioned may declare ``kappa``: a bound on ``Lam (i +
1) / lambda_min(lam I + S_k)`` at every column (every prefix k, ``i = 2k``
the larger of its two columns). Fewer steps follow, and a smaller bound on P
(``theory``), hence a smaller error of the compiled products (which err in
proportion to their registers' bounds). A prompt that breaks the promise is
still computed, P staying below ``2^t``; the network refuses it when P leaves
its declared bound, and its answers' a-posteriori bounds say how far they are.

One refinement. ``w = 2 w1 - c P (A' w1)`` is ``w1 + c P (b' - A' w1)``
(``c P b' = w1``), one step of iterative refinement with ``c P`` as the
approximate inverse: in exact arithmetic ``w = (I - R_0^(2^(t+1))) w*``, and
an error F of the computed ``c P A' = I - F`` (the products' rounding, which
the loop accumulates) leaves ``I - F^2`` instead. Written so, no register
holds the small residual ``b' - A' w1``, whose bound a calibrated domain
would set from the exact machine's, below the network's own error.

The network's floor. Every register's error (a compiled product errs by a
fraction of its operands' bounds) reaches the answer multiplied by ``c P ~
A'^-1``, whose largest eigenvalue is ``(i + 1) / lam`` at a prefix of fewer
than d examples: there ``A' = lam I / (i + 1)`` is 1/kappa of its bound,
and ``R_0``'s distance from 1 is 1/kappa of R's range. In float64 this
leaves about 1e-9; in float32 about 1e-2 at d = 8, lam = 0.1 (docs/DEPTH.md,
section 5, measures it register by register).

Depth ``t + 5`` layers when fused, whatever n (the loop's layer stored
once, seven stored in all). Program (one line per fused layer, phases
separated by ``;;``):

    x_prev <- x_in of column i-1;  x <- x_prev - x_in;  bos <- 1 - (pos - pos of column i-1)
        ;;  z <- x x_prev^T;  xy <- x y_in       (x_k x_k^T and x_k y_k at y~ columns, 0 elsewhere)
    A <- Avg(z) + lam Avg(bos) I;  b <- Avg(xy);  g <- c b;  R <- I - c A;  P <- I;  IR <- I + R
        ;;  R <- R R;  P <- P IR
    (t - 1 times)  IR <- I + R  ;;  R <- R R;  P <- P IR
    ;;  w1 <- P g
    ;;  Aw <- A w1
    ;;  PAw <- P Aw
    w <- 2 w1 - c PAw  ;;  pred <- w^T x_in
"""

from __future__ import annotations

import math
from functools import partial

from .. import exact, reference
from ..instructions import Aff, Mul
from ..raw import domain
from ..raw.domain import Box, Domain
from ..raw.program import Program
from ..raw.prompt import X_IN, check_count
from . import parts
from .registry import Algorithm, Parameter, register
from .residual import RidgeAnswer

EPS = 1e-10  # the default relative error of the iterate in exact arithmetic


def spectrum_bound(lam, x_norm):
    """``Lam = lam + R^2 / 2``: ``lambda_max(A')`` at every column, ``|x| <= R`` (module docstring)."""
    return lam + x_norm**2 / 2


def box_kappa(n: int, lam, x_norm):
    """The box's worst ``1 / (c lambda_min(A'))``: ``Lam (2n + 1) / lam``."""
    return spectrum_bound(lam, x_norm) * (2 * n + 1) / lam


def steps(kappa, eps) -> int:
    """``t = ceil(log2(kappa ln(1/eps)))``, at least 1: ``exp(-2^t / kappa) <= eps``."""
    return max(1, math.ceil(math.log2(kappa * math.log(1 / eps))))


def ridge_newton(d: int, n: int, lam, x_norm=None, kappa=None, eps=EPS) -> Program:
    """Ridge regression at every prefix by prefix averages and Newton-Schulz in product form (module docstring).

    ``x_norm`` bounds ``|x|_2`` of every input the program is built for (it
    sets the constant c; a network compiled for a larger box is refused;
    default ``2 sqrt(d)``, the box of x ~ N(0, I) that the benchmark uses);
    ``kappa``, if given, is a declared conditioning bound (module
    docstring), else the box's; ``eps`` the iterate's relative error in
    exact arithmetic, which sets the number of steps.
    """
    d, n = check_count(d, "d"), check_count(n, "n")
    lam = parts.scalar(lam, "lam", positive=True)
    x_norm = parts.scalar(2 * math.sqrt(d) if x_norm is None else x_norm, "x_norm", positive=True)
    if kappa is not None:
        kappa = parts.scalar(kappa, "kappa", positive=True)
        if kappa < 1:
            raise ValueError(f"kappa must be >= 1 (it bounds a ratio of eigenvalues, Lam / lambda_min), got {kappa!r}")
    eps = parts.scalar(eps, "eps", positive=True)
    if not eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    c = 1 / spectrum_bound(lam, x_norm)
    worst = box_kappa(n, lam, x_norm)
    kappa = worst if kappa is None else domain.minimum(kappa, worst)  # kept as a number: the program rebuilds
    t = steps(kappa, eps)
    eye = parts.identity_over(d, 1.0)
    layout = parts.layout(d, [*parts.averaged_registers(d), ("g", (d,)), ("R", (d, d)), ("P", (d, d)),
                              ("IR", (d, d)), ("w1", (d,)), ("Aw", (d,)), ("PAw", (d,)), ("w", (d,)), ("pred", (1,))])
    setup = [
        *parts.prefix_averages(d, lam),
        Aff("g", (("b", c),)),
        Aff("R", (("A", -c),), bias=eye, bias_label="I"),
        Aff("P", (), bias=eye, bias_label="I"),
    ]
    block = [
        Aff("IR", (("R", 1),), bias=eye, bias_label="I"),
        Mul("R", "R", "R", (d, d, d)),
        Mul("P", "IR", "P", (d, d, d)),
    ]
    finish = [
        Mul("P", "g", "w1", (d, d, 1)),
        Mul("A", "w1", "Aw", (d, d, 1)),
        Mul("P", "Aw", "PAw", (d, d, 1)),
        Aff("w", (("w1", 2), ("PAw", -c))),
        Mul("w", X_IN, "pred", (1, d, 1)),
    ]
    instructions = setup + block * t + finish
    return Program("ridge_newton", d, n, layout, tuple(instructions),
                   params={"lam": lam, "x_norm": x_norm, "kappa": kappa, "eps": eps},
                   domain=partial(theory, d, n, lam, x_norm, kappa, t), algorithm=ALGORITHM)


def step_count(program: Program) -> int:
    """The program's t: its steps of the loop."""
    return steps(program.params["kappa"], program.params["eps"])


def exact_weights(X, y, lam, x_norm, kappa, eps):
    """Ridge's weights at every prefix, 50 digits: the answer the network approximates (the iteration's own
    truncation, at most eps relative, is part of the error its certificate bounds)."""
    return exact.ridge_weights(X, y, lam)


def inverse_factor(program: Program, columns):
    """``c / (i + 1)``: the register P at column i times it approximates ``A_k^-1`` (``c P ~ A'^-1``)."""
    return 1 / (spectrum_bound(program.params["lam"], program.params["x_norm"]) * (columns + 1))


def theory(d: int, n: int, lam, x_norm, kappa, t: int, box: Box) -> Domain:
    """Ridge by Newton-Schulz (``programs.ridge_newton``): every column averages at most n examples of the box.

    Refuses a box wider than the program's ``x_norm`` (its constant c would
    not keep ``c A' <= I``).
    """
    X, R, Y = box.x_max, box.x_norm, box.y_max
    if not domain.symbolic(R, x_norm) and R > x_norm:
        raise domain.UnboundedDomain(
            f"ridge_newton was built for |x| <= x_norm = {x_norm:.6g} (its constant c = 1/(lam + x_norm^2/2)), "
            f"but the box allows |x| up to {R:.6g}: build the program with x_norm >= {R:.6g}, or compile for a "
            "box inside it")
    Lam = spectrum_bound(lam, x_norm)
    c = 1 / Lam
    # P's eigenvalues: at most 2^t, and 1/(c lambda_min(A')) <= kappa: the box's Lam (2n + 1) / lam
    # (lambda_min(A') >= lam/(i + 1)), or the declared one (a promise the network checks: P beyond it is refused)
    K = 1 / (2 * domain.sqrt(lam))
    W = domain.sqrt(n, Y, lam) * Y * K    # |w_t| <= |w*| (w_t = (I - R_0^(2^t)) w*), ridge weights: <= K |y|
    values = {
        **parts.averaged_bounds(n, lam, box),
        "g": c * X * Y / 2,
        "R": 1,                           # R_0^(2^s): symmetric, eigenvalues in [0, 1)
        "IR": 2,                          # I + R_0^(2^s): eigenvalues in [1, 2)
        "P": domain.minimum(2**t, kappa),  # sum_{j < 2^s} R_0^j: eigenvalues <= min(2^s, 1/(1 - rho))
        "w1": W,
        "Aw": domain.minimum(Lam * W, R * Y / 2),   # A' w1 = (I - R_0^(2^t)) b': |b'| <= R Y / 2
        "PAw": Lam * W,                   # P A' w1: c P_t A' = I - R_0^(2^t) has eigenvalues in [0, 1]
        "w": W,
        "pred": R * W,                    # w^T x_in, Cauchy-Schwarz
    }
    return Domain(values, {})


ALGORITHM = register(Algorithm(
    name="ridge_newton",
    summary="ridge regression by prefix averages and Newton-Schulz in product form, a prediction at every "
            "prefix in depth independent of n",
    build=ridge_newton,
    parameters=(Parameter("lam", 0.1, "the ridge penalty (> 0)", units=(2, 0)),
                Parameter("x_norm", None, "the bound on |x| the program is built for (its constant c = 1/(lam + "
                          "x_norm^2/2)), default 2 sqrt(d)", units=(1, 0)),
                Parameter("kappa", None, "a declared bound on every prefix's conditioning, Lam (2k + 1) / "
                          "lambda_min(lam I + X^T X) with Lam = lam + x_norm^2/2 (default: the worst the box allows)"),
                Parameter("eps", EPS, "the iterate's relative error in exact arithmetic (sets the steps)")),
    theory=theory, closed_form=reference.ridge_newton, exact_weights=exact_weights,
    residual=RidgeAnswer("w", "P", 0, inverse_factor),
    paper_order="O(n) layers, O(d^2) width",
))
