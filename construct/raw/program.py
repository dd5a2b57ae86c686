"""A program: RAW instructions on a register layout, and how to read its predictions."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import machine
from .prompt import POS, X_IN, Y_IN, check_task, encode, x_columns
from .registers import Layout

if TYPE_CHECKING:  # the kinds (construct.instructions) build on this package, not the other way
    from ..instructions import Instruction

INPUTS = (Y_IN, X_IN, POS)


@dataclass(frozen=True, eq=False)
class Program:
    """Instructions on named registers, built for ``d`` inputs and ``n`` examples.

    ``predict`` runs the exact machine on the encoded prompt and reads the
    register ``readout`` at every x~ column: entry ``k`` (0-based) predicts
    the label of x~_{k+1} from examples 1..k, and the last entry is the
    query's. A program built for one query only (``query_only``, the paper's
    single-step chains) reports NaN at the other columns, because what it
    computes there is not a prediction from the examples before them.

    ``domain``, when the program has one, derives every register's bound and
    every divisor's floor from bounds on the inputs alone
    (``domain(Box) -> Domain``, see ``domain.py``), and ``algorithm`` is its
    entry in the registry of ``construct.programs`` (its closed form, its
    parameters, the paper's sizes); the constructors of ``construct.programs``
    attach both, a program built by hand has neither.

    ``block``, when set, is ``(start, size)``: the instructions from
    ``start`` on are one block of ``size`` instructions repeated n times (the
    same objects), then the rest. The n-example constructors set it, so that
    the compiler can size the network for any n from the program with 1 to 3
    blocks (``truncated``) before it schedules the long one.
    """

    name: str
    d: int
    n: int
    layout: Layout
    instructions: tuple[Instruction, ...]
    readout: str = "pred"
    query_only: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    domain: Callable | None = field(default=None, repr=False)
    algorithm: Any = field(default=None, repr=False)
    block: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "instructions", tuple(self.instructions))
        machine.check_program(self.instructions, self.layout)
        if self.block is not None:
            self._check_block()
        for k, ins in enumerate(self.instructions, start=1):
            if ins.writes in INPUTS:
                raise ValueError(f"{self.name}: instruction {k} ({ins}) writes the input register {ins.writes!r}")
        if self.layout[self.readout].size != 1:
            raise ValueError(f"{self.name}: the read-out register {self.readout!r} must have one row")

    def _check_block(self) -> None:
        if not (isinstance(self.block, tuple) and len(self.block) == 2 and
                all(isinstance(v, int) and not isinstance(v, bool) for v in self.block)):
            raise ValueError(f"{self.name}: block must be (start, size), two integers, got {self.block!r}")
        start, size = self.block
        blocks = self.instructions[start:start + self.n * size]
        first = blocks[:size]
        # identity, not ==: the sizing relies on the same objects, and == on Aff would compare arrays
        if not (0 <= start and size >= 1 and len(blocks) == self.n * size
                and all(map(operator.is_, blocks, first * self.n))):
            raise ValueError(f"{self.name}: block {self.block} does not describe instructions repeated n = {self.n} "
                             "times from its start")

    def truncated(self, blocks: int) -> "Program":
        """The same program with ``blocks`` repetitions of its block (and n = ``blocks``), without a domain: what
        the compiler sizes a long program from."""
        if self.block is None:
            raise ValueError(f"{self.name} declares no repeated block")
        start, size = self.block
        ins = self.instructions
        return Program(self.name, self.d, blocks, self.layout,
                       ins[:start] + ins[start:start + size] * blocks + ins[start + self.n * size:],
                       readout=self.readout, query_only=self.query_only, params=self.params,
                       algorithm=self.algorithm, block=self.block)

    @property
    def depth(self) -> int:
        """Number of instructions (one layer each when compiled)."""
        return len(self.instructions)

    @property
    def width(self) -> int:
        """Rows of the hidden state: input rows plus data rows."""
        return self.layout.width

    @property
    def data_rows(self) -> int:
        """Rows beyond the prompt encoding (``y_in``, ``x_in``, ``pos``): the rows the program's registers take.

        Not the paper's count. The paper counts its chains' rows from row 0,
        y and x included; its chains write the example over the input rows
        and its count leaves the prediction out. For its two chains the
        numbers agree, 3 + 4d and 3 + 5d + 3d^2, but they count different
        rows (``proofs/paper_layout.py`` derives the paper's rows; docs/CONSTRUCTION.md sections 6 and 7).
        """
        return self.width - sum(self.layout[name].size for name in INPUTS)

    def encode(self, X, y, x_query) -> np.ndarray:
        """The checked task as the machine's initial hidden state."""
        return encode(*check_task(X, y, x_query, self.d, self.n), self.layout)

    def run(self, X, y, x_query, trace: bool = False):
        """Final hidden state, or with ``trace`` every state (input first)."""
        return machine.run(self.instructions, self.encode(X, y, x_query), self.layout, trace=trace)

    def states_many(self, tasks):
        """Every state (input first) of a batch of tasks ``(X, y, x_query)`` run at once.

        A generator, so a long program's states need not all be kept; the
        batch is a trailing axis of each state.
        """
        encoded = [self.encode(*task) for task in tasks]
        if not encoded:
            raise ValueError("states_many needs at least one task")
        return machine.states(self.instructions, np.stack(encoded, axis=-1), self.layout)

    def read(self, H: np.ndarray) -> np.ndarray:
        """Predictions from a final hidden state: the read-out row at every x~ column."""
        preds = H[self.layout.rows(self.readout)][0, x_columns(self.n)].copy()
        if self.query_only:
            preds[:-1] = np.nan
        return preds

    def predict(self, X, y, x_query) -> np.ndarray:
        """``n + 1`` predictions, one per x~ column; the last is the query's."""
        return self.read(self.run(X, y, x_query))

    def listing(self, form: str = "registers") -> str:
        """The instructions, numbered, in register form or in the paper's row-range notation over this layout's
        rows (the paper's own rows differ: docs/CONSTRUCTION.md sections 6 and 7)."""
        if form not in ("registers", "paper"):
            raise ValueError(f"form must be 'registers' or 'paper', got {form!r}")
        lines = [
            f"{k:>3}  {ins if form == 'registers' else ins.paper(self.layout)}"
            for k, ins in enumerate(self.instructions, start=1)
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        head = f"{self.name}: d={self.d}, n={self.n}, depth={self.depth}, width={self.width} ({self.data_rows} data rows)"
        return head + "\n" + self.listing()
