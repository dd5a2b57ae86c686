"""The network a command's options describe: the algorithm and its parameters, the calibrated domain, the
compilation, and the network's size in words.

``--algo`` and its parameters' flags come from the registry (``construct.programs.REGISTRY``): each
parameter of each algorithm is a flag ``--NAME`` (a vector parameter takes d numbers), whose help says which
algorithms take it; a flag the chosen algorithm does not take is refused, naming the algorithms that do. A new
algorithm in the registry needs no edit here.
"""

from __future__ import annotations

import argparse
import textwrap

import numpy as np

from .. import programs
from ..compiler import Bounds, CompiledNetwork, FloatRangeError, SizeError, compile
from ..programs import Parameter
from ..raw.program import Program
from ..tasks import gaussian_tasks
from . import budget
from .shared import Refused, UsageError, given_limits, number

MARGIN, CALIBRATION = 4.0, 256


# -- options --------------------------------------------------------------------------------------


def algorithm(parser, several: bool = False) -> None:
    """``--algo`` and a flag per parameter of the registry; ``several``: a list of algorithms that predict at every
    prefix (not the one-example chains), and no parameter flags."""
    if several:
        parser.add_argument("--algo", nargs="+", choices=names(chains=False), default=["sgd", "ridge"],
                            metavar="ALGO", help="the algorithms (default sgd ridge; see Algorithms below)")
        return
    parser.add_argument("--algo", choices=names(), required=True, metavar="ALGO",
                        help="the algorithm the network carries out (see Algorithms below)")
    for name, takers in _parameters().items():
        kinds = {p.vector for _, p in takers}
        if len(kinds) > 1:
            raise ValueError(f"the registry's parameter {name} is a vector for some algorithms and a number for "
                             f"others ({', '.join(a for a, _ in takers)}); one flag --{name} cannot take both")
        vector = kinds.pop()
        try:
            parser.add_argument(f"--{name}", type=number(), nargs="+" if vector else None,
                                metavar="W" if vector else name.upper(), help=_parameter_help(takers))
        except argparse.ArgumentError as err:
            raise ValueError(f"the registry's parameter {name} (of {', '.join(a for a, _ in takers)}) clashes with "
                             f"an option of the command line: {err}") from None


def calibration(parser) -> None:
    """``--margin`` and ``--calibrate``: the domain calibrated on random tasks."""
    parser.add_argument("--margin", type=number(1), default=MARGIN,
                        help="the domain's bound on each register is the largest value the calibration tasks reach "
                        f"times MARGIN (default {MARGIN:g})")
    parser.add_argument("--calibrate", type=number(1, integer=True), default=CALIBRATION, metavar="COUNT",
                        help=f"random tasks the domain is calibrated on (default {CALIBRATION})")


def names(chains: bool = True) -> tuple[str, ...]:
    """The registry's algorithms, the paper's one-example chains last (``chains=False``: left out)."""
    ordered = sorted(programs.REGISTRY.items(), key=lambda item: item[1].one_example)
    return tuple(name for name, entry in ordered if chains or not entry.one_example)


def algorithms_text(flags: bool = True, chains: bool = True) -> str:
    """The registry's algorithms, one entry each, for a command's help; ``flags``: with their parameters' flags;
    ``chains=False``: without the one-example chains."""
    entries = []
    for name in names(chains):
        entry = programs.get(name)
        taken = ", ".join("--" + p.name for p in entry.parameters)
        flags_text = f" (flags: {taken})" if flags and taken else ""
        entries.append(textwrap.fill(f"{name}: {entry.summary}{flags_text}", 78, initial_indent="  ",
                                     subsequent_indent="      ", break_on_hyphens=False))
    return "Algorithms (--algo):\n" + "\n".join(entries)


def _parameters() -> dict[str, list[tuple[str, Parameter]]]:
    """Each parameter name in the registry, with the algorithms that take it."""
    takers: dict[str, list[tuple[str, Parameter]]] = {}
    for name in names():
        for p in programs.get(name).parameters:
            takers.setdefault(p.name, []).append((name, p))
    return takers


def _parameter_help(takers: list[tuple[str, Parameter]]) -> str:
    groups: dict[tuple, list[str]] = {}
    for name, p in takers:
        groups.setdefault((p.help, p.default, p.vector), []).append(name)
    parts = [f"--algo {' or '.join(algos)}: {text}" + (f", default {default:g}" if default is not None else "")
             + (", d numbers" if vector else "") for (text, default, vector), algos in groups.items()]
    return "; ".join(parts).replace("%", "%%")


