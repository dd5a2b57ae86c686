"""Depth independent of n, worked through for ``proofs/WALKTHROUGH.md``: the averaging head of a compiled
``ridge_newton`` network, and Newton-Schulz in product form on a 2 x 2 example in exact arithmetic.

The derivations are docs/DEPTH.md's; this module prints them on numbers. Nothing
printed depends on the order in which a matrix library adds: the averaging
head's weights are read from the compiled arrays (binary fractions, printed
as the rationals they are); its float64 softmax weights come from scores
that are exactly 0 (``0 * h`` summed is 0 in any order), so they are one
rounded division each; the network's values are its weights run in real
arithmetic (``construct.transformer.forward_exact``); and the Newton-Schulz
example is sympy rationals. Each check this module makes on what it prints
raises ``ValueError`` naming what broke, so that the file is never written
with a claim its numbers contradict.
"""

from __future__ import annotations

import importlib

import mpmath
import numpy as np
import sympy as sp

from construct import compile, programs
from construct.compiler import schedule
from construct.mechanisms.plan import UNIFORM
from construct.raw.prompt import tokens
from construct.transformer import forward, forward_exact, rounding

from .registry import PROOFS
from .status import MEASURED, STATUS

ridge_newton = importlib.import_module("construct.programs.ridge_newton")  # the package exports the function

# the averaging head: ridge_newton at d = 1 on a 5-column prompt, x~_1, y~_1, x~_2, y~_2, x~_q; dyadic values so
# that the exact machine's registers are short rationals
LAM, X_NORM = 0.5, 1.0  # Lam = lam + R^2/2 = 1, so c = 1/Lam = 1
TASK = (np.array([[0.5], [-0.75]]), np.array([0.25, -1.0]), np.array([0.5]))
AVERAGES = 2  # the fused layer (1-based) whose attention takes the prefix averages
COLUMN_NAMES = ("x~_1", "y~_1", "x~_2", "y~_2", "x~_q")
WRITTEN = {  # what each row the averaging head writes holds, in this layer's composition (checked against the weights)
    "A": "`A' = Avg(z) + lam Avg(bos)`: `avg A <- z` and `aff A <- A + lam I Abos` composed",
    "Abos": "`Avg(bos) = 1/(i+1)`",
    "b": "`b' = Avg(xy)`",
    "g": "`g = c b'` (c = 1 here)",
    "IR": "`IR = I + R_0 = 2I - c A'`, the loop's first `aff IR <- R + I` composed with `R <- I - c A`; "
          "the output bias adds the 2",
    "scratch[0]": "`R_0 = I - c A'` (the output bias adds the 1): a copy of the operand the MLP squares in place "
                  "(`mul R <- R R`)",
    "scratch[1]": "the same copy, the product's second operand",
    "mean_pad": "minus the sum of what the attention (this head and the output bias) adds to the other rows, so "
                "that the column's sum stays 0 for layer norm (section 7)",
}
SHOWN = ("z", "A", "b")  # the registers whose values the column table prints

# Newton-Schulz: one example x = (3/5, 4/5), y = 1, lam = 1/2, |x| <= 1 = x_norm, at its y~ column (i = 1)
NS_LAM, NS_X, NS_Y, NS_COLUMN = sp.Rational(1, 2), sp.Matrix([sp.Rational(3, 5), sp.Rational(4, 5)]), 1, 1
NS_STEPS = 4


def _q(value: float) -> str:
    """A float (a binary fraction) as its exact rational."""
    return f"`{sp.Rational(value)}`"


def _hypotheses(name: str) -> str:
    """The sizes and cases a proof checks, as it states them."""
    return next(p for p in PROOFS if p.name == name).hypotheses


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"walkthrough, section 10: {what}")


def _matrix(M: sp.Matrix) -> str:
    return "[" + "; ".join(", ".join(sp.sstr(v) for v in M.row(r)) for r in range(M.rows)) + "]"


