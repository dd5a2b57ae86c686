"""Scale constants of the approximate mechanisms, and the error bound each one gives.

Every approximate step of a compiled layer has one constant. For each we
write the error bound as a function of the constant (truncation, from the
lemma, plus rounding, from the floating-point model below) and choose the
constant that minimises it for the working dtype.

Rounding model. ``eps`` is the dtype's machine epsilon. A GeLU unit's output
is taken to be within ``KAPPA * eps * |u|`` of gelu at its exact
pre-activation ``u`` when ``|u|`` is small (this covers the layer norm, the
``W1`` dot product and the erf evaluation), and within ``KAPPA * eps * (B + 1)``
near the bypass offset ``B``. ``KAPPA = 4`` is an upper bound on what we
measure (about 1.3 for the product in isolation).

Each truncation term is a lemma of ``proofs/lemmas.py``, proved there
symbolically (``python -m proofs``); a test checks that the functions below
compute exactly the bounds the lemmas state.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import ndtr

KAPPA = 4.0
SQRT_HALF_PI = math.sqrt(math.pi / 2)


def machine_eps(dtype) -> float:
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return float(np.finfo(dtype).eps)


# -- a. attention selection ----------------------------------------------------


def attention_leak(sharpness: float) -> float:
    """Lemma ``attention_selection``: the softmax mass off the selected token.

    Keys ``[j, j^2]`` and the query ``N [2 tau, -1]`` give the score
    ``-N (j - tau)^2`` up to a constant in j. The selected token ``j*`` is the
    visible one nearest ``tau``; any other visible ``j`` at distance
    ``k >= 1`` from it scores at least ``N k`` less (integer positions; when
    ``tau < 0`` the clamp to column 0 only widens the gaps), and at most two
    tokens sit at each distance, so the off-target mass is at most
    ``sum_k 2 exp(-N k) = 2 e^{-N} / (1 - e^{-N})``, whatever the length.
    A head's output then differs from the selected value by at most
    ``2 * leak * max|v|`` (the convex mixture moves by leak times a
    difference of two values).
    """
    q = math.exp(-sharpness)
    return 2 * q / (1 - q)


def attention_sharpness(dtype) -> float:
    """N_att: the leak is a thousandth of eps, so selection is exact to rounding.

    The bound only falls as N grows; what stops us is nothing in float64 or
    float32 up to N * T^2 ~ 1e30, so we take the smallest N that makes the
    leak negligible (keeps the scores small for the reader's traces).
    """
    return math.log(2 / (1e-3 * machine_eps(dtype))) + 1


# -- c. GeLU product --------------------------------------------------------------

RICHARDSON = ((1, 1 / 45), (2, -20 / 45), (4, 64 / 45))  # (scale multiple m, weight): R_P = sum w f_{mP}
PRODUCT_TRUNCATION = 0.0063  # lemma gelu_product_bound: |R_P - ab| <= 0.0063 / P^6 for |a|, |b| <= 1, P >= 4
PRODUCT_MIN_SCALE = 4.0
PRODUCT_ROUNDING = 34 * KAPPA  # rounding model: at most 34 KAPPA eps P


def product_truncation(P: float) -> float:
    """Lemma ``gelu_product_bound``: ``|R_P(a, b) - a b| <= 0.0063 / P^6`` for ``|a|, |b| <= 1``, ``P >= 4``.

    With ``f_P(a, b) = sqrt(pi/2) P^2 [gelu((a+b)/P) - gelu(a/P) - gelu(b/P)]``
    and ``gelu(u) = u/2 + E(u)``, E even with Taylor series
    ``E(u) = (2 pi)^{-1/2} sum_k (-1)^k u^{2k+2} / (2^k k! (2k+1))``, the linear
    parts cancel exactly and ``f_P = sum_k e_k p_k / P^{2k}`` with
    ``p_k = (a+b)^{2k+2} - a^{2k+2} - b^{2k+2}``: ``ab`` plus terms in
    ``P^-2, P^-4, ...``. Richardson extrapolation over three scales,
    ``R_P = (f_P - 20 f_{2P} + 64 f_{4P}) / 45``, removes the ``P^-2`` and
    ``P^-4`` terms; the first surviving term, ``-p_3 / (64 * 672 P^6)``, is at
    most ``127/21504 < 0.00591`` over the unit square, and the rest adds less
    than ``0.00022`` for ``P >= 4``.

    Why three scales: a GeLU product loses a factor of about P to rounding
    (its units' linear parts, of size ``|a|/P``, cancel to leave ``ab/P^2``),
    so the error is ``truncation(P) + const * eps * P``. Two scales
    (truncation ``0.2/P^4``) put the optimum at P = 570 in float64; three put
    it near 50, about five times less rounding for 1.5 times the units.
    """
    if P < PRODUCT_MIN_SCALE:
        raise ValueError(f"the product bound holds for P >= {PRODUCT_MIN_SCALE:g}, got P = {P}")
    return PRODUCT_TRUNCATION / P**6


def product_error(P: float, dtype) -> float:
    """Bound on ``|R_P(a, b) - a b|`` in floating point, for ``|a|, |b| <= 1`` (a, b already scaled).

    Truncation (the lemma) plus rounding: at scale ``mP`` the three units
    have pre-activations ``|u| <= 2/(mP), 1/(mP), 1/(mP)`` and output weight
    ``|w_m| sqrt(pi/2) (mP)^2``; a unit rounding to ``KAPPA eps |u|`` gives
    ``4 sqrt(pi/2) KAPPA eps P sum_m |w_m| m = 33.1 KAPPA eps P``, so at most
    ``34 KAPPA eps P``.
    """
    return product_truncation(P) + PRODUCT_ROUNDING * machine_eps(dtype) * P


def product_scale(dtype) -> float:
    """P near the minimum of ``product_error`` (``P^7 = 6 * 0.0063 / (34 KAPPA eps)``), a power of two, at least 4.

    A power of two makes every input weight ``1 / (S m P)`` of a product unit
    exact (with S a power of two too, ``power_of_two``); the error changes
    little near the optimum (float64: 64 instead of 53.5, 18% more).
    """
    P = (6 * PRODUCT_TRUNCATION / (PRODUCT_ROUNDING * machine_eps(dtype))) ** (1 / 7)
    return max(power_of_two(P, nearest=True), PRODUCT_MIN_SCALE)


def power_of_two(x: float, nearest: bool = False) -> float:
    """The least power of two >= x (or, with ``nearest``, the nearest in log scale), for finite x > 0."""
    if not (math.isfinite(x) and x > 0):
        raise OverflowError(f"a scale of {x} has no power of two: the bounds overflow float64")
    mantissa, exponent = math.frexp(x)  # x = mantissa 2^exponent, 0.5 <= mantissa < 1
    if mantissa == 0.5:
        return x
    if nearest and mantissa < math.sqrt(0.5):
        return math.ldexp(1.0, exponent - 1)
    return math.ldexp(1.0, exponent)


def _richardson_constants() -> tuple[float, ...]:
    """For each scale, ``C_m = w_m sqrt(pi/2)`` rounded once to float64.

    A product unit's output weight is ``+-C_m (mP)^2 S_a S_b``; the
    certificate (``deviation``) measures how far each stored weight is from
    the exact coefficient, this rounding included.
    """
    import mpmath

    with mpmath.workdps(40):
        return tuple(float(mpmath.mpf(RICHARDSON_FRACTIONS[m][0]) / RICHARDSON_FRACTIONS[m][1]
                           * mpmath.sqrt(mpmath.pi / 2)) for m, _ in RICHARDSON)


RICHARDSON_FRACTIONS = {1: (1, 45), 2: (-20, 45), 4: (64, 45)}
RICHARDSON_CONSTANTS = _richardson_constants()  # aligned with RICHARDSON


# -- b. GeLU bypass -----------------------------------------------------------------


def bypass_truncation(B: float, U: float = 1.0) -> float:
    """Lemma ``gelu_bypass``: ``|gelu(B + u) - B - u| <= (B - U) Phi(U - B)`` for ``|u| <= U``, ``B - U >= 1``.

    ``gelu(v) - v = -v Phi(-v)``, and ``v Phi(-v)`` decreases for ``v >= 1``
    (Mills' ratio), so over ``v = B + u >= B - U`` it is largest at ``B - U``.
    """
    if B - U < 1:
        raise ValueError(f"the bypass bound needs B - U >= 1, got B = {B}, U = {U}")
    return (B - U) * float(ndtr(U - B))


def bypass_error(B: float, dtype) -> float:
    """Bound on ``|gelu(B + u) - B - u|`` for ``|u| <= 1`` in floating point.

    The lemma, plus rounding: the unit and the subtraction of B round to at
    most ``(KAPPA + 1) eps (B + 1)``.
    """
    return bypass_truncation(B) + (KAPPA + 1) * machine_eps(dtype) * (B + 1)


def bypass_offset(dtype) -> float:
    """B minimising ``bypass_error`` (about 9 in float64, 6 in float32)."""
    res = minimize_scalar(lambda B: math.log(bypass_error(B, dtype)), bounds=(2.0, 40.0), method="bounded")
    return float(res.x)


# -- d, e. layer-norm pads -------------------------------------------------------------


def pad_size(sum_sq: float, width: int, ln_eps: float, dtype, floor: float = 1.0) -> tuple[float, float]:
    """``(N, N sqrt(2/D))``: pads ``[N c, -N c]`` that make layer norm divide by ``N |c| sqrt(2/D)`` to ``rho <= eps/2``,
    and that scale, which MLP weights multiply back: chosen a power of two, so those weights stay exact.

    Lemmas ``layer_norm_bypass`` and ``layer_norm_division``: with the rest
    of the column ``v`` (any mean), the variance over the D rows is
    ``(2 N^2 c^2 + sum v^2)/D - mean^2``, so for weights summing to zero over
    the rows ``N |c| sqrt(2/D) w . LN(h) = (w . v) / (|c| sqrt(1 + rho))`` with
    ``0 <= rho <= (sum v^2 + D ln_eps) / (2 N^2 c^2)``: a value is off by at
    most ``rho/2`` relative, a product of two by ``rho``. ``rho <= eps/2``
    needs ``N >= sqrt((sum v^2 + D ln_eps)/eps) / |c|min``; ``floor`` is the
    least ``|c|`` (1 for the permanent pads). Rounding the scale up to a
    power of two only makes N larger (by less than 2).
    """
    least = math.sqrt((sum_sq + width * ln_eps) / machine_eps(dtype)) / floor * (1 + 2**-40)
    root = math.sqrt(2 / width)
    scale = power_of_two(least * root)
    return scale / root, scale


def pad_error(N: float, sum_sq: float, width: int, ln_eps: float, floor: float = 1.0) -> float:
    """The lemmas' bound on rho, the relative excess of the layer-norm variance over ``2 N^2 c^2 / D``."""
    return (sum_sq + width * ln_eps) / (2 * N**2 * floor**2)
