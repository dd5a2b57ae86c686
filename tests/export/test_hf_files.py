"""A Hugging Face directory cannot lie: ``construct.hf.from_pretrained`` (and ``construct.hf.load``,
``construct.tl.from_pretrained``) rebuild the network the manifest states and refuse any file that differs from it.

Issue 19, item 2: an edited ``n_head`` or ``activation_function`` in config.json, or weights copied from another
network of the same shape, loaded without error and predicted other numbers. Each edit below must be refused
with a ``WeightsFileError`` naming the file and the field or tensor; an untouched directory must load and
predict as transformers alone runs it.
"""

import dataclasses
import json
import re
import shutil
import struct

import numpy as np
import pytest

import construct
from construct import WeightsFileError, programs
from construct.raw.prompt import tokens, x_columns

hf = pytest.importorskip("construct.hf")
runtime = pytest.importorskip("construct.runtimes.hf")  # state_dict, read_in_out: what the files hold
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
safetensors_torch = pytest.importorskip("safetensors.torch")

BOX = {"x_max": 1.0, "y_max": 2.0}
OTHER_BOX = {"x_max": 1.0, "y_max": 20.0}


@pytest.fixture(scope="module")
def net():
    return construct.compile(programs.ridge(2, 4, 0.5), **BOX, architecture="gpt2")


@pytest.fixture(scope="module")
def other():
    """Another network of the same shape (same config.json): ridge with another lam, for another box."""
    return construct.compile(programs.ridge(2, 4, 0.25), **OTHER_BOX, architecture="gpt2")


@pytest.fixture(scope="module")
def written(net, other, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return hf.save_pretrained(net, root / "ridge"), hf.save_pretrained(other, root / "other")


@pytest.fixture
def saved(written, tmp_path):
    """A fresh copy of the ridge directory, for one test to edit."""
    return shutil.copytree(written[0], tmp_path / "ridge")


def task(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (4, 2)), rng.uniform(-2, 2, 4), rng.uniform(-1, 1, 2)


def edit_json(path, change):
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value, indent=1))


def flip_bit(path, key, index, bit):
    """Flip bit ``bit`` of entry ``index`` (flat) of tensor ``key`` in a safetensors file, in place."""
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    start, _ = header[key]["data_offsets"]
    itemsize = {"F64": 8, "F32": 4}[header[key]["dtype"]]
    raw[8 + n + start + index * itemsize + bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(raw))


def refused(directory, match):
    with pytest.raises(WeightsFileError, match=match):
        hf.from_pretrained(directory)


# -- an untouched directory ---------------------------------------------------------------------------------


def test_an_untouched_directory_is_the_network_and_predicts_as_transformers_alone(saved, net):
    model = hf.from_pretrained(saved)
    assert all(np.array_equal(a, b) for a, b in zip(model.network.gpt2.arrays().values(), net.gpt2.arrays().values()))
    assert model.network.program.params == net.program.params and model.network.bounds == net.bounds
    assert model.manifest == json.loads((saved / "icl_construct.json").read_text())
    # the same directory read by transformers alone (no verification, no code of this project): the same numbers
    plain = transformers.GPT2Model.from_pretrained(saved, dtype=torch.float64, attn_implementation="eager")
    io = safetensors_torch.load_file(saved / "read_in_out.safetensors")
    for seed in range(3):
        X, y, q = task(seed)
        prompt = torch.tensor(tokens(X, y, q))[None]
        with torch.no_grad():
            hidden = plain(inputs_embeds=torch.nn.functional.linear(prompt, io["read_in.weight"], io["read_in.bias"]))
            alone = torch.nn.functional.linear(hidden.last_hidden_state, io["read_out.weight"], io["read_out.bias"])
        alone = alone[0, :, 0].numpy()[x_columns(4)]
        got = hf.predict(model, X, y, q)
        assert np.array_equal(got, alone), (got, alone)
        assert np.all(np.abs(got - net.predict(X, y, q)) <= 1e-10)


