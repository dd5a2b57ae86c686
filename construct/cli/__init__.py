"""The command line ``icl-construct`` (``commands``), with the demo and the benchmark it runs."""


def main(argv: list[str] | None = None) -> int:
    """``icl-construct ARGS``; imported on call, so that ``python -m construct.cli.benchmark`` (and the other
    modules run as scripts) are not imported twice."""
    from .commands import main as run

    return run(argv)


__all__ = ["main"]
