"""The command line, ``icl-construct``: run the constructions, look inside them, take the weights elsewhere.

    icl-construct demo [--d 3 --n 6 --seed 0] [--png FILE]     SGD and ridge transformers on a random task
    icl-construct predict --algo ridge --data FILE [--lam 0.1]  your own data, beside the closed form
    icl-construct export --algo sgd -d 3 -n 6 -o sgd.npz        weights and manifest in one file
    icl-construct trace --algo ridge -d 2 -n 2 [--png FILE]     register values after every layer
    icl-construct bench [--d 2 4 --n 1 4 --algo ridge]          the benchmark (construct.cli.benchmark)
    icl-construct proofs [ARGS]                                 the machine-checked proofs (python -m proofs)

``--json`` prints the numbers as JSON instead of text; ``--help`` works on
every subcommand. Errors are one line on stderr. Exit codes: 0 done; 1 the
network refused the task (outside the domain it was compiled for) or the
exact machine overflowed; 2 bad arguments or an unreadable input file. A
progress bar (stderr) shows on steps that can take seconds, when stderr is
a terminal and ``--json`` is off.

Algorithms (``--algo``): ``sgd`` (one pass of SGD over the examples, from
``--w0``, step ``--alpha``, penalty ``--lam``), ``ridge`` (Sherman-Morrison,
``--lam``), and the paper's one-example chains ``sgd_step`` and
``sherman_morrison_step`` (n = 1). A network is compiled for a domain
calibrated on ``--calibrate`` random tasks (default 256) with ``--margin``
(default 4): x ~ N(0, s_x^2 I), w ~ N(0, s_w^2 I), y = w^T x, where s_x = s_w
= 1 except for ``predict``, which matches the data: s_x is the root mean
square of its x entries and s_w makes y's root mean square the data's.

Data files for ``predict``:

* CSV: one row per example or query, ``x_1,...,x_d,y``; a query row leaves
  y empty (``0.3,-1.2,``). An optional first line of column names is
  skipped, as are blank lines and lines starting with ``#``. The examples
  are the rows with a y, in file order; every query is predicted from all
  of them.
* NPZ (``numpy.savez``): arrays ``X`` (n, d), ``y`` (n,) and ``x_query``
  (d,) or (q, d); read with ``allow_pickle=False``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import plots
from ..raw import programs
from . import benchmark, demo
from ..compiler import Bounds, DomainError
from ..compiler import CompiledNetwork, compile
from ..export import save
from ..raw.program import Program
from ..tasks import gaussian_tasks

ALGOS = ("sgd", "ridge", "sgd_step", "sherman_morrison_step")
ALPHA, LAM, MARGIN, CALIBRATION = 0.05, 0.1, 4.0, 256


class UsageError(Exception):
    """Bad arguments or an unreadable input file: exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (and a pointer to --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _progress(args, total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False,
                disable=args.json or not sys.stderr.isatty())


def _print_json(value) -> None:
    print(json.dumps(value, indent=1))


# -- building a network from the options ---------------------------------------------------


def _program(args, d: int, n: int) -> Program:
    algo = args.algo
    if algo in ("ridge", "sherman_morrison_step"):
        given = [f"--{opt}" for opt in ("alpha", "w0") if getattr(args, opt) is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for SGD only, "
                             f"not for --algo {algo}")
    if algo.endswith("_step") and n != 1:
        raise UsageError(f"--algo {algo} is the paper's one-example chain: it needs n = 1, got {n}")
    alpha = ALPHA if args.alpha is None else args.alpha
    lam = LAM if args.lam is None else args.lam
    w0 = np.zeros(d) if args.w0 is None else np.array(args.w0)
    try:
        if algo == "sgd":
            return programs.sgd(d, n, alpha, lam, w0)
        if algo == "sgd_step":
            return programs.sgd_step(d, alpha, lam, w0)
        if algo == "ridge":
            return programs.ridge(d, n, lam)
        return programs.sherman_morrison_step(d, lam)
    except ValueError as err:  # the programs name the parameter: alpha, lam, w0, d or n
        raise UsageError(f"bad parameter: {err}") from None


def _calibration_tasks(d: int, n: int, count: int, seed: int, x_scale: float = 1.0, w_scale: float = 1.0):
    """Gaussian tasks with x ~ N(0, x_scale^2 I) and w ~ N(0, w_scale^2 I): y scales by both."""
    return [(X * x_scale, y * x_scale * w_scale, q * x_scale) for X, y, q in gaussian_tasks(d, n, count, seed)]


def _compiled(args, program: Program, tasks, bar, dtype: str = "float64") -> CompiledNetwork:
    bounds = Bounds.calibrate(program, tasks, margin=args.margin)
    bar.update()
    net = compile(program, bounds, dtype=dtype)
    bar.update()
    return net


# -- demo -------------------------------------------------------------------------------------


def _demo(args) -> int:
    with _progress(args, 4 + bool(args.png), "demo") as bar:
        result = demo.run(args.d, args.n, args.seed, step=bar.update)
        if args.png:
            result["picture"] = {"path": str(args.png), "curves": plots.error_vs_examples(
                args.png, args.d, args.n, demo.ALPHA, demo.LAM, seed=args.seed)}
            bar.update()
    if args.json:
        _print_json(result)
    else:
        print(demo.render(result))
        if args.png:
            print(f"\nwrote {args.png}: prediction error against the number of examples")
    return 0


# -- predict ----------------------------------------------------------------------------------


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {text.strip()!r} is not a number") from None
    if not np.isfinite(value):
        raise UsageError(f"{where}: {text.strip()!r} is not a finite number")
    return value


def _read_csv(path: Path):
    examples, queries, width = [], [], None
    with path.open(newline="") as f:
        rows = [(k, row) for k, row in enumerate(csv.reader(f), 1)
                if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")]
    if rows and not _is_number(rows[0][1][0]):
        rows = rows[1:]  # a header of column names
    for line, row in rows:
        if width is None:
            width = len(row)
        if len(row) != width:
            raise UsageError(f"{path} line {line}: {len(row)} columns, the first row has {width}")
        if width < 2:
            raise UsageError(f"{path} line {line}: a row needs x_1..x_d and a y column")
        x = [_number(c, f"{path} line {line}") for c in row[:-1]]
        (queries if not row[-1].strip() else examples).append((x, row[-1], line))
    if not examples or not queries:
        raise UsageError(f"{path}: needs at least one example row (with y) and one query row (y empty); "
                         f"found {len(examples)} and {len(queries)}")
    X = np.array([x for x, _, _ in examples])
    y = np.array([_number(label, f"{path} line {line}") for _, label, line in examples])
    return X, y, np.array([x for x, _, _ in queries])


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("X", "y", "x_query") if k not in npz.files]
            if missing:
                raise UsageError(f"{path}: missing arrays {missing}; needs X (n, d), y (n,), x_query (d,) or (q, d)")
            X, y, queries = (np.asarray(npz[k], dtype=np.float64) for k in ("X", "y", "x_query"))
    except UsageError:
        raise
    except Exception as err:  # a damaged or foreign file: numpy and zipfile raise many kinds
        raise UsageError(f"{path}: not a readable .npz of numbers ({type(err).__name__}: {err})") from None
    queries = queries[None, :] if queries.ndim == 1 else queries
    if X.ndim != 2 or y.shape != (X.shape[0],) or queries.ndim != 2 or queries.shape[1] != X.shape[1]:
        raise UsageError(f"{path}: shapes X {X.shape}, y {y.shape}, x_query {queries.shape} do not fit "
                         "X (n, d), y (n,), x_query (d,) or (q, d)")
    if X.shape[0] == 0 or queries.shape[0] == 0:
        raise UsageError(f"{path}: needs at least one example and one query")
    for name, a in (("X", X), ("y", y), ("x_query", queries)):
        if not np.all(np.isfinite(a)):
            raise UsageError(f"{path}: {name} contains NaN or inf")
    return X, y, queries


def _read_data(path: Path):
    if not path.is_file():
        raise UsageError(f"--data: no file {path}")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    raise UsageError(f"--data: {path} must be a .csv or .npz file")


def _rms(a: np.ndarray) -> float:
    value = float(np.sqrt(np.mean(a * a)))
    return value if value > 0 else 1.0


def _predict(args) -> int:
    X, y, queries = _read_data(args.data)
    (n, d), q = X.shape, len(queries)
    program = _program(args, d, n)
    x_scale = _rms(np.concatenate([X.ravel(), queries.ravel()]))
    w_scale = _rms(y) / (x_scale * np.sqrt(d))
    tasks = _calibration_tasks(d, n, args.calibrate, args.seed, x_scale, w_scale)
    rows = []
    with _progress(args, 2 + q, f"predict ({program.name}, d={d}, n={n})") as bar:
        net = _compiled(args, program, tasks, bar)
        for k, x_query in enumerate(queries, 1):
            try:
                got = float(net.predict(X, y, x_query)[-1])
            except DomainError as err:
                raise DomainError(f"query {k}: {err} (a larger --margin widens the domain)") from None
            want = float(demo.closed_form(program, X, y, x_query)[-1])
            rows.append({"query": k, "x": x_query.tolist(), "transformer": got, "closed_form": want,
                         "abs_error": abs(got - want)})
            bar.update()
    result = {"algo": program.name, "d": d, "n": n, "params": _params(program), "size": net.size(),
              "calibration": {"tasks": args.calibrate, "margin": args.margin, "x_scale": x_scale,
                              "w_scale": w_scale}, "predictions": rows}
    if args.json:
        _print_json(result)
        return 0
    print(f"{program.name} on {args.data}: d = {d}, n = {n} examples, {q} quer{'y' if q == 1 else 'ies'}; "
          f"{', '.join(f'{k} = {v}' for k, v in result['params'].items())}")
    print(f"network: {demo.size_text(net)}")
    print(f"domain: calibrated on {args.calibrate} tasks, x ~ N(0, {x_scale:.3g}^2 I), w ~ N(0, {w_scale:.3g}^2 I), "
          f"margin {args.margin:g}\n")
    print(f"{'query':>5}  {'transformer':>17}  {'closed form':>17}  {'|error|':>8}  x")
    for r in rows:
        x = ", ".join(f"{v:.4g}" for v in r["x"])
        print(f"{r['query']:>5}  {r['transformer']:>17.12f}  {r['closed_form']:>17.12f}  {r['abs_error']:>8.1e}  [{x}]")
    return 0


def _params(program: Program) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in program.params.items()}


