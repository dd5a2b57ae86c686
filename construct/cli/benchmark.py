"""``icl-construct bench``: the compiled networks in two layouts side by side: size, time, memory, error, bound.

    python -m construct.cli.benchmark            # the full table (several minutes)
    python -m construct.cli.benchmark --json     # the same numbers as JSON
    python -m construct.cli.benchmark --d 2 --n 1 4 --algo ridge
    python -m construct.cli.benchmark --d 8 --n 32 --algo ridge --out construct/results/benchmark.json

Layouts: "fused" is what ``compile`` builds (independent instructions share
a layer, a repeated block is stored once); "paper" is one layer per
instruction with every layer stored (``compile(..., fuse=False)`` then
``Weights.untied``), the paper's construction. Each (configuration,
layout) runs in a fresh subprocess with one BLAS and XLA
thread, so "peak MB" is that process's own peak resident memory before
the refusal study, which builds networks of its own ("numpy MB" the same
before the JAX pass first runs: calibration, compilation, the numpy
passes and the certified answers) and times
are CPU seconds (``time.process_time``), comparable within one run on a
shared machine. Tasks: x ~ N(0, I), w ~ N(0, I), y = w^T x; SGD with
alpha = 0.05 and lam = 0.1 from w0 = 0, ridge with lam = 0.1, and any
other algorithm of the registry that predicts at every prefix (not the
one-example chains) with that alpha and lam where it takes them, its other
parameters at their defaults. Bounds are
calibrated on 256 tasks (margin 4); errors are ``max |yhat - yhat*| /
(1 + |yhat*|)`` over every prefix of 64 fresh tasks (float64, JAX batch,
uncertified) and 3 tasks (float64 numpy, certified: "bound" is the largest
certified bound of those) and 8 tasks (float32, numpy). A fresh task can
fall outside the calibrated domain (the network then refuses it);
"outside" counts those of the 64, which the errors skip. Times: compile =
calibration + weight assembly; numpy = the reference pass
(``forward.forward``, each layer on its live parts) per task; dense = the
same pass with every product dense, zeros included (the results'
``round_1_pass`` is the dense pass on the paper layout over the fused
network's numpy pass); certified = ``predict`` with its bound per task;
JAX on a batch of 64 after one warm-up call.

Certificates: over the certified answers (every prefix of the 3 tasks),
the median and largest bound, the largest error against the exact answer
(``construct.exact``, 50 digits) and the median of bound / error. Refusal
(fused layout): the network compiled for the input box ``|x_i| <= 4s``,
``|x| <= 2s sqrt(d)``, ``|y| <= 4s sqrt(d)`` (no sample tasks), then
``predict`` at the default tolerance on 5 tasks with x ~ N(0, s^2 I),
for s in 1, 2, 4: how many are outside the box, how many have a bound
above the tolerance. Where the theory refuses the box (SGD whose step
can expand |w| in it), each task is answered as ``construct.predict``
answers it, on its own run: how many runs grow beyond what their
network resolves (refused naming the example), how many have a bound
above the tolerance; any other box refused at compile time, and why.

``python -m construct.cli.benchmark ARGS`` is ``icl-construct bench ARGS``; with ``--child`` it measures one
(configuration, layout) in this process, which is how ``compare`` runs each.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from functools import partial

import numpy as np

from .. import exact
from ..compiler import Bounds, DomainError, compile, predict
from ..compiler.certificate import CertificateError
from ..compiler.size import DEFAULT_MAX_BYTES
from ..raw.domain import UnboundedDomain
from .. import programs
from ..raw.prompt import tokens as prompt_tokens
from ..tasks import gaussian_tasks
from ..transformer import forward
from . import budget, child, network, shared

ALPHA, LAM, CALIBRATION, BATCH, FLOAT32_TASKS, NUMPY_TASKS = 0.05, 0.1, 256, 64, 8, 3
REFUSAL_SCALES, REFUSAL_TASKS = (1, 2, 4), 5
PARAMETERS = {"alpha": ALPHA, "lam": LAM}  # wherever an algorithm takes them; its other parameters: defaults


def _program(algo: str, d: int, n: int):
    entry = programs.get(algo)
    return entry.program(d, n, **{p.name: PARAMETERS[p.name] for p in entry.parameters if p.name in PARAMETERS})


LAYOUTS = ("paper", "fused")
def cost(algo: str, d: int, n: int) -> budget.Cost:
    """What ``measure`` costs in both layouts (``budget``): the networks, the numpy passes and the JAX batches."""
    total = budget.Cost()
    for fuse in (False, True):
        f64, f32 = (budget.network(lambda dd, nn: _program(algo, dd, nn), d, n, dtype, fuse)
                    for dtype in ("float64", "float32"))
        if not fuse:  # untied: every layer stored
            f64 = budget.Network(dataclasses.replace(f64.size, layers=f64.size.applied), f64.rows)
        runs = (budget.compiling(f64) + budget.forward(f64, NUMPY_TASKS * (1 + budget.CERTIFIED_PASSES))
                + budget.compiling(f32) + budget.forward(f32, FLOAT32_TASKS)
                + budget.jax_batches(f64, BATCH, 2 * BATCH + 1))
        total += budget.process() + budget.calibration(f64, CALIBRATION, d).then(runs)
    return total


def _cpu(call, times: int) -> tuple[list, float]:
    """``times`` results of ``call(i)`` and the CPU seconds per call."""
    start = time.process_time()
    out = [call(i) for i in range(times)]
    return out, (time.process_time() - start) / times


def _dense(w, prompt: np.ndarray) -> np.ndarray:
    """The numpy pass with every layer's products dense, zeros included (``layer_parts``)."""
    H = forward.embed(w, prompt)
    for l in w.order:
        H = forward.layer_parts(w, l, H).out
    return H @ w.readout


