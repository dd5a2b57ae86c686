"""Each compiled layer, at its finite constants, computes its instruction: theorems on the compiler's own weights.

For every instruction kind we compile small programs with the real compiler
(d = 1, 2, 3, every instruction shape the four programs use, irregular
register bounds), read its float64 weights as the exact rationals they are,
and check one layer in real arithmetic against the lemmas at the constants
the layer actually has. No nonlinearity is taken to a limit. The networks
are compiled one layer per instruction (``fuse=False``, the paper's
construction) and, in ``layer_programs_fused``, as ``compile`` builds them
by default: a fused layer's attention runs several movs and affs, whose
composed forms are checked against the instructions applied in order, and
its MLP the muls (or the divs by one divisor) that read those forms; each
instruction's rows are held to its own declared error. The rounding of the
mean pad's weights in composed forms can leave a column summing to ~1e-16
of a row instead of 0; that mean reaches each unit's input through its W1's
zero-sum defect, which the error carries, and leaves rho in [0, its bound]
(it only lowers the variance, and by no more than the other rows add).

* Attention (every layer). From the actual Wq, Wk and position table, each
  head's score is ``N (2 (i - o - delta) j - j^2)`` plus a function of ``i``,
  with ``o`` the head's offset (the instruction's for mov's source head, 0
  otherwise) and ``|delta| < 1/2``; by lemma ``attention_selection`` the
  token ``max(i - o, 0)`` beats every other visible token by at least
  ``N' = N (1 - 2|delta|)`` per unit of distance, and the softmax mass off
  it is at most ``leak = 2 e^-N' / (1 - e^-N')``. We check, exactly,
  ``leak <= 1e-3 eps`` (the design of ``scales.attention_sharpness``)
  and that its effect on the written entries, ``2 leak max|v|`` per head,
  fits the layer's declared error. The rest of the layer is checked,
  exactly, on the selected token's value (the one-hot output).
* Layer norm (mul, div). The column after attention sums to 0 exactly (the
  mean pad), its two active pads are ``+N c`` and ``-N c`` (``c = 1``, the
  permanent pads; ``c = den``, the division pads, the permanent ones
  removed), and W1 is 0 on every pad; so by lemmas ``layer_norm_bypass`` and
  ``layer_norm_division`` (any width D) a unit's pre-activation is
  ``k (W1^T x) / (N sqrt(2/D))`` plus its bias, ``k = 1/(|c| sqrt(1 + rho))``,
  and ``rho`` is at most ``(sum of the other rows' squared bounds + D e) /
  (2 N^2 floor^2)``, which must be at most ``eps/2`` (``scales.pad_size``).
* The MLP (mul, div), with gelu an uninterpreted function: every unit is one
  of the lemma's -- the same operand entries, scale ``m P``, sign and
  Richardson weight ``w_m sqrt(pi/2) (m P)^2 S_a S_b`` (lemma
  ``gelu_product_bound``), or the bypass ``Q gelu(num / (Q |den|) + B) - Q B``
  (lemma ``gelu_bypass``) -- up to the float rounding of each weight, which
  must be within ``WEIGHT_ROUNDING`` relative and whose effect is bounded
  through lemma ``gelu_slope``. Each unit's W1 column sums to 0 up to
  ``ZERO_SUM_DEFECT`` of its absolute sum (the compensation on row
  ``zero`` that makes layer norm's mean drop out).
* The sum -- lemma truncation, ``rho``, weight rounding, leak -- is within the
  layer's declared error (``net.layers[l].predicted_error``), and each
  constant meets its design target (P >= 4 and the product truncation below
  the compiler's rounding allowance ``34 KAPPA eps P``; B - 1 >= 1 and the
  bypass truncation below ``(KAPPA + 1) eps (B + 1)``).

Every row the instruction does not write comes out exactly as it went in;
the compiler's rows hold what the design says; rows the previous layer left
dirty (scratch, division pads) are cleared.

Hypotheses, which the compiled network maintains or its domain guard checks:
every program register within its bound, every divisor at least its floor,
``|num / den|`` within the bound of the quotient; the embedding writes only
``y_in`` and ``x_in``; the rows a layer leaves dirty hold anything when the
next layer starts (symbols here), every other compiler row holds its design
value. Not covered: the floating-point rounding of a run (the per-answer
certificate's job), and the leak's effect through the MLP's inputs (the
pads, scratch copies), which the design target makes a thousandth of eps.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp

from construct import Aff, Avg, Bounds, Div, Mov, Mul, Program, compile, programs
from construct.instructions import ATTENTION, MLP
from construct.mechanisms import scales
from construct.mechanisms.plan import DIV_NEG, DIV_POS, LN_NEG, LN_POS, MEAN_PAD, ONE, POS_SQ, SCRATCH, UNIFORM, ZERO
from construct.raw.prompt import POS, input_registers
from construct.raw.registers import Layout, Register
from construct.tasks import gaussian_tasks

from . import lemmas
from .registry import proof, require

# A shipped float64 weight is a few roundings of the lemma's exact value; we allow 4 eps, relative (the proofs'
# networks reach 1.5 eps), and carry the actual defects into the error bound.
WEIGHT_ROUNDING = sp.Rational(1, 2**50)
ZERO_SUM_DEFECT = sp.Rational(1, 2**50)  # a unit's W1 column may sum to this times its absolute sum (reached: 0.3 eps)
LEAK_TARGET = sp.Rational(1, 1000)       # the leak is at most this times eps: scales.attention_sharpness's design
DIGITS = 30  # mpmath's precision for the error sums, which involve pi, erf and square roots (far from their limits)
PADS = (LN_POS, LN_NEG, DIV_POS, DIV_NEG)
# The lemmas an MLP instruction's units implement (``Instruction.mechanism``): the proof rebuilds each lemma's units
# from the lemma itself, independently of the compiler's code, so the rules below are keyed by the lemma's name.
PRODUCT, DIVISION = "gelu_product_bound", "layer_norm_division"
DIRTY = (SCRATCH, DIV_POS, DIV_NEG)      # rows a layer may leave for the next one to clear

_z = sp.Symbol("z", nonnegative=True)
_B = sp.Symbol("B", positive=True)
SIZE_NEAR_ZERO = sp.lambdify(_z, lemmas.size_near_zero(_z), "mpmath")
SLOPE_NEAR_ZERO = sp.lambdify(_z, lemmas.slope_near_zero(_z), "mpmath")
BYPASS_BOUND = sp.lambdify(_B, lemmas.bypass_bound(_B, 1), "mpmath")
LEAK_BOUND = sp.lambdify(_B, lemmas.leak_bound(_B), "mpmath")
ROOT_HALF_PI = sp.lambdify((), sp.sqrt(sp.pi / 2), "mpmath")


@functools.lru_cache(maxsize=None)
def _mp(p: int, q: int, digits: int) -> mpmath.mpf:
    return mpmath.mpf(p) / q


def mp(value) -> mpmath.mpf:
    """A rational (or float) as an mpmath number at the working precision."""
    value = sp.Rational(value)
    return _mp(int(value.p), int(value.q), mpmath.mp.dps)


def _linear(expr) -> dict:
    """A linear form as {symbol: coefficient, 1: constant}, zero coefficients dropped."""
    return {s: c for s, c in sp.expand(expr).as_coefficients_dict().items() if c != 0}


# -- the state a layer starts from ----------------------------------------------------------------


@dataclass
class State:
    """The hidden state entering a layer (rows x columns) and the bound of each symbol it holds."""

    H: np.ndarray
    bounds: dict
    owner: dict  # symbol -> the program register it is an entry of
    dirty: set   # rows the previous layer left dirty (they hold symbols here)


def left_dirty(net, l: int) -> set:
    """The scratch and division-pad rows layer ``l`` leaves nonzero: those it writes other than by clearing them.

    A row is cleared when the self head's value for it is minus the row itself and nothing else writes it.
    """
    w, layout = net.weights, net.layout
    dh = w.head_size
    dirty = set()
    for row in range(layout.width):
        if layout.labels[row].split("[")[0] not in DIRTY:
            continue
        values = [w.Wv[l, h] @ w.Wo[l, h * dh:(h + 1) * dh, row] for h in range(w.heads)]
        source, self_ = sum(values[:-1]), values[-1]
        clears = np.zeros(layout.width)
        clears[row] = -1.0
        others = source.any() or w.bo[l, row] or w.W2[l, :, row].any() or w.b2[l, row]
        if others or (self_.any() and not np.array_equal(self_, clears)):
            dirty.add(row)
    return dirty


def entering_state(net, l: int) -> State:
    """Program rows as symbols ``label@column``; ``pos`` the column index; the compiler's rows at their values."""
    layout, w = net.layout, net.weights
    T = w.max_tokens
    H = np.full((layout.width, T), sp.Integer(0), dtype=object)
    bounds, owner = {}, {}
    for name in net.program.layout.names:
        for r in range(*layout.span(name)):
            for c in range(T):
                if name == POS:
                    H[r, c] = sp.Integer(c)
                    continue
                H[r, c] = sp.Symbol(f"{layout.labels[r]}@{c}", real=True)
                bounds[H[r, c]], owner[H[r, c]] = sp.Rational(net.bounds.values[name]), name
    dirty = set()
    if l > 0:
        dirty = left_dirty(net, l - 1)
    for c in range(T):
        H[layout.span(MEAN_PAD)[0], c] = sp.Symbol(f"{MEAN_PAD}@{c}", real=True)
        for name in (ONE, POS_SQ, LN_POS, LN_NEG):
            H[layout.span(name)[0], c] = sp.Rational(float(w.positions[c, layout.span(name)[0]]))
        for r in dirty:
            H[r, c] = sp.Symbol(f"{layout.labels[r]}@{c}", real=True)
    return State(H, bounds, owner, dirty)