# -- export -------------------------------------------------------------------------------------


def _export(args) -> int:
    program = _program(args, args.d, args.n)
    out = args.output if args.output.suffix == ".npz" else args.output.with_name(args.output.name + ".npz")
    if not out.parent.is_dir():
        raise UsageError(f"-o: no directory {out.parent}")
    with _progress(args, 3, f"export ({program.name})") as bar:
        tasks = _calibration_tasks(program.d, program.n, args.calibrate, args.seed)
        net = _compiled(args, program, tasks, bar, args.dtype)
        path = save(net, out)
        bar.update()
    result = {"path": str(path), "bytes": path.stat().st_size, "algo": program.name, "d": program.d,
              "n": program.n, "params": _params(program), "dtype": args.dtype, "size": net.size()}
    if args.json:
        _print_json(result)
    else:
        print(f"wrote {path} ({result['bytes']:,} bytes): {program.name}, d = {program.d}, n = {program.n}, "
              f"{args.dtype}; {demo.size_text(net)}")
        print(f"load it with construct.load({str(path)!r}); the manifest inside: unzip -p {path} manifest.json")
    return 0


# -- trace --------------------------------------------------------------------------------------


def _token_names(n: int) -> list[str]:
    return [f"{kind}~{k}" for k in range(1, n + 1) for kind in ("x", "y")] + ["x~q"]