def refusals(program, d: int, n: int, max_bytes: float = DEFAULT_MAX_BYTES) -> dict:
    """Per scale s, what a user's ``predict`` refuses on 5 tasks with x ~ N(0, s^2 I) (module docstring): the
    network for the box, or, where the theory refuses the box (an SGD step that can expand |w|), each task
    answered by ``construct.predict`` on its own run."""
    out = {}
    for s in REFUSAL_SCALES:
        counts = {"tasks": REFUSAL_TASKS, "domain": "box", "outside_box": 0, "bound_above_tolerance": 0}
        try:
            net = compile(program, x_max=4 * s, y_max=4 * s * d**0.5, x_norm=2 * s * d**0.5, max_bytes=max_bytes,
                          max_seconds=None)  # bench's budget (cost) has counted the time
            answer = net.predict
        except UnboundedDomain as e:
            counts = {"tasks": REFUSAL_TASKS, "domain": "run", "box_refused": str(e), "run_grows": 0,
                      "bound_above_tolerance": 0}
            answer = partial(predict, program, max_bytes=max_bytes, max_seconds=None)
        except ValueError as e:
            out[str(s)] = {"compile_refused": str(e)}
            continue
        for X, y, q in gaussian_tasks(d, n, REFUSAL_TASKS, seed=2):
            try:
                answer(X * s, y * s, q * s)
            except CertificateError:
                counts["bound_above_tolerance"] += 1
            except DomainError:  # outside the box, or (a task's own run) a run that grows beyond what it resolves
                counts["outside_box" if counts["domain"] == "box" else "run_grows"] += 1
        counts["refused"] = (counts.get("outside_box", 0) + counts.get("run_grows", 0)
                             + counts["bound_above_tolerance"]) / REFUSAL_TASKS
        out[str(s)] = counts
    return out


