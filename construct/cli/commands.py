"""The command line, ``icl-construct``: run the constructions, look inside them, take the weights elsewhere.

    icl-construct demo [--d 3 --n 6 --seed 0] [--png FILE]     SGD and ridge transformers on a random task
    icl-construct predict --algo ridge --data FILE [--lam 0.1]  your own data, beside the closed form
    icl-construct export --algo sgd -d 3 -n 6 -o sgd.npz        weights and manifest in one file
    icl-construct export --format hf --algo ridge -o ridge-gpt2 GPT-2 blocks: a Hugging Face checkpoint directory
    icl-construct trace --algo ridge -d 2 -n 2 [--png FILE]     register values after every layer
    icl-construct bench [--d 2 4 --n 1 4 --algo ridge]          the benchmark (construct.cli.benchmark)
    icl-construct proofs [ARGS]                                 the machine-checked proofs (python -m proofs)

``--json`` prints the numbers as JSON instead of text; ``--help`` works on
every subcommand. A progress bar (stderr) shows on steps that can take
seconds, when stderr is a terminal and ``--json`` is off.

Exit codes: 0 done; 1 refused: the task is outside the domain the network
was compiled for, or float64 overflows in the exact machine or the
compiler on these numbers; 2 bad input: an option, a data file, an output
path (or a full disk), a run estimated above --max-memory or --max-seconds,
or more memory than the machine has free; 3 an internal
error, a bug (rerun with --debug for the traceback, and report it); 130
interrupted; 141 the output pipe was closed. Errors are one line on stderr,
with no Python traceback unless --debug is given.

Limits: before it calibrates or allocates anything, each command estimates
the memory and the time it needs (construct.cli.budget) and refuses above
--max-memory (default 4GiB) or --max-seconds (default 120; bench 3600).

Algorithms (``--algo``): ``sgd`` (one pass of SGD over the examples, from
``--w0``, step ``--alpha``, penalty ``--lam``), ``ridge`` (Sherman-Morrison,
``--lam``), and the paper's one-example chains ``sgd_step`` and
``sherman_morrison_step`` (n = 1). ``predict`` compiles for the smallest
input box holding its data (every register's bound from the algorithm's
theory: a task inside the box is never refused for its domain) and prints
beside each answer a proven bound on its distance from the exact answer,
refusing (exit 1) an answer whose bound exceeds ``--tolerance`` (default
1e-6) x (1 + |answer|); ``--tolerance 0`` refuses every answer whose bound
is not exactly 0. The other commands, and ``predict --domain
calibrated``, compile for a domain calibrated on ``--calibrate`` random
tasks (default 256) with ``--margin`` (default 4): x ~ N(0, s_x^2 I),
w ~ N(0, s_w^2 I), y = w^T x, where s_x = s_w = 1 except for ``predict``,
which matches the data: s_x is the root mean square of its x entries and
s_w makes y's root mean square the data's.
Every number given (options and data) must be finite and at most 1e150 in
magnitude: the programs square their inputs.

Data files for ``predict``:

* CSV (UTF-8, a byte-order mark is fine): one row per example or query,
  ``x_1,...,x_d,y``; a query row leaves y empty (``0.3,-1.2,``). Blank lines
  and lines starting with ``#`` are skipped. The first row is a header of
  column names only if none of its cells is a number; any other cell that
  is not a number is an error naming its line and column. The examples are
  the rows with a y, in file order; every query is predicted from all of
  them.
* NPZ (``numpy.savez``): arrays ``X`` (n, d), ``y`` (n,) and ``x_query``
  (d,) or (q, d), of integers or floats; read with ``allow_pickle=False``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import plots
from ..compiler import Bounds, CompiledNetwork, DomainError, FloatRangeError, SizeError, compile
from ..export import save
from .. import programs
from ..raw.program import Program
from ..tasks import gaussian_tasks
from . import _set_interrupt_handler, benchmark, budget, data, demo

EXIT_CODES = ("Exit codes: 0 done; 1 refused (outside the network's domain, or float64 overflows on these numbers); "
              "2 bad input (options, data, paths, a full disk, a run estimated above --max-memory/--max-seconds, or "
              "out of memory); 3 internal "
              "error (a bug: rerun with --debug and report it); 130 interrupted; 141 output pipe closed.")
ALGOS = tuple(programs.REGISTRY)
ALPHA, LAM, MARGIN, CALIBRATION = 0.05, 0.1, 4.0, 256
NOT_OFFERED = {"pgf": "it needs a LaTeX installation"}  # picture formats matplotlib lists but may not write


class UsageError(Exception):
    """Bad arguments or an output path that cannot be written: exit code 2."""


class Refused(Exception):
    """float64 overflows in the exact machine or the compiler on these numbers: exit code 1."""


def _exit_code(err: Exception) -> int:
    if isinstance(err, (DomainError, Refused, FloatingPointError)):
        return 1
    if isinstance(err, (UsageError, data.DataError, SizeError, plots.PlotsUnavailable, OSError, MemoryError)):
        return 2
    return 3


def _message(err: Exception, code: int, args) -> str:
    if isinstance(err, MemoryError):  # the estimate passed --max-memory, but the machine has less free
        limit = getattr(args, "max_memory", None)
        return (f"ran out of memory ({err or 'MemoryError'}): this machine has less free memory than the run needs"
                + (f", which was estimated within --max-memory {budget.gib(limit)}" if limit else "")
                + "; give --max-memory the memory that is free, or ask for a smaller n or d")
    if code == 3:
        return (f"internal error ({type(err).__name__}: {err}); this is a bug in icl-construct: rerun with --debug "
                "and open an issue with the command and its output")
    return str(err)


# -- the parser's pieces -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (and a pointer to --help), no abbreviated options, no option twice."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --d would silently mean --data in predict
        super().__init__(*args, **kwargs)
        self.register("action", None, _Store)
        self.register("action", "store", _Store)
        self.register("action", "store_true", _Flag)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _first_time(parser, namespace, dest: str, option_string: str) -> None:
    given = namespace.__dict__.setdefault("_given", set())
    if dest in given:
        parser.error(f"{option_string} is given twice; give it once")
    given.add(dest)


class _Store(argparse.Action):
    """argparse's store, refusing an option given twice (argparse would keep the last one silently)."""

    def __call__(self, parser, namespace, values, option_string=None):
        _first_time(parser, namespace, self.dest, option_string)
        setattr(namespace, self.dest, values)


