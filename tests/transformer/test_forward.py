"""The two forward passes: the same transformer, generic, float64 without global flags."""

import ast
from dataclasses import fields, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from construct.transformer import forward, forward_exact, forward_jax

from support import ROOT, random_weights, sparse_weights

PACKAGE = ROOT / "construct"


@settings(max_examples=15)
@given(seed=st.integers(0, 10**6), L=st.integers(1, 4), m=st.integers(1, 3), D=st.integers(2, 16),
       dh=st.integers(1, 6), U=st.integers(1, 20), T=st.integers(1, 12))
def test_numpy_and_jax_agree(seed, L, m, D, dh, U, T):
    w = random_weights(seed, L, m, D, dh, U, T=T)
    toks = np.random.default_rng(seed + 1).normal(size=(T, 4))
    a, b = forward.hidden_states(w, toks), forward_jax.hidden_states(w, toks)
    assert a.dtype == b.dtype == np.float64 and a.shape == (L + 1, T, D)
    assert np.max(np.abs(a - b) / (1 + np.abs(a))) <= 1e-12
    out, peak, low, last = forward_jax.forward_monitored(w, toks)
    assert np.max(np.abs(out - forward.forward(w, toks))) <= 1e-12 * (1 + np.abs(out).max())
    assert np.allclose(peak, np.abs(a).max(axis=1), rtol=1e-12) and np.allclose(low, np.abs(a).min(axis=1), rtol=1e-12)
    assert np.max(np.abs(last - a[-1]) / (1 + np.abs(a[-1]))) <= 1e-12


def test_batches_match_single_prompts():
    w = random_weights(0)
    toks = np.random.default_rng(1).normal(size=(2, 3, 9, 4))
    batch = forward_jax.forward(w, toks)
    assert batch.shape == (2, 3, 9)
    for i in range(2):
        for j in range(3):
            assert np.allclose(batch[i, j], forward.forward(w, toks[i, j]), rtol=1e-12, atol=1e-12)


def test_layer_parts_project_each_layer_with_its_own_weights():
    """The queries, keys and values ``layer_parts`` keeps are each stored layer's own products, bit for bit, whatever
    layer ran before (its side-by-side projections are kept per weights and layer)."""
    w = random_weights(5, L=3)
    H = np.random.default_rng(6).normal(size=(9, w.width))
    dh = w.head_size
    for l in (0, 1, 0, 2, 1):
        parts = forward.layer_parts(w, l, H)
        Q, K, V = (H @ np.concatenate(list(W[l]), axis=1) for W in (w.Wq, w.Wk, w.Wv))  # (T, m*dh): heads side by side
        head = [slice(h * dh, (h + 1) * dh) for h in range(w.heads)]
        assert np.array_equal(parts.V, np.stack([V[:, s] for s in head]))
        assert np.array_equal(parts.A, forward.causal_softmax(np.stack([Q[:, s] @ K[:, s].T for s in head])))


@pytest.mark.parametrize("seed", range(4))
def test_live_parts_are_the_dense_parts_without_their_zero_terms(seed):
    """``live_parts`` against ``layer_parts`` on weights with a compiled network's zeros (``sparse_weights``): the
    entries no nonzero term reaches are exactly 0 in both (a head's values and outputs without value weights, a
    value column without weights, units without input weights, rows the MLP does not write), the others the same
    sums in another order; a head without value weights has no softmax weights (0)."""
    w = sparse_weights(seed)
    H = np.random.default_rng(seed).normal(size=(9, w.width))
    live, dense = forward.live_parts(w, 0, H), forward.layer_parts(w, 0, H)
    zeros = {"V": np.s_[0], "B": np.s_[0], "pre": np.s_[:, :2], "hidden": np.s_[:, :2], "mlp": np.s_[:, 5:7]}
    for name, where in zeros.items():
        assert np.all(getattr(live, name)[where] == 0) and np.all(getattr(dense, name)[where] == 0), name
    assert np.all(live.V[1][:, 0] == 0) and np.all(dense.V[1][:, 0] == 0)
    assert np.all(live.A[0] == 0) and np.all(dense.A[0][np.tril_indices(9)] > 0)
    for field in fields(live):
        a, b = getattr(live, field.name), getattr(dense, field.name)
        if field.name == "A":
            a, b = a[1:], b[1:]
        assert np.array_equal(a == 0, b == 0), field.name
        assert np.all(np.abs(a - b) <= 1e-13 * (1 + np.abs(b).max())), field.name


@pytest.mark.parametrize("scale, where", [(1.0, (2, 3)), (1e200, None)])
def test_live_parts_of_a_state_not_finite_are_the_dense_parts(scale, where):
    """A NaN in the state, or an overflow in the layer: the dense pass's parts, bit for bit (its zero terms spread
    the NaN or inf as the certificate expects)."""
    w = sparse_weights(1)
    H = np.random.default_rng(2).normal(size=(9, w.width)) * scale
    if where is not None:
        H[where] = np.nan
    with np.errstate(over="ignore", invalid="ignore"):
        live, dense = forward.live_parts(w, 0, H), forward.layer_parts(w, 0, H)
    assert not np.all(np.isfinite(dense.out))
    for field in fields(live):
        assert np.array_equal(getattr(live, field.name), getattr(dense, field.name), equal_nan=True), field.name


