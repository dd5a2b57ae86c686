"""Example 2: Theorem 2, ridge regression on one example by a Sherman-Morrison update.

    python examples/02_sherman_morrison_step.py

Ridge on one example: w = (lam I + x1 x1^T)^{-1} x1 y1. The transformer never
inverts a matrix: it starts from A0^{-1} = I / lam and applies
(A + u v^T)^{-1} = A^{-1} - A^{-1} u v^T A^{-1} / (1 + v^T A^{-1} u),
one multiplication or division per layer, 14 layers in all.
"""

import numpy as np

import construct
from construct import programs, reference
from construct.tasks import gaussian_tasks

lam = 0.5
chain = programs.sherman_morrison_step(d=2, lam=lam)
print("Theorem 2 on named registers:")
print(chain.listing())

# A task with one example and a query.
x1, y1, x2 = np.array([1.0, -2.0]), 1.5, np.array([0.5, 1.0])
X, y = x1[None, :], np.array([y1])

# After instruction 10 the y~ column holds A1^{-1}; compare with numpy's inverse.
states = chain.run(X, y, x2, trace=True)
A1_inv = states[10][chain.layout.rows("Ainv"), 1].reshape(2, 2)
print("\nA1^{-1} from the machine (Sherman-Morrison):")
print(A1_inv)
print("A1^{-1} from numpy.linalg.inv(lam I + x1 x1^T):")
print(np.linalg.inv(lam * np.eye(2) + np.outer(x1, x1)))

# The divisor 1 + x1^T A0^{-1} x1 is a register too; layer norm does the division.
print(f"\ndivisor den1 = {states[10][chain.layout.rows('den1'), 1][0]:.6f}"
      f" (by hand: {1 + x1 @ x1 / lam:.6f})")

machine = chain.predict(X, y, x2)[-1]
closed = reference.ridge(X, y, x2, lam)[-1]
print(f"\nprediction at x2: machine {machine:.12f}, closed form (numpy.linalg.solve) {closed:.12f}")

# Compile for the domain of 64 random tasks and run the transformer.
net = construct.compile(chain, construct.Bounds.calibrate(chain, gaussian_tasks(2, 1, 64, seed=0)), fuse=False)
size = net.size()
print(f"\ntransformer: {size['layers']} layers, {size['data_rows']} data rows "
      f"(paper: {size['paper']['layers']} layers, {size['paper']['rows']} rows from row 0, y and x included)")
transformer = net.predict(X, y, x2)[-1]
print(f"prediction at x2: transformer {transformer:.12f}, |transformer - closed form| = "
      f"{abs(transformer - closed):.1e}")

# The division layer, and the constants the compiler chose for it.
(div,) = [layer for layer in net.layers if layer.instruction.startswith("div")]
print(f"\nlayer {div.index}: {div.instruction}")
for name, value in div.constants.items():
    print(f"  {name:<20} {value:.4g}")
print(f"  predicted error      {div.predicted_error:.1e} (on entries bounded by {div.out_bound:.3g})")