def test_another_dtype_casts_the_verified_weights(saved, net):
    """(A float64 network run in float32 is not that network: its constants were chosen for float64.)"""
    model = hf.from_pretrained(saved, dtype=torch.float32)
    loaded = model.backbone.state_dict()
    for key, a in runtime.state_dict(net).items():
        assert loaded[key].dtype == torch.float32 and np.array_equal(loaded[key].numpy(), a.astype(np.float32)), key
    with pytest.raises(ValueError, match="dtype must be torch.float64 or torch.float32"):
        hf.from_pretrained(saved, dtype=torch.float16)


@pytest.mark.parametrize("case", ["custom program", "float32", "unfused", "sgd, calibrated"])
def test_what_the_version_1_manifest_could_not_rebuild_round_trips(case, tmp_path):
    """A custom program (rebuilt from its instructions), float32, an unfused schedule, calibrated bounds: the
    loaded network is the saved one, bit for bit."""
    from construct.raw.prompt import input_registers

    if case == "custom program":
        registers = [construct.Register("s", (1,)), construct.Register("pred", (1,))]
        layout = construct.Layout(input_registers(2) + registers)
        program = construct.Program("dot_query", 2, 1, layout, (construct.Mul("x_in", "x_in", "s", (1, 2, 1)),
                                                               construct.Aff("pred", (("s", 0.5),), bias=1.0)))
        tasks = [(np.zeros((1, 2)), np.zeros(1), t[2]) for t in (task(k) for k in range(8))]
        net = construct.compile(program, construct.Bounds.calibrate(program, tasks), architecture="gpt2")
    elif case == "sgd, calibrated":
        program = programs.sgd(2, 3, 0.05, 0.1, w0=[0.5, -1.0])
        tasks = [(t[0][:3], t[1][:3], t[2]) for t in (task(k) for k in range(16))]
        net = construct.compile(program, construct.Bounds.calibrate(program, tasks), architecture="gpt2")
    else:
        net = construct.compile(programs.ridge(2, 2, 0.5), **BOX, architecture="gpt2",
                                **({"dtype": np.float32} if case == "float32" else {"fuse": False}))
    got = hf.load(hf.save_pretrained(net, tmp_path / "net"))
    assert got.program.name == net.program.name and got.bounds == net.bounds and got.steps == net.steps
    assert all(a.dtype == b.dtype and np.array_equal(a, b)
               for a, b in zip(got.gpt2.arrays().values(), net.gpt2.arrays().values()))


def test_the_versions_that_wrote_it_are_not_checked_but_their_form_is(saved):
    edit_json(saved / "icl_construct.json",
              lambda m: m["written_by"].update({"transformers": "4.0.0", "icl-construct": "9"}))
    hf.load(saved)
    edit_json(saved / "icl_construct.json", lambda m: m["written_by"].update({"transformers": 4}))
    refused(saved, r"icl_construct\.json: the manifest's written_by\.transformers is 4")


# -- config.json ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("n_head", 6), ("n_head", 3.0), ("activation_function", "gelu_new"), ("activation_function", "relu"),
    ("n_layer", 16), ("n_layer", 18), ("n_embd", 96), ("layer_norm_epsilon", 1e-6), ("n_positions", 11),
    ("n_inner", None), ("scale_attn_by_inverse_layer_idx", True), ("dtype", "float32"),
    ("add_cross_attention", True),  # not a field of config_dict: what transformers writes, held to its value
    ("model_type", "gpt_neo"),
])
def test_an_edited_config_field_is_refused_by_name(saved, field, value):
    edit_json(saved / "config.json", lambda c: c.update({field: value}))
    refused(saved, rf"config\.json: field {field} is {value!r}; the network icl_construct\.json's program and domain "
                   "describe has")


