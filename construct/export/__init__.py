"""Taking a compiled network elsewhere: one npz file with its manifest, and back bit for bit.

``spec`` holds the format's names, limits and meanings (``docs/EXPORT.md``
is the specification); ``writer`` writes a network (``save``,
``manifest``); ``loader`` trusts no file and rebuilds the network it
claims to be (``load``). Imports flow spec -> writer -> loader.
"""

from .loader import WeightsFileError, load
from .writer import manifest, save

__all__ = ["WeightsFileError", "load", "manifest", "save"]