# -- the program ----------------------------------------------------------------------------------


def _check_algo(args, n: int) -> None:
    """Parameter flags that ``--algo`` does not take, and the one-example chains' n."""
    entry = programs.get(args.algo)
    taken = [p.name for p in entry.parameters]
    takers = _parameters()
    given = [name for name in takers if getattr(args, name, None) is not None and name not in taken]
    if given:
        raise UsageError(f"--algo {args.algo} takes {', '.join('--' + t for t in taken) or 'no parameters'}, "
                         f"not {' or '.join('--' + g for g in given)}: " + "; ".join(
                             f"--{g} is for --algo {' or '.join(a for a, _ in takers[g])}" for g in given))
    if entry.one_example and n != 1:
        raise UsageError(f"--algo {args.algo} is the paper's one-example chain: it needs n = 1, got {n}")


def program(args, d: int, n: int, vectors: bool = True) -> Program:
    """The program ``--algo`` names with the flags' parameters; ``vectors=False`` leaves the vector parameters at
    their defaults (to size the network at a smaller d, where the given vector would not fit)."""
    _check_algo(args, n)
    entry = programs.get(args.algo)
    given = {}
    for p in entry.parameters:
        value = getattr(args, p.name)
        given[p.name] = (None if value is None or not vectors else np.array(value)) if p.vector else value
    try:
        return entry.program(d, n, **given)
    except ValueError as err:  # the programs name the parameter: alpha, lam, w0, d or n
        raise UsageError(f"bad parameter: {err}") from None


def affordable(args, what: str, n: int, d: int, cost, fuse: bool = True) -> None:
    """Refuse (SizeError) a run whose ``cost(network at d', d')`` is above the limits; sizes from the options'
    program (``budget``)."""
    _check_algo(args, n)
    budget.affordable(given_limits(args), lambda d_: f"{what} ({args.algo}, d = {d_}, n = {n})",
                      lambda d_: cost(budget.network(lambda dd, nn: program(args, dd, nn, vectors=False), d_, n,
                                                     getattr(args, "dtype", "float64"), fuse), d_), d)


# -- calibration and compilation ------------------------------------------------------------------


def calibration_tasks(d: int, n: int, count: int, seed: int, x_scale: float = 1.0, w_scale: float = 1.0):
    """Gaussian tasks with x ~ N(0, x_scale^2 I) and w ~ N(0, w_scale^2 I): y scales by both."""
    return [(X * x_scale, y * x_scale * w_scale, q * x_scale) for X, y, q in gaussian_tasks(d, n, count, seed)]


def compiled(args, program: Program, tasks, bar, dtype: str = "float64", tasks_text: str = "x ~ N(0, I), "
             "w ~ N(0, I)", fuse: bool = True, architecture: str = "paper") -> CompiledNetwork:
    """Calibrate and compile, turning float64 overflow into a refusal that names the numbers behind it."""
    given = f"{params_text(program)}, margin {args.margin:g}, calibration tasks {tasks_text}"
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
        raise Refused(f"the network cannot be compiled in float64 ({reason(err)}): its domain's bounds run from "
                      f"{min(values):.3g} to {max(values):.3g} with {given}; a smaller --margin, smaller parameters, "
                      "or data rescaled towards 1, bring them into range") from None
    bar.update()
    return net


def reason(err: Exception):
    """Why a domain cannot be compiled, in a few words (the message around it names the numbers)."""
    if isinstance(err, FloatRangeError):
        return err.reason
    return "a constant overflows" if isinstance(err, ArithmeticError) else err


# -- the network in words -------------------------------------------------------------------------


def params_text(program: Program) -> str:
    return ", ".join(f"max |{k}| = {np.max(np.abs(v)):.3g}" if isinstance(v, np.ndarray) else f"{k} = {v:.3g}"
                     for k, v in program.params.items())


def params(program: Program) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in program.params.items()}


def size_text(net: CompiledNetwork) -> str:
    """Depth and widths, with the paper's numbers (exact for its chains, orders of growth otherwise)."""
    s = net.size()
    text = (f"{s['layers']} layers, residual width {s['residual_width']} ({s['data_rows']} data rows), "
            f"MLP width {s['mlp_width']}, {s['parameters']:,} parameters")
    if "paper" in s:
        return text + (f"; paper: {s['paper']['layers']} layers, {s['paper']['rows']} rows counted from row 0 "
                       "(y and x in)")
    entry = net.program.algorithm
    if entry is not None and entry.paper_order:
        return text + f"; paper: {entry.paper_order}"
    return text
