"""The reference forward pass: plain numpy, one prompt at a time, in the weights' dtype.

It spells out the equations of ``weights.py`` and nothing else; the JAX pass
(``forward_jax.py``) is tested against it. ``layer_parts`` keeps a layer's
intermediates, from which ``rounding`` bounds the pass's own rounding;
``live_parts`` keeps the same intermediates computed without the weights'
zero terms, as the certificate runs it.
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from .weights import Weights, check_tokens


def gelu(u: np.ndarray) -> np.ndarray:
    """The exact GeLU, u * Phi(u) = u (1 + erf(u / sqrt 2)) / 2."""
    return u * (1 + erf(u / np.sqrt(2).astype(u.dtype))) / 2


def causal_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis with entry (i, j) masked out for j > i."""
    T = scores.shape[-1]
    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, eq=False)
class LayerParts:
    """Every intermediate of one layer on one prompt, exactly as the pass computes them.

    ``A`` (m, T, T) attention weights, ``V`` (m, T, dh) values, ``B`` (m, T, dh)
    head outputs, ``Y`` (T, D) their projection ``[B_1 ... B_m] Wo``, ``X``
    (T, D) the state after attention, ``mean`` and
    ``sigma`` (T, 1) layer norm's mean and ``sqrt(var + ln_eps)``, ``centred``
    (T, D) ``X - mean``, ``normed`` (T, D), ``pre`` and ``hidden`` (T, U) the
    MLP's pre-activations and GeLU outputs, ``mlp`` (T, D) ``hidden @ W2``
    and ``out`` (T, D) the layer's output. A running error analysis of the
    pass (``rounding``) reads them.
    """

    A: np.ndarray
    V: np.ndarray
    B: np.ndarray
    Y: np.ndarray
    X: np.ndarray
    mean: np.ndarray
    centred: np.ndarray
    sigma: np.ndarray
    normed: np.ndarray
    pre: np.ndarray
    hidden: np.ndarray
    mlp: np.ndarray
    out: np.ndarray


def stack(parts: list[LayerParts]) -> LayerParts:
    """Several layers' intermediates on one prompt, one layer above the next (a leading axis of layers), for an
    analysis that takes them at once (``rounding.attention``, ``rounding.selection``, ``tokens_of``)."""
    return LayerParts(*(np.stack([getattr(p, field.name) for p in parts]) for field in dataclasses.fields(LayerParts)))


def tokens_of(parts: LayerParts) -> LayerParts:
    """Stacked layers' (``stack``) per-token intermediates with their tokens one layer after another (rows ``k T``
    to ``(k + 1) T`` are layer k's), for an analysis that is per token (``rounding.mlp``); views, not copies.
    The attention's ``A``, ``V`` and ``B`` are not per token, and None here."""
    per_token = (getattr(parts, field.name) for field in dataclasses.fields(LayerParts)[3:])  # Y onwards
    return LayerParts(None, None, None, *(a.reshape(-1, a.shape[-1]) for a in per_token))


def _side_by_side(W: np.ndarray) -> np.ndarray:
    """The heads' projections ``W`` (m, D, dh) side by side, (D, m*dh), C-contiguous."""
    m, D, dh = W.shape
    return W.transpose(1, 0, 2).reshape(D, m * dh)


