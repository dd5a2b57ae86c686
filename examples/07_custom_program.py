"""Example 7: a program of your own, property-tested at its three levels with construct.testing.

    python examples/07_custom_program.py

The program, written by hand: one step of gradient descent from w = 0 on
the k examples seen so far (the gradient of sum (w^T x - y)^2 at 0 is
-2 X^T y), so w_k = 2 alpha sum_{j<=k} y_j x_j, and the answer after k
examples is w_k^T x_{k+1}. check_program draws tasks (the standard draw and
the adversarial families), compiles the program, and requires the exact
machine to agree with the closed form below, and every answer of the
network to lie within its certified bound of it, plus the closed form's
own float64 rounding, which only its author can state.
"""

import numpy as np
from hypothesis import settings

from construct import Aff, Layout, Mov, Mul, Program, Register
from construct.raw.prompt import X_IN, Y_IN, input_registers
from construct.testing import PropertyFailure, check_program

d, n, alpha = 2, 4, 0.1

# 1. Every instruction acts on every column (x~_1, y~_1, ..., x~_n, y~_n, x~_query). x = x_in(i-1) - x_in(i)
#    is x_k at example k's y~ column and 0 at column 0; g = x y is x_k y_k there and 0 at every x~ column. The
#    block, n times, adds to s the s of the column two back: example k's y~ column ends with s_k = sum_{j<=k}
#    x_j y_j, and the next x~ column takes it (mov, offset 1) and answers 2 alpha s_k^T x.
layout = Layout(input_registers(d) + [Register(name, (d,)) for name in ("x", "g", "s", "s_prev", "w")]
                + [Register("pred", (1,))])
block = (Mov("s", "s_prev", 2), Aff("s", (("s_prev", 1), ("g", 1))))
program = Program("gd_from_zero", d, n, layout,
                  (Mov(X_IN, "x", 1), Aff("x", (("x", 1), (X_IN, -1))), Mul("x", Y_IN, "g", (d, 1, 1)))
                  + block * n + (Mov("s", "w", 1), Aff("w", (("w", 2 * alpha),)), Mul("w", X_IN, "pred", (1, d, 1))),
                  block=(3, len(block)))
print(program)


# 2. The closed form, every prefix at once, and a bound on its own rounding.
def closed(X, y, x_query):
    sums = np.vstack([np.zeros(d), np.cumsum(X * y[:, None], axis=0)])  # s_0 = 0, s_1, ..., s_n
    return 2 * alpha * np.einsum("ki,ki->k", sums, np.vstack([X, x_query]))


def rounding(X, y, x_query):
    """Answer k sums the terms 2 alpha x_ji y_j v_i (v = x_{k+1}), each through at most m = n + d + 1 roundings
    (its product, k - 1 additions in the cumulative sum, the product with v_i, d - 1 additions, the factor
    2 alpha), so it is within gamma_m = m u / (1 - m u) of the sum of |terms| (Higham, Accuracy and Stability of
    Numerical Algorithms, section 3.1); doubled for the rounding of this bound's own arithmetic."""
    m, u = n + d + 1, 2.0**-53
    sums = np.vstack([np.zeros(d), np.cumsum(np.abs(X * y[:, None]), axis=0)])
    return 2 * m * u / (1 - m * u) * 2 * alpha * np.einsum("ki,ki->k", sums, np.abs(np.vstack([X, x_query])))


# 3. One call: closed form, exact machine and compiled network with its certificate, on 20 tasks.
runs = settings(max_examples=20, derandomize=True, database=None)  # the same tasks on every run
report = check_program(program, closed=closed, closed_rounding=rounding, settings=runs)
print(f"\n{report}")


# 4. A closed form with a bug (the factor 2 of the squared loss's gradient forgotten) fails, on a task that
#    hypothesis has shrunk; its repr rebuilds it exactly: check_program(..., examples=[task]) replays it.
def forgot_the_2(X, y, x_query):
    return closed(X, y, x_query) / 2


try:
    check_program(program, closed=forgot_the_2, closed_rounding=rounding, settings=runs)
except PropertyFailure as failure:
    print(f"\nthe bug is caught at the {failure.level} level: {str(failure).splitlines()[0]}")
    print(f"the task: {failure.task!r}")
