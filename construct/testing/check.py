"""Property-test a program at its three levels: closed form, exact machine, compiled network with its certificate.

``check_program`` compiles the program once, then draws tasks with
hypothesis and on each requires

1. the exact machine (``program.predict``) to agree with the closed form,
   ``|machine - closed| <= rtol (1 + |closed|)`` at every answer (rtol 1e-9
   by default: the machine and a closed form are two float64 computations
   of the same number);
2. every answer of the compiled network to lie within its certified bound
   (``predict(..., return_bound=True)``) of the right answer. For a program
   of ``construct.programs`` that is the exact answer (``construct.exact``,
   50 digits), so nothing is allowed beyond the bound. For a program built
   by hand only its float64 closed form is known, which carries its own
   rounding: the distance may exceed the bound by at most that rounding,
   which the caller states (``closed_rounding``), since the kit cannot
   know how the closed form computes.

The network's domain is the caller's ``bounds``, the input box ``box``
(the theory's bounds: programs of ``construct.programs``), or by default a
calibration (``Bounds.calibrate``) on tasks drawn from the same strategy
(derandomized, so the same on every run). A task outside the domain is
refused by the network (``DomainError``), which is sound and is counted;
a task inside the box the network was compiled for must not be refused.
A run in which the network answered nothing fails: it compared nothing.

A failure raises ``PropertyFailure`` once hypothesis has shrunk the task:
the message names the level, the answer, the numbers and the task, whose
``repr`` rebuilds it exactly (``check_program(..., examples=[task])``
replays it). A pass returns a ``Report`` of the numbers seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from hypothesis import HealthCheck, Phase, example, given, settings as Settings
from hypothesis.strategies import SearchStrategy

from .. import exact
from ..compiler import Bounds, DomainError, compile
from ..raw.program import Program
from ..raw.prompt import check_count, finite_float, shown
from .strategies import Task, regression_tasks

MACHINE_RTOL = 1e-9
UNIT_ROUNDOFF = 2.0**-53


class PropertyFailure(AssertionError):
    """A level disagreed on a task: ``level`` is ``"machine"`` or ``"network"``, ``task`` the failing Task."""

    def __init__(self, message: str, level: str, task: Task | None):
        super().__init__(message)
        self.level, self.task = level, task


def relative_errors(got, expected) -> np.ndarray:
    """``|got - expected| / (1 + |expected|)``, elementwise, in float64."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return np.abs(got - expected) / (1 + np.abs(expected))


