"""A program's domain from bounds on its inputs alone: every register's bound and every divisor's floor.

The user declares a box: ``|x_i| <= x_max`` for every entry of every input
x (examples and query), ``|y| <= y_max`` for every label and, optionally,
``|x|_2 <= x_norm`` (default ``sqrt(d) x_max``, which the entries imply).
Each function below derives, from the algorithm's theory, a bound on
``|entry|`` of every register and a floor on ``|value|`` of every divisor,
valid for **every column in every state** (after every instruction): every
instruction acts on every column, and the compiled network checks all of
them. Registers start at 0 and, until an instruction writes them, keep 0 or
the value of a previous block, so a bound on what an instruction writes
covers every state. Each bound's one-line proof sits next to the line that
computes it; ``proofs/domains.py`` checks the lemmas with sympy and that
these functions compute them; ``tests/test_domain.py`` runs tasks at the
corners of the box.

Notation: ``X = x_max`` (entries), ``R = x_norm`` (norms), ``Y = y_max``,
and ``K = 1/(2 sqrt(lam)) = max_{s >= 0} s / (s^2 + lam)`` (AM-GM:
``s^2 + lam >= 2 s sqrt(lam)``). What every column computes (see
``programs.py``): in the n-example programs, after any number of blocks a
column holds the learner's state on a sequence of at most n examples, each
``(x_k, y_k)``, ``(-x_k, 0)`` (x~ columns) or ``(0, 0)`` (column 0), so
every x it reads has ``|x_i| <= X``, ``|x| <= R`` and every y ``|y| <= Y``.
The paper's chains read ``x = x_in`` of column i-1 without the difference:
column 0 takes its step on ``(x_1, 0)``, column 2 on ``(0, 0)``.

The functions take numbers or sympy expressions (then ``Min``/``Max`` stay
symbolic and the proofs and the walkthrough print the formulas). Bounds are
exact here; ``compiler.bounds`` adds the slack the compiled network needs.
A register that is identically zero gets the bound 1 (bounds are positive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy

from .prompt import POS, X_IN, Y_IN, finite_float, shown


def _symbolic(*values) -> bool:
    return any(isinstance(v, sympy.Basic) for v in values)


def _max(*values):
    return sympy.Max(*values) if _symbolic(*values) else max(values)


def _min(*values):
    return sympy.Min(*values) if _symbolic(*values) else min(values)


def _sqrt(value, *like):
    """The square root, exact (sympy) when ``value`` or any of ``like`` is symbolic."""
    return sympy.sqrt(value) if _symbolic(value, *like) else math.sqrt(value)


def _abs(value):
    return sympy.Abs(value) if _symbolic(value) else abs(value)


def _norm(vector):
    """Euclidean norm of a parameter vector (float64 or sympy entries)."""
    entries = list(np.asarray(vector, dtype=object).flat)
    return sympy.sqrt(sum(e**2 for e in entries)) if _symbolic(*entries) else float(np.linalg.norm(
        np.asarray(vector, dtype=np.float64)))


def _positive(value):
    """``value`` if it is a positive number, 1 for a register that is identically zero (symbols as given)."""
    return value if _symbolic(value) or value > 0 else 1.0


def _real(value, name: str):
    if _symbolic(value):
        return value
    number = finite_float(value)
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {shown(value)}")
    return number


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
        full = _sqrt(self.d, x_max) * x_max
        if self.x_norm is None:
            x_norm = full
        elif _symbolic(x_max, self.x_norm):  # symbols (the proofs, the walkthrough) are taken as given
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


def _prompt(box: Box, n: int) -> dict:
    """The encoding writes x_in <= X and y_in <= Y as declared, and pos = column index <= 2n, exactly."""
    return {Y_IN: box.y_max, X_IN: box.x_max, POS: 2 * n}


def contraction(alpha, lam, R):
    """``rho = max(|1 - 2 alpha lam|, |1 - 2 alpha (lam + R^2)|)``: a bound on ``|M|``, ``M = I - 2 alpha (x x^T + lam I)``.

    M is symmetric with eigenvalues ``1 - 2 alpha (lam + |x|^2)`` (along x)
    and ``1 - 2 alpha lam`` (across it); ``|1 - 2 alpha (lam + t)|`` is convex
    in t, so over ``t = |x|^2 in [0, R^2]`` it peaks at an end.
    """
    return _max(_abs(1 - 2 * alpha * lam), _abs(1 - 2 * alpha * (lam + R**2)))


def sgd_radius(n: int, alpha, lam, w0, box: Box):
    """``W``, a bound on ``|w|_2`` after at most n steps ``w' = M w + 2 alpha y x``, ``M = I - 2 alpha (x x^T + g I)``.

    The gate g is lam (``|M| <= rho``, ``contraction``) except at column 0,
    where ``x = 0``, ``g = 0`` and M = I: those steps only repeat w0, before
    any other. So ``|w_m| <= rho |w_{m-1}| + 2 alpha Y R`` over the other
    steps: ``|w_m| <= B_m = rho^m |w0| + 2 alpha Y R sum_{j<m} rho^j`` and
    ``W = max_{m <= n} B_m``. When ``rho > 1`` the bound grows like rho^n:
    refused, with the largest alpha the box allows (``rho <= 1`` iff
    ``alpha (R^2 + lam) <= 1``).
    """
    R, Y = box.x_norm, box.y_max
    rho = contraction(alpha, lam, R)
    if not _symbolic(rho) and rho > 1:
        raise ValueError(
            f"sgd(alpha={alpha:g}, lam={lam:g}) diverges on the box {box}: a step can multiply |w| by "
            f"rho = max(|1 - 2 alpha lam|, |1 - 2 alpha (lam + R^2)|) = {rho:.6g} > 1 with R = {R:.6g}, so no bound "
            f"holds for n = {n} examples. The box allows alpha <= 1/(R^2 + lam) = {1 / (R**2 + lam):.6g}; use a "
            f"smaller alpha, a smaller x_max, or declare x_norm (a bound on |x|_2, default sqrt(d) x_max)")
    radii = [_norm(w0)]
    for _ in range(n):
        radii.append(rho * radii[-1] + 2 * alpha * Y * R)
    return _max(*radii)


def sgd(d: int, n: int, alpha, lam, w0, box: Box) -> Domain:
    """One pass of SGD (``programs.sgd``): every column runs the recurrence on examples of the box."""
    X, R, Y = box.x_max, box.x_norm, box.y_max
    W = sgd_radius(n, alpha, lam, w0, box)
    values = {
        **_prompt(box, n),
        "pos_prev": 2 * n - 1,              # pos of column i-1, clamped to 0
        "gate": _positive(lam),             # lam (pos - pos_prev): lam, or 0 at column 0
        "x": X,                             # x_in(i-1) - x_in(i): one of the two is 0
        "w": _positive(W),                  # sgd_radius; an entry is at most the norm
        "w_src": _positive(W),              # w of column i-2
        "wx": _positive(R * W),             # Cauchy-Schwarz: |x^T w| <= |x| |w|
        "err": R * W + Y,                   # |x^T w - y| <= R W + Y
        "grad": X * (R * W + Y),            # x err, entrywise
        "pen": _positive(lam * W),          # gate w_src, gate <= lam
        "w_pred": _positive(W),             # w of column i-1
        "pred": _positive(R * W),           # w_pred^T x_in, Cauchy-Schwarz
    }
    return Domain(values, {})


def sgd_step(d: int, alpha, lam, w0, box: Box) -> Domain:
    """Theorem 1's chain: one step from w0 on ``x = x_in(i-1)``, ``y = y_in(i)`` in every column, penalty included."""
    X, R, Y = box.x_max, box.x_norm, box.y_max
    w0_norm = _norm(w0)
    W1 = contraction(alpha, lam, R) * w0_norm + 2 * alpha * Y * R   # |M w0 + 2 alpha y x|, one step (any rho)
    W = _max(w0_norm, W1)                                             # w0 (step 5), w1 (steps 7, 8)
    values = {
        **_prompt(box, 1),
        "x": X,                                        # x_in of column i-1
        "wx": _positive(R * w0_norm),                  # w0^T x, Cauchy-Schwarz
        "err": R * w0_norm + Y,                        # wx - y
        "grad": X * (R * w0_norm + Y),                 # x err, entrywise
        "w": _positive(W),
        "g": X * (R * w0_norm + Y) + lam * w0_norm,    # grad + lam w0, entrywise
        "pred": _positive(R * W),                      # w^T x_in
    }
    return Domain(values, {})


