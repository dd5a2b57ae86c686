"""Each compiled layer computes its instruction: the compiler's own weights on a symbolic state.

For every instruction kind we compile a small program with the real
compiler (d = 1, 2, 3), take the float64 weights it ships, read each as the
exact rational it stores, and run one layer on a hidden state whose program
rows are sympy symbols, with every nonlinearity replaced by the limit its
lemma approaches:

* attention is one-hot on the highest-scoring visible token (the scores are
  computed from the actual Wq, Wk at the actual positions) -- lemma
  ``attention_selection`` as N_att -> oo;
* layer norm is ``(x - mean) / s`` with ``s`` the pads' own standard
  deviation ``sqrt(sum_pads x^2 / D)`` -- lemmas ``layer_norm_bypass`` and
  ``layer_norm_division`` as N -> oo;
* a GeLU unit with zero bias (a product unit) is ``u/2 + u^2/sqrt(2 pi)`` --
  lemma ``gelu_product_erf`` as P -> oo; a unit with a bias (a bypass unit)
  is the identity -- lemma ``gelu_bypass`` as B -> oo.

The layer then equals the instruction's semantics (the exact machine run on
the same symbols) except that its coefficients carry the rounding of the
float weights: we check every coefficient of the difference is below
``TOLERANCE`` times the largest coefficient of the result. Every other
program register must come out unchanged exactly, and the compiler's own
rows must hold what the design says (pads restored, mean pad equal to minus
the sum of the other rows, division pads at ``+-N_d den``).

Hypotheses, as the compiled network maintains them: positions are the column
indices; the scratch and division-pad rows are 0 unless the previous layer
wrote them (the next layer clears them, proof ``layer_clears_dirty_rows``).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from construct import Aff, Bounds, Div, Mov, Mul, Program, compile
from construct.compiler.blocks import DIV_NEG, DIV_POS, LN_NEG, LN_POS, MEAN_PAD, ONE, POS_SQ, SCRATCH, ZERO
from construct.raw.prompt import POS, input_registers
from construct.raw.registers import Layout, Register

from .registry import proof, require

TOLERANCE = 1e-12
PADS = (LN_POS, LN_NEG, DIV_POS, DIV_NEG)
T = 3  # columns: enough for every offset the programs use (0, 1, 2)


def exact(array: np.ndarray) -> np.ndarray:
    """The float64 entries as the exact rationals they are."""
    return np.vectorize(lambda value: sp.Rational(float(value)), otypes=[object])(array)


def symbolic_state(net) -> np.ndarray:
    """Program rows as symbols (``label@column``); the compiler's rows at the values the network keeps."""
    layout, w = net.layout, net.weights
    H = np.zeros((layout.width, T), dtype=object)
    H[:] = sp.Integer(0)
    program_rows = set()
    for name in net.program.layout.names:
        program_rows.update(range(*layout.span(name)))
    for r in sorted(program_rows):
        for c in range(T):
            H[r, c] = sp.Symbol(f"{layout.labels[r]}@{c}", real=True)
    for c in range(T):
        H[layout.span(POS)[0], c] = sp.Integer(c)
        H[layout.span(MEAN_PAD)[0], c] = sp.Symbol(f"mean_pad@{c}", real=True)
        for name in (ONE, POS_SQ, LN_POS, LN_NEG):
            H[layout.span(name)[0], c] = exact(w.positions[c, layout.span(name)[0]])
    return H


def ideal_layer(net, l: int, H: np.ndarray) -> np.ndarray:
    """Layer ``l`` of the network on state ``H`` (rows x columns), nonlinearities at their limits."""
    w, layout = net.weights, net.layout
    D = layout.width
    X = attention_part(net, l, H)
    pads = [layout.span(name)[0] for name in PADS if name in layout]
    Z = np.empty_like(X)
    for c in range(T):
        mean = sum(X[:, c]) / D
        scale = sp.sqrt(sum(X[p, c] ** 2 for p in pads) / D)
        Z[:, c] = exact(w.ln_gain[l]) * (X[:, c] - mean) / scale + exact(w.ln_bias[l])
    pre = exact(w.W1[l]).T @ Z + exact(w.b1[l])[:, None]
    bias = w.b1[l]
    G = np.empty_like(pre)
    for unit in range(pre.shape[0]):
        for c in range(T):
            x = pre[unit, c]
            G[unit, c] = x if bias[unit] != 0 else x / 2 + x**2 / sp.sqrt(2 * sp.pi)
    return X + exact(w.W2[l]).T @ G + exact(w.b2[l])[:, None]


def _coefficients(expr, symbols):
    return [abs(float(c)) for c in sp.Poly(sp.expand(expr), *symbols).coeffs()] if expr != 0 else [0.0]


def check_layer(net, l: int = 0) -> None:
    """Layer ``l`` of ``net`` against its instruction, on a symbolic state."""
    program, layout = net.program, net.layout
    ins = program.instructions[l]
    H = symbolic_state(net)
    out = ideal_layer(net, l, H)
    width = program.layout.width
    expected = ins.apply(H[:width].copy(), program.layout)
    symbols = sorted(set().union(*(e.free_symbols for e in H.flat if isinstance(e, sp.Basic))), key=str)
    written = set(range(*layout.span(ins.writes)))
    for r in range(width):
        for c in range(T):
            if r not in written:
                require(sp.expand(out[r, c] - H[r, c]) == 0, f"{ins}: row {layout.labels[r]} changed in column {c}")
                continue
            got, want = out[r, c], expected[r, c]
            if isinstance(ins, Div):  # num / |den|: clear the denominator
                den = sp.Abs(H[layout.span(ins.den)[0], c])
                got, want = sp.expand(got * den), sp.expand(want * den)
            error = max(_coefficients(got - want, symbols))
            scale = max(_coefficients(want, symbols) + [1e-300])
            require(error <= TOLERANCE * scale,
                    f"{ins}: {layout.labels[r]} in column {c} off by {error:.3g} (coefficients up to {scale:.3g})")
    if w_units(net, l):  # what layer norm sees: the mean pad is minus the sum of the other rows
        X = attention_part(net, l, H)
        mp = layout.span(MEAN_PAD)[0]
        rows = [r for r in range(layout.width) if layout.labels[r] not in (*PADS, MEAN_PAD)]
        for c in range(T):
            require(sp.expand(X[mp, c] + sum(X[r, c] for r in rows)) == 0,
                    f"{ins}: the mean pad is not minus the sum of the other rows in column {c}")
    for c in range(T):
        for name in (LN_POS, LN_NEG, ONE, POS_SQ, ZERO):
            row = layout.span(name)[0]
            require(sp.simplify(out[row, c] - H[row, c]) == 0, f"{ins}: {name} changed in column {c}")