class _Flag(argparse.Action):
    """argparse's store_true, refusing a flag given twice."""

    def __init__(self, option_strings, dest, default=False, required=False, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, required=required, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        _first_time(parser, namespace, self.dest, option_string)
        setattr(namespace, self.dest, True)


def _number(low: float | None = None, *, integer: bool = False):
    """An option type: a finite number (or an integer) of magnitude at most 1e150, and at least ``low``."""

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if integer else 'a number'}") from None
        if not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if abs(value) > data.MAX_VALUE:
            raise argparse.ArgumentTypeError(f"{text} is larger than {data.MAX_VALUE:g} in magnitude, where "
                                             "float64 overflows in the programs' products")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if integer else 'a number'} >= {low:g}, got {text}")
        return value

    return parse


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file name")
    return Path(text)


def _limit(parse):
    def typed(text: str) -> float:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return typed


def _progress(args, total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False,
                disable=args.json or not sys.stderr.isatty())


def _print_json(value) -> None:
    print(json.dumps(value, indent=1))


def _limits(args) -> budget.Limits:
    return budget.Limits(args.max_memory, args.max_seconds)


# -- output files ---------------------------------------------------------------------------------


def _output(path: Path, option: str) -> Path:
    """Refuse, before any work, a file that cannot be written."""
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a directory; name a file in it")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{option}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write into {parent}: permission denied")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option}: {path} exists and is read-only")
    return path


