"""The fast forward pass: JAX, jit-compiled, vmapped over a batch of prompts.

Float64 weights run in float64 without the caller touching JAX's global x64
flag: each call enables it only for its own duration (``jax.enable_x64``),
and leaves the caller's setting as it was. The layers are a ``lax.scan``
over the layer order, each step gathering its stored layer, so compile time
does not grow with depth and tied layers are stored once.
"""

from __future__ import annotations

import weakref
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .weights import Weights, check_tokens


def _layer(ln_eps, H, p):
    Q = jnp.einsum("td,mdh->mth", H, p["Wq"])
    K = jnp.einsum("td,mdh->mth", H, p["Wk"])
    V = jnp.einsum("td,mdh->mth", H, p["Wv"])
    T = H.shape[0]
    scores = jnp.where(jnp.tril(jnp.ones((T, T), dtype=bool)), Q @ K.transpose(0, 2, 1), -jnp.inf)
    B = jax.nn.softmax(scores, axis=-1) @ V
    X = H + B.transpose(1, 0, 2).reshape(T, -1) @ p["Wo"] + p["bo"]
    mean = X.mean(axis=-1, keepdims=True)
    centred = X - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    normed = p["ln_gain"] * centred / jnp.sqrt(var + ln_eps) + p["ln_bias"]
    hidden = jax.nn.gelu(normed @ p["W1"] + p["b1"], approximate=False)
    return X + hidden @ p["W2"] + p["b2"]


def _extremes(H):
    magnitude = jnp.abs(H)
    return magnitude.max(axis=0), magnitude.min(axis=0)


@partial(jax.jit, static_argnames=("ln_eps", "what"))
def _run(arrays, tokens, ln_eps, what):
    layers = {k: arrays[k] for k in ("Wq", "Wk", "Wv", "Wo", "bo", "ln_gain", "ln_bias", "W1", "b1", "W2", "b2")}

    def step(H, l):  # l: the stored layer applied at this depth (tied layers are gathered, not copied)
        H = _layer(ln_eps, H, {k: v[l] for k, v in layers.items()})
        return H, (H if what == "states" else _extremes(H))

    def one(tok):
        H0 = tok @ arrays["embed"] + arrays["positions"][: tok.shape[0]]
        H, per_layer = jax.lax.scan(step, H0, arrays["order"])
        if what == "states":
            return jnp.concatenate([H0[None], per_layer])
        peak0, low0 = _extremes(H0)
        peak = jnp.concatenate([peak0[None], per_layer[0]])
        low = jnp.concatenate([low0[None], per_layer[1]])
        return H @ arrays["readout"], peak, low, H

    return jax.vmap(one)(tokens)


_ON_DEVICE: "weakref.WeakKeyDictionary[Weights, dict]" = weakref.WeakKeyDictionary()


def _device_arrays(w: Weights) -> dict:
    """The weights as JAX arrays, transferred once per Weights object (call inside the x64 scope)."""
    if w not in _ON_DEVICE:
        _ON_DEVICE[w] = {name: jnp.asarray(a) for name, a in w.arrays().items()}
    return _ON_DEVICE[w]


def _call(w: Weights, tokens: np.ndarray, what: str):
    tokens = check_tokens(w, tokens)
    lead = tokens.shape[:-2]
    batch = tokens.reshape(-1, *tokens.shape[-2:])
    with jax.enable_x64(w.dtype == np.float64):
        out = jax.tree_util.tree_map(np.asarray, _run(_device_arrays(w), batch, float(w.ln_eps), what))
    out = out if isinstance(out, tuple) else (out,)
    if any(o.dtype != w.dtype for o in out):
        raise RuntimeError(f"JAX computed in {out[0].dtype}, not {w.dtype}")
    return tuple(o.reshape(*lead, *o.shape[1:]) for o in out)


def forward(w: Weights, tokens: np.ndarray) -> np.ndarray:
    """Read-out at every token; tokens ``(T, d+1)`` or a batch ``(..., T, d+1)``."""
    return _call(w, tokens, "monitored")[0]


def forward_monitored(w: Weights, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read-out ``(..., T)``, per state and row the largest and smallest ``|value|`` ``(..., L+1, D)``, and the last
    state ``(..., T, D)`` (which an a-posteriori certificate reads)."""
    return _call(w, tokens, "monitored")


def hidden_states(w: Weights, tokens: np.ndarray) -> np.ndarray:
    """States after the embedding and each layer: ``(..., L + 1, T, D)``."""
    return _call(w, tokens, "states")[0]