def test_config_fields_added_or_removed(saved):
    edit_json(saved / "config.json", lambda c: c.pop("n_head"))
    refused(saved, r"config\.json: lacks the field 'n_head' \(the network .* has 3\)")
    edit_json(saved / "config.json", lambda c: c.update(n_head=3, rope_theta=1e4))
    refused(saved, r"config\.json: has fields \['rope_theta'\] that GPT2Config does not write")


def test_what_transformers_writes_besides_may_be_absent(saved):
    """A key of transformers' own (not config_dict's) left out: transformers takes the same default."""
    edit_json(saved / "config.json", lambda c: [c.pop(k) for k in ("summary_type", "initializer_range",
                                                                    "transformers_version", "model_type")])
    hf.load(saved)


# -- files from another network of the same shape ----------------------------------------------------------


@pytest.mark.parametrize("name, match", [
    ("model.safetensors", r"model\.safetensors: tensor 'wpe\.weight' is not what icl_construct\.json's program and "
                          r"domain compile to: it differs first at \[0, \d+\]"),
    ("read_in_out.safetensors", r"read_in_out\.safetensors: tensor 'read_out\.weight' is not what "
                                r"icl_construct\.json's program and domain compile to"),
    # the manifest is what is rebuilt: the first file that differs from its network is the weights
    ("icl_construct.json", r"model\.safetensors: tensor 'wpe\.weight' is not what icl_construct\.json's program and "
                           r"domain compile to"),
])
def test_a_file_copied_from_another_network_of_the_same_shape_is_refused(saved, written, name, match):
    assert (written[1] / "config.json").read_text() == (saved / "config.json").read_text()  # the same shape
    shutil.copy(written[1] / name, saved / name)
    refused(saved, match)


# -- model.safetensors, read_in_out.safetensors ---------------------------------------------------------------


NONZERO = lambda a: int(np.flatnonzero(a)[0])  # noqa: E731
ZERO = lambda a: int(np.flatnonzero(a == 0)[0])  # noqa: E731


@pytest.mark.parametrize("name, key, pick, bit", [
    ("model.safetensors", "h.0.attn.c_attn.weight", NONZERO, 0),  # the last bit of a mantissa
    ("model.safetensors", "h.16.mlp.c_proj.bias", ZERO, 63),      # a sign: 0.0 becomes -0.0, equal as numbers
    ("model.safetensors", "ln_f.weight", NONZERO, 52),            # an exponent
    ("read_in_out.safetensors", "read_in.weight", NONZERO, 0),
    ("read_in_out.safetensors", "read_out.bias", ZERO, 63),
])
def test_one_flipped_bit_is_refused_naming_the_tensor_and_entry(saved, net, name, key, pick, bit):
    rebuilt = (runtime.state_dict(net) | runtime.read_in_out(net))[key]
    index = pick(rebuilt)
    flip_bit(saved / name, key, index, bit)
    where = [int(i) for i in np.unravel_index(index, rebuilt.shape)]
    refused(saved, rf"{name}: tensor '{re.escape(key)}' is not what .* it differs first at "
                   rf"\[{', '.join(map(str, where))}\]")


def test_tensors_added_removed_or_of_another_dtype(saved, net):
    io = runtime.read_in_out(net)
    safetensors_numpy.save_file(dict(io, extra=np.zeros(1)), saved / "read_in_out.safetensors",
                                metadata={"format": "pt"})
    refused(saved, r"read_in_out\.safetensors: its tensors are not the network's .* missing \[\], unknown \['extra'\]")
    safetensors_numpy.save_file({k: v for k, v in io.items() if k != "read_in.bias"},
                                saved / "read_in_out.safetensors", metadata={"format": "pt"})
    refused(saved, r"missing \['read_in\.bias'\], unknown \[\]")
    safetensors_numpy.save_file(dict(io, **{"read_out.bias": io["read_out.bias"].astype(np.float32)}),
                                saved / "read_in_out.safetensors", metadata={"format": "pt"})
    refused(saved, r"tensor 'read_out\.bias' is F32 \[1\]; the network .* has F64 \[1\]")
    safetensors_numpy.save_file(io, saved / "read_in_out.safetensors", metadata={"format": "np"})
    refused(saved, r"read_in_out\.safetensors: metadata is \{'format': 'np'\}")
    safetensors_numpy.save_file(io, saved / "read_in_out.safetensors", metadata={"format": "pt"})
    hf.load(saved)  # as written: the edits above were what was refused


