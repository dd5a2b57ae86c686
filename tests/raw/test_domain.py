"""The domain derived from the input box: never exceeded by a task inside the box, never refused there.

Tasks at the corners of the box (every entry +-x_max with random and
all-equal sign patterns, |y| = y_max, repeated, collinear and orthogonal
rows, rows of zeros, n < d and n > d, rows exactly at the norm bound) run
through the exact machine, whose every register in every state must stay
within its bound and every divisor above its floor, and through compiled
networks, which must answer every one of them.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import construct
from construct import DomainError, programs, reference
from construct.compiler import Bounds
from construct.compiler.bounds import SLACK
from construct.raw.domain import Box
from construct.instructions import Div
from construct.tasks import gaussian_tasks
from construct.testing import assert_agree, compiled_tasks

from support import ISSUE_CASE

ROWS = ("plus", "minus", "signs", "alternating", "repeated", "collinear", "zeros", "orthogonal")
LABELS = ("plus", "alternating", "signs", "zero", "aligned")


def _rows(kind: str, count: int, d: int, x_max: float, rng) -> np.ndarray:
    signs = lambda *shape: rng.choice([-1.0, 1.0], size=shape)  # noqa: E731
    if kind == "plus":
        return np.full((count, d), x_max)
    if kind == "minus":
        return np.full((count, d), -x_max)
    if kind == "signs":
        return x_max * signs(count, d)
    if kind == "alternating":
        return x_max * np.outer((-1.0) ** np.arange(count), np.ones(d))
    if kind == "repeated":
        return np.tile(x_max * signs(d), (count, 1))
    if kind == "collinear":
        return np.outer(rng.choice([-1.0, -0.5, 0.5, 1.0], size=count), x_max * signs(d))
    if kind == "zeros":
        rows = x_max * signs(count, d)
        rows[::2] = 0.0
        return rows
    rows = np.zeros((count, d))  # orthogonal: one-hot rows, repeating once there are more than d
    rows[np.arange(count), np.arange(count) % d] = x_max * signs(count)
    return rows


def corner_tasks(d: int, n: int, x_max: float, y_max: float, x_norm: float | None = None, seed: int = 0):
    """``(name, X, y, x_query)`` at the corners of the box; rows longer than x_norm are shortened onto it."""
    rng = np.random.default_rng(seed)
    tasks = []
    for rows in ROWS:
        for labels in LABELS:
            A = _rows(rows, n + 1, d, x_max, rng)
            if x_norm is not None:
                norms = np.linalg.norm(A, axis=1)
                A *= np.minimum(1.0, x_norm / np.where(norms > 0, norms, 1.0))[:, None]
            X, x_query = A[:n], A[n]
            y = {"plus": np.full(n, y_max), "alternating": y_max * (-1.0) ** np.arange(n),
                 "signs": y_max * rng.choice([-1.0, 1.0], size=n), "zero": np.zeros(n),
                 "aligned": y_max * np.where(X.sum(axis=1) >= 0, 1.0, -1.0)}[labels]
            tasks.append((f"{rows}/{labels}", X, y, x_query))
    return tasks


def machine_extremes(program, tasks):
    """Per register the largest |value| over every column of every state; per divisor the smallest, before its div."""
    layout, peak, low = program.layout, {}, {}
    dens = {k: ins.den for k, ins in enumerate(program.instructions) if isinstance(ins, Div)}
    for k, H in enumerate(program.states_many(tasks)):
        for name in layout.names:
            peak[name] = max(peak.get(name, 0.0), float(np.abs(H[layout.rows(name)]).max()))
        if k in dens:
            low[dens[k]] = min(low.get(dens[k], np.inf), float(np.abs(H[layout.rows(dens[k])]).min()))
    return peak, low


def sgd_at_the_edge(d, n, lam, w0, x_max, x_norm, fraction=1.0):
    """SGD with alpha = fraction / (R^2 + lam), R the box's norm bound: fraction 1 is the largest alpha allowed."""
    R = Box(d, x_max, 1.0, x_norm).x_norm
    return programs.sgd(d, n, fraction / (R**2 + lam), lam, w0)


BOXES = [(1.0, 1.0, None), (3.0, 2.0, None), (3.0, 2.0, 2.0)]  # (x_max, y_max, x_norm)


