"""What a command will cost, estimated before it starts, and the limits that refuse it.

Before it reads a large file, calibrates, compiles or allocates anything,
every command that builds networks (demo, predict, export, trace, bench)
estimates the memory and the time of each of its steps, and refuses
(``SizeError``, exit code 2) when the total is above ``--max-memory``
(default 4 GiB, the library's ``compile`` limit) or ``--max-seconds``
(default 120 s; 3600 s for bench, whose full table takes minutes). The
message gives the estimate, its steps and the option that raises the limit.

**Shapes** come from ``construct.compiler.estimate_repeated``, which plans
the layers and allocates nothing. They do not depend on the domain's
bounds, and with n only the depth (a block of instructions per example) and
the prompt length grow, so a network for n examples is sized from its
programs for n = 1 to 3 (``network``); a test checks this against the real
programs. ``compile`` sizes a long program the same way and refuses it
above its own ``max_bytes`` and ``max_seconds`` (which the commands pass
on), with the compiling time below. Cost grows with d, so a large d is first sized at d / 2, d / 4, ...
and refused as soon as one of those is already too large (``affordable``):
planning a network for d = 1000 alone would take minutes.

**The model**, per network (W: the program's rows, the exact machine's
state; T = 2n + 1 tokens; L layers of width D with m heads; C calibration
tasks)::

    step                      memory                             time
    the process itself        0.3 GB after its imports (measured)
    reading a CSV file        48 bytes per byte of text           bytes / READ_RATE
    calibration on C tasks    4 C W T floats, and the tasks       L (C W T / MACHINE_RATE + STEP_SECONDS)
    compiling                 twice the weights (a cast copy)     weight bytes / ASSEMBLY_RATE + L STEP_SECONDS
    one forward pass          twice Size.forward_bytes            flops / FLOP_RATE + L m T^2 / ATTENTION_RATE
                                                                    + L STEP_SECONDS

**The rates** were measured on this project's 2-core machine while other
jobs kept it busy (load about 6), numpy with one BLAS thread, and rounded
down: the exact machine updated 1.3e8 to 4.4e8 register entries per second
on 256 tasks; compiling assembled 1.3e8 to 2.6e8 bytes of weights per
second; a forward pass did 0.5e9 to 2.8e9 multiply-adds per second on its
dense products, and 1.6e7 to 2e7 attention scores per second (the causal
softmax and its products over T x T, which rule at large n); Python's own
work was 0.2 to 1.5 ms per instruction or layer. Against 12 runs of the
commands (docs/CLI.md's table), the measured time was 0.3 to 1.6 times the
estimate with the machine at load 6 to 8, and 0.9 to 2.6 times at load 9
to 11; the memory estimate was 3% to 34% above every measured peak. When
several BLAS threads compete for a loaded machine, small products can run
up to 100 times slower than with one (``OPENBLAS_NUM_THREADS=1`` avoids it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..compiler import Size, SizeError, estimate_repeated
from ..compiler.size import (ASSEMBLY_RATE, DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, MACHINE_RATE, STEP_SECONDS,
                             calibration_cost, duration)
from ..raw.program import Program

BENCH_MAX_SECONDS = 3600.0

READ_RATE = 5e5  # bytes of CSV text parsed per second (measured 0.6e6 at load 10)
FLOP_RATE = 5e8  # multiply-adds per second in the numpy forward pass's dense products
ATTENTION_RATE = 1e7  # attention scores per second (causal softmax and its T x T products)
# ASSEMBLY_RATE (bytes of weights compiled or saved per second), STEP_SECONDS (Python's own work per
# instruction or layer) and MACHINE_RATE (register entries the exact machine updates per second) are the
# library's (construct.compiler.size), which compile's and calibrate's own estimates use
CERTIFIED_PASSES = 10  # a certified answer costs about 8 forward passes (measured: 7.6 to 8.5, ridge and SGD)
PROCESS_BYTES = 300 * 2**20  # resident memory of the process after its imports, before any work
JAX_SPEEDUP, JIT_SECONDS = 4.0, 10.0  # the benchmark's JAX batches, against the numpy pass

RATES_TEXT = (f"the estimate assumes {MACHINE_RATE:.0e} register updates/s for calibration, "
              f"{ASSEMBLY_RATE / 1e6:.0f} MB/s to compile, {FLOP_RATE:.0e} multiply-adds/s and "
              f"{ATTENTION_RATE:.0e} attention scores/s for a forward pass (measured on a busy 2-core machine)")


@dataclass(frozen=True)
class Cost:
    """Memory at the peak (bytes) and time (seconds) of some steps; ``steps`` gives each one's (label, bytes, seconds)."""

    bytes: float = 0.0
    seconds: float = 0.0
    steps: tuple[tuple[str, float, float], ...] = ()

    def __add__(self, other: "Cost") -> "Cost":
        """Steps whose memory is held at the same time."""
        return Cost(self.bytes + other.bytes, self.seconds + other.seconds, self.steps + other.steps)

    def then(self, other: "Cost") -> "Cost":
        """``other`` after ``self`` has freed its memory."""
        return Cost(max(self.bytes, other.bytes), self.seconds + other.seconds, self.steps + other.steps)

    def by_step(self, field: int) -> dict[str, float]:
        """Bytes (``field`` 1) or seconds (2) summed over the steps of the same label."""
        total: dict[str, float] = {}
        for step in self.steps:
            total[step[0]] = total.get(step[0], 0.0) + step[field]
        return total


