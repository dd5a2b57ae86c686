"""icl-construct: transformers built by hand that learn in context, and their verification.

The pipeline, one subpackage per stage, imports flowing down this list:

* ``raw``: registers and layouts, the RAW instructions, the prompt
  encoding, the exact machine, the programs (``construct.programs``);
* ``transformer``: a generic transformer's weights and its forward passes
  (numpy, JAX), which know nothing about programs;
* ``compiler``: the domain, the scale constants, the schedule of
  instructions into layers (fused, or one per instruction), the assembly
  into weights with repeated layers stored once, the compiled network and
  its per-answer certificate;
* ``export``: one file with the weights and a manifest, loaded back bit for bit;
* ``cli``: the command line ``icl-construct``, its demo and benchmark;
* ``runtimes``: networks compiled for GPT-2 blocks (``compile(...,
  architecture="gpt2")``) in Hugging Face transformers and TransformerLens,
  as ``construct.hf`` and ``construct.tl`` (the extra ``runtimes``; not
  imported by ``import construct``).

Beside them: ``reference`` (closed-form solvers, the ground truth),
``tasks`` (random regression tasks), ``plots`` (pictures, matplotlib
optional) and ``trained`` (trained transformers compared with all of it).
"""

from . import reference
from .compiler import Bounds, CompiledNetwork, DomainError, FloatRangeError, SizeError, compile
from .export import WeightsFileError, load, save
from .raw import Aff, Div, Instruction, Layout, Mov, Mul, Program, Register, programs, run
from .transformer import Weights

__all__ = [
    "Aff", "Bounds", "CompiledNetwork", "Div", "DomainError", "FloatRangeError", "Instruction", "Layout", "Mov", "Mul", "Program",
    "Register", "SizeError", "Weights", "WeightsFileError", "compile", "load", "programs", "reference", "run", "save",
]
