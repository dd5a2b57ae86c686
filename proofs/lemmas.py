"""The lemmas behind every approximate mechanism, proved symbolically.

Each proof states its hypotheses and conclusion and checks every algebraic
step with sympy (identities by simplification, series by expansion, sums in
closed form). The bound expressions at the bottom of each section are the
ones ``construct/compiler/scales.py`` computes; ``tests/test_proofs.py`` checks that
they agree.
"""

from __future__ import annotations

import sympy as sp
from sympy import Rational, exp, factorial, pi, sqrt

from .registry import proof, require, zero

a, b = sp.symbols("a b", real=True)
u, v, t = sp.symbols("u v t", real=True)
eps = sp.Symbol("epsilon", positive=True)  # 1/P
P, N, B, U = sp.symbols("P N B U", positive=True)
k = sp.Symbol("k", integer=True, nonnegative=True)


def Phi(z):
    return (1 + sp.erf(z / sqrt(2))) / 2


def phi(z):
    return exp(-(z**2) / 2) / sqrt(2 * pi)


def gelu(z):
    """The exact GeLU, z Phi(z)."""
    return z * Phi(z)


TANH_K = Rational(44715, 10**6)


def gelu_tanh(z):
    """The tanh approximation, z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) / 2."""
    return z * (1 + sp.tanh(sqrt(2 / pi) * (z + TANH_K * z**3))) / 2


def product(g, scale):
    """f_P(a, b) = sqrt(pi/2) P^2 [g((a+b)/P) - g(a/P) - g(b/P)], written with eps = 1/P."""
    e = 1 / scale
    return sqrt(pi / 2) * scale**2 * (g((a + b) * e) - g(a * e) - g(b * e))


def _series_coefficients(expr, order: int):
    expansion = sp.expand(sp.series(expr, eps, 0, order).removeO())
    return [sp.simplify(expansion.coeff(eps, j)) for j in range(order)]


def _product_remainder(g, leading):
    """f_P = ab + leading / P^2 + O(P^-4), and g(z) - z/2 is even (so the linear parts cancel for every P)."""
    zero(g(u) - u / 2 - (g(-u) + u / 2), "g(u) - u/2 is even")
    c0, c1, c2, c3 = _series_coefficients(product(g, 1 / eps), 4)
    zero(c0 - a * b, "leading term is ab")
    zero(c1, "no 1/P term")
    zero(c2 - leading, "the 1/P^2 term")
    zero(c3, "no 1/P^3 term")


@proof(
    "gelu_product_erf",
    "sqrt(pi/2) P^2 [gelu((a+b)/P) - gelu(a/P) - gelu(b/P)] = ab - (2a^3b + 3a^2b^2 + 2ab^3)/(6P^2) + O(P^-4)",
    "gelu(u) = u Phi(u) (erf form); a, b real; P -> oo",
)
def gelu_product_erf():
    _product_remainder(gelu, -(2 * a**3 * b + 3 * a**2 * b**2 + 2 * a * b**3) / 6)


@proof(
    "gelu_product_tanh",
    "the same with the tanh GeLU: ab + (k/2 - 1/(3 pi)) (4a^3b + 6a^2b^2 + 4ab^3)/P^2 + O(P^-4), k = 0.044715",
    "gelu(u) = u (1 + tanh(sqrt(2/pi)(u + k u^3)))/2; a, b real; P -> oo",
)
def gelu_product_tanh():
    _product_remainder(gelu_tanh, (TANH_K / 2 - 1 / (3 * pi)) * (4 * a**3 * b + 6 * a**2 * b**2 + 4 * a * b**3))


PRODUCT_BOUND = Rational(63, 10**4) / P**6  # the bound scales.product_truncation computes
RICHARDSON = ((1, Rational(1, 45)), (2, Rational(-20, 45)), (4, Rational(64, 45)))  # (scale multiple, weight)


def product_tail(scale):
    """Bound on sum_{k>=4} |r_k| P^{6-2k}: (2/405) P^6 (e^x - 1 - x - x^2/2 - x^3/6), x = 2/P^2."""
    x = 2 / scale**2
    return Rational(2, 405) * scale**6 * (exp(x) - 1 - x - x**2 / 2 - x**3 / 6)