def measure(algo: str, d: int, n: int, layout: str = "fused", max_bytes: float = DEFAULT_MAX_BYTES) -> dict:
    """One configuration in one layout, measured in this process."""
    program = _program(algo, d, n)

    def closed(task):
        return program.algorithm.closed(program, *task)

    def worst(pairs):
        return max((float(np.max(np.abs(got - want) / (1 + np.abs(want)))) for got, want in pairs
                    if not np.isnan(got).all()), default=float("nan"))

    def refused(call):
        try:
            return call()
        except DomainError:
            return np.full(n + 1, np.nan), np.full(n + 1, np.nan)

    def build(dtype):
        net = compile(program, bounds, dtype=dtype, max_bytes=max_bytes, fuse=layout == "fused", max_seconds=None)
        return net if layout == "fused" else dataclasses.replace(net, weights=net.weights.untied())

    start = time.process_time()
    bounds = Bounds.calibrate(program, gaussian_tasks(d, n, CALIBRATION, seed=0), max_bytes=None, max_seconds=None)
    net = build(np.float64)
    compile_s = time.process_time() - start

    tasks = gaussian_tasks(d, n, BATCH, seed=1)
    prompts = [prompt_tokens(*t) for t in tasks[:NUMPY_TASKS]]
    forward.forward(net.weights, prompts[0])  # the live parts of each layer are found once
    _, numpy_s = _cpu(lambda i: forward.forward(net.weights, prompts[i]), NUMPY_TASKS)
    _, dense_s = _cpu(lambda i: _dense(net.weights, prompts[i]), NUMPY_TASKS)
    certified, certified_s = _cpu(lambda i: refused(lambda: net.predict(*tasks[i], tolerance=None,
                                                                        return_bound=True)), NUMPY_TASKS)
    numpy_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before JAX is imported

    X, y, q = (np.stack(parts) for parts in zip(*tasks))
    start = time.process_time()
    net.predict_batch(X[:1], y[:1], q[:1], outside="nan", backend="jax", tolerance=None)
    jit_s = time.process_time() - start
    net.predict_batch(X, y, q, outside="nan", backend="jax", tolerance=None)  # warm-up at the batch shape
    jax_preds, jax_s = _cpu(lambda i: net.predict_batch(X, y, q, outside="nan", backend="jax", tolerance=None), 1)
    jax_preds, jax_s = jax_preds[0], jax_s / BATCH

    expected = [closed(t) for t in tasks]
    f32 = build(np.float32)
    f32_pairs = [(refused(lambda: f32.predict(*t, tolerance=None, return_bound=True))[0], e)
                 for t, e in zip(tasks[:FLOAT32_TASKS], expected)]
    size = net.size()
    bounds_seen = [float(np.nanmax(b)) for _, b in certified if not np.isnan(b).all()]
    answered = [(exact.errors(program, *t, p), b) for t, (p, b) in zip(tasks, certified) if not np.isnan(p).all()]
    errors = np.concatenate([e[~np.isnan(e)] for e, _ in answered] or [np.array([])])
    bounds_all = np.concatenate([b[~np.isnan(e)] for e, b in answered] or [np.array([])])
    measured = (errors > 0) & np.isfinite(bounds_all)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the refusal study's networks
    return {
        "algo": algo, "d": d, "n": n, "layout": layout, "layers": size["layers"], "stored": size["stored_layers"],
        "D": size["residual_width"], "mlp_width": size["mlp_width"], "heads": size["heads"],
        "head_size": size["head_size"], "parameters": size["parameters"],
        "compile_s": compile_s, "numpy_s_per_task": numpy_s, "dense_s_per_task": dense_s,
        "certified_s_per_task": certified_s,
        "jax_s_per_task": jax_s, "jax_jit_s": jit_s,
        "max_error_float64": worst(list(zip(jax_preds, expected)) + [(p, e) for (p, _), e in zip(certified, expected)]),
        "max_bound_float64": max(bounds_seen, default=float("nan")),
        "median_bound_float64": float(np.median(bounds_all)) if bounds_all.size else float("nan"),
        "max_exact_error_float64": float(errors.max()) if errors.size else float("nan"),
        "median_bound_over_error": float(np.median(bounds_all[measured] / errors[measured])) if measured.any()
        else float("nan"),
        "refusal": refusals(program, d, n, max_bytes) if layout == "fused" else None,
        "max_error_float32": worst(f32_pairs),
        "outside": int(np.isnan(jax_preds).all(axis=1).sum()),
        "peak_mb": peak_mb, "numpy_peak_mb": numpy_mb,
    }