def sherman_morrison_step(d: int, lam, box: Box) -> Domain:
    """Theorem 2's chain on ``x = x_in(i-1)``: ``A1 = lam I + x x^T`` in every column (x = 0 at column 2)."""
    X, R, Y = box.x_max, box.x_norm, box.y_max
    G = _min(1 / (2 * _sqrt(lam)), R / lam)   # |A1^{-1} x| = |x| / (lam + |x|^2) <= K, and <= R / lam
    values = {
        **_prompt(box, 1),
        "x": X,                          # x_in of column i-1
        "xy": X * Y,                     # x y
        "Ainv": 1 / lam,                 # I/lam, then A1^{-1} <= I/lam (Loewner), entries of a PSD matrix
        "u": X / lam,                    # A0^{-1} x = x / lam
        "vT": X / lam,                   # x^T A0^{-1}
        "uvT": X**2 / lam**2,            # x x^T / lam^2
        "den": R**2 / lam,               # |x|^2 / lam
        "den1": 1 + R**2 / lam,          # 1 + |x|^2 / lam
        "corr": _min(1 / lam, X**2 / lam**2),  # 0 <= corr = A0^{-1} - A1^{-1} <= I/lam; also <= uvT (den1 >= 1)
        "w": _max(G, G * Y),             # A1^{-1} x (step 11), times y (step 12)
        "pred": R * _max(G, G * Y),      # w^T x_in
    }
    return Domain(values, {"den1": 1})  # 1 + x^T x / lam >= 1


