"""The domain from input bounds: the lemmas behind each algorithm's ``theory`` (``construct.programs``), and that the
theories compute them.

Each derivation there bounds a register by a short argument; the steps that
are algebra are checked here with sympy, at d = 2 (every 2 x 2 positive
semidefinite matrix is a sum of two outer products, so two symbolic
examples cover every ``A = lam I + B`` at d = 2). The steps that are
standard facts are stated, not re-proved: a symmetric matrix's norm is its
largest |eigenvalue|; a 2 x 2 symmetric matrix with nonnegative diagonal
and determinant is positive semidefinite; an entry of a PSD matrix is at
most the largest diagonal entry. ``tests/raw/test_domain.py`` runs the
programs on tasks at the corners of the box against the same bounds.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import sympy as sp

from construct import programs
from construct.raw import domain

from .registry import proof, require, zero
from .theorems import examples, vector

lam = sp.Symbol("lam", positive=True)
alpha = sp.Symbol("alpha", nonnegative=True)
X_MAX, Y_MAX, R = sp.symbols("X Y R", positive=True)


def _ridge_matrix(d: int = 2, k: int = 2):
    """``A = lam I + B``, ``B`` the sum of k symbolic examples' outer products."""
    xs = [vector(f"v{j}", d) for j in range(1, k + 1)]
    B = sum((x * x.T for x in xs), sp.zeros(d, d))
    return lam * sp.eye(d) + B, B, xs


@proof("domain_am_gm", "s / (s^2 + lam) <= 1/(2 sqrt(lam)) for s >= 0, with equality at s = sqrt(lam)",
       "lam > 0; the gap is (s - sqrt(lam))^2 / (2 sqrt(lam) (s^2 + lam))")
def domain_am_gm():
    s = sp.Symbol("s", nonnegative=True)
    gap = 1 / (2 * sp.sqrt(lam)) - s / (s**2 + lam)
    zero(sp.simplify(gap - (s - sp.sqrt(lam)) ** 2 / (2 * sp.sqrt(lam) * (s**2 + lam))), "the gap is a square", sp.simplify)
    zero(gap.subs(s, sp.sqrt(lam)), "equality at s = sqrt(lam)")


@proof("domain_ridge_weights", "ridge weights w = (X^T X + lam I)^{-1} X^T y have |w| <= |y| / (2 sqrt(lam))",
       "(n, d) = (1, 2), (2, 2), (3, 1); X, y symbolic: |y|^2/(4 lam) - |w|^2 = |N y|^2 / (4 lam) with "
       "N = (G - lam I)(G + lam I)^{-1}, G = X X^T")
def domain_ridge_weights():
    """The gap is a square: with ``G = X X^T``, ``w^T w = y^T G (G + lam)^{-2} y`` (push-through) and
    ``I/(4 lam) - G (G + lam)^{-2} = N^2 / (4 lam)``, N symmetric (a rational function of G). So a column
    whose examples carry labels ``|y_j| <= Y``, at most n of them, has ``|w| <= sqrt(n) Y / (2 sqrt(lam))``."""
    for n, d in ((1, 2), (2, 2), (3, 1)):
        X = sp.Matrix(n, d, lambda i, j: sp.Symbol(f"x{i + 1}{j + 1}", real=True))
        y = sp.Matrix(sp.symbols(f"y1:{n + 1}", real=True))
        A = X.T * X + lam * sp.eye(d)
        w = A.adjugate() * X.T * y / A.det()
        G = X * X.T + lam * sp.eye(n)
        Ny = (X * X.T - lam * sp.eye(n)) * G.adjugate() * y / G.det()
        gap = (y.T * y)[0] / (4 * lam) - (w.T * w)[0] - (Ny.T * Ny)[0] / (4 * lam)
        zero(sp.cancel(sp.together(gap)), f"n = {n}, d = {d}", sp.cancel)


@proof("domain_inverse_bounds", "A = lam I + B, B PSD: 0 < A^{-1} <= I/lam, so |A^{-1}_ij| <= 1/lam, "
       "|A^{-1} x| <= |x|/lam, 0 <= x^T A^{-1} x <= |x|^2/lam and den1 = 1 + x^T A^{-1} x >= 1",
       "d = 2, B = v1 v1^T + v2 v2^T (any 2 x 2 PSD matrix), x symbolic; each quantity is a sum of squares "
       "times positive factors")
