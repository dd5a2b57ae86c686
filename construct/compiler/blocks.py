"""Building blocks: what one layer does for a group of instructions, as logical pieces.

A layer runs its *attention* instructions (mov, aff), which read the layer's
input, then its *MLP* instructions (mul, or div by one divisor), which read
the state after attention (``schedule`` decides the groups; unfused, a layer
has one instruction). A ``LayerPlan`` says, in rows of the residual stream
(derived from register names by the layout), what each attention head
writes, what the attention and MLP biases add, and which GeLU units the MLP
has. The compiler's assembly step turns plans into dense weight arrays;
nothing here builds a matrix.

Conventions shared by every block:

* a head attends to one column, ``i - offset`` (Lemma: attention selection,
  one-hot up to ``scales.attention_leak``); offset 0 is the *self* head, and
  a layer has one head per offset its instructions read;
* the attention phase is a set of **linear forms**: each row it writes gets
  ``sum over (offset, row r) of coef * h[r] at column i - offset``, plus a
  bias. Instructions compose in program order: an aff reading a register
  an earlier instruction of the same layer wrote reads that instruction's
  form, a mov shifts a form by its offset (``max(max(i - a, 0) - b, 0) =
  max(i - a - b, 0)``), so chains of affine instructions cost one layer.
  Writing ``new - old`` (the self head's -1 on the row itself) overwrites
  a row, since the residual adds ``old`` back;
* rows a layer leaves nonzero for its own purposes (scratch copies,
  division pads) are *dirty*; the next layer's self head resets them before
  its layer norm;
* an MLP unit's input is written in residual units: ``inputs[r] = c`` means
  a pre-activation of ``c * x_r``, with the layer's ``ln_scale`` undoing the
  layer norm and a zero-sum compensation making the mean irrelevant.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..raw.instructions import Aff, Div, Mov, Mul
from ..raw.registers import Layout
from . import gpt2, scales

ONE, POS_SQ, LN_POS, LN_NEG, ZERO = "one", "pos_sq", "ln_pad_pos", "ln_pad_neg", "zero"
DIV_POS, DIV_NEG, SCRATCH, MEAN_PAD = "div_pad_pos", "div_pad_neg", "scratch", "mean_pad"
LN1_POS, LN1_NEG, WIDTH_PAD = "ln1_pad_pos", "ln1_pad_neg", "width_pad"  # the GPT-2 target's (``gpt2`` module)


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
    layer overwrites is read from its scratch copy). Scales: operand bounds
    ``S_a``, ``S_b`` and the product scale ``P``; ``multiples`` gives each of
    the layer's units its m (it reads ``x / (m P)``).
    """

    out: tuple[int, ...]
    pairs: tuple[tuple[tuple[int, int], ...], ...]
    S_a: float
    S_b: float
    P: float
    multiples: tuple[int, ...]


@dataclass(frozen=True)
class DivisionMechanism:
    """What a div layer's MLP computes: ``out[k] = x[num[k]] / |x[den]|`` by layer norm and bypass units
    ``Q (gelu(B + u) - B)``, rows as for products."""

    out: tuple[int, ...]
    num: tuple[int, ...]
    den: int
    Q: float
    B: float


@dataclass
class LayerPlan:
    """One layer, as logical pieces (rows, coefficients, units) before assembly.

    ``heads[offset][row] = {read_row: coef}``: what the head attending to
    column ``i - offset`` adds to ``row``. ``reports``: per instruction, its
    text, the a-priori bound on the error of each entry it writes, and its
    register's bound.
    """

    instructions: tuple
    heads: dict[int, dict[int, dict[int, float]]] = field(default_factory=dict)
    attn_bias: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    units: list[Unit] = field(default_factory=list)
    ln_scale: float = 1.0
    ln1_scale: float = 1.0  # GPT-2 target: the scale its layer norm before attention divides by (``gpt2``)
    mlp_bias: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    dirty: set[int] = field(default_factory=set)
    constants: dict[str, float] = field(default_factory=dict)
    reports: list[tuple[str, float, float]] = field(default_factory=list)
    mechanisms: list = field(default_factory=list)  # what the MLP computes, one per MLP instruction

    @property
    def label(self) -> str:
        return "; ".join(str(ins) for ins in self.instructions)


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
    architecture: str = "paper"  # or "gpt2": a layer norm before attention too (``gpt2``)
    ln1_pad: float = 0.0  # GPT-2 target with divisions: the pads +-N_1 the layer after a div sees (``gpt2``)
    ln1_scale: float = 0.0  # N_1 sqrt(2/D), a power of two
    ln1_extra: float = 0.0  # 2 max (N_d |den|)^2: the most the division pads add to that layer norm's squares

    @property
    def leak(self) -> float:
        return scales.attention_leak(self.sharpness)

    def rows(self, name: str) -> range:
        return range(*self.layout.span(name))