def ridge(d: int, n: int, lam, box: Box) -> Domain:
    """Ridge by recursive least squares (``programs.ridge``): every column is ridge on at most n examples.

    A column's state is ``A^{-1}`` and ``w = A^{-1} X^T y`` with
    ``A = lam I + X^T X`` over its examples (rows of X, at most n, each with
    ``|x| <= R``; labels ``|y| <= Y``, so ``|y|_2 <= sqrt(n) Y``).
    """
    X, R, Y = box.x_max, box.x_norm, box.y_max
    K = 1 / (2 * _sqrt(lam))
    W = _sqrt(n, Y, lam) * Y * K         # w = V diag(s / (s^2 + lam)) U^T y (SVD of X): |w| <= K |y|
    U = R / lam                          # u = A^{-1} x, |A^{-1}| <= 1/lam (A >= lam I)
    # gain = u / den1; with v = A^{-1/2} x, |u| <= |v| / sqrt(lam) and den1 = 1 + |v|^2, so
    # |gain| <= |v| / ((1 + |v|^2) sqrt(lam)) <= K (AM-GM), and |gain| <= |u| (den1 >= 1)
    G = _min(K, U)
    E = Y + R * W                        # e = y - w^T x
    values = {
        **_prompt(box, n),
        "x": X,                          # x_in(i-1) - x_in(i): one of the two is 0
        "Ainv": 1 / lam,                 # 0 < A^{-1} <= I/lam: a PSD matrix's entries are at most its diagonal's
        "Ainv_src": 1 / lam,
        "w": W,
        "w_src": W,
        "u": U,
        "wx": R * W,                     # Cauchy-Schwarz
        "den": R**2 / lam,               # 0 <= x^T A^{-1} x <= |x|^2 / lam
        "e": E,
        "den1": 1 + R**2 / lam,
        "gain": G,
        "corr": _min(1 / lam, G * U),    # u u^T / den1 = A^{-1} - A'^{-1}: 0 <= corr <= A^{-1} <= I/lam
        "step": _min(G * E, 2 * W),      # gain e, and the difference of two ridge weights
        "w_pred": W,
        "pred": R * W,                   # w_pred^T x_in
    }
    return Domain(values, {"den1": 1})  # 1 + x^T A^{-1} x, A^{-1} positive definite