def _in_subprocess(algo: str, d: int, n: int, layout: str, max_bytes: float = DEFAULT_MAX_BYTES) -> dict:
    return child.measure("construct.cli.benchmark", [algo, str(d), str(n), layout, repr(float(max_bytes))],
                         f"{algo} d={d} n={n} ({layout})")


def compare(algo: str, d: int, n: int, max_bytes: float = DEFAULT_MAX_BYTES) -> dict:
    """Both layouts of one configuration, each in its own process, and the paper layout's cost over the fused."""
    rows = {layout: _in_subprocess(algo, d, n, layout, max_bytes) for layout in LAYOUTS}
    paper, fused = rows["paper"], rows["fused"]
    ratios = {key: paper[key] / fused[key] for key in ("layers", "parameters", "peak_mb", "numpy_s_per_task",
                                                        "dense_s_per_task", "certified_s_per_task", "jax_s_per_task")}
    ratios["round_1_pass"] = paper["dense_s_per_task"] / fused["numpy_s_per_task"]
    return {"algo": algo, "d": d, "n": n, "paper": paper, "fused": fused, "paper_over_fused": ratios}


def table(results: list[dict]) -> str:
    head = (f"{'algo':<6}{'d':>3}{'n':>4} {'layout':<6}{'layers':>7}{'stored':>7}{'D':>5}{'MLP':>5}{'params':>13}"
            f"{'peak MB':>8}{'numpy MB':>9}{'compile s':>10}{'numpy s':>9}{'dense s':>9}{'cert s':>8}{'jax s':>9}{'err f64':>9}{'bound':>9}"
            f"{'err f32':>9}{'outside':>8}")
    lines = [head, "-" * len(head)]
    for c in results:
        for layout in LAYOUTS:
            r = c[layout]
            lines.append(
                f"{r['algo']:<6}{r['d']:>3}{r['n']:>4} {layout:<6}{r['layers']:>7}{r['stored']:>7}{r['D']:>5}"
                f"{r['mlp_width']:>5}{r['parameters']:>13,}{r['peak_mb']:>8.0f}{r['numpy_peak_mb']:>9.0f}"
                f"{r['compile_s']:>10.2f}"
                f"{r['numpy_s_per_task']:>9.4f}{r['dense_s_per_task']:>9.4f}{r['certified_s_per_task']:>8.3f}{r['jax_s_per_task']:>9.5f}"
                f"{r['max_error_float64']:>9.1e}{r['max_bound_float64']:>9.1e}{r['max_error_float32']:>9.1e}"
                f"{r['outside']:>8}")
        x = c["paper_over_fused"]
        lines.append(f"{'':<14}paper / fused: layers {x['layers']:.1f}x, parameters {x['parameters']:.1f}x, peak "
                     f"memory {x['peak_mb']:.1f}x, numpy time {x['numpy_s_per_task']:.1f}x (dense "
                     f"{x['dense_s_per_task']:.1f}x; the dense pass on the paper layout over the fused "
                     f"network's pass: {x['round_1_pass']:.1f}x), certified time {x['certified_s_per_task']:.1f}x, "
                     f"JAX time {x['jax_s_per_task']:.1f}x")
        f = c["fused"]
        lines.append(f"{'':<14}fused certificates: bound median {f['median_bound_float64']:.1e}, worst "
                     f"{f['max_bound_float64']:.1e}; error (exact) worst {f['max_exact_error_float64']:.1e}; "
                     f"bound / error median {f['median_bound_over_error']:.0f}")
        lines.append(f"{'':<14}refused at x ~ N(0, s^2 I): " + "; ".join(
            f"s = {s}: " + _refusal_text(r) for s, r in f["refusal"].items()))
    lines.append("CPU seconds per task, one BLAS thread (jax: on a batch of 64); numpy: the pass on each layer's "
                 "live parts; dense: every product dense, zeros included; errors relative, every prefix; "
                 "bound: the largest certified bound (numpy, 3 tasks).")
    return "\n".join(lines)


