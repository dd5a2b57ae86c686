"""One prompt, answered: a network compiled for the prompt's own domain, in canonical units, and its certificate.

``predict(program, X, y, x_query)`` is what a user with data wants: it
builds the network for the smallest domain that holds the prompt, runs it,
and returns each answer with its proven bound (or refuses it).

* **Units.** An algorithm's answers scale with its labels when its inputs,
  labels and parameters are scaled together (``programs.Parameter.units``:
  ridge's lam like x^2, SGD's alpha like x^-2 and w0 like y/x). ``predict``
  scales x and y by the powers of two that put their largest entries in
  [1, 2), with the parameters to match, answers that canonical prompt, and
  scales the answers and bounds back. A prompt scaled by powers of two (its
  parameters with it) is therefore answered by the very same network on the
  very same numbers: its answers and bounds scale exactly, and no
  accept/refuse decision changes (the tolerance is relative to the prompt's
  scale, ``CompiledNetwork.scale``). A custom program, whose parameters'
  units are unknown, is answered in the units it is given.
* **Domain.** ``"box"``: the input box of the prompt (``compile(program,
  x_max=..., y_max=...)``, every register bounded by the algorithm's
  theory). ``"task"``: the exact machine's run on this prompt, with a
  margin (``Bounds.calibrate``): the network answers this prompt and those
  whose values stay within ``margin`` of it. ``"auto"`` (default): the box,
  or the task's own domain when the box admits runs no bound covers (SGD
  whose step can expand ``|w|`` somewhere in the box: its theory raises
  ``UnboundedDomain``); a run that really grows is then answered with the
  bound its own size allows, or refused saying at which example it grows.
"""

from __future__ import annotations

import math

import numpy as np

from ..raw.domain import UnboundedDomain
from ..raw.program import Program
from ..raw.prompt import check_task
from .bounds import Bounds, DomainError
from .build import compile
from .certificate import Certificate, CertificateError
from .compiled import DEFAULT_TOLERANCE, check_tolerance

DOMAINS = ("auto", "box", "task")
MARGIN = 4.0


def _exponent(value: float) -> int:
    """The power of two that brings ``value``'s magnitude into [1, 2) (0 for 0)."""
    return math.frexp(value)[1] - 1 if value else 0


def canonical(program: Program, X, y, x_query) -> tuple[Program, tuple, int]:
    """``program`` and the task in canonical units (largest |x| and |y| entries in [1, 2)), and the power of two
    ``b`` the answers are scaled back by (``2^b``). A program of the registry is rebuilt for the prompt's own
    number of examples; one without a registry entry keeps its size and its units."""
    X, y, x_query = check_task(X, y, x_query, program.d, program.n, prefix=not program.query_only)
    algorithm = program.algorithm
    if algorithm is None:
        return program, (X, y, x_query), 0
    a = _exponent(float(max(np.abs(X).max(initial=0.0), np.abs(x_query).max())))
    b = _exponent(float(np.abs(y).max(initial=0.0)))
    scaled = {p.name: np.ldexp(np.asarray(program.params[p.name], dtype=np.float64), -(p.units[0] * a + p.units[1] * b))
              for p in algorithm.parameters}
    for name, value in scaled.items():  # the scaled parameter must be the same number in other units
        if not np.all(np.isfinite(value)) or np.any((value == 0) != (np.asarray(program.params[name]) == 0)):
            a = b = 0
            scaled = dict(program.params)
    scaled = {k: (v if np.ndim(v) else float(v)) for k, v in scaled.items()}
    inner = algorithm.program(program.d, 1 if algorithm.one_example else len(X), **scaled)
    return inner, (np.ldexp(X, -a), np.ldexp(y, -b), np.ldexp(x_query, -a)), b


