"""The domain a compiled network is built for: a bound on every register, a floor on every divisor.

A compiled layer approximates its instruction to an error proportional to
the size of what it handles (the GeLU product scales its operands by their
bounds, layer norm's pads must dominate the whole column, the division's
pads must dominate it for the smallest divisor). So the compiler needs,
besides the input bound, a bound on **every intermediate register** (every
column, every layer) and a **floor on every divisor** ``|den|``.

Two ways to get them:

* ``Bounds.for_inputs(program, x_max, y_max, x_norm)`` (what
  ``compile(program, x_max=..., y_max=...)`` does): from bounds on the
  inputs alone, by the theory of the program's algorithm
  (its ``theory`` in ``construct.programs``). The exact values of every
  task inside the declared box stay within these bounds (proved), so the
  network refuses such a task only where its own error on a register
  passes the slack around that register's bound (``SLACK``; see
  ``for_inputs`` for when it does);
* ``Bounds.calibrate(program, tasks, margin)``: from running the exact
  machine on sample tasks, the largest ``|value|`` of each register times a
  margin (and the smallest divisor over it). Usually tighter, so a little
  more accurate, but a task unlike the samples may be refused.

Either way the compiled network checks every task it runs: inputs before
the forward pass, every program register and divisor after it. A task that
leaves the domain raises ``DomainError`` naming the register, the layer and
the bound; no number is returned for it. ``Bounds.source`` says where the
bounds came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from ..raw.domain import Box
from ..raw.program import Program
from ..mechanisms.scales import machine_eps
from ..raw.prompt import POS, X_IN, Y_IN, finite_float, shown
from . import size

# Slack on a theory bound (bound * (1 + SLACK), floor * (1 - SLACK)), by the network's dtype. The network's
# guard compares *computed* values with the bounds, and a computed value differs from the exact one by the
# network's own error. A theory bound can be attained exactly (Ainv = I/lam and den1 = 1 at column 0 of
# every task; den = R^2/lam at a corner of the box), so without slack rounding alone would refuse tasks
# inside the box. Measured at the corners (tests/raw/test_domain.py's tasks, ridge and SGD up to d = 8, n = 16,
# lam down to 0.01): a computed value passes its exact bound by at most 1e-12 of it in float64 and 2.3e-5
# in float32 (den at the box's corner), a divisor its floor by 2e-16 and 2e-5.
SLACK = {np.dtype(np.float64): 2.0**-20, np.dtype(np.float32): 2.0**-7}
# The inputs' norms are computed in float64: a sum of d squares and a square root round to (d + 2) eps,
# below 2^-40 for d < 4000; a norm that exact arithmetic puts at x_norm is not refused.
NORM_ROUNDING = 2.0**-40


def _real(value) -> bool:
    return finite_float(value) is not None


class DomainError(ValueError):
    """A task (or an intermediate value it produces) is outside the bounds a network was built for."""


class FloatRangeError(ValueError):
    """A domain whose numbers float64 (or the network's dtype) cannot hold: a bound the theory derives from the
    input box, or a constant the compiler derives from the bounds, overflows, or a bound underflows to 0.

    ``reason`` says which in a few words (the command line names the rest itself).
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # both arguments, so that it crosses a process boundary (pickle)
        return type(self), (str(self), self.reason)


def _is_positive(value) -> bool:
    return isinstance(value, (int, float)) and (finite_float(value) or 0) > 0


def _affordable(program: Program, tasks: int, max_bytes, max_seconds) -> None:
    """Refuse calibrating ``program`` on ``tasks`` tasks above the limits, before the machine runs."""
    nbytes, seconds = size.calibration_cost(program.layout.width, 2 * program.n + 1, program.depth, tasks, program.d)
    what = f"calibrating {program.name} (d = {program.d}, n = {program.n}) on {tasks} tasks"
    work = (f"the exact machine runs {program.depth:,} instructions on {tasks} x {program.layout.width} x "
            f"{2 * program.n + 1} values")
    if max_bytes is not None and nbytes > max_bytes:
        raise size.SizeError(f"{what} would need about {size.gib(nbytes)} of memory ({work}), above the limit of "
                             f"{size.gib(max_bytes)}; raise the limit (Bounds.calibrate(..., max_bytes=...)) if this "
                             "machine has the memory, or calibrate on fewer tasks")
    if max_seconds is not None and seconds > max_seconds:
        raise size.SizeError(f"{what} would take about {size.duration(seconds)} ({work}, "
                             f"{size.MACHINE_RATE:.0e} updates/s), above the limit of {max_seconds:g} s; raise the "
                             "limit (Bounds.calibrate(..., max_seconds=...)) to wait for it, or calibrate on fewer "
                             "tasks")


@dataclass(frozen=True)
class Bounds:
    """``values[r]``: max ``|entry|`` of register r; ``floors[r]``: min ``|value|`` of divisor r.

    ``x_norm``, if set, also bounds the Euclidean norm of every input x (a
    theory domain declared with one). ``source`` says where the bounds came
    from (the theory and its box, a calibration, or given explicitly); it is
    a description, not part of the domain, so two Bounds with the same
    numbers are equal whatever their source. ``box`` is the input box
    ``for_inputs`` derived them from (None otherwise, and in a saved
    network): a refusal of a task inside it is the network's own error.
    """

    values: Mapping[str, float]
    floors: Mapping[str, float]
    x_norm: float | None = None
    source: str = field(default="given explicitly", compare=False)
    box: Box | None = field(default=None, compare=False)  # the input box the theory derived them from

    def __post_init__(self) -> None:
        for kind, table in (("bound", self.values), ("floor", self.floors)):
            for name, value in table.items():
                if not _is_positive(value):
                    raise ValueError(f"{kind} for register {name!r} must be a positive number, got {shown(value)}")
        if self.x_norm is not None and not _is_positive(self.x_norm):
            raise ValueError(f"x_norm must be a positive number or None, got {shown(self.x_norm)}")
        object.__setattr__(self, "values", dict(self.values))
        object.__setattr__(self, "floors", dict(self.floors))

    @classmethod
    def for_inputs(cls, program: Program, x_max: float, y_max: float, x_norm: float | None = None,
                   dtype=np.float64) -> "Bounds":
        """Bounds from the input box alone, by the theory of the program's algorithm (``construct.programs``).

        ``x_max`` bounds every entry of every input x (examples and query),
        ``y_max`` every label, ``x_norm`` (optional, default ``sqrt(d) x_max``)
        the Euclidean norm of every x: a norm bound gives much tighter
        bounds on what the learners compute. ``dtype`` is the network's: it
        sets the slack (``SLACK``). The input bounds are kept exact (the
        network checks them before the forward pass); every other bound is
        raised by the slack and every floor lowered by it. Refuses a program
        without a derivation (one built by hand) and SGD whose step can
        expand ``|w|`` on this box.

        The promise, exactly: a task inside the box is never refused for
        its inputs, and its exact values never leave these bounds, so the
        network refuses it only where the network's own error on some
        register exceeds the slack (2^-20 of the register's bound, of the
        divisor's floor; ``CompiledNetwork`` says so in the refusal). The
        check at every run is the condition. It fails for wide boxes at
        small ``lam``: ridge's ``A^-1`` register is bounded by ``1/lam`` (its
        value at column 0), a compiled product errs by a fixed fraction of
        its operands' bounds, and after one example of norm near ``R`` the
        exact ``A^-1`` is near ``1/R^2``, so ``x^T A^-1 x`` at the next example
        carries an error near ``R^2/lam`` times that fraction into the
        divisor ``1 + x^T A^-1 x >= 1`` (tests/raw/test_domain.py: ``R^2/lam =
        4.9e10``, the divisor computed below its floor 0.99).
        """
        if not isinstance(program, Program):
            raise TypeError(f"for_inputs takes a Program, got {type(program).__name__}")
        if program.domain is None:
            raise ValueError(
                f"program {program.name!r} has no derivation of its domain from input bounds (the constructors "
                "of construct.programs attach one; a program built by hand has none): give its bounds explicitly, "
                "Bounds(values, floors), or from sample tasks, Bounds.calibrate(program, tasks)")
        dtype = np.dtype(dtype)
        machine_eps(dtype)  # float32 or float64, else ValueError
        box = Box(program.d, x_max, y_max, x_norm)
        given = ", ".join(f"{k} = {v:g}" for k, v in (("x_max", x_max), ("y_max", y_max), ("x_norm", x_norm))
                          if v is not None)
        try:
            theory = program.domain(box)
        except OverflowError:  # a power of a bound (Python's float ** raises where * gives inf)
            raise FloatRangeError(f"the input box ({given}) is so large that a bound derived from it by "
                                  f"{program.name}'s theory overflows float64; rescale the data towards 1 and compile "
                                  "for its box",
                                  "a bound overflows") from None
        try:
            values = {name: float(v) for name, v in theory.values.items()}
            floors = {name: float(v) for name, v in theory.floors.items()}
        except TypeError:
            raise ValueError(f"{program.name} has symbolic parameters {program.params}; a domain needs numbers") from None
        slack = SLACK[dtype]
        values = {name: v * (1 + slack) for name, v in values.items()}
        values.update({Y_IN: box.y_max, X_IN: box.x_max, POS: float(2 * program.n)})
        floors = {name: v * (1 - slack) for name, v in floors.items()}
        for kind, table in (("bound on register", values), ("floor on divisor", floors)):
            for name, v in table.items():
                if not (np.isfinite(v) and v > 0):  # a positive theory bound that float64 rounds to inf or 0
                    large = not np.isfinite(v)
                    raise FloatRangeError(
                        f"the input box ({given}) is so {'large' if large else 'small'} that the {kind} {name!r} "
                        f"derived from it by {program.name}'s theory {'overflows' if large else 'underflows to 0 in'} "
                        f"float64; rescale the data towards 1 and compile for its box",
                        f"a bound {'overflows' if large else 'underflows to 0'}")
        source = (f"theory of {program.name} for the box {box} (slack 2^{int(np.log2(slack))} for {dtype})")
        return cls(values, floors, x_norm=None if x_norm is None else box.x_norm, source=source, box=box)

    def require(self, program: Program) -> None:
        """Every register has a bound and every divisor a floor, else ValueError naming them."""
        missing = [name for name in program.layout.names if name not in self.values]
        if missing:
            raise ValueError(f"bounds: no bound for registers {missing}")
        dens = sorted({ins.divisor for ins in program.instructions if ins.divisor})
        missing = [name for name in dens if name not in self.floors]
        if missing:
            raise ValueError(f"bounds: no floor for divisor registers {missing}")

    @classmethod
    def calibrate(
        cls,
        program: Program,
        tasks: Iterable,
        margin: float = 4.0,
        x_max: float | None = None,
        y_max: float | None = None,
        *,
        max_bytes: float | None = size.DEFAULT_MAX_BYTES,
        max_seconds: float | None = size.DEFAULT_MAX_SECONDS,
    ) -> "Bounds":
        """Bounds from running the exact machine on ``tasks`` (each ``(X, y, x_query)``).

        Register bounds are the largest ``|value|`` seen times ``margin``
        (registers never nonzero get 1.0); divisor floors the smallest
        ``|value|`` seen in the columns divided by ``margin``. ``x_max`` and
        ``y_max`` declare the input bounds instead (they must cover the tasks).
        The column index ``pos`` is bounded exactly by the prompt length.
        Refuses (``SizeError``), before running anything, a run estimated
        (``size.calibration_cost``) to need more than ``max_bytes`` or to
        take longer than ``max_seconds`` (None: no limit). An overflow in the
        exact machine raises ``FloatingPointError`` naming the instruction.
        """
        if not (_real(margin) and margin >= 1):
            raise ValueError(f"margin must be a finite number >= 1, got {shown(margin)}")
        for name, declared in (("x_max", x_max), ("y_max", y_max)):
            if declared is not None and not (_real(declared) and declared > 0):
                raise ValueError(f"{name} must be a finite number > 0 (or None), got {shown(declared)}")
        # Python floats from here: a numpy scalar's overflow would warn where a float becomes inf, refused below
        margin = finite_float(margin)
        x_max, y_max = (None if v is None else finite_float(v) for v in (x_max, y_max))
        size.check_limits(max_bytes, max_seconds)
        layout = program.layout
        tasks = list(tasks)
        if not tasks:
            raise ValueError("calibrate needs at least one task")
        _affordable(program, len(tasks), max_bytes, max_seconds)
        peak = dict.fromkeys(layout.names, 0.0)
        low: dict[str, float] = {}
        dens = {k: ins.divisor for k, ins in enumerate(program.instructions) if ins.divisor}
        for k, H in enumerate(program.states_many(tasks)):
            for name in layout.names:
                peak[name] = max(peak[name], float(np.abs(H[layout.rows(name)]).max()))
            if k in dens:  # the state before instruction k, whose divisor it holds
                low[dens[k]] = min(low.get(dens[k], np.inf), float(np.abs(H[layout.rows(dens[k])]).min()))
        widest = max(peak, key=peak.get)
        if not np.isfinite(peak[widest] * margin):
            raise ValueError(f"margin {margin:g} times the largest |value| the tasks reach ({peak[widest]:.4g}, "
                             f"register {widest!r}) overflows float64; use a smaller margin")
        values = {name: (v * margin if v > 0 else 1.0) for name, v in peak.items()}
        values[POS] = float(2 * program.n)
        for name, declared in ((X_IN, x_max), (Y_IN, y_max)):
            if declared is not None:
                if declared < peak[name]:
                    raise ValueError(f"{name} bound {declared} is below the calibration tasks' {peak[name]:.4g}")
                values[name] = float(declared)
        # a zero divisor has already stopped the machine, so every floor is positive
        return cls(values, {den: v / margin for den, v in low.items()},
                   source=f"calibration on {len(tasks)} tasks, margin {margin:g}")

    def check_task(self, X: np.ndarray, y: np.ndarray, x_query: np.ndarray) -> None:
        """Inputs within the declared input bounds, else DomainError naming the bound."""
        for name, arr, reg in (("X", X, X_IN), ("x_query", x_query, X_IN), ("y", y, Y_IN)):
            bound = self.values[reg]
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(arr))), arr.shape)) if arr.size else None
            if worst is not None and abs(arr[worst]) > bound:
                raise DomainError(
                    f"{name}{list(worst)} = {float(arr[worst]):.6g} is outside the declared input bound "
                    f"|{reg}| <= {bound:.6g} this network was compiled for ({self.source})"
                )
        if self.x_norm is not None:
            for name, rows in (("X", X), ("x_query", x_query[None, :])):
                norms = np.linalg.norm(np.asarray(rows, dtype=np.float64), axis=1)
                k = int(np.argmax(norms)) if norms.size else None
                if k is not None and norms[k] > self.x_norm * (1 + NORM_ROUNDING):
                    where = f"X[{k}]" if name == "X" else name
                    raise DomainError(
                        f"|{where}| = {norms[k]:.6g} is outside the declared input bound |x| <= {self.x_norm:.6g} "
                        f"this network was compiled for ({self.source})"
                    )
