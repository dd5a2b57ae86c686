"""What every subcommand shares: its parser's rules, the options' types and names, output paths, and the run loop
that turns every outcome into an exit code and at most one line on stderr.

A subcommand is a module with a ``COMMAND`` (``Command``): its name, its help (written for a user: what it
does, examples, where the results go) and two functions, one that adds its options and one that runs it.
``commands`` lists them under ``icl-construct``; ``parser`` builds one alone (``python -m
construct.cli.benchmark``). Options that several commands take are added here (``sizes``, ``seed``,
``json_output``, ``limits``, and ``--debug`` in every parser), and the network's (``--algo`` and its flags,
``--margin``, ``--calibrate``) in ``network``, so that each has one name everywhere.

Exit codes: 0 done; 1 refused (``Refused``, the library's ``DomainError``, float64 overflow); 2 bad input
(``UsageError``, a data file, a size above the limits, an output path, a full disk, no matplotlib, out of
memory); 3 an internal error, a bug; 130 interrupted; 141 the output pipe was closed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from .. import plots
from ..compiler import DomainError, SizeError
from ..programs.parts import MAX_PARAMETER
from . import budget, interrupts

EXIT_CODES = ("Exit codes: 0 done; 1 refused (outside the network's domain, or float64 overflows on these numbers); "
              "2 bad input (options, data, paths, a full disk, a run estimated above --max-memory/--max-seconds, or "
              "out of memory); 3 internal error (a bug: rerun with --debug and report it); 130 interrupted; 141 "
              "output pipe closed.")
NOT_OFFERED = {"pgf": "it needs a LaTeX installation"}  # picture formats matplotlib lists but may not write


class UsageError(Exception):
    """Bad arguments, a bad data file, or an output path that cannot be written: exit code 2."""


class Refused(Exception):
    """float64 overflows in the exact machine or the compiler on these numbers: exit code 1."""


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, its help, the options it adds to its parser and what it runs.

    ``summary`` is its line in ``icl-construct --help``; ``description`` says what it does, ``results`` where
    its results go, ``examples`` are command lines as a user types them (a test parses each), and ``details``
    are further paragraphs (a file format, the algorithms); ``exit_codes`` what each exit code means for it.
    Paragraphs are separated by blank lines; a paragraph whose lines are indented is printed as written.
    """

    name: str
    summary: str
    description: str
    results: str
    examples: tuple[str, ...]
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    details: Callable[[], str] = lambda: ""  # called when the parser is built (it may read the registry)
    exit_codes: str = EXIT_CODES

    def epilog(self) -> str:
        examples = "\n".join(f"  {line}" for line in self.examples)
        parts = [f"Example{'s' if len(self.examples) > 1 else ''}:\n{examples}", self.results, self.details(),
                 self.exit_codes]
        return "\n\n".join(part for part in parts if part)


# -- the parser -----------------------------------------------------------------------------------


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, keeping paragraphs apart and indented lines (examples, lists) as written."""

    def _fill_text(self, text, width, indent):
        out = []
        for paragraph in text.strip("\n").split("\n\n"):
            lines = paragraph.split("\n")
            if any(line.startswith(" ") for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                         subsequent_indent=indent, break_on_hyphens=False))
        return "\n\n".join(out)


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (and a pointer to --help), no abbreviated options, no option twice."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --d would silently mean --data in predict
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", None, _Store)
        self.register("action", "store", _Store)
        self.register("action", "store_true", _Flag)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _first_time(parser, namespace, dest: str, option_string: str) -> None:
    given = namespace.__dict__.setdefault("_given", set())
    if dest in given:
        parser.error(f"{option_string} is given twice; give it once")
    given.add(dest)


class _Store(argparse.Action):
    """argparse's store, refusing an option given twice (argparse would keep the last one silently)."""

    def __call__(self, parser, namespace, values, option_string=None):
        _first_time(parser, namespace, self.dest, option_string)
        setattr(namespace, self.dest, values)


