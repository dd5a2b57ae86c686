"""The programs: the paper's two chains and their n-example generalisations.

All four run on the prompt of ``prompt.py`` (this package) and leave the prediction in the
one-row register ``pred``. Parameters may be numbers or sympy expressions
(the proofs pass symbols); numbers are checked, symbols are taken as given.

How an n-example program works. Every instruction acts on every column, so a
program cannot "run the update at column 2k-1 only". Instead a *block* of
instructions is applied to all columns at once, and the learner's state
(``w`` for SGD; ``Ainv`` and ``w`` for ridge) travels from the y~ column of
example k-1 to that of example k by ``mov`` with offset 2. After block ``l``
the y~ columns of examples 1..l hold their correct state, and they keep it
in later blocks because their sources no longer change (induction on l);
``n`` blocks finish the prompt. Two boundary facts make column 0 (x~_1) a
fixed point that holds the initial state, as the y~ column of example 1
reads it:

* the update reads ``x = x_in(column i-1) - x_in(column i)``, which is x_k at
  the y~ column of example k (its own x slot is empty) and 0 at column 0;
  the y slot of an x~ column is 0, so column 0 sees the example (0, 0);
* SGD's penalty ``lam w`` does not vanish on (0, 0), so it is multiplied by
  ``gate = lam * (pos - pos of column i-1)``: 0 at column 0, lam elsewhere.

The x~ columns other than 0 compute well-defined values that nothing reads
except the final ``mov w_pred <- w`` (offset 1), which takes each x~
column's weights from the y~ column just before it: x~ column 2k sees the
example ``(-x_{k+1}, 0)`` and runs the same recurrence on the examples of
columns 2k, 2k-2, ..., 0. So after any number of blocks every column holds
the learner's state on some sequence of at most n examples, each
``(x_k, y_k)``, ``(-x_k, 0)`` or ``(0, 0)``: what ``domain.py`` bounds.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import sympy

from . import domain
from .instructions import Aff, Div, Mov, Mul
from .program import Program
from .prompt import POS, X_IN, Y_IN, as_array, check_count, finite_float, input_registers, shown
from .registers import Layout, Register


MAX_PARAMETER = 1e150  # the programs multiply parameters with each other and with the data; 1e150^2 is finite


def _scalar(value, name: str, *, positive: bool = False):
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


def _layout(d: int, data: list[tuple[str, tuple[int, ...]]]) -> Layout:
    return Layout(input_registers(d) + [Register(name, shape) for name, shape in data])


def _identity_over(d: int, lam):
    """The entries of I / lam, row-major (exact when lam is symbolic)."""
    one = sympy.Integer(1) if isinstance(lam, sympy.Basic) else 1.0
    return [one / lam if i == j else 0 * one for i in range(d) for j in range(d)]


def _read_x_of_example(x: str) -> list:
    """``x <- x_in(i-1) - x_in(i)``: x_k at example k's y~ column, 0 at column 0."""
    return [Mov(X_IN, x, 1), Aff(x, ((x, 1), (X_IN, -1)))]


def _predict_from_previous_column(d: int, w: str) -> list:
    """Every x~ column takes the weights of the column before it and predicts its own x."""
    return [Mov(w, "w_pred", 1), Mul("w_pred", X_IN, "pred", (1, d, 1))]


def sgd_step(d: int, alpha, lam, w0) -> Program:
    """Theorem 1: one SGD step on (x_1, y_1) from w0, predicted at x_2 (9 instructions).

    Loss (w^T x - y)^2 + lam |w|^2, step ``w' = w0 - 2 alpha (x (x^T w0 - y) + lam w0)``,
    prediction ``w'^T x_2``. The paper's chain, with two errata fixed: step 6
    adds ``+lam w`` (printed with -lam, the wrong sign of the penalty), and
    mov's columns are (source, destination). Data rows: 3 + 4d.

    Built for one query: at column 0 the chain takes the step on (x_1, 0),
    penalty included, so ``predict`` reports NaN there.
    """
    d = check_count(d, "d")
    alpha, lam = _scalar(alpha, "alpha"), _scalar(lam, "lam")
    w0 = as_array(w0, (d,), "w0")
    layout = _layout(d, [("x", (d,)), ("wx", (1,)), ("err", (1,)), ("grad", (d,)),
                         ("w", (d,)), ("g", (d,)), ("pred", (1,))])
    instructions = [
        Mov(X_IN, "x", 1),                                     # 1 x of column 0 -> column 1
        Aff("wx", (("x", w0[None, :], "w0^T"),)),              # 2 wx = w0^T x
        Aff("err", (("wx", 1), (Y_IN, -1))),                   # 3 err = wx - y
        Mul("x", "err", "grad", (d, 1, 1)),                    # 4 grad = x err
        Aff("w", bias=w0, bias_label="w0"),                    # 5 w = w0
        Aff("g", (("grad", 1), ("w", lam))),                   # 6 g = grad + lam w   (erratum: +lam)
        Aff("w", (("w", 1), ("g", -2 * alpha))),               # 7 w = w - 2 alpha g
        Mov("w", "w", 1),                                      # 8 w of column 1 -> column 2
        Mul("w", X_IN, "pred", (1, d, 1)),                     # 9 pred = w^T x_q
    ]
    return Program("sgd_step", d, 1, layout, tuple(instructions), query_only=True,
                   params={"alpha": alpha, "lam": lam, "w0": w0}, domain=partial(domain.sgd_step, d, alpha, lam, w0))


