"""Example 3: predictions at every prefix of the prompt, against the closed forms, with a plot.

    python examples/03_prefix_predictions.py [OUTPUT_DIR]

With n examples, the n-example programs predict at every x~ token: entry k
predicts y_{k+1} from examples 1..k (and entry n the query). So one run of a
network gives a whole learning curve. The plot goes to OUTPUT_DIR (default
examples/output/, which git ignores).
"""

import sys
from pathlib import Path

import numpy as np

import construct
from construct import plots, programs, reference
from construct.tasks import gaussian_tasks

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "output"
out.mkdir(parents=True, exist_ok=True)
d, n, alpha, lam = 3, 8, 0.05, 0.1

# Two networks for d = 3, n = 8: one pass of SGD, and ridge by Sherman-Morrison.
nets = {}
for name, program in (("sgd", programs.sgd(d, n, alpha, lam)), ("ridge", programs.ridge(d, n, lam))):
    bounds = construct.Bounds.calibrate(program, gaussian_tasks(d, n, 256, seed=0))
    nets[name] = construct.compile(program, bounds)
    print(f"{name}: {nets[name].size()['layers']} layers")

# A task with n + 1 examples: the last one's x is the query, so every prefix has a true label.
(X_all, y_all, _), = gaussian_tasks(d, n + 1, 1, seed=42)
X, y, x_query = X_all[:n], y_all[:n], X_all[n]

sgd, ridge = (nets[name].predict(X, y, x_query) for name in ("sgd", "ridge"))
sgd_closed = reference.sgd_one_pass(X, y, x_query, alpha, lam)
ridge_closed = reference.ridge(X, y, x_query, lam)
ols = reference.ols(X, y, x_query)

print(f"\n{'k':>2} {'true y':>9} {'SGD net':>9} {'SGD closed':>11} {'ridge net':>10} {'ridge closed':>12} {'OLS':>9}")
for k in range(n + 1):
    print(f"{k:>2} {y_all[k]:>9.4f} {sgd[k]:>9.4f} {sgd_closed[k]:>11.4f} {ridge[k]:>10.4f} "
          f"{ridge_closed[k]:>12.4f} {ols[k]:>9.4f}")
print(f"\nlargest |network - closed form|: SGD {np.abs(sgd - sgd_closed).max():.1e}, "
      f"ridge {np.abs(ridge - ridge_closed).max():.1e}")
print("Labels are noiseless, so OLS is exact from k = d = 3 on; ridge approaches it as k grows,"
      " and one pass of SGD lags behind.")

# The same over 128 random tasks, as a picture (matplotlib is the optional extra 'plots').
try:
    curves = plots.error_vs_examples(out / "error_vs_examples.png", d=d, n=n, alpha=alpha, lam=lam)
except plots.PlotsUnavailable as err:
    print(f"\nno picture: {err}")
else:
    mse = curves["mean_squared_error"]
    print(f"\nmean squared error over {curves['tasks']} tasks at k = {n}: SGD {mse['SGD closed form'][n]:.3f}, "
          f"ridge {mse['ridge closed form'][n]:.2e}, OLS {mse['OLS closed form'][n]:.1e}")
    print(f"wrote {out / 'error_vs_examples.png'}")
