"""Example 1: Theorem 1, one step of SGD, as a program, on the exact machine, and as a transformer.

    python examples/01_sgd_step.py

The loss on one example (x, y) is (w^T x - y)^2 + lam |w|^2, so one step of
size alpha from w0 is  w1 = w0 - 2 alpha (x (x^T w0 - y) + lam w0),  and the
prediction at a query x2 is w1^T x2. The paper builds a transformer that
does exactly this in 9 layers.
"""

import numpy as np

import construct
from construct import programs, reference
from construct.tasks import gaussian_tasks

# 1. The program: nine RAW instructions on named registers, for inputs in R^2.
alpha, lam, w0 = 0.1, 0.01, np.array([0.5, -0.5])
step = programs.sgd_step(d=2, alpha=alpha, lam=lam, w0=w0)
print("Theorem 1 on named registers:")
print(step.listing())
print("\nthe same in the paper's notation over our layout (rows [start, stop) of our hidden state):")
print(step.listing("paper"))

# 2. A task: one example (x1, y1) and a query x2. The prompt is three tokens,
#    [0, x1], [y1, 0], [0, x2]: one column each of the hidden state.
x1, y1, x2 = np.array([1.0, 2.0]), 0.5, np.array([-1.0, 0.5])
X, y = x1[None, :], np.array([y1])

# 3. The exact machine runs the instructions one by one. After instruction 7
#    (the update) the y~ column (column 1) holds w1; compare with the formula.
states = step.run(X, y, x2, trace=True)
w_machine = states[7][step.layout.rows("w"), 1]
w_formula = w0 - 2 * alpha * (x1 * (x1 @ w0 - y1) + lam * w0)
print(f"\nw1 from the machine: {w_machine}")
print(f"w1 from the formula: {w_formula}")

# 4. The prediction at the query, beside the closed form (reference.py).
machine = step.predict(X, y, x2)[-1]
closed = reference.sgd_one_step(X, y, x2, alpha, lam, w0)[-1]
print(f"\nprediction at x2: machine {machine:.12f}, closed form {closed:.12f}")

# 5. Compile: one transformer layer per instruction. The compiler needs the
#    domain (a bound on every register); we calibrate it on 64 random tasks.
bounds = construct.Bounds.calibrate(step, gaussian_tasks(2, 1, 64, seed=0))
net = construct.compile(step, bounds, fuse=False)
size = net.size()
print(f"\ntransformer: {size['layers']} layers, {size['data_rows']} data rows "
      f"(paper: {size['paper']['layers']} layers, {size['paper']['rows']} rows from row 0, y and x included), "
      f"residual width {size['residual_width']}, {size['parameters']:,} parameters")
print(f"fused (independent instructions share a layer): {construct.compile(step, bounds).size()['layers']} layers")

# 6. The transformer's forward pass knows nothing about SGD, yet it predicts the same.
transformer = net.predict(X, y, x2)[-1]
print(f"prediction at x2: transformer {transformer:.12f}, |transformer - closed form| = "
      f"{abs(transformer - closed):.1e}")
