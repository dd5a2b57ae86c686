"""A generic decoder-only transformer: the weights as dense arrays and its forward passes.

``forward`` (numpy, the reference and the certified pass, with ``rounding``
its error analysis), ``forward_jax`` (fast, jit and vmap) and
``forward_exact`` (mpmath, 50 digits: the network in real arithmetic, the
same on every machine, for small networks).

This package knows nothing about programs, registers or algorithms and
imports nothing else from ``construct``.
"""

from .weights import Weights

__all__ = ["Weights"]
