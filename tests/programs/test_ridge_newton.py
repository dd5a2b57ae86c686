"""Ridge by prefix averages and Newton-Schulz (programs.ridge_newton): the exact machine against the closed-form
iterate and against ridge, its step count, its parameters."""

import dataclasses
import importlib
import math

import numpy as np
import pytest
from hypothesis import given, settings

from construct import programs, reference
from construct.programs import residual
from construct.programs.residual import RidgeAnswer
from construct.testing import assert_agree, ridge_tasks

module = importlib.import_module("construct.programs.ridge_newton")  # the package exports the function by that name
RTOL = 1e-9


def built_for(task, **given):
    """The program for the task's size and lam, built for a box that holds the task's inputs."""
    norms = np.linalg.norm(np.vstack([task.X, task.x_query[None, :]]), axis=1)
    return programs.ridge_newton(task.d, task.n, task.lam, x_norm=max(float(norms.max()), 1e-3), **given)


@pytest.mark.parametrize("given", [{}, {"eps": 1e-3}, {"eps": 1e-2, "kappa": 4.0}])
@settings(max_examples=30)
@given(task=ridge_tasks)
def test_the_machine_computes_the_closed_form_iterate(given, task):
    """With a large eps the iterate is far from ridge, so this tells the refined iterate from the plain one."""
    program = built_for(task, **given)
    assert_agree(program.predict(*task.data), reference.ridge_newton(*task.data, **program.params), RTOL,
                 "ridge_newton")


@given(ridge_tasks)
def test_the_iterate_is_within_eps_of_ridge(task):
    """|w_t - w*| <= eps |w*| (newton_schulz_convergence), so a prediction is within eps |w*| |q| of ridge's."""
    program = built_for(task)
    weights = reference.ridge_weights(task.X, task.y, task.lam)
    inputs = np.vstack([task.X, task.x_query[None, :]])
    allowed = 1e-10 * np.linalg.norm(weights, axis=1) * np.linalg.norm(inputs, axis=1)
    got = program.predict(*task.data)
    ridge = reference.ridge(*task.data, task.lam)
    assert np.all(np.abs(got - ridge) <= allowed + 1e-12 * (1 + np.abs(ridge)) * math.sqrt(task.n)), (
        np.abs(got - ridge) - allowed)


def test_the_step_count_follows_the_box_or_a_declared_bound():
    lam, R, n = 0.1, 2 * math.sqrt(8), 1024
    kappa = (lam + R**2 / 2) * (2 * n + 1) / lam
    assert module.box_kappa(n, lam, R) == kappa
    assert module.steps(kappa, 1e-10) == math.ceil(math.log2(kappa * math.log(1e10))) == 23
    assert math.exp(-2 ** module.steps(kappa, 1e-10) / kappa) <= 1e-10 < math.exp(-2 ** 22 / kappa)
    # one layer per step, the same instructions: depth t + 4 fused, whatever the rest
    box = programs.ridge_newton(8, n, lam, x_norm=R)
    declared = programs.ridge_newton(8, n, lam, x_norm=R, kappa=3e3)
    assert len(box.instructions) - len(declared.instructions) == 3 * (23 - module.steps(3e3, 1e-10))
    assert box.params["kappa"] == kappa and declared.params["kappa"] == 3e3  # kept, so that the program rebuilds
    assert programs.ridge_newton(8, n, lam, x_norm=R, kappa=1e9).params["kappa"] == kappa  # the box's is smaller


@pytest.mark.parametrize("given, message", [
    ({"lam": 0.0}, "lam must be > 0"), ({"x_norm": -1.0}, "x_norm must be > 0"), ({"kappa": 0.5}, "kappa must be >= 1"),
    ({"eps": 1.0}, "eps must be in"), ({"eps": 0.0}, "eps must be > 0"),
])
def test_bad_parameters_are_refused_by_name(given, message):
    with pytest.raises(ValueError, match=message):
        programs.ridge_newton(2, 3, **{"lam": 0.1, **given})


def test_a_box_wider_than_the_program_is_refused():
    from construct.raw.domain import Box, UnboundedDomain

    program = programs.ridge_newton(2, 3, 0.1, x_norm=1.0)
    program.domain(Box(2, 0.5, 1.0, 1.0))
    with pytest.raises(UnboundedDomain, match="built for |x| <= x_norm = 1"):
        program.domain(Box(2, 1.0, 1.0, 1.5))


