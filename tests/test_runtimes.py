"""The GPT-2 target (compile(..., architecture="gpt2")) and the two runtimes it runs in unmodified.

Expected values are the closed forms of ``construct.reference`` and this
project's own trace; the Hugging Face checkpoint is loaded in a fresh
process by transformers alone (no code of this project there).
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import construct
from construct import cli, programs, reference
from construct.raw.prompt import tokens, x_columns

ROOT = Path(__file__).resolve().parent.parent
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
        assert np.all(np.abs(hf.predict(model, *task) - CASES["sgd_d2_n4"][1](task)) <= 1e-10)
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
    model = tl.to_hooked_transformer(net)
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
    for cells in result.values():
        for dtype, rows in cells.items():
            limit = 1e-10 if dtype == "float64" else 1e-3  # float32 is measured, not held to float64's accuracy
            for row in ("numpy gpt2", "hf eager", "hf sdpa", "tl"):
                assert rows[row] <= limit, (dtype, row, rows[row])
            if dtype == "float64":
                assert rows["tl resid_post"] <= 1e-9 and rows["numpy gpt2"] <= rows["numpy gpt2 bound"]
