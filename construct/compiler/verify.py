"""The weights against the instructions they claim: what the certificate adds when a layer does not compute them.

The certificate bounds a layer's distance from its instructions by the
mechanisms' errors, which assumes that the weights implement those
instructions. This module checks that assumption on the weights that run,
after tying, at every depth, against the instructions the network says
that depth runs, and turns any difference into an error term instead of
trusting it:

* **Attention.** Write ``M_h = Wv_h Wo_h`` for head h, which reads the
  column ``i - o_h`` (``o_h`` the offset the layer's head table gives; if the
  head attends elsewhere, the certificate's selection term, which measures
  the softmax weights against that column, grows to cover it). With exact
  selection the layer's attention maps the state to ``X = H + sum_h
  H[i - o_h] M_h + bo``; the instructions map it, by the exact machine's
  semantics, to ``L(H)`` on the program's rows, unchanged where they write
  nothing. ``L`` is found by running the attention instructions
  (``Instruction.apply``) on one-hot probes (and on the zero state for its
  constant part), in float64, which composes the instructions' coefficients
  to within ``gamma_k`` of their exact products (k the terms summed along a
  chain, ``slack``). The difference ``Delta[o] = (sum_{h: o_h = o} M_h +
  [o = 0] I) - E[o]`` on every program row, and the bias's, then bound the
  error a run can suffer: ``sum_{o, r} (|Delta[o]_{r w}| + slack_{r w})
  |H[i - o, r]|`` on row w at column i. For the compiler's own networks the
  differences are 0 (or a rounding of a composed coefficient). An averaging
  head (``instructions.avg``) is the offset ``UNIFORM``, its ``H[i - o]``
  the mean of ``H`` over columns 0..i; its query or key weights must be
  zero (scores 0), else the layer is refused.
* **What the MLP reads.** A product or a division reads its operands from
  rows of the state after attention (a scratch copy where the instruction
  overwrites them). Each such row's attention map is held to the map of the
  operand entry the instruction reads (matrix entry ``(i, j)`` of the left
  factor and so on), by the same measure; ``read_errors`` gives the terms.
* **The units themselves** are checked against each lemma's exact
  coefficients by the mechanisms (``ProductMechanism.prepare``), from the
  lemma's own derivation, not the compiler's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..instructions import ATTENTION
from ..mechanisms.plan import UNIFORM, prefix_mean, read_at
from ..transformer.rounding import gamma


@dataclass(eq=False)
class AttentionCheck:
    """For one applied layer: per offset o, ``deviation[o]`` (D rows read, P program rows written) bounds
    ``|weights' map - the instructions' map|`` entrywise, slack included; ``bias`` (P,) the same for the constant
    part; ``expected[o]`` (P read, P written) is the instructions' map on program rows, for ``read_errors``."""

    offsets: tuple[int, ...]
    deviation: dict[int, np.ndarray]
    bias: np.ndarray
    expected: dict[int, np.ndarray]
    slack: dict[int, np.ndarray]
    weights: dict[int, np.ndarray]

    def error(self, H: np.ndarray) -> np.ndarray:
        """``sum_{o, r} deviation[o][r, w] |H[max(i - o, 0), r]|`` + the bias's, (T, P): the error a run on ``H``
        (T x D) can suffer on program row w at column i from weights that differ from the instructions; (layers,
        T, P) for states (layers, T, D)."""
        out = np.broadcast_to(self.bias, (*H.shape[:-1], len(self.bias))).copy()
        for o, (rows, cols, block) in self._sparse.items():
            out[..., cols] += seen(np.abs(H[..., rows]), o) @ block
        return out

    @cached_property
    def _sparse(self) -> dict:
        """Each offset's deviation as (read rows, written rows, the block between them), its nonzeros only: the
        compiler's layers read and write few rows, so this is what ``error`` multiplies."""
        out = {}
        for o, dev in self.deviation.items():
            rows, cols = np.flatnonzero(np.any(dev != 0, axis=1)), np.flatnonzero(np.any(dev != 0, axis=0))
            if rows.size:
                out[o] = (rows, cols, dev[np.ix_(rows, cols)])
        return out

    def read_errors(self, H: np.ndarray, reads: dict[int, int]) -> dict[int, np.ndarray]:
        """For rows ``reads`` (a row of the state after attention -> the program row whose value the MLP means to
        read there): per such row, (T,) ``sum_{o, r} (|weights' map of the row - the instructions' map of the
        program row| + slack) |H[i - o, r]|``; (layers, T) for states (layers, T, D)."""
        absH = np.abs(H)
        views = {}  # offset -> |H| as the head reading there sees it (every row: each row's view is its own)
        out = {}
        for row, gaps in self._read_gaps(reads):
            total = np.zeros(H.shape[:-1])
            for o, nonzero, gap in gaps:
                if o not in views:
                    views[o] = seen(absH, o)
                total += views[o][..., nonzero] @ gap
            out[row] = total
        return out

    def _read_gaps(self, reads: dict[int, int]) -> list:
        """Per row of ``reads``, per offset, the rows r with a nonzero gap ``|weights' map - the instructions' map|
        + slack`` and those gaps: they depend on the weights alone, so each mapping's are found once."""
        cache = self.__dict__.setdefault("_gaps", {})
        key = tuple(reads.items())
        if key not in cache:
            rows = []
            for row, meant in reads.items():
                gaps = []
                for o in self.weights:
                    P = self.expected[o].shape[0]
                    want = np.zeros(self.weights[o].shape[0])
                    want[:P] = self.expected[o][:, meant]
                    gap = np.abs(self.weights[o][:, row] - want)
                    gap[:P] += self.slack[o][:, meant]
                    nonzero = np.flatnonzero(gap)
                    if nonzero.size:
                        gaps.append((o, nonzero, gap[nonzero]))
                rows.append((row, gaps))
            cache[key] = rows
        return cache[key]


