"""Closed-form reference predictors, written straight from the formulas.

They share no code with the RAW machine or the programs and are the ground
truth for every test. Each takes a task ``(X, y, x_query)`` with ``n``
examples and returns ``n + 1`` predictions in float64: entry ``k`` predicts
the label of input ``k + 1`` (the query for ``k = n``) from examples 1..k.
The ``*_weights`` functions give the weights behind those predictions, one
row per prefix (the trained-learner comparisons use them).

The SGD formulas use the loss of Theorem 1, ``(w^T x - y)^2 + lam |w|^2``,
whose gradient step of size ``alpha`` is

    w' = w - 2 alpha (x (x^T w - y) + lam w).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "sgd_one_step", "sgd_one_pass", "gd_one_step", "gd", "ridge", "ridge_newton", "ols",
    "sgd_one_pass_weights", "gd_one_step_weights", "gd_weights", "ridge_weights", "ridge_newton_weights", "ols_weights",
]


def _task(X, y, x_query):
    X, y, x_query = _real(X, "X"), _real(y, "y"), _real(x_query, "x_query")
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d array (n, d), got shape {X.shape}")
    n, d = X.shape
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match X, got {y.shape}")
    if x_query.shape != (d,):
        raise ValueError(f"x_query must have shape ({d},) to match X, got {x_query.shape}")
    for name, a in (("X", X), ("y", y), ("x_query", x_query)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
    return X, y, x_query


def _real(value, name: str) -> np.ndarray:
    """``value`` as float64, refusing what the conversion would silently change: masks, imaginary parts, text."""
    if isinstance(value, np.ma.MaskedArray):
        raise ValueError(f"{name} is a masked array, whose mask would be lost; pass plain numbers")
    a = np.asarray(value)
    complex_ = a.dtype.kind == "c"
    if a.dtype.kind == "O":  # a list or object array: its entries decide
        complex_ = any(isinstance(v, (complex, np.complexfloating)) for v in a.flat)
        if all(isinstance(v, (numbers.Real, np.bool_)) for v in a.flat):
            a = a.astype(np.float64)
    if complex_:
        raise ValueError(f"{name} holds complex numbers; tasks are real")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def _inputs(X, x_query):
    """The input whose label entry k predicts: x_1, ..., x_n, then the query."""
    return np.vstack([X, x_query[None, :]])


def _w0(w0, d):
    w0 = np.zeros(d) if w0 is None else np.asarray(w0, dtype=np.float64)
    if w0.shape != (d,) or not np.all(np.isfinite(w0)):
        raise ValueError(f"w0 must be a finite vector of shape ({d},), got {w0.shape}")
    return w0


def _sgd_update(w, x, y, alpha, lam):
    return w - 2 * alpha * (x * (x @ w - y) + lam * w)


def sgd_one_step(X, y, x_query, alpha, lam, w0=None):
    """Theorem 1: one SGD step on the single example; [w0^T x_1, w1^T x_q]. Needs n = 1."""
    X, y, x_query = _task(X, y, x_query)
    if X.shape[0] != 1:
        raise ValueError(f"one-step SGD takes exactly one example (n = 1), got n = {X.shape[0]}")
    w0 = _w0(w0, X.shape[1])
    w1 = _sgd_update(w0, X[0], y[0], alpha, lam)
    return np.array([w0 @ X[0], w1 @ x_query])


def _at_next_inputs(weights: np.ndarray, X: np.ndarray, x_query: np.ndarray) -> np.ndarray:
    """Entry k: the weights after k examples applied to input k + 1 (the query for k = n)."""
    return np.einsum("kd,kd->k", weights, _inputs(X, x_query))


def sgd_one_pass_weights(X, y, alpha, lam, w0=None):
    """The weights of one-pass SGD after 0, 1, ..., n examples: (n + 1, d)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = _w0(w0, X.shape[1])
    weights = [w]
    for x, label in zip(X, y):
        w = _sgd_update(w, x, label, alpha, lam)
        weights.append(w)
    return np.array(weights)


def gd_one_step_weights(X, y, alpha, lam, w0=None):
    """One batch gradient step from w0 on the first k examples, k = 0..n: (n + 1, d)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w0 = _w0(w0, X.shape[1])
    return np.array([w0 - 2 * alpha * (X[:k].T @ (X[:k] @ w0) - X[:k].T @ y[:k] + lam * w0)
                     for k in range(X.shape[0] + 1)])


def gd_weights(X, y, alpha, lam, steps):
    """``steps`` gradient steps of size alpha from 0 on ``L_k(w) = (1/k)(|X_k w - y_k|^2 + lam |w|^2)``, the first
    k examples, k = 0..n (k = 0: no examples, w = 0): (n + 1, d)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = [np.zeros(X.shape[1])]
    for k in range(1, X.shape[0] + 1):
        Xk, yk = X[:k], y[:k]
        w = np.zeros(X.shape[1])
        for _ in range(steps):
            w = w - alpha * (2 / k) * (Xk.T @ (Xk @ w - yk) + lam * w)
        out.append(w)
    return np.array(out)


