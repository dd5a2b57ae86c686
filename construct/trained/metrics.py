"""How alike two predictors are, as the paper measures it: SPD and ILWD at every number of examples.

* SPD(A1, A2)(k) = E_tasks E_x' (A1(D_k)(x') - A2(D_k)(x'))^2, divided by d
  when reported (``spd(..., per_dim=True)``);
* implicit weights: for each task and prefix, the least-squares fit, with
  an intercept, of a predictor's outputs on its queries x'_1..x'_m
  (m >= d + 1; we use 4d); its R^2 says how linear the predictor is there;
* ILWD(A1, A2)(k) = E_tasks |w_A1 - w_A2|^2, the squared Euclidean norm
  **summed** over the d coordinates (not averaged), with a linear
  predictor's own weights where it has them;
* intervals: percentile bootstrap over tasks (``summary``: mean and interval).

Functions take per-task arrays and return one number per prefix, so the
caller chooses mean or median (the median matters with noisy labels, where
OLS's interpolation spike at k = d dominates a mean).
"""

from __future__ import annotations

import numpy as np


def squared_differences(pred_a: np.ndarray, pred_b: np.ndarray) -> np.ndarray:
    """Per task and prefix, the mean over queries of the squared difference: (B, n + 1)."""
    return ((np.asarray(pred_a) - np.asarray(pred_b)) ** 2).mean(axis=-1)


def spd(pred_a, pred_b, d: int | None = None, statistic=np.mean) -> np.ndarray:
    """SPD at every prefix, over tasks; divided by ``d`` if given: (n + 1,)."""
    per_task = squared_differences(pred_a, pred_b)
    return statistic(per_task, axis=0) / (d or 1)


def implicit_weights(queries: np.ndarray, predictions: np.ndarray):
    """Least-squares fit with intercept of ``predictions`` (B, K, m) on ``queries`` (B, K, m, d).

    Returns ``(weights (B, K, d), intercept (B, K), r2 (B, K))``. R^2 is 1
    minus the residual over the total sum of squares (1 when the outputs
    are constant and fitted exactly).
    """
    Q, p = np.asarray(queries, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
    m, d = Q.shape[-2], Q.shape[-1]
    if m < d + 1:
        raise ValueError(f"implicit weights need at least d + 1 = {d + 1} queries per context, got {m}")
    design = np.concatenate([Q, np.ones(Q.shape[:-1] + (1,))], axis=-1)
    flat_design, flat_p = design.reshape(-1, m, d + 1), p.reshape(-1, m)
    coef = np.stack([np.linalg.lstsq(A, t, rcond=None)[0] for A, t in zip(flat_design, flat_p)])
    fitted = np.einsum("cmd,cd->cm", flat_design, coef)
    residual = ((flat_p - fitted) ** 2).sum(-1)
    total = ((flat_p - flat_p.mean(-1, keepdims=True)) ** 2).sum(-1)
    r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual <= 1e-20, 1.0, 0.0))
    coef = coef.reshape(Q.shape[:2] + (d + 1,))
    return coef[..., :d], coef[..., d], r2.reshape(Q.shape[:2])


def weight_distances(w_a: np.ndarray, w_b: np.ndarray) -> np.ndarray:
    """Per task and prefix, |w_a - w_b|^2 summed over coordinates: (B, n + 1)."""
    return ((np.asarray(w_a) - np.asarray(w_b)) ** 2).sum(axis=-1)


def ilwd(w_a, w_b, statistic=np.mean) -> np.ndarray:
    """ILWD at every prefix, over tasks: (n + 1,)."""
    return statistic(weight_distances(w_a, w_b), axis=0)


def bootstrap(per_task: np.ndarray, statistic=np.mean, reps: int = 1000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap over tasks of ``statistic`` at every prefix: (low (n + 1,), high (n + 1,))."""
    per_task = np.asarray(per_task)
    rng = np.random.default_rng(seed)
    draws = rng.integers(len(per_task), size=(reps, len(per_task)))
    stats = np.stack([statistic(per_task[idx], axis=0) for idx in draws])
    tail = (1 - level) / 2 * 100
    return np.percentile(stats, tail, axis=0), np.percentile(stats, 100 - tail, axis=0)


def summary(per_task: np.ndarray, seed: int = 0) -> dict:
    """The mean over tasks (axis 0) with its 95% bootstrap interval, as lists: {"mean", "low", "high"}."""
    low, high = bootstrap(per_task, seed=seed)
    return {"mean": np.mean(per_task, axis=0).tolist(), "low": np.asarray(low).tolist(),
            "high": np.asarray(high).tolist()}
