"""avg: column ``i`` gets the mean of a register over columns ``0..i``; one attention head with zero scores.

``Avg(src, dst)``: ``dst(i) = (1/(i+1)) sum_{j <= i} src(j)`` in every
column. It is the one instruction whose value at column ``i`` depends on
every earlier column, and it costs one head whatever the number of columns.

**Lemma (uniform attention).** A head whose query or key weights are zero
has every score ``q_i . k_j = 0``, so the causal softmax weighs columns
``0..i`` by exactly ``1/(i+1)``: the head outputs the prefix mean of its
values. In floating point the numpy pass (``transformer.forward``) computes
the weights as ``exp(s - max s) / sum``: every unmasked ``s - max s`` is
``0 - 0 = 0`` and ``exp(0) = 1`` exactly (masked entries are ``exp(-inf) =
0``), the sum of ``i + 1`` ones is the integer ``i + 1``, exact below
``2^53`` (float64) or ``2^24`` (float32), and one division rounds:
``a_i = fl(1/(i+1)) = (1 + delta)/(i+1)``, ``|delta| <= u``. So each weight
is within ``u/(i+1)`` of the exact one, and the head's output ``sum_j a_i
v_j`` differs from the exact mean by at most ``u`` times the mean of
``|v_j|`` for the weights, plus the rounding of the dot product of ``i + 1``
terms, ``gamma_{i+1} sum_j a_i |v_j|`` (Higham's model, (M2) of
``transformer.rounding``): in all ``(u + gamma_{i+1} (1 + u)) mean_{j<=i}
|v_j| <= gamma_{i+2} mean_{j<=i} |v_j|`` (lemma ``uniform_attention`` in
``proofs/lemmas.py``), a relative error ``gamma_{i+2}`` against a mean of
values of one sign. The certificate measures the weights themselves (``rounding.selection``
with the head's target weights uniform), so that nothing rests on this
analysis of ``exp`` and the sum; the weight check refuses an averaging head
whose query and key weights are both nonzero (its scores need not be 0).

**Compile rule.** A prefix mean is linear, so it composes with aff in one
attention phase: the averaging head reads the layer's input (offset 0
forms), so ``Avg`` of a register an aff of the same layer wrote averages
that aff's form (``avg(sum c_r h_r + b) = sum c_r avg(h_r) + b``), and a
later aff may combine averaged rows with rows of the column itself. Two
forms a head cannot compute are pushed to the next layer by the schedule
(``composed_offsets``): the mean of a form that reads another column (a
mov's result) or a mean (a mean of means is no one head's output), and a
mov of a mean to another column (a head reads one column or all of them,
not a mean ending at ``i - offset``).

**Certificate rules.** Linear: errors propagate as the mean of their
magnitudes, and the adjoint pulls a cotangent at column ``i`` back to each
column ``j <= i`` with weight ``1/(i+1)`` (suffix sums of ``lam_i/(i+1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mechanisms.plan import UNIFORM, prefix_mean
from ..raw.registers import Layout
from ..transformer import rounding
from .base import ATTENTION, Instruction, names, require, size


@dataclass(frozen=True)
class Avg(Instruction):
    """avg: in every column ``i``, ``dst = (1/(i+1)) sum_{j <= i} src(j)``, the mean of ``src`` over columns 0..i.

    Only ``dst`` changes, in every column; ``src`` and ``dst`` may be one
    register (every column reads the state before the instruction).
    """

    src: str
    dst: str

    kind = "avg"
    phase = ATTENTION

    def __post_init__(self) -> None:
        for field, name in (("src", self.src), ("dst", self.dst)):
            if not isinstance(name, str):
                raise ValueError(f"avg: {field} must be a register name, got {name!r}")

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.src,)

    @property
    def writes(self) -> str:
        return self.dst

    def check(self, layout: Layout) -> None:
        require(layout, self, self.dst, size(layout, self, self.src), f"it receives the mean of {self.src!r}")

    def apply(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        out = H.copy()
        out[layout.rows(self.dst)] = prefix_mean(H[layout.rows(self.src)], axis=1)
        return out

    def __str__(self) -> str:
        return f"avg  {self.dst} <- mean of {self.src} over columns 0..i"

    def paper(self, layout: Layout) -> str:
        return f"avg(0..i, i, {layout.paper(self.src)}, {layout.paper(self.dst)})"

    # -- export ---------------------------------------------------------------------------------------------------

    def to_data(self) -> dict:
        return {"src": self.src, "dst": self.dst}

    @classmethod
    def from_data(cls, spec: dict) -> "Avg":
        return cls(*names(spec, "src", "dst"))

    # -- compile rule ---------------------------------------------------------------------------------------------

    def composed_offsets(self, offsets: frozenset) -> frozenset | None:
        """The averaging head reads the layer's input in the column itself: a form reading other columns or a
        mean cannot be averaged in this layer (None)."""
        return frozenset({UNIFORM}) if offsets <= {0} else None

    def compose(self, ctx, forms) -> None:
        """The destination's rows take the source's forms read by the averaging head; a constant is its own mean
        (all read before any is set: source and destination may overlap)."""
        new = []
        for s, d in zip(ctx.rows(self.src), ctx.rows(self.dst)):
            form, b = forms.value(s)
            if any(o != 0 for o, _ in form):
                raise ValueError(f"{self}: the form of {self.src!r} reads other columns or a mean, which one "
                                 "averaging head cannot average (the schedule puts this avg in a later layer)")
            new.append((d, {(UNIFORM, r): c for (_, r), c in form.items()}, b))
        for d, form, b in new:
            forms.set(d, form, b)

    # -- certificate rules --------------------------------------------------------------------------------------------

    def propagate(self, H: np.ndarray, E: np.ndarray, layout: Layout, slack=None) -> np.ndarray:
        """``|mean(dh)| <= mean(|dh|)``, the running sum's rounding (``T`` terms) rounded up."""
        out = E.copy()
        out[layout.rows(self.dst)] = prefix_mean(E[layout.rows(self.src)], axis=1) * _upward(H.shape[1], E.dtype)
        return out

    def machine_rounding(self, H: np.ndarray, layout: Layout) -> np.ndarray:
        """The machine's running sum of ``i + 1`` terms and its division: ``gamma_{i+1}`` times the mean of
        ``|src|`` (Higham's (M2) for the sum, one rounding for the division)."""
        out = np.zeros_like(H)
        T = H.shape[1]
        u = rounding.unit_roundoff(H.dtype)
        weight = rounding.gamma(np.arange(1, T + 1), u) * _upward(T, H.dtype)
        out[layout.rows(self.dst)] = weight * prefix_mean(np.abs(H[layout.rows(self.src)]), axis=1)
        return out

    def pullback_terms(self, tokens: int) -> int:
        """A suffix sum of up to ``tokens`` cotangents, each divided once, added once to what is there."""
        return tokens + 1

    def source_columns(self, tokens: int) -> None:
        return None  # a mean over columns 0..i

    def pullback(self, H: np.ndarray, lam: np.ndarray, layout: Layout, absolute: bool = False) -> np.ndarray:
        """``J^T lam``: column j of the source gains ``sum_{i >= j} lam_dst(i) / (i+1)`` (the same for
        ``absolute``: every coefficient is positive)."""
        out = lam.copy()
        rows, src = layout.rows(self.dst), layout.rows(self.src)
        seed = lam[:, rows] / np.arange(1, lam.shape[-1] + 1)
        out[:, rows] = 0.0
        out[:, src] += np.cumsum(seed[..., ::-1], axis=-1)[..., ::-1]
        return out


def _upward(tokens: int, dtype) -> float:
    """``1 + gamma_T``: what a bound computed as a running sum of ``T`` nonnegative terms (and a division) may
    have lost to rounding, beyond the certificate's per-layer ``SAFETY``."""
    return 1 + float(rounding.gamma(tokens + 1, rounding.unit_roundoff(dtype)))
