"""What every RAW instruction is: the protocol each kind implements, in one module per kind.

A hidden state ``H`` has one row per layout row and one column per token
(``T`` columns); trailing axes, if any, hold independent tasks run side by
side. Every instruction maps ``H`` to a new ``H'``:

* every output is computed from ``H`` (the state *before* the instruction),
  so an instruction may read the register it writes (``w <- w * y``);
* only the rows of the written register change; every other row of every
  column keeps its value;
* the written register changes in **every** column, by the same rule. The
  compiled layers (one per instruction, or several instructions fused in one) do the same, so
  the exact machine and the network agree on every column, not just the
  one a theorem is about.

Instruction objects are immutable and carry register names, never row
numbers; ``paper(layout)`` prints the paper's row-range form.

A kind (``mov.py``, ``aff.py``, ``avg.py``, ``mul.py``, ``div.py``) is one class that
holds everything about it, and nothing outside its module asks which kind an
instruction is:

* **exact semantics**: ``check``, ``apply`` (float64 or sympy states),
  ``reads``, ``writes``, ``__str__``, ``paper``;
* **export**: ``kind`` (the tag) and ``to_data`` / ``from_data``;
* **compile rule**: its ``phase`` (attention or MLP) and, for attention
  kinds, ``compose`` (its linear form, composed with the layer's earlier
  instructions), ``offset`` and ``composed_offsets`` (the columns its form
  reads, or None where one layer's heads cannot compute it); for MLP kinds, ``mlp_group`` (instructions
  of one MLP must agree on it), ``operands`` (read through scratch when the
  instruction overwrites them), ``plan_mlp`` (the GeLU units of a group) and
  ``input_sensitivity`` (how its error responds to perturbed inputs);
* **certificate rules**: ``propagate`` (its exact error calculus),
  ``second_order``, ``machine_rounding``, ``pullback`` (which may overwrite
  the cotangents it is given, and returns the pulled-back ones) and
  ``pullback_terms`` (the terms a pullback entry sums, for a prompt of
  ``tokens`` columns), ``source_columns`` and ``in_place`` (which column each
  column's result reads, and the instruction reading it there as its own);
* **proof hook**: ``mechanism``, the lemma whose units its MLP implements
  (``proofs/layers.py`` reads it), ``None`` for attention kinds;
* ``divisor``: the register it divides by, if any (the domain gives it a
  floor).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import sympy

from ..mechanisms.plan import UNIFORM
from ..raw.registers import Layout

ATTENTION, MLP = 0, 1
KINDS: dict[str, type] = {}  # export tag -> class, filled as each kind's module defines its class


class Instruction:
    """The protocol of the module docstring; each kind is a frozen dataclass subclass."""

    kind: ClassVar[str]
    phase: ClassVar[int]
    mechanism: ClassVar[str | None] = None
    nonlinear: ClassVar[bool] = False  # whether ``second_order`` can be nonzero (a linear kind's is 0)
    offset: int = 0  # the column offset an attention instruction reads at (mov's is a field)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            KINDS[cls.kind] = cls

    # -- exact semantics ----------------------------------------------------------------------------------------

    @property
    def reads(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def writes(self) -> str:
        raise NotImplementedError

    @property
    def divisor(self) -> str | None:
        return None

    @property
    def symbolic(self) -> bool:
        """Whether a constant of the instruction is a sympy expression (proofs run such programs; compile refuses)."""
        return False

    def check(self, layout: Layout) -> None:
        raise NotImplementedError

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        raise NotImplementedError

    def paper(self, layout: Layout) -> str:
        raise NotImplementedError

    # -- export ---------------------------------------------------------------------------------------------------

    def to_data(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_data(cls, spec: dict) -> "Instruction":
        raise NotImplementedError

    # -- compile rule (attention kinds) -------------------------------------------------------------------------------

    def composed_offsets(self, offsets: frozenset) -> frozenset | None:
        """The column offsets its result's form reads, given those of the forms it reads (``mechanisms.plan``:
        ``UNIFORM`` for the averaging head), or None if no head of this layer computes it: it reads at its
        ``offset``, and a mean moved to another column (``offset`` > 0) is no head's output."""
        if self.offset and UNIFORM in offsets:
            return None
        return frozenset(o if o == UNIFORM else o + self.offset for o in offsets)

    @property
    def fan_in(self) -> int:
        """The most terms one entry it writes sums (a copy: 1), for the rounding of a composition of such maps."""
        return 1

    def magnitude(self) -> "Instruction":
        """The same map with every coefficient's magnitude (to bound a float composition's rounding)."""
        return self

    # -- compile rule (MLP kinds) -----------------------------------------------------------------------------------

    def mlp_group(self) -> tuple:
        """Instructions may share an MLP only if their groups are equal (products together, or divisions by one
        divisor: a division's layer norm divides the whole column)."""
        raise NotImplementedError(f"{self.kind} runs in attention, not in an MLP")

    @property
    def operands(self) -> tuple[str, ...]:
        """The registers an MLP instruction reads after attention (copied to scratch if it overwrites them)."""
        return ()

    # -- certificate rules (defaults: a linear instruction has no second-order term and rounds like its map) ---------

    def second_order(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack: np.ndarray | None = None) -> np.ndarray:
        """Bound on the remainder ``I(x) - I(x - d) - J(H) d`` for ``|d| <= E`` (program rows x tokens), x within
        ``slack`` of ``H``: zero for a linear instruction (``nonlinear`` False: the certificate then skips it)."""
        return np.zeros_like(E)

    def source_columns(self, tokens: int) -> np.ndarray | None:
        """Per column, the one column whose entries its result there reads (its own: the default), or None where a
        result reads several columns (avg's prefix mean). The certificate's adjoint pulls a cotangent back on the
        columns where it is nonzero only (``compiler.adjoint``)."""
        return np.arange(tokens)

    def in_place(self) -> "Instruction":
        """The instruction reading, in each column, the entries its ``source_columns`` give, as if they were that
        column's own: itself for a column-local instruction (the adjoint pulls gathered columns back with it)."""
        return self


