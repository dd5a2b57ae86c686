"""Write proofs/WALKTHROUGH.md, the construction step by step for a student.

    python -m proofs.walkthrough          # rewrite the file
    python -m proofs.walkthrough --check  # exit 1 if the committed file is out of date

Everything in the file is computed here from the library: the layouts, the
instructions in both notations, the symbolic hidden states (the exact
machine run on sympy symbols), the compiled weights and one run of them
(``worked.py``), the constants the compiler chooses and the lemmas' bounds
at those constants, and the averaging head and the Newton-Schulz product
(``worked_depth.py``). Each claim carries its status (``status.py``). The
construction itself is stated in docs/CONSTRUCTION.md.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from construct import compile, exact, programs
from construct.programs.sgd import sgd_radius
from construct.raw import domain
from construct.compiler import schedule
from construct.mechanisms import scales
from construct.compiler.bounds import SLACK
from construct.raw.prompt import X_IN, Y_IN, tokens, x_columns
from construct.transformer import forward_exact

from . import PROOFS, kappa, layers, lemmas, paper_layout, theorems
from .status import ALL, LIMIT, MEASURED, SIZES, STATUS
from .theorems import alpha, examples, lam, vector
from .worked import Worked
from .worked_depth import Averaging, newton_schulz_section

PATH = Path(__file__).resolve().parent / "WALKTHROUGH.md"


def _cell(expr) -> str:
    return f"`{sp.sstr(expr)}`" if expr != 0 else "0"


def _layout_table(program) -> list[str]:
    """Our layout beside the paper's rows (``paper_layout``), and the two counts."""
    return ["Each register's rows, `[start, stop)`: the paper's, derived from its chain (`proofs/paper_layout.py`: "
            "its registers stacked from row 0 in the order the chain writes them, y at row 0 and x at rows 1..d, "
            "checked against its row count and, for Theorem 1, its w at rows [7, 9) at d = 2), and ours. A step "
            "below prints the paper's notation over our rows; to find a step in the paper, map the rows through "
            "this table.", "", *paper_layout.markdown(program.name, program.d), "", paper_layout.counts(program.name)]


def _steps(program, X, y, xq, notes: dict, columns=None) -> list[str]:
    """Each instruction and the register it writes: before and after in every column, or (``columns``) after, in
    the columns given, simplified. ``notes[k]``: lines shown under step k."""
    states = program.run(X, y, xq, trace=True)
    final = sp.factor(sp.cancel(states[-1][program.layout.rows(program.readout)][0, -1]))
    T = states[0].shape[1]
    out = []
    for k, ins in enumerate(program.instructions, start=1):
        out += [f"**{k}.** `{ins}` &nbsp; (the paper's notation over our layout: `{ins.paper(program.layout)}`)", ""]
        reg = program.layout[ins.writes]
        if columns is None:
            out += ["| entry | " + " | ".join(f"column {c} before | column {c} after" for c in range(T)) + " |",
                    "| --- |" + " --- | --- |" * T]
        else:
            out += ["| entry | " + " | ".join(f"column {c} after" for c in columns) + " |",
                    "| --- |" + " --- |" * len(columns)]
        before, after = states[k - 1], states[k]
        for label, row in zip(reg.labels(), range(*program.layout.span(ins.writes))):
            if columns is None:
                cells = " | ".join(f"{_cell(before[row, c])} | {_cell(after[row, c])}" for c in range(T))
            else:
                cells = " | ".join(_cell(sp.factor(sp.cancel(after[row, c]))) for c in columns)
            out.append(f"| `{label}` | {cells} |")
        out += ["", *notes.get(k, [])]
    out += [f"Simplified, the query's prediction is {_cell(final)}.", ""]
    return out


def _erratum(letter: str, name: str, text: str) -> list[str]:
    """An erratum beside the step it fixes, with the proof that runs the printed step."""
    proof = next(p for p in PROOFS if p.name == name)
    return [f"> **Erratum {letter}.** {text} (`{name}`, {STATUS[name]}: {proof.hypotheses}.)", ""]


MOV_ORDER = ("The paper prints mov's column arguments as (destination, source), the reverse of its definition: "
             "`mov(1, 0, ...)` here. Read as defined, step 1 would copy the empty x slot of column 1 back into "
             "column 0 and step 8 the query column's `w` into column 1, and the chain would predict "
             "`(1 - 2 alpha lam) w0^T x_2`, never using the example; causal attention cannot read a later column "
             "anyway. The program copies from column i - 1 into column i.")


