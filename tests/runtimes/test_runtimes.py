"""The GPT-2 target (compile(..., architecture="gpt2")) and the two runtimes it runs in unmodified.

Expected values are the closed forms of ``construct.reference`` and this
project's own trace; the Hugging Face checkpoint is loaded in a fresh
process by transformers alone (no code of this project there).
"""

import dataclasses
import importlib.metadata
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import construct
from construct import cli, exact, programs, reference
from construct.compiler.certificate import CertificateError
from construct.raw.prompt import tokens, x_columns
from construct.tasks import gaussian_tasks

from support import ROOT

LAM, ALPHA = 0.5, 0.05
BOX = {"x_max": 1.0, "y_max": 2.0}
CASES = {  # name: (program, closed form)
    "ridge_d4_n8": (programs.ridge(4, 8, LAM), lambda t: reference.ridge(*t, lam=LAM)),
    "sgd_d2_n4": (programs.sgd(2, 4, ALPHA, LAM), lambda t: reference.sgd_one_pass(*t, ALPHA, LAM)),
    "ridge_d1_n1": (programs.ridge(1, 1, LAM), lambda t: reference.ridge(*t, lam=LAM)),
}


def box_tasks(d: int, n: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (n, d)), rng.uniform(-2, 2, n), rng.uniform(-1, 1, d)) for _ in range(count)]


@pytest.fixture(scope="module")
def nets():
    return {name: construct.compile(program, **BOX, architecture="gpt2") for name, (program, _) in CASES.items()}