def test_the_residual_certificate_bounds_every_prefix_of_a_compiled_network():
    """From the network's own last state: w at every x~ column and c P / (i + 1) as A^-1 (the sharper form), at
    most the exact error's few times, never below it (50-digit exact answers)."""
    from construct import compile, exact
    from construct.tasks import gaussian_tasks

    d, n = 3, 12
    program = programs.ridge_newton(d, n, 0.1, x_norm=2 * math.sqrt(d))
    net = compile(program, x_max=4.0, y_max=4 * math.sqrt(d), x_norm=2 * math.sqrt(d))
    for X, y, q in gaussian_tasks(d, n, 3, seed=7):
        state = net.trace(X, y, q).states[-1].T
        predictions = state[0::2, net.layout.rows("pred")][:, 0]
        errors = exact.errors(program, X, y, q, predictions)
        bounds = program.algorithm.a_posteriori(program, state, X, y, q, predictions)
        plain = residual.from_state(
            dataclasses.replace(program, algorithm=dataclasses.replace(program.algorithm, residual=RidgeAnswer("w"))),
            state, X, y, q, predictions)
        assert np.all(bounds >= errors) and np.all(plain >= errors)
        assert np.all(bounds <= plain) and np.median(bounds / np.maximum(errors, 1e-300)) < 4


@pytest.mark.parametrize("n", [1, 32, 1024])
def test_depth_is_the_step_count_plus_five_whatever_n(n):
    """Fused: the averages (2 layers), the loop (t - 1 more), w1, A' w1, P A' w1, and w with the prediction; seven
    distinct layers. With a declared kappa the depth does not depend on n at all; from the box, through
    log2(2n + 1)."""
    from construct.compiler import schedule

    for given in ({"kappa": 1e4}, {}):
        program = programs.ridge_newton(8, n, 0.1, **given)
        steps = schedule.fused(program)
        assert len(steps) == module.step_count(program) + 5
        layers = {tuple(program.instructions[k] for k in step.instructions) for step in steps}
        assert len(layers) == 7 - (module.step_count(program) == 1)
    # the declared bound binds once the box's is larger (kappa = 16.1 (2n + 1) / 0.1: 483 at n = 1)
    assert module.step_count(programs.ridge_newton(8, n, 0.1, kappa=1e4)) == (14 if n == 1 else 18)


def test_a_saved_network_loads_and_answers_bit_for_bit(tmp_path):
    from construct import compile, load, save

    net = compile(programs.ridge_newton(2, 4, 0.1), x_max=2.0, y_max=3.0, x_norm=2 * math.sqrt(2))
    save(net, tmp_path / "net.npz")
    X, y, q = np.array([[1.0, -0.5], [0.3, 1.2], [-1.1, 0.4], [0.2, 0.2]]), np.array([1.0, -2.0, 0.5, 2.5]), \
        np.array([0.7, -1.3])
    assert np.array_equal(load(tmp_path / "net.npz").predict(X, y, q, tolerance=None),
                          net.predict(X, y, q, tolerance=None))


def test_float32_answers_lie_within_bounds_derived_from_float32s_unit_roundoff():
    """The same program compiled for float32 (its scale constants chosen for float32's eps) and run by the float32
    numpy pass: every prefix's answer within the mechanism certificate's bound, which propagates each layer's
    local error as its mechanism's lemma and float32's unit roundoff give it, and within the a-posteriori bound
    (50-digit exact answers). The errors are float32's, not float64's: the pass is float32 through."""
    from construct import compile, exact
    from construct.tasks import gaussian_tasks

    d, n = 3, 8
    program = programs.ridge_newton(d, n, 0.1, x_norm=2 * math.sqrt(d))
    net = compile(program, x_max=4.0, y_max=4 * math.sqrt(d), x_norm=2 * math.sqrt(d), dtype=np.float32)
    assert net.weights.W1.dtype == np.float32
    for X, y, q in gaussian_tasks(d, n, 3, seed=7):
        cert = net.certify(X, y, q)
        errors = exact.errors(program, X, y, q, cert.predictions)
        mechanism, residual_bound = cert.by_source["mechanism"], cert.by_source["residual"]
        assert np.all(np.isfinite(mechanism)) and np.all(np.isfinite(residual_bound))
        assert np.all(errors <= mechanism) and np.all(errors <= residual_bound)
        assert errors.max() > 1e3 * np.finfo(np.float64).eps
