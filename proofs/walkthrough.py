"""Write proofs/WALKTHROUGH.md, the construction step by step for a student.

    python -m proofs.walkthrough          # rewrite the file
    python -m proofs.walkthrough --check  # exit 1 if the committed file is out of date

Everything in the file is computed here from the library: the layouts, the
instructions in both notations, the symbolic hidden states (the exact
machine run on sympy symbols), the constants the compiler chooses and the
lemmas' bounds at those constants.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import sympy as sp

from construct import programs
from construct.raw import domain
from construct.compiler import scales
from construct.compiler.bounds import SLACK
from construct.raw.prompt import X_IN, Y_IN, x_columns

from . import PROOFS, layers, lemmas
from .theorems import alpha, examples, lam, vector

PATH = Path(__file__).resolve().parent / "WALKTHROUGH.md"


def _cell(expr) -> str:
    return f"`{sp.sstr(expr)}`" if expr != 0 else "0"


def _layout_table(program) -> list[str]:
    lines = ["| register | rows `[start, stop)` | row labels |", "| --- | --- | --- |"]
    for reg in program.layout:
        labels = reg.labels()
        shown = ", ".join(labels) if len(labels) <= 4 else f"{labels[0]}, ..., {labels[-1]}"
        lines.append(f"| `{reg.name}` | {program.layout.paper(reg.name)} | {shown} |")
    return lines


def _steps(program, X, y, xq) -> list[str]:
    states = program.run(X, y, xq, trace=True)
    final = sp.factor(sp.cancel(states[-1][program.layout.rows(program.readout)][0, -1]))
    T = states[0].shape[1]
    out = []
    for k, ins in enumerate(program.instructions, start=1):
        out += [f"**{k}.** `{ins}` &nbsp; (paper: `{ins.paper(program.layout)}`)", ""]
        reg = program.layout[ins.writes]
        head = "| entry | " + " | ".join(f"column {c} before | column {c} after" for c in range(T)) + " |"
        out += [head, "| --- |" + " --- | --- |" * T]
        before, after = states[k - 1], states[k]
        for label, row in zip(reg.labels(), range(*program.layout.span(ins.writes))):
            cells = " | ".join(f"{_cell(before[row, c])} | {_cell(after[row, c])}" for c in range(T))
            out.append(f"| `{label}` | {cells} |")
        out.append("")
    out += [f"Simplified, the query's prediction is {_cell(final)}.", ""]
    return out


def _chain(title: str, program, d: int, intro: str) -> list[str]:
    X, y, xq, *_ = examples(d, 1)
    return [f"## {title}", "", intro, "", *_layout_table(program), "",
            f"Depth {program.depth}, {program.data_rows} data rows. Each step: the register it writes, before and "
            "after, in every column (every other row is unchanged; the layer proofs check the compiled layers "
            "do the same).", "", *_steps(program, X, y, xq)]


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
    lines = ["## 4. The lemmas, at the constants the compiler chooses (float64)", "",
             "Each approximate mechanism has one constant; `construct/compiler/scales.py` bounds its truncation by the "
             "lemma below and adds a rounding model, then picks the constant that minimises the sum.", ""]
    for p in PROOFS:
        if p.group == "lemmas":
            lines += [f"* **{p.name}**: {p.statement}. *Hypotheses:* {p.hypotheses}."]
    lines += ["", "| mechanism | constant | lemma's bound at it | with rounding |", "| --- | --- | --- | --- |",
              f"| attention selection | N_att = {N_att:.2f} | off-target mass {leak:.2e} | (below eps) |",
              f"| GeLU product (normalised operands) | P = {P:.1f} | {float(lemmas.PRODUCT_BOUND.subs(lemmas.P, P)):.2e}"
              f" | {scales.product_error(P, f64):.2e} |",
              f"| GeLU bypass (abs(u) <= 1) | B = {B:.2f} | "
              f"{float(lemmas.bypass_bound(sp.Float(B, 30), 1).evalf(30)):.2e} | {scales.bypass_error(B, f64):.2e} |",
              "| layer-norm pads | N from the column's bound | rho <= eps/2 by choice of N | |", ""]
    return lines


def _layers_section() -> list[str]:
    net = layers.calibrated_network(programs.sherman_morrison_step(2, 0.5))
    rows = []
    for k, (ins, found) in enumerate(zip(net.program.instructions, layers.check_network(net)), start=1):
        rho = "" if found.rho is None else f"{found.rho:.1e}"
        shown = str(ins).replace("|", "\\|")  # a table cell
        rows.append(f"| {k} | `{shown}` | {found.sharpness:.2f} | {found.leak:.1e} | {rho} | {found.error:.1e} | "
                    f"{found.declared:.1e} |")
    return ["## 5. From the lemmas to the weights", "",
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
            "Every layer of Theorem 2's network at d = 2 (lam = 0.5, bounds calibrated on 16 Gaussian tasks): the "
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


def _errata_section() -> list[str]:
    lines = ["## 6. Errata of the printed chains", ""]
    for p in PROOFS:
        if p.group == "errata":
            lines.append(f"* **{p.name}**: {p.statement}. *As checked:* {p.hypotheses}.")
    return lines + [""]


def _domain_table(values: dict, floors: dict, reasons: dict) -> list[str]:
    lines = ["| register | bound on every entry, every column, every state | why |", "| --- | --- | --- |"]
    for name, bound in values.items():
        lines.append(f"| `{name}` | `{sp.sstr(bound)}` | {reasons.get(name, '')} |")
    for name, floor in floors.items():
        lines.append(f"| `{name}` (floor) | `{sp.sstr(floor)}` | {reasons.get(name + ' floor', '')} |")
    return lines


def _domain_section() -> list[str]:
    X, Y, R, W = sp.symbols("x_max y_max R W", positive=True)
    n = sp.Symbol("n", positive=True, integer=True)
    ridge = domain.ridge(2, n, lam, domain.Box(2, X, Y, R))
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
    radius = domain.sgd_radius(2, alpha_, lam, w0, box)
    sgd = {k: sp.sympify(v).subs(radius, W) for k, v in domain.sgd(2, 2, alpha_, lam, w0, box).values.items()}
    sgd_why = {**prompt_why, "pos_prev": "the index of column i-1", "gate": "lam, or 0 at column 0",
               "x": ridge_why["x"], "w": "the radius W above", "w_src": "the same", "wx": "Cauchy-Schwarz",
               "err": "`|x^T w - y|`", "grad": "`x err`, entrywise", "pen": "`gate w_src`", "w_pred": "w of column i-1",
               "pred": "Cauchy-Schwarz"}
    lines = ["## 7. The domain from the input box", "",
             "`compile(program, x_max=..., y_max=..., x_norm=...)` needs no sample tasks: `construct/raw/domain.py` "
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
            lines.append(f"* **{p.name}**: {p.statement}. *As checked:* {p.hypotheses}.")
    return lines + [""]


def render() -> str:
    d = 2
    sgd = programs.sgd_step(d, alpha, lam, np.array(list(vector("w0", d)), dtype=object))
    sm = programs.sherman_morrison_step(1, lam)
    parts = [
        "# Walkthrough: the construction, step by step", "",
        "Generated by `python -m proofs.walkthrough` from the code; do not edit by hand (a test checks it is up "
        "to date). `python -m proofs` proves every claim made here.", "",
        *_prompt_section(d),
        *_chain("2. Theorem 1: one step of SGD (d = 2)", sgd, d,
                "Loss `(w^T x - y)^2 + lam |w|^2`, step `w1 = w0 - 2 alpha (x (x^T w0 - y) + lam w0)`, prediction "
                "`w1^T x_q`. The paper's chain, with its errata fixed (section 6). Column 0 also takes a step, on "
                "(x_1, 0); only column 2's prediction is the theorem's."),
        *_chain("3. Theorem 2: one Sherman-Morrison update (d = 1)", sm, 1,
                "`A1^{-1} = A0^{-1} - A0^{-1} x x^T A0^{-1} / (1 + x^T A0^{-1} x)` with `A0 = lam I`, "
                "`w = A1^{-1} x_1 y_1`, prediction `w^T x_q`."),
        *_lemmas_section(), *_layers_section(), *_errata_section(), *_domain_section(),
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