def row_bound(expr, bounds: dict, what: str) -> sp.Rational:
    """Sum of |coefficient| x bound over the symbols of a linear form, plus |constant|."""
    total = sp.Integer(0)
    for s, c in _linear(expr).items():
        if s == 1:
            total += abs(c)
            continue
        require(s in bounds, lambda: f"{what} depends on {s}, which has no bound")
        total += abs(c) * bounds[s]
    return total


# -- attention --------------------------------------------------------------------------------------


def head_offsets(net, l: int) -> tuple[int, ...]:
    """The column each head of layer ``l`` should attend to, as i - offset (the compiler's mechanism: the self
    head, offset 0, last; a mov's source head, or every offset a fused layer's composed forms read, before it)."""
    return tuple(net.mechanisms[l].offsets)


def layer_instructions(net, l: int) -> list:
    """The instructions layer ``l`` runs, in program order (one, unfused; several in a fused layer)."""
    return [net.program.instructions[k] for k in net.steps[l].instructions]


def describe(net, l: int) -> str:
    return "; ".join(str(ins) for ins in layer_instructions(net, l))


def selection(net, l: int) -> list[sp.Rational]:
    """Per head, the sharpness N' of lemma attention_selection, from Wq, Wk and the position table (None for an
    averaging head, whose query or key weights must be zero: lemma uniform_attention).

    Only the position rows (``pos`` = j, ``one`` = 1, ``pos_sq`` = j^2, as the
    table holds them and no layer changes them) reach the scores, so the
    score of query column i on key column j is a polynomial in i and j.
    """
    w, layout, ins = net.weights, net.layout, describe(net, l)
    i, j = sp.symbols("i j", integer=True, nonnegative=True)
    value = {layout.span(POS)[0]: lambda t: t, layout.span(ONE)[0]: lambda t: sp.Integer(1),
             layout.span(POS_SQ)[0]: lambda t: t**2}
    for c in range(w.max_tokens):
        for r, f in value.items():
            require(sp.Rational(float(w.positions[c, r])) == f(sp.Integer(c)),
                    f"the position table holds {w.positions[c, r]} in row {layout.labels[r]} of column {c}")
    rows = list(value)
    require(not np.any(w.embed[:, rows]), "the embedding writes a position row")
    require(not (np.any(w.Wo[:, :, rows]) or np.any(w.bo[:, rows]) or np.any(w.W2[:, :, rows])
                 or np.any(w.b2[:, rows])), "a layer writes a position row")
    sharpness = []
    for h, offset in enumerate(head_offsets(net, l)):
        if offset == UNIFORM:  # lemma uniform_attention: the scores are 0, the weights 1/(i+1), no leak
            require(not (np.any(w.Wq[l, h]) and np.any(w.Wk[l, h])),
                    f"{ins}: the averaging head {h} has nonzero query and key weights")
            sharpness.append(None)
            continue
        vectors = {}
        for name, M, t in (("Wq", w.Wq[l, h], i), ("Wk", w.Wk[l, h], j)):
            stray = [layout.labels[r] for r in np.flatnonzero(np.any(M != 0, axis=1)) if r not in value]
            require(not stray, f"{ins}: head {h}'s {name} reads {stray} besides the positions")
            vectors[name] = [sum(sp.Rational(float(M[r, col])) * f(t) for r, f in value.items())
                             for col in range(M.shape[1])]
        score = sp.expand(sum(a * b for a, b in zip(vectors["Wq"], vectors["Wk"])))
        terms = dict(sp.Poly(sp.expand(score - score.subs(j, 0)), i, j).terms())
        require(set(terms) <= {(1, 1), (0, 1), (0, 2)}, f"{ins}: head {h}'s score is {score}, not quadratic in j")
        N = -terms.get((0, 2), sp.Integer(0))
        require(N > 0, f"{ins}: head {h}'s score {score} does not fall away from its target")
        require(terms.get((1, 1), 0) == 2 * N, f"{ins}: head {h}'s score {score} is not N (2 i j - j^2) + ...")
        delta = -terms.get((0, 1), sp.Integer(0)) / (2 * N) - offset
        require(abs(delta) < sp.Rational(1, 2),
                f"{ins}: head {h} attends to column i - {float(offset + delta):.6g}, not i - {offset}")
        sharpness.append(N * (1 - 2 * abs(delta)))
    return sharpness