def _theorem1_section(d: int) -> list[str]:
    X, y, xq, *_ = examples(d, 1)
    program = programs.sgd_step(d, alpha, lam, np.array(list(vector("w0", d)), dtype=object))
    notes = {
        1: _erratum("A", "erratum_mov_column_order", MOV_ORDER),
        6: _erratum("B", "erratum_theorem1_penalty_sign",
                    "The paper prints step 6 as `g <- grad - lam w`. That chain predicts with "
                    "`w0 - 2 alpha (x (x^T w0 - y) - lam w0)`, off by `4 alpha lam w0^T x_2`: the penalty would push "
                    "w away from 0. `+lam w` gives the stated update."),
        8: _erratum("A", "erratum_mov_column_order",
                    "Step 8 is printed `mov(2, 1, ...)`: the same reversal as step 1."),
    }
    return [
        f"## 2. Theorem 1: one step of SGD (d = {d})", "",
        "Loss `(w^T x - y)^2 + lam |w|^2`, step `w1 = w0 - 2 alpha (x (x^T w0 - y) + lam w0)`, prediction "
        "`w1^T x_q` (docs/CONSTRUCTION.md section 6). The paper's chain, each erratum beside the step it fixes. "
        "Column 0 also takes a step, on (x_1, 0); only column 2's prediction is the theorem's. "
        f"`theorem1_sgd_step` ({STATUS['theorem1_sgd_step']}: every d, the chain run on registers of any size; "
        "section 11) checks the prediction below against the formula.", "",
        *_layout_table(program), "",
        f"Depth {program.depth}. Each step: the register it writes, before and "
        "after, in every column (every other row is unchanged). The cells are the exact machine run on symbols.",
        "", *_steps(program, X, y, xq, notes)]


def _theorem2_section(d: int) -> list[str]:
    X, y, xq, *_ = examples(d, 1)
    program = programs.sherman_morrison_step(d, lam)
    mov = _erratum("A", "erratum_mov_column_order",
                   "As in Theorem 1, the paper prints this mov's columns as (destination, source); the proof runs "
                   "Theorem 1's chain, and Theorem 2's movs are printed the same way.")
    notes = {
        1: mov,
        4: [f"`Ainv` is stored row-major, `{', '.join(program.layout['Ainv'].labels())}`, and `mul` with shape "
            f"(d, d, 1) reads it as a d x d matrix: `u = Ainv x`.", ""],
        5: [f"`vT = x^T Ainv` has shape (1, d, d): x read as 1 x d, `Ainv` as d x d. Its entries equal u's because "
            "`Ainv` is symmetric (here `I/lam`); at d = 1 the two are one number and the shapes cannot be told "
            "apart. The chain computes both, as the paper does. The n-example `ridge` program "
            "(docs/CONSTRUCTION.md section 8) computes "
            "only u and uses `u^T` for `x^T A^-1`, which relies on `A^-1` staying symmetric: `A_0^-1 = I/lam`, and "
            "each update subtracts the symmetric `u u^T / den1`. `domain_ridge_columns` "
            f"({STATUS['domain_ridge_columns']}: d = 2, n = 2) checks that every column's `Ainv` is `A^-1` of "
            "`lam I` plus a sum of `x x^T`, hence symmetric.", ""],
        9: ["`den1 = 1 + x^T x / lam >= 1`, so `|den1| = den1` and the division by its absolute value (section 4d) "
            "is the division Sherman-Morrison needs.", ""],
        13: mov,
        14: _erratum("C", "erratum_theorem2_final_shape",
                     "The paper prints step 14 with shape (d, 1, 1): w read as d x 1 times the first row of x read "
                     "as 1 x 1, which writes the d numbers `w_i x_q1` into a one-row register. The dot product "
                     "`w^T x_q` is (1, d, 1)."),
    }
    return [
        f"## 3. Theorem 2: one Sherman-Morrison update (d = {d})", "",
        "`A1^{-1} = A0^{-1} - A0^{-1} x x^T A0^{-1} / (1 + x^T A0^{-1} x)` with `A0 = lam I`, "
        "`w = A1^{-1} x_1 y_1`, prediction `w^T x_q` (docs/CONSTRUCTION.md section 7). "
        f"`theorem2_sherman_morrison_step` ({STATUS['theorem2_sherman_morrison_step']}: every d, the chain run on "
        f"registers of any size) checks the prediction; `sherman_morrison_identity` "
        f"({STATUS['sherman_morrison_identity']}: matrices of any size) the identity.", "",
        *_layout_table(program), "",
        f"Depth {program.depth}. Each step: the register it writes after the step, "
        "at the y~ column (1), where the update happens, and the query column (2), simplified. Column 0 runs "
        "the same update on (x_1, 0) and nothing reads it.", "",
        *_steps(program, X, y, xq, notes, columns=(1, 2))]


