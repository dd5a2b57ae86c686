"""A certificate for every answer: a proven bound on |network - exact answer|, computed as the network runs.

The exact answer is the program run by the exact machine in real arithmetic
on the same inputs (for the programs of ``construct.programs``: the
algorithm's closed form). Write ``H_l`` for the network's state after layer
``l`` (program rows), ``H*_l`` for the machine's after instruction ``l``,
and ``I_l`` for instruction ``l``. Then

    |H_{l+1} - H*_{l+1}| <= |layer_l(H_l) - I_l(H_l)| + |I_l(H_l) - I_l(H*_l)|
                             local error of layer l        propagation of earlier errors

so ``E_{l+1} = propagate_l(E_l) + local_l`` bounds the error of every entry
of every column (``E_0 = 0``: the embedding is exact on program rows).

* **Propagation** uses the instruction's exact semantics on the computed
  state: linear instructions (mov, aff) move or combine errors exactly;
  a product ``C = A B`` has ``|dC| <= |A| |dB| + |dA| (|B| + |dB|)``; a
  division ``n / |d|`` has ``|d(n/|d|)| <= (|dn| + |n| |dd| / |d|) / (|d| - |dd|)``
  (infinite when ``|dd| >= |d|``).
* **The local error** of a layer is the pass's own rounding
  (``construct.transformer.rounding``, for the floating-point model stated
  there), plus how far the layer in exact arithmetic, with the pass's
  softmax weights ``A`` and layer norm's ``sigma`` and ``mean``, is from the
  instruction. That second part is the lemmas', evaluated at this run's
  values: the attention weights' distance from one-hot
  (``rounding.selection``); for a product, ``|kappa^2 - 1| |a b|`` with
  ``kappa = N sqrt(2/D) / sigma`` (layer norm's actual scale), the
  Richardson truncation of lemma ``gelu_product_bound`` at the scaled
  operands' actual size (``_truncation``), the rounding of the weights against
  the lemma's exact coefficients and layer norm's zero-sum defect; for a
  division, ``|num| |kappa - 1/|den||``, the bypass truncation
  ``phi(v_min)`` (Mills: ``v Phi(-v) <= phi(v)``) and the same weight terms.
  The identities these rely on (the units implement the lemma's formula;
  attention one-hot is the instruction) are proved on the compiled weights
  by ``python -m proofs`` (proofs/layers.py).
* Everything is computed in the network's dtype and inflated by
  ``rounding.SAFETY`` per layer for the rounding of the bound itself.

The certificate is about the numpy pass (``construct.transformer.forward``),
which computes the certified answers; ``backend="jax"`` answers are not
certified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..raw.instructions import Aff, Div, Mov, Mul
from ..raw.prompt import x_columns
from ..transformer import forward, rounding
from . import scales
from .blocks import DivisionMechanism, ProductMechanism
from .bounds import DomainError



class CertificateError(DomainError):
    """An answer whose certified error bound exceeds the tolerance asked for: refused, not returned."""


@dataclass(frozen=True)
class LayerMechanism:
    """What the certificate needs to know about one layer: each head's offset, and what the MLP computes."""

    offsets: tuple[int, int]  # (source head, self head): the token read is max(i - offset, 0)
    mlp: ProductMechanism | DivisionMechanism | None
    ln_scale: float


@dataclass(frozen=True, eq=False)
class Run:
    """One certified run: ``states`` (L + 1, T, D) of the numpy pass; ``intervals`` (L + 1, program rows, T),
    a bound on the error of every program entry after each layer (propagated forward in absolute values,
    used for second-order terms); ``bounds``, one per x~ column the prompt has, on the read-out's error;
    ``shares`` (L, columns), with ``components``, each layer's part of ``bounds``."""

    states: np.ndarray
    intervals: np.ndarray
    bounds: np.ndarray
    shares: np.ndarray | None


