"""The a-posteriori certificate of a ridge answer: a proven bound from the network's outputs and the prompt alone.

At a prefix of k examples the exact ridge weights are ``w* = A^-1 b`` with
``A = lam I + X^T X`` and ``b = X^T y`` (X the k examples, rows). For any
computed ``w`` (read from the network's state), with the residual
``r = A w - b``,

    w - w* = A^-1 r,     |A^-1|_2 <= 1/lam     (A >= lam I, X^T X being positive semidefinite),

so a prediction ``pred`` at the query ``q`` satisfies

    |pred - q^T w*| <= |pred - q^T w| + |q| |r| / lam.

Where the network also holds ``M``, an approximation of ``A^-1`` (the RLS
state), write ``A^-1 = M + A^-1 (I - A M)``; then

    |pred - q^T w*| <= |pred - q^T w| + |q^T M r| + |q| |I - A M|_F |r| / lam,

which is far tighter when ``M`` is good: ``|q^T M r|`` keeps the sign of
the residual, and the last term is second order. Both inequalities are
proved in ``python -m proofs`` (``residual_certificate``, for every d).
Nothing here depends on how ``w``, ``M`` and ``pred`` were computed, so it
holds for every backend (numpy, JAX, Hugging Face, TransformerLens) and for
weights that differ from what the compiler meant.

The bound is evaluated in float64 with a rigorous bound on its own rounding,
under the floating-point model of ``construct.transformer.rounding`` (a dot
product of k terms is within ``gamma_k`` of its value; M2), entrywise:

* ``A`` and ``b`` are sums over the examples: ``|fl(A) - A| <= gamma_{k+1}
  (|X|^T |X| + lam I)``, ``|fl(b) - b| <= gamma_k |X|^T |y|``;
* ``r``: ``|fl(fl(A) w - fl(b)) - r| <= gamma_{d+1} (|fl(A)| |w| + |fl(b)|)
  + |fl(A) - A| |w| + |fl(b) - b|``, so ``|r| <= |fl(r)| + dr``;
* ``I - A M``: ``|fl(I - fl(A) M) - (I - A M)| <= gamma_{d+1} (I + |fl(A)|
  |M|) + |fl(A) - A| |M|``;
* ``q^T M r``: ``|q^T M r - fl(v . fl(r))| <= gamma_d |v| . |fl(r)| +
  |v| . dr + gamma_d (|q|^T |M|) . (|fl(r)| + dr)`` with ``v = fl(q^T M)``;
* ``q^T w`` and the differences: ``gamma_d |q| . |w|`` and one rounding each.

Every sum of these bounds is then inflated by ``1 + 2^-20`` for the few
roundings of the bound's own evaluation (``rounding.SAFETY``). Only the
inputs' exact binary values enter: the prompt as given, the network's
``w``, ``M`` and ``pred`` as the float64 numbers they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..transformer.rounding import SAFETY, gamma

U = float(np.finfo(np.float64).eps) / 2
SAFE = SAFETY[np.dtype(np.float64)]


@dataclass(frozen=True)
class RidgeAnswer:
    """Where a ridge program leaves what the certificate reads, at the x~ column ``2k`` of prefix k (k examples):
    its weights in ``weights`` at that column, and its ``A^-1`` approximation in ``inverse`` at the column
    ``inverse_offset`` before it (``None``: the program holds none), times ``inverse_factor(program, columns)``
    if given (a program that holds a multiple of ``A^-1`` that depends on the column). At prefix 0 the exact
    answer is 0 and ``A^-1 = I / lam``."""

    weights: str
    inverse: str | None = None
    inverse_offset: int = 1
    inverse_factor: Callable | None = None


def bounds(X: np.ndarray, y: np.ndarray, queries: np.ndarray, lam: float, predictions: np.ndarray,
           weights: np.ndarray, inverses: np.ndarray | None = None) -> np.ndarray:
    """A proven bound on ``|predictions[k] - queries[k]^T w*_k|`` for every prefix ``k`` (``w*_k`` ridge on
    examples ``0..k-1`` of ``X``, ``y``), from the computed ``weights[k]`` and, if given, ``inverses[k]``
    (approximations of ``A_k^-1``). Shapes: X (n, d), y (n,), queries (K, d), predictions (K,), weights (K, d),
    inverses (K, d, d), K <= n + 1. Infinite where an input is not finite."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    queries, predictions = np.asarray(queries, np.float64), np.asarray(predictions, np.float64)
    weights = np.asarray(weights, np.float64)
    K, d = weights.shape
    lam = float(lam)
    if not lam > 0:
        raise ValueError(f"the residual certificate needs lam > 0, got {lam!r}")
    # A_k = lam I + sum_{j<k} x_j x_j^T and b_k, for every prefix at once (cumulative sums of k terms)
    outer = np.concatenate([np.zeros((1, d, d)), np.cumsum(X[:, :, None] * X[:, None, :], axis=0)])[:K]
    outer_abs = np.concatenate([np.zeros((1, d, d)), np.cumsum(np.abs(X)[:, :, None] * np.abs(X)[:, None, :],
                                                                axis=0)])[:K]
    b = np.concatenate([np.zeros((1, d)), np.cumsum(X * y[:, None], axis=0)])[:K]
    b_abs = np.concatenate([np.zeros((1, d)), np.cumsum(np.abs(X) * np.abs(y)[:, None], axis=0)])[:K]
    k = np.arange(K, dtype=np.float64)
    eye = np.eye(d)
    A = outer + lam * eye
    dA = gamma(k + 1, U)[:, None, None] * (outer_abs + lam * eye) * SAFE
    db = gamma(np.maximum(k, 1), U)[:, None] * b_abs * SAFE
    # r = A w - b
    r = np.einsum("kij,kj->ki", A, weights) - b
    absw = np.abs(weights)
    dr = (gamma(d + 1, U) * (np.einsum("kij,kj->ki", np.abs(A), absw) + np.abs(b))
          + np.einsum("kij,kj->ki", dA, absw) + db) * SAFE
    r_norm = np.sqrt(np.sum((np.abs(r) + dr) ** 2, axis=1)) * SAFE
    # pred - q^T w
    qw = np.einsum("ki,ki->k", queries, weights)
    gap = np.abs(predictions - qw) * (1 + 2 * U) + gamma(d, U) * np.einsum("ki,ki->k", np.abs(queries), absw)
    q_norm = np.sqrt(np.sum(queries**2, axis=1)) * SAFE
    if inverses is None:
        total = gap + q_norm * r_norm / lam
    else:
        M = np.asarray(inverses, np.float64)
        C = eye - np.einsum("kij,kjl->kil", A, M)
        dC = (gamma(d + 1, U) * (eye + np.einsum("kij,kjl->kil", np.abs(A), np.abs(M)))
              + np.einsum("kij,kjl->kil", dA, np.abs(M))) * SAFE
        frobenius = np.sqrt(np.sum((np.abs(C) + dC) ** 2, axis=(1, 2))) * SAFE
        v = np.einsum("ki,kij->kj", queries, M)
        qM = np.einsum("ki,kij->kj", np.abs(queries), np.abs(M))
        first = (np.abs(np.einsum("kj,kj->k", v, r)) + gamma(d, U) * np.einsum("kj,kj->k", np.abs(v), np.abs(r))
                 + np.einsum("kj,kj->k", np.abs(v), dr)
                 + gamma(d, U) * np.einsum("kj,kj->k", qM, np.abs(r) + dr)) * SAFE
        total = gap + first + q_norm * frobenius * r_norm / lam
    total = total * SAFE * SAFE
    finite = np.isfinite(total) & np.all(np.isfinite(weights), axis=1) & np.isfinite(predictions)
    return np.where(finite, total, np.inf)


