"""The paper's comparisons in small: trained transformers beside the algorithms and the constructions.

    python -m construct.trained.experiments {noiseless,noisy,depth,probes} [--config FILE] [--quick]
        [--out DIR] [--models DIR] [--no-train]

Each experiment reads its config in ``construct/trained/configs/``
(``--config`` for another): ``experiment_<name>.toml``, and for noiseless
``experiment_noiseless_ols.toml`` (one config per model it is run on:
``experiment_noiseless_<model>.toml``). For each training config
``<stem>.toml`` it names, it uses the committed model
``construct/trained/checkpoints/<stem>.eqx``, else a finished model of that
config in ``--models`` (default ``runs/models``, shared by the
experiments), else trains it there (``--no-train`` refuses to, naming the
model: evaluation only); then evaluates on fresh tasks and writes PNG
figures and ``results.json`` into ``--out`` (default ``runs/<config>``, the
config's name without ``experiment_``; the committed results are in
``construct/trained/results/<config>``): the numbers with their 95%
bootstrap intervals over tasks, the config, the command, the seconds this
run took and, for each model, its file (relative to the repository when it
is in it), training steps, seconds and command. ``--quick`` uses the
config's ``[quick]`` table: tiny models and few tasks, for the tests.

* noiseless (the paper's Figure 1): every predictor's squared error against
  the truth, and the SPD of the trained model to OLS, ridge, SGD, GD, k-NN
  and the compiled SGD and ridge networks, all on one task set (a task a
  compiled network refuses is counted); ILWD to the closed forms; the
  ridge closest to the transformer at each k;
* noisy (Figure 2): models trained with label noise sigma and weights of
  scale tau, against ridge(lam) on a grid refined around sigma^2/tau^2, by
  mean SPD over the under-determined prefixes 1 <= k < d; the best lam with
  a bootstrap interval;
* depth (Figure 3): 1, 2, 4 and 8 layers, each family's best member by mean
  SPD over 1 <= k < d;
* probes (Figure 4): one probe per layer and k, pooling over the prompt's
  positions, linear and 2-layer MLP, for X^T y and w_OLS, against a control
  model trained on a single fixed w (see ``probes``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from .. import Bounds, compile, programs
from ..tasks import TaskDistribution
from . import figures, metrics
from . import predictors as P
from .train import evaluation_tasks, load_config, load_model, model_info, train

CONFIGS = Path(__file__).resolve().parent / "configs"
CHECKPOINTS = CONFIGS.parent / "checkpoints"
ROOT = CONFIGS.parents[2]  # the repository
DEFAULT_CONFIGS = {"noiseless": "experiment_noiseless_ols.toml"}  # else experiment_<name>.toml


def repository_path(path: Path) -> str:
    """``path`` relative to the repository if it is in it (as results files store it), else as given."""
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def results_name(config_path: Path) -> str:
    """The results directory of an experiment config: its name without ``experiment_``."""
    return config_path.stem.removeprefix("experiment_")


class WouldTrain(Exception):
    """An experiment run with ``--no-train`` needs a model that is neither committed nor in ``--models``."""


# -- configs and models ----------------------------------------------------------------


def read_config(path: Path, quick: bool) -> dict:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    config = dict(raw.get("experiment", {}))
    if quick:
        config.update(raw.get("quick", {}))
    config["_dir"] = path.parent
    return config


class Models:
    """Where an experiment's models come from (see the module docstring), and what each cost to train."""

    def __init__(self, directory: Path, quick: bool, progress: bool, may_train: bool = True):
        self.directory, self.quick, self.progress, self.may_train = directory, quick, progress, may_train
        self.used: dict[str, dict] = {}

    def get(self, config: dict, train_file: str):
        """(model, training config) of training config ``train_file``; a committed model of its name
        (not in quick mode) must have been trained with exactly that config."""
        train_config = load_config(config["_dir"] / train_file)
        stem = Path(train_file).stem
        candidates = [] if self.quick else [CHECKPOINTS / f"{stem}.eqx"]
        run_dir = self.directory / stem
        for path in [*candidates, run_dir / "model.eqx"]:
            if not path.exists():
                continue
            model, saved = load_model(path)
            if saved.as_dict() == train_config.as_dict():
                self._record(train_file, path)
                return model, saved
            if path in candidates:
                raise ValueError(f"{path} was trained with another config than {train_file}")
        if not self.may_train:
            raise WouldTrain(f"no model of {train_file} in {repository_path(CHECKPOINTS)} or {run_dir} (with its config); "
                             "--no-train refuses to train it")
        command = shlex.join(["python", "-m", "construct.trained.train", repository_path(config["_dir"] / train_file),
                              "--out", repository_path(run_dir)])
        model = train(train_config, run_dir, progress=self.progress, command=command)
        self._record(train_file, run_dir / "model.eqx")
        return model, train_config

    def _record(self, train_file: str, path: Path) -> None:
        info = model_info(path)
        start = info.get("start") or {}
        steps = info["steps"] + (start.get("steps") or 0)  # a continued model: its start model's steps too
        self.used[train_file] = {"name": Path(train_file).stem, "path": repository_path(path), "steps": steps,
                                 "training_seconds": info.get("seconds"), "command": info.get("command"),
                                 "bytes": path.stat().st_size}


