"""The programs compute the theorems: the exact machine on symbolic prompts against the formulas.

These run the very programs the tests run (``construct.programs``), with
every input and parameter a sympy symbol, through the very machine
(``construct.raw.machine``), and compare with the formulas written here from
docs/CONSTRUCTION.md sections 6-8.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import sympy as sp

from construct import programs
from construct.raw.prompt import POS, X_IN, Y_IN

from .algebra import matrices, noncommutative_zero, transpose
from .lifted import Lifted, same_program
from .registry import proof, require, zero

alpha = sp.Symbol("alpha", real=True)
lam = sp.Symbol("lam", positive=True)


def vector(name: str, d: int) -> sp.Matrix:
    return sp.Matrix(sp.symbols(f"{name}_1:{d + 1}", real=True))


def examples(d: int, n: int):
    """Symbolic X (n x d), y (n), x_query (d) as numpy object arrays, and the same as sympy matrices."""
    xs = [vector(f"x{k}", d) for k in range(1, n + 1)]
    ys = list(sp.symbols(f"y1:{n + 1}", real=True))
    xq = vector("q", d)
    X = np.array([[e for e in x] for x in xs], dtype=object)
    return X, np.array(ys, dtype=object), np.array(list(xq), dtype=object), xs, ys, xq


def sgd_update(w, x, y):
    """Theorem 1's step on the loss (w^T x - y)^2 + lam |w|^2."""
    return w - 2 * alpha * (x * ((x.T * w)[0] - y) + lam * w)


def ridge_weights(xs, ys, d):
    """(X^T X + lam I)^{-1} X^T y on the given examples."""
    A = lam * sp.eye(d)
    rhs = sp.zeros(d, 1)
    for x, y in zip(xs, ys):
        A += x * x.T
        rhs += x * y
    return A.inv() * rhs


# the chains on registers of any size (lifted.py): the prompt x~_1, y~_1, x~_2 with vectors x1, q of any size d
x1, x1T, q, qT, w0, w0T = matrices("x1 x1T q qT w0 w0T")
y1 = sp.Symbol("y1", real=True)
PROMPT = [{Y_IN: 0, X_IN: x1, POS: 0}, {Y_IN: y1, X_IN: 0, POS: 1}, {Y_IN: 0, X_IN: q, POS: 2}]
LIFTED_AT = (2, 3, 4)


def lifted_chain(build, parameters=None) -> Lifted:
    """The chain ``build(d)`` lifted to registers of any size, required to be the same at every d of LIFTED_AT."""
    found = [Lifted(build(d), parameters, vectors=((x1, x1T), (q, qT))) for d in LIFTED_AT]
    require(all(same_program(found[0], other) for other in found[1:]),
            f"the chain lifted at d = {LIFTED_AT} is not one register-level program")
    return found[0]


@proof("theorem1_sgd_step", "the 9-instruction chain predicts w1^T x2, w1 = w0 - 2 alpha (x1 (x1^T w0 - y1) + lam w0)",
       "any d: the chain on registers of any size (lifted.py: x1, x2, w0 vectors, alpha, lam, y1 scalars, "
       "x1^T w0 = w0^T x1 a scalar; the chain lifts to one register-level program at d = 2, 3, 4); and on rows, "
       "the exact machine on symbols, at d = 1, 2, 3")
def theorem1_sgd_step():
    """Instruction by instruction, at the y~ column: ``x = x1``, ``wx = w0^T x1 = t``, ``err = t - y1``,
    ``grad = x1 (t - y1)``, ``w = w0``, ``g = grad + lam w0``, ``w = w0 - 2 alpha g``; the mov takes that w to
    the query column, where ``pred = w^T x2``: the stated ``w1^T x2``, for every d."""
    for d in (1, 2, 3):
        X, y, xq, xs, ys, q_ = examples(d, 1)
        w0_ = vector("w0", d)
        pred = programs.sgd_step(d, alpha, lam, np.array(list(w0_), dtype=object)).predict(X, y, xq)[-1]
        zero(sp.expand(pred - (sgd_update(w0_, xs[0], ys[0]).T * q_)[0]), f"d = {d}", sp.expand)
    chain = lifted_chain(lambda d: programs.sgd_step(d, alpha, lam, np.array(list(vector("w0", d)), dtype=object)),
                         {"w0": (w0, w0T)})
    t = sp.Symbol("t", real=True)
    scalars = {w0T * x1: t, x1T * w0: t}
    pred = chain.run(PROMPT, scalars)[-1][2]["pred"].expr
    w1 = w0 - 2 * alpha * (x1 * (x1T * w0 - y1) + lam * w0)
    noncommutative_zero(pred - transpose(w1, chain.transposes) * q, scalars, "any d: the query's prediction")