def _prompt_section(d: int) -> list[str]:
    X, y, xq, *_ = examples(d, 1)
    program = programs.sgd_step(d, alpha, lam, np.array(list(vector("w0", d)), dtype=object))
    H = program.encode(X, y, xq)
    T = H.shape[1]
    rows = [*range(*program.layout.span(Y_IN)), *range(*program.layout.span(X_IN)), program.layout.span("pos")[0]]
    lines = ["## 1. The prompt", "",
             f"An input x becomes the token `[0, x]`, its label y the token `[y, 0]`; the prompt "
             f"`x~_1, y~_1, x~_q` is a hidden state with one column per token (here d = {d}, one example). "
             "Row 0 is the y slot, rows 1..d the x slot, and `pos` holds the column index; every other row starts "
             f"at 0. Predictions are read at the x~ columns {[int(c) for c in x_columns(1)]}.", "",
             "| row | " + " | ".join(f"column {c}" for c in range(T)) + " |", "| --- |" + " --- |" * T]
    for r in rows:
        lines.append(f"| `{program.layout.labels[r]}` | " + " | ".join(_cell(H[r, c]) for c in range(T)) + " |")
    return lines + [""]


def _lemmas_section() -> list[str]:
    f64 = np.float64
    N_att, P, B = scales.attention_sharpness(f64), scales.product_scale(f64), scales.bypass_offset(f64)
    leak = float(lemmas.leak_bound(N_att))
    lines = ["## 5. The lemmas, at the constants the compiler chooses (float64)", "",
             "Each approximate mechanism has one constant; `construct/mechanisms/scales.py` bounds its truncation by the "
             "lemma below and adds a rounding model, then picks the constant that minimises the sum.", ""]
    for p in PROOFS:
        if p.group == "lemmas":
            lines += [f"* **{p.name}** ({STATUS[p.name]}): {p.statement}. *Hypotheses:* {p.hypotheses}."]
    lines += ["", "The truncation column is the lemmas' bound at the constant (proved for all values under the "
              "hypotheses above). The rounding column adds the rounding model of `scales.py`: a GeLU unit's output "
              "is within `KAPPA eps s` of gelu at its exact pre-activation, s the bound of the pre-activation (a "
              f"product unit) or B + 1 (a bypass unit). {kappa.quoted()}. That column is {MEASURED}, not proved.", "",
              "| mechanism | constant | lemma's bound at it | with rounding (model) |", "| --- | --- | --- | --- |",
              f"| attention selection | N_att = {N_att:.2f} | off-target mass {leak:.2e} | (below eps) |",
              f"| GeLU product (normalised operands) | P = {P:.1f} | {float(lemmas.PRODUCT_BOUND.subs(lemmas.P, P)):.2e}"
              f" | {scales.product_error(P, f64):.2e} |",
              f"| GeLU bypass (abs(u) <= 1) | B = {B:.2f} | "
              f"{float(lemmas.bypass_bound(sp.Float(B, 30), 1).evalf(30)):.2e} | {scales.bypass_error(B, f64):.2e} |",
              "| layer-norm pads | N from the column's bound | rho <= eps/2 | |", "",
              "rho <= eps/2 holds by construction: `scales.pad_size` solves the lemma's bound "
              "`(|v|^2 + D e) / (2 N^2 c^2) <= eps/2` for N, with |v|^2 the domain's bound on the column and c the "
              f"divisor's floor (1 for the permanent pads). The layer proofs check it exactly ({SIZES}: the networks "
              "of section 6 and `proofs/layers.py`), pads and all.", ""]
    return lines


