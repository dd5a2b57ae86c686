"""TransformerLens runtime (``construct.runtimes.tl``): ``to_hooked_transformer``, ``from_pretrained``,
``run_with_cache``."""

from .runtimes.tl import from_pretrained, run_with_cache, to_hooked_transformer

__all__ = ["from_pretrained", "run_with_cache", "to_hooked_transformer"]
