"""A running error analysis of the numpy pass: how far its floating-point layer can be from exact arithmetic.

For one layer, from its input ``H`` and the intermediates the pass computed
(``forward.LayerParts``), these functions bound elementwise the distance
between the pass's output and the same layer evaluated in exact arithmetic
on the same ``H``, with three computed quantities taken as given: the
softmax weights ``A``, and layer norm's ``mean`` and ``sigma``. (Nothing
needs them exactly: how close ``A`` is to one-hot and ``sigma`` to the
value a mechanism wants is measured from these very values, by
``construct.compiler.certificate``.) The bounds know nothing about
programs: they read weights and activations only.

The floating-point model, for float64 and float32 with unit roundoff
``u = eps / 2`` (round to nearest):

* (M1) an addition, subtraction, multiplication or division of two floats
  is exact up to a factor ``(1 + d)``, ``|d| <= u``, plus at most ``tiny``
  (the smallest normal number) in absolute terms, which covers underflow;
  adding zero or multiplying by one is exact;
* (M2) a dot product of ``k`` nonzero terms, in any order and with or
  without fused multiply-adds (as BLAS computes matrix products), is within
  ``gamma_k * sum |x_i y_i|`` of its value, ``gamma_k = k u / (1 - k u)``
  (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1);
  a term whose weight is zero is exactly zero and is not counted;
* (M3) ``scipy.special.erf`` is within ``ERF_ULPS * u * |erf(t)| + tiny`` of
  erf: Cephes documents a peak relative error of 3.7e-16 (3.3u) in float64,
  and float32 inputs are evaluated in float64 and rounded once
  (``tests/transformer/test_rounding.py`` checks both against mpmath on 12,000 points).

Every bound below is a sum of such terms over the operations the pass
performs, in the order ``forward.layer_parts`` performs them (and
``forward.live_parts``, the same operations without the weights' zero
terms, which the certificate runs), except for
the MLP's two matrix products, whose rounding is measured rather than
bounded in the worst case (``product_rounding``): each is recomputed by the
compensated dot product Dot2 of Ogita, Rump and Oishi ("Accurate sum and
dot product", SIAM J. Sci. Comput. 26, 2005), which under (M1) is within
``u |s| + gamma_k^2 sum |x_i y_i|`` of the exact value ``s``, so the
pass's distance from ``s`` follows from its distance from Dot2's result.
That proves more than (M2) for these products (it holds whatever BLAS
does, except where Dot2 itself overflows and (M2) is used) and is tighter by the factor (M2) loses to aligned signs: those
products' terms are large and cancel (the Richardson weights), so their
rounding dominated the worst-case bounds. The bounds
are computed in the dtype's own arithmetic; ``SAFETY`` inflates them to
cover the rounding of that computation (at most a few hundred operations
per entry, each relative ``u``, so ``1 + 2^-20`` in float64; ``1 + 2^-10``
in float32).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from .forward import LayerParts, mlp_units
from .weights import Weights

ERF_ULPS = {np.dtype(np.float64): 4.0, np.dtype(np.float32): 2.0}
GELU_LIPSCHITZ = 1.13  # sup |gelu'(x)| = 1.1289 (at x = 2.4)
TWO_OVER_SQRT_PI = 1.1284  # sup |erf'|, rounded up
SAFETY = {np.dtype(np.float64): 1 + 2.0**-20, np.dtype(np.float32): 1 + 2.0**-10}


def unit_roundoff(dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


def gamma(k, u: float):
    """``k u / (1 - k u)``, elementwise over counts ``k``; refuses counts where the bound breaks down."""
    if isinstance(k, int):  # one count (most calls): the same operations, without building an array
        if k * u >= 0.5:
            raise ValueError(f"a dot product of {k} terms is beyond the rounding model in this dtype")
        return np.float64(k * u / (1 - k * u))
    k = np.asarray(k, dtype=np.float64)
    if np.any(k * u >= 0.5):
        raise ValueError(f"a dot product of {int(k.max())} terms is beyond the rounding model in this dtype")
    return k * u / (1 - k * u)


SPLIT = {np.dtype(np.float64): 2.0**27 + 1, np.dtype(np.float32): 2.0**12 + 1}  # Veltkamp: half the mantissa


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s + e == a + b`` exactly, ``s = fl(a + b)``."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = SPLIT[a.dtype] * a
    high = c - (c - a)
    return high, a - high


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's TwoProduct: ``p + e == a b`` exactly, ``p = fl(a b)`` (without underflow or overflow)."""
    p = a * b
    a1, a2 = _split(a)
    b1, b2 = _split(b)
    return p, a2 * b2 - (((p - a1 * b1) - a2 * b1) - a1 * b2)