def assert_agree(got, expected, rtol: float, what: str = "") -> None:
    """max |got - expected| <= rtol * (1 + |expected|), elementwise, with a helpful message."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    err = relative_errors(got, expected)
    worst = int(np.argmax(err))
    assert np.all(err <= rtol), (
        f"{what}: relative error {err[worst]:.3g} > {rtol:g} at prefix {worst}: "
        f"got {got[worst]!r}, expected {expected[worst]!r}"
    )


@dataclass(frozen=True)
class Report:
    """What a passing ``check_program`` saw.

    ``machine_error`` is the largest ``|machine - closed| / (1 + |closed|)``;
    ``network_error`` the largest distance of a network answer from the
    ``reference``; the ratios are certified bound / that distance over
    answers with a nonzero distance and a finite bound (``tightest_ratio``
    >= 1 says every bound held without the closed form's rounding; a
    bound is never below its distance beyond that rounding, or the check
    fails); ``worst_bound`` the largest finite bound, ``unbounded`` how
    many answers had an infinite one.
    """

    program: str
    domain: str
    reference: str
    tasks: int
    answered: int
    refused: int
    outside_box: int
    answers: int
    machine_error: float
    network_error: float
    worst_bound: float
    tightest_ratio: float
    loosest_ratio: float
    unbounded: int

    def __str__(self) -> str:
        lines = [
            f"{self.program}: {self.tasks} tasks; exact machine against the closed form: worst relative error "
            f"{self.machine_error:.2g}",
            f"network ({self.domain}): {self.answered} tasks answered, {self.refused} refused as outside its domain"
            + (f", {self.outside_box} outside its box not run" if self.outside_box else ""),
            f"{self.answers} answers against {self.reference}: worst error {self.network_error:.2g}, worst bound "
            f"{self.worst_bound:.2g}" + (f" ({self.unbounded} unbounded)" if self.unbounded else ""),
        ]
        if math.isfinite(self.tightest_ratio):
            lines.append(f"bound / error from {self.tightest_ratio:.3g} to {self.loosest_ratio:.3g}")
        return "\n".join(lines)


def _as_task(value) -> Task:
    if isinstance(value, Task):
        return value
    if isinstance(value, tuple) and len(value) == 3:
        return Task(*(np.asarray(part, dtype=np.float64) for part in value))
    raise TypeError(f"a task is a construct.testing.Task or a tuple (X, y, x_query), got {type(value).__name__}")


def _draw(strategy: SearchStrategy, count: int) -> list[Task]:
    """Up to ``count`` tasks of ``strategy``, the same on every run (hypothesis's generation, derandomized)."""
    drawn: list[Task] = []

    @Settings(derandomize=True, database=None, max_examples=count, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(task):
        drawn.append(_as_task(task))

    collect()
    return drawn


def _box(box) -> dict:
    if isinstance(box, dict):
        unknown = sorted(set(box) - {"x_max", "y_max", "x_norm"})
        if unknown:
            raise ValueError(f"box takes x_max, y_max and x_norm, got {unknown}")
        return dict(box)
    if isinstance(box, tuple) and len(box) in (2, 3):
        return dict(zip(("x_max", "y_max", "x_norm"), box))
    raise TypeError(f"box is (x_max, y_max[, x_norm]) or a dict of them, got {shown(box)}")


def _inside(task: Task, box: dict) -> bool:
    X, y, q = task.data
    x_max, y_max, x_norm = box["x_max"], box["y_max"], box.get("x_norm")
    inside = np.abs(X).max(initial=0.0) <= x_max and np.abs(q).max() <= x_max and np.abs(y).max(initial=0.0) <= y_max
    if x_norm is not None:
        inside = inside and max(np.linalg.norm(X, axis=1).max(initial=0.0), np.linalg.norm(q)) <= x_norm
    return bool(inside)


def _at_least_zero(value) -> bool:
    number = finite_float(value)
    return number is not None and number >= 0


def _rounding(closed_rounding, task: Task, answers: int) -> np.ndarray:
    if not callable(closed_rounding):
        return np.full(answers, float(closed_rounding))
    value = np.asarray(closed_rounding(*task.data), dtype=np.float64)
    if value.shape != (answers,) or not np.all(np.isfinite(value) & (value >= 0)):
        raise ValueError(f"closed_rounding(X, y, x_query) must give n + 1 = {answers} numbers, each finite and >= 0; "
                         f"it gave {value}")
    return value


def _which(program: Program, k: int) -> str:
    return "answer at the query" if k == program.n else f"answer {k} (from {k} examples)"


class _Checker:
    """The per-task check and the running numbers of the report."""

    def __init__(self, program, net, closed, closed_rounding, rtol, box):
        self.program, self.net, self.closed, self.closed_rounding = program, net, closed, closed_rounding
        self.rtol, self.box = rtol, box
        self.exact = program.algorithm is not None
        self.answered_columns = [program.n] if program.query_only else list(range(program.n + 1))
        self.tasks = self.answered = self.refused = self.outside_box = self.answers = self.unbounded = 0
        self.machine_error = self.network_error = self.worst_bound = self.loosest = 0.0
        self.tightest = math.inf

    def fail(self, level: str, task: Task, message: str):
        raise PropertyFailure(f"{self.program.name}: {message}\n  on the task {task!r}\n  replay it with "
                              "check_program(program, ..., examples=[task])", level, task)

    def __call__(self, task) -> None:
        task = _as_task(task)
        program, cols = self.program, self.answered_columns
        if (task.d, task.n) != (program.d, program.n):
            raise ValueError(f"the strategy drew a task with d = {task.d}, n = {task.n}; {program.name} is built for "
                             f"d = {program.d}, n = {program.n} (draw with regression_tasks(program.d, program.n))")
        self.tasks += 1
        closed = np.asarray(self.closed(*task.data), dtype=np.float64)
        if closed.shape != (program.n + 1,):
            raise ValueError(f"the closed form returned shape {closed.shape}; it must give the n + 1 = "
                             f"{program.n + 1} predictions of every prefix")
        machine = program.predict(*task.data)
        errors = relative_errors(machine[cols], closed[cols])
        if not np.all(errors <= self.rtol):
            k = cols[int(np.argmax(np.where(np.isnan(errors), np.inf, errors)))]
            self.fail("machine", task, f"the exact machine's {_which(program, k)} is {float(machine[k])!r}, the "
                      f"closed form's {float(closed[k])!r}: |machine - closed| / (1 + |closed|) = "
                      f"{relative_errors(machine[k], closed[k]):.3g} > rtol {self.rtol:g}")
        self.machine_error = max(self.machine_error, float(errors.max()))
        if self.box is not None and not _inside(task, self.box):
            self.outside_box += 1
            return
        try:
            answers, bounds = self.net.predict(*task.data, tolerance=None, return_bound=True)
        except DomainError as err:
            if self.box is not None:
                self.fail("network", task, f"the network refused a task inside the box it was compiled for: {err}")
            self.refused += 1
            return
        self.answered += 1
        predictions, bounds = answers[cols], bounds[cols]
        if self.exact:
            distance = exact.errors(program, *task.data, answers)[cols]
            allowed = bounds
        else:  # |p - c| rounded up: the float64 subtraction may round the distance down by half an ulp
            distance = np.abs(predictions - closed[cols]) * (1 + 2 * UNIT_ROUNDOFF)
            allowed = bounds + _rounding(self.closed_rounding, task, program.n + 1)[cols]
        if not np.all(distance <= allowed):
            k = int(np.argmax(np.where(distance <= allowed, -np.inf, distance - allowed)))
            beyond = "" if self.exact else f" plus the closed form's stated rounding {allowed[k] - bounds[k]:.3g}"
            self.fail("network", task, f"the network's {_which(program, cols[k])}, {float(predictions[k])!r}, is "
                      f"{distance[k]:.3g} from {'the exact answer' if self.exact else 'the closed form'}, above its "
                      f"certified bound {bounds[k]:.3g}{beyond}")
        self.answers += len(cols)
        self.network_error = max(self.network_error, float(distance.max()))
        finite = np.isfinite(bounds)
        self.unbounded += int((~finite).sum())
        if finite.any():
            self.worst_bound = max(self.worst_bound, float(bounds[finite].max()))
        measured = finite & (distance > 0)
        if measured.any():
            ratios = bounds[measured] / distance[measured]
            self.tightest = min(self.tightest, float(ratios.min()))
            self.loosest = max(self.loosest, float(ratios.max()))


def check_program(program: Program, tasks: SearchStrategy | None = None, *, closed: Callable | None = None,
                  closed_rounding=None, bounds: Bounds | None = None, box=None, calibration: int = 32,
                  margin: float = 4.0, rtol: float = MACHINE_RTOL, settings: Settings | None = None,
                  examples: Iterable = ()) -> Report:
    """Property-test ``program`` against its closed form, on its exact machine and as a compiled network.

    ``tasks``: a strategy of ``Task`` (or ``(X, y, x_query)``) of the
    program's size (default ``regression_tasks(program.d, program.n)``).
    ``closed(X, y, x_query)``: the n + 1 predictions of every prefix in
    float64 (default: the registry's, ``program.algorithm.closed``; needed
    for a program built by hand, which then needs ``closed_rounding`` too:
    a bound on the closed form's own float64 rounding at each answer, a
    number or ``closed_rounding(X, y, x_query)`` giving n + 1 of them).
    The network's domain: ``bounds``, or ``box`` (``(x_max, y_max[,
    x_norm])``, the theory's bounds: tasks outside it are counted, not
    run), or a calibration on ``calibration`` tasks of the strategy (and
    the ``examples``) with ``margin``. ``rtol``: the machine's agreement
    with the closed form. ``settings``: hypothesis settings (default the
    current profile's); the deadline is always off, since certifying an
    answer takes milliseconds to seconds. ``examples``: tasks checked
    before any drawn one (a failure's task, to replay it).

    Returns a ``Report``; raises ``PropertyFailure`` naming the task on a
    disagreement. Call it from a plain test, not inside ``@given``.
    """
    if not isinstance(program, Program):
        raise TypeError(f"check_program takes a Program, got {type(program).__name__}")
    if closed is None:
        if program.algorithm is None:
            raise ValueError(f"{program.name} is not a program of construct.programs, so the kit knows no closed "
                             "form for it: pass closed=f, f(X, y, x_query) giving the n + 1 predictions of every "
                             "prefix, and closed_rounding, a bound on that closed form's own float64 rounding")
        closed = lambda X, y, x_query: program.algorithm.closed(program, X, y, x_query)  # noqa: E731
    if program.algorithm is None and closed_rounding is None:
        raise ValueError(f"{program.name} is built by hand: its network is checked against the closed form you "
                         "give, which rounds in float64 itself; pass closed_rounding, a bound on that rounding at "
                         "each answer (a number, or closed_rounding(X, y, x_query) giving n + 1 of them)")
    if not (closed_rounding is None or callable(closed_rounding) or _at_least_zero(closed_rounding)):
        raise ValueError(f"closed_rounding must be a finite number >= 0 or a function, got {shown(closed_rounding)}")
    if not _at_least_zero(rtol):
        raise ValueError(f"rtol must be a finite number >= 0, got {shown(rtol)}")
    if bounds is not None and box is not None:
        raise ValueError("give the network's domain as bounds or as a box, not both")
    calibration = check_count(calibration, "calibration")
    strategy = regression_tasks(program.d, program.n) if tasks is None else tasks
    if not isinstance(strategy, SearchStrategy):
        raise TypeError(f"tasks must be a hypothesis strategy, got {type(strategy).__name__}")
    examples = [_as_task(task) for task in examples]
    box = None if box is None else _box(box)
    if box is not None:
        net = compile(program, **box)
    elif bounds is not None:
        net = compile(program, bounds)
    else:
        net = compile(program, Bounds.calibrate(program, [t.data for t in _draw(strategy, calibration) + examples],
                                                margin))
    checker = _Checker(program, net, closed, closed_rounding, rtol, box)

    @Settings(settings or Settings(), deadline=None)
    @given(strategy)
    def run(task):
        checker(task)

    for task in examples:
        run = example(task)(run)
    run()
    if not checker.answered:
        raise PropertyFailure(f"{program.name}: the network answered none of the {checker.tasks} tasks ("
                              f"{checker.refused} refused, {checker.outside_box} outside its box), so nothing was "
                              f"compared at the network level; draw tasks inside its domain ({net.bounds.source})",
                              "network", None)
    return Report(program.name, net.bounds.source,
                  "the exact answer (construct.exact, 50 digits)" if checker.exact
                  else "the closed form (allowed its stated float64 rounding)",
                  checker.tasks, checker.answered, checker.refused, checker.outside_box, checker.answers,
                  checker.machine_error, checker.network_error, checker.worst_bound, checker.tightest,
                  checker.loosest, checker.unbounded)