@proof(
    "gelu_product_bound",
    "R_P = (f_P - 20 f_2P + 64 f_4P)/45 satisfies |R_P(a, b) - ab| <= 0.0063 / P^6",
    "erf GeLU; |a|, |b| <= 1; P >= 4",
)
def gelu_product_bound():
    # 1. The Taylor series of E(u) = gelu(u) - u/2 = u (Phi(u) - 1/2), term by term:
    #    Phi(u) - 1/2 = int_0^u phi, phi(t) = (2 pi)^{-1/2} sum_k (-t^2/2)^k / k!.
    zero(sp.integrate(phi(t), (t, 0, u)) - (Phi(u) - Rational(1, 2)), "Phi(u) - 1/2 = int_0^u phi")
    term = sp.integrate((-(t**2) / 2) ** k / factorial(k), (t, 0, u), conds="none")
    closed = (-Rational(1, 2)) ** k * u ** (2 * k + 1) / (factorial(k) * (2 * k + 1))
    zero(sp.simplify(term - closed), "int_0^u (-t^2/2)^k/k! dt", sp.simplify)
    E_k = u * closed / sqrt(2 * pi)  # E(u) = sum_k E_k
    series_E = sp.series(gelu(u) - u / 2, u, 0, 14).removeO()
    zero(sp.expand(series_E - sum(E_k.subs(k, j) for j in range(6))), "first six terms agree with sympy's series")
    # 2. The k-th term of f_P, and Richardson's factor rho_k = sum_m w_m m^(-2k) over the three scales.
    p_k = (a + b) ** (2 * k + 2) - a ** (2 * k + 2) - b ** (2 * k + 2)
    f_k = sqrt(pi / 2) * P**2 * E_k.subs(u, 1) * p_k / P ** (2 * k + 2)
    rho_k = (1 - 20 * 4 ** (-k) + 64 * 16 ** (-k)) / 45
    zero(sp.simplify(sum(w * m ** (-2 * k) for m, w in RICHARDSON) - rho_k), "rho_k in closed form")
    r_k = Rational(1, 2) * (-1) ** k / (2**k * factorial(k) * (2 * k + 1)) * p_k * rho_k
    zero(sp.simplify(sum(w * f_k.subs(P, m * P) for m, w in RICHARDSON) - r_k / P ** (2 * k)),
         "R_P = sum_k r_k / P^(2k)")
    zero(sp.expand(r_k.subs(k, 0) - a * b), "k = 0 gives ab")
    zero(r_k.subs(k, 1), "k = 1 cancels (Richardson)")
    zero(r_k.subs(k, 2), "k = 2 cancels (Richardson)")
    require(rho_k.subs(k, 3) == Rational(1, 64), "rho_3 = 1/64")
    # 3. |p_k| <= 2^(2k+2) - 2 on the square: binomial expansion and the triangle inequality.
    #    (sympy 1.14 sums binomial(m, j) over j = 1..m-1 to 2^m - 1, wrongly; we sum 0..m and drop the ends.)
    j, m = sp.symbols("j m", integer=True, positive=True)
    zero(sp.summation(sp.binomial(m, j), (j, 0, m)) - 2 - (2**m - 2), "sum of the inner binomials")
    r3_max = Rational(1, 2) / (8 * 6 * 7) * (2**8 - 2) * Rational(1, 64)
    require(r3_max == Rational(127, 21504), "|r_3| <= 127/21504 on the square")
    #    For k >= 4, 0 <= rho_k <= 1/45: 45 rho_k = 1 - 4^-k (20 - 64 4^-k), and as 4^-k <= 4^-4 falls,
    #    0 < 20 - 64 4^-k <= 20 and 20 4^-k <= 20/256 < 1.
    kk = sp.Symbol("k", integer=True, positive=True)
    zero(sp.simplify(45 * rho_k.subs(k, kk) - (1 - 4 ** (-kk) * (20 - 64 * 4 ** (-kk)))), "45 rho_k")
    require(20 - 64 * Rational(1, 4**4) > 0 and 20 * Rational(1, 4**4) < 1, "the bracket at k = 4")
    #    so |r_k| <= (1/2) 4^(k+1) / (2^k k! (2k+1)) / 45 <= 2^(k+1) / (405 k!) (2k+1 >= 9), and
    #    sum_{k>=4} |r_k| P^(6-2k) <= (2/405) sum_{k>=4} 2^k P^(6-2k) / k! = product_tail(P).
    x = sp.Symbol("x", positive=True)
    zero(sp.summation(x**k / factorial(k), (k, 4, sp.oo)) - (exp(x) - 1 - x - x**2 / 2 - x**3 / 6),
         "exponential tail")
    # 4. The tail is a power series in y = 1/P^2 with positive coefficients, hence falls as P grows,
    #    so at P >= 4 the total is at most 127/21504 + product_tail(4) < 0.0063.
    y = sp.Symbol("y", positive=True)
    zero(sp.simplify(product_tail(1 / sqrt(y)) - Rational(2, 405) * sp.summation(2**k * y ** (k - 3) / factorial(k),
                                                                                  (k, 4, sp.oo))),
         "tail as a series in y = 1/P^2 with positive coefficients")
    tail4 = product_tail(sp.Integer(4))
    require(tail4.evalf(30) < Rational(22, 10**5), f"tail at P = 4 is {tail4.evalf(6)}")
    require(Rational(127, 21504) + Rational(22, 10**5) < Rational(63, 10**4), "127/21504 + 0.00022 < 0.0063")


