"""The GPT-2 target, ``compile(program, ..., architecture="gpt2")``: the compiled layers as standard GPT-2 blocks.

A GPT-2 block (``construct.transformer.gpt2`` states it) differs from the
paper's layer (``construct.transformer.weights``) in four ways, each made
harmless here:

1. **A layer norm before attention, LN_1.** Every state entering a layer
   carries the permanent pads ``+-N`` (rows ``ln_pad_pos``, ``ln_pad_neg``)
   that already make the layer norm before the MLP a known scaling (Lemma 6,
   ``scales.pad_size``). For a column ``h`` with pads ``+-M`` and the other
   rows ``v`` (``sum v^2 <= S``), the mean is ``mu = sum v / D`` (the pads
   cancel) and ``sigma^2 = (2 M^2 + sum v^2) / D - mu^2 + eps``, so ``sigma =
   M sqrt(2/D) sqrt(1 + rho)`` with ``0 <= rho <= (S + D eps) / (2 M^2)``
   (``scales.pad_error``), at most ``eps/2`` by the choice of M. Let
   ``s = M sqrt(2/D)`` (a power of two) and, for each query, key and value
   column ``W`` of the paper's layer, ``W~ = s W`` with the row ``zero``
   (always 0) given ``-sum_r s W_r``, so that ``W~`` sums to zero over the
   rows. Then, since ``h[zero] = 0``,

       LN_1(h) W~ = (h W~ - mu sum_r W~_r) / sigma = kappa h W,   kappa = s / sigma in [1/sqrt(1 + rho), 1],

   whatever the mean: the queries, keys and values are the paper's times
   ``kappa`` of their token, ``|kappa - 1| <= rho/2``. A head that selects
   column c outputs ``kappa_c (h_c W_v)``: the attention's writes are
   off by at most ``rho/2`` relative to the form's scale. The scores are
   ``kappa_i kappa_j S_ij``; GPT-2 divides them by ``sqrt(dh)``, which
   ``W~_q`` carries as a factor ``sqrt(dh)``. The certificate measures the
   softmax weights themselves, so the scores need no further bound.
   Rounding: the pass computes ``mu`` to within ``gamma_D (2M + sqrt(D S)) / D``
   and ``h_r - mu`` to ``u |h_r - mu|``; with the exact ``|mu| <= sqrt(S/D)``
   (Cauchy-Schwarz; pads of opposite signs cancel in it), a coefficient c
   of a form costs at most ``4 u |c| mu_max`` more (``attention_norm_error``).
2. **Division pads.** A div layer leaves its pads ``+-N_d den`` in the
   residual for the next layer to clear, and that layer's LN_1 sees them
   before it can. So the div layer's MLP bias writes pads ``+-N_1`` into
   rows ``ln1_pad_pos``, ``ln1_pad_neg`` (instead of restoring ``+-N``,
   which its attention bias removed), with ``N_1`` chosen by
   ``scales.pad_size`` for ``S_1 = S + 2 max (N_d |den|)^2``: that LN_1
   divides by ``N_1 sqrt(2/D)`` to ``rho_1 <= eps/2``. The next layer's
   attention bias removes ``+-N_1`` and puts back ``+-N``, exactly
   (``N_1 - N_1 = 0``, ``0 + N = N``), before its own LN_2, which is then
   the paper's. ``N_1`` is large (about ``N_d |den|_max / sqrt(eps)``), so
   that layer's mean rounds to more than the others', which the same term
   ``mu_max`` counts.
3. **The final layer norm LN_f.** The last state carries ``+-N`` (or ``+-N_1``
   after a div), so ``LN_f(h) = kappa_f h / s_f``; the read-out takes
   ``s_f`` on the row ``pred`` and ``-s_f`` on ``zero``: ``y = kappa_f pred``,
   off by ``|kappa_f - 1| |pred|`` and the rounding of the two terms
   (``certificate``).
4. **Heads split the width.** ``n_head head_dim = n_embd``: the width is
   padded with zero rows ``width_pad`` to ``heads * head_dim``, with
   ``head_dim`` at least the paper layer's head size (its extra columns
   are zero), the pads' sizes computed for the padded width. GPT-2 ties
   nothing, so the stored layers are untied along ``order``; the position
   table is GPT-2's ``wpe`` (``n_positions = 2n + 1``), the embedding the
   read-in; LN_1, LN_2 and LN_f have gain 1 and bias 0, the query and key
   biases are 0, ``c_proj``'s bias is the paper's ``bo``.
"""

from __future__ import annotations

import math

import numpy as np

from ..raw.instructions import Mul
from ..transformer.gpt2 import GPT2Weights
from ..transformer.weights import Weights
from . import scales

ARCHITECTURES = ("paper", "gpt2")


def division_pad_square(ctx, dens) -> float:
    """``2 max (N_d |den|)^2`` over the divisors ``dens``: the most the division pads add to a column's squares."""
    worst = 0.0
    for den in dens:
        N_d, _ = scales.pad_size(ctx.sum_sq, ctx.layout.width, ctx.ln_eps, ctx.dtype, ctx.floors[den])
        worst = max(worst, 2 * (N_d * ctx.bounds[den]) ** 2)
    return worst


