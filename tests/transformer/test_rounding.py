"""The running error analysis of the numpy pass is sound: every bound holds against exact arithmetic.

Exact arithmetic here is Python's ``fractions`` for the linear algebra (the
floats read as the rationals they are) and mpmath at 50 digits for erf; the
softmax weights and layer norm's mean and sigma are the pass's own, as the
bounds' statement says.
"""

from dataclasses import replace
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from construct.transformer import forward, rounding
from support import random_weights, sparse_weights

mpmath.mp.dps = 50


def exact(a):
    return np.vectorize(lambda x: Fraction(float(x)), otypes=[object])(np.asarray(a))


def gelu_exact(x: Fraction) -> mpmath.mpf:
    v = mpmath.mpf(x.numerator) / x.denominator
    return v * (1 + mpmath.erf(v / mpmath.sqrt(2))) / 2


def as_fraction(v: mpmath.mpf) -> Fraction:
    return Fraction(mpmath.nstr(v, 45))


@settings(max_examples=12)
@given(seed=st.integers(0, 10**6), m=st.integers(1, 3), D=st.integers(2, 9), dh=st.integers(1, 4),
       U=st.integers(1, 8), T=st.integers(1, 6), scale=st.sampled_from([1e-3, 1.0, 30.0]),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_layer_rounding_bounds_hold_against_exact_arithmetic(seed, m, D, dh, U, T, scale, dtype):
    w = random_weights(seed, L=1, m=m, D=D, dh=dh, U=U, T=T, dtype=dtype)
    H = (np.random.default_rng(seed + 1).normal(size=(T, D)) * scale).astype(dtype)
    assert_layer_bounds_hold(w, H, forward.layer_parts(w, 0, H))


@settings(max_examples=12)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 6), scale=st.sampled_from([1e-3, 1.0, 30.0]),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_layer_rounding_bounds_hold_for_the_live_pass(seed, T, scale, dtype):
    """The same bounds on ``live_parts``' intermediates, for weights with a compiled network's zeros: its products
    add the nonzero terms in another order than the dense ones, which the bounds cover."""
    w = sparse_weights(seed, T=T, dtype=dtype)
    H = (np.random.default_rng(seed + 1).normal(size=(T, w.width)) * scale).astype(dtype)
    assert_layer_bounds_hold(w, H, forward.live_parts(w, 0, H))


def test_no_bound_reads_the_weights_of_a_head_without_values():
    """``live_parts`` leaves the softmax weights of a head without value weights at 0 (``sparse_weights``' head 0):
    the attention's rounding and the selection error are the same, bit for bit, with the weights it would have."""
    w = sparse_weights(7)
    H = np.random.default_rng(8).normal(size=(9, w.width))
    live, dense = forward.live_parts(w, 0, H), forward.layer_parts(w, 0, H)
    assert np.all(live.A[0] == 0) and np.any(dense.A[0] != 0)
    A = live.A.copy()
    A[0] = dense.A[0]
    chosen = np.random.default_rng(9).integers(0, 9, size=(w.heads, 9)) % (np.arange(9) + 1)
    bounds = []
    for parts in (live, replace(live, A=A)):
        att = rounding.attention(w, 0, H, parts)
        bounds.append([att.rounding, att.values, *(rounding.selection(w.Wo[0], parts, att.values, chosen, uniform)
                                                    for uniform in ([True, False, False], [False, False, True]))])
    assert all(np.array_equal(a, b) for a, b in zip(*bounds))


