"""Are the certificates sound, and how tight? Thousands of tasks, each answer of every backend against its exact value.

    python -m construct.cli.certify                                  # 10,000 tasks
    python -m construct.cli.certify --tasks 200 --out FILE.json      # a quick run
    python -m construct.cli.certify --out construct/results/certificate.json   # what docs/CERTIFICATE.md quotes

Every answer of every task is compared with the algorithm's exact answer
(``construct.exact``, 50 digits): a *violation* is an error above its
certified bound (the claim is that there are none). The *ratio* is
bound / error for answers with a nonzero error. Tasks come in families:

* ``gaussian``: x ~ N(0, s^2 I), w ~ N(0, I), y = w^T x, with the scale s
  from 1e-3 to 1e3 and ridge's lam from 1e-6 to 10; SGD's step is
  ``0.5 / (d s^2)`` so that it stays stable at every scale; ``ridge_newton``
  and ``gd`` (whose depth does not grow with n) take lam from 1e-3 s^2 to
  s^2, ``x_norm`` the calibrated box's bound on |x|, and gd the step
  ``0.5 / (2 lam + x_norm^2)`` (stable on that box) and 1, 3 or 8 steps;
* ``near-singular`` (rows nearly collinear), ``repeated`` (one row n
  times), ``few`` (n < d), ``zeros`` (some rows and the query 0);
* the paper's one-example chains.

Each network is compiled for a domain from its own family and scale
(``Bounds.calibrate`` on 64 tasks, margin 4); a task outside it is
*refused* (DomainError), which is sound too and is counted. Every task a
network answers is run on every backend, with the same network:

* ``numpy``: the reference pass, with both certificates, the mechanism
  certificate (a priori, the pass's own rounding followed layer by layer)
  and the residual certificate (a posteriori, from the answers and the last
  state; ridge, ridge_newton and the Sherman-Morrison chain have one);
* ``jax``: the JAX pass of the same weights, residual certificate;
* ``hf`` and ``tl``: the same program and domain compiled for GPT-2 blocks
  (``architecture="gpt2"``), run by Hugging Face's ``GPT2Model`` and by
  TransformerLens (where installed: the extra ``runtimes``), residual
  certificate from what each returned (``construct.hf.predict``,
  ``construct.tl.predict``).

Each (certificate, backend) pair is reported on its own: the answers it
covers (a finite bound), its violations, its largest error / bound and the
distribution of bound / error; an answer a certificate does not cover (SGD
has no residual certificate; a mechanism bound that reached a divisor's size
is inf) counts as uncovered, not as a violation. ``answer`` is what
``predict`` returns on numpy, the smaller of the two bounds. Answers are
certified with ``tolerance=None`` (nothing refused for its bound), and the
run counts how many the default tolerance would refuse. The results file is
written after every network, so a run stopped early leaves the tasks it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .. import exact, programs
from ..compiler import Bounds, DomainError, compile
from ..compiler.compiled import DEFAULT_TOLERANCE

DIMENSIONS, EXAMPLES = (1, 2, 3, 4, 6, 8), (1, 2, 4, 8, 16)
SCALES, LAMS = (1e-3, 1e-1, 1.0, 10.0, 1e3), (1e-6, 1e-3, 0.1, 1.0, 10.0)
FAMILIES = ("gaussian", "gaussian", "gaussian", "near-singular", "repeated", "few", "zeros")
TASKS_PER_NETWORK, CALIBRATION, MARGIN = 50, 64, 4.0
NEWTON_LAMS, GD_STEPS = (1e-3, 0.1, 1.0), (1, 3, 8)  # lam in units of s^2: the same conditioning at every scale
ROWS = (("answer", "numpy"), ("mechanism", "numpy"), ("residual", "numpy"), ("residual", "jax"), ("residual", "hf"),
        ("residual", "tl"))  # (certificate, backend); "answer": the smaller bound, as predict returns it
PERCENTILES = (1, 10, 25, 50, 75, 90, 99)


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


def _x_bound(family: str, d: int, s: float) -> float:
    """A bound on |x| of every row ``_draw`` gives (6 standard deviations of each normal factor)."""
    row = s * (d**0.5 + 6)
    return 7 * row if family == "near-singular" else row


def depth_program(kind: str, d: int, n: int, family: str, s: float, lam: float, steps: int = 1):
    """``ridge_newton`` or ``gd`` for a family and scale: ``x_norm`` covers the calibrated box's |x| (the same
    margin over the rows ``_draw`` gives), and gd's step ``0.5 / (2 lam + x_norm^2)`` is stable on that box."""
    x_norm = MARGIN * _x_bound(family, d, s)
    if kind == "ridge_newton":
        return programs.ridge_newton(d, n, lam, x_norm=x_norm)
    return programs.gd(d, n, 0.5 / (2 * lam + x_norm**2), lam, steps)


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
        kind = rng.choice(["sgd", "ridge", "ridge", "chain", "ridge_newton", "gd"])
        if kind in ("ridge_newton", "gd"):
            lam = float(rng.choice(NEWTON_LAMS)) * s * s
            program = depth_program(str(kind), d, n, family, s, lam,
                                    int(rng.choice(GD_STEPS)) if kind == "gd" else 1)
        elif kind == "sgd":
            program = programs.sgd(d, n, 0.5 / (d * s * s), float(rng.choice([0.0, 0.1])), rng.normal(size=d))
        elif kind == "ridge":
            program = programs.ridge(d, n, float(rng.choice(LAMS)))
        elif rng.random() < 0.5:
            program = programs.sgd_step(d, 0.5 / (d * s * s), 0.1, rng.normal(size=d))
        else:
            program = programs.sherman_morrison_step(d, float(rng.choice(LAMS)))
        configs.append((program, family, s))
    return configs