def _projections(w: Weights, l: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored layer ``l``'s ``Wq``, ``Wk``, ``Wv`` side by side (``_side_by_side``), found once per weights (the
    weights are read-only): the same arrays, value for value and in the same layout, as a fresh copy each call."""
    cache = _PROJECTIONS.setdefault(w, {})
    if l not in cache:
        cache[l] = tuple(_side_by_side(W) for W in (w.Wq[l], w.Wk[l], w.Wv[l]))
    return cache[l]


_PROJECTIONS: "weakref.WeakKeyDictionary[Weights, dict]" = weakref.WeakKeyDictionary()


def layer_parts(w: Weights, l: int, H: np.ndarray) -> LayerParts:
    """Layer ``l`` applied to one hidden state ``H`` (T x D), with every intermediate kept.

    Each of the queries, keys and values is one matrix product, the heads side by side (T x D by D x m*dh).
    """
    T = H.shape[0]
    m, dh = w.heads, w.head_size
    Q, K, V = ((H @ W).reshape(T, m, dh).transpose(1, 0, 2) for W in _projections(w, l))  # (m, T, dh)
    A = causal_softmax(Q @ K.transpose(0, 2, 1))                  # (m, T, T)
    B = A @ V
    Y = B.transpose(1, 0, 2).reshape(T, -1) @ w.Wo[l]
    X = H + Y + w.bo[l]
    return LayerParts(A, V, B, Y, X, *mlp_parts(X, w.ln_gain[l], w.ln_bias[l], w.W1[l], w.b1[l], w.W2[l], w.b2[l],
                                                w.ln_eps))


def layer_norm(H: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float) -> tuple:
    """``(mean, centred, sigma, normed)`` of ``LN(H)`` per token (row): ``sigma = sqrt(var + eps)`` with the biased
    variance, ``normed = gain * centred / sigma + bias``; every pass computes it this one way."""
    mean = H.mean(axis=-1, keepdims=True)
    centred = H - mean
    sigma = np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + H.dtype.type(eps))
    return mean, centred, sigma, gain * centred / sigma + bias


def mlp_parts(X: np.ndarray, gain, bias, W1, b1, W2, b2, ln_eps: float) -> tuple:
    """The MLP half, ``X + gelu(LN(X) W1 + b1) W2 + b2``, as ``(mean, centred, sigma, normed, pre, hidden, mlp,
    out)`` (the GPT-2 block's MLP half is the same code, ``gpt2.layer_parts``)."""
    mean, centred, sigma, normed = layer_norm(X, gain, bias, ln_eps)
    pre = normed @ W1 + b1
    hidden = gelu(pre)
    mlp = hidden @ W2
    return mean, centred, sigma, normed, pre, hidden, mlp, X + mlp + b2


def attention(w: Weights, l: int, H: np.ndarray) -> np.ndarray:
    """The first half of layer ``l``: ``X = H + [B_1 ... B_m] Wo + bo`` for one hidden state ``H`` (T x D)."""
    return layer_parts(w, l, H).X


@dataclass(frozen=True, eq=False)
class _Live:
    """The parts of one stored layer that can change its output.

    A head whose values or output projection are zero adds exactly zero; a
    score column where ``Wq`` or ``Wk`` is zero adds exactly zero to every
    score; a residual row no head reads, an MLP unit whose ``W2`` row is zero,
    a row of ``LN(X)`` no live unit reads: all drop out of the sums. The
    compiled networks are mostly such zeros (a layer runs one or a few
    instructions on a few registers), so ``layer`` multiplies only these
    slices: the same sums without their zero terms. Only the order in which
    a matrix library adds the nonzero terms may differ from the dense
    product's, which ``rounding`` bounds whatever the order.
    """

    heads: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]  # rows, Wq, Wk, Wv, Wo
    rows: np.ndarray   # rows of LN(X) the live units read
    W1: np.ndarray     # (rows, units)
    b1: np.ndarray     # (units,)
    W2: np.ndarray     # (units, D)


_LIVE: "weakref.WeakKeyDictionary[Weights, dict[int, _Live]]" = weakref.WeakKeyDictionary()


def _heads(w: Weights, l: int, outputs: bool) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                             np.ndarray]]:
    """Stored layer ``l``'s heads that can add something: per head with a value column that has a weight (and,
    with ``outputs``, an output weight), ``(h, values, rows, Wq, Wk, Wv)``: its index, those value columns, the
    rows of ``H`` its projections read, and ``Wq``, ``Wk`` on those rows and the score columns where both have a
    weight, ``Wv`` on those rows and value columns."""
    dh = w.head_size
    heads = []
    for h in range(w.heads):
        Wq, Wk, Wv = w.Wq[l, h], w.Wk[l, h], w.Wv[l, h]
        values = np.any(Wv != 0, axis=0)
        if outputs:
            values &= np.any(w.Wo[l, h * dh:(h + 1) * dh] != 0, axis=1)
        values = np.flatnonzero(values)
        if values.size == 0:
            continue
        scores = np.flatnonzero(np.any(Wq != 0, axis=0) & np.any(Wk != 0, axis=0))
        Wq, Wk, Wv = Wq[:, scores], Wk[:, scores], Wv[:, values]
        rows = np.flatnonzero(np.any(Wq != 0, axis=1) | np.any(Wk != 0, axis=1) | np.any(Wv != 0, axis=1))
        heads.append((h, values, rows, Wq[rows], Wk[rows], Wv[rows]))
    return heads