def assert_layer_bounds_hold(w, H, parts):
    """``rounding.attention`` and ``rounding.mlp`` of layer 0 on ``parts`` hold against exact arithmetic."""
    T, D = H.shape
    m = w.heads
    att = rounding.attention(w, 0, H, parts)
    # X' = H + sum_h (A_h (H Wv_h)) Wo_h + bo, exactly, with the pass's A
    Hq, Wv, Wo, A = exact(H), exact(w.Wv[0]), exact(w.Wo[0]), exact(parts.A)
    V = np.stack([Hq @ Wv[h] for h in range(m)])
    read = np.any(w.Wo[0] != 0, axis=1).reshape(m, 1, -1)  # ``values`` bounds the columns Wo reads (others add 0)
    assert np.all((np.abs(np.vectorize(float)(V)) <= att.values * (1 + 1e-12) + 1e-300) | ~read)
    B = np.stack([A[h] @ V[h] for h in range(m)])
    X_exact = Hq + B.transpose(1, 0, 2).reshape(T, -1) @ Wo + exact(w.bo[0])
    err = np.abs(np.vectorize(float)(exact(parts.X) - X_exact))
    assert np.all(err <= att.rounding), f"attention: {err.max():.3g} above its bound"
    # out' = X + gelu(p') W2 + b2, p' = (gain (X - mean) / sigma + bias) W1 + b1, exactly from the pass's X
    bound = rounding.mlp(w, 0, parts)
    X, mean, sigma = exact(parts.X), exact(parts.mean), exact(parts.sigma)
    normed = exact(w.ln_gain[0]) * (X - mean) / sigma + exact(w.ln_bias[0])
    pre = normed @ exact(w.W1[0]) + exact(w.b1[0])
    pre_err = np.abs(np.vectorize(float)(exact(parts.pre) - pre))
    assert np.all(pre_err <= bound.pre), f"pre-activation: {pre_err.max():.3g} above its bound"
    hidden = np.vectorize(lambda x: as_fraction(gelu_exact(x)), otypes=[object])(pre)
    hidden_err = np.abs(np.vectorize(float)(exact(parts.hidden) - hidden))
    assert np.all(hidden_err <= bound.hidden), f"gelu: {hidden_err.max():.3g} above its bound"
    out = X + hidden @ exact(w.W2[0]) + exact(w.b2[0])
    out_err = np.abs(np.vectorize(float)(exact(parts.out) - out))
    assert np.all(out_err <= bound.rounding), f"MLP: {out_err.max():.3g} above its bound"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_erf_is_as_accurate_as_the_model_assumes(dtype):
    """(M3): |erf computed - erf| <= ERF_ULPS u |erf| + tiny, on 12,000 points where the networks evaluate it."""
    rng = np.random.default_rng(0)
    t = np.concatenate([rng.uniform(-1e-3, 1e-3, 3000), rng.uniform(-1, 1, 3000), rng.uniform(-9, 9, 5500),
                        10.0 ** rng.uniform(-40, -3, 500)]).astype(dtype)
    got = erf(t)
    assert got.dtype == dtype
    u, tiny = rounding.unit_roundoff(dtype), float(np.finfo(dtype).tiny)
    worst = 0.0
    for x, g in zip(t, got):
        e = mpmath.erf(mpmath.mpf(float(x)))
        excess = abs(mpmath.mpf(float(g)) - e) - tiny
        worst = max(worst, float(excess / (u * abs(e))) if e else 0.0)
    assert worst <= rounding.ERF_ULPS[np.dtype(dtype)]


def test_untouched_rows_have_no_rounding():
    """A row no weight writes is copied exactly, and its bound is exactly 0."""
    w = random_weights(4, L=1, D=6, U=5, T=4)
    arrays = w.arrays()
    for name, column in (("Wo", np.s_[..., 2]), ("bo", np.s_[..., 2]), ("W2", np.s_[..., 2]), ("b2", np.s_[..., 2])):
        arrays[name] = arrays[name].copy()
        arrays[name][column] = 0.0
    from construct.transformer import Weights

    w = Weights(**arrays, ln_eps=w.ln_eps)
    H = np.random.default_rng(5).normal(size=(4, 6))
    parts = forward.layer_parts(w, 0, H)
    assert np.array_equal(parts.out[:, 2], H[:, 2])
    assert np.all(rounding.attention(w, 0, H, parts).rounding[:, 2] == 0)
    assert np.all(rounding.mlp(w, 0, parts).rounding[:, 2] == 0)


@settings(max_examples=20)
@given(seed=st.integers(0, 10**6), D=st.integers(2, 12), T=st.integers(1, 5),
       scale=st.sampled_from([1e-15, 1e-3, 1.0, 1e3, 1e15]), dtype=st.sampled_from([np.float64, np.float32]))
