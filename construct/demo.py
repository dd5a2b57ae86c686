"""The main demo: the paper's chains in its notation, and programs beside the closed forms."""

from __future__ import annotations

import argparse

import numpy as np

from . import programs, reference


def _table(title: str, got: np.ndarray, expected: np.ndarray) -> str:
    lines = [title, f"  {'prefix':>6}  {'program':>14}  {'closed form':>14}  {'|error|':>9}"]
    for k, (g, e) in enumerate(zip(got, expected)):
        lines.append(f"  {k:>6}  {g:>14.10f}  {e:>14.10f}  {abs(g - e):>9.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct", description=__doc__)
    parser.add_argument("--d", type=int, default=3, help="input dimension (default 3)")
    parser.add_argument("--n", type=int, default=6, help="number of examples (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random task (default 0)")
    args = parser.parse_args(argv)
    d, n = args.d, args.n
    if d < 1 or n < 1:
        parser.error("--d and --n must be at least 1")

    step = programs.sgd_step(2, alpha=0.1, lam=0.01, w0=np.zeros(2))
    print(f"Theorem 1 (one SGD step), d = 2: {step.depth} instructions, {step.data_rows} data rows "
          f"(paper: 9 and 3 + 4d = 11)")
    print(step.listing("paper"))
    print("\nThe same chain on named registers:")
    print(step.listing())

    rng = np.random.default_rng(args.seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d)
    x_query = rng.normal(size=d)
    alpha, lam = 0.05, 0.1
    sgd = programs.sgd(d, n, alpha, lam)
    ridge = programs.ridge(d, n, lam)
    print(f"\nA random task: d = {d}, n = {n}, x ~ N(0, I), y = w^T x. Prefix k predicts example k+1 "
          f"from examples 1..k (k = n is the query).\n")
    print(_table(f"one-pass SGD, alpha = {alpha}, lam = {lam}: program (depth {sgd.depth}, width {sgd.width}) "
                 "vs the SGD recurrence",
                 sgd.predict(X, y, x_query), reference.sgd_one_pass(X, y, x_query, alpha, lam)))
    print()
    print(_table(f"ridge, lam = {lam}: Sherman-Morrison program (depth {ridge.depth}, width {ridge.width}) "
                 "vs numpy.linalg.solve",
                 ridge.predict(X, y, x_query), reference.ridge(X, y, x_query, lam)))
    return 0
