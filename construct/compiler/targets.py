"""The architectures a network is compiled for: the paper's layer (``Paper``) and standard GPT-2 blocks (``GPT2``).

A target is the one place that knows its architecture: the rows it adds to
the layout, how a division layer hands the pads on, what its layer norms
cost the a-priori errors, the conversion of the assembled paper-form
weights into its own (a stage after assembly), and, for the certificate,
its forward pass and the local errors of what differs from the paper's
layer. The planning, assembly and certificate code call these methods and
never ask which architecture they build.

``compile(program, ..., architecture="gpt2")`` builds GPT-2 blocks. A GPT-2 block (``construct.transformer.gpt2`` states it) differs from the
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

import dataclasses
import math

import numpy as np

from ..mechanisms import scales
from ..mechanisms.plan import LN1_NEG, LN1_POS, LN_NEG, LN_POS, WIDTH_PAD, ZERO, DIV_POS, prefix_mean
from ..raw.registers import Register
from ..transformer import forward, rounding
from ..transformer import gpt2 as gpt2_pass
from ..transformer.gpt2 import GPT2Weights
from ..transformer.weights import Weights


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
    or read in place) and the zeroed output, each off by ``ln1`` (relative, absolute), as the instruction's
    ``input_sensitivity`` carries them to its output."""
    relative, absolute = ln1
    per_relative, per_absolute = ins.input_sensitivity(ctx, bound)
    return error + (relative * per_relative + absolute * per_absolute)


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


# -- the targets ----------------------------------------------------------------------------------------------------


class Paper:
    """The paper's layer (``construct.transformer.weights``): what the compiler assembles, run as it is."""

    name = "paper"
    jax = True  # the JAX pass runs this architecture

    def registers(self, divides: bool) -> list[Register]:
        return []

    def context(self, ctx, program):
        return ctx

    def widen(self, layout, shape):
        """A layout the first plans' shape asks for, or None: the paper's layer takes any width."""
        return None

    def begin_layer(self, plan, ctx, dirty: frozenset) -> tuple[float, float]:
        """What the layer norm before attention costs (relative, absolute): the paper's layer has none."""
        return 0.0, 0.0

    def restore_pads(self, plan, ctx) -> None:
        """After a division, the MLP's bias puts the permanent pads back (its attention bias lifted them)."""
        plan.mlp_bias[ctx.rows(LN_POS)[0]] += ctx.ln_pad
        plan.mlp_bias[ctx.rows(LN_NEG)[0]] -= ctx.ln_pad

    def attention_scale(self, plan):
        return None

    def check_size(self, shape, check) -> None:
        """Size what this architecture stores beyond ``shape`` with ``check`` (the paper's layer: nothing)."""
        return None

    def finish(self, weights: Weights, plans, order, ctx, program, shape) -> tuple[GPT2Weights | None, dict]:
        """The network's weights in this architecture (None: the paper-form weights run) and constants to record."""
        return None, {}

    def hidden_states(self, net, tokens: np.ndarray) -> np.ndarray:
        return forward.hidden_states(net.weights, tokens)

    def size_info(self, net) -> dict:
        """What ``CompiledNetwork.size`` reports otherwise than for the paper-form weights."""
        return {}

    def certified_pass(self, net) -> "PaperPass":
        return PaperPass(net)


