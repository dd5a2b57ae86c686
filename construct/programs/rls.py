"""Ridge's state as a backward error: the mechanism certificate's rule for recursive least squares.

Propagating entrywise error intervals through ridge's block loses the
contraction of recursive least squares: ``|I - g x^T| <= I + |g| |x|^T``
multiplies every interval by about ``(1 + |g| |x|)^2`` per example, so the
intervals (and the second-order terms and division guard they feed) grow
geometrically in k while the network's errors do not. The block's exact
map keeps a backward error instead. Write ``M_k`` for the network's
``A^-1`` state after block k (at one column) and ``W_k`` for its ridge
weights; the exact machine holds ``A_k^-1`` and ``w*_k = A_k^-1 b_k``
(``A_k = lam I + sum x_j x_j^T``, ``b_k = sum x_j y_j`` over the column's
chain of examples, ``programs/__init__.py``). Define ``D_k`` and ``beta_k``
by

    M_k = (A_k + D_k)^-1 = B_k^-1,        B_k W_k = b_k + beta_k.

**One block.** Applied exactly to ``M = M_{k-1}`` and ``W = W_{k-1}`` with
the exact example ``(x, y)``, the block computes ``u = M x``, ``den1 = 1 +
x^T M x``, ``gain = u / |den1|``, ``M - gain u^T`` and ``W + gain (y - x^T
W)``. With ``C = B_{k-1} + x x^T = A_k + D_{k-1}`` and ``den1 > 0``,
Sherman-Morrison gives ``gain = C^-1 x``, ``M - gain u^T = C^-1 + Delta``
with ``Delta = gain x^T (M - M^T)`` (zero for a symmetric M; the network's M
is symmetric only up to its rounding), and ``C (W + gain (y - x^T W)) =
B_{k-1} W + x y``. ``den1 > 0`` holds while ``|x|^2 |M - A_{k-1}^-1| < 1``,
since ``x^T A^-1 x >= 0``. The network's block is off this exact map by
``delta_M`` and ``delta_W`` (what the certificate propagates from the
block's start with the state there taken as exact: ``Certifier``), so
``M_k = C^-1 + delta``, ``delta = Delta + delta_M``, and

    D_k = D_{k-1} + D',   D' = -(I + C delta)^-1 C delta C,
    beta_k = beta_{k-1} + C delta_W + D' W_k.

**In A_k's energy norm.** Plain 2-norms would multiply ``delta`` by
``|C|^2`` and the state's error by ``1 / lam^2``. Scale instead by ``S =
A_k^1/2``: ``rho_k >= |S^-1 D_k S^-1|_2`` and ``b_k >= |S^-1 beta_k|_2``.
Since ``A_{k-1} <= A_k`` (Loewner order), ``|A_k^-1/2 A_{k-1}^1/2|_2 <= 1``,
so what ``rho_{k-1}`` and ``b_{k-1}`` bound passes to step k unchanged. With
``C = S (I + Dk) S`` (``|Dk|_2 <= rho_{k-1}``) and ``X = S delta S``
(``|X|_2 <= |A_k|_2 |delta|_2``), ``S^-1 D' S^-1 = -(I + (I + Dk) X)^-1 (I +
Dk) X (I + Dk)``, so

    rho_k <= rho_{k-1} + g,   g = (1 + rho_{k-1})^2 |X| / (1 - (1 + rho_{k-1}) |X|),
    b_k <= b_{k-1} + (1 + rho_{k-1}) |A_k|^1/2 |delta_W| + g |S W_k|.

Errors that earlier blocks made pass through later blocks unchanged: the
bounds add up, they do not multiply.

**The state's error.** ``M_k - A_k^-1 = S^-1 ((I + Dk')^-1 - I) S^-1`` and
``S (W_k - w*_k) = (I + Dk')^-1 (S^-1 beta_k - Dk' S w*_k)``
(``Dk' = S^-1 D_k S^-1``), so with ``l <= lambda_min(A_k)`` (``l >= lam``
always) and ``e = |S W_k|``

    |M_k - A_k^-1|_2 <= rho / (l (1 - rho)),    |W_k - w*_k|_2 <= (b + rho e) / ((1 - 2 rho) sqrt(l)).

Each entry's error is at most these norms: they cap the certificate's
intervals for ``Ainv`` and ``w`` after every block. The identities are
proved in the free algebra by ``python -m proofs`` (``rls_backward_error``);
``tests/programs/test_rls.py`` checks the bounds in exact rational arithmetic.

Everything is evaluated in float64 and rounded up: norms of nonnegative
bounds by ``(1 + 2^-40)``, which covers the few roundings of each (at most
``d^2 + 10`` operations of relative ``u``), and ``A_k``'s extreme
eigenvalues by a Cholesky factorisation checked by its residual
(``eigenvalue_bounds``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..raw.prompt import X_IN
from ..transformer.rounding import gamma

U = float(np.finfo(np.float64).eps) / 2
UP = 1 + 2.0**-40  # rounds a float64 norm or sum of a few hundred nonnegative terms up past its exact value


@dataclass(frozen=True)
class RLSState:
    """Where ridge's program keeps its recursive-least-squares state: ``inverse`` (``A^-1``, d x d) and ``weights``
    (d), the block's ``gain`` (``A_k^-1 x``), and the column offset each block reads its state from."""

    inverse: str
    weights: str
    gain: str
    offset: int = 2


