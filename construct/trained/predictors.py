"""One interface for every in-context predictor: predictions at every prefix for a batch of tasks.

A predictor answers, for tasks ``X`` (B, n, d), ``y`` (B, n) and queries
``Q`` (B, n + 1, m, d), the predictions ``(B, n + 1, m)``: entry
``[b, k, j]`` is its prediction at ``Q[b, k, j]`` after seeing examples
1..k of task b. ``weights(X, y)`` gives a linear predictor's own weights
after each prefix, ``(B, n + 1, d)``, and ``None`` for the others.

Predictors: the trained transformer; the compiled SGD and ridge networks;
closed-form minimum-norm OLS, ridge(lam), one-pass SGD(alpha), one-step
batch GD(alpha) (all from ``construct.reference``, in float64); k-nearest
neighbours (k = 3, uniform or inverse-squared-distance weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import CompiledNetwork, reference
from .model import Transformer, tokens


def next_example_queries(X: np.ndarray, x_query: np.ndarray) -> np.ndarray:
    """Queries that make prefix k predict input k + 1 (the query for k = n): (B, n + 1, 1, d)."""
    return np.concatenate([X, x_query[:, None, :]], axis=1)[:, :, None, :]


def _check(X, y, Q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y, Q = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(Q, dtype=np.float64)
    B, n, d = X.shape
    if y.shape != (B, n) or Q.ndim != 4 or Q.shape[:2] != (B, n + 1) or Q.shape[3] != d:
        raise ValueError(f"need X (B, n, d), y (B, n), Q (B, n + 1, m, d); got {X.shape}, {y.shape}, {Q.shape}")
    return X, y, Q


class Predictor:
    """The interface (see the module docstring); ``predict_next`` has a generic form here."""

    name: str

    def predict(self, X, y, Q) -> np.ndarray:
        raise NotImplementedError

    def weights(self, X, y) -> np.ndarray | None:
        return None

    def predict_next(self, X, y, x_query) -> np.ndarray:
        """Prefix k's prediction at input k + 1 (the query for k = n): (B, n + 1)."""
        return self.predict(X, y, next_example_queries(np.asarray(X), np.asarray(x_query)))[..., 0]


@dataclass
class Linear(Predictor):
    """A closed-form linear learner: ``weights_of(X_b, y_b)`` gives its weights after each prefix."""

    name: str
    weights_of: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def weights(self, X, y) -> np.ndarray:
        return np.stack([self.weights_of(Xb, yb) for Xb, yb in zip(np.asarray(X), np.asarray(y))])

    def predict(self, X, y, Q) -> np.ndarray:
        X, y, Q = _check(X, y, Q)
        return np.einsum("bkd,bkmd->bkm", self.weights(X, y), Q)


def ols() -> Linear:
    return Linear("OLS", reference.ols_weights)


def ridge(lam: float) -> Linear:
    return Linear(f"ridge({lam:g})", lambda X, y: reference.ridge_weights(X, y, lam))


def sgd(alpha: float) -> Linear:
    return Linear(f"SGD({alpha:g})", lambda X, y: reference.sgd_one_pass_weights(X, y, alpha, 0.0))


def gd(alpha: float) -> Linear:
    return Linear(f"GD({alpha:g})", lambda X, y: reference.gd_one_step_weights(X, y, alpha, 0.0))


@dataclass
class NearestNeighbours(Predictor):
    """k-NN regression on the examples seen so far; with fewer than k, all of them; with none, 0."""

    k: int = 3
    weighting: str = "uniform"  # or "inverse_square"

    @property
    def name(self) -> str:
        return f"{self.k}-NN" + (" (1/r^2)" if self.weighting == "inverse_square" else "")

    def predict(self, X, y, Q) -> np.ndarray:
        X, y, Q = _check(X, y, Q)
        B, n, _ = X.shape
        out = np.zeros(Q.shape[:3])
        for k in range(1, n + 1):
            dist2 = ((Q[:, k, :, None, :] - X[:, None, :k, :]) ** 2).sum(-1)  # (B, m, k)
            nearest = np.argsort(dist2, axis=-1)[..., : self.k]
            labels = np.take_along_axis(np.broadcast_to(y[:, None, :k], dist2.shape), nearest, axis=-1)
            if self.weighting == "uniform":
                out[:, k] = labels.mean(-1)
            else:
                w = 1 / np.maximum(np.take_along_axis(dist2, nearest, axis=-1), 1e-12)
                out[:, k] = (w * labels).sum(-1) / w.sum(-1)
        return out


