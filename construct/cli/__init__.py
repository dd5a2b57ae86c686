"""The command line ``icl-construct`` (``commands``), with the demo and the benchmark it runs."""

import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    """``icl-construct ARGS``; imported on call, so that ``python -m construct.cli.benchmark`` (and the other
    modules run as scripts) are not imported twice.

    Ctrl-C while ``commands`` imports (numpy, scipy, sympy: seconds) ends the process at once with exit 130 and
    one line: there is nothing to clean up yet, and a KeyboardInterrupt raised inside numpy's import comes out
    as an ImportError. ``commands.main`` handles it from then on.
    """
    previous = _set_interrupt_handler(_exit_interrupted)
    try:
        try:
            from .commands import main as run
        except MemoryError as err:  # commands.main reports one later; this one is numpy's or scipy's import
            print(f"icl-construct: error: ran out of memory while starting ({err or 'MemoryError'}); free some "
                  "memory and run it again", file=sys.stderr)
            return 2
        return run(argv)
    finally:
        _set_interrupt_handler(previous)


def _exit_interrupted(signum, frame) -> None:
    sys.stderr.write("icl-construct: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def _set_interrupt_handler(handler):
    """Install ``handler`` for SIGINT and return the one it replaces (None, and nothing done, outside the main
    thread, where Python does not deliver signals)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None


__all__ = ["main"]