def attention_output(net, l: int, H: np.ndarray) -> np.ndarray:
    """The state after attention with each head one-hot on its selected column max(i - offset, 0), or, for an
    averaging head, weighing columns 0..i by exactly 1/(i+1) (lemma uniform_attention).

    Every entry of ``H`` is a linear form in its symbols, and so is every entry of the result.
    """
    w = net.weights
    dh, T = w.head_size, H.shape[1]
    forms = {}  # (row, column) -> the linear form added to it
    for h, offset in enumerate(head_offsets(net, l)):
        Wv, Wo = w.Wv[l, h], w.Wo[l, h * dh:(h + 1) * dh]
        for col in range(dh):
            reads, writes = np.flatnonzero(Wv[:, col]), np.flatnonzero(Wo[col])
            for i in range(T) if len(reads) and len(writes) else ():
                value = {}
                for r in reads:
                    read = (sp.Add(*H[r, : i + 1]) / (i + 1)) if offset == UNIFORM else H[r, max(i - offset, 0)]
                    for s, coef in _linear(read).items():
                        value[s] = value.get(s, 0) + sp.Rational(float(Wv[r, col])) * coef
                for r in writes:
                    form = forms.setdefault((r, i), {})
                    for s, coef in value.items():
                        form[s] = form.get(s, 0) + sp.Rational(float(Wo[col, r])) * coef
    for r in np.flatnonzero(w.bo[l]):
        for i in range(T):
            form = forms.setdefault((r, i), {})
            form[1] = form.get(1, 0) + sp.Rational(float(w.bo[l, r]))
    X = H.copy()
    for (r, i), form in forms.items():
        X[r, i] = sp.expand(H[r, i] + sp.Add(*(coef * s for s, coef in form.items())))
    return X


def leak_effect(net, l: int, leaks: list, state: State, rows) -> mpmath.mpf:
    """Lemma attention_selection on the given rows: sum over heads of 2 leak max|v|, v the head's value there."""
    w, layout = net.weights, net.layout
    dh = w.head_size
    worst = mpmath.mpf(0)
    for row in rows:
        total = mpmath.mpf(0)
        for h, leak in enumerate(leaks):
            form = {}  # the head's value for this row, as weights on the rows it reads
            for col in np.flatnonzero(w.Wo[l, h * dh:(h + 1) * dh, row]):
                for r in np.flatnonzero(w.Wv[l, h, :, col]):
                    form[r] = form.get(r, 0) + (sp.Rational(float(w.Wv[l, h, r, col]))
                                                * sp.Rational(float(w.Wo[l, h * dh + col, row])))
            size = sp.Integer(0)
            for r, coef in form.items():
                name = layout.labels[r].split("[")[0]
                require(name in net.program.layout, lambda: f"the value written to {layout.labels[row]} reads "
                                                             f"{layout.labels[r]}, which has no bound")
                size += abs(coef) * sp.Rational(net.bounds.values[name])
            total += 2 * leak * mp(size)
        worst = max(worst, total)
    return worst


# -- the MLP of mul and div ---------------------------------------------------------------------------


@dataclass
class Unit:
    """A GeLU unit ``sum_o outputs[o] g(k form . x + bias)`` (form over the operand symbols, k layer norm's)."""

    form: dict
    bias: sp.Rational
    outputs: dict = field(default_factory=dict)   # row -> exact coefficient, times `factor`
    weight: str = ""   # what the lemma's output weight is
    name: tuple = ()   # (before, symbols, after): its name, written only for a failure message

    @property
    def label(self) -> str:
        before, symbols, after = self.name
        return before + " + ".join(map(str, symbols)) + after


