"""The command line ``icl-construct``: one module per subcommand, listed in ``commands``.

``shared`` holds what every subcommand shares (its parser's rules, the options' types, output paths, errors
and exit codes, the run loop), ``network`` the network that a command's options describe, ``budget`` the
limits, ``interrupts`` what Ctrl-C does. ``certify``, ``accuracy`` and ``benchmark`` also run as
``python -m construct.cli.NAME`` and write the results files docs/ quotes.
"""

import sys

from .interrupts import exit_at_once, handled


def main(argv: list[str] | None = None) -> int:
    """``icl-construct ARGS``; the subcommands are imported on call, so that ``python -m construct.cli.benchmark``
    (and the other modules run as scripts) are not imported twice.

    Ctrl-C while they import (numpy, scipy, sympy: seconds) ends the process at once with exit 130 and one
    line (``interrupts``); the command handles it from then on.
    """
    with handled(exit_at_once):
        try:
            from .commands import main as run
        except MemoryError as err:  # commands.main reports one later; this one is numpy's or scipy's import
            print(f"icl-construct: error: ran out of memory while starting ({err or 'MemoryError'}); free some "
                  "memory and run it again", file=sys.stderr)
            return 2
        return run(argv)


__all__ = ["main"]
