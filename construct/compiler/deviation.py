"""How far a product layer's floating-point weights are from the lemma's exact coefficients: signed, exactly.

Lemma ``gelu_product_bound``'s units, for each product ``A_ij B_jk`` of a
mechanism (``blocks.ProductMechanism``) and each Richardson multiple m
(``s = m P``): three units reading ``a / (S_a s) + b / (S_b s)``, ``a /
(S_a s)`` and ``b / (S_b s)`` (layer norm's scale ``ln_scale`` folded into
the input weights, the zero row weighted minus their sum so that the mean
drops out), written to the output with ``+C_m s^2 S_a S_b``, ``-C_m s^2 S_a
S_b``, ``-C_m s^2 S_a S_b``, ``C_m = w_m sqrt(pi/2)`` (``blocks._products``).
The compiler shares a unit between products and scales whose inputs are the
same, so a stored unit's output weight is a sum of such terms.

The stored weights are these coefficients rounded. The certificate needs the
signed differences, not their sizes: the units of one product share their
roundings, so the roundings cancel between units the way the units' linear
parts do, where bounded unit by unit each would be amplified by the output
weight, which is large. Here the exact coefficients are built from the
mechanisms (exact rationals for the input weights, 40 digits for ``C_m``),
each intended unit is found among the stored ones by its input weights
(within a few roundings), and ``W - W*`` is returned for every unit. A unit
the lemma needs and the layer lacks is refused: the certificate then does
not apply.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import mpmath
import numpy as np

from . import scales
from .blocks import ProductMechanism

ROUNDINGS = 4  # an input weight may be this many units of roundoff from its coefficient (two roundings, one sum)


def product_deviations(W1: np.ndarray, W2: np.ndarray, mechanisms, ln_scale: float, zero_row: int,
                       layer: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W1 - W1*, W2 - W2*)`` in float64 (each entry the exact difference rounded once) for one stored product
    layer's ``W1`` (D, U) and ``W2`` (U, D), ``W*`` the lemma's exact coefficients."""
    u = float(np.finfo(W1.dtype).eps) / 2
    with mpmath.workdps(40):
        intended = _intended_units([m for m in mechanisms if isinstance(m, ProductMechanism)], ln_scale)
        stored = defaultdict(list)  # the stored units by the rows they read (the zero row aside)
        for i in range(W1.shape[1]):
            rows = tuple(int(r) for r in np.flatnonzero(W1[:, i]) if r != zero_row)
            stored[rows].append(i)
        exact_W1 = {}  # stored unit -> its intended input weights
        exact_W2 = defaultdict(lambda: mpmath.mpf(0))
        for inputs, outputs in intended.items():
            rows = tuple(r for r, _ in inputs)
            match = [i for i in stored.get(rows, []) if all(abs(Fraction(float(W1[r, i])) - c) <= ROUNDINGS * u * c
                                                             for r, c in inputs)]
            if not match:
                raise ValueError(f"stored layer {layer + 1}: no unit reads rows {list(rows)} with the lemma's "
                                 "weights, so the product analysis does not apply")
            i = match[0]
            if exact_W1.setdefault(i, inputs) != inputs:
                raise ValueError(f"stored layer {layer + 1}, unit {i}: two of the lemma's units match it")
            for o, weight in outputs.items():
                exact_W2[i, o] += weight
        dW1, dW2 = W1.astype(np.float64), W2.astype(np.float64)  # units the lemma does not have: W* = 0
        for i, inputs in exact_W1.items():
            for r, c in inputs:
                dW1[r, i] = float(Fraction(float(W1[r, i])) - c)
            dW1[zero_row, i] = float(Fraction(float(W1[zero_row, i])) + sum(c for _, c in inputs))
        for (i, o), weight in exact_W2.items():
            dW2[i, o] = float(mpmath.mpf(float(W2[i, o])) - weight)
    return dW1, dW2


def _intended_units(mechanisms: list[ProductMechanism], ln_scale: float) -> dict:
    """The lemma's units: their input weights ``((row, exact coefficient), ...)`` -> ``{output row: weight}``."""
    constants = {m: mpmath.mpf(a) / b * mpmath.sqrt(mpmath.pi / 2) for m, (a, b) in
                 scales.RICHARDSON_FRACTIONS.items()}
    units = defaultdict(lambda: defaultdict(lambda: mpmath.mpf(0)))
    for mech in mechanisms:
        for multiple, _ in scales.RICHARDSON:
            s = Fraction(multiple) * Fraction(mech.P)
            wa, wb = Fraction(ln_scale) / (Fraction(mech.S_a) * s), Fraction(ln_scale) / (Fraction(mech.S_b) * s)
            weight = constants[multiple] * mpmath.mpf(multiple * mech.P) ** 2 * mpmath.mpf(mech.S_a) \
                * mpmath.mpf(mech.S_b)
            for o, pairs in zip(mech.out, mech.pairs):
                for ra, rb in pairs:
                    both = defaultdict(Fraction)
                    both[ra] += wa
                    both[rb] += wb
                    for inputs, sign in ((both, 1), ({ra: wa}, -1), ({rb: wb}, -1)):
                        units[tuple(sorted(inputs.items()))][o] += sign * weight
    return units