@dataclass(frozen=True, eq=False)
class _DotPlan:
    """What Dot2 needs of one weight matrix, the bias as its last row, found once: ``|W|``, the number k of nonzero
    terms of each output column, the columns with any, and their terms first in each column (``rows``,
    ``weights``, (kmax, C), weight 0 past a column's k); the distinct (row, weight) pairs among them
    (``pair_rows``, ``pair_weights``) and each term's pair (``pair``, (kmax, C)): units reading a row with the
    same weight share the term's TwoProduct."""

    absW: np.ndarray
    k: np.ndarray
    columns: np.ndarray
    rows: np.ndarray
    weights: np.ndarray
    pair_rows: np.ndarray
    pair_weights: np.ndarray
    pair: np.ndarray


def _dot_plan(W: np.ndarray, bias: np.ndarray | None) -> _DotPlan:
    """``_DotPlan`` of ``W`` and ``bias``, kept while both arrays live: the certificate passes the same slices of a
    stored layer at every layer that applies it (weights are read-only)."""
    key = (id(W), id(bias))
    kept = _PLANS.get(key)
    if kept is not None and kept[0]() is W and (bias is None or kept[1]() is bias):
        return kept[2]
    full = W if bias is None else np.concatenate([W, bias[None, :]], axis=0)
    nonzero = full != 0
    k = nonzero.sum(axis=0)
    columns = np.flatnonzero(k)
    kmax = int(k.max()) if columns.size else 0
    rows = np.argsort(~nonzero[:, columns], axis=0, kind="stable")[:kmax]  # (kmax, C): each column's terms first
    weights = full[rows, columns]
    bits = weights.astype(np.float64).view(np.int64)  # the weight's bits: -0.0 and 0.0 stay apart
    distinct, pair = np.unique(np.stack([rows.ravel(), bits.ravel()], axis=1), axis=0, return_inverse=True)
    plan = _DotPlan(np.abs(full), k, columns, rows, weights, distinct[:, 0],
                    distinct[:, 1].view(np.float64).astype(full.dtype), pair.reshape(rows.shape))
    if len(_PLANS) >= 4096:  # entries of arrays no longer alive
        _PLANS.clear()
    _PLANS[key] = (weakref.ref(W), None if bias is None else weakref.ref(bias), plan)
    return plan


_PLANS: dict = {}  # (id(W), id(bias)) -> (weak references to both, their _DotPlan)


def product_rounding(x: np.ndarray, W: np.ndarray, bias: np.ndarray | None, computed: np.ndarray) -> np.ndarray:
    """Bound ``|computed - (x W + bias)|`` (T, D) for ``computed``, the pass's value of ``x W + bias``, measured
    against Dot2 (module docstring): ``|computed - res| (1 + u) + u (|res| + g) / (1 - u) + g + k tiny`` with
    ``res`` Dot2's result over the k nonzero terms, ``g = gamma_k^2 sum |x_i W_i|``, and ``k tiny`` covering
    underflow in the error-free transformations (about ten operations per term, each off by at most ``u tiny``).
    Entries where Dot2 overflows fall back to (M2)."""
    dtype = computed.dtype
    u, tiny = unit_roundoff(dtype), float(np.finfo(dtype).tiny)
    plan = _dot_plan(W, bias)
    if bias is not None:
        x = np.concatenate([x, np.ones((x.shape[0], 1), dtype=dtype)], axis=1)
    out = np.zeros(computed.shape, dtype=dtype)
    columns = plan.columns
    if columns.size == 0:
        return out
    magnitude = np.abs(x) @ plan.absW[:, columns]
    with np.errstate(over="ignore", invalid="ignore"):
        products, errors = _two_product(x.T[plan.pair_rows], plan.pair_weights[:, None])  # each distinct term's
        products, errors = products[plan.pair], errors[plan.pair]  # (kmax, C, T): term j of every column, contiguous
        res = _cascade(products, errors)
        kc = plan.k[columns]
        gk = gamma(kc, u)
        g = (gk ** 2) * magnitude * (1 + gk)
        bound = np.abs(computed[:, columns] - res) * (1 + u) + u * (np.abs(res) + g) / (1 - u) + g + kc * tiny
        fallback = gk * magnitude + tiny
        out[:, columns] = np.where(np.isfinite(res) & np.isfinite(bound), bound, fallback)
    return out * SAFETY[dtype]


