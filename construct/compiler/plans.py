"""The plans stage: each scheduled layer as logical pieces (``mechanisms.plan.LayerPlan``), repeated layers planned once.

A layer's attention instructions compose into linear forms (each kind's
``compose``), then its MLP instructions (one group: products, or divisions
by one divisor) plan their units (the kind's ``plan_mlp``), and the layer
writes the mean pad that makes layer norm's mean irrelevant. The target
(``targets``) adds what its architecture needs before attention. A layer's
plan depends on its instructions and on the rows the layer before left
dirty, nothing else: planning each distinct pair once makes compiling a
program's repeated block cost the same whatever n.
"""

from __future__ import annotations

from collections import defaultdict

from ..instructions import to_data
from ..mechanisms.plan import (DIV_NEG, DIV_POS, LN1_NEG, LN1_POS, LN_NEG, LN_POS, MEAN_PAD, UNIFORM, Context, Forms,
                               LayerPlan)
from . import targets


def plan_layers(program, steps, ctx: Context) -> tuple[list[LayerPlan], list[int]]:
    """The distinct layer plans and the order applying them (one entry per scheduled layer).

    Two layers are one stored layer when their instructions are equal as data (every register name, shape and
    constant, ``Instruction.to_data``) in the same order, after the same dirty rows: then their plans are
    equal, whatever objects or printed text the instructions have.
    """
    plans: list[LayerPlan] = []
    known: dict[tuple, int] = {}
    order: list[int] = []
    dirty: frozenset[int] = frozenset()
    data: dict[int, str] = {}  # id -> the instruction as data, worked out once per object (a block repeats them)

    def as_data(ins) -> str:
        if id(ins) not in data:
            data[id(ins)] = repr(to_data(ins))
        return data[id(ins)]

    for step in steps:
        attention = [program.instructions[k] for k in step.attention]
        mlp = [program.instructions[k] for k in step.mlp]
        key = (tuple(map(as_data, attention)), tuple(map(as_data, mlp)), dirty)
        if key not in known:
            known[key] = len(plans)
            plans.append(plan_layer(attention, mlp, ctx, dirty))
        order.append(known[key])
        dirty = frozenset(plans[order[-1]].dirty)
    return plans, order


def plan_layer(attention: list, mlp: list, ctx: Context, dirty: frozenset[int]) -> LayerPlan:
    """One layer: ``attention`` (composed in order), then ``mlp`` (one MLP group).

    ``dirty`` are the rows the previous layer left nonzero for its own use;
    this layer resets them first.
    """
    plan = LayerPlan(tuple(attention) + tuple(mlp))
    forms = Forms()
    for r in sorted(dirty):
        forms.set(r, {})
    ln1 = ctx.target.begin_layer(plan, ctx, dirty)
    for ins in attention:
        ins.compose(ctx, forms)
        plan.reports.append(_attention_report(ins, ctx, forms, ln1))
    plan.constants["attention_sharpness"] = ctx.sharpness
    if mlp:
        if len({ins.mlp_group() for ins in mlp}) != 1:
            raise ValueError(f"one MLP runs one group of instructions (products, or divisions by one divisor), got "
                             f"{'; '.join(map(str, mlp))}")
        type(mlp[0]).plan_mlp(mlp, ctx, forms, plan, [])
        _centre(ctx, forms)
    if mlp and ln1 != (0.0, 0.0):
        plan.reports[len(attention):] = [(text, targets.mlp_error(ins, ctx, ln1, error, bound), bound)
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


def _attention_report(ins, ctx: Context, forms: Forms, ln1: tuple[float, float]) -> tuple[str, float, float]:
    """An attention instruction's a-priori error on each entry it writes: the attention leak of each selecting
    head, the averaging head's weights and sum (``instructions.avg``: ``u + gamma_T`` on its part of the form, T
    the prompt's columns) and the rounding of the composed form (``terms`` products), on the form's scale ``sum
    |coef| B_row + |bias|``; and the target's layer norm before attention, if any (``ln1``: its relative error
    and its error per unit of coefficient)."""
    rows = ctx.rows(ins.writes)
    label = {r: name for name in ctx.layout.names for r in ctx.rows(name)}
    u = ctx.eps / 2
    worst = 0.0
    for w in rows:
        form, bias = forms.value(w)
        scale = sum(abs(c) * ctx.bounds[label[r]] for (_, r), c in form.items()) + abs(bias) + ctx.bounds[ins.writes]
        averaged = sum(abs(c) * ctx.bounds[label[r]] for (o, r), c in form.items() if o == UNIFORM)
        heads = len({o for o, _ in form if o != UNIFORM}) + 1
        norm = ln1[0] * scale + ln1[1] * (sum(abs(c) for c in form.values()) + 1)
        mean = (u + ctx.tokens * u / (1 - ctx.tokens * u)) * (1 + u) * averaged
        worst = max(worst, 2 * heads * ctx.leak * scale + (len(form) + 3) * ctx.eps * scale + mean + norm)
    return str(ins), worst, ctx.bounds[ins.writes]


def offsets(plan: LayerPlan, heads: int) -> tuple[int, ...]:
    """The column offset each head reads: the other offsets first (the averaging head's ``UNIFORM`` before them),
    the self head (offset 0) last, unused heads (offset 0, writing nothing) in front (so an unfused mov layer is
    [source, self])."""
    found = sorted(o for o in plan.heads if o != 0) + [0]
    return (0,) * (heads - len(found)) + tuple(found)