def seen(absH: np.ndarray, offset: int) -> np.ndarray:
    """``|H|`` (..., T, rows) as the head reading at ``offset`` sees it: the column ``max(i - offset, 0)``, or for
    the averaging head the mean of ``|H|`` over columns 0..i, rounded upward (its running sum: ``1 + gamma_T``)."""
    if offset != UNIFORM:
        return read_at(absH, offset, axis=-2)
    T = absH.shape[-2]
    return prefix_mean(absH, axis=-2) * (1 + gamma(T + 1, float(np.finfo(absH.dtype).eps) / 2))


def attention_check(w, stored: int, offsets: tuple[int, ...], instructions, layout, width: int) -> AttentionCheck:
    """``AttentionCheck`` of stored layer ``stored`` (heads reading at ``offsets``) against ``instructions`` (the
    layer's, attention ones first), on the program's ``width`` rows of ``layout``. The rows the layer's MLP
    writes are left out: attention clears them for the MLP, whose mechanism bounds them against the
    instruction from its operands alone. An averaging head (offset ``UNIFORM``) must have zero query or zero key
    weights (its scores 0, ``instructions.avg``), else ValueError."""
    attention = [ins for ins in instructions if ins.phase == ATTENTION]
    mlp_rows = [r for ins in instructions if ins.phase != ATTENTION for r in range(*layout.span(ins.writes))]
    D, dh = w.width, w.head_size
    weights: dict[int, np.ndarray] = {}
    for h, o in enumerate(offsets):
        if o == UNIFORM and np.any(w.Wq[stored, h]) and np.any(w.Wk[stored, h]):
            rows = np.flatnonzero(np.any(w.Wq[stored, h] != 0, axis=1))
            raise ValueError(f"stored layer {stored}, head {h}: the averaging head has nonzero query weights (on rows "
                             f"{rows.tolist()}) and key weights, so its scores are not 0 and its weights not "
                             "1/(i+1); the certificate does not apply")
        M = w.Wv[stored, h].astype(np.float64) @ w.Wo[stored, h * dh:(h + 1) * dh].astype(np.float64)
        weights[o] = weights.get(o, np.zeros((D, D))) + M
    weights.setdefault(0, np.zeros((D, D)))
    weights[0] = weights[0] + np.eye(D)  # the residual
    expected, bias, slack = _instructions_map(attention, layout, width, max(weights), UNIFORM in weights)
    deviation = {}
    for o in set(weights) | set(expected):
        got = weights.get(o, np.zeros((D, D)))[:, :width]
        want = np.zeros((D, width))
        if o in expected:
            want[:width] = expected[o]
        dev = np.abs(got - want)
        if o in slack:
            dev[:width] += slack[o]
        dev[:, mlp_rows] = 0.0
        deviation[o] = dev
    bias_gap = np.abs(w.bo[stored][:width].astype(np.float64) - bias[0]) + bias[1]
    bias_gap[mlp_rows] = 0.0
    full = {o: weights.get(o, np.zeros((D, D))) for o in deviation}
    expected = {o: expected.get(o, np.zeros((width, width))) for o in deviation}
    slack = {o: slack.get(o, np.zeros((width, width))) for o in deviation}
    return AttentionCheck(tuple(offsets), deviation, bias_gap, expected, slack, full)


