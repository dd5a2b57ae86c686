"""Train a transformer to learn linear regression in context.

    python -m construct.trained.train CONFIG.toml --out DIR [--resume] [--steps N] [--until N]
    python -m construct.trained.train CONFIG.toml --out DIR --export MODEL.eqx

The config (see ``construct/trained/configs/``) has four tables: ``[task]``
(``construct.tasks.TaskDistribution``'s fields), ``[curriculum]`` (``start``
active dimensions, one more every ``every`` steps; omit for none; with
``points_start`` and ``points_step``, Garg et al.'s curriculum over the
number of examples too: stage s of the dimension curriculum trains on
prompts of ``min(n, points_start + s * points_step)`` examples),
``[model]`` (``layers``, ``width``, ``heads``) and ``[train]`` (``steps``,
``batch``, ``lr``, ``warmup``, ``seed``, ``log_every``, ``checkpoint_every``,
optional ``lr_end``). Adam with linear warmup and cosine decay to ``lr_end``
(default a tenth of ``lr``), gradients clipped at global norm 1; the loss is
the mean squared error of the predictions at every x token.

An optional ``[eval]`` table (``tasks``, ``every``) measures the model on a
fixed set of ``tasks`` evaluation tasks (``evaluation_tasks``, seed 0, one
query each: the task set of the depth and noisy experiments; the noiseless
experiment draws 2d queries per task, so its tasks have the same inputs X
but other weights w) every ``every`` steps and at the end: SPD/d to
minimum-norm OLS at every prefix k, written to the log as an ``eval``
record.

An optional ``[start]`` table continues training a saved model: ``model``
(its ``model.eqx``, a path relative to ``construct/trained/``, of the same
architecture) and ``step`` (the task batch to go on from; the model's own
step count continues its task stream where it stopped). The model's
weights are the starting point, with a fresh optimiser and this config's
schedule; curriculum and batches are indexed ``step + s``. The run's
sidecar records the start model's file hash, steps, seconds and command.
(A finished run cannot simply be resumed for more steps: its schedule
depends on ``steps``, and ``--resume`` refuses a changed config.)

The run directory holds ``log.jsonl`` (one JSON line every ``log_every``
steps), ``checkpoint.eqx`` and ``checkpoint.json`` (model, optimiser state
and step, written atomically) and at the end ``model.eqx`` and
``model.json`` (the model alone, its config, the final loss, the training
wall-clock and CPU seconds summed over resumed segments, and the command
that made it; on a shared machine the two differ). Batch ``s`` is task batch ``s`` of the seeded
distribution, so ``--resume`` continues the very same run.

``--export MODEL.eqx`` trains nothing: it writes the model of the run
directory's checkpoint as a saved model (``MODEL.eqx`` and ``MODEL.json``,
whose ``steps`` is the checkpoint's step and ``run_steps`` the config's, so
a run stopped, or still going, before its end says so) and the run's log up
to that step (``MODEL.log.jsonl``). A run still going may be exported: the
checkpoint is read only when its two files are from one save.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from ..tasks import TaskDistribution
from . import predictors
from .model import ModelConfig, Transformer, predict_examples

TRAIN_KEYS = {"steps", "batch", "lr", "lr_end", "warmup", "seed", "log_every", "checkpoint_every"}
CURRICULUM_KEYS = {"start", "every", "points_start", "points_step"}
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TrainConfig:
    task: TaskDistribution
    model: ModelConfig
    steps: int
    batch: int = 64
    lr: float = 1e-3
    lr_end: float | None = None  # None: lr / 10
    warmup: int = 500
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000
    curriculum_start: int | None = None
    curriculum_every: int | None = None
    curriculum_points_start: int | None = None
    curriculum_points_step: int | None = None
    start_model: str | None = None  # [start]: a saved model to continue from (relative to construct/trained/)
    start_step: int = 0
    eval_tasks: int | None = None  # [eval]
    eval_every: int | None = None

    def _stage(self, step: int) -> int:
        return (self.start_step + step) // self.curriculum_every

    def active(self, step: int) -> int:
        """Active input dimensions at ``step`` (counted from ``start_step``)."""
        if self.curriculum_start is None:
            return self.task.d
        return min(self.task.d, self.curriculum_start + self._stage(step))

    def points(self, step: int) -> int:
        """Examples per training prompt at ``step``: the curriculum's, else the task's n."""
        if self.curriculum_points_start is None:
            return self.task.n
        return min(self.task.n, self.curriculum_points_start + self._stage(step) * self.curriculum_points_step)

    def task_batch(self, step: int):
        """The task batch of training step ``step`` (its prompts cut to ``points(step)`` examples)."""
        batch = self.task.sample(self.batch, self.start_step + step, active=self.active(step))
        k = self.points(step)
        return replace(batch, X=batch.X[:, :k], y=batch.y[:, :k])

    def as_dict(self) -> dict:
        task = asdict(self.task)
        task["x_scale"], task["w_scale"] = list(task["x_scale"]), list(task["w_scale"])
        model = {k: getattr(self.model, k) for k in ("layers", "width", "heads")}  # d, n come from [task]
        out = {"task": task, "model": model,
               "train": {k: getattr(self, k) for k in sorted(TRAIN_KEYS)}}
        if self.curriculum_start is not None:
            out["curriculum"] = {"start": self.curriculum_start, "every": self.curriculum_every}
            if self.curriculum_points_start is not None:
                out["curriculum"].update(points_start=self.curriculum_points_start,
                                         points_step=self.curriculum_points_step)
        if self.eval_tasks is not None:
            out["eval"] = {"tasks": self.eval_tasks, "every": self.eval_every}
        if self.start_model is not None:
            out["start"] = {"model": self.start_model, "step": self.start_step}
        return out


def _table(raw: dict, name: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    table = raw.get(name, {})
    unknown = set(table) - allowed
    if unknown:
        raise ValueError(f"config [{name}]: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    missing = required - set(table)
    if missing:
        raise ValueError(f"config [{name}]: missing keys {sorted(missing)}")
    return table


def config_from_dict(raw: dict) -> TrainConfig:
    """A TrainConfig from the parsed TOML, with errors that name the table and key."""
    unknown = set(raw) - {"task", "curriculum", "model", "train", "start", "eval"}
    if unknown:
        raise ValueError(f"config: unknown tables {sorted(unknown)}")
    task_fields = {f.name for f in fields(TaskDistribution)}
    task = _table(raw, "task", task_fields, {"d", "n"})
    task = {k: tuple(v) if isinstance(v, list) else v for k, v in task.items()}
    model = _table(raw, "model", {"layers", "width", "heads"})
    train = _table(raw, "train", TRAIN_KEYS, {"steps"})
    curriculum = _table(raw, "curriculum", CURRICULUM_KEYS)
    start = _table(raw, "start", {"model", "step"}, {"model", "step"}) if "start" in raw else {}
    evaluation = _table(raw, "eval", {"tasks", "every"}, {"tasks", "every"}) if "eval" in raw else {}
    if curriculum and not {"start", "every"} <= set(curriculum):
        raise ValueError("config [curriculum]: give both start and every")
    if ("points_start" in curriculum) != ("points_step" in curriculum):
        raise ValueError("config [curriculum]: give both points_start and points_step, or neither")
    distribution = TaskDistribution(**task)
    config = TrainConfig(
        task=distribution, model=ModelConfig(d=distribution.d, max_examples=distribution.n, **model), **train,
        curriculum_start=curriculum.get("start"), curriculum_every=curriculum.get("every"),
        curriculum_points_start=curriculum.get("points_start"), curriculum_points_step=curriculum.get("points_step"),
        start_model=start.get("model"), start_step=start.get("step", 0),
        eval_tasks=evaluation.get("tasks"), eval_every=evaluation.get("every"),
    )
    for name in ("steps", "batch", "warmup", "log_every", "checkpoint_every"):
        if not isinstance(getattr(config, name), int) or getattr(config, name) < (0 if name == "warmup" else 1):
            raise ValueError(f"config [train]: {name} must be a positive integer, got {getattr(config, name)!r}")
    if config.warmup >= config.steps:
        raise ValueError(f"config [train]: warmup ({config.warmup} steps) must be shorter than steps "
                         f"({config.steps}); lower warmup or train longer")
    if config.lr_end is not None and not 0 <= config.lr_end <= config.lr:
        raise ValueError(f"config [train]: lr_end must be in [0, lr = {config.lr:g}], got {config.lr_end!r}")
    if config.curriculum_start is not None and not (1 <= config.curriculum_start <= distribution.d
                                                    and config.curriculum_every >= 1):
        raise ValueError("config [curriculum]: start must be in 1..d and every >= 1")
    if config.curriculum_points_start is not None and not all(
            isinstance(v, int) and v >= 1 for v in (config.curriculum_points_start, config.curriculum_points_step)):
        raise ValueError("config [curriculum]: points_start and points_step must be positive integers")
    if evaluation and not all(isinstance(v, int) and v >= 1 for v in evaluation.values()):
        raise ValueError("config [eval]: tasks and every must be positive integers")
    if start and not (isinstance(start["model"], str) and isinstance(start["step"], int) and start["step"] >= 0):
        raise ValueError("config [start]: model must be a path and step an integer >= 0")
    return config


def start_model(config: TrainConfig):
    """(model, facts) of the ``[start]`` model: the same architecture, or an error that says what differs."""
    path = HERE / config.start_model
    if not path.exists():
        raise FileNotFoundError(f"config [start]: no model at {path}")
    model, saved = load_model(path)
    if saved.model != config.model:
        raise ValueError(f"config [start]: {config.start_model} has architecture {saved.model}, "
                         f"this config {config.model}")
    info = model_info(path)
    facts = {"model": config.start_model, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             **{key: info.get(key) for key in ("steps", "seconds", "cpu_seconds", "command")}}
    return model, facts


def load_config(path: str | Path) -> TrainConfig:
    with open(path, "rb") as f:
        return config_from_dict(tomllib.load(f))


def optimizer(config: TrainConfig):
    end = config.lr / 10 if config.lr_end is None else config.lr_end
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, max(config.warmup, 1), config.steps, end_value=end)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule)), schedule


def initial(config: TrainConfig):
    model = Transformer(config.model, jax.random.PRNGKey(config.seed))
    opt, _ = optimizer(config)
    return model, opt.init(eqx.filter(model, eqx.is_array))


def make_step(config: TrainConfig):
    opt, _ = optimizer(config)

    @eqx.filter_jit
    def step(model, opt_state, X, y):
        def loss(m):
            return jnp.mean((predict_examples(m, X, y) - y) ** 2)

        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, value

    return step


def evaluation_tasks(task: TaskDistribution, count: int, queries: int, seed: int):
    """Fresh tasks of n - 1 examples (a seed the training never uses), with ``queries`` shared x' per prefix.

    A model trained on prompts of n examples predicts at their x tokens, so
    at positions up to 2n - 2; a prompt of n - 1 examples and a query uses
    exactly those positions (position 2n would be one it never trained).
    """
    batch = replace(task, n=task.n - 1, seed=task.seed + 10**6 + seed).sample(count, 0, queries=queries)
    Q = np.repeat(batch.queries[:, None], batch.X.shape[1] + 1, axis=1)
    return batch, Q


class Evaluation:
    """SPD/d of the model to minimum-norm OLS at every prefix, on the ``[eval]`` task set (fixed for the run)."""

    def __init__(self, config: TrainConfig):
        self.batch, _ = evaluation_tasks(config.task, config.eval_tasks, 1, seed=0)
        self.ols = predictors.ols().predict_next(self.batch.X, self.batch.y, self.batch.queries[:, 0])

    def __call__(self, model) -> list[float]:
        pred = predictors.Trained(model).predict_next(self.batch.X, self.batch.y, self.batch.queries[:, 0])
        return (((pred - self.ols) ** 2).mean(axis=0) / self.batch.X.shape[2]).tolist()


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(out: Path, model, opt_state, step: int, config: TrainConfig, clock: "Clock") -> None:
    """Model, optimiser state, step and the training seconds so far (a resumed run adds to them)."""
    _atomic(out / "checkpoint.eqx", lambda p: eqx.tree_serialise_leaves(p, (model, opt_state)))
    meta = {"step": step, **clock.read(), "config": config.as_dict()}
    _atomic(out / "checkpoint.json", lambda p: p.write_text(json.dumps(meta)))


def load_checkpoint(out: Path, config: TrainConfig):
    """(model, optimiser state, step, Clock of the time trained so far) from ``out``'s checkpoint."""
    meta = json.loads((out / "checkpoint.json").read_text())
    if meta["config"] != config.as_dict():
        raise ValueError(f"{out}: the checkpoint was made with another config; refusing to resume")
    model, opt_state = eqx.tree_deserialise_leaves(out / "checkpoint.eqx", initial(config))
    return model, opt_state, meta["step"], Clock(meta.get("seconds", 0.0), meta.get("cpu_seconds", 0.0))