def _live(w: Weights, l: int) -> _Live:
    """Stored layer ``l``'s live parts, found once per weights (the weights are read-only)."""
    cache = _LIVE.setdefault(w, {})
    if l not in cache:
        dh = w.head_size
        heads = [(rows, Wq, Wk, Wv, w.Wo[l, h * dh:(h + 1) * dh][values])
                 for h, values, rows, Wq, Wk, Wv in _heads(w, l, outputs=True)]
        units = np.flatnonzero(np.any(w.W2[l] != 0, axis=1))
        W1 = w.W1[l][:, units]
        rows = np.flatnonzero(np.any(W1 != 0, axis=1))
        cache[l] = _Live(tuple(heads), rows, W1[rows], w.b1[l][units], w.W2[l][units])
    return cache[l]


def layer(w: Weights, l: int, H: np.ndarray) -> np.ndarray:
    """Stored layer ``l`` applied to one hidden state ``H`` (T x D): ``layer_parts(w, l, H).out`` computed
    on the layer's live parts only (``_Live``)."""
    live = _live(w, l)
    X = H + w.bo[l]
    for rows, Wq, Wk, Wv, Wo in live.heads:
        Hr = H[:, rows]
        X = X + (causal_softmax((Hr @ Wq) @ (Hr @ Wk).T) @ (Hr @ Wv)) @ Wo
    normed = layer_norm(X, w.ln_gain[l], w.ln_bias[l], w.ln_eps)[3][:, live.rows]
    return X + gelu(normed @ live.W1 + live.b1) @ live.W2 + w.b2[l]


@dataclass(frozen=True, eq=False)
class MLPUnits:
    """Stored layer ``l``'s units with a nonzero input weight or bias, the rows of ``LN(X)`` they read, the rows of
    the state they write, and the weights between them: every other unit has ``pre = 0`` and ``hidden = gelu(0) =
    0`` exactly (for a finite ``LN(X)``), and every other row of ``hidden W2`` is exactly 0."""

    units: np.ndarray
    rows: np.ndarray
    written: np.ndarray
    W1: np.ndarray  # (rows, units)
    b1: np.ndarray  # (units,)
    W2: np.ndarray  # (units, written)
    writes: np.ndarray  # (D,): True on the rows written


def mlp_units(w: Weights, l: int) -> MLPUnits:
    """``MLPUnits`` of stored layer ``l``, found once per weights (the weights are read-only)."""
    cache = _UNITS.setdefault(w, {})
    if l not in cache:
        units = np.flatnonzero(np.any(w.W1[l] != 0, axis=0) | (w.b1[l] != 0))
        rows = np.flatnonzero(np.any(w.W1[l][:, units] != 0, axis=1))
        writes = np.any(w.W2[l] != 0, axis=0)
        written = np.flatnonzero(writes)
        cache[l] = MLPUnits(units, rows, written, w.W1[l][np.ix_(rows, units)], w.b1[l][units],
                            w.W2[l][np.ix_(units, written)], writes)
    return cache[l]


_UNITS: "weakref.WeakKeyDictionary[Weights, dict[int, MLPUnits]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class _Kept:
    """What ``live_parts`` computes of one stored layer: per head with a nonzero value weight, its index, its value
    columns with a weight, the rows of ``H`` its projections read and ``Wq``, ``Wk``, ``Wv`` on them (``Wq``, ``Wk``
    on the score columns where both have a weight, ``Wv`` on its value columns); those value columns with the heads
    side by side (``values``) and the rows of ``Wo`` that read them."""

    heads: tuple[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]
    values: np.ndarray
    Wo: np.ndarray


def _kept(w: Weights, l: int) -> _Kept:
    """``_Kept`` of stored layer ``l``, found once per weights."""
    cache = _KEPT.setdefault(w, {})
    if l not in cache:
        heads = _heads(w, l, outputs=False)
        values = np.concatenate([h * w.head_size + columns for h, columns, *_ in heads]) if heads else np.zeros(0, int)
        cache[l] = _Kept(tuple(heads), values, w.Wo[l][values])
    return cache[l]