def _layers_section() -> list[str]:
    # the domain from the input box: bounds by exact arithmetic on the box, the same on every machine (a calibration
    # runs the float64 machine, whose last bits, and so the constants built on them, depend on BLAS)
    net = compile(programs.sherman_morrison_step(2, 0.5), x_max=1.0, y_max=1.0, fuse=False)
    rows = []
    for k, (ins, found) in enumerate(zip(net.program.instructions, layers.check_network(net)), start=1):
        rho = "" if found.rho is None else f"{found.rho:.1e}"
        shown = str(ins).replace("|", "\\|")  # a table cell
        rows.append(f"| {k} | `{shown}` | {found.sharpness:.2f} | {found.leak:.1e} | {rho} | {found.error:.1e} | "
                    f"{found.declared:.1e} |")
    return ["## 6. From the lemmas to the weights", "",
            "The layer proofs (`proofs/layers.py`) compile programs with the real compiler, read its float64 weights "
            "as the exact rationals they are, and check every layer in real arithmetic at the constants it actually "
            "has; no nonlinearity is taken to a limit:", "",
            "* attention: from Wq, Wk and the position table, each head's score is `N (2 (i - offset) j - j^2)` plus "
            "a function of i, so by attention_selection the column `max(i - offset, 0)` wins by N per unit of "
            "distance and the softmax mass off it is at most the leak (design: at most 1e-3 eps);",
            "* layer norm (mul, div): the column sums to 0 (the mean pad), its active pads are `+-N c` (c = 1, or "
            "c = den for a division) and W1 is 0 on them, so by layer_norm_bypass / layer_norm_division (any width) "
            "a unit sees `k (W1^T x) / (N sqrt(2/D))` with `k = 1/(|c| sqrt(1 + rho))`, rho at most its bound "
            "(design: at most eps/2);",
            "* MLP (mul, div), gelu kept as an unknown function g: each unit is one of gelu_product_bound's (the "
            "operand entries, scale m P, Richardson weight `w_m sqrt(pi/2) (m P)^2 S_a S_b`) or gelu_bypass's "
            "(`Q g(num/(Q |den|) + B) - Q B`), up to the float rounding of its weights (at most 4 eps, carried "
            "through gelu_slope), and its W1 column sums to 0 (the zero-sum compensation);",
            "* the lemmas' truncation, rho, the weight rounding and the leak add up to at most the layer's declared "
            "error. The rounding of a run is not part of it: the declared error adds an allowance for it (the rounding "
            "model of `scales.py`), which these proofs do not check.", "",
            f"Status: {SIZES}. `layer_mov`, `layer_aff`, `layer_mul`, `layer_div` and `layer_clears_dirty_rows` "
            "compile small programs at d = 1, 2, 3 with every instruction shape the programs use; `layer_programs` "
            "every layer of the four programs at the sizes it names, compiled one layer per instruction (`fuse=False`); "
            "`layer_programs_fused` the same programs as `compile` builds them by default (section 8).", "",
            "Every layer of Theorem 2's network at d = 2 (lam = 0.5, the domain of the input box |x_i|, |y| <= 1): the "
            "sharpness the weights give (least over the two heads), its leak, the bound on rho, the error bound the "
            "proof reaches in real arithmetic and the error the compiler declares.", "",
            "| layer | instruction | N' | leak | rho | proved | declared |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows, "",
            "| instruction | attention | MLP |", "| --- | --- | --- |",
            "| mov | source head on column i - offset adds `src`; self head subtracts the old `dst` | off |",
            "| aff | self head adds `sum W_j r_j - out`, the bias adds `b` | off |",
            "| mul | self head clears `out` (copies an overwritten operand to scratch) and writes the mean pad | "
            "three-scale GeLU products (Richardson) |",
            "| div | self head writes pads `+-N_d den`, clears `out`, the mean pad; the bias lifts the permanent pads |"
            " one bypass unit per entry; the bias restores the pads |", ""]


def _docstring_part(fn, start: str) -> str:
    """The paragraph of ``fn``'s docstring that begins with ``start``, on one line."""
    paragraphs = inspect.getdoc(fn).split("\n\n")
    found = [p for p in paragraphs if p.startswith(start)]
    if len(found) != 1:
        raise ValueError(f"{fn.__name__}'s docstring has no paragraph starting {start!r}")
    return " ".join(found[0].split()).replace("``", "`")  # reST literals as Markdown code


def _escape(text: str) -> str:
    """A table cell's text: a bare ``|`` would end the cell."""
    return text.replace("|", "\\|")


def _domain_table(values: dict, floors: dict, reasons: dict) -> list[str]:
    lines = ["| register | bound on every entry, every column, every state | why |", "| --- | --- | --- |"]
    for name, bound in values.items():
        lines.append(f"| `{name}` | `{sp.sstr(bound)}` | {_escape(reasons.get(name, ''))} |")
    for name, floor in floors.items():
        lines.append(f"| `{name}` (floor) | `{sp.sstr(floor)}` | {_escape(reasons.get(name + ' floor', ''))} |")
    return lines


