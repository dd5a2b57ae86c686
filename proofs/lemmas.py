"""The lemmas behind every approximate mechanism, proved symbolically.

Each proof states its hypotheses and conclusion and checks every algebraic
step with sympy (identities by simplification, series by expansion, sums in
closed form; an inequality as a sum of terms sympy's assumptions know are
non-negative, or by the sign of a derivative). The few steps sympy cannot
check -- the triangle inequality, a falling function staying above its
limit, the mean value theorem, bounding an integral by its integrand -- are
said to be arguments where they are used. The bound expressions at the
bottom of each section are the ones ``construct/mechanisms/scales.py``
computes; ``tests/proof/test_proofs.py`` checks that they agree.
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
    # 3. |p_k| <= 2^(2k+2) - 2 on the square. The binomial theorem (sympy sums the expansion to (a+b)^n; its
    #    closed form is stated for |a| <= |b|, and p_k is symmetric in a and b) leaves the terms j = 1..n-1 of
    #    (a+b)^n; on the square each is at most binomial(n, j) in absolute value, and by the triangle inequality
    #    (an argument, not a sympy step) |p_k| is at most their sum, 2^n - 2.
    j, n = sp.symbols("j n", integer=True, positive=True)
    expansion = sp.summation(sp.binomial(n, j) * a**j * b ** (n - j), (j, 0, n))
    require(isinstance(expansion, sp.Piecewise) and expansion.args[0][1] == (sp.Abs(a / b) <= 1),
            f"sympy's binomial sum is {expansion}")
    zero(sp.powsimp(expansion.args[0][0], force=True) - (a + b) ** n, "binomial theorem (n an integer)")
    #    (sympy 1.14 sums binomial(n, j) over j = 1..n-1 to 2^n - 1, wrongly; we sum 0..n and drop the ends.)
    zero(sp.summation(sp.binomial(n, j), (j, 0, n)) - 2 - (2**n - 2), "sum of the inner binomials")
    #    The first surviving term: r_3 = c_3 p_3 with c_3 = -1/43008, so |r_3| <= 254/43008 = 127/21504.
    c_3 = sp.simplify(r_k.subs(k, 3) / p_k.subs(k, 3))
    require(c_3 == -Rational(1, 43008), f"r_3 / p_3 = {c_3}")
    require(abs(c_3) * (2**8 - 2) == Rational(127, 21504), "|r_3| <= 127/21504 on the square")
    #    For k >= 4, 0 < rho_k < 1/45: 45 rho_k = q(x) = 1 - 20x + 64x^2 at x = 4^-k in (0, 1/256], where
    #    q' = 128x - 20 < 0 (q' rises to q'(1/256) < 0), so q falls from q(0) = 1 to q(1/256) > 0.
    kk, x = sp.Symbol("k", integer=True, positive=True), sp.Symbol("x", positive=True)
    q_x = 1 - 20 * x + 64 * x**2
    zero(sp.simplify(45 * rho_k.subs(k, kk) - q_x.subs(x, 4 ** (-kk))), "45 rho_k = q(4^-k)")
    zero(sp.diff(q_x, x) - (128 * x - 20), "q' = 128 x - 20")
    x4 = Rational(1, 4**4)
    require(128 * x4 - 20 < 0 and q_x.subs(x, 0) == 1 and 0 < q_x.subs(x, x4) < 1, "q on (0, 1/256]")
    #    so |r_k| = |p_k| rho_k / (2^(k+1) k! (2k+1)) <= 4^(k+1) / (45 2^(k+1) k! (2k+1)) <= 2^(k+1) / (405 k!)
    #    (2k + 1 >= 9 for k = 4 + s, s >= 0).
    zero(sp.simplify(r_k - (-1) ** k * p_k * rho_k / (2 ** (k + 1) * factorial(k) * (2 * k + 1))), "r_k's factors")
    zero(sp.simplify(4 ** (kk + 1) / (45 * 2 ** (kk + 1) * factorial(kk) * (2 * kk + 1))
                     - 9 / (2 * kk + 1) * 2 ** (kk + 1) / (405 * factorial(kk))), "the k-th bound")
    s = sp.Symbol("s", integer=True, nonnegative=True)
    require((2 * (4 + s) + 1 - 9).is_nonnegative, "2k + 1 >= 9 for k >= 4")
    # 4. So sum_{k>=4} |r_k| P^(6-2k) <= (2/405) sum_{k>=4} 2^k y^(k-3) / k! with y = 1/P^2, which is
    #    product_tail(P): a power series in y with positive coefficients, hence falling as P grows, so at P >= 4
    #    the total is at most 127/21504 + product_tail(4) < 0.0063.
    y = sp.Symbol("y", positive=True)
    zero(sp.simplify(2 ** (k + 1) / (405 * factorial(k)) * P ** (6 - 2 * k)
                     - (Rational(2, 405) * 2**k * y ** (k - 3) / factorial(k)).subs(y, 1 / P**2)), "the k-th term in y")
    zero(sp.simplify(product_tail(1 / sqrt(y)) - Rational(2, 405) * sp.summation(2**k * y ** (k - 3) / factorial(k),
                                                                                  (k, 4, sp.oo))),
         "the sum is product_tail(P)")
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
    # gelu(v) - v = -v Phi(-v) =: -h(v), and h >= 0 for v >= 0, Phi(-v) being the integral of the positive phi
    # over (-oo, -v]; so |gelu(v) - v| = h(v).
    zero(gelu(v) - v + v * Phi(-v), "gelu(v) - v = -v Phi(-v)")
    vp = sp.Symbol("v", positive=True)
    h = vp * Phi(-vp)
    zero(sp.integrate(phi(t), (t, -sp.oo, -vp)) - Phi(-vp), "Phi(-v) = int_-oo^-v phi")
    require(phi(t).is_positive, "phi > 0")
    # Mills' ratio: m(v) = phi(v)/v - Phi(-v) has m' = -phi(v)/v^2 < 0 and m -> 0 as v -> oo, so m > 0 for
    # v > 0 (a strictly falling function with limit 0 stays above it: the one step here that is an argument).
    m = phi(vp) / vp - Phi(-vp)
    zero(sp.diff(m, vp) + phi(vp) / vp**2, "m'(v) = -phi(v)/v^2")
    require((-phi(vp) / vp**2).is_negative, "-phi(v)/v^2 < 0")
    zero(sp.limit(m, vp, sp.oo), "m(v) -> 0 as v -> oo")
    # h'(v) = Phi(-v) - v phi(v) < phi(v)/v - v phi(v) = phi(v)(1 - v^2)/v, and for v = 1 + s (s >= 0)
    # (1 - v^2)/v = -s(2 + s)/(1 + s) <= 0: h falls on [1, oo).
    zero(sp.diff(h, vp) - (Phi(-vp) - vp * phi(vp)), "h'(v) = Phi(-v) - v phi(v)")
    zero(sp.simplify(phi(vp) / vp - vp * phi(vp) - phi(vp) * (1 - vp**2) / vp), "phi/v - v phi = phi (1 - v^2)/v")
    s = sp.Symbol("s", nonnegative=True)
    zero(sp.simplify((1 - (1 + s) ** 2) / (1 + s) + s * (2 + s) / (1 + s)), "(1 - v^2)/v at v = 1 + s")
    require((-s * (2 + s) / (1 + s)).is_nonpositive, "-s(2 + s)/(1 + s) <= 0")
    # So on v = B + u in [B - U, B + U], with B - U >= 1, h is largest at v = B - U.
    zero(h.subs(vp, B - U) - bypass_bound(B, U), "h(B - U) is the bound")


def slope_near_zero(reach):
    """1/2 + sqrt(2/pi) Z: lemma gelu_slope's bound on |gelu'| over |z| <= Z."""
    return Rational(1, 2) + sqrt(2 / pi) * reach


def size_near_zero(reach):
    """Z (1/2 + Z/sqrt(2 pi)): lemma gelu_slope's bound on |gelu(z)| over |z| <= Z."""
    return reach * (Rational(1, 2) + reach / sqrt(2 * pi))