class Clock:
    """Wall-clock and CPU seconds (all threads of this process) of a run, counted on from a resumed run's."""

    def __init__(self, seconds: float = 0.0, cpu_seconds: float = 0.0):
        self._wall = time.perf_counter() - seconds
        self._cpu = time.process_time() - cpu_seconds

    def read(self) -> dict:
        return {"seconds": round(time.perf_counter() - self._wall, 1),
                "cpu_seconds": round(time.process_time() - self._cpu, 1)}


def save_model(path: Path, model, config: TrainConfig, info: dict) -> None:
    """``path`` (.eqx) and its ``.json`` sidecar: everything needed to load the model again."""
    _atomic(path, lambda p: eqx.tree_serialise_leaves(p, model))
    sidecar = path.with_suffix(".json")
    _atomic(sidecar, lambda p: p.write_text(json.dumps({"config": config.as_dict(), **info}, indent=1)))


def model_info(path: str | Path) -> dict:
    """The sidecar of a saved model: its config, steps, final loss, training seconds and command."""
    return json.loads(Path(path).with_suffix(".json").read_text())


def load_model(path: str | Path):
    """(model, config) from a ``model.eqx`` written by ``save_model``."""
    path = Path(path)
    meta = model_info(path)
    config = config_from_dict(meta["config"])
    return eqx.tree_deserialise_leaves(path, Transformer(config.model, jax.random.PRNGKey(0))), config


