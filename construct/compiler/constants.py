"""The constants stage: every scale constant of the network, chosen for the dtype and the domain, in one ``Context``.

Three constants are chosen by evaluating ``log``, ``erf`` and powers
(``CHOSEN``: attention sharpness, product scale, bypass offset; their last
bit may differ between platforms, so ``load`` passes a file's own). The
layer-norm pads follow from the domain: ``N`` from the bound on a column's
sum of squares (``scales.pad_size``), and the target may add its own
(GPT-2's ``N_1``). Everything else in the weights is exact arithmetic on the
program and the bounds.
"""

from __future__ import annotations

import numpy as np

from ..mechanisms import scales
from ..mechanisms.plan import MEAN_PAD, ONE, POS_SQ, SCRATCH, WIDTH_PAD, ZERO, Context
from ..raw.program import Program
from ..raw.registers import Layout
from .bounds import Bounds
from .layout import overwritten

LN_EPS = 1e-5
CHOSEN = ("attention_sharpness", "product_scale", "bypass_offset")  # constants chosen by evaluating log, erf, pow


def chosen_constants(dtype) -> dict[str, float]:
    """The constants of ``CHOSEN`` as this machine's compiler picks them for ``dtype``."""
    return {"attention_sharpness": scales.attention_sharpness(dtype), "product_scale": scales.product_scale(dtype),
            "bypass_offset": scales.bypass_offset(dtype)}


def checked_constants(given: dict | None, dtype) -> dict[str, float]:
    """``given`` (a file's own constants) checked against the lemmas' hypotheses, or this machine's choice."""
    chosen = chosen_constants(dtype)
    if given is None:
        return chosen
    if not isinstance(given, dict) or set(given) != set(CHOSEN):
        raise ValueError(f"scale_constants must give exactly {list(CHOSEN)}, got {given!r}")
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, float) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"scale constant {name} must be a positive finite float, got {value!r}")
    if given["product_scale"] < scales.PRODUCT_MIN_SCALE:
        raise ValueError(f"product_scale {given['product_scale']} is below the lemma's {scales.PRODUCT_MIN_SCALE}")
    if given["bypass_offset"] < 2:
        raise ValueError(f"bypass_offset {given['bypass_offset']} is below 2 (the bypass lemma needs B - 1 >= 1)")
    return dict(given)


def context(program: Program, bounds: Bounds, dtype, steps, layout: Layout, chosen: dict, target) -> Context:
    """Bounds on every row of ``layout`` (the program's, and the compiler's own), the pads sized for them, and the
    chosen constants."""
    eps = scales.machine_eps(dtype)
    T = 2 * program.n + 1
    values = dict(bounds.values)
    values.update({ONE: 1.0, POS_SQ: float((T - 1) ** 2), ZERO: 0.0})
    if WIDTH_PAD in layout:
        values[WIDTH_PAD] = 0.0
    if SCRATCH in layout:
        values[SCRATCH] = max(values[name] for step in steps for name in overwritten(program, step))
    values[MEAN_PAD] = sum(layout[name].size * values[name] for name in values if name in layout)
    sum_sq = sum(layout[name].size * values[name] ** 2 for name in values if name in layout)
    ln_pad, ln_scale = scales.pad_size(sum_sq, layout.width, LN_EPS, dtype)
    ctx = Context(
        layout=layout, bounds=values, floors=dict(bounds.floors), eps=eps, dtype=np.dtype(dtype),
        sharpness=chosen["attention_sharpness"], product_scale=chosen["product_scale"],
        bypass_offset=chosen["bypass_offset"], ln_pad=ln_pad, ln_scale=ln_scale,
        ln_eps=LN_EPS, sum_sq=sum_sq, tokens=T, target=target,
    )
    return target.context(ctx, program)
