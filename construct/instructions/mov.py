"""mov: column ``i`` copies a register of column ``max(i - offset, 0)``; one attention head reads that column.

``Mov`` is the one instruction that looks at other columns. Column ``i``
reads column ``max(i - offset, 0)``: ``offset=1`` is "the previous column",
``offset=0`` a copy inside the column. The paper writes ``mov(s, t, ...)``
for one source column ``s`` and one destination ``t``; its chains use
``t = s + 1`` (column 0 -> 1, then 1 -> 2), which is ``Mov(offset=1)``
restricted to the column the theorem reads. Causal attention selecting
"``offset`` tokens back" does exactly this, including the clamp: a column
with fewer than ``offset`` predecessors can only see column 0 best.

Compiled (``compose``): the head attending to column ``i - offset`` adds the
source's linear form there; the self head subtracts the old destination, and
the residual adds it back. A mov of a value an earlier instruction of the
same layer computed moves that instruction's form, shifted:
``max(max(i - a, 0) - b, 0) = max(i - a - b, 0)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..mechanisms.plan import UNIFORM
from ..raw.registers import Layout
from .base import ATTENTION, Instruction, columns_before, names, require, size


@dataclass(frozen=True)
class Mov(Instruction):
    """mov: column ``i`` copies register ``src`` of column ``max(i - offset, 0)`` into ``dst``.

    Only ``dst`` changes, and it changes in every column. Columns with fewer
    than ``offset`` predecessors copy from column 0 (for ``offset=1`` that is
    column 0 copying its own ``src``).
    """

    src: str
    dst: str
    offset: int = 1

    kind = "mov"
    phase = ATTENTION

    def __post_init__(self) -> None:
        if not isinstance(self.offset, int) or isinstance(self.offset, bool) or self.offset < 0:
            raise ValueError(f"mov {self.dst} <- {self.src}: offset must be an int >= 0, got {self.offset!r}")

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.src,)

    @property
    def writes(self) -> str:
        return self.dst

    def check(self, layout: Layout) -> None:
        require(layout, self, self.dst, size(layout, self, self.src), f"it receives {self.src!r}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        out = H.copy()
        out[layout.rows(self.dst)] = H[layout.rows(self.src)][:, columns_before(H.shape[1], self.offset)]
        return out

    def _source_column(self) -> str:
        return "i" if self.offset == 0 else f"i-{self.offset}"

    def __str__(self) -> str:
        return f"mov  {self.dst} <- {self.src} of column {self._source_column()}"

    def paper(self, layout: Layout) -> str:
        return f"mov({self._source_column()}, i, {layout.paper(self.src)}, {layout.paper(self.dst)})"

    # -- export ---------------------------------------------------------------------------------------------------

    def to_data(self) -> dict:
        return {"src": self.src, "dst": self.dst, "offset": self.offset}

    @classmethod
    def from_data(cls, spec: dict) -> "Mov":
        return cls(*names(spec, "src", "dst"), spec["offset"])

    # -- compile rule ---------------------------------------------------------------------------------------------

    def compose(self, ctx, forms) -> None:
        """The destination's rows take the source's forms, shifted by the offset (all read before any is set:
        source and destination may overlap)."""
        new = []
        for s, d in zip(ctx.rows(self.src), ctx.rows(self.dst)):
            form, b = forms.value(s)
            if self.offset and any(o == UNIFORM for o, _ in form):
                raise ValueError(f"{self}: the form of {self.src!r} is a mean over columns, which no head reads at "
                                 "another column (the schedule puts this mov in a later layer)")
            new.append((d, {(o + self.offset, r): c for (o, r), c in form.items()}, b))
        for d, form, b in new:
            forms.set(d, form, b)

    # -- certificate rules --------------------------------------------------------------------------------------------

    def propagate(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack=None) -> np.ndarray:
        """The errors move with the values: exactly."""
        out = E.copy()
        out[layout.rows(self.dst)] = E[layout.rows(self.src)][:, columns_before(H.shape[1], self.offset)]
        return out

    def machine_rounding(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        return np.zeros_like(H)  # a copy is exact

    def pullback_terms(self, tokens: int) -> int:
        return 2

    def source_columns(self, tokens: int) -> np.ndarray:
        return columns_before(tokens, self.offset)

    def in_place(self) -> "Mov":
        return replace(self, offset=0)

    def pullback(self, H: np.ndarray, lam: np.ndarray, layout: Layout, absolute: bool = False) -> np.ndarray:
        """``J^T lam``: each column's cotangent on the destination goes back to the column it copied from (in place:
        ``lam`` is overwritten and returned)."""
        out = lam
        rows, src = layout.rows(self.dst), layout.rows(self.src)
        seed = lam[:, rows].copy()
        out[:, rows] = 0.0
        T = H.shape[1]
        o = min(self.offset, T)
        view = out[:, src]  # columns t >= o read column t - o; columns t < o read column 0
        view[:, :, : T - o] += seed[:, :, o:]
        view[:, :, 0] += seed[:, :, :o].sum(axis=2)
        return out
