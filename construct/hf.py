"""Hugging Face transformers runtime (``construct.runtimes.hf``): ``save_pretrained``, ``from_pretrained``, ``load``
(the verified network), ``ICLModel``."""

from .runtimes.hf import ICLModel, from_pretrained, load, predict, save_pretrained

__all__ = ["ICLModel", "from_pretrained", "load", "predict", "save_pretrained"]
