"""The language of a program's domain: the input box, the domain's bounds and floors, and the arithmetic they use.

Each algorithm's module (``construct.programs``) derives its domain, its
``theory``, from the box. The user declares a box: ``|x_i| <= x_max`` for every entry of every input
x (examples and query), ``|y| <= y_max`` for every label and, optionally,
``|x|_2 <= x_norm`` (default ``sqrt(d) x_max``, which the entries imply).
Each function below derives, from the algorithm's theory, a bound on
``|entry|`` of every register and a floor on ``|value|`` of every divisor,
valid for **every column in every state** (after every instruction): every
instruction acts on every column, and the compiled network checks all of
them. Registers start at 0 and, until an instruction writes them, keep 0 or
the value of a previous block, so a bound on what an instruction writes
covers every state. Each bound's one-line proof sits next to the line that
computes it, in the algorithm's module; ``proofs/domains.py`` checks the
lemmas with sympy and that those functions compute them;
``tests/raw/test_domain.py`` runs tasks at the corners of the box.

Notation: ``X = x_max`` (entries), ``R = x_norm`` (norms), ``Y = y_max``,
and ``K = 1/(2 sqrt(lam)) = max_{s >= 0} s / (s^2 + lam)`` (AM-GM:
``s^2 + lam >= 2 s sqrt(lam)``). What every column computes (see
``construct.programs``): in the n-example programs, after any number of blocks a
column holds the learner's state on a sequence of at most n examples, each
``(x_k, y_k)``, ``(-x_k, 0)`` (x~ columns) or ``(0, 0)`` (column 0), so
every x it reads has ``|x_i| <= X``, ``|x| <= R`` and every y ``|y| <= Y``.
The paper's chains read ``x = x_in`` of column i-1 without the difference:
column 0 takes its step on ``(x_1, 0)``, column 2 on ``(0, 0)``.

The theories take numbers or sympy expressions (then ``Min``/``Max`` stay
symbolic and the proofs and the walkthrough print the formulas); the
helpers below serve both. Bounds are
exact here; ``compiler.bounds`` adds the slack the compiled network needs.
A register that is identically zero gets the bound 1 (bounds are positive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy

from .prompt import POS, X_IN, Y_IN, finite_float, shown


def symbolic(*values) -> bool:
    return any(isinstance(v, sympy.Basic) for v in values)


def maximum(*values):
    return sympy.Max(*values) if symbolic(*values) else max(values)


def minimum(*values):
    return sympy.Min(*values) if symbolic(*values) else min(values)


def sqrt(value, *like):
    """The square root, exact (sympy) when ``value`` or any of ``like`` is symbolic."""
    return sympy.sqrt(value) if symbolic(value, *like) else math.sqrt(value)


def absolute(value):
    return sympy.Abs(value) if symbolic(value) else abs(value)


def norm(vector):
    """Euclidean norm of a parameter vector (float64 or sympy entries)."""
    entries = list(np.asarray(vector, dtype=object).flat)
    return sympy.sqrt(sum(e**2 for e in entries)) if symbolic(*entries) else float(np.linalg.norm(
        np.asarray(vector, dtype=np.float64)))


def positive(value):
    """``value`` if it is a positive number, 1 for a register that is identically zero (symbols as given)."""
    return value if symbolic(value) or value > 0 else 1.0


def _real(value, name: str):
    if symbolic(value):
        return value
    number = finite_float(value)
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {shown(value)}")
    return number


class UnboundedDomain(ValueError):
    """The box admits runs that no bound covers (SGD with a step that can expand ``|w|``): its theory refuses it."""


@dataclass(frozen=True)
class Box:
    """The declared inputs: entries ``|x_i| <= x_max``, norms ``|x| <= x_norm``, labels ``|y| <= y_max``.

    ``x_norm`` defaults to ``sqrt(d) x_max``, and a larger one is lowered to
    it (the entries imply it); an ``x_norm`` below ``x_max`` lowers the entry
    bound to it (an entry is at most the norm). Symbolic bounds are taken as
    given.
    """

    d: int
    x_max: object
    y_max: object
    x_norm: object = None

    def __post_init__(self) -> None:
        x_max, y_max = _real(self.x_max, "x_max"), _real(self.y_max, "y_max")
        full = sqrt(self.d, x_max) * x_max
        if self.x_norm is None:
            x_norm = full
        elif symbolic(x_max, self.x_norm):  # symbols (the proofs, the walkthrough) are taken as given
            x_norm = self.x_norm
        else:
            x_norm = min(_real(self.x_norm, "x_norm"), full)
            x_max = min(x_max, x_norm)
        object.__setattr__(self, "x_max", x_max)
        object.__setattr__(self, "y_max", y_max)
        object.__setattr__(self, "x_norm", x_norm)

    def __str__(self) -> str:
        def fmt(v):
            return f"{v:.6g}" if isinstance(v, float) else str(v)
        return f"|x_i| <= {fmt(self.x_max)}, |x| <= {fmt(self.x_norm)}, |y| <= {fmt(self.y_max)}"


@dataclass(frozen=True)
class Domain:
    """Exact bounds from the theory: ``values[r]`` on ``|entry|`` of register r, ``floors[r]`` on ``|divisor|``."""

    values: dict
    floors: dict


def prompt(box: Box, n: int) -> dict:
    """The encoding writes x_in <= X and y_in <= Y as declared, and pos = column index <= 2n, exactly."""
    return {Y_IN: box.y_max, X_IN: box.x_max, POS: 2 * n}
