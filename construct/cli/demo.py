"""``icl-construct demo``: the paper's chains, then SGD and ridge transformers on a random task.

``run`` computes everything as plain data (what ``--json`` prints) and
``render`` lays it out as text. Each network is compiled for the domain of
64 sample tasks (``Bounds.calibrate``, margin 4) and run on a fresh task; its
predictions at every prefix are printed beside the exact machine's and the
closed form's (the registry's, ``construct.programs``), with the error against the closed form.

The paper gives exact sizes only for its one-example chains (Theorems 1 and
2); for n examples it states orders of growth, which are printed as such.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import plots, programs
from ..compiler import Bounds, CompiledNetwork, DomainError, compile, estimate
from ..compiler.size import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS
from ..raw.program import Program
from ..tasks import gaussian_tasks
from . import budget, shared
from .network import size_text

ALPHA, LAM, CALIBRATION_TASKS = 0.05, 0.1, 64
CHAINS = (lambda d, n: programs.sgd_step(d, alpha=0.1, lam=0.01, w0=np.zeros(d)),  # shown at d = 2
          lambda d, n: programs.sherman_morrison_step(d, LAM))
LEARNERS = ((lambda d, n: programs.sgd(d, n, ALPHA, LAM), f"one-pass SGD, alpha = {ALPHA}, lam = {LAM}"),
            (lambda d, n: programs.ridge(d, n, LAM), f"ridge (Sherman-Morrison), lam = {LAM}"))
PICTURE_CALIBRATION, PICTURE_TASKS = 256, 128  # what plots.error_vs_examples runs for --png


def _compiled(program: Program, seed: int, max_bytes: float, max_seconds: float | None,
              fuse: bool = True) -> CompiledNetwork:
    tasks = gaussian_tasks(program.d, program.n, CALIBRATION_TASKS, seed)
    # the command's budget (cost below) has counted calibration by its own measured model
    bounds = Bounds.calibrate(program, tasks, max_bytes=None, max_seconds=None)
    return compile(program, bounds, max_bytes=max_bytes, fuse=fuse, max_seconds=max_seconds)


def run(d: int = 3, n: int = 6, seed: int = 0, step: Callable[[], None] = lambda: None,
        max_bytes: float = DEFAULT_MAX_BYTES, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> dict:
    """The demo's numbers; ``step`` is called after each of the four compilations (for a progress bar)."""
    chains = []
    for build in CHAINS:
        program = build(2, 1)
        net = _compiled(program, seed + 1, max_bytes, max_seconds, fuse=False)
        fused = estimate(program, net.bounds)
        chains.append({"program": program.name, "d": 2, "size": net.size(), "size_text": size_text(net),
                       "fused_layers": fused.applied, "listing": program.listing(),
                       "listing_paper": program.listing("paper")})
        step()
    (task,) = gaussian_tasks(d, n, 1, seed=seed)
    learners = []
    for (build, title), offset in zip(LEARNERS, (2, 3)):
        program = build(d, n)
        net = _compiled(program, seed + offset, max_bytes, max_seconds)
        closed = program.algorithm.closed(program, *task)
        entry = {"program": program.name, "title": title, "params": {k: np.asarray(v).tolist() for k, v in
                                                                     program.params.items()},
                 "size": net.size(), "size_text": size_text(net),
                 "unfused_layers": estimate(program, net.bounds, fuse=False).applied,
                 "machine": program.predict(*task).tolist(), "closed_form": closed.tolist()}
        try:
            network = net.predict(*task)
            entry.update(transformer=network.tolist(), abs_error=np.abs(network - closed).tolist())
        except DomainError as err:
            entry["refused"] = str(err)
        learners.append(entry)
        step()
    X, y, x_query = task
    return {"d": d, "n": n, "seed": seed, "chains": chains, "learners": learners,
            "task": {"X": X.tolist(), "y": y.tolist(), "x_query": x_query.tolist()}}


def cost(d: int, n: int, picture: bool) -> budget.Cost:
    """What ``run(d, n)`` costs (``budget``), and with ``picture`` the two networks and 128 tasks of the --png."""
    chains = [budget.network(build, 2, 1) for build in CHAINS]
    learners = [budget.network(build, d, n) for build, _ in LEARNERS]
    total = budget.Cost()
    for net, dim in [(net, 2) for net in chains] + [(net, d) for net in learners]:
        total += budget.built(net, CALIBRATION_TASKS, dim, passes=1)
    if picture:
        drawn = budget.Cost()
        for net in learners:
            drawn += budget.built(net, PICTURE_CALIBRATION, d, passes=PICTURE_TASKS)
        total = total.then(drawn)
    return total


