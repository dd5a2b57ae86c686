"""The exact level: registers and layouts, the RAW instructions, the prompt encoding, the machine, the programs.

Nothing here knows about transformers. The compiler (``construct.compiler``)
turns a ``Program`` into weights; the machine (``machine.run``) is the
ground truth every compiled layer is checked against.
"""

from . import programs
from .instructions import Aff, Div, Instruction, Mov, Mul
from .machine import run
from .program import Program
from .registers import Layout, Register

__all__ = ["Aff", "Div", "Instruction", "Layout", "Mov", "Mul", "Program", "Register", "programs", "run"]
