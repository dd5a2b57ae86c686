"""icl-construct: transformers built by hand that learn in context, and their verification.

The pieces, in pipeline order: registers and layouts (``registers``), the RAW
instructions (``instructions``), the prompt encoding (``prompt``), the exact
machine (``machine``), programs (``program``, ``programs``), the closed-form
references they are checked against (``reference``), and the compiler
(``compiler``, with ``blocks``, ``scales`` and ``bounds``) that turns a
program into the weights of a transformer (``network``) run by a generic
forward pass (``forward``, ``forward_jax``). Compiled networks are saved to
and loaded from one file by ``export`` (``save``, ``load``); ``cli`` is the
command line ``icl-construct``, ``plots`` draws them (matplotlib, optional).
"""

from . import programs, reference
from .bounds import Bounds, DomainError
from .compiler import CompiledNetwork, compile
from .export import WeightsFileError, load, save
from .instructions import Aff, Div, Instruction, Mov, Mul
from .machine import run
from .network import Weights
from .program import Program
from .registers import Layout, Register

__all__ = [
    "Aff", "Bounds", "CompiledNetwork", "Div", "DomainError", "Instruction", "Layout", "Mov", "Mul", "Program",
    "Register", "Weights", "WeightsFileError", "compile", "load", "programs", "reference", "run", "save",
]
