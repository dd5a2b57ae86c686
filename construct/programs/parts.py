"""Pieces the library's programs share: parameter checks, their layouts, and two instruction sequences."""

from __future__ import annotations

import sympy

from ..instructions import Aff, Avg, Mov, Mul
from ..raw import domain
from ..raw.domain import Box
from ..raw.prompt import POS, X_IN, Y_IN, finite_float, input_registers, shown
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


def averaged_registers(d: int) -> list[tuple[str, tuple[int, ...]]]:
    """The registers ``prefix_averages`` writes."""
    return [("x_prev", (d,)), ("x", (d,)), ("pos_prev", (1,)), ("bos", (1,)), ("z", (d, d)), ("xy", (d,)),
            ("A", (d, d)), ("Abos", (1,)), ("b", (d,))]


def prefix_averages(d: int, lam) -> list:
    """``A <- (lam I + S_k) / (i + 1)`` and ``b <- X_k^T y_k / (i + 1)`` at column i, over the k examples before it.

    ``x_prev`` is x_in of column i-1 (column 0: its own) and ``x = x_prev -
    x_in``: at the y~ column of example k both are x_k; at column 0, x = 0;
    at another x~ column, x_prev = 0. So ``z = x x_prev^T`` and ``xy = x
    y_in`` are ``x_k x_k^T`` and ``x_k y_k`` at y~ columns and 0 elsewhere,
    and their prefix means (``Avg``) sum over the examples before column i,
    divided by ``i + 1``. ``bos = 1 - (pos - pos of column i-1)`` is 1 at
    column 0 only, so its mean is ``1/(i + 1)``, which brings ``lam I`` in.
    Two layers: the moves and the indicator, then the products (one MLP);
    the means and their sum in the next attention.
    """
    eye = identity_over(d, 1.0)
    return [
        Mov(X_IN, "x_prev", 1),
        Aff("x", (("x_prev", 1), (X_IN, -1))),
        Mov(POS, "pos_prev", 1),
        Aff("bos", ((POS, -1), ("pos_prev", 1)), bias=1),
        Mul("x", "x_prev", "z", (d, 1, d)),
        Mul("x", Y_IN, "xy", (d, 1, 1)),
        Avg("z", "A"),
        Avg("bos", "Abos"),
        Aff("A", (("A", 1), ("Abos", [[lam * v] for v in eye], "lam I"))),
        Avg("xy", "b"),
    ]


def averaged_bounds(n: int, lam, box: Box) -> dict:
    """Bounds on the registers of ``prefix_averages`` from the box (every column, every state)."""
    X, R, Y = box.x_max, box.x_norm, box.y_max
    return {
        **domain.prompt(box, n),
        "x_prev": X,                      # x_in of column i-1
        "x": X,                           # x_in(i-1) - x_in(i): one of the two is 0
        "pos_prev": domain.positive(2 * n - 1),
        "bos": 1,                         # 1 at column 0, else 0
        "z": domain.positive(X**2),       # x_k x_k^T at y~ columns, else 0
        "xy": X * Y,
        # A is PSD with lambda_max <= lam + R^2/2 (column 0: lam I; column i >= 1 has k <= (i + 1)/2 examples:
        # (lam + k R^2)/(i + 1) <= lam/2 + R^2/2): an entry is at most the largest eigenvalue; before lam I is
        # added it holds S_k / (i + 1), below A
        "A": lam + R**2 / 2,
        "Abos": 1,                        # 1/(i + 1)
        "b": X * Y / 2,                   # X_k^T y_k / (i + 1): k <= (i + 1)/2 terms, each entry <= X Y
    }