def _domain_section() -> list[str]:
    X, Y, R, W = sp.symbols("x_max y_max R W", positive=True)
    n = sp.Symbol("n", positive=True, integer=True)
    ridge = programs.get("ridge").theory(2, n, lam, domain.Box(2, X, Y, R))
    ridge_why = {
        "x": "`x_in(i-1) - x_in(i)`: one of the two is 0", "Ainv": "`lam I <= A`, so `0 < A^-1 <= I/lam`",
        "Ainv_src": "the same, of column i-2", "w": "ridge on at most n labels `|y| <= y_max`: `|w| <= |y|/(2 sqrt(lam))`",
        "w_src": "the same", "u": "`|A^-1 x| <= |x|/lam`", "wx": "Cauchy-Schwarz", "den": "`0 <= x^T A^-1 x <= |x|^2/lam`",
        "e": "`|y - w^T x|`", "den1": "`1 + den`", "gain": "`u/den1 = A'^-1 x`, AM-GM; and `<= |u|`",
        "corr": "`0 <= u u^T/den1 = A^-1 - A'^-1 <= A^-1`; and `<= |gain| |u|`",
        "step": "`|gain| |e|`; and the difference of two ridge weights", "w_pred": "w of column i-1",
        "pred": "Cauchy-Schwarz", "den1 floor": "`1 + x^T A^-1 x`, `A^-1` positive definite",
    }
    prompt_why = {"y_in": "declared", "x_in": "declared", "pos": "the column index"}
    alpha_ = sp.Symbol("alpha", nonnegative=True)
    w0 = np.array(list(vector("w0", 2)), dtype=object)
    box = domain.Box(2, X, Y, R)
    radius = sgd_radius(2, alpha_, lam, w0, box)
    sgd = {k: sp.sympify(v).subs(radius, W) for k, v in
           programs.get("sgd").theory(2, 2, alpha_, lam, w0, box).values.items()}
    sgd_why = {**prompt_why, "pos_prev": "the index of column i-1", "gate": "lam, or 0 at column 0",
               "x": ridge_why["x"], "w": "the radius W above", "w_src": "the same", "wx": "Cauchy-Schwarz",
               "err": "`|x^T w - y|`", "grad": "`x err`, entrywise", "pen": "`gate w_src`", "w_pred": "w of column i-1",
               "pred": "Cauchy-Schwarz"}
    lines = ["## 9. The domain from the input box", "",
             "`compile(program, x_max=..., y_max=..., x_norm=...)` needs no sample tasks: each algorithm's `theory` (`construct/programs/`) "
             "bounds every register in every column and every state from the box `|x_i| <= x_max`, "
             "`|x| <= R = x_norm` (default `sqrt(d) x_max`), `|y| <= y_max`, because every column runs the learner "
             "on examples of the box: `(x_k, y_k)` at the y~ columns, `(-x_k, 0)` at the x~ columns, `(0, 0)` at "
             "column 0. The compiler raises each bound by a slack "
             f"(2^{int(np.log2(SLACK[np.dtype(np.float64)]))} in float64, 2^{int(np.log2(SLACK[np.dtype(np.float32)]))} "
             "in float32) that covers its own rounding, so a value computed at an attained bound is not refused.", "",
             "**ridge** (d = 2, any n):", "", *_domain_table(ridge.values, ridge.floors, {**prompt_why, **ridge_why}), "",
             "**sgd** (d = 2, n = 2; `W` bounds `|w|`): `W = max_{m <= n} B_m`, "
             "`B_m = rho^m |w0| + 2 alpha y_max R sum_{j<m} rho^j`, `rho = max(|1 - 2 alpha lam|, "
             "|1 - 2 alpha (lam + R^2)|)`; compile refuses `rho > 1`, i.e. `alpha > 1/(R^2 + lam)`.", "",
             *_domain_table(sgd, {}, sgd_why), "", "The proofs:", ""]
    for p in PROOFS:
        if p.group == "domains":
            lines.append(f"* **{p.name}** ({STATUS[p.name]}): {p.statement}. *As checked:* {p.hypotheses}.")
    return lines + [""]