def domain_inverse_bounds():
    A, B, (v1, v2) = _ridge_matrix()
    detB = (v1[0] * v2[1] - v1[1] * v2[0]) ** 2                       # Lagrange's identity
    zero(sp.expand(B.det() - detB), "det B is a square")
    detA = lam**2 + lam * B.trace() + detB                           # > 0: lam > 0, tr B >= 0, det B >= 0
    zero(sp.expand(A.det() - detA), "det A = lam^2 + lam tr B + det B")
    Ainv = A.adjugate() / detA
    zero(sp.cancel(Ainv[0, 0] - A[1, 1] / detA), "A^{-1}_11 = a22 / det A > 0")
    zero(sp.cancel(Ainv.det() - 1 / detA), "det A^{-1} = 1 / det A > 0")
    M = sp.eye(2) / lam - Ainv                                       # I/lam - A^{-1} is PSD:
    for i in range(2):
        zero(sp.cancel(M[i, i] - (lam * B[i, i] + detB) / (lam * detA)), f"(I/lam - A^{{-1}})_{i}{i} >= 0")
    zero(sp.cancel(M.det() - detB / (lam**2 * detA)), "det(I/lam - A^{-1}) >= 0")
    x = vector("x", 2)
    quad = (x.T * Ainv * x)[0]                                       # completing the square in x^T adj(A) x
    zero(sp.cancel(quad - ((A[0, 0] * x[1] - A[0, 1] * x[0]) ** 2 + detA * x[0] ** 2) / (A[0, 0] * detA)),
         "x^T A^{-1} x = ((a11 x2 - a12 x1)^2 + det A x1^2) / (a11 det A) >= 0, so den1 >= 1", sp.cancel)


@proof("domain_corr_gain", "with u = A^{-1} x, den1 = 1 + x^T u, A' = A + x x^T: corr = u u^T / den1 = A^{-1} - "
       "A'^{-1} (so 0 <= corr <= A^{-1} <= I/lam, entries <= 1/lam) and gain = u / den1 = A'^{-1} x, "
       "|gain| <= 1/(2 sqrt(lam))",
       "A symmetric invertible 2 x 2 and 3 x 3, x symbolic (times det A det A', each identity is a polynomial "
       "one); |gain|^2 <= t / (lam (1 + t)^2) <= 1/(4 lam) with t = x^T A^{-1} x (A^{-1} <= I/lam on A^{-1/2} x)")
def domain_corr_gain():
    for d in (2, 3):
        A = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"a{min(i, j) + 1}{max(i, j) + 1}"))
        x = vector("x", d)
        adj, D = A.adjugate(), A.det()
        q = (x.T * adj * x)[0]                         # den1 = (D + q) / D
        A1 = A + x * x.T
        zero(sp.expand(A1.det() - (D + q)), f"d = {d}: det A' = det A + x^T adj(A) x", sp.expand)
        adj1 = A1.adjugate()
        # corr = adj x x^T adj / (D (D + q)) and A^{-1} - A'^{-1} = adj / D - adj' / (D + q)
        gap = adj * x * x.T * adj - (adj * (D + q) - D * adj1)
        # gain = adj x / (D + q) and A'^{-1} x = adj' x / (D + q)
        gain_gap = adj * x - adj1 * x
        for i in range(d):
            zero(sp.expand(gain_gap[i]), f"d = {d}: gain_{i} = (A'^{{-1}} x)_{i}", sp.expand)
            for j in range(d):
                zero(sp.expand(gap[i, j]), f"d = {d}: corr_{i}{j} = (A^{{-1}} - A'^{{-1}})_{i}{j}", sp.expand)
    # |gain|^2 = v^T A^{-1} v / (1 + |v|^2)^2 with v = A^{-1/2} x, |v|^2 = t, and v^T A^{-1} v <= t / lam:
    t = sp.Symbol("t", nonnegative=True)
    zero(sp.factor(1 / (4 * lam) - t / (lam * (1 + t) ** 2) - (1 - t) ** 2 / (4 * lam * (1 + t) ** 2)),
         "1/(4 lam) - t/(lam (1 + t)^2) is a square", sp.factor)