def eigenvalue_bounds(A: np.ndarray, error: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Proven bounds ``(low, high)`` on the extreme eigenvalues of symmetric matrices ``A* `` with ``|A* - A|_F
    <= error``, for a stack ``A`` (m, d, d) of symmetric float64 matrices; ``low >= floor``, a known lower bound.

    For a shift ``s`` and the Cholesky factor ``L`` of ``fl(A - s I)``,
    ``A* - s I = L L^T + R`` with ``L L^T`` positive semidefinite, so
    ``lambda_min(A*) >= s - |R|_2``; ``|R|_F <= error + |fl(A - s I) -
    fl(L L^T)|_F (1 + u) + u |diag(A - s I)| + gamma_{d+1} |(|L| |L|^T)|_F``
    (the shift's rounding, the product's, and the subtraction's). The same
    with ``t I - A`` bounds ``lambda_max``. Shifts come from ``eigvalsh``, an
    estimate only: a factorisation that fails leaves ``floor`` (below) or the
    trace (above).
    """
    m, d, _ = A.shape
    estimate = np.linalg.eigvalsh(A)
    eye = np.eye(d)
    trace = np.trace(A, axis1=1, axis2=2) * UP + error * np.sqrt(d) * UP  # >= the sum of A*'s (nonnegative) eigenvalues
    low, high = np.full(m, float(floor)), trace

    def shifted(S: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Proven lower bounds on ``lambda_min`` of each ``S*`` (-inf where Cholesky fails)."""
        out = np.full(m, -np.inf)
        try:
            L, ok = np.linalg.cholesky(S), np.ones(m, dtype=bool)
        except np.linalg.LinAlgError:  # factor one at a time: only some fail
            L, ok = np.zeros_like(S), np.zeros(m, dtype=bool)
            for i in range(m):
                try:
                    L[i], ok[i] = np.linalg.cholesky(S[i]), True
                except np.linalg.LinAlgError:
                    pass
        absL = np.abs(L)
        residual = np.linalg.norm(S - L @ L.transpose(0, 2, 1), axis=(1, 2)) * (1 + U) + \
            U * np.linalg.norm(np.diagonal(S, axis1=1, axis2=2), axis=1) + \
            gamma(d + 1, U) * np.linalg.norm(absL @ absL.transpose(0, 2, 1), axis=(1, 2))
        out[ok] = (shift - (residual + error) * UP)[ok]
        return out

    s = 0.9 * estimate[:, 0]
    low = np.maximum(low, shifted(A - s[:, None, None] * eye, s))
    t = 1.1 * estimate[:, -1] + 1e-300
    high = np.minimum(high, -shifted(t[:, None, None] * eye - A, -t))
    return low, high


class BackwardError:
    """The module docstring's recursion for one run, every column at once: ``checkpoint`` after the setup (k = 0)
    and after each block, with the network's state there and what the block added to it, returns caps on the
    errors of ``M_k`` and ``W_k``.

    Per column j it carries, for the state the next block at column ``j + offset`` reads: ``rho`` and ``beta``
    (bounds on ``|A_k^-1/2 D_k A_k^-1/2|_2`` and ``|A_k^-1/2 beta_k|_2``), the cap on ``|M_k - A_k^-1|_2`` and
    ``|M_k - M_k^T|_F`` (for ``Delta``), and ``A_k`` in float64 with a bound on its rounding (``|A_k -
    fl(A_k)|_F``)."""

    def __init__(self, rule: RLSState, layout, state: np.ndarray, lam: float) -> None:
        self.rule, self.layout, self.lam = rule, layout, float(lam)
        x_in = state[layout.rows(X_IN)]  # (d, T): the embedding is exact on program rows
        T = x_in.shape[1]
        self.source = np.maximum(np.arange(T) - rule.offset, 0)
        previous = x_in[:, np.maximum(np.arange(T) - 1, 0)]
        self.x = (previous - x_in).T  # (T, d): the exact machine's x = x_in(i-1) - x_in(i), within u |x|
        d = self.d = self.x.shape[1]
        self.A = np.broadcast_to(self.lam * np.eye(d), (T, d, d)).copy()
        self.A_error = np.zeros(T)
        self.rho = self.beta = self.cap = self.asymmetry = None  # set by the setup's checkpoint

    def _norm(self, rows: np.ndarray, name: str) -> np.ndarray:
        return np.linalg.norm(rows[self.layout.rows(name)], axis=0) * UP

    def checkpoint(self, k: int, state: np.ndarray, slack: np.ndarray, added: np.ndarray) -> tuple:
        """Caps ``(|M_k - A_k^-1|, |W_k - w*_k|)`` (T,) after block ``k`` (0: the setup, which sets ``A_0^-1 =
        I/lam``), from ``state`` (program rows x T: the computed state, within ``slack`` of the network's exact
        composition) and ``added`` (bounds on how far the block took each register from the block's exact map on
        the state at its start, program rows x T)."""
        rule, d = self.rule, self.d
        T = state.shape[1]
        W_norm = (self._norm(state, rule.weights) + self._norm(slack, rule.weights)) * UP
        delta_M, delta_W = self._norm(added, rule.inverse), self._norm(added, rule.weights)
        if k == 0:  # M_0 = (lam I)^-1 + delta: A_0 = lam I exactly, D_{-1} = 0, and W_0 = 0 = w*_0
            rho_before, beta_before = np.zeros(T), np.zeros(T)
            low = high = np.full(T, self.lam)
        else:
            j = self.source
            x = self.x
            xx = np.sum(x * x, axis=1) * (1 + gamma(d + 3, U))  # |x|^2, x within u |x| of the exact machine's
            self.A = self.A[j] + x[:, :, None] * x[:, None, :]
            self.A_error = (self.A_error[j] + 4 * U * (xx + np.linalg.norm(self.A, axis=(1, 2)))) * UP
            low, high = eigenvalue_bounds(self.A, self.A_error, self.lam)
            # Delta = gain x^T (M - M^T) with the exact block's gain, which the computed one is within reach of
            gain = (self._norm(state, rule.gain) + self._norm(slack, rule.gain) + self._norm(added, rule.gain)) * UP
            delta_M = (delta_M + gain * np.sqrt(xx) * self.asymmetry[j]) * UP
            # the block divides by |den1|: it is F's den1 = 1 + x^T M x only while that is positive, as it is when
            # x^T M x >= x^T A^-1 x - |x|^2 |M - A^-1| > -1
            with np.errstate(invalid="ignore"):  # 0 x inf: a column whose x is 0 keeps the inf
                delta_M = np.where(xx * self.cap[j] < 1, delta_M, np.inf)
            rho_before, beta_before = self.rho[j], self.beta[j]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scaled = high * delta_M * UP  # >= |A_k^1/2 delta A_k^1/2|_2
            reach = (1 + rho_before) * scaled
            grow = np.where(reach < 1, (1 + rho_before) * reach / (1 - reach), np.inf) * UP
            self.rho = rho = (rho_before + grow) * UP
            energy = np.sqrt(high) * W_norm * UP  # >= |A_k^1/2 W_k|
            self.beta = beta = (beta_before + (1 + rho_before) * np.sqrt(high) * delta_W + grow * energy) * UP
            self.cap = np.where(rho < 1, rho / (low * (1 - rho)), np.inf) * UP
            cap_W = np.where(2 * rho < 1, (beta + rho * energy) / ((1 - 2 * rho) * np.sqrt(low)), np.inf) * UP
        M = state[self.layout.rows(rule.inverse)].T.reshape(T, d, d)
        self.asymmetry = (np.linalg.norm(M - M.transpose(0, 2, 1), axis=(1, 2))
                          + 2 * self._norm(slack, rule.inverse)) * UP
        return self.cap, cap_W
