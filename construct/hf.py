"""Hugging Face transformers runtime (``construct.runtimes.hf``): ``save_pretrained``, ``from_pretrained``, ``ICLModel``."""

from .runtimes.hf import ICLModel, from_pretrained, predict, save_pretrained

__all__ = ["ICLModel", "from_pretrained", "predict", "save_pretrained"]
