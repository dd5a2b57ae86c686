"""TransformerLens runtime (``construct.runtimes.tl``): ``to_hooked_transformer``, ``run_with_cache``."""

from .runtimes.tl import run_with_cache, to_hooked_transformer

__all__ = ["run_with_cache", "to_hooked_transformer"]
