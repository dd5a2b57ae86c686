"""Hypothesis strategies for regression tasks: the standard draw and the adversarial families, one strategy each.

Every strategy draws its sizes and magnitudes with hypothesis, so that a
failing example shrinks towards small ``d``, ``n`` and plain magnitudes,
and its arrays from a numpy generator seeded by one drawn integer, so that
an example is a handful of choices however large the task. ``d``, ``n``
and ``scale`` (the standard deviation of the inputs' entries) take a
number or a strategy; with numbers every task fits a program built for
them. The families draw data only: their tasks carry ``Task``'s default
learner parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ..raw.prompt import check_count, finite_float, shown
from ..tasks import gaussian_tasks

DIMENSIONS = st.integers(1, 8)
LENGTHS = st.integers(1, 16)
SCALES = st.floats(0.1, 3.0)


@dataclass(frozen=True)
class Task:
    """A regression prompt and the learners' parameters (w0 = None means zero).

    Its ``repr`` is Python that rebuilds it bit for bit (``np`` being numpy),
    so a failing example can be pasted back into a test.
    """

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

    def __repr__(self) -> str:
        def array(a) -> str:  # a Python float's repr is the shortest text that reads back to the same double
            return f"np.array({np.asarray(a, dtype=np.float64).tolist()!r})"

        given = [f"X={array(self.X)}", f"y={array(self.y)}", f"x_query={array(self.x_query)}"]
        given += [f"{name}={float(getattr(self, name))!r}" for name in ("alpha", "lam")
                  if getattr(self, name) != getattr(Task, name)]  # the data-only families keep the defaults
        return f"Task({', '.join(given + ([] if self.w0 is None else [f'w0={array(self.w0)}']))})"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints a falsifying example with its pretty-printer
        printer.text(repr(self))


def _count(value, name: str) -> SearchStrategy:
    return value if isinstance(value, SearchStrategy) else st.just(check_count(value, name))


def _positive(value, name: str) -> SearchStrategy:
    if isinstance(value, SearchStrategy):
        return value
    if not ((finite_float(value) or 0) > 0):
        raise ValueError(f"{name} must be a positive number or a hypothesis strategy, got {shown(value)}")
    return st.just(float(value))


def _real(value, name: str) -> SearchStrategy:
    if isinstance(value, SearchStrategy):
        return value
    if finite_float(value) is None:
        raise ValueError(f"{name} must be a finite number or a hypothesis strategy, got {shown(value)}")
    return st.just(float(value))


def _rng(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def tasks(d=DIMENSIONS, n=LENGTHS, lam=st.floats(1e-2, 10.0), alpha=st.floats(0.0, 0.2),
          scale=SCALES) -> SearchStrategy[Task]:
    """The standard draw: X entries N(0, s^2), y = X w (+ noise N(0, 0.5^2) in a third of the tasks), w ~ N(0, I),
    query N(0, s^2), random w0, and the learners' ``lam`` and ``alpha`` drawn too.

    Stresses nothing in particular: it is the distribution the others depart from.
    """
    d, n, lam, alpha, scale = (_count(d, "d"), _count(n, "n"), _real(lam, "lam"), _real(alpha, "alpha"),
                               _positive(scale, "scale"))

    @st.composite
    def draw_task(draw):
        size_d, size_n, s = draw(d), draw(n), draw(scale)
        noise = draw(st.sampled_from([0.0, 0.0, 0.5]))
        rng = _rng(draw)
        X = rng.normal(0.0, s, (size_n, size_d))
        w = rng.normal(size=size_d)
        y = X @ w + noise * rng.normal(size=size_n)
        return Task(X, y, rng.normal(0.0, s, size_d), draw(alpha), draw(lam), rng.normal(size=size_d))

    return draw_task()


sgd_tasks = tasks(lam=st.floats(0.0, 1.0))
"""The standard draw with SGD's penalty ``lam`` in [0, 1] (0 included)."""
ridge_tasks = tasks(lam=st.floats(1e-2, 10.0))
"""The standard draw with ridge's ``lam`` in [0.01, 10]."""


@st.composite
def compiled_tasks(draw, d=DIMENSIONS, n=LENGTHS):
    """The compiled networks' accuracy range: x ~ N(0, I), w ~ N(0, I), lam in [0.1, 10], alpha in (0, 0.1]."""
    d, n = draw(_count(d, "d")), draw(_count(n, "n"))
    seed = draw(st.integers(0, 2**32 - 1))
    (X, y, xq), = gaussian_tasks(d, n, 1, seed)
    w0 = np.random.default_rng(seed + 1).normal(size=d)
    return Task(X, y, xq, draw(st.floats(1e-3, 0.1)), draw(st.floats(0.1, 10.0)), w0)


def _family(d, n, scale, build) -> SearchStrategy[Task]:
    """Tasks whose data ``build(draw, rng, d, n, s) -> (X, y, x_query)`` makes from drawn sizes and scale."""
    d, n, scale = _count(d, "d"), _count(n, "n"), _positive(scale, "scale")

    @st.composite
    def draw_task(draw):
        size_d, size_n, s = draw(d), draw(n), draw(scale)
        return Task(*build(draw, _rng(draw), size_d, size_n, s))

    return draw_task()


