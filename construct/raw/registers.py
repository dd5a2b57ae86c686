"""Registers and the layout that places them on rows of the hidden state.

A *register* is a named block of rows: ``Register("x", (d,))`` or
``Register("Ainv", (d, d))`` (a matrix register stores its entries row-major).
A *layout* assigns every register a half-open row range ``[start, stop)``
once, and from then on instructions talk about registers by name; the
row-range form of the paper is derived from the layout, never written by hand.

Every row gets a label for traces and plots: ``"x[2]"`` for entry 2 of ``x``,
``"Ainv[1,0]"`` for the matrix entry in row 1, column 0, and the bare name for a
one-row register (``"err"``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from itertools import product
from typing import Iterable, Mapping

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Register:
    """A named block of rows; ``shape`` is ``(k,)`` for a vector, ``(a, b)`` for a matrix."""

    name: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"register name must be an identifier (letters, digits, _), got {self.name!r}"
            )
        shape = self.shape
        if isinstance(shape, int):
            shape = (shape,)
        if (
            not isinstance(shape, tuple)
            or not shape
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        ):
            raise ValueError(
                f"register {self.name!r}: shape must be a tuple of positive ints, got {self.shape!r}"
            )
        object.__setattr__(self, "shape", shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def labels(self) -> list[str]:
        """One label per row, in storage (row-major) order."""
        if self.size == 1:
            return [self.name]
        return [
            f"{self.name}[{','.join(map(str, idx))}]"
            for idx in product(*(range(s) for s in self.shape))
        ]


class Layout:
    """Registers placed on rows, each exactly once.

    ``Layout(registers)`` stacks the registers in order from row 0.
    ``Layout(registers, starts={"w": 12, ...})`` places the named ones at the
    given rows (the rest follow the previous register); overlapping ranges and
    duplicate names are refused with an error that names both registers.
    """

    def __init__(self, registers: Iterable[Register], starts: Mapping[str, int] | None = None):
        starts = dict(starts or {})
        placed: dict[str, tuple[Register, int]] = {}
        cursor = 0
        for reg in registers:
            if not isinstance(reg, Register):
                raise TypeError(f"layout entries must be Register, got {reg!r}")
            if reg.name in placed:
                raise ValueError(f"register {reg.name!r} is placed twice in the layout")
            start = starts.pop(reg.name, cursor)
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                raise ValueError(f"register {reg.name!r}: start row must be an int >= 0, got {start!r}")
            placed[reg.name] = (reg, start)
            cursor = start + reg.size
        if starts:
            raise ValueError(f"start rows given for unknown registers: {sorted(starts)}")
        spans = sorted((start, start + reg.size, reg.name) for reg, start in placed.values())
        for (a0, a1, a), (b0, b1, b) in zip(spans, spans[1:]):
            if b0 < a1:
                raise ValueError(f"registers {a!r} rows [{a0}, {a1}) and {b!r} rows [{b0}, {b1}) overlap")
        self._placed = placed
        self.width = max((stop for _, stop, _ in spans), default=0)

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """One label per row (``"(unused)"`` between registers); made on first use, since only displays need them."""
        labels = ["(unused)"] * self.width
        for reg, start in self._placed.values():
            labels[start : start + reg.size] = reg.labels()
        return tuple(labels)

    # -- lookup ---------------------------------------------------------------

    def _entry(self, name: str) -> tuple[Register, int]:
        try:
            return self._placed[name]
        except KeyError:
            raise KeyError(
                f"register {name!r} is not in the layout (registers: {', '.join(self.names)})"
            ) from None

    def __getitem__(self, name: str) -> Register:
        return self._entry(name)[0]

    def __contains__(self, name: object) -> bool:
        return name in self._placed

    def __iter__(self):
        return iter(reg for reg, _ in self._placed.values())

    def __len__(self) -> int:
        return len(self._placed)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._placed)

    def span(self, name: str) -> tuple[int, int]:
        """Half-open row range ``(start, stop)`` of a register."""
        if name not in self._spans:
            self._entry(name)  # raises the error that names the layout's registers
        return self._spans[name]

    @cached_property
    def _spans(self) -> dict[str, tuple[int, int]]:
        """Every register's ``span``, found once (the certificate asks for them thousands of times a run)."""
        return {name: (start, start + reg.size) for name, (reg, start) in self._placed.items()}

    def rows(self, name: str) -> slice:
        """The register's rows as a slice, for indexing a hidden state ``H[rows, :]``."""
        return slice(*self.span(name))

    def paper(self, name: str) -> str:
        """The paper's row-range notation, ``[start, stop)``."""
        start, stop = self.span(name)
        return f"[{start}, {stop})"

    def extended(self, registers: Iterable[Register]) -> "Layout":
        """This layout with more registers stacked after the last row."""
        starts = {reg.name: start for reg, start in self._placed.values()}
        extra = list(registers)
        if extra:
            starts[extra[0].name] = self.width
        return Layout([*self, *extra], starts)

    def __repr__(self) -> str:
        body = ", ".join(f"{n}{self.paper(n)}" for n in self.names)
        return f"Layout({body}; width={self.width})"