def train(config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          command: str | None = None, until: int | None = None):
    """Train (or resume) into ``out``; returns the model. ``until`` stops early, leaving a checkpoint to resume."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / "checkpoint.json").exists():
        model, opt_state, start, clock = load_checkpoint(out, config)
    elif resume:
        raise FileNotFoundError(f"{out}: no checkpoint to resume from")
    else:
        model, opt_state = initial(config)
        if config.start_model is not None:
            model = start_model(config)[0]
            opt_state = optimizer(config)[0].init(eqx.filter(model, eqx.is_array))
        start, clock = 0, Clock()
        (out / "log.jsonl").write_text("")
    step_fn = make_step(config)
    _, schedule = optimizer(config)
    evaluate = Evaluation(config) if config.eval_tasks is not None else None
    stop = config.steps if until is None else min(until, config.steps)
    bar = tqdm(range(start, stop), initial=start, total=config.steps, disable=not progress,
               desc="train", file=sys.stderr)
    loss = float("nan")
    with open(out / "log.jsonl", "a") as log:
        for step in bar:
            batch = config.task_batch(step)
            model, opt_state, value = step_fn(model, opt_state, jnp.asarray(batch.X, jnp.float32),
                                              jnp.asarray(batch.y, jnp.float32))
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                loss = float(value)
                record = {"step": step + 1, "loss": loss, "lr": float(schedule(step)),
                          "active": config.active(step), "points": config.points(step), **clock.read()}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{loss:.4f}", active=config.active(step))
            if evaluate is not None and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
                log.write(json.dumps({"step": step + 1, "eval": {"spd_over_d_to_ols": evaluate(model)}}) + "\n")
                log.flush()
            if (step + 1) % config.checkpoint_every == 0 or step + 1 in (config.steps, stop):
                save_checkpoint(out, model, opt_state, step + 1, config, clock)
    if stop < config.steps:
        return model
    save_model(out / "model.eqx", model, config, saved_info(config, config.steps, loss, clock.read(), command))
    return model


def saved_info(config: TrainConfig, steps: int, loss: float, seconds: dict, command: str | None) -> dict:
    """A saved model's sidecar facts: steps (of the run's ``run_steps``), final loss, seconds, command, start."""
    info = {"steps": steps, "run_steps": config.steps, "final_loss": loss, **seconds, "command": command or ""}
    if config.start_model is not None:
        info["start"] = start_model(config)[1]
    return info


def _checkpoint_stamp(out: Path) -> tuple:
    """The two checkpoint files' modification times and sizes; one save writes the .eqx, then the .json."""
    eqx_stat, json_stat = (out / "checkpoint.eqx").stat(), (out / "checkpoint.json").stat()
    if eqx_stat.st_mtime_ns > json_stat.st_mtime_ns:
        raise ValueError(f"{out}: checkpoint.eqx is newer than checkpoint.json (a save is under way); try again")
    return eqx_stat.st_mtime_ns, eqx_stat.st_size, json_stat.st_mtime_ns, json_stat.st_size