def _os_errno(err: BaseException) -> int | None:
    """The system error behind a failed write: an OSError's errno, or the "(os error N)" of a writer in Rust
    (safetensors, which --format hf uses, raises its own SafetensorError on a full disk)."""
    if isinstance(err, OSError):
        return err.errno
    found = re.search(r"\(os error (\d+)\)", str(err))
    return int(found.group(1)) if found else None


@contextmanager
def _writing(path: Path, option: str):
    """A write that fails for the system's reasons (a full disk, permissions) is bad output, exit 2, naming the
    file (a full disk's OSError names none)."""
    try:
        yield
    except Exception as err:
        code = _os_errno(err)
        if code is None and not isinstance(err, OSError):
            raise
        raise UsageError(f"{option}: cannot write {path}: {os.strerror(code) if code else err}") from None


def _picture(path: Path, option: str) -> Path:
    """A picture path with a suffix matplotlib writes (needs matplotlib: PlotsUnavailable otherwise)."""
    formats = sorted(set(plots.figure(1, 1).canvas.get_supported_filetypes()) - set(NOT_OFFERED))
    suffix = path.suffix[1:].lower()
    if suffix not in formats:
        why = f": {NOT_OFFERED[suffix]}" if suffix in NOT_OFFERED else ""
        raise UsageError(f"{option}: {path} has {f'the suffix .{suffix}' if suffix else 'no suffix'}, which is not "
                         f"a picture format offered here{why}; use one of {', '.join('.' + f for f in formats)}")
    return _output(path, option)


# -- building a network from the options ---------------------------------------------------------


def _check_algo(args, n: int) -> None:
    """Options that ``--algo`` does not take, and the one-example chains' n."""
    algorithm = programs.get(args.algo)
    taken = {p.name for p in algorithm.parameters}
    given = [f"--{opt}" for opt in ("alpha", "w0") if getattr(args, opt) is not None and opt not in taken]
    if given:
        raise UsageError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for SGD only, "
                         f"not for --algo {args.algo}")
    if algorithm.one_example and n != 1:
        raise UsageError(f"--algo {args.algo} is the paper's one-example chain: it needs n = 1, got {n}")


def _program(args, d: int, n: int, w0: bool = True) -> Program:
    """The program ``--algo`` names with the options' parameters; ``w0=False`` leaves SGD's w0 at 0 (for sizing)."""
    _check_algo(args, n)
    algorithm = programs.get(args.algo)
    given = {p.name: getattr(args, p.name) for p in algorithm.parameters}
    if "w0" in given:
        given["w0"] = None if given["w0"] is None or not w0 else np.array(given["w0"])
    try:
        return algorithm.program(d, n, **given)
    except ValueError as err:  # the programs name the parameter: alpha, lam, w0, d or n
        raise UsageError(f"bad parameter: {err}") from None


def _affordable(args, what: str, n: int, d: int, cost, fuse: bool = True) -> None:
    """Refuse (SizeError) a run whose ``cost(network at d')`` is above the limits; sizes from the options' program."""
    _check_algo(args, n)
    budget.affordable(_limits(args), lambda d_: f"{what} ({args.algo}, d = {d_}, n = {n})",
                      lambda d_: cost(budget.network(lambda dd, nn: _program(args, dd, nn, w0=False), d_, n,
                                                     getattr(args, "dtype", "float64"), fuse), d_), d)


def _calibration_tasks(d: int, n: int, count: int, seed: int, x_scale: float = 1.0, w_scale: float = 1.0):
    """Gaussian tasks with x ~ N(0, x_scale^2 I) and w ~ N(0, w_scale^2 I): y scales by both."""
    return [(X * x_scale, y * x_scale * w_scale, q * x_scale) for X, y, q in gaussian_tasks(d, n, count, seed)]


