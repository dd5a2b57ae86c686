"""Building blocks: what one layer does for each instruction, as logical pieces.

A ``LayerPlan`` says, in rows of the residual stream (derived from register
names by the layout), what each of the two attention heads writes, what the
attention and MLP biases add, and which GeLU units the MLP has. The
compiler's assembly step turns plans into dense weight arrays; nothing here
builds a matrix.

Conventions shared by every block (SPEC.md section 3):

* head 0, the *source* head, attends to column ``i - offset`` (mov only);
  head 1, the *self* head, attends to column ``i``. Both are one-hot up to
  ``scales.attention_leak`` (Lemma: attention selection).
* a head's contribution to row ``w`` is a linear form in the rows of the
  column it attends to: ``writes[w] = {read_row: coef}``. Writing
  ``new - old`` into ``w`` through the self head (coefficient -1 on ``w``)
  overwrites the register, since the residual adds ``old`` back.
* rows a layer leaves nonzero for its own purposes (scratch copies,
  division pads) are *dirty*; the next layer's self head resets them before
  its layer norm.
* an MLP unit's input is written in residual units: ``inputs[r] = c`` means
  a pre-activation of ``c * x_r``, with the layer's ``ln_scale`` undoing the
  layer norm and a zero-sum compensation making the mean irrelevant.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from . import scales
from ..raw.instructions import Aff, Div, Mov, Mul
from ..raw.registers import Layout

ONE, POS_SQ, LN_POS, LN_NEG, ZERO = "one", "pos_sq", "ln_pad_pos", "ln_pad_neg", "zero"
DIV_POS, DIV_NEG, SCRATCH, MEAN_PAD = "div_pad_pos", "div_pad_neg", "scratch", "mean_pad"


@dataclass
class Unit:
    """One GeLU unit: ``outputs * gelu(sum inputs[r] x_r + bias)``."""

    inputs: dict[int, float]
    bias: float
    outputs: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductMechanism:
    """What a mul layer's MLP computes, for the certificate: ``out[k] = sum_j x[pairs[k][j][0]] x[pairs[k][j][1]]``.

    Rows are those the MLP reads in the state after attention (an operand the
    layer overwrites is read from its scratch copy; ``copies`` maps such a
    row to the row it copies in the layer's input). Scales: operand bounds
    ``S_a``, ``S_b`` and the product scale ``P``.
    """

    out: tuple[int, ...]
    pairs: tuple[tuple[tuple[int, int], ...], ...]
    S_a: float
    S_b: float
    P: float
    copies: dict[int, int]
    multiples: tuple[int, ...]  # each unit's scale: it reads x / (m P)


@dataclass(frozen=True)
class DivisionMechanism:
    """What a div layer's MLP computes: ``out[k] = x[num[k]] / |x[den]|`` by layer norm and bypass units
    ``Q (gelu(B + u) - B)``; ``copies`` as for products."""

    out: tuple[int, ...]
    num: tuple[int, ...]
    den: int
    Q: float
    B: float
    copies: dict[int, int]


@dataclass
class LayerPlan:
    """One layer, as logical pieces (rows, coefficients, units) before assembly."""

    label: str
    source_offset: int | None = None
    source: dict[int, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    self_: dict[int, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    attn_bias: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    units: list[Unit] = field(default_factory=list)
    ln_scale: float = 1.0
    mlp_bias: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    dirty: set[int] = field(default_factory=set)
    constants: dict[str, float] = field(default_factory=dict)
    error: float = 0.0        # predicted bound on |written entry - exact|
    out_bound: float = 1.0    # the written register's bound
    mechanism: ProductMechanism | DivisionMechanism | None = None  # what the MLP computes, if it works

    def write(self, head: dict, row: int, read_row: int, coef: float) -> None:
        head[row][read_row] = head[row].get(read_row, 0.0) + coef


@dataclass(frozen=True)
class Context:
    """What every block needs: the full layout, register bounds and the global constants."""

    layout: Layout
    bounds: dict[str, float]
    floors: dict[str, float]
    eps: float
    dtype: object
    sharpness: float
    product_scale: float
    bypass_offset: float
    ln_pad: float
    ln_scale: float  # ln_pad sqrt(2 / D), a power of two
    ln_eps: float
    sum_sq: float  # bound on the sum of squares of all rows but the pads

    @property
    def leak(self) -> float:
        return scales.attention_leak(self.sharpness)

    def rows(self, name: str) -> range:
        return range(*self.layout.span(name))


def clear(plan: LayerPlan, rows) -> None:
    """The self head subtracts each row from itself, so it holds 0 after attention.

    Used for rows the previous layer left dirty and for a register the MLP
    is about to fill.
    """
    for r in rows:
        plan.write(plan.self_, r, r, -1.0)


def centre(plan: LayerPlan, ctx: Context) -> None:
    """Write ``mean_pad = -(sum of the column's other rows)`` as it will be after attention.

    Layer norm subtracts the column mean, and rounds ``x_r - mean`` to
    ``eps |mean|``; a mean of order 1 (``pos_sq`` alone is up to 4n^2)
    would swamp small operands. With the pad, the rows sum to 0 up to the
    rounding of the pads ``+-N`` themselves, so ``x_r - mean`` is exact to
    ``eps |x_r|``. The pads (which cancel exactly) are left out of the sum.
    Every linear form the layer's attention writes is known, so the pad is
    itself a linear form: ``a[mp] = -h[mp] - sum_r (h[r] + a[r])``.
    """
    skip = {ctx.layout.span(name)[0] for name in (LN_POS, LN_NEG, DIV_POS, DIV_NEG, MEAN_PAD) if name in ctx.layout}
    rows = [r for r in range(ctx.layout.width) if r not in skip]
    (mp,) = ctx.rows(MEAN_PAD)
    plan.write(plan.self_, mp, mp, -1.0)
    for r in rows:
        plan.write(plan.self_, mp, r, -1.0)
    for head in (plan.self_, plan.source):
        for w in rows:
            for r, coef in list(head.get(w, {}).items()):
                plan.write(head, mp, r, -coef)
    plan.attn_bias[mp] -= sum(plan.attn_bias.get(w, 0.0) for w in rows)


def mov(ins: Mov, ctx: Context) -> LayerPlan:
    """mov: ``dst(i) <- src(i - offset)`` by attention alone; the MLP is off.

    Source head: value ``src`` at the selected column, written into ``dst``.
    Self head: ``-dst`` of the own column. Residual: ``dst + src(tau) - dst``.
    Error: each head is off by at most ``2 leak max|v|``; two roundings.
    """
    plan = LayerPlan(str(ins), source_offset=ins.offset)
    for s, d in zip(ctx.rows(ins.src), ctx.rows(ins.dst)):
        plan.write(plan.source, d, s, 1.0)
        plan.write(plan.self_, d, d, -1.0)
    b_src, b_dst = ctx.bounds[ins.src], ctx.bounds[ins.dst]
    plan.error = (2 * ctx.leak + 2 * ctx.eps) * (b_src + b_dst)
    plan.out_bound = b_dst
    plan.constants = {"attention_sharpness": ctx.sharpness}
    return plan


def aff(ins: Aff, ctx: Context) -> LayerPlan:
    """aff: ``out <- sum_j W_j r_j + b`` through the self head and the attention bias.

    The self head's value for each row of ``out`` is the linear form
    ``sum_j W_j r_j - out`` of the own column (one-hot attention on itself);
    the bias ``bo`` adds ``b``. The MLP is off. Error: attention leak plus
    the rounding of a dot product with ``m`` nonzero terms,
    ``(m + 3) eps (sum_j |W_j| B_j + |b| + B_out)``.
    """
    plan = LayerPlan(str(ins))
    out_rows = ctx.rows(ins.out)
    scale = ctx.bounds[ins.out]
    terms = 1
    for reg, w, _ in ins.terms:
        read_rows = ctx.rows(reg)
        if w.ndim == 0:
            for o, r in zip(out_rows, read_rows):
                plan.write(plan.self_, o, r, float(w))
            scale += abs(float(w)) * ctx.bounds[reg]
            terms += 1
        else:
            for a, o in enumerate(out_rows):
                for b, r in enumerate(read_rows):
                    if w[a, b] != 0:
                        plan.write(plan.self_, o, r, float(w[a, b]))
            scale += float(abs(w).sum(axis=1).max()) * ctx.bounds[reg]
            terms += int((w != 0).sum(axis=1).max())
    clear(plan, ctx.rows(ins.out))
    if ins.bias is not None:
        bias = [float(ins.bias)] * len(out_rows) if ins.bias.ndim == 0 else [float(b) for b in ins.bias]
        for o, b in zip(out_rows, bias):
            plan.attn_bias[o] += b
        scale += max(abs(b) for b in bias)
    plan.error = 2 * ctx.leak * scale + (terms + 3) * ctx.eps * scale
    plan.out_bound = ctx.bounds[ins.out]
    plan.constants = {"attention_sharpness": ctx.sharpness}
    return plan


def _operand_rows(plan: LayerPlan, ctx: Context, name: str, out: str, scratch_used: list) -> list[int]:
    """Rows the MLP reads for an operand; an operand the layer overwrites is first copied to scratch."""
    if name != out:
        return list(ctx.rows(name))
    start = len(scratch_used)
    rows = list(ctx.rows(SCRATCH))[start : start + ctx.layout[name].size]
    for s, r in zip(rows, ctx.rows(name)):
        plan.write(plan.self_, s, r, 1.0)
    scratch_used.extend(rows)
    plan.dirty.update(rows)
    return rows


def _copies(ctx: Context, name: str, scratch_used: list[int]) -> dict[int, int]:
    """Scratch rows used, each with the row of ``name`` it copies (operands are copied in order)."""
    size = ctx.layout[name].size
    return {s: ctx.rows(name)[k % size] for k, s in enumerate(scratch_used)}


def mul(ins: Mul, ctx: Context) -> LayerPlan:
    """mul: ``out <- A @ B`` by GeLU products in the MLP (Lemmas 4, 6, 7).

    The self head zeroes ``out`` (and copies an operand that ``out``
    overwrites into scratch). Layer norm sees the permanent pads ``+-N``, so
    it divides the column by ``N sqrt(2/D)`` to relative ``eps/2``
    (``scales.pad_size``); ``ln_scale`` multiplies it back. Each scalar
    product ``A_ij B_jk`` is ``S_a S_b R_P(A_ij/S_a, B_jk/S_b)``, with
    ``S_a, S_b`` the operands' bounds and ``R_P`` the three-scale GeLU product
    of ``scales.product_error``: units ``(a+b)/s``, ``a/s``, ``b/s`` for
    ``s = P, 2P, 4P`` with output weights ``+-c_s S_a S_b``,
    ``c_s = w_s sqrt(pi/2) s^2`` and Richardson weights ``w = (1, -20, 64)/45``
    (``scales.RICHARDSON``). Units ``a/s`` and ``b/s`` are shared by every
    product that uses the same entry.
    Error per output entry: ``q S_a S_b (product_error + rho)``, plus the
    attention leak on the zeroing.
    """
    plan = LayerPlan(str(ins))
    p, q, r = ins.shape
    scratch_used: list[int] = []
    a_rows = _operand_rows(plan, ctx, ins.a, ins.out, scratch_used)
    b_rows = _operand_rows(plan, ctx, ins.b, ins.out, scratch_used)
    clear(plan, ctx.rows(ins.out))
    out_rows = list(ctx.rows(ins.out))
    S_a, S_b = ctx.bounds[ins.a], ctx.bounds[ins.b]
    P = ctx.product_scale
    units: dict[tuple, Unit] = {}

    def unit(inputs: dict[int, float]) -> Unit:
        key = tuple(sorted(inputs.items()))
        if key not in units:
            units[key] = Unit(dict(inputs), 0.0)
        return units[key]

    multiples = {}
    for (multiple, _), (C, _) in zip(scales.RICHARDSON, scales.RICHARDSON_CONSTANTS):
        s = multiple * P
        c = C * s**2
        before = set(units)
        for i in range(p):
            for k in range(r):
                o = out_rows[i * r + k]
                for j in range(q):
                    ra, rb = a_rows[i * q + j], b_rows[j * r + k]
                    wa, wb = 1 / (S_a * s), 1 / (S_b * s)
                    both = defaultdict(float)
                    both[ra] += wa
                    both[rb] += wb  # ra == rb for a square (u u^T's diagonal)
                    for u, sign in ((unit(both), 1.0), (unit({ra: wa}), -1.0), (unit({rb: wb}), -1.0)):
                        u.outputs[o] = u.outputs.get(o, 0.0) + sign * c * S_a * S_b
        multiples.update(dict.fromkeys(set(units) - before, multiple))
    plan.units = list(units.values())
    plan.mechanism = ProductMechanism(
        out=tuple(out_rows),
        pairs=tuple(tuple((a_rows[i * q + j], b_rows[j * r + k]) for j in range(q)) for i in range(p) for k in range(r)),
        S_a=S_a, S_b=S_b, P=P, copies=_copies(ctx, ins.out, scratch_used),
        multiples=tuple(multiples[key] for key in units),
    )
    plan.ln_scale = ctx.ln_scale
    rho = scales.pad_error(ctx.ln_pad, ctx.sum_sq, ctx.layout.width, ctx.ln_eps)
    plan.error = q * S_a * S_b * (scales.product_error(P, ctx.dtype) + rho) + 2 * ctx.leak * ctx.bounds[ins.out]
    plan.out_bound = ctx.bounds[ins.out]
    plan.constants = {"attention_sharpness": ctx.sharpness, "product_scale": P, "ln_pad": ctx.ln_pad}
    return plan


def div(ins: Div, ctx: Context) -> LayerPlan:
    """div: ``out <- num / |den|`` by layer norm (Lemma 8) and a GeLU bypass (Lemma 5).

    Attention: the self head writes pads ``N_d den`` and ``-N_d den``; the
    bias removes the permanent pads (``-N``, ``+N``; the MLP's bias puts them
    back, exactly); the self head zeroes ``out``. Layer norm now divides the
    column by ``N_d |den| sqrt(2/D) sqrt(1 + rho)`` with ``rho <= eps/2`` for
    ``|den| >=`` its floor (``scales.pad_size``). A unit per entry computes
    ``Q (gelu(u + B) - B)`` with ``u = num / (|den| Q)``, ``|u| <= 1`` by the
    bound ``Q`` of ``out``, so it passes ``num/|den|`` to within
    ``Q bypass_error(B)``. The pads are dirty: the next layer resets them.
    """
    plan = LayerPlan(str(ins))
    scratch_used: list[int] = []
    num_rows = _operand_rows(plan, ctx, ins.num, ins.out, scratch_used)
    clear(plan, ctx.rows(ins.out))
    floor = ctx.floors[ins.den]
    N_d, ln_scale = scales.pad_size(ctx.sum_sq, ctx.layout.width, ctx.ln_eps, ctx.dtype, floor)
    (den_row,) = ctx.rows(ins.den)
    (pos_pad,), (neg_pad,) = ctx.rows(DIV_POS), ctx.rows(DIV_NEG)
    plan.write(plan.self_, pos_pad, den_row, N_d)
    plan.write(plan.self_, neg_pad, den_row, -N_d)
    plan.dirty.update((pos_pad, neg_pad))
    (ln_pos,), (ln_neg,) = ctx.rows(LN_POS), ctx.rows(LN_NEG)
    plan.attn_bias[ln_pos] -= ctx.ln_pad
    plan.attn_bias[ln_neg] += ctx.ln_pad
    plan.mlp_bias[ln_pos] += ctx.ln_pad
    plan.mlp_bias[ln_neg] -= ctx.ln_pad
    Q, B = ctx.bounds[ins.out], ctx.bypass_offset
    for n, o in zip(num_rows, ctx.rows(ins.out)):
        plan.units.append(Unit({n: 1 / Q}, B, {o: Q}))
        plan.mlp_bias[o] -= Q * B
    plan.mechanism = DivisionMechanism(out=tuple(ctx.rows(ins.out)), num=tuple(num_rows), den=den_row, Q=Q, B=B,
                                       copies=_copies(ctx, ins.out, scratch_used))
    plan.ln_scale = ln_scale
    rho = scales.pad_error(N_d, ctx.sum_sq, ctx.layout.width, ctx.ln_eps, floor)
    plan.error = Q * (scales.bypass_error(B, ctx.dtype) + rho / 2 + 4 * ctx.leak)
    plan.out_bound = Q
    plan.constants = {"attention_sharpness": ctx.sharpness, "bypass_offset": B, "div_pad": N_d}
    return plan


BLOCKS = {Mov: mov, Aff: aff, Mul: mul, Div: div}
