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

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

ALPHA, LAM, CALIBRATION, BATCH, FLOAT32_TASKS, NUMPY_TASKS = 0.05, 0.1, 256, 64, 8, 3


def measure(algo: str, d: int, n: int) -> dict:
    """One configuration, measured in this process."""
    from .. import reference
    from ..raw import programs
    from ..compiler.bounds import Bounds, DomainError
    from ..compiler import compile
    from ..tasks import gaussian_tasks

    if algo == "sgd":
        program, closed = programs.sgd(d, n, ALPHA, LAM), lambda t: reference.sgd_one_pass(*t, ALPHA, LAM)
    else:
        program, closed = programs.ridge(d, n, LAM), lambda t: reference.ridge(*t, LAM)

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
    net = compile(program, bounds)
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
    f32 = compile(program, bounds, dtype=np.float32)
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


def _in_subprocess(algo: str, d: int, n: int) -> dict:
    cmd = [sys.executable, "-m", "construct.cli.benchmark", "--child", algo, str(d), str(n)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark of {algo} d={d} n={n} failed:\n{done.stderr}")
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
    parser = argparse.ArgumentParser(prog="python -m construct.cli.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, nargs="+", default=[2, 4, 8], help="input dimensions (default 2 4 8)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 16, 32], help="examples (default 1 4 16 32)")
    parser.add_argument("--algo", nargs="+", choices=["sgd", "ridge"], default=["sgd", "ridge"])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child", nargs=3, metavar=("ALGO", "D", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        algo, d, n = args.child
        print(json.dumps(measure(algo, int(d), int(n))))
        return 0
    if min(args.d) < 1 or min(args.n) < 1:
        parser.error("--d and --n take integers >= 1")
    configs = [(a, d, n) for a in args.algo for d in args.d for n in args.n]
    rows = []
    for k, (algo, d, n) in enumerate(configs, 1):
        print(f"[{k}/{len(configs)}] {algo} d={d} n={n}", file=sys.stderr, flush=True)
        rows.append(_in_subprocess(algo, d, n))
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
