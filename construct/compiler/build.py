"""Compile a program into a transformer: a short pipeline of named stages, each a module of this package.

    domain     bounds.Bounds        the bound of every register, the floor of every divisor
    schedule   schedule.fused       which instructions share a layer (one each with fuse=False)
    layout     layout.extend        the program's rows and the rows the mechanisms need
    constants  constants.context    the scale constants for the dtype and the domain
    plans      plans.plan_layers    each distinct layer as logical pieces, repeated layers once
    size       size.check           refused before anything large is allocated
    assemble   assemble.assemble    dense paper-form weights, tied along their order
    target     targets.*.finish     the architecture's own weights (GPT-2 blocks), if not the paper's

The result (``compiled.CompiledNetwork``) runs through a forward pass that
knows nothing about regression (``construct.transformer``).
"""

from __future__ import annotations

import numpy as np

from ..raw.program import Program
from . import certificate, schedule, size, targets
from .assemble import assemble, shape
from .bounds import Bounds
from .compiled import CompiledNetwork, LayerReport
from .constants import LN_EPS, checked_constants, context
from .layout import extend
from .plans import offsets, plan_layers

REVISION = 4  # bumped whenever compile's output for the same program, bounds and dtype changes (3: ridge is RLS; 4: fused)


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


def compile(program: Program, bounds: Bounds | None = None, *, x_max: float | None = None, y_max: float | None = None,
            x_norm: float | None = None, dtype=np.float64, fuse: bool = True, architecture: str = "paper",
            max_bytes: float | None = size.DEFAULT_MAX_BYTES, scale_constants: dict | None = None) -> "CompiledNetwork":
    """A transformer for ``program``, built for a domain: its instructions scheduled into layers.

    Arguments come in four groups: the program; its domain (``bounds``, or
    the input box ``x_max``, ``y_max``, ``x_norm``); the network (``dtype``,
    ``fuse``, ``architecture``); and the limits and fidelity of the build
    (``max_bytes``, ``scale_constants``). All but the first two are keywords.

    The domain is either the input box, ``x_max`` (every entry of every x),
    ``y_max`` (every label) and optionally ``x_norm`` (every ``|x|_2``), from
    which ``Bounds.for_inputs`` derives every register's bound by the
    program's theory (programs of ``construct.programs`` only), or
    ``bounds`` (explicit ``Bounds``, or ``Bounds.calibrate`` on sample tasks).

    ``fuse`` packs instructions into as few layers as the architecture allows
    (``schedule.fused``); ``fuse=False`` gives one layer per instruction, the
    paper's construction. Identical layers are stored once either way.
    Refuses (``SizeError``) before allocating the weights if building and
    running the network would need more than ``max_bytes`` (None: no limit).
    ``scale_constants`` replaces the constants of ``constants.CHOSEN``, which
    the compiler otherwise chooses by evaluating ``log``, ``erf`` and powers
    (whose last bit may differ between platforms): ``load`` passes a file's
    own, so that a file rebuilds bit for bit on any machine.

    ``architecture="gpt2"`` builds standard GPT-2 blocks instead of the
    paper's layer (``targets``): the network's ``gpt2`` weights are what
    ``predict``, ``trace`` and the certificate run, and ``weights`` the same
    layers in the paper's form, tied, from which they are derived.
    """
    if not isinstance(program, Program):
        raise TypeError(f"compile takes a Program, got {type(program).__name__}")
    target = targets.target(architecture)
    bounds = _domain(program, bounds, dtype, x_max, y_max, x_norm)
    steps, plans, order, ctx = _plan(program, bounds, dtype, scale_constants, fuse, target)
    dims = shape(plans, order, ctx, program)
    what = f"{program.name} (d = {program.d}, n = {program.n}, {ctx.dtype})"
    size.check(dims, max_bytes, what)
    target.check_size(dims, lambda s: size.check(s, max_bytes, what), ctx)
    weights = assemble(plans, order, ctx, program, dims)
    converted, extra = target.finish(weights, plans, order, ctx, program, dims)
    reports = tuple(LayerReport(k, tuple(plans[u].reports), plans[u].constants) for k, u in enumerate(order, 1))
    constants = {
        "attention_sharpness": ctx.sharpness, "product_scale": ctx.product_scale,
        "bypass_offset": ctx.bypass_offset, "ln_pad": ctx.ln_pad, "ln_eps": LN_EPS,
        "column_sum_sq": ctx.sum_sq, "width": ctx.layout.width, **extra,
    }
    mechanisms = tuple(certificate.LayerMechanism(offsets(plans[u], dims.heads), tuple(plans[u].mechanisms),
                                                  plans[u].ln_scale, target.attention_scale(plans[u]))
                       for u in order)
    return CompiledNetwork(program, weights, ctx.layout, bounds, constants, reports, mechanisms, steps, converted,
                           target)


def estimate(program: Program, bounds: Bounds | None = None, *, x_max: float | None = None,
             y_max: float | None = None, x_norm: float | None = None, dtype=np.float64, fuse: bool = True,
             architecture: str = "paper") -> size.Size:
    """The shapes and cost of ``compile`` with the same arguments, from the layer plans alone (nothing dense)."""
    if not isinstance(program, Program):
        raise TypeError(f"estimate takes a Program, got {type(program).__name__}")
    target = targets.target(architecture)
    _, plans, order, ctx = _plan(program, _domain(program, bounds, dtype, x_max, y_max, x_norm), dtype, None, fuse,
                                 target)
    return shape(plans, order, ctx, program)


def _plan(program: Program, bounds: Bounds, dtype, scale_constants: dict | None, fuse: bool, target):
    """The stages up to the plans: schedule, layout, constants, plans. A target may widen the layout once the first
    plans' shape is known (GPT-2: heads of width / heads), and the plans are made again for it."""
    bounds.require(program)
    for k, ins in enumerate(program.instructions, start=1):
        if ins.symbolic:
            raise ValueError(f"instruction {k} ({ins}) has symbolic constants; compile needs numbers")
    steps = schedule.fused(program) if fuse else schedule.unfused(program)
    chosen = checked_constants(scale_constants, dtype)
    layout = extend(program, steps, target)
    ctx = context(program, bounds, dtype, steps, layout, chosen, target)
    plans, order = plan_layers(program, steps, ctx)
    wider = target.widen(layout, shape(plans, order, ctx, program))
    if wider is not None:
        ctx = context(program, bounds, dtype, steps, wider, chosen, target)
        plans, order = plan_layers(program, steps, ctx)
    return steps, plans, order, ctx
