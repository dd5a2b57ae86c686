"""The certificate's inequalities, proved: every step ``construct/compiler/certificate.py`` and
``construct/transformer/rounding.py`` take that is mathematics rather than the floating-point model.

What the certificate assumes (and these proofs do not): the floating-point
model stated in ``construct/transformer/rounding.py`` (IEEE round to
nearest; dot products within gamma_k of their value in any order, except
the MLP's, whose rounding is measured against a compensated dot product;
erf within 4 ulp), and that the weights are the compiler's construction (the
identities of ``proofs/layers.py``). What it then bounds is the distance of
each answer from the exact machine's, in real arithmetic.
"""

from __future__ import annotations

import sympy as sp
from sympy import Rational, exp, factorial, pi, sqrt

from .algebra import matrices, noncommutative_zero
from .lemmas import Phi, gelu, phi
from .registry import proof, require, zero

x, v = sp.symbols("x v", real=True)
n, dn, dd = sp.symbols("n dn dd", real=True)
D = sp.Symbol("D", positive=True)
k = sp.Symbol("k", integer=True, nonnegative=True)


@proof("division_remainder",
       "n/D - (n - dn)/(D - dd) = dn/D - n dd/D^2 + r, |r| <= (|n| dd^2/D + |dn| |dd|) / (D (D - |dd|))",
       "D = |den| > |dd| (the divisor's error), the sign of den known; Jacobian terms as the adjoint uses them")
def division_remainder():
    # the divisor's magnitude D = |den| moves by dd (its sign is fixed while |dd| < D); the numerator by dn
    r = n / D - (n - dn) / (D - dd) - (dn / D - n * dd / D**2)
    zero(sp.simplify(r - (-n * dd**2 / (D**2 * (D - dd)) + dn * dd / (D * (D - dd)))), "the remainder in closed form")
    # |D - dd| >= D - |dd| > 0 bounds both denominators, which gives the stated bound term by term


@proof("product_remainder", "AB - (A - dA)(B - dB) = dA B + A dB - dA dB; the Jacobian part is dA B + A dB",
       "matrices of any compatible sizes (the free algebra of noncommutative symbols)")
def product_remainder():
    A, B, dA, dB = matrices("A B dA dB")
    noncommutative_zero(A * B - (A - dA) * (B - dB) - (dA * B + A * dB - dA * dB), {}, "the product's expansion")


@proof("residual_certificate",
       "for A = lam I + X^T X, b = X^T y, w* = A^-1 b, any w and M, r = A w - b: q^T (w - w*) = q^T M r + "
       "q^T A^-1 (I - A M) r, and |A^-1|_2 <= 1/lam, so |pred - q^T w*| <= |pred - q^T w| + |q^T M r| + "
       "|q| |I - A M|_F |r| / lam (M = 0: |pred - q^T w| + |q| |r| / lam)",
       "lam > 0; X, y, q, w, M of any compatible sizes (the identities in the free algebra; |A^-1|_2 <= 1/lam from "
       "v^T A v - lam v^T v = |X v|^2 >= 0, checked there too; then Cauchy-Schwarz and |C|_2 <= |C|_F)")
def residual_certificate():
    A, Ai, M, X, XT, b, w, q, qT, v, vT = matrices("A Ai M X XT b w q qT v vT")
    lam = sp.Symbol("lam", positive=True)
    inverse = {A * Ai: 1, Ai * A: 1}
    r = A * w - b
    noncommutative_zero(Ai * r - (w - Ai * b), inverse, "w - w* = A^-1 r")
    noncommutative_zero(qT * Ai * r - (qT * M * r + qT * Ai * (1 - A * M) * r), inverse,
                        "q^T A^-1 r = q^T M r + q^T A^-1 (I - A M) r")
    # A >= lam I: the quadratic form of A - lam I is |X v|^2, so every eigenvalue of the symmetric A is >= lam
    noncommutative_zero(vT * (lam + XT * X) * v - lam * vT * v - (vT * XT) * (X * v), {}, "v^T (A - lam I) v")


@proof("gelu_slope_maximum", "|gelu'(x)| < 1.13 for every x (the certificate's global slope; near zero it uses "
       "lemma gelu_slope's 1/2 + sqrt(2/pi)|x|)", "gelu(x) = x Phi(x)")
def gelu_slope_maximum():
    slope = sp.diff(gelu(x), x)
    # gelu'' = phi(x) (2 - x^2): gelu' rises on [-sqrt 2, sqrt 2] and falls outside it, with limits 0 and 1
    zero(sp.diff(slope, x) - phi(x) * (2 - x**2), "gelu'' = phi(x) (2 - x^2)")
    peak, trough = slope.subs(x, sqrt(2)), slope.subs(x, -sqrt(2))
    require(peak.evalf(30) < Rational(113, 100), f"gelu'(sqrt 2) = {peak.evalf(8)} < 1.13")
    require(abs(trough.evalf(30)) < Rational(113, 100), f"|gelu'(-sqrt 2)| = {abs(trough.evalf(8))} < 1.13")
    zero(sp.limit(slope, x, sp.oo) - 1, "gelu' -> 1 at +oo")
    zero(sp.limit(slope, x, -sp.oo), "gelu' -> 0 at -oo")


