"""Depth independent of n, measured: ridge by Newton-Schulz and batch GD beside RLS and SGD, at n = 32, 128, 1024.

    python -m construct.cli.depth                               # the table, written to construct/results/depth.json
    python -m construct.cli.depth --n 32 --algo ridge_newton    # one row, printed

Each (algorithm, n) runs in a fresh subprocess with one BLAS and XLA thread, so
"peak MB" is that process's own peak resident memory and the times are its
CPU seconds. d = 8; tasks x ~ N(0, I), w ~ N(0, I), y = w^T x; ridge
(RLS) and ridge_newton with lam = 0.1, SGD with alpha = 0.05 and lam = 0.1,
gd with alpha = 0.02, lam = 0.1 and 20 steps. The domain is calibrated on
``CALIBRATION`` tasks (margin 4): compile = calibration + weights. forward
= the numpy pass (``forward.forward``) on one task; certified = ``predict``
with its bound (``tolerance=None``) on that task: for the algorithms with
an a-posteriori certificate (ridge, ridge_newton) the JAX pass and that
certificate (``backend="jax"``, its compilation included), for the others
(sgd, gd) the numpy pass with the mechanism certificate. Errors are ``max |yhat - yhat*| / (1 + |yhat*|)``
over every prefix of ``TASKS`` tasks against the float64 closed form
(``construct.reference``: for ridge_newton ridge itself, so the iteration's
truncation counts as error; for gd its closed-form T steps), numpy pass;
"bound" the largest certified bound of the certified task, and "bound >=
error" whether each of that task's certified answers is within its bound of
the closed form (an absolute error, of the pass the certificate read; the
error column is relative and of the numpy pass, so the two columns do not
compare). "error float32" is the same error of the network compiled from the
same bounds for float32 (``dtype=np.float32``: its scale constants chosen for
float32's eps) and run by the float32 numpy pass. For ridge_newton up to n =
``ALONE_N`` the float32 error is also taken apart by register
(``float32_alone``): the numpy pass run again with only one group of
registers as the float32 network computes them, every other register the
exact machine's value on its layer's input. Each row also gives the dense
format's widths (residual rows, heads and their size, GeLU units) and the
GeLU units each stored layer uses, from which its dense count follows. A network whose
numpy states would not fit ``MAX_BYTES``, or that applies more than
``RUN_LAYERS`` layers, is sized only (``compiler.build.estimate_repeated``:
its layers and parameters) and marked not run.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from . import child

D, LENGTHS, CALIBRATION, TASKS = 8, (32, 128, 1024), 32, 2
PARAMETERS = {"ridge": {"lam": 0.1}, "sgd": {"alpha": 0.05, "lam": 0.1}, "ridge_newton": {"lam": 0.1},
              "gd": {"alpha": 0.02, "lam": 0.1, "steps": 20}}
MAX_BYTES = 4 * 2**30
RUN_LAYERS = 1000  # longer networks are sized, not run: SGD at n = 1024 (2049 layers) takes minutes a pass
OUT = Path(__file__).resolve().parent.parent / "results" / "depth.json"
ALONE_N = 128  # the float32 error by register, one numpy pass per group and task: up to this n
FLOAT32_ALONE = {  # ridge_newton's registers in the groups float32_alone takes apart, in program order
    "the averages A', b' and g = c b'": ("x_prev", "x", "pos_prev", "bos", "z", "xy", "A", "Abos", "b", "g"),
    "the loop's R and I + R": ("R", "IR"),
    "the loop's P": ("P",),
    "w1 = P g": ("w1",),
    "A' w1": ("Aw",),
    "P A' w1": ("PAw",),
    "w and the prediction": ("w", "pred"),
}
ROUNDED = "A' and b' only rounded to float32, no product, solved exactly"


def measure(algo: str, n: int, d: int = D) -> dict:
    """One row, measured in this process."""
    from .. import Bounds, compile, programs, reference
    from ..compiler.build import estimate_repeated
    from ..compiler.size import SizeError, check
    from ..raw.prompt import tokens
    from ..tasks import gaussian_tasks
    from ..transformer import forward

    entry = programs.get(algo)
    program = entry.program(d, n, **PARAMETERS[algo])
    row = {"algo": algo, "d": d, "n": n, "parameters_of_the_algorithm": PARAMETERS[algo]}
    estimate = estimate_repeated(lambda k: entry.program(d, k, **PARAMETERS[algo]), n) if program.block else None
    try:
        if estimate is not None:  # a network that grows with n is sized before its calibration runs for minutes
            check(estimate, MAX_BYTES, f"{algo} (d = {d}, n = {n})")
            if estimate.applied > RUN_LAYERS:
                raise SizeError(f"{algo} (d = {d}, n = {n}) would apply {estimate.applied} layers, above the "
                                f"{RUN_LAYERS} this study runs (each numpy pass takes minutes)")
        start = time.process_time()
        bounds = Bounds.calibrate(program, gaussian_tasks(d, n, CALIBRATION, seed=0), max_bytes=MAX_BYTES,
                                  max_seconds=None)
        net = compile(program, bounds, max_bytes=MAX_BYTES, max_seconds=None)
    except SizeError as err:
        if estimate is None:
            raise
        return {**row, "run": False, "why_not": str(err).split(";")[0], "layers": estimate.applied,
                "stored": estimate.layers, "parameters": estimate.parameters}
    compile_s = time.process_time() - start
    weights = net.weights
    stored = [getattr(weights, f.name) for f in dataclasses.fields(weights) if f.name != "order"]
    tasks = gaussian_tasks(d, n, TASKS, seed=1)
    prompt = tokens(*tasks[0])
    forward.forward(weights, prompt)  # each layer's live parts are found once
    start = time.process_time()
    forward.forward(weights, prompt)
    forward_s = time.process_time() - start
    backend = "jax" if entry.residual is not None else "numpy"

    def want(X, y, q):  # the algorithm's closed form (for ridge_newton, ridge itself: its truncation counts)
        return reference.ridge(X, y, q, PARAMETERS[algo]["lam"]) if algo == "ridge_newton" else \
            entry.closed(program, X, y, q)

    start = time.process_time()
    try:
        predictions, bound = net.predict(*tasks[0], backend=backend, tolerance=None, return_bound=True)
        certified = {"certified_s": time.process_time() - start, "max_bound": float(np.nanmax(bound)),
                     "certificate": "a-posteriori, JAX pass" if backend == "jax" else "mechanism, numpy pass",
                     "bound_at_least_error": bool(np.all(bound >= np.abs(predictions - want(*tasks[0]))))}
    except Exception as err:  # noqa: BLE001  a certificate that fails is reported, not hidden
        certified = {"certified_s": None, "max_bound": None, "certificate": f"failed: {type(err).__name__}: {err}"}
    errors = relative_errors(lambda X, y, q: forward.forward(weights, tokens(X, y, q))[0::2], tasks, want)
    size = net.size()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # of the float64 network, as in every row
    net32 = compile(program, bounds, dtype=np.float32, max_bytes=MAX_BYTES, max_seconds=None)
    errors32 = relative_errors(lambda X, y, q: forward.forward(net32.weights, tokens(X, y, q))[0::2], tasks, want)
    alone = None
    if algo == "ridge_newton" and n <= ALONE_N:
        alone = {group: float(relative_errors(lambda X, y, q, names=names: float32_alone(net32, tokens(X, y, q), names),
                                              tasks, want).max())
                 for group, names in FLOAT32_ALONE.items()}
        rounded = relative_errors(lambda X, y, q: rounded_averages(X, y, q, PARAMETERS[algo]["lam"]), tasks, want)
        alone[ROUNDED] = float(rounded.max())
    return {
        **row, "run": True, "layers": size["layers"], "stored": size["stored_layers"],
        "parameters": size["parameters"], "nonzero_parameters": int(sum(np.count_nonzero(a) for a in stored)),
        **{key: size[key] for key in ("residual_width", "heads", "head_size", "mlp_width")},
        "live_units": [int(np.any(layer != 0, axis=1).sum()) for layer in weights.W2],
        "compile_s": compile_s, "forward_s": forward_s, **certified,
        "max_error": float(errors.max()),
        "error_at_prefix": {str(k): float(errors[k]) for k in sorted({1, min(8, n), n // 2, n})},
        "max_error_float32": float(errors32.max()),
        "error_float32_at_prefix": {str(k): float(errors32[k]) for k in sorted({1, min(8, n), n // 2, n})},
        **({"float32_alone": alone} if alone is not None else {}),
        "peak_mb": peak_mb,
    }


def relative_errors(answers, tasks, want) -> np.ndarray:
    """``|yhat - yhat*| / (1 + |yhat*|)`` at every prefix, the largest over the tasks."""
    errors = []
    for X, y, q in tasks:
        exact = want(X, y, q)
        errors.append(np.abs(answers(X, y, q) - exact) / (1 + np.abs(exact)))
    return np.max(errors, axis=0)


def float32_alone(net, prompt: np.ndarray, noisy) -> np.ndarray:
    """The numpy pass of ``net`` on one prompt with only the registers ``noisy`` as the network computes them:
    after each layer every other register it writes is set to the exact machine's value on that layer's input
    (its instructions, in order, in float64), so the answers err only by what ``noisy``'s registers carry."""
    from ..transformer import forward

    weights, layout = net.weights, net.program.layout
    H = forward.embed(weights, prompt)
    for l, stored in enumerate(weights.order, 1):
        exact = H.T[: layout.width].astype(np.float64)
        H = forward.layer(weights, stored, H)
        written = set()
        for ins in net.layer_instructions(l):
            exact = ins.apply(exact, layout)
            written.add(ins.writes)
        for name in written - set(noisy):
            H[:, layout.rows(name)] = exact[layout.rows(name)].T
    return (H @ weights.readout)[0::2]


