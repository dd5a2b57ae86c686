"""Random linear-regression tasks: x ~ N(0, I), w ~ N(0, I), y = w^T x (noiseless)."""

from __future__ import annotations

import numpy as np

from .prompt import check_count


def gaussian_tasks(d: int, n: int, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``count`` tasks ``(X, y, x_query)``, each with its own w; reproducible from ``seed``."""
    d, n, count = check_count(d, "d"), check_count(n, "n"), check_count(count, "count")
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(count):
        X, w = rng.normal(size=(n, d)), rng.normal(size=d)
        tasks.append((X, X @ w, rng.normal(size=d)))
    return tasks
