"""A high-precision forward pass: the equations of ``weights.py`` evaluated with mpmath, on the weights as stored.

The float weights are exact binary rationals; this pass reads them exactly
and evaluates every operation (softmax's exp, layer norm's square root, the
erf GeLU) with ``DIGITS`` significant decimal digits. What it computes is
the network in real arithmetic, up to relative errors near ``10^-DIGITS``:
the same on every machine (mpmath's arithmetic is done on Python integers,
whatever the CPU, BLAS or thread count), where a float pass differs in its
last bits with the order in which a matrix library adds. Documents that
print a network's values use it, so that a number they print is the
weights' and not one machine's rounding of them; the distance between the
float pass and this one is that machine's rounding.

Slow (pure Python): for the small networks of the walkthrough and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from .weights import Weights, check_tokens

DIGITS = 50

_exp = np.frompyfunc(mpmath.exp, 1, 1)
_erf = np.frompyfunc(mpmath.erf, 1, 1)


def exact(a) -> np.ndarray:
    """``a`` (floats) as an object array of mpmath numbers with the floats' exact values."""
    return np.frompyfunc(lambda v: mpmath.mpf(float(v)), 1, 1)(np.asarray(a)).astype(object)


def to_float(a) -> np.ndarray:
    """An object array of mpmath numbers rounded to float64."""
    return np.asarray(a, dtype=object).astype(np.float64)


@dataclass(frozen=True, eq=False)
class ExactParts:
    """One layer's intermediates (object arrays of mpmath numbers), named as ``forward.LayerParts``'s."""

    A: np.ndarray       # (m, T, T) attention weights
    X: np.ndarray       # (T, D) the state after attention
    mean: np.ndarray    # (T,)
    sigma: np.ndarray   # (T,) sqrt(var + ln_eps)
    normed: np.ndarray  # (T, D)
    pre: np.ndarray     # (T, U)
    hidden: np.ndarray  # (T, U)
    out: np.ndarray     # (T, D)


def _softmax_causal(scores: np.ndarray) -> np.ndarray:
    T = scores.shape[-1]
    out = np.empty_like(scores)
    for i in range(T):
        row = scores[..., i, : i + 1]
        top = np.max(row, axis=-1, keepdims=True) if row.ndim > 1 else max(row)
        e = _exp(row - top)
        out[..., i, : i + 1] = e / np.sum(e, axis=-1, keepdims=True)
        out[..., i, i + 1:] = mpmath.mpf(0)
    return out


def layer_parts(w: Weights, l: int, H: np.ndarray) -> ExactParts:
    """Stored layer ``l`` applied to ``H`` (T x D, mpmath numbers), every intermediate kept."""
    with mpmath.workdps(DIGITS):
        Wq, Wk, Wv, Wo = (exact(a) for a in (w.Wq[l], w.Wk[l], w.Wv[l], w.Wo[l]))
        m = Wq.shape[0]
        A = np.stack([_softmax_causal((H @ Wq[h]) @ (H @ Wk[h]).T) for h in range(m)])
        B = np.concatenate([A[h] @ (H @ Wv[h]) for h in range(m)], axis=1)
        X = H + B @ Wo + exact(w.bo[l])
        D = X.shape[1]
        mean = X.sum(axis=1) / D
        centred = X - mean[:, None]
        sigma = np.frompyfunc(mpmath.sqrt, 1, 1)((centred * centred).sum(axis=1) / D + mpmath.mpf(w.ln_eps))
        normed = exact(w.ln_gain[l]) * centred / sigma[:, None] + exact(w.ln_bias[l])
        pre = normed @ exact(w.W1[l]) + exact(w.b1[l])
        hidden = pre * (1 + _erf(pre / mpmath.sqrt(2))) / 2
        out = X + hidden @ exact(w.W2[l]) + exact(w.b2[l])
    return ExactParts(A, X, mean, sigma, normed, pre, hidden, out)


def hidden_states(w: Weights, tokens: np.ndarray) -> list[np.ndarray]:
    """The states after the embedding and after each layer (``w.order``), each T x D of mpmath numbers."""
    tokens = check_tokens(w, tokens)
    if tokens.ndim != 2:
        raise ValueError(f"the exact pass takes one prompt (T, d+1), got shape {tokens.shape}")
    with mpmath.workdps(DIGITS):
        H = exact(tokens) @ exact(w.embed) + exact(w.positions[: tokens.shape[0]])
        states = [H]
        for l in w.order:
            states.append(layer_parts(w, int(l), states[-1]).out)
    return states