def _intro() -> list[str]:
    return [
        "# Walkthrough: the construction, step by step", "",
        "Generated by `python -m proofs.walkthrough` from the code; do not edit by hand (a test checks it is up "
        "to date). The construction is stated in [docs/CONSTRUCTION.md](../docs/CONSTRUCTION.md); lemma and "
        "theorem numbers are the paper's (Akyurek et al., ICLR 2023). Every claim here carries one of four "
        "statuses:", "",
        f"* **{ALL}**: a sympy proof for every value of its variables, under the hypotheses it states "
        "(`python -m proofs NAME`);",
        f"* **{SIZES}**: checked exactly, symbolically or in rational arithmetic, at the dimensions and example "
        "counts the proof lists, and not beyond (`python -m proofs NAME`);",
        f"* **{LIMIT}**: an expansion as a scale goes to infinity (`python -m proofs NAME`);",
        f"* **{MEASURED}**: what a float64 run does, checked by tests on sample tasks (section 11 gives the "
        "commands); not proved. No number here comes from a float64 run: its last bits depend on the machine, "
        "so the network's values are printed as it computes them in real arithmetic. (The one exception, the "
        "averaging head's softmax weights in section 10a, are each one rounded division of integers, the same "
        "on every machine.)", "",
        "Section 11 lists every proof with its status. `python -m proofs` runs them all.", "",
        "## 0. Indices", "",
        "Rows and columns are 0-based and a row range is half-open, `[start, stop)`: a register of k rows "
        "starting at row s is `[s, s + k)`. The paper names a row range by its two ends (its `mov(s, t, i, j, "
        "i', j')` copies rows \"between i and j\" of column s into rows \"between i' and j'\" of column t) and "
        "numbers the tokens of its chains from 0. Beside each step of sections 2 and 3, *the paper's notation over "
        "our layout* keeps the paper's argument order with our rows written `[start, stop)`: `[1, 3)` is rows 1 "
        "and 2, the x slot at d = 2. The paper's own rows differ (it counts from row 0 with y and x, and writes "
        "some registers over rows we keep apart); each theorem's table maps one to the other. Matrix registers "
        "are stored row-major (`Ainv[0,0], Ainv[0,1], Ainv[1,0], Ainv[1,1]`).", "",
        "The hidden state is D x T here, one column per token, as in docs/CONSTRUCTION.md; the forward pass "
        "stores its transpose (section 1 there).", "",
    ]


ROLES = {
    "y_in": "the label slot (embedding)", "x_in": "the input slot (embedding)",
    "pos": "the column index j (position table)",
    "pos_prev": "the index of column i-1", "gate": "lam, or 0 at column 0", "x": "the example this column updates on",
    "w": "the weights after this column's updates", "w_src": "w of column i-2", "wx": "x^T w_src",
    "err": "wx - y", "grad": "x err", "pen": "gate w_src", "w_pred": "w of column i-1", "pred": "the prediction",
    "one": "1 (position table): the queries' constant", "pos_sq": "j^2 (position table): the keys' square",
    "ln_pad_pos": "+N (position table): the layer-norm pad", "ln_pad_neg": "-N (position table): the layer-norm pad",
    "zero": "always 0: carries the MLP's zero-sum compensation",
    "mean_pad": "minus the column's sum, written before each layer norm",
}


