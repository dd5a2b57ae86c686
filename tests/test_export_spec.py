"""The README's export-format section is enough to run a weights file: a reader written from it alone.

Nothing here imports the project's forward passes, layouts or loader: the
file is opened with ``zipfile`` and ``numpy.lib.format``, the prompt is
built as the section's "Tokens" paragraph says, and the forward pass is
the section's equations line by line. It must give the library's
predictions (to the last digits the two orders of floating-point
operations share) and hold the section's claim about prefixes.
"""

import json
import zipfile

import numpy as np
import pytest
from scipy.special import erf

import construct
from construct import programs
from construct.tasks import gaussian_tasks


def read(path):
    """Arrays and manifest, by the section's description of the archive."""
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json").decode("utf-8"))
        arrays = {name[: -len(".npy")]: np.lib.format.read_array(z.open(name))
                  for name in z.namelist() if name.endswith(".npy")}
    return arrays, manifest


def prompt(X, y, x_query, dtype):
    """x~ = [0, x_k], y~ = [y_k, 0, ..., 0], in the order x~_1, y~_1, ..., x~_n, y~_n, x~_q."""
    n, d = X.shape
    tokens = np.zeros((2 * n + 1, d + 1), dtype=dtype)
    for k in range(n):
        tokens[2 * k, 1:] = X[k]
        tokens[2 * k + 1, 0] = y[k]
    tokens[2 * n, 1:] = x_query
    return tokens


def forward(W, tokens, ln_eps):
    """The section's equations, in the arrays' own dtype throughout."""
    f = W["embed"].dtype.type
    T = tokens.shape[0]
    H = tokens @ W["embed"] + W["positions"][:T]
    m = W["Wq"].shape[1]
    for s in W["order"]:
        blocks = []
        for j in range(m):
            S = (H @ W["Wq"][s, j]) @ (H @ W["Wk"][s, j]).T
            A = np.zeros_like(S)
            for i in range(T):
                row = np.exp(S[i, : i + 1] - S[i, : i + 1].max())
                A[i, : i + 1] = row / row.sum()
            blocks.append(A @ (H @ W["Wv"][s, j]))
        X = H + np.concatenate(blocks, axis=1) @ W["Wo"][s] + W["bo"][s]
        mean = X.mean(axis=1, keepdims=True)
        var = ((X - mean) ** 2).mean(axis=1, keepdims=True)
        normed = W["ln_gain"][s] * (X - mean) / np.sqrt(var + f(ln_eps)) + W["ln_bias"][s]
        u = normed @ W["W1"][s] + W["b1"][s]
        H = X + (u * (1 + erf(u / np.sqrt(f(2)))) / 2) @ W["W2"][s] + W["b2"][s]
    return H @ W["readout"]


NETWORKS = {
    "sgd": (programs.sgd(3, 4, 0.05, 0.1), np.float64, 1e-10),
    "ridge": (programs.ridge(2, 3, 0.5), np.float64, 1e-10),
    "sherman_morrison_step": (programs.sherman_morrison_step(2, 0.5), np.float64, 1e-10),
    "ridge float32": (programs.ridge(2, 2, 1.0), np.float32, 1e-3),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_reader_written_from_the_readme_matches_the_library(name, tmp_path):
    program, dtype, tolerance = NETWORKS[name]
    bounds = construct.Bounds.calibrate(program, gaussian_tasks(program.d, program.n, 32, seed=1))
    net = construct.compile(program, bounds, dtype=dtype)
    W, manifest = read(construct.save(net, tmp_path / "net.npz"))
    assert W["order"].dtype == np.int64 and W["order"].shape == (net.weights.depth,)
    assert all(a.dtype == dtype and a.flags.c_contiguous for name, a in W.items() if name != "order")
    columns = manifest["readout"]["columns"]
    for X, y, x_query in gaussian_tasks(program.d, program.n, 3, seed=5):
        ours = forward(W, prompt(X, y, x_query, dtype), manifest["ln_eps"])[columns]
        theirs = net.predict(X, y, x_query, tolerance=None)
        if program.query_only:
            ours, theirs = ours[-1:], theirs[-1:]
        assert ours.dtype == dtype
        assert np.max(np.abs(ours - theirs) / (1 + np.abs(theirs))) <= tolerance


def test_prefixes_of_a_prompt_give_the_same_outputs(tmp_path):
    """"by causality the outputs at columns 0..2k of any prefix of it are the same computation": equal up to
    the rounding of matrix products whose summation order BLAS may choose by size."""
    program = programs.ridge(2, 4, 0.5)
    net = construct.compile(program, construct.Bounds.calibrate(program, gaussian_tasks(2, 4, 32, seed=1)))
    W, manifest = read(construct.save(net, tmp_path / "net.npz"))
    X, y, x_query = gaussian_tasks(2, 4, 1, seed=2)[0]
    tokens = prompt(X, y, x_query, np.float64)
    full = forward(W, tokens, manifest["ln_eps"])
    for T in (1, 3, 5, 7):
        assert np.allclose(forward(W, tokens[:T], manifest["ln_eps"]), full[:T], rtol=0, atol=1e-10)
