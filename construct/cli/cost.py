"""What the mechanism certificate costs: a certified run's CPU time over the numpy pass's, ridge, SGD and GD.

    python -m construct.cli.cost                        # the table, written to construct/results/cost.json
    python -m construct.cli.cost --algo ridge --n 8     # one row, printed

Each (algorithm, n) runs in a fresh subprocess with one BLAS thread. d = 8;
tasks x ~ N(0, I), w ~ N(0, I), y = w^T x; ridge (RLS) with lam = 0.1, SGD
with alpha = 0.05 and lam = 0.1, gd with alpha = 0.02, lam = 0.1 and 20
steps; the domain calibrated on ``CALIBRATION`` tasks (margin 4). On one
fresh task, forward = the numpy pass (``forward.forward``, each layer on
its live parts), certified = the numpy pass with the mechanism
certificate's running error analysis and adjoint
(``Certifier.run``: every answer's bound); each is run once to warm its
caches (what they find in the weights alone), then both alternately,
``REPEATS`` times and more until the certified runs have taken ``SECONDS``
of CPU time, and each keeps its least CPU time (``time.process_time``):
the machine may be shared, and other work only ever adds time. "ratio" is
certified over forward; "runs" how many of each.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from . import child

D, LENGTHS, CALIBRATION = 8, (8, 32, 128), 32
PARAMETERS = {"ridge": {"lam": 0.1}, "sgd": {"alpha": 0.05, "lam": 0.1}, "gd": {"alpha": 0.02, "lam": 0.1, "steps": 20}}
REPEATS, SECONDS = 3, 5.0  # at least this many certified runs, and as many more as fill this much CPU time
TARGET = 10  # the factor docs/CERTIFICATE.md holds the ratio to
OUT = Path(__file__).resolve().parent.parent / "results" / "cost.json"


def measure(algo: str, n: int, d: int = D, repeats: int = REPEATS, seconds: float = SECONDS) -> dict:
    """One row, measured in this process."""
    from .. import Bounds, compile, programs
    from ..compiler.certificate import Certifier
    from ..raw.prompt import tokens
    from ..tasks import gaussian_tasks
    from ..transformer import forward

    program = programs.get(algo).program(d, n, **PARAMETERS[algo])
    net = compile(program, Bounds.calibrate(program, gaussian_tasks(d, n, CALIBRATION, seed=0), max_seconds=None),
                  max_seconds=None)
    prompt = tokens(*gaussian_tasks(d, n, 1, seed=1)[0])
    certifier = Certifier(net)
    forward.forward(net.weights, prompt)
    run = certifier.run(prompt)
    times = {"forward": [], "certified": []}
    while len(times["certified"]) < repeats or sum(times["certified"]) < seconds:
        for name, step in (("forward", lambda: forward.forward(net.weights, prompt)),
                           ("certified", lambda: certifier.run(prompt))):
            start = time.process_time()
            step()
            times[name].append(time.process_time() - start)
    forward_s, certified_s = min(times["forward"]), min(times["certified"])
    return {"algo": algo, "d": d, "n": n, "parameters_of_the_algorithm": PARAMETERS[algo],
            "layers": len(net.steps), "forward_s": forward_s, "certified_s": certified_s,
            "ratio": certified_s / forward_s, "runs": len(times["certified"]),
            "max_bound": float(np.nanmax(run.bounds))}


def table(rows: list[dict]) -> str:
    head = f"{'algo':<7}{'n':>5}{'layers':>8}{'forward s':>11}{'certified s':>13}{'ratio':>7}{'max bound':>11}"
    return "\n".join([head] + [f"{r['algo']:<7}{r['n']:>5}{r['layers']:>8}{r['forward_s']:>11.4f}"
                               f"{r['certified_s']:>13.4f}{r['ratio']:>7.1f}{r['max_bound']:>11.1e}" for r in rows])


def markdown(rows: list[dict]) -> str:
    """docs/CERTIFICATE.md's cost table: certified / forward CPU time per algorithm (rows) and n (columns)."""
    lengths = sorted({r["n"] for r in rows})
    cells = {(r["algo"], r["n"]): r for r in rows}
    lines = ["| program | " + " | ".join(f"n = {n}" for n in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for algo in dict.fromkeys(r["algo"] for r in rows):
        lines.append(f"| {algo} | " + " | ".join(
            f"{cells[algo, n]['ratio']:.1f} ({cells[algo, n]['certified_s']:.3g} s / "
            f"{cells[algo, n]['forward_s']:.2g} s)"
            if (algo, n) in cells else "" for n in lengths) + " |")
    return "\n".join(lines)


def over(rows: list[dict], factor: float = TARGET) -> str:
    """The rows whose ratio is above ``factor``, as docs/CERTIFICATE.md names them ("sgd at n = 8 and 32; gd at
    n = 128"), or "none"."""
    above = {}
    for r in rows:
        if r["ratio"] > factor:
            above.setdefault(r["algo"], []).append(str(r["n"]))
    return "; ".join(f"{algo} at n = " + (" and ".join(ns) if len(ns) < 3 else ", ".join(ns[:-1]) + " and " + ns[-1])
                     for algo, ns in above.items()) or "none"


def main(argv: list[str] | None = None) -> int:
    args = child.parser("construct.cli.cost", __doc__, PARAMETERS, LENGTHS, OUT).parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return 0
    rows = child.rows("construct.cli.cost", args, table)
    print(table(rows))
    out = args.out or (OUT if (args.algo, args.n) == (list(PARAMETERS), list(LENGTHS)) else None)
    if out is not None:
        out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