def _instructions_map(attention: list, layout, width: int, heads_reach: int, averaging: bool):
    """The attention instructions' map on the program rows, per column offset: ``E[o][r, w]`` (the new value of
    row w at column i gains ``E[o][r, w] h[i - o, r]``, or for ``o = UNIFORM`` ``E[o][r, w]`` times the mean of
    ``h[., r]`` over columns 0..i), the constant part, and slack bounds on the float64 composition's rounding
    (run once more with every coefficient's magnitude, scaled by ``gamma_k``).

    The probes are read at a column ``c`` with ``c + 1`` a power of two beyond every offset, so that column 0
    is no selecting head's: a probe ``+1`` at column ``c - o`` and ``-1`` at column 0 reaches the head of offset
    o alone (its mean is exactly 0), and ``+1`` at column 0 the averaging head alone, whose exact ``1/(c+1)``
    is undone exactly. A mean sums the probe's ``c + 1`` columns: the slack counts them when the layer has an
    averaging head (``averaging``) or its instructions average."""
    reach = max(heads_reach, sum(ins.offset for ins in attention))
    column = 2 ** (reach + 1).bit_length() - 1  # >= reach + 1
    T = column + 1
    offsets = list(range(reach + 1)) + [UNIFORM]

    def run(instructions, sign: float) -> tuple[np.ndarray, np.ndarray]:
        H = np.zeros((width, T, len(offsets) * width + 1))
        for k, o in enumerate(offsets):
            probes = k * width + np.arange(width)
            if o != UNIFORM:
                H[np.arange(width), column - o, probes] = 1.0
            H[np.arange(width), 0, probes] = sign if o != UNIFORM else 1.0
        for ins in instructions:
            H = ins.apply(H, layout)
        out = H[:, column]  # (written rows, probes + the zero probe)
        constant = out[:, -1]
        linear = out[:, :-1] - constant[:, None]
        maps = {o: linear[:, k * width:(k + 1) * width].T for k, o in enumerate(offsets)}
        maps[UNIFORM] = maps[UNIFORM] * T
        return maps, constant

    maps, constant = run(attention, -1.0)
    magnitudes, constant_size = run([ins.magnitude() for ins in attention], 1.0)  # no cancellation
    averages = averaging or np.any(maps[UNIFORM])
    g = gamma(1 + sum(ins.fan_in for ins in attention) + (T if averages else 0), float(np.finfo(np.float64).eps) / 2)
    # a mean sums the constant part with the probe, so its rounding reaches the probe's value too
    slack = {o: g * (m + constant_size[None, :]) if averages else g * m for o, m in magnitudes.items()}
    expected = {o: m for o, m in maps.items() if np.any(m) or o == 0}
    return expected, (constant, g * constant_size), {o: slack[o] for o in expected}
