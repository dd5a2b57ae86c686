"""The GPT-2 block as dense arrays, its numpy forward pass, and a running error analysis of that pass's attention.

GPT-2's layer (Radford et al., 2019; Hugging Face's ``GPT2Model``, TransformerLens' ``HookedTransformer``
with ``normalization_type="LN"``), with tokens as rows and H a T x D state:

    H_0 = tokens @ read_in + wpe[:T]
    for l = 0, ..., L-1 (no weight tying):
        Z   = LN(H; ln_1_weight[l], ln_1_bias[l])
        [Q | K | V] = Z c_attn_weight[l] + c_attn_bias[l]             (T, 3D), head j = columns [j dh, (j+1) dh) of each
        A_j = causal_softmax(Q_j K_j^T / sqrt(dh))                     dh = D / n_head
        X   = H + ([A_0 V_0, ..., A_{m-1} V_{m-1}] c_proj_weight[l] + c_proj_bias[l])
        H   = X + gelu(LN(X; ln_2_weight[l], ln_2_bias[l]) c_fc_weight[l] + c_fc_bias[l]) mlp_proj_weight[l]
              + mlp_proj_bias[l]
    y   = LN(H_L; ln_f_weight, ln_f_bias) @ read_out                   one number per token

``LN(v; g, b) = g * (v - mean(v)) / sqrt(var(v) + ln_eps) + b`` per token
(biased variance), ``gelu`` the exact erf form (Hugging Face's ``"gelu"``).
Weights are stored as GPT-2 stores them (``Conv1D``: input by output), so
``c_attn_weight[l]`` is exactly the ``h.{l}.attn.c_attn.weight`` of a
Hugging Face checkpoint. ``read_in`` and ``read_out`` are outside GPT-2's
``GPT2Model``: the linear maps a model of this field puts around it.

The MLP half is evaluated by ``forward.mlp_parts``, the same code as the
paper's layer (so ``rounding.mlp`` bounds its rounding), which adds the
residual as ``(X + mlp) + b2`` where GPT-2's code adds ``X + (mlp + b2)``:
the same function, rounded in another order (the runtimes are measured
against this pass, not bit for bit). Like this module, it knows nothing
about programs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .forward import LayerParts, causal_softmax, layer_norm, mlp_parts
from .rounding import SAFETY, AttentionBound, gamma, nonzeros, unit_roundoff
from .weights import DTYPES, check_prompt


@dataclass(frozen=True, eq=False)
class GPT2Weights:
    """Every parameter of a GPT-2 network with a linear read-in and read-out. L layers, width D, MLP width U."""

    read_in: np.ndarray          # (d+1, D)
    wpe: np.ndarray              # (T_max, D)
    ln_1_weight: np.ndarray      # (L, D)
    ln_1_bias: np.ndarray        # (L, D)
    c_attn_weight: np.ndarray    # (L, D, 3D)
    c_attn_bias: np.ndarray      # (L, 3D)
    c_proj_weight: np.ndarray    # (L, D, D)
    c_proj_bias: np.ndarray      # (L, D)
    ln_2_weight: np.ndarray      # (L, D)
    ln_2_bias: np.ndarray        # (L, D)
    c_fc_weight: np.ndarray      # (L, D, U)
    c_fc_bias: np.ndarray        # (L, U)
    mlp_proj_weight: np.ndarray  # (L, U, D)
    mlp_proj_bias: np.ndarray    # (L, D)
    ln_f_weight: np.ndarray      # (D,)
    ln_f_bias: np.ndarray        # (D,)
    read_out: np.ndarray         # (D,)
    n_head: int
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        arrays = self.arrays()
        for name, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(f"gpt2 weights: {name} must be a numpy array, got {type(value).__name__}")
        dtype = self.read_in.dtype
        if dtype not in DTYPES or any(a.dtype != dtype for a in arrays.values()):
            raise ValueError(f"gpt2 weights: every array must be float32 or float64, all alike; read_in is {dtype}")
        if self.c_attn_weight.ndim != 3:
            raise ValueError(f"gpt2 weights: c_attn_weight must be (L, D, 3D), got {self.c_attn_weight.shape}")
        L, D, U = self.c_attn_weight.shape[0], self.c_attn_weight.shape[1], self.c_fc_weight.shape[-1]
        if not (isinstance(self.n_head, int) and self.n_head >= 1 and D % self.n_head == 0):
            raise ValueError(f"gpt2 weights: n_head must divide the width {D}, got {self.n_head!r}")
        expected = {
            "read_in": (self.read_in.shape[0], D), "wpe": (self.wpe.shape[0], D), "ln_1_weight": (L, D),
            "ln_1_bias": (L, D), "c_attn_weight": (L, D, 3 * D), "c_attn_bias": (L, 3 * D),
            "c_proj_weight": (L, D, D), "c_proj_bias": (L, D), "ln_2_weight": (L, D), "ln_2_bias": (L, D),
            "c_fc_weight": (L, D, U), "c_fc_bias": (L, U), "mlp_proj_weight": (L, U, D), "mlp_proj_bias": (L, D),
            "ln_f_weight": (D,), "ln_f_bias": (D,), "read_out": (D,),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ValueError(f"gpt2 weights: {name} has shape {arrays[name].shape}, expected {shape}")
            if not np.all(np.isfinite(arrays[name])):
                raise ValueError(f"gpt2 weights: {name} has non-finite entries")
            arrays[name].flags.writeable = False
        if not (np.isfinite(self.ln_eps) and self.ln_eps > 0):
            raise ValueError(f"gpt2 weights: ln_eps must be a positive number, got {self.ln_eps!r}")

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("n_head", "ln_eps")}

    @property
    def dtype(self) -> np.dtype:
        return self.read_in.dtype

    @property
    def depth(self) -> int:
        return self.c_attn_weight.shape[0]

    @property
    def width(self) -> int:
        return self.c_attn_weight.shape[1]

    @property
    def head_size(self) -> int:
        return self.width // self.n_head

    @property
    def mlp_width(self) -> int:
        return self.c_fc_weight.shape[2]

    @property
    def max_tokens(self) -> int:
        return self.wpe.shape[0]

    @property
    def parameter_count(self) -> int:
        return sum(a.size for a in self.arrays().values())

    def head_weights(self, l: int, which: int) -> np.ndarray:
        """``(n_head, D, dh)``: the query (0), key (1) or value (2) projection of each head of layer ``l``."""
        D, m = self.width, self.n_head
        return self.c_attn_weight[l][:, which * D:(which + 1) * D].reshape(D, m, D // m).transpose(1, 0, 2)


@dataclass(frozen=True, eq=False)
class GPT2Parts(LayerParts):
    """``forward.LayerParts`` of one GPT-2 block (``V`` the values with their bias, ``Y`` the projection with
    ``c_proj_bias``), and the layer norm before attention: ``mean1``, ``sigma1`` (T, 1), ``centred1``, ``normed1``
    (T, D) as computed."""

    mean1: np.ndarray = None
    sigma1: np.ndarray = None
    centred1: np.ndarray = None
    normed1: np.ndarray = None


def layer_parts(w: GPT2Weights, l: int, H: np.ndarray) -> GPT2Parts:
    """Block ``l`` applied to one state ``H`` (T x D), every intermediate kept."""
    T, D, m = H.shape[0], w.width, w.n_head
    mean1, centred1, sigma1, normed1 = layer_norm(H, w.ln_1_weight[l], w.ln_1_bias[l], w.ln_eps)
    qkv = normed1 @ w.c_attn_weight[l] + w.c_attn_bias[l]
    Q, K, V = (qkv[:, k * D:(k + 1) * D].reshape(T, m, -1).transpose(1, 0, 2) for k in range(3))  # (m, T, dh)
    A = causal_softmax(Q @ K.transpose(0, 2, 1) / np.sqrt(H.dtype.type(w.head_size)))
    B = A @ V
    Y = B.transpose(1, 0, 2).reshape(T, D) @ w.c_proj_weight[l] + w.c_proj_bias[l]
    X = H + Y
    mlp = mlp_parts(X, w.ln_2_weight[l], w.ln_2_bias[l], w.c_fc_weight[l], w.c_fc_bias[l],
                            w.mlp_proj_weight[l], w.mlp_proj_bias[l], w.ln_eps)
    return GPT2Parts(A, V, B, Y, X, *mlp, mean1=mean1, sigma1=sigma1, centred1=centred1, normed1=normed1)


def embed(w: GPT2Weights, tokens: np.ndarray) -> np.ndarray:
    """The residual stream before the first block, ``tokens @ read_in + wpe[:T]``, for one checked prompt."""
    tokens = check_prompt(tokens, w.read_in.shape[0], w.max_tokens, w.dtype, batched=False)
    return tokens @ w.read_in + w.wpe[: tokens.shape[0]]


def hidden_states(w: GPT2Weights, tokens: np.ndarray) -> np.ndarray:
    """The residual stream after the embedding and after each block: (L + 1, T, D)."""
    states = [embed(w, tokens)]
    with np.errstate(over="ignore", invalid="ignore"):
        for l in range(w.depth):
            states.append(layer_parts(w, l, states[-1]).out)
    return np.stack(states)


def readout_parts(w: GPT2Weights, H: np.ndarray):
    """``(mean, centred, sigma, normed, y)`` of the final layer norm and the read-out, on the last state ``H``."""
    mean, centred, sigma, normed = layer_norm(H, w.ln_f_weight, w.ln_f_bias, w.ln_eps)
    return mean, centred, sigma, normed, normed @ w.read_out


# -- rounding ------------------------------------------------------------------------------------------------


def attention_rounding(w: GPT2Weights, l: int, H: np.ndarray, parts: GPT2Parts) -> AttentionBound:
    """Bound ``|X - X'|`` (T, D), X' the block's attention half in exact arithmetic on the same ``H`` with the
    pass's ``mean1``, ``sigma1`` and softmax weights ``A`` taken as given; ``values`` bounds ``|V'|`` entrywise.

    The model of ``rounding`` (M1, M2), in the order ``layer_parts`` computes:
    ``normed1 = (g (H - mean1)) / sigma1 + b`` (the subtraction and the
    division round, the gain unless it is 1, the bias unless it is 0), ``V =
    normed1 Wv + bv`` (a dot product, and the error of ``normed1`` carried
    through ``|Wv|``), ``B = A V`` (row i has i + 1 weights), ``Y = B Wo +
    bo`` and ``X = H + Y``. Query and key roundings only move ``A``, which is
    taken as given (the certificate measures ``A`` itself).
    """
    dtype = H.dtype
    u, tiny = unit_roundoff(dtype), float(np.finfo(dtype).tiny)
    T, m = H.shape[0], w.n_head
    gain, bias = w.ln_1_weight[l], w.ln_1_bias[l]
    steps = 2 + (gain != 1)
    dnormed = gamma(steps, u) * (1 + u) * np.abs(gain) * np.abs(parts.centred1) / parts.sigma1 + \
        np.where(bias != 0, u * np.abs(parts.normed1), 0.0) + tiny
    Wv = w.head_weights(l, 2)                                   # (m, D, dh)
    bv = w.c_attn_bias[l][2 * w.width:].reshape(m, -1)          # (m, dh)
    absWv, absN = np.abs(Wv), np.abs(parts.normed1)
    k = nonzeros(Wv)                                   # (m, dh)
    dV = gamma(k, u)[:, None, :] * (absN @ absWv) + dnormed @ absWv + \
        np.where(bv[:, None, :] != 0, u * (1 + u) * np.abs(parts.V), 0.0) + tiny * (k[:, None, :] > 0)
    values = np.abs(parts.V) + dV
    visible = gamma(np.arange(1, T + 1), u)[None, :, None]
    dB = visible * (parts.A @ np.abs(parts.V)) + parts.A @ dV
    heads = np.abs(parts.B).transpose(1, 0, 2).reshape(T, -1)
    dheads = dB.transpose(1, 0, 2).reshape(T, -1)
    absWo, bo = np.abs(w.c_proj_weight[l]), w.c_proj_bias[l]
    dY = gamma(nonzeros(w.c_proj_weight[l]), u) * (heads @ absWo) + dheads @ absWo + \
        np.where(bo != 0, u * (1 + u) * np.abs(parts.Y), 0.0)
    added = np.where(parts.Y != 0, u * (1 + u) * np.abs(parts.X), 0.0)
    total = (dY + added + tiny * ((absWo.sum(axis=0) > 0) | (bo != 0))) * SAFETY[dtype]
    return AttentionBound(total, values)