def test_layer_norms_signed_rounding_is_within_its_slack_of_exact_arithmetic(seed, D, T, scale, dtype):
    """``normed_error``: ``eta`` is ``normed - (X - mean) / sigma`` (the pass's mean and sigma, exactly) to within
    ``slack``, on inputs with a large common offset (much cancellation in X - mean); scales whose variance fits
    float32."""
    rng = np.random.default_rng(seed)
    X = ((rng.normal(size=(T, D)) + 50 * rng.normal()) * scale).astype(dtype)
    mean, centred, sigma, normed = forward.layer_norm(X, np.ones(D, dtype), np.zeros(D, dtype), 1e-5)
    parts = forward.LayerParts(*(None,) * 4, X, mean, centred, sigma, normed, *(None,) * 4)
    eta, slack = rounding.normed_error(parts)
    truth = exact(normed) - (exact(X) - exact(mean)) / exact(sigma)
    off = np.abs(np.vectorize(float)(truth - exact(eta)))
    assert np.all(off <= slack), f"{off.max():.3g} above its slack"


@settings(max_examples=40)
@given(seed=st.integers(0, 10**6), D=st.integers(2, 12), T=st.integers(1, 5),
       scale=st.sampled_from([1e-300, 1e-15, 1.0, 1e15, 1e150, 1e290, 1e306]),
       eps=st.sampled_from([0.0, 1e-5]), dtype=st.sampled_from([np.float64, np.float32]))
def test_layer_norms_signed_rounding_is_finite_where_its_check_says_so(seed, D, T, scale, eps, dtype):
    """``normed_error_finite`` answers True only where every entry of ``normed_error`` is finite (from its maxima,
    without computing it), and True on ordinary states; ``normed_error`` on some rows is the whole one's columns,
    bit for bit."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        X = (rng.normal(size=(T, D)) * scale).astype(dtype)
        X[:, rng.integers(D)] *= rng.choice([1.0, 0.0, 1e10])
        parts = forward.LayerParts(*(None,) * 4, X, *forward.layer_norm(X, np.ones(D, dtype), np.zeros(D, dtype), eps),
                                   *(None,) * 4)
        eta, slack = rounding.normed_error(parts)
    if rounding.normed_error_finite(parts):
        assert np.all(np.isfinite(eta)) and np.all(np.isfinite(slack))
    if dtype == np.float64 and 1e-15 <= scale <= 1e150 and eps > 0:
        assert rounding.normed_error_finite(parts)
    rows = np.sort(rng.choice(D, size=rng.integers(1, D + 1), replace=False))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        some = rounding.normed_error(parts, rows)
    assert all(np.array_equal(a, b[:, rows]) for a, b in zip(some, (eta, slack)))


def test_layer_norms_signed_rounding_check_refuses_what_could_overflow():
    """A state whose layer norm overflows in ``normed_error``'s splits, or is not finite, is not called finite."""
    for X in (np.array([[1e300, -1e300, 0.0]]), np.array([[np.inf, 0.0, 1.0]]), np.array([[np.nan, 0.0, 1.0]])):
        with np.errstate(over="ignore", invalid="ignore"):
            parts = forward.LayerParts(*(None,) * 4, X, *forward.layer_norm(X, np.ones(3), np.zeros(3), 1e-5),
                                       *(None,) * 4)
            eta, slack = rounding.normed_error(parts)
        assert not np.all(np.isfinite(slack)) and not rounding.normed_error_finite(parts)


