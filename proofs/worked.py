"""The mechanisms worked through on one small network: Theorem 2's chain at d = 1, compiled one layer per instruction.

Each function returns Markdown lines for ``proofs/WALKTHROUGH.md``, computed
from the compiled weights run in real arithmetic on one task
(``construct.transformer.forward_exact``: the float weights read exactly,
every operation to 50 digits), the exact machine on the task's exact values,
and the lemmas' formulas in high precision. Nothing printed comes from a
float64 run, whose last bits depend on the machine (the order in which BLAS
adds): the file must come out the same on every machine. A float64 run adds
its rounding to what is printed; the compiler's declared error bounds it,
and tests measure it.
"""

from __future__ import annotations

from functools import cached_property

import mpmath
import numpy as np
import sympy

from construct import compile, programs
from construct.mechanisms import scales
from construct.mechanisms.plan import DIV_NEG, DIV_POS, LN_NEG, LN_POS, ONE, POS_SQ
from construct.raw.prompt import POS, tokens
from construct.transformer import forward_exact

from . import kappa
from .status import ALL

LAM = 0.5
TASK = (np.array([[0.6]]), np.array([-0.8]), np.array([0.5]))  # x_1, y_1, x_q
COLUMN = 1  # the y~ column, where the update happens
MOV, MUL, AFF, DIV = 1, 4, 8, 9  # layers (1-based) of the chain: mov x, mul u, aff den1, div corr


def rational(a: np.ndarray) -> np.ndarray:
    """Floats as exact sympy rationals (their binary values), for the exact machine."""
    return np.array([sympy.Rational(float(v)) for v in np.ravel(a)], dtype=object).reshape(np.shape(a))


def gelu(z):
    return z * (1 + mpmath.erf(z / mpmath.sqrt(2))) / 2


