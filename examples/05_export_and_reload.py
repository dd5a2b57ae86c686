"""Example 5: export a network to one file, load it back, and run it with a forward pass of our own.

    python examples/05_export_and_reload.py [OUTPUT_DIR]

The file (OUTPUT_DIR/sgd.npz, default examples/output/) is a zip of one .npy
per weight array plus manifest.json. Reloaded with construct.load it is the
same network, bit for bit. Below, a forward pass written from the manifest's
equations alone, with nothing from construct, reproduces its predictions.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.special import erf

import construct
from construct import programs, reference
from construct.tasks import gaussian_tasks

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "output"
out.mkdir(parents=True, exist_ok=True)

program = programs.sgd(d=3, n=4, alpha=0.05, lam=0.1)
net = construct.compile(program, construct.Bounds.calibrate(program, gaussian_tasks(3, 4, 256, seed=0)))
path = construct.save(net, out / "sgd.npz")
print(f"wrote {path}: {path.stat().st_size:,} bytes for {net.size()['parameters']:,} parameters")

loaded = construct.load(path)
same = all(np.array_equal(a, loaded.weights.arrays()[name]) for name, a in net.weights.arrays().items())
print(f"every array bit-exact after the round trip: {same}")
X, y, x_query = gaussian_tasks(3, 4, 1, seed=9)[0]
print(f"identical predictions: {np.array_equal(loaded.predict(X, y, x_query), net.predict(X, y, x_query))}")

# Now forget construct: read the arrays with numpy and the manifest with json.
with np.load(path, allow_pickle=False) as archive:
    W = {name: archive[name] for name in archive.files if name != "manifest.json"}
    manifest = json.loads(archive["manifest.json"])
print("\nthe layer, as the manifest states it:")
print("\n".join("  " + line for line in manifest["equations"][:4]))


def forward(W, tokens, ln_eps):
    """The manifest's equations: causal softmax attention (unscaled), layer norm, exact-erf GeLU MLP."""
    H = tokens @ W["embed"] + W["positions"][: len(tokens)]
    causal = np.tril(np.ones((len(tokens), len(tokens)), dtype=bool))
    for l in W["order"]:  # the stored layer applied at each depth (a repeated block is stored once)
        heads = []
        for j in range(W["Wq"].shape[1]):
            scores = np.where(causal, (H @ W["Wq"][l, j]) @ (H @ W["Wk"][l, j]).T, -np.inf)
            attention = np.exp(scores - scores.max(axis=1, keepdims=True))
            heads.append(attention / attention.sum(axis=1, keepdims=True) @ (H @ W["Wv"][l, j]))
        X_ = H + np.concatenate(heads, axis=1) @ W["Wo"][l] + W["bo"][l]
        centred = X_ - X_.mean(axis=1, keepdims=True)
        normed = W["ln_gain"][l] * centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + ln_eps)
        u = (normed + W["ln_bias"][l]) @ W["W1"][l] + W["b1"][l]
        H = X_ + (u * (1 + erf(u / np.sqrt(2))) / 2) @ W["W2"][l] + W["b2"][l]
    return H @ W["readout"]


# The prompt, as the manifest's "tokens" section says: x~ = [0, x], y~ = [y, 0].
tokens = np.zeros((2 * len(X) + 1, X.shape[1] + 1))
tokens[0:-1:2, 1:], tokens[1::2, 0], tokens[-1, 1:] = X, y, x_query
ours = forward(W, tokens, manifest["ln_eps"])[manifest["readout"]["columns"]]
theirs = net.predict(X, y, x_query)
print(f"\nour forward pass:  {np.round(ours, 10)}")
print(f"construct's:       {np.round(theirs, 10)}")
print(f"largest difference: {np.abs(ours - theirs).max():.1e} (the order of floating-point operations differs)")
closed = reference.sgd_one_pass(X, y, x_query, alpha=0.05, lam=0.1)
print(f"ours against the closed form of one-pass SGD: {np.abs(ours - closed).max():.1e}")
