"""The reference forward pass: plain numpy, one prompt at a time, in the weights' dtype.

It spells out the equations of ``weights.py`` and nothing else; the JAX pass
(``forward_jax.py``) is tested against it. ``layer_parts`` keeps a layer's
intermediates, from which ``rounding`` bounds the pass's own rounding.
"""

from __future__ import annotations

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


def _live(w: Weights, l: int) -> _Live:
    """Stored layer ``l``'s live parts, found once per weights (the weights are read-only)."""
    cache = _LIVE.setdefault(w, {})
    if l not in cache:
        dh = w.head_size
        heads = []
        for h in range(w.heads):
            Wq, Wk, Wv, Wo = w.Wq[l, h], w.Wk[l, h], w.Wv[l, h], w.Wo[l, h * dh:(h + 1) * dh]
            values = np.flatnonzero(np.any(Wv != 0, axis=0) & np.any(Wo != 0, axis=1))
            if values.size == 0:
                continue
            scores = np.flatnonzero(np.any(Wq != 0, axis=0) & np.any(Wk != 0, axis=0))
            Wq, Wk, Wv = Wq[:, scores], Wk[:, scores], Wv[:, values]
            rows = np.flatnonzero(np.any(Wq != 0, axis=1) | np.any(Wk != 0, axis=1) | np.any(Wv != 0, axis=1))
            heads.append((rows, Wq[rows], Wk[rows], Wv[rows], Wo[values]))
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