def export_checkpoint(config: TrainConfig, out: str | Path, path: str | Path, command: str | None = None) -> int:
    """Write the model of ``out``'s checkpoint to ``path`` (with its sidecar) and the log up to it; its step."""
    out, path = Path(out), Path(path)
    if not (out / "checkpoint.json").exists():
        raise FileNotFoundError(f"{out}: no checkpoint to export")
    stamp = _checkpoint_stamp(out)
    model, _, step, clock = load_checkpoint(out, config)
    if _checkpoint_stamp(out) != stamp:
        raise ValueError(f"{out}: the checkpoint was saved again while it was read; try again")
    meta = json.loads((out / "checkpoint.json").read_text())
    lines = [line for line in (out / "log.jsonl").read_text().splitlines() if json.loads(line)["step"] <= step]
    records = [json.loads(line) for line in lines]
    losses = [r["loss"] for r in records if r["step"] == step and "loss" in r]  # the last written wins
    seconds = {key: meta.get(key, 0.0) for key in ("seconds", "cpu_seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model, config, saved_info(config, step, losses[-1] if losses else None, seconds, command))
    _atomic(path.with_suffix(".log.jsonl"), lambda p: p.write_text("".join(line + "\n" for line in lines)))
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.trained.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a TOML config (see construct/trained/configs/)")
    parser.add_argument("--out", required=True, help="run directory (log, checkpoints, final model)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    parser.add_argument("--steps", type=int, help="override [train] steps")
    parser.add_argument("--until", type=int, help="stop after this step (resume later with --resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--export", type=Path, metavar="MODEL.eqx",
                        help="train nothing: write the model of --out's checkpoint here, with its log up to it")
    args = parser.parse_args(argv)
    if args.export is not None and (args.resume or args.until is not None or args.steps is not None):
        parser.error("--export trains nothing: give it without --resume, --until and --steps")
    try:
        config = load_config(args.config)
        if args.steps is not None:
            raw = config.as_dict()
            raw["train"]["steps"] = args.steps
            config = config_from_dict(raw)
        command = shlex.join(["python", "-m", "construct.trained.train", *(argv if argv is not None else sys.argv[1:])])
        if args.export is not None:
            step = export_checkpoint(config, args.out, args.export, command=command)
            print(f"wrote {args.export} (step {step:,} of {config.steps:,}) and its .json and .log.jsonl",
                  file=sys.stderr)
            return 0
        train(config, args.out, resume=args.resume, progress=not args.no_progress, command=command,
              until=args.until)
    except (ValueError, FileNotFoundError, tomllib.TOMLDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