def _columns_mean_and_pads(ins, layout, X: np.ndarray, H: np.ndarray, W1: np.ndarray, bounds: dict):
    """Layer norm's hypotheses on the column after attention; returns the active pads' rows, N, and a bound on
    the column's mean.

    The active pads are +N c and -N c: c = 1 (the permanent pads) for a mul, c = den for a div (whose
    attention also lifts the permanent pads to 0); W1 is 0 on every pad. ``H`` holds the program rows as
    the layer's attention leaves them (a divisor the same layer computes is read there). The column sums to
    0 up to the rounding of the mean pad's weights (a fused layer's composed forms leave ~1e-16 of a row).
    """
    T = X.shape[1]
    row = lambda name: layout.span(name)[0]  # noqa: E731
    if ins.divisor is None:
        active, N = (row(LN_POS), row(LN_NEG)), X[row(LN_POS), 0]
        for c in range(T):
            require(X[row(LN_POS), c] == N and X[row(LN_NEG), c] == -N and N.is_Rational and N > 0,
                    f"{ins}: the layer-norm pads are {X[row(LN_POS), c]} and {X[row(LN_NEG), c]}, not +N and -N")
    else:
        dens = [H[row(ins.den), c] for c in range(T)]
        active, N = (row(DIV_POS), row(DIV_NEG)), sp.cancel(X[row(DIV_POS), 0] / dens[0])
        for c in range(T):
            require(N.is_Rational and N > 0 and sp.expand(X[row(DIV_POS), c] - N * dens[c]) == 0
                    and sp.expand(X[row(DIV_NEG), c] + N * dens[c]) == 0,
                    lambda: f"{ins}: the division pads are {sp.N(X[row(DIV_POS), c], 6)} and "
                            f"{sp.N(X[row(DIV_NEG), c], 6)} in column {c}, not +N_d den and -N_d den")
            require(X[row(LN_POS), c] == 0 and X[row(LN_NEG), c] == 0,
                    f"{ins}: the permanent pads are {X[row(LN_POS), c]} and {X[row(LN_NEG), c]} after attention, "
                    f"not 0")
    mean = sp.Integer(0)
    for c in range(T):
        total = sp.expand(sp.Add(*X[:, c]))
        size = sum(row_bound(X[r, c], bounds, f"{ins}: row {layout.labels[r]}") for r in range(X.shape[0])
                   if r not in active)
        sum_bound = row_bound(total, bounds, f"{ins}: column {c}'s sum")
        require(sum_bound <= WEIGHT_ROUNDING * size, f"{ins}: column {c} sums to {total}, not 0 (the mean pad)")
        mean = max(mean, sum_bound / X.shape[0])
    pads = [row(name) for name in PADS if name in layout]
    require(not np.any(W1[pads]), f"{ins}: W1 reads a layer-norm pad")
    return active, N, mean


def _actual_units(W1, b1, W2, X, c: int, ins) -> list[Unit]:
    """The layer's units on column c: pre-activation form (before dividing by N sqrt(2/D)), bias, outputs."""
    units, rows = [], {}
    for u in range(W1.shape[1]):
        reads, writes = np.flatnonzero(W1[:, u]), np.flatnonzero(W2[u])
        if not (len(reads) or len(writes) or b1[u]):
            continue
        form = {}
        for r in reads:
            if r not in rows:
                rows[r] = _linear(X[r, c])
            weight = sp.Rational(float(W1[r, u]))
            for s, coef in rows[r].items():
                form[s] = form.get(s, 0) + weight * coef
        form = {s: coef for s, coef in form.items() if coef != 0}
        units.append(Unit(form, sp.Rational(float(b1[u])),
                          {int(o): sp.Rational(float(W2[u, o])) for o in writes}, "", ("unit ", (u,), "")))
    return units


def _product_units(net, l: int, muls: list, Xp: np.ndarray, c: int) -> tuple[dict, dict]:
    """Lemma gelu_product_bound's units for column c, keyed by their form, and the number of products per row.

    Every product ``A_ij B_jk`` of every mul of the layer is ``S_a S_b
    R_P(x/S_a, y/S_b)``, x and y the forms the operand entries hold after
    the layer's attention (``Xp``: a symbol, or a linear form a fused layer's
    attention computed), with R_P the sum over the lemma's (m, w_m) of
    ``w_m sqrt(pi/2) (mP)^2 [g((x/S_a + y/S_b)/(mP)) - g(x/(S_a mP)) - g(y/(S_b mP))]``.
    Units with the same form are one (the compiler shares them).
    """
    layout = net.program.layout
    P = sp.Rational(net.layers[l].constants["product_scale"])
    units, products = {}, {}

    def scaled(form: dict, k) -> dict:
        return {s: v * k for s, v in form.items()}

    for ins in muls:
        S_a, S_b = sp.Rational(net.bounds.values[ins.a]), sp.Rational(net.bounds.values[ins.b])
        p, q, r = ins.shape
        A = [sp.expand(Xp[row, c]) for row in range(*layout.span(ins.a))]
        B = [sp.expand(Xp[row, c]) for row in range(*layout.span(ins.b))]
        out = list(range(*layout.span(ins.out)))
        for i in range(p):
            for k in range(r):
                o = out[i * r + k]
                products[o] = sp.Integer(q)
                for j in range(q):
                    x, y = A[i * q + j], B[j * r + k]
                    for m, w_m in lemmas.RICHARDSON:
                        s = m * P
                        both = _linear(x / (S_a * s) + y / (S_b * s))
                        for form, sign, what in ((both, 1, (x, y)), (scaled(_linear(x), 1 / (S_a * s)), -1, (x,)),
                                                 (scaled(_linear(y), 1 / (S_b * s)), -1, (y,))):
                            key = frozenset(form.items())  # empty where an operand entry is 0 here
                            unit = units.setdefault(key, Unit(dict(form), sp.Integer(0), {},
                                                              f"Richardson weight w_{m} sqrt(pi/2) ({m}P)^2 S_a S_b",
                                                              ("g(k (", what, f")/({m}P))")))
                            unit.outputs[o] = unit.outputs.get(o, 0) + sign * w_m * s**2 * S_a * S_b
    return units, products


def _bypass_units(net, l: int, divs: list, Xp: np.ndarray, c: int) -> dict:
    """Lemma gelu_bypass's units for column c: Q g(num_e / (Q |den|) + B) into out_e, for every entry e of every
    div of the layer (one divisor), num_e the form the numerator entry holds after the layer's attention."""
    layout = net.program.layout
    B = sp.Rational(net.layers[l].constants["bypass_offset"])
    units = {}
    for ins in divs:
        Q = sp.Rational(net.bounds.values[ins.out])
        for o, n in zip(range(*layout.span(ins.out)), range(*layout.span(ins.num))):
            form = {s: v / Q for s, v in _linear(Xp[n, c]).items()}
            require(form, lambda: f"{ins}: numerator entry {layout.labels[n]} is 0 in column {c}")
            units[frozenset(form.items())] = Unit(form, B, {o: Q}, "Q", ("g(k ", (sp.expand(Xp[n, c]),), "/Q + B)"))
    return units


