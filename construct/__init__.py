"""icl-construct: transformers built by hand that learn in context, and their verification.

The pipeline, one subpackage per stage, imports flowing down this list:

* ``raw``: registers and layouts, the prompt encoding, the exact machine,
  programs and the language of their domains;
* ``transformer``: a generic transformer's weights and its forward passes
  (numpy, JAX, and 50-digit mpmath), which know nothing about programs;
* ``mechanisms``: what one real layer can do, as logical pieces (plans of
  heads and GeLU units), and the scale constant of each approximation with
  its error bound;
* ``instructions``: the RAW instructions, one module per kind, each with
  everything about it (semantics, export, compile rule, certificate rules);
* ``programs``: the algorithms, one module each (program, domain theory,
  registry entry: parameters, closed form, the paper's sizes);
* ``compiler``: ``compile``, a pipeline of named stages (domain, schedule,
  layout, constants, plans, assembly, target), the compiled network and its
  per-answer certificate;
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

from . import programs, reference
from .compiler import Bounds, CompiledNetwork, DomainError, SizeError, compile
from .export import WeightsFileError, load, save
from .instructions import Aff, Div, Instruction, Mov, Mul
from .raw import Layout, Program, Register, run
from .transformer import Weights

__all__ = [
    "Aff", "Bounds", "CompiledNetwork", "Div", "DomainError", "Instruction", "Layout", "Mov", "Mul", "Program",
    "Register", "SizeError", "Weights", "WeightsFileError", "compile", "load", "programs", "reference", "run", "save",
]
