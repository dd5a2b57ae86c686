"""Batch gradient descent at every prefix (programs.gd): the exact machine against the closed form, the exact
weights, its depth whatever n, its domain's refusal of a step that can diverge, a compiled network."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from construct import compile, exact, programs, reference
from construct.compiler import schedule
from construct.raw.domain import Box, UnboundedDomain
from construct.tasks import gaussian_tasks
from construct.testing import assert_agree, ridge_tasks

RTOL = 1e-9


def stable_alpha(task, fraction: float) -> float:
    """A step the task's own box allows: alpha (2 lam + R^2) <= 1 with R its largest |x|."""
    R = float(np.linalg.norm(np.vstack([task.X, task.x_query[None, :]]), axis=1).max())
    return fraction / (2 * task.lam + R**2)


@settings(max_examples=40)
@given(task=ridge_tasks, fraction=st.floats(0.01, 1.0), steps=st.integers(1, 12))
def test_the_machine_takes_the_closed_form_steps(task, fraction, steps):
    alpha = stable_alpha(task, fraction)
    program = programs.gd(task.d, task.n, alpha, task.lam, steps)
    assert_agree(program.predict(*task.data), reference.gd(*task.data, alpha, task.lam, steps), RTOL, "gd")


def test_the_steps_are_gradient_steps_on_each_prefix_objective():
    """The closed form against the gradient of L_k(w) = (1/k)(|X_k w - y_k|^2 + lam |w|^2), by finite differences,
    and many steps against ridge (its minimiser)."""
    X, y, q = gaussian_tasks(3, 5, 1, seed=4)[0]
    alpha, lam = 0.02, 0.3
    one = reference.gd_weights(X, y, alpha, lam, 1)
    for k in range(1, 6):
        loss = lambda w: (np.sum((X[:k] @ w - y[:k]) ** 2) + lam * w @ w) / k  # noqa: E731
        grad = np.array([(loss(h) - loss(-h)) / 2e-6 for h in 1e-6 * np.eye(3)])  # at w = 0
        assert np.allclose(one[k], -alpha * grad, rtol=1e-7, atol=1e-12)
    assert np.allclose(reference.gd_weights(X, y, alpha, lam, 20000), reference.ridge_weights(X, y, lam), atol=1e-9)


def test_the_exact_weights_are_the_closed_forms():
    X, y, q = gaussian_tasks(2, 4, 1, seed=1)[0]
    got = np.array(exact.gd_weights(X, y, 0.03, 0.2, 7), dtype=float)
    assert np.allclose(got, reference.gd_weights(X, y, 0.03, 0.2, 7), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n", [1, 8, 1024])
def test_depth_is_t_plus_one_whatever_n(n):
    """max(T + 1, 3) layers; four distinct (stored) ones from T = 3 on, three below (docs/DEPTH.md section 3)."""
    for steps in (1, 2, 3, 10, 40):
        program = programs.gd(8, n, 0.02, 0.1, steps)
        fused = schedule.fused(program)
        assert len(fused) == max(steps + 1, 3)
        stored = {tuple(program.instructions[k] for k in step.instructions) for step in fused}
        assert len(stored) == (4 if steps >= 3 else 3)


def test_a_box_where_a_step_can_diverge_is_refused_with_the_largest_alpha():
    box = Box(2, 1.0, 1.0, 1.0)
    Lam = 0.1 + 0.5
    programs.gd(2, 3, 1 / (2 * Lam), 0.1, 5).domain(box)
    with pytest.raises(UnboundedDomain, match=f"alpha <= 1/\\(2 Lam\\) = {1 / (2 * Lam):.6g}"):
        programs.gd(2, 3, 1.01 / (2 * Lam), 0.1, 5).domain(box)


def test_steps_must_be_a_positive_count():
    assert programs.gd(2, 3, 0.1, 0.1, 4.0).params["steps"] == 4  # the command line's numbers are floats
    for bad in (0, 2.5, "3"):
        with pytest.raises(ValueError, match="steps must be"):
            programs.gd(2, 3, 0.1, 0.1, bad)


def test_the_compiled_network_follows_the_closed_form():
    d, n, steps = 4, 16, 10
    program = programs.gd(d, n, 0.02, 0.1, steps)
    net = compile(program, x_max=4.0, y_max=12.0, x_norm=2 * d**0.5)
    X, y, q = gaussian_tasks(d, n, 1, seed=5)[0]
    preds = net.trace(X, y, q).states[-1][net.layout.rows("pred")][0, 0::2]
    assert_agree(preds, reference.gd(X, y, q, 0.02, 0.1, steps), 1e-10, "compiled gd")


def test_a_saved_network_loads_and_answers_bit_for_bit(tmp_path):
    from construct import load, save

    net = compile(programs.gd(2, 4, 0.02, 0.1, 3), x_max=2.0, y_max=3.0)
    save(net, tmp_path / "net.npz")
    X, y, q = np.array([[1.0, -0.5], [0.3, 1.2], [-1.1, 0.4], [0.2, 0.2]]), np.array([1.0, -2.0, 0.5, 2.5]), \
        np.array([0.7, -1.3])
    assert np.array_equal(load(tmp_path / "net.npz").predict(X, y, q, tolerance=None),
                          net.predict(X, y, q, tolerance=None))
