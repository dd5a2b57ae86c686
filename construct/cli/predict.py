"""``icl-construct predict``: a network's certified answers on the user's own data, beside the closed form.

The network is compiled for the smallest input box holding the data (every register's bound from the
algorithm's theory), or, where that box admits an SGD step that expands ``|w|``, for the data's own runs with
``--margin`` (``construct.predict``'s domain ``"auto"``); or with ``--domain calibrated`` for a domain
calibrated on random tasks scaled like the data. Each query is predicted from all the examples, with
its certified bound; an answer whose bound exceeds the tolerance is refused (``CompiledNetwork.predict``).
"""

from __future__ import annotations

import numpy as np

from ..compiler import CompiledNetwork, DomainError, SizeError, answer
from ..raw.program import Program
from . import budget, data, network, shared
from .shared import Refused

TOLERANCE = 1e-6


def _rms(a: np.ndarray) -> float:
    """Root mean square, without overflow or underflow in the squares (1 for all zeros)."""
    top = float(np.max(np.abs(a)))
    return top * float(np.sqrt(np.mean((a / top) ** 2))) if top > 0 else 1.0


def _boxed(args, program: Program, tasks: list, box: dict, bar) -> CompiledNetwork:
    """Compile for the data's box, or for the data's own runs where the box admits an expanding SGD step
    (``construct.predict``'s domain ``"auto"``), turning a domain float64 cannot hold into a refusal that names
    the box."""
    try:
        net = answer.network_for(program, tasks, "auto", args.margin,
                                 max_bytes=args.max_memory, max_seconds=args.max_seconds)
    except (SizeError, DomainError):  # DomainError: the data's own SGD run overflows, named where it grows
        raise
    except (ArithmeticError, ValueError) as err:
        raise Refused(f"the network cannot be compiled in float64 for the data's box |x| <= {box['x_max']:.3g}, "
                      f"|y| <= {box['y_max']:.3g} with {network.params_text(program)} ({network.reason(err)}); data "
                      "rescaled towards 1, or --domain calibrated, may bring it into range") from None
    bar.update(2)
    return net


def _run(args) -> int:
    X, y, queries = data.read(args.data, shared.given_limits(args))
    (n, d), q = X.shape, len(queries)
    calibrated = args.domain == "calibrated"
    network.affordable(args, f"predict on {q} quer{'y' if q == 1 else 'ies'}", n, d,
                       lambda net, d_: budget.built(net, args.calibrate if calibrated else 0, d_,
                                                    passes=q * budget.CERTIFIED_PASSES))
    program = network.program(args, d, n)
    rows = []
    with shared.progress(args, 2 + q, f"predict ({program.name}, d={d}, n={n})") as bar:
        if calibrated:
            x_scale = _rms(np.concatenate([X.ravel(), queries.ravel()]))
            w_scale = _rms(y) / (x_scale * np.sqrt(d))
            tasks = network.calibration_tasks(d, n, args.calibrate, args.seed, x_scale, w_scale)
            net = network.compiled(args, program, tasks, bar, tasks_text=f"x ~ N(0, {x_scale:.3g}^2 I), "
                                   f"w ~ N(0, {w_scale:.3g}^2 I) (scaled like the data)")
            domain = {"source": "calibrated", "tasks": args.calibrate, "margin": args.margin, "x_scale": x_scale,
                      "w_scale": w_scale}
            wider = "a larger --margin widens the domain"
        else:
            tasks = [(X, y, x_query) for x_query in queries]
            box = answer.box_of(tasks)
            net = _boxed(args, program, tasks, box, bar)
            if net.bounds.box is not None:
                domain = {"source": "box", **box}
                wider = "the domain is the data's own box"
            else:  # the box admits an SGD step that expands |w|: the data's own runs, with --margin
                domain = {"source": "run", "margin": args.margin, **box}
                wider = answer.growth(program, X)
        for k, x_query in enumerate(queries, 1):
            try:
                got, bound = (float(v[-1]) for v in net.predict(X, y, x_query, tolerance=args.tolerance,
                                                                 return_bound=True))
            except DomainError as err:
                raise DomainError(f"query {k}: {err} ({wider})") from None
            want = float(program.algorithm.closed(program, X, y, x_query)[-1])
            rows.append({"query": k, "x": x_query.tolist(), "transformer": got, "certified_bound": bound,
                         "closed_form": want, "abs_error": abs(got - want)})
            bar.update()
    result = {"algo": program.name, "d": d, "n": n, "params": network.params(program), "size": net.size(),
              "domain": domain, "tolerance": args.tolerance, "predictions": rows}
    if args.json:
        shared.print_json(result)
        return 0
    print(f"{program.name} on {args.data}: d = {d}, n = {n} examples, {q} quer{'y' if q == 1 else 'ies'}; "
          f"{', '.join(f'{k} = {v}' for k, v in result['params'].items())}")
    print(f"network: {network.size_text(net)}")
    if calibrated:
        print(f"domain: calibrated on {args.calibrate} tasks, x ~ N(0, {domain['x_scale']:.3g}^2 I), "
              f"w ~ N(0, {domain['w_scale']:.3g}^2 I), margin {args.margin:g}")
    elif domain["source"] == "box":
        print(f"domain: the data's box, |x_i| <= {domain['x_max']:.6g}, |y| <= {domain['y_max']:.6g}")
    else:
        print(f"domain: the data's own run (its box, |x_i| <= {domain['x_max']:.6g}, |y| <= {domain['y_max']:.6g}, "
              f"admits an SGD step that expands |w|), margin {args.margin:g}")
    print("bound: a proven bound on |transformer - exact answer| in this run's floating point; "
          f"answers above {args.tolerance:g} x the scale (the largest of |answer| and the labels' magnitudes) "
          "are refused\n")
    print(f"{'query':>5}  {'transformer':>17}  {'bound':>8}  {'closed form':>17}  {'|error|':>8}  x")
    for r in rows:
        x = ", ".join(f"{v:.4g}" for v in r["x"])
        print(f"{r['query']:>5}  {r['transformer']:>17.12f}  {r['certified_bound']:>8.1e}  "
              f"{r['closed_form']:>17.12f}  {r['abs_error']:>8.1e}  [{x}]")
    return 0