class GPT2(Paper):
    """Standard GPT-2 blocks (points 1-4 of the module docstring), derived from the paper-form layers."""

    name = "gpt2"
    jax = False

    def registers(self, divides: bool) -> list[Register]:
        return [Register(LN1_POS, (1,)), Register(LN1_NEG, (1,))] if divides else []

    def context(self, ctx, program):
        """The pads +-N_1 a layer after a division sees before its attention (point 2)."""
        if LN1_POS not in ctx.layout:
            return ctx
        extra = division_pad_square(ctx, {ins.divisor for ins in program.instructions if ins.divisor})
        ln1_pad, ln1_scale = scales.pad_size(ctx.sum_sq + extra, ctx.layout.width, ctx.ln_eps, ctx.dtype)
        return dataclasses.replace(ctx, ln1_pad=ln1_pad, ln1_scale=ln1_scale, ln1_extra=extra)

    def widen(self, layout, shape):
        """Zero rows ``width_pad`` so that the heads split the width, ``head_dim`` at least the head size (point 4)."""
        head_dim = max(shape.head_size, -(-layout.width // shape.heads))
        if shape.heads * head_dim > layout.width:
            return layout.extended([Register(WIDTH_PAD, (shape.heads * head_dim - layout.width,))])
        return None

    def begin_layer(self, plan, ctx, dirty: frozenset) -> tuple[float, float]:
        after_div = DIV_POS in ctx.layout and ctx.rows(DIV_POS)[0] in dirty
        plan.ln1_scale = ctx.ln1_scale if after_div else ctx.ln_scale
        if after_div:  # the pads +-N_1 the division left for this layer norm give way to the permanent ones, exactly
            for name, sign in ((LN1_POS, -1.0), (LN1_NEG, 1.0)):
                plan.attn_bias[ctx.rows(name)[0]] += sign * ctx.ln1_pad
            for name, sign in ((LN_POS, 1.0), (LN_NEG, -1.0)):
                plan.attn_bias[ctx.rows(name)[0]] += sign * ctx.ln_pad
        return attention_norm_error(ctx, after_div)

    def restore_pads(self, plan, ctx) -> None:
        """The next layer norm is before attention and sees the dirty division pads: pads +-N_1 dominate them
        (point 2); the next layer's attention puts back +-N."""
        plan.mlp_bias[ctx.rows(LN1_POS)[0]] += ctx.ln1_pad
        plan.mlp_bias[ctx.rows(LN1_NEG)[0]] -= ctx.ln1_pad

    def attention_scale(self, plan):
        return plan.ln1_scale

    def check_size(self, shape, check) -> None:
        """GPT-2 ties nothing: every applied layer is stored, heads of width / heads."""
        check(dataclasses.replace(shape, layers=shape.applied, depth=None, head_size=shape.width // shape.heads))

    def finish(self, weights: Weights, plans, order, ctx, program, shape) -> tuple[GPT2Weights, dict]:
        leaves_ln1 = any(ins.divisor for ins in plans[order[-1]].instructions)  # the last layer divides (point 3)
        final_scale = ctx.ln1_scale if leaves_ln1 else ctx.ln_scale
        head_dim = ctx.layout.width // shape.heads
        converted = to_gpt2(weights, [p.ln1_scale for p in plans], final_scale, ctx.layout.span(ZERO)[0],
                            ctx.layout.span(program.readout)[0])
        return converted, {"architecture": "gpt2", "ln1_pad": ctx.ln1_pad, "ln_f_scale": final_scale,
                           "head_dim": head_dim}

    def hidden_states(self, net, tokens: np.ndarray) -> np.ndarray:
        return gpt2_pass.hidden_states(net.gpt2, tokens)

    def size_info(self, net) -> dict:
        """Untied, heads splitting the width."""
        g = net.gpt2
        return {"stored_layers": g.depth, "head_size": g.head_size, "parameters": g.parameter_count,
                "architecture": "gpt2"}

    def certified_pass(self, net) -> "GPT2Pass":
        return GPT2Pass(net)


TARGETS = {"paper": Paper(), "gpt2": GPT2()}
ARCHITECTURES = tuple(TARGETS)


def target(architecture: str):
    if architecture not in TARGETS:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    return TARGETS[architecture]


def require_conversion(net) -> np.ndarray:
    """The network's GPT-2 weights are its paper-form weights converted (``to_gpt2``), checked by converting again,
    else ValueError; returns, per layer and head, ``|sum_r Wv~_r|`` (exact sums, fsum): the zero-sum defect of each
    value column left by rounding its compensation, through which LN_1's mean leaks in (point 1). The certificate
    and the runtimes (``construct.hf.save_pretrained``, ``construct.tl.to_hooked_transformer``) check it."""
    w, g = net.weights, net.gpt2
    scales_ = {}
    for l, mech in enumerate(net.mechanisms):
        scales_[int(w.order[l])] = mech.attention_scale
    rebuilt = to_gpt2(w, [scales_[s] for s in range(w.stored)], net.constants["ln_f_scale"],
                      net.layout.span(ZERO)[0], net.layout.span(net.program.readout)[0])
    if g.n_head != rebuilt.n_head or not all(np.array_equal(a, b) for a, b in
                                             zip(g.arrays().values(), rebuilt.arrays().values())):
        raise ValueError("the GPT-2 weights are not the conversion of the network's layers; the certificate does "
                         "not apply")
    sums = np.zeros((g.depth, g.n_head, g.head_size))
    for l in range(g.depth):
        Wv = g.head_weights(l, 2).astype(np.float64)
        for h in range(g.n_head):
            sums[l, h] = [abs(math.fsum(column)) for column in Wv[h].T.tolist()]
    return sums


# -- the certified passes: each target's forward pass and the local errors of its attention and read-out -------------


class PaperPass:
    """The numpy pass of the paper's layer, as the certificate runs it."""

    stacked_attention = True  # ``attention_error`` takes layers stacked (``forward.stack``) that apply one stored layer

    def __init__(self, net) -> None:
        self.net, self.w = net, net.weights

    def embed(self, tokens: np.ndarray) -> np.ndarray:
        return forward.embed(self.w, tokens)

    def layer_parts(self, l: int, H: np.ndarray):
        """The pass's intermediates without the weights' zero terms (``forward.live_parts``)."""
        return forward.live_parts(self.w, self.w.order[l], H)

    def attention_error(self, l: int, H: np.ndarray, parts, mech, chosen: np.ndarray,
                        uniform: np.ndarray) -> np.ndarray:
        """The attention's rounding and its selection error (the weights against one-hot, or against ``1/(i+1)``
        for the averaging heads, ``uniform``); of layers stacked that apply the stored layer of ``l`` if ``H`` is
        (layers, T, D)."""
        u = int(self.w.order[l])
        att = rounding.attention(self.w, u, H, parts)
        return att.rounding + rounding.selection(self.w.Wo[u], parts, att.values, chosen, uniform)

    def readout(self, H: np.ndarray, columns, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The read-out is the state's entry ``pred``, exactly."""
        return H @ self.w.readout, bounds


class GPT2Pass:
    """The numpy pass of the GPT-2 blocks, as the certificate runs it; refuses weights that are not the conversion of
    the network's layers."""

    stacked_attention = False  # ``attention_error`` takes one layer at a time

    def __init__(self, net) -> None:
        self.net, self.g = net, net.gpt2
        self._value_sums = require_conversion(net)

    def embed(self, tokens: np.ndarray) -> np.ndarray:
        return gpt2_pass.embed(self.g, tokens)

    def layer_parts(self, l: int, H: np.ndarray):
        return gpt2_pass.layer_parts(self.g, l, H)

    def attention_error(self, l: int, H: np.ndarray, parts, mech, chosen: np.ndarray,
                        uniform: np.ndarray) -> np.ndarray:
        """A GPT-2 block's attention against the paper's ideal ``X* = H + sum_h (H Wv_h)[c_h] Wo_h + bo``
        (point 1): its rounding, its selection, and LN_1's gap. Head h's value at the selected column c
        is ``V'_c = kappa_c (H_c Wv_h) - mu_c delta_h / sigma_c`` (exactly, for the pass's ``mu``, ``sigma``;
        ``kappa = s / sigma``, ``delta_h`` the value columns' sums), so ``|V'_c - H_c Wv_h| <= |V'_c| |1 -
        sigma_c / s| + |mu_c| |delta_h| / s``. An averaging head (``uniform``) is held to the mean of
        ``H_j Wv_h`` over j <= i: its gap is the mean of the columns' gaps (the selection term takes its weights
        against ``1/(i+1)``)."""
        g = self.g
        T = H.shape[0]
        att = gpt2_pass.attention_rounding(g, l, H, parts)
        Wo = g.c_proj_weight[l]
        u = rounding.unit_roundoff(H.dtype)
        s = mech.attention_scale
        sigma, mean = parts.sigma1[:, 0], np.abs(parts.mean1[:, 0])
        scaled = (np.abs(1 - sigma / s) + 2 * u)[None, :, None] * att.values \
            + mean[None, :, None] * self._value_sums[l][:, None, :] / s * (1 + 2 * u)  # (m, T, dh) at each column
        gap = scaled[np.arange(g.n_head)[:, None], chosen]  # at the selected column
        for h in np.flatnonzero(uniform):  # the mean over columns 0..i, its running sum rounded upward
            gap[h] = prefix_mean(scaled[h], axis=0) * (1 + rounding.gamma(T + 1, u))
        norm = (gap.transpose(1, 0, 2).reshape(T, -1) @ np.abs(Wo)) * rounding.SAFETY[H.dtype]
        return att.rounding + rounding.selection(Wo, parts, att.values, chosen, uniform) + norm

    def readout(self, H: np.ndarray, columns, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``s_f`` times the final layer norm's ``pred`` minus its ``zero`` (point 3), in exact arithmetic
        ``kappa_f pred`` with ``kappa_f = s_f / sigma_f``, so off by ``|kappa_f - 1| |pred|`` and the rounding of
        the two normalised entries (2 roundings each) and of their weighted sum (2 terms)."""
        g, layout = self.g, self.net.layout
        _, centred, sigma, normed, y = gpt2_pass.readout_parts(g, H)
        u = rounding.unit_roundoff(H.dtype)
        s_f = self.net.constants["ln_f_scale"]
        rows = [layout.span(self.net.program.readout)[0], layout.span(ZERO)[0]]
        gamma2 = rounding.gamma(2, u)
        sig = sigma[columns, 0]
        terms = s_f * (gamma2 * np.abs(normed[columns][:, rows]).sum(axis=1)
                       + gamma2 * (1 + u) * np.abs(centred[columns][:, rows]).sum(axis=1) / sig)
        scale = (np.abs(s_f / sig - 1) + 2 * u) * np.abs(H[columns, rows[0]])
        return y, (bounds + terms + scale) * rounding.SAFETY[H.dtype]
