"""The exact level: registers and layouts, the prompt encoding, the machine, programs and their domains.

Nothing here knows about transformers or about any instruction kind: a
``Program`` holds instructions of ``construct.instructions`` (each kind
knows its own semantics) on a ``Layout``, and the machine (``machine.run``)
applies them in order; it is the ground truth every compiled layer is
checked against. The compiler (``construct.compiler``) turns a ``Program``
into weights.
"""

from .machine import run
from .program import Program
from .registers import Layout, Register

__all__ = ["Layout", "Program", "Register", "run"]