def _trace(args) -> int:
    program = _program(args, args.d, args.n)
    if args.layer is not None and not args.weights_png:
        raise UsageError("--layer chooses the layer --weights-png draws; give --weights-png too")
    if args.layer is not None and args.layer > program.depth:
        raise UsageError(f"--layer must be in 1..{program.depth} ({program.name} has {program.depth} layers)")
    with _progress(args, 3, f"trace ({program.name})") as bar:
        net = _compiled(args, program, _calibration_tasks(program.d, program.n, args.calibrate, args.seed + 1), bar)
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
        pictures["residual_stream"] = str(plots.residual_stream(trace, args.png))
    if args.weights_png:
        layer = args.layer or next((k for k, ins in enumerate(program.instructions, 1) if ins.kind == "mul"), 1)
        pictures[f"weights_layer_{layer}"] = str(plots.weights_heatmap(net, layer, args.weights_png))
    X, y, x_query = task
    if args.json:
        _print_json({"algo": program.name, "d": program.d, "n": program.n, "params": _params(program),
                     "task": {"X": X.tolist(), "y": y.tolist(), "x_query": x_query.tolist()}, "tokens": names,
                     "row_labels": list(net.layout.labels), "states": trace.states.tolist(), "written": table,
                     "pictures": pictures})
        return 0
    print(f"{program.name}, d = {program.d}, n = {program.n}: {demo.size_text(net)}")
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


# -- bench and proofs -------------------------------------------------------------------------


def _bench(args) -> int:
    if min(args.d) < 1 or min(args.n) < 1:
        raise UsageError("--d and --n take integers >= 1")
    configs = [(a, d, n) for a in args.algo for d in args.d for n in args.n]
    rows = []
    with _progress(args, len(configs), "bench") as bar:
        for algo, d, n in configs:
            bar.set_postfix_str(f"{algo} d={d} n={n}")
            rows.append(benchmark._in_subprocess(algo, d, n))
            bar.update()
    if args.json:
        _print_json(rows)
    else:
        print(benchmark.table(rows))
    return 0


