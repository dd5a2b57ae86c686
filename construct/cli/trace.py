"""``icl-construct trace``: the register each layer writes, at every token, beside the exact machine.

The network is compiled with one layer per instruction (``fuse=False``), the paper's construction, so each
layer is one step of the program and its output can be set beside the exact machine's state after that step.
"""

from __future__ import annotations

import numpy as np

from .. import plots
from ..instructions import MLP
from ..tasks import gaussian_tasks
from . import budget, network, shared
from .shared import UsageError


def _token_names(n: int) -> list[str]:
    return [f"{kind}~{k}" for k in range(1, n + 1) for kind in ("x", "y")] + ["x~q"]


def _cost(args, net: budget.Network, d: int) -> budget.Cost:
    """Calibrate, compile, one pass keeping every state (three copies), the exact machine's states, the output."""
    s = net.size
    states = (s.applied + 1) * s.tokens * s.width
    machine = budget.Cost((s.applied + 1) * net.rows * s.tokens * 8, s.applied * budget.STEP_SECONDS)
    out = budget.writing(states) if args.json else budget.Cost()
    return budget.built(net, args.calibrate, d, passes=0) + budget.forward(net, 1, copies=3) + machine + out


def _run(args) -> int:
    if args.layer is not None and not args.weights_png:
        raise UsageError("--layer chooses the layer --weights-png draws; give --weights-png too")
    for path, option in ((args.png, "--png"), (args.weights_png, "--weights-png")):
        if path:
            shared.picture(path, option)
    if args.png and args.weights_png and args.png.resolve() == args.weights_png.resolve():
        raise UsageError(f"--png and --weights-png name the same file {args.png}; give two files")
    network.affordable(args, "trace", args.n, args.d, lambda net, d_: _cost(args, net, d_), fuse=False)
    program = network.program(args, args.d, args.n)
    if args.layer is not None and args.layer > program.depth:
        raise UsageError(f"--layer must be in 1..{program.depth} ({program.name} has {program.depth} layers)")
    with shared.progress(args, 3, f"trace ({program.name})") as bar:
        tasks = network.calibration_tasks(program.d, program.n, args.calibrate, args.seed + 1)
        net = network.compiled(args, program, tasks, bar, fuse=False)
        (task,) = gaussian_tasks(program.d, program.n, 1, args.seed)
        trace = net.trace(*task)
        bar.update()
    exact = program.run(*task, trace=True)
    names = _token_names(program.n)
    layers = [("embedding", ("y_in", "x_in", "pos"))] + [(r.instruction, (ins.writes,)) for r, ins in
                                                          zip(net.layers, program.instructions)]
    table = []
    for l, (what, registers) in enumerate(layers):
        for name in registers:
            rows = net.layout.rows(name)
            for label, got, want in zip(net.layout.labels[rows], trace.states[l, rows], exact[l][rows]):
                table.append({"layer": l, "instruction": what, "row": label, "values": got.tolist(),
                              "machine_error": float(np.max(np.abs(got - want)))})
    pictures = {}
    if args.png:
        with shared.writing(args.png, "--png"):
            pictures["residual_stream"] = str(plots.residual_stream(trace, args.png))
    if args.weights_png:
        layer = args.layer or next((k for k, ins in enumerate(program.instructions, 1) if ins.phase == MLP), 1)
        with shared.writing(args.weights_png, "--weights-png"):
            pictures[f"weights_layer_{layer}"] = str(plots.weights_heatmap(net, layer, args.weights_png))
    X, y, x_query = task
    if args.json:
        shared.print_json({"algo": program.name, "d": program.d, "n": program.n, "params": network.params(program),
                           "task": {"X": X.tolist(), "y": y.tolist(), "x_query": x_query.tolist()}, "tokens": names,
                           "row_labels": list(net.layout.labels), "states": trace.states.tolist(), "written": table,
                           "pictures": pictures})
        return 0
    print(f"{program.name}, d = {program.d}, n = {program.n}: {network.size_text(net)}")
    print(f"A random task (seed {args.seed}); columns are the tokens. Each layer writes one register, shown after "
          "the layer;\nlast column: largest |transformer - exact machine| over the tokens.\n")
    label_width = max(len(r["row"]) for r in table)
    head = f"{'':>{label_width + 2}}" + "".join(f"{t:>11}" for t in names) + f"{'|error|':>10}"
    print(head)
    for l, (what, _) in enumerate(layers):
        print(f"layer {l}: {what}")
        for r in (r for r in table if r["layer"] == l):
            print(f"  {r['row']:<{label_width}}" + "".join(f"{v:>11.4g}" for v in r["values"]) +
                  f"{r['machine_error']:>10.1e}")
    for what, path in pictures.items():
        print(f"\nwrote {path} ({what.replace('_', ' ')})")
    return 0


def _arguments(parser) -> None:
    network.algorithm(parser)
    shared.sizes(parser, 2, 2)
    parser.add_argument("--png", type=shared.path, metavar="FILE",
                        help="also draw the residual stream after every layer, one panel per token")
    parser.add_argument("--weights-png", type=shared.path, metavar="FILE",
                        help="also draw one layer's weights (the layer --layer names)")
    parser.add_argument("--layer", type=shared.number(1, integer=True),
                        help="the layer --weights-png draws (default: the first whose MLP computes)")
    network.calibration(parser)
    shared.seed(parser, "the random task", "the calibration tasks use the next seed")
    shared.json_output(parser, "every layer's state at every token")
    shared.limits(parser)


COMMAND = shared.Command(
    name="trace", summary="the register each layer writes, for a small random task, beside the exact machine",
    description="""
Compile a transformer that carries out --algo on d inputs and n examples
with one layer per instruction, the paper's construction (not fused, so each
layer is one step of the program), run it on a random task, and print after
every layer the register that layer writes, at every token of the prompt
(x~1, y~1, ..., x~n, y~n, x~q), with the largest difference from the exact
machine's value. The domain is calibrated on --calibrate random tasks with
--margin.""",
    results="""
The table goes to stdout (--json: the task, the full state after every layer
and the table, as JSON). --png FILE draws the residual stream after every
layer; --weights-png FILE draws one layer's weights, its heads and MLP on the
residual rows labelled by register. Pictures take any suffix matplotlib
writes (.png, .pdf, .svg, ...) and need pip install 'icl-construct[plots]'.""",
    examples=("icl-construct trace --algo ridge -d 2 -n 2",
              "icl-construct trace --algo sgd -d 2 -n 2 --png stream.png --weights-png layer.png --layer 9"),
    arguments=_arguments, run=_run, details=network.algorithms_text)