def _match(ins, actual: list[Unit], ideal: dict, ell: mpmath.mpf, factor: mpmath.mpf, labels) -> list:
    """Pair every unit of the layer with the lemma's unit it implements, within WEIGHT_ROUNDING.

    Returns, per lemma unit, (unit, the layer's units implementing it, input defect, output defects).
    The input defect of a layer unit is ``sum_s |a_s/ell - ideal_s| R_s`` over its operand symbols s (R_s the
    bound on |k s|), plus its bias defect; the output defects are ``|sum of the layer's weights - ideal|`` per row.
    """
    tol = mp(WEIGHT_ROUNDING)
    groups = {key: [] for key in ideal}
    by_support = {}
    for key, target in ideal.items():
        by_support.setdefault(frozenset(target.form), []).append(key)
    for unit in actual:
        best, best_off = None, None
        for key in by_support.get(frozenset(unit.form), []):
            target = ideal[key]
            off = max((abs(mp(unit.form[s]) / ell / mp(target.form[s]) - 1) for s in target.form), default=0)
            if best_off is None or off < best_off:
                best, best_off = key, off
        require(best is not None and best_off <= tol,
                lambda: f"{ins}: {unit.label} reads {({s: float(mp(v) / ell) for s, v in unit.form.items()})}, which "
                        f"is no unit of the lemma" + (f" (nearest {ideal[best].label}, off by {float(best_off):.3g} "
                                                      f"relative)" if best else ""))
        target = ideal[best]
        require(abs(mp(unit.bias) - mp(target.bias)) <= tol * abs(mp(target.bias)),
                lambda: f"{ins}: {unit.label} = {target.label} has bias {float(unit.bias):.17g}, the lemma's is "
                        f"{float(target.bias):.17g}")
        groups[best].append(unit)
    matched = []
    for key, target in ideal.items():
        units = groups[key]
        require(units, lambda: f"{ins}: the lemma's unit {target.label} is missing")
        outputs = {}
        for o in set(target.outputs).union(*(u.outputs for u in units)):
            want = mp(target.outputs.get(o, 0)) * factor
            got = sum((mp(u.outputs.get(o, 0)) for u in units), mpmath.mpf(0))
            scale = abs(want) if want else sum(abs(mp(u.outputs.get(o, 0))) for u in units)
            require(abs(got - want) <= tol * scale,
                    lambda: f"{ins}: {target.label} writes {float(got):.10g} into {labels[o]}; the lemma's "
                            f"{target.weight or 'unit writes nothing there'} is {float(want):.10g}"
                            + (f" ({float(got / want):.6g} times that)" if want else ""))
            outputs[o] = abs(got - want)
        matched.append((target, units, outputs))
    return matched


def mlp_theorem(net, l: int, state: State, X: np.ndarray, Xp: np.ndarray, mlp: list,
                eps: sp.Rational) -> tuple[dict, sp.Rational]:
    """Check the MLP of a layer whose MLP runs muls or divs (one divisor); ``Xp`` holds the program rows as the
    layer's attention instructions leave them. Returns, per written row, its error bound in real arithmetic, and
    rho's bound."""
    layout, w = net.layout, net.weights
    W1, b1, W2, b2 = w.W1[l], w.b1[l], w.W2[l], w.b2[l]
    D, T = layout.width, X.shape[1]
    first = mlp[0]
    lemma = first.mechanism
    require(all(ins.mechanism == lemma for ins in mlp) and len({ins.divisor for ins in mlp}) == 1,
            f"{describe(net, l)}: the MLP runs products and divisions, or divisions by two divisors")
    out_rows = [o for ins in mlp for o in range(*layout.span(ins.out))]
    for o in out_rows:
        require(all(X[o, c] == 0 for c in range(T)), f"{describe(net, l)}: attention does not clear "
                                                     f"{layout.labels[o]}")
    # layer norm: lemmas layer_norm_bypass / layer_norm_division, with rho bounded over the other rows
    pads, N, mean = _columns_mean_and_pads(first, layout, X, Xp, W1, state.bounds)
    floor = sp.Integer(1) if first.divisor is None else sp.Rational(net.bounds.floors[first.divisor])
    sum_sq = max(sum(row_bound(X[r, c], state.bounds, f"{first}: row {layout.labels[r]}") ** 2
                     for r in range(D) if r not in pads) for c in range(T))
    # a mean mu lowers the variance by mu^2 only: the pads cancel, so the other rows sum to D mu and (Cauchy-Schwarz)
    # their squares to at least D mu^2; rho stays in [0, rho_bound]
    rho = lemmas.rho_bound(sum_sq, D, sp.Rational(w.ln_eps), N, floor)
    require(rho <= eps / 2, f"{first}: layer norm's pads N = {float(N):.6g} leave rho up to {float(rho):.3g}, "
                            f"above eps/2 = {float(eps / 2):.3g}")
    defect = sp.Integer(0)  # the largest |sum of a unit's W1|, through which the mean reaches its input
    for u in np.flatnonzero(np.any(W1 != 0, axis=0)):
        column = [Fraction(float(x)) for x in W1[W1[:, u] != 0, u]]
        total, size = sum(column), sum(abs(x) for x in column)
        defect = max(defect, abs(sp.Rational(total)))
        require(abs(total) <= ZERO_SUM_DEFECT * size,
                f"{first}: unit {u}'s W1 column sums to {float(total):.3g}, {float(abs(total) / size):.3g} of its "
                f"absolute sum: the zero-sum compensation on row '{ZERO}' is missing or wrong")
    for r in range(D):
        require(r in out_rows or not np.any(W2[:, r]), f"{describe(net, l)}: the MLP writes {layout.labels[r]}")
    # the units, column by column: the lemma's, up to the rounding of each weight
    ell = mp(N) * mpmath.sqrt(mpmath.mpf(2) / D)
    error = {o: mpmath.mpf(0) for o in out_rows}
    reach = dict(state.bounds)
    reach[sp.Integer(1)] = sp.Integer(1)  # a row the layer's attention set to a constant
    for c in range(T):
        rounding = {o: mpmath.mpf(0) for o in out_rows}  # the weights' rounding, summed over the units of a row
        actual = _actual_units(W1, b1, W2, X, c, first)
        if lemma == PRODUCT:  # lemma gelu_slope near 0; |k x| <= |x| <= its bound, as k <= 1
            ideal, products = _product_units(net, l, mlp, Xp, c)
            factor, reach_c = ROOT_HALF_PI(), reach
            size = lambda Z, bias: SIZE_NEAR_ZERO(Z)  # noqa: E731
            slope = lambda Z, bias: SLOPE_NEAR_ZERO(Z)  # noqa: E731
        else:  # lemma gelu_slope everywhere, |g(z)| <= |z|; |k num| <= Q, the hypothesis |num/den| <= Q
            ideal = _bypass_units(net, l, mlp, Xp, c)
            Q = max(sp.Rational(net.bounds.values[ins.out]) for ins in mlp)
            factor, reach_c = mpmath.mpf(1), {s: Q for unit in ideal.values() for s in unit.form}
            size = lambda Z, bias: bias + Z  # noqa: E731
            slope = lambda Z, bias: mp(lemmas.SLOPE)  # noqa: E731
        for target, units, outputs in _match(first, actual, ideal, ell, factor, layout.labels):
            # |sum_u W2_u g(z_u') - c g(z)| <= |sum W2 - c| size(Z') + sum_u |W2_u| slope(Z') |z_u' - z|, with
            # |z|, |z_u'| <= Z' (past the bias) and |z_u' - z| <= shift_u
            Z = sum(abs(mp(v)) * mp(reach_c[s]) for s, v in target.form.items())
            shifts = [sum(abs(mp(u.form[s]) / ell - mp(v)) * mp(reach_c[s]) for s, v in target.form.items())
                      + abs(mp(u.bias) - mp(target.bias)) + mp(mean * defect) / ell for u in units]
            Zp, bias = Z + max(shifts), max(abs(mp(u.bias)) for u in units)
            size_Zp, slope_Zp = size(Zp, bias), slope(Zp, bias)
            for o, out_defect in outputs.items():
                weights = sum(abs(mp(u.outputs.get(o, 0))) * shift for u, shift in zip(units, shifts))
                rounding[o] += out_defect * size_Zp + weights * slope_Zp
        error = {o: max(error[o], rounding[o]) for o in out_rows}
    P = sp.Rational(net.layers[l].constants.get("product_scale", 4))
    B = sp.Rational(net.layers[l].constants.get("bypass_offset", 2))
    for ins in mlp:  # plus the lemmas' truncation and rho's share
        S = sp.Rational(net.bounds.values[ins.a]) * sp.Rational(net.bounds.values[ins.b]) if lemma == PRODUCT else None
        Q = sp.Rational(net.bounds.values[ins.out])
        for o in range(*layout.span(ins.out)):
            if lemma == PRODUCT:  # products[o] products of |S_a S_b R_P(k a, k b) - ab| <= S_a S_b (0.0063/P^6 + rho)
                require(b2[o] == 0, f"{ins}: the MLP's bias on {layout.labels[o]} is {b2[o]:.17g}, not 0")
                error[o] += mp(products[o] * S * (lemmas.PRODUCT_BOUND.subs(lemmas.P, P) + rho))
            else:  # |Q g(B + z) - Q B - num/|den|| <= Q (bypass bound + rho/2), z = num/(Q |den| sqrt(1 + rho))
                shift = abs(sp.Rational(float(b2[o])) + Q * B)
                require(shift <= WEIGHT_ROUNDING * Q * B, f"{ins}: the MLP's bias on {layout.labels[o]} is "
                                                          f"{b2[o]:.17g}, not -Q B = {float(-Q * B):.17g}")
                error[o] += mp(Q) * (BYPASS_BOUND(mp(B)) + mp(rho) / 2) + mp(shift)
    return error, rho