@dataclass(frozen=True, eq=False)
class Certificate:
    """The network's predictions and, for each, a proven bound on its distance from the exact answer.

    ``predictions`` and ``bounds`` have one entry per x~ column (NaN where the
    program predicts nothing); ``errors`` (L + 1, program rows, T) is the
    bound on every program register entry after each layer.
    """

    predictions: np.ndarray
    bounds: np.ndarray
    errors: np.ndarray


def _truncation(s: np.ndarray, P: float) -> np.ndarray:
    """Lemma gelu_product_bound at the scaled operands' actual size ``s = |x| + |y|``:
    ``|R_P(x, y) - xy| <= s^8 / (43008 P^6) + (s^2 / 810) (e^z - 1 - z - z^2/2 - z^3/6)``, ``z = s^2 / (2 P^2)``.

    The lemma's series ``R_P - xy = sum_{k>=3} r_k / P^(2k)`` has ``|r_k| <= (1/2)
    |p_k| rho_k / (2^k k! (2k+1))`` with ``|p_k| = |(x+y)^(2k+2) - x^(2k+2) -
    y^(2k+2)| <= s^(2k+2)``, ``rho_3 = 1/64`` and ``rho_k <= 1/45`` after; at
    ``s = 2`` (the unit square) this is the lemma's ``0.0063 / P^6``. Small
    operands get a far smaller bound, and any operand a finite one.
    """
    z = s * s / (2 * P * P)
    tail = s * s / 810 * (np.expm1(z) - z - z * z / 2 - z**3 / 6) * 1.01  # expm1 and the powers, rounded up
    return s**8 / (43008 * P**6) * 1.01 + np.abs(tail)


def _require_zero_sums(W1: np.ndarray, l: int) -> None:
    """Each unit's input weights sum to zero up to the rounding of its compensation weight (exact sums, fsum)."""
    u = np.finfo(W1.dtype).eps / 2
    for k in range(W1.shape[1]):
        column = W1[:, k].astype(np.float64).tolist()
        if abs(math.fsum(column)) > 4 * u * math.fsum(abs(x) for x in column):
            raise ValueError(f"layer {l + 1}, unit {k}: the input weights do not sum to zero (no compensation on the "
                             "zero row?), so layer norm's mean does not drop out; the certificate does not apply")