class Forms:
    """The attention phase's linear forms: each row's value after attention, in terms of the layer's input.

    A form maps ``(offset, row)`` to a coefficient: the value is
    ``sum coef * h[row] at column max(i - offset, 0)``; ``bias`` holds the
    constant part. A row no instruction has written is its own input value.
    """

    def __init__(self) -> None:
        self.terms: dict[int, dict[tuple[int, int], float]] = {}
        self.bias: dict[int, float] = {}

    def value(self, row: int) -> tuple[dict[tuple[int, int], float], float]:
        return self.terms.get(row, {(0, row): 1.0}), self.bias.get(row, 0.0)

    def set(self, row: int, terms: dict[tuple[int, int], float], bias: float = 0.0) -> None:
        self.terms[row] = {key: c for key, c in terms.items() if c != 0}
        self.bias[row] = bias

    def combine(self, parts) -> tuple[dict[tuple[int, int], float], float]:
        """``sum coef * value(row)`` over ``parts`` (row, coef), shifted by nothing."""
        terms: dict[tuple[int, int], float] = defaultdict(float)
        bias = 0.0
        for row, coef in parts:
            form, b = self.value(row)
            for key, c in form.items():
                terms[key] += coef * c
            bias += coef * b
        return dict(terms), bias


def _attention_instruction(ins, ctx: Context, forms: Forms) -> None:
    """Compose a mov or aff into the phase's forms (it reads the values earlier instructions of the layer left)."""
    if isinstance(ins, Mov):
        new = []
        for s, d in zip(ctx.rows(ins.src), ctx.rows(ins.dst)):
            form, b = forms.value(s)
            new.append((d, {(o + ins.offset, r): c for (o, r), c in form.items()}, b))
        for d, form, b in new:  # after reading every source row: src and dst may overlap
            forms.set(d, form, b)
        return
    out_rows = list(ctx.rows(ins.out))
    bias = [0.0] * len(out_rows) if ins.bias is None else (
        [float(ins.bias)] * len(out_rows) if ins.bias.ndim == 0 else [float(b) for b in ins.bias])
    new = []
    for a, o in enumerate(out_rows):
        parts = []
        for reg, w, _ in ins.terms:
            read_rows = ctx.rows(reg)
            if w.ndim == 0:
                parts.append((read_rows[a], float(w)))
            else:
                parts += [(r, float(w[a, b])) for b, r in enumerate(read_rows) if w[a, b] != 0]
        form, b = forms.combine(parts)
        new.append((o, form, b + bias[a]))
    for o, form, b in new:
        forms.set(o, form, b)


def _copy_to_scratch(ctx: Context, forms: Forms, name: str, scratch: list[int], plan: LayerPlan) -> list[int]:
    """An operand the MLP overwrites is read from scratch: its form is copied there; the rows are left dirty."""
    start = len(scratch)
    rows = list(ctx.rows(SCRATCH))[start : start + ctx.layout[name].size]
    if len(rows) < ctx.layout[name].size:
        raise ValueError(f"the scratch register is too small for the operands this layer overwrites ({name!r})")
    for s, r in zip(rows, ctx.rows(name)):
        forms.set(s, *forms.value(r))
    scratch.extend(rows)
    plan.dirty.update(rows)
    return rows


def _read_rows(mlp: list, name: str, ctx: Context, forms: Forms, scratch: list[int], plan: LayerPlan) -> list[int]:
    """The rows an MLP instruction reads ``name`` from: a copy in scratch if any instruction of the MLP writes it
    (attention zeroes what the MLP writes, and reads come before writes: its own output, or a later one's)."""
    if any(name == ins.writes for ins in mlp):
        return _copy_to_scratch(ctx, forms, name, scratch, plan)
    return list(ctx.rows(name))