SLOPE = Rational(5, 4)  # lemma gelu_slope: |gelu'| <= 1 + phi(1) < 5/4 everywhere


@proof(
    "gelu_slope",
    "|gelu'(z)| <= 1/2 + sqrt(2/pi)|z| and <= 1 + phi(1) < 5/4; |gelu(z)| <= |z|(1/2 + |z|/sqrt(2 pi)) and <= |z|",
    "z real; so |gelu(z') - gelu(z)| <= (1/2 + sqrt(2/pi) Z)|z' - z| for |z|, |z'| <= Z (mean value theorem)",
)
def gelu_slope():
    z = sp.Symbol("z", real=True)
    zero(sp.diff(gelu(z), z) - (Phi(z) + z * phi(z)), "gelu' = Phi + z phi")
    # 0 < phi(t) <= phi(0): phi(t)/phi(0) = exp(-t^2/2) with a non-positive exponent.
    zero(sp.simplify(phi(t) / phi(0) - exp(-(t**2) / 2)), "phi(t)/phi(0)")
    require((-(t**2) / 2).is_nonpositive, "-t^2/2 <= 0")
    # Phi(z) - 1/2 = int_0^z phi, so |Phi(z) - 1/2| <= |z| phi(0) (an integral of at most phi(0) over a length
    # |z|: an argument); also |z phi(z)| <= |z| phi(0), and 0 < Phi(z) = 1 - Phi(-z) < 1 (Phi(+-z) integrate phi > 0
    # over a half-line), so |gelu(z)| = |z| Phi(z) <= |z|.
    zero(sp.integrate(phi(t), (t, 0, z)) - (Phi(z) - Rational(1, 2)), "Phi(z) - 1/2 = int_0^z phi")
    zero(sp.integrate(phi(t), (t, -sp.oo, z)).rewrite(sp.erf) - Phi(z), "Phi(z) = int_-oo^z phi")
    zero(Phi(z) + Phi(-z) - 1, "Phi(z) + Phi(-z) = 1")
    zero(2 * phi(0) - sqrt(2 / pi), "2 phi(0) = sqrt(2/pi)")
    zero(slope_near_zero(sp.Abs(z)) - (Rational(1, 2) + 2 * phi(0) * sp.Abs(z)), "near zero: 1/2 + 2 phi(0)|z|")
    zero(size_near_zero(sp.Abs(z)) - sp.Abs(z) * (Rational(1, 2) + phi(0) * sp.Abs(z)), "|z| Phi(z) bound")
    # Everywhere: |z phi(z)| <= phi(1). (t phi)' = (1 - t^2) phi is >= 0 on [0, 1] (t = 1/(1 + s)) and <= 0 on
    # [1, oo) (t = 1 + s), and t phi(t) is odd.
    tp, s = sp.Symbol("t", positive=True), sp.Symbol("s", nonnegative=True)
    zero(sp.diff(tp * phi(tp), tp) - (1 - tp**2) * phi(tp), "(t phi)' = (1 - t^2) phi")
    require(sp.factor(1 - 1 / (1 + s) ** 2).is_nonnegative, "1 - t^2 >= 0 at t = 1/(1 + s)")
    require(sp.factor(1 - (1 + s) ** 2).is_nonpositive, "1 - t^2 <= 0 at t = 1 + s")
    require(1 + phi(1) < SLOPE, f"1 + phi(1) = {sp.N(1 + phi(1), 6)} < 5/4")


