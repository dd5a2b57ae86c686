"""div: in every column ``out = num / |den|``; layer norm divides (Lemma 8) and a GeLU passes the quotient (Lemma 5).

Everything about the kind: its semantics, its export, its compile rule
(division pads and bypass units, ``plan_mlp``), what it tells the
certificate (``DivisionMechanism``; ``propagate`` and the rest) and its
proof hook (``mechanism``: lemma ``layer_norm_division`` with
``gelu_bypass``). ``divisor`` names ``den``, which the domain gives a floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..mechanisms import scales
from ..mechanisms.plan import DIV_NEG, DIV_POS, LN_NEG, LN_POS, Unit, read_rows
from ..raw.registers import Layout
from ..transformer import rounding
from .base import MLP, Instruction, magnitudes, names, require, size


@dataclass(frozen=True)
class Div(Instruction):
    """div: in every column, ``out = num / |den|``, ``den`` a one-row register.

    The absolute value is the layer-norm construction's (layer norm divides
    by a standard deviation). A zero divisor in a numeric run is an error.
    """

    num: str
    den: str
    out: str

    kind = "div"
    nonlinear = True
    phase = MLP
    mechanism = "layer_norm_division"

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.num, self.den)

    @property
    def writes(self) -> str:
        return self.out

    @property
    def divisor(self) -> str:
        return self.den

    def check(self, layout: Layout) -> None:
        require(layout, self, self.den, 1, "the divisor is one number")
        require(layout, self, self.out, size(layout, self, self.num), f"it receives {self.num!r}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        den = np.abs(H[layout.rows(self.den)])
        if H.dtype != object and np.any(den == 0):
            cols = sorted({int(c) for c in np.argwhere(den[0] == 0)[:, 0]})
            raise ZeroDivisionError(f"{self}: |{self.den}| is 0 in columns {cols}")
        out = H.copy()
        out[layout.rows(self.out)] = H[layout.rows(self.num)] / den
        return out

    def __str__(self) -> str:
        return f"div  {self.out} <- {self.num} / |{self.den}|"

    def paper(self, layout: Layout) -> str:
        return f"div({layout.paper(self.num)}, {layout.span(self.den)[0]}, {layout.paper(self.out)})"

    # -- export ---------------------------------------------------------------------------------------------------

    def to_data(self) -> dict:
        return {"num": self.num, "den": self.den, "out": self.out}

    @classmethod
    def from_data(cls, spec: dict) -> "Div":
        return cls(*names(spec, "num", "den", "out"))

    # -- compile rule ---------------------------------------------------------------------------------------------

    def mlp_group(self) -> tuple:
        return ("div", self.den)

    @property
    def operands(self) -> tuple[str, ...]:
        return (self.num,)

    def input_sensitivity(self, ctx, bound: float) -> tuple[float, float]:
        """``rel 2 bound + abs (1 + (1 + bound) / floor)``: num and den both read after attention, the divisor
        through its pads."""
        return 2 * bound, 1 + (1 + bound) / ctx.floors[self.den]

    @staticmethod
    def plan_mlp(divs: list, ctx, forms, plan, scratch: list[int]) -> None:
        """``out <- num / |den|`` by layer norm (Lemma 8) and a GeLU bypass (Lemma 5), for the layer's divs by one
        divisor.

        Attention writes pads ``N_d den`` and ``-N_d den`` (den's form: a divisor
        an aff of the same layer computes is read through it); the bias removes
        the permanent pads (``-N``, ``+N``; the MLP's bias, or the target's,
        puts them back exactly). Layer norm now divides the column by ``N_d
        |den| sqrt(2/D) sqrt(1 + rho)`` with ``rho <= eps/2`` for ``|den| >=``
        its floor (``scales.pad_size``). A unit per entry computes ``Q (gelu(u
        + B) - B)`` with ``u = num / (|den| Q)``, ``|u| <= 1`` by the bound
        ``Q`` of ``out``, so it passes ``num/|den|`` to within ``Q
        bypass_error(B)``. The pads are dirty: the next layer resets them.
        """
        (den,) = {ins.den for ins in divs}
        floor = ctx.floors[den]
        N_d, ln_scale = scales.pad_size(ctx.sum_sq, ctx.layout.width, ctx.ln_eps, ctx.dtype, floor)
        (den_row,) = ctx.rows(den)
        form, b = forms.value(den_row)
        for pad, sign in ((ctx.rows(DIV_POS)[0], 1.0), (ctx.rows(DIV_NEG)[0], -1.0)):
            forms.set(pad, {key: sign * N_d * c for key, c in form.items()}, sign * N_d * b)
            plan.dirty.add(pad)
        (ln_pos,), (ln_neg,) = ctx.rows(LN_POS), ctx.rows(LN_NEG)
        plan.attn_bias[ln_pos] -= ctx.ln_pad  # lifted by the biases, exactly: N - N = 0 and 0 + N = N
        plan.attn_bias[ln_neg] += ctx.ln_pad
        ctx.target.restore_pads(plan, ctx)
        B = ctx.bypass_offset
        reads = [read_rows(divs, ins.num, ctx, forms, scratch, plan) for ins in divs]  # before any output is zeroed
        for ins, num_rows in zip(divs, reads):
            out_rows = list(ctx.rows(ins.out))
            for o in out_rows:
                forms.set(o, {})
            Q = ctx.bounds[ins.out]
            for n, o in zip(num_rows, out_rows):
                plan.units.append(Unit({n: 1 / Q}, B, {o: Q}))
                plan.mlp_bias[o] -= Q * B
            plan.mechanisms.append(DivisionMechanism(out=tuple(out_rows), num=tuple(num_rows), den=den_row, Q=Q, B=B))
            rho = scales.pad_error(N_d, ctx.sum_sq, ctx.layout.width, ctx.ln_eps, floor)
            plan.reports.append((str(ins), Q * (scales.bypass_error(B, ctx.dtype) + rho / 2 + 4 * ctx.leak), Q))
        plan.ln_scale = ln_scale
        plan.constants.update(bypass_offset=B, div_pad=N_d)

    # -- certificate rules --------------------------------------------------------------------------------------------

    def reads_of(self, mechanism: "DivisionMechanism", layout: Layout) -> dict[int, int]:
        """The rows the mechanism reads (after attention) -> the program rows whose values this division means:
        each numerator entry, and the divisor."""
        reads = dict(zip(mechanism.num, range(*layout.span(self.num))))
        reads[mechanism.den] = layout.span(self.den)[0]
        return reads

    def propagate(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack=None) -> np.ndarray:
        """``n / |d|``: ``|d(n/|d|)| <= (|dn| + |n| |dd| / |d|) / (|d| - |dd|)``, infinite when ``|dd| >= |d|``."""
        n, dn = magnitudes(H, slack, layout.rows(self.num))[0], E[layout.rows(self.num)]
        d, dd = magnitudes(H, slack, layout.rows(self.den))[1], E[layout.rows(self.den)]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (dn + n * dd / d) / (d - dd)
        out = E.copy()
        out[layout.rows(self.out)] = np.where(d > dd, bound, np.inf)
        return out

    def second_order(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack=None) -> np.ndarray:
        """With ``D = |d|``: ``|n| dd^2 / (D^2 (D - dd)) + |dn| dd / (D (D - dd))`` (infinite when ``dd >= D``)."""
        n, dn = magnitudes(H, slack, layout.rows(self.num))[0], E[layout.rows(self.num)]
        D, dd = magnitudes(H, slack, layout.rows(self.den))[1], E[layout.rows(self.den)]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (n * dd * dd / D + dn * dd) / (D * (D - dd))
        out = np.zeros_like(E)
        out[layout.rows(self.out)] = np.where(D > dd, bound, np.inf)
        return out

    def machine_rounding(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        """A division rounds once: within ``u`` of its value."""
        out = np.zeros_like(H)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[layout.rows(self.out)] = rounding.unit_roundoff(H.dtype) * np.abs(H[layout.rows(self.num)]) / \
                np.abs(H[layout.rows(self.den)])
        return out

    def pullback_terms(self, tokens: int) -> int:
        return 2

    def pullback(self, H: np.ndarray, lam: np.ndarray, layout: Layout, absolute: bool = False) -> np.ndarray:
        """``J^T lam``: ``lam_out / |d|`` onto num, ``-sum lam_out n sign(d) / d^2`` onto den, in place."""
        out = lam
        rows = layout.rows(self.out)
        seed = lam[:, rows].copy()
        out[:, rows] = 0.0
        n = H[layout.rows(self.num)]
        d = H[layout.rows(self.den)]
        inv = 1 / np.abs(d)
        out[:, layout.rows(self.num)] += seed * inv
        dden = -n * np.sign(d) * inv * inv  # d(n/|d|)/dd
        out[:, layout.rows(self.den)] += np.einsum("knt,nt->kt", seed, np.abs(dden) if absolute else dden)[:, None, :]
        return out


@dataclass(frozen=True)
class DivisionMechanism:
    """What a div layer's MLP computes: ``out[k] = x[num[k]] / |x[den]|`` by layer norm and bypass units
    ``Q (gelu(B + u) - B)``, rows as the state after attention holds them."""

    out: tuple[int, ...]
    num: tuple[int, ...]
    den: int
    Q: float
    B: float

    @staticmethod
    def prepare(W1, W2, mechanisms, ln_scale, zero_row, layer) -> None:
        return None  # the bypass units' weights are checked through their pre-activation gap, per run

    def _weights(self, ctx) -> tuple:
        """The division's MLP in exact arithmetic with the actual weights, against the lemma's exact coefficients.

        Input weights are ``N sqrt(2/D) / Q``, with ``N sqrt(2/D)`` a power of
        two: one rounding each, two on the compensation row (which makes each
        unit's weights sum to zero, checked by the certifier); so the
        pre-activation is off the lemma's by at most ``2.01 u sum_r |W1|
        |x_r - mean| / sigma``. The output weight is ``Q`` exactly. Returns
        (per unit) the pre-activation gap and (per output row) the MLP's gap.
        """
        parts, w, l = ctx.parts, ctx.w, ctx.stored
        u = rounding.unit_roundoff(parts.X.dtype)
        out = list(self.out)
        gap = 2.01 * u * (np.abs(parts.centred) @ np.abs(w.W1[l])) * (1 + u) / parts.sigma  # (T, U)
        W2 = np.abs(w.W2[l][:, out])
        slope = rounding.gelu_slope(np.abs(parts.pre) + ctx.mlp.pre + gap)
        return gap, (slope * gap) @ W2

    def local_error(self, ctx) -> np.ndarray:
        """num / |den| against the operands after attention (a divisor the same layer's attention computes is
        read there), with their attention errors propagated as the division propagates errors: the MLP's rounding,
        ``|num| |kappa - 1/|den||`` (layer norm's actual scale against the divisor), the bypass truncation
        ``phi(v_min)`` (Mills: ``v Phi(-v) <= phi(v)``) at the least pre-activation the unit could have, and the
        weights' terms."""
        return sum(self.local_terms(ctx).values())

    def local_terms(self, ctx) -> dict[str, np.ndarray]:
        """The terms of ``local_error`` by name, each (T, outputs); ``docs/CERTIFICATE_TERMS.md`` lists what each
        bounds and the test that shows it is needed. A divisor whose attention error reaches its size at a token (the
        guard) makes every term inf on the tokens of its layer (``ctx.per_layer``)."""
        parts, mlp = ctx.parts, ctx.mlp
        u = rounding.unit_roundoff(parts.X.dtype)
        out = list(self.out)
        num, dnum = parts.X[:, list(self.num)], ctx.attention_error[:, list(self.num)]  # (T, k)
        den, dden = np.abs(parts.X[:, self.den])[:, None], ctx.attention_error[:, self.den][:, None]
        guard = ctx.per_layer(den[:, 0] <= dden[:, 0])
        if guard.all():
            return {"divisor guard": np.full((parts.X.shape[0], len(self.out)), np.inf)}
        k = (ctx.ln_scale / parts.sigma[:, 0])[:, None]
        scale_gap = (np.abs(k * den - 1) + 3.1 * u * k * den) / den  # |kappa - 1/|den||: the division and the product
        gap, weight_terms = self._weights(ctx)
        units = [int(np.flatnonzero(ctx.w.W2[ctx.stored][:, o])[0]) for o in self.out]
        lowest = parts.pre[:, units] - mlp.pre[:, units] - gap[:, units]  # below every p* the unit could have
        bypass = np.where(lowest > 0, np.exp(-np.minimum(lowest, 40) ** 2 / 2) / math.sqrt(2 * math.pi) * 1.01,
                          np.inf)
        terms = {
            "mlp rounding": mlp.rounding[:, out],
            "output row before the MLP": np.abs(parts.X[:, out]),
            "bypass truncation": self.Q * bypass,
            "layer norm scale gap": np.abs(num) * scale_gap,
            "operands' attention error": (dnum + np.abs(num) * dden / den) / (den - dden) * (1 + 4 * u),
            "bypass offset rounding": np.full_like(num, 1.01 * u * self.Q * self.B),
            "weight roundings": weight_terms,
        }
        if not guard.any():
            return terms
        return {name: np.where(guard[:, None], np.inf, term) for name, term in terms.items()}
