"""``python -m construct [options]`` runs the demo, the same as ``icl-construct demo [options]``."""

import sys

from .cli import main

sys.exit(main(["demo", *sys.argv[1:]]))