def bypass_bound(offset, reach):
    """(B - U) Phi(U - B): the lemma's bound on |gelu(B + u) - B - u| for |u| <= U."""
    return (offset - reach) * Phi(reach - offset)


@proof(
    "gelu_bypass",
    "|gelu(B + u) - (B + u)| <= (B - U) Phi(U - B)",
    "|u| <= U, B - U >= 1",
)
def gelu_bypass():
    # gelu(v) - v = -v Phi(-v) =: -h(v), and h >= 0 for v >= 0.
    zero(gelu(v) - v + v * Phi(-v), "gelu(v) - v = -v Phi(-v)")
    # Mills' ratio: m(v) = phi(v)/v - Phi(-v) has m' = -phi(v)/v^2 < 0 and m -> 0, so m > 0 for v > 0.
    vp = sp.Symbol("v", positive=True)
    m = phi(vp) / vp - Phi(-vp)
    zero(sp.diff(m, vp) + phi(vp) / vp**2, "m'(v) = -phi(v)/v^2")
    zero(sp.limit(m, vp, sp.oo), "m(v) -> 0 as v -> oo")
    # h'(v) = Phi(-v) - v phi(v) < phi(v)/v - v phi(v) = phi(v)(1 - v^2)/v <= 0 for v >= 1.
    h = vp * Phi(-vp)
    zero(sp.diff(h, vp) - (Phi(-vp) - vp * phi(vp)), "h'(v) = Phi(-v) - v phi(v)")
    zero(sp.simplify(phi(vp) / vp - vp * phi(vp) - phi(vp) * (1 - vp**2) / vp), "phi/v - v phi = phi (1 - v^2)/v")
    # So on v = B + u in [B - U, B + U], with B - U >= 1, h is largest at v = B - U.
    zero(h.subs(vp, B - U) - bypass_bound(B, U), "h(B - U) is the bound")


def leak_bound(sharpness):
    """2 e^-N / (1 - e^-N): the softmax mass off the selected token."""
    return 2 * exp(-sharpness) / (1 - exp(-sharpness))


@proof(
    "attention_selection",
    "keys [j, j^2], query N[2 tau, -1]: mass off j* = max(tau, 0) <= 2e^-N/(1 - e^-N); output off by <= 2 leak max|v|",
    "integer positions 0..i, integer tau <= i, N > 0, any length T",
)
def attention_selection():
    i_, j_, tau = sp.symbols("i j tau", integer=True)
    kk = sp.Symbol("k", integer=True, positive=True)
    # the score is -N (j - tau)^2 up to a term that does not depend on j
    zero(sp.expand(N * (2 * tau * j_ - j_**2) - (-N * (j_ - tau) ** 2 + N * tau**2)), "score")
    # gap to the selected token, at distance k = |j - j*| >= 1:
    #   tau >= 0 (j* = tau): (j - tau)^2 = k^2 >= k;   tau < 0 (j* = 0): j^2 - 2 j tau - 0 >= j = k.
    zero(sp.factor(kk**2 - kk) - kk * (kk - 1), "k^2 - k = k (k - 1) >= 0")
    s = sp.Symbol("s", positive=True)  # s = -tau > 0
    zero(sp.expand((j_ + s) ** 2 - s**2 - j_ - (j_**2 + 2 * j_ * s - j_)), "clamped gap - j = j^2 + 2 j s - j >= 0")
    # at most two tokens per distance, so the mass off j* is at most sum_k 2 q^k with q = e^-N in (0, 1)
    q = sp.Symbol("q", positive=True)
    total = sp.piecewise_fold(sp.summation(2 * q**kk, (kk, 1, sp.oo))).subs(q, exp(-N))
    zero(sp.simplify(total - leak_bound(N)), "geometric series (q = e^-N < 1)")
    T = sp.Symbol("T", integer=True, positive=True)
    finite = sp.summation(q**kk, (kk, 1, T - 1))
    require(isinstance(finite, sp.Piecewise) and finite.args[0][1] == sp.Eq(q, 1), "only q = 1 is special")
    zero(sp.simplify(2 * finite.args[-1][0].subs(q, exp(-N)) - leak_bound(N) * (1 - exp(-N * (T - 1)))),
         "finite length T (q = e^-N != 1)")