def machine_cases():
    cases = []
    for d, n in ((1, 3), (2, 1), (2, 5), (3, 2), (4, 6)):  # n < d and n > d
        w0 = np.linspace(-1.0, 2.0, d)
        for box in BOXES:
            for lam in (0.01, 0.5, 10.0):
                cases.append((programs.ridge(d, n, lam), box, f"lam={lam}"))
            for lam in (0.0, 0.3):
                for fraction in (0.5, 1.0):
                    cases.append((sgd_at_the_edge(d, n, lam, w0, box[0], box[2], fraction), box,
                                  f"lam={lam}-alpha={fraction}max"))
            R = Box(d, box[0], 1.0, box[2]).x_norm
            for lam in (0.01, 0.5, 10.0):
                cases.append((programs.ridge_newton(d, n, lam, x_norm=R), box, f"lam={lam}"))
                cases.append((programs.gd(d, n, 1 / (2 * lam + R**2), lam, 7), box, f"lam={lam}-alpha=max"))
            if n == 1:
                cases.append((programs.sherman_morrison_step(d, 0.05), box, "lam=0.05"))
                # a step that expands w (rho > 1): one step is still bounded
                cases.append((programs.sgd_step(d, 0.9, 0.3, w0), box, "alpha=0.9-lam=0.3"))
    return [pytest.param(program, box, id=f"{program.name}-d{program.d}-n{program.n}-{what}-box{box}")
            for program, box, what in cases]


# Registers whose bound the corners attain (to rounding): the bounds are checked, and they are not vacuous.
ATTAINED = {"ridge": ("x_in", "x", "Ainv", "den", "den1"), "sgd": ("x_in", "y_in", "x", "pos"),
            "sherman_morrison_step": ("x", "Ainv", "u", "uvT", "den", "den1"), "sgd_step": ("x", "x_in"),
            "ridge_newton": ("x_in", "x", "x_prev", "z", "bos"), "gd": ("x_in", "x", "x_prev", "z", "bos")}


@pytest.mark.parametrize("program, box", machine_cases())
def test_the_machine_stays_inside_the_theory_bounds_at_the_corners(program, box):
    x_max, y_max, x_norm = box
    theory = program.domain(Box(program.d, x_max, y_max, x_norm))
    peak, low = machine_extremes(program, [t[1:] for t in corner_tasks(program.d, program.n, *box)])
    rounding = 1e-12  # the machine runs in float64; the bounds are exact
    for name, value in peak.items():
        assert value <= theory.values[name] * (1 + rounding), f"{name} reached {value:.17g} > {theory.values[name]!r}"
    for name, value in low.items():
        assert value >= theory.floors[name] * (1 - rounding), f"divisor {name} fell to {value!r}"
    for name in ATTAINED[program.name]:
        assert peak[name] >= theory.values[name] * (1 - 1e-9), f"{name}: {peak[name]!r} never near its bound"
    for name, floor in theory.floors.items():
        assert low[name] <= floor * (1 + 1e-9), f"divisor {name}: floor {floor} never attained"