def design_targets(net, l: int, eps: sp.Rational) -> None:
    """The lemmas' hypotheses and the compiler's design at this layer's constants."""
    constants = net.layers[l].constants
    lemmas_used = {ins.mechanism: ins for ins in layer_instructions(net, l)}
    if PRODUCT in lemmas_used:
        ins = lemmas_used[PRODUCT]
        P = sp.Rational(constants["product_scale"])
        require(P >= 4, f"{ins}: product scale P = {float(P):.6g} is below the lemma's 4")
        truncation = lemmas.PRODUCT_BOUND.subs(lemmas.P, P)
        allowance = sp.Rational(scales.PRODUCT_ROUNDING) * eps * P
        require(truncation <= allowance, f"{ins}: product scale P = {float(P):.6g}: truncation "
                                         f"{float(truncation):.3g} above the rounding allowance {float(allowance):.3g}")
    if DIVISION in lemmas_used:
        ins = lemmas_used[DIVISION]
        B = sp.Rational(constants["bypass_offset"])
        require(B - 1 >= 1, f"{ins}: bypass offset B = {float(B):.6g}, the lemma needs B - 1 >= 1")
        allowance = (sp.Rational(scales.KAPPA) + 1) * eps * (B + 1)
        require(BYPASS_BOUND(mp(B)) <= mp(allowance),
                f"{ins}: bypass offset B = {float(B):.6g}: the bypass bound (B - 1) Phi(1 - B) = "
                f"{float(BYPASS_BOUND(mp(B))):.3g} is above the design target (KAPPA + 1) eps (B + 1) = "
                f"{float(allowance):.3g}")


# -- one layer ----------------------------------------------------------------------------------------


def attention_theorem(net, l: int, state: State, X: np.ndarray, Xp: np.ndarray, attention: list) -> dict:
    """Check the rows the layer's mov and aff instructions write (the heads' output theirs, composed in order:
    ``Xp``); return each row's rounding defect.

    The written entries are the instructions' up to the rounding of the heads' weights: a value weight
    fl(W - 1) on the register's own old entry (aff's term on itself) differs from W - 1 by a rounding.
    """
    layout = net.layout
    H = state.H
    defects = {}
    for r in sorted({r for ins in attention for r in range(*layout.span(ins.writes))}):
        defects[r] = mpmath.mpf(0)
        for c in range(H.shape[1]):
            want, got = _linear(Xp[r, c]), _linear(X[r, c])
            defect = sp.Integer(0)
            for s in set(want) | set(got):
                off = abs(got.get(s, 0) - want.get(s, 0))
                require(off <= WEIGHT_ROUNDING * (abs(want.get(s, 0)) + int(s == H[r, c])),
                        lambda: f"{describe(net, l)}: {layout.labels[r]} in column {c} is {X[r, c]}, not {Xp[r, c]}")
                defect += off * (1 if s == 1 else state.bounds[s])
            defects[r] = max(defects[r], mp(defect))
    return defects


@dataclass(frozen=True)
class LayerCheck:
    """What a layer's proof found: the weights' sharpness (least over heads), its leak, rho's bound, the error bound."""

    sharpness: float
    leak: float
    rho: float | None
    error: float
    declared: float