def _layer_norm_identity(m: int, scale):
    """Check N sqrt(2/D) w.(h - mean)/sqrt(var + e) = (w.v) / (|c| sqrt(1 + rho)) on m data rows."""
    vs = sp.symbols(f"v1:{m + 1}", real=True)
    ws = sp.symbols(f"w1:{m + 1}", real=True)
    e = sp.Symbol("e", positive=True)  # layer norm's epsilon
    D = m + 3  # data, the two pads, and a row of 0 whose weight makes the weights sum to zero
    w0 = -sum(ws)
    h = list(vs) + [N * scale, -N * scale, 0]
    w = list(ws) + [0, 0, w0]
    mean = sum(h) / D
    var = sum((x - mean) ** 2 for x in h) / D
    rho = (sum(x**2 for x in vs) - D * mean**2 + D * e) / (2 * N**2 * scale**2)
    lhs = N * sqrt(Rational(2, D)) * sum(wi * (hi - mean) for wi, hi in zip(w, h)) / sqrt(var + e)
    rhs = sum(wi * x for wi, x in zip(ws, vs)) / (sp.Abs(scale) * sqrt(1 + rho))
    zero(sp.simplify(lhs**2 - rhs**2), f"identity squared, m = {m}")
    # both sides are (w.v) times a positive number, so equal squares mean equal values
    zero(sp.simplify(lhs / sum(wi * x for wi, x in zip(ws, vs)) - sp.Abs(lhs / sum(wi * x for wi, x in zip(ws, vs)))),
         f"left side is (w.v) times a positive number, m = {m}")
    # 0 <= rho: sum v^2 - D mean^2 >= 0 by Lagrange's identity, m sum v^2 - (sum v)^2 = sum_{i<j} (v_i - v_j)^2
    lagrange = m * sum(x**2 for x in vs) - sum(vs) ** 2 - sum((vs[i] - vs[j]) ** 2 for i in range(m)
                                                             for j in range(i + 1, m))
    zero(sp.expand(lagrange), f"Lagrange's identity, m = {m}")
    # and the remainder of order (|v|/N)^2, with its coefficient
    r = sp.Symbol("rho", positive=True)
    zero(sp.series(1 / sqrt(1 + r), r, 0, 2).removeO() - (1 - r / 2), "(1 + rho)^(-1/2) = 1 - rho/2 + O(rho^2)")


def rho_bound(sum_sq, width, ln_eps, pad, floor=1):
    """(sum v^2 + D ln_eps) / (2 N^2 c^2): the lemmas' bound on rho."""
    return (sum_sq + width * ln_eps) / (2 * pad**2 * floor**2)


@proof(
    "layer_norm_bypass",
    "N sqrt(2/D) w.LN(v, N, -N) = (w.v)(1 - rho/2 + O(rho^2)), 0 <= rho <= (|v|^2 + D e)/(2N^2)",
    "weights w summing to 0 over the rows and 0 on the pads; layer norm eps e > 0; m = 1..4 data rows",
)
def layer_norm_bypass():
    for m in range(1, 5):
        _layer_norm_identity(m, sp.Integer(1))


@proof(
    "layer_norm_division",
    "N sqrt(2/D) w.LN(v, Nc, -Nc) = (w.v)/|c| (1 - rho/2 + O(rho^2)), 0 <= rho <= (|v|^2 + D e)/(2N^2c^2)",
    "c real, c != 0; weights as in layer_norm_bypass; rho <= target needs N|c| >= sqrt((|v|^2 + D e)/(2 target))",
)
def layer_norm_division():
    c = sp.Symbol("c", real=True, nonzero=True)
    for m in range(1, 4):
        _layer_norm_identity(m, c)