def _compiled(args, program: Program, tasks, bar, dtype: str = "float64", tasks_text: str = "x ~ N(0, I), "
              "w ~ N(0, I)", fuse: bool = True, architecture: str = "paper") -> CompiledNetwork:
    """Calibrate and compile, turning float64 overflow into a refusal that names the numbers behind it."""
    given = f"{_params_text(program)}, margin {args.margin:g}, calibration tasks {tasks_text}"
    try:
        # the command's budget (budget.calibration) has counted it by its own measured model
        bounds = Bounds.calibrate(program, tasks, margin=args.margin, max_bytes=None, max_seconds=None)
    except FloatingPointError as err:
        raise Refused(f"float64 overflows in the exact machine with {given} ({err}); smaller parameters, or data "
                      "rescaled towards 1, keep the values finite") from None
    except ValueError as err:  # calibrate names its argument: the margin
        raise UsageError(f"--margin: {err}") from None
    bar.update()
    try:
        net = compile(program, bounds, dtype=dtype, max_bytes=args.max_memory, fuse=fuse, architecture=architecture,
                      max_seconds=args.max_seconds)
    except SizeError:
        raise
    except (ArithmeticError, ValueError) as err:  # program and bounds are valid: float64 cannot hold the constants
        values = bounds.values.values()
        reason = _reason(err)
        raise Refused(f"the network cannot be compiled in float64 ({reason}): its domain's bounds run from "
                      f"{min(values):.3g} to {max(values):.3g} with {given}; a smaller --margin, smaller parameters, "
                      "or data rescaled towards 1, bring them into range") from None
    bar.update()
    return net


def _reason(err: Exception):
    """Why a domain cannot be compiled, in a few words (the message around it names the numbers)."""
    if isinstance(err, FloatRangeError):
        return err.reason
    return "a constant overflows" if isinstance(err, ArithmeticError) else err


def _params_text(program: Program) -> str:
    return ", ".join(f"max |{k}| = {np.max(np.abs(v)):.3g}" if isinstance(v, np.ndarray) else f"{k} = {v:.3g}"
                     for k, v in program.params.items())


def _params(program: Program) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in program.params.items()}


# -- demo -----------------------------------------------------------------------------------------


def _demo(args) -> int:
    if args.png:
        _picture(args.png, "--png")
    limits = _limits(args)
    budget.affordable(limits, lambda d: f"demo (d = {d}, n = {args.n}{', --png' if args.png else ''})",
                      lambda d: demo.cost(d, args.n, bool(args.png)), args.d)
    with _progress(args, 4 + bool(args.png), "demo") as bar:
        result = demo.run(args.d, args.n, args.seed, step=bar.update, max_bytes=args.max_memory,
                          max_seconds=args.max_seconds)
        if args.png:
            with _writing(args.png, "--png"):
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


# -- predict --------------------------------------------------------------------------------------


def _rms(a: np.ndarray) -> float:
    """Root mean square, without overflow or underflow in the squares (1 for all zeros)."""
    top = float(np.max(np.abs(a)))
    return top * float(np.sqrt(np.mean((a / top) ** 2))) if top > 0 else 1.0


def _box(X: np.ndarray, y: np.ndarray, queries: np.ndarray) -> dict:
    """The smallest input box holding the data (1 where the data are all zeros: any box holds them)."""
    x_max = float(np.max(np.abs(np.concatenate([X.ravel(), queries.ravel()]))))
    y_max = float(np.max(np.abs(y))) if y.size else 0.0
    return {"x_max": x_max or 1.0, "y_max": y_max or 1.0}


def _boxed(args, program: Program, box: dict, bar) -> CompiledNetwork:
    """Compile for the input box, turning a domain float64 cannot hold into a refusal that names the box."""
    try:
        net = compile(program, x_max=box["x_max"], y_max=box["y_max"], max_bytes=args.max_memory,
                      max_seconds=args.max_seconds)
    except SizeError:
        raise
    except (ArithmeticError, ValueError) as err:
        reason = _reason(err)
        raise Refused(f"the network cannot be compiled in float64 for the data's box |x| <= {box['x_max']:.3g}, "
                      f"|y| <= {box['y_max']:.3g} with {_params_text(program)} ({reason}); data rescaled towards 1, "
                      "or --domain calibrated, may bring it into range") from None
    bar.update(2)
    return net