def sherman_morrison_step(d: int, lam) -> Program:
    """Theorem 2: ridge on one example by a Sherman-Morrison update (14 instructions).

    ``A1^{-1} = A0^{-1} - A0^{-1} x x^T A0^{-1} / (1 + x^T A0^{-1} x)`` with
    ``A0 = lam I``; ``w = A1^{-1} x_1 y_1``; prediction ``w^T x_2``. The
    paper's chain with its errata fixed: step 14 has shape (1, d, 1) (printed
    (d, 1, 1)), and mov's columns are (source, destination). Data rows:
    3 + 5d + 3d^2 (``den`` and ``den1`` are separate rows). Step 2's ``xy``
    is unused here; the n-example program accumulates it.

    Built for one query: ``predict`` reports NaN at column 0.
    """
    d = check_count(d, "d")
    lam = _scalar(lam, "lam", positive=True)
    layout = _layout(d, [("x", (d,)), ("xy", (d,)), ("Ainv", (d, d)), ("u", (d,)), ("vT", (d,)),
                         ("uvT", (d, d)), ("den", (1,)), ("den1", (1,)), ("corr", (d, d)),
                         ("w", (d,)), ("pred", (1,))])
    instructions = [
        Mov(X_IN, "x", 1),                                      # 1  x of column 0 -> column 1
        Mul("x", Y_IN, "xy", (d, 1, 1)),                        # 2  xy = x y
        Aff("Ainv", bias=_identity_over(d, lam), bias_label="I/lam"),  # 3  Ainv = I / lam
        Mul("Ainv", "x", "u", (d, d, 1)),                       # 4  u = Ainv x
        Mul("x", "Ainv", "vT", (1, d, d)),                      # 5  vT = x^T Ainv
        Mul("u", "vT", "uvT", (d, 1, d)),                       # 6  uvT = u vT
        Mul("vT", "x", "den", (1, d, 1)),                       # 7  den = vT x
        Aff("den1", (("den", 1),), bias=1),                     # 8  den1 = den + 1
        Div("uvT", "den1", "corr"),                             # 9  corr = uvT / |den1|
        Aff("Ainv", (("Ainv", 1), ("corr", -1))),               # 10 Ainv = Ainv - corr
        Mul("Ainv", "x", "w", (d, d, 1)),                       # 11 w = Ainv x
        Mul("w", Y_IN, "w", (d, 1, 1)),                         # 12 w = w y
        Mov("w", "w", 1),                                       # 13 w of column 1 -> column 2
        Mul("w", X_IN, "pred", (1, d, 1)),                      # 14 pred = w^T x_q  (erratum: (1, d, 1))
    ]
    return Program("sherman_morrison_step", d, 1, layout, tuple(instructions), query_only=True,
                   params={"lam": lam}, domain=partial(domain.sherman_morrison_step, d, lam))