def _n_examples_section() -> list[str]:
    d, n = 1, 2
    X, y, xq, *_ = examples(d, n)
    program = programs.sgd(d, n, alpha, lam)
    states = program.run(X, y, xq, trace=True)
    T = 2 * n + 1
    setup, block = 5, 6
    rows = []
    for k, ins in enumerate(program.instructions, start=1):
        part = "setup" if k <= setup else (f"block {(k - setup - 1) // block + 1}" if k <= setup + n * block
                                           else "predict")
        row = program.layout.span(ins.writes)[0]
        cells = " | ".join(_cell(sp.factor(states[k][row, c])) for c in range(T))
        rows.append(f"| {k} | {part} | `{ins}` | {cells} |")
    alpha_n, lam_n = 0.1, 0.1
    net = compile(programs.sgd(d, n, alpha_n, lam_n), x_max=1.0, y_max=1.0, fuse=False)
    task = (np.array([[0.6], [-0.4]]), np.array([0.5, -0.3]), np.array([0.7]))
    states = forward_exact.hidden_states(net.weights, tokens(*task))
    layout = net.layout
    layout_rows = [f"| `{reg.name}` | {layout.paper(reg.name)} | "
                   f"{'program' if reg.name in program.layout else 'compiler'} | {ROLES[reg.name]} |" for reg in layout]
    compiler_rows = [name for name in layout.names if name not in program.layout and name != "zero"]
    embedded = [f"| `{name}` | " + " | ".join(f"{float(states[0][c, layout.span(name)[0]]):.6g}" for c in range(T))
                + " |" for name in compiler_rows]
    read = states[-1][x_columns(n), layout.span(program.readout)[0]]  # the network in real arithmetic
    want = exact.predictions(net.program, *task)  # one-pass SGD in 50 digits
    with mpmath.workdps(exact.DIGITS):
        worst = max(abs(g - w) for g, w in zip(read, want))
    return [
        "## 7. n examples: sgd(d = 1, n = 2), and the rows the compiler adds", "",
        "The paper's chains answer one query. `programs.sgd` and `programs.ridge` learn from n examples and "
        "predict at every prefix (docs/CONSTRUCTION.md section 8). Every instruction acts on every column, so a "
        "block of instructions runs on all columns n times, and the state travels between the examples' y~ "
        "columns by `mov` with offset 2. Here is one-pass SGD from w0 = 0 at d = 1, n = 2 (T = 5 columns: "
        "x~_1, y~_1, x~_2, y~_2, x~_q), the register each instruction writes, after it, in every column "
        "(the exact machine on symbols):", "",
        "| step | part | instruction | " + " | ".join(f"column {c}" for c in range(T)) + " |",
        "| --- | --- | --- |" + " --- |" * T, *rows, "",
        "What to see in it:", "",
        "* **the example is a difference**: `x <- x_in(i-1) - x_in(i)` is x_k at the y~ column of example k "
        "(its own x slot is empty), `-x_k` at the x~ columns after the first, and 0 at column 0, whose label "
        "slot is 0 too;",
        "* **column 0 is a fixed point**: it updates on the example (0, 0), and the `gate` (`lam (pos - pos of "
        "column i-1)`, 0 at column 0) switches off the penalty there, so column 0 keeps w0 and the y~ column of "
        "example 1, reading `w` two columns back (clamped to column 0), starts from w0;",
        "* **offset-2 mov**: block l moves each y~ column's `w` to the y~ column of the next example, so after "
        "block l the y~ columns of examples 1..l hold their weights, and keep them: their sources no longer "
        "change;",
        "* **prefix predictions**: `w_pred <- w` (offset 1) gives each x~ column the weights of the y~ column "
        "before it; `pred` at columns 0, 2, 4 is the prediction of y_1, y_2 and the query's from 0, 1 and 2 "
        "examples.", "",
        f"`sgd_program` ({STATUS['sgd_program']}: d = 2, n = 2, 3) checks these predictions against the SGD "
        f"recurrence; `ridge_program` ({STATUS['ridge_program']}: d = 2, n = 2) the ridge program's against "
        "`(X^T X + lam I)^-1 X^T y`.", "",
        "`ridge` runs the same pattern with recursive least squares as its block: with `u = A^-1 x_k` and "
        "`den1 = 1 + x_k^T u`, `A^-1 <- A^-1 - (u / den1) u^T` and `w <- w + (u / den1) (y_k - w^T x_k)`. "
        f"Why the second is the ridge weights with the example added (`rls_identity`, {STATUS['rls_identity']}):",
        "", "> " + _docstring_part(theorems.rls_identity, "Derivation."), "",
        f"Compiled (alpha = lam = {alpha_n}, box |x|, |y| <= 1, one layer per instruction), the layout gains the "
        "compiler's rows:", "",
        "| register | rows `[start, stop)` | placed by | holds |", "| --- | --- | --- | --- |", *layout_rows, "",
        "A program that divides also gets `div_pad_pos`, `div_pad_neg` (section 4d); one with an in-place product "
        "(Theorem 2's `w <- w y`) gets `scratch`, where attention copies the operand the MLP overwrites. The "
        "compiler's rows in the embedding, column by column (`zero` is 0 everywhere):", "",
        "| row | " + " | ".join(f"column {c}" for c in range(T)) + " |", "| --- |" + " --- |" * T, *embedded, "",
        f"On x = (0.6, -0.4), y = (0.5, -0.3), x_q = 0.7 the network predicts, in real arithmetic on its weights "
        f"(`construct.transformer.forward_exact`), {', '.join(f'{float(v):.10f}' for v in read)}; one-pass SGD "
        f"gives {', '.join(f'{float(v):.10f}' for v in want)}; the largest difference is {float(worst):.1e}, the "
        "mechanisms' own error. A float64 run adds its rounding (the certificate bounds it on every answer).", "",
    ]


def _fusion_section() -> list[str]:
    cases = [programs.sgd_step(2, 0.1, 0.1, np.zeros(2)), programs.sherman_morrison_step(2, 0.5),
             programs.sgd(2, 4, 0.1, 0.1), programs.ridge(2, 4, 0.5)]
    rows = [f"| `{p.name}` (d = {p.d}, n = {p.n}) | {p.depth} | {len(schedule.fused(p))} |" for p in cases]
    ridge = programs.ridge(2, 1, 0.5)
    steps = schedule.fused(ridge)
    listing = [f"    layer {k}: " + "; ".join(str(ridge.instructions[i]) for i in step.instructions)
               for k, step in enumerate(steps, 1)]
    return [
        "## 8. Fusion: fewer layers than instructions", "",
        "Everything above is the paper's network, one layer per instruction (`compile(program, fuse=False)`). "
        "By default `compile` runs a scheduling pass (`construct/compiler/schedule.py`): a layer's attention "
        "runs any chain of movs and affs, composed into linear forms of the layer's input, and its MLP then runs "
        "muls, or divs by one divisor, that read the state after attention. Lemma 7 (parallel operators) is the "
        "case of independent instructions; composition goes further.", "",
        "| program | instructions (unfused layers) | fused layers |", "| --- | --- | --- |", *rows, "",
        "ridge at d = 2, n = 1, fused:", "", *listing, "",
        f"Status: {SIZES}: `layer_programs_fused` checks every fused layer of the four programs at the sizes it "
        "names as section 6 checks an unfused one, its attention against the movs and affs composed in order and "
        "its MLP against the products or divisions that read them, each instruction within its own declared "
        f"error. On sample tasks ({MEASURED}: `python -m pytest tests/compiler/test_schedule.py`) every fused layer "
        "equals the machine run on its instructions.", "",
    ]