@dataclass
class Trained(Predictor):
    """The trained transformer. Prefix k at query x': the prompt ``x_1, y_1, ..., x_k, y_k, x'``.

    ``predict`` runs one sequence per task: the n examples, then every
    query of every prefix k as a token at position 2k that attends only to
    the 2k tokens of its prefix and to itself (``Transformer.hidden``'s
    positions and mask). That is exactly the prompt above, read at its last
    token, at a fraction of the cost of one prompt per query.
    """

    model: Transformer
    name: str = "transformer"
    chunk: int = 256  # tasks per call
    _run: Callable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._run = eqx.filter_jit(lambda m, t, pos, mask: jax.vmap(m, in_axes=(0, None, None))(t, pos, mask))

    def predict_next(self, X, y, x_query) -> np.ndarray:
        """One prompt per task: the outputs at its x~ tokens."""
        toks = tokens(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), jnp.asarray(x_query, jnp.float32))
        T = toks.shape[1]
        out = self._run(self.model, toks, jnp.arange(T), jnp.tril(jnp.ones((T, T), dtype=bool)))
        return np.asarray(out)[:, 0::2].astype(np.float64)

    def predict(self, X, y, Q) -> np.ndarray:
        X, y, Q = _check(X, y, Q)
        B, n, d = X.shape
        m = Q.shape[2]
        prefix = np.repeat(np.arange(n + 1), m)  # the prefix k of each query token
        positions = np.concatenate([np.arange(2 * n), 2 * prefix])
        T = len(positions)
        mask = np.zeros((T, T), dtype=bool)
        mask[: 2 * n, : 2 * n] = np.tril(np.ones((2 * n, 2 * n), dtype=bool))
        mask[2 * n:, : 2 * n] = np.arange(2 * n)[None, :] < 2 * prefix[:, None]
        mask[np.arange(2 * n, T), np.arange(2 * n, T)] = True
        positions, mask = jnp.asarray(positions), jnp.asarray(mask)
        outs = []
        for i in range(0, B, self.chunk):
            Xc, yc, Qc = X[i: i + self.chunk], y[i: i + self.chunk], Q[i: i + self.chunk]
            queries = np.zeros((len(Xc), (n + 1) * m, d + 1))
            queries[..., 1:] = Qc.reshape(len(Xc), (n + 1) * m, d)
            toks = jnp.concatenate([tokens(Xc, yc), jnp.asarray(queries, jnp.float32)], axis=1)
            outs.append(np.asarray(self._run(self.model, toks, positions, mask))[:, 2 * n:])
        return np.concatenate(outs).reshape(B, n + 1, m).astype(np.float64)


@dataclass
class Compiled(Predictor):
    """A compiled network. Prefix k at query x': the task with input k + 1 replaced by x'.

    The network's column 2k sees only columns up to 2k, so what stands after
    it does not matter. Its own weights after each prefix are in its
    residual stream: register ``w_pred`` at the x~ columns.
    """

    network: CompiledNetwork
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"compiled {self.network.program.name}"

    def predict_next(self, X, y, x_query) -> np.ndarray:
        """One prompt per task; a task outside the network's domain gives a row of NaN."""
        return self.network.predict_batch(X, y, x_query, outside="nan", backend="jax", tolerance=None)

    def _prompts(self, X, y, Q):
        B, n, d = X.shape
        m = Q.shape[2]
        Xs = np.repeat(np.concatenate([X, np.zeros((B, 1, d))], axis=1)[:, None, None], n + 1, axis=1)
        Xs = np.repeat(Xs, m, axis=2)  # (B, n + 1, m, n + 1, d): inputs 1..n, then the query slot
        k = np.arange(n + 1)
        Xs[np.arange(B)[:, None, None], k[None, :, None], np.arange(m)[None, None, :], k[None, :, None]] = Q
        return Xs.reshape(-1, n + 1, d), np.repeat(np.repeat(y[:, None, None], n + 1, 1), m, 2).reshape(-1, n)

    def predict(self, X, y, Q) -> np.ndarray:
        X, y, Q = _check(X, y, Q)
        B, n, _ = X.shape
        m = Q.shape[2]
        Xs, ys = self._prompts(X, y, Q)
        preds = self.network.predict_batch(Xs[:, :n], ys, Xs[:, n], outside="nan", backend="jax", tolerance=None)  # (B (n+1) m, n + 1)
        preds = preds.reshape(B, n + 1, m, n + 1)
        k = np.arange(n + 1)
        return preds[:, k, :, k].transpose(1, 0, 2)

    def weights(self, X, y) -> np.ndarray:
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        n = X.shape[1]
        rows = slice(*self.network.layout.span("w_pred"))
        out = []
        for Xb, yb in zip(X, y):
            trace = self.network.trace(Xb, yb, np.zeros(X.shape[2]), backend="jax")
            out.append(trace.states[-1][rows][:, 0 : 2 * n + 1 : 2].T)
        return np.stack(out)

