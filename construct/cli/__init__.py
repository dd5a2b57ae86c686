"""The command line ``icl-construct`` (``commands``), with the demo and the benchmark it runs."""

from .commands import main

__all__ = ["main"]
