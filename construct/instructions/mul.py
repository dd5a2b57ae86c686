"""mul: in every column ``out = A @ B``; the MLP computes it with GeLU products (Lemmas 4, 6, 7).

Everything about the kind: its semantics, its export, its compile rule (the
three-scale GeLU product units, ``plan_mlp``), what it tells the certificate
(``ProductMechanism``: the mechanism's local error and the weights'
deviations from the lemma's exact coefficients; the instruction's own error
calculus, ``propagate`` and the rest) and its proof hook (``mechanism``:
lemma ``gelu_product_bound``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np

from ..mechanisms import scales
from ..mechanisms.plan import Unit, read_rows
from ..raw.registers import Layout
from ..transformer import rounding
from .base import MLP, Instruction, magnitudes, names, require

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)  # gelu''(0); this float is within u of it
ROUNDINGS = 4  # an input weight may be this many units of roundoff from its coefficient (two roundings, one sum)


@dataclass(frozen=True)
class Mul(Instruction):
    """mul: in every column, ``out = A @ B`` with ``A`` the register ``a`` read as a p x q matrix and ``B`` the
    register ``b`` read as q x r, both row-major; ``shape = (p, q, r)``, and ``out`` receives the p x r product
    row-major. ``dot`` is the case ``p = r = 1``."""

    a: str
    b: str
    out: str
    shape: tuple[int, int, int]

    kind = "mul"
    nonlinear = True
    phase = MLP
    mechanism = "gelu_product_bound"

    def __post_init__(self) -> None:
        shape = tuple(self.shape)
        if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"mul {self.out}: shape must be three positive ints (p, q, r), got {self.shape!r}")
        object.__setattr__(self, "shape", shape)

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.a, self.b)

    @property
    def writes(self) -> str:
        return self.out

    def check(self, layout: Layout) -> None:
        p, q, r = self.shape
        require(layout, self, self.a, p * q, f"left factor {p}x{q}")
        require(layout, self, self.b, q * r, f"right factor {q}x{r}")
        require(layout, self, self.out, p * r, f"product {p}x{r}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        p, q, r = self.shape
        cols = H.shape[1:]  # (T,) or (T, batch...)
        A = H[layout.rows(self.a)].reshape(p, q, -1).transpose(2, 0, 1)
        B = H[layout.rows(self.b)].reshape(q, r, -1).transpose(2, 0, 1)
        out = H.copy()
        out[layout.rows(self.out)] = np.matmul(A, B).transpose(1, 2, 0).reshape(p * r, *cols)
        return out

    def __str__(self) -> str:
        p, q, r = self.shape
        return f"mul  {self.out} <- {self.a} ({p}x{q}) @ {self.b} ({q}x{r})"

    def paper(self, layout: Layout) -> str:
        p, q, r = self.shape
        return f"mul({p}, {q}, {r}, {layout.paper(self.a)}, {layout.paper(self.b)}, {layout.paper(self.out)})"

    # -- export ---------------------------------------------------------------------------------------------------

    def to_data(self) -> dict:
        return {"a": self.a, "b": self.b, "out": self.out, "shape": list(self.shape)}

    @classmethod
    def from_data(cls, spec: dict) -> "Mul":
        if not isinstance(spec["shape"], list):
            raise ValueError(f"mul shape must be a list, got {spec['shape']!r}")
        return cls(*names(spec, "a", "b", "out"), tuple(spec["shape"]))

    # -- compile rule ---------------------------------------------------------------------------------------------

    def mlp_group(self) -> tuple:
        return ("mul",)

    @property
    def operands(self) -> tuple[str, ...]:
        return (self.a, self.b)

    def input_sensitivity(self, ctx, bound: float) -> tuple[float, float]:
        """How the output's error grows when what the MLP reads is off by ``rel`` relative and ``abs`` absolute:
        ``rel (bound + 2 q S_a S_b) + abs (1 + q (S_a + S_b))`` (the zeroed output and the q products)."""
        q = self.shape[1]
        S_a, S_b = ctx.bounds[self.a], ctx.bounds[self.b]
        return bound + 2 * q * S_a * S_b, 1 + q * (S_a + S_b)

    @staticmethod
    def plan_mlp(muls: list, ctx, forms, plan, scratch: list[int]) -> None:
        """``out <- A @ B`` by GeLU products in the MLP (Lemmas 4, 6, 7), for every mul of the layer at once.

        Layer norm sees the permanent pads ``+-N``, so it divides the column by
        ``N sqrt(2/D)`` to relative ``eps/2`` (``scales.pad_size``);
        ``ln_scale`` multiplies it back. Each scalar product ``A_ij B_jk`` is
        ``S_a S_b R_P(A_ij/S_a, B_jk/S_b)``, with ``S_a, S_b`` the operands'
        bounds and ``R_P`` the three-scale GeLU product of
        ``scales.product_error``: units ``(a+b)/s``, ``a/s``, ``b/s`` for ``s =
        P, 2P, 4P`` with output weights ``+-C_m s^2 S_a S_b``, ``C_m = w_m
        sqrt(pi/2)`` and Richardson weights ``w = (1, -20, 64)/45``
        (``scales.RICHARDSON``). Units with the same inputs are one unit, shared
        by every product that reads the same entry at the same scale (also
        across the layer's muls). Error per output entry: ``q S_a S_b
        (product_error + rho)``, plus the attention leak on the zeroing.
        """
        P = ctx.product_scale
        units: dict[tuple, Unit] = {}
        multiples: dict[tuple, int] = {}

        def unit(inputs: dict[int, float], multiple: int) -> Unit:
            key = tuple(sorted(inputs.items()))
            if key not in units:
                units[key] = Unit(dict(inputs), 0.0)
                multiples[key] = multiple
            return units[key]

        rows = [(read_rows(muls, ins.a, ctx, forms, scratch, plan), read_rows(muls, ins.b, ctx, forms, scratch, plan))
                for ins in muls]
        found = []
        for ins, (a_rows, b_rows) in zip(muls, rows):
            p, q, r = ins.shape
            out_rows = list(ctx.rows(ins.out))
            for o in out_rows:
                forms.set(o, {})
            S_a, S_b = ctx.bounds[ins.a], ctx.bounds[ins.b]
            for (multiple, _), C in zip(scales.RICHARDSON, scales.RICHARDSON_CONSTANTS):
                s = multiple * P
                c = C * s**2
                for i in range(p):
                    for k in range(r):
                        o = out_rows[i * r + k]
                        for j in range(q):
                            ra, rb = a_rows[i * q + j], b_rows[j * r + k]
                            wa, wb = 1 / (S_a * s), 1 / (S_b * s)
                            both = defaultdict(float)
                            both[ra] += wa
                            both[rb] += wb  # ra == rb for a square (u u^T's diagonal)
                            for u, sign in ((unit(both, multiple), 1.0), (unit({ra: wa}, multiple), -1.0),
                                            (unit({rb: wb}, multiple), -1.0)):
                                u.outputs[o] = u.outputs.get(o, 0.0) + sign * c * S_a * S_b
            found.append((tuple(out_rows), tuple(tuple((a_rows[i * q + j], b_rows[j * r + k]) for j in range(q))
                                                  for i in range(p) for k in range(r)), S_a, S_b))
            rho = scales.pad_error(ctx.ln_pad, ctx.sum_sq, ctx.layout.width, ctx.ln_eps)
            plan.reports.append((str(ins), q * S_a * S_b * (scales.product_error(P, ctx.dtype) + rho)
                                 + 2 * ctx.leak * ctx.bounds[ins.out], ctx.bounds[ins.out]))
        plan.units = list(units.values())
        all_multiples = tuple(multiples[key] for key in units)
        plan.mechanisms = [ProductMechanism(out, pairs, S_a, S_b, P, all_multiples) for out, pairs, S_a, S_b in found]
        plan.ln_scale = ctx.ln_scale
        plan.constants.update(product_scale=P, ln_pad=ctx.ln_pad)

    # -- certificate rules --------------------------------------------------------------------------------------------

    def reads_of(self, mechanism: "ProductMechanism", layout: Layout) -> dict[int, int]:
        """The rows the mechanism's units read (after attention) -> the program rows whose values this product
        means there: term j of output (i, k) reads ``A[i, j]`` and ``B[j, k]``."""
        p, q, r = self.shape
        a, b = list(range(*layout.span(self.a))), list(range(*layout.span(self.b)))
        reads = {}
        for index, pairs in enumerate(mechanism.pairs):
            i, k = divmod(index, r)
            for j, (ra, rb) in enumerate(pairs):
                for row, meant in ((ra, a[i * q + j]), (rb, b[j * r + k])):
                    if reads.setdefault(row, meant) != meant:
                        raise ValueError(f"{self}: row {row} is read as two different operand entries")
        return reads

    def _blocks(self, X: np.ndarray, layout: Layout, T: int):
        p, q, r = self.shape
        return (X[layout.rows(self.a)].reshape(p, q, T).transpose(2, 0, 1),
                X[layout.rows(self.b)].reshape(q, r, T).transpose(2, 0, 1))

    def propagate(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack=None) -> np.ndarray:
        """``C = A B``: ``|dC| <= |A| |dB| + |dA| (|B| + |dB|)``, ``|A|``, ``|B|`` at most the computed values plus
        their slack."""
        p, q, r = self.shape
        T = H.shape[1]
        (A, _), (B, _) = (magnitudes(H, slack, layout.rows(name)) for name in (self.a, self.b))
        A, B = A.reshape(p, q, T).transpose(2, 0, 1), B.reshape(q, r, T).transpose(2, 0, 1)
        dA, dB = self._blocks(E, layout, T)
        out = E.copy()
        out[layout.rows(self.out)] = (A @ dB + dA @ (B + dB)).transpose(1, 2, 0).reshape(p * r, T)
        return out

    def second_order(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack=None) -> np.ndarray:
        """``|dA| |dB|`` (with E widened by the slack, which also covers the Jacobian taken at H instead of x)."""
        p, q, r = self.shape
        T = H.shape[1]
        dA, dB = self._blocks(E, layout, T)
        out = np.zeros_like(E)
        out[layout.rows(self.out)] = (dA @ dB).transpose(1, 2, 0).reshape(p * r, T)
        return out

    def machine_rounding(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        """Each entry is a dot product of q terms: within ``gamma_q`` of its value."""
        p, q, r = self.shape
        T = H.shape[1]
        A, B = self._blocks(np.abs(H), layout, T)
        out = np.zeros_like(H)
        out[layout.rows(self.out)] = rounding.gamma(q, rounding.unit_roundoff(H.dtype)) * \
            (A @ B).transpose(1, 2, 0).reshape(p * r, T)
        return out

    def pullback_terms(self, tokens: int) -> int:
        return max(self.shape)

    def pullback(self, H: np.ndarray, lam: np.ndarray, layout: Layout, absolute: bool = False) -> np.ndarray:
        """``J^T lam``: ``lam_out B^T`` onto A and ``A^T lam_out`` onto B (with ``|A|``, ``|B|`` if ``absolute``), in
        place."""
        p, q, r = self.shape
        T = H.shape[1]
        out = lam
        rows = layout.rows(self.out)
        S = lam[:, rows].copy().reshape(-1, p, r, T)
        out[:, rows] = 0.0
        magnitude = np.abs if absolute else (lambda x: x)
        Am = magnitude(H[layout.rows(self.a)].reshape(p, q, T))
        Bm = magnitude(H[layout.rows(self.b)].reshape(q, r, T))
        out[:, layout.rows(self.a)] += np.einsum("kprt,qrt->kpqt", S, Bm).reshape(-1, p * q, T)
        out[:, layout.rows(self.b)] += np.einsum("kprt,pqt->kqrt", S, Am).reshape(-1, q * r, T)
        return out


@dataclass(frozen=True)
class ProductMechanism:
    """What a mul layer's MLP computes, for the certificate: ``out[k] = sum_j x[pairs[k][j][0]] x[pairs[k][j][1]]``.

    Rows are those the MLP reads in the state after attention (an operand the
    layer overwrites is read from its scratch copy). Scales: operand bounds
    ``S_a``, ``S_b`` and the product scale ``P``; ``multiples`` gives each of
    the layer's units its m (it reads ``x / (m P)``).
    """

    out: tuple[int, ...]
    pairs: tuple[tuple[tuple[int, int], ...], ...]
    S_a: float
    S_b: float
    P: float
    multiples: tuple[int, ...]

    @staticmethod
    def prepare(W1: np.ndarray, W2: np.ndarray, mechanisms, ln_scale: float, zero_row: int,
                layer: int) -> tuple[np.ndarray, np.ndarray]:
        """``(W1 - W1*, W2 - W2*)`` in float64 (each entry the exact difference rounded once) for one stored product
        layer's ``W1`` (D, U) and ``W2`` (U, D), ``W*`` the lemma's exact coefficients.

        The lemma's units, for each product ``A_ij B_jk`` and each Richardson
        multiple m (``s = m P``): three units reading ``a / (S_a s) + b / (S_b
        s)``, ``a / (S_a s)`` and ``b / (S_b s)`` (layer norm's scale folded
        into the input weights, the zero row weighted minus their sum so that
        the mean drops out), written to the output with ``+C_m s^2 S_a S_b``,
        ``-C_m s^2 S_a S_b``, ``-C_m s^2 S_a S_b``. The compiler shares a unit
        between products and scales whose inputs are the same, so a stored
        unit's output weight is a sum of such terms. The stored weights are
        these coefficients rounded. The certificate needs the signed
        differences, not their sizes: the units of one product share their
        roundings, so the roundings cancel between units the way the units'
        linear parts do. The exact coefficients are built from the mechanisms
        (exact rationals for the input weights, 40 digits for ``C_m``), each
        intended unit is found among the stored ones by its input weights
        (within a few roundings); a unit the lemma needs and the layer lacks is
        refused: the certificate then does not apply.
        """
        u = float(np.finfo(W1.dtype).eps) / 2
        with mpmath.workdps(40):
            intended = _intended_units(mechanisms, ln_scale)
            stored = defaultdict(list)  # the stored units by the rows they read (the zero row aside)
            for i in range(W1.shape[1]):
                rows = tuple(int(r) for r in np.flatnonzero(W1[:, i]) if r != zero_row)
                stored[rows].append(i)
            exact_W1 = {}  # stored unit -> its intended input weights
            exact_W2 = defaultdict(lambda: mpmath.mpf(0))
            for inputs, outputs in intended.items():
                rows = tuple(r for r, _ in inputs)
                match = [i for i in stored.get(rows, [])
                         if all(abs(Fraction(float(W1[r, i])) - c) <= ROUNDINGS * u * c for r, c in inputs)]
                if not match:
                    raise ValueError(f"stored layer {layer + 1}: no unit reads rows {list(rows)} with the lemma's "
                                     "weights, so the product analysis does not apply")
                i = match[0]
                if exact_W1.setdefault(i, inputs) != inputs:
                    raise ValueError(f"stored layer {layer + 1}, unit {i}: two of the lemma's units match it")
                for o, weight in outputs.items():
                    exact_W2[i, o] += weight
            dW1, dW2 = W1.astype(np.float64), W2.astype(np.float64)  # units the lemma does not have: W* = 0
            for i, inputs in exact_W1.items():
                for r, c in inputs:
                    dW1[r, i] = float(Fraction(float(W1[r, i])) - c)
                dW1[zero_row, i] = float(Fraction(float(W1[zero_row, i])) + sum(c for _, c in inputs))
            for (i, o), weight in exact_W2.items():
                dW2[i, o] = float(mpmath.mpf(float(W2[i, o])) - weight)
        return dW1, dW2

    def local_error(self, ctx) -> np.ndarray:
        """Bound (T, outputs) on this product's rows after the layer against ``A B`` of the state after attention
        (``ctx``: the certificate's view of the layer, ``certificate.LocalContext``): the MLP's rounding given its
        ``normed``, ``|kappa^2 - 1| |a b|`` with ``kappa = ln_scale / sigma`` (layer norm's actual scale), the
        Richardson truncation at the scaled operands' actual size (``truncation``), the operands' attention errors
        propagated as a product propagates them, and the weights' and layer norm's roundings carried through the
        units signed (``signed_terms``)."""
        return sum(self.local_terms(ctx).values())

    def local_terms(self, ctx) -> dict[str, np.ndarray]:
        """The terms of ``local_error`` by name, each (T, outputs); ``docs/CERTIFICATE_TERMS.md`` lists what each
        bounds and the test that shows it is needed."""
        parts = ctx.parts
        u = rounding.unit_roundoff(parts.X.dtype)
        pairs = np.array(self.pairs)  # (outputs, q, 2)
        a, da = parts.X[:, pairs[..., 0]], ctx.attention_error[:, pairs[..., 0]]  # (T, outputs, q)
        b, db = parts.X[:, pairs[..., 1]], ctx.attention_error[:, pairs[..., 1]]
        k = (ctx.ln_scale / parts.sigma[:, 0])[:, None, None]
        k2 = k * k
        scale_gap = np.abs(k2 - 1) + 3.1 * u * k2  # |kappa^2 - 1|, kappa = ln_scale / sigma (one division)
        size = k * (1 + 4 * u) * (np.abs(a) / self.S_a + np.abs(b) / self.S_b)
        out = list(self.out)
        return {
            "mlp rounding": ctx.mlp.given_rounding[:, out],
            "output row before the MLP": np.abs(parts.X[:, out]),
            "layer norm scale gap": (scale_gap * np.abs(a * b)).sum(axis=2),
            "richardson truncation": (self.S_a * self.S_b * truncation(size, self.P)).sum(axis=2),
            "operands' attention error": ((da * np.abs(b) + (np.abs(a) + da) * db) * (1 + 8 * u)).sum(axis=2),
            "signed weight and layer norm roundings": self.signed_terms(ctx),
        }

    def signed_terms(self, ctx) -> np.ndarray:
        """The product's MLP in exact arithmetic, with the actual weights on the pass's ``normed``, against the
        lemma's: exact coefficients ``W1* = W1 - dW1``, ``W2* = W2 - dW2`` (``prepare``) on the exact ``n*``.

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
        The coefficients ``W*`` are exact to 40 digits (``prepare``), which
        ``1 + 4u`` covers.
        """
        parts, mlp = ctx.parts, ctx.mlp
        dtype = parts.X.dtype
        u = rounding.unit_roundoff(dtype)
        unbounded = ctx.normed_unbounded
        key = ("signed terms", ctx.stored, self)
        c = None if unbounded.any() or ctx.cache is None else ctx.cache.get(key)
        if c is None:
            c = _SignedWeights.of(self, ctx, unbounded)
            if not unbounded.any() and ctx.cache is not None:  # the weights' alone: kept for the layers applying them
                ctx.cache[key] = c
        units, rows, W1, dW1, b1, W2, dW2 = c.units, c.rows, c.W1, c.dW1, c.b1, c.W2, c.dW2
        eta, zeta = ctx.normed(rows)
        n, p = parts.normed[:, rows], parts.pre[:, units]
        dpre, dhidden = mlp.given_pre[:, units], mlp.given_hidden[:, units]
        delta = n @ dW1 + eta @ W1 + b1
        abs_eta, n_dW1 = np.abs(eta), np.abs(n) @ c.absdW1
        xi = (abs_eta @ c.absdW1 + zeta @ c.absW1_dW1 + 2 * u * n_dW1
              + rounding.gamma(c.terms1, u) * (n_dW1 + abs_eta @ c.absW1 + c.absb1))
        g = 0.5 + SQRT_2_OVER_PI * p
        abs_g = np.abs(g)
        reach = np.abs(p) + dpre
        reach2 = reach * reach
        gerr = (0.8 + 0.2 * reach2) * (reach2 * reach) + 0.7979 * dpre + 3 * u * (abs_g + SQRT_2_OVER_PI * np.abs(p))
        gd = g * delta
        hidden = parts.hidden[:, units]
        estimate = hidden @ dW2 + gd @ W2
        terms2 = c.terms2
        size = np.abs(delta) + xi
        bound = (np.abs(estimate)
                 + rounding.gamma(terms2, u) * (np.abs(hidden) @ c.absdW2 + np.abs(gd) @ c.absW2)
                 + (dhidden + np.minimum(abs_g + gerr, rounding.GELU_LIPSCHITZ) * size) @ c.absdW2
                 + (abs_g * xi + gerr * size + 0.4 * size * size) @ c.absW2_dW2)
        return (bound * (1 + 4 * u) + terms2 * float(np.finfo(dtype).tiny)) * rounding.SAFETY[dtype]


@dataclass(frozen=True, eq=False)
class _SignedWeights:
    """What ``ProductMechanism.signed_terms`` reads of a stored layer's weights: the units writing the product's
    rows (``W2`` or ``dW2`` nonzero: a weight may underflow to 0), the rows they read (``W1`` or ``dW1`` nonzero,
    or layer norm's error unbounded there: a row without weights adds exactly 0 otherwise), those weights, their
    magnitudes and the dot products' term counts."""

    units: np.ndarray
    rows: np.ndarray
    W1: np.ndarray
    dW1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    dW2: np.ndarray
    absW1: np.ndarray
    absdW1: np.ndarray
    absW1_dW1: np.ndarray
    absb1: np.ndarray
    absW2: np.ndarray
    absdW2: np.ndarray
    absW2_dW2: np.ndarray
    terms1: np.ndarray
    terms2: np.ndarray

    @classmethod
    def of(cls, mech: "ProductMechanism", ctx, unbounded: np.ndarray) -> "_SignedWeights":
        w, l = ctx.w, ctx.stored
        dW1, dW2 = ctx.prepared
        out = list(mech.out)
        W2, dW2 = w.W2[l][:, out], dW2[:, out]
        units = np.flatnonzero(np.any(W2 != 0, axis=1) | np.any(dW2 != 0, axis=1))
        W1, dW1, b1, W2, dW2 = w.W1[l][:, units], dW1[:, units], w.b1[l][units], W2[units], dW2[units]
        rows = np.flatnonzero(np.any(W1 != 0, axis=1) | np.any(dW1 != 0, axis=1) | unbounded)
        W1, dW1 = W1[rows], dW1[rows]
        absW1, absdW1, absW2, absdW2 = np.abs(W1), np.abs(dW1), np.abs(W2), np.abs(dW2)
        return cls(units, rows, W1, dW1, b1, W2, dW2, absW1, absdW1, absW1 + absdW1, np.abs(b1), absW2, absdW2,
                   absW2 + absdW2, rounding.nonzeros(W1) + 3,
                   rounding.nonzeros((W2 != 0) | (dW2 != 0)) + 4)  # the dot product, g delta, the sum, dW2 rounded


def truncation(s: np.ndarray, P: float) -> np.ndarray:
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


LEMMA_SCALES = (1, 2, 4)  # lemma gelu_product_bound: R_P combines the GeLU product at P, 2P and 4P


def lemma_weights() -> dict[int, Fraction]:
    """The Richardson weights of lemma ``gelu_product_bound``, derived here, not read from the compiler's tables:
    the w_m with ``sum w_m = 1`` (the product ab survives) that cancel the ``(mP)^-2`` and ``(mP)^-4`` terms,
    ``sum w_m m^-2 = sum w_m m^-4 = 0``: a 3 x 3 Vandermonde system solved in exact rationals."""
    rows = [[Fraction(1, m**e) for m in LEMMA_SCALES] for e in (0, 2, 4)]
    rhs = [Fraction(1), Fraction(0), Fraction(0)]
    for c in range(3):  # Gaussian elimination, exact
        pivot = next(r for r in range(c, 3) if rows[r][c] != 0)
        rows[c], rows[pivot], rhs[c], rhs[pivot] = rows[pivot], rows[c], rhs[pivot], rhs[c]
        for r in range(3):
            if r != c and rows[r][c] != 0:
                f = rows[r][c] / rows[c][c]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[c])]
                rhs[r] -= f * rhs[c]
    return {m: rhs[k] / rows[k][k] for k, m in enumerate(LEMMA_SCALES)}


def _intended_units(mechanisms: list[ProductMechanism], ln_scale: float) -> dict:
    """The lemma's units (``lemma_weights`` at the scales P, 2P, 4P): their input weights ``((row, exact
    coefficient), ...)`` -> ``{output row: weight}``."""
    constants = {m: mpmath.mpf(w.numerator) / w.denominator * mpmath.sqrt(mpmath.pi / 2)
                 for m, w in lemma_weights().items()}
    units = defaultdict(lambda: defaultdict(lambda: mpmath.mpf(0)))
    for mech in mechanisms:
        for multiple in LEMMA_SCALES:
            s = Fraction(multiple) * Fraction(mech.P)
            wa, wb = Fraction(ln_scale) / (Fraction(mech.S_a) * s), Fraction(ln_scale) / (Fraction(mech.S_b) * s)
            weight = constants[multiple] * mpmath.mpf(multiple * mech.P) ** 2 * mpmath.mpf(mech.S_a) \
                * mpmath.mpf(mech.S_b)
            for o, pairs in zip(mech.out, mech.pairs):
                for ra, rb in pairs:
                    both = defaultdict(Fraction)
                    both[ra] += wa
                    both[rb] += wb
                    for inputs, sign in ((both, 1), ({ra: wa}, -1), ({rb: wb}, -1)):
                        units[tuple(sorted(inputs.items()))][o] += sign * weight
    return units