def _predict(args) -> int:
    X, y, queries = data.read(args.data, _limits(args))
    (n, d), q = X.shape, len(queries)
    calibrated = args.domain == "calibrated"
    _affordable(args, f"predict on {q} quer{'y' if q == 1 else 'ies'}", n, d,
                lambda net, d_: budget.built(net, args.calibrate if calibrated else 0, d_,
                                             passes=q * budget.CERTIFIED_PASSES))
    program = _program(args, d, n)
    rows = []
    with _progress(args, 2 + q, f"predict ({program.name}, d={d}, n={n})") as bar:
        if calibrated:
            x_scale = _rms(np.concatenate([X.ravel(), queries.ravel()]))
            w_scale = _rms(y) / (x_scale * np.sqrt(d))
            tasks = _calibration_tasks(d, n, args.calibrate, args.seed, x_scale, w_scale)
            net = _compiled(args, program, tasks, bar, tasks_text=f"x ~ N(0, {x_scale:.3g}^2 I), "
                            f"w ~ N(0, {w_scale:.3g}^2 I) (scaled like the data)")
            domain = {"source": "calibrated", "tasks": args.calibrate, "margin": args.margin, "x_scale": x_scale,
                      "w_scale": w_scale}
            wider = "a larger --margin widens the domain"
        else:
            domain = {"source": "box", **_box(X, y, queries)}
            net = _boxed(args, program, domain, bar)
            wider = "the domain is the data's own box"
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
    result = {"algo": program.name, "d": d, "n": n, "params": _params(program), "size": net.size(),
              "domain": domain, "tolerance": args.tolerance, "predictions": rows}
    if args.json:
        _print_json(result)
        return 0
    print(f"{program.name} on {args.data}: d = {d}, n = {n} examples, {q} quer{'y' if q == 1 else 'ies'}; "
          f"{', '.join(f'{k} = {v}' for k, v in result['params'].items())}")
    print(f"network: {demo.size_text(net)}")
    if calibrated:
        print(f"domain: calibrated on {args.calibrate} tasks, x ~ N(0, {domain['x_scale']:.3g}^2 I), "
              f"w ~ N(0, {domain['w_scale']:.3g}^2 I), margin {args.margin:g}")
    else:
        print(f"domain: the data's box, |x_i| <= {domain['x_max']:.6g}, |y| <= {domain['y_max']:.6g}")
    print("bound: a proven bound on |transformer - exact answer| in this run's floating point; "
          f"answers above {args.tolerance:g} x (1 + |answer|) are refused\n")
    print(f"{'query':>5}  {'transformer':>17}  {'bound':>8}  {'closed form':>17}  {'|error|':>8}  x")
    for r in rows:
        x = ", ".join(f"{v:.4g}" for v in r["x"])
        print(f"{r['query']:>5}  {r['transformer']:>17.12f}  {r['certified_bound']:>8.1e}  "
              f"{r['closed_form']:>17.12f}  {r['abs_error']:>8.1e}  [{x}]")
    return 0


# -- export ---------------------------------------------------------------------------------------


