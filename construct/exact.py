"""The algorithms' answers in 50-digit arithmetic, to check certified bounds against the exact answer.

The closed forms of ``construct.reference`` are float64 and carry their own
rounding (for ridge at small lam, ~cond(A) eps), which would blur a check of
bounds that are themselves ~1e-10; these compute the same formulas with
mpmath on the float inputs' exact values. Like ``reference``, they share no
code with the machine or the compiler.
"""

from __future__ import annotations

import mpmath
import numpy as np

DIGITS = 50


def _mp(x) -> mpmath.mpf:
    return mpmath.mpf(float(x))


def sgd_weights(X, y, alpha, lam, w0=None):
    """The weights after 0, 1, ..., n examples: w <- w - 2 alpha (x (x^T w - y) + lam w)."""
    a, l = _mp(alpha), _mp(lam)
    w = [_mp(v) for v in (np.zeros(X.shape[1]) if w0 is None else w0)]
    out = [list(w)]
    for x, label in zip(X, y):
        x = [_mp(v) for v in x]
        err = sum(xi * wi for xi, wi in zip(x, w)) - _mp(label)
        w = [wi - 2 * a * (xi * err + l * wi) for xi, wi in zip(x, w)]
        out.append(list(w))
    return out


def gd_weights(X, y, alpha, lam, steps):
    """``steps`` steps ``w <- w - alpha (2/k)(X_k^T (X_k w - y_k) + lam w)`` from 0 on each prefix k (k = 0: 0)."""
    a, l = _mp(alpha), _mp(lam)
    d = X.shape[1]
    out = [[mpmath.mpf(0)] * d]
    for k in range(1, X.shape[0] + 1):
        rows = [[_mp(v) for v in X[j]] for j in range(k)]
        labels = [_mp(v) for v in y[:k]]
        w = [mpmath.mpf(0)] * d
        for _ in range(int(steps)):
            errors = [sum(xi * wi for xi, wi in zip(x, w)) - label for x, label in zip(rows, labels)]
            w = [w[i] - a * 2 / k * (sum(e * x[i] for e, x in zip(errors, rows)) + l * w[i]) for i in range(d)]
        out.append(w)
    return out


def ridge_weights(X, y, lam):
    d = X.shape[1]
    out = []
    for k in range(X.shape[0] + 1):
        A = mpmath.matrix(d, d)
        b = mpmath.matrix(d, 1)
        for i in range(d):
            A[i, i] = _mp(lam)
        for j in range(k):
            for i in range(d):
                b[i] += _mp(X[j, i]) * _mp(y[j])
                for m in range(d):
                    A[i, m] += _mp(X[j, i]) * _mp(X[j, m])
        out.append(list(mpmath.lu_solve(A, b)) if k else [mpmath.mpf(0)] * d)
    return out


def predictions(program, X, y, x_query) -> list:
    """Entry k: the exact prediction at x~ column k (None where the program predicts nothing)."""
    if program.algorithm is None:
        raise ValueError(f"no exact form for {program.name!r}: it is not a program of construct.programs")
    with mpmath.workdps(DIGITS):
        inputs = [*X, x_query]
        weights = program.algorithm.exact_weights(np.asarray(X), np.asarray(y), **program.params)
        out = [sum(_mp(q) * w for q, w in zip(x, ws)) for x, ws in zip(inputs, weights)]
    if program.query_only:
        out[:-1] = [None] * (len(out) - 1)
    return out


def errors(program, X, y, x_query, got: np.ndarray) -> np.ndarray:
    """|got - exact| at every predicted column, rounded up (NaN where nothing is predicted)."""
    return distances(predictions(program, X, y, x_query), got)


def distances(exact: list, got: np.ndarray) -> np.ndarray:
    """|got - exact| for ``exact`` as ``predictions`` gives it (one exact answer, several backends' answers),
    rounded up (NaN where nothing is predicted)."""
    with mpmath.workdps(DIGITS):
        return np.array([np.nan if e is None else float(abs(_mp(g) - e)) * (1 + 1e-15) for g, e in zip(got, exact)])