def test_causal():
    """Changing a later token never changes an earlier output."""
    w = random_weights(3)
    toks = np.random.default_rng(4).normal(size=(9, 4))
    changed = toks.copy()
    changed[6] += 1.0
    a, b = forward.forward(w, toks), forward.forward(w, changed)
    assert np.array_equal(a[:6], b[:6]) and not np.allclose(a[6:], b[6:])


def test_float64_without_touching_the_global_flag():
    before = jax.config.jax_enable_x64
    out = forward_jax.forward(random_weights(5), np.ones((4, 4)))
    assert out.dtype == np.float64
    assert jax.config.jax_enable_x64 == before and jnp.zeros(1).dtype == (np.float64 if before else np.float32)
    out32 = forward_jax.forward(random_weights(5, dtype=np.float32), np.ones((4, 4)))
    assert out32.dtype == np.float32
    assert np.allclose(out32, forward.forward(random_weights(5, dtype=np.float32), np.ones((4, 4))), rtol=1e-4, atol=1e-4)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("module", sorted(p.name for p in (PACKAGE / "transformer").glob("*.py")))
def test_forward_pass_knows_nothing_of_programs(module):
    allowed = {"__future__", "dataclasses", "functools", "weakref", "numpy", "scipy.special", "jax", "jax.numpy",
               "mpmath", ".weights", ".forward", ".rounding"}
    assert imported_modules(PACKAGE / "transformer" / module) <= allowed


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_pass_is_the_float_pass_without_its_rounding(seed):
    """Random weights with repeated layers: the float64 pass is within a few hundred units of roundoff of the 50-digit
    pass at every state, and the 50-digit pass reads the weights exactly (a weight's last bit moves its output)."""
    w = replace(random_weights(seed, L=2, T=5), order=np.array([0, 1, 1, 0]))
    tokens = np.random.default_rng(seed).normal(size=(5, 4))
    exact = forward_exact.hidden_states(w, tokens)
    floats = forward.hidden_states(w, tokens)
    assert len(exact) == len(floats) == 5
    for e, f in zip(exact, floats):
        e = forward_exact.to_float(e)
        assert np.abs(e - f).max() <= 1e-13 * (1 + np.abs(e).max())
    nudged = replace(w, b2=np.nextafter(w.b2, np.inf))
    moved = forward_exact.hidden_states(nudged, tokens)[-1][0, 0] - exact[-1][0, 0]
    assert 0 < abs(moved) < 1e-13


@pytest.mark.parametrize("field, value, message", [
    ("Wq", np.zeros((3, 2, 10, 5)), r"Wk has shape .* expected \(3, 2, 10, 5\)"),
    ("W1", np.zeros((3, 9, 12)), r"W1 has shape \(3, 9, 12\), expected \(3, 10, 12\)"),
    ("readout", np.zeros(11), r"readout has shape"),
    ("bo", np.full((3, 10), np.nan), r"bo has non-finite entries"),
    ("b2", np.zeros((3, 10), dtype=np.float32), r"b2 has dtype float32"),
    ("embed", np.zeros((4, 10), dtype=np.int64), r"dtype int64"),
    ("ln_eps", 0.0, r"ln_eps must be a positive number"),
    ("W2", [[0.0]], r"W2 must be a numpy array"),
    # order indexes the 3 stored layers: numpy would read -1 as the last layer, and fail on 3 only mid-pass
    ("order", np.array([0, -1, 2]), r"order must be a non-empty 1-d array of stored layer indices 0\.\.2, got "
                                    r"array\(\[ 0, -1,  2\]\)"),
    ("order", np.array([0, 1, 3]), r"order must be .* indices 0\.\.2, got array\(\[0, 1, 3\]\)"),
    ("order", np.array([], dtype=np.int64), r"order must be a non-empty"),
    ("order", np.array([[0, 1]]), r"order must be a non-empty 1-d array"),
    ("order", np.array([0.0, 1.0]), r"order must be .* got array\(\[0\., 1\.\]\)"),
])
def test_malformed_weights_are_refused(field, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        replace(random_weights(0), **{field: value})


def test_bad_tokens():
    w = random_weights(0)
    with pytest.raises(ValueError, match="tokens must have shape"):
        forward.forward(w, np.ones((5, 3)))
    with pytest.raises(ValueError, match="position table holds 9"):
        forward.forward(w, np.ones((10, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        forward_jax.forward(w, np.full((5, 4), np.inf))


def test_weights_are_read_only():
    w = random_weights(0)
    with pytest.raises(ValueError):
        w.W1[0, 0, 0] = 1.0