def leak_bound(sharpness):
    """2 e^-N / (1 - e^-N): the softmax mass off the selected token."""
    return 2 * exp(-sharpness) / (1 - exp(-sharpness))


@proof(
    "attention_selection",
    "keys [j, j^2], query N[2 (tau + delta), -1]: every visible j scores >= N(1 - 2|delta|)|j - j*| below "
    "j* = max(tau, 0), so the mass off j* is <= 2e^-N'/(1 - e^-N'), N' = N(1 - 2|delta|); "
    "output off by <= 2 leak max|v|",
    "integer positions 0..i, integer tau <= i, N > 0, |delta| < 1/2 (the float rounding of the offset), any length T",
)
def attention_selection():
    j_, tau = sp.symbols("j tau", integer=True)
    dl = sp.Symbol("delta", real=True)
    kk = sp.Symbol("k", integer=True, positive=True)  # the distance |j - j*| >= 1
    d, s = sp.Symbol("d", nonnegative=True), sp.Symbol("s", integer=True, nonnegative=True)  # d = |delta|
    # the score is -N (j - tau - delta)^2 up to a term that does not depend on j
    zero(sp.expand(N * (2 * (tau + dl) * j_ - j_**2) - (-N * (j_ - tau - dl) ** 2 + N * (tau + dl) ** 2)), "score")
    gap = lambda jj, star: (jj - tau - dl) ** 2 - (star - tau - dl) ** 2  # noqa: E731  (score(j*) - score(j))/N
    # tau >= 0, j* = tau, j = tau +- k; delta = +-d: gap - k(1 - 2d) is a sum of non-negative terms.
    for sign_j in (1, -1):
        for sign_d in (1, -1):
            excess = sp.expand((gap(tau + sign_j * kk, tau) - kk * (1 - 2 * d)).subs(dl, sign_d * d))
            terms = [kk * (kk - 1), 2 * kk * d * (1 - sign_j * sign_d)]
            zero(excess - sum(terms), f"tau >= 0, j = j* {'+' if sign_j > 0 else '-'} k, delta = {sign_d} d")
            require(all(term.is_nonnegative for term in terms), "its terms are >= 0")
    # tau <= -1 (tau = -1 - s), j* = 0, j = k: gap - k(1 - 2d) = k(k - 1) + 2k(1 + s) + 2k(d - delta) >= 0.
    for sign_d in (1, -1):
        excess = sp.expand((gap(kk, 0) - kk * (1 - 2 * d)).subs({tau: -1 - s, dl: sign_d * d}))
        terms = [kk * (kk - 1), 2 * kk * (1 + s), 2 * kk * d * (1 - sign_d)]
        zero(excess - sum(terms), f"tau < 0, j = k, delta = {sign_d} d")
        require(all(term.is_nonnegative for term in terms), "its terms are >= 0")
    # A softmax weight is a_j = e^(s_j) / sum_l e^(s_l) <= e^(s_j - s_j*) (the sum holds the positive e^(s_j*)),
    # and at most two visible tokens sit at each distance k from j* (j* - k and j* + k), so the mass off j* is at
    # most sum_k 2 q^k with q = e^-N' in (0, 1).
    q = sp.Symbol("q", positive=True)
    total = sp.piecewise_fold(sp.summation(2 * q**kk, (kk, 1, sp.oo))).subs(q, exp(-N))
    zero(sp.simplify(total - leak_bound(N)), "geometric series (q = e^-N < 1)")
    T = sp.Symbol("T", integer=True, positive=True)
    finite = sp.summation(q**kk, (kk, 1, T - 1))
    require(isinstance(finite, sp.Piecewise) and finite.args[0][1] == sp.Eq(q, 1), "only q = 1 is special")
    zero(sp.simplify(2 * finite.args[-1][0].subs(q, exp(-N)) - leak_bound(N) * (1 - exp(-N * (T - 1)))),
         "finite length T (q = e^-N != 1)")
    # The output: with sum_j a_j = 1, sum_j a_j v_j - v_j* = sum_j a_j (v_j - v_j*), whose j* term is 0 and
    # whose others are at most a_j 2 max|v| (the triangle inequality), so in all at most 2 leak max|v|.
    a_, v_ = sp.IndexedBase("a", real=True), sp.IndexedBase("v", real=True)
    jj, vs = sp.Symbol("j", integer=True), sp.Symbol("v_star", real=True)
    mixture = sp.factor_terms(sp.expand(sp.Sum(a_[jj] * (v_[jj] - vs), (jj, 0, T - 1))).doit())
    zero(mixture.subs(sp.Sum(a_[jj], (jj, 0, T - 1)), 1) - (sp.Sum(a_[jj] * v_[jj], (jj, 0, T - 1)) - vs),
         "the output's deviation as a mixture of differences")