def _arguments(parser) -> None:
    parser.add_argument("--data", type=shared.path, required=True, metavar="FILE",
                        help="a .csv or .npz file of examples and queries (see Data files below)")
    network.algorithm(parser)
    parser.add_argument("--domain", choices=("box", "calibrated"), default="box",
                        help="box (default): compile for the smallest input box holding the data, every bound from "
                        "the algorithm's theory (SGD whose step can expand |w| on that box: for the data's own runs, "
                        "with --margin); calibrated: on --calibrate random tasks scaled like the data, with "
                        "--margin")
    parser.add_argument("--tolerance", type=shared.number(0), default=TOLERANCE,
                        help="refuse an answer whose certified bound exceeds TOLERANCE x the prompt's scale, the "
                        f"largest of |answer| and the labels' magnitudes (default {TOLERANCE:g}; 0 refuses every "
                        "answer whose bound is not exactly 0)")
    network.calibration(parser)
    shared.seed(parser, "the calibration tasks of --domain calibrated")
    shared.json_output(parser)
    shared.limits(parser)


DATA_FILES = f"""
Data files:

CSV (UTF-8; a byte-order mark is fine): one row per example or query,
x_1,...,x_d,y; a query row leaves y empty (0.3,-1.2,). Blank lines and
lines starting with # are skipped. The first row is a header of column names
only if none of its cells is a number; any other cell that is not a number is
an error naming its line and column. The examples are the rows with a y, in
file order; every query is predicted from all of them.

NPZ (numpy.savez): arrays X (n, d), y (n,) and x_query (d,) or (q, d), of
integers or floats; nothing in it is unpickled.

Every number must be finite and at most {data.MAX_VALUE:g} in magnitude: the
programs square their inputs."""


COMMAND = shared.Command(
    name="predict", summary="a network's certified predictions on your own data, beside the closed form",
    description="""
Read the examples and queries of a data file, compile a transformer that
carries out --algo on d inputs and n examples (d and n are the file's), and
predict every query from all the examples. Each answer comes with a proven
bound on its distance from the exact answer, and an answer whose bound
exceeds --tolerance x the prompt's scale (the largest of |answer| and the
labels' magnitudes) is refused (exit code 1) rather than printed.

The network is compiled for the smallest input box holding the data, with
every register's bound from the algorithm's theory. SGD whose step can
expand |w| somewhere in that box is compiled instead for the exact
machine's runs on the data, widened by --margin: data whose run stays
bounded is answered and certified, and data whose run grows is refused
naming the example from which it grows. With --domain calibrated it is compiled instead
for a domain calibrated on --calibrate random tasks scaled like the data
(x ~ N(0, s^2 I) with s the root mean square of the inputs, w scaled so that
y has the data's root mean square), widened by --margin; a query outside it
is refused.""",
    results="""
A table goes to stdout: per query, the transformer's answer, its certified
bound, the closed-form answer and their difference, after a line on the
network's size and domain (--json: the same as JSON). Nothing is written to
disk.""",
    examples=("icl-construct predict --algo ridge --data my_data.csv --lam 0.5",
              "icl-construct predict --algo sgd --data my_data.npz --alpha 0.02 --lam 0 --w0 0 0 0"),
    arguments=_arguments, run=_run, details=lambda: DATA_FILES + "\n\n" + network.algorithms_text())