@proof("domain_sgd_contraction", "M = I - 2 alpha (x x^T + lam I) has |M| <= rho = max(|1 - 2 alpha lam|, "
       "|1 - 2 alpha (lam + R^2)|) for |x| <= R; rho <= 1 iff alpha (R^2 + lam) <= 1; n steps "
       "w' = M w + 2 alpha y x give |w_n| <= rho^n |w0| + 2 alpha Y R sum_{j<n} rho^j",
       "d = 2, x symbolic: M's eigenvectors x and x-perp; alpha, lam >= 0; the recurrence unrolled for n <= 4")
def domain_sgd_contraction():
    x = vector("x", 2)
    perp = sp.Matrix([-x[1], x[0]])
    M = sp.eye(2) - 2 * alpha * (x * x.T + lam * sp.eye(2))
    along, across = M * x - (1 - 2 * alpha * (lam + (x.T * x)[0])) * x, M * perp - (1 - 2 * alpha * lam) * perp
    for i in range(2):
        zero(sp.expand(along[i]), "M x = (1 - 2 alpha (lam + |x|^2)) x", sp.expand)
        zero(sp.expand(across[i]), "M x_perp = (1 - 2 alpha lam) x_perp", sp.expand)
    require(M.is_symmetric(), "M is symmetric, so |M| is its largest |eigenvalue|")
    # |1 - 2 alpha (lam + t)| is convex in t, so over t = |x|^2 in [0, R^2] it peaks at t = 0 or t = R^2.
    # rho <= 1: 1 - 2 alpha lam is in [1 - 2 alpha (lam + R^2), 1], so rho <= 1 iff 1 - 2 alpha (lam + R^2) >= -1.
    edge = 1 - 2 * alpha * (lam + R**2)
    zero(sp.simplify(edge.subs(alpha, 1 / (R**2 + lam)) + 1), "at alpha = 1/(R^2 + lam) the edge is -1")
    require(sp.diff(edge, alpha).is_negative, "the edge decreases with alpha")
    rho, w0, c = sp.symbols("rho w0 c", nonnegative=True)  # c = 2 alpha Y R
    bound = w0
    for n in range(1, 5):
        bound = rho * bound + c
        zero(sp.expand(bound - (rho**n * w0 + c * sum(rho**j for j in range(n)))), f"unrolled, n = {n}", sp.expand)


@proof("domain_ridge_columns", "in every column of ridge(d=2, n=2), after every update, Ainv is A^{-1} and w the "
       "ridge weights of at most n examples: (x_k, y_k) at y~ columns, (-x_k, 0) at x~ columns (w = 0)",
       "all inputs symbolic; checked in every state that follows a write of Ainv or w; |den1| = den1 because "
       "den1 = 1 + x^T Ainv_src x with Ainv_src such an A^{-1} (domain_inverse_bounds)")
def domain_ridge_columns():
    """The premise of ridge's ``theory``: so the bounds of ridge on at most n examples of the box cover every column.

    By induction over the instructions: a div's divisor is ``1 + x^T M x``
    with M an Ainv already checked, hence positive, so ``|den1|`` is replaced
    by ``den1`` from then on. Between the block's two last instructions a
    column's Ainv already has the new example and its w not yet: each
    register is checked on its own.
    """
    d, n = 2, 2
    X, y, xq, xs, ys, q = examples(d, n)
    program = programs.ridge(d, n, lam)
    layout = program.layout
    points = [*xs, q]                       # x~ column 2k sees -x_{k+1}: the same outer product
    labels = [*ys, 0]
    states = program.run(X, y, xq, trace=True)
    subsets = [s for r in range(n + 1) for s in combinations(range(n + 1), r)]
    positive: dict = {}

    def A(s):
        return lam * sp.eye(d) + sum((points[j] * points[j].T for j in s), sp.zeros(d, d))

    def register(H, name, c):
        return sp.Matrix([sp.cancel(v.subs(positive)) for v in H[layout.rows(name)][:, c]])

    def is_zero(matrix):
        return all(sp.cancel(sp.together(v)) == 0 for v in matrix)

    for k, ins in enumerate(program.instructions, start=1):
        if ins.divisor:
            H = states[k - 1]
            for c in range(2 * n + 1):
                den, x = H[layout.rows(ins.divisor)][0, c], register(H, "x", c)
                M = register(H, "Ainv_src", c).reshape(d, d)
                require(any(is_zero(M * A(s) - sp.eye(d)) for s in subsets), f"instruction {k}, column {c}: Ainv_src")
                require(is_zero([den.subs(positive) - 1 - (x.T * M * x)[0]]), f"instruction {k}, column {c}: den1")
                positive[sp.Abs(den)] = den
            continue
        if ins.writes not in ("Ainv", "w"):
            continue
        H = states[k]
        for c in range(2 * n + 1):
            if ins.writes == "Ainv":
                M = register(H, "Ainv", c).reshape(d, d)
                found = any(is_zero(M * A(s) - sp.eye(d)) for s in subsets)
            elif c % 2 == 0:  # x~ column: every example it has seen is (-x_k, 0)
                found = is_zero(register(H, "w", c))
            else:
                w = register(H, "w", c)
                found = any(is_zero(A(s) * w - sum((points[j] * labels[j] for j in s), sp.zeros(d, 1)))
                            for s in subsets if n not in s)
            require(found, f"after instruction {k} ({ins}), column {c}: {ins.writes} is not ridge's on a subset "
                           "of the examples")