def gd(X, y, x_query, alpha, lam, steps):
    """``gd_weights``: entry k uses the weights after ``steps`` steps on examples 1..k."""
    X, y, x_query = _task(X, y, x_query)
    return _at_next_inputs(gd_weights(X, y, alpha, lam, steps), X, x_query)


def ridge_weights(X, y, lam):
    """Ridge on the first k examples, k = 0..n: solve (X^T X + lam I) w = X^T y. Needs lam > 0."""
    if not lam > 0:
        raise ValueError(f"lam must be > 0 for ridge, got {lam!r}")
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    eye = np.eye(X.shape[1])
    return np.array([np.linalg.solve(X[:k].T @ X[:k] + lam * eye, X[:k].T @ y[:k]) for k in range(X.shape[0] + 1)])


def ols_weights(X, y):
    """Minimum-norm least squares on the first k examples, k = 0..n (lstsq: the pseudo-inverse)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    zeros = np.zeros(X.shape[1])
    return np.array([np.linalg.lstsq(X[:k], y[:k], rcond=None)[0] if k else zeros for k in range(X.shape[0] + 1)])


def sgd_one_pass(X, y, x_query, alpha, lam, w0=None):
    """One pass of per-example SGD from w0: entry k uses the weights after examples 1..k."""
    X, y, x_query = _task(X, y, x_query)
    return _at_next_inputs(sgd_one_pass_weights(X, y, alpha, lam, w0), X, x_query)


def gd_one_step(X, y, x_query, alpha, lam, w0=None):
    """One batch gradient step from w0 on the first k examples: w0 - 2 alpha (X^T X w0 - X^T y + lam w0)."""
    X, y, x_query = _task(X, y, x_query)
    return _at_next_inputs(gd_one_step_weights(X, y, alpha, lam, w0), X, x_query)


def ridge(X, y, x_query, lam):
    """Ridge on the first k examples: solve (X^T X + lam I) w = X^T y. Needs lam > 0."""
    X, y, x_query = _task(X, y, x_query)
    return _at_next_inputs(ridge_weights(X, y, lam), X, x_query)


def ridge_newton_weights(X, y, lam, x_norm, kappa=None, eps=1e-10):
    """The weights of ``programs.ridge_newton`` on the first k examples, k = 0..n, from the eigen-decomposition
    of ``A' = A_k / (2k + 1)`` (the x~ column's average): the Newton-Schulz iterate ``w_t = (I - R^(2^t)) w*``
    with ``R = I - c A'``, ``c = 1 / (lam + x_norm^2 / 2)``, ``t = ceil(log2(kappa ln(1/eps)))`` (``kappa``
    at most ``(lam + x_norm^2 / 2)(2n + 1) / lam``), refined once: ``w_t + c P_t (b' - A' w_t) =
    (I - R^(2^(t+1))) w*``."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, d = X.shape
    top = lam + x_norm**2 / 2
    worst = top * (2 * n + 1) / lam
    kappa = worst if kappa is None else min(kappa, worst)
    t = max(1, int(np.ceil(np.log2(kappa * np.log(1 / eps)))))
    out = []
    for k, w in enumerate(ridge_weights(X, y, lam)):
        values, vectors = np.linalg.eigh((X[:k].T @ X[:k] + lam * np.eye(d)) / (2 * k + 1))
        shrink = (1 - values / top) ** (2.0 ** (t + 1))
        out.append(vectors @ ((1 - shrink) * (vectors.T @ w)))
    return np.array(out)


def ridge_newton(X, y, x_query, lam, x_norm, kappa=None, eps=1e-10):
    """Ridge by ``ridge_newton_weights``: entry k uses the iterate on examples 1..k."""
    X, y, x_query = _task(X, y, x_query)
    return _at_next_inputs(ridge_newton_weights(X, y, lam, x_norm, kappa, eps), X, x_query)


def ols(X, y, x_query):
    """Minimum-norm least squares on the first k examples (lstsq, i.e. the pseudo-inverse)."""
    X, y, x_query = _task(X, y, x_query)
    return _at_next_inputs(ols_weights(X, y), X, x_query)
