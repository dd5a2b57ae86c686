"""From a program to transformer weights: the domain, the scale constants, the layer blocks, the assembly.

Pipeline: ``bounds`` (the domain a network is built for) -> ``scales`` (the
constant of each mechanism and its error bound) -> ``blocks`` (what one
layer does for each instruction, as logical pieces) -> ``build`` (the
assembly into dense ``Weights``) -> ``compiled`` (the network that runs,
guards its domain and reports its layers).
"""

from .bounds import Bounds, DomainError
from .build import compile
from .compiled import CompiledNetwork, LayerReport, Trace

__all__ = ["Bounds", "CompiledNetwork", "DomainError", "LayerReport", "Trace", "compile"]
