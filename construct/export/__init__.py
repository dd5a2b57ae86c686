"""Taking a compiled network elsewhere: one .npz file (``npz``) with its manifest, and back bit for bit."""

from .npz import WeightsFileError, load, manifest, save

__all__ = ["WeightsFileError", "load", "manifest", "save"]
