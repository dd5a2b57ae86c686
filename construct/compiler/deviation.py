"""How far a product layer's floating-point weights are from the lemma's exact coefficients: signed, exactly.

A product unit of Richardson multiple m reads each operand row with weight
``k ln_scale / (S m P)`` (S the operand's bound; k = 1, or 2 where a
square's two operands are one entry), the zero row with minus the sum of
those, and writes each output with ``k C_m (mP)^2 S_a S_b``, ``C_m = w_m
sqrt(pi/2)`` (``blocks._products``). The stored weights are these rounded.
The certificate needs the signed differences, not their sizes: the units of
one product share their roundings (the same operand weight, the same output
weight), so the roundings cancel between units the way the units' linear
parts do (lemma ``gelu_product_bound``); bounded unit by unit, each would be
amplified by the output weight, which is large.

The coefficients are recovered from the weights and the mechanisms, and a
weight that is not within a few roundings of one of them is refused: then
the layer is not the lemma's, and the certificate does not apply.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from . import scales
from .blocks import ProductMechanism

ROUNDINGS = 4  # a weight may be this many units of roundoff from its coefficient (two roundings and the sum)


def product_deviations(W1: np.ndarray, W2: np.ndarray, mechanisms, ln_scale: float, zero_row: int,
                       layer: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W1 - W1*, W2 - W2*)`` in float64 (each entry the exact difference rounded once), for one stored product
    layer's weights ``W1`` (D, U) and ``W2`` (U, D); zero outside the units that write a product's outputs."""
    u = float(np.finfo(W1.dtype).eps) / 2
    dW1, dW2 = np.zeros(W1.shape), np.zeros(W2.shape)
    owner = {o: m for m in mechanisms if isinstance(m, ProductMechanism) for o in m.out}
    with mpmath.workdps(40):
        constants = {m: mpmath.mpf(a) / b * mpmath.sqrt(mpmath.pi / 2) for m, (a, b) in
                     scales.RICHARDSON_FRACTIONS.items()}
        for i in range(W2.shape[0]):
            outputs = [o for o in np.flatnonzero(W2[i]) if int(o) in owner]
            if not outputs:
                continue
            mech = owner[int(outputs[0])]
            multiple = mech.multiples[i]
            scale = Fraction(ln_scale) / (multiple * Fraction(mech.P))
            candidates = [k * scale / Fraction(S) for S in {mech.S_a, mech.S_b} for k in (1, 2)]
            total = Fraction(0)
            for r in np.flatnonzero(W1[:, i]):
                if r == zero_row:
                    continue
                value = Fraction(float(W1[r, i]))
                c = min(candidates, key=lambda c: abs(value - c))
                _require(abs(value - c) <= ROUNDINGS * u * c, layer, f"unit {i}, input row {r}")
                dW1[r, i] = float(value - c)
                total += c
            value = Fraction(float(W1[zero_row, i]))
            _require(abs(value + total) <= ROUNDINGS * u * total, layer, f"unit {i}, zero row")
            dW1[zero_row, i] = float(value + total)
            for o in outputs:
                m = owner[int(o)]
                unit = constants[multiple] * (multiple * m.P) ** 2 * mpmath.mpf(m.S_a) * mpmath.mpf(m.S_b)
                value = mpmath.mpf(float(W2[i, o]))
                k = int(mpmath.nint(value / unit))
                _require(k != 0 and abs(value - k * unit) <= ROUNDINGS * u * abs(value), layer,
                         f"unit {i}, output row {o}")
                dW2[i, o] = float(value - k * unit)
    return dW1, dW2


def _require(ok: bool, layer: int, where: str) -> None:
    if not ok:
        raise ValueError(f"stored layer {layer + 1}, {where}: the weight is not a lemma coefficient rounded, so the "
                         "product analysis does not apply")
