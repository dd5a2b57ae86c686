"""Prompt encoding: a regression task as the columns of a hidden state (docs/CONSTRUCTION.md section 3).

An input ``x`` in R^d becomes the token ``x~ = [0, x]`` and a label ``y`` the
token ``y~ = [y, 0]``; row 0 is the y slot, rows 1..d the x slot. A prompt
with ``n`` examples and a query is the column sequence

    x~_1, y~_1, x~_2, y~_2, ..., x~_n, y~_n, x~_q        (T = 2n + 1 columns)

so ``x~_k`` is column ``2(k-1)`` and the query column ``2n``. Besides the
token, every column carries its index in the register ``pos`` (the position
embedding's contribution); programs that need to tell column 0 apart use it.
Every other row starts at 0.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import sympy

from .registers import Layout, Register

Y_IN, X_IN, POS = "y_in", "x_in", "pos"


def input_registers(d: int) -> list[Register]:
    """The registers the encoding writes: y slot, x slot, column index (rows 0, 1..d, d+1)."""
    return [Register(Y_IN, (1,)), Register(X_IN, (d,)), Register(POS, (1,))]


def x_columns(n: int) -> np.ndarray:
    """Columns of x~_1 .. x~_n and the query: where predictions are read."""
    return np.arange(0, 2 * n + 1, 2)


MAX_COUNT = 2**31 - 1  # beyond it a program's n blocks, or d rows, overflow numpy's index arithmetic


def check_count(value, name: str, minimum: int = 1) -> int:
    """An integer in [minimum, MAX_COUNT] (bools refused), else ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= MAX_COUNT:
        raise ValueError(f"{name} must be an integer in [{minimum}, {MAX_COUNT}], got {shown(value)}")
    return int(value)


def finite_float(value) -> float | None:
    """``value`` as a float, if it is a real number (not a bool) that float64 holds finite; else None.

    A test of user input that cannot raise: ``float`` raises OverflowError on
    an integer beyond 1.8e308 and ``numpy.isfinite`` a TypeError, and a
    longdouble beyond float64 becomes inf.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    try:
        with np.errstate(over="ignore"):
            number = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def shown(value) -> str:
    """``repr(value)`` for a message, except for an integer beyond float64, whose repr runs to hundreds of digits."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and finite_float(value) is None:
        return f"an integer of magnitude about 1e+{int(int(value).bit_length() * math.log10(2))}, beyond float64's range"
    return repr(value)


def as_array(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``value`` as float64 (or object, if it holds sympy expressions) of exactly ``shape``.

    Refuses, with a ValueError that names the argument: wrong shapes,
    non-numbers (strings, dates, None), complex numbers (their imaginary part
    would be dropped), masked arrays (their mask would be dropped), and NaN or
    inf. Booleans count as the numbers 0 and 1.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise ValueError(f"{name} is a masked array, whose mask would be lost; pass plain numbers "
                         "(numpy.ma.filled, or leave the masked entries out)")
    obj = np.array(value, dtype=object)
    if obj.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {obj.shape}")
    if any(isinstance(v, sympy.Basic) for v in obj.flat):
        return obj
    dtype = np.asarray(value).dtype
    odd = [v for v in obj.flat if not isinstance(v, (numbers.Real, np.bool_))][:1] if dtype.kind == "O" else []
    if dtype.kind == "c" or any(isinstance(v, (complex, np.complexfloating)) for v in odd):
        raise ValueError(f"{name} holds complex numbers; tasks are real (pass {name}.real if the imaginary "
                         "parts are 0)")
    if odd:
        raise ValueError(f"{name} must hold real numbers, got {type(odd[0]).__name__} {odd[0]!r}")
    if dtype.kind not in "biufO":
        raise ValueError(f"{name} must hold real numbers, got dtype {dtype}")
    try:
        with np.errstate(over="ignore"):  # a longdouble beyond float64's range becomes inf, refused below
            arr = np.array(value, dtype=np.float64)
    except OverflowError:  # a Python integer beyond float64's range
        arr = np.array([np.nan if finite_float(v) is None else float(v) for v in obj.flat]).reshape(shape)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} contains NaN, inf or a number beyond float64's range at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    return arr


def check_task(X, y, x_query, d: int, n: int, prefix: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a task for a program built for ``d`` inputs and ``n`` examples (any ``k <= n`` with ``prefix``)."""
    X_arr = np.array(X, dtype=object)
    if X_arr.ndim != 2 and not (prefix and X_arr.size == 0):
        raise ValueError(f"X must be a 2-d array (n, d) = ({n}, {d}), got shape {X_arr.shape}")
    k = X_arr.shape[0] if X_arr.ndim == 2 else 0
    if k != n and not (prefix and k < n):
        raise ValueError(f"X has {k} examples but the program is built for "
                         f"{'at most ' if prefix else ''}n = {n}")
    X = as_array(np.reshape(X_arr, (k, d)) if k == 0 else X, (k, d), "X")
    y_arr = np.array(y, dtype=object)
    if y_arr.shape != (k,):
        raise ValueError(f"y must have shape ({k},) to match X's {k} examples, got {y_arr.shape}")
    y = as_array(y, (k,), "y")
    x_query = as_array(x_query, (d,), "x_query")
    return X, y, x_query


def tokens(X: np.ndarray, y: np.ndarray, x_query: np.ndarray) -> np.ndarray:
    """The prompt as a transformer's input: one row per token, ``[y, x]`` slots (T x (d+1))."""
    n, d = X.shape
    out = np.zeros((2 * n + 1, d + 1))
    out[0 : 2 * n : 2, 1:] = X
    out[1 : 2 * n : 2, 0] = y
    out[2 * n, 1:] = x_query
    return out


def encode(X: np.ndarray, y: np.ndarray, x_query: np.ndarray, layout: Layout) -> np.ndarray:
    """The initial hidden state (layout.width x (2n + 1)) for a checked task."""
    n, d = X.shape
    symbolic = object in (X.dtype, y.dtype, x_query.dtype)
    H = np.zeros((layout.width, 2 * n + 1), dtype=object if symbolic else np.float64)
    if symbolic:
        H[:] = sympy.Integer(0)
    x_cols = x_columns(n)
    H[layout.rows(X_IN), x_cols[:-1]] = X.T
    H[layout.rows(X_IN), x_cols[-1]] = x_query
    H[layout.rows(Y_IN), x_cols[:-1] + 1] = y
    positions = range(2 * n + 1)
    H[layout.rows(POS)] = [sympy.Integer(i) for i in positions] if symbolic else list(positions)
    return H