@proof("domain_formulas", "the algorithms' theories (construct.programs) compute the bounds these lemmas give",
       "lam, alpha, X = x_max, Y = y_max, R = x_norm, w0 symbolic; d = 2, n = 3")
def domain_formulas():
    d, n = 2, 3
    box = domain.Box(d, X_MAX, Y_MAX, R)
    K = 1 / (2 * sp.sqrt(lam))
    W = sp.sqrt(n) * Y_MAX * K
    G = sp.Min(K, R / lam)
    expected = {
        "ridge": (programs.get("ridge").theory(d, n, lam, box), {
            "Ainv": 1 / lam, "u": R / lam, "den": R**2 / lam, "den1": 1 + R**2 / lam, "gain": G, "corr": sp.Min(
                1 / lam, G * R / lam), "w": W, "wx": R * W, "e": Y_MAX + R * W, "step": sp.Min(G * (Y_MAX + R * W),
                2 * W), "pred": R * W, "x": X_MAX, "x_in": X_MAX, "y_in": Y_MAX, "pos": 2 * n}, {"den1": 1}),
        "sherman_morrison_step": (programs.get("sherman_morrison_step").theory(d, lam, box), {
            "Ainv": 1 / lam, "u": X_MAX / lam, "uvT": X_MAX**2 / lam**2, "den1": 1 + R**2 / lam,
            "corr": sp.Min(1 / lam, X_MAX**2 / lam**2), "w": sp.Max(G, G * Y_MAX)}, {"den1": 1}),
    }
    w0 = np.array(list(vector("w0", d)), dtype=object)
    norm0 = sp.sqrt(sum(e**2 for e in w0))
    rho = sp.Max(sp.Abs(1 - 2 * alpha * lam), sp.Abs(1 - 2 * alpha * (lam + R**2)))
    radii = [norm0]
    for _ in range(n):
        radii.append(rho * radii[-1] + 2 * alpha * Y_MAX * R)
    Wsgd = sp.Max(*radii)
    expected["sgd"] = (programs.get("sgd").theory(d, n, alpha, lam, w0, box), {
        "w": Wsgd, "wx": R * Wsgd, "err": R * Wsgd + Y_MAX, "grad": X_MAX * (R * Wsgd + Y_MAX), "pen": lam * Wsgd,
        "gate": lam}, {})
    W1 = sp.Max(norm0, rho * norm0 + 2 * alpha * Y_MAX * R)
    expected["sgd_step"] = (programs.get("sgd_step").theory(d, alpha, lam, w0, box), {
        "w": W1, "g": X_MAX * (R * norm0 + Y_MAX) + lam * norm0, "pred": R * W1}, {})
    for name, (got, values, floors) in expected.items():
        for register, formula in values.items():
            zero(sp.simplify(got.values[register] - formula), f"{name}: bound of {register}")
        require(got.floors == floors, f"{name}: floors {got.floors} != {floors}")