def attention_norm_error(ctx, after_div: bool) -> tuple[float, float]:
    """LN_1's a-priori cost (point 1 above): ``(rho/2 + 4u, 4u mu_max)``, the first relative to a form's scale,
    the second per unit of coefficient."""
    u = ctx.eps / 2
    D = ctx.layout.width
    M, S = (ctx.ln1_pad, ctx.sum_sq + ctx.ln1_extra) if after_div else (ctx.ln_pad, ctx.sum_sq)
    rho = scales.pad_error(M, S, D, ctx.ln_eps)
    gamma = D * u / (1 - D * u)
    mu_max = math.sqrt(ctx.sum_sq / D) + gamma * (2 * M + math.sqrt(D * S)) / D  # the division pads cancel too
    return rho / 2 + 4 * u, 4 * u * mu_max


def mlp_error(ins, ctx, ln1: tuple[float, float], error: float, bound: float) -> float:
    """A mul's or div's a-priori ``error`` with LN_1's cost on what its MLP reads: the operands (copied to scratch
    or read in place) and the zeroed output, each off by ``ln1``; a product of two such operands by the sum."""
    relative, absolute = ln1
    if isinstance(ins, Mul):
        q = ins.shape[1]
        S_a, S_b = ctx.bounds[ins.a], ctx.bounds[ins.b]
        extra = relative * (bound + 2 * q * S_a * S_b) + absolute * (1 + q * (S_a + S_b))
    else:  # num / |den|: both read after attention, the divisor through its pads
        floor = ctx.floors[ins.den]
        extra = 2 * relative * bound + absolute * (1 + (1 + bound) / floor)
    return error + extra


def _compensated(W: np.ndarray, zero: int) -> np.ndarray:
    """``W`` (D, k) with the row ``zero`` set to minus the exact sum of each column's other rows, rounded once
    (what ``W`` had there multiplied a row that is always 0: ``mean_pad``'s form includes it)."""
    out = W.copy()
    out[zero] = 0.0
    out[zero] = [-math.fsum(column) for column in out.T.tolist()]
    return out


def to_gpt2(w: Weights, attention_scales, final_scale: float, zero: int, readout: int) -> GPT2Weights:
    """The paper-form weights ``w`` (compiled for the GPT-2 target) as GPT-2 blocks, untied along ``w.order``.

    ``attention_scales[s]`` is stored layer s's LN_1 scale ``M sqrt(2/D)``,
    ``final_scale`` LN_f's; ``zero`` and ``readout`` the rows of ``zero`` and
    ``pred``; the heads split the width, ``head_dim = D / heads``. Only the query, key and value
    projections change (point 1 of the module docstring); everything else
    is copied.
    """
    L, (S, m, D, dh) = w.depth, w.Wq.shape
    head_dim = D // m
    if D != m * head_dim or head_dim < dh:
        raise ValueError(f"width {D} is not {m} heads of {head_dim} (>= head size {dh}): compile for gpt2")
    dtype = w.dtype
    c_attn = np.zeros((S, D, 3 * D))
    c_proj = np.zeros((S, D, D))
    root = math.sqrt(head_dim)
    for s in range(S):
        scale = attention_scales[s]
        for k, (W, factor) in enumerate(((w.Wq[s], scale * root), (w.Wk[s], scale), (w.Wv[s], scale))):
            block = np.zeros((D, D))
            for h in range(m):
                block[:, h * head_dim:h * head_dim + dh] = W[h].astype(np.float64) * factor
            c_attn[s, :, k * D:(k + 1) * D] = _compensated(block, zero)
        for h in range(m):
            c_proj[s, h * head_dim:h * head_dim + dh] = w.Wo[s, h * dh:(h + 1) * dh]
    read_out = np.zeros(D)
    read_out[readout], read_out[zero] = final_scale, -final_scale
    order = w.order
    cast = lambda a: np.ascontiguousarray(a).astype(dtype)  # noqa: E731
    ones, zeros = np.ones((L, D), dtype), np.zeros((L, D), dtype)
    return GPT2Weights(
        read_in=cast(w.embed), wpe=cast(w.positions), ln_1_weight=ones, ln_1_bias=zeros,
        c_attn_weight=cast(c_attn[order]), c_attn_bias=np.zeros((L, 3 * D), dtype),
        c_proj_weight=cast(c_proj[order]), c_proj_bias=cast(w.bo[order]),
        ln_2_weight=cast(w.ln_gain[order]), ln_2_bias=cast(w.ln_bias[order]),
        c_fc_weight=cast(w.W1[order]), c_fc_bias=cast(w.b1[order]), mlp_proj_weight=cast(w.W2[order]),
        mlp_proj_bias=cast(w.b2[order]), ln_f_weight=np.ones(D, dtype), ln_f_bias=np.zeros(D, dtype),
        read_out=cast(read_out), n_head=m, ln_eps=w.ln_eps,
    )