def _products(muls: list, ctx: Context, forms: Forms, plan: LayerPlan, scratch: list[int]) -> None:
    """mul: ``out <- A @ B`` by GeLU products in the MLP (Lemmas 4, 6, 7), for every mul of the layer at once.

    Layer norm sees the permanent pads ``+-N``, so it divides the column by
    ``N sqrt(2/D)`` to relative ``eps/2`` (``scales.pad_size``);
    ``ln_scale`` multiplies it back. Each scalar product ``A_ij B_jk`` is
    ``S_a S_b R_P(A_ij/S_a, B_jk/S_b)``, with ``S_a, S_b`` the operands'
    bounds and ``R_P`` the three-scale GeLU product of
    ``scales.product_error``: units ``(a+b)/s``, ``a/s``, ``b/s`` for ``s =
    P, 2P, 4P`` with output weights ``+-C_m s^2 S_a S_b``, ``C_m = w_m
    sqrt(pi/2)`` and Richardson weights ``w = (1, -20, 64)/45``
    (``scales.RICHARDSON``). Units with the same inputs are one unit, shared
    by every product that reads the same entry at the same scale (also
    across the layer's muls). Error per output entry: ``q S_a S_b
    (product_error + rho)``, plus the attention leak on the zeroing.
    """
    P = ctx.product_scale
    units: dict[tuple, Unit] = {}
    multiples: dict[tuple, int] = {}

    def unit(inputs: dict[int, float], multiple: int) -> Unit:
        key = tuple(sorted(inputs.items()))
        if key not in units:
            units[key] = Unit(dict(inputs), 0.0)
            multiples[key] = multiple
        return units[key]

    rows = [(_read_rows(muls, ins.a, ctx, forms, scratch, plan), _read_rows(muls, ins.b, ctx, forms, scratch, plan))
            for ins in muls]
    for ins, (a_rows, b_rows) in zip(muls, rows):
        p, q, r = ins.shape
        out_rows = list(ctx.rows(ins.out))
        for o in out_rows:
            forms.set(o, {})
        S_a, S_b = ctx.bounds[ins.a], ctx.bounds[ins.b]
        for (multiple, _), C in zip(scales.RICHARDSON, scales.RICHARDSON_CONSTANTS):
            s = multiple * P
            c = C * s**2
            for i in range(p):
                for k in range(r):
                    o = out_rows[i * r + k]
                    for j in range(q):
                        ra, rb = a_rows[i * q + j], b_rows[j * r + k]
                        wa, wb = 1 / (S_a * s), 1 / (S_b * s)
                        both = defaultdict(float)
                        both[ra] += wa
                        both[rb] += wb  # ra == rb for a square (u u^T's diagonal)
                        for u, sign in ((unit(both, multiple), 1.0), (unit({ra: wa}, multiple), -1.0),
                                        (unit({rb: wb}, multiple), -1.0)):
                            u.outputs[o] = u.outputs.get(o, 0.0) + sign * c * S_a * S_b
        plan.mechanisms.append(ProductMechanism(
            out=tuple(out_rows),
            pairs=tuple(tuple((a_rows[i * q + j], b_rows[j * r + k]) for j in range(q))
                        for i in range(p) for k in range(r)),
            S_a=S_a, S_b=S_b, P=P, multiples=()))
        rho = scales.pad_error(ctx.ln_pad, ctx.sum_sq, ctx.layout.width, ctx.ln_eps)
        plan.reports.append((str(ins), q * S_a * S_b * (scales.product_error(P, ctx.dtype) + rho)
                             + 2 * ctx.leak * ctx.bounds[ins.out], ctx.bounds[ins.out]))
    plan.units = list(units.values())
    all_multiples = tuple(multiples[key] for key in units)
    plan.mechanisms = [ProductMechanism(m.out, m.pairs, m.S_a, m.S_b, m.P, all_multiples)
                       for m in plan.mechanisms]
    plan.ln_scale = ctx.ln_scale
    plan.constants.update(product_scale=P, ln_pad=ctx.ln_pad)