def _depth_section() -> list[str]:
    return [
        "## 10. Depth independent of n: the averaging head and Newton-Schulz", "",
        "The networks above apply one block of layers per example, so their depth grows with n. "
        "[docs/DEPTH.md](../docs/DEPTH.md) builds two whose depth does not (`ridge_newton`, `gd`), from prefix "
        "averages; it derives them and gives each claim its status. Here are its two mechanisms on numbers: the "
        "`avg` instruction in a compiled network, and the Newton-Schulz product on a 2 x 2 example.", "",
        *Averaging().section(), *newton_schulz_section(),
    ]


MEASURED_CLAIMS = [
    ("each compiled layer's error on a run is within the error the compiler declares for it (the rounding model, "
     f"KAPPA = {scales.KAPPA:g})", 'python -m pytest tests/compiler/test_compiler.py -k "every_layer or chain_layers"'),
    ("the rounding model's constant: a GeLU unit of a float64 run is within KAPPA eps s of gelu at its exact "
     "pre-activation (the worst unit over the networks of tests/compiler/test_compiler.py; the test reports its value "
     "beside KAPPA)", "python -m proofs.kappa; python -m pytest tests/proof/test_proofs.py -k kappa -rP"),
    ("layer norm's rho on a run is the documented one", "python -m pytest tests/compiler/test_compiler.py -k rho"),
    ("the compiled networks agree with the closed-form solvers",
     "python -m pytest tests/compiler/test_compiler.py -k closed_forms"),
    ("float32 networks stay within their documented, much larger, bound",
     "python -m pytest tests/compiler/test_compiler.py -k float32"),
    ("erf is as accurate as the floating-point model of the certificate assumes",
     "python -m pytest tests/transformer/test_rounding.py -k erf"),
    ("each answer's certified bound holds against the exact answer (the bound is computed from a stated "
     "floating-point model; the inequalities it uses are the proofs of the certificate group above)",
     "python -m pytest tests/certificate/test_certificate.py"),
    ("a fused layer is its instructions", "python -m pytest tests/compiler/test_schedule.py"),
]


GROUPS = {  # proofs/<group>.py -> its heading in section 11
    "lemmas": "The lemmas (section 5)", "layers": "The compiled layers (sections 6, 8 and 10a)",
    "theorems": "The programs (sections 2, 3, 7 and 10b)", "domains": "The domain (section 9)",
    "errata": "The printed chains (the errata of sections 2 and 3)",
    "certificate": "The certificate group: the inequalities each answer's certified bound uses",
}


def _status_section() -> list[str]:
    proved = []
    for group, heading in GROUPS.items():
        proved += [f"**{heading}** (`proofs/{group}.py`):", ""]
        proved += [f"* `{p.name}`: **{STATUS[p.name]}**. {p.statement}. *As checked:* {p.hypotheses}."
                   for p in PROOFS if p.group == group]
        proved.append("")
    missing = {p.group for p in PROOFS} - set(GROUPS)
    if missing:
        raise ValueError(f"no heading for the proofs of {sorted(missing)}")
    measured_claims = [f"* {claim}: `{command}`" for claim, command in MEASURED_CLAIMS]
    return [
        "## 11. Every claim and its status", "",
        "The proofs (`python -m proofs NAME` runs one; `python -m proofs` prints each one's status):", "", *proved,
        f"{MEASURED.capitalize()}, not proved (tests on sample tasks):", "", *measured_claims, "",
    ]


def render() -> str:
    parts = [
        *_intro(), *_prompt_section(2), *_theorem1_section(2), *_theorem2_section(2), *Worked().section(),
        *_lemmas_section(), *_layers_section(), *_n_examples_section(), *_fusion_section(), *_domain_section(),
        *_depth_section(), *_status_section(),
    ]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs.walkthrough", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what the code gives")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = PATH.read_text() if PATH.exists() else ""
        if current != text:
            print(f"{PATH} is out of date: run python -m proofs.walkthrough", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text)
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
