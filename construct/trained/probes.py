"""Probes as the paper runs them: can X^T y and w_OLS be read from a layer of the trained transformer?

For each layer l (0 = the embedding) and each number of examples k, one
probe reads the residual stream of the prompt ``x_1, y_1, ..., x_k, y_k``
(positions 0..2k-1; causal attention makes later tokens irrelevant to
them) by attention pooling over its positions, ``v = sum_i a_i h_i`` with
``a = softmax(h u)`` over those positions, then maps ``v`` to the target
with a linear layer or a 2-layer MLP (64 GeLU units). Targets are
``X_k^T y_k`` and the minimum-norm OLS weights of the first k examples.
All (layer, k) probes of a kind are trained together, vectorised, by full
batch Adam on one set of tasks (a fifth of them held out to keep each
probe's best parameters), and scored on another set: the mean squared
error divided by the target's variance, averaged over its coordinates
(1 is no better than the mean, 0 is perfect; 1 minus it is the variance
recovered). Features and targets are standardised on the training tasks.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import reference
from .metrics import summary
from ..tasks import TaskDistribution
from .model import Transformer, tokens

HIDDEN = 64  # units of the MLP probe
LEARNING_RATE = 1e-2


@eqx.filter_jit
def _hidden(model: Transformer, toks):
    return jax.vmap(model.hidden)(toks)


def features_and_targets(model: Transformer, task: TaskDistribution, count: int, index: int, max_k: int):
    """(features (samples, layers + 1, 2 max_k, width), targets {name: (samples, max_k, d)})."""
    batch = task.sample(count, index)
    X, y = batch.X[:, :max_k], batch.y[:, :max_k]
    hidden = np.asarray(_hidden(model, tokens(X, y)))  # (B, layers + 1, 2 max_k, width)
    ks = np.arange(1, max_k + 1)
    xty = np.einsum("bnd,bn,kn->bkd", X, y, (np.arange(max_k)[None, :] < ks[:, None]).astype(float))
    ols = np.stack([reference.ols_weights(Xb, yb)[ks] for Xb, yb in zip(X, y)])
    return hidden, {"X^T y": xty, "w_OLS": ols}


def _init(key, kind: str, width: int, d: int) -> dict:
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"u": 0.01 * jax.random.normal(k1, (width,))}
    if kind == "linear":
        params["out"] = (jax.random.normal(k2, (width, d)) / np.sqrt(width), jnp.zeros(d))
    else:
        params["up"] = (jax.random.normal(k2, (width, HIDDEN)) / np.sqrt(width), jnp.zeros(HIDDEN))
        params["out"] = (jax.random.normal(k3, (HIDDEN, d)) / np.sqrt(HIDDEN), jnp.zeros(d))
    return params


def _apply(params: dict, h, mask):
    """One probe on features h (B, T, width) with positions ``mask`` (T,) -> (B, d)."""
    scores = jnp.where(mask, h @ params["u"], -jnp.inf)
    pooled = jnp.einsum("bt,btw->bw", jax.nn.softmax(scores, axis=-1), h)
    if "up" in params:
        pooled = jax.nn.gelu(pooled @ params["up"][0] + params["up"][1])
    return pooled @ params["out"][0] + params["out"][1]


def _loss(params, h, mask, target):
    return jnp.mean((_apply(params, h, mask) - target) ** 2)


# every (layer, k) probe at once: params and targets carry leading axes (layers, K), h (B, layers, T, width)
_over_k = jax.vmap(_loss, in_axes=(0, None, 0, 1))
_over_layers_and_k = jax.vmap(_over_k, in_axes=(0, 1, None, None))
_predict = jax.vmap(jax.vmap(_apply, in_axes=(0, None, 0)), in_axes=(0, 1, None))


@partial(jax.jit, static_argnames=("steps",))
def _fit(params, h, target, h_val, target_val, mask, steps: int):
    """Adam on every probe at once for ``steps``; each keeps the parameters of its best held-out loss."""
    opt = optax.adam(LEARNING_RATE)

    def total(p):
        return _over_layers_and_k(p, h, mask, target).sum()

    def step(carry, _):
        p, state, best, best_loss = carry
        grads = jax.grad(total)(p)
        updates, state = opt.update(grads, state)
        p = optax.apply_updates(p, updates)
        val = _over_layers_and_k(p, h_val, mask, target_val)  # (layers, K)
        better = val < best_loss
        best = jax.tree_util.tree_map(lambda new, old: jnp.where(better.reshape(better.shape + (1,) * (new.ndim - 2)),
                                                                 new, old), p, best)
        return (p, state, best, jnp.minimum(val, best_loss)), None

    carry = (params, opt.init(params), params, jnp.full(params["u"].shape[:2], jnp.inf))  # (layers, K)
    (_, _, best, _), _ = jax.lax.scan(step, carry, None, length=steps)
    return best


def fit_probes(kind: str, train_h, train_t, test_h, test_t, steps: int, seed: int) -> np.ndarray:
    """Train the (layer, k) probes of ``kind`` and return per-task error ratios: (test tasks, layers, K).

    ``train_h`` (B, layers, 2K, width), ``train_t`` (B, K, d); the last fifth of
    the training tasks is held out for the choice of each probe's parameters.
    """
    if kind not in ("linear", "MLP"):
        raise ValueError(f"probe kind must be 'linear' or 'MLP', got {kind!r}")
    B, layers, T, width = train_h.shape
    K, d = train_t.shape[1:]
    if T != 2 * K:
        raise ValueError(f"features cover {T} positions; {K} numbers of examples need {2 * K}")
    mean, std = train_h.mean((0, 2), keepdims=True), train_h.std((0, 2), keepdims=True) + 1e-6
    t_mean, t_std = train_t.mean(0), train_t.std(0) + 1e-8  # (K, d)
    h = jnp.asarray((train_h - mean) / std, jnp.float32)
    t = jnp.asarray((train_t - t_mean) / t_std, jnp.float32)
    split = B * 4 // 5
    mask = jnp.asarray(np.arange(T)[None, :] < 2 * np.arange(1, K + 1)[:, None])  # (K, T)
    keys = jax.random.split(jax.random.PRNGKey(seed), layers * K).reshape(layers, K, -1)
    params = jax.vmap(jax.vmap(lambda key: _init(key, kind, width, d)))(keys)
    best = _fit(params, h[:split], t[:split], h[split:], t[split:], mask, steps)
    pred = np.asarray(_predict(best, jnp.asarray((test_h - mean) / std, jnp.float32), mask))  # (layers, K, B, d)
    pred = pred.transpose(2, 0, 1, 3) * t_std + t_mean
    return (((pred - test_t[:, None]) ** 2) / (t_std**2)[None, None]).mean(-1)


def probe_layers(model: Transformer, task: TaskDistribution, train_count: int, test_count: int, max_k: int,
                 steps: dict[str, int], seed: int) -> dict:
    """{target: {kind: {"mean", "low", "high" (per layer, averaged over k), "by_k" (layers x K)}}};
    ``steps`` holds the Adam steps of each kind, {"linear": ..., "MLP": ...}."""
    if not 1 <= max_k <= task.n:
        raise ValueError(f"max_k must be in 1..n = {task.n}, got {max_k}")
    if set(steps) != {"linear", "MLP"}:
        raise ValueError(f"steps must give 'linear' and 'MLP', got {sorted(steps)}")
    train_h, train_t = features_and_targets(model, task, train_count, 10**6 + seed, max_k)
    test_h, test_t = features_and_targets(model, task, test_count, 2 * 10**6 + seed, max_k)
    out = {}
    for target in train_t:
        out[target] = {}
        for kind in ("linear", "MLP"):
            ratios = fit_probes(kind, train_h, train_t[target], test_h, test_t[target], steps[kind], seed)
            out[target][kind] = {**summary(ratios.mean(2)), "by_k": ratios.mean(0).tolist(), "k": list(range(1, max_k + 1))}
    return out
