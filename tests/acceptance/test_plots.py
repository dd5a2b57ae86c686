"""Pictures: each is a PNG with nothing drawn into its border (nothing clipped), and bad arguments are refused."""

import sys

import numpy as np
import pytest

import construct
from construct import plots, programs
from construct.tasks import gaussian_tasks


@pytest.fixture(scope="module")
def ridge():
    program = programs.ridge(2, 2, 0.5)
    return construct.compile(program, construct.Bounds.calibrate(program, gaussian_tasks(2, 2, 32, seed=1)),
                             fuse=False)  # layer k runs instruction k


def assert_png_with_clear_border(path, width=3):
    """Drawn content (text included) that reached the edge of the image would have been cut off there."""
    image = pytest.importorskip("matplotlib.image").imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    rgb = image[..., :3]
    border = np.concatenate([rgb[:width].reshape(-1, 3), rgb[-width:].reshape(-1, 3),
                             rgb[:, :width].reshape(-1, 3), rgb[:, -width:].reshape(-1, 3)])
    assert np.all(border > 0.99), f"{path}: something is drawn into the border (clipped?)"


def test_weights_heatmap_of_every_kind_of_layer(ridge, tmp_path):
    pytest.importorskip("matplotlib")
    kinds = {}
    for k, ins in enumerate(ridge.program.instructions, 1):
        kinds.setdefault(ins.kind, k)
    assert sorted(kinds) == ["aff", "div", "mov", "mul"]
    for kind, layer in kinds.items():
        path = plots.weights_heatmap(ridge, layer, tmp_path / f"{kind}.png")
        assert_png_with_clear_border(path)


def test_wide_networks_are_labelled_by_register(tmp_path):
    pytest.importorskip("matplotlib")
    program = programs.ridge(8, 1, 0.5)
    net = construct.compile(program, construct.Bounds.calibrate(program, gaussian_tasks(8, 1, 16, seed=1)))
    assert net.layout.width > plots.ROW_LABELS_UP_TO
    assert_png_with_clear_border(plots.weights_heatmap(net, 3, tmp_path / "wide.png"))
    assert_png_with_clear_border(plots.residual_stream(net.trace(*gaussian_tasks(8, 1, 1, 2)[0]), tmp_path / "s.png"))


def test_residual_stream(ridge, tmp_path):
    pytest.importorskip("matplotlib")
    trace = ridge.trace(*gaussian_tasks(2, 2, 1, seed=3)[0])
    assert_png_with_clear_border(plots.residual_stream(trace, tmp_path / "all.png"))
    assert_png_with_clear_border(plots.residual_stream(trace, tmp_path / "some.png", tokens=[4],
                                                       registers=["Ainv", "pred", "ln_pad_pos"]))


def test_error_vs_examples(tmp_path):
    pytest.importorskip("matplotlib")
    d, n = 2, 5
    curves = plots.error_vs_examples(tmp_path / "err.png", d=d, n=n, count=24, seed=3)
    assert_png_with_clear_border(tmp_path / "err.png")
    assert curves["k"] == list(range(n + 1)) and curves["tasks"] + curves["refused"] == 24
    mse = curves["mean_squared_error"]
    # noiseless tasks: least squares is exact once it has seen d examples
    assert max(mse["OLS closed form"][d:]) < 1e-20
    for label in ("SGD", "ridge"):
        assert max(curves["max_relative_gap"][label]) < 1e-6
        assert np.allclose(mse[f"{label} transformer"], mse[f"{label} closed form"], rtol=1e-6)
    # with no example every learner predicts 0, so the error is the mean of y_1^2
    first = {key: values[0] for key, values in mse.items()}
    assert len({value for key, value in first.items() if "closed form" in key}) == 1
    assert np.allclose(list(first.values()), first["OLS closed form"], rtol=1e-9)


def test_bad_arguments(ridge, tmp_path):
    with pytest.raises(ValueError, match=r"layer must be an integer in 1..29"):
        plots.weights_heatmap(ridge, 0, tmp_path / "x.png")
    trace = ridge.trace(*gaussian_tasks(2, 2, 1, seed=3)[0])
    with pytest.raises(ValueError, match="tokens must be column indices in 0..4"):
        plots.residual_stream(trace, tmp_path / "x.png", tokens=[5])
    with pytest.raises(ValueError, match=r"unknown: \['nope'\]"):
        plots.residual_stream(trace, tmp_path / "x.png", registers=["nope"])


def test_without_matplotlib_the_error_names_the_extra(ridge, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plots.PlotsUnavailable, match=r"pip install 'icl-construct\[plots\]'"):
        plots.weights_heatmap(ridge, 1, tmp_path / "x.png")


def test_a_head_is_drawn_written_row_by_read_row_from_the_stored_layer(tmp_path):
    """``head_map`` is ``(Wv Wo)^T`` of the stored layer a layer runs (the notebook draws the same): a mov's source
    head writes ``x`` from ``x_in``, so its entry [x, x_in] is 1 and [x_in, x] is 0; and a repeated layer of a fused
    network (stored once) is drawn from its stored weights, also past the number of stored layers."""
    net = construct.compile(programs.ridge(2, 4, 0.5), x_max=1.0, y_max=1.0)
    w = net.weights
    assert w.stored < w.depth
    for layer in range(1, w.depth + 1):
        s = int(w.order[layer - 1])
        assert np.array_equal(plots.head_map(net, layer, 1), (w.Wv[s, 1] @ w.Wo[s, w.head_size:2 * w.head_size]).T)
    first = net.layout.span("x")[0], net.layout.span("x_in")[0]
    source = plots.head_map(net, 1, 0)
    assert source[first] == 1 and source[first[::-1]] == 0
    pytest.importorskip("matplotlib")
    assert_png_with_clear_border(plots.weights_heatmap(net, w.depth, tmp_path / "last.png"))
