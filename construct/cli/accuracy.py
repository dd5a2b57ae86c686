"""How accurate the compiled networks are, measured on a fixed grid and written to a results file.

    python -m construct.cli.accuracy                     # print the summary
    python -m construct.cli.accuracy --out FILE.json     # and write every number (docs/COMPILER.md's come from
                                                         # construct/results/accuracy.json, written so)

Grid: d in {1, 2, 4, 8}, n in {1, 4, 16}; one-pass SGD (alpha = 0.05,
lam = 0.1) and ridge (lam = 0.1 and 1). Tasks: x ~ N(0, I), w ~ N(0, I),
y = w^T x; each network's domain is calibrated on 64 such tasks (margin 4).
Two measurements, both as ``|got - exact| / (1 + |exact|)``:

* per layer: the compiled layer against the exact machine applied to the
  layer's own input state, on every entry of the register it writes, worst
  over ``LAYER_TASKS`` tasks per network; also the worst ratio of a layer's
  error to its predicted bound;
* end to end: the prediction at every prefix against the closed form
  (``construct.reference``), worst over ``TASKS`` tasks (float64, JAX batch)
  and ``FLOAT32_TASKS`` tasks (float32, numpy). Refused tasks are counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..compiler import Bounds, DomainError, compile
from .. import programs
from ..tasks import gaussian_tasks

DIMENSIONS, EXAMPLES, LAMS = (1, 2, 4, 8), (1, 4, 16), (0.1, 1.0)
ALPHA, SGD_LAM, CALIBRATION, TASKS, LAYER_TASKS, FLOAT32_TASKS = 0.05, 0.1, 64, 32, 2, 4


def _configs():
    for d in DIMENSIONS:
        for n in EXAMPLES:
            yield "sgd", d, n, SGD_LAM
            for lam in LAMS:
                yield "ridge", d, n, lam


def _program(algo: str, d: int, n: int, lam: float):
    """The program and its closed form (the registry's)."""
    algorithm = programs.get(algo)
    taken = {p.name for p in algorithm.parameters}
    program = algorithm.program(d, n, **{k: v for k, v in {"alpha": ALPHA, "lam": lam}.items() if k in taken})
    return program, lambda t: program.algorithm.closed(program, *t)


def _relative(got, exact) -> float:
    return float(np.max(np.abs(got - exact) / (1 + np.abs(exact))))


def layer_errors(net, task) -> dict[str, dict]:
    """Per instruction kind: worst relative error of a layer against the machine on its own input, and the
    worst ratio of absolute error to the layer's predicted bound."""
    worst: dict[str, dict] = {}
    for c in net.check_layers(*task):
        entry = worst.setdefault(c.instruction.kind, {"relative": 0.0, "of_bound": 0.0})
        entry["relative"] = max(entry["relative"], c.relative)
        entry["of_bound"] = max(entry["of_bound"], c.error / c.predicted)
    return worst


def measure(algo: str, d: int, n: int, lam: float) -> dict:
    program, closed = _program(algo, d, n, lam)
    bounds = Bounds.calibrate(program, gaussian_tasks(d, n, CALIBRATION, seed=0))
    net = compile(program, bounds)
    tasks = gaussian_tasks(d, n, TASKS, seed=1)
    layers: dict[str, dict] = {}
    for task in tasks[:LAYER_TASKS]:
        try:
            found = layer_errors(net, task)
        except DomainError:
            continue
        for kind, entry in found.items():
            mine = layers.setdefault(kind, {"relative": 0.0, "of_bound": 0.0})
            mine.update({k: max(mine[k], v) for k, v in entry.items()})
    X, y, q = (np.stack(parts) for parts in zip(*tasks))
    preds = net.predict_batch(X, y, q, outside="nan", backend="jax", tolerance=None)
    inside = ~np.isnan(preds).all(axis=1)
    f64 = max((_relative(p, closed(t)) for p, t, ok in zip(preds, tasks, inside) if ok), default=float("nan"))
    f32_net = compile(program, bounds, dtype=np.float32)
    f32 = []
    for task in tasks[:FLOAT32_TASKS]:
        try:
            f32.append(_relative(f32_net.predict(*task, tolerance=None), closed(task)))
        except DomainError:
            pass
    return {"algo": algo, "d": d, "n": n, "lam": lam, "layers": layers, "float64": f64,
            "float32": max(f32, default=float("nan")), "refused": int((~inside).sum())}


def summarise(rows: list[dict]) -> dict:
    """Worst per-layer error by instruction kind, and worst end-to-end error by algorithm and dtype."""
    kinds: dict[str, dict] = {}
    for row in rows:
        for kind, entry in row["layers"].items():
            mine = kinds.setdefault(kind, {"relative": 0.0, "of_bound": 0.0})
            mine.update({k: max(mine[k], v) for k, v in entry.items()})
    end_to_end = {algo: {dtype: max(r[dtype] for r in rows if r["algo"] == algo) for dtype in ("float64", "float32")}
                  for algo in ("sgd", "ridge")}
    return {"layers": kinds, "end_to_end": end_to_end, "refused": sum(r["refused"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.cli.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write every number to this JSON file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    for algo, d, n, lam in _configs():
        print(f"{algo} d={d} n={n} lam={lam}", file=sys.stderr, flush=True)
        rows.append(measure(algo, d, n, lam))
    result = {"command": "python -m construct.cli.accuracy --out construct/results/accuracy.json",
              "grid": {"d": list(DIMENSIONS), "n": list(EXAMPLES), "ridge_lam": list(LAMS), "sgd": {"alpha": ALPHA,
                       "lam": SGD_LAM}, "calibration_tasks": CALIBRATION, "tasks": TASKS, "layer_tasks": LAYER_TASKS,
                       "float32_tasks": FLOAT32_TASKS},
              "summary": summarise(rows), "configs": rows, "seconds": round(time.perf_counter() - start, 1)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