def gamma(count, unit):
    """Higham's ``gamma_k = k u / (1 - k u)``: a dot product of k terms rounds by at most gamma_k of its |terms|."""
    return count * unit / (1 - count * unit)


@proof(
    "uniform_attention",
    "equal scores (a head with zero query or key weights) give the causal softmax weights 1/(i+1) on columns "
    "0..i, so the head outputs the mean of its values; computed as exp(0) = 1 over a sum of i + 1 ones and one "
    "division, each weight is (1 + delta)/(i+1), |delta| <= u, and the output, a dot product of i + 1 terms, is "
    "within (u + gamma_{i+1} (1 + u)) mean|v| <= gamma_{i+2} mean|v| of the mean",
    "any i >= 0 and score s; the floating-point model (M1), (M2) of construct.transformer.rounding, (i + 2) u < 1; "
    "i + 1 exact in the dtype (below 2^53 in float64, 2^24 in float32)",
)
def uniform_attention():
    i = sp.Symbol("i", integer=True, nonnegative=True)
    s = sp.Symbol("s", real=True)
    jj = sp.Symbol("j", integer=True, nonnegative=True)
    weight = exp(s) / sp.summation(exp(s), (jj, 0, i))
    zero(weight - 1 / (i + 1), "e^s / sum_{j<=i} e^s = 1/(i+1)")
    # With a_j = (1 + delta_j)/(i+1): sum a_j v_j - mean v = sum delta_j v_j / (i+1), at most u mean|v| (the
    # triangle inequality); the dot product rounds by gamma_{i+1} sum a_j |v_j| <= gamma_{i+1} (1 + u) mean|v|.
    a_, v_, d_ = sp.IndexedBase("a", real=True), sp.IndexedBase("v", real=True), sp.IndexedBase("delta", real=True)
    deviation = sp.Sum((1 + d_[jj]) / (i + 1) * v_[jj], (jj, 0, i)) - sp.Sum(v_[jj], (jj, 0, i)) / (i + 1)
    zero(sp.expand(sp.simplify(deviation.doit().subs(i, 3)) - sum(d_[k_] * v_[k_] for k_ in range(4)) / 4),
         "the weights' deviation is sum delta_j v_j / (i+1) (checked at i = 3)")
    # u + gamma_{i+1} (1 + u) <= gamma_{i+2}: the difference is u^2 (i + 2) / ((1 - (i+1) u)(1 - (i+2) u)), which
    # with u = (1 - k)/(i + 2), 0 < k < 1 (that is, 0 < (i + 2) u < 1) is (k - 1)^2 / (k (k (i + 1) + 1)) >= 0.
    uu, k_ = sp.Symbol("u", positive=True), sp.Symbol("k", positive=True)
    excess = gamma(i + 2, uu) - uu - gamma(i + 1, uu) * (1 + uu)
    zero(excess - uu**2 * (i + 2) / ((1 - (i + 1) * uu) * (1 - (i + 2) * uu)), "the excess of gamma_(i+2)")
    at_k = sp.factor(excess.subs(uu, (1 - k_) / (i + 2)))
    zero(at_k - (k_ - 1) ** 2 / (k_ * (k_ * (i + 1) + 1)), "the excess at u = (1 - k)/(i + 2)")
    require(bool(((k_ - 1) ** 2 / (k_ * (k_ * (i + 1) + 1))).is_nonnegative), "the excess is >= 0")


