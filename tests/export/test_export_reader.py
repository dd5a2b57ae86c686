"""A reader of both export forms written from docs/EXPORT.md alone, held to the library's answers and refusals.

The reader (the first part of this module, down to "the library's side")
uses numpy, ``json``, ``zipfile``, ``hashlib``, ``io``, ``math``, scipy's
``erf`` and safetensors, and nothing of ``construct``: it opens the files
as sections 2-4 and 12 say, checks every hash, builds the prompt as section 5
says, runs section 6's forward pass (section 12's for GPT-2 blocks), in
float32 as section 7 says, and applies section 8's domain check. On a
fused, an unfused, a float32 and a custom file, and two Hugging Face
directories, it must give the library's predictions and refuse exactly the
tasks the library refuses, for the same reason.
"""

import ast
import hashlib
import inspect
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

import construct  # the library writes the files and answers; the reader below uses none of it
from construct import programs
from construct.raw.prompt import input_registers

# -- the reader (docs/EXPORT.md) ---------------------------------------------------------------------------------


class Refused(Exception):
    """A task outside the file's domain; ``check`` is which check of section 8 refused it."""

    def __init__(self, check: str):
        super().__init__(check)
        self.check = check


def read_npz(path):
    """Section 2: the archive's members; section 3: the arrays, each hashed as section 4 says."""
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json").decode("utf-8"))
        assert sorted(z.namelist()) == sorted(["manifest.json"] + [f"{name}.npy" for name in manifest["arrays"]])
        arrays = {}
        for name, entry in manifest["arrays"].items():
            raw = io.BytesIO(z.read(f"{name}.npy"))
            major, _ = np.lib.format.read_magic(raw)
            header = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}[major]
            shape, fortran, dtype = header(raw)
            data = raw.read()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
            want = "<i8" if name == "order" else {"float64": "<f8", "float32": "<f4"}[manifest["dtype"]]
            assert not fortran and dtype == np.dtype(want) and list(shape) == entry["shape"], name
            arrays[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
    if "order" not in arrays:  # version 1: every depth stored
        arrays["order"] = np.arange(arrays["Wq"].shape[0])
    return arrays, manifest


def read_hf(directory):
    """Section 12's four files."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    manifest = json.loads((directory / "icl_construct.json").read_text(encoding="utf-8"))
    tensors = {**load_file(directory / "model.safetensors"), **load_file(directory / "read_in_out.safetensors")}
    return tensors, config, manifest


def prompt(X, y, x_query):
    """Section 5: T = 2k + 1 rows, x~ = [0, x], y~ = [y, 0, ..., 0], in the order x~_1, y~_1, ..., x~_q."""
    k, d = X.shape
    tokens = np.zeros((2 * k + 1, d + 1))
    for j in range(k):
        tokens[2 * j, 1:] = X[j]
        tokens[2 * j + 1, 0] = y[j]
    tokens[2 * k, 1:] = x_query
    return tokens


def causal_softmax(S):
    T = S.shape[0]
    out = np.zeros_like(S)
    for i in range(T):
        row = np.exp(S[i, : i + 1] - S[i, : i + 1].max())
        out[i, : i + 1] = row / row.sum()
    return out


def layer_norm(v, gain, bias, eps):
    """Per token (row), over its D entries, biased variance; the gain multiplies before the division."""
    mean = v.mean(axis=1, keepdims=True)
    centred = v - mean
    var = (centred * centred).mean(axis=1, keepdims=True)
    return gain * centred / np.sqrt(var + eps) + bias


def gelu(u):
    """Section 7: the argument in the dtype, erf in float64 on it, rounded once to the dtype."""
    f = u.dtype.type
    return u * (1 + erf((u / f(math.sqrt(2))).astype(np.float64)).astype(u.dtype)) / 2


def run_npz(W, manifest, tokens):
    """Section 6: the states H_0..H_L and the outputs, in the file's dtype."""
    f = np.dtype(manifest["dtype"]).type
    H = tokens.astype(f) @ W["embed"] + W["positions"][: len(tokens)]
    states = [H]
    for s in W["order"]:
        blocks = [causal_softmax((H @ W["Wq"][s, j]) @ (H @ W["Wk"][s, j]).T) @ (H @ W["Wv"][s, j])
                  for j in range(W["Wq"].shape[1])]
        X = H + np.concatenate(blocks, axis=1) @ W["Wo"][s] + W["bo"][s]
        normed = layer_norm(X, W["ln_gain"][s], W["ln_bias"][s], f(manifest["ln_eps"]))
        H = X + gelu(normed @ W["W1"][s] + W["b1"][s]) @ W["W2"][s] + W["b2"][s]
        states.append(H)
    return np.stack(states), H @ W["readout"]


def run_hf(W, config, tokens):
    """Section 12: GPT-2 blocks (Conv1D weights input by output, Linear ones output by input)."""
    f = np.dtype(config["dtype"]).type
    D, m, eps = config["n_embd"], config["n_head"], f(config["layer_norm_epsilon"])
    dh = D // m
    H = tokens.astype(f) @ W["read_in.weight"].T + W["read_in.bias"] + W["wpe.weight"][: len(tokens)]
    states = [H]
    for l in range(config["n_layer"]):
        p = f"h.{l}."
        Z = layer_norm(H, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        qkv = Z @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        Q, K, V = qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:]
        heads = [causal_softmax(Q[:, j * dh:(j + 1) * dh] @ K[:, j * dh:(j + 1) * dh].T / np.sqrt(f(dh)))
                 @ V[:, j * dh:(j + 1) * dh] for j in range(m)]
        X = H + np.concatenate(heads, axis=1) @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        inner = layer_norm(X, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps) @ W[p + "mlp.c_fc.weight"] + \
            W[p + "mlp.c_fc.bias"]
        H = X + gelu(inner) @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
        states.append(H)
    out = layer_norm(H, W["ln_f.weight"], W["ln_f.bias"], eps) @ W["read_out.weight"].T + W["read_out.bias"]
    return np.stack(states), out[:, 0]


def check_inputs(bounds, X, y, x_query):
    """Section 8, checks 1 and 2, on the task's float64 numbers."""
    xs = np.vstack([X, x_query[None, :]])
    if np.any(np.abs(xs) > bounds["values"]["x_in"]) or np.any(np.abs(y) > bounds["values"]["y_in"]):
        raise Refused("input")
    if "x_norm" in bounds and np.any(np.linalg.norm(xs, axis=1) > bounds["x_norm"] * (1 + 2**-40)):
        raise Refused("norm")


def check_states(states, manifest):
    """Section 8, checks 3-5: finite states, every program register within its bound in every state, every
    divisor at or above its floor in the state after the layer that divides by it."""
    bounds, program = manifest["bounds"], manifest["program"]
    if not np.all(np.isfinite(states)):
        raise Refused("non-finite")
    rows = {r["name"]: (r["start"], r["start"] + math.prod(r["shape"])) for r in program["layout"]}
    for name, (start, stop) in rows.items():
        if np.abs(states[:, :, start:stop]).max() > states.dtype.type(bounds["values"][name] * (1 + 1e-6)):
            raise Refused("register")
    for layer in manifest["layers"]:
        for k in layer["instructions"][0] + layer["instructions"][1]:
            instruction = program["instructions"][k]
            if instruction["kind"] == "div":
                den = instruction["den"]
                if np.abs(states[layer["index"], :, rows[den][0]]).min() < bounds["floors"][den] * (1 - 1e-6):
                    raise Refused("floor")


def reader_predict(form, files, X, y, x_query):
    """The predictions at columns 0, 2, ..., 2k (section 5), or ``Refused``."""
    run = {"npz": run_npz, "hf": run_hf}[form]
    weights, about, manifest = files
    check_inputs(manifest["bounds"], X, y, x_query)
    with np.errstate(over="ignore", invalid="ignore"):
        states, out = run(weights, about, prompt(X, y, x_query))
    check_states(states, manifest)
    return out[manifest["readout"]["columns"][: len(X) + 1]]


READER = (Refused, read_npz, read_hf, prompt, causal_softmax, layer_norm, gelu, run_npz, run_hf, check_inputs,
          check_states, reader_predict)


# -- the library's side ---------------------------------------------------------------------------------------------


def refusal(err: Exception) -> str:
    """Which of section 8's checks a library refusal is, from its message."""
    text = str(err)
    for check, phrase in (("norm", "declared input bound |x| <="), ("input", "outside the declared input bound"),
                          ("non-finite", "produced NaN or inf"), ("register", "beyond its declared bound"),
                          ("floor", "below its declared floor")):
        if phrase in text:
            return check
    raise AssertionError(f"a refusal of no known check: {text}")


def custom_divider(d: int = 1, n: int = 3) -> construct.Program:
    """``den = x + 3`` and ``big = 2 x`` in attention, ``pred = x / |den|`` in the MLP of the same (fused)
    layer; x near -3 takes the divisor towards 0."""
    layout = construct.Layout(input_registers(d) + [construct.Register(name, (1,)) for name in ("den", "big", "pred")])
    return construct.Program("divider", d, n, layout, (
        construct.Aff("den", (("x_in", 1.0),), bias=3.0), construct.Aff("big", (("x_in", 2.0),)),
        construct.Div("x_in", "den", "pred")))


def divider_bounds(program) -> construct.Bounds:
    """|x| <= 4, |y| <= 1.5; |big| <= 5 refuses 2.5 < |x| <= 4, the floor 1.5 of den refuses -2.5 <= x < -1.5."""
    return construct.Bounds({"y_in": 1.5, "x_in": 4.0, "pos": 2.0 * program.n, "den": 7.0, "big": 5.0,
                             "pred": 10.0}, {"den": 1.5})


def tasks(d, n, count, scale, seed, y_scale=1.0, prefixes=True):
    """Random tasks, x ~ N(0, scale^2) and y = 2 y_scale w^T x, w ~ N(0, I): of every length k = 1..n, or all of
    length n."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(count):
        k = n - t % n if prefixes else n
        X, w = rng.normal(size=(k, d)) * scale, rng.normal(size=d)
        out.append((X, 2 * y_scale * (X @ w), rng.normal(size=d) * scale))
    return out


def fused_ridge(architecture="paper"):
    """Entries up to 1.5, norms up to 1.6 (of the 2.1 the entries allow)."""
    program = programs.ridge(2, 3, 0.5)
    return construct.compile(program, construct.Bounds.for_inputs(program, x_max=1.5, y_max=8.0, x_norm=1.6),
                             architecture=architecture)


def unfused_sgd():
    """Bounds calibrated with margin 1 (and wide input bounds): larger tasks overflow registers inside the box."""
    program = programs.sgd(3, 4, 0.05, 0.1)
    calibration = tasks(3, 4, 64, 1.0, seed=2, prefixes=False)
    return construct.compile(program, construct.Bounds.calibrate(program, calibration, margin=1.0, x_max=4.0,
                                                                 y_max=40.0), fuse=False)


def divider(architecture="paper"):
    return construct.compile(custom_divider(), divider_bounds(custom_divider()), architecture=architecture)


CASES = {  # name: (form, the network, its tasks, the checks that must refuse some task, tolerance; None: the bound)
    "fused ridge, npz": ("npz", fused_ridge, lambda: tasks(2, 3, 24, 0.9, seed=1), {"input", "norm"}, 1e-10),
    "unfused sgd, npz": ("npz", unfused_sgd, lambda: tasks(3, 4, 24, 1.6, seed=3), {"input", "register"}, 1e-10),
    "fused sgd, npz": ("npz", lambda: construct.compile(programs.sgd(3, 4, 0.05, 0.1, w0=[0.5, -1.0, 0.25]),
                                                        x_max=1.0, y_max=4.0),
                       lambda: tasks(3, 4, 16, 0.5, seed=9), {"input"}, 1e-10),
    "query-only chain, npz": ("npz", lambda: construct.compile(programs.sherman_morrison_step(2, 0.5), x_max=1.0,
                                                               y_max=3.0),
                              lambda: tasks(2, 1, 16, 0.6, seed=10, prefixes=False), {"input"}, 1e-10),
    "float32 ridge, npz": ("npz", lambda: construct.compile(programs.ridge(2, 2, 1.0), x_max=1.0, y_max=3.0,
                                                            dtype=np.float32),
                           lambda: tasks(2, 2, 16, 0.6, seed=4), {"input"}, None),
    "custom divider, npz": ("npz", divider, lambda: tasks(1, 3, 40, 1.5, seed=5, y_scale=0.25),
                            {"input", "register", "floor"}, 1e-10),
    "fused ridge, hf": ("hf", lambda: fused_ridge("gpt2"), lambda: tasks(2, 3, 16, 0.9, seed=6), {"input", "norm"},
                        1e-10),
    "custom divider, hf": ("hf", lambda: divider("gpt2"), lambda: tasks(1, 3, 32, 1.5, seed=7, y_scale=0.25),
                           {"input", "register", "floor"}, 1e-10),
}


def written(form, net, directory: Path):
    """The file the library writes, read back by the reader."""
    if form == "npz":
        arrays, manifest = read_npz(construct.save(net, directory / "net.npz"))
        return arrays, manifest, manifest
    hf = pytest.importorskip("construct.hf")
    return read_hf(hf.save_pretrained(net, directory / "net"))


@pytest.mark.parametrize("name", list(CASES))
def test_a_reader_written_from_the_specification_answers_and_refuses_as_the_library(name, tmp_path):
    form, build, make_tasks, must_refuse, tolerance = CASES[name]
    net = build()
    files = written(form, net, tmp_path)
    manifest = files[2]
    if name.startswith("fused"):
        assert manifest["compiler"]["fused"]
    if name.startswith("unfused"):  # fuse=False: a layer per instruction, and still tied
        assert not manifest["compiler"]["fused"] and net.weights.stored < net.weights.depth == net.program.depth
    seen, worst = set(), 0.0
    for X, y, x_query in make_tasks():
        try:
            theirs, bounds = net.predict(X, y, x_query, tolerance=None, return_bound=True)
            theirs_check = "accepted"
        except construct.DomainError as err:
            theirs_check = refusal(err)
        try:
            ours = reader_predict(form, files, X, y, x_query)
            ours_check = "accepted"
        except Refused as err:
            ours_check = err.check
        assert ours_check == theirs_check, (name, len(X))
        seen.add(theirs_check)
        if theirs_check != "accepted":
            continue
        if net.program.query_only:
            ours, theirs, bounds = ours[-1:], theirs[-1:], bounds[-1:]
        assert ours.dtype == np.dtype(manifest["dtype"])
        if tolerance is None:  # float32: the two passes round differently, by less than the certified bound
            assert np.all(np.isfinite(bounds)) and np.all(np.abs(ours - theirs) <= bounds)
        else:
            assert np.max(np.abs(ours - theirs) / (1 + np.abs(theirs))) <= tolerance
        worst = max(worst, float(np.max(np.abs(ours - theirs) / (1 + np.abs(theirs)))))
    assert "accepted" in seen and must_refuse <= seen, f"{name}: the tasks exercised only {sorted(seen)}"
    print(f"{name}: {sorted(seen)}, largest relative difference {worst:.1e}")


def test_the_reader_uses_nothing_of_the_library():
    """The reader's code names nothing of construct, and this module imports neither the export code nor the
    compiler: the reader is the specification's, the library only writes the files and answers."""
    for part in READER:
        source = inspect.getsource(part)
        assert "construct" not in source.replace("icl_construct", ""), part.__name__
    tree = ast.parse(Path(__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | \
        {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not [name for name in imported if name.startswith(("construct.export", "construct.compiler"))]


def test_prefixes_of_a_prompt_give_the_same_outputs(tmp_path):
    """Section 5: the outputs at columns 0..2j of a prompt are those of any longer prompt starting with it, up to
    the rounding of matrix products whose summation order BLAS may choose by size."""
    program = programs.ridge(2, 4, 0.5)
    W, manifest = read_npz(construct.save(construct.compile(program, x_max=1.0, y_max=3.0), tmp_path / "net.npz"))
    X, y, x_query = tasks(2, 4, 1, 0.5, seed=8)[0]
    tokens = prompt(X, y, x_query)
    full = run_npz(W, manifest, tokens)[1]
    for T in (1, 3, 5, 7):
        assert np.allclose(run_npz(W, manifest, tokens[:T])[1], full[:T], rtol=0, atol=1e-10)