class _Flag(argparse.Action):
    """argparse's store_true, refusing a flag given twice."""

    def __init__(self, option_strings, dest, default=False, required=False, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, required=required, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        _first_time(parser, namespace, self.dest, option_string)
        setattr(namespace, self.dest, True)


def add_command(subparsers, command: Command) -> None:
    """``command`` as a subcommand of ``icl-construct``."""
    _fill(subparsers.add_parser(command.name, help=command.summary, description=command.description,
                                epilog=command.epilog()), command)


def parser(command: Command, prog: str) -> Parser:
    """``command`` alone, as the program ``prog``."""
    return _fill(Parser(prog=prog, description=command.description, epilog=command.epilog()), command)


def _fill(parser: argparse.ArgumentParser, command: Command) -> argparse.ArgumentParser:
    command.arguments(parser)
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, print the full Python traceback too")
    parser.set_defaults(run=command.run, prog=parser.prog)
    return parser


# -- options: types, and those several commands take ----------------------------------------------


def number(low: float | None = None, *, integer: bool = False):
    """An option type: a finite number (or an integer) of magnitude at most 1e150, and at least ``low``."""

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if integer else 'a number'}") from None
        if not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if abs(value) > MAX_PARAMETER:
            raise argparse.ArgumentTypeError(f"{text} is larger than {MAX_PARAMETER:g} in magnitude, where "
                                             "float64 overflows in the programs' products")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if integer else 'a number'} >= {low:g}, got {text}")
        return value

    return parse


