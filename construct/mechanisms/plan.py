"""The logical pieces a layer is planned in, before anything becomes a matrix.

A layer runs its *attention* instructions, which read the layer's input,
then its *MLP* instructions, which read the state after attention
(``compiler.schedule`` decides the groups; unfused, a layer has one
instruction). A ``LayerPlan`` says, in rows of the residual stream (derived
from register names by the layout), what each attention head writes, what
the attention and MLP biases add, and which GeLU units the MLP has. Each
instruction kind fills in its part (``construct.instructions``); the
compiler's assembly turns plans into dense weight arrays.

Conventions shared by every kind:

* a head attends to one column, ``i - offset`` (Lemma: attention selection,
  one-hot up to ``scales.attention_leak``); offset 0 is the *self* head, and
  a layer has one head per offset its instructions read; the averaging head
  (offset key ``UNIFORM``, ``instructions.avg``) weighs columns 0..i alike;
* the attention phase is a set of **linear forms** (``Forms``): each row it
  writes gets ``sum over (offset, row r) of coef * h[r] at column i -
  offset``, plus a bias. Instructions compose in program order: one reading
  a register an earlier instruction of the same layer wrote reads that
  instruction's form, so chains of affine instructions cost one layer.
  Writing ``new - old`` (the self head's -1 on the row itself) overwrites a
  row, since the residual adds ``old`` back;
* rows a layer leaves nonzero for its own purposes (scratch copies,
  division pads) are *dirty*; the next layer's self head resets them before
  its layer norm;
* an MLP unit's input is written in residual units: ``inputs[r] = c`` means
  a pre-activation of ``c * x_r``, with the layer's ``ln_scale`` undoing the
  layer norm and a zero-sum compensation making the mean irrelevant.

The rows the compiler adds to a program's layout are named here (their roles:
``compiler.layout``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import sympy
from scipy.special import erf

from ..raw.registers import Layout
from . import scales

ONE, POS_SQ, LN_POS, LN_NEG, ZERO = "one", "pos_sq", "ln_pad_pos", "ln_pad_neg", "zero"
DIV_POS, DIV_NEG, SCRATCH, MEAN_PAD = "div_pad_pos", "div_pad_neg", "scratch", "mean_pad"
LN1_POS, LN1_NEG, WIDTH_PAD = "ln1_pad_pos", "ln1_pad_neg", "width_pad"  # the GPT-2 target's (``compiler.targets``)
UNIFORM = -1  # the key of the averaging head among offsets: it weighs columns 0..i by 1/(i+1) (``instructions.avg``)


def prefix_mean(H: np.ndarray, axis: int) -> np.ndarray:
    """``(1/(i+1)) sum_{j <= i} H_j`` along the token ``axis``: float64 (a running sum, one division), or exact for
    sympy entries (object arrays)."""
    counts = np.arange(1, H.shape[axis] + 1)
    if H.dtype == object:
        counts = np.array([sympy.Integer(int(c)) for c in counts], dtype=object)
    shape = [1] * H.ndim
    shape[axis] = -1
    return np.cumsum(H, axis=axis) / counts.reshape(shape)


def read_at(H: np.ndarray, offset: int, axis: int) -> np.ndarray:
    """What a head reading at ``offset`` sees of ``H`` at each token along ``axis``: the column ``max(i - offset,
    0)``, or the prefix mean for the averaging head (``UNIFORM``)."""
    if offset == UNIFORM:
        return prefix_mean(H, axis)
    return np.take(H, np.maximum(np.arange(H.shape[axis]) - offset, 0), axis=axis)


@dataclass
class Unit:
    """One GeLU unit: ``outputs * gelu(sum inputs[r] x_r + bias)``."""

    inputs: dict[int, float]
    bias: float
    outputs: dict[int, float] = field(default_factory=dict)


@dataclass
class LayerPlan:
    """One layer, as logical pieces (rows, coefficients, units) before assembly.

    ``heads[offset][row] = {read_row: coef}``: what the head attending to
    column ``i - offset`` adds to ``row``. ``reports``: per instruction, its
    text, the a-priori bound on the error of each entry it writes, and its
    register's bound.
    """

    instructions: tuple
    heads: dict[int, dict[int, dict[int, float]]] = field(default_factory=dict)
    attn_bias: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    units: list[Unit] = field(default_factory=list)
    ln_scale: float = 1.0
    ln1_scale: float = 1.0  # GPT-2 target: the scale its layer norm before attention divides by (``gpt2``)
    mlp_bias: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    dirty: set[int] = field(default_factory=set)
    constants: dict[str, float] = field(default_factory=dict)
    reports: list[tuple[str, float, float]] = field(default_factory=list)
    mechanisms: list = field(default_factory=list)  # what the MLP computes, one per MLP instruction

    @property
    def label(self) -> str:
        return "; ".join(str(ins) for ins in self.instructions)

    def apply(self, H: np.ndarray, zero: int, ln_eps: float) -> np.ndarray:
        """The plan run on its own on a state ``H`` (rows x tokens, rows as the layout places them), in float64:
        each head selects its column ``max(i - offset, 0)`` exactly (the ideal of attention selection, before
        any leak), the averaging head takes the exact mean over columns 0..i, the MLP runs its units through the real layer norm (``ln_scale`` undoing it, the row ``zero``
        compensating each unit's weights, as assembly writes them). What it leaves is the mechanisms' own
        error: what a unit test of one layer measures, with no dense weights involved."""
        X = H.copy()
        for offset, writes in self.heads.items():
            source = read_at(H, offset, axis=1)
            for row, form in writes.items():
                X[row] += sum(coef * source[read] for read, coef in form.items())
        for row, b in self.attn_bias.items():
            X[row] += b
        if not self.units:
            return X
        centred = X - X.mean(axis=0)
        normed = centred / np.sqrt((centred * centred).mean(axis=0) + ln_eps)
        out = X.copy()
        for unit in self.units:
            pre = sum(c * self.ln_scale * normed[r] for r, c in unit.inputs.items()) \
                - sum(unit.inputs.values()) * self.ln_scale * normed[zero] + unit.bias
            hidden = pre * (1 + erf(pre / np.sqrt(2))) / 2
            for row, weight in unit.outputs.items():
                out[row] += weight * hidden
        for row, b in self.mlp_bias.items():
            out[row] += b
        return out


@dataclass(frozen=True)
class Context:
    """What every block needs: the full layout, register bounds and the global constants."""

    layout: Layout
    bounds: dict[str, float]
    floors: dict[str, float]
    eps: float
    dtype: object
    sharpness: float
    product_scale: float
    bypass_offset: float
    ln_pad: float
    ln_scale: float  # ln_pad sqrt(2 / D), a power of two
    ln_eps: float
    sum_sq: float  # bound on the sum of squares of all rows but the pads
    tokens: int  # the prompt's columns, 2n + 1: the most an averaging head sums
    target: object = None  # the architecture the layers are for (``compiler.targets``): paper or GPT-2 blocks
    ln1_pad: float = 0.0  # GPT-2 target with divisions: the pads +-N_1 the layer after a div sees (``targets``)
    ln1_scale: float = 0.0  # N_1 sqrt(2/D), a power of two
    ln1_extra: float = 0.0  # 2 max (N_d |den|)^2: the most the division pads add to that layer norm's squares

    @property
    def leak(self) -> float:
        return scales.attention_leak(self.sharpness)

    def rows(self, name: str) -> range:
        return range(*self.layout.span(name))


class Forms:
    """The attention phase's linear forms: each row's value after attention, in terms of the layer's input.

    A form maps ``(offset, row)`` to a coefficient: the value is
    ``sum coef * h[row] at column max(i - offset, 0)`` (for ``UNIFORM``: the
    mean of ``h[row]`` over columns 0..i); ``bias`` holds the
    constant part. A row no instruction has written is its own input value.
    """

    def __init__(self) -> None:
        self.terms: dict[int, dict[tuple[int, int], float]] = {}
        self.bias: dict[int, float] = {}

    def value(self, row: int) -> tuple[dict[tuple[int, int], float], float]:
        return self.terms.get(row, {(0, row): 1.0}), self.bias.get(row, 0.0)

    def set(self, row: int, terms: dict[tuple[int, int], float], bias: float = 0.0) -> None:
        self.terms[row] = {key: c for key, c in terms.items() if c != 0}
        self.bias[row] = bias

    def combine(self, parts) -> tuple[dict[tuple[int, int], float], float]:
        """``sum coef * value(row)`` over ``parts`` (row, coef), shifted by nothing."""
        terms: dict[tuple[int, int], float] = defaultdict(float)
        bias = 0.0
        for row, coef in parts:
            form, b = self.value(row)
            for key, c in form.items():
                terms[key] += coef * c
            bias += coef * b
        return dict(terms), bias


def read_rows(mlp: list, name: str, ctx: Context, forms: Forms, scratch: list[int], plan: LayerPlan) -> list[int]:
    """The rows an MLP instruction reads register ``name`` from: its own, or a scratch copy of its form if any
    instruction of the MLP writes it (attention zeroes what the MLP writes, and the MLP's reads come before its
    writes: the instruction's own output, or a later one's). The scratch rows are left dirty."""
    if not any(name == ins.writes for ins in mlp):
        return list(ctx.rows(name))
    start = len(scratch)
    rows = list(ctx.rows(SCRATCH))[start : start + ctx.layout[name].size]
    if len(rows) < ctx.layout[name].size:
        raise ValueError(f"the scratch register is too small for the operands this layer overwrites ({name!r})")
    for s, r in zip(rows, ctx.rows(name)):
        forms.set(s, *forms.value(r))
    scratch.extend(rows)
    plan.dirty.update(rows)
    return rows
