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

PRODUCT_TRUNCATION = 0.2  # lemma gelu_product_bound: |R_P - ab| <= 0.2 / P^4 for |a|, |b| <= 1, P >= 10
PRODUCT_ROUNDING = 15 * KAPPA  # rounding model: at most 15 KAPPA eps P


def product_truncation(P: float) -> float:
    """Lemma ``gelu_product_bound``: ``|R_P(a, b) - a b| <= 0.2 / P^4`` for ``|a|, |b| <= 1``, ``P >= 10``.

    With ``f_P(a, b) = sqrt(pi/2) P^2 [gelu((a+b)/P) - gelu(a/P) - gelu(b/P)]``
    and ``gelu(u) = u/2 + E(u)``, E even with Taylor series
    ``E(u) = (2 pi)^{-1/2} sum_k (-1)^k u^{2k+2} / (2^k k! (2k+1))``, the linear
    parts cancel exactly and

        f_P(a, b) = a b - (4a^3 b + 6a^2 b^2 + 4a b^3) / (12 P^2) + O(P^-4).

    Richardson extrapolation over two scales, ``R_P = (4 f_{2P} - f_P) / 3``,
    removes the ``P^-2`` term; the first surviving term is
    ``-[(a+b)^6 - a^6 - b^6] / (320 P^4)``, at most ``62/320 < 0.194`` over
    the unit square, and the rest adds less than 0.002 for P >= 10.
    """
    if P < 10:
        raise ValueError(f"the product bound holds for P >= 10, got P = {P}")
    return PRODUCT_TRUNCATION / P**4


def product_error(P: float, dtype) -> float:
    """Bound on ``|R_P(a, b) - a b|`` in floating point, for ``|a|, |b| <= 1`` (a, b already scaled).

    Truncation (the lemma) plus rounding: the six units have ``|u| <= 2/P``
    and output weights up to ``(16/3) sqrt(pi/2) P^2``, giving at most
    ``15 KAPPA eps P``.
    """
    return product_truncation(P) + PRODUCT_ROUNDING * machine_eps(dtype) * P


def product_scale(dtype) -> float:
    """P minimising ``product_error``: ``P^5 = 4 * 0.2 / (15 KAPPA eps)``."""
    P = (4 * PRODUCT_TRUNCATION / (PRODUCT_ROUNDING * machine_eps(dtype))) ** 0.2
    return max(P, 10.0)


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


def pad_size(sum_sq: float, width: int, ln_eps: float, dtype, floor: float = 1.0) -> float:
    """N for pads ``[N c, -N c]`` that make layer norm divide by ``N |c| sqrt(2/D)`` to ``rho <= eps/2``.

    Lemmas ``layer_norm_bypass`` and ``layer_norm_division``: with the rest
    of the column ``v`` (any mean), the variance over the D rows is
    ``(2 N^2 c^2 + sum v^2)/D - mean^2``, so for weights summing to zero over
    the rows ``N |c| sqrt(2/D) w . LN(h) = (w . v) / (|c| sqrt(1 + rho))`` with
    ``0 <= rho <= (sum v^2 + D ln_eps) / (2 N^2 c^2)``: a value is off by at
    most ``rho/2`` relative, a product of two by ``rho``. ``rho <= eps/2``
    needs ``N >= sqrt((sum v^2 + D ln_eps)/eps) / |c|min``; ``floor`` is the
    least ``|c|`` (1 for the permanent pads).
    """
    return math.sqrt((sum_sq + width * ln_eps) / machine_eps(dtype)) / floor


def pad_error(N: float, sum_sq: float, width: int, ln_eps: float, floor: float = 1.0) -> float:
    """The lemmas' bound on rho, the relative excess of the layer-norm variance over ``2 N^2 c^2 / D``."""
    return (sum_sq + width * ln_eps) / (2 * N**2 * floor**2)