@proof("bypass_mills", "|gelu(v) - v| = v Phi(-v) <= phi(v) for v > 0",
       "Mills' ratio Phi(-v) <= phi(v)/v for v > 0")
def bypass_mills():
    vp = sp.Symbol("v", positive=True)
    zero(gelu(vp) - vp + vp * Phi(-vp), "gelu(v) - v = -v Phi(-v)")
    m = phi(vp) / vp - Phi(-vp)  # m' = -phi/v^2 < 0 and m -> 0, so m > 0
    zero(sp.diff(m, vp) + phi(vp) / vp**2, "m'(v) = -phi(v)/v^2")
    zero(sp.limit(m, vp, sp.oo), "m -> 0")


@proof("product_truncation_at_size",
       "|R_P(x, y) - xy| <= s^8/(43008 P^6) + (s^2/810)(e^z - 1 - z - z^2/2 - z^3/6), s = |x| + |y|, z = s^2/(2P^2)",
       "the three-scale R_P of lemma gelu_product_bound; any x, y (the lemma's 0.0063/P^6 is s = 2)")
def product_truncation_at_size():
    P = sp.Symbol("P", positive=True)
    ss = sp.Symbol("s", positive=True)
    # from the lemma: R_P - xy = sum_{k>=3} r_k / P^(2k), |r_k| <= (1/2) |p_k| rho_k / (2^k k! (2k+1)),
    # |p_k| <= s^(2k+2) (the binomial expansion of (x+y)^(2k+2) minus its end terms, by the triangle inequality)
    r3 = Rational(1, 2) * ss**8 * Rational(1, 64) / (2**3 * factorial(3) * 7)
    zero(r3 - ss**8 / 43008, "k = 3: rho_3 = 1/64")
    # k >= 4: rho_k <= 1/45 and 2k + 1 >= 9, so |r_k| P^(-2k) <= (s^2 / 810) (s^2 / (2 P^2))^k / k!
    term = Rational(1, 2) * ss**(2 * k + 2) / 45 / (2**k * factorial(k) * 9) / P**(2 * k)
    zero(sp.simplify(term - ss**2 / 810 * (ss**2 / (2 * P**2))**k / factorial(k)), "the k-th term")
    z = sp.Symbol("z", positive=True)
    zero(sp.summation(z**k / factorial(k), (k, 4, sp.oo)) - (exp(z) - 1 - z - z**2 / 2 - z**3 / 6), "the tail")
    # at s = 2 (the unit square) the tail is the lemma's, (2/405)(e^x - ...) with x = 2/P^2; the leading term is
    # 256/43008, a little above the lemma's 127/21504, which uses |p_3| <= 2^8 - 2 there
    zero(sp.simplify((ss**2 / 810).subs(ss, 2) - Rational(2, 405)), "s = 2: the tail's coefficient is 2/405")
    zero(sp.simplify((ss**2 / (2 * P**2)).subs(ss, 2) - 2 / P**2), "s = 2: z = 2/P^2")


@proof("gelu_taylor_remainders",
       "|gelu(p) - gelu(p - d) - gelu'(p) d| <= 0.4 d^2 and |gelu'(p) - 1/2 - sqrt(2/pi) p| <= (0.8 + 0.2 p^2)|p|^3",
       "any p, d (the signed analysis of a product's weights and layer norm's rounding)")
def gelu_taylor_remainders():
    second = sp.diff(gelu(x), x, 2)
    zero(second - phi(x) * (2 - x**2), "gelu'' = phi(x) (2 - x^2)")
    # |gelu''| <= 2 phi(0): on |x| <= sqrt 2, phi(x) <= phi(0) and 0 <= 2 - x^2 <= 2; outside, phi(x)(x^2 - 2) has
    # derivative phi(x) x (4 - x^2), so its largest value is at |x| = 2
    zero(sp.diff(phi(x) * (x**2 - 2), x) - phi(x) * x * (4 - x**2), "(phi(x)(x^2 - 2))' = phi(x) x (4 - x^2)")
    require((phi(2) * 2).evalf(30) < (2 * phi(0)).evalf(30), "phi(2) 2 < 2 phi(0)")
    require((2 * phi(0)).evalf(30) < Rational(8, 10), "2 phi(0) < 0.8, so Lagrange's remainder is below 0.4 d^2")
    third = sp.diff(gelu(x), x, 3)
    zero(third - phi(x) * x * (x**2 - 4), "gelu''' = phi(x) x (x^2 - 4)")
    zero(sp.diff(gelu(x), x).subs(x, 0) - Rational(1, 2), "gelu'(0) = 1/2")
    zero(second.subs(x, 0) - sqrt(2 / pi), "gelu''(0) = sqrt(2/pi)")
    # |gelu'''(t)| <= phi(0) |t| (t^2 + 4) <= 0.4 |p| (p^2 + 4) for |t| <= |p|; Lagrange: remainder <= that p^2 / 2
    require(phi(0).evalf(30) < Rational(4, 10), "phi(0) < 0.4")


