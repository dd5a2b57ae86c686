"""Benchmark of the compiled networks: size, time, memory and error against the closed forms.

    python -m construct.cli.benchmark            # the full table (a few minutes)
    python -m construct.cli.benchmark --json     # the same numbers as JSON
    python -m construct.cli.benchmark --d 2 --n 1 4 --algo ridge

Each configuration runs in a fresh subprocess, so "peak MB" is that
process's own peak resident memory (weights, activations, JAX's buffers).
Tasks: x ~ N(0, I), w ~ N(0, I), y = w^T x; SGD with alpha = 0.05 and
lam = 0.1 from w0 = 0, ridge with lam = 0.1. Bounds are calibrated on 256
tasks (margin 4); errors are ``max |yhat - yhat*| / (1 + |yhat*|)`` over
every prefix of 64 fresh tasks (float64, JAX batch) and 8 tasks (float32,
numpy). A fresh task can fall outside the calibrated domain (the network
then refuses it); "outside" counts those of the 64, which the errors skip.
Times: compile = calibration + weight assembly; forward = seconds
per task, numpy one prompt at a time, JAX on a batch of 64 after one
warm-up call (the jit compilation is reported separately).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np

from .. import reference
from ..compiler import Bounds, DomainError, compile
from ..compiler.size import DEFAULT_MAX_BYTES
from ..raw import programs
from ..tasks import gaussian_tasks
from . import budget

ALPHA, LAM, CALIBRATION, BATCH, FLOAT32_TASKS, NUMPY_TASKS = 0.05, 0.1, 256, 64, 8, 3

PROGRAMS = {"sgd": lambda d, n: programs.sgd(d, n, ALPHA, LAM), "ridge": lambda d, n: programs.ridge(d, n, LAM)}
CLOSED_FORMS = {"sgd": lambda task: reference.sgd_one_pass(*task, ALPHA, LAM),
                "ridge": lambda task: reference.ridge(*task, LAM)}


def cost(algo: str, d: int, n: int) -> budget.Cost:
    """What ``measure(algo, d, n)`` costs (``budget``): both networks, the numpy passes and the JAX batches."""
    f64, f32 = (budget.network(PROGRAMS[algo], d, n, dtype) for dtype in ("float64", "float32"))
    runs = (budget.compiling(f64) + budget.forward(f64, NUMPY_TASKS) + budget.compiling(f32)
            + budget.forward(f32, FLOAT32_TASKS) + budget.jax_batches(f64, BATCH, 2 * BATCH + 1))
    return budget.process() + budget.calibration(f64, CALIBRATION, d).then(runs)  # in a process of its own


def measure(algo: str, d: int, n: int, max_bytes: float = DEFAULT_MAX_BYTES) -> dict:
    """One configuration, measured in this process."""
    program, closed = PROGRAMS[algo](d, n), CLOSED_FORMS[algo]

    def worst(pairs):
        return max((float(np.max(np.abs(got - want) / (1 + np.abs(want)))) for got, want in pairs
                    if not np.isnan(got).all()), default=float("nan"))

    def refused(call):
        try:
            return call()
        except DomainError:
            return np.full(n + 1, np.nan)

    start = time.perf_counter()
    bounds = Bounds.calibrate(program, gaussian_tasks(d, n, CALIBRATION, seed=0))
    net = compile(program, bounds, max_bytes=max_bytes)
    compile_s = time.perf_counter() - start

    tasks = gaussian_tasks(d, n, BATCH, seed=1)
    start = time.perf_counter()
    numpy_preds = [refused(lambda: net.predict(*t, tolerance=None)) for t in tasks[:NUMPY_TASKS]]
    numpy_s = (time.perf_counter() - start) / NUMPY_TASKS

    X, y, q = (np.stack(parts) for parts in zip(*tasks))
    start = time.perf_counter()
    net.predict_batch(X[:1], y[:1], q[:1], outside="nan", backend="jax", tolerance=None)
    jit_s = time.perf_counter() - start
    net.predict_batch(X, y, q, outside="nan", backend="jax", tolerance=None)  # warm-up at the batch shape
    start = time.perf_counter()
    jax_preds = net.predict_batch(X, y, q, outside="nan", backend="jax", tolerance=None)
    jax_s = (time.perf_counter() - start) / BATCH

    expected = [closed(t) for t in tasks]
    f32 = compile(program, bounds, dtype=np.float32, max_bytes=max_bytes)
    f32_pairs = [(refused(lambda: f32.predict(*t, tolerance=None)), e) for t, e in zip(tasks[:FLOAT32_TASKS], expected)]
    size = net.size()
    return {
        "algo": algo, "d": d, "n": n, "layers": size["layers"], "D": size["residual_width"],
        "mlp_width": size["mlp_width"], "head_size": size["head_size"], "parameters": size["parameters"],
        "compile_s": compile_s, "numpy_s_per_task": numpy_s, "jax_s_per_task": jax_s, "jax_jit_s": jit_s,
        "max_error_float64": worst(list(zip(jax_preds, expected)) + list(zip(numpy_preds, expected))),
        "max_error_float32": worst(f32_pairs),
        "outside": int(np.isnan(jax_preds).all(axis=1).sum()),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_subprocess(algo: str, d: int, n: int, max_bytes: float = DEFAULT_MAX_BYTES) -> dict:
    cmd = [sys.executable, "-m", "construct.cli.benchmark", "--child", algo, str(d), str(n), repr(float(max_bytes))]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise RuntimeError(f"the benchmark of {algo} d={d} n={n} failed in its subprocess: {last}")
    return json.loads(done.stdout)


def table(rows: list[dict]) -> str:
    head = (f"{'algo':<6}{'d':>3}{'n':>4}{'layers':>7}{'D':>6}{'MLP':>5}{'params':>12}{'compile s':>10}"
            f"{'numpy s':>9}{'jax s':>9}{'err f64':>9}{'err f32':>9}{'outside':>8}{'peak MB':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['algo']:<6}{r['d']:>3}{r['n']:>4}{r['layers']:>7}{r['D']:>6}{r['mlp_width']:>5}"
            f"{r['parameters']:>12,}{r['compile_s']:>10.2f}{r['numpy_s_per_task']:>9.4f}{r['jax_s_per_task']:>9.4f}"
            f"{r['max_error_float64']:>9.1e}{r['max_error_float32']:>9.1e}{r['outside']:>8}{r['peak_mb']:>9.0f}"
        )
    lines.append("numpy s and jax s: seconds per task (jax on a batch of 64); errors relative, every prefix.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m construct.cli.benchmark ARGS`` is ``icl-construct bench ARGS`` (and runs one configuration as a child)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        algo, d, n, max_bytes = argv[1:]
        print(json.dumps(measure(algo, int(d), int(n), float(max_bytes))))
        return 0
    from .commands import main as command_line

    return command_line(["bench", *argv])


if __name__ == "__main__":
    sys.exit(main())