def predict(program: Program, X, y, x_query, *, domain: str = "auto", tolerance: float | None = DEFAULT_TOLERANCE,
            return_bound: bool = False, margin: float = MARGIN, backend: str = "numpy", dtype=np.float64,
            fuse: bool = True, max_bytes=None, max_seconds=None, return_certificate: bool = False):
    """The answers of ``program`` on one prompt (``k + 1``, one per x~ column), each certified; see the module.

    Refuses (``CertificateError``) an answer whose bound exceeds ``tolerance``
    times the prompt's scale; ``return_bound`` returns ``(predictions,
    bounds)``, ``return_certificate`` the ``Certificate`` (its sources, in
    the prompt's units) and the network (in canonical units). ``max_bytes``/``max_seconds``
    (None: compile's defaults) limit the build.
    """
    if not isinstance(program, Program):
        raise TypeError(f"predict takes a Program, got {type(program).__name__}")
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    check_tolerance(tolerance)
    inner, task, b = canonical(program, X, y, x_query)
    limits = {k: v for k, v in (("max_bytes", max_bytes), ("max_seconds", max_seconds)) if v is not None}
    try:
        net = network_for(inner, [task], domain, margin, dtype=dtype, fuse=fuse, **limits)
    except UnboundedDomain:  # the theory's refusal, told in the prompt's own units
        Bounds.for_inputs(program, **box_of([check_task(X, y, x_query, program.d, program.n, prefix=True)]))
        raise
    try:
        cert = net.certify(*task, backend=backend)
    except CertificateError:
        raise
    except DomainError as err:  # the network's own error left its domain: on the run's own, say where it grows
        if net.bounds.box is not None:  # the box's refusal already says the box is too wide for the network
            raise
        raise DomainError(f"{err}; {growth(inner, task[0])}") from None
    if tolerance is not None:
        net.accept(cert, tolerance, *task, backend=backend)
    # the answers and their bounds in the prompt's units (the registers' own bounds, ``errors``, stay the network's)
    answers = Certificate(np.ldexp(cert.predictions, b), np.ldexp(cert.bounds, b), None, cert.sources,
                          {k: np.ldexp(v, b) for k, v in cert.by_source.items()})
    if return_certificate:
        return answers, net
    return (answers.predictions, answers.bounds) if return_bound else answers.predictions


def network_for(program: Program, tasks, domain: str = "auto", margin: float = MARGIN, *, dtype=np.float64,
                fuse: bool = True, **limits):
    """The network that answers ``tasks`` (each ``(X, y, x_query)`` for ``program``): compiled for the smallest
    input box holding them all (``"box"``), for the exact machine's runs on them with ``margin`` (``"task"``,
    ``Bounds.calibrate``), or (``"auto"``) the box unless its theory refuses it (``UnboundedDomain``), then the
    runs. ``net.bounds.box`` is the box, or None for the runs. A run that overflows float64 raises
    ``DomainError`` saying where it grows (``growth``, from the first task's examples). ``limits``: ``max_bytes``,
    ``max_seconds``."""
    tasks = list(tasks)
    if domain in ("auto", "box"):
        try:
            return compile(program, **box_of(tasks), dtype=dtype, fuse=fuse, **limits)
        except UnboundedDomain:
            if domain == "box":
                raise
    try:
        bounds = Bounds.calibrate(program, tasks, margin=margin, **limits)
    except FloatingPointError as err:
        raise DomainError(f"{program.name}: the exact machine's run on this prompt overflows float64 ({err}); "
                          + growth(program, tasks[0][0])) from None
    return compile(program, bounds, dtype=dtype, fuse=fuse, **limits)


def box_of(tasks) -> dict:
    """The smallest input box holding every task's inputs (1 where they are all zeros): ``x_max``, ``y_max``."""
    x_max = max(float(max(np.abs(X).max(initial=0.0), np.abs(x_query).max(initial=0.0))) for X, _, x_query in tasks)
    y_max = max(float(np.abs(y).max(initial=0.0)) for _, y, _ in tasks)
    return {"x_max": x_max or 1.0, "y_max": y_max or 1.0}


def growth(program: Program, X) -> str:
    """Where one-pass SGD's step first expands |w|: the first example with |1 - 2 alpha (lam + |x|^2)| > 1 (a
    dimensionless number, the same in any units)."""
    params = program.params
    plain = "the prompt needs more precision than this network's domain gives (a smaller margin or box)"
    if "alpha" not in params or not params["alpha"]:
        return plain
    sizes = params["lam"] + np.sum(np.asarray(X) ** 2, axis=1)
    rho = np.abs(1 - 2 * params["alpha"] * sizes)
    grows = np.flatnonzero(rho > 1)
    if not grows.size:
        return plain
    k = int(grows[0])
    return (f"the SGD run grows from example {k + 1} on, whose step multiplies |w| by up to {rho[k]:.3g} "
            f"(|1 - 2 alpha (lam + |x|^2)| > 1), so its values span more orders of magnitude than one bound per "
            f"register resolves; alpha {1 / (sizes.max() * params['alpha']):.3g} times this one keeps every step "
            "from expanding")
