"""docs/RUNTIMES.md's table of the runtimes: ``python -m construct.runtimes.accuracy [--tasks 32] [--seed 42] [--json]``.

For ridge (d = 4, n = 8, lam = 0.5) and SGD (d = 2, n = 4, alpha = 0.05,
lam = 0.5), compiled for the box ``|x_i| <= 1``, ``|y| <= 2`` in float64 and
float32, on tasks drawn uniformly in it: the largest ``|prediction - closed
form|`` over every prefix of the numpy pass (paper's layer and GPT-2 blocks,
with the largest certified bound), of Hugging Face's ``GPT2Model`` with each
attention implementation and of TransformerLens (each with the largest
a-posteriori bound it gives, inf for SGD), and the largest difference
between TransformerLens' ``hook_resid_post`` and ``net.trace`` on the
program's rows over every layer.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings

import numpy as np

from .. import reference
from ..compiler import compile
from .. import programs
from . import hf, tl

LAM, ALPHA, BOX = 0.5, 0.05, {"x_max": 1.0, "y_max": 2.0}
CASES = {
    "ridge d = 4, n = 8": (lambda: programs.ridge(4, 8, LAM), lambda t: reference.ridge(*t, lam=LAM)),
    "SGD d = 2, n = 4": (lambda: programs.sgd(2, 4, ALPHA, LAM), lambda t: reference.sgd_one_pass(*t, ALPHA, LAM)),
}
IMPLEMENTATIONS = ("eager", "sdpa")


def _tasks(d: int, n: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (n, d)), rng.uniform(-2, 2, n), rng.uniform(-1, 1, d)) for _ in range(count)]


def measure(tasks: int = 32, seed: int = 42) -> dict:
    """``{case: {dtype: {row: value}}}`` (see the module docstring)."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, closed) in CASES.items():
            program = make()
            task_list = _tasks(program.d, program.n, tasks, seed)
            for dtype in ("float64", "float32"):
                rows = out.setdefault(name, {}).setdefault(dtype, {})
                for architecture in ("paper", "gpt2"):  # the GPT-2 one last: the runtimes run it
                    net = compile(program, **BOX, dtype=np.dtype(dtype), architecture=architecture)
                    runs = [(net.predict(*t, tolerance=None, return_bound=True), closed(t)) for t in task_list]
                    rows[f"numpy {architecture}"] = max(np.abs(p - want).max() for (p, _), want in runs)
                    rows[f"numpy {architecture} bound"] = max(np.max(b) for (_, b), _ in runs)
                folder = hf.save_pretrained(net, f"{tmp}/{program.name}-{dtype}")
                for implementation in IMPLEMENTATIONS:
                    model = hf.from_pretrained(folder, attn_implementation=implementation)
                    runs = [(hf.predict(model, *t, tolerance=None, return_bound=True), closed(t)) for t in task_list]
                    rows[f"hf {implementation}"] = max(np.abs(p - want).max() for (p, _), want in runs)
                    rows[f"hf {implementation} bound"] = max(np.max(b) for (_, b), _ in runs)
                with warnings.catch_warnings():  # TransformerLens 3 announces that 4.0 removes HookedTransformer
                    warnings.simplefilter("ignore", DeprecationWarning)
                    model = tl.to_transformer_lens(net)
                rows["tl"], rows["tl bound"], rows["tl resid_post"] = 0.0, 0.0, 0.0
                width = program.layout.width
                for t in task_list:
                    predictions, cache = tl.run_with_cache(model, net, *t)
                    states = net.trace(*t).states
                    rows["tl"] = max(rows["tl"], float(np.abs(predictions - closed(t)).max()))
                    rows["tl bound"] = max(rows["tl bound"], float(np.max(tl.predict(
                        model, net, *t, tolerance=None, return_bound=True)[1])))
                    rows["tl resid_post"] = max(rows["tl resid_post"], max(
                        float(np.abs(cache[f"blocks.{l}.hook_resid_post"][0].numpy().T[:width]
                                     - states[l + 1][:width]).max()) for l in range(net.gpt2.depth)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct.runtimes.accuracy", description=__doc__.split("\n\n")[1])
    parser.add_argument("--tasks", type=int, default=32, help="tasks per network (default 32)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the tasks (default 42)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error(f"--tasks must be at least 1, got {args.tasks}")
    result = measure(args.tasks, args.seed)
    if args.json:  # an unbounded certificate (float32 ridge at this size) as null
        print(json.dumps({name: {dtype: {row: value if np.isfinite(value) else None for row, value in rows.items()}
                                 for dtype, rows in cell.items()} for name, cell in result.items()}, indent=1))
        return 0
    cells = [(name, dtype) for name in result for dtype in result[name]]
    print("| | " + " | ".join(f"{name}, {dtype}" for name, dtype in cells) + " |")
    print("| --- " * (len(cells) + 1) + "|")
    for row in result[cells[0][0]][cells[0][1]]:
        print(f"| {row} | " + " | ".join(f"{result[name][dtype][row]:.2g}" for name, dtype in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