class Certifier:
    """Runs a compiled network's numpy pass with the running error analysis; one per network."""

    def __init__(self, net) -> None:
        w, layout = net.weights, net.layout
        self.net, self.w = net, w
        self.width = P = net.program.layout.width
        self._require_structure(w, layout, net.program, P)
        for l, mech in enumerate(net.mechanisms):
            if mech.mlp is not None:
                _require_zero_sums(w.W1[l], l)

    @staticmethod
    def _require_structure(w, layout, program, P: int) -> None:
        """What the certificate assumes of the weights, checked: layer norm without gain or bias (the product and
        division analysis), an embedding that places the prompt on program rows exactly (E_0 = 0), and a
        one-hot read-out (the answer is the state's entry)."""
        from ..raw.prompt import POS, X_IN, Y_IN

        for name, want in (("ln_gain", 1.0), ("ln_bias", 0.0)):
            if not np.all(getattr(w, name) == want):
                raise ValueError(f"the certificate's product and division analysis assumes {name} = {want}")
        slots = [layout.span(Y_IN)[0], *range(*layout.span(X_IN))]
        embed = np.zeros_like(w.embed[:, :P])
        embed[np.arange(len(slots)), slots] = 1
        positions = np.zeros_like(w.positions[:, :P])
        positions[:, layout.span(POS)[0]] = np.arange(len(positions))
        readout = np.zeros_like(w.readout)
        readout[layout.span(program.readout)[0]] = 1
        if not (np.array_equal(w.embed[:, :P], embed) and np.array_equal(w.positions[:, :P], positions)
                and np.array_equal(w.readout, readout)):
            raise ValueError("the certificate assumes the compiler's embedding, positions and one-hot read-out")

    # -- one layer ------------------------------------------------------------------------------

    def _local(self, l: int, H: np.ndarray, parts: forward.LayerParts, mech: LayerMechanism) -> np.ndarray:
        """Bound on |layer_l(H) - I_l(H)|, (T, D)."""
        w = self.w
        T = H.shape[0]
        att = rounding.attention(w, l, H, parts)
        chosen = np.stack([np.maximum(np.arange(T) - offset, 0) for offset in mech.offsets])
        attention_error = att.rounding + rounding.selection(w, l, parts, att.values, chosen)
        if mech.mlp is None:
            return attention_error
        mlp = rounding.mlp(w, l, parts)
        local = attention_error + mlp.rounding
        out = list(mech.mlp.out)
        ideal = self._product(l, parts, mlp, mech, attention_error) if isinstance(mech.mlp, ProductMechanism) \
            else self._division(l, H, parts, mlp, mech, attention_error)
        local[:, out] = mlp.rounding[:, out] + ideal
        return local

    def _weights_terms(self, l: int, parts, mlp, mech) -> tuple:
        """The MLP in exact arithmetic with the actual weights, against the lemma's exact coefficients.

        Input weights are ``N sqrt(2/D) / (S m P)`` (products) or ``N sqrt(2/D)
        / Q`` (divisions), with ``N sqrt(2/D)`` and P powers of two: one
        rounding each, two on the compensation row (which makes each unit's
        weights sum to zero, checked by ``Certifier``); so the pre-activation
        is off the lemma's by at most ``2.01 u sum_r |W1| |x_r - mean| / sigma``.
        A product unit's output weight is ``C_m (mP)^2 S_a S_b``, ``C_m = w_m
        sqrt(pi/2)`` rounded once (relative ``r_m``, ``scales.RICHARDSON_CONSTANTS``),
        then two roundings; a division's is ``Q`` exactly. Returns (per unit)
        the pre-activation gap and (per output row) the MLP's gap.
        """
        u = rounding.unit_roundoff(parts.X.dtype)
        out = list(mech.mlp.out)
        gap = 2.01 * u * (np.abs(parts.centred) @ np.abs(self.w.W1[l])) * (1 + u) / parts.sigma  # (T, U)
        W2 = np.abs(self.w.W2[l][:, out])
        slope = rounding.gelu_slope(np.abs(parts.pre) + mlp.pre + gap)
        terms = (slope * gap) @ W2
        if isinstance(mech.mlp, ProductMechanism):
            ratio = np.zeros(W2.shape[0])
            by_multiple = {m: r + rounding.gamma(2, u) for (m, _), (_, r) in zip(scales.RICHARDSON,
                                                                                 scales.RICHARDSON_CONSTANTS)}
            ratio[: len(mech.mlp.multiples)] = [by_multiple[m] for m in mech.mlp.multiples]
            terms = terms + ((np.abs(parts.hidden) + mlp.hidden) * ratio) @ W2
        return gap, terms

    def _kappa(self, parts, mech) -> np.ndarray:
        """Layer norm's actual scale ``ln_scale / sigma`` (T,), and its relative rounding."""
        return mech.ln_scale / parts.sigma[:, 0]

    def _operands(self, parts, rows: np.ndarray, copies: dict, attention_error: np.ndarray):
        """Values read at ``rows`` (T, ...), and how far each is from the instruction's operand (a copy's error)."""
        values = parts.X[:, rows]
        copied = np.isin(rows, list(copies)) if copies else np.zeros(rows.shape, bool)
        return values, np.where(copied, attention_error[:, rows], 0.0)

    def _product(self, l, parts, mlp, mech, attention_error) -> np.ndarray:
        m: ProductMechanism = mech.mlp
        u = rounding.unit_roundoff(parts.X.dtype)
        pairs = np.array(m.pairs)  # (outputs, q, 2)
        a, da = self._operands(parts, pairs[..., 0], m.copies, attention_error)  # (T, outputs, q)
        b, db = self._operands(parts, pairs[..., 1], m.copies, attention_error)
        k = self._kappa(parts, mech)[:, None, None]
        k2 = k * k
        scale_gap = np.abs(k2 - 1) + 3.1 * u * k2  # |kappa^2 - 1|, kappa = ln_scale / sigma (one division)
        size = k * (1 + 4 * u) * (np.abs(a) / m.S_a + np.abs(b) / m.S_b)
        products = scale_gap * np.abs(a * b) + m.S_a * m.S_b * _truncation(size, m.P) + \
            (da * np.abs(b) + (np.abs(a) + da) * db) * (1 + 8 * u)
        _, terms = self._weights_terms(l, parts, mlp, mech)
        return np.abs(parts.X[:, list(m.out)]) + products.sum(axis=2) + terms

    def _division(self, l, H, parts, mlp, mech, attention_error) -> np.ndarray:
        m: DivisionMechanism = mech.mlp
        u = rounding.unit_roundoff(parts.X.dtype)
        num, dnum = self._operands(parts, np.array(m.num), m.copies, attention_error)  # (T, k)
        den = np.abs(H[:, m.den])[:, None]
        if np.any(den == 0):
            return np.full((H.shape[0], len(m.out)), np.inf)
        k = self._kappa(parts, mech)[:, None]
        scale_gap = (np.abs(k * den - 1) + 3.1 * u * k * den) / den  # |kappa - 1/|den||: the division and the product
        gap, terms = self._weights_terms(l, parts, mlp, mech)
        units = [int(np.flatnonzero(self.w.W2[l][:, o])[0]) for o in m.out]
        lowest = parts.pre[:, units] - mlp.pre[:, units] - gap[:, units]  # below every p* the unit could have
        bypass = np.where(lowest > 0, np.exp(-np.minimum(lowest, 40) ** 2 / 2) / math.sqrt(2 * math.pi) * 1.01,
                          np.inf)
        return (np.abs(parts.X[:, list(m.out)]) + m.Q * bypass + np.abs(num) * scale_gap + dnum / den * (1 + 2 * u)
                + 1.01 * u * m.Q * m.B + terms)

    # -- the run --------------------------------------------------------------------------------

    def run(self, tokens: np.ndarray, components: bool = False) -> Run:
        """The numpy pass on one checked prompt, with the error analysis of every answer (see ``Run``)."""
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # an unbounded error is inf, not a warning
            return self._run(tokens, components)

    def _run(self, tokens: np.ndarray, components: bool) -> Run:
        w, net, P = self.w, self.net, self.width
        program, layout = net.program, net.layout
        H = forward.embed(w, tokens)
        T = H.shape[0]
        E = np.zeros((P, T))
        states, intervals, locals_, remainders = [H], [E], [], []
        for l, (ins, mech) in enumerate(zip(program.instructions, net.mechanisms)):
            parts = forward.layer_parts(w, l, H)
            local = self._local(l, H, parts, mech)[:, :P].T  # program rows x tokens
            remainder = _no_nan(second_order(ins, H[:, :P].T, E, layout))
            E = _no_nan(propagate(ins, H[:, :P].T, E, layout) + local) * rounding.SAFETY[H.dtype]
            H = parts.out
            states.append(H)
            intervals.append(E)
            locals_.append(local)
            remainders.append(remainder)
        columns = x_columns(program.n)[x_columns(program.n) < T]
        bounds, shares = self._adjoint(np.stack(states), locals_, remainders, columns, components)
        bounds = np.minimum(bounds, E[layout.span(program.readout)[0], columns])
        return Run(np.stack(states), np.stack(intervals), bounds, shares)

    def _adjoint(self, states, locals_, remainders, columns, components):
        """First-order bounds of each answer through the instructions' exact Jacobians, with rigorous remainders.

        With ``d_l`` the error after layer l, ``d_{l+1} = J_l d_l + e_l + r_l``
        (J_l the instruction's Jacobian at the computed state, e_l the local
        error, r_l the second-order remainder of a product or division), so
        an answer's error is ``sum_l <lambda_{l+1}, e_l + r_l>`` with
        ``lambda_L`` selecting it and ``lambda_l = J_l^T lambda_{l+1}``. The
        pullbacks are computed in floating point; ``slack`` bounds their
        rounding, propagated with ``|J|^T``. Unlike propagating ``|E|``
        forward, this keeps the signs that make a stable recurrence damp its
        errors.
        """
        program, layout, P = self.net.program, self.net.layout, self.width
        L, T = len(locals_), states.shape[1]
        u = rounding.unit_roundoff(states.dtype)
        lam = np.zeros((len(columns), P, T))
        lam[np.arange(len(columns)), layout.span(program.readout)[0], columns] = 1.0
        slack = np.zeros_like(lam)
        bounds = np.zeros(len(columns))
        shares = np.zeros((L, len(columns))) if components else None
        for l in range(L - 1, -1, -1):
            weight = np.abs(lam) + slack
            contribution = _no_nan(np.einsum("kpt,pt->k", weight, locals_[l] + remainders[l]))
            bounds += contribution
            if components:
                shares[l] = contribution
            H = states[l][:, :P].T
            ins = program.instructions[l]
            new = pullback(ins, H, lam, layout)
            rounding_of_pullback = rounding.gamma(max(ins_terms(ins), 1) + 2, u) * pullback(ins, H, np.abs(lam), layout,
                                                                                            absolute=True)
            slack = pullback(ins, H, slack, layout, absolute=True) + rounding_of_pullback
            lam = new
        return bounds * rounding.SAFETY[states.dtype], shares


