"""The Hugging Face directory's manifest, version 3: each layer's instructions and the domain's x_norm, which a
reader of the files needs for the domain checks (docs/EXPORT.md); version-2 directories still verify."""

import json

import numpy as np
import pytest

import construct
from construct import WeightsFileError, programs

hf = pytest.importorskip("construct.hf")


@pytest.fixture(scope="module")
def net():
    return construct.compile(programs.ridge(2, 3, 0.5), x_max=1.0, y_max=2.0, x_norm=1.2, architecture="gpt2")


@pytest.fixture
def saved(net, tmp_path):
    return hf.save_pretrained(net, tmp_path / "ridge")


def edited(directory, change):
    path = directory / "icl_construct.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=1))


def test_the_manifest_states_each_layers_instructions_and_the_norm_bound(saved, net):
    manifest = json.loads((saved / "icl_construct.json").read_text())
    assert manifest["version"] == 3 and manifest["bounds"]["x_norm"] == 1.2
    assert len(manifest["layers"]) == net.gpt2.depth
    for l, layer in enumerate(manifest["layers"], 1):
        attention, mlp = layer["instructions"]
        assert layer["index"] == l
        assert [net.program.instructions[k] for k in attention + mlp] == list(net.layer_instructions(l))
    assert any(net.program.instructions[k].divisor for layer in manifest["layers"] for k in layer["instructions"][1])
    loaded = hf.load(saved)
    assert loaded.bounds == net.bounds and loaded.bounds.x_norm == 1.2
    X, y, x_query = np.full((3, 2), 0.8), np.ones(3), np.zeros(2)  # |x| = 1.13, inside; 1.27 is not
    assert np.array_equal(loaded.predict(X, y, x_query), net.predict(X, y, x_query))
    X[0] = 0.9
    with pytest.raises(construct.DomainError, match=r"\|X\[0\]\| = 1.27279 is outside the declared input bound"):
        loaded.predict(X, y, x_query)


def test_an_edited_layer_schedule_is_refused(saved):
    def swap(manifest):
        manifest["layers"][0]["instructions"][0] = manifest["layers"][0]["instructions"][0][::-1]

    edited(saved, swap)
    with pytest.raises(WeightsFileError, match=r"icl_construct\.json: the manifest's layers\[0\]\.instructions"):
        hf.load(saved)


def test_a_version_2_directory_verifies_as_version_2_wrote_it(saved, net):
    """Version 2 wrote no layers and no x_norm: such a directory is the network without the norm bound."""
    def as_version_2(manifest):
        manifest["version"] = 2
        del manifest["layers"], manifest["bounds"]["x_norm"]

    edited(saved, as_version_2)
    loaded = hf.load(saved)
    assert loaded.bounds.x_norm is None and loaded.bounds.values == net.bounds.values
    assert np.array_equal(loaded.gpt2.c_fc_weight, net.gpt2.c_fc_weight)
    edited(saved, lambda m: m.update(layers=[]))  # version 2 with a field it never had
    with pytest.raises(WeightsFileError, match=r"icl_construct\.json: the manifest's keys \['layers'\]"):
        hf.load(saved)
    edited(saved, lambda m: m.update(version=4))
    with pytest.raises(WeightsFileError, match=r"format version 4 is not 2 or 3"):
        hf.load(saved)


def test_a_directory_with_averaging_heads_is_version_3_and_answers_with_bounds(tmp_path):
    """No new version for Avg: its head is ordinary GPT-2 weights (zero query and key columns, so every score is 0
    and the causal softmax averages), and a reader's domain check acts on the instructions of kind div only
    (docs/RUNTIMES.md). So ridge_newton's directory is version 3 like ridge's, loads verified, and rebuilds the
    network it was written from, and GPT2Model's answers lie within the a-posteriori bounds they come with."""
    from construct import exact

    net = construct.compile(programs.ridge_newton(2, 4, 0.1), x_max=2.0, y_max=3.0, x_norm=2 * 2**0.5,
                            architecture="gpt2")
    saved = hf.save_pretrained(net, tmp_path / "ridge_newton")
    manifest = json.loads((saved / "icl_construct.json").read_text())
    averages = [k for layer in manifest["layers"] for k in layer["instructions"][0]
                if net.program.instructions[k].kind == "avg"]
    assert manifest["version"] == 3 and len(averages) == 3
    model = hf.from_pretrained(saved)
    X = np.array([[1.0, -0.5], [0.3, 1.2], [-1.1, 0.4], [0.2, 0.2]])
    y, x_query = np.array([1.0, -2.0, 0.5, 2.5]), np.array([0.7, -1.3])
    predictions, bounds = hf.predict(model, X, y, x_query, tolerance=None, return_bound=True)
    assert np.array_equal(model.network.predict(X, y, x_query, tolerance=None),
                          net.predict(X, y, x_query, tolerance=None))
    errors = exact.errors(net.program, X, y, x_query, predictions)
    assert np.all(np.isfinite(bounds)) and np.all(bounds >= errors) and bounds.max() < 1e-6