@proof("theorem2_sherman_morrison_step", "the 14-instruction chain predicts ((lam I + x1 x1^T)^{-1} x1 y1)^T x2",
       "any d: the chain on registers of any size (lifted.py: x1, x2 vectors, lam > 0, y1 scalars, x1^T x1 = s >= 0; "
       "the chain lifts to one register-level program at d = 2, 3, 4); and on rows, the exact machine on symbols, "
       "at d = 1, 2, 3")
def theorem2_sherman_morrison_step():
    """Instruction by instruction, at the y~ column: ``u = x1/lam``, ``vT = x1^T/lam``, ``den = s/lam``,
    ``den1 = 1 + s/lam > 0`` (so ``|den1| = den1``), ``Ainv = I/lam - x1 x1^T / (lam^2 den1)``, and ``w = Ainv x1
    y1`` with ``(lam I + x1 x1^T) w = x1 y1``: w is ``A1^-1 x1 y1``, A1 = lam I + x1 x1^T being positive definite.
    The mov takes w to the query column, where ``pred = w^T x2``."""
    for d in (1, 2, 3):
        X, y, xq, xs, ys, q_ = examples(d, 1)
        pred = programs.sherman_morrison_step(d, lam).predict(X, y, xq)[-1]
        require(not pred.has(sp.Abs), "|den1| = den1 (1 + |x|^2/lam > 0 is known to sympy)")
        zero(sp.cancel(pred - (ridge_weights(xs, ys, d).T * q_)[0]), f"d = {d}", sp.cancel)
    chain = lifted_chain(lambda d: programs.sherman_morrison_step(d, lam))
    s = sp.Symbol("s", nonnegative=True)
    states = chain.run(PROMPT, {x1T * x1: s})
    require(not any(column[reg].expr.has(sp.Abs) for state in states for column in state for reg in column),
            "|den1| = den1 in every column (1 + s/lam > 0)")
    w = states[-3][1]["w"]  # at the y~ column, before the mov
    require(w.shape == ("d", 1), f"w is a d-vector, got shape {w.shape}")
    noncommutative_zero((lam + x1 * x1T) * w.expr - x1 * y1, {x1T * x1: s}, "any d: (lam I + x1 x1^T) w = x1 y1")
    pred = states[-1][2]["pred"].expr
    noncommutative_zero(pred - transpose(w.expr, chain.transposes) * q, {}, "any d: pred = w^T x2 at the query")


@proof("sherman_morrison_identity", "(A + u v^T)^{-1} = A^{-1} - A^{-1} u v^T A^{-1} / (1 + v^T A^{-1} u)",
       "A invertible, u and v vectors, of any size d (the free algebra: v^T A^{-1} u a scalar s), 1 + s != 0")
def sherman_morrison_identity():
    """Multiplying the claimed inverse by ``A + u v^T`` gives ``I + u v^T A^-1 (1 - 1/(1 + s) - s/(1 + s)) = I``."""
    A, Ai, u, vT = matrices("A Ai u vT")
    s = sp.Symbol("s")
    claimed = Ai - Ai * u * vT * Ai / (1 + s)
    noncommutative_zero((A + u * vT) * claimed - 1, {A * Ai: 1, Ai * A: 1, vT * Ai * u: s}, "(A + u v^T) times it")


@proof("rls_identity", "A^{-1} b updated by an example (x, y) is w + u e / den: "
       "(A + x x^T)^{-1} (b + x y) = w + u (y - w^T x) / (1 + x^T u), w = A^{-1} b, u = A^{-1} x",
       "A symmetric invertible, b, x of any size d, y a scalar (the free algebra: x^T A^-1 x = s and x^T A^-1 b = "
       "t scalars), 1 + s != 0")