def _no_nan(x: np.ndarray) -> np.ndarray:
    """Bounds are nonnegative; a NaN can only come from an infinite bound times 0, and stands for 'unbounded'."""
    return np.where(np.isnan(x), np.inf, x)


def propagate(ins, H: np.ndarray, E: np.ndarray, layout) -> np.ndarray:
    """``|I(H) - I(H*)|`` bounded from ``E >= |H - H*|`` (program rows x tokens), by the instruction's semantics."""
    out = E.copy()
    rows = layout.rows(ins.writes)
    T = H.shape[1]
    if isinstance(ins, Mov):
        out[rows] = E[layout.rows(ins.src)][:, np.maximum(np.arange(T) - ins.offset, 0)]
    elif isinstance(ins, Aff):
        acc = np.zeros((rows.stop - rows.start, T))
        for reg, W, _ in ins.terms:
            acc += abs(float(W)) * E[layout.rows(reg)] if W.ndim == 0 else np.abs(W) @ E[layout.rows(reg)]
        out[rows] = acc
    elif isinstance(ins, Mul):
        p, q, r = ins.shape
        A, dA = H[layout.rows(ins.a)].reshape(p, q, T).transpose(2, 0, 1), \
            E[layout.rows(ins.a)].reshape(p, q, T).transpose(2, 0, 1)
        B, dB = H[layout.rows(ins.b)].reshape(q, r, T).transpose(2, 0, 1), \
            E[layout.rows(ins.b)].reshape(q, r, T).transpose(2, 0, 1)
        dC = np.abs(A) @ dB + dA @ (np.abs(B) + dB)
        out[rows] = dC.transpose(1, 2, 0).reshape(p * r, T)
    elif isinstance(ins, Div):
        n, dn = np.abs(H[layout.rows(ins.num)]), E[layout.rows(ins.num)]
        d, dd = np.abs(H[layout.rows(ins.den)]), E[layout.rows(ins.den)]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (dn + n * dd / d) / (d - dd)
        out[rows] = np.where(d > dd, bound, np.inf)
    else:
        raise TypeError(f"no propagation rule for {type(ins).__name__}")
    return out


