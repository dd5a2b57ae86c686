"""TransformerLens: a network compiled for GPT-2 with TransformerLens' hooks, every layer's activations cached.

``to_transformer_lens(net)`` builds the model the installed TransformerLens
supports:

* 3.x: ``HookedTransformer(HookedTransformerConfig(...))``
  (``normalization_type="LN"``, ``act_fn="gelu"``, standard position
  embeddings, attention scaled by ``1/sqrt(d_head)``, float64 unless the
  network is float32), the GPT-2 weights loaded with
  ``load_state_dict(strict=True)``: no folding, centring or other
  processing of TransformerLens' loaders. (3.x warns that
  ``HookedTransformer`` is deprecated; the warning is TransformerLens'.)
* 4.x, which removed ``HookedTransformer``: a ``TransformerBridge`` around
  Hugging Face's ``GPT2LMHeadModel`` holding the network's weights (those
  ``construct.hf`` writes, ``load_state_dict(strict=True)``, the read-out
  as ``lm_head``), built by TransformerLens' ``build_bridge_from_module``
  (its way to wrap a model already loaded; ``boot_transformers`` would
  fetch a tokenizer by name, and the prompt has none). The bridge keeps
  the raw Hugging Face weights (no ``enable_compatibility_mode``, which
  would fold the layer norms) and runs eager attention, so
  ``attn.hook_pattern`` fires.

Either way the hook names this project reads are TransformerLens' own and
the same in both: TransformerLens embeds integer tokens; the prompt is
continuous, so the vocabulary has one token whose embedding is zero and
``run_with_cache`` replaces the output of ``hook_embed`` with the read-in
``tokens @ read_in`` (the position table is added by the model itself). The
read-out is the unembedding: its one column is the read-out, so the logits'
only entry at each token is the prediction. ``blocks.{l}.hook_resid_post``
is the residual stream after block l, the state ``net.trace`` gives after
layer l + 1; ``predict`` reads the last one for the a-posteriori
certificate (``construct.runtimes.certified``).

The standard of ``construct.hf``: ``to_transformer_lens`` refuses a network
whose GPT-2 weights are not the conversion of its layers (the certificate's
check, ``compiler.targets.require_conversion``: converted again, compared
bit for bit), so the hooks never show weights that no compile gives; and
``from_pretrained(directory)`` builds the model from a Hugging Face
directory only through ``construct.hf.load``, which rebuilds the network
and requires every file to equal it.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import torch
import transformers

from ..compiler import size
from ..compiler.targets import require_conversion
from . import certified, hf

MAJOR = int(version("transformer_lens").split(".")[0])
if MAJOR < 4:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
else:
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.model_bridge.sources import build_bridge_from_module

_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def _require_gpt2(net) -> None:
    if net.gpt2 is None:
        raise ValueError("this network has the paper's architecture; compile it with architecture='gpt2' to run it "
                         "in TransformerLens")
    require_conversion(net)


def state_dict(net) -> dict[str, np.ndarray]:
    """The GPT-2 weights under ``HookedTransformer``'s names and shapes (heads as a leading axis; what 3.x
    loads)."""
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


def _load(model: torch.nn.Module, params: dict[str, np.ndarray], dtype: torch.dtype, what: str) -> None:
    """``params`` into ``model`` with ``load_state_dict(strict=True)``; the rest of its state dict may only be
    buffers (masks), which keep their values."""
    full = model.state_dict()
    unknown = sorted(set(params) - set(full))
    if unknown:
        raise RuntimeError(f"{what} has no parameters {unknown}; this version lays out its weights differently")
    parameters = {name for name, _ in model.named_parameters()}
    if parameters - set(params):
        raise RuntimeError(f"{what} has parameters {sorted(parameters - set(params))} the network does not set")
    for name, value in params.items():
        full[name] = torch.tensor(value, dtype=dtype)
    model.load_state_dict(full, strict=True)


def _hooked_transformer(net) -> HookedTransformer:
    g = net.gpt2
    cfg = HookedTransformerConfig(
        n_layers=g.depth, d_model=g.width, n_ctx=g.max_tokens, d_head=g.head_size, n_heads=g.n_head,
        d_mlp=g.mlp_width, d_vocab=1, act_fn="gelu", normalization_type="LN", eps=g.ln_eps,
        positional_embedding_type="standard", attention_dir="causal", use_attn_scale=True,
        default_prepend_bos=False, dtype=_DTYPES[g.dtype], device="cpu", model_name=f"icl-construct {net.program.name}",
    )
    model = HookedTransformer(cfg)
    _load(model, state_dict(net), cfg.dtype, "TransformerLens' HookedTransformer")
    return model.eval()


def _bridge(net) -> TransformerBridge:
    dtype = _DTYPES[net.gpt2.dtype]
    settings = {**hf.config_dict(net), "architectures": ["GPT2LMHeadModel"], "attn_implementation": "eager"}
    lm = transformers.GPT2LMHeadModel(transformers.GPT2Config(**settings)).to(dtype)
    params = {f"transformer.{k}": v for k, v in hf.state_dict(net).items()}
    params["lm_head.weight"] = hf.read_in_out(net)["read_out.weight"]  # read_out.bias is zero: lm_head has none
    _load(lm, params, dtype, "Hugging Face's GPT2LMHeadModel")
    model = build_bridge_from_module(lm.eval(), "GPT2LMHeadModel", hf_config=lm.config, tokenizer=None, dtype=dtype,
                                     device="cpu", model_name=f"icl-construct {net.program.name}")
    return model.eval()


def to_transformer_lens(net):
    """``net`` (compiled with ``architecture="gpt2"``) as TransformerLens' model in eval mode: a
    ``HookedTransformer`` with TransformerLens 3.x, a ``TransformerBridge`` with 4.x (see the module);
    ``ValueError`` if its GPT-2 weights are not the conversion of its layers."""
    _require_gpt2(net)
    return _hooked_transformer(net) if MAJOR < 4 else _bridge(net)


to_hooked_transformer = to_transformer_lens  # its name before TransformerLens 4.x, kept for code that calls it


def from_pretrained(directory, max_bytes: float | None = size.DEFAULT_MAX_BYTES):
    """``(model, net)``: the network a Hugging Face directory holds, verified by ``construct.hf.load`` (else a
    ``WeightsFileError`` naming the file and field), as TransformerLens' model (``to_transformer_lens``), and the
    network itself (which ``run_with_cache`` and ``predict`` take)."""
    net = hf.load(directory, max_bytes)
    return to_transformer_lens(net), net


def _run(model, net, X, y, x_query, names_filter=None):
    """``(predictions, cache)`` of one run, the cache holding the hooks ``names_filter`` lets through."""
    toks = torch.tensor(net._tokens(X, y, x_query) @ net.gpt2.read_in, dtype=model.cfg.dtype)[None]

    def read_in(embed, hook):
        return toks

    with torch.no_grad(), model.hooks(fwd_hooks=[("hook_embed", read_in)]):
        logits, cache = model.run_with_cache(torch.zeros(toks.shape[:2], dtype=torch.long), names_filter=names_filter)
    return net._read(logits[0, :, 0].numpy()), cache


def run_with_cache(model, net, X, y, x_query):
    """``(predictions, cache)``: the ``k + 1`` predictions of a prompt of ``k <= n`` examples, read at the x~
    columns as ``net.predict`` reads them, and TransformerLens' ``ActivationCache`` of the run (the task checked
    against ``net``'s domain on input). Uncertified: ``predict`` gives the bounds."""
    return _run(model, net, X, y, x_query)


def predict(model, net, X, y, x_query, tolerance: float | None = certified.DEFAULT_TOLERANCE,
            return_bound: bool = False):
    """The ``k + 1`` predictions of TransformerLens' ``model`` of ``net`` (as ``run_with_cache`` runs it), each
    with the a-posteriori bound of ``net``'s algorithm from the model's answers and its
    ``blocks.{L-1}.hook_resid_post`` (the residual stream after the last block, before ``ln_final``): ridge has
    one, SGD none (inf). An answer whose bound exceeds ``tolerance`` times ``net.scale`` is refused with a
    ``CertificateError`` (None accepts every answer); ``return_bound=True`` returns ``(predictions, bounds)``."""
    certified.check_tolerance(tolerance)
    last = f"blocks.{net.gpt2.depth - 1}.hook_resid_post"
    predictions, cache = _run(model, net, X, y, x_query, names_filter=[last])
    bounds = certified.bounds(net, cache[last][0].numpy(), X, y, x_query, predictions)
    certified.accept(net, predictions, bounds, y, tolerance, f"TransformerLens' {type(model).__name__}")
    return (predictions, bounds) if return_bound else predictions
