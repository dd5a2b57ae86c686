"""The probes: pooled over positions, one per layer and k, trained once per kind with one compiled step."""

import numpy as np
import pytest

from construct.trained import probes


def synthetic(count: int, layers: int = 2, K: int = 3, width: int = 8, d: int = 2, seed: int = 0):
    """Features whose layer 1 holds target k linearly at the y~_k position, marked there; layer 0 is noise."""
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(count, layers, 2 * K, width))
    target = rng.normal(size=(count, K, d))
    for k in range(K):
        h[:, 1, 2 * k + 1, :d] = target[:, k]
        h[:, 1, 2 * k + 1, d + k] = 4.0  # a marker of position k the pooling can find
    return h, target


def test_a_pooled_linear_probe_finds_a_linearly_encoded_target_and_not_noise():
    h, t = synthetic(600)
    th, tt = synthetic(300, seed=1)
    ratios = probes.fit_probes("linear", h, t, th, tt, steps=400, seed=0)  # (tasks, layers, K)
    assert ratios.shape == (300, 2, 3)
    by_layer = ratios.mean((0, 2))
    assert by_layer[1] < 0.1 and by_layer[0] > 0.8


def test_the_probe_step_is_compiled_once_per_kind_and_shape():
    h, t = synthetic(100)
    probes.fit_probes("MLP", h, t, h, t, steps=5, seed=0)
    compiled = probes._fit._cache_size()
    for seed in (1, 2):
        probes.fit_probes("MLP", h, t, h, t, steps=5, seed=seed)
    assert probes._fit._cache_size() == compiled


def test_probe_arguments_are_checked():
    h, t = synthetic(20)
    with pytest.raises(ValueError, match="'linear' or 'MLP'"):
        probes.fit_probes("cubic", h, t, h, t, steps=1, seed=0)
    with pytest.raises(ValueError, match="need 4"):
        probes.fit_probes("linear", h, t[:, :2], h, t[:, :2], steps=1, seed=0)