def second_order(ins, H: np.ndarray, E: np.ndarray, layout) -> np.ndarray:
    """Bound on the remainder ``I(H) - I(H - d) - J d`` for ``|d| <= E`` (zero for mov and aff).

    A product's is ``|dA| |dB|``; a division ``n / |d|``'s, with ``D = |d|``,
    is ``|n| dd^2 / (D^2 (D - dd)) + |dn| dd / (D (D - dd))`` (infinite when
    ``dd >= D``).
    """
    out = np.zeros_like(E)
    rows = layout.rows(ins.writes)
    T = H.shape[1]
    if isinstance(ins, Mul):
        p, q, r = ins.shape
        dA = E[layout.rows(ins.a)].reshape(p, q, T).transpose(2, 0, 1)
        dB = E[layout.rows(ins.b)].reshape(q, r, T).transpose(2, 0, 1)
        out[rows] = (dA @ dB).transpose(1, 2, 0).reshape(p * r, T)
    elif isinstance(ins, Div):
        n, dn = np.abs(H[layout.rows(ins.num)]), E[layout.rows(ins.num)]
        D, dd = np.abs(H[layout.rows(ins.den)]), E[layout.rows(ins.den)]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (n * dd * dd / D + dn * dd) / (D * (D - dd))
        out[rows] = np.where(D > dd, bound, np.inf)
    return out


def ins_terms(ins) -> int:
    """The most terms one entry of the instruction's Jacobian-transpose product sums (for its rounding)."""
    if isinstance(ins, Mul):
        return max(ins.shape)
    if isinstance(ins, Aff):
        return sum(1 if W.ndim == 0 else W.shape[0] for _, W, _ in ins.terms) + 1
    return 2


def pullback(ins, H: np.ndarray, lam: np.ndarray, layout, absolute: bool = False) -> np.ndarray:
    """``J^T lam`` for the instruction's Jacobian J at the state ``H`` (program rows x tokens), for a stack of
    cotangents ``lam`` (K, program rows, tokens); with ``absolute``, ``|J|^T lam``."""
    A = np.abs if absolute else (lambda x: x)
    out = lam.copy()
    rows = layout.rows(ins.writes)
    seed = lam[:, rows].copy()
    out[:, rows] = 0.0
    T = H.shape[1]
    if isinstance(ins, Mov):
        src = layout.rows(ins.src)
        target = np.maximum(np.arange(T) - ins.offset, 0)
        for t in range(T):
            out[:, src, target[t]] += seed[:, :, t]
    elif isinstance(ins, Aff):
        for reg, W, _ in ins.terms:
            r = layout.rows(reg)
            out[:, r] += (abs(float(W)) if absolute else float(W)) * seed if W.ndim == 0 else \
                np.einsum("ao,kat->kot", A(W), seed)
    elif isinstance(ins, Mul):
        p, q, r = ins.shape
        Am = A(H[layout.rows(ins.a)].reshape(p, q, T))
        Bm = A(H[layout.rows(ins.b)].reshape(q, r, T))
        S = seed.reshape(-1, p, r, T)
        out[:, layout.rows(ins.a)] += np.einsum("kprt,qrt->kpqt", S, Bm).reshape(-1, p * q, T)
        out[:, layout.rows(ins.b)] += np.einsum("kprt,pqt->kqrt", S, Am).reshape(-1, q * r, T)
    elif isinstance(ins, Div):
        n = H[layout.rows(ins.num)]
        d = H[layout.rows(ins.den)]
        inv = 1 / np.abs(d)
        out[:, layout.rows(ins.num)] += seed * inv
        dden = -n * np.sign(d) * inv * inv  # d(n/|d|)/dd
        out[:, layout.rows(ins.den)] += np.einsum("knt,nt->kt", seed, A(dden))[:, None, :]
    else:
        raise TypeError(f"no pullback for {type(ins).__name__}")
    return out
