"""The paper's comparisons in small: trained transformers beside the algorithms and the constructions.

    python -m construct.trained.experiments {noiseless,noisy,depth,probes} [--quick] [--out DIR]

Each experiment reads ``construct/trained/configs/experiment_<name>.toml``
(``--config`` for another), trains the models it needs unless a finished
model is already where the config says, evaluates, and writes PNG plots and
``results.json`` into ``--out`` (default ``runs/<name>``), with the
seconds this run took and the training seconds of each model it used
(recorded when the model was trained). ``--quick`` uses
the config's ``[quick]`` table: tiny models and few tasks, for the tests.

* noiseless (the paper's Figure 1): SPD and ILWD of the trained model
  against OLS, ridge, SGD, GD, k-NN and the compiled SGD and ridge networks;
* noisy (Figure 2): models trained with label noise sigma and weights of
  scale tau, against ridge(lam) for a grid of lam that includes the Bayes
  sigma^2/tau^2, by mean SPD over the under-determined prefixes k < d;
* depth (Figure 3): 1, 2 and 4 layers, and which algorithm each matches;
* probes (Figure 4): how well X^T y and w_OLS can be read from each layer
  by linear and 2-layer MLP probes, against a control model trained on a
  single fixed w.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import plots, programs
from .. import Bounds
from .. import compile
from ..tasks import TaskDistribution
from . import metrics
from . import predictors as P
from .train import config_from_dict, load_config, load_model, model_info, train

CONFIGS = Path(__file__).resolve().parent / "configs"


# -- configs and models ----------------------------------------------------------------


def read_config(path: Path, quick: bool) -> dict:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    config = dict(raw.get("experiment", {}))
    if quick:
        config.update(raw.get("quick", {}))
    config["_dir"] = path.parent
    return config


def trained_model(config: dict, train_file: str, out: Path, quick: bool, progress: bool, checkpoint: str | None = None):
    """The model of training config ``train_file``: its committed ``checkpoint`` if given and present
    (not in quick mode), else a finished run in ``out/models``, else trained now."""
    train_config = load_config(config["_dir"] / train_file)
    if quick and "steps" in config:
        raw = train_config.as_dict()
        raw["train"]["steps"] = config["steps"]
        train_config = config_from_dict(raw)
    candidates = [] if quick or not checkpoint else [config["_dir"] / checkpoint]
    run_dir = out / "models" / Path(train_file).stem
    for path in [*candidates, run_dir / "model.eqx"]:
        if path.exists():
            model, saved = load_model(path)
            if saved.as_dict() == train_config.as_dict():
                TRAINING_SECONDS[train_file] = model_info(path).get("seconds")
                return model, saved
            if path in candidates:
                raise ValueError(f"{path} was trained with another config than {train_file}")
    model = train(train_config, run_dir, progress=progress, command="(trained by the experiment)")
    TRAINING_SECONDS[train_file] = model_info(run_dir / "model.eqx")["seconds"]
    return model, train_config


TRAINING_SECONDS: dict[str, float | None] = {}  # per training config, for the results


def evaluation_tasks(task: TaskDistribution, count: int, queries: int, seed: int):
    """Fresh tasks of n - 1 examples (a seed the training never uses), with ``queries`` shared x' per prefix.

    A model trained on prompts of n examples predicts at their x tokens, so
    at positions up to 2n - 2; a prompt of n - 1 examples and a query uses
    exactly those positions (position 2n would be one it never trained).
    """
    batch = replace(task, n=task.n - 1, seed=task.seed + 10**6 + seed).sample(count, 0, queries=queries)
    Q = np.repeat(batch.queries[:, None], batch.X.shape[1] + 1, axis=1)
    return batch, Q


def compiled_networks(task: TaskDistribution, alpha: float, lam: float, calibration: int):
    """Compiled SGD(alpha) and ridge(lam) for the task's d and n, calibrated on its distribution."""
    out = []
    for program in (programs.sgd(task.d, task.n, alpha, 0.0), programs.ridge(task.d, task.n, lam)):
        sample = replace(task, seed=task.seed + 2 * 10**6).sample(calibration, 0, queries=1)
        tasks = [(X, y, q[0]) for X, y, q in zip(sample.X, sample.y, sample.queries)]
        out.append(P.Compiled(compile(program, Bounds.calibrate(program, tasks))))
    return out


