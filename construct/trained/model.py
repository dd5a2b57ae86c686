"""A GPT-2-style causal transformer that reads a regression prompt and predicts at the x tokens.

Pre-layer-norm blocks (attention, then a 4x-wide GeLU MLP, each added to
the residual), learned positions, a final layer norm and a linear read-out.
The prompt uses the encoding of ``construct.raw.prompt``: ``x~ = [0, x]``,
``y~ = [y, 0]``; the output at x~_k is the prediction of y_k from examples
1..k-1. Floating point is JAX's default (float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class ModelConfig:
    d: int
    max_examples: int
    layers: int = 4
    width: int = 64
    heads: int = 2

    def __post_init__(self) -> None:
        for name in ("d", "max_examples", "layers", "width", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"model: {name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"model: width {self.width} is not a multiple of heads {self.heads}")


class Block(eqx.Module):
    ln_attention: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    ln_mlp: eqx.nn.LayerNorm
    up: eqx.nn.Linear
    down: eqx.nn.Linear

    def __init__(self, width: int, heads: int, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.ln_attention = eqx.nn.LayerNorm(width)
        self.attention = eqx.nn.MultiheadAttention(heads, width, key=k1)
        self.ln_mlp = eqx.nn.LayerNorm(width)
        self.up = eqx.nn.Linear(width, 4 * width, key=k2)
        self.down = eqx.nn.Linear(4 * width, width, key=k3)

    def __call__(self, h, mask):
        z = jax.vmap(self.ln_attention)(h)
        h = h + self.attention(z, z, z, mask=mask)
        z = jax.vmap(self.ln_mlp)(h)
        return h + jax.vmap(self.down)(jax.nn.gelu(jax.vmap(self.up)(z)))


class Transformer(eqx.Module):
    read_in: eqx.nn.Linear
    positions: jax.Array
    blocks: list
    ln_final: eqx.nn.LayerNorm
    read_out: eqx.nn.Linear

    def __init__(self, config: ModelConfig, key):
        keys = jax.random.split(key, config.layers + 3)
        self.read_in = eqx.nn.Linear(config.d + 1, config.width, key=keys[0])
        self.positions = 0.02 * jax.random.normal(keys[1], (2 * config.max_examples + 1, config.width))
        self.blocks = [Block(config.width, config.heads, k) for k in keys[2:-1]]
        self.ln_final = eqx.nn.LayerNorm(config.width)
        self.read_out = eqx.nn.Linear(config.width, 1, key=keys[-1])

    def hidden(self, tokens, positions=None, mask=None):
        """Residual stream after the embedding and after each block: (layers + 1, T, width).

        ``positions`` (T,) are the tokens' position-embedding indices (default
        0..T-1) and ``mask`` (T, T) says which tokens each one attends to
        (default: causal). ``predictors.Trained.predict`` uses them to read
        many queries after one prompt, each seeing only its prefix.
        """
        T = tokens.shape[0]
        positions = jnp.arange(T) if positions is None else positions
        h = jax.vmap(self.read_in)(tokens) + self.positions[positions]
        mask = jnp.tril(jnp.ones((T, T), dtype=bool)) if mask is None else mask
        states = [h]
        for block in self.blocks:
            h = block(h, mask)
            states.append(h)
        return jnp.stack(states)

    def __call__(self, tokens, positions=None, mask=None):
        """One output per token (T,)."""
        h = self.hidden(tokens, positions, mask)[-1]
        return jax.vmap(self.read_out)(jax.vmap(self.ln_final)(h))[:, 0]


def tokens(X, y=None, query=None):
    """Prompt tokens (float32) for a batch: X (B, k, d), y (B, k), optional query (B, d) -> (B, 2k [+1], d+1)."""
    X = jnp.asarray(X, jnp.float32)
    B, k, d = X.shape
    T = 2 * k + (query is not None)
    out = jnp.zeros((B, T, d + 1), dtype=jnp.float32)
    out = out.at[:, 0 : 2 * k : 2, 1:].set(X)
    if y is not None:
        out = out.at[:, 1 : 2 * k : 2, 0].set(jnp.asarray(y, jnp.float32))
    if query is not None:
        out = out.at[:, 2 * k, 1:].set(jnp.asarray(query, jnp.float32))
    return out


def predict_examples(model: Transformer, X, y):
    """Outputs at every x~ token of the batch's prompts: (B, n); entry k predicts y_{k+1} from 1..k."""
    return jax.vmap(model)(tokens(X, y))[:, 0::2]
