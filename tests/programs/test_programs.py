"""The exact machine running each program against the closed-form references."""

import numpy as np
import pytest
from hypothesis import given

from construct import programs, reference
from construct.testing import EDGE_CASES, assert_agree, ridge_tasks, sgd_tasks

RTOL = 1e-9


@given(sgd_tasks)
def test_sgd_program_matches_one_pass_sgd(task):
    program = programs.sgd(task.d, task.n, task.alpha, task.lam, task.w0)
    assert_agree(program.predict(*task.data),
                 reference.sgd_one_pass(*task.data, task.alpha, task.lam, task.w0), RTOL, "sgd")


@given(ridge_tasks)
def test_ridge_program_matches_ridge_solve(task):
    program = programs.ridge(task.d, task.n, task.lam)
    assert_agree(program.predict(*task.data), reference.ridge(*task.data, task.lam), RTOL, "ridge")


@given(sgd_tasks.filter(lambda t: t.n == 1) | sgd_tasks.map(lambda t: type(t)(t.X[:1], t.y[:1], t.x_query,
                                                                          t.alpha, t.lam, t.w0)))
def test_theorem1_chain_matches_one_step_sgd(task):
    preds = programs.sgd_step(task.d, task.alpha, task.lam, task.w0).predict(*task.data)
    expected = reference.sgd_one_step(*task.data, task.alpha, task.lam, task.w0)
    assert np.isnan(preds[0])  # a one-query chain
    assert_agree(preds[1:], expected[1:], RTOL, "sgd_step")
    general = programs.sgd(task.d, 1, task.alpha, task.lam, task.w0).predict(*task.data)
    assert_agree(general, expected, RTOL, "sgd(n=1)")


@given(ridge_tasks.map(lambda t: type(t)(t.X[:1], t.y[:1], t.x_query, t.alpha, t.lam, t.w0)))
def test_theorem2_chain_matches_ridge(task):
    preds = programs.sherman_morrison_step(task.d, task.lam).predict(*task.data)
    expected = reference.ridge(*task.data, task.lam)
    assert np.isnan(preds[0])
    assert_agree(preds[1:], expected[1:], RTOL, "sherman_morrison_step")
    assert_agree(programs.ridge(task.d, 1, task.lam).predict(*task.data), expected, RTOL, "ridge(n=1)")


@pytest.mark.parametrize("name", EDGE_CASES)
def test_catalogue_sgd(name):
    t = EDGE_CASES[name]
    expected = reference.sgd_one_pass(*t.data, t.alpha, t.lam, t.w0)
    assert_agree(programs.sgd(t.d, t.n, t.alpha, t.lam, t.w0).predict(*t.data), expected, RTOL, name)
    if t.alpha == 0:
        assert_agree(expected, np.vstack([t.X, t.x_query]) @ t.w0, 1e-15, "alpha = 0 keeps w0")


@pytest.mark.parametrize("name", EDGE_CASES)
def test_catalogue_ridge(name):
    t = EDGE_CASES[name]
    assert_agree(programs.ridge(t.d, t.n, t.lam).predict(*t.data), reference.ridge(*t.data, t.lam), RTOL, name)


@pytest.mark.parametrize("name", [k for k, t in EDGE_CASES.items() if t.n == 1])
def test_catalogue_chains(name):
    t = EDGE_CASES[name]
    sgd1 = programs.sgd_step(t.d, t.alpha, t.lam, t.w0).predict(*t.data)
    assert_agree(sgd1[1:], reference.sgd_one_step(*t.data, t.alpha, t.lam, t.w0)[1:], RTOL, name)
    sm = programs.sherman_morrison_step(t.d, t.lam).predict(*t.data)
    assert_agree(sm[1:], reference.ridge(*t.data, t.lam)[1:], RTOL, name)


@pytest.mark.parametrize("d", [1, 2, 5, 8])
def test_sizes(d):
    """The paper's counts for the chains; the general programs' widths do not grow with n."""
    step = programs.sgd_step(d, 0.1, 0.1, np.zeros(d))
    assert (step.depth, step.data_rows) == (9, 3 + 4 * d)
    sm = programs.sherman_morrison_step(d, 1.0)
    assert (sm.depth, sm.data_rows) == (14, 3 + 5 * d + 3 * d * d)
    for n in (1, 4, 16):
        s, r = programs.sgd(d, n, 0.1, 0.1), programs.ridge(d, n, 1.0)
        assert (s.depth, s.data_rows) == (5 + 6 * n + 2, 6 * d + 5)
        assert (r.depth, r.data_rows) == (3 + 12 * n + 2, 3 * d * d + 7 * d + 5)
        assert s.width == r.width - r.data_rows + s.data_rows == d + 2 + 6 * d + 5


def test_trace_keeps_every_state_and_inputs():
    t = EDGE_CASES["n<d"]
    program = programs.ridge(t.d, t.n, t.lam)
    states = program.run(*t.data, trace=True)
    assert len(states) == program.depth + 1
    assert np.array_equal(states[-1], program.run(*t.data))
    for H in states:  # no instruction touches the prompt
        assert np.array_equal(H[: t.d + 2], states[0][: t.d + 2])
