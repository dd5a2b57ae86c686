"""``python -m construct [options]`` runs the demo, the same as ``icl-construct demo [options]``."""

import sys

from .cli.commands import main

sys.exit(main(["demo", *sys.argv[1:]]))
