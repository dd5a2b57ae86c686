"""``icl-construct proofs``: the machine-checked proofs, ``python -m proofs`` with the same options.

The proofs are the repository's top-level package ``proofs`` (not installed with the library); its runner,
``proofs.main(argv)``, takes proof names, ``--list`` and ``--json``, and this command offers exactly those
(a test holds them equal to ``python -m proofs --help``'s). Unknown names are refused here, in one line.
"""

from __future__ import annotations

import importlib

from . import shared
from .shared import UsageError


def _proofs():
    """The top-level package ``proofs`` (this module's name is the same; an absolute import would be too)."""
    try:
        package = importlib.import_module("proofs")
    except ModuleNotFoundError as err:
        if err.name != "proofs":
            raise
        raise UsageError("the proofs are not installed: run from a clone of the repository "
                         "(they are the top-level package proofs/)") from None
    if not callable(getattr(package, "main", None)) or not hasattr(package, "PROOFS"):
        raise UsageError("the package proofs has no main(argv) and PROOFS; it is not the proofs of this project")
    return package


def _run(args) -> int:
    package = _proofs()
    known = {p.name for p in package.PROOFS}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        raise UsageError(f"no proof named {', '.join(unknown)} (icl-construct proofs --list lists them)")
    argv = [*args.names, *(["--list"] if args.list else []), *(["--json"] if args.json else [])]
    return int(package.main(argv) or 0)


def _arguments(parser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="run only these proofs (default: all)")
    parser.add_argument("--list", action="store_true", help="list the proofs (or the NAMEs given) and exit")
    shared.json_output(parser, "the results")


COMMAND = shared.Command(
    name="proofs", summary="run the machine-checked proofs of the construction (sympy)",
    description="""
Run the machine-checked proofs of the construction with sympy, the same as
python -m proofs: the lemmas behind the compiler's constants, every compiled
layer at its finite constants on its float64 weights read as exact
rationals, the programs on symbolic prompts against the paper's theorems,
the domain's bounds derived from the input box, the paper's printed chains,
and the inequalities of the per-answer certificate. The proofs live in the
repository (its top-level package proofs/): run this from a clone.""",
    results="""
One line per proof goes to stdout: its name, proved or FAILED, the seconds it
took and its statement; then a count on stderr (--json: the results as
JSON).""",
    exit_codes="Exit codes: 0 every proof holds; 1 a proof failed; 2 bad input (an unknown name, or no proofs "
               "installed); 3 internal error (a bug: rerun with --debug and report it); 130 interrupted; 141 output "
               "pipe closed.",
    examples=("icl-construct proofs", "icl-construct proofs --list",
              "icl-construct proofs theorem1_sgd_step residual_certificate --json"),
    arguments=_arguments, run=_run)