def untied(net):
    """``net`` with a stored layer per depth (a repeated block's layers are stored once: ``Weights.order``),
    so that layer ``l``'s weights are index ``l`` of every array."""
    w = net.weights
    per_layer = {name: getattr(w, name)[w.order] for name in
                 ("Wq", "Wk", "Wv", "Wo", "bo", "ln_gain", "ln_bias", "W1", "b1", "W2", "b2")}
    return dataclasses.replace(net, weights=dataclasses.replace(w, **per_layer, order=None))


def check_layer(net, l: int) -> LayerCheck:
    """Layer ``l`` of ``net`` (0-based) against its instructions, at its finite constants (the module's docstring).

    Unfused, a layer runs one instruction; fused (``construct/compiler/schedule.py``), its attention runs
    several movs and affs, composed in order, and its MLP the muls (or the divs by one divisor) that read
    their results. Each instruction's rows are held to that instruction's declared error. Reported: the
    instruction whose error is the largest share of its declared one.
    """
    net = untied(net)
    program, layout, w = net.program, net.layout, net.weights
    instructions, report = layer_instructions(net, l), net.layers[l]
    eps = sp.Rational(float(np.finfo(w.dtype).eps))
    with mpmath.workdps(DIGITS):
        state = entering_state(net, l)
        sharpness = selection(net, l)
        leaks = [mpmath.mpf(0) if N is None else LEAK_BOUND(mp(N)) for N in sharpness]
        for h, (N, leak) in enumerate(zip(sharpness, leaks)):  # the lemma's leak at the exact N', decided by sympy
            if N is None:
                continue
            require(bool(lemmas.leak_bound(N) <= LEAK_TARGET * eps),
                    f"{describe(net, l)}: attention sharpness {float(N):.4g} lets head {h} leak {float(leak):.3g} of "
                    f"its mass off the selected token, above the design target 1e-3 eps = "
                    f"{float(LEAK_TARGET * eps):.3g}")
        design_targets(net, l, eps)
        H = state.H
        X = attention_output(net, l, H)
        attention = [ins for ins in instructions if ins.phase == ATTENTION]
        mlp = [ins for ins in instructions if ins.phase == MLP]
        Xp = H[:program.layout.width].copy()
        for ins in attention:
            Xp = ins.apply(Xp, program.layout)
        errors, rho = attention_theorem(net, l, state, X, Xp, attention), None
        if mlp:
            bounds, rho = mlp_theorem(net, l, state, X, Xp, mlp, eps)
            errors.update(bounds)
        else:
            require(not (np.any(w.W1[l]) or np.any(w.b1[l]) or np.any(w.W2[l]) or np.any(w.b2[l])),
                    f"{describe(net, l)}: the MLP is on")
        last = {}  # row -> the instruction that writes it last
        for ins in instructions:
            last.update({r: ins for r in range(*layout.span(ins.writes))})
        declared = {text: error for text, error, _ in report.parts}
        worst = None
        for ins in instructions:
            rows = [r for r, owner in last.items() if owner is ins]
            if not rows:
                continue
            error = leak_effect(net, l, leaks, state, rows) + max(errors[r] for r in rows)
            require(error <= mp(declared[str(ins)]),
                    f"{ins}: error bound {float(error):.4g} (lemmas, rho, weight rounding, leak) is above the "
                    f"declared {declared[str(ins)]:.4g}")
            if worst is None or error / mp(declared[str(ins)]) > worst[0] / mp(worst[1]):
                worst = (error, declared[str(ins)])
        # every other row: as it went in (the MLP does not write it, its bias restores what attention lifted)
        after = X.copy()
        for r in np.flatnonzero(w.b2[l]):
            after[r] = [sp.expand(x + sp.Rational(float(w.b2[l, r]))) for x in X[r]]
        kept = [r for r in range(program.layout.width) if r not in last]
        kept += [layout.span(name)[0] for name in (ONE, POS_SQ, LN_POS, LN_NEG, ZERO)]
        for r in kept:
            for c in range(H.shape[1]):
                require(after[r, c] == H[r, c], lambda: f"{describe(net, l)}: {layout.labels[r]} changed in column {c}")
        for r in state.dirty:
            for c in range(H.shape[1]):
                require(H[r, c] not in sp.expand(after[r, c]).free_symbols,
                        f"{describe(net, l)}: {layout.labels[r]}, left dirty by the previous layer, is not cleared")
        return LayerCheck(float(min(N for N in sharpness if N is not None)), float(max(leaks)),
                          None if rho is None else float(rho),
                          float(worst[0]), worst[1])


def check_network(net) -> list[LayerCheck]:
    return [check_layer(net, l) for l in range(len(net.steps))]


# -- the networks the proofs compile -------------------------------------------------------------------


def small_program(d: int, registers: list[tuple[str, tuple]], instructions) -> Program:
    layout = Layout(input_registers(d) + [Register(n, s) for n, s in registers] + [Register("pred", (1,))])
    return Program("layer", d, 1, layout, tuple(instructions))


def small_network(program: Program, floors=None, fuse: bool = False):
    """Compile with irregular register bounds (1.3, 1.71, 2.12, ...; pos: the last column) and the given floors,
    one layer per instruction unless ``fuse``."""
    bounds = {name: 1.3 + 0.41 * k for k, name in enumerate(program.layout.names)}
    bounds[POS] = float(2 * program.n)
    return compile(program, Bounds(bounds, floors or {}), fuse=fuse)


@proof("layer_mov", "the compiled mov layer copies src of column max(i - offset, 0) into dst within its declared "
       "error (the leak); nothing else changes",
       "d = 1, 2, 3; offsets 0, 1, 2; into another register, in place, and pos (sgd's pos_prev); finite N_att")
def layer_mov():
    for d in (1, 2, 3):
        for ins in (Mov("x_in", "w", 1), Mov("w", "w", 2), Mov("x_in", "w", 0), Mov(POS, "p", 1)):
            check_network(small_network(small_program(d, [("w", (d,)), ("p", (1,))], [ins])))


@proof("layer_aff", "the compiled aff layer writes W1 r1 + W2 r2 + b within its declared error (the leak and its "
       "weights' rounding); nothing else changes",
       "d = 1, 2, 3; a matrix term, a scalar term on the output itself, a bias, a bias alone; finite N_att")
def layer_aff():
    for d in (1, 2, 3):
        M = np.arange(1.0, d * d + 1).reshape(d, d) / 7 - 0.5
        for ins in (Aff("w", (("x_in", M), ("w", -0.3)), bias=np.linspace(-1, 1, d)), Aff("w", bias=0.25)):
            check_network(small_network(small_program(d, [("w", (d,))], [ins])))


