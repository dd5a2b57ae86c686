"""Probes: can X^T y and w_OLS be read from a layer of the trained transformer?

For each layer (0 = the embedding), the residual stream at the token y~_k
(which has seen examples 1..k, label included) is the feature; the targets
are X_k^T y_k and the minimum-norm OLS weights of those k examples, for
k = 1..n. (In the constructions the learner's state after example k lives
in exactly that column.) Two probes per layer and target, fitted on one set
of tasks and scored on another: a linear one (ridge regression on
standardised features, lam = 1e-3 per sample) and a 2-layer MLP (64 GeLU
units, Adam, full batch, stopped at its best loss on a fifth of the training
tasks held out). The score is the held-out mean squared error divided by
the target's variance, averaged over its coordinates: 1 is no better than
the mean, 0 is perfect.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import reference
from ..tasks import TaskDistribution
from .model import Transformer, tokens


def features_and_targets(model: Transformer, task: TaskDistribution, count: int, index: int):
    """(features (layers + 1, samples, width), targets {name: (samples, d)}) over k = 1..n."""
    batch = task.sample(count, index)
    hidden = np.asarray(jax.vmap(model.hidden)(tokens(batch.X, batch.y)))  # (B, layers + 1, 2n, width)
    ks = np.arange(1, task.n + 1)
    feats = hidden[:, :, 2 * ks - 1, :].transpose(1, 0, 2, 3).reshape(hidden.shape[1], -1, hidden.shape[-1])
    xty = np.stack([[Xb[:k].T @ yb[:k] for k in ks] for Xb, yb in zip(batch.X, batch.y)]).reshape(-1, task.d)
    ols = np.stack([reference.ols_weights(Xb, yb)[ks] for Xb, yb in zip(batch.X, batch.y)]).reshape(-1, task.d)
    return feats, {"X^T y": xty, "w_OLS": ols}


def _standardise(train: np.ndarray, test: np.ndarray):
    mean, std = train.mean(0), train.std(0) + 1e-8
    return (train - mean) / std, (test - mean) / std


def _score(pred: np.ndarray, target: np.ndarray, reference_target: np.ndarray) -> float:
    return float((((pred - target) ** 2).mean(0) / reference_target.var(0).clip(1e-12)).mean())


def linear_probe(Ftr, Ttr, Fte, Tte) -> float:
    Ftr, Fte = _standardise(Ftr, Fte)
    A = np.concatenate([Ftr, np.ones((len(Ftr), 1))], 1)
    coef = np.linalg.solve(A.T @ A + 1e-3 * len(A) * np.eye(A.shape[1]), A.T @ Ttr)
    return _score(np.concatenate([Fte, np.ones((len(Fte), 1))], 1) @ coef, Tte, Ttr)


def mlp_probe(Ftr, Ttr, Fte, Tte, steps: int, seed: int) -> float:
    Ftr, Fte = _standardise(Ftr, Fte)
    scale = Ttr.std(0) + 1e-8
    split = len(Ftr) * 4 // 5  # samples are task-major: the last fifth are whole held-out tasks
    X, Y = jnp.asarray(Ftr[:split], jnp.float32), jnp.asarray(Ttr[:split] / scale, jnp.float32)
    Xv, Yv = jnp.asarray(Ftr[split:], jnp.float32), jnp.asarray(Ttr[split:] / scale, jnp.float32)
    mlp = eqx.nn.MLP(Ftr.shape[1], Ttr.shape[1], 64, 2, activation=jax.nn.gelu, key=jax.random.PRNGKey(seed))
    opt = optax.adam(1e-3)
    state = opt.init(eqx.filter(mlp, eqx.is_array))

    def loss(m, A, B):
        return jnp.mean((jax.vmap(m)(A) - B) ** 2)

    @eqx.filter_jit
    def step(mlp, state):
        grads = eqx.filter_grad(loss)(mlp, X, Y)
        updates, state = opt.update(grads, state)
        mlp = eqx.apply_updates(mlp, updates)
        return mlp, state, loss(mlp, Xv, Yv)

    best, best_loss = mlp, np.inf
    for _ in range(steps):
        mlp, state, held_out = step(mlp, state)
        if float(held_out) < best_loss:
            best, best_loss = mlp, float(held_out)
    pred = np.asarray(jax.vmap(best)(jnp.asarray(Fte, jnp.float32))) * scale
    return _score(pred, Tte, Ttr)


def probe_layers(model: Transformer, task: TaskDistribution, count: int, mlp_steps: int, seed: int) -> dict:
    """{target: {"linear": [score per layer], "MLP": [score per layer]}}."""
    Ftr, Ttr = features_and_targets(model, task, count, index=10**6 + seed)
    Fte, Tte = features_and_targets(model, task, max(count // 2, 1), index=2 * 10**6 + seed)
    out = {}
    for target in Ttr:
        out[target] = {
            "linear": [linear_probe(Ftr[l], Ttr[target], Fte[l], Tte[target]) for l in range(len(Ftr))],
            "MLP": [mlp_probe(Ftr[l], Ttr[target], Fte[l], Tte[target], mlp_steps, seed) for l in range(len(Ftr))],
        }
    return out