_KEPT: "weakref.WeakKeyDictionary[Weights, dict[int, _Kept]]" = weakref.WeakKeyDictionary()


def live_parts(w: Weights, l: int, H: np.ndarray) -> LayerParts:
    """``layer_parts(w, l, H)`` computed without the weights' zero terms (``_Kept``, ``MLPUnits``), as the
    certificate runs it.

    Every product is the dense one's sum without its zero terms; every entry
    no nonzero term reaches is exactly 0, as in exact arithmetic: a value
    column without weights, and so its head output; a unit without input
    weights or bias (``pre = 0``, ``hidden = gelu(0) = 0``); a row of
    ``hidden W2`` no weight writes. Only the order in which the nonzero
    terms are added may differ from ``layer_parts``', which ``rounding``
    bounds in any order. A head whose value weights are all zero adds
    exactly 0 whatever its softmax weights: those are not computed, and ``A``
    is 0 there (``rounding`` reads no head's weights without values).

    Where the output is not finite, the result is ``layer_parts``', whose
    zero terms spread a NaN or inf over the state as the dense products do.
    """
    T = H.shape[0]
    m, dh = w.heads, w.head_size
    kept, units = _kept(w, l), mlp_units(w, l)
    A = np.zeros((m, T, T), dtype=H.dtype)
    V = np.zeros((m, T, dh), dtype=H.dtype)
    B = np.zeros((m, T, dh), dtype=H.dtype)
    for h, values, rows, Wq, Wk, Wv in kept.heads:
        Hr = H[:, rows]
        A[h] = causal_softmax((Hr @ Wq) @ (Hr @ Wk).T)
        V[h][:, values] = Hr @ Wv
        B[h][:, values] = A[h] @ V[h][:, values]
    Y = B.transpose(1, 0, 2).reshape(T, m * dh)[:, kept.values] @ kept.Wo
    X = H + Y + w.bo[l]
    mean, centred, sigma, normed = layer_norm(X, w.ln_gain[l], w.ln_bias[l], w.ln_eps)
    pre = np.zeros((T, w.W1.shape[2]), dtype=H.dtype)
    pre[:, units.units] = normed[:, units.rows] @ units.W1 + units.b1
    hidden = np.zeros_like(pre)
    hidden[:, units.units] = gelu(pre[:, units.units])
    mlp = np.zeros_like(X)
    mlp[:, units.written] = hidden[:, units.units] @ units.W2
    out = X + mlp + w.b2[l]
    if not np.all(np.isfinite(out)):
        return layer_parts(w, l, H)
    return LayerParts(A, V, B, Y, X, mean, centred, sigma, normed, pre, hidden, mlp, out)


def embed(w: Weights, tokens: np.ndarray) -> np.ndarray:
    """The state before the first layer: ``tokens @ embed + positions[:T]`` for one checked prompt."""
    tokens = check_tokens(w, tokens)
    if tokens.ndim != 2:
        raise ValueError(f"the numpy pass takes one prompt (T, d+1), got shape {tokens.shape}")
    return tokens @ w.embed + w.positions[: tokens.shape[0]]


def hidden_states(w: Weights, tokens: np.ndarray) -> np.ndarray:
    """States after the embedding and after each layer: (L + 1, T, D)."""
    H = embed(w, tokens)
    states = [H]
    with np.errstate(over="ignore", invalid="ignore"):
        for l in w.order:
            states.append(layer(w, l, states[-1]))
    return np.stack(states)


def forward(w: Weights, tokens: np.ndarray) -> np.ndarray:
    """The read-out at every token: (T,)."""
    return hidden_states(w, tokens)[-1] @ w.readout



def forward_monitored(w: Weights, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The read-out (T,), for every state and row the largest and smallest ``|value|`` over tokens, and the last
    state (T, D).

    The extremes, ``(L + 1, D)`` each, let a caller check that a run stayed
    inside the range the weights were built for.
    """
    states = hidden_states(w, tokens)
    magnitude = np.abs(states)
    return states[-1] @ w.readout, magnitude.max(axis=1), magnitude.min(axis=1), states[-1]