# -- plots -----------------------------------------------------------------------------------


def _plot_curves(path: Path, title: str, ylabel: str, curves: dict, bands: dict | None = None, log: bool = True):
    fig = plots.figure(7.5, 4.8)
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: plots.figure checked

    ax = fig.subplots()
    for name, values in curves.items():
        k = np.arange(len(values))
        style = "--" if name.startswith("compiled") else "-"
        line, = ax.plot(k, values, style, marker="o", markersize=3, label=name)
        if bands and name in bands:
            ax.fill_between(k, *bands[name], color=line.get_color(), alpha=0.15)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("number of in-context examples k")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    plots.save_figure(fig, path)


# -- experiments ---------------------------------------------------------------------------------


def noiseless(config: dict, out: Path, quick: bool, progress: bool) -> dict:
    model, train_config = trained_model(config, config["model"], out, quick, progress, config.get("model_checkpoint"))
    task = train_config.task
    d = task.d
    batch, Q = evaluation_tasks(task, config["tasks"], config["queries_per_dim"] * d, config["seed"])
    x_query = batch.queries[:, 0]
    transformer = P.Trained(model)
    compiled = compiled_networks(replace(task, n=task.n - 1), config["sgd_alpha"], config["ridge_lam"],
                                 config["calibration_tasks"])
    closed = [P.ols(), P.ridge(config["ridge_lam"]), P.sgd(config["sgd_alpha"]), P.gd(config["gd_alpha"]),
              P.NearestNeighbours(3), P.NearestNeighbours(3, "inverse_square")]
    # SPD at the next example, per prefix; the compiled networks on a subset of the tasks (they are large)
    sub = slice(0, config["compiled_tasks"])
    next_pred = {p.name: p.predict_next(batch.X, batch.y, x_query) for p in [transformer, *closed]}
    for net in compiled:
        next_pred[net.name] = net.predict_next(batch.X[sub], batch.y[sub], x_query[sub])
    spd, spd_band = {}, {}
    for name, pred in next_pred.items():
        if name == transformer.name:
            continue
        ref = next_pred[transformer.name][: len(pred)]
        per_task = metrics.squared_differences(pred[..., None], ref[..., None]) / d
        spd[name], spd_band[name] = per_task.mean(0), metrics.bootstrap(per_task)
    # ILWD: the transformer's implicit weights (fit on 4d queries) against each linear predictor's own
    w_model, _, r2 = metrics.implicit_weights(Q, transformer.predict(batch.X, batch.y, Q))
    ilwd, ilwd_band = {}, {}
    for p in [*closed[:4], *compiled]:
        rows = slice(None) if p in closed else sub
        per_task = metrics.weight_distances(w_model[rows], p.weights(batch.X[rows], batch.y[rows]))
        ilwd[p.name], ilwd_band[p.name] = per_task.mean(0), metrics.bootstrap(per_task)
    check = {net.name: float(np.max(metrics.squared_differences(
        next_pred[net.name][..., None], closed_pred[..., None])))
        for net, closed_pred in zip(compiled, (next_pred[P.sgd(config["sgd_alpha"]).name][sub],
                                               next_pred[P.ridge(config["ridge_lam"]).name][sub]))}
    _plot_curves(out / "spd.png", f"SPD to the trained transformer (d = {d}, noiseless)", "SPD / d", spd, spd_band)
    _plot_curves(out / "ilwd.png", f"ILWD to the trained transformer (d = {d}, noiseless)",
                 "ILWD (|w - w'|^2, summed over coordinates)", ilwd, ilwd_band)
    return {"d": d, "n": task.n - 1, "tasks": config["tasks"], "compiled_tasks": config["compiled_tasks"],
            "spd_over_d": _lists(spd), "spd_band": _lists(spd_band), "ilwd": _lists(ilwd),
            "ilwd_band": _lists(ilwd_band), "transformer_fit_r2_median": np.median(r2, 0).tolist(),
            "compiled_vs_closed_form_max_squared_difference": check}