def _cascade(products: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Dot2's sum of TwoProducts ``products`` and ``errors`` (terms, C, T), as (T, C): ``res_j = fl(res_{j-1} + p_j)``
    with TwoSum's error ``q_j``, and ``comp_j = fl(comp_{j-1} + fl(q_j + e_j))``; returns ``fl(res + comp)``.
    Both running sums go left to right: term by term where each term is a large array, else by
    ``np.add.accumulate`` (which adds in that order) and every ``q_j`` at once, to spare the many small steps."""
    if products[0].size >= 1024:
        res, comp = products[0], errors[0]
        for j in range(1, len(products)):
            res, q = _two_sum(res, products[j])
            comp = comp + (q + errors[j])
        return (res + comp).T
    partial = np.add.accumulate(products, axis=0)
    _, q = _two_sum(partial[:-1], products[1:])
    comp = np.add.accumulate(np.concatenate([errors[:1], q + errors[1:]], axis=0), axis=0)[-1]
    return (partial[-1] + comp).T


def gelu_slope(reach: np.ndarray) -> np.ndarray:
    """A bound on |gelu'| over [-reach, reach]: ``gelu'(x) = Phi(x) + x phi(x)`` with ``|Phi(x) - 1/2| <= |x| phi(0)``
    and ``|x phi(x)| <= |x| phi(0)``, so ``|gelu'(x)| <= 1/2 + 2 phi(0) |x|``, and never above 1.13."""
    return np.minimum(0.5 + 0.7979 * reach, GELU_LIPSCHITZ)


def nonzeros(W: np.ndarray) -> np.ndarray:
    """Nonzero weights feeding each output column of ``W`` (..., rows, columns): the k of (M2)."""
    return np.count_nonzero(W, axis=-2)


@dataclass(frozen=True, eq=False)
class AttentionBound:
    """``rounding`` (T, D): |X - X'| with X' = H + sum_h (A_h (H Wv_h)) Wo_h + bo exactly (A given);
    ``values`` (m, T, dh): an upper bound on |H Wv_h| entrywise, for the selection error."""

    rounding: np.ndarray
    values: np.ndarray


def attention(w: Weights, l: int, H: np.ndarray, parts: LayerParts) -> AttentionBound:
    """Bound the rounding of ``X = H + [A_h (H Wv_h)]_h Wo + bo`` as ``forward.layer_parts`` computes it; ``H``
    (T, D), or (layers, T, D) with ``parts`` of as many layers applying stored layer ``l`` (``forward.stack``):
    each layer's bound, the same numbers."""
    u, tiny = unit_roundoff(H.dtype), float(np.finfo(H.dtype).tiny)
    T, lead = H.shape[-2], H.shape[:-2]
    m, D, dh = w.Wv[l].shape
    absH = np.abs(H)
    # a value column without weights is exactly 0, and one Wo does not read adds nothing to Y (both exactly, for a
    # finite H); the bounds are computed on the others, every other entry of ``values`` and of dY's terms being 0
    v = _value_columns(w, l) if np.all(np.isfinite(H)) else _ValueColumns.of(w, l, np.arange(m * dh))
    live = v.live
    V = np.moveaxis(parts.V, -3, -2).reshape(*lead, T, m * dh)[..., live]
    # V = H Wv: (M2) per value column
    dV = gamma(v.count, u) * (absH @ v.absWv) + tiny * (v.count > 0)
    values = np.zeros((*lead, T, m * dh), dtype=dV.dtype)
    values[..., live] = np.abs(V) + dV
    # B = A V: row i has at most i + 1 nonzero weights; plus A |V - V^|
    visible = gamma(np.arange(1, T + 1), u)[:, None]
    dB = np.empty_like(dV)
    for h, (a, b) in enumerate(zip(v.starts[:-1], v.starts[1:])):  # head h's live columns are live[a:b]
        if a == b:
            continue
        both = parts.A[..., h, :, :] @ np.concatenate([np.abs(V[..., a:b]), dV[..., a:b]], axis=-1)  # one product
        dB[..., a:b] = visible * both[..., : b - a] + both[..., b - a:]
    heads = np.moveaxis(np.abs(parts.B), -3, -2).reshape(*lead, T, m * dh)[..., live]
    dY = gamma(v.Wo_count, u) * (heads @ v.absWo) + dB @ v.absWo
    added = addition_rounding(H, parts.Y, w.bo[l], parts.X, v.Wo_reads)  # X = (H + Y) + bo
    rounding = (dY + added + tiny * v.Wo_reads) * SAFETY[H.dtype]
    return AttentionBound(rounding, np.moveaxis(values.reshape(*lead, T, m, dh), -2, -3))


@dataclass(frozen=True, eq=False)
class _ValueColumns:
    """A stored layer's value columns ``live`` (heads side by side, as Wo reads them; head h's are ``live[starts[h]:
    starts[h + 1]]``) and what the attention's rounding needs of their weights: ``|Wv|`` and its nonzero count per
    column, ``|Wo|`` on their rows, ``Wo``'s nonzero count per output row and whether any weight writes it."""

    live: np.ndarray
    starts: np.ndarray
    absWv: np.ndarray
    count: np.ndarray
    absWo: np.ndarray
    Wo_count: np.ndarray
    Wo_reads: np.ndarray

    @classmethod
    def of(cls, w: Weights, l: int, live: np.ndarray) -> "_ValueColumns":
        m, D, dh = w.Wv[l].shape
        Wv = w.Wv[l].transpose(1, 0, 2).reshape(D, m * dh)[:, live]
        Wo = w.Wo[l]
        starts = np.searchsorted(live, np.arange(m + 1) * dh)  # live is increasing
        return cls(live, starts, np.abs(Wv), nonzeros(Wv), np.abs(Wo[live]), nonzeros(Wo),
                   np.abs(Wo).sum(axis=0) > 0)


def _value_columns(w: Weights, l: int) -> _ValueColumns:
    """Stored layer ``l``'s value columns with a weight in ``Wv`` and a row of ``Wo`` that reads them (found once
    per weights)."""
    cache = _VALUES.setdefault(w, {})
    if l not in cache:
        m, D, dh = w.Wv[l].shape
        Wv = w.Wv[l].transpose(1, 0, 2).reshape(D, m * dh)
        cache[l] = _ValueColumns.of(w, l, np.flatnonzero(np.any(Wv != 0, axis=0) & np.any(w.Wo[l] != 0, axis=1)))
    return cache[l]


_VALUES: "weakref.WeakKeyDictionary[Weights, dict]" = weakref.WeakKeyDictionary()


def selection(Wo: np.ndarray, parts: LayerParts, values: np.ndarray, chosen: np.ndarray,
              uniform: np.ndarray | None = None) -> np.ndarray:
    """Bound |X' - X*| (T, D), X* = H + sum_h (the head's target weights applied to V_h) Wo_h + bo: each head's
    weights against its target (``Wo`` the layer's output projection, ``(m*dh, D)``); (layers, T, D) for
    ``values`` (layers, m, T, dh) and ``parts`` of as many layers (``forward.stack``).

    A head's target is one-hot on ``chosen[h, i]`` (``chosen`` (m, T), the
    token each head is meant to read at each position), or, where
    ``uniform[h]``, the weights ``1/(i+1)`` on tokens 0..i (``chosen[h]`` is
    then not read). Row i of a selecting head is off by ``(1 - A[i, c])
    |V_c| + sum_{j != c} A[i, j] |V_j|`` with ``c = chosen[h, i]``; of a
    uniform one by ``sum_j |A[i, j] - [j <= i]/(i+1)| |V_j|``
    (``uniform_gap``). All are sums of nonnegative numbers, computed without
    cancellation.
    """
    u = unit_roundoff(values.dtype)
    m, T, dh = values.shape[-3:]
    uniform = np.zeros(m, bool) if uniform is None else np.asarray(uniform, bool)
    rows = np.arange(T)
    out = np.zeros((*values.shape[:-3], T, Wo.shape[1]), dtype=values.dtype)
    for h in range(m):
        head = values[..., h, :, :]
        live = np.flatnonzero(np.any(head != 0, axis=tuple(range(head.ndim - 1))))  # a column that is 0 adds 0
        if live.size == 0:
            continue
        V = head[..., live]
        if uniform[h]:
            gap = uniform_gap(parts.A[..., h, :, :]) @ V
        else:
            off = parts.A[..., h, :, :].copy()
            on = off[..., rows, chosen[h]]
            off[..., rows, chosen[h]] = 0.0
            gap = (1 - on + u)[..., None] * V[..., chosen[h], :] + off @ V
        out += gap @ np.abs(Wo[h * dh + live])
    out[~np.all(np.isfinite(parts.A), axis=(-3, -1))] = np.nan  # as the dense products make of weights not finite
    return out * SAFETY[values.dtype]


def uniform_gap(A: np.ndarray) -> np.ndarray:
    """An upper bound on ``|A[i, j] - [j <= i]/(i+1)|`` (T, T) for computed weights ``A``, without rounding
    ``1/(i+1)``: with ``p + e = (i+1) A[i, j]`` exactly (TwoProduct; ``i + 1`` is a float),
    ``|A[i, j] - 1/(i+1)| = |(p - 1) + e| / (i+1)``, evaluated with three roundings (the subtraction's, undone
    by ``1/(1 - u)``, the sum's and the division's: ``1 + 6u`` upward) and ``tiny`` for underflow; above the
    diagonal the target is 0 and the gap ``|A[i, j]|``. For the averaging head's weights ``fl(1/(i+1))`` this
    is at most ``u/(i+1)`` (``instructions.avg``)."""
    dtype = A.dtype
    u, tiny = unit_roundoff(dtype), float(np.finfo(dtype).tiny)
    T = A.shape[-1]
    counts = np.arange(1, T + 1, dtype=dtype)[:, None]
    p, e = _two_product(A, np.broadcast_to(counts, A.shape))
    gap = (np.abs(p - 1) + np.abs(e)) / counts * (1 + 6 * u) + tiny
    return np.where(np.tril(np.ones((T, T), dtype=bool)), gap, np.abs(A))


@dataclass(frozen=True, eq=False)
class MLPBound:
    """``rounding`` (T, D): |out - out'| with out' = X + gelu(p') W2 + b2 exactly, p' = LN(X) W1 + b1 computed
    exactly from the pass's mean and sigma; ``pre`` (T, U): |pre - p'|; ``hidden`` (T, U): |hidden - gelu(p')|.

    The ``given_*`` fields bound the same with ``p'' = normed W1 + b1`` computed exactly from the pass's own
    ``normed`` (its rounding left out, for a caller that accounts for it as ``normed_error`` gives it)."""

    rounding: np.ndarray
    pre: np.ndarray
    hidden: np.ndarray
    given_rounding: np.ndarray
    given_pre: np.ndarray
    given_hidden: np.ndarray


def addition_rounding(H: np.ndarray, Y: np.ndarray, bias: np.ndarray, out: np.ndarray,
                      written: np.ndarray | None = None) -> np.ndarray:
    """Bound the rounding of the residual addition ``out = (H + Y) + bias`` (T, D): a rounding wherever something
    nonzero is added, ``u |H + Y| <= u (|H| + |Y|)``, within ``1 + u`` of the computed magnitudes, and one more
    (``u |out|``) where the bias is nonzero; adding zero is exact. ``written`` (D,), if given, marks the columns
    some weight writes: where ``Y`` is exactly 0 in the others (checked), only those are looked at (if ``Y`` is
    large enough that the passes this spares cost more than the calls it adds)."""
    u = unit_roundoff(H.dtype)
    if written is None or Y.size < 2**14 or np.any(Y[..., ~written]):
        return np.where(Y != 0, u * (np.abs(H) + np.abs(Y)) * (1 + u), 0.0) + np.where(bias != 0, u * np.abs(out), 0.0)
    result = np.zeros(out.shape, dtype=out.dtype)
    H, Y = H[..., written], Y[..., written]
    result[..., written] = np.where(Y != 0, u * (np.abs(H) + np.abs(Y)) * (1 + u), 0.0)
    biased = np.flatnonzero(bias)
    result[..., biased] += u * np.abs(out[..., biased])
    return result


def layer_norm_rounding(parts: LayerParts, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Bound ``|normed - ((gain (X - mean)) / sigma + bias)|`` (T, D), the pass's mean and sigma given: the
    subtraction and the division round (``gamma_2``), the gain unless it is 1 (``gamma_3``), the bias unless it is 0
    (``u |normed|``), and ``tiny`` for underflow."""
    u, tiny = unit_roundoff(parts.X.dtype), float(np.finfo(parts.X.dtype).tiny)
    steps = 2 + (gain != 1)
    return gamma(steps, u) * (1 + u) * np.abs(gain) * np.abs(parts.centred) / parts.sigma + \
        np.where(bias != 0, u * np.abs(parts.normed), 0.0) + tiny


def normed_error(parts: LayerParts, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(eta, slack)`` (T, D): ``normed - (X - mean) / sigma`` for a layer norm without gain or bias, signed, and
    a bound on how far ``eta`` is from that difference; on the rows ``rows`` only (T, len(rows)) if given, entry
    for entry the same numbers.

    ``centred = fl(X - mean)`` misses ``e1`` (TwoSum, exact); ``normed =
    fl(centred / sigma)`` misses ``r / sigma``, ``r = centred - normed sigma``,
    the remainder of a correctly rounded division, which is itself a float
    (Bohlender et al., "Semantics for exact floating point operations",
    1991). With ``p + e = normed sigma`` (TwoProduct), ``centred - p`` is
    exact (Sterbenz: ``p`` is within a factor 2 of ``centred``) and so is
    ``(centred - p) - e = r``; adding ``e1`` and dividing by ``sigma`` round
    twice, so ``eta`` is within ``gamma_2 |eta|`` of its value, plus
    ``tiny`` terms for underflow.
    """
    dtype = parts.X.dtype
    u, tiny = unit_roundoff(dtype), float(np.finfo(dtype).tiny)
    X, centred, normed = (parts.X, parts.centred, parts.normed) if rows is None else \
        (parts.X[:, rows], parts.centred[:, rows], parts.normed[:, rows])
    sigma = np.broadcast_to(parts.sigma, normed.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        _, e1 = _two_sum(X, -parts.mean)
        p, e = _two_product(normed, sigma)
        eta = -(((centred - p) - e) + e1) / sigma
    slack = gamma(2, u) * np.abs(eta) / (1 - gamma(2, u)) + 2 * tiny / sigma + tiny
    bad = ~np.isfinite(eta)
    return np.where(bad, 0.0, eta), np.where(bad, np.inf, slack) * SAFETY[dtype]


def normed_error_finite(parts: LayerParts) -> bool:
    """True only if ``normed_error(parts)`` is finite on every entry, found from a few maxima instead of computing it.

    With ``x``, ``m`` the largest ``|X|``, ``|mean|``, ``n`` the largest
    ``|normed|`` and ``s``, ``s0`` the largest and smallest ``sigma > 0``:
    TwoSum's operations are within ``4 (x + m)`` (``centred = fl(X - mean)``
    too); the Veltkamp splits multiply by ``SPLIT`` (within ``2 SPLIT n``,
    ``2 SPLIT s``); TwoProduct's terms are within ``4 n s``; so ``eta``'s
    numerator is within ``c = 8 (x + m) + 8 n s`` and ``eta`` within ``c /
    s0``, and ``slack`` within ``|eta| + 2 tiny / s0 + tiny`` (``tiny / s0`` is at
    most ``2^52``). ``c``, ``c / s0`` and the splits' bounds at most a
    sixteenth of the largest float (the check's own products rounded or
    overflowing to inf, or a NaN, answer False) mean no operation overflows.
    """
    dtype = parts.X.dtype
    top = float(np.finfo(dtype).max) / 16
    with np.errstate(over="ignore", invalid="ignore"):
        x, m, n = (float(np.max(np.abs(a))) for a in (parts.X, parts.mean, parts.normed))
        s, s0 = float(np.max(parts.sigma)), float(np.min(parts.sigma))
        if not s0 > 0:
            return False
        numerator = 8 * (x + m) + 8 * n * s
        return all(bound <= top for bound in (numerator, numerator / s0, 2 * SPLIT[dtype] * max(n, s)))


def _magnitudes(w: Weights, l: int) -> tuple[np.ndarray, np.ndarray]:
    """``|W1|`` and ``|W2|`` of stored layer ``l``'s ``forward.mlp_units``, found once per weights."""
    cache = _MAGNITUDES.setdefault(w, {})
    if l not in cache:
        units = mlp_units(w, l)
        cache[l] = np.abs(units.W1), np.abs(units.W2)
    return cache[l]


_MAGNITUDES: "weakref.WeakKeyDictionary[Weights, dict]" = weakref.WeakKeyDictionary()


def mlp(w: Weights, l: int, parts: LayerParts) -> MLPBound:
    """Bound the rounding of the MLP half of layer ``l`` as ``forward.layer_parts`` computes it (on the units that
    can round, ``forward.mlp_units``; the others' bounds are 0)."""
    dtype = parts.X.dtype
    u, tiny = unit_roundoff(dtype), float(np.finfo(dtype).tiny)
    live = mlp_units(w, l)
    absW1, absW2 = _magnitudes(w, l)
    units, rows, written = live.units, live.rows, live.written
    T, U = parts.pre.shape
    gain, bias, b2 = w.ln_gain[l], w.ln_bias[l], w.b2[l]
    W1, b1, W2 = live.W1, live.b1, live.W2
    normed = parts.normed[:, rows]
    dnormed = layer_norm_rounding(parts, gain, bias)[:, rows]
    # pre = normed W1 + b1
    pre, hidden = parts.pre[:, units], parts.hidden[:, units]
    given_dpre = product_rounding(normed, W1, b1, pre) + tiny
    dpre = given_dpre + dnormed @ absW1
    # hidden = (pre * (1 + erf(pre / sqrt 2))) / 2, against gelu at the exact pre-activation: with s the computed
    # 1 + erf and e = s - 1 the computed erf, rounding of t = pre / sqrt 2 (2u), of erf (ERF_ULPS u |e|), of 1 + e
    # (u s) and of pre * s (u |pre s|)
    p = np.abs(pre)
    s = np.abs(2 * hidden / np.where(pre != 0, pre, 1))
    e = np.abs(s - 1) + 4 * u * s  # the computed erf, from s (both within a few u)
    evaluation = 0.5 * p * ((2 * u * s + ERF_ULPS[dtype] * u * e + TWO_OVER_SQRT_PI * gamma(2, u) * p / np.sqrt(2))
                            * (1 + 8 * u)) + tiny * (1 + p)
    evaluation = np.where(pre != 0, evaluation, 0.0)
    dhidden = gelu_slope(p + dpre) * dpre + evaluation
    given_dhidden = gelu_slope(p + given_dpre) * given_dpre + evaluation
    # mlp = hidden W2; out = (X + mlp) + b2
    rest = addition_rounding(parts.X, parts.mlp, b2, parts.out, live.writes)  # out = (X + mlp) + b2
    rest[:, written] += product_rounding(hidden, W2, None, parts.mlp[:, written]) + tiny
    k = SAFETY[dtype]

    def every_unit(bound: np.ndarray) -> np.ndarray:
        out = np.zeros((T, U), dtype=bound.dtype)
        out[:, units] = bound * k
        return out

    def every_row(bound: np.ndarray) -> np.ndarray:
        out = rest.copy()
        out[:, written] += bound
        return out * k

    return MLPBound(every_row(dhidden @ absW2), every_unit(dpre), every_unit(dhidden),
                    every_row(given_dhidden @ absW2), every_unit(given_dpre), every_unit(given_dhidden))