def rls_identity():
    """The step ridge's program takes: recursive least squares is Sherman-Morrison applied to A^{-1} b.

    Derivation. Write ``A' = A + x x^T``. By Sherman-Morrison (``u = A^-1 x``,
    ``den = 1 + x^T u``), ``A'^-1 = A^-1 - u u^T / den`` (``A^-1`` is symmetric,
    so ``x^T A^-1 = u^T``), and the gain ``g = A'^-1 x = u - u (x^T u) / den =
    u / den``. Then ``A'^-1 (b + x y) = A^-1 b - u (u^T b) / den + g y = w +
    u (y - x^T w) / den``, since ``u^T b = x^T A^-1 b = x^T w``. The check
    multiplies the claimed update by ``A'`` and finds ``b + x y``: it is
    ``(A + x x^T)^{-1} (b + x y)``, the ridge weights with the example added.
    """
    A, Ai, b, x, xT = matrices("A Ai b x xT")
    y, s, t = sp.symbols("y s t")
    w, u = Ai * b, Ai * x
    claimed = w + u * (y - t) / (1 + s)  # e = y - w^T x = y - x^T A^-1 b = y - t
    noncommutative_zero((A + x * xT) * claimed - (b + x * y), {A * Ai: 1, Ai * A: 1, xT * Ai * x: s, xT * Ai * b: t},
                        "(A + x x^T) times the update")


@proof("newton_schulz_product",
       "P_m = sum_{j<m} R^j has P_m (I - R) = I - R^m and P_{2m} = P_m (I + R^m); with R = I - c A: c P_m A = "
       "I - R^m, so c P_m b = (I - R^m) A^-1 b; X = c P_m is the Newton-Schulz iterate (X (2I - A X) = c P_{2m}); "
       "the refinement w = 2 w1 - c P_m A w1 of w1 = c P_m b is (I - R^{2m}) A^-1 b, and (I - F^2) A^-1 b when "
       "the computed c P_m A is I - F",
       "R a square matrix of any size and m >= 0 (every matrix here is a polynomial in R, and polynomials in one "
       "matrix commute: the identities of polynomials in one commuting r; with F, polynomials in F); I - R = c A "
       "invertible for the last four")
def newton_schulz_product():
    """The loop of ``programs.ridge_newton``: one step ``R <- R R``, ``P <- P (I + R)`` doubles the sum's length.

    Telescoping, by induction on m: ``P_0 (1 - r) = 0 = 1 - r^0`` and
    ``P_{m+1} (1 - r) = (P_m + r^m)(1 - r) = 1 - r^m + r^m - r^(m+1)``.
    Doubling: ``P_{2m} = P_m + r^m P_m`` (the terms ``j >= m`` are ``r^m``
    times those below m), checked here as the difference of the two sums of
    ``j < 2m``, term by term. With ``1 - r = c A``: ``c P_m A = 1 - r^m``.
    """
    r, c, a = sp.symbols("r c a")
    m, j = sp.symbols("m j", integer=True, nonnegative=True)
    P = sp.Function("P")
    zero((0 * (1 - r)) - (1 - r**0), "m = 0: the empty sum")
    zero(sp.expand((P(m) + r**m) * (1 - r) - (1 - r**(m + 1)) - (P(m) * (1 - r) - (1 - r**m))),
         "the step m -> m + 1 keeps P_m (1 - r) - (1 - r^m)")
    upper = sp.Sum(r**(j + m), (j, 0, m - 1))                # the terms m <= j < 2m, shifted
    zero(sp.simplify(upper.doit() - (r**m * sp.Sum(r**j, (j, 0, m - 1))).doit()), "the upper half is r^m P_m")
    for count in range(0, 9):  # and the closed forms agree at the sizes the loop starts from
        Pm = sum((r**k for k in range(count)), sp.Integer(0))
        P2m = sum((r**k for k in range(2 * count)), sp.Integer(0))
        zero(sp.expand(Pm * (1 + r**count) - P2m), f"P_{2 * count} = P_{count} (1 + r^{count})")
        zero(sp.expand(Pm * (1 - r) - (1 - r**count)), f"P_{count} (1 - r) = 1 - r^{count}")
    zero(sp.expand((1 - (1 - c * a)**4) - c * a * sum(((1 - c * a)**k for k in range(4)), sp.Integer(0))),
         "r = 1 - c a, m = 4: c P_m a = 1 - r^m")
    # with c a = 1 - r and c P_m a = 1 - r^m, every m: the iterate and the refinement, as functions of r^m
    rm, f = sp.symbols("r_m f")
    X = (1 - rm) / a  # c P_m, from c P_m a = 1 - r^m
    zero(sp.simplify(X * (2 - a * X) - (1 - rm**2) / a), "X (2 - a X) = c P_2m: (1 - r^2m)/a")
    w1 = (1 - rm)  # w1 = c P_m b = (1 - r^m) w*, in units of w* = b/a
    zero(sp.expand(2 * w1 - (1 - rm) * w1 - (1 - rm**2)), "2 w1 - c P_m a w1 = (1 - r^2m) w*")
    zero(sp.expand(2 * (1 - f) - (1 - f) ** 2 - (1 - f**2)), "with c P a = 1 - f: 2 w1 - (1 - f) w1 = (1 - f^2) w*")