def _proofs(args) -> int:
    try:
        import proofs
    except ModuleNotFoundError as err:
        if err.name != "proofs":
            raise
        raise UsageError("the proofs are not installed: run from a clone of the repository "
                         "(they are the top-level package proofs/)") from None
    if not callable(getattr(proofs, "main", None)):
        raise UsageError("the package proofs has no main(argv); it is not the proofs of this project")
    return int(proofs.main(args.args) or 0)


# -- the parser ---------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _margin(text: str) -> float:
    value = float(text)
    if not (np.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"must be a number >= 1, got {text}")
    return value


def _network_options(parser, d: int, n: int, sizes: bool = True) -> None:
    parser.add_argument("--algo", choices=ALGOS, required=True, help="the algorithm the network carries out")
    if sizes:
        parser.add_argument("-d", "--d", type=_positive_int, default=d, help=f"input dimension (default {d})")
        parser.add_argument("-n", "--n", type=_positive_int, default=n, help=f"number of examples (default {n})")
    parser.add_argument("--alpha", type=float, help=f"SGD step size (default {ALPHA})")
    parser.add_argument("--lam", type=float, help=f"penalty / ridge parameter (default {LAM})")
    parser.add_argument("--w0", type=float, nargs="+", metavar="W", help="SGD's initial weights, d numbers "
                        "(default 0)")
    parser.add_argument("--margin", type=_margin, default=MARGIN, help=f"calibration margin (default {MARGIN:g})")
    parser.add_argument("--calibrate", type=_positive_int, default=CALIBRATION, metavar="COUNT",
                        help=f"random tasks the domain is calibrated on (default {CALIBRATION})")
    parser.add_argument("--json", action="store_true", help="print JSON")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="icl-construct", description=__doc__.split("\n\n")[0],
                  epilog="Run 'icl-construct COMMAND --help' for a command's options.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="SGD and ridge transformers on a random task, beside the closed forms",
                       description=demo.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=_positive_int, default=3, help="input dimension (default 3)")
    p.add_argument("--n", type=_positive_int, default=6, help="number of examples (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random task (default 0)")
    p.add_argument("--png", type=Path, metavar="FILE", help="also write the error against the number of examples")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_demo)

    p = sub.add_parser("predict", help="a network's predictions on your own data, beside the closed form",
                       description=__doc__.split("Data files for ``predict``:")[1].strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, metavar="FILE", help="a .csv or .npz file (see above)")
    _network_options(p, 0, 0, sizes=False)
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration tasks (default 0)")
    p.set_defaults(run=_predict)

    p = sub.add_parser("export", help="compile a network and write its weights and manifest to one .npz",
                       description="Compile a network and write it to one .npz file: the weight arrays and "
                       "manifest.json (format in construct/export/npz.py and the README). construct.load reads it.")
    _network_options(p, 3, 6)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="PATH", help="file to write (.npz)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="weights' dtype")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration tasks (default 0)")
    p.set_defaults(run=_export)

    p = sub.add_parser("trace", help="register values after every layer, for a small random task",
                       description="Run a network on a random task and print, after each layer, the register "
                       "it writes at every token, beside the exact machine.")
    _network_options(p, 2, 2)
    p.add_argument("--seed", type=int, default=0, help="seed of the random task (default 0)")
    p.add_argument("--png", type=Path, metavar="FILE", help="write the residual stream picture")
    p.add_argument("--weights-png", type=Path, metavar="FILE", help="write a heatmap of one layer's weights")
    p.add_argument("--layer", type=_positive_int, help="the layer --weights-png draws (default: the first mul)")
    p.set_defaults(run=_trace)

    p = sub.add_parser("bench", help="the benchmark: size, time, memory and error per configuration",
                       description=benchmark.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, nargs="+", default=[2, 4, 8], help="input dimensions (default 2 4 8)")
    p.add_argument("--n", type=int, nargs="+", default=[1, 4, 16, 32], help="examples (default 1 4 16 32)")
    p.add_argument("--algo", nargs="+", choices=["sgd", "ridge"], default=["sgd", "ridge"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_bench)

    p = sub.add_parser("proofs", help="run the machine-checked proofs (python -m proofs); other arguments go "
                       "to it", description="Run the machine-checked proofs: icl-construct proofs ARGS is "
                       "python -m proofs ARGS.")
    p.set_defaults(run=_proofs)
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, rest = top.parse_known_args(argv)
    prog = f"icl-construct {args.command}"
    if args.command == "proofs":
        args.args = rest
    elif rest:
        top.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(rest)} (see {prog} --help)\n")
    try:
        return args.run(args)
    except UsageError as err:
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except (DomainError, FloatingPointError) as err:
        print(f"{prog}: refused: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except (plots.PlotsUnavailable, OSError) as err:  # no matplotlib; a file that cannot be written
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