def path(text: str) -> Path:
    """An option type: a path, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file name")
    return Path(text)


def _limit(parse):
    def typed(text: str) -> float:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return typed


def sizes(parser, d, n, several: bool = False) -> None:
    """``-d/--d`` and ``-n/--n`` with their defaults; ``several``: each takes a list (a grid of sizes)."""
    count = number(1, integer=True)
    nargs = "+" if several else None
    shown = (lambda v: " ".join(map(str, v))) if several else str
    parser.add_argument("-d", "--d", type=count, nargs=nargs, default=d,
                        help=f"input dimension{'s' if several else ''} (default {shown(d)})")
    parser.add_argument("-n", "--n", type=count, nargs=nargs, default=n,
                        help=f"number{'s' if several else ''} of examples (default {shown(n)})")


def seed(parser, what: str, note: str = "") -> None:
    parser.add_argument("--seed", type=number(0, integer=True), default=0,
                        help=f"seed of {what} (default 0){'; ' + note if note else ''}")


def json_output(parser, what: str = "the numbers") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON instead of text")


def limits(parser, seconds: float = budget.DEFAULT_MAX_SECONDS) -> None:
    """``--max-memory`` and ``--max-seconds``: the run is estimated first and refused above them (``budget``)."""
    parser.add_argument("--max-memory", type=_limit(budget.parse_bytes), default=float(budget.DEFAULT_MAX_BYTES),
                        metavar="SIZE", help="refuse a run estimated to need more memory (default 4GiB; e.g. 8GiB, "
                        "512MiB, 16GB, or a bare number of GiB)")
    parser.add_argument("--max-seconds", type=_limit(budget.parse_seconds), default=seconds, metavar="TIME",
                        help=f"refuse a run estimated to take longer (default {seconds:g}; e.g. 600, 10min, 2h); "
                        f"{budget.RATES_TEXT}")


def given_limits(args) -> budget.Limits:
    return budget.Limits(args.max_memory, args.max_seconds)


# -- what a command prints and writes -------------------------------------------------------------


def progress(args, total: int, desc: str) -> tqdm:
    """A progress bar on stderr, shown only when stderr is a terminal and --json is off."""
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False,
                disable=args.json or not sys.stderr.isatty())


def print_json(value) -> None:
    print(json.dumps(value, indent=1))


def output(path: Path, option: str) -> Path:
    """Refuse, before any work, a file that cannot be written."""
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a directory; name a file in it")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{option}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write into {parent}: permission denied")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option}: {path} exists and is read-only")
    return path


def picture(path: Path, option: str) -> Path:
    """A picture path with a suffix matplotlib writes (needs matplotlib: PlotsUnavailable otherwise)."""
    formats = sorted(set(plots.figure(1, 1).canvas.get_supported_filetypes()) - set(NOT_OFFERED))
    suffix = path.suffix[1:].lower()
    if suffix not in formats:
        why = f": {NOT_OFFERED[suffix]}" if suffix in NOT_OFFERED else ""
        raise UsageError(f"{option}: {path} has {f'the suffix .{suffix}' if suffix else 'no suffix'}, which is not "
                         f"a picture format offered here{why}; use one of {', '.join('.' + f for f in formats)}")
    return output(path, option)


def _os_errno(err: BaseException) -> int | None:
    """The system error behind a failed write: an OSError's errno, or the "(os error N)" of a writer in Rust
    (safetensors, which --format hf uses, raises its own SafetensorError on a full disk)."""
    if isinstance(err, OSError):
        return err.errno
    found = re.search(r"\(os error (\d+)\)", str(err))
    return int(found.group(1)) if found else None


@contextmanager
def writing(path: Path, option: str):
    """A write that fails for the system's reasons (a full disk, permissions) is bad output, exit 2, naming the
    file (a full disk's OSError names none)."""
    try:
        yield
    except Exception as err:
        code = _os_errno(err)
        if code is None and not isinstance(err, OSError):
            raise
        raise UsageError(f"{option}: cannot write {path}: {os.strerror(code) if code else err}") from None


# -- the run loop ---------------------------------------------------------------------------------


def main(build: Callable[[], argparse.ArgumentParser], argv: list[str] | None) -> int:
    """Parse ``argv`` with the parser ``build`` gives and run the command it names: the exit code, every error
    as one line on stderr (with the traceback first under --debug), Ctrl-C at any moment as exit 130."""
    with interrupts.handled(interrupts.recorded):
        return _main(build, argv)


def _main(build, argv) -> int:
    prog, args = "icl-construct", None
    try:  # parsing too: Ctrl-C at any moment is exit 130 without a traceback
        parser = build()
        prog = parser.prog
        args, rest = parser.parse_known_args(argv)
        prog = args.prog
        if rest:
            parser.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(rest)} (see {prog} --help)\n")
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): stop quietly
        _discard_stdout()
        return 141
    except Exception as err:
        if interrupts.received():  # the KeyboardInterrupt came out as another error
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        if getattr(args, "debug", False):
            traceback.print_exc()
        code = _exit_code(err)
        message = _message(err, code, args)
        print(f"{prog}: {'refused' if code == 1 else 'error'}: {' '.join(message.split())}", file=sys.stderr)
        return code


def _exit_code(err: Exception) -> int:
    if isinstance(err, (DomainError, Refused, FloatingPointError)):
        return 1
    if isinstance(err, (UsageError, SizeError, plots.PlotsUnavailable, OSError, MemoryError)):
        return 2
    return 3


def _message(err: Exception, code: int, args) -> str:
    if isinstance(err, MemoryError):  # the estimate passed --max-memory, but the machine has less free
        limit = getattr(args, "max_memory", None)
        return (f"ran out of memory ({err or 'MemoryError'}): this machine has less free memory than the run needs"
                + (f", which was estimated within --max-memory {budget.gib(limit)}" if limit else "")
                + "; give --max-memory the memory that is free, or ask for a smaller n or d")
    if code == 3:
        return (f"internal error ({type(err).__name__}: {err}); this is a bug in icl-construct: rerun with --debug "
                "and open an issue with the command and its output")
    return str(err)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not fail on the closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass
