"""Trained learners: the task sampler, the metrics, the predictors, training and the experiments."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

from construct import Bounds, compile, programs
from construct.tasks import TaskDistribution, gaussian_tasks
from construct.trained import metrics
from construct.trained import predictors as P
from construct.trained.experiments import CONFIGS
from construct.trained.figures import main as figures_main
from construct.trained.model import ModelConfig, Transformer, predict_examples
from construct.trained.train import config_from_dict, evaluation_tasks, load_config, load_model, main, train

TINY = CONFIGS / "quick_d2.toml"


# -- tasks ------------------------------------------------------------------------------------


def test_sampler_is_reproducible_per_batch_index():
    dist = TaskDistribution(d=3, n=5, seed=7)
    a, b, c = dist.sample(4, 11), dist.sample(4, 11), dist.sample(4, 12)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y) and not np.array_equal(a.X, c.X)


def test_sampler_options():
    noiseless = TaskDistribution(d=4, n=6).sample(64, 0, active=2)
    assert np.all(noiseless.X[..., 2:] == 0) and np.all(noiseless.w[:, 2:] == 0)
    assert np.allclose(noiseless.y, np.einsum("bnd,bd->bn", noiseless.X, noiseless.w))
    pooled = TaskDistribution(d=3, n=4, pool=2).sample(50, 3)
    assert len({tuple(w) for w in pooled.w}) == 2
    noisy = TaskDistribution(d=3, n=4000, noise=0.5, seed=1).sample(2, 0)
    residual = noisy.y - np.einsum("bnd,bd->bn", noisy.X, noisy.w)
    assert 0.45 < residual.std() < 0.55
    mixture = TaskDistribution(d=2, n=2000, x_scale=(0.1, 10.0)).sample(40, 0)
    assert set(np.round(mixture.X.std(axis=(1, 2)), 0)) <= {0.0, 10.0, 9.0, 11.0}


@pytest.mark.parametrize("kwargs, message", [
    (dict(d=0, n=2), "d"), (dict(d=2, n=2, noise=-1.0), "noise"), (dict(d=2, n=2, x_scale=()), "x_scale"),
    (dict(d=2, n=2, w_scale=-1.0), "w_scale"), (dict(d=2, n=2, pool=0), "pool"),
])
def test_sampler_refuses_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskDistribution(**kwargs)


# -- metrics ----------------------------------------------------------------------------------


def batch_with_queries(d=3, n=6, count=12, m=16, seed=0):
    batch = TaskDistribution(d=d, n=n, seed=seed).sample(count, 0, queries=m)
    return batch, np.repeat(batch.queries[:, None], n + 1, axis=1)


def test_spd_of_a_predictor_with_itself_is_zero():
    batch, Q = batch_with_queries()
    for p in (P.ols(), P.NearestNeighbours(3, "inverse_square")):
        pred = p.predict(batch.X, batch.y, Q)
        assert np.all(metrics.spd(pred, pred, 3) == 0)


def test_implicit_weights_recover_a_linear_predictor_exactly():
    batch, Q = batch_with_queries()
    for p in (P.ridge(0.3), P.sgd(0.05), P.gd(0.1), P.ols()):
        w, intercept, r2 = metrics.implicit_weights(Q, p.predict(batch.X, batch.y, Q))
        assert np.allclose(w, p.weights(batch.X, batch.y), atol=1e-10)
        assert np.allclose(intercept, 0, atol=1e-10) and np.allclose(r2, 1)


def test_ilwd_between_linear_predictors_is_their_weight_distance():
    batch, Q = batch_with_queries()
    a, b = P.ridge(1.0), P.sgd(0.05)
    fitted = [metrics.implicit_weights(Q, p.predict(batch.X, batch.y, Q))[0] for p in (a, b)]
    exact = ((a.weights(batch.X, batch.y) - b.weights(batch.X, batch.y)) ** 2).sum(-1).mean(0)
    assert np.allclose(metrics.ilwd(*fitted), exact, rtol=1e-9, atol=1e-12)


def test_implicit_weights_need_enough_queries():
    batch, Q = batch_with_queries(m=3)
    with pytest.raises(ValueError, match="at least d \\+ 1 = 4 queries"):
        metrics.implicit_weights(Q, P.ols().predict(batch.X, batch.y, Q))


def test_bootstrap_interval_contains_the_mean():
    per_task = np.random.default_rng(0).normal(size=(200, 3))
    lo, hi = metrics.bootstrap(per_task)
    assert np.all(lo < per_task.mean(0)) and np.all(per_task.mean(0) < hi)


# -- predictors -----------------------------------------------------------------------------------


def test_knn_against_a_direct_computation():
    batch, Q = batch_with_queries(d=2, n=5, count=3, m=4)
    pred = P.NearestNeighbours(3).predict(batch.X, batch.y, Q)
    b, k, j = 1, 4, 2
    nearest = np.argsort(((batch.X[b, :k] - Q[b, k, j]) ** 2).sum(-1))[:3]
    assert pred[b, k, j] == pytest.approx(batch.y[b, nearest].mean())
    assert np.all(pred[:, 0] == 0)


def test_compiled_ridge_network_matches_closed_form_ridge():
    d, n, lam = 3, 5, 0.5
    program = programs.ridge(d, n, lam)
    net = P.Compiled(compile(program, Bounds.calibrate(program, gaussian_tasks(d, n, 64))))
    batch, Q = batch_with_queries(d=d, n=n, count=6, m=2, seed=3)
    assert np.all(metrics.spd(net.predict(batch.X, batch.y, Q), P.ridge(lam).predict(batch.X, batch.y, Q), d) < 1e-10)
    assert np.all(metrics.spd(net.predict_next(batch.X, batch.y, batch.queries[:, 0])[..., None],
                              P.ridge(lam).predict_next(batch.X, batch.y, batch.queries[:, 0])[..., None], d) < 1e-10)
    assert np.allclose(net.weights(batch.X, batch.y), P.ridge(lam).weights(batch.X, batch.y), atol=1e-7)


def test_trained_predictor_paths_agree():
    """Padded prompts read at position 2k give what the plain prompt gives at its x tokens."""
    model = Transformer(ModelConfig(d=2, max_examples=4, layers=2, width=16), jax.random.PRNGKey(0))
    batch, _ = batch_with_queries(d=2, n=4, count=5, m=1)
    trained = P.Trained(model)
    x_query = batch.queries[:, 0]
    assert np.allclose(trained.predict_next(batch.X, batch.y, x_query),
                       trained.predict(batch.X, batch.y, P.next_example_queries(batch.X, x_query))[..., 0], atol=1e-5)


def test_trained_predictions_are_those_of_each_prefix_prompt_alone():
    """One sequence with every query after the prompt gives what prompt x_1, y_1, ..., x_k, y_k, x' gives."""
    from construct.trained.model import tokens

    model = Transformer(ModelConfig(d=3, max_examples=5, layers=2, width=16), jax.random.PRNGKey(1))
    batch, _ = batch_with_queries(d=3, n=4, count=2, m=3)
    Q = np.random.default_rng(2).normal(size=(2, 5, 3, 3))
    pred = P.Trained(model, chunk=1).predict(batch.X, batch.y, Q)
    for b, k, j in [(0, 0, 0), (0, 2, 1), (1, 4, 2), (1, 3, 0)]:
        alone = model(tokens(batch.X[b: b + 1, :k], batch.y[b: b + 1, :k], Q[b: b + 1, k, j])[0])[-1]
        assert pred[b, k, j] == pytest.approx(float(alone), abs=1e-5)


# -- training -----------------------------------------------------------------------------------------


def tiny_config(steps=60):
    raw = load_config(TINY).as_dict()
    raw["train"].update(steps=steps, log_every=10, checkpoint_every=30)
    return config_from_dict(raw)


def test_a_quick_training_run_lowers_the_loss(tmp_path):
    config = tiny_config(300)
    batch = config.task.sample(256, 10**7)
    before = Transformer(config.model, jax.random.PRNGKey(config.seed))
    after = train(config, tmp_path, progress=False)

    def loss(model):
        return float(np.mean((np.asarray(predict_examples(model, batch.X, batch.y)) - batch.y) ** 2))

    # below the initial loss, and below predicting 0 (the loss of a model that learned nothing)
    assert loss(after) < 0.85 * loss(before) and loss(after) < 0.9 * float(np.mean(batch.y**2))
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(10, 301, 10))
    model, saved = load_model(tmp_path / "model.eqx")
    assert saved.as_dict() == config.as_dict()


def test_resume_continues_the_same_run(tmp_path):
    config = tiny_config(60)
    straight = train(config, tmp_path / "straight", progress=False)
    train(config, tmp_path / "split", progress=False, until=30)
    resumed = train(config, tmp_path / "split", progress=False, resume=True)
    leaves = [jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array)) for m in (straight, resumed)]
    assert all(np.array_equal(a, b) for a, b in zip(*leaves))
    other = replace(config, lr=config.lr * 2)
    with pytest.raises(ValueError, match="another config"):
        train(other, tmp_path / "split", progress=False, resume=True)


def toml(raw: dict) -> str:
    """A config's tables as TOML (JSON's numbers, strings and arrays are TOML's; None is left out)."""
    return "\n".join(f"[{table}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items() if v is not None)
                     for table, keys in raw.items())


def test_export_writes_a_checkpoint_as_a_model_with_its_log_up_to_it(tmp_path, capsys):
    """A run stopped at step 30 of 60, exported: the checkpoint's weights, its step of the run's, its log."""
    config = tiny_config(60)
    stopped = train(config, tmp_path / "run", progress=False, until=30)
    (tmp_path / "run.toml").write_text(toml(config.as_dict()))
    export = tmp_path / "models" / "stopped.eqx"
    argv = [str(tmp_path / "run.toml"), "--out", str(tmp_path / "run"), "--export", str(export)]
    assert main(argv) == 0 and "step 30 of 60" in capsys.readouterr().err
    model, saved = load_model(export)
    assert saved.as_dict() == config.as_dict()
    leaves = [jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array)) for m in (stopped, model)]
    assert all(np.array_equal(a, b) for a, b in zip(*leaves))
    meta = json.loads(export.with_suffix(".json").read_text())
    checkpoint = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert meta["steps"] == 30 and meta["run_steps"] == 60 and meta["seconds"] == checkpoint["seconds"] > 0
    assert meta["command"] == "python -m construct.trained.train " + " ".join(argv)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert meta["final_loss"] == next(r["loss"] for r in log if r["step"] == 30)
    # a run still going has logged past its last checkpoint: the exported log stops at the exported step
    with open(tmp_path / "run" / "log.jsonl", "a") as f:
        f.write(json.dumps({**log[-1], "step": 40}) + "\n")
    assert main(argv) == 0
    export_log = [json.loads(line) for line in export.with_suffix(".log.jsonl").read_text().splitlines()]
    assert export_log == log and [r["step"] for r in export_log] == [10, 20, 30]
    # between the two writes of one save (the .eqx newer than the .json) it refuses to read a torn checkpoint
    written = (tmp_path / "run" / "checkpoint.json").stat().st_mtime_ns
    os.utime(tmp_path / "run" / "checkpoint.eqx", ns=(written + 10**9, written + 10**9))
    assert main(argv) == 2 and "a save is under way" in capsys.readouterr().err


def test_export_refuses_with_other_options_or_without_a_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(TINY), "--out", str(tmp_path), "--export", str(tmp_path / "m.eqx"), "--resume"])
    assert "--export trains nothing" in capsys.readouterr().err
    assert main([str(TINY), "--out", str(tmp_path), "--export", str(tmp_path / "m.eqx")]) == 2
    assert "no checkpoint to export" in capsys.readouterr().err


def continued_config(base: Path, steps=40, step=60, **model):
    raw = tiny_config(steps).as_dict()
    raw["train"].update(warmup=5, checkpoint_every=20)
    raw["model"].update(model)
    raw["start"] = {"model": str(base / "model.eqx"), "step": step}  # an absolute path stays itself
    return config_from_dict(raw)


def test_start_continues_a_saved_model_on_the_next_task_batches(tmp_path):
    base = tmp_path / "base"
    train(tiny_config(60), base, progress=False, command="base command")
    config = continued_config(base)
    assert np.array_equal(config.task_batch(0).X, tiny_config().task.sample(32, 60).X)
    straight = train(config, tmp_path / "straight", progress=False)
    train(config, tmp_path / "split", progress=False, until=20)
    resumed = train(config, tmp_path / "split", progress=False, resume=True)
    leaves = [jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array)) for m in (straight, resumed)]
    assert all(np.array_equal(a, b) for a, b in zip(*leaves))
    saved_model, saved = load_model(tmp_path / "straight" / "model.eqx")
    assert saved.as_dict() == config.as_dict() and saved.as_dict()["start"]["step"] == 60
    start = json.loads((tmp_path / "straight" / "model.json").read_text())["start"]
    assert start["steps"] == 60 and start["command"] == "base command" and len(start["sha256"]) == 64
    # it trained on from the saved weights, not from a fresh initialisation
    fresh = train(replace(config, start_model=None, start_step=0), tmp_path / "fresh", progress=False)
    assert not np.array_equal(jax.tree_util.tree_leaves(eqx.filter(fresh, eqx.is_array))[0], leaves[0][0])


def test_start_refuses_another_architecture_or_a_missing_model(tmp_path):
    base = tmp_path / "base"
    train(tiny_config(60), base, progress=False)
    with pytest.raises(ValueError, match="architecture"):
        train(continued_config(base, width=32), tmp_path / "wide", progress=False)
    with pytest.raises(FileNotFoundError, match="no model"):
        train(continued_config(tmp_path / "nowhere"), tmp_path / "none", progress=False)


@pytest.mark.parametrize("raw, message", [
    ({"task": {"d": 2}}, r"missing keys \['n'\]"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "speed": 1}}, r"unknown keys \['speed'\]"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5}, "curriculum": {"start": 1}}, "both start and every"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 0}}, "steps must be a positive integer"),
    ({"task": {"d": 2, "n": 3}, "model": {"width": 10, "heads": 3}, "train": {"steps": 5}}, "multiple of heads"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 100}}, r"warmup \(500 steps\) must be shorter than steps \(100\)"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "warmup": 1, "lr_end": 1.0}}, "lr_end must be in"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "warmup": 1}, "start": {"model": "m.eqx"}}, r"missing keys \['step'\]"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "warmup": 1}, "start": {"model": "m.eqx", "step": -1}},
     "step an integer >= 0"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "warmup": 1},
      "curriculum": {"start": 1, "every": 2, "points_start": 2}}, "points_start and points_step"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "warmup": 1},
      "curriculum": {"start": 1, "every": 2, "points_start": 0, "points_step": 1}}, "positive integers"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "warmup": 1}, "eval": {"tasks": 8}}, r"missing keys \['every'\]"),
    ({"task": {"d": 2, "n": 3}, "train": {"steps": 5, "warmup": 1}, "eval": {"tasks": 0, "every": 1}},
     "tasks and every must be positive"),
])
def test_bad_configs(raw, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(raw)


def test_points_curriculum_and_evaluation_log(tmp_path):
    """Prompts grow with the dimension curriculum (2, 4, then all 5 examples); the log holds SPD/d to OLS at
    every prefix on the fixed evaluation set, at every ``every`` steps and at the end, and it matches a
    measurement made afterwards from the saved model."""
    raw = {"task": {"d": 2, "n": 5}, "curriculum": {"start": 1, "every": 4, "points_start": 2, "points_step": 2},
           "model": {"layers": 1, "width": 8, "heads": 1},
           "train": {"steps": 12, "warmup": 2, "log_every": 4, "checkpoint_every": 6}, "eval": {"tasks": 16, "every": 5}}
    config = config_from_dict(raw)
    assert [config.points(s) for s in (0, 3, 4, 8, 11)] == [2, 2, 4, 5, 5]
    assert config.task_batch(0).X.shape == (64, 2, 2) and config.task_batch(8).y.shape == (64, 5)
    assert config_from_dict(config.as_dict()).as_dict() == config.as_dict()
    model = train(config, tmp_path, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["points"] for r in log if "loss" in r] == [2, 4, 5]
    evals = [r for r in log if "eval" in r]
    assert [r["step"] for r in evals] == [5, 10, 12]
    batch, _ = evaluation_tasks(config.task, 16, 1, seed=0)
    pred = P.Trained(model).predict_next(batch.X, batch.y, batch.queries[:, 0])
    ols = P.ols().predict_next(batch.X, batch.y, batch.queries[:, 0])
    assert np.allclose(evals[-1]["eval"]["spd_over_d_to_ols"], ((pred - ols) ** 2).mean(0) / 2, rtol=1e-6)


def test_steps_below_the_warmup_are_refused_by_name(tmp_path, capsys):
    assert main([str(TINY), "--out", str(tmp_path), "--steps", "10", "--no-progress"]) == 2
    assert "warmup (20 steps) must be shorter than steps (10)" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((CONFIGS.parent / "checkpoints").glob("*.eqx")), ids=lambda p: p.stem)
def test_committed_models_load_with_their_config_and_command(path):
    model, config = load_model(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["command"].startswith(f"python -m construct.trained.train construct/trained/configs/{path.stem}.toml")
    assert config.as_dict() == load_config(CONFIGS / f"{path.stem}.toml").as_dict()
    assert path.stat().st_size < 5 * 2**20


# -- experiments -----------------------------------------------------------------------------------------


def contains_its_mean(summary: dict) -> bool:
    mean, low, high = (np.atleast_1d(summary[key]) for key in ("mean", "low", "high"))
    return bool(np.all(low <= mean + 1e-12) and np.all(mean <= high + 1e-12))


@pytest.mark.parametrize("experiment", ["noiseless", "noisy", "depth", "probes"])
def test_experiment_quick_mode(experiment, tmp_path):
    cmd = [sys.executable, "-m", "construct.trained.experiments", experiment, "--quick", "--no-progress",
           "--out", str(tmp_path), "--models", str(tmp_path / "models")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["experiment"] == experiment and result["quick"] and result["seconds"] < 120
    assert result["command"].startswith(f"python -m construct.trained.experiments {experiment} --quick")
    assert all(used["command"] and used["training_seconds"] > 0 for used in result["models_used"].values())
    for key, used in result["models_used"].items():  # what the figures' titles name: the model and its steps
        assert used["name"] == Path(key).stem and used["steps"] == load_config(CONFIGS / key).steps
        assert used["path"] == str(tmp_path / "models" / used["name"] / "model.eqx")  # outside the repository
    pictures = {"noiseless": ["figure1.png", "ilwd.png"], "noisy": ["noisy.png"], "depth": ["depth.png"],
                "probes": ["probes.png"]}[experiment]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in pictures)
    for name in pictures:  # redrawn from results.json alone
        (tmp_path / name).unlink()
    assert figures_main([str(tmp_path)]) == 0 and all((tmp_path / name).stat().st_size > 10_000 for name in pictures)
    if experiment == "noiseless":
        names = {"transformer", "OLS", "compiled sgd", "compiled ridge", "3-NN"}
        assert names <= set(result["error_over_d"]) and names - {"transformer"} <= set(result["spd_over_d"])
        assert all(contains_its_mean(s) for table in ("error_over_d", "spd_over_d", "ilwd")
                   for s in result[table].values())
        assert set(result["refused"]) == {"compiled sgd", "compiled ridge"}
        assert len(result["closest_ridge"]["lam"]) == len(result["k"]) == result["n"] + 1
    if experiment == "noisy":
        for row in result["rows"]:
            low, high = row["best_lam_interval"]
            assert min(row["lams"]) <= low <= high <= max(row["lams"]) and row["bayes_lam"] in row["lams"]
            assert row["best_lam"] == row["lams"][int(np.argmin(row["mspd_over_d"]))]
    if experiment == "depth":
        assert [row["layers"] for row in result["rows"]] == [1, 2]
        assert all(contains_its_mean({"mean": s["mspd_over_d"], "low": s["low"], "high": s["high"]})
                   for row in result["rows"] for s in row["by_family"].values())
    if experiment == "probes":
        for who in ("model", "control"):
            for target in ("X^T y", "w_OLS"):
                for kind in ("linear", "MLP"):
                    probe = result[who][target][kind]
                    assert len(probe["mean"]) == 3 and np.shape(probe["by_k"]) == (3, 3)  # layers 0..2, k = 1..3


def test_experiment_no_train_refuses_a_missing_model_by_name(tmp_path):
    cmd = [sys.executable, "-m", "construct.trained.experiments", "noiseless", "--quick", "--no-progress", "--no-train",
           "--out", str(tmp_path), "--models", str(tmp_path / "models")]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 2 and "no model of quick_d2.toml" in run.stderr and "--no-train" in run.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "results.json").exists()


