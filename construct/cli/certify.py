"""Are the certificates sound, and how tight? Thousands of tasks, each answer against its exact value.

    python -m construct.cli.certify                                  # 10,000 tasks (about 20 minutes)
    python -m construct.cli.certify --tasks 200 --out FILE.json      # a quick run
    python -m construct.cli.certify --out construct/results/certificate.json   # what docs/CERTIFICATE.md quotes

Every answer of every task is compared with the algorithm's exact answer
(``construct.exact``, 50 digits): a *violation* is an error above its
certified bound (the claim is that there are none). The *ratio* is
bound / error for answers with a nonzero error. Tasks come in families:

* ``gaussian``: x ~ N(0, s^2 I), w ~ N(0, I), y = w^T x, with the scale s
  from 1e-3 to 1e3 and ridge's lam from 1e-6 to 10; SGD's step is
  ``0.5 / (d s^2)`` so that it stays stable at every scale;
* ``near-singular`` (rows nearly collinear), ``repeated`` (one row n
  times), ``few`` (n < d), ``zeros`` (some rows and the query 0);
* the paper's one-example chains.

Each network is compiled for a domain from its own family and scale
(``Bounds.calibrate`` on 64 tasks, margin 4); a task outside it is
*refused* (DomainError), which is sound too and is counted. Answers are
certified with ``tolerance=None`` (nothing refused for its bound), and the
run counts how many the default tolerance (1e-6) would refuse.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .. import exact
from ..compiler import Bounds, DomainError, compile
from .. import programs

DIMENSIONS, EXAMPLES = (1, 2, 3, 4, 6, 8), (1, 2, 4, 8, 16)
SCALES, LAMS = (1e-3, 1e-1, 1.0, 10.0, 1e3), (1e-6, 1e-3, 0.1, 1.0, 10.0)
FAMILIES = ("gaussian", "gaussian", "gaussian", "near-singular", "repeated", "few", "zeros")
TASKS_PER_NETWORK, CALIBRATION, TOLERANCE = 25, 64, 1e-6


def _draw(family: str, d: int, n: int, s: float, rng: np.random.Generator):
    """One task of a family: (X, y, x_query)."""
    X = rng.normal(size=(n, d)) * s
    if family == "near-singular" and d > 1:
        base = rng.normal(size=d) * s
        X = np.outer(rng.normal(size=n), base) + 1e-7 * s * rng.normal(size=(n, d))
    elif family == "repeated":
        X = np.tile(X[:1], (n, 1))
    elif family == "zeros":
        X[rng.random(n) < 0.4] = 0.0
    w = rng.normal(size=d)
    q = np.zeros(d) if family == "zeros" and rng.random() < 0.5 else rng.normal(size=d) * s
    return X, X @ w, q


def _configs(count: int, rng: np.random.Generator):
    """Network configurations (program, family, scale), small sizes more often (they are cheaper)."""
    configs = []
    while len(configs) * TASKS_PER_NETWORK < count:
        d = int(rng.choice(DIMENSIONS, p=[0.25, 0.25, 0.15, 0.15, 0.1, 0.1]))
        family = str(rng.choice(FAMILIES))
        if family == "few":
            d = max(d, 2)
            n = int(rng.integers(1, d))
        else:
            n = int(rng.choice(EXAMPLES, p=[0.2, 0.25, 0.25, 0.2, 0.1]))
        s = float(rng.choice(SCALES))
        kind = rng.choice(["sgd", "ridge", "ridge", "chain"])
        if kind == "sgd":
            program = programs.sgd(d, n, 0.5 / (d * s * s), float(rng.choice([0.0, 0.1])), rng.normal(size=d))
        elif kind == "ridge":
            program = programs.ridge(d, n, float(rng.choice(LAMS)))
        elif rng.random() < 0.5:
            program = programs.sgd_step(d, 0.5 / (d * s * s), 0.1, rng.normal(size=d))
        else:
            program = programs.sherman_morrison_step(d, float(rng.choice(LAMS)))
        configs.append((program, family, s))
    return configs


def run_config(program, family: str, s: float, tasks: int, rng: np.random.Generator) -> dict:
    d, n = program.d, program.n
    calibration = [_draw(family, d, n, s, rng) for _ in range(CALIBRATION)]
    net = compile(program, Bounds.calibrate(program, calibration))
    rows = {"program": program.name, "d": d, "n": n, "params": {k: np.asarray(v).tolist() for k, v in
                                                                 program.params.items()},
            "family": family, "scale": s, "tasks": 0, "refused": 0, "answers": 0, "violations": 0,
            "above_tolerance": 0, "unbounded": 0, "ratios": [], "worst_excess": 0.0}
    for _ in range(tasks):
        task = _draw(family, d, n, s, rng)
        rows["tasks"] += 1
        try:
            preds, bounds = net.predict(*task, tolerance=None, return_bound=True)
        except DomainError:
            rows["refused"] += 1
            continue
        errors = exact.errors(program, *task, preds)
        seen = ~np.isnan(errors)
        e, b = errors[seen], bounds[seen]
        rows["answers"] += int(seen.sum())
        rows["violations"] += int((e > b).sum())
        rows["worst_excess"] = max(rows["worst_excess"], float(np.max(e / np.where(b > 0, b, np.inf))))
        rows["above_tolerance"] += int((b > TOLERANCE * (1 + np.abs(preds[seen]))).sum())
        rows["unbounded"] += int((~np.isfinite(b)).sum())
        measured = (e > 0) & np.isfinite(b)
        rows["ratios"] += (b[measured] / e[measured]).tolist()
    return rows


def summarise(configs: list[dict]) -> dict:
    ratios = np.array([r for c in configs for r in c["ratios"]])
    pct = {f"p{q}": float(np.percentile(ratios, q)) for q in (1, 10, 25, 50, 75, 90, 99)} if ratios.size else {}
    by = {}
    for key in ("program", "family"):
        for c in configs:
            entry = by.setdefault(key, {}).setdefault(c[key], {"answers": 0, "ratios": []})
            entry["answers"] += c["answers"]
            entry["ratios"] += c["ratios"]
    groups = {key: {name: {"answers": v["answers"],
                           "median_ratio": float(np.median(v["ratios"])) if v["ratios"] else None}
                    for name, v in table.items()} for key, table in by.items()}
    return {
        "tasks": sum(c["tasks"] for c in configs), "answers": sum(c["answers"] for c in configs),
        "violations": sum(c["violations"] for c in configs),
        "worst_error_over_bound": max(c["worst_excess"] for c in configs),
        "refused_outside_domain": sum(c["refused"] for c in configs),
        "above_default_tolerance": sum(c["above_tolerance"] for c in configs),
        "unbounded_answers": sum(c["unbounded"] for c in configs),
        "ratio_percentiles": pct, "by": groups,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.cli.certify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in all (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    parser.add_argument("--out", type=Path, help="write every number to this JSON file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    configs = []
    plan = _configs(args.tasks, rng)
    for k, (program, family, s) in enumerate(plan, 1):
        print(f"[{k}/{len(plan)}] {program.name} d={program.d} n={program.n} {family} s={s:g}", file=sys.stderr,
              flush=True)
        configs.append(run_config(program, family, s, TASKS_PER_NETWORK, rng))
    summary = summarise(configs)
    result = {"command": f"python -m construct.cli.certify --tasks {args.tasks} --seed {args.seed}",
              "summary": summary, "seconds": round(time.perf_counter() - start, 1),
              "configs": [{k: v for k, v in c.items() if k != "ratios"} |
                          {"median_ratio": float(np.median(c["ratios"])) if c["ratios"] else None} for c in configs]}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