def sgd(d: int, n: int, alpha, lam, w0=None) -> Program:
    """One pass of SGD over n examples from w0 (default 0), predicting at every prefix.

    Example k updates ``w <- w - 2 alpha (x_k (x_k^T w - y_k) + lam w)``; the
    x~ column of example k+1 predicts with the weights after example k.
    Depth 5 + 6n + 2, width d + 2 input rows and 6d + 5 data rows: O(d),
    whatever n. Block (applied n times):

        w_src <- w of column i-2        err  <- x^T w_src - y
        grad  <- x err                  pen  <- gate w_src
        w     <- w_src - 2 alpha (grad + pen)
    """
    d, n = check_count(d, "d"), check_count(n, "n")
    alpha, lam = _scalar(alpha, "alpha"), _scalar(lam, "lam")
    w0 = np.zeros(d) if w0 is None else as_array(w0, (d,), "w0")
    layout = _layout(d, [("pos_prev", (1,)), ("gate", (1,)), ("x", (d,)), ("w", (d,)), ("w_src", (d,)),
                         ("wx", (1,)), ("err", (1,)), ("grad", (d,)), ("pen", (d,)),
                         ("w_pred", (d,)), ("pred", (1,))])
    setup = [
        Mov(POS, "pos_prev", 1),
        Aff("gate", ((POS, lam), ("pos_prev", -lam))),          # lam, but 0 at column 0
        *_read_x_of_example("x"),
        Aff("w", bias=w0, bias_label="w0"),
    ]
    block = [
        Mov("w", "w_src", 2),
        Mul("x", "w_src", "wx", (1, d, 1)),
        Aff("err", (("wx", 1), (Y_IN, -1))),
        Mul("x", "err", "grad", (d, 1, 1)),
        Mul("gate", "w_src", "pen", (1, 1, d)),
        Aff("w", (("w_src", 1), ("grad", -2 * alpha), ("pen", -2 * alpha))),
    ]
    instructions = setup + block * n + _predict_from_previous_column(d, "w")
    return Program("sgd", d, n, layout, tuple(instructions), params={"alpha": alpha, "lam": lam, "w0": w0},
                   domain=partial(domain.sgd, d, n, alpha, lam, w0), block=(len(setup), len(block)))


def ridge(d: int, n: int, lam) -> Program:
    """Ridge regression over n examples by recursive least squares, at every prefix.

    The state is ``A_k^{-1}`` and the ridge weights ``w_k`` themselves, with
    ``A_k = lam I + sum_{j<=k} x_j x_j^T`` and ``w_k = A_k^{-1} sum_{j<=k} x_j y_j``
    (``A_0^{-1} = I/lam``, ``w_0 = 0``). Example k, with ``u = A_{k-1}^{-1} x_k``
    and ``den1 = 1 + x_k^T u``:

        gain = u / den1 = A_k^{-1} x_k           (Sherman-Morrison)
        A_k^{-1} = A_{k-1}^{-1} - gain u^T       (A^{-1} is symmetric: the paper's vT is u^T)
        w_k = w_{k-1} + gain (y_k - w_{k-1}^T x_k)

    The last line is ``A_k^{-1} b_k`` rewritten (``proofs/theorems.py``,
    ``rls_identity``); it never forms ``A^{-1} b``, whose terms
    (``|A^{-1}| |b|``, hundreds) cancel to ``|w|`` (a few) and cost the
    compiled network accuracy. ``A^{-1}`` and ``w`` stay in registers of
    their own: a compiled product's error scales with its operands' bounds,
    and a register's bound is that of its largest entry. Depth 3 + 12n + 2,
    data rows 3d^2 + 7d + 5: O(d^2), whatever n. Block (applied n times),
    the instructions on one line independent of each other:

        Ainv_src <- Ainv of column i-2     w_src <- w of column i-2
        u    <- Ainv_src x                 wx    <- x^T w_src
        den  <- x^T u                      e     <- y - wx
        den1 <- den + 1
        gain <- u / |den1|
        corr <- gain u^T                   step  <- gain e
        Ainv <- Ainv_src - corr            w     <- w_src + step
    """
    d, n = check_count(d, "d"), check_count(n, "n")
    lam = _scalar(lam, "lam", positive=True)
    layout = _layout(d, [("x", (d,)), ("Ainv", (d, d)), ("Ainv_src", (d, d)), ("w", (d,)), ("w_src", (d,)),
                         ("u", (d,)), ("wx", (1,)), ("den", (1,)), ("e", (1,)), ("den1", (1,)), ("gain", (d,)),
                         ("corr", (d, d)), ("step", (d,)), ("w_pred", (d,)), ("pred", (1,))])
    setup = [
        *_read_x_of_example("x"),
        Aff("Ainv", bias=_identity_over(d, lam), bias_label="I/lam"),
    ]
    block = [
        Mov("Ainv", "Ainv_src", 2),
        Mov("w", "w_src", 2),
        Mul("Ainv_src", "x", "u", (d, d, 1)),
        Mul("x", "w_src", "wx", (1, d, 1)),
        Mul("x", "u", "den", (1, d, 1)),
        Aff("e", ((Y_IN, 1), ("wx", -1))),
        Aff("den1", (("den", 1),), bias=1),
        Div("u", "den1", "gain"),
        Mul("gain", "u", "corr", (d, 1, d)),
        Mul("gain", "e", "step", (d, 1, 1)),
        Aff("Ainv", (("Ainv_src", 1), ("corr", -1))),
        Aff("w", (("w_src", 1), ("step", 1))),
    ]
    instructions = setup + block * n + _predict_from_previous_column(d, "w")
    return Program("ridge", d, n, layout, tuple(instructions), params={"lam": lam},
                   domain=partial(domain.ridge, d, n, lam), block=(len(setup), len(block)))
