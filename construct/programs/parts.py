"""Pieces the library's programs share: parameter checks, their layouts, and two instruction sequences."""

from __future__ import annotations

import sympy

from ..instructions import Aff, Mov, Mul
from ..raw.prompt import X_IN, finite_float, input_registers, shown
from ..raw.registers import Layout, Register


MAX_PARAMETER = 1e150  # the programs multiply parameters with each other and with the data; 1e150^2 is finite


def scalar(value, name: str, *, positive: bool = False):
    """A real parameter in [0, 1e150] (in [1e-150, 1e150] if ``positive``), or a sympy expression taken as given.

    The upper limit keeps a parameter's products (with another parameter,
    or with data of the same size) finite in float64; ``positive``
    parameters are ridge's lam, which the programs divide by.
    """
    if isinstance(value, sympy.Basic):
        return value
    number = finite_float(value)
    if number is None:
        raise ValueError(f"{name} must be a finite real number, got {shown(value)}")
    value = number
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    if value > MAX_PARAMETER or (positive and value < 1 / MAX_PARAMETER):
        raise ValueError(f"{name} = {value:g} is outside [{1 / MAX_PARAMETER if positive else 0:g}, "
                         f"{MAX_PARAMETER:g}], where the program's products of parameters and data stay finite "
                         "in float64")
    return float(value)


def layout(d: int, data: list[tuple[str, tuple[int, ...]]]) -> Layout:
    return Layout(input_registers(d) + [Register(name, shape) for name, shape in data])


def identity_over(d: int, lam):
    """The entries of I / lam, row-major (exact when lam is symbolic)."""
    one = sympy.Integer(1) if isinstance(lam, sympy.Basic) else 1.0
    return [one / lam if i == j else 0 * one for i in range(d) for j in range(d)]


def read_x_of_example(x: str) -> list:
    """``x <- x_in(i-1) - x_in(i)``: x_k at example k's y~ column, 0 at column 0."""
    return [Mov(X_IN, x, 1), Aff(x, ((x, 1), (X_IN, -1)))]


def predict_from_previous_column(d: int, w: str) -> list:
    """Every x~ column takes the weights of the column before it and predicts its own x."""
    return [Mov(w, "w_pred", 1), Mul("w_pred", X_IN, "pred", (1, d, 1))]
