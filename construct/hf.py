"""Hugging Face transformers runtime (``construct.runtimes.hf``): ``save_pretrained``, ``from_pretrained``, ``load``
(the verified network), ``from_network`` (the model of a compiled network, built in memory), ``ICLModel``."""

from .runtimes.hf import ICLModel, from_network, from_pretrained, load, predict, save_pretrained

__all__ = ["ICLModel", "from_network", "from_pretrained", "load", "predict", "save_pretrained"]