def _divisions(divs: list, ctx: Context, forms: Forms, plan: LayerPlan, scratch: list[int]) -> None:
    """div: ``out <- num / |den|`` by layer norm (Lemma 8) and a GeLU bypass (Lemma 5), for the layer's divs by
    one divisor.

    Attention writes pads ``N_d den`` and ``-N_d den`` (den's form: a divisor
    an aff of the same layer computes is read through it); the bias removes
    the permanent pads (``-N``, ``+N``; the MLP's bias puts them back,
    exactly). Layer norm now divides the column by ``N_d |den| sqrt(2/D)
    sqrt(1 + rho)`` with ``rho <= eps/2`` for ``|den| >=`` its floor
    (``scales.pad_size``). A unit per entry computes ``Q (gelu(u + B) - B)``
    with ``u = num / (|den| Q)``, ``|u| <= 1`` by the bound ``Q`` of
    ``out``, so it passes ``num/|den|`` to within ``Q bypass_error(B)``. The
    pads are dirty: the next layer resets them.
    """
    (den,) = {ins.den for ins in divs}
    floor = ctx.floors[den]
    N_d, ln_scale = scales.pad_size(ctx.sum_sq, ctx.layout.width, ctx.ln_eps, ctx.dtype, floor)
    (den_row,) = ctx.rows(den)
    form, b = forms.value(den_row)
    for pad, sign in ((ctx.rows(DIV_POS)[0], 1.0), (ctx.rows(DIV_NEG)[0], -1.0)):
        forms.set(pad, {key: sign * N_d * c for key, c in form.items()}, sign * N_d * b)
        plan.dirty.add(pad)
    (ln_pos,), (ln_neg,) = ctx.rows(LN_POS), ctx.rows(LN_NEG)
    plan.attn_bias[ln_pos] -= ctx.ln_pad  # lifted by the biases, exactly: N - N = 0 and 0 + N = N
    plan.attn_bias[ln_neg] += ctx.ln_pad
    if ctx.architecture == "gpt2":  # the next layer norm is before attention and sees the dirty division pads:
        (ln1_pos,), (ln1_neg,) = ctx.rows(LN1_POS), ctx.rows(LN1_NEG)  # pads +-N_1 dominate them (``gpt2``);
        plan.mlp_bias[ln1_pos] += ctx.ln1_pad  # the next layer's attention puts back +-N
        plan.mlp_bias[ln1_neg] -= ctx.ln1_pad
    else:
        plan.mlp_bias[ln_pos] += ctx.ln_pad
        plan.mlp_bias[ln_neg] -= ctx.ln_pad
    B = ctx.bypass_offset
    reads = [_read_rows(divs, ins.num, ctx, forms, scratch, plan) for ins in divs]  # before any output is zeroed
    for ins, num_rows in zip(divs, reads):
        out_rows = list(ctx.rows(ins.out))
        for o in out_rows:
            forms.set(o, {})
        Q = ctx.bounds[ins.out]
        for n, o in zip(num_rows, out_rows):
            plan.units.append(Unit({n: 1 / Q}, B, {o: Q}))
            plan.mlp_bias[o] -= Q * B
        plan.mechanisms.append(DivisionMechanism(out=tuple(out_rows), num=tuple(num_rows), den=den_row, Q=Q, B=B))
        rho = scales.pad_error(N_d, ctx.sum_sq, ctx.layout.width, ctx.ln_eps, floor)
        plan.reports.append((str(ins), Q * (scales.bypass_error(B, ctx.dtype) + rho / 2 + 4 * ctx.leak), Q))
    plan.ln_scale = ln_scale
    plan.constants.update(bypass_offset=B, div_pad=N_d)


def _centre(ctx: Context, forms: Forms) -> None:
    """Write ``mean_pad = -(sum of the column's other rows)`` as they will be after attention.

    Layer norm subtracts the column mean, and rounds ``x_r - mean`` to
    ``eps |mean|``; a mean of order 1 (``pos_sq`` alone is up to 4n^2)
    would swamp small operands. With the pad, the rows sum to 0 up to the
    rounding of the pads ``+-N`` themselves, so ``x_r - mean`` is exact to
    ``eps |x_r|``. The pads (which cancel exactly) are left out of the sum.
    Every row's value after attention is a known form, so the pad is one too.
    """
    skip = {ctx.layout.span(name)[0] for name in (LN_POS, LN_NEG, DIV_POS, DIV_NEG, MEAN_PAD, LN1_POS, LN1_NEG)
            if name in ctx.layout}
    form, bias = forms.combine((r, -1.0) for r in range(ctx.layout.width) if r not in skip)
    forms.set(ctx.rows(MEAN_PAD)[0], form, bias)