def _sums(expr, i, D, named):
    """sum_{i=3}^{D} expr, expanded by linearity into the named sums."""
    return sp.factor_terms(sp.expand(sp.Sum(sp.expand(expr), (i, 3, D))).doit()).subs(named)


def _layer_norm_identity(scale):
    """Layer norm on a column of any width D whose rows 1, 2 are the pads N c and -N c, rows 3..D anything."""
    m = sp.Symbol("m", integer=True, positive=True)
    D = m + 2  # m >= 1 rows besides the pads
    i = sp.Symbol("i", integer=True, positive=True)
    v_, w_ = sp.IndexedBase("v", real=True), sp.IndexedBase("w", real=True)
    e = sp.Symbol("e", positive=True)  # layer norm's epsilon
    S1, S2, Wv, Sw = sp.symbols("S1 S2 W Sw", real=True)  # sum v, sum v^2, w.v, sum w (w is 0 on the pads)
    named = {sp.Sum(v_[i], (i, 3, D)): S1, sp.Sum(v_[i] ** 2, (i, 3, D)): S2,
             sp.Sum(v_[i] * w_[i], (i, 3, D)): Wv, sp.Sum(w_[i], (i, 3, D)): Sw}
    mu = sp.Symbol("mu", real=True)
    mean = (N * scale - N * scale + S1) / D  # the pads cancel in the mean
    sq = (N * scale - mean) ** 2 + (-N * scale - mean) ** 2 + _sums((v_[i] - mu) ** 2, i, D, named).subs(mu, mean)
    zero(sp.simplify(sq - (2 * N**2 * scale**2 + S2 - D * mean**2)), "D var = 2 N^2 c^2 + sum v^2 - D mean^2")
    rho = (S2 - D * mean**2 + D * e) / (2 * N**2 * scale**2)
    zero(sp.simplify(sq / D + e - 2 * N**2 * scale**2 * (1 + rho) / D), "var + e = 2 N^2 c^2 (1 + rho)/D")
    # 0 < rho: sum v^2 - D mean^2 = sum_i (v_i - S1/m)^2 + S1^2 (1/m - 1/D), both terms >= 0.
    spread = _sums((v_[i] - S1 / m) ** 2, i, D, named)
    zero(sp.simplify(S2 - D * mean**2 - (spread + S1**2 * (1 / m - 1 / D))), "sum v^2 - D mean^2 split")
    require(sp.factor(S1**2 * (1 / m - 1 / D)).is_nonnegative, "S1^2 (1/m - 1/D) >= 0")
    # rho <= (sum v^2 + D e)/(2 N^2 c^2): the difference is D mean^2 / (2 N^2 c^2) >= 0.
    zero(sp.simplify(rho_bound(S2, D, e, N, scale) - rho - D * mean**2 / (2 * N**2 * scale**2)), "rho bound")
    # w.(h - mean) over the rows (w = 0 on the pads) is w.v - mean sum w ...
    dot = _sums(w_[i] * (v_[i] - mu), i, D, named).subs(mu, mean)
    zero(sp.expand(dot - (Wv - mean * Sw)), "w.(h - mean) = w.v - mean sum w")
    # ... and N sqrt(2/D) w.LN(h) = (w.v - mean sum w)/(|c| sqrt(1 + rho)), rho > 0.
    r = sp.Symbol("rho", positive=True)
    lhs = N * sqrt(Rational(2) / D) * dot / sqrt(2 * N**2 * scale**2 * (1 + r) / D)
    zero(sp.simplify(lhs - dot / (sp.Abs(scale) * sqrt(1 + r))), "the scaled layer norm")
    # The factor 1/sqrt(1 + rho) is within rho/2 of 1: with rho = t(2 + t), t = sqrt(1 + rho) - 1 >= 0,
    # 1/sqrt(1 + rho) - (1 - rho/2) = t^2 (3 + t)/(2 (1 + t)) >= 0 and 1 - 1/sqrt(1 + rho) = t/(1 + t) >= 0.
    tt = sp.Symbol("t", nonnegative=True)
    zero(sqrt(sp.factor(1 + tt * (2 + tt))) - (1 + tt), "sqrt(1 + rho) = 1 + t")
    zero(sp.simplify(1 / (1 + tt) - (1 - tt * (2 + tt) / 2) - tt**2 * (3 + tt) / (2 * (1 + tt))), "1 - rho/2 below")
    require((tt**2 * (3 + tt) / (2 * (1 + tt))).is_nonnegative and (tt / (1 + tt)).is_nonnegative, "both >= 0")


