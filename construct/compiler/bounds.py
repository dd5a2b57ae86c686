"""The domain a compiled network is built for: a bound on every register, a floor on every divisor.

A compiled layer approximates its instruction to an error proportional to
the size of what it handles (the GeLU product scales its operands by their
bounds, layer norm's pads must dominate the whole column, the division's
pads must dominate it for the smallest divisor). So the compiler needs,
besides the input bound, a bound on **every intermediate register** (every
column, every layer) and a **floor on every divisor** ``|den|``.

How that is ensured: ``Bounds.calibrate`` runs the exact machine on sample
tasks and takes the largest ``|value|`` of each register times a margin (and
the smallest divisor over the margin); the compiled network then checks
every task it runs: inputs before the forward pass, every program register
and divisor after it. A task that leaves the domain raises ``DomainError``
naming the register, the layer and the bound; no number is returned for it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from ..raw.instructions import Div
from ..raw.program import Program
from ..raw.prompt import POS, X_IN, Y_IN


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


class DomainError(ValueError):
    """A task (or an intermediate value it produces) is outside the bounds a network was built for."""


@dataclass(frozen=True)
class Bounds:
    """``values[r]``: max ``|entry|`` of register r; ``floors[r]``: min ``|value|`` of divisor r."""

    values: Mapping[str, float]
    floors: Mapping[str, float]

    def __post_init__(self) -> None:
        for kind, table in (("bound", self.values), ("floor", self.floors)):
            for name, value in table.items():
                if isinstance(value, bool) or not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                    raise ValueError(f"{kind} for register {name!r} must be a positive number, got {value!r}")
        object.__setattr__(self, "values", dict(self.values))
        object.__setattr__(self, "floors", dict(self.floors))

    def require(self, program: Program) -> None:
        """Every register has a bound and every divisor a floor, else ValueError naming them."""
        missing = [name for name in program.layout.names if name not in self.values]
        if missing:
            raise ValueError(f"bounds: no bound for registers {missing}")
        dens = sorted({ins.den for ins in program.instructions if isinstance(ins, Div)})
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
    ) -> "Bounds":
        """Bounds from running the exact machine on ``tasks`` (each ``(X, y, x_query)``).

        Register bounds are the largest ``|value|`` seen times ``margin``
        (registers never nonzero get 1.0); divisor floors the smallest
        ``|value|`` seen in the columns divided by ``margin``. ``x_max`` and
        ``y_max`` declare the input bounds instead (they must cover the tasks).
        The column index ``pos`` is bounded exactly by the prompt length.
        """
        if not (_real(margin) and margin >= 1):
            raise ValueError(f"margin must be a finite number >= 1, got {margin!r}")
        for name, declared in (("x_max", x_max), ("y_max", y_max)):
            if declared is not None and not (_real(declared) and declared > 0):
                raise ValueError(f"{name} must be a finite number > 0 (or None), got {declared!r}")
        layout = program.layout
        tasks = list(tasks)
        if not tasks:
            raise ValueError("calibrate needs at least one task")
        peak = dict.fromkeys(layout.names, 0.0)
        low: dict[str, float] = {}
        dens = {k: ins.den for k, ins in enumerate(program.instructions) if isinstance(ins, Div)}
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
        return cls(values, {den: v / margin for den, v in low.items()})

    def check_task(self, X: np.ndarray, y: np.ndarray, x_query: np.ndarray) -> None:
        """Inputs within the declared input bounds, else DomainError naming the bound."""
        for name, arr, reg in (("X", X, X_IN), ("x_query", x_query, X_IN), ("y", y, Y_IN)):
            bound = self.values[reg]
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(arr))), arr.shape)) if arr.size else None
            if worst is not None and abs(arr[worst]) > bound:
                raise DomainError(
                    f"{name}{list(worst)} = {float(arr[worst]):.6g} is outside the declared input bound "
                    f"|{reg}| <= {bound:.6g} this network was compiled for"
                )