class Averaging:
    """The compiled network, its averaging head, one run of it in real arithmetic, and section 10a."""

    def __init__(self) -> None:
        self.program = programs.ridge_newton(1, len(TASK[1]), LAM, x_norm=X_NORM)
        self.net = compile(self.program, x_max=1.0, y_max=1.0)
        self.stored = int(self.net.weights.order[AVERAGES - 1])
        self.head = self.net.mechanisms[AVERAGES - 1].offsets.index(UNIFORM)
        prompt = tokens(*TASK)
        states = forward_exact.hidden_states(self.net.weights, prompt)
        self.before, self.after = states[AVERAGES - 1], states[AVERAGES]
        # the float64 pass's softmax weights of the averaging head (its scores are exactly 0, whatever adds them)
        floats = forward.hidden_states(self.net.weights, prompt)
        self.float_parts = forward.layer_parts(self.net.weights, self.stored, floats[AVERAGES - 1])
        rational = [np.frompyfunc(lambda v: sp.Rational(float(v)), 1, 1)(a).astype(object) for a in TASK]
        self.exact = self.program.run(*rational, trace=True)

    def row(self, name: str) -> int:
        return self.net.layout.span(name)[0]

    def value_map(self) -> tuple[list[str], list[str]]:
        """The averaging head's ``Wv Wo``, rows read by rows written, and the rows it writes."""
        w, s, h = self.net.weights, self.stored, self.head
        dh = w.Wv.shape[-1]
        M = w.Wv[s, h] @ w.Wo[s, h * dh:(h + 1) * dh]  # products of one nonzero term each: exact
        labels = self.net.layout.labels
        read = [r for r in range(M.shape[0]) if M[r].any()]
        written = [c for c in range(M.shape[1]) if M[:, c].any()]
        _require({labels[c] for c in written} == set(WRITTEN),
                 f"the averaging head writes {sorted(labels[c] for c in written)}, the text explains "
                 f"{sorted(WRITTEN)}")
        table = ["| read \\ written | " + " | ".join(f"`{labels[c]}`" for c in written) + " |",
                 "| --- |" + " --- |" * len(written)]
        table += [f"| `{labels[r]}` | " + " | ".join(_q(float(M[r, c])) if M[r, c] else "" for c in written) + " |"
                  for r in read]
        bias = [f"`{labels[c]}` {_q(float(w.bo[s, c]))}" for c in written if w.bo[s, c]]
        return table, [f"* `{labels[c]}`: {WRITTEN[labels[c]]}." for c in written] + \
            [f"* the layer's output bias `bo`: {', '.join(bias)}."]

    def weights_table(self) -> list[str]:
        """Per column: the exact weight, the float64 pass's weight as its rational, and its relative deviation."""
        A = self.float_parts.A[self.head]
        T = A.shape[0]
        u = sp.Rational(rounding.unit_roundoff(np.float64))
        lines = ["| column i | token | exact weight 1/(i+1) | float64 weight, as its rational | "
                 "delta = (i+1) weight - 1 | in units of u |", "| --- | --- | --- | --- | --- | --- |"]
        for i in range(T):
            row = A[i, : i + 1]
            _require(bool(np.all(row == row[0])) and not A[i, i + 1:].any(),
                     f"the averaging head's float64 weights at column {i} are not one value over columns 0..{i}")
            weight = sp.Rational(float(row[0]))
            delta = (i + 1) * weight - 1
            _require(abs(delta) <= u, f"column {i}: the weight's rounding {delta} exceeds u")
            lines.append(f"| {i} | {COLUMN_NAMES[i]} | `{sp.Rational(1, i + 1)}` | `{weight}` | `{delta}` | `{delta / u}` |")
        return lines

    def closed_forms(self) -> dict:
        """``z``, ``A'``, ``b'`` and the averaged ``v = z + lam bos`` at every column, in rationals, from
        docs/DEPTH.md section 1: example k's y~ column is 2k - 1, and columns i >= 2k - 1 have seen it."""
        lam = sp.Rational(LAM)
        xs, ys = [sp.Rational(float(v)) for v in TASK[0][:, 0]], [sp.Rational(float(v)) for v in TASK[1]]
        T = 2 * len(ys) + 1
        seen = [[k for k in range(len(ys)) if 2 * k + 1 <= i] for i in range(T)]
        return {
            "z": [xs[(i - 1) // 2] ** 2 if i % 2 else sp.Integer(0) for i in range(T)],
            "A": [(lam + sum(xs[k] ** 2 for k in seen[i])) / (i + 1) for i in range(T)],
            "b": [sum((xs[k] * ys[k] for k in seen[i]), sp.Integer(0)) / (i + 1) for i in range(T)],
            "Abos": [sp.Rational(1, i + 1) for i in range(T)],
        }

    def values_table(self) -> tuple[list[str], float, float]:
        """Per column: the registers ``SHOWN`` in the network (real arithmetic) and in exact rationals; the largest
        gap between the layer and its instructions on the layer's own input, and between the network and the
        exact values (the exact machine is held to them too)."""
        layout, T = self.program.layout, self.after.shape[0]
        digits = forward_exact.DIGITS
        exact_values = self.closed_forms()
        steps = schedule.fused(self.program)[AVERAGES - 1].instructions
        last = max(steps) + 1
        for name, values in exact_values.items():
            machine = self.exact[last][layout.span(name)[0]]
            _require(all(abs(float(m) - float(v)) <= 1e-15 for m, v in zip(machine, values)),
                     f"the exact machine's {name} is not docs/DEPTH.md's closed form")
        # the averaging layer's instructions on the network's own input (50 digits): the layer's mechanism error
        state = np.frompyfunc(lambda v: sp.Float(v, digits), 1, 1)(self.before[:, : self.program.width].T)
        for ins in self.program.instructions[min(steps):last]:
            state = ins.apply(state, layout)
        network = {name: [sp.Float(self.after[c, self.row(name)], digits) for c in range(T)]
                   for name in ("A", "Abos", "b")}
        own = max(float(abs(network[name][c] - state[layout.span(name)[0], c])) for name in network
                  for c in range(T))
        machine = max(float(abs(network[name][c] - exact_values[name][c])) for name in network for c in range(T))
        head = "| column i | " + " | ".join(f"`{name}` network | `{name}` exact" for name in SHOWN) + " |"
        lines = [head, "| --- |" + " --- | --- |" * len(SHOWN)]
        for c in range(T):
            cells = []
            for name in SHOWN:
                net_value = (self.before if name == "z" else self.after)[c, self.row(name)]
                cells += [f"{float(net_value):.13g}", f"`{exact_values[name][c]}`"]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        return lines, own, machine

    def lemma_bounds(self) -> str:
        """gamma_{i+2} mean_{j<=i} |v_j| at each column, for A's values v = z + lam bos."""
        z = self.closed_forms()["z"]
        v = [abs(z[j] + (sp.Rational(LAM) if j == 0 else 0)) for j in range(len(z))]
        u = mpmath.mpf(rounding.unit_roundoff(np.float64))
        with mpmath.workdps(30):
            bounds = [(i + 2) * u / (1 - (i + 2) * u) * mpmath.mpf(sp.Rational(sum(v[: i + 1]), i + 1))
                      for i in range(len(v))]
        return ", ".join(f"{float(b):.1e}" for b in bounds)

    def section(self) -> list[str]:
        w, s, h = self.net.weights, self.stored, self.head
        step = schedule.fused(self.program)[AVERAGES - 1]
        listing = "; ".join(str(self.program.instructions[k]) for k in step.instructions)
        value_table, written = self.value_map()
        values, own, machine = self.values_table()
        declared = {name: err for name, err, _ in self.net.layers[AVERAGES - 1].parts}
        avg_declared = max(err for name, err in declared.items() if name.startswith("avg"))
        X, y, xq = TASK
        _require(not np.any(w.Wq[s, h]) and not np.any(w.Wk[s, h]), "the averaging head's Wq or Wk is not zero")
        _require(own < 1e-40, f"the averaging layer is {own:.1e} off its instructions in real arithmetic")
        return [
            "### 10a. The averaging head (`avg`), on a compiled network", "",
            f"`programs.ridge_newton(1, 2, lam={LAM}, x_norm={X_NORM})` compiled for the box |x|, |y| <= 1 "
            "(`compile(..., x_max=1, y_max=1)`, fused), on x = "
            f"({', '.join(f'{v:g}' for v in X[:, 0])}), y = ({', '.join(f'{v:g}' for v in y)}), x_q = {xq[0]:g}: "
            f"{len(y) * 2 + 1} columns, {', '.join(COLUMN_NAMES)}. Its layer {AVERAGES} runs, in one attention "
            f"and its MLP:", "", f"    {listing}", "",
            f"Layer 1 wrote `z = x x_prev^T` and `xy = x y_in` (x_k x_k^T and x_k y_k at the y~ columns, 0 "
            "elsewhere) and the indicator `bos` of column 0. Head "
            f"{h} of layer {AVERAGES} is the averaging head: its query and key weights are zero (all "
            f"{w.Wq[s, h].size} entries of each), so every score is 0. Its value and output weights, as the compiler builds "
            "them (`Wv Wo` of the head: entry (r, c) is what row c gains per unit of the mean of row r):", "",
            *value_table, "",
            "Each column of the table is one register, the averages composed with the affs of the same attention "
            "(an average is linear, so the head averages each aff's form):", "", *written, "",
            "The causal softmax of equal scores weighs columns 0..i by `1/(i+1)`. The numpy pass computes it as "
            "`exp(0) = 1` over a sum of i + 1 ones, which is exact, and one division, which rounds: its weights, "
            "read from the float64 pass of this network (a rounded division of integers, the same on every "
            "machine), against the exact ones (u = 2^-53):", "", *self.weights_table(), "",
            f"Lemma `uniform_attention` ({STATUS['uniform_attention']}): each weight is `(1 + delta)/(i+1)` with "
            "`|delta| <= u`, and the head's output is within `gamma_{i+2} mean_{j<=i} |v_j|` of the exact mean "
            "(the weight's rounding plus the dot product's). For `A`, whose values are `v = z + lam bos`, that "
            f"bound is, at columns 0 to 4: {self.lemma_bounds()}. The compiler declares {avg_declared:.1e} for "
            f"the averages of this layer (from the registers' bounds, not this prompt's values).", "",
            "The registers in every column: the network's, its weights run in real arithmetic "
            "(`construct.transformer.forward_exact`; `z` as layer 1 wrote it, `A` and `b` after this layer), and "
            "the exact values (docs/DEPTH.md section 1: `A' = (lam + S_k)/(i + 1)`, `b' = X_k^T y_k/(i + 1)` "
            "over the k examples before column i; the exact machine on the same prompt holds them too, checked "
            "when this file is generated):", "", *values, "",
            "In real arithmetic the layer's `A`, `Abos` and `b` are its instructions applied to its own input, to "
            "all 50 digits of the pass (the weights `1/(i+1)` are exact there, and the self head clears rows that "
            "hold 0 in every column): the averaging adds no error of its own. The network's `A` and `b` differ "
            f"from the exact values by up to {machine:.1e}, what layer 1 (its movs' leak and its GeLU products, "
            "section 4) left in `z` and `xy`, averaged. A float64 run adds the rounding above.", "",
            f"Status: `uniform_attention` ({STATUS['uniform_attention']}) for the weights and the rounding; "
            f"`layer_avg` ({STATUS['layer_avg']}: {_hypotheses('layer_avg')}) checks the compiled averaging "
            "layer in real arithmetic on the networks it builds, not this one. "
            f"{MEASURED.capitalize()}: `python -m pytest tests/raw/test_avg.py` (every compiled layer within its declared error, "
            "every answer within its certified bound, the certificate's weight gap against the computed weights).",
            "",
        ]


def double(P: sp.Matrix, R: sp.Matrix) -> tuple[sp.Matrix, sp.Matrix]:
    """One layer of the loop, as ``programs.ridge_newton``'s MLP computes it: ``P <- P (I + R)``, ``R <- R R``."""
    return P * (sp.eye(R.rows) + R), R * R


def _newton_schulz_example() -> dict:
    """The 2 x 2 example in exact rationals: A', b', R_0 = I - c A', P_m for m = 2^t, t = 0..NS_STEPS."""
    lam, x, y = NS_LAM, NS_X, NS_Y
    I = sp.eye(2)
    x_norm = sp.sqrt((x.T * x)[0])
    Lam = ridge_newton.spectrum_bound(lam, x_norm)
    c = 1 / Lam
    A = (lam * I + x * x.T) / (NS_COLUMN + 1)
    b = x * y / (NS_COLUMN + 1)
    R0 = I - c * A
    w_star = A.inv() * b
    P, R, rows = I, R0, []
    for t in range(NS_STEPS + 1):
        m = 2**t
        Pm = sum((R0**j for j in range(m)), sp.zeros(2, 2))
        _require(P == Pm, f"t = {t}: the loop's P is not sum_(j < {m}) R_0^j")
        _require(c * P * A == I - R0**m, f"t = {t}: c P_m A' is not I - R_0^m")
        if t:
            _require(c * P == rows[-1]["X"] * (2 * I - A * rows[-1]["X"]), f"t = {t}: not the Newton-Schulz iterate")
        w = c * P * b
        rows.append({"t": t, "m": m, "X": c * P, "w": w,
                     "residual": max(abs(e) for e in (R0**m).eigenvals()),
                     "error": sp.sqrt(((w - w_star).T * (w - w_star))[0] / (w_star.T * w_star)[0])})
        P, R = double(P, R)
    eigen = sorted(A.eigenvals())
    _require(A * b == eigen[-1] * b, "b' is not an eigenvector of A' for its larger eigenvalue")
    last = rows[-1]
    w1, m = last["w"], last["m"]
    refined = 2 * w1 - last["X"] * (A * w1)  # w = 2 w1 - c P (A' w1): one step of iterative refinement
    _require(refined == (I - R0 ** (2 * m)) * w_star, "the refinement is not (I - R_0^(2m)) w*")
    return {"c": c, "Lam": Lam, "A": A, "b": b, "R0": R0, "Ainv": A.inv(), "w_star": w_star, "rows": rows,
            "kappa": 1 / (c * eigen[0]), "eigen": eigen,
            "refined": sp.sqrt(((refined - w_star).T * (refined - w_star))[0] / (w_star.T * w_star)[0])}


def _machine_agrees(example: dict) -> None:
    """The exact machine running ``programs.ridge_newton`` on the example's prompt holds P_(2^s) in P after step s
    (its constants I and c are floats, so to 1e-12)."""
    lam, x = float(NS_LAM), [float(v) for v in NS_X]
    program = programs.ridge_newton(2, 1, lam, x_norm=1.0)
    states = program.run(np.array([x]), np.array([float(NS_Y)]), np.zeros(2), trace=True)
    loop = [k + 1 for k, ins in enumerate(program.instructions) if ins.kind == "mul" and ins.writes == "P"]
    rows = program.layout.rows("P")
    for t, row in enumerate(example["rows"][1:], start=1):
        got = np.array(states[loop[t - 1]][rows, NS_COLUMN], dtype=float)
        want = np.array(row["X"] / example["c"], dtype=float).ravel()
        _require(np.allclose(got, want, rtol=1e-12, atol=1e-12),
                 f"the machine's P after step {t} is {got}, not P_{2**t} = {want}")


def newton_schulz_section() -> list[str]:
    ex = _newton_schulz_example()
    _machine_agrees(ex)
    kappa = ex["kappa"]
    eps = 1e-10
    box = programs.ridge_newton(2, 1, float(NS_LAM), x_norm=1.0).params["kappa"]
    t_box = ridge_newton.steps(box, eps)
    # no "|" inside a cell: Markdown would split the cell there
    table = ["| t | m = 2^t | c P_m (the iterate X_t) | 2-norm of `I - c P_m A' = R_0^m` | `(1 - 1/kappa)^m` | "
             "`exp(-m/kappa)` | relative error of `w_t = c P_m b'` |", "| --- | --- | --- | --- | --- | --- | --- |"]
    with mpmath.workdps(30):
        for r in ex["rows"]:
            table.append(f"| {r['t']} | {r['m']} | `{_matrix(r['X'])}` | `{r['residual']}` | "
                         f"`{(1 - 1 / kappa) ** r['m']}` | "
                         f"{float(mpmath.exp(-r['m'] * mpmath.mpf(kappa.q) / kappa.p)):.3e} | "
                         f"`{sp.simplify(r['error'])}` |")
    table.append(f"| | | `A'^-1 = {_matrix(ex['Ainv'])}` | | | | |")
    return [
        "### 10b. Newton-Schulz in product form, on a 2 x 2 example", "",
        "`programs.ridge_newton` inverts `A'` by a product: docs/DEPTH.md section 2 derives it (the constant "
        "`c = 1/Lam`, `R_0 = I - c A'`, `P_m = sum_{j<m} R_0^j`, the step count, one refinement). The identities "
        "the loop rests on, one layer per doubling (its MLP forms `R <- R R` and `P <- P (I + R)` from the "
        "layer's input):", "",
        "    P_2m = P_m (I + R_0^m),     c P_m A' = I - R_0^m,", "",
        f"`newton_schulz_product` ({STATUS['newton_schulz_product']}: R a square matrix of any size, every "
        "matrix here a polynomial in it); and, R_0 symmetric with eigenvalues in `[0, 1 - 1/kappa]`, "
        "`|w_t - w*| <= (1 - 1/kappa)^(2^t) |w*| <= exp(-2^t/kappa) |w*| <= eps |w*|` once "
        f"`t = ceil(log2(kappa ln(1/eps)))` (`newton_schulz_convergence`, {STATUS['newton_schulz_convergence']}).",
        "",
        f"The example, in exact rationals (sympy): one example x = ({', '.join(sp.sstr(v) for v in NS_X)}), "
        f"y = {NS_Y}, lam = {NS_LAM}, so |x| = 1 = x_norm, `Lam = lam + x_norm^2/2 = {ex['Lam']}` and "
        f"c = {ex['c']}. At the y~ column (i = {NS_COLUMN}): `A' = (lam I + x x^T)/2 = {_matrix(ex['A'])}`, "
        f"`b' = x y/2 = {_matrix(ex['b'].T)}^T`, `A'^-1 = {_matrix(ex['Ainv'])}` and `w* = A'^-1 b' = "
        f"{_matrix(ex['w_star'].T)}^T`. `A'` has eigenvalues {', '.join(sp.sstr(e) for e in ex['eigen'])}, so "
        f"`R_0 = I - c A' = {_matrix(ex['R0'])}` has {', '.join(sp.sstr(1 - ex['c'] * e) for e in ex['eigen'])} "
        f"and kappa = `1/(c lambda_min(A'))` = {kappa} at this column. The loop from `P = I`, `R = R_0`, one "
        "row per layer:", "", *table, "",
        "Each row is checked when this file is generated, in exact arithmetic: P is the sum "
        "`sum_{j<m} R_0^j`, `c P_m A' = I - R_0^m`, and `c P_m` is the Newton-Schulz iterate "
        "`X_t = X_{t-1} (2I - A' X_{t-1})` from `X_0 = c I`; the exact machine running `programs.ridge_newton` on "
        "this prompt holds the same P after each step (to 1e-12: its constants are floats). The residual is the "
        "larger eigenvalue of R_0 to the m, `(1 - 1/kappa)^m` exactly; `b'` is an eigenvector of `A'` (one "
        "example: `b'` is along x), for the smaller eigenvalue of R_0, so the weights converge faster than the "
        f"bound. The refinement after the loop, `w = 2 w1 - c P (A' w1)` with `w1 = c P b'` (docs/DEPTH.md), is "
        f"`(I - R_0^(2m)) w*` (checked here, at m = {ex['rows'][-1]['m']}): its error is "
        f"`{sp.simplify(ex['refined'])}`, the square of the last row's. The program does not stop at t = 4: it "
        "takes "
        f"`t = ceil(log2(kappa ln(1/eps)))` = {t_box} steps for eps = 1e-10 and the box's kappa = "
        f"`Lam (2n + 1)/lam` = {box:g} (every prompt of the box at n = 1, not this one's {kappa}).", "",
    ]
