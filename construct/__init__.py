"""icl-construct: transformers built by hand that learn in context, and their verification.

The pieces, in pipeline order: registers and layouts (``registers``), the RAW
instructions (``instructions``), the prompt encoding (``prompt``), the exact
machine (``machine``), programs (``program``, ``programs``) and the
closed-form references they are checked against (``reference``).
"""

from . import programs, reference
from .instructions import Aff, Div, Instruction, Mov, Mul
from .machine import run
from .program import Program
from .registers import Layout, Register

__all__ = [
    "Aff", "Div", "Instruction", "Layout", "Mov", "Mul", "Program", "Register",
    "programs", "reference", "run",
]
