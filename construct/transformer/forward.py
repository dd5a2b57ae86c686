"""The reference forward pass: plain numpy, one prompt at a time, in the weights' dtype.

It spells out the equations of ``weights.py`` and nothing else; the JAX pass
(``forward_jax.py``) is tested against it.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from .weights import Weights, check_tokens


def gelu(u: np.ndarray) -> np.ndarray:
    """The exact GeLU, u * Phi(u) = u (1 + erf(u / sqrt 2)) / 2."""
    return u * (1 + erf(u / np.sqrt(2).astype(u.dtype))) / 2


def layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return gain * centred / np.sqrt(var + x.dtype.type(eps)) + bias


def causal_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis with entry (i, j) masked out for j > i."""
    T = scores.shape[-1]
    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


def attention(w: Weights, l: int, H: np.ndarray) -> np.ndarray:
    """The first half of layer ``l``: ``X = H + [B_1 ... B_m] Wo + bo`` for one hidden state ``H`` (T x D)."""
    Q = np.einsum("td,mdh->mth", H, w.Wq[l])
    K = np.einsum("td,mdh->mth", H, w.Wk[l])
    V = np.einsum("td,mdh->mth", H, w.Wv[l])
    B = causal_softmax(Q @ K.transpose(0, 2, 1)) @ V           # (m, T, dh)
    heads = B.transpose(1, 0, 2).reshape(H.shape[0], -1)        # (T, m*dh)
    return H + heads @ w.Wo[l] + w.bo[l]


def mlp(w: Weights, l: int, X: np.ndarray) -> np.ndarray:
    """The second half of layer ``l``: ``X + gelu(LN(X) W1 + b1) W2 + b2``."""
    hidden = gelu(layer_norm(X, w.ln_gain[l], w.ln_bias[l], w.ln_eps) @ w.W1[l] + w.b1[l])
    return X + hidden @ w.W2[l] + w.b2[l]


def layer(w: Weights, l: int, H: np.ndarray) -> np.ndarray:
    """Layer ``l`` applied to one hidden state ``H`` (T x D)."""
    return mlp(w, l, attention(w, l, H))


def hidden_states(w: Weights, tokens: np.ndarray) -> np.ndarray:
    """States after the embedding and after each layer: (L + 1, T, D)."""
    tokens = check_tokens(w, tokens)
    if tokens.ndim != 2:
        raise ValueError(f"the numpy pass takes one prompt (T, d+1), got shape {tokens.shape}")
    H = tokens @ w.embed + w.positions[: tokens.shape[0]]
    states = [H]
    with np.errstate(over="ignore", invalid="ignore"):
        for l in range(w.depth):
            states.append(layer(w, l, states[-1]))
    return np.stack(states)


def forward(w: Weights, tokens: np.ndarray) -> np.ndarray:
    """The read-out at every token: (T,)."""
    return hidden_states(w, tokens)[-1] @ w.readout



def forward_monitored(w: Weights, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The read-out (T,), and for every state and row the largest and smallest ``|value|`` over tokens.

    The extremes, ``(L + 1, D)`` each, let a caller check that a run stayed
    inside the range the weights were built for.
    """
    states = hidden_states(w, tokens)
    magnitude = np.abs(states)
    return states[-1] @ w.readout, magnitude.max(axis=1), magnitude.min(axis=1)