def magnitudes(H: np.ndarray, slack: np.ndarray | None, rows=slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower bounds on |x| for x within ``slack`` of ``H`` (the computed intermediate state), on the rows
    ``rows`` (all by default)."""
    if slack is None:
        return np.abs(H[rows]), np.abs(H[rows])
    return np.abs(H[rows]) + slack[rows], np.maximum(np.abs(H[rows]) - slack[rows], 0.0)


def to_data(ins: Instruction) -> dict:
    """``ins`` as JSON-ready data, its kind tag first."""
    return {"kind": ins.kind, **ins.to_data()}


def from_data(spec) -> Instruction:
    """The instruction a ``to_data`` dict describes, every field type-checked (ValueError otherwise)."""
    if not isinstance(spec, dict):
        raise ValueError(f"an instruction is an object, got {spec!r}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown instruction kind {kind!r} (kinds: {sorted(KINDS)})")
    return KINDS[kind].from_data(spec)


# -- constants (coefficients and biases): numbers or sympy expressions ------------


def constant(value, what: str) -> np.ndarray:
    """A read-only array of a constant: float64, or object when any entry is sympy.

    Symbolic entries let the proofs run the very programs the tests run, with
    alpha, lam and w0 as symbols.
    """
    obj = np.array(value, dtype=object)
    if obj.ndim > 2 or obj.size == 0:
        raise ValueError(f"{what}: expected a scalar, vector or matrix, got shape {obj.shape}")
    if any(isinstance(v, sympy.Basic) for v in obj.flat):
        arr = obj
    else:
        try:
            arr = obj.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: entries must be real numbers or sympy expressions") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: entries must be finite, got {arr.tolist()}")
    arr.flags.writeable = False
    return arr


def exact(c: np.ndarray) -> np.ndarray:
    """A float64 constant as exact sympy rationals (the float's own binary value), for symbolic runs."""
    if c.dtype == object:
        return c
    return np.array([sympy.Rational(v) for v in c.flat], dtype=object).reshape(c.shape)


def fmt(c) -> str:
    if isinstance(c, sympy.Basic):
        return f"({c})" if c.args else str(c)
    return f"{float(c):.6g}"


def columns_before(T: int, offset: int) -> np.ndarray:
    return np.maximum(np.arange(T) - offset, 0)


def size(layout: Layout, who, name: str) -> int:
    if name not in layout:
        raise ValueError(f"{who}: register {name!r} is not in the layout ({', '.join(layout.names)})")
    return layout[name].size


def require(layout: Layout, who, name: str, rows: int, why: str) -> None:
    have = size(layout, who, name)
    if have != rows:
        raise ValueError(f"{who}: register {name!r} has {have} rows, needs {rows} ({why})")


def names(spec: dict, *keys: str) -> list[str]:
    """The register names under ``keys`` of an instruction's data, each a string."""
    out = []
    for key in keys:
        value = spec[key]
        if not isinstance(value, str):
            raise ValueError(f"{spec.get('kind')}: {key} must be a register name, got {value!r}")
        out.append(value)
    return out

