"""Compile a program into a transformer: its instructions scheduled into layers, each layer real.

``compile(program, bounds)`` (or ``compile(program, x_max=..., y_max=...)``,
the domain derived from the input box) schedules the instructions into
layers (``schedule``: fused by default, one per layer with ``fuse=False``),
extends the program's layout with the rows the mechanisms need, chooses the
scale constants for the dtype (``scales``), plans each layer (``blocks``)
and assembles the plans into dense weights (``construct.transformer.Weights``).
A layer whose plan equals an earlier one's (a program's repeated block,
once the schedule is periodic) is stored once and applied again: the
weights' ``order``. The result (``compiled.CompiledNetwork``) runs through a
forward pass that knows nothing about regression (``construct.transformer``).

Rows the compiler adds to the program's layout:

* ``one`` (1), ``pos_sq`` (j^2): with the program's ``pos`` (j) they make
  attention one-hot (keys ``[j, j^2]``, queries ``N_att [2 (i - offset), -1]``);
* ``ln_pad_pos``, ``ln_pad_neg`` (``+N``, ``-N``): permanent pads that make
  layer norm a known scaling (Lemma 6);
* ``zero``: always 0; MLP weights put a compensating weight on it so they
  sum to zero over the rows and layer norm's mean subtraction drops out;
* ``mean_pad``: minus the sum of the other rows, written before each layer
  norm that matters, so the mean it subtracts is tiny (``blocks.centre``);
* ``div_pad_pos``, ``div_pad_neg``: the division pads (Lemma 8), if any div;
* ``scratch``: copies of an operand a mul or div overwrites, if any;
* for the GPT-2 target only (``gpt2``): ``ln1_pad_pos``, ``ln1_pad_neg``
  (``+-N_1``, from a div layer's MLP to the next layer's attention, if any
  div) and ``width_pad`` (zero rows: the width a multiple of the heads).

All of them are written by the position table or by layers, and every
layer's effect on the program's registers is exactly its instruction's.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..raw.instructions import Aff, Div, Mul
from ..raw.program import Program
from ..raw.prompt import POS, X_IN, Y_IN
from ..raw.registers import Register
from ..transformer.weights import Weights
from . import blocks, certificate, gpt2, scales, schedule, size
from .blocks import (DIV_NEG, DIV_POS, LN1_NEG, LN1_POS, LN_NEG, LN_POS, MEAN_PAD, ONE, POS_SQ, SCRATCH, WIDTH_PAD,
                     ZERO, Context, LayerPlan)
from .bounds import Bounds, FloatRangeError
from .compiled import CompiledNetwork, LayerReport

MIN_HEADS = 2  # the paper's layer: a head that reads another column, and one that reads its own
LN_EPS = 1e-5


def _copied(program: Program, step: schedule.Step) -> list[str]:
    """Operands a layer's MLP overwrites while reading them (copied to scratch first, ``blocks._read_rows``), with
    repeats: an instruction's own output, or another's of the same MLP."""
    mlp = [program.instructions[k] for k in step.mlp]
    written = {ins.writes for ins in mlp}
    out = []
    for ins in mlp:
        reads = [ins.a, ins.b] if isinstance(ins, Mul) else [ins.num]
        out += [name for name in reads if name in written]
    return out


def _compiler_registers(program: Program, steps, architecture: str) -> list[Register]:
    regs = [Register(name, (1,)) for name in (ONE, POS_SQ, LN_POS, LN_NEG, ZERO, MEAN_PAD)]
    if any(isinstance(ins, Div) for ins in program.instructions):
        regs += [Register(DIV_POS, (1,)), Register(DIV_NEG, (1,))]
        if architecture == "gpt2":
            regs += [Register(LN1_POS, (1,)), Register(LN1_NEG, (1,))]
    room = max([sum(program.layout[name].size for name in _copied(program, step)) for step in steps] + [0])
    if room:  # both operands of a square like w <- w @ w, and every in-place product of a fused layer
        regs.append(Register(SCRATCH, (room,)))
    clash = [r.name for r in regs if r.name in program.layout]
    if clash:
        raise ValueError(f"program registers {clash} clash with the compiler's own registers; rename them")
    return regs


REVISION = 4  # bumped whenever compile's output for the same program, bounds and dtype changes (3: ridge is RLS; 4: fused)
CHOSEN = ("attention_sharpness", "product_scale", "bypass_offset")  # constants chosen by evaluating log, erf, pow


def _domain(program: Program, bounds: Bounds | None, dtype, x_max=None, y_max=None, x_norm=None) -> Bounds:
    """The domain to compile for: ``bounds`` as given, or ``Bounds.for_inputs`` from the input box (not both)."""
    box = {"x_max": x_max, "y_max": y_max, "x_norm": x_norm}
    given = sorted(k for k, v in box.items() if v is not None)
    if bounds is not None:
        if given:
            raise ValueError(f"give the domain either as bounds or as the input box (x_max, y_max), not both; "
                             f"got bounds and {', '.join(given)}")
        if not isinstance(bounds, Bounds):
            raise TypeError(f"bounds must be a Bounds, got {type(bounds).__name__}")
        return bounds
    if x_max is None or y_max is None:
        raise ValueError(
            "compile needs the network's domain: the input box, compile(program, x_max=..., y_max=...) (optionally "
            "x_norm=..., a bound on |x|_2), from which the program's theory bounds every register; or bounds, "
            "Bounds(values, floors) or Bounds.calibrate(program, tasks)"
            + (f"; got only {', '.join(given)}" if given else ""))
    return Bounds.for_inputs(program, x_max, y_max, x_norm, dtype=dtype)


def compile(program: Program, bounds: Bounds | None = None, dtype=np.float64,
            max_bytes: float | None = size.DEFAULT_MAX_BYTES, scale_constants: dict | None = None,
            fuse: bool = True, *, x_max: float | None = None, y_max: float | None = None,
            x_norm: float | None = None, architecture: str = "paper",
            max_seconds: float | None = size.DEFAULT_MAX_SECONDS) -> "CompiledNetwork":
    """A transformer for ``program``, built for a domain: its instructions scheduled into layers.

    The domain is either the input box, ``x_max`` (every entry of every x),
    ``y_max`` (every label) and optionally ``x_norm`` (every ``|x|_2``), from
    which ``Bounds.for_inputs`` derives every register's bound by the
    program's theory (programs of ``construct.programs`` only), or
    ``bounds`` (explicit ``Bounds``, or ``Bounds.calibrate`` on sample tasks).

    ``fuse`` packs instructions into as few layers as the architecture allows
    (``schedule.fused``); ``fuse=False`` gives one layer per instruction, the
    paper's construction. Identical layers are stored once either way.
    Refuses (``SizeError``) before allocating the weights if building and
    running the network would need more than ``max_bytes``, or compiling it
    would take longer than ``max_seconds`` (``size.Size.compile_seconds``;
    None: no limit); a long program is refused before its layers are planned
    (``check_early``).
    ``scale_constants`` replaces the constants of ``CHOSEN``, which the
    compiler otherwise chooses by evaluating ``log``, ``erf`` and powers
    (whose last bit may differ between platforms): ``load`` passes a file's
    own, so that a file rebuilds bit for bit on any machine. Everything
    else in the weights is exact arithmetic on the program and the bounds.

    ``architecture="gpt2"`` builds standard GPT-2 blocks instead of the
    paper's layer (``gpt2``): the network's ``gpt2`` weights are what
    ``predict``, ``trace`` and the certificate run, and ``weights`` the same
    layers in the paper's form, tied, from which they are derived.
    """
    if not isinstance(program, Program):
        raise TypeError(f"compile takes a Program, got {type(program).__name__}")
    if architecture not in gpt2.ARCHITECTURES:
        raise ValueError(f"architecture must be one of {gpt2.ARCHITECTURES}, got {architecture!r}")
    check_early(program, dtype, fuse, architecture, max_bytes, max_seconds)
    bounds = _domain(program, bounds, dtype, x_max, y_max, x_norm)
    steps, plans, order, ctx = _plan(program, bounds, dtype, scale_constants, fuse, architecture)
    shape = _size(plans, order, ctx, program)
    _check_size(shape, program, architecture, max_bytes, max_seconds)
    weights = _assemble(plans, order, ctx, program, shape, bounds)
    reports = tuple(LayerReport(k, tuple(plans[u].reports), plans[u].constants) for k, u in enumerate(order, 1))
    constants = {
        "attention_sharpness": ctx.sharpness, "product_scale": ctx.product_scale,
        "bypass_offset": ctx.bypass_offset, "ln_pad": ctx.ln_pad, "ln_eps": LN_EPS,
        "column_sum_sq": ctx.sum_sq, "width": ctx.layout.width,
    }
    target = None
    if architecture == "gpt2":
        final_scale = ctx.ln1_scale if _leaves_ln1_pads(plans[order[-1]]) else ctx.ln_scale
        constants.update(architecture="gpt2", ln1_pad=ctx.ln1_pad, ln_f_scale=final_scale,
                         head_dim=ctx.layout.width // shape.heads)
        target = gpt2.to_gpt2(weights, [p.ln1_scale for p in plans], final_scale, ctx.layout.span(ZERO)[0],
                              ctx.layout.span(program.readout)[0])
    mechanisms = tuple(certificate.LayerMechanism(_offsets(plans[u], shape.heads), tuple(plans[u].mechanisms),
                                                  plans[u].ln_scale, plans[u].ln1_scale if target else None)
                       for u in order)
    return CompiledNetwork(program, weights, ctx.layout, bounds, constants, reports, mechanisms, steps, target)


def _leaves_ln1_pads(plan: LayerPlan) -> bool:
    """A GPT-2 div layer's MLP leaves the pads +-N_1 for the next layer norm (``gpt2``, point 2)."""
    return any(isinstance(ins, Div) for ins in plan.instructions)


