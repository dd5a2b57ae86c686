"""Shared test vocabulary: a regression task, hypothesis strategies, the agreement check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from construct.tasks import gaussian_tasks


@dataclass(frozen=True)
class Task:
    """A regression prompt and the learners' parameters (w0 = None means zero)."""

    X: np.ndarray
    y: np.ndarray
    x_query: np.ndarray
    alpha: float = 0.05
    lam: float = 0.5
    w0: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def data(self):
        return self.X, self.y, self.x_query


@st.composite
def tasks(draw, d=st.integers(1, 8), n=st.integers(1, 16), lam=st.floats(1e-2, 10.0),
          alpha=st.floats(0.0, 0.2), scale=st.floats(0.1, 3.0)):
    """X entries N(0, s^2), y = X w (+ noise sometimes), w ~ N(0, I), random w0.

    Sizes and parameters are drawn by hypothesis (so they shrink); the arrays
    come from a numpy generator seeded by a drawn integer.
    """
    d, n, s = draw(d), draw(n), draw(scale)
    noise = draw(st.sampled_from([0.0, 0.0, 0.5]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(0.0, s, (n, d))
    w = rng.normal(size=d)
    y = X @ w + noise * rng.normal(size=n)
    return Task(X, y, rng.normal(0.0, s, d), draw(alpha), draw(lam), rng.normal(size=d))


sgd_tasks = tasks(lam=st.floats(0.0, 1.0))
ridge_tasks = tasks(lam=st.floats(1e-2, 10.0))


def assert_agree(got, expected, rtol: float, what: str = "") -> None:
    """max |got - expected| <= rtol * (1 + |expected|), elementwise, with a helpful message."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    err = np.abs(got - expected) / (1 + np.abs(expected))
    worst = int(np.argmax(err))
    assert np.all(err <= rtol), (
        f"{what}: relative error {err[worst]:.3g} > {rtol:g} at prefix {worst}: "
        f"got {got[worst]!r}, expected {expected[worst]!r}"
    )


@st.composite
def compiled_tasks(draw, d=st.integers(1, 8), n=st.integers(1, 16)):
    """The compiled networks' accuracy range: x ~ N(0, I), w ~ N(0, I), lam in [0.1, 10], alpha in (0, 0.1]."""
    d, n = draw(d), draw(n)
    seed = draw(st.integers(0, 2**32 - 1))
    (X, y, xq), = gaussian_tasks(d, n, 1, seed)
    w0 = np.random.default_rng(seed + 1).normal(size=d)
    return Task(X, y, xq, draw(st.floats(1e-3, 0.1)), draw(st.floats(0.1, 10.0)), w0)