def test_results_store_paths_relative_to_the_repository(tmp_path):
    from construct.trained.experiments import CHECKPOINTS, ROOT, repository_path

    assert repository_path(CHECKPOINTS / "ols.eqx") == "construct/trained/checkpoints/ols.eqx"
    assert repository_path(ROOT / "runs" / "models" / "x" / "model.eqx") == "runs/models/x/model.eqx"
    assert repository_path(tmp_path / "model.eqx") == str(tmp_path / "model.eqx")  # outside: as given


# -- figures ---------------------------------------------------------------------------------------------


def curve(mean, spread=0.1):
    mean = np.asarray(mean, dtype=float)
    return {"mean": mean.tolist(), "low": (mean * (1 - spread)).tolist(), "high": (mean * (1 + spread)).tolist()}


def test_coincident_curves_are_grouped_from_the_data():
    from construct.trained.figures import coincident

    base = np.array([1.0, 0.5, 0.2, 0.1, 0.05])
    table = {"OLS": curve(base * 0.3), "ridge(0.1)": curve(base), "SGD(0.02)": curve(base * 2),
             "compiled ridge": curve(base * (1 + 1e-9)), "compiled sgd": curve(base * 2 * (1 + 1e-12)),
             "GD(0.01)": curve(base * 2 * 1.02)}  # 2% apart: 0.0086 decades, visible on this table's 1.5 decades
    assert coincident(table, log=True) == [["OLS"], ["ridge(0.1)", "compiled ridge"], ["SGD(0.02)", "compiled sgd"],
                                           ["GD(0.01)"]]
    # a curve that meets another at some k only is not hidden
    touching = {"a": curve([1.0, 2.0, 3.0]), "b": curve([1.0, 2.5, 3.0])}
    assert coincident(touching, log=False) == [["a"], ["b"]]
    # different intervals (bands) are not hidden either, and groups are transitive
    assert coincident({"a": curve(base), "b": curve(base, 0.3)}, log=True) == [["a"], ["b"]]
    chain = {"a": curve(base), "b": curve(base * (1 + 1e-4)), "c": curve(base * (1 + 2e-4))}
    assert coincident(chain, log=True) == [["a", "b", "c"]]


