"""A generic decoder-only transformer: the weights as dense arrays and two forward passes (numpy, JAX).

This package knows nothing about programs, registers or algorithms and
imports nothing else from ``construct``.
"""

from .weights import Weights

__all__ = ["Weights"]