@proof("rls_backward_error",
       "ridge's block on M = B^-1 and W is exactly C^-1 + gain x^T (M - M^T) and C^-1 (B W + x y) with C = B + x x^T "
       "and gain = C^-1 x; (C^-1 + delta)^-1 = C + D' with D' = -(I + C delta)^-1 C delta C, and with C = S (I + "
       "Dk) S, S^-1 D' S^-1 = -(I + (I + Dk) X)^-1 (I + Dk) X (I + Dk), X = S delta S; (A + D)^-1 - A^-1 = S^-1 ((I "
       "+ Dk')^-1 - I) S^-1 and S ((A + D)^-1 (b + beta) - A^-1 b) = (I + Dk')^-1 (S^-1 beta - Dk' S A^-1 b) with "
       "A = S S, Dk' = S^-1 D S^-1",
       "M, B, C, S, Dk invertible where inverted, x, W, b, beta of any compatible sizes, den1 = 1 + x^T M x != 0 (the "
       "free algebra; the norm bounds of programs/rls.py follow by submultiplicativity, a Neumann series, and "
       "|A_k^-1/2 A_{k-1}^1/2|_2 <= 1 from A_{k-1} <= A_k)")
def rls_backward_error():
    """The identities behind ``construct/programs/rls.py``: the block's exact map on a state that is the exact
    inverse of a perturbed ``A`` (the perturbation passes through), and the bounds' algebra in A's energy norm."""
    M, MT, B, C, Ci, x, xT, W, b, beta = matrices("M MT B C Ci x xT W b beta")
    s, t, y = sp.symbols("s t y")
    inverse = {B * M: 1, M * B: 1, xT * M * x: s, xT * W: t}
    gain = M * x / (1 + s)  # u / den1 with u = M x, den1 = 1 + x^T M x > 0
    noncommutative_zero((B + x * xT) * gain - x, inverse, "C gain = x")
    block = M - gain * (xT * MT)  # corr = gain u^T, u^T = x^T M^T
    F = block - gain * xT * (M - MT)  # the block less Delta
    noncommutative_zero((B + x * xT) * F - 1, inverse, "C (block - Delta) = I")
    noncommutative_zero((B + x * xT) * (W + gain * (y - t)) - (B * W + x * y), inverse, "C W' = B W + x y")
    # one block's own error delta: (C^-1 + delta)^-1 = C + D', checked as (C + D')(C^-1 + delta) = I
    delta, P = matrices("delta P")  # P = (I + C delta)^-1: P + P C delta = I
    step = {C * Ci: 1, Ci * C: 1, P * C * delta: 1 - P}
    noncommutative_zero((C - P * C * delta * C) * (Ci + delta) - 1, step, "(C + D') (C^-1 + delta)")
    # the same in the energy norm: C = S (I + Dk) S, and S Q S^-1 inverts I + C delta when Q inverts I + (I + Dk) X
    S, Si, Dk, Q = matrices("S Si Dk Q")
    X = S * delta * S
    scaled = {S * Si: 1, Si * S: 1, Dk * S * delta * S * Q: 1 - Q - S * delta * S * Q}
    noncommutative_zero((1 + S * (1 + Dk) * S * delta) * (S * Q * Si) - 1, scaled, "(I + C delta) S Q S^-1")
    Dprime = -(S * Q * Si) * (S * (1 + Dk) * S) * delta * (S * (1 + Dk) * S)
    noncommutative_zero(Si * Dprime * Si + Q * (1 + Dk) * X * (1 + Dk), scaled, "S^-1 D' S^-1")
    # the state's error: A = S S, D = S Dk' S, and (A + D)^-1 = S^-1 R S^-1 with R = (I + Dk')^-1
    R = matrices("R")
    error = {S * Si: 1, Si * S: 1, R * Dk: 1 - R}
    Ainv, Binv = Si * Si, Si * R * Si
    noncommutative_zero(Binv * (S * S + S * Dk * S) - 1, error, "S^-1 R S^-1 inverts A + D")
    noncommutative_zero(S * (Binv * (b + beta) - Ainv * b) - R * (Si * beta - Dk * S * Ainv * b), error,
                        "S (W - w*)")
