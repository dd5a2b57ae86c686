"""Machine-checked proofs of the construction, with sympy.

``python -m proofs`` runs every proof and prints a table (name, verdict,
seconds, statement); it exits non-zero if any fails. The proofs run the
library's own code: the lemmas behind the compiler's constants
(``lemmas``), each compiled layer on a symbolic hidden state with ideal
nonlinearities (``layers``), the programs on symbolic prompts against the
theorems (``theorems``), the bounds of the domain derived from the input box
(``domains``), and the paper's printed chains (``errata``).
``python -m proofs.walkthrough`` writes ``proofs/WALKTHROUGH.md``.
"""

# importing a module registers its proofs; this order is the table's
from . import lemmas  # noqa: F401  isort: skip
from . import layers  # noqa: F401  isort: skip
from . import theorems  # noqa: F401  isort: skip
from . import domains  # noqa: F401  isort: skip
from . import errata  # noqa: F401  isort: skip
from .registry import PROOFS, Proof, ProofFailure, main, run

__all__ = ["PROOFS", "Proof", "ProofFailure", "main", "run"]