def _export(args) -> int:
    hf = args.format == "hf"
    if hf:
        out = args.output
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"-o: {out} exists and is not an empty directory; --format hf writes a new directory")
        if not out.exists():
            _output(out, "-o")
    else:
        if args.output.is_dir():
            raise UsageError(f"-o: {args.output} is a directory; name a file in it, e.g. {args.output / 'net.npz'}")
        out = args.output if args.output.suffix == ".npz" else args.output.with_name(args.output.name + ".npz")
        _output(out, "-o")
    _affordable(args, "export", args.n, args.d,
                lambda net, d_: budget.built(net, args.calibrate, d_, passes=0) + budget.saving(net))
    program = _program(args, args.d, args.n)
    with _progress(args, 3, f"export ({program.name})") as bar:
        tasks = _calibration_tasks(program.d, program.n, args.calibrate, args.seed)
        net = _compiled(args, program, tasks, bar, args.dtype, architecture="gpt2" if hf else "paper")
        if hf:
            try:
                from ..runtimes import hf as runtime
            except ImportError as err:
                raise UsageError(f"--format hf needs the extra 'runtimes' (pip install 'icl-construct[runtimes]'):"
                                 f" {err}") from None
        with _writing(out, "-o"):
            path = runtime.save_pretrained(net, out) if hf else save(net, out)
        bar.update()
    size = sum(p.stat().st_size for p in path.iterdir()) if hf else path.stat().st_size
    result = {"path": str(path), "bytes": size, "format": args.format, "algo": program.name, "d": program.d,
              "n": program.n, "params": _params(program), "dtype": args.dtype, "size": net.size()}
    if args.json:
        _print_json(result)
    else:
        print(f"wrote {path} ({result['bytes']:,} bytes): {program.name}, d = {program.d}, n = {program.n}, "
              f"{args.dtype}; {demo.size_text(net)}")
        if hf:
            print(f"load it with construct.hf.from_pretrained({str(path)!r}), or its GPT-2 part with "
                  f"transformers.GPT2Model.from_pretrained({str(path)!r}, dtype=torch.{args.dtype})")
        else:
            print(f"load it with construct.load({str(path)!r}); the manifest inside: unzip -p {path} manifest.json")
    return 0


# -- trace ----------------------------------------------------------------------------------------


def _token_names(n: int) -> list[str]:
    return [f"{kind}~{k}" for k in range(1, n + 1) for kind in ("x", "y")] + ["x~q"]


def _trace_cost(args, net: budget.Network, d: int) -> budget.Cost:
    """Calibrate, compile, one pass keeping every state (three copies), the exact machine's states, the output."""
    s = net.size
    states = (s.applied + 1) * s.tokens * s.width
    machine = budget.Cost((s.applied + 1) * net.rows * s.tokens * 8, s.applied * budget.STEP_SECONDS)
    out = budget.writing(states) if args.json else budget.Cost()
    return budget.built(net, args.calibrate, d, passes=0) + budget.forward(net, 1, copies=3) + machine + out


def _trace(args) -> int:
    if args.layer is not None and not args.weights_png:
        raise UsageError("--layer chooses the layer --weights-png draws; give --weights-png too")
    pictures_asked = [(p, o) for p, o in ((args.png, "--png"), (args.weights_png, "--weights-png")) if p]
    for path, option in pictures_asked:
        _picture(path, option)
    if args.png and args.weights_png and args.png.resolve() == args.weights_png.resolve():
        raise UsageError(f"--png and --weights-png name the same file {args.png}; give two files")
    _affordable(args, "trace", args.n, args.d, lambda net, d_: _trace_cost(args, net, d_), fuse=False)
    program = _program(args, args.d, args.n)
    if args.layer is not None and args.layer > program.depth:
        raise UsageError(f"--layer must be in 1..{program.depth} ({program.name} has {program.depth} layers)")
    with _progress(args, 3, f"trace ({program.name})") as bar:
        net = _compiled(args, program, _calibration_tasks(program.d, program.n, args.calibrate, args.seed + 1), bar,
                        fuse=False)
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
        with _writing(args.png, "--png"):
            pictures["residual_stream"] = str(plots.residual_stream(trace, args.png))
    if args.weights_png:
        layer = args.layer or next((k for k, ins in enumerate(program.instructions, 1) if ins.kind == "mul"), 1)
        with _writing(args.weights_png, "--weights-png"):
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


# -- bench and proofs -----------------------------------------------------------------------------


def _bench(args) -> int:
    configs = [(a, d, n) for a in args.algo for d in args.d for n in args.n]
    limits, total = _limits(args), budget.Cost()
    for algo, d, n in configs:
        total = total.then(budget.affordable(limits, lambda d_: f"bench ({algo}, d = {d_}, n = {n})",
                                             lambda d_: benchmark.cost(algo, d_, n), d))
    limits.check(total, f"bench ({len(configs)} configurations)")
    if args.out:
        _output(args.out, "--out")
    rows = []
    with _progress(args, len(configs), "bench") as bar:
        for algo, d, n in configs:
            bar.set_postfix_str(f"{algo} d={d} n={n}")
            rows.append(benchmark.compare(algo, d, n, args.max_memory))
            bar.update()
    if args.out:
        with _writing(args.out, "--out"):
            args.out.write_text(json.dumps(rows, indent=1) + "\n")
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


