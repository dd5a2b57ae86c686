"""The closed forms checked by properties of their solutions, not against another implementation."""

import numpy as np
import pytest
from hypothesis import given

from construct import reference
from construct.testing import assert_agree, ridge_tasks, sgd_tasks


def implicit_weights(predictor, X, y, k, d, **kw):
    """Weights a linear predictor uses after k examples, read off by querying the basis vectors."""
    return np.array([predictor(X[:k], y[:k], e, **kw)[-1] if k else 0.0 for e in np.eye(d)])


@given(ridge_tasks)
def test_ridge_zeroes_the_gradient_of_its_objective(task):
    X, y, _ = task.data
    for k in range(1, task.n + 1):
        w = implicit_weights(reference.ridge, X, y, k, task.d, lam=task.lam)
        grad = X[:k].T @ (X[:k] @ w - y[:k]) + task.lam * w
        assert np.max(np.abs(grad)) <= 1e-9 * (1 + np.abs(X[:k].T @ y[:k]).max())


@given(ridge_tasks)
def test_ols_is_the_minimum_norm_least_squares_solution(task):
    X, y, _ = task.data
    for k in range(1, task.n + 1):
        w = implicit_weights(reference.ols, X, y, k, task.d)
        Xk = X[:k]
        # normal equations hold, and w lies in the row space of X_k (minimum norm)
        assert np.max(np.abs(Xk.T @ (Xk @ w - y[:k]))) <= 1e-8 * (1 + np.abs(Xk.T @ y[:k]).max()) * np.linalg.cond(Xk) ** 2
        residual = w - np.linalg.pinv(Xk) @ (Xk @ w)
        assert np.linalg.norm(residual) <= 1e-8 * (1 + np.linalg.norm(w)) * np.linalg.cond(Xk)


@given(sgd_tasks)
def test_one_example_gd_sgd_and_one_step_coincide(task):
    X, y, xq = task.X[:1], task.y[:1], task.x_query
    one = reference.sgd_one_step(X, y, xq, task.alpha, task.lam, task.w0)
    assert_agree(reference.sgd_one_pass(X, y, xq, task.alpha, task.lam, task.w0), one, 1e-14)
    assert_agree(reference.gd_one_step(X, y, xq, task.alpha, task.lam, task.w0)[1:], one[1:], 1e-13)


def test_prefix_zero_predictions():
    X, y, xq, w0 = np.ones((2, 2)), np.ones(2), np.ones(2), np.array([1.0, -3.0])
    assert reference.ridge(X, y, xq, 1.0)[0] == 0.0
    assert reference.ols(X, y, xq)[0] == 0.0
    assert reference.sgd_one_pass(X, y, xq, 0.1, 0.5, w0)[0] == w0 @ X[0]


def test_ridge_tends_to_ols_and_interpolates_when_underdetermined():
    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(3, 5)), rng.normal(size=5)
    y = X @ w
    for k in range(1, 4):  # ols interpolates the examples it has seen
        w_ols = np.array([reference.ols(X[:k], y[:k], e)[-1] for e in np.eye(5)])
        assert np.allclose(X[:k] @ w_ols, y[:k], atol=1e-12)
    # with n >= d: w_ridge - w_ols = -lam (X^T X + lam I)^{-1} w_ols, so the query's
    # gap is at most lam |w_ols| |x_q| / sigma_min(X)^2
    X = rng.normal(size=(8, 5))
    y = X @ w + 0.1 * rng.normal(size=8)
    xq, lam = rng.normal(size=5), 1e-6
    w_ols = np.linalg.lstsq(X, y, rcond=None)[0]
    bound = lam * np.linalg.norm(w_ols) * np.linalg.norm(xq) / np.linalg.svd(X, compute_uv=False)[-1] ** 2
    gap = abs(reference.ridge(X, y, xq, lam)[-1] - reference.ols(X, y, xq)[-1])
    assert 0 < gap <= bound


@pytest.mark.parametrize("call, message", [
    (lambda: reference.ridge(np.ones((2, 2)), np.ones(2), np.ones(2), 0.0), "lam"),
    (lambda: reference.ols(np.ones((2, 2)), np.ones(3), np.ones(2)), "y"),
    (lambda: reference.ols(np.ones((2, 2)), np.ones(2), np.ones(3)), "x_query"),
    (lambda: reference.ols(np.ones(2), np.ones(2), np.ones(2)), "X"),
    (lambda: reference.ols(np.full((2, 2), np.nan), np.ones(2), np.ones(2)), "X"),
    (lambda: reference.sgd_one_step(np.ones((2, 2)), np.ones(2), np.ones(2), 0.1, 0.1), "n = 1"),
    (lambda: reference.sgd_one_pass(np.ones((2, 2)), np.ones(2), np.ones(2), 0.1, 0.1, np.ones(3)), "w0"),
])
def test_reference_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
