"""From a program to transformer weights: the domain, the scale constants, the layer blocks, the assembly.

Pipeline: ``bounds`` (the domain a network is built for) -> ``scales`` (the
constant of each mechanism and its error bound) -> ``schedule`` (which
instructions share a layer) -> ``blocks`` (what one layer does for its
instructions, as logical pieces) -> ``build`` (the
assembly into dense ``Weights``, refused beforehand by ``size`` if too large) -> ``compiled`` (the network that runs,
guards its domain and reports its layers).
"""

from .bounds import Bounds, DomainError, FloatRangeError
from .build import compile, estimate, estimate_repeated
from .compiled import CompiledNetwork, LayerReport, Trace
from .size import Size, SizeError

__all__ = ["Bounds", "CompiledNetwork", "DomainError", "FloatRangeError", "LayerReport", "Size", "SizeError", "Trace", "compile", "estimate",
           "estimate_repeated"]