def next_labels(batch) -> np.ndarray:
    """What prefix k's prediction is scored against: y_{k+1}, and w . x' (no noise) for the query: (B, n + 1)."""
    return np.concatenate([batch.y, np.einsum("bd,bd->b", batch.w, batch.queries[:, 0])[:, None]], axis=1)


def compiled_networks(task: TaskDistribution, alpha: float, lam: float, calibration: int):
    """Compiled SGD(alpha) and ridge(lam) for the task's d and n, calibrated on its distribution."""
    sample = replace(task, seed=task.seed + 2 * 10**6).sample(calibration, 0, queries=1)
    tasks = [(X, y, q[0]) for X, y, q in zip(sample.X, sample.y, sample.queries)]
    out = []
    for program in (programs.sgd(task.d, task.n, alpha, 0.0), programs.ridge(task.d, task.n, lam)):
        out.append(P.Compiled(compile(program, Bounds.calibrate(program, tasks))))
    return out


def model_facts(model, train_config, info: dict) -> dict:
    """A model's architecture and parameter count beside where it came from (``Models.used``)."""
    params = sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))
    return {"layers": train_config.model.layers, "width": train_config.model.width,
            "heads": train_config.model.heads, "parameters": int(params), **info}


# -- experiments ---------------------------------------------------------------------------------