def _step(label: str, nbytes: float, seconds: float) -> Cost:
    return Cost(nbytes, seconds, ((label, nbytes, seconds),))


@dataclass(frozen=True)
class Network:
    """A network a command will build: its shapes, and its program's rows (W) and depth (the machine's work)."""

    size: Size
    rows: int

    @property
    def depth(self) -> int:
        return self.size.applied


def network(build: Callable[[int, int], Program], d: int, n: int, dtype="float64", fuse: bool = True) -> Network:
    """The shapes of ``compile(build(d, n), bounds, dtype=dtype, fuse=fuse)``, from at most ``build(d, 1..3)``: the
    library's ``estimate_repeated``, which ``compile`` also sizes long programs with."""
    size = estimate_repeated(lambda k: build(d, k), n, dtype, fuse=fuse)
    return Network(size, build(d, 1).layout.width)


# -- the steps ----------------------------------------------------------------------------------


def reading(nbytes: int) -> Cost:
    """Parsing a CSV file of ``nbytes`` into rows of floats."""
    return _step("reading the data", 48 * nbytes, nbytes / READ_RATE)


def loading(entries: int) -> Cost:
    """Loading ``entries`` numbers from an .npz file (decompressed, then converted to float64)."""
    return _step("loading the data", 16 * entries, 8 * entries / ASSEMBLY_RATE)


def calibration(net: Network, tasks: int, d: int) -> Cost:
    """``Bounds.calibrate`` on ``tasks`` tasks: the exact machine runs them all at once (the library's
    ``calibration_cost``, with the network's layers for its steps, as measured)."""
    return _step(f"calibration on {tasks} tasks", *calibration_cost(net.rows, net.size.tokens, net.depth, tasks, d))


def compiling(net: Network) -> Cost:
    return _step("compiling", 2 * net.size.weight_bytes, net.size.compile_seconds)


def saving(net: Network) -> Cost:
    return _step("saving", 0, net.size.weight_bytes / ASSEMBLY_RATE)


def forward_seconds(size: Size) -> float:
    """One numpy forward pass on one prompt."""
    attention = size.applied * size.heads * size.tokens ** 2
    return size.flops / FLOP_RATE + attention / ATTENTION_RATE + size.applied * STEP_SECONDS


def forward(net: Network, passes: int, copies: int = 2) -> Cost:
    """``passes`` numpy forward passes, one after the other; ``copies`` of the states are held (2: states and |states|)."""
    if passes == 0:
        return Cost()
    s = net.size
    label = f"{passes} forward pass{'es' if passes != 1 else ''}"
    return _step(label, copies * s.forward_bytes, passes * forward_seconds(s))


def built(net: Network, tasks: int, d: int, passes: int) -> Cost:
    """The life of one network: calibrated on ``tasks`` tasks, compiled, then ``passes`` forward passes."""
    return calibration(net, tasks, d).then(compiling(net) + forward(net, passes))


def jax_batches(net: Network, batch: int, passes: int) -> Cost:
    """The benchmark's JAX runs: a copy of the weights on the device, ``batch`` prompts' layer temporaries at once."""
    s = net.size
    layer = (3 * s.heads * s.tokens * s.head_size + s.heads * s.tokens ** 2 + 2 * s.tokens * s.mlp_width
             + 3 * s.tokens * s.width) * 8
    extremes = 2 * (s.applied + 1) * s.width * 8
    return _step("JAX batches", s.weight_bytes + batch * (2 * layer + extremes),
                 JIT_SECONDS + passes * forward_seconds(s) / JAX_SPEEDUP)