# -- icl_construct.json ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, match", [
    # bounds and params are what is rebuilt: the weights, or the constants they give, then differ from that network
    (lambda m: m["bounds"]["values"].update(w=m["bounds"]["values"]["w"] * 10),
     r"icl_construct\.json: the manifest's constants\.column_sum_sq is 29557\.8\d*; the network its program and "
     r"domain describe has 49875\.5"),
    (lambda m: m["bounds"]["values"].update(x_in=1000.0), r"model\.safetensors: tensor '.*' is not what"),
    (lambda m: m["program"]["params"].update(lam=0.75), r"model\.safetensors: tensor '.*' is not what"),
    (lambda m: m["bounds"]["values"].update(w="big"), r"icl_construct\.json: .*bound for register 'w' must be a "
                                                      "positive number"),
    (lambda m: m["bounds"]["values"].update(ghost=1.0), r"bounds for registers the program does not have"),
    (lambda m: m["program"].update(d=3), r"icl_construct\.json: .*program\.d is 3; model\.safetensors and "
                                         r"read_in_out\.safetensors are for d = 2"),
    (lambda m: m["program"].update(n=5), r"program\.n is 5; .* are for n = 4"),
    (lambda m: m["program"].update(name="sgd"), r"icl_construct\.json: the manifest's program or domain is malformed"),
    (lambda m: m["constants"].update(product_scale=m["constants"]["product_scale"] * 2),
     r"constants\.product_scale is .*this compiler chooses"),
    (lambda m: m["constants"].update(ln_pad=1.0), r"icl_construct\.json: the manifest's constants\.ln_pad is 1\.0"),
    (lambda m: m["compiler"].update(fused=False), r"config\.json: field n_embd is 48; .* has 46"),  # unfused
    (lambda m: m["compiler"].update(fused="yes"), r"compiler\.fused is 'yes', not true or false"),
    (lambda m: m["compiler"].update(revision=3), r"written by compiler revision 3; this library compiles revision"),
    (lambda m: m.update(version=1), r"format version 1, written before from_pretrained verified its files"),
    (lambda m: m.update(version=2.0), r"format version 2\.0 is not 2"),
    (lambda m: m.update(dtype="float32"), r"constants\.attention_sharpness is 44\.6\d*; this compiler chooses 24\.5"),
    (lambda m: m["rows"].__setitem__(3, "pred"), r"icl_construct\.json: the manifest's rows\[3\] is 'pred'"),
    (lambda m: m["readout"].update(columns=[1, 3, 5, 7, 9]), r"the manifest's readout\.columns\[0\] is 1"),
    (lambda m: m["program"].update(query_only=True), r"the manifest's program\.query_only is True"),
    (lambda m: m.update(extra=1), r"the manifest's keys \['extra'\]"),
])
def test_an_edited_manifest_is_refused_naming_the_file(saved, change, match):
    edit_json(saved / "icl_construct.json", change)
    refused(saved, match)


