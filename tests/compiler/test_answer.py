"""construct.predict: one prompt answered by a network compiled for its own domain, in canonical units."""

import numpy as np
import pytest

import construct
from construct import exact, programs
from construct.raw.domain import UnboundedDomain
from construct.tasks import gaussian_tasks

from support import ISSUE_CASE

SCALES = [(0, 0), (3, -2), (-4, 5), (10, 10), (-30, 7)]  # powers of two for x and y


@pytest.mark.parametrize("algo", ["ridge", "sgd"])
def test_scaling_x_and_y_by_powers_of_two_scales_answers_and_bounds_exactly(algo):
    """With the parameters in matching units (lam like x^2, alpha like x^-2), the prompt is answered by the same
    network on the same numbers: answers and bounds scale by exactly the labels' factor, so the tolerance (relative
    to the prompt's scale) accepts or refuses the same answers."""
    X, y, q = gaussian_tasks(3, 6, 1, seed=5)[0]
    seen = []
    for a, b in SCALES:
        s, t = 2.0**a, 2.0**b
        program = programs.ridge(3, 6, 0.5 * s * s) if algo == "ridge" else programs.sgd(3, 6, 0.02 / s / s,
                                                                                          0.3 * s * s)
        preds, bounds = construct.predict(program, X * s, y * t, q * s, tolerance=None, return_bound=True)
        seen.append((preds / t, bounds / t))
        tight = float(np.max(bounds / np.maximum(np.abs(preds), np.abs(y * t).max()))) * 1.5
        construct.predict(program, X * s, y * t, q * s, tolerance=tight)  # accepted at every scale alike
        with pytest.raises(construct.CertificateError):
            construct.predict(program, X * s, y * t, q * s, tolerance=tight / 3)
    for preds, bounds in seen[1:]:
        assert np.array_equal(preds, seen[0][0]) and np.array_equal(bounds, seen[0][1])


def test_ridge_is_answered_with_its_residual_certificate_on_the_datas_box():
    program = programs.ridge(8, 32, 0.1)
    X, y, q = gaussian_tasks(8, 32, 1, seed=3)[0]
    cert, net = construct.predict(program, X, y, q, return_certificate=True)
    assert net.bounds.source.startswith("theory of ridge for the box")
    errors = exact.errors(program, X, y, q, cert.predictions)
    assert np.all(errors <= cert.bounds) and cert.bounds.max() < 1e-9 and set(cert.sources) == {"residual"}


def test_sgd_whose_box_admits_an_expanding_step_is_answered_on_its_own_domain():
    """alpha = 0.05 at d = 8: the box of x ~ N(0, 4 I) admits steps that expand |w| (the theory refuses it), and
    typical prompts of that scale do expand it (by about 2.2 per example); the prompt's own run, with a margin,
    is the domain, and every answer carries its certificate."""
    program = programs.sgd(8, 32, 0.05, 0.1)
    X, y, q = (a * 2 for a in gaussian_tasks(8, 32, 1, seed=2)[0])
    with pytest.raises(UnboundedDomain, match=r"sgd\(alpha=0.05, lam=0.1\) diverges on the box"):
        construct.predict(program, X, y, q, domain="box")  # told in the prompt's units
    cert, net = construct.predict(program, X, y, q, return_certificate=True)
    assert net.bounds.source.startswith("calibration on 1 tasks")
    assert np.all(exact.errors(program, X, y, q, cert.predictions) <= cert.bounds)


def test_sgd_that_grows_beyond_what_its_domain_resolves_is_refused_naming_the_example():
    program = programs.sgd(8, 32, 0.05, 0.1)
    X, y, q = (a * 4 for a in gaussian_tasks(8, 32, 1, seed=2)[0])
    with pytest.raises(construct.DomainError, match=r"the SGD run grows from example 1 on, whose step multiplies "
                                                    r"\|w\| by up to [\d.]+ .*; alpha [\d.]+ times this one keeps"):
        construct.predict(program, X, y, q)


@pytest.mark.parametrize("kwargs, message", [
    (dict(domain="calibrated"), r"domain must be one of \('auto', 'box', 'task'\)"),
    (dict(tolerance=-1.0), r"tolerance must be a number >= 0 or None"),
])
def test_bad_arguments(kwargs, message):
    X, y, q = gaussian_tasks(2, 3, 1, seed=0)[0]
    with pytest.raises(ValueError, match=message):
        construct.predict(programs.ridge(2, 3, 0.5), X, y, q, **kwargs)


def test_a_prompt_its_own_box_is_too_wide_for_is_refused_as_the_networks_own_error():
    """tests/raw/test_domain.py's case through predict: the box in canonical units has the same R^2/lam = 4.9e10."""
    with pytest.raises(construct.DomainError, match=r"divisor 'den1' fell to .*; the task is inside the box .* the "
                                                    r"box is too wide for this network's precision \([^;]*\)$"):
        construct.predict(programs.ridge(1, 6, 1e-3), *ISSUE_CASE)