def w_units(net, l: int) -> bool:
    """Whether layer ``l``'s MLP has any unit (mul and div layers)."""
    return bool(np.any(net.weights.W1[l]) or np.any(net.weights.W2[l]))


def attention_part(net, l: int, H: np.ndarray) -> np.ndarray:
    """The state after attention, one-hot on each head's highest-scoring visible token.

    The scores come from the actual Wq, Wk at the actual positions (only the
    position rows reach them), so the selection is the weights' own.
    """
    w = net.weights
    positions = w.positions[:T].astype(np.float64)
    heads = []
    for h in range(w.heads):
        scores = (positions @ w.Wq[l, h]) @ (positions @ w.Wk[l, h]).T
        chosen = [int(np.argmax(scores[i, : i + 1])) for i in range(T)]
        heads.append(np.stack([exact(w.Wv[l, h]).T @ H[:, chosen[i]] for i in range(T)], axis=1))
    return H + exact(w.Wo[l]).T @ np.concatenate(heads, axis=0) + exact(w.bo[l])[:, None]


def small_program(d: int, registers: list[tuple[str, tuple]], instructions) -> Program:
    layout = Layout(input_registers(d) + [Register(n, s) for n, s in registers] + [Register("pred", (1,))])
    return Program("layer", d, 1, layout, tuple(instructions))


def small_network(program: Program, floors=None):
    """Compile with every bound 2 (and the given divisor floors); the ideal limits do not depend on them."""
    return compile(program, Bounds({name: 2.0 for name in program.layout.names}, floors or {}))


@proof("layer_mov", "the compiled mov layer copies src of column i - offset into dst, and changes nothing else",
       "d = 1, 2, 3; offsets 0, 1, 2; into another register and in place")
def layer_mov():
    for d in (1, 2, 3):
        for ins in (Mov("x_in", "w", 1), Mov("w", "w", 2), Mov("x_in", "w", 0)):
            check_layer(small_network(small_program(d, [("w", (d,))], [ins])))


@proof("layer_aff", "the compiled aff layer writes W1 r1 + W2 r2 + b, and changes nothing else",
       "d = 1, 2, 3; a matrix term, a scalar term on the output itself, a bias")
def layer_aff():
    for d in (1, 2, 3):
        M = np.arange(1.0, d * d + 1).reshape(d, d) / 7 - 0.5
        ins = Aff("w", (("x_in", M), ("w", -0.3)), bias=np.linspace(-1, 1, d))
        check_layer(small_network(small_program(d, [("w", (d,))], [ins])))
        check_layer(small_network(small_program(d, [("w", (d,))], [Aff("w", bias=0.25)])))


@proof("layer_mul", "the compiled mul layer writes the matrix product, and changes nothing else",
       "d = 1, 2, 3; Ainv x (d x d by d x 1), u u^T (a square), w y in place (through scratch)")
def layer_mul():
    for d in (1, 2, 3):
        regs = [("A", (d, d)), ("u", (d,)), ("S", (d, d))]
        for ins in (Mul("A", "x_in", "u", (d, d, 1)), Mul("u", "u", "S", (d, 1, d)), Mul("u", "y_in", "u", (d, 1, 1))):
            check_layer(small_network(small_program(d, regs, [ins])))


@proof("layer_div", "the compiled div layer writes num / |den|, and changes nothing else",
       "d = 1, 2, 3; den a one-row register with |den| >= its floor; into another register and in place")
def layer_div():
    for d in (1, 2, 3):
        regs = [("num", (d, d)), ("den", (1,)), ("q", (d, d))]
        for ins in (Div("num", "den", "q"), Div("num", "den", "num")):
            check_layer(small_network(small_program(d, regs, [ins]), {"den": 0.5}))


@proof("layer_clears_dirty_rows", "a layer after a div clears its pads, and after an in-place mul its scratch",
       "d = 2; div then mul, in-place mul then aff")
def layer_clears_dirty_rows():
    d = 2
    regs = [("num", (d,)), ("den", (1,)), ("q", (d,)), ("u", (d,))]
    for first, second in ((Div("num", "den", "q"), Mul("q", "y_in", "u", (d, 1, 1))),
                          (Mul("u", "y_in", "u", (d, 1, 1)), Aff("q", (("u", 1.0),)))):
        net = small_network(small_program(d, regs, [first, second]), {"den": 0.5})
        H = ideal_layer(net, 0, symbolic_state(net))
        dirty = [name for name in (DIV_POS, DIV_NEG, SCRATCH) if name in net.layout]
        after = ideal_layer(net, 1, H)
        for name in dirty:
            for r in range(*net.layout.span(name)):
                require(all(sp.expand(after[r, c]) == 0 for c in range(T)), f"{name} not cleared after {first}")
