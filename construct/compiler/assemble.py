"""The assembly stage: the one step that turns logical layer plans into dense arrays (float64, then the dtype).

Attention: every head reads the position rows (``pos``, ``pos_sq``, ``one``)
into scores ``N [2 (i - offset) j - j^2] = -N (j - (i - offset))^2 +
const(i)``, so it selects column ``i - offset`` (Lemma: attention
selection); its value and output maps carry the plan's forms for that
offset. The averaging head (``UNIFORM``) has zero query and key weights: its
scores are 0 and its weights ``1/(i+1)`` (``instructions.avg``). MLP: a unit's input weights are the plan's times the layer's
``ln_scale`` (undoing layer norm), with the row ``zero`` weighted minus
their sum (so the mean drops out), its bias and output weights as planned.
The embedding places the token on ``y_in`` and ``x_in``; the position table
writes ``pos``, ``pos_sq``, ``one`` and the permanent pads; the read-out is
one-hot on the program's read-out register.
"""

from __future__ import annotations

import numpy as np

from ..mechanisms.plan import LN_NEG, LN_POS, ONE, POS_SQ, UNIFORM, ZERO, Context, LayerPlan
from ..raw.program import Program
from ..raw.prompt import POS, X_IN, Y_IN
from ..transformer.weights import Weights
from . import size
from .constants import LN_EPS
from .plans import offsets

MIN_HEADS = 2  # the paper's layer: a head that reads another column, and one that reads its own


def shape(plans: list[LayerPlan], order: list[int], ctx: Context, program: Program) -> size.Size:
    """The dense shapes the plans need: heads from the most offsets a layer reads, head size from the most rows a
    head writes, MLP width from the most units."""
    return size.Size(
        layers=len(plans), heads=max([MIN_HEADS] + [len(p.heads) + (0 not in p.heads) for p in plans]),
        width=ctx.layout.width,
        head_size=max([2] + [len(rows) for p in plans for rows in p.heads.values()]),
        mlp_width=max([1] + [len(p.units) for p in plans]), tokens=2 * program.n + 1, inputs=program.d + 1,
        dtype=ctx.dtype, depth=len(order),
    )


def assemble(plans: list[LayerPlan], order: list[int], ctx: Context, program: Program, shape: size.Size) -> Weights:
    """Dense weights (the module docstring) in the context's dtype; OverflowError naming the array if one does
    not fit in it."""
    layout, D, L, m = ctx.layout, shape.width, shape.layers, shape.heads
    row = lambda name: layout.span(name)[0]  # noqa: E731 (one-row registers)
    dh, U, T, d = shape.head_size, shape.mlp_width, shape.tokens, program.d

    embed = np.zeros((d + 1, D))
    embed[0, row(Y_IN)] = 1.0
    embed[np.arange(1, d + 1), np.arange(*layout.span(X_IN))] = 1.0
    positions = np.zeros((T, D))
    j = np.arange(T, dtype=np.float64)
    positions[:, row(POS)] = j
    positions[:, row(POS_SQ)] = j * j
    positions[:, row(ONE)] = 1.0
    positions[:, row(LN_POS)] = ctx.ln_pad
    positions[:, row(LN_NEG)] = -ctx.ln_pad
    readout = np.zeros(D)
    readout[row(program.readout)] = 1.0

    Wq, Wk, Wv = (np.zeros((L, m, D, dh)) for _ in range(3))
    Wo, bo = np.zeros((L, m * dh, D)), np.zeros((L, D))
    W1, b1, W2, b2 = np.zeros((L, D, U)), np.zeros((L, U)), np.zeros((L, U, D)), np.zeros((L, D))
    N = ctx.sharpness
    for l, plan in enumerate(plans):
        for h, offset in enumerate(offsets(plan, m)):
            if offset != UNIFORM:  # the averaging head's scores are 0: uniform weights (``instructions.avg``)
                # score(i, j) = N [2 (i - offset) j - j^2] = -N (j - (i - offset))^2 + const(i)
                Wq[l, h, row(POS), 0] = 2 * N
                Wq[l, h, row(ONE), 0] = -2 * N * offset
                Wq[l, h, row(ONE), 1] = -N
                Wk[l, h, row(POS), 0] = 1.0
                Wk[l, h, row(POS_SQ), 1] = 1.0
            writes = plan.heads.get(offset, {}) if h == m - 1 or offset != 0 else {}
            for c, (w_row, form) in enumerate(sorted(writes.items())):
                for r_row, coef in form.items():
                    Wv[l, h, r_row, c] += coef
                Wo[l, h * dh + c, w_row] = 1.0
        for w_row, b in plan.attn_bias.items():
            bo[l, w_row] += b
        for u, unit in enumerate(plan.units):
            for r_row, coef in unit.inputs.items():
                W1[l, r_row, u] += coef * plan.ln_scale
            W1[l, row(ZERO), u] -= sum(unit.inputs.values()) * plan.ln_scale
            b1[l, u] = unit.bias
            for o_row, coef in unit.outputs.items():
                W2[l, u, o_row] += coef
        for o_row, b in plan.mlp_bias.items():
            b2[l, o_row] += b
    arrays = {"embed": embed, "positions": positions, "readout": readout, "Wq": Wq, "Wk": Wk, "Wv": Wv, "Wo": Wo,
              "bo": bo, "W1": W1, "b1": b1, "W2": W2, "b2": b2}
    with np.errstate(over="ignore"):  # a weight beyond float32 becomes inf, refused here
        arrays = {name: a.astype(ctx.dtype) for name, a in arrays.items()}
    bad = [name for name, a in arrays.items() if not np.all(np.isfinite(a))]
    if bad:
        raise OverflowError(f"weights: {bad[0]} has non-finite entries")
    return Weights(**arrays, ln_gain=np.ones((L, D), ctx.dtype), ln_bias=np.zeros((L, D), ctx.dtype), ln_eps=LN_EPS,
                   order=np.array(order, dtype=np.int64))