# -- damaged files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, damage, match", [
    ("model.safetensors", lambda b: b[:len(b) // 2], r"model\.safetensors: not a readable safetensors file "
                                                     r"\(truncated or corrupt\?\)"),
    ("model.safetensors", lambda b: b[:-1], r"model\.safetensors: not a readable safetensors file"),
    ("read_in_out.safetensors", lambda b: b[:5], r"read_in_out\.safetensors: not a readable safetensors file"),
    ("read_in_out.safetensors", lambda b: b"", r"read_in_out\.safetensors: not a readable safetensors file"),
    ("model.safetensors", lambda b: bytes(range(256)) * 40, r"model\.safetensors: declares a header of"),
    ("model.safetensors", lambda b: struct.pack("<Q", 2**40) + b[8:], r"declares a header of 1,099,511,627,776 bytes"),
    ("model.safetensors", lambda b: b[:8] + b"\xff" + b[9:], r"model\.safetensors: not a readable safetensors file"),
    ("config.json", lambda b: b[:len(b) // 2], r"config\.json: not readable JSON \(corrupt\?\)"),
    ("config.json", lambda b: b.replace(b'"n_head": 3', b'"n_head": NaN'), r"config\.json: not readable JSON.*NaN"),
    ("config.json", lambda b: b"[]", r"config\.json: not a JSON object"),
    ("icl_construct.json", lambda b: b[:100], r"icl_construct\.json: not readable JSON"),
    ("icl_construct.json", lambda b: b"\xff\xfe", r"icl_construct\.json: not readable JSON.*UnicodeDecodeError"),
    ("icl_construct.json", lambda b: b"[1]", r"icl_construct\.json: does not declare format"),
    ("icl_construct.json", lambda b: b" " * (16 * 2**20 + 1), r"icl_construct\.json: larger than 16,777,216 bytes"),
])
def test_damaged_files_are_weights_file_errors(saved, name, damage, match):
    path = saved / name
    path.write_bytes(damage(path.read_bytes()))
    refused(saved, match)


def test_a_missing_file_and_the_size_limit(saved):
    with pytest.raises(construct.SizeError,
                       match=r"model\.safetensors and read_in_out\.safetensors take .* above the limit"):
        hf.load(saved, max_bytes=10_000)
    (saved / "read_in_out.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks read_in_out.safetensors"):
        hf.from_pretrained(saved)


def test_what_transformers_loads_is_held_to_the_verified_tensors(saved, written, monkeypatch):
    """The directory replaced between the verification and GPT2Model.from_pretrained (simulated: the
    verification is given the other network's directory)."""
    verified = runtime._verified
    monkeypatch.setattr(runtime, "_verified", lambda directory, max_bytes: verified(written[1], max_bytes))
    with pytest.raises(WeightsFileError, match=r"model\.safetensors: GPT2Model\.from_pretrained loaded other weights "
                                               "than the verified file holds"):
        hf.from_pretrained(saved)


def test_save_refuses_weights_that_are_not_the_conversion(net, tmp_path):
    g = net.gpt2
    bad = dataclasses.replace(net, gpt2=dataclasses.replace(g, c_fc_bias=g.c_fc_bias * (1 + 1e-12)))
    with pytest.raises(ValueError, match="not the conversion"):
        hf.save_pretrained(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


# -- TransformerLens ------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")  # TransformerLens 3.x
def test_transformer_lens_from_a_directory_goes_through_the_same_verification(saved, net):
    tl = pytest.importorskip("construct.tl")
    model, loaded = tl.from_pretrained(saved)
    direct = tl.to_hooked_transformer(net)
    X, y, q = task(5)
    got, _ = tl.run_with_cache(model, loaded, X, y, q)
    want, _ = tl.run_with_cache(direct, net, X, y, q)
    assert np.array_equal(got, want) and np.all(np.abs(got - net.predict(X, y, q)) <= 1e-10)
    edit_json(saved / "config.json", lambda c: c.update(n_head=6))
    with pytest.raises(WeightsFileError, match=r"config\.json: field n_head is 6"):
        tl.from_pretrained(saved)


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")
def test_transformer_lens_refuses_weights_that_are_not_the_conversion(net):
    tl = pytest.importorskip("construct.tl")
    g = net.gpt2
    c_attn = g.c_attn_weight.copy()
    c_attn[0, :, 2 * g.width:] *= 1 + 1e-9  # values off by one part in 1e9
    bad = dataclasses.replace(net, gpt2=dataclasses.replace(g, c_attn_weight=c_attn))
    with pytest.raises(ValueError, match="not the conversion of the network's layers"):
        tl.to_hooked_transformer(bad)