def near_collinear_tasks(d=DIMENSIONS, n=LENGTHS, scale=SCALES, gap=st.floats(1e-9, 1e-3)) -> SearchStrategy[Task]:
    """Rows nearly on one line: ``x_k = c_k u + gap s e_k`` (c_k, e_k standard normal, u ~ N(0, s^2 I)).

    Stresses conditioning: ``X^T X`` is nearly rank one, so ridge at a small
    ``lam`` solves a nearly singular system (Sherman-Morrison's updates
    subtract nearly equal numbers), and SGD steps again and again along one
    direction. ``gap`` (relative to ``s``) sets how near.
    """
    gap = _positive(gap, "gap")

    def build(draw, rng, d, n, s):
        g = draw(gap)
        X = np.outer(rng.normal(size=n), rng.normal(0.0, s, d)) + g * s * rng.normal(size=(n, d))
        return X, X @ rng.normal(size=d), rng.normal(0.0, s, d)

    return _family(d, n, scale, build)


def repeated_row_tasks(d=DIMENSIONS, n=LENGTHS, scale=SCALES) -> SearchStrategy[Task]:
    """Every example one of at most three rows, the labels consistent (y = x^T w) or conflicting (noise on each),
    and the query one of the rows or a fresh one.

    Stresses rank deficiency and repetition: the same example seen again
    shrinks ridge's ``A^-1 x`` towards 0 along it (its denominator grows,
    its gain falls), SGD converges geometrically along one direction, and
    conflicting labels leave a residual that never vanishes.
    """
    def build(draw, rng, d, n, s):
        rows = rng.normal(0.0, s, (draw(st.integers(1, min(n, 3))), d))
        X = rows[rng.integers(len(rows), size=n)]
        y = X @ rng.normal(size=d) + draw(st.sampled_from([0.0, 0.5])) * rng.normal(size=n)
        query = rows[0] if draw(st.booleans()) else rng.normal(0.0, s, d)
        return X, y, query.copy()

    return _family(d, n, scale, build)


def zero_row_tasks(d=DIMENSIONS, n=LENGTHS, scale=SCALES) -> SearchStrategy[Task]:
    """Some rows exactly 0 with a label that is not (an example that carries nothing), and sometimes the query 0.

    Stresses exact zeros: an example at x = 0 must change nothing (ridge's
    denominator is exactly 1, its gain 0; SGD's gradient is its penalty
    alone), products have a zero operand, and an answer of exactly 0 leaves
    no room for a relative error.
    """
    def build(draw, rng, d, n, s):
        X = rng.normal(0.0, s, (n, d))
        X[rng.permutation(n)[:draw(st.integers(1, n))]] = 0.0
        y = X @ rng.normal(size=d)
        zero = ~X.any(axis=1)
        y[zero] = rng.normal(size=int(zero.sum()))
        return X, y, np.zeros(d) if draw(st.booleans()) else rng.normal(0.0, s, d)

    return _family(d, n, scale, build)


def underdetermined_tasks(d=st.integers(2, 8), n=None, scale=SCALES) -> SearchStrategy[Task]:
    """Fewer examples than dimensions, n < d (``n=None``: drawn in 1..d-1); data as in the standard draw.

    Stresses the null space: ``X^T X`` is singular, so ridge's answer along
    the directions no example spans is set by ``lam`` alone, least squares
    has no unique answer, and SGD never moves ``w0`` there.
    """
    if not isinstance(d, SearchStrategy) and not isinstance(n, (SearchStrategy, type(None))):
        if check_count(n, "n") >= check_count(d, "d", minimum=2):
            raise ValueError(f"underdetermined_tasks needs n < d, got n = {n}, d = {d}")
    d, scale = _count(d, "d"), _positive(scale, "scale")
    n = None if n is None else _count(n, "n")

    @st.composite
    def draw_task(draw):
        size_d = draw(d)
        size_n = draw(st.integers(1, size_d - 1) if n is None else n)
        if not size_n < size_d:
            raise ValueError(f"underdetermined_tasks drew n = {size_n} and d = {size_d}: give n below every d")
        s, rng = draw(scale), _rng(draw)
        X = rng.normal(0.0, s, (size_n, size_d))
        return Task(X, X @ rng.normal(size=size_d), rng.normal(0.0, s, size_d))

    return draw_task()


def cancelling_label_tasks(d=DIMENSIONS, n=LENGTHS, scale=SCALES, gap=st.floats(1e-9, 1e-3)) -> SearchStrategy[Task]:
    """Examples in pairs whose labels nearly cancel: ``(x, y)`` then ``(x + gap s e, -y + gap e')``, so that
    ``X^T y`` is of size ``gap`` (an odd n leaves one example unpaired; n = 1 has no pair).

    Stresses cancellation: the weights and the answers are differences of
    terms of the labels' size, so they come out near 0 beside the values
    that made them; an error of the size of those values is a large
    relative error of the answer, and a bound proportional to them is far
    above it.
    """
    gap = _positive(gap, "gap")

    def build(draw, rng, d, n, s):
        g = draw(gap)
        X = rng.normal(0.0, s, (n, d))
        y = X @ rng.normal(size=d)
        pairs = n // 2
        X[1:2 * pairs:2] = X[0:2 * pairs:2] + g * s * rng.normal(size=(pairs, d))
        y[1:2 * pairs:2] = -y[0:2 * pairs:2] + g * rng.normal(size=pairs)
        return X, y, rng.normal(0.0, s, d)

    return _family(d, n, scale, build)


def regression_tasks(d=DIMENSIONS, n=LENGTHS, scale=SCALES) -> SearchStrategy[Task]:
    """The standard draw or one of the adversarial families, all of size ``d`` x ``n`` (what ``check_program``
    draws by default). n < d is among them when the sizes allow it (``underdetermined_tasks`` draws only that)."""
    return st.one_of(tasks(d, n, scale=scale), near_collinear_tasks(d, n, scale), repeated_row_tasks(d, n, scale),
                     zero_row_tasks(d, n, scale), cancelling_label_tasks(d, n, scale))
