"""What a network will cost, known before anything large is allocated, and the limits that refuse it.

The compiler plans every layer as logical pieces (``blocks``) before it
assembles dense arrays, so the array shapes, and from them the memory and
the arithmetic of a forward pass, are known exactly at that point.
``compile`` refuses a network whose estimate exceeds its ``max_bytes``
(default ``DEFAULT_MAX_BYTES``, well under a laptop's memory) or whose
compiling would take longer than ``max_seconds`` (default
``DEFAULT_MAX_SECONDS``) with a ``SizeError`` that gives the estimate and
how to raise the limit. A long program of ``construct.programs`` is sized
before it is scheduled, from its first blocks (``build.estimate_repeated``):
planning every layer of n = 10^5 examples would itself take minutes.

Time to compile (``Size.compile_seconds``), with rates measured on this
project's 2-core machine while other jobs kept it busy and rounded down (the
command line's estimate, ``construct/cli/budget.py``, uses the same):
``ASSEMBLY_RATE`` bytes of weights assembled per second, ``STEP_SECONDS`` of
Python's own work per applied layer; scheduling took 25 to 30 microseconds
per instruction (``SCHEDULE_SECONDS``, what a program that is not sized
from its blocks is refused by before it is scheduled). ``Bounds.calibrate``
is refused by the same limits, its exact machine updating ``MACHINE_RATE``
register entries per second (``calibration_cost``).

Memory counted: the weight arrays in float64 (the assembly's working
precision) plus a cast copy for float32, and the numpy forward pass's
states ``(L + 1) x T x D`` with one layer's temporaries. Arithmetic: the
multiply-adds of one prompt's forward pass (dense, zeros included: that is
what the passes compute).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_BYTES = 4 * 2**30
DEFAULT_MAX_SECONDS = 120.0
ASSEMBLY_RATE = 1e8  # bytes of weights compiled (or saved) per second
STEP_SECONDS = 1.5e-3  # Python's own work per instruction or layer
SCHEDULE_SECONDS = 2e-5  # scheduling and planning, per instruction
MACHINE_RATE = 1e8  # register entries the exact machine updates per second (Bounds.calibrate)


class SizeError(ValueError):
    """A network (or a run of it) would need more memory or time than the limit allows."""


@dataclass(frozen=True)
class Size:
    """Array shapes of a network and what they cost: L stored layers applied ``depth`` times in all (tied
    layers are stored once), m heads, width D, head size dh, MLP width U."""

    layers: int
    heads: int
    width: int
    head_size: int
    mlp_width: int
    tokens: int
    inputs: int  # d + 1 token slots
    dtype: np.dtype
    depth: int | None = None  # layers applied; None: each stored layer once

    @property
    def applied(self) -> int:
        return self.layers if self.depth is None else self.depth

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(shape)) for name, shape in self.array_shapes().items() if name != "order")

    @property
    def weight_bytes(self) -> int:
        """The arrays as assembled (float64), plus the cast copy when the target is float32, and the layer order."""
        extra = self.parameters * np.dtype(self.dtype).itemsize if np.dtype(self.dtype) != np.float64 else 0
        return self.parameters * 8 + extra + 8 * self.applied

    @property
    def forward_bytes(self) -> int:
        """The numpy pass on one prompt: every state, and one layer's largest temporaries."""
        L, m, D, dh, U, T = self.applied, self.heads, self.width, self.head_size, self.mlp_width, self.tokens
        item = np.dtype(self.dtype).itemsize
        return ((L + 1) * T * D + 3 * m * T * dh + m * T * T + 2 * T * U + 3 * T * D) * item

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.forward_bytes

    @property
    def compile_seconds(self) -> float:
        """Assembling the weights, and the compiler's work per applied layer."""
        return self.weight_bytes / ASSEMBLY_RATE + self.applied * STEP_SECONDS

    @property
    def flops(self) -> int:
        """Multiply-adds of one forward pass on a full-length prompt."""
        L, m, D, dh, U, T = self.applied, self.heads, self.width, self.head_size, self.mlp_width, self.tokens
        return L * (T * (3 * m * D * dh + m * dh * D + 2 * D * U) + 2 * m * T * T * dh)

    def array_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every weight array (``construct.transformer.Weights``'s fields)."""
        L, m, D, dh, U, T = self.layers, self.heads, self.width, self.head_size, self.mlp_width, self.tokens
        return {"embed": (self.inputs, D), "positions": (T, D), "readout": (D,), "Wq": (L, m, D, dh),
                "Wk": (L, m, D, dh), "Wv": (L, m, D, dh), "Wo": (L, m * dh, D), "bo": (L, D), "ln_gain": (L, D),
                "ln_bias": (L, D), "W1": (L, D, U), "b1": (L, U), "W2": (L, U, D), "b2": (L, D),
                "order": (self.applied,)}

    def describe(self) -> str:
        tied = f" ({self.layers} stored)" if self.applied != self.layers else ""
        return (f"{self.applied} layers{tied}, width {self.width}, head size {self.head_size}, MLP width "
                f"{self.mlp_width}, "
                f"{self.parameters:,} parameters: about {gib(self.bytes)} to build and run")


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.3g} MiB"


def calibration_cost(rows: int, tokens: int, steps: int, tasks: int, d: int) -> tuple[float, float]:
    """Bytes and seconds of the exact machine run on ``tasks`` tasks at once (``Bounds.calibrate``): ``steps``
    instructions on states of ``rows x tokens x tasks`` floats, four copies held, and the tasks themselves."""
    entries = tasks * rows * tokens
    return 4 * 8 * entries + tasks * (8 * tokens * d + 400), steps * (entries / MACHINE_RATE + STEP_SECONDS)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.2g} s"
    if seconds < 5400:
        return f"{seconds / 60:.2g} min"
    return f"{seconds / 3600:.3g} h"


def check_limits(max_bytes, max_seconds) -> None:
    """Each limit a positive number or None (no limit), else ValueError naming it."""
    for name, value in (("max_bytes", max_bytes), ("max_seconds", max_seconds)):
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"{name} must be a positive number or None, got {value!r}")


def check(size: Size, max_bytes: float | None, what: str, max_seconds: float | None = None) -> None:
    """Refuse ``size`` above ``max_bytes`` or ``max_seconds`` (None: no limit), naming the estimate and the way to
    raise the limit."""
    check_limits(max_bytes, max_seconds)
    if max_bytes is not None and size.bytes > max_bytes:
        raise SizeError(f"{what} would need {size.describe()}, above the limit of {gib(max_bytes)}; "
                        "raise the limit (compile(..., max_bytes=...), or --max-memory on the command line) "
                        "if this machine has the memory")
    seconds = size.compile_seconds
    if max_seconds is not None and seconds > max_seconds:
        raise SizeError(f"{what} would take about {duration(seconds)} to compile ({size.applied:,} layers at "
                        f"{STEP_SECONDS * 1e3:g} ms each, {gib(size.weight_bytes)} of weights at "
                        f"{ASSEMBLY_RATE / 1e6:g} MB/s), above the limit of {max_seconds:g} s; raise the limit "
                        "(compile(..., max_seconds=...), or --max-seconds on the command line) to wait for it")
