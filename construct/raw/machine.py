"""The exact RAW machine: run instructions on a hidden state, one after another.

The same code runs a float64 state (the tests' ground truth for the compiled
network) and a numpy object array of sympy expressions (the proofs), so the
proofs execute the very program the tests run. In float64, an overflow, an
invalid operation or a zero divisor stops the run with an error that names
the instruction; nothing half-computed is returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from .registers import Layout

if TYPE_CHECKING:  # the kinds (construct.instructions) build on this package, not the other way
    from ..instructions import Instruction


def check_program(instructions: Sequence[Instruction], layout: Layout) -> None:
    """Every instruction's registers exist in ``layout`` with the sizes it needs."""
    for k, ins in enumerate(instructions, start=1):
        try:
            ins.check(layout)
        except ValueError as err:
            raise ValueError(f"instruction {k}: {err}") from None


def states(instructions: Sequence[Instruction], H: np.ndarray, layout: Layout) -> Iterator[np.ndarray]:
    """Yield the input state, then the state after each instruction (one at a time, nothing kept).

    ``H`` has ``layout.width`` rows and one column per token; trailing axes,
    if any, hold a batch of tasks run at once.
    """
    if H.ndim < 2 or H.shape[0] != layout.width:
        raise ValueError(f"H must have {layout.width} rows (the layout's width), got shape {H.shape}")
    if H.dtype != object and H.dtype != np.float64:
        raise ValueError(f"H must be float64 or an object array of sympy expressions, got {H.dtype}")
    check_program(instructions, layout)
    yield H
    for k, ins in enumerate(instructions, start=1):
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                H = ins.apply(H, layout)
        except (FloatingPointError, ZeroDivisionError) as err:
            raise FloatingPointError(f"instruction {k} ({ins}): {err}") from None
        yield H


def run(
    instructions: Sequence[Instruction], H: np.ndarray, layout: Layout, trace: bool = False
) -> np.ndarray | list[np.ndarray]:
    """The final state of running ``instructions`` on ``H``, or with ``trace=True`` every state.

    ``H`` is not modified.
    """
    all_states = states(instructions, H, layout)
    if trace:
        return list(all_states)
    for H in all_states:
        pass
    return H