@settings(max_examples=20)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 6), D=st.integers(1, 8), C=st.integers(1, 8),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_dot2_measures_a_products_rounding_with_shared_terms(seed, T, D, C, dtype):
    """``product_rounding`` on weights whose columns share (row, weight) terms, as a product's units do (Dot2 finds
    each distinct term's TwoProduct once): the pass's distance from the exact ``x W + b`` is within the bound, and the
    bound within ``4u`` of ``|exact|`` and ``gamma_k^2`` of that distance (Dot2's result is near exact)."""
    rng = np.random.default_rng(seed)
    choices = rng.normal(size=3) * 10.0 ** rng.integers(-3, 4, size=3)
    W = rng.choice(np.concatenate([choices, [0.0, -0.0]]), size=(D, C)).astype(dtype)
    bias = rng.choice([0.0, choices[0]], size=C).astype(dtype)
    x = (rng.normal(size=(T, D)) * 100).astype(dtype)
    computed = x @ W + bias
    bound = rounding.product_rounding(x, W, bias, computed)
    truth = exact(x) @ exact(W) + exact(bias)
    off = np.vectorize(float)(np.abs(exact(computed) - truth)).astype(np.float64)
    u = rounding.unit_roundoff(dtype)
    magnitude = np.abs(x).astype(np.float64) @ np.abs(W).astype(np.float64) + np.abs(bias)
    assert np.all(off <= bound)
    slack = 4 * u * np.abs(np.vectorize(float)(truth).astype(np.float64)) + 4 * (D + 1) ** 2 * u * u * magnitude
    assert np.all(bound <= off * (1 + 4 * u) + slack + 1e-300), "Dot2's result is not the exact sum"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dot2s_running_sums_add_left_to_right(dtype):
    """``product_rounding`` runs Dot2's cascade with ``np.add.accumulate``, which must add left to right, each
    partial sum rounded (pairwise summation would not): 1 plus terms of half an ulp each stays 1."""
    half_ulp = np.finfo(dtype).eps / 2
    terms = np.array([1.0] + [half_ulp] * 40, dtype=dtype)
    stacked = np.broadcast_to(terms[None, :, None], (3, terms.size, 5)).copy()  # (T, terms, columns), as Dot2 sums
    assert np.all(np.add.accumulate(stacked, axis=1) == 1)


def test_dot2s_cascade_is_the_same_term_by_term_and_accumulated():
    """Dot2's cascade (``_cascade``) goes term by term on large arrays and by ``np.add.accumulate`` on small ones:
    the same sums in the same order, so the same numbers bit for bit (a large array against its small slices)."""
    rng = np.random.default_rng(3)
    products = rng.normal(size=(40, 8, 300)) * 10.0 ** rng.integers(-8, 8, size=(40, 8, 1))
    errors = rng.normal(size=products.shape) * 10.0 ** rng.integers(-8, 8, size=(40, 8, 1))  # any floats: the order shows
    whole = rounding._cascade(products, errors)  # 8 x 300 entries per term: term by term
    for c in range(8):
        assert np.array_equal(whole[:, c], rounding._cascade(products[:, c:c + 1], errors[:, c:c + 1])[:, 0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gamma_of_one_count_is_gamma_of_an_array_of_counts(dtype):
    """``gamma`` takes one count without building an array: the same numbers bit for bit, the same refusal."""
    u = rounding.unit_roundoff(dtype)
    counts = [1, 2, 3, 7, 100, 4097, 10**6]
    assert [rounding.gamma(k, u) for k in counts] == list(rounding.gamma(np.array(counts), u))
    assert all(type(rounding.gamma(k, u)) is np.float64 for k in counts)
    huge = int(0.5 / u) + 1
    for k in (huge, np.array([1, huge])):
        with pytest.raises(ValueError, match="beyond the rounding model"):
            rounding.gamma(k, u)


@pytest.mark.parametrize("T", [17, 256])
def test_the_additions_rounding_on_the_written_columns_is_the_whole_ones(T):
    """``addition_rounding`` told which columns a weight writes looks at those only (for a large enough ``Y``), with
    the same bound entry for entry, and looks at every column where ``Y`` is not 0 outside them."""
    rng = np.random.default_rng(T)
    D = 271
    written = np.zeros(D, dtype=bool)
    written[rng.choice(D, 60, replace=False)] = True
    H, Y, bias = rng.normal(size=(T, D)), np.zeros((T, D)), np.zeros(D)
    Y[:, written] = rng.normal(size=(T, 60))
    Y[: T // 2, np.flatnonzero(written)[:3]] = 0.0
    bias[[5, np.flatnonzero(written)[0]]] = 1.0
    out = H + Y + bias
    np.testing.assert_array_equal(rounding.addition_rounding(H, Y, bias, out, written),
                                  rounding.addition_rounding(H, Y, bias, out))
    Y[0, np.flatnonzero(~written)[0]] = 1e-300  # a column no weight writes is not 0: every column is looked at
    np.testing.assert_array_equal(rounding.addition_rounding(H, Y, bias, out, written),
                                  rounding.addition_rounding(H, Y, bias, out))
    assert rounding.addition_rounding(H, Y, bias, out, written)[0, np.flatnonzero(~written)[0]] > 0
