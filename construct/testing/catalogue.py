"""The named edge cases every level is checked on (closed form, exact machine, compiled network).

Each case is a ``Task`` whose parameters suit both SGD and ridge (lam > 0),
drawn from its own seed, so that a case is the same task on every machine:

* ``d=1``, ``n=1``: the smallest prompts (one input, one example);
* ``n<d``: fewer examples than dimensions (a singular ``X^T X``);
* ``repeated examples``: three rows seen six times (rank 3, repetition);
* ``x=0``: an example that carries nothing, with a label that is not 0;
* ``query x=0``: every answer at the query is exactly 0;
* ``y=0``: every label 0, so ridge's answers are 0 and SGD only decays w0;
* ``alpha=0``: SGD that never moves from w0;
* ``lam=1e-3``, ``lam=1e3``: ridge nearly unregularised, and ridge whose
  penalty dwarfs the data (with a step small enough for SGD to stay stable).
"""

from __future__ import annotations

import numpy as np

from .strategies import Task


def _draw(seed: int, n: int, d: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return rng, X, X @ rng.normal(size=d), rng.normal(size=d)


def _cases() -> dict[str, Task]:
    cases = {}

    rng, X, y, xq = _draw(1, 5, 1)
    cases["d=1"] = Task(X, y, xq, w0=rng.normal(size=1))

    rng, X, y, xq = _draw(2, 1, 4)
    cases["n=1"] = Task(X, y, xq, w0=rng.normal(size=4))

    rng, X, y, xq = _draw(3, 3, 6)
    cases["n<d"] = Task(X, y, xq, w0=rng.normal(size=6))

    rng, X, y, xq = _draw(4, 3, 3)
    Xr = X[[0, 1, 0, 0, 2, 1]]
    cases["repeated examples"] = Task(Xr, y[[0, 1, 0, 0, 2, 1]], xq, w0=rng.normal(size=3))

    rng, X, y, xq = _draw(5, 4, 3)
    X[1] = 0.0
    cases["x=0"] = Task(X, y, xq, w0=rng.normal(size=3))

    rng, X, y, xq = _draw(6, 4, 3)
    cases["query x=0"] = Task(X, y, np.zeros(3), w0=rng.normal(size=3))

    rng, X, _, xq = _draw(7, 4, 3)
    cases["y=0"] = Task(X, np.zeros(4), xq, w0=rng.normal(size=3))

    rng, X, y, xq = _draw(8, 5, 3)
    cases["alpha=0"] = Task(X, y, xq, alpha=0.0, w0=rng.normal(size=3))

    rng, X, y, xq = _draw(9, 5, 3)
    cases["lam=1e-3"] = Task(X, y, xq, lam=1e-3, w0=rng.normal(size=3))

    rng, X, y, xq = _draw(10, 5, 3)
    cases["lam=1e3"] = Task(X, y, xq, alpha=1e-4, lam=1e3, w0=rng.normal(size=3))
    return cases


EDGE_CASES: dict[str, Task] = _cases()
