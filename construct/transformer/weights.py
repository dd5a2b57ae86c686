"""The parameters of a decoder-only transformer (docs/CONSTRUCTION.md section 2), as plain dense arrays.

Tokens are rows here (the usual machine-learning convention): a prompt is a
``T x (d+1)`` array, a hidden state ``T x D``. One layer maps ``H`` to

    heads      B_j = causal_softmax((H Wq_j)(H Wk_j)^T) (H Wv_j)          j = 1..m
    attention  X   = H + [B_1 ... B_m] Wo + bo
    MLP        H'  = X + gelu(LN(X) W1 + b1) W2 + b2
    LN(v)      = ln_gain * (v - mean(v)) / sqrt(var(v) + ln_eps) + ln_bias   (per token)

with the exact erf GeLU and no scaling of the attention scores. The input
is ``tokens @ embed + positions[:T]``; the output is ``H_L @ readout``, one
number per token. Per-layer arrays are stacked on a leading axis of L
*stored* layers, and ``order`` says which stored layer is applied at each
depth: ``order = [0, 1, 2, 3, 2, 3, 2, 3, 4]`` applies layers 2 and 3 three
times (weight tying: a repeated block is stored once). By default each
stored layer is applied once, in order.

This module and the two forward passes know nothing about programs or
algorithms: they are a transformer and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True, eq=False)
class Weights:
    """All parameters. Shapes: L layers, m heads, width D, head size dh, MLP width U."""

    embed: np.ndarray      # (d+1, D)
    positions: np.ndarray  # (T_max, D)
    readout: np.ndarray    # (D,)
    Wq: np.ndarray         # (L, m, D, dh)
    Wk: np.ndarray         # (L, m, D, dh)
    Wv: np.ndarray         # (L, m, D, dh)
    Wo: np.ndarray         # (L, m*dh, D)
    bo: np.ndarray         # (L, D)
    ln_gain: np.ndarray    # (L, D)
    ln_bias: np.ndarray    # (L, D)
    W1: np.ndarray         # (L, D, U)
    b1: np.ndarray         # (L, U)
    W2: np.ndarray         # (L, U, D)
    b2: np.ndarray         # (L, D)
    ln_eps: float = 1e-5
    order: np.ndarray | None = None  # (depth,) ints in [0, L): the stored layer applied at each depth

    def __post_init__(self) -> None:
        order = np.arange(self.Wq.shape[0]) if self.order is None else np.asarray(self.order)
        if order.ndim != 1 or order.size == 0 or not np.issubdtype(order.dtype, np.integer) or \
                order.min() < 0 or order.max() >= self.Wq.shape[0]:
            raise ValueError(f"weights: order must be a non-empty 1-d array of stored layer indices "
                             f"0..{self.Wq.shape[0] - 1}, got {self.order!r}")
        order = order.astype(np.int64)
        order.flags.writeable = False
        object.__setattr__(self, "order", order)
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("ln_eps", "order")}
        for name, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(f"weights: {name} must be a numpy array, got {type(value).__name__}")
        dtype = self.embed.dtype
        if dtype not in DTYPES:
            raise ValueError(f"weights: embed has dtype {dtype}; use float32 or float64")
        for name, value in arrays.items():
            if value.dtype != dtype:
                raise ValueError(f"weights: {name} has dtype {value.dtype}, embed has {dtype}; all must match")
        if self.Wq.ndim != 4:
            raise ValueError(f"weights: Wq must be (L, m, D, dh), got shape {self.Wq.shape}")
        L, m, D, dh = self.Wq.shape
        U = self.W1.shape[-1] if self.W1.ndim == 3 else -1
        expected = {
            "embed": (self.embed.shape[0], D), "positions": (self.positions.shape[0], D), "readout": (D,),
            "Wq": (L, m, D, dh), "Wk": (L, m, D, dh), "Wv": (L, m, D, dh), "Wo": (L, m * dh, D),
            "bo": (L, D), "ln_gain": (L, D), "ln_bias": (L, D), "W1": (L, D, U), "b1": (L, U),
            "W2": (L, U, D), "b2": (L, D),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ValueError(
                    f"weights: {name} has shape {arrays[name].shape}, expected {shape} "
                    f"(L={L} layers, m={m} heads, D={D}, dh={dh}, U={U})"
                )
        for name, value in arrays.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"weights: {name} has non-finite entries")
            value.flags.writeable = False
        if not (np.isfinite(self.ln_eps) and self.ln_eps > 0):
            raise ValueError(f"weights: ln_eps must be a positive number, got {self.ln_eps!r}")

    @property
    def dtype(self) -> np.dtype:
        return self.embed.dtype

    @property
    def depth(self) -> int:
        """Layers applied (tied layers count each time)."""
        return len(self.order)

    @property
    def stored(self) -> int:
        """Layers stored."""
        return self.Wq.shape[0]

    @property
    def heads(self) -> int:
        return self.Wq.shape[1]

    @property
    def width(self) -> int:
        return self.Wq.shape[2]

    @property
    def head_size(self) -> int:
        return self.Wq.shape[3]

    @property
    def mlp_width(self) -> int:
        return self.W1.shape[2]

    @property
    def max_tokens(self) -> int:
        return self.positions.shape[0]

    @property
    def parameter_count(self) -> int:
        return sum(a.size for name, a in self.arrays().items() if name != "order")

    def untied(self) -> "Weights":
        """The same network with a stored layer per depth (``order = 0..depth-1``): for runtimes that cannot
        share weights between layers, and to measure what tying saves."""
        per_layer = {f.name: getattr(self, f.name)[self.order] for f in fields(self)
                     if f.name not in ("embed", "positions", "readout", "ln_eps", "order")}
        return Weights(embed=self.embed, positions=self.positions, readout=self.readout, ln_eps=self.ln_eps,
                       **per_layer)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (for export and for the JAX pass), the layer order included."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ln_eps"}


def check_tokens(weights: Weights, tokens: np.ndarray) -> np.ndarray:
    """Tokens as an array of the weights' dtype, ``(..., T, d+1)`` with T within the position table."""
    return check_prompt(tokens, weights.embed.shape[0], weights.max_tokens, weights.dtype)


def check_prompt(tokens, slots: int, max_tokens: int, dtype, batched: bool = True) -> np.ndarray:
    """``tokens`` as an array of ``dtype``, ``(..., T, slots)`` (``(T, slots)`` unless ``batched``), finite, with
    ``1 <= T <= max_tokens`` (the position table's rows)."""
    tokens = np.asarray(tokens)
    if not (tokens.ndim >= 2 if batched else tokens.ndim == 2) or tokens.shape[-1] != slots:
        raise ValueError(f"tokens must have shape ({'..., ' if batched else ''}T, {slots}), got {tokens.shape}")
    if not 1 <= tokens.shape[-2] <= max_tokens:
        raise ValueError(f"prompt has {tokens.shape[-2]} tokens; the position table holds {max_tokens}")
    if not np.all(np.isfinite(tokens)):
        raise ValueError("tokens contain NaN or inf")
    return tokens.astype(dtype)