def from_state(program, state: np.ndarray, X, y, x_query, predictions: np.ndarray) -> np.ndarray:
    """``bounds`` for a ridge ``program``'s predictions (one per x~ column of a prompt of k <= n examples, NaN
    where it predicts nothing), reading its weights and inverse from ``state`` (T x width: the residual stream
    after the last layer, rows as the program's layout places them, whatever pass computed it)."""
    answer = program.algorithm.residual
    layout, d = program.layout, program.d
    X, y, x_query = (np.asarray(a, np.float64) for a in (X, y, x_query))
    K = len(X) + 1
    columns = 2 * np.arange(K)
    state = np.asarray(state, np.float64)
    weights = state[columns][:, layout.rows(answer.weights)]
    inverses = None
    lam = float(program.params["lam"])
    if answer.inverse is not None:
        inverses = np.empty((K, d, d))
        inverses[0] = np.eye(d) / lam  # prefix 0: no column before; A_0^-1 = I / lam, and w* = 0
        before = np.maximum(columns[1:] - answer.inverse_offset, 0)
        inverses[1:] = state[before][:, layout.rows(answer.inverse)].reshape(-1, d, d)
        if answer.inverse_factor is not None:
            inverses[1:] *= np.asarray(answer.inverse_factor(program, before), np.float64)[:, None, None]
    queries = np.vstack([X, x_query[None, :]])
    out = bounds(X, y, queries, lam, np.nan_to_num(predictions, nan=0.0), weights, inverses)
    return np.where(np.isnan(predictions), np.nan, out)
