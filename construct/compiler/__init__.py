"""From a program to transformer weights: ``compile``, a pipeline of named stages (``build`` lists them).

``bounds`` (the domain) -> ``schedule`` (which instructions share a layer)
-> ``layout`` (the rows the mechanisms need) -> ``constants`` (the scale
constants) -> ``plans`` (each layer as logical pieces, each instruction kind
planning its own part) -> ``size`` (refused before anything large) ->
``assemble`` (dense weights) -> ``targets`` (the architecture: the paper's
layer or GPT-2 blocks). ``compiled`` is the network that runs, guards its
domain and reports its layers; ``certificate`` bounds every answer's error.
"""

from .answer import predict
from .bounds import Bounds, DomainError, FloatRangeError
from .build import compile, estimate, estimate_repeated
from .certificate import CertificateError
from .compiled import CompiledNetwork, LayerReport, Trace
from .size import Size, SizeError

__all__ = ["Bounds", "CertificateError", "CompiledNetwork", "DomainError", "FloatRangeError", "LayerReport", "Size",
           "SizeError", "Trace", "compile", "estimate", "estimate_repeated", "predict"]
