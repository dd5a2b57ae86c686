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

Importing ``construct`` imports none of them: each name below is imported
on first use (PEP 562), so that the command line starts its work, and its
handling of Ctrl-C, before the seconds that numpy, scipy and sympy take to
import.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (tens of milliseconds)

_WHERE = {  # name -> the subpackage that defines it
    **dict.fromkeys(["Bounds", "CertificateError", "CompiledNetwork", "DomainError", "FloatRangeError", "SizeError",
                     "compile", "predict"], "compiler"),
    **dict.fromkeys(["WeightsFileError", "load", "save"], "export"),
    **dict.fromkeys(["Aff", "Avg", "Div", "Instruction", "Mov", "Mul"], "instructions"),
    **dict.fromkeys(["Layout", "Program", "Register", "run"], "raw"),
    "Weights": "transformer",
}

__all__ = [
    "Aff", "Avg", "Bounds", "CertificateError", "CompiledNetwork", "Div", "DomainError", "FloatRangeError", "Instruction",
    "Layout", "Mov", "Mul", "Program", "Register", "SizeError", "Weights", "WeightsFileError", "compile", "load",
    "predict", "programs", "reference", "run", "save",
]


def __getattr__(name: str):
    """A name of ``__all__``, or a subpackage or module (``construct.tasks``), imported on first use."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    elif not name.startswith("_"):
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from . import programs, reference
    from .compiler import (Bounds, CertificateError, CompiledNetwork, DomainError, FloatRangeError, SizeError,
                           compile, predict)
    from .export import WeightsFileError, load, save
    from .instructions import Aff, Avg, Div, Instruction, Mov, Mul
    from .raw import Layout, Program, Register, run
    from .transformer import Weights
