"""Compile a program into a transformer: a short pipeline of named stages, each a module of this package.

    early      check_early          a long program sized from its first blocks, refused before planning
    domain     bounds.Bounds        the bound of every register, the floor of every divisor
    schedule   schedule.fused       which instructions share a layer (one each with fuse=False)
    layout     layout.extend        the program's rows and the rows the mechanisms need
    constants  constants.context    the scale constants for the dtype and the domain
    plans      plans.plan_layers    each distinct layer as logical pieces, repeated layers once
    size       size.check           refused before anything large is allocated (memory, time)
    assemble   assemble.assemble    dense paper-form weights, tied along their order
    target     targets.*.finish     the architecture's own weights (GPT-2 blocks), if not the paper's

The result (``compiled.CompiledNetwork``) runs through a forward pass that
knows nothing about regression (``construct.transformer``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..raw.program import Program
from . import certificate, schedule, size, targets
from .assemble import assemble, shape
from .bounds import Bounds, FloatRangeError
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
            max_bytes: float | None = size.DEFAULT_MAX_BYTES, max_seconds: float | None = size.DEFAULT_MAX_SECONDS,
            scale_constants: dict | None = None) -> "CompiledNetwork":
    """A transformer for ``program``, built for a domain: its instructions scheduled into layers.

    Arguments come in four groups: the program; its domain (``bounds``, or
    the input box ``x_max``, ``y_max``, ``x_norm``); the network (``dtype``,
    ``fuse``, ``architecture``); and the limits and fidelity of the build
    (``max_bytes``, ``max_seconds``, ``scale_constants``). All but the first
    two are keywords.

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
    (``check_early``). A domain whose constants or weights the dtype cannot
    hold is refused with a ``FloatRangeError`` that gives the bounds' range.
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
    check_early(program, dtype, fuse, architecture, max_bytes, max_seconds)
    bounds = _domain(program, bounds, dtype, x_max, y_max, x_norm)
    steps, plans, order, ctx = _plan(program, bounds, dtype, scale_constants, fuse, target)
    dims = shape(plans, order, ctx, program)
    _check_size(dims, program, target, max_bytes, max_seconds)
    try:
        weights = assemble(plans, order, ctx, program, dims)
    except OverflowError as err:
        raise _out_of_range(program, bounds, dtype, str(err)) from None
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


def _check_size(dims: size.Size, program: Program, target, max_bytes, max_seconds) -> None:
    what = f"{program.name} (d = {program.d}, n = {program.n}, {np.dtype(dims.dtype)})"
    size.check(dims, max_bytes, what, max_seconds)
    target.check_size(dims, lambda s: size.check(s, max_bytes, what, max_seconds))


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
    target = targets.target(architecture)
    if program.block is not None and program.n > 4:
        sizes = _block_sizes(program.truncated, 4, dtype, fuse, architecture)
        if _extrapolated(sizes[:3], 4) == sizes[3]:
            _check_size(_extrapolated(sizes[:3], program.n), program, target, max_bytes, max_seconds)
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
                  {ins.divisor: 1.0 for ins in program.instructions if ins.divisor})


def _block_sizes(build: Callable[[int], Program], blocks: int, dtype, fuse: bool, architecture: str):
    return [estimate(p, _unit_bounds(p), dtype=dtype, fuse=fuse, architecture=architecture)
            for p in map(build, range(1, blocks + 1))]


def _extrapolated(sizes: list[size.Size], n: int) -> size.Size:
    if n <= len(sizes):
        return sizes[n - 1]
    depth = sizes[0].applied + (n - 1) * (sizes[1].applied - sizes[0].applied)
    return dataclasses.replace(sizes[-1], depth=depth, tokens=2 * n + 1)


def estimate_repeated(build: Callable[[int], Program], n: int, dtype=np.float64, fuse: bool = True,
                      architecture: str = "paper") -> size.Size:
    """The shapes of ``compile(build(n), bounds, dtype=dtype, fuse=fuse)``, whatever the bounds, from
    ``build(1..3)``.

    ``build(k)`` is the program for k examples (a program of the library
    with its parameters). Depth grows by the same layers per example from
    n = 1 on (the schedule repeats one block per example); the stored
    layers are those of ``min(n, 3)`` examples (a first, a repeated and a
    last block). The command line sizes its networks so, and ``compile``
    a long program with a declared block (``check_early``).
    """
    return _extrapolated(_block_sizes(build, min(n, 3), dtype, fuse, architecture), n)


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
    ctx, plans, order = _planned(program, bounds, dtype, steps, layout, chosen, target)
    wider = target.widen(layout, shape(plans, order, ctx, program))
    if wider is not None:
        ctx, plans, order = _planned(program, bounds, dtype, steps, wider, chosen, target)
    return steps, plans, order, ctx


def _planned(program: Program, bounds: Bounds, dtype, steps, layout, chosen: dict, target):
    """The constants and the plans, with a constant the dtype cannot hold (the pads dominate squared bounds, the
    products divide by bounds) refused as the domain's fault."""
    try:
        with np.errstate(over="raise"):
            ctx = context(program, bounds, dtype, steps, layout, chosen, target)
            return (ctx, *plan_layers(program, steps, ctx))
    except (OverflowError, ZeroDivisionError, FloatingPointError):
        raise _out_of_range(program, bounds, dtype, "a constant overflows") from None


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
