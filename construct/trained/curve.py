"""The learning curve of a training run with an ``[eval]`` table, and what a fitted law says of it.

    python -m construct.trained.curve CONFIG.toml --log LOG.jsonl --out DIR [--target 0.05]

Reads the ``eval`` records of the run's log (SPD/d to minimum-norm OLS at
every prefix k on the config's fixed evaluation tasks, every ``[eval]
every`` steps) and fits, to SPD/d at k = d against the training step t,
the saturating power law

    L(t) = c + a (t / 10,000)^(-b)     (a > 0, b > 0, c >= 0: c is the law's floor,
                                        a its excess over c at step 10,000)

by least squares on log L (each point weighs by its relative error), on the
records after the end of the curriculum (the first step with all d
dimensions and all n examples active; before it the model has not seen
the k = d task). Then:
if the floor c is at or above the target, no number of steps reaches the
target under the law (``floor_reached``); otherwise the law reaches it at
t* = 10,000 (a / (target - c))^(1/b) steps (``steps_to_target``). The fit is
repeated leaving out each record in turn (``leave_one_out``), which shows
how much the answer rests on single points.

The law describes one run of one schedule: with a cosine decay of the
learning rate to its end, the last records flatten partly because the
learning rate is near its end value, so the floor of a fit to them is the
floor of this schedule, not of the architecture; a longer run is a new
schedule. ``results.json`` and ``curve.png`` go into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from .experiments import repository_path
from .train import load_config

TARGET = 0.05
T_REF = 10_000  # the law's unit of steps


def _log_residuals(params, t, values):
    log_a, b, c = params
    return np.log(c + np.exp(log_a) * (t / T_REF) ** (-b)) - np.log(values)


def fit_law(steps, values) -> dict:
    """Least-squares fit of log(c + a (t / 10,000)^-b) to log(values): {"a", "b", "c", "rms_log"}.

    A grid over the floor c in [0, min(values)) starts it (for each c the
    straight-line fit of log(values - c) on log(t / 10,000) gives a and b), and a
    bounded least-squares refinement of all three finishes it.
    """
    t, v = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(t) < 3 or np.any(v <= 0) or np.any(t <= 0):
        raise ValueError(f"a fit of three parameters needs 3 or more positive points, got {len(t)}")
    best = None
    for c in np.linspace(0, v.min(), 400, endpoint=False):
        slope, intercept = np.polyfit(np.log(t / T_REF), np.log(v - c), 1)
        b = max(-slope, 1e-6)
        params = (intercept, b, c)
        cost = float(np.sum(_log_residuals(params, t, v) ** 2))
        if best is None or cost < best[0]:
            best = (cost, params)
    start = np.array(best[1])
    fit = least_squares(_log_residuals, start, args=(t, v), bounds=([-np.inf, 1e-6, 0.0], [np.inf, 10.0, np.inf]),
                        x_scale=[1.0, 0.1, max(v.min(), 1e-12)], xtol=1e-12, ftol=1e-12, gtol=1e-12)
    log_a, b, c = fit.x
    return {"a": float(np.exp(log_a)), "b": float(b), "c": float(c),
            "rms_log": float(np.sqrt(np.mean(fit.fun ** 2)))}


def law(fit: dict, t):
    """The fitted law at steps ``t``."""
    return fit["c"] + fit["a"] * (np.asarray(t, dtype=float) / T_REF) ** (-fit["b"])


def steps_to(fit: dict, target: float) -> float | None:
    """The step at which the law reaches ``target``; None when its floor is at or above it."""
    if fit["c"] >= target:
        return None
    return float(T_REF * (fit["a"] / (target - fit["c"])) ** (1 / fit["b"]))


def eval_records(log: Path) -> list[dict]:
    """The log's ``eval`` records, one per step (a resumed run may have written a step twice: the last wins)."""
    records = {}
    for line in Path(log).read_text().splitlines():
        record = json.loads(line)
        if "eval" in record:
            records[record["step"]] = record["eval"]["spd_over_d_to_ols"]
    return [{"step": step, "spd_over_d_to_ols": records[step]} for step in sorted(records)]


def curriculum_end(config) -> int:
    """The first step at which every dimension and every example is in the training prompts."""
    step = 0
    while config.active(step) < config.task.d or config.points(step) < config.task.n:
        step += 1
    return step


def curve(config_path: Path, log: Path, target: float = TARGET) -> dict:
    config = load_config(config_path)
    d = config.task.d
    records = eval_records(log)
    if not records:
        raise ValueError(f"{log}: no eval records (does the config have an [eval] table?)")
    start = curriculum_end(config)
    fitted = [r for r in records if r["step"] > start]  # a record at step s follows training steps 0..s-1
    steps = [r["step"] for r in fitted]
    values = [r["spd_over_d_to_ols"][d] for r in fitted]
    fit = fit_law(steps, values)
    t_star = steps_to(fit, target)
    loo = []
    for i in range(len(fitted) if len(fitted) > 3 else 0):
        rest = [j for j in range(len(fitted)) if j != i]
        f = fit_law([steps[j] for j in rest], [values[j] for j in rest])
        loo.append({"left_out": steps[i], **f, "steps_to_target": steps_to(f, target)})
    last = records[-1]["spd_over_d_to_ols"]
    return {
        "experiment": "curve", "quick": False, "d": d, "tasks": config.eval_tasks, "target": target,
        "model": Path(config_path).stem, "config": repository_path(config_path), "log": repository_path(log),
        "run_steps": config.steps,
        "curriculum_end": start,
        "records": records,
        "fit": {"law": "c + a * (t/10000)^(-b)", "k": d, "steps": steps, "values": values, **fit},
        "floor_reached": t_star is None,
        "steps_to_target": t_star,
        "reached_at": next((r["step"] for r in records if r["spd_over_d_to_ols"][d] <= target), None),
        "last": {"step": records[-1]["step"], "spd_over_d_to_ols": last,
                 "every_k_le_d_at_most_target": all(v <= target for v in last[1: d + 1])},
        "leave_one_out": loo,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.trained.curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="the run's training config (with an [eval] table)")
    parser.add_argument("--log", type=Path, required=True, help="the run's log.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="output directory (results.json, curve.png)")
    parser.add_argument("--target", type=float, default=TARGET, help=f"SPD/d to reach (default {TARGET})")
    args = parser.parse_args(argv)
    try:
        result = curve(args.config, args.log, args.target)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["command"] = shlex.join(["python", "-m", "construct.trained.curve",
                                    *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    from . import figures

    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    figures.learning_curve(args.out / "curve.png", result)
    print(json.dumps({k: result[k] for k in ("floor_reached", "steps_to_target")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