def rounded_averages(X, y, x_query, lam) -> np.ndarray:
    """Ridge at every prefix from ridge_newton's averages ``A' = (lam I + S_k)/(2k + 1)`` and ``b' = X_k^T y_k /
    (2k + 1)`` (the x~ column's) formed in float64 from the prompt rounded to float32, rounded to float32 in turn,
    then solved and predicted in float64: what float32 storage alone costs, without the network's products."""
    X, y, x_query = (np.asarray(a, np.float64).astype(np.float32).astype(np.float64) for a in (X, y, x_query))
    inputs = np.vstack([X, x_query[None]])  # entry k predicts input k + 1, the query for k = n
    answers = []
    for k in range(len(X) + 1):
        A = (lam * np.eye(X.shape[1]) + X[:k].T @ X[:k]) / (2 * k + 1)
        b = X[:k].T @ y[:k] / (2 * k + 1)
        w = np.linalg.solve(A.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
        answers.append(inputs[k] @ w)
    return np.array(answers)


BOX_KAPPAS = (None, 1e4)  # the box's own conditioning bound, and one declared


def box_answer(n: int, kappa: float | None, d: int = D) -> dict:
    """ridge_newton compiled for the box of x ~ N(0, I) (``|x_i| <= 4``, ``|x| <= 2 sqrt(d)``, ``|y| <= 4 sqrt(d)``),
    no sample tasks, and one prompt inside it answered with its a-posteriori bounds (JAX pass): CPU seconds from
    the start of the process (imports included), peak memory, the largest error against ridge and bound."""
    start = time.process_time()
    from .. import compile, programs, reference
    from ..tasks import gaussian_tasks

    program = programs.ridge_newton(d, n, 0.1, kappa=kappa)
    net = compile(program, x_max=4.0, y_max=4 * d**0.5, x_norm=2 * d**0.5)
    inside = (t for t in gaussian_tasks(d, n, 20, seed=5)
              if np.linalg.norm(t[0], axis=1).max() <= 2 * d**0.5 and np.abs(t[1]).max() <= 4 * d**0.5)
    X, y, q = next(inside)
    predictions, bounds = net.predict(X, y, q, backend="jax", tolerance=None, return_bound=True)
    seconds = time.process_time() - start
    ridge = reference.ridge(X, y, q, 0.1)
    errors = np.abs(predictions - ridge)
    return {"n": n, "kappa": kappa, "layers": net.size()["layers"], "cpu_s": seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "max_error": float(np.max(errors / (1 + np.abs(ridge)))), "max_bound": float(bounds.max()),
            "bound_at_least_error": bool(np.all(bounds >= errors))}


def _in_subprocess(algo: str, n: int) -> dict:
    return child.measure("construct.cli.depth", [algo, str(n)], f"{algo} at n = {n}")


def table(rows: list[dict]) -> str:
    head = (f"{'algo':<13}{'n':>5}{'layers':>7}{'stored':>7}{'params':>13}{'nonzero':>10}{'compile s':>10}"
            f"{'forward s':>10}{'cert s':>8}{'peak MB':>8}{'error':>9}{'bound':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if not r["run"]:
            lines.append(f"{r['algo']:<13}{r['n']:>5}{r['layers']:>7}{r['stored']:>7}{r['parameters']:>13,}"
                         f"  not run: {r['why_not']}")
            continue
        cert = "-" if r["certified_s"] is None else f"{r['certified_s']:.2f}"
        bound = "-" if r["max_bound"] is None else f"{r['max_bound']:.1e}"
        lines.append(f"{r['algo']:<13}{r['n']:>5}{r['layers']:>7}{r['stored']:>7}{r['parameters']:>13,}"
                     f"{r['nonzero_parameters']:>10,}{r['compile_s']:>10.2f}{r['forward_s']:>10.3f}{cert:>8}"
                     f"{r['peak_mb']:>8.0f}{r['max_error']:>9.1e}{bound:>9}")
    return "\n".join(lines)


def markdown(rows: list[dict], box: list[dict]) -> str:
    """The rows, and the box study's, as the Markdown tables docs/DEPTH.md shows."""
    lines = ["| algorithm | n | layers applied | stored | parameters (dense) | nonzero | compile s | forward s | "
             "certified s | peak MB | error | bound | bound >= error | error float32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["run"]:
            lines.append(f"| {r['algo']} | {r['n']} | {r['layers']:,} | {r['stored']} | {r['parameters']:,} | "
                         f"not run: {r['why_not'].split(':')[-1].strip()} | | | | | | | | |")
            continue
        cert = r["certificate"] if r["certified_s"] is None else f"{r['certified_s']:.1f}"
        bound = "-" if r["max_bound"] is None else f"{r['max_bound']:.1e}"
        held = {None: "-", True: "yes", False: "no"}[r.get("bound_at_least_error")]
        lines.append(f"| {r['algo']} | {r['n']} | {r['layers']} | {r['stored']} | {r['parameters']:,} | "
                     f"{r['nonzero_parameters']:,} | {r['compile_s']:.1f} | {r['forward_s']:.2f} | {cert} | "
                     f"{r['peak_mb']:.0f} | {r['max_error']:.1e} | {bound} | {held} | {r['max_error_float32']:.1e} |")
    if box:
        lines += ["", "| ridge_newton, box domain | n | layers | compile and one certified answer, CPU s | peak MB | "
                  "error | bound | bound >= error at every prefix |", "|---|---|---|---|---|---|---|---|"]
        for b in box:
            kappa = "of the box" if b["kappa"] is None else f"declared {b['kappa']:g}"
            held = "yes" if b["bound_at_least_error"] else "no"
            lines.append(f"| kappa {kappa} | {b['n']} | {b['layers']} | {b['cpu_s']:.1f} | {b['peak_mb']:.0f} | "
                         f"{b['max_error']:.1e} | {b['max_bound']:.1e} | {held} |")
    return "\n".join(lines)


def float32_markdown(rows: list[dict]) -> str:
    """ridge_newton's float32 error taken apart by register (the rows that have it), as docs/DEPTH.md shows it."""
    alone = [r for r in rows if r.get("float32_alone")]
    lines = ["| ridge_newton in float32, the error of one group of registers alone | "
             + " | ".join(f"n = {r['n']}" for r in alone) + " |", "|---|" + "---|" * len(alone)]
    lines += [f"| {group} | " + " | ".join(f"{r['float32_alone'][group]:.1e}" for r in alone) + " |"
              for group in FLOAT32_ALONE]
    lines.append(f"| {ROUNDED} | " + " | ".join(f"{r['float32_alone'][ROUNDED]:.1e}" for r in alone) + " |")
    lines.append("| all of them (the float32 network) | "
                 + " | ".join(f"{r['max_error_float32']:.1e}" for r in alone) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = child.parser("construct.cli.depth", __doc__, PARAMETERS, LENGTHS, OUT).parse_args(argv)
    if args.child:
        algo, n = args.child[0], int(args.child[1])
        print(json.dumps(box_answer(n, None if algo == "box" else float(algo[4:])) if algo.startswith("box")
                         else measure(algo, n)))
        return 0
    rows = child.rows("construct.cli.depth", args, table)
    print(table(rows))
    full = (args.algo, args.n) == (list(PARAMETERS), list(LENGTHS))
    box = [_in_subprocess("box" if kappa is None else f"box:{kappa:g}", max(LENGTHS)) for kappa in BOX_KAPPAS] \
        if full else []
    for b in box:
        print(f"ridge_newton, n = {b['n']}, box domain, kappa {b['kappa'] or 'of the box'}: {b['layers']} layers, "
              f"compile and one certified answer {b['cpu_s']:.1f} CPU s, {b['peak_mb']:.0f} MB, error "
              f"{b['max_error']:.1e}, bound {b['max_bound']:.1e}")
    out = args.out or (OUT if full else None)
    if out is not None:
        out.write_text(json.dumps({"rows": rows, "box": box}, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