def test_importing_construct_imports_no_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, construct; print(sorted({'torch', 'transformers', "
                           "'transformer_lens'} & set(sys.modules)))"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", (done.stdout, done.stderr)


def test_the_paper_architecture_stays_the_default():
    net = construct.compile(programs.ridge(2, 2, LAM), **BOX)
    assert net.architecture == "paper" and net.gpt2 is None


def test_gpt2_blocks_have_the_standard_shape(nets):
    for name, net in nets.items():
        g = net.gpt2
        assert net.architecture == "gpt2"
        assert g.n_head * g.head_size == g.width == net.layout.width  # heads split the (padded) width
        assert g.head_size >= net.weights.head_size and g.n_head == net.weights.heads
        assert g.depth == net.weights.depth and g.max_tokens == 2 * net.program.n + 1
        assert np.all(g.c_attn_bias == 0) and np.all(g.ln_1_weight == 1) and np.all(g.ln_f_weight == 1)
        # every value and query/key column sums to zero over the rows: layer norm's mean drops out
        sums = g.c_attn_weight.sum(axis=1)
        assert np.all(np.abs(sums) <= 1e-12 * np.abs(g.c_attn_weight).sum(axis=1) + 1e-300), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_gpt2_pass_matches_the_closed_form_within_its_certificate(nets, name):
    net, closed = nets[name], CASES[name][1]
    for task in box_tasks(net.program.d, net.program.n, 6, seed=3):
        got, bound = net.predict(*task, return_bound=True)
        want = closed(task)
        error = np.abs(got - want)
        assert np.all(error <= 1e-10 * (1 + np.abs(want))), (name, error.max())
        assert np.all(error <= bound + 1e-13), (name, error - bound)  # the certificate holds
        assert np.all(bound <= 1e-8 * (1 + np.abs(got)))


def test_every_gpt2_layer_is_within_its_predicted_error(nets):
    net = nets["ridge_d4_n8"]
    for task in box_tasks(4, 8, 2, seed=5):
        for check in net.check_layers(*task):
            assert check.error <= check.predicted, check


def test_the_certificate_checks_the_gpt2_weights(nets):
    net = nets["sgd_d2_n4"]
    g = net.gpt2
    c_attn = g.c_attn_weight.copy()
    c_attn[0, :, 2 * g.width:] *= 1 + 1e-9  # values off by one part in 1e9
    bad = dataclasses.replace(net, gpt2=dataclasses.replace(g, c_attn_weight=c_attn))
    with pytest.raises(ValueError, match="not the conversion"):
        bad.predict(*box_tasks(2, 4, 1, seed=0)[0])


def test_bad_input_names_the_architecture(nets, tmp_path):
    with pytest.raises(ValueError, match="architecture must be one of"):
        construct.compile(programs.ridge(1, 1, LAM), **BOX, architecture="bert")
    net = nets["sgd_d2_n4"]
    with pytest.raises(ValueError, match="runs on numpy"):
        net.predict(*box_tasks(2, 4, 1, seed=0)[0], backend="jax", tolerance=None)
    with pytest.raises(ValueError, match="save_pretrained"):
        construct.save(net, tmp_path / "net.npz")
    hf = pytest.importorskip("construct.hf")
    with pytest.raises(ValueError, match="architecture='gpt2'"):
        hf.save_pretrained(construct.compile(programs.ridge(1, 1, LAM), **BOX), tmp_path / "paper")


# -- Hugging Face ---------------------------------------------------------------------------------------

LOADER = r"""
import json, logging, sys, warnings
import safetensors.torch, torch, transformers

spec = json.load(open(sys.argv[1]))
messages = []
handler = logging.Handler()
handler.emit = lambda record: messages.append(record.getMessage())
transformers.logging.set_verbosity_warning()
transformers.logging.disable_progress_bar()
transformers.logging.add_handler(handler)
out = {}
for directory, prompts in spec.items():
    for implementation in ("eager", "sdpa"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, info = transformers.GPT2Model.from_pretrained(
                directory, dtype=torch.float64, attn_implementation=implementation, output_loading_info=True)
            io = safetensors.torch.load_file(directory + "/read_in_out.safetensors")
            with torch.no_grad():
                x = torch.tensor(prompts, dtype=torch.float64)
                hidden = model(inputs_embeds=torch.nn.functional.linear(x, io["read_in.weight"], io["read_in.bias"]))
                y = torch.nn.functional.linear(hidden.last_hidden_state, io["read_out.weight"], io["read_out.bias"])
        out[f"{directory}|{implementation}"] = {
            "predictions": y[..., 0].tolist(), "implementation": model.config._attn_implementation,
            "dtypes": sorted({str(p.dtype) for p in model.parameters()}), "training": model.training,
            "info": {k: list(v) for k, v in info.items()}, "warnings": [str(w.message) for w in caught],
            "log": list(messages)}
        messages.clear()
print(json.dumps(out))
"""


def test_hugging_face_loads_the_checkpoint_in_a_fresh_process_and_matches_the_closed_forms(nets, tmp_path):
    hf = pytest.importorskip("construct.hf")
    spec, tasks = {}, {}
    for name in ("ridge_d4_n8", "sgd_d2_n4"):
        net = nets[name]
        directory = hf.save_pretrained(net, tmp_path / name)
        tasks[str(directory)] = (name, box_tasks(net.program.d, net.program.n, 4, seed=11))
        spec[str(directory)] = [tokens(*t).tolist() for t in tasks[str(directory)][1]]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "loader.py").write_text(LOADER)
    done = subprocess.run([sys.executable, str(tmp_path / "loader.py"), str(tmp_path / "spec.json")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 4
    for key, result in results.items():
        directory, implementation = key.split("|")
        name, task_list = tasks[directory]
        assert result["implementation"] == implementation and result["dtypes"] == ["torch.float64"]
        assert not result["training"]
        assert not any(result["info"].values()), result["info"]  # no missing, unexpected or mismatched weights
        assert result["warnings"] == [] and result["log"] == [], (result["warnings"], result["log"])
        for predictions, task in zip(result["predictions"], task_list):
            got, want = np.array(predictions)[x_columns(len(task[1]))], CASES[name][1](task)
            assert np.all(np.abs(got - want) <= 1e-10), (key, np.abs(got - want).max())


def test_hf_module_and_its_manifest(nets, tmp_path):
    hf = pytest.importorskip("construct.hf")
    net = nets["sgd_d2_n4"]
    directory = hf.save_pretrained(net, tmp_path / "sgd")
    manifest = json.loads((directory / "icl_construct.json").read_text())
    assert manifest["rows"] == list(net.layout.labels)
    assert manifest["readout"]["columns"] == x_columns(net.program.n).tolist()
    model = hf.from_pretrained(directory, attn_implementation="sdpa")
    assert [type(m).__name__ for m in (model.read_in, model.backbone, model.read_out)] == \
        ["Linear", "GPT2Model", "Linear"]
    for task in box_tasks(2, 4, 3, seed=2):
        assert np.all(np.abs(hf.predict(model, *task, tolerance=None) - CASES["sgd_d2_n4"][1](task)) <= 1e-10)
    with pytest.raises(FileExistsError):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "notes.txt").write_text("mine")
        hf.save_pretrained(net, tmp_path / "other")


def test_export_command_writes_a_checkpoint(capsys, tmp_path):
    pytest.importorskip("construct.hf")
    code = cli.main(["export", "--format", "hf", "--algo", "sgd", "-d", "2", "-n", "2", "--calibrate", "16",
                     "-o", str(tmp_path / "ck"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["format"] == "hf" and out["size"]["architecture"] == "gpt2"
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == sorted(
        ["config.json", "model.safetensors", "read_in_out.safetensors", "icl_construct.json"])
    assert cli.main(["export", "--format", "hf", "--algo", "sgd", "-d", "2", "-n", "2", "-o", str(tmp_path / "ck")]) \
        == 2  # not an empty directory


# -- TransformerLens --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")  # TransformerLens 3.x
@pytest.mark.parametrize("name", ["ridge_d4_n8", "sgd_d2_n4"])
def test_transformer_lens_residual_stream_equals_the_trace(nets, name):
    tl = pytest.importorskip("construct.tl")
    torch = pytest.importorskip("torch")
    net = nets[name]
    model = tl.to_hooked_transformer(net)  # the former name of to_transformer_lens
    major = int(importlib.metadata.version("transformer_lens").split(".")[0])
    assert type(model).__name__ == ("HookedTransformer" if major < 4 else "TransformerBridge")
    assert model.cfg.dtype == torch.float64 and model.cfg.normalization_type == "LN" and model.cfg.act_fn == "gelu"
    every = np.arange(net.layout.width)
    rows = np.concatenate([every[net.layout.rows(register)] for register in net.program.layout.names])
    for task in box_tasks(net.program.d, net.program.n, 2, seed=13):
        predictions, cache = tl.run_with_cache(model, net, *task)
        trace = net.trace(*task)
        for l in range(net.gpt2.depth):
            resid = cache[f"blocks.{l}.hook_resid_post"][0].numpy().T  # (rows, tokens), as the trace
            assert np.abs(resid[rows] - trace.states[l + 1][rows]).max() <= 1e-9, (name, l)
            assert cache[f"blocks.{l}.attn.hook_pattern"].shape[1] == net.gpt2.n_head
        assert np.all(np.abs(predictions - CASES[name][1](task)) <= 1e-10)
    X, y, x_query = task  # a shorter prompt: k + 1 predictions, the full prompt's first ones
    prefix, _ = tl.run_with_cache(model, net, X[:2], y[:2], x_query)
    assert prefix.shape == (3,) and np.allclose(prefix[:2], predictions[:2], rtol=0, atol=1e-12)


def test_the_readme_table_command_on_one_task(capsys):
    accuracy = pytest.importorskip("construct.runtimes.accuracy")
    assert accuracy.main(["--tasks", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result) == sorted(accuracy.CASES)
    for name, cells in result.items():
        for dtype, rows in cells.items():
            limit = 1e-10 if dtype == "float64" else 1e-3  # float32 is measured, not held to float64's accuracy
            for row in ("numpy gpt2", "hf eager", "hf sdpa", "tl"):
                assert rows[row] <= limit, (dtype, row, rows[row])
            if dtype == "float64":
                assert rows["tl resid_post"] <= 1e-9 and rows["numpy gpt2"] <= rows["numpy gpt2 bound"]
            for row in ("hf eager", "hf sdpa", "tl"):  # the runtimes' own bounds: ridge has one, SGD none (null)
                bound = rows[f"{row} bound"]
                assert (bound is not None and rows[row] <= bound) if name.startswith("ridge") else bound is None, \
                    (name, dtype, row, bound)


# -- the runtimes' answers with their a-posteriori bounds ---------------------------------------------------

RIDGE = programs.ridge(4, 8, LAM)
GAUSSIAN = gaussian_tasks(4, 8, 6, seed=21)


@pytest.fixture(scope="module")
def gaussian_ridge():
    """Ridge d = 4, n = 8 compiled for GPT-2 on Gaussian tasks (its domain calibrated on 64 of them and the ones
    tested)."""
    tasks = gaussian_tasks(4, 8, 64, seed=0) + GAUSSIAN
    return construct.compile(RIDGE, construct.Bounds.calibrate(RIDGE, tasks), architecture="gpt2")


@pytest.fixture(scope="module")
def ridge_models(gaussian_ridge, tmp_path_factory):
    """``{attention implementation: ICLModel}`` of that network's Hugging Face directory."""
    hf = pytest.importorskip("construct.hf")
    folder = hf.save_pretrained(gaussian_ridge, tmp_path_factory.mktemp("hf") / "ridge")
    return {implementation: hf.from_pretrained(folder, attn_implementation=implementation)
            for implementation in ("eager", "sdpa")}


@pytest.fixture(scope="module")
def ridge_lens(gaussian_ridge):
    tl = pytest.importorskip("construct.tl")
    with warnings.catch_warnings():  # TransformerLens 3.x announces that 4.0 removes HookedTransformer
        warnings.simplefilter("ignore", DeprecationWarning)
        return tl.to_transformer_lens(gaussian_ridge)


def shifted(net, register: str, delta: float):
    """A hook adding ``delta`` to ``register``'s rows of the residual stream: a torch forward hook on a block (its
    output is the last argument) or a TransformerLens hook (given the tensor and ``hook``)."""
    rows = np.arange(net.layout.width)[net.layout.rows(register)]

    def shift(*args, hook=None):
        out = args[-1].clone()
        out[..., rows] += delta
        return out

    return shift


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_hugging_face_answers_carry_bounds_from_its_own_last_block(ridge_models, implementation):
    hf = pytest.importorskip("construct.hf")
    model = ridge_models[implementation]
    assert model.backbone.config._attn_implementation == implementation
    for task in GAUSSIAN:
        got, bound = hf.predict(model, *task, return_bound=True)
        errors = exact.errors(RIDGE, *task, got)
        assert np.all(errors <= bound) and bound.max() < 1e-9, (errors, bound)
        assert np.array_equal(got, hf.predict(model, *task))  # the default tolerance accepts them
    assert not model.backbone.h[-1]._forward_hooks  # the hook that read the state is gone


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")  # TransformerLens 3.x
def test_transformer_lens_answers_carry_bounds_from_its_last_resid_post(gaussian_ridge, ridge_lens):
    tl = pytest.importorskip("construct.tl")
    for task in GAUSSIAN:
        got, bound = tl.predict(ridge_lens, gaussian_ridge, *task, return_bound=True)
        errors = exact.errors(RIDGE, *task, got)
        assert np.all(errors <= bound) and bound.max() < 1e-9, (errors, bound)
        cached, _ = tl.run_with_cache(ridge_lens, gaussian_ridge, *task)
        assert np.array_equal(got, cached)


@pytest.mark.parametrize("register", ["pred", "w_pred"])
@pytest.mark.parametrize("runtime", ["hf", "tl"])
def test_the_bound_is_the_runtimes_own(gaussian_ridge, ridge_models, ridge_lens, runtime, register):
    """A runtime made to compute otherwise than the numpy pass (1e-6 added after its last block to the answer's
    row, or to the weights the certificate reads) still gets a sound bound, and the state's shift shows in it:
    the bound is computed from what the runtime returned, not from the numpy pass (whose bound is below 1e-9)."""
    task, delta = GAUSSIAN[0], 1e-6
    shift = shifted(gaussian_ridge, register, delta)
    if runtime == "hf":
        hf = pytest.importorskip("construct.hf")
        model = ridge_models["eager"]
        handle = model.backbone.h[-1].register_forward_hook(shift)
        got, bound = hf.predict(model, *task, tolerance=None, return_bound=True)
        handle.remove()
    else:
        tl = pytest.importorskip("construct.tl")
        last = f"blocks.{gaussian_ridge.gpt2.depth - 1}.hook_resid_post"
        with warnings.catch_warnings(), ridge_lens.hooks(fwd_hooks=[(last, shift)]):
            warnings.simplefilter("ignore", DeprecationWarning)
            got, bound = tl.predict(ridge_lens, gaussian_ridge, *task, tolerance=None, return_bound=True)
    errors = exact.errors(RIDGE, *task, got)
    assert np.all(errors <= bound), (errors, bound)
    if register == "pred":  # the answers moved by about delta, and their bounds with them
        assert 0.5 * delta < errors.min() and errors.max() < 2 * delta
    else:  # the answers did not move; the weights the certificate reads did, by delta
        assert errors.max() < 1e-10 and bound[1:].min() > 1e-3 * delta
    # so a tolerance that accepts the runtime's own answers refuses these
    run = (lambda: hf.predict(model, *task, tolerance=1e-8)) if runtime == "hf" else \
        (lambda: tl.predict(ridge_lens, gaussian_ridge, *task, tolerance=1e-8))
    run()
    with pytest.raises(CertificateError, match=r"a-posteriori bound .* \(residual certificate"):
        if runtime == "hf":
            handle = model.backbone.h[-1].register_forward_hook(shift)
            try:
                run()
            finally:
                handle.remove()
        else:
            with ridge_lens.hooks(fwd_hooks=[(last, shift)]):
                run()


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")
def test_the_runtimes_refuse_uncertified_answers_under_a_tolerance_and_say_why(nets, tmp_path):
    hf, tl = pytest.importorskip("construct.hf"), pytest.importorskip("construct.tl")
    net = nets["sgd_d2_n4"]
    task = box_tasks(2, 4, 1, seed=7)[0]
    model = hf.from_pretrained(hf.save_pretrained(net, tmp_path / "sgd"))
    lens = tl.to_transformer_lens(net)
    why = "sgd has no a-posteriori certificate, and the mechanism certificate covers only this library's numpy pass"
    with pytest.raises(CertificateError, match=f"the query's prediction .* from Hugging Face's GPT2Model has no "
                                               f"certified bound: {why}"):
        hf.predict(model, *task)
    with pytest.raises(CertificateError, match=f"from TransformerLens' {type(lens).__name__} has no certified bound: "
                                               f"{why}"):
        tl.predict(lens, net, *task, tolerance=1e300)
    for got, bound in (hf.predict(model, *task, tolerance=None, return_bound=True),
                       tl.predict(lens, net, *task, tolerance=None, return_bound=True)):
        assert np.all(np.isinf(bound)) and np.all(np.abs(got - CASES["sgd_d2_n4"][1](task)) <= 1e-10)
    for bad in (-1.0, float("nan"), "1e-6"):
        with pytest.raises(ValueError, match="tolerance must be a number >= 0 or None"):
            hf.predict(model, *task, tolerance=bad)
        with pytest.raises(ValueError, match="tolerance must be a number >= 0 or None"):
            tl.predict(lens, net, *task, tolerance=bad)
    by_hand = hf.ICLModel(model.backbone, model.read_in, model.read_out, model.manifest)  # no verified network
    with pytest.raises(CertificateError, match=r"no verified network \(model.network is None\)"):
        hf.predict(by_hand, *task)
    assert np.all(np.isinf(hf.predict(by_hand, *task, tolerance=None, return_bound=True)[1]))


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")
def test_a_tolerance_below_the_bound_refuses_a_ridge_answer(gaussian_ridge, ridge_models, ridge_lens):
    hf, tl = pytest.importorskip("construct.hf"), pytest.importorskip("construct.tl")
    task = GAUSSIAN[1]
    model = ridge_models["sdpa"]
    for run in (lambda **kw: hf.predict(model, *task, **kw), lambda **kw: tl.predict(ridge_lens, gaussian_ridge,
                                                                                      *task, **kw)):
        got, bound = run(tolerance=None, return_bound=True)
        scale = gaussian_ridge.scale(task[1], got)
        tight = float(np.max(bound / scale))
        assert np.array_equal(run(tolerance=tight), got)  # at the bound: accepted
        with pytest.raises(CertificateError, match=r"has the a-posteriori bound .* above the tolerance"):
            run(tolerance=tight / 2)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_a_model_built_in_memory_is_the_checkpoint_loaded(gaussian_ridge, ridge_models, implementation):
    """``construct.hf.from_network`` (what ``python -m construct.cli.certify`` runs) builds the model that
    ``from_pretrained`` loads from ``save_pretrained``'s files: the same tensors bit for bit, the same answers and
    bounds; a network of the paper's architecture is refused."""
    hf = pytest.importorskip("construct.hf")
    built, loaded = hf.from_network(gaussian_ridge, implementation), ridge_models[implementation]
    assert built.backbone.config._attn_implementation == implementation and built.network is gaussian_ridge
    assert built.manifest == loaded.manifest
    mine, theirs = built.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys() and all(
        mine[k].dtype == theirs[k].dtype and np.array_equal(mine[k].numpy(), theirs[k].numpy()) for k in mine)
    for task in GAUSSIAN:
        for a, b in zip(hf.predict(built, *task, return_bound=True), hf.predict(loaded, *task, return_bound=True)):
            assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="architecture='gpt2'"):
        hf.from_network(construct.compile(RIDGE, **BOX))
