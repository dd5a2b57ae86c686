"""Random linear-regression tasks.

``gaussian_tasks`` gives the standard tasks of the tests, the demo and the
benchmark: x ~ N(0, I), w ~ N(0, I), y = w^T x, as a list of
``(X, y, x_query)``.

``TaskDistribution`` is the seeded sampler the trained learners need
(the paper's experimental setup): inputs x ~ N(0, s_x^2 I) and weights w ~ N(0, tau^2 I),
where either scale may be a tuple (a per-task mixture: each task draws one
of the scales uniformly); label noise y = w^T x + N(0, sigma^2); an optional
finite pool of weight vectors fixed by the seed (``pool=1`` is a single
fixed task); and the active-dimension curriculum (only the first ``active``
coordinates of x and w are nonzero). Batch ``index`` is drawn from its own
generator seeded by ``(seed, index)``, so any batch can be redrawn exactly,
which is what makes a resumed training run continue the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .raw.prompt import check_count, finite_float, shown


def gaussian_tasks(d: int, n: int, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``count`` tasks ``(X, y, x_query)``, each with its own w; reproducible from ``seed``."""
    d, n, count = check_count(d, "d"), check_count(n, "n"), check_count(count, "count")
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(count):
        X, w = rng.normal(size=(n, d)), rng.normal(size=d)
        tasks.append((X, X @ w, rng.normal(size=d)))
    return tasks


@dataclass(frozen=True)
class Batch:
    """``X`` (B, n, d), ``y`` (B, n), the task weights ``w`` (B, d) and ``queries`` (B, m, d) drawn like x."""

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    queries: np.ndarray


def _scales(value, name: str) -> tuple[float, ...]:
    scales = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not scales or not all(isinstance(s, (int, float)) and (finite_float(s) or 0) > 0 for s in scales):
        raise ValueError(f"{name} must be a positive number or a non-empty tuple of them, got {shown(value)}")
    return tuple(float(s) for s in scales)


@dataclass(frozen=True)
class TaskDistribution:
    """Seeded linear-regression tasks; see the module docstring."""

    d: int
    n: int
    x_scale: float | tuple[float, ...] = 1.0
    w_scale: float | tuple[float, ...] = 1.0
    noise: float = 0.0
    pool: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_count(self.d, "d")
        check_count(self.n, "n")
        object.__setattr__(self, "x_scale", _scales(self.x_scale, "x_scale"))
        object.__setattr__(self, "w_scale", _scales(self.w_scale, "w_scale"))
        if not (finite_float(self.noise) is not None and self.noise >= 0):
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if self.pool is not None:
            check_count(self.pool, "pool")

    def _pool(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2**31])  # a stream no batch index uses
        return rng.normal(size=(self.pool, self.d)) * rng.choice(self.w_scale, size=(self.pool, 1))

    def sample(self, count: int, index: int, active: int | None = None, queries: int = 0) -> Batch:
        """Batch ``index`` of ``count`` tasks; ``active`` zeroes coordinates from ``active`` on."""
        check_count(count, "count")
        active = self.d if active is None else active
        if not 1 <= active <= self.d:
            raise ValueError(f"active must be in 1..{self.d}, got {active}")
        rng = np.random.default_rng([self.seed, index])
        x_scale = rng.choice(self.x_scale, size=(count, 1, 1))
        X = rng.normal(size=(count, self.n, self.d)) * x_scale
        Q = rng.normal(size=(count, queries, self.d)) * x_scale
        if self.pool is None:
            w = rng.normal(size=(count, self.d)) * rng.choice(self.w_scale, size=(count, 1))
        else:
            w = self._pool()[rng.integers(self.pool, size=count)]
        mask = np.arange(self.d) < active
        X, Q, w = X * mask, Q * mask, w * mask
        y = np.einsum("bnd,bd->bn", X, w) + self.noise * rng.normal(size=(count, self.n))
        return Batch(X, y, w, Q)