def noiseless(config: dict, out: Path, models: Models) -> dict:
    model, train_config = models.get(config, config["model"])
    task = train_config.task
    d = task.d
    batch, Q = evaluation_tasks(task, config["tasks"], config["queries_per_dim"] * d, config["seed"])
    x_query, truth = batch.queries[:, 0], next_labels(batch)
    transformer = P.Trained(model)
    compiled = compiled_networks(replace(task, n=task.n - 1), config["sgd_alpha"], config["ridge_lam"],
                                 config["calibration_tasks"])
    closed = [P.ols(), P.ridge(config["ridge_lam"]), P.sgd(config["sgd_alpha"]), P.gd(config["gd_alpha"])]
    others = [P.NearestNeighbours(3), P.NearestNeighbours(3, "inverse_square")]
    pred = {p.name: p.predict_next(batch.X, batch.y, x_query) for p in [transformer, *closed, *others, *compiled]}
    refused = {net.name: int(np.isnan(pred[net.name]).any(axis=1).sum()) for net in compiled}
    accepted = {name: ~np.isnan(p).any(axis=1) for name, p in pred.items()}

    def per_task(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return (a[rows] - b[rows]) ** 2 / d

    error = {name: metrics.summary(per_task(p, truth, accepted[name])) for name, p in pred.items()}
    spd = {name: metrics.summary(per_task(p, pred[transformer.name], accepted[name]))
           for name, p in pred.items() if name != transformer.name}
    # the ridge closest to the transformer at each k, on a grid of lam
    grid = config["ridge_grid"]
    by_lam = np.stack([(P.ridge(lam).predict_next(batch.X, batch.y, x_query) - pred[transformer.name]) ** 2 / d
                       for lam in grid])  # (lams, B, n + 1)
    closest = by_lam.mean(1).argmin(0)
    # ILWD: the transformer's implicit weights (fitted on the queries) against each closed form's own. (The
    # compiled networks' weights, read from their residual streams, cost one trace per task; their predictions
    # equal the closed forms' to the check below on every accepted task.)
    w_model, _, r2 = metrics.implicit_weights(Q, transformer.predict(batch.X, batch.y, Q))
    ilwd = {p.name: metrics.summary(metrics.weight_distances(w_model, p.weights(batch.X, batch.y))) for p in closed}
    check = {net.name: float(np.max((pred[net.name][accepted[net.name]] - pred[ref.name][accepted[net.name]]) ** 2))
             for net, ref in zip(compiled, (closed[2], closed[1]))}  # compiled SGD and ridge, their closed forms
    result = {
        "d": d, "n": task.n - 1, "tasks": config["tasks"], "k": list(range(task.n)),
        "model": model_facts(model, train_config, models.used[config["model"]]),
        "error_over_d": error, "spd_over_d": spd, "ilwd": ilwd,
        "closest_ridge": {"grid": grid, "lam": [grid[i] for i in closest],
                          "spd_over_d": by_lam.mean(1)[closest, np.arange(task.n)].tolist()},
        "refused": refused, "calibration_tasks": config["calibration_tasks"],
        "compiled_vs_closed_form_max_squared_difference": check,
        "transformer_fit_r2_median": np.median(r2, 0).tolist(), "queries_for_implicit_weights": Q.shape[2],
    }
    figures.figure_1(out / "figure1.png", result)
    figures.ilwd(out / "ilwd.png", result)
    return result


def noisy(config: dict, out: Path, models: Models) -> dict:
    rows = []
    for key in config["models"]:
        model, train_config = models.get(config, key)
        task = train_config.task
        sigma, tau = task.noise, task.w_scale[0]
        bayes = sigma**2 / tau**2
        fine = [bayes * 2 ** (j / config["steps_per_octave"]) for j in range(-config["octaves"] * config["steps_per_octave"],
                                                                            config["octaves"] * config["steps_per_octave"] + 1)]
        lams = sorted({round(lam, 10) for lam in [*config["lams"], *fine]})
        batch, _ = evaluation_tasks(task, config["tasks"], 1, config["seed"])
        x_query = batch.queries[:, 0]
        model_pred = P.Trained(model).predict_next(batch.X, batch.y, x_query)
        under = slice(1, task.d)  # prefixes 1..d-1: fewer examples than dimensions (n - 1 >= d here)
        per_task = np.stack([((model_pred - P.ridge(lam).predict_next(batch.X, batch.y, x_query)) ** 2)[:, under]
                             .mean(1) / task.d for lam in lams], axis=1)  # (B, lams)
        band = metrics.summary(per_task)
        best = int(per_task.mean(0).argmin())
        draws = np.random.default_rng(config["seed"]).integers(len(per_task), size=(1000, len(per_task)))
        best_draws = np.array([lams[per_task[idx].mean(0).argmin()] for idx in draws])
        rows.append({"model": key, "sigma": sigma, "tau": tau, "bayes_lam": bayes, "lams": lams,
                     "mspd_over_d": band["mean"], "low": band["low"], "high": band["high"],
                     "best_lam": lams[best], "best_lam_interval": np.percentile(best_draws, [2.5, 97.5]).tolist(),
                     "model_info": model_facts(model, train_config, models.used[key])})
    result = {"tasks": config["tasks"], "rows": rows}
    figures.noisy(out / "noisy.png", result)
    return result


def depth(config: dict, out: Path, models: Models) -> dict:
    rows = []
    for key in config["models"]:
        model, train_config = models.get(config, key)
        task = train_config.task
        batch, _ = evaluation_tasks(task, config["tasks"], 1, config["seed"])
        x_query = batch.queries[:, 0]
        model_pred = P.Trained(model).predict_next(batch.X, batch.y, x_query)
        families = {"OLS": [P.ols()], "ridge": [P.ridge(lam) for lam in config["lams"]],
                    "SGD": [P.sgd(a) for a in config["alphas"]], "GD": [P.gd(a) for a in config["alphas"]],
                    "3-NN": [P.NearestNeighbours(3)]}
        scores = {}
        for fam, candidates in families.items():
            per_task = {c.name: ((model_pred - c.predict_next(batch.X, batch.y, x_query)) ** 2)[:, 1:task.d].mean(1)
                        / task.d for c in candidates}
            name = min(per_task, key=lambda c: per_task[c].mean())
            low, high = metrics.bootstrap(per_task[name][:, None])
            scores[fam] = {"predictor": name, "mspd_over_d": float(per_task[name].mean()),
                           "low": float(low[0]), "high": float(high[0])}
        rows.append({"layers": train_config.model.layers, "by_family": scores,
                     "closest": min(scores.values(), key=lambda s: s["mspd_over_d"])["predictor"],
                     "model_info": model_facts(model, train_config, models.used[key])})
    result = {"d": task.d, "tasks": config["tasks"], "rows": rows}
    figures.depth(out / "depth.png", result)
    return result


def probes(config: dict, out: Path, models: Models) -> dict:
    from .probes import probe_layers

    steps = {"linear": config["linear_steps"], "MLP": config["mlp_steps"]}
    result = {"tasks": {"train": config["probe_tasks"], "test": config["test_tasks"]}, "steps": steps, "models": {}}
    for key in ("model", "control"):
        model, train_config = models.get(config, config[key])
        task = replace(train_config.task, pool=None)  # probe on fresh tasks, also for the control
        result[key] = probe_layers(model, task, config["probe_tasks"], config["test_tasks"], config["max_k"],
                                   steps, config["seed"])
        result["models"][key] = model_facts(model, train_config, models.used[config[key]])
    figures.probes(out / "probes.png", result)
    return result


EXPERIMENTS = {"noiseless": noiseless, "noisy": noisy, "depth": depth, "probes": probes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.trained.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--config", type=Path, help="experiment config (default: the one in configs/)")
    parser.add_argument("--quick", action="store_true", help="tiny models and few tasks (for the tests)")
    parser.add_argument("--out", type=Path, help="output directory (default runs/<experiment>[-quick])")
    parser.add_argument("--models", type=Path, help="where models are found or trained (default runs/models)")
    parser.add_argument("--no-train", action="store_true",
                        help="evaluate committed or finished models only: refuse to train a missing one")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    path = args.config or CONFIGS / DEFAULT_CONFIGS.get(args.experiment, f"experiment_{args.experiment}.toml")
    out = args.out or Path("runs") / (results_name(path) + ("-quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    try:
        config = read_config(path, args.quick)
    except (OSError, tomllib.TOMLDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    models = Models(args.models or Path("runs") / ("models-quick" if args.quick else "models"), args.quick,
                    not args.no_progress, may_train=not args.no_train)
    began = time.perf_counter()
    try:
        result = EXPERIMENTS[args.experiment](config, out, models)
    except WouldTrain as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = shlex.join(["python", "-m", "construct.trained.experiments",
                          *(argv if argv is not None else sys.argv[1:])])
    result = {"experiment": args.experiment, "quick": args.quick, "config": path.name, "command": command,
              "seconds": round(time.perf_counter() - began, 1), "models_used": models.used, **result}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k in ("experiment", "seconds")}))
    print(f"wrote {out}/results.json and figures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