@proof("newton_schulz_convergence",
       "for c = 1/Lam and A symmetric with eigenvalues in [mu, Lam], mu > 0: R = I - c A has eigenvalues in "
       "[0, 1 - 1/kappa], kappa = Lam/mu, so |(I - R^m) w - w| <= (1 - 1/kappa)^m |w| <= exp(-m/kappa) |w| <= eps |w| "
       "once m >= kappa ln(1/eps); and |P_m|_2 <= min(m, kappa); A' = (lam I + S_k)/(i + 1) with k <= (i + 1)/2 "
       "examples of norm <= R has Lam = lam + R^2/2",
       "lam > 0, 0 < eps < 1, m >= 1; the eigenvalue inequalities in one variable (a symmetric matrix acts on its "
       "eigenvectors one by one)")
def newton_schulz_convergence():
    x, rho = sp.symbols("x rho", nonnegative=True)
    # 1 - x <= exp(-x): f = exp(-x) - (1 - x) has f(0) = 0 and f' = 1 - exp(-x) >= 0 for x >= 0
    f = sp.exp(-x) - (1 - x)
    zero(f.subs(x, 0), "f(0) = 0")
    zero(sp.diff(f, x) - (1 - sp.exp(-x)), "f' = 1 - exp(-x), >= 0 for x >= 0")
    # so (1 - 1/kappa)^m <= exp(-m/kappa), and exp(-m/kappa) <= eps iff m >= kappa ln(1/eps)
    kappa, eps = sp.symbols("kappa epsilon", positive=True)
    zero(sp.simplify(sp.exp(-(kappa * sp.log(1 / eps)) / kappa) - eps), "m = kappa ln(1/eps) gives exactly eps")
    # P_m's eigenvalue sum_{j<m} rho^j, rho in [0, 1 - 1/kappa]: each term <= 1 (so <= m) and (1 - rho^m)/(1 - rho)
    # <= 1/(1 - rho) <= kappa
    # sum_{j<m} rho^j (1 - rho) = 1 - rho^m for every m >= 1, by induction: true at m = 1, and
    # S_{m+1} (1 - rho) = S_m (1 - rho) + rho^m (1 - rho), with S_m (1 - rho) = 1 - rho^m
    zero(sp.expand(rho**0 * (1 - rho) - (1 - rho**1)), "the geometric sum's closed form at m = 1")
    m = sp.Symbol("m", integer=True, positive=True)
    zero(sp.expand((1 - rho**m) + rho**m * (1 - rho) - (1 - rho**(m + 1))),
         "the closed form at m gives it at m + 1")
    require(sp.simplify(1 / (1 - (1 - 1 / kappa)) - kappa) == 0, "1/(1 - rho) at rho = 1 - 1/kappa is kappa")
    # the spectrum: R = I - A/Lam has eigenvalue 1 - lambda/Lam in [0, 1 - mu/Lam] for lambda in [mu, Lam]
    lam_, mu, Lam = sp.symbols("lambda mu Lam", positive=True)
    zero(sp.simplify((1 - mu / Lam) - (1 - 1 / (Lam / mu))), "1 - mu/Lam = 1 - 1/kappa")
    # Lam: lam + R^2/2 - (lam + k R^2)/(i + 1) >= 0 with i + 1 = 2k + s, s >= 0 (column 0: k = 0, i = 0)
    k, s, Rn = sp.symbols("k s R", nonnegative=True)
    gap = sp.together(lam + Rn**2 / 2 - (lam + k * Rn**2) / (2 * k + s))
    zero(sp.simplify(gap - (2 * lam * (2 * k + s - 1) + Rn**2 * s) / (2 * (2 * k + s))),
         "lam + R^2/2 - (lam + k R^2)/(i + 1) = (2 lam i + R^2 s) / (2 (i + 1)), >= 0 for i >= 0, s >= 0")
    i_ = sp.Symbol("i", nonnegative=True)
    require(bool((2 * lam * i_ + Rn**2 * s).is_nonnegative) and bool((2 * (i_ + 1)).is_positive),
            "(2 lam i + R^2 s) / (2 (i + 1)) >= 0 for i, s >= 0")