class Worked:
    """The network, one run of it, and the Markdown of section 4."""

    def __init__(self) -> None:
        self.program = programs.sherman_morrison_step(1, LAM)
        self.net = compile(self.program, x_max=1.0, y_max=1.0, fuse=False)
        self.states = forward_exact.hidden_states(self.net.weights, tokens(*TASK))  # (T, D) each, real arithmetic
        self.exact = self.program.run(*(rational(a) for a in TASK), trace=True)

    def row(self, name: str) -> int:
        return self.net.layout.span(name)[0]

    def stored(self, l: int) -> int:
        return int(self.net.weights.order[l - 1])

    def parts(self, l: int) -> forward_exact.ExactParts:
        """Every intermediate of layer l (1-based) on the task, in real arithmetic on the stored weights."""
        return forward_exact.layer_parts(self.net.weights, self.stored(l), self.states[l - 1])

    @cached_property
    def D(self) -> int:
        return self.net.layout.width

    def value(self, l: int, name: str, column: int = COLUMN) -> float:
        """The exact machine's value of a one-row register after instruction l."""
        return float(self.exact[l][self.net.layout.span(name)[0], column])

    def gap(self, l: int) -> float:
        """Layer l in real arithmetic against its instruction run by the exact machine on the layer's own exact
        input: the largest difference over the register it writes and every column (the mechanism's own error,
        no rounding in it)."""
        ins = self.program.instructions[l - 1]
        rows = self.program.layout.rows(ins.writes)
        digits = forward_exact.DIGITS
        before = np.frompyfunc(lambda v: sympy.Float(v, digits), 1, 1)(self.states[l - 1][:, : self.program.width].T)
        want = ins.apply(before, self.program.layout)[rows]
        got = self.states[l][:, rows].T
        return max(float(abs(w - sympy.Float(g, digits))) for w, g in zip(want.ravel(), got.ravel()))

    def declared(self, l: int) -> float:
        return self.net.layers[l - 1].predicted_error

    def nonzero(self, column: np.ndarray) -> tuple[list[int], list[str]]:
        """The rows of a column that are not 0, and a table of them."""
        labels = self.net.layout.labels
        shown = [r for r in range(self.D) if column[r] != 0]
        return shown, ["| row | " + " | ".join(f"`{labels[r]}`" for r in shown) + " |",
                       "| --- |" + " --- |" * len(shown), "| value | " + " | ".join(f"{column[r]:.6g}" for r in shown)
                       + " |"]

    # -- a. attention ------------------------------------------------------------------------------------------

    def attention(self) -> list[str]:
        w, s, N = self.net.weights, self.stored(MOV), self.net.constants["attention_sharpness"]
        offsets = self.net.mechanisms[MOV - 1].offsets
        h = offsets.index(1)
        H = self.states[MOV - 1]
        Wq, Wk = forward_exact.exact(w.Wq[s, h]), forward_exact.exact(w.Wk[s, h])
        with mpmath.workdps(forward_exact.DIGITS):
            scores = forward_exact.to_float((H @ Wq) @ (H @ Wk).T)
        A = forward_exact.to_float(self.parts(MOV).A[h])
        T = H.shape[0]
        q = {name: w.Wq[s, h, self.row(name)] for name in (POS, ONE)}
        k = {name: w.Wk[s, h, self.row(name)] for name in (POS, POS_SQ)}
        leak = scales.attention_leak(N)
        x_after = forward_exact.to_float(self.states[MOV][:, self.row("x")])

        def grid(M, fmt):
            head = "| i \\ j | " + " | ".join(f"{j}" for j in range(T)) + " |"
            rows = [f"| {i} | " + " | ".join(fmt(M[i, j]) if j <= i else "(masked)" for j in range(T)) + " |"
                    for i in range(T)]
            return [head, "| --- |" + " --- |" * T, *rows]

        return [
            "### 4a. Attention selects a column (layer 1, `mov x <- x_in of column i-1`; the read of Lemma 3)", "",
            "A mov is a RAW call (the paper's Lemma 2): read `x_in` of column i - 1, no arithmetic, write `x`. "
            "Lemma 3 puts a RAW call in one layer, and its read is attention that selects one column:", "",
            f"The layer has {len(offsets)} heads; head {h} reads column i - 1, the other is the *self* head. Only "
            "three rows reach the scores, all written by the position table: `pos` = j, `one` = 1, `pos_sq` = j^2. "
            f"Head {h}'s Wq puts {q[POS][0]:.4g} (= 2N) on `pos` and ({q[ONE][0]:.4g}, {q[ONE][1]:.4g}) "
            f"(= -2N x offset, -N) on `one`; its Wk puts {k[POS][0]:g} on `pos` and {k[POS_SQ][1]:g} on `pos_sq`. "
            f"With N = N_att = {N:.4f}:", "",
            "    q_i = N [2 (i - 1), -1],   k_j = [j, j^2],   score(i, j) = N (2 (i - 1) j - j^2) "
            "= -N (j - (i - 1))^2 + N (i - 1)^2", "",
            "The last term does not depend on j, so softmax over j sees `-N (j - (i - 1))^2`: the visible column "
            "nearest i - 1 wins by N per unit of distance. The scores of the run (causal: j <= i):", "",
            *grid(scores, lambda v: f"{v:.2f}"), "",
            "and the softmax weights:", "",
            *grid(A, lambda v: f"{v:.1e}"), "",
            "Row 0 sees column 0 alone: `max(0 - 1, 0) = 0`, the clamp every mov has. Elsewhere the off-target "
            f"weights are e^-N = {np.exp(-N):.1e}. Lemma `attention_selection` ({ALL}) bounds the mass off the "
            f"selected column by `2 e^-N / (1 - e^-N)` = {leak:.1e} at any length, and the head's output by "
            f"2 x leak x max|v|. The compiler takes `N = ln(2 / (1e-3 eps)) + 1`, so the leak is a thousandth of "
            "eps (float64).", "",
            "The value side is linear: head 0's `Wv Wo` copies `x_in` into the rows of `x`, the self head adds "
            "`-x` (the old value), and the residual adds `x` back, so the layer writes `new - old + old = new`. "
            "The MLP is off (W1 = 0). An `aff` layer is the same with the self head only: layer 8, "
            "`den1 <- den + 1`, adds `den - den1` through the self head and 1 through the attention bias `bo`.", "",
            f"After the layer, `x` = {', '.join(f'{v:g}' for v in x_after)} at columns 0, 1, 2 (exact: 0.6, 0.6, "
            f"0): in real arithmetic on these weights the layer is off its instruction by {self.gap(MOV):.1e} "
            "(the leak); a float64 run adds its rounding, within the error the compiler declares for the layer, "
            f"{self.declared(MOV):.1e}.", "",
        ]

    # -- d. layer norm as a known scale ------------------------------------------------------------------------

    def layer_norm(self) -> list[str]:
        parts, net = self.parts(MUL), self.net
        X = forward_exact.to_float(parts.X[COLUMN])
        pads = [self.row(LN_POS), self.row(LN_NEG)]
        N = net.constants["ln_pad"]
        scale = net.mechanisms[MUL - 1].ln_scale
        rest = np.delete(X, pads)
        rho = (float(rest @ rest) + self.D * net.constants["ln_eps"]) / (2 * N**2)
        shown, table = self.nonzero(X)
        eps = float(np.finfo(np.float64).eps)
        mean = abs(float(parts.mean[COLUMN]))
        return [
            "### 4b. Layer norm as a known scale (layer 4, `mul u <- Ainv (1x1) @ x (1x1)`; Lemma 6)", "",
            f"Layer norm divides a column by its spread. The compiler makes that spread a known number: every "
            f"column carries the pads `ln_pad_pos` = +N and `ln_pad_neg` = -N, N = {N:.6g}, so the variance over "
            f"the D = {self.D} rows is about `2 N^2 / D`. Attention also writes `mean_pad`, minus the sum of the "
            f"other rows, so the column sums to 0. Column 1 after attention, every row that is not 0 (the other "
            f"{self.D - len(shown)} are):", "",
            *table, "",
            f"Layer norm's sigma at column 1 is {float(parts.sigma[COLUMN]):.10g}; `N sqrt(2/D)` = "
            f"{N * np.sqrt(2 / self.D):.10g}, which the compiler makes a power of two, {scale:.0f} = "
            f"2^{int(np.log2(scale))}, the layer's `ln_scale`. "
            "Lemma `layer_norm_bypass` "
            f"({ALL}, any width D): for weights w that are 0 on the pads and sum to 0 over the column, "
            "`N sqrt(2/D) w . LN(h) = w . v / sqrt(1 + rho)` with `0 < rho <= (|v|^2 + D e) / (2 N^2)`, v the "
            f"other rows. Here that bound is {rho:.1e}; the compiler chose N to make it at most eps/2 = {eps / 2:.1e} "
            "for every column the domain allows. So W1 is `ln_scale` times the weights the unit wants, and a unit "
            "sees the column's values themselves, to a relative `rho/2`.", "",
            "The weights sum to 0 because of the row `zero`, which is always 0: each unit's W1 has minus the sum "
            "of its other entries there. Then the mean layer norm subtracts drops out of `w . LN(h)`, whatever "
            f"it is. In real arithmetic on these weights |mean| at column 1 is {mean:.1e} (the attention's leak); "
            f"a float64 run leaves more, of the order of the pads' rounding (eps N = {eps * N:.0e}), and the "
            "zero-sum weights remove that too.", "",
        ]

    # -- c. the GeLU product -------------------------------------------------------------------------------------

    def product(self) -> list[str]:
        parts, net = self.parts(MUL), self.net
        mech = net.mechanisms[MUL - 1].mlp[0]
        s = self.stored(MUL)
        P, S_a, S_b = mech.P, mech.S_a, mech.S_b
        A, x = self.value(MUL - 1, "Ainv"), self.value(MUL - 1, "x")
        W1, W2 = net.weights.W1[s], net.weights.W2[s]
        ra, rb, out = self.row("Ainv"), self.row("x"), self.row("u")
        rows = []
        with mpmath.workdps(40):
            a, b = mpmath.mpf(A) / mpmath.mpf(S_a), mpmath.mpf(x) / mpmath.mpf(S_b)
            for u in range(len(mech.multiples)):
                m = mech.multiples[u]
                reads = [name for name, r in (("Ainv", ra), ("x", rb)) if W1[r, u] != 0]
                ideal = (a * (W1[ra, u] != 0) + b * (W1[rb, u] != 0)) / (m * P)
                label = " + ".join({"Ainv": "a", "x": "b"}[name] for name in reads)
                rows.append(f"| {u} | {m} | `({label}) / {m}P` | {float(ideal):.10f} | {float(parts.pre[COLUMN, u]):.10f} | "
                            f"{W2[u, out]:+.6g} |")
            f = {m: mpmath.sqrt(mpmath.pi / 2) * (m * P) ** 2
                 * (gelu((a + b) / (m * P)) - gelu(a / (m * P)) - gelu(b / (m * P))) for m in (1, 2, 4)}
            second = {m: -(2 * a**3 * b + 3 * a**2 * b**2 + 2 * a * b**3) / (6 * (m * P) ** 2) for m in (1, 2, 4)}
            R = (f[1] - 20 * f[2] + 64 * f[4]) / 45
            series = [f"| f_{m}P | {float(f[m] - a * b):+.3e} | {float(second[m]):+.3e} |" for m in (1, 2, 4)]
            R_err, E = float(R - a * b), float(gelu((a + b) / P) - (a + b) / (2 * P))
        got = float(self.states[MUL][COLUMN, out])
        return [
            "### 4c. The GeLU product and Richardson's combination (layer 4; Lemma 4)", "",
            f"The operands are scaled by their bounds first: `a = Ainv / S_a`, `b = x / S_b` with S_a = {S_a:.7g}, "
            f"S_b = {S_b:.7g} (the domain's bounds on the registers), so |a|, |b| <= 1; at column 1, a = "
            f"{float(a):.7f}, b = {float(b):.7f}. Write `gelu(u) = u/2 + E(u)`: `u Phi(u) - u/2 = u (Phi(u) - 1/2)` "
            "is even, because `Phi(u) - 1/2` is odd, and `E(u) = u^2/sqrt(2 pi) - u^4/(6 sqrt(2 pi)) + ...`. In", "",
            "    f_P(a, b) = sqrt(pi/2) P^2 [gelu((a + b)/P) - gelu(a/P) - gelu(b/P)]", "",
            "the linear parts cancel exactly, `((a + b) - a - b)/2P = 0`, and the even parts give "
            "`sqrt(pi/2) P^2 ((a + b)^2 - a^2 - b^2) / (sqrt(2 pi) P^2) = ab` plus terms in `P^-2, P^-4, ...`. "
            f"With P = {P:g}, the first unit's input is (a + b)/P = {float((a + b) / P):.6f} and its even part "
            f"E = {E:.4e}: the product lives in a number {E / float((a + b) / P):.0e} times smaller than the "
            "unit's output, which is why rounding grows with P.", "",
            "Three scales, m P for m = 1, 2, 4, make 9 units. Their pre-activations as the lemma wants them and as "
            "the layer computes them (`ln_scale` x LN(h) . W1 column, at column 1), and the output weights "
            "`+-C_m (mP)^2 S_a S_b` into `u`, `C_m = w_m sqrt(pi/2)`:", "",
            "| unit | m | reads | ideal pre-activation | the layer's | W2 into `u` |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows, "",
            "How far each scale is from `ab`, exactly (mpmath, 40 digits), beside the `P^-2` term of lemma "
            f"`gelu_product_erf` (`-(2a^3 b + 3a^2 b^2 + 2ab^3) / (6 (mP)^2)`; {'proved in the ideal limit'}):", "",
            "| scale | f - ab | the P^-2 term |", "| --- | --- | --- |", *series, "",
            "Each is off by about its `P^-2` term, 4 times less per doubling. Richardson's combination "
            "`R_P = (f_P - 20 f_2P + 64 f_4P) / 45` has weights summing to 1 that cancel the `P^-2` terms "
            "(`1 - 20/4 + 64/16 = 0`) and the `P^-4` terms (`1 - 20/16 + 64/256 = 0`): "
            f"`R_P - ab` = {R_err:+.2e}, within lemma `gelu_product_bound`'s `0.0063 / P^6` = "
            f"{scales.product_truncation(P):.1e} ({ALL}: |a|, |b| <= 1, P >= 4). The layer writes "
            f"`u = S_a S_b R_P` = {got:.15g} in real arithmetic (exact: {A * x:g}), off its instruction by "
            f"{self.gap(MUL):.1e} over every column: the truncation (S_a S_b |R_P - ab| = "
            f"{S_a * S_b * abs(R_err):.1e} at column 1). A float64 run adds far more rounding than that: the "
            f"compiler's allowance is `34 KAPPA eps P` = "
            f"{scales.PRODUCT_ROUNDING * float(np.finfo(np.float64).eps) * P:.1e} per normalised product, and it "
            f"declares {self.declared(MUL):.1e} for the layer. The rounding model's constant (section 5): "
            f"{kappa.quoted()}.", "",
        ]

    # -- b, e. the bypass and the division ------------------------------------------------------------------------

    def division(self) -> list[str]:
        parts, net = self.parts(DIV), self.net
        mech = net.mechanisms[DIV - 1].mlp[0]
        s = self.stored(DIV)
        X = forward_exact.to_float(parts.X[COLUMN])
        shown, table = self.nonzero(X)
        den, num = self.value(DIV - 1, "den1"), self.value(DIV - 1, "uvT")
        N_d = net.layers[DIV - 1].constants["div_pad"]
        scale = net.mechanisms[DIV - 1].ln_scale
        sigma = float(parts.sigma[COLUMN])
        W1 = net.weights.W1[s]
        unit = int(np.flatnonzero(W1[self.row("uvT")])[0])
        Q, B = mech.Q, mech.B
        pre = float(parts.pre[COLUMN, unit])
        with mpmath.workdps(40):
            v = mpmath.mpf(pre)
            tail = float(v * mpmath.ncdf(-v))
        got = float(self.states[DIV][COLUMN, self.row("corr")])
        return [
            "### 4d. Layer norm divides, and a GeLU passes the quotient (layer 9, `div corr <- uvT / |den1|`; "
            "Lemmas 8 and 5)", "",
            f"Attention writes the division pads `div_pad_pos` = N_d den1 and `div_pad_neg` = -N_d den1 (the self "
            f"head reads `den1`, N_d = {N_d:.6g}) and its bias takes the permanent pads away. At column 1, den1 = "
            f"{den:g}: the pads hold {X[self.row(DIV_POS)]:.6g} and {X[self.row(DIV_NEG)]:.6g}, the permanent "
            f"ones {X[self.row(LN_POS)]:g} and {X[self.row(LN_NEG)]:g}. Column 1 after attention, every row "
            f"that is not 0 (the other {self.D - len(shown)} are):", "", *table, "",
            "The variance is now about "
            "`2 N_d^2 den1^2 / D`: it holds den1 squared, so layer norm divides by "
            f"`N_d |den1| sqrt(2/D)`, not by den1. Here sigma = {sigma:.10g} and "
            f"`sigma / (N_d sqrt(2/D))` = {sigma / (N_d * np.sqrt(2 / self.D)):.10g} = |den1|. "
            f"Lemma `layer_norm_division` ({ALL}) makes this exact up to `1/sqrt(1 + rho)`, `rho` at most "
            "`(|v|^2 + D e) / (2 N_d^2 den^2)`; the compiler sizes N_d for den's floor, the least |den1| the "
            f"domain allows ({net.bounds.floors['den1']:.7g}). That is why `div` divides by the absolute value: "
            "a negative divisor gives the same pads' variance.", "",
            f"One unit per entry, with bias B = {B:.6f}: W1 puts `ln_scale / Q` = {W1[self.row('uvT'), unit]:.10g} "
            f"on `uvT` (ln_scale = {scale:.0f}, Q = {Q:.7g} the bound of `corr`), so its pre-activation is "
            f"`uvT / (Q |den1|) + B` = {num:g} / ({Q:.7g} x {den:g}) + {B:.4f} = {pre:.10f}. "
            "Lemma `gelu_bypass` (Lemma 5, "
            f"{ALL}): for |u| <= U and B - U >= 1, `|gelu(B + u) - (B + u)| <= (B - U) Phi(U - B)`, here "
            f"{scales.bypass_truncation(B):.1e} for U = 1; at this pre-activation `gelu(v) - v = -v Phi(-v)` "
            f"= {-tail:.1e}. The output weight Q and the output bias -Q B leave `Q u = uvT / |den1|`: the layer "
            f"writes {got:.15g} in real arithmetic (exact: {num / den:.15g}), off its instruction by "
            f"{self.gap(DIV):.1e} over every column; a float64 run adds its rounding, within the declared "
            f"{self.declared(DIV):.1e}. The MLP's bias puts the permanent pads back, and "
            "the next layer's self head clears the division pads.", "",
        ]

    def section(self) -> list[str]:
        c = self.net.constants
        return [
            "## 4. The mechanisms, worked on one network (the paper's Lemmas 3 to 6 and 8)", "",
            f"Theorem 2's chain at d = 1 (lam = {LAM}), compiled one layer per instruction for the input box "
            "|x| <= 1, |y| <= 1 (`compile(programs.sherman_morrison_step(1, 0.5), x_max=1, y_max=1, fuse=False)`), "
            f"run on x_1 = {TASK[0][0, 0]}, y_1 = {TASK[1][0]}, x_q = {TASK[2][0]}. The compiler's constants "
            f"(float64): attention sharpness N_att = {c['attention_sharpness']:.4f}, product scale P = "
            f"{c['product_scale']:g}, bypass offset B = {c['bypass_offset']:.4f}, layer-norm pad N = "
            f"{c['ln_pad']:.6g}, residual width D = {c['width']}. Every number below is read from these weights, "
            "run in real arithmetic (`construct.transformer.forward_exact`: the float64 weights read exactly, every "
            "operation to 50 digits), so it is the same on every machine; a float64 run of the same weights differs "
            "from it by its rounding, which depends on the machine.", "",
            *self.attention(), *self.layer_norm(), *self.product(), *self.division(),
        ]