def writing(numbers: int) -> Cost:
    """Printing ``numbers`` values as JSON: Python floats, then the text."""
    return _step("writing the output", 120 * numbers, numbers / 1e6)


def process() -> Cost:
    """What a Python process with numpy, JAX and this library holds before any work (measured 0.28 GB)."""
    return _step("Python, numpy and JAX", PROCESS_BYTES, 0.0)


# -- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """``--max-memory`` (bytes) and ``--max-seconds``."""

    bytes: float = DEFAULT_MAX_BYTES
    seconds: float = DEFAULT_MAX_SECONDS

    def exceeded(self, cost: Cost) -> bool:
        return PROCESS_BYTES + cost.bytes > self.bytes or cost.seconds > self.seconds

    def check(self, cost: Cost, what: str, at_least: str = "") -> None:
        """Refuse ``cost`` above either limit with a SizeError that gives the estimate and the way on.

        ``at_least`` says the cost is a lower bound (of a smaller network): then no exact value to type is offered.
        The memory the process holds before any work is added to ``cost``.
        """
        cost = process() + cost
        if cost.bytes > self.bytes:
            memory = cost.by_step(1)
            largest = max(memory, key=memory.get)
            raise SizeError(f"{what} would need {'more than' if at_least else 'about'} {gib(cost.bytes)} of memory "
                            f"({at_least or f'most of it for {largest}'}), above --max-memory {gib(self.bytes)}; "
                            + ("ask for a smaller network" if at_least else
                               f"give --max-memory {_round_up(cost.bytes / 2**30)}GiB if this machine has that "
                               "much, or ask for a smaller network"))
        if cost.seconds > self.seconds:
            steps = cost.by_step(2)
            largest = max(steps.values())
            parts = ", ".join(f"{label} {duration(s)}" for label, s in steps.items() if s >= largest / 20)
            raise SizeError(f"{what} would take {'more than' if at_least else 'about'} {duration(cost.seconds)} "
                            f"({at_least or parts}), above --max-seconds {self.seconds:g}; "
                            + ("ask for less" if at_least else
                               f"give --max-seconds {_round_up(cost.seconds)} to run it anyway, or ask for less")
                            + f"; {RATES_TEXT}")


def affordable(limits: Limits, what: Callable[[int], str], cost_at: Callable[[int], Cost], d: int) -> Cost:
    """``cost_at(d)``, refused above ``limits``.

    Cost grows with d, and so does the work of estimating it: a large d is
    sized first at d / 2^k (k > 1), and refused as soon as one of those is
    already too large, with that size as a lower bound.
    """
    for probe in _probes(d)[:-2]:
        cost = cost_at(probe)
        if limits.exceeded(cost):
            limits.check(cost, what(d), f"that much already at d = {probe}; the cost grows with d")
    cost = cost_at(d)
    limits.check(cost, what(d))
    return cost


def _probes(d: int) -> list[int]:
    """d / 2^k down to 8 (or d itself), smallest first, ending at d."""
    probes = [d]
    while probes[-1] // 2 >= 8:
        probes.append(probes[-1] // 2)
    return probes[::-1]


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.3g} MiB"


def _round_up(value: float) -> str:
    """A round number at least ``value``, two significant digits: what to type to raise a limit."""
    scale = 10 ** max(math.floor(math.log10(value)) - 1, 0)
    return f"{math.ceil(value / scale) * scale:g}"


# -- the options ----------------------------------------------------------------------------------

_BYTE_UNITS = {"": 2**30, "b": 1, "k": 2**10, "kib": 2**10, "kb": 10**3, "m": 2**20, "mib": 2**20, "mb": 10**6,
               "g": 2**30, "gib": 2**30, "gb": 10**9, "t": 2**40, "tib": 2**40, "tb": 10**12}
_SECOND_UNITS = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}


def _amount(text: str, units: dict[str, float], example: str) -> float:
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-zA-Z]*)\s*", text)
    unit = match and match.group(2).lower()
    try:
        value = float(match.group(1)) * units[unit] if match else math.nan
    except (ValueError, KeyError):
        value = math.nan
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{text!r} is not a positive amount; write e.g. {example}")
    return value


def parse_bytes(text: str) -> float:
    """``8GiB``, ``512 MiB``, ``2G``, ``16GB`` (powers of 1000), or a bare number of GiB."""
    return _amount(text, _BYTE_UNITS, "8GiB, 512MiB or 16 (GiB)")


def parse_seconds(text: str) -> float:
    """``600``, ``90s``, ``10min``, ``2h``."""
    return _amount(text, _SECOND_UNITS, "600 (seconds), 10min or 2h")
