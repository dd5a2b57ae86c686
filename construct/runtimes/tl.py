"""TransformerLens: a network compiled for GPT-2 as a ``HookedTransformer``, every layer's activations cached.

``to_hooked_transformer(net)`` builds ``HookedTransformer(HookedTransformerConfig(...))``
(``normalization_type="LN"``, ``act_fn="gelu"``, standard position
embeddings, attention scaled by ``1/sqrt(d_head)``, float64 unless the
network is float32) and loads the GPT-2 weights into it with
``load_state_dict(strict=True)``: no folding, centring or other processing
of TransformerLens' loaders, so the model is the GPT-2 network as compiled.
TransformerLens embeds integer tokens; the prompt is continuous, so the
vocabulary has one token whose embedding is zero and ``run_with_cache``
replaces the output of ``hook_embed`` with the read-in ``tokens @ read_in``
(the position table ``W_pos`` is added by TransformerLens itself). The
read-out is the unembedding: ``W_U`` is the read-out column, so the logits'
only entry at each token is the prediction. ``blocks.{l}.hook_resid_post``
is the residual stream after block l, the state ``net.trace`` gives after
layer l + 1.

The standard of ``construct.hf``: ``to_hooked_transformer`` refuses a
network whose GPT-2 weights are not the conversion of its layers (the
certificate's check, ``compiler.targets.require_conversion``: converted again, compared
bit for bit), so the hooks never show weights that no compile gives; and
``from_pretrained(directory)`` builds the model from a Hugging Face
directory only through ``construct.hf.load``, which rebuilds the network
and requires every file to equal it.
"""

from __future__ import annotations

import numpy as np
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from ..compiler import size
from ..compiler.targets import require_conversion
from . import hf


_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def config(net) -> HookedTransformerConfig:
    """The ``HookedTransformerConfig`` of ``net`` (compiled with ``architecture="gpt2"``)."""
    if net.gpt2 is None:
        raise ValueError("this network has the paper's architecture; compile it with architecture='gpt2' to run it "
                         "in TransformerLens")
    g = net.gpt2
    return HookedTransformerConfig(
        n_layers=g.depth, d_model=g.width, n_ctx=g.max_tokens, d_head=g.head_size, n_heads=g.n_head,
        d_mlp=g.mlp_width, d_vocab=1, act_fn="gelu", normalization_type="LN", eps=g.ln_eps,
        positional_embedding_type="standard", attention_dir="causal", use_attn_scale=True,
        default_prepend_bos=False, dtype=_DTYPES[g.dtype], device="cpu", model_name=f"icl-construct {net.program.name}",
    )


def state_dict(net) -> dict[str, np.ndarray]:
    """The GPT-2 weights under TransformerLens' names and shapes (heads as a leading axis)."""
    g = net.gpt2
    m, D, dh = g.n_head, g.width, g.head_size
    out = {"embed.W_E": np.zeros((1, D), g.dtype), "pos_embed.W_pos": g.wpe,
           "ln_final.w": g.ln_f_weight, "ln_final.b": g.ln_f_bias,
           "unembed.W_U": g.read_out[:, None], "unembed.b_U": np.zeros(1, g.dtype)}
    for l in range(g.depth):
        bias = g.c_attn_bias[l].reshape(3, m, dh)
        out.update({
            f"blocks.{l}.ln1.w": g.ln_1_weight[l], f"blocks.{l}.ln1.b": g.ln_1_bias[l],
            f"blocks.{l}.attn.W_Q": g.head_weights(l, 0), f"blocks.{l}.attn.W_K": g.head_weights(l, 1),
            f"blocks.{l}.attn.W_V": g.head_weights(l, 2), f"blocks.{l}.attn.b_Q": bias[0],
            f"blocks.{l}.attn.b_K": bias[1], f"blocks.{l}.attn.b_V": bias[2],
            f"blocks.{l}.attn.W_O": g.c_proj_weight[l].reshape(m, dh, D), f"blocks.{l}.attn.b_O": g.c_proj_bias[l],
            f"blocks.{l}.ln2.w": g.ln_2_weight[l], f"blocks.{l}.ln2.b": g.ln_2_bias[l],
            f"blocks.{l}.mlp.W_in": g.c_fc_weight[l], f"blocks.{l}.mlp.b_in": g.c_fc_bias[l],
            f"blocks.{l}.mlp.W_out": g.mlp_proj_weight[l], f"blocks.{l}.mlp.b_out": g.mlp_proj_bias[l],
        })
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def to_hooked_transformer(net) -> HookedTransformer:
    """``net`` (compiled with ``architecture="gpt2"``) as a ``HookedTransformer`` in eval mode (see the module);
    ``ValueError`` if its GPT-2 weights are not the conversion of its layers."""
    cfg = config(net)
    require_conversion(net)
    model = HookedTransformer(cfg)
    params = state_dict(net)
    full = model.state_dict()
    unknown = sorted(set(params) - set(full))
    if unknown:
        raise RuntimeError(f"TransformerLens' HookedTransformer has no parameters {unknown}; this TransformerLens "
                           "version lays out its weights differently")
    for name, value in params.items():  # the rest of the state dict are TransformerLens' own buffers (masks)
        full[name] = torch.tensor(value, dtype=cfg.dtype)
    model.load_state_dict(full, strict=True)
    return model.eval()


def from_pretrained(directory, max_bytes: float | None = size.DEFAULT_MAX_BYTES):
    """``(model, net)``: the network a Hugging Face directory holds, verified by ``construct.hf.load`` (else a
    ``WeightsFileError`` naming the file and field), as a ``HookedTransformer``, and the network itself (which
    ``run_with_cache`` takes)."""
    net = hf.load(directory, max_bytes)
    return to_hooked_transformer(net), net


def run_with_cache(model: HookedTransformer, net, X, y, x_query):
    """``(predictions, cache)``: the ``k + 1`` predictions of a prompt of ``k <= n`` examples, read at the x~
    columns as ``net.predict`` reads them,
    and TransformerLens' ``ActivationCache`` of the run (the task checked against ``net``'s domain on input)."""
    toks = torch.tensor(net._tokens(X, y, x_query) @ net.gpt2.read_in, dtype=model.cfg.dtype)[None]

    def read_in(embed, hook):
        return toks

    with torch.no_grad(), model.hooks(fwd_hooks=[("hook_embed", read_in)]):
        logits, cache = model.run_with_cache(torch.zeros(toks.shape[:2], dtype=torch.long))
    return net._read(logits[0, :, 0].numpy()), cache