@proof("layer_avg", "the compiled avg layer writes the mean of src over columns 0..i into dst within its declared "
       "error (its weights' rounding; the averaging head has zero query weights, so no leak), alone and composed "
       "with affs in one attention; nothing else changes",
       "d = 1, 2, 3; n = 3 (7 columns); into another register, in place, and fused between two affs (the mean of "
       "an affine form, then a mean plus the column's own x); real arithmetic, finite N_att")
def layer_avg():
    for d in (1, 2, 3):
        M = np.arange(1.0, d * d + 1).reshape(d, d) / 7 - 0.5
        registers = [("t", (d,)), ("w", (d,))]
        for instructions, fuse in (([Avg("x_in", "w")], False), ([Avg("w", "w")], False),
                                   ([Aff("t", (("x_in", M),), bias=0.25), Avg("t", "w"),
                                     Aff("w", (("w", 1.0), ("x_in", -0.25)))], True)):
            program = dataclasses.replace(small_program(d, registers, instructions), n=3)
            check_network(small_network(program, fuse=fuse))


MUL_SHAPES = (  # every mul shape the four programs use, in place or not, for (registers, instruction)
    lambda d: ([("A", (d, d)), ("u", (d,))], Mul("A", "x_in", "u", (d, d, 1))),         # u = Ainv x
    lambda d: ([("A", (d, d)), ("u", (d,))], Mul("x_in", "A", "u", (1, d, d))),         # vT = x^T Ainv
    lambda d: ([("u", (d,)), ("S", (d, d))], Mul("u", "u", "S", (d, 1, d))),            # u u^T (a square)
    lambda d: ([("u", (d,)), ("s", (1,))], Mul("x_in", "u", "s", (1, d, 1))),           # x^T u
    lambda d: ([("u", (d,))], Mul("u", "y_in", "u", (d, 1, 1))),                        # w y, in place
    lambda d: ([("g", (1,)), ("u", (d,)), ("v", (d,))], Mul("g", "u", "v", (1, 1, d))),  # gate w
)


@proof("layer_mul",
       "the compiled mul layer is the lemma's GeLU products (units, scales, Richardson weights, zero-sum W1) "
       "and writes the matrix product within its declared error; nothing else changes",
       "d = 1, 2, 3; the six shapes of the programs (A x, x^T A, u u^T, x^T u, w y in place, gate w); "
       "operands within their bounds; real arithmetic, finite P, N, N_att")
def layer_mul():
    for d in (1, 2, 3):
        for shape in MUL_SHAPES:
            registers, ins = shape(d)
            check_network(small_network(small_program(d, registers, [ins])))


@proof("layer_div",
       "the compiled div layer pads layer norm with +-N_d den, runs the lemma's GeLU bypass and writes num/|den| "
       "within its declared error; nothing else changes",
       "d = 1, 2, 3; den a one-row register with |den| >= its floor, |num/den| within the quotient's bound; "
       "into another register and in place; real arithmetic, finite B, N_d, N_att")
def layer_div():
    for d in (1, 2, 3):
        regs = [("num", (d, d)), ("den", (1,)), ("q", (d, d))]
        for ins in (Div("num", "den", "q"), Div("num", "den", "num")):
            check_network(small_network(small_program(d, regs, [ins]), {"den": 0.37}))


@proof("layer_clears_dirty_rows",
       "the layer after a div clears its pads, and the layer after an in-place mul its scratch, before using them",
       "d = 2; div then mul, div then div, in-place mul then aff; the dirty rows hold symbols")
def layer_clears_dirty_rows():
    d = 2
    regs = [("num", (d,)), ("den", (1,)), ("q", (d,)), ("u", (d,))]
    for first, second in ((Div("num", "den", "q"), Mul("q", "y_in", "u", (d, 1, 1))),
                          (Div("num", "den", "q"), Div("u", "den", "u")),
                          (Mul("u", "y_in", "u", (d, 1, 1)), Aff("q", (("u", 1.0),)))):
        net = small_network(small_program(d, regs, [first, second]), {"den": 0.37})
        require(entering_state(net, 1).dirty, f"{first} leaves no row dirty")
        check_network(net)


def calibrated_network(program: Program, fuse: bool = False):
    """The program compiled for the domain its own calibration gives (16 Gaussian tasks, seed 0): one layer per
    instruction, or (``fuse``) with the compiler's fused layers and tied blocks."""
    return compile(program, Bounds.calibrate(program, gaussian_tasks(program.d, program.n, 16)), fuse=fuse)


@proof("layer_programs", "every layer of the compiled programs is its instruction, at its finite constants",
       "sgd_step and sherman_morrison_step (Theorems 1 and 2) at d = 1, 2, 3; sgd and ridge at d = 2, n = 2; "
       "lam = 0.5, alpha = 0.1; bounds and floors calibrated on 16 Gaussian tasks; one layer per instruction "
       "(fuse=False; layer_programs_fused checks the fused layers)")
def layer_programs():
    for d in (1, 2, 3):
        check_network(calibrated_network(programs.sgd_step(d, 0.1, 0.5, np.linspace(-0.5, 0.5, d))))
        check_network(calibrated_network(programs.sherman_morrison_step(d, 0.5)))
    check_network(calibrated_network(programs.sgd(2, 2, 0.1, 0.5)))
    check_network(calibrated_network(programs.ridge(2, 2, 0.5)))


@proof("layer_programs_fused", "every fused layer of the compiled programs runs its instructions, composed, at its "
       "finite constants",
       "the networks compile builds by default (fused layers, tied blocks): sgd_step and sherman_morrison_step at "
       "d = 1, 2, 3; sgd and ridge at d = 2, n = 3 (every tied block and the last layers); as layer_programs")
def layer_programs_fused():
    for d in (1, 2, 3):
        check_network(calibrated_network(programs.sgd_step(d, 0.1, 0.5, np.linspace(-0.5, 0.5, d)), fuse=True))
        check_network(calibrated_network(programs.sherman_morrison_step(d, 0.5), fuse=True))
    check_network(calibrated_network(programs.sgd(2, 3, 0.1, 0.5), fuse=True))
    check_network(calibrated_network(programs.ridge(2, 3, 0.5), fuse=True))