def noisy(config: dict, out: Path, quick: bool, progress: bool) -> dict:
    rows = []
    curves = {}
    for key in config["models"]:
        model, train_config = trained_model(config, key, out, quick, progress)
        task = train_config.task
        sigma, tau = task.noise, task.w_scale[0]
        bayes = sigma**2 / tau**2
        lams = sorted(set([*config["lams"], bayes]))
        batch, _ = evaluation_tasks(task, config["tasks"], 1, config["seed"])
        x_query = batch.queries[:, 0]
        model_pred = P.Trained(model).predict_next(batch.X, batch.y, x_query)
        under = slice(1, task.d)  # prefixes 1..d-1: fewer examples than dimensions (n - 1 >= d here)
        scores, means = {}, {}
        for lam in lams:
            per_task = metrics.squared_differences(model_pred[..., None],
                                                   P.ridge(lam).predict_next(batch.X, batch.y, x_query)[..., None])
            over_region = per_task[:, under].mean(1) / task.d  # SPD / d averaged over k < d, per task
            scores[lam], means[lam] = float(np.median(over_region)), float(over_region.mean())
        best = min(scores, key=scores.get)
        rows.append({"model": key, "sigma": sigma, "tau": tau, "bayes_lam": bayes, "best_lam": best,
                     "best_lam_by_mean": min(means, key=means.get),
                     "spd_over_d_by_lam": {f"{lam:g}": s for lam, s in scores.items()},
                     "mean_spd_over_d_by_lam": {f"{lam:g}": s for lam, s in means.items()}})
        curves[f"sigma={sigma:g}, tau={tau:g} (Bayes lam {bayes:g})"] = scores
    _plot_lam(out / "noisy.png", curves)
    return {"rows": rows}


