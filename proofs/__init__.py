"""Machine-checked proofs of the construction, with sympy.

``python -m proofs`` runs every proof and prints a table (name, status,
seconds, statement; the status from ``status``); it exits non-zero if any
fails. The proofs run the library's own code: the lemmas behind the
compiler's constants (``lemmas``), each compiled layer at its finite
constants, on its float64 weights read as exact rationals (``layers``), the
programs on symbolic prompts against the theorems, and the chains on
registers of any size (``theorems``, ``lifted``, ``algebra``), the bounds of
the domain derived from the input box (``domains``), the paper's printed
chains (``errata``), and the inequalities the per-answer certificate uses
(``certificate``).

Beside them, the teaching material and what it quotes:
``python -m proofs.walkthrough`` writes ``proofs/WALKTHROUGH.md``;
``python -m proofs.notebook`` renders ``examples/theorem1.ipynb`` as
``docs/THEOREM1.md``; ``python -m proofs.kappa`` measures the rounding
model's constant (``proofs/kappa.json``, a measurement, not a proof);
``paper_layout`` derives the paper's rows of its two chains.
"""

# importing a module registers its proofs; this order is the table's
from . import lemmas  # noqa: F401  isort: skip
from . import layers  # noqa: F401  isort: skip
from . import theorems  # noqa: F401  isort: skip
from . import domains  # noqa: F401  isort: skip
from . import errata  # noqa: F401  isort: skip
from . import certificate  # noqa: F401  isort: skip
from .registry import PROOFS, Proof, ProofFailure, main, run

__all__ = ["PROOFS", "Proof", "ProofFailure", "main", "run"]