def test_spread_labels_keep_their_order_and_a_gap():
    from construct.trained.figures import _spread

    values = [1.0, 1.01, 0.99, 3.0]
    placed = _spread(values, gap=0.1)
    assert placed[3] == 3.0 and np.argsort(placed).tolist() == np.argsort(values, kind="stable").tolist()
    ordered = sorted(placed)
    assert all(b - a >= 0.1 - 1e-12 for a, b in zip(ordered, ordered[1:]))
    assert np.isclose(np.mean(placed[:3]), np.mean(values[:3]))  # the cluster stays centred on its points


# -- the learning curve and its extrapolation -------------------------------------------------------------------


def test_the_fitted_law_recovers_a_known_one_and_says_when_a_target_is_below_its_floor():
    from construct.trained.curve import fit_law, law, steps_to

    steps = np.arange(1, 10) * 4000
    true = {"a": 0.1, "b": 0.8, "c": 0.02}
    fit = fit_law(steps, law(true, steps))
    assert fit["a"] == pytest.approx(0.1, rel=1e-4) and fit["b"] == pytest.approx(0.8, rel=1e-4)
    assert fit["c"] == pytest.approx(0.02, rel=1e-3) and fit["rms_log"] < 1e-6
    t_star = steps_to(fit, 0.05)
    assert law(true, t_star) == pytest.approx(0.05, rel=1e-4) and t_star > steps[-1]
    assert steps_to({**true, "c": 0.06}, 0.05) is None and steps_to({**true, "c": 0.05}, 0.05) is None
    pure = fit_law(steps, 0.3 * (steps / 10_000) ** -0.5)  # no floor: c fitted at 0
    assert pure["c"] == pytest.approx(0, abs=1e-6) and pure["b"] == pytest.approx(0.5, rel=1e-4)


def test_the_curve_command_fits_the_eval_records_after_the_curriculum(tmp_path):
    from construct.trained.curve import law, main

    raw = {"task": {"d": 2, "n": 5}, "curriculum": {"start": 1, "every": 100, "points_start": 3, "points_step": 2},
           "model": {"layers": 1, "width": 8, "heads": 1},
           "train": {"steps": 1000, "warmup": 2}, "eval": {"tasks": 16, "every": 100}}
    config = tmp_path / "run.toml"
    config.write_text("\n".join(f"[{table}]\n" + "\n".join(f"{k} = {v}" for k, v in keys.items())
                                for table, keys in raw.items()))
    true = {"a": 0.2, "b": 0.7, "c": 0.01}
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in range(100, 1001, 100)]
    lines += [json.dumps({"step": s, "eval": {"spd_over_d_to_ols": [0.0, 0.5 if s < 200 else 0.004,
                                                                    9.0 if s < 200 else float(law(true, s))]}})
              for s in range(100, 1001, 100)]
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    assert main([str(config), "--log", str(tmp_path / "log.jsonl"), "--out", str(tmp_path / "out")]) == 0
    r = json.loads((tmp_path / "out" / "results.json").read_text())
    assert r["curriculum_end"] == 100 and r["fit"]["steps"] == list(range(200, 1001, 100))  # the 100 record: before
    assert r["fit"]["c"] == pytest.approx(0.01, rel=1e-3) and not r["floor_reached"]
    assert r["steps_to_target"] == pytest.approx(10_000 * (0.2 / 0.04) ** (1 / 0.7), rel=1e-3)
    assert r["reached_at"] is None and not r["last"]["every_k_le_d_at_most_target"]
    assert len(r["leave_one_out"]) == 9 and r["command"].startswith("python -m construct.trained.curve")
    assert (tmp_path / "out" / "curve.png").stat().st_size > 10_000