def render(result: dict) -> str:
    sgd_step, sm_step = result["chains"]
    lines = ["Theorem 1 (one SGD step), d = 2, in the paper's notation over our layout (rows [start, stop) of "
             "our layout; the paper's own rows: docs/CONSTRUCTION.md section 6):",
             sgd_step["listing_paper"], "", "... and on named registers:", sgd_step["listing"], "",
             "Compiled, one transformer layer per instruction (d = 2), and fused (independent instructions "
             "share a layer):"]
    lines += [f"  {chain['program']}: {chain['size_text']}; fused: {chain['fused_layers']} layers"
              for chain in (sgd_step, sm_step)]
    lines += ["", f"A random task: d = {result['d']}, n = {result['n']}, x ~ N(0, I), y = w^T x. Prefix k predicts "
              "example k+1 from examples 1..k (k = n is the query). Each network is compiled for the domain of "
              f"{CALIBRATION_TASKS} sample tasks.", ""]
    for entry in result["learners"]:
        lines.append(f"{entry['title']}: {entry['size_text']} (fused; {entry['unfused_layers']} layers unfused)")
        if "refused" in entry:
            lines += [f"  the transformer refuses this task: {entry['refused']}", ""]
            continue
        lines.append(f"  {'prefix':>6}  {'transformer':>15}  {'exact machine':>15}  {'closed form':>15}  {'|error|':>8}")
        for k, (t, m, c, e) in enumerate(zip(entry["transformer"], entry["machine"], entry["closed_form"],
                                             entry["abs_error"])):
            lines.append(f"  {k:>6}  {t:>15.11f}  {m:>15.11f}  {c:>15.11f}  {e:>8.1e}")
        lines.append("")
    return "\n".join(lines).rstrip()


# -- the command ----------------------------------------------------------------------------------


def _arguments(parser) -> None:
    shared.sizes(parser, 3, 6)
    shared.seed(parser, "the random task")
    parser.add_argument("--png", type=shared.path, metavar="FILE",
                        help="also write a picture of the prediction error against the number of examples")
    shared.json_output(parser)
    shared.limits(parser)


def _run(args) -> int:
    if args.png:
        shared.picture(args.png, "--png")
    budget.affordable(shared.given_limits(args),
                      lambda d: f"demo (d = {d}, n = {args.n}{', --png' if args.png else ''})",
                      lambda d: cost(d, args.n, bool(args.png)), args.d)
    with shared.progress(args, 4 + bool(args.png), "demo") as bar:
        result = run(args.d, args.n, args.seed, step=bar.update, max_bytes=args.max_memory,
                     max_seconds=args.max_seconds)
        if args.png:
            with shared.writing(args.png, "--png"):
                result["picture"] = {"path": str(args.png), "curves": plots.error_vs_examples(
                    args.png, args.d, args.n, ALPHA, LAM, seed=args.seed)}
            bar.update()
    if args.json:
        shared.print_json(result)
    else:
        print(render(result))
        if args.png:
            print(f"\nwrote {args.png}: prediction error against the number of examples")
    return 0


COMMAND = shared.Command(
    name="demo", summary="SGD and ridge transformers on a random task, beside the closed forms",
    description=f"""
Compile the paper's two one-example transformers (Theorem 1: a step of SGD;
Theorem 2: a Sherman-Morrison ridge update) at d = 2 and print their
instructions and their depth and width beside the paper's. Then draw a random
regression task with d inputs and n examples (x ~ N(0, I), y = w^T x) and run
two transformers on it, one-pass SGD (alpha = {ALPHA}, lam = {LAM}) and ridge
(lam = {LAM}), each compiled for the domain of {CALIBRATION_TASKS} sample tasks: after every
prefix of the examples, each prediction is printed beside the exact machine's,
the closed form's and the error.""",
    results="""
The text goes to stdout (--json: the same numbers as JSON). --png FILE also
draws the prediction error against the number of examples, for the closed
forms and the compiled networks, averaged over random tasks (any suffix
matplotlib writes: .png, .pdf, .svg; needs pip install 'icl-construct[plots]').
python -m construct runs this command.""",
    examples=("icl-construct demo", "icl-construct demo -d 2 -n 4 --seed 1 --png error.png"),
    arguments=_arguments, run=_run)