@proof("sgd_program", "sgd(d=2, n) predicts with one-pass SGD at every prefix", "n = 2, 3; all inputs symbolic")
def sgd_program():
    d = 2
    for n in (2, 3):
        X, y, xq, xs, ys, q = examples(d, n)
        w0 = vector("w0", d)
        preds = programs.sgd(d, n, alpha, lam, np.array(list(w0), dtype=object)).predict(X, y, xq)
        w = w0
        for k, x_next in enumerate([*xs, q]):
            zero(sp.expand(preds[k] - (w.T * x_next)[0]), f"n = {n}, prefix {k}", sp.expand)
            if k < n:
                w = sgd_update(w, xs[k], ys[k])


@proof("ridge_program", "ridge(d=2, n=2) (recursive least squares) predicts with (X^T X + lam I)^{-1} X^T y at "
       "every prefix", "lam > 0; all inputs symbolic; every divisor is 1 + x^T M x with M = (lam I + sum of x_j "
       "x_j^T)^{-1}")
def ridge_program():
    d, n = 2, 2
    X, y, xq, xs, ys, q = examples(d, n)
    program = programs.ridge(d, n, lam)
    layout = program.layout
    states = program.run(X, y, xq, trace=True)
    # |den1| = den1: in every column the divisor is 1 + x^T M x with M^{-1} = lam I + (some x_j x_j^T),
    # which is symmetric positive definite, so the divisor is at least 1.
    outer = [x * x.T for x in xs]
    sums = [sum((outer[j] for j in subset), sp.zeros(d, d)) for r in range(n + 1) for subset in combinations(range(n), r)]
    positive = {}
    for k, ins in enumerate(program.instructions):
        if not ins.divisor:
            continue
        H = states[k]
        for c in range(H.shape[1]):
            den = H[layout.rows(ins.divisor)][0, c]
            x = sp.Matrix(H[layout.rows("x")][:, c])
            M = sp.Matrix(d, d, list(H[layout.rows("Ainv_src")][:, c]))
            zero(sp.cancel(den - 1 - (x.T * M * x)[0]), f"divisor of column {c} is 1 + x^T M x", sp.cancel)
            inverse = sp.simplify(M.inv() - lam * sp.eye(d))
            require(any(sp.simplify(inverse - S) == sp.zeros(d, d) for S in sums),
                    f"column {c}: M^-1 - lam I is not a sum of the examples' x x^T")
            positive[sp.Abs(den)] = den
    preds = [sp.cancel(p.subs(positive)) for p in program.read(states[-1])]
    for k, x_next in enumerate([*xs, q]):
        zero(sp.cancel(preds[k] - (ridge_weights(xs[:k], ys[:k], d).T * x_next)[0]), f"prefix {k}", sp.cancel)