def _check_size(shape: size.Size, program: Program, architecture: str, max_bytes, max_seconds) -> None:
    what = f"{program.name} (d = {program.d}, n = {program.n}, {np.dtype(shape.dtype)})"
    size.check(shape, max_bytes, what, max_seconds)
    if architecture == "gpt2":  # untied: every applied layer stored, heads of width / heads
        untied = dataclasses.replace(shape, layers=shape.applied, depth=None, head_size=shape.width // shape.heads)
        size.check(untied, max_bytes, what, max_seconds)


EARLY_SECONDS = 0.05  # below this much scheduling, planning the program itself is the quickest estimate


def check_early(program: Program, dtype=np.float64, fuse: bool = True, architecture: str = "paper",
                max_bytes: float | None = size.DEFAULT_MAX_BYTES,
                max_seconds: float | None = size.DEFAULT_MAX_SECONDS) -> None:
    """Refuse (``SizeError``) a long program above the limits before its layers are planned.

    Scheduling and planning take time in proportion to the instructions
    (``size.SCHEDULE_SECONDS`` each), which the exact size needs. A program
    whose repeated ``block`` is declared (``construct.programs``' sgd and
    ridge) is sized from its first blocks (``estimate_repeated``), once a
    fourth block confirms that each adds the same layers; any other is
    refused when its instructions alone would take longer than
    ``max_seconds`` to schedule.
    """
    size.check_limits(max_bytes, max_seconds)
    count = len(program.instructions)
    if count * size.SCHEDULE_SECONDS < EARLY_SECONDS:
        return
    if program.block is not None and program.n > 4:
        sizes = _block_sizes(program.truncated, 4, dtype, fuse, architecture)
        if _extrapolated(sizes[:3], 4) == sizes[3]:
            _check_size(_extrapolated(sizes[:3], program.n), program, architecture, max_bytes, max_seconds)
            return
    seconds = count * size.SCHEDULE_SECONDS
    if max_seconds is not None and seconds > max_seconds:
        raise size.SizeError(
            f"{program.name} (d = {program.d}, n = {program.n}) has {count:,} instructions: scheduling them would "
            f"take more than {size.duration(seconds)} ({size.SCHEDULE_SECONDS * 1e6:g} microseconds each), above "
            f"the limit of {max_seconds:g} s; raise the limit (compile(..., max_seconds=...)) to wait for it")


def _unit_bounds(program: Program) -> Bounds:
    """Bounds of 1 everywhere: shapes do not depend on the bounds, and planning needs some."""
    return Bounds(dict.fromkeys(program.layout.names, 1.0),
                  {ins.den: 1.0 for ins in program.instructions if isinstance(ins, Div)})


def _block_sizes(build: Callable[[int], Program], blocks: int, dtype, fuse: bool, architecture: str):
    return [estimate(p, _unit_bounds(p), dtype, fuse=fuse, architecture=architecture)
            for p in map(build, range(1, blocks + 1))]


def _extrapolated(sizes: list[size.Size], n: int) -> size.Size:
    if n <= len(sizes):
        return sizes[n - 1]
    depth = sizes[0].applied + (n - 1) * (sizes[1].applied - sizes[0].applied)
    return dataclasses.replace(sizes[-1], depth=depth, tokens=2 * n + 1)


def estimate_repeated(build: Callable[[int], Program], n: int, dtype=np.float64, fuse: bool = True,
                      architecture: str = "paper") -> size.Size:
    """The shapes of ``compile(build(n), bounds, dtype, fuse=fuse)``, whatever the bounds, from ``build(1..3)``.

    ``build(k)`` is the program for k examples (a program of the library
    with its parameters). Depth grows by the same layers per example from
    n = 1 on (the schedule repeats one block per example); the stored
    layers are those of ``min(n, 3)`` examples (a first, a repeated and a
    last block). The command line sizes its networks so, and ``compile``
    a long program with a declared block (``check_early``).
    """
    return _extrapolated(_block_sizes(build, min(n, 3), dtype, fuse, architecture), n)


def estimate(program: Program, bounds: Bounds | None = None, dtype=np.float64, fuse: bool = True, *,
             x_max: float | None = None, y_max: float | None = None, x_norm: float | None = None,
             architecture: str = "paper") -> size.Size:
    """The shapes and cost of ``compile`` with the same arguments, from the layer plans alone (nothing dense)."""
    if not isinstance(program, Program):
        raise TypeError(f"estimate takes a Program, got {type(program).__name__}")
    if architecture not in gpt2.ARCHITECTURES:
        raise ValueError(f"architecture must be one of {gpt2.ARCHITECTURES}, got {architecture!r}")
    _, plans, order, ctx = _plan(program, _domain(program, bounds, dtype, x_max, y_max, x_norm), dtype, fuse=fuse,
                                 architecture=architecture)
    return _size(plans, order, ctx, program)


def chosen_constants(dtype) -> dict[str, float]:
    """The constants of ``CHOSEN`` as this machine's compiler picks them for ``dtype``."""
    return {"attention_sharpness": scales.attention_sharpness(dtype), "product_scale": scales.product_scale(dtype),
            "bypass_offset": scales.bypass_offset(dtype)}


def _checked_constants(given: dict | None, dtype) -> dict[str, float]:
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


def _plan(program: Program, bounds: Bounds, dtype, scale_constants: dict | None = None, fuse: bool = True,
          architecture: str = "paper"):
    """The schedule, the distinct layer plans, the order applying them, and the context they were planned in.

    A layer's plan depends on its instructions and on the rows the layer
    before left dirty, nothing else; planning each distinct pair once makes
    compiling a program's repeated block cost the same whatever n. The GPT-2
    target plans twice: the heads and head size the first plans need fix the
    width (``gpt2``, point 4), which the pads' sizes depend on.
    """
    bounds.require(program)
    for k, ins in enumerate(program.instructions, start=1):
        if isinstance(ins, Aff) and any(c.dtype == object for c in [*(w for _, w, _ in ins.terms), ins.bias]
                                        if c is not None):
            raise ValueError(f"instruction {k} ({ins}) has symbolic constants; compile needs numbers")
    steps = schedule.fused(program) if fuse else schedule.unfused(program)
    chosen = _checked_constants(scale_constants, dtype)
    layout = program.layout.extended(_compiler_registers(program, steps, architecture))
    plans, order, ctx = _plans(program, bounds, dtype, steps, layout, chosen, architecture)
    if architecture == "gpt2":
        shape = _size(plans, order, ctx, program)
        head_dim = max(shape.head_size, -(-layout.width // shape.heads))
        if shape.heads * head_dim > layout.width:
            layout = layout.extended([Register(WIDTH_PAD, (shape.heads * head_dim - layout.width,))])
            plans, order, ctx = _plans(program, bounds, dtype, steps, layout, chosen, architecture)
    return steps, plans, order, ctx


def _out_of_range(program: Program, bounds: Bounds, dtype, reason: str) -> FloatRangeError:
    """A domain whose constants ``dtype`` cannot hold, named by its range of bounds."""
    values = bounds.values
    low, high = min(values, key=values.get), max(values, key=values.get)
    floors = f", divisor floors down to {min(bounds.floors.values()):.3g}" if bounds.floors else ""
    return FloatRangeError(
        f"{program.name} (d = {program.d}, n = {program.n}) cannot be compiled in {np.dtype(dtype)} for this domain "
        f"({reason}): its bounds run from {values[low]:.3g} (register {low!r}) to {values[high]:.3g} (register "
        f"{high!r}){floors}, {bounds.source}; bounds and floors nearer 1 (data rescaled towards 1) keep the "
        "constants in range",
        reason)


def _plans(program: Program, bounds: Bounds, dtype, steps, layout, chosen: dict, architecture: str):
    """``_planned``, with a constant float64 cannot hold (the pads dominate squared bounds, the products divide by
    bounds) refused as the domain's fault."""
    try:
        with np.errstate(over="raise"):
            return _planned(program, bounds, dtype, steps, layout, chosen, architecture)
    except (OverflowError, ZeroDivisionError, FloatingPointError):
        raise _out_of_range(program, bounds, dtype, "a constant overflows") from None


def _planned(program: Program, bounds: Bounds, dtype, steps, layout, chosen: dict, architecture: str):
    eps = scales.machine_eps(dtype)
    T = 2 * program.n + 1
    values = dict(bounds.values)
    values.update({ONE: 1.0, POS_SQ: float((T - 1) ** 2), ZERO: 0.0})
    if WIDTH_PAD in layout:
        values[WIDTH_PAD] = 0.0
    if SCRATCH in layout:
        values[SCRATCH] = max(values[name] for step in steps for name in _copied(program, step))
    values[MEAN_PAD] = sum(layout[name].size * values[name] for name in values if name in layout)
    sum_sq = sum(layout[name].size * values[name] ** 2 for name in values if name in layout)
    ln_pad, ln_scale = scales.pad_size(sum_sq, layout.width, LN_EPS, dtype)
    ctx = Context(
        layout=layout, bounds=values, floors=dict(bounds.floors), eps=eps, dtype=np.dtype(dtype),
        sharpness=chosen["attention_sharpness"], product_scale=chosen["product_scale"],
        bypass_offset=chosen["bypass_offset"], ln_pad=ln_pad, ln_scale=ln_scale,
        ln_eps=LN_EPS, sum_sq=sum_sq, architecture=architecture,
    )
    if LN1_POS in layout:
        extra = gpt2.division_pad_square(ctx, {ins.den for ins in program.instructions if isinstance(ins, Div)})
        ln1_pad, ln1_scale = scales.pad_size(sum_sq + extra, layout.width, LN_EPS, dtype)
        ctx = dataclasses.replace(ctx, ln1_pad=ln1_pad, ln1_scale=ln1_scale, ln1_extra=extra)
    plans: list[LayerPlan] = []
    known: dict[tuple, int] = {}
    order: list[int] = []
    dirty: frozenset[int] = frozenset()
    for step in steps:
        attention = [program.instructions[k] for k in step.attention]
        mlp = [program.instructions[k] for k in step.mlp]
        key = (tuple(map(id, attention)), tuple(map(id, mlp)), dirty)  # a repeated block reuses its objects
        if key not in known:
            known[key] = len(plans)
            plans.append(blocks.plan_layer(attention, mlp, ctx, set(dirty)))
        order.append(known[key])
        dirty = frozenset(plans[order[-1]].dirty)
    return plans, order, ctx


def _offsets(plan: LayerPlan, heads: int) -> tuple[int, ...]:
    """The column offset each head reads: the other offsets first, the self head (offset 0) last, unused heads
    (offset 0, writing nothing) in front (so an unfused mov layer is [source, self])."""
    offsets = sorted(o for o in plan.heads if o != 0) + [0]
    return (0,) * (heads - len(offsets)) + tuple(offsets)


def _size(plans: list[LayerPlan], order: list[int], ctx: Context, program: Program) -> size.Size:
    """The dense shapes the plans need: heads from the most offsets a layer reads, head size from the most rows a
    head writes, MLP width from the most units."""
    return size.Size(
        layers=len(plans), heads=max([MIN_HEADS] + [len(p.heads) + (0 not in p.heads) for p in plans]),
        width=ctx.layout.width,
        head_size=max([2] + [len(rows) for p in plans for rows in p.heads.values()]),
        mlp_width=max([1] + [len(p.units) for p in plans]), tokens=2 * program.n + 1, inputs=program.d + 1,
        dtype=ctx.dtype, depth=len(order),
    )


def _assemble(plans: list[LayerPlan], order: list[int], ctx: Context, program: Program, shape: size.Size,
              bounds: Bounds) -> Weights:
    """The one step that turns logical plans into dense arrays (float64, then the target dtype)."""
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
        for h, offset in enumerate(_offsets(plan, m)):
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
        raise _out_of_range(program, bounds, ctx.dtype, f"weights: {bad[0]} has non-finite entries")
    return Weights(**arrays, ln_gain=np.ones((L, D), ctx.dtype), ln_bias=np.zeros((L, D), ctx.dtype), ln_eps=LN_EPS,
                   order=np.array(order, dtype=np.int64))