def runtimes() -> dict:
    """The runtime backends installed: name -> (model of a GPT-2 network, predict(model, net, X, y, q) -> (answers,
    bounds)). Empty without the extra ``runtimes``."""
    try:
        import torch

        from ..runtimes import hf, tl
    except ImportError:
        return {}
    torch.set_num_threads(1)  # passes of a few dozen tokens: a pool's threads spin idle longer than they compute

    def tl_model(net):
        with warnings.catch_warnings():  # TransformerLens 3 announces that 4.0 removes HookedTransformer
            warnings.simplefilter("ignore", DeprecationWarning)
            return tl.to_transformer_lens(net)

    def hf_predict(model, net, *task):
        return hf.predict(model, *task, tolerance=None, return_bound=True)

    def tl_predict(model, net, *task):
        return tl.predict(model, net, *task, tolerance=None, return_bound=True)

    return {"hf": (hf.from_network, hf_predict), "tl": (tl_model, tl_predict)}


def _empty_row() -> dict:
    return {"answers": 0, "covered": 0, "violations": 0, "worst": 0.0, "ratios": []}


def _record(row: dict, errors: np.ndarray, bounds: np.ndarray) -> None:
    """Add one task's answers (errors and bounds, NaN where nothing is predicted) to a (certificate, backend) row."""
    seen = ~np.isnan(errors)
    e, b = errors[seen], bounds[seen]
    covered = np.isfinite(b)
    row["answers"] += int(seen.sum())
    row["covered"] += int(covered.sum())
    row["violations"] += int((e > b).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        row["worst"] = max(row["worst"], float(np.max(np.where(b > 0, e / b, np.where(e > 0, np.inf, 0.0)),
                                                      initial=0.0)))
    measured = (e > 0) & covered
    row["ratios"] += (b[measured] / e[measured]).tolist()


def run_config(program, family: str, s: float, tasks: int, rng: np.random.Generator, backends: dict) -> dict:
    """One network (and its GPT-2 twin for the runtimes) on ``tasks`` tasks of its family, every backend."""
    d, n = program.d, program.n
    calibration = [_draw(family, d, n, s, rng) for _ in range(CALIBRATION)]
    bounds = Bounds.calibrate(program, calibration, MARGIN)
    net = compile(program, bounds)
    twin = compile(program, bounds, architecture="gpt2") if backends else None
    models = {name: make(twin) for name, (make, _) in backends.items()}
    rows = {"program": program.name, "d": d, "n": n, "params": {k: np.asarray(v).tolist() for k, v in
                                                                 program.params.items()},
            "family": family, "scale": s, "tasks": 0, "refused": 0, "above_tolerance": 0,
            "certificates": {f"{c} {b}": _empty_row() for c, b in ROWS if b in ("numpy", "jax") or b in backends}}
    table = rows["certificates"]
    for _ in range(tasks):
        task = _draw(family, d, n, s, rng)
        rows["tasks"] += 1
        try:
            cert = net.certify(*task)
            jax = net.certify(*task, backend="jax")
        except DomainError:
            rows["refused"] += 1
            continue
        want = exact.predictions(program, *task)
        errors = exact.distances(want, cert.predictions)
        _record(table["answer numpy"], errors, cert.bounds)
        for source in ("mechanism", "residual"):
            _record(table[f"{source} numpy"], errors, cert.by_source.get(source, np.full(len(errors), np.inf)))
        _record(table["residual jax"], exact.distances(want, jax.predictions),
                jax.by_source.get("residual", np.full(len(errors), np.inf)))
        for name, (_, predict) in backends.items():
            answers, bound = predict(models[name], twin, *task)
            _record(table[f"residual {name}"], exact.distances(want, answers), bound)
        seen = ~np.isnan(errors)
        scale = net.scale(task[1], cert.predictions)
        rows["above_tolerance"] += int((cert.bounds[seen] > DEFAULT_TOLERANCE * scale[seen]).sum())
    return rows


def _distribution(ratios: list, worst: float) -> dict:
    values = np.asarray(ratios)
    return {"worst_error_over_bound": worst,
            **({f"p{q}": float(np.percentile(values, q)) for q in PERCENTILES} if values.size else {})}


def summarise(configs: list[dict]) -> dict:
    names = list(dict.fromkeys(name for c in configs for name in c["certificates"]))
    certificates = {}
    for name in names:
        rows = [c["certificates"][name] for c in configs if name in c["certificates"]]
        ratios = [r for row in rows for r in row["ratios"]]
        certificates[name] = {"answers": sum(row["answers"] for row in rows),
                              "covered": sum(row["covered"] for row in rows),
                              "violations": sum(row["violations"] for row in rows),
                              **_distribution(ratios, max(row["worst"] for row in rows))}
    answer = certificates.get("answer numpy", {})
    by = {}
    for key in ("program", "family"):
        for c in configs:
            entry = by.setdefault(key, {}).setdefault(c[key], {"answers": 0, "ratios": []})
            entry["answers"] += c["certificates"]["answer numpy"]["answers"]
            entry["ratios"] += c["certificates"]["answer numpy"]["ratios"]
    groups = {key: {name: {"answers": v["answers"],
                           "median_ratio": float(np.median(v["ratios"])) if v["ratios"] else None}
                    for name, v in table.items()} for key, table in by.items()}
    return {
        "tasks": sum(c["tasks"] for c in configs), "answers": answer.get("answers", 0),
        "backend_answers": sum(row["answers"] for name, row in certificates.items() if not name.startswith("answer")
                               and not name.startswith("mechanism")),
        "violations": sum(row["violations"] for row in certificates.values()),
        "worst_error_over_bound": max((row["worst_error_over_bound"] for row in certificates.values()), default=0.0),
        "refused_outside_domain": sum(c["refused"] for c in configs),
        "above_default_tolerance": sum(c["above_tolerance"] for c in configs),
        "unbounded_answers": answer.get("answers", 0) - answer.get("covered", 0),
        "ratio_percentiles": {k: v for k, v in answer.items() if k.startswith("p")},
        "certificates": certificates, "by": groups,
    }


def _result(args, configs: list[dict], backends: dict, start: float, complete: bool) -> dict:
    return {"command": f"python -m construct.cli.certify --tasks {args.tasks} --seed {args.seed}",
            "complete": complete, "backends": ["numpy", "jax", *backends],
            "summary": summarise(configs), "seconds": round(time.perf_counter() - start, 1),
            "configs": [{k: v for k, v in c.items() if k != "certificates"} |
                        {"certificates": {name: {k: v for k, v in row.items() if k != "ratios"}
                                          | {"median_ratio": float(np.median(row["ratios"])) if row["ratios"] else None}
                                          for name, row in c["certificates"].items()}} for c in configs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.cli.certify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in all (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    parser.add_argument("--out", type=Path, help="write every number to this JSON file (after every network)")
    parser.add_argument("--no-runtimes", action="store_true", help="numpy and JAX only (the runtimes are the slowest)")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error(f"--tasks must be at least 1, got {args.tasks}")
    rng = np.random.default_rng(args.seed)
    backends = {} if args.no_runtimes else runtimes()
    start = time.perf_counter()
    configs = []
    plan = _configs(args.tasks, rng)
    for k, (program, family, s) in enumerate(plan, 1):
        print(f"[{k}/{len(plan)}] {program.name} d={program.d} n={program.n} {family} s={s:g}", file=sys.stderr,
              flush=True)
        configs.append(run_config(program, family, s, TASKS_PER_NETWORK, rng, backends))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(_result(args, configs, backends, start, k == len(plan)), indent=1) + "\n")
    summary = summarise(configs)
    print(json.dumps({k: v for k, v in summary.items() if k != "by"}, indent=1))
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
