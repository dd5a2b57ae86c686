"""``icl-construct``: the subcommands, one module each, under one parser.

Adding a subcommand is a module with a ``COMMAND`` (``shared.Command``) and a line in ``COMMANDS``.
"""

from __future__ import annotations

from . import benchmark, demo, export, predict, proofs, shared, trace

COMMANDS = (demo.COMMAND, predict.COMMAND, export.COMMAND, trace.COMMAND, benchmark.COMMAND, proofs.COMMAND)

DESCRIPTION = """
Transformers whose weights are built by hand to carry out a learning
algorithm (a step of SGD, ridge regression by Sherman-Morrison updates) on
the examples in their prompt, with a proven error bound on every answer: run
them, look inside them, and take their weights elsewhere."""


def parser() -> shared.Parser:
    top = shared.Parser(prog="icl-construct", description=DESCRIPTION,
                        epilog=f"Run icl-construct COMMAND --help for a command's options, an example and where its "
                        f"results go.\n\n{shared.EXIT_CODES}")
    top.add_argument("--debug", action="store_true", help="on an error, print the full Python traceback too")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=shared.Parser)
    for command in COMMANDS:
        shared.add_command(sub, command)
    return top


def main(argv: list[str] | None = None) -> int:
    return shared.main(parser, argv)
