"""Example 6: a constructed ridge network inside TransformerLens, looked at with its own tools.

    python examples/06_transformer_lens.py [OUTPUT_DIR]

Compile ridge regression for standard GPT-2 blocks, load it into
TransformerLens (needs the extra 'runtimes': a HookedTransformer with
TransformerLens 3.x, a TransformerBridge with 4.x), run a task with
run_with_cache, certify its answers from its own last residual stream
(predict), and draw from the cache the attention pattern of a mov layer and
the register w in the residual stream after every layer, labelled by the
network's layout (PNG, into OUTPUT_DIR, default examples/output/).
"""

import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import construct  # noqa: E402
from construct import programs, reference, tl  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "output"
out.mkdir(parents=True, exist_ok=True)

d, n, lam = 2, 3, 0.5
net = construct.compile(programs.ridge(d, n, lam), x_max=1.0, y_max=2.0, architecture="gpt2")
with warnings.catch_warnings():  # TransformerLens 3 announces that 4.0 removes HookedTransformer
    warnings.simplefilter("ignore", DeprecationWarning)
    model = tl.to_transformer_lens(net)
print(f"{type(model).__name__}: {model.cfg.n_layers} blocks, d_model {model.cfg.d_model}, {model.cfg.n_heads} heads "
      f"of {model.cfg.d_head}, d_mlp {model.cfg.d_mlp}, {model.cfg.dtype}")

rng = np.random.default_rng(0)
X, y, x_query = rng.uniform(-1, 1, (n, d)), rng.uniform(-2, 2, n), rng.uniform(-1, 1, d)
predictions, cache = tl.run_with_cache(model, net, X, y, x_query)
print("|TransformerLens - closed form| =", f"{np.abs(predictions - reference.ridge(X, y, x_query, lam)).max():.1e}")
_, bounds = tl.predict(model, net, X, y, x_query, return_bound=True)  # from its own blocks.12.hook_resid_post
print("largest a-posteriori bound of TransformerLens' answers:", f"{bounds.max():.1e}")
tokens = [f"{kind}~{k}" for k in range(1, n + 1) for kind in ("x", "y")] + ["x~q"]

# A mov layer: the head reading column i - 2 carries A^-1 and w from one example's y~ token to the next.
layer = next(l for l, step in enumerate(net.steps)
             if any(isinstance(net.program.instructions[k], construct.Mov) and net.program.instructions[k].offset == 2
                    for k in step.instructions))
head = net.mechanisms[layer].offsets.index(2)
pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, head].numpy()
wanted = np.zeros_like(pattern)
wanted[np.arange(len(tokens)), np.maximum(np.arange(len(tokens)) - 2, 0)] = 1
print(f"block {layer} ({net.layers[layer].instruction[:60]}...), head {head}: "
      f"max |pattern - one-hot on column i - 2| = {np.abs(pattern - wanted).max():.1e}")

# The register w (the ridge weights) after every block, at every token, from hook_resid_post.
rows = list(range(*net.layout.span("w")))
states = np.stack([cache["blocks.0.hook_resid_pre"][0].numpy()] +
                  [cache[f"blocks.{l}.hook_resid_post"][0].numpy() for l in range(model.cfg.n_layers)])[:, :, rows]
w_ridge = np.linalg.solve(X.T @ X + lam * np.eye(d), X.T @ y)  # w lives at the y~ tokens: y~n holds all n examples
print(f"w at y~{n} after the last block:", np.round(states[-1, 2 * n - 1], 10), "closed form:", np.round(w_ridge, 10))

fig, axes = plt.subplots(1, 1 + d, figsize=(5 + 4 * d, 4.5))
axes[0].imshow(pattern, cmap="Blues", vmin=0, vmax=1)
axes[0].set_title(f"block {layer}, head {head}: attention pattern")
axes[0].set_xticks(range(len(tokens)), tokens, rotation=90)
axes[0].set_yticks(range(len(tokens)), tokens)
axes[0].set_xlabel("key (read)")
axes[0].set_ylabel("query")
for k, ax in enumerate(axes[1:]):
    image = ax.imshow(states[:, :, k], aspect="auto", cmap="RdBu", vmin=-np.abs(states).max(), vmax=np.abs(states).max())
    ax.set_title(f"{net.layout.labels[rows[k]]}, hook_resid_post")
    ax.set_xticks(range(len(tokens)), tokens, rotation=90)
    ax.set_ylabel("block (0 = embedding)")
fig.colorbar(image, ax=axes[1:])
path = out / "transformer_lens_ridge.png"
fig.savefig(path, dpi=110, bbox_inches="tight")
print("wrote", path)
