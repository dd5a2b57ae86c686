"""The main demo: the paper's chain, then transformers built from programs, beside the closed forms."""

from __future__ import annotations

import argparse

import numpy as np

from . import programs, reference
from .bounds import Bounds, DomainError
from .compiler import compile
from .tasks import gaussian_tasks


def _table(title: str, net, program, task, closed) -> str:
    machine = program.predict(*task)
    try:
        network = net.predict(*task)
    except DomainError as err:
        return f"{title}\n  the transformer refuses this task: {err}"
    lines = [title, f"  {'prefix':>6}  {'transformer':>15}  {'exact machine':>15}  {'closed form':>15}  {'|error|':>8}"]
    for k, (t, m, c) in enumerate(zip(network, machine, closed)):
        lines.append(f"  {k:>6}  {t:>15.11f}  {m:>15.11f}  {c:>15.11f}  {abs(t - c):>8.1e}")
    return "\n".join(lines)


def _size(net) -> str:
    s = net.size()
    text = (f"{s['layers']} layers, residual width {s['residual_width']} ({s['data_rows']} data rows), "
            f"MLP width {s['mlp_width']}, {s['parameters']:,} parameters")
    if "paper" in s:
        text += f"; paper: {s['paper']['layers']} layers, {s['paper']['data_rows']} data rows"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m construct", description=__doc__)
    parser.add_argument("--d", type=int, default=3, help="input dimension (default 3)")
    parser.add_argument("--n", type=int, default=6, help="number of examples (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random task (default 0)")
    args = parser.parse_args(argv)
    d, n = args.d, args.n
    if d < 1 or n < 1:
        parser.error("--d and --n must be at least 1")
    alpha, lam = 0.05, 0.1

    step = programs.sgd_step(2, alpha=0.1, lam=0.01, w0=np.zeros(2))
    print("Theorem 1 (one SGD step), d = 2, in the paper's notation (rows [start, stop)):")
    print(step.listing("paper"))
    print("\n... and on named registers:")
    print(step.listing())

    print("\nCompiled, one transformer layer per instruction (d = 2):")
    sm = programs.sherman_morrison_step(2, lam)
    for program in (step, sm):
        net = compile(program, Bounds.calibrate(program, gaussian_tasks(2, 1, 64, seed=args.seed + 1)))
        print(f"  {program.name}: {_size(net)}")

    (task,) = gaussian_tasks(d, n, 1, seed=args.seed)
    print(f"\nA random task: d = {d}, n = {n}, x ~ N(0, I), y = w^T x. Prefix k predicts example k+1 from "
          "examples 1..k (k = n is the query). Each network is compiled for the domain of 64 sample tasks.\n")
    sgd = programs.sgd(d, n, alpha, lam)
    net = compile(sgd, Bounds.calibrate(sgd, gaussian_tasks(d, n, 64, seed=args.seed + 2)))
    print(_table(f"one-pass SGD, alpha = {alpha}, lam = {lam}: {_size(net)}", net, sgd, task,
                 reference.sgd_one_pass(*task, alpha, lam)))
    print()
    ridge = programs.ridge(d, n, lam)
    net = compile(ridge, Bounds.calibrate(ridge, gaussian_tasks(d, n, 64, seed=args.seed + 3)))
    print(_table(f"ridge (Sherman-Morrison), lam = {lam}: {_size(net)}", net, ridge, task,
                 reference.ridge(*task, lam)))
    return 0
