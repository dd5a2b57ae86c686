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
  operands' actual size (``_truncation``), and the weights' and layer norm's
  roundings, carried through the units signed (``_signed_terms``: one
  product's units share them, and they cancel there); for a
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
from ..transformer import gpt2 as gpt2_pass
from . import deviation
from .blocks import ZERO, DivisionMechanism, ProductMechanism
from .gpt2 import to_gpt2
from .bounds import DomainError



SQRT_2_OVER_PI = math.sqrt(2 / math.pi)  # gelu''(0); this float is within u of it


class CertificateError(DomainError):
    """An answer whose certified error bound exceeds the tolerance asked for: refused, not returned."""


@dataclass(frozen=True)
class LayerMechanism:
    """What the certificate needs to know about one layer: each head's offset, and what the MLP computes."""

    offsets: tuple[int, int]  # (source head, self head): the token read is max(i - offset, 0)
    mlp: ProductMechanism | DivisionMechanism | None
    ln_scale: float
    attention_scale: float | None = None  # GPT-2 target: the scale its layer norm before attention divides by


@dataclass(frozen=True, eq=False)
class Run:
    """One certified run: ``states`` (L + 1, T, D) of the numpy pass; ``intervals`` (L + 1, program rows, T),
    a bound on the error of every program entry after each layer (propagated forward in absolute values,
    used for second-order terms); ``bounds``, one per x~ column the prompt has, on the read-out's error;
    ``shares`` (L, columns), with ``components``, each layer's part of ``bounds``; ``output`` the read-out."""

    states: np.ndarray
    intervals: np.ndarray
    bounds: np.ndarray
    shares: np.ndarray | None
    output: np.ndarray  # (T,): the read-out at every token


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
        for u in range(w.stored):
            _require_zero_sums(w.W1[u], u)
        self._deviations = {}
        zero = layout.span(ZERO)[0]
        for l, mech in enumerate(net.mechanisms):
            u = int(w.order[l])
            if u not in self._deviations and any(isinstance(m, ProductMechanism) for m in mech.mlp or ()):
                self._deviations[u] = deviation.product_deviations(  # float64 also for float32 weights
                    w.W1[u], w.W2[u], mech.mlp, mech.ln_scale, zero, u)
        self.target = net.gpt2
        if self.target is not None:
            self._value_sums = self.require_gpt2(net)

    @staticmethod
    def require_gpt2(net) -> np.ndarray:
        """The GPT-2 weights are the paper-form weights converted (``gpt2.to_gpt2``), checked by converting again;
        returns, per layer and head, ``|sum_r Wv~_r|`` (exact sums, fsum): the zero-sum defect of each value column
        left by rounding its compensation, through which LN_1's mean leaks in (``gpt2``, point 1). Public: the
        runtimes (``construct.hf.save_pretrained``, ``construct.tl.to_hooked_transformer``) check the same."""
        w, g = net.weights, net.gpt2
        scales_ = {}
        for l, mech in enumerate(net.mechanisms):
            scales_[int(w.order[l])] = mech.attention_scale
        rebuilt = to_gpt2(w, [scales_[s] for s in range(w.stored)], net.constants["ln_f_scale"],
                          net.layout.span(ZERO)[0], net.layout.span(net.program.readout)[0])
        if g.n_head != rebuilt.n_head or not all(np.array_equal(a, b) for a, b in
                                                 zip(g.arrays().values(), rebuilt.arrays().values())):
            raise ValueError("the GPT-2 weights are not the conversion of the network's layers; the certificate does "
                             "not apply")
        sums = np.zeros((g.depth, g.n_head, g.head_size))
        for l in range(g.depth):
            Wv = g.head_weights(l, 2).astype(np.float64)
            for h in range(g.n_head):
                sums[l, h] = [abs(math.fsum(column)) for column in Wv[h].T.tolist()]
        return sums

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
        """Bound on |layer(H) - I(H)|, (T, D), for the layer at depth ``l`` and its instructions I in order.

        Rows its attention writes are off by the attention's rounding and
        selection errors (its forms, composed, are exactly the attention
        instructions' result); rows its MLP writes by the MLP's rounding and
        each mechanism's gap, whose operands are the state after attention,
        each within that attention error of its exact value.
        """
        w = self.w
        u = int(w.order[l])
        T = H.shape[0]
        chosen = np.stack([np.maximum(np.arange(T) - offset, 0) for offset in mech.offsets])
        if self.target is None:
            att = rounding.attention(w, u, H, parts)
            attention_error = att.rounding + rounding.selection(w.Wo[u], parts, att.values, chosen)
        else:
            attention_error = self._gpt2_attention(l, H, parts, mech, chosen)
        if not mech.mlp:
            return attention_error
        mlp = rounding.mlp(w, u, parts)
        local = attention_error + mlp.rounding
        normed = rounding.normed_error(parts) if u in self._deviations else None
        for m in mech.mlp:
            out = list(m.out)
            if isinstance(m, ProductMechanism):
                local[:, out] = mlp.given_rounding[:, out] + self._product(u, parts, mlp, mech, m, attention_error,
                                                                           normed)
            else:
                local[:, out] = mlp.rounding[:, out] + self._division(u, parts, mlp, mech, m, attention_error)
        return local

    def _gpt2_attention(self, l: int, H: np.ndarray, parts, mech: LayerMechanism, chosen: np.ndarray) -> np.ndarray:
        """A GPT-2 block's attention against the paper's ideal ``X* = H + sum_h (H Wv_h)[c_h] Wo_h + bo``
        (``gpt2``, point 1): its rounding, its selection, and LN_1's gap. Head h's value at the selected column c
        is ``V'_c = kappa_c (H_c Wv_h) - mu_c delta_h / sigma_c`` (exactly, for the pass's ``mu``, ``sigma``;
        ``kappa = s / sigma``, ``delta_h`` the value columns' sums), so ``|V'_c - H_c Wv_h| <= |V'_c| |1 -
        sigma_c / s| + |mu_c| |delta_h| / s``."""
        g = self.target
        T = H.shape[0]
        att = gpt2_pass.attention_rounding(g, l, H, parts)
        Wo = g.c_proj_weight[l]
        u = rounding.unit_roundoff(H.dtype)
        s = mech.attention_scale
        sigma, mean = parts.sigma1[:, 0], np.abs(parts.mean1[:, 0])
        scaled = (np.abs(1 - sigma / s) + 2 * u)[None, :, None] * att.values \
            + mean[None, :, None] * self._value_sums[l][:, None, :] / s * (1 + 2 * u)  # (m, T, dh) at each column
        gap = scaled[np.arange(g.n_head)[:, None], chosen]  # at the selected column
        norm = (gap.transpose(1, 0, 2).reshape(T, -1) @ np.abs(Wo)) * rounding.SAFETY[H.dtype]
        return att.rounding + rounding.selection(Wo, parts, att.values, chosen) + norm

    def _readout(self, H: np.ndarray, columns, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The read-out (T,) and the bounds on its error at ``columns``: the paper's, the state's entry ``pred``
        (exact); GPT-2's, ``s_f`` times the final layer norm's ``pred`` minus its ``zero`` (``gpt2``, point 3),
        in exact arithmetic ``kappa_f pred`` with ``kappa_f = s_f / sigma_f``, so off by ``|kappa_f - 1| |pred|``
        and the rounding of the two normalised entries (2 roundings each) and of their weighted sum (2 terms)."""
        if self.target is None:
            return H @ self.w.readout, bounds
        g, layout = self.target, self.net.layout
        _, centred, sigma, normed, y = gpt2_pass.readout_parts(g, H)
        u = rounding.unit_roundoff(H.dtype)
        s_f = self.net.constants["ln_f_scale"]
        rows = [layout.span(self.net.program.readout)[0], layout.span(ZERO)[0]]
        gamma2 = rounding.gamma(2, u)
        sig = sigma[columns, 0]
        terms = s_f * (gamma2 * np.abs(normed[columns][:, rows]).sum(axis=1)
                       + gamma2 * (1 + u) * np.abs(centred[columns][:, rows]).sum(axis=1) / sig)
        scale = (np.abs(s_f / sig - 1) + 2 * u) * np.abs(H[columns, rows[0]])
        return y, (bounds + terms + scale) * rounding.SAFETY[H.dtype]

    def _division_weights(self, l: int, parts, mlp, m) -> tuple:
        """A division's MLP in exact arithmetic with the actual weights, against the lemma's exact coefficients.

        Input weights are ``N sqrt(2/D) / Q``, with ``N sqrt(2/D)`` a power of
        two: one rounding each, two on the compensation row (which makes each
        unit's weights sum to zero, checked by ``Certifier``); so the
        pre-activation is off the lemma's by at most ``2.01 u sum_r |W1|
        |x_r - mean| / sigma``. The output weight is ``Q`` exactly. Returns
        (per unit) the pre-activation gap and (per output row) the MLP's gap.
        """
        u = rounding.unit_roundoff(parts.X.dtype)
        out = list(m.out)
        gap = 2.01 * u * (np.abs(parts.centred) @ np.abs(self.w.W1[l])) * (1 + u) / parts.sigma  # (T, U)
        W2 = np.abs(self.w.W2[l][:, out])
        slope = rounding.gelu_slope(np.abs(parts.pre) + mlp.pre + gap)
        return gap, (slope * gap) @ W2

    def _signed_terms(self, l: int, parts, mlp, m: ProductMechanism, normed) -> np.ndarray:
        """A product's MLP in exact arithmetic, with the actual weights on the pass's ``normed``, against the
        lemma's: exact coefficients ``W1* = W1 - dW1``, ``W2* = W2 - dW2`` (``deviation``) on the exact ``n*``.

        With ``eta = normed - n*`` (``rounding.normed_error``) each unit's
        pre-activation moves from the lemma's ``p*`` to ``p'' = p* + delta``,
        ``delta = normed dW1 + eta W1* + b1`` (the lemma's units have no
        bias), so the difference ``sum_i W2_i g(p''_i) - W2*_i g(p*_i)`` is
        ``sum_i W2_i (g(p''_i) - g(p*_i)) + dW2_i g(p*_i)``, and
        ``g(p*_i) = hidden_i + (g(p''_i) - hidden_i) - (g(p''_i) - g(p*_i))``.
        Taylor: ``g(p'') - g(p*) = g'(p'') delta`` within ``0.4 delta^2``
        (``|g''| <= 2 phi(0)``), ``|g'| <= 1.13``, and ``g'(p) = 1/2 +
        sqrt(2/pi) p`` within ``(0.8 + 0.2 p^2) |p|^3`` (g's third
        derivative is ``phi(x) x (x^2 - 4)``). So the estimate ``hidden dW2
        + (g' delta) W2`` is computed signed (the units of one product share
        their roundings, which cancel there as the units' linear parts do),
        and the rest bounded: ``|hidden - g(p'')| |dW2|``, ``|g(p'') -
        g(p*)| |dW2|``, and ``(|g'| xi + gerr |delta| + 0.4 delta^2) |W2|``
        (``xi``, ``gerr``: the errors of the computed ``delta`` and ``g'``).
        The coefficients ``W*`` are exact to 40 digits (``deviation``), which
        ``1 + 4u`` covers.
        """
        dtype = parts.X.dtype
        u = rounding.unit_roundoff(dtype)
        eta, zeta = normed
        dW1, dW2 = self._deviations[l]
        out = list(m.out)
        W2, dW2 = self.w.W2[l][:, out], dW2[:, out]
        units = np.flatnonzero(np.any(W2 != 0, axis=1) | np.any(dW2 != 0, axis=1))  # a weight may underflow to 0
        W1, dW1, b1, W2, dW2 = self.w.W1[l][:, units], dW1[:, units], self.w.b1[l][units], W2[units], dW2[units]
        n, p = parts.normed, parts.pre[:, units]
        dpre, dhidden = mlp.given_pre[:, units], mlp.given_hidden[:, units]
        delta = n @ dW1 + eta @ W1 + b1
        terms1 = rounding.nonzeros(W1) + 3
        xi = (np.abs(eta) @ np.abs(dW1) + zeta @ (np.abs(W1) + np.abs(dW1)) + 2 * u * (np.abs(n) @ np.abs(dW1))
              + rounding.gamma(terms1, u) * (np.abs(n) @ np.abs(dW1) + np.abs(eta) @ np.abs(W1) + np.abs(b1)))
        g = 0.5 + SQRT_2_OVER_PI * p
        reach = np.abs(p) + dpre
        gerr = (0.8 + 0.2 * reach**2) * reach**3 + 0.7979 * dpre + 3 * u * (np.abs(g) + SQRT_2_OVER_PI * np.abs(p))
        gd = g * delta
        hidden = parts.hidden[:, units]
        estimate = hidden @ dW2 + gd @ W2
        terms2 = rounding.nonzeros((W2 != 0) | (dW2 != 0)) + 4  # the dot product, g delta, the sum, dW2 rounded
        size = np.abs(delta) + xi
        bound = (np.abs(estimate)
                 + rounding.gamma(terms2, u) * (np.abs(hidden) @ np.abs(dW2) + np.abs(gd) @ np.abs(W2))
                 + dhidden @ np.abs(dW2) + (np.minimum(np.abs(g) + gerr, rounding.GELU_LIPSCHITZ) * size) @ np.abs(dW2)
                 + (np.abs(g) * xi + gerr * size + 0.4 * size * size) @ (np.abs(W2) + np.abs(dW2)))
        return (bound * (1 + 4 * u) + terms2 * float(np.finfo(dtype).tiny)) * rounding.SAFETY[dtype]

    def _kappa(self, parts, mech) -> np.ndarray:
        """Layer norm's actual scale ``ln_scale / sigma`` (T,), and its relative rounding."""
        return mech.ln_scale / parts.sigma[:, 0]

    def _product(self, l, parts, mlp, mech, m: ProductMechanism, attention_error, normed) -> np.ndarray:
        u = rounding.unit_roundoff(parts.X.dtype)
        pairs = np.array(m.pairs)  # (outputs, q, 2)
        a, da = parts.X[:, pairs[..., 0]], attention_error[:, pairs[..., 0]]  # (T, outputs, q)
        b, db = parts.X[:, pairs[..., 1]], attention_error[:, pairs[..., 1]]
        k = self._kappa(parts, mech)[:, None, None]
        k2 = k * k
        scale_gap = np.abs(k2 - 1) + 3.1 * u * k2  # |kappa^2 - 1|, kappa = ln_scale / sigma (one division)
        size = k * (1 + 4 * u) * (np.abs(a) / m.S_a + np.abs(b) / m.S_b)
        products = scale_gap * np.abs(a * b) + m.S_a * m.S_b * _truncation(size, m.P) + \
            (da * np.abs(b) + (np.abs(a) + da) * db) * (1 + 8 * u)
        return np.abs(parts.X[:, list(m.out)]) + products.sum(axis=2) + self._signed_terms(l, parts, mlp, m, normed)

    def _division(self, l, parts, mlp, mech, m: DivisionMechanism, attention_error) -> np.ndarray:
        """num / |den| against the operands after attention (a divisor the same layer's attention computes is
        read there), with their attention errors propagated as the division propagates errors."""
        u = rounding.unit_roundoff(parts.X.dtype)
        num, dnum = parts.X[:, list(m.num)], attention_error[:, list(m.num)]  # (T, k)
        den, dden = np.abs(parts.X[:, m.den])[:, None], attention_error[:, m.den][:, None]
        if np.any(den <= dden):
            return np.full((parts.X.shape[0], len(m.out)), np.inf)
        k = self._kappa(parts, mech)[:, None]
        scale_gap = (np.abs(k * den - 1) + 3.1 * u * k * den) / den  # |kappa - 1/|den||: the division and the product
        operands = (dnum + np.abs(num) * dden / den) / (den - dden) * (1 + 4 * u)
        gap, terms = self._division_weights(l, parts, mlp, m)
        units = [int(np.flatnonzero(self.w.W2[l][:, o])[0]) for o in m.out]
        lowest = parts.pre[:, units] - mlp.pre[:, units] - gap[:, units]  # below every p* the unit could have
        bypass = np.where(lowest > 0, np.exp(-np.minimum(lowest, 40) ** 2 / 2) / math.sqrt(2 * math.pi) * 1.01,
                          np.inf)
        return (np.abs(parts.X[:, list(m.out)]) + m.Q * bypass + np.abs(num) * scale_gap + operands
                + 1.01 * u * m.Q * m.B + terms)

    # -- the run --------------------------------------------------------------------------------

    def run(self, tokens: np.ndarray, components: bool = False) -> Run:
        """The numpy pass on one checked prompt, with the error analysis of every answer (see ``Run``)."""
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # an unbounded error is inf, not a warning
            return self._run(tokens, components)

    def _run(self, tokens: np.ndarray, components: bool) -> Run:
        w, net, P = self.w, self.net, self.width
        program, layout = net.program, net.layout
        H = forward.embed(w, tokens) if self.target is None else gpt2_pass.embed(self.target, tokens)
        T = H.shape[0]
        E = np.zeros((P, T))
        states, intervals, path = [H], [E], []
        for l, (step, mech) in enumerate(zip(net.steps, net.mechanisms)):
            parts = forward.layer_parts(w, w.order[l], H) if self.target is None else \
                gpt2_pass.layer_parts(self.target, l, H)
            local = self._local(l, H, parts, mech)[:, :P].T  # program rows x tokens
            # the layer's instructions in order, on the exact machine's intermediate states (computed in floating
            # point: ``slack`` bounds how far those are from exact, and widens the operands of second-order terms)
            mid, slack = H[:, :P].T, np.zeros((P, T))
            for k in step.instructions:
                ins = program.instructions[k]
                path.append((l, ins, mid, _no_nan(second_order(ins, mid, E + slack, layout, slack))))
                E = _no_nan(propagate(ins, mid, E, layout, slack))
                slack = _no_nan(propagate(ins, mid, slack, layout, slack) + machine_rounding(ins, mid, layout))
                try:
                    mid = ins.apply(mid, program.layout)
                except ZeroDivisionError as err:  # a divisor the domain bounds away from 0 is 0 here
                    raise DomainError(f"layer {l + 1}: {err}, below the floor the network was built for; the "
                                      "answer is refused") from None
            E = _no_nan(E + local) * rounding.SAFETY[H.dtype]
            path.append((l, None, None, local))
            H = parts.out
            states.append(H)
            intervals.append(E)
        columns = x_columns(program.n)[x_columns(program.n) < T]
        bounds, shares = self._adjoint(path, len(net.steps), T, H.dtype, columns, components)
        bounds = np.minimum(bounds, E[layout.span(program.readout)[0], columns])
        output, bounds = self._readout(H, columns, bounds)
        return Run(np.stack(states), np.stack(intervals), bounds, shares, output)

    def _adjoint(self, path, depth: int, T: int, dtype, columns, components):
        """First-order bounds of each answer through the instructions' exact Jacobians, with rigorous remainders.

        Along the instructions in order, ``d_{j+1} = J_j d_j + r_j`` (J_j the
        instruction's Jacobian at its input, r_j the second-order remainder
        of a product or division), and each layer adds its local error e_l
        after its last instruction; so an answer's error is the sum of
        ``<lambda, e_l>`` and ``<lambda, r_j>`` with ``lambda`` pulled back
        from the answer (``lambda <- J^T lambda``). The pullbacks are computed
        in floating point; ``slack`` bounds their rounding, propagated with
        ``|J|^T``. Unlike propagating ``|E|`` forward, this keeps the signs
        that make a stable recurrence damp its errors.
        """
        program, layout, P = self.net.program, self.net.layout, self.width
        u = rounding.unit_roundoff(dtype)
        lam = np.zeros((len(columns), P, T))
        lam[np.arange(len(columns)), layout.span(program.readout)[0], columns] = 1.0
        slack = np.zeros_like(lam)
        bounds = np.zeros(len(columns))
        shares = np.zeros((depth, len(columns))) if components else None
        for l, ins, mid, error in reversed(path):
            contribution = _no_nan(np.einsum("kpt,pt->k", np.abs(lam) + slack, error))
            bounds += contribution
            if components:
                shares[l] += contribution
            if ins is None:
                continue
            new = pullback(ins, mid, lam, layout)
            rounding_of_pullback = rounding.gamma(max(ins_terms(ins), 1) + 2, u) * pullback(ins, mid, np.abs(lam), layout,
                                                                                            absolute=True)
            slack = pullback(ins, mid, slack, layout, absolute=True) + rounding_of_pullback
            lam = new
        return bounds * rounding.SAFETY[np.dtype(dtype)], shares


def _no_nan(x: np.ndarray) -> np.ndarray:
    """Bounds are nonnegative; a NaN can only come from an infinite bound times 0, and stands for 'unbounded'."""
    return np.where(np.isnan(x), np.inf, x)


def _magnitudes(H: np.ndarray, slack: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower bounds on |x| for x within ``slack`` of ``H`` (the computed intermediate state)."""
    if slack is None:
        return np.abs(H), np.abs(H)
    return np.abs(H) + slack, np.maximum(np.abs(H) - slack, 0.0)


def propagate(ins, H: np.ndarray, E: np.ndarray, layout, slack: np.ndarray | None = None) -> np.ndarray:
    """``|I(x) - I(x*)|`` bounded from ``E >= |x - x*|`` (program rows x tokens), by the instruction's semantics,
    for x within ``slack`` of ``H``."""
    out = E.copy()
    rows = layout.rows(ins.writes)
    T = H.shape[1]
    upper, lower = _magnitudes(H, slack)
    if isinstance(ins, Mov):
        out[rows] = E[layout.rows(ins.src)][:, np.maximum(np.arange(T) - ins.offset, 0)]
    elif isinstance(ins, Aff):
        acc = np.zeros((rows.stop - rows.start, T))
        for reg, W, _ in ins.terms:
            acc += abs(float(W)) * E[layout.rows(reg)] if W.ndim == 0 else np.abs(W) @ E[layout.rows(reg)]
        out[rows] = acc
    elif isinstance(ins, Mul):
        p, q, r = ins.shape
        A, dA = upper[layout.rows(ins.a)].reshape(p, q, T).transpose(2, 0, 1), \
            E[layout.rows(ins.a)].reshape(p, q, T).transpose(2, 0, 1)
        B, dB = upper[layout.rows(ins.b)].reshape(q, r, T).transpose(2, 0, 1), \
            E[layout.rows(ins.b)].reshape(q, r, T).transpose(2, 0, 1)
        dC = A @ dB + dA @ (B + dB)
        out[rows] = dC.transpose(1, 2, 0).reshape(p * r, T)
    elif isinstance(ins, Div):
        n, dn = upper[layout.rows(ins.num)], E[layout.rows(ins.num)]
        d, dd = lower[layout.rows(ins.den)], E[layout.rows(ins.den)]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (dn + n * dd / d) / (d - dd)
        out[rows] = np.where(d > dd, bound, np.inf)
    else:
        raise TypeError(f"no propagation rule for {type(ins).__name__}")
    return out


def second_order(ins, H: np.ndarray, E: np.ndarray, layout, slack: np.ndarray | None = None) -> np.ndarray:
    """Bound on the remainder ``I(x) - I(x - d) - J(H) d`` for ``|d| <= E`` and x within ``slack`` of ``H``.

    Zero for mov and aff. A product's is ``|dA| |dB|`` (with E widened by
    the slack, which also covers the Jacobian taken at H instead of x); a
    division ``n / |d|``'s, with ``D = |d|``, is ``|n| dd^2 / (D^2 (D - dd)) +
    |dn| dd / (D (D - dd))`` (infinite when ``dd >= D``).
    """
    out = np.zeros_like(E)
    rows = layout.rows(ins.writes)
    T = H.shape[1]
    upper, lower = _magnitudes(H, slack)
    if isinstance(ins, Mul):
        p, q, r = ins.shape
        dA = E[layout.rows(ins.a)].reshape(p, q, T).transpose(2, 0, 1)
        dB = E[layout.rows(ins.b)].reshape(q, r, T).transpose(2, 0, 1)
        out[rows] = (dA @ dB).transpose(1, 2, 0).reshape(p * r, T)
    elif isinstance(ins, Div):
        n, dn = upper[layout.rows(ins.num)], E[layout.rows(ins.num)]
        D, dd = lower[layout.rows(ins.den)], E[layout.rows(ins.den)]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (n * dd * dd / D + dn * dd) / (D * (D - dd))
        out[rows] = np.where(D > dd, bound, np.inf)
    return out


def machine_rounding(ins, H: np.ndarray, layout) -> np.ndarray:
    """How far the float64 machine's ``ins.apply(H)`` can be from the instruction in exact arithmetic (written rows):
    a dot product of k terms is within gamma_k of its value (the model of ``rounding``), a division within u."""
    out = np.zeros_like(H)
    rows = layout.rows(ins.writes)
    u = rounding.unit_roundoff(H.dtype)
    if isinstance(ins, Aff):
        acc, terms = np.zeros((rows.stop - rows.start, H.shape[1])), 1
        for reg, W, _ in ins.terms:
            h = np.abs(H[layout.rows(reg)])
            acc += abs(float(W)) * h if W.ndim == 0 else np.abs(W) @ h
            terms += 1 if W.ndim == 0 else W.shape[1]
        if ins.bias is not None:
            acc += np.abs(ins.bias).reshape(-1, 1) if ins.bias.ndim else abs(float(ins.bias))
        out[rows] = rounding.gamma(terms + 1, u) * acc
    elif isinstance(ins, Mul):
        p, q, r = ins.shape
        T = H.shape[1]
        A = np.abs(H[layout.rows(ins.a)]).reshape(p, q, T).transpose(2, 0, 1)
        B = np.abs(H[layout.rows(ins.b)]).reshape(q, r, T).transpose(2, 0, 1)
        out[rows] = rounding.gamma(q, u) * (A @ B).transpose(1, 2, 0).reshape(p * r, T)
    elif isinstance(ins, Div):
        with np.errstate(divide="ignore", invalid="ignore"):
            out[rows] = u * np.abs(H[layout.rows(ins.num)]) / np.abs(H[layout.rows(ins.den)])
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
