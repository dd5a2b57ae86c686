"""TransformerLens runtime (``construct.runtimes.tl``): ``to_transformer_lens`` (a ``HookedTransformer`` with
TransformerLens 3.x, a ``TransformerBridge`` with 4.x; also under its former name ``to_hooked_transformer``),
``from_pretrained``, ``run_with_cache``, ``predict`` (with bounds)."""

from .runtimes.tl import from_pretrained, predict, run_with_cache, to_hooked_transformer, to_transformer_lens

__all__ = ["from_pretrained", "predict", "run_with_cache", "to_hooked_transformer", "to_transformer_lens"]