def _plot_lam(path: Path, curves: dict):
    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    for label, scores in curves.items():
        lams = sorted(scores)
        line, = ax.plot(lams, [scores[lam] for lam in lams], marker="o", label=label)
        bayes = float(label.split("Bayes lam ")[1].rstrip(")"))
        ax.axvline(bayes, color=line.get_color(), linestyle="--", alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ridge lam (dashed: sigma^2 / tau^2)")
    ax.set_ylabel("median SPD / d over k < d")
    ax.set_title("Which ridge does the noisy-trained transformer match?")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    plots.save_figure(fig, path)


def depth(config: dict, out: Path, quick: bool, progress: bool) -> dict:
    rows, curves = [], {}
    for key in config["models"]:
        model, train_config = trained_model(config, key, out, quick, progress)
        task = train_config.task
        batch, _ = evaluation_tasks(task, config["tasks"], 1, config["seed"])
        x_query = batch.queries[:, 0]
        model_pred = P.Trained(model).predict_next(batch.X, batch.y, x_query)
        families = {"OLS": [P.ols()], "ridge": [P.ridge(lam) for lam in config["lams"]],
                    "SGD": [P.sgd(a) for a in config["alphas"]], "GD": [P.gd(a) for a in config["alphas"]]}
        scores = {}
        for family, candidates in families.items():
            best = min(((float(metrics.spd(model_pred[..., None], c.predict_next(batch.X, batch.y, x_query)[..., None],
                                           task.d)[1:].mean()), c.name) for c in candidates))
            scores[family] = {"spd_over_d": best[0], "predictor": best[1]}
        winner = min(scores, key=lambda f: scores[f]["spd_over_d"])
        rows.append({"layers": train_config.model.layers, "best": scores[winner]["predictor"], "by_family": scores})
        layers = train_config.model.layers
        curves[f"{layers} layer{'s' if layers > 1 else ''}"] = {f: (s["spd_over_d"], s["predictor"])
                                                               for f, s in scores.items()}
    _plot_bars(out / "depth.png", curves)
    return {"rows": rows}


def _plot_bars(path: Path, curves: dict):
    families = list(next(iter(curves.values())))
    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    width = 0.8 / len(curves)
    for i, (label, scores) in enumerate(curves.items()):
        x = np.arange(len(families)) + i * width
        ax.bar(x, [scores[f][0] for f in families], width, label=label)
        for xi, f in zip(x, families):  # the family's best-matching member, e.g. ridge(0.1)
            ax.annotate(scores[f][1], (xi, scores[f][0]), ha="center", va="bottom", fontsize=7, rotation=90,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(np.arange(len(families)) + 0.4 - width / 2, families)
    ax.set_yscale("log")
    ax.set_ylabel("mean SPD / d over k >= 1 (each family's best member)")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)  # room for the labels
    ax.set_title("Which algorithm does each depth match?")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    plots.save_figure(fig, path)


def probes(config: dict, out: Path, quick: bool, progress: bool) -> dict:
    from .probes import probe_layers

    results, curves = {}, {}
    for key in ("model", "control"):
        model, train_config = trained_model(config, config[key], out, quick, progress, config.get(f"{key}_checkpoint"))
        task = replace(train_config.task, pool=None)  # probe on fresh tasks, also for the control
        results[key] = probe_layers(model, task, config["probe_tasks"], config["mlp_steps"], config["seed"])
        for target, by_kind in results[key].items():
            for kind, errors in by_kind.items():
                curves[f"{key}: {target}, {kind}"] = errors
    _plot_probes(out / "probes.png", curves)
    return results


def _plot_probes(path: Path, curves: dict):
    fig = plots.figure(10, 4.5)
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: plots.figure checked

    axes = fig.subplots(1, 2, sharey=True)
    for ax, target in zip(axes, ("X^T y", "w_OLS")):
        for label, errors in curves.items():
            if f": {target}," in label:
                style = "-" if label.startswith("model") else ":"
                ax.plot(range(len(errors)), errors, style, marker="o", markersize=3,
                        label=label.replace(f": {target},", ":"))
        ax.set_title(f"probing {target}")
        ax.set_xlabel("layer (0 = embedding)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("held-out error / variance of the target")
    plots.save_figure(fig, path)


def _lists(table: dict) -> dict:
    return {k: (np.asarray(v).tolist() if not isinstance(v, tuple) else [np.asarray(x).tolist() for x in v])
            for k, v in table.items()}


EXPERIMENTS = {"noiseless": noiseless, "noisy": noisy, "depth": depth, "probes": probes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.trained.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--config", type=Path, help="experiment config (default: the one in configs/)")
    parser.add_argument("--quick", action="store_true", help="tiny models and few tasks (for the tests)")
    parser.add_argument("--out", type=Path, help="output directory (default runs/<experiment>[-quick])")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    path = args.config or CONFIGS / f"experiment_{args.experiment}.toml"
    out = args.out or Path("runs") / (args.experiment + ("-quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    try:
        config = read_config(path, args.quick)
    except (OSError, tomllib.TOMLDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    result = EXPERIMENTS[args.experiment](config, out, args.quick, not args.no_progress)
    result = {"experiment": args.experiment, "quick": args.quick, "config": path.name,
              "seconds": round(time.perf_counter() - began, 1),
              "training_seconds": dict(TRAINING_SECONDS), **result}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k in ("experiment", "seconds")}))
    print(f"wrote {out}/results.json and plots", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