def _attention_reports(ins, ctx: Context, forms: Forms, ln1: tuple[float, float]) -> tuple[str, float, float]:
    """A mov's or aff's a-priori error on each entry it writes: the attention leak and the rounding of the
    composed form (``terms`` products), both on the form's scale ``sum |coef| B_row + |bias|``; in the GPT-2
    target, the layer norm before attention (``gpt2.attention_norm_error``: ``ln1`` is its relative error and its
    error per unit of coefficient)."""
    rows = ctx.rows(ins.writes)
    label = {r: name for name in ctx.layout.names for r in ctx.rows(name)}
    worst = 0.0
    for w in rows:
        form, bias = forms.value(w)
        scale = sum(abs(c) * ctx.bounds[label[r]] for (_, r), c in form.items()) + abs(bias) + ctx.bounds[ins.writes]
        heads = len({o for o, _ in form}) + 1
        norm = ln1[0] * scale + ln1[1] * (sum(abs(c) for c in form.values()) + 1)
        worst = max(worst, 2 * heads * ctx.leak * scale + (len(form) + 3) * ctx.eps * scale + norm)
    return str(ins), worst, ctx.bounds[ins.writes]


def plan_layer(attention: list, mlp: list, ctx: Context, dirty: set[int]) -> LayerPlan:
    """One layer: ``attention`` (movs and affs, composed in order), then ``mlp`` (muls, or divs by one divisor).

    ``dirty`` are the rows the previous layer left nonzero for its own use;
    this layer resets them first.
    """
    plan = LayerPlan(tuple(attention) + tuple(mlp))
    forms = Forms()
    for r in sorted(dirty):
        forms.set(r, {})
    ln1 = (0.0, 0.0)
    if ctx.architecture == "gpt2":
        after_div = DIV_POS in ctx.layout and ctx.rows(DIV_POS)[0] in dirty
        plan.ln1_scale = ctx.ln1_scale if after_div else ctx.ln_scale
        if after_div:  # the pads +-N_1 the division left for this layer norm give way to the permanent ones, exactly
            for name, sign in ((LN1_POS, -1.0), (LN1_NEG, 1.0)):
                plan.attn_bias[ctx.rows(name)[0]] += sign * ctx.ln1_pad
            for name, sign in ((LN_POS, 1.0), (LN_NEG, -1.0)):
                plan.attn_bias[ctx.rows(name)[0]] += sign * ctx.ln_pad
        ln1 = gpt2.attention_norm_error(ctx, after_div)
    for ins in attention:
        _attention_instruction(ins, ctx, forms)
        plan.reports.append(_attention_reports(ins, ctx, forms, ln1))
    plan.constants["attention_sharpness"] = ctx.sharpness
    scratch: list[int] = []
    if mlp and isinstance(mlp[0], Mul):
        _products(mlp, ctx, forms, plan, scratch)
    elif mlp:
        _divisions(mlp, ctx, forms, plan, scratch)
    if mlp:
        _centre(ctx, forms)
    if ln1 != (0.0, 0.0):
        plan.reports[len(attention):] = [(text, gpt2.mlp_error(ins, ctx, ln1, error, bound), bound)
                                         for ins, (text, error, bound) in zip(mlp, plan.reports[len(attention):])]
    for row, form in forms.terms.items():
        for (offset, read), coef in form.items():
            head = plan.heads.setdefault(offset, defaultdict(dict))
            head[row][read] = head[row].get(read, 0.0) + coef
        self_head = plan.heads.setdefault(0, defaultdict(dict))
        self_head[row][row] = self_head[row].get(row, 0.0) - 1.0  # new - old
        if forms.bias[row]:
            plan.attn_bias[row] += forms.bias[row]
    for head in plan.heads.values():  # entries that cancelled (an aff term on its own register)
        for row in list(head):
            head[row] = {r: c for r, c in head[row].items() if c != 0}
    return plan