@st.composite
def boxed_tasks(draw):
    """A random task inside a random box: entries uniform in [-x_max, x_max], rows shortened onto x_norm."""
    d, n = draw(st.integers(1, 5)), draw(st.integers(1, 8))
    x_max, y_max = draw(st.floats(0.1, 5.0)), draw(st.floats(0.1, 5.0))
    x_norm = draw(st.one_of(st.none(), st.floats(0.05, 5.0)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.uniform(-x_max, x_max, size=(n + 1, d))
    if x_norm is not None:
        norms = np.linalg.norm(A, axis=1)
        A *= np.minimum(1.0, x_norm / np.where(norms > 0, norms, 1.0))[:, None]
    lam = draw(st.floats(0.01, 10.0))
    return (A[:n], rng.uniform(-y_max, y_max, size=n), A[n]), (x_max, y_max, x_norm), lam, draw(st.floats(0.0, 1.0))


@given(boxed_tasks())
def test_no_task_inside_a_box_leaves_the_theory_bounds(case):
    task, box, lam, fraction = case
    d, n = task[0].shape[1], task[0].shape[0]
    w0 = np.linspace(-1.0, 1.0, d)
    for program in (programs.ridge(d, n, lam), sgd_at_the_edge(d, n, min(lam, 1.0), w0, box[0], box[2], fraction)):
        theory = program.domain(Box(d, *box))
        peak, low = machine_extremes(program, [task])
        assert all(peak[r] <= theory.values[r] * (1 + 1e-12) for r in peak), program.name
        assert all(low[r] >= theory.floors[r] * (1 - 1e-12) for r in low), program.name


# -- compiled networks: every corner task answered -------------------------------------------------

COMPILED = [
    pytest.param(lambda: programs.ridge(3, 5, 0.01), (3.0, 2.0, None), lambda t: reference.ridge(*t, 0.01),
                 id="ridge-d3-n5-lam0.01"),
    pytest.param(lambda: programs.ridge(2, 4, 0.5), (1.0, 1.0, None), lambda t: reference.ridge(*t, 0.5),
                 id="ridge-d2-n4-lam0.5"),
    pytest.param(lambda: programs.ridge(4, 2, 10.0), (3.0, 2.0, 2.0), lambda t: reference.ridge(*t, 10.0),
                 id="ridge-d4-n2-lam10-x_norm"),
    pytest.param(lambda: sgd_at_the_edge(3, 5, 0.3, np.ones(3), 3.0, None), (3.0, 2.0, None),
                 lambda t: reference.sgd_one_pass(*t, 1 / 27.3, 0.3, np.ones(3)), id="sgd-d3-n5-largest-alpha"),
    pytest.param(lambda: sgd_at_the_edge(2, 4, 0.0, np.zeros(2), 3.0, 2.0), (3.0, 2.0, 2.0),
                 lambda t: reference.sgd_one_pass(*t, 1 / 4.0, 0.0, np.zeros(2)), id="sgd-d2-n4-largest-alpha-x_norm"),
    pytest.param(lambda: programs.sherman_morrison_step(3, 0.05), (3.0, 2.0, None),
                 lambda t: reference.ridge(*t, 0.05), id="sherman_morrison_step-d3"),
    pytest.param(lambda: programs.sgd_step(3, 0.9, 0.3, np.array([1.0, -1.0, 0.5])), (3.0, 2.0, None),
                 lambda t: reference.sgd_one_step(*t, 0.9, 0.3, np.array([1.0, -1.0, 0.5])), id="sgd_step-d3"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("make, box, closed", COMPILED)
def test_a_compiled_network_answers_every_task_at_the_corners(make, box, closed, dtype):
    program = make()
    x_max, y_max, x_norm = box
    net = construct.compile(program, x_max=x_max, y_max=y_max, x_norm=x_norm, dtype=dtype)
    answered = slice(1, None) if program.query_only else slice(None)
    for name, *task in corner_tasks(program.d, program.n, *box):
        if dtype == np.float64:
            got = net.predict(*task)  # a DomainError here is a task inside the box refused (or above 1e-6)
            assert_agree(got[answered], closed(task)[answered], 1e-6, f"{program.name} at {name}")
        else:  # float32 answers are certified to about 1e-4 at best, above the default tolerance: the domain only
            got = net.predict(*task, tolerance=None)
            assert np.isfinite(got[answered]).all(), f"{program.name} at {name}"


@settings(max_examples=10)
@given(compiled_tasks())
def test_networks_compiled_for_a_tasks_own_box_meet_the_end_to_end_bound(t):
    """The tightest box around a task of the accuracy setting (docs/COMPILER.md): the theory's bounds, looser than a
    calibration's, still give the 1e-6 the calibrated networks are held to. SGD's alpha is capped at what the
    box allows."""
    X, y, q = t.data
    x_max, y_max = max(np.abs(X).max(), np.abs(q).max()), max(np.abs(y).max(), 1e-3)
    x_norm = max(np.linalg.norm(X, axis=1).max(), np.linalg.norm(q))
    alpha = min(t.alpha, 1 / (x_norm**2 + t.lam))
    for program, closed in ((programs.ridge(t.d, t.n, t.lam), reference.ridge(*t.data, t.lam)),
                            (programs.sgd(t.d, t.n, alpha, t.lam, t.w0),
                             reference.sgd_one_pass(*t.data, alpha, t.lam, t.w0))):
        net = construct.compile(program, x_max=x_max, y_max=y_max, x_norm=x_norm)
        assert_agree(net.predict(*t.data), closed, 1e-6, program.name)


def test_the_theory_domain_refuses_exactly_the_tasks_outside_the_box():
    """x ~ N(0, 4 I), w ~ N(0, I): a box of four standard deviations; predict_batch marks what it refuses."""
    d, n, lam = 2, 4, 0.1
    rng = np.random.default_rng(3)
    X, q, w = 2 * rng.normal(size=(400, n, d)), 2 * rng.normal(size=(400, d)), rng.normal(size=(400, d))
    y = np.einsum("bnd,bd->bn", X, w)
    x_max, y_max = 8.0, 4 * 2 * np.sqrt(d)
    outside = (np.abs(X).max(axis=(1, 2)) > x_max) | (np.abs(q).max(axis=1) > x_max) | (np.abs(y).max(axis=1) > y_max)
    assert 0 < outside.sum() < 40  # the draw does put some tasks outside
    for program, closed in ((programs.ridge(d, n, lam), lambda t: reference.ridge(*t, lam)),
                            (programs.sgd(d, n, 0.005, lam), lambda t: reference.sgd_one_pass(*t, 0.005, lam))):
        preds = construct.compile(program, x_max=x_max, y_max=y_max).predict_batch(X, y, q, outside="nan")
        refused = np.isnan(preds).all(axis=1)
        assert np.array_equal(refused, outside), program.name
        for k in np.flatnonzero(~refused)[:20]:
            assert_agree(preds[k], closed((X[k], y[k], q[k])), 1e-6, program.name)


# -- the API ----------------------------------------------------------------------------------------


def test_bounds_for_inputs_keep_the_inputs_exact_and_add_the_slack():
    program = programs.ridge(3, 4, 0.5)
    theory = program.domain(Box(3, 2.0, 3.0, 2.5))
    bounds = Bounds.for_inputs(program, 2.0, 3.0, x_norm=2.5)
    assert (bounds.values["x_in"], bounds.values["y_in"], bounds.values["pos"]) == (2.0, 3.0, 8.0)
    assert bounds.values["Ainv"] == theory.values["Ainv"] * (1 + 2**-20) == 2 * (1 + 2**-20)
    assert bounds.floors == {"den1": 1 - 2**-20}
    assert bounds.x_norm == 2.5
    assert bounds.source == "theory of ridge for the box |x_i| <= 2, |x| <= 2.5, |y| <= 3 (slack 2^-20 for float64)"
    f32 = Bounds.for_inputs(program, 2.0, 3.0, x_norm=2.5, dtype=np.float32)
    assert f32.values["Ainv"] == 2 * (1 + SLACK[np.dtype(np.float32)]) and "for float32" in f32.source
    net = construct.compile(program, x_max=2.0, y_max=3.0, x_norm=2.5)
    assert net.bounds == bounds and net.bounds.source == bounds.source
    calibrated = Bounds.calibrate(program, gaussian_tasks(3, 4, 8))
    assert calibrated.source == "calibration on 8 tasks, margin 4" and calibrated.x_norm is None
    assert Bounds(calibrated.values, calibrated.floors).source == "given explicitly"
    assert construct.compiler.estimate(program, x_max=2.0, y_max=3.0, x_norm=2.5) == construct.compiler.estimate(
        program, bounds)


def test_the_box():
    assert Box(4, 1.0, 1.0).x_norm == 2.0  # sqrt(d) x_max
    assert Box(4, 1.0, 1.0, x_norm=5.0).x_norm == 2.0  # the entries already imply |x| <= 2
    box = Box(4, 3.0, 1.0, x_norm=2.0)
    assert (box.x_max, box.x_norm) == (2.0, 2.0)  # an entry is at most the norm
    for kwargs, name in ((dict(x_max=0.0), "x_max"), (dict(x_max=float("nan")), "x_max"), (dict(y_max=-1.0), "y_max"),
                         (dict(y_max=True), "y_max"), (dict(x_norm=0.0), "x_norm"), (dict(x_max="1"), "x_max")):
        args = {"x_max": 1.0, "y_max": 1.0, **kwargs}
        with pytest.raises(ValueError, match=rf"{name} must be a finite number > 0, got"):
            construct.compile(programs.ridge(2, 2, 0.5), **args)


def test_a_declared_norm_bound_is_checked_on_the_inputs():
    net = construct.compile(programs.ridge(2, 3, 0.5), x_max=1.0, y_max=1.0, x_norm=1.0)
    X, y = np.array([[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]]), np.array([1.0, -1.0, 0.5])  # every row exactly at |x| = 1
    q = np.array([np.sqrt(0.5), -np.sqrt(0.5)])
    assert_agree(net.predict(X, y, q), reference.ridge(X, y, q, 0.5), 1e-6, "at the norm bound")
    with pytest.raises(DomainError, match=r"\|X\[1\]\| = 1\.41421 is outside the declared input bound \|x\| <= 1 "
                                          r"this network was compiled for \(theory of ridge for the box"):
        net.predict(np.array([[0.6, 0.8], [1.0, 1.0], [0.0, 0.0]]), y, q)
    with pytest.raises(DomainError, match=r"\|x_query\| = 1\.41421 is outside"):
        net.predict(X, y, np.array([1.0, -1.0]))


def test_sgd_that_can_diverge_on_the_box_is_refused_at_compile_time():
    program = programs.sgd(2, 4, 0.5, 0.1)  # R = sqrt(2): the box allows alpha <= 1/(2 + 0.1)
    with pytest.raises(ValueError, match=r"sgd\(alpha=0\.5, lam=0\.1\) diverges on the box .*: a step can multiply "
                                         r"\|w\| by rho = .* = 1\.1 > 1 with R = 1\.41421.*The box allows alpha <= "
                                         r"1/\(R\^2 \+ lam\) = 0\.47619; use a smaller alpha, a smaller x_max, or "
                                         r"declare x_norm"):
        construct.compile(program, x_max=1.0, y_max=1.0)
    net = construct.compile(program, x_max=1.0, y_max=1.0, x_norm=1.0)  # 0.5 <= 1/(1 + 0.1): allowed
    task = (np.array([[0.6, 0.8], [1.0, 0.0], [0.0, -1.0], [0.0, 0.0]]), np.ones(4), np.array([0.0, 1.0]))
    assert_agree(net.predict(*task), reference.sgd_one_pass(*task, 0.5, 0.1), 1e-6, "sgd inside its box")


def test_what_a_domain_needs():
    from construct import Aff, Program
    from construct.raw.prompt import input_registers
    from construct.raw.registers import Layout, Register

    by_hand = Program("by_hand", 1, 1, Layout(input_registers(1) + [Register("pred", (1,))]),
                      (Aff("pred", (("x_in", 2.0),)),))
    with pytest.raises(ValueError, match=r"program 'by_hand' has no derivation of its domain from input bounds .* "
                                         r"Bounds\(values, floors\), or from sample tasks, Bounds\.calibrate"):
        construct.compile(by_hand, x_max=1.0, y_max=1.0)
    program = programs.ridge(2, 2, 0.5)
    with pytest.raises(ValueError, match=r"compile needs the network's domain: the input box, compile\(program, "
                                         r"x_max=\.\.\., y_max=\.\.\.\).*Bounds\.calibrate\(program, tasks\)"):
        construct.compile(program)
    with pytest.raises(ValueError, match=r"; got only x_max"):
        construct.compile(program, x_max=1.0)
    bounds = Bounds.for_inputs(program, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"either as bounds or as the input box .* not both; got bounds and y_max"):
        construct.compile(program, bounds, y_max=1.0)
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64"):
        Bounds.for_inputs(program, 1.0, 1.0, dtype=np.float16)
    import sympy

    symbolic = programs.ridge(2, 2, sympy.Symbol("lam", positive=True))
    with pytest.raises(ValueError, match=r"ridge has symbolic parameters .*; a domain needs numbers"):
        Bounds.for_inputs(symbolic, 1.0, 1.0)


def test_a_task_inside_a_box_too_wide_for_its_lam_is_refused_as_the_networks_own_error():
    """The box promise, exactly (``Bounds.for_inputs``): a task inside the box has exact values within the theory's
    bounds, so a refusal says the network's own error passed the slack. Ridge d = 1, lam = 1e-3, |x| <= 7000
    (R^2/lam = 4.9e10): A^-1's register is bounded by 1/lam = 1000, the exact A^-1 falls to 2e-8 after the first
    example, and the product that updates it errs by 2e-4, so x^T A^-1 x at the next examples is far off and the
    divisor 1 + x^T A^-1 x >= 1 is computed below its floor 0.99 (at a value that depends on the order in which a matrix
    library sums the products, so the pattern does not fix it)."""
    X, y, q = ISSUE_CASE
    program = programs.ridge(1, 6, 1e-3)
    net = construct.compile(program, x_max=7000.0, y_max=float(np.abs(y).max()))
    divides = [k for k, ins in enumerate(program.instructions) if ins.divisor == "den1"]
    exact = [H[program.layout.rows("den1")] for k, H in enumerate(program.states_many([(X, y, q)])) if k in divides]
    assert len(exact) == 6 and min(float(v.min()) for v in exact) >= 1  # exact: above its floor at every division
    with pytest.raises(DomainError, match=r"divisor 'den1' fell to \S+ in layer \d+ .* below its declared floor "
                                          r"0\.99\d+; the task is inside the box \|x_i\| <= 7000, .* so the network's "
                                          r"own error on 'den1' passed their slack: the box is too wide"):
        net.predict(X, y, q, tolerance=None)
    narrow = construct.compile(program, x_max=100.0, y_max=51.0)  # R^2/lam = 1e7: the same task, 70 times smaller
    narrow.predict(X / 70, y / 70, q / 70, tolerance=None)
    with pytest.raises(DomainError, match=r"X\[0, 0\] = 7000 is outside the declared input bound .* \(theory of "):
        narrow.predict(X, y, q)  # outside its box: not the network's error
