"""What Ctrl-C does: while the command line starts, it ends the process at once; once a command runs, it is an
interrupt the command reports.

While the command line imports numpy, scipy and sympy (seconds) there is nothing to clean up, and a
KeyboardInterrupt raised inside numpy's import comes out as an ImportError: so ``exit_at_once`` ends the
process with exit code 130 and one line. Once a command runs, ``recorded`` raises KeyboardInterrupt as
usual, so that files being written are cleaned up, and records it, so that a library that turns the
KeyboardInterrupt into an error of its own cannot hide it (``received``). This module imports nothing heavy:
it is installed before anything else is imported.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

_received = False  # a SIGINT arrived while ``recorded`` was installed


def exit_at_once(signum, frame) -> None:
    # os.write, not sys.stderr: the signal may arrive while the main thread is inside sys.stderr's own write, and
    # a buffered writer re-entered from a handler raises RuntimeError instead of writing
    os.write(2, b"icl-construct: interrupted\n")
    os._exit(130)


def recorded(signum, frame) -> None:
    global _received
    _received = True
    raise KeyboardInterrupt


def received() -> bool:
    """Whether a SIGINT arrived since ``handled(recorded)`` was entered."""
    return _received


@contextmanager
def handled(handler):
    """SIGINT goes to ``handler`` inside the block; the handler it replaces is put back after it."""
    global _received
    _received = False
    previous = _install(handler)
    try:
        yield
    finally:
        _install(previous)


def _install(handler):
    """Install ``handler`` for SIGINT and return the one it replaces (None, and nothing done, outside the main
    thread, where Python does not deliver signals)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None