def rho_bound(sum_sq, width, ln_eps, pad, floor=1):
    """(sum v^2 + D ln_eps) / (2 N^2 c^2): the lemmas' bound on rho."""
    return (sum_sq + width * ln_eps) / (2 * pad**2 * floor**2)


@proof(
    "layer_norm_bypass",
    "N sqrt(2/D) w.LN(v, N, -N) = (w.v - mean sum w)/sqrt(1 + rho), 0 < rho <= (|v|^2 + D e)/(2N^2), "
    "1 - rho/2 <= 1/sqrt(1 + rho) <= 1",
    "any width D >= 3: pads N > 0 and -N, the other rows v anything; w = 0 on the pads; layer norm eps e > 0",
)
def layer_norm_bypass():
    _layer_norm_identity(sp.Integer(1))


@proof(
    "layer_norm_division",
    "N sqrt(2/D) w.LN(v, Nc, -Nc) = (w.v - mean sum w)/(|c| sqrt(1 + rho)), 0 < rho <= (|v|^2 + D e)/(2N^2c^2), "
    "1 - rho/2 <= 1/sqrt(1 + rho) <= 1",
    "any width D >= 3; c real, c != 0; as layer_norm_bypass. For |c| >= floor, rho <= (|v|^2 + D e)/(2N^2 floor^2)",
)
def layer_norm_division():
    _layer_norm_identity(sp.Symbol("c", real=True, nonzero=True))