def _refusal_text(r: dict) -> str:
    """One scale of the refusal study in words."""
    if "compile_refused" in r:
        return f"box refused at compile time ({r['compile_refused'].split(':')[0]})"
    if r["domain"] == "box":
        return (f"{r['refused']:.0%} on the box ({r['outside_box']} outside it, {r['bound_above_tolerance']} bound "
                f"above tolerance, of {r['tasks']})")
    return (f"{r['refused']:.0%} on each task's own run, the box admitting an expanding step ({r['run_grows']} runs "
            f"that grow, {r['bound_above_tolerance']} bound above tolerance, of {r['tasks']})")


# -- the command ----------------------------------------------------------------------------------


def _run(args) -> int:
    configs = [(a, d, n) for a in args.algo for d in args.d for n in args.n]
    limits, total = shared.given_limits(args), budget.Cost()
    for algo, d, n in configs:
        total = total.then(budget.affordable(limits, lambda d_: f"bench ({algo}, d = {d_}, n = {n})",
                                             lambda d_: cost(algo, d_, n), d))
    limits.check(total, f"bench ({len(configs)} configurations)")
    if args.out:
        shared.output(args.out, "--out")
    rows = []
    with shared.progress(args, len(configs), "bench") as bar:
        for algo, d, n in configs:
            bar.set_postfix_str(f"{algo} d={d} n={n}")
            rows.append(compare(algo, d, n, args.max_memory))
            bar.update()
    if args.out:
        with shared.writing(args.out, "--out"):
            args.out.write_text(json.dumps(rows, indent=1) + "\n")
    if args.json:
        shared.print_json(rows)
    else:
        print(table(rows))
    return 0


def _arguments(parser) -> None:
    network.algorithm(parser, several=True)
    shared.sizes(parser, [2, 4, 8], [1, 4, 16, 32], several=True)
    parser.add_argument("--out", type=shared.path, metavar="FILE", help="also write the numbers as JSON to FILE")
    shared.json_output(parser)
    shared.limits(parser, budget.BENCH_MAX_SECONDS)


COMMAND = shared.Command(
    name="bench", summary="the benchmark: size, time, memory, error and bound per configuration, two layouts",
    description=f"""
Measure the compiled networks for every --algo, -d and -n given, in two
layouts side by side: fused (what the compiler builds: independent
instructions share a layer, a repeated block is stored once) and paper (one
layer per instruction, every layer stored, the paper's construction). Each
configuration and layout runs in a fresh process with one BLAS thread.

Per row: layers (stored), widths, parameters, peak memory, compile time, CPU
seconds per task of the numpy pass, of the same pass with every product
dense, of a certified answer and of the JAX pass (a batch of {BATCH}), the
largest error against the closed form in float64 and float32 and the largest
certified bound. Then the paper layout's cost over the fused one's, the fused
network's certified bounds against the exact errors, and how many tasks
predict refuses when the network is compiled for an input box (or, for SGD
whose step can expand |w| in that box, for each task's own run). Tasks:
x ~ N(0, I), w ~ N(0, I), y = w^T x; the domain calibrated on {CALIBRATION}
tasks; alpha = {ALPHA} and lam = {LAM} wherever an algorithm takes them, its
other parameters at their defaults.""",
    results="""
The table goes to stdout (--json: the numbers as JSON); --out FILE also
writes the JSON to FILE. The full default grid takes several minutes.
python -m construct.cli.benchmark takes the same options.""",
    examples=("icl-construct bench -d 2 4 -n 4 16 --algo ridge",
              "icl-construct bench -d 8 -n 32 --algo sgd ridge --max-memory 8GiB --out benchmark.json"),
    arguments=_arguments, run=_run, details=lambda: network.algorithms_text(flags=False, chains=False))


def main(argv: list[str] | None = None) -> int:
    """``python -m construct.cli.benchmark ARGS`` is ``icl-construct bench ARGS`` (and runs one configuration as a
    child)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        algo, d, n, layout, max_bytes = argv[1:]
        print(json.dumps(measure(algo, int(d), int(n), layout, float(max_bytes))))
        return 0
    return shared.main(lambda: shared.parser(COMMAND, "python -m construct.cli.benchmark"), argv)


if __name__ == "__main__":
    sys.exit(main())