# -- the parser -----------------------------------------------------------------------------------


def _common_options(parser, seconds: float = budget.DEFAULT_MAX_SECONDS) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--max-memory", type=_limit(budget.parse_bytes), default=float(budget.DEFAULT_MAX_BYTES),
                        metavar="SIZE", help="refuse a run estimated to need more memory (default 4GiB; e.g. 8GiB, "
                        "512MiB, 16GB, or a bare number of GiB)")
    parser.add_argument("--max-seconds", type=_limit(budget.parse_seconds), default=seconds, metavar="TIME",
                        help=f"refuse a run estimated to take longer (default {seconds:g}; e.g. 600, 10min, 2h); "
                        f"{budget.RATES_TEXT}")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, print the full Python traceback too")


def _network_options(parser, d: int, n: int, sizes: bool = True) -> None:
    parser.add_argument("--algo", choices=ALGOS, required=True, help="the algorithm the network carries out")
    if sizes:
        parser.add_argument("-d", "--d", type=_number(1, integer=True), default=d, help=f"input dimension (default {d})")
        parser.add_argument("-n", "--n", type=_number(1, integer=True), default=n,
                            help=f"number of examples (default {n})")
    parser.add_argument("--alpha", type=_number(), help=f"SGD step size (default {ALPHA})")
    parser.add_argument("--lam", type=_number(), help=f"penalty / ridge parameter (default {LAM})")
    parser.add_argument("--w0", type=_number(), nargs="+", metavar="W", help="SGD's initial weights, d numbers "
                        "(default 0)")
    parser.add_argument("--margin", type=_number(1), default=MARGIN, help=f"calibration margin (default {MARGIN:g})")
    parser.add_argument("--calibrate", type=_number(1, integer=True), default=CALIBRATION, metavar="COUNT",
                        help=f"random tasks the domain is calibrated on (default {CALIBRATION})")
    parser.add_argument("--seed", type=_number(0, integer=True), default=0,
                        help="seed of the random tasks (default 0)")
    _common_options(parser)


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="icl-construct", description=__doc__.split("\n\n")[0],
                  epilog=f"Run 'icl-construct COMMAND --help' for a command's options. {EXIT_CODES}")
    top.add_argument("--debug", action="store_true", help="on an error, print the full Python traceback too")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, epilog=EXIT_CODES, **kwargs)

    p = command("demo", help="SGD and ridge transformers on a random task, beside the closed forms",
                       description=demo.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=_number(1, integer=True), default=3, help="input dimension (default 3)")
    p.add_argument("--n", type=_number(1, integer=True), default=6, help="number of examples (default 6)")
    p.add_argument("--seed", type=_number(0, integer=True), default=0, help="seed of the random task (default 0)")
    p.add_argument("--png", type=_path, metavar="FILE", help="also write the error against the number of examples")
    _common_options(p)
    p.set_defaults(run=_demo)

    p = command("predict", help="a network's predictions on your own data, beside the closed form",
                       description=__doc__.split("Data files for ``predict``:")[1].strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=_path, required=True, metavar="FILE", help="a .csv or .npz file (see above)")
    p.add_argument("--domain", choices=("box", "calibrated"), default="box",
                   help="box (default): compile for the smallest input box holding the data, every bound from the "
                   "algorithm's theory; calibrated: on --calibrate random tasks scaled like the data, with --margin")
    p.add_argument("--tolerance", type=_number(0), default=1e-6,
                   help="refuse an answer whose certified bound exceeds TOLERANCE x (1 + |answer|) (default 1e-6; "
                   "0 refuses every answer with a nonzero bound)")
    _network_options(p, 0, 0, sizes=False)
    p.set_defaults(run=_predict)

    p = command("export", help="compile a network and write its weights: one .npz, or a Hugging Face checkpoint",
                       description="Compile a network and write it: --format npz (default), one .npz file with the "
                       "weight arrays and manifest.json (format in construct/export/npz.py and the README), which "
                       "construct.load reads; --format hf, the network compiled for GPT-2 blocks as a directory "
                       "that transformers.GPT2Model.from_pretrained loads (construct/runtimes/hf.py; needs the extra "
                       "'runtimes').")
    _network_options(p, 3, 6)
    p.add_argument("-o", "--output", type=_path, required=True, metavar="PATH",
                   help="file to write (.npz is appended if missing); with --format hf, a new directory")
    p.add_argument("--format", choices=("npz", "hf"), default="npz", help="npz (default) or hf")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="weights' dtype")
    p.set_defaults(run=_export)

    p = command("trace", help="register values after every layer, for a small random task",
                       description="Run a network on a random task and print, after each layer, the register "
                       "it writes at every token, beside the exact machine. The network is compiled with one layer "
                       "per instruction (fuse=False), the paper's construction, so each layer is one step of the "
                       "program.")
    _network_options(p, 2, 2)
    p.add_argument("--png", type=_path, metavar="FILE", help="write the residual stream picture")
    p.add_argument("--weights-png", type=_path, metavar="FILE", help="write a heatmap of one layer's weights")
    p.add_argument("--layer", type=_number(1, integer=True), help="the layer --weights-png draws (default: the first mul)")
    p.set_defaults(run=_trace)

    p = command("bench", help="the benchmark: size, time, memory and error per configuration",
                       description=benchmark.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=_number(1, integer=True), nargs="+", default=[2, 4, 8],
                   help="input dimensions (default 2 4 8)")
    p.add_argument("--n", type=_number(1, integer=True), nargs="+", default=[1, 4, 16, 32],
                   help="examples (default 1 4 16 32)")
    p.add_argument("--algo", nargs="+", choices=["sgd", "ridge"], default=["sgd", "ridge"])
    p.add_argument("--out", type=_path, metavar="FILE", help="also write the numbers as JSON to FILE")
    _common_options(p, budget.BENCH_MAX_SECONDS)
    p.set_defaults(run=_bench)

    p = command("proofs", help="run the machine-checked proofs (python -m proofs); other arguments go "
                       "to it", description="Run the machine-checked proofs: icl-construct proofs ARGS is "
                       "python -m proofs ARGS.")
    p.set_defaults(run=_proofs)
    return top


# -- main -----------------------------------------------------------------------------------------


_interrupted = False  # a SIGINT arrived during main (see _interrupt)


def _interrupt(signum, frame) -> None:
    """SIGINT during main: recorded, then raised as usual, so that files being written are cleaned up; a library
    that turns the KeyboardInterrupt into an error of its own (numpy's import raises ImportError) cannot hide it."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    global _interrupted
    _interrupted = False
    previous = _set_interrupt_handler(_interrupt)
    try:
        return _main(argv)
    finally:
        _set_interrupt_handler(previous)


def _main(argv: list[str] | None) -> int:
    prog, args = "icl-construct", None
    try:  # parsing too: Ctrl-C at any moment is exit 130 without a traceback
        top = parser()
        args, rest = top.parse_known_args(argv)
        prog = f"icl-construct {args.command}"
        if args.command == "proofs":
            args.args = rest
        elif rest:
            top.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(rest)} (see {prog} --help)\n")
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): stop quietly
        _discard_stdout()
        return 141
    except Exception as err:
        if _interrupted:  # the KeyboardInterrupt came out as another error
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        if getattr(args, "debug", False):
            traceback.print_exc()
        code = _exit_code(err)
        message = _message(err, code, args)
        print(f"{prog}: {'refused' if code == 1 else 'error'}: {' '.join(message.split())}", file=sys.stderr)
        return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not fail on the closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
