"""Export and import: a bit-exact round trip, and a clear refusal of every kind of damaged file."""

import dataclasses
import hashlib
import json
import zipfile

import numpy as np
import pytest
import sympy

import construct
from construct import programs
from construct.transformer import weights as network
from construct.export import WeightsFileError, load, save
from construct.export.npz import EQUATIONS, MANIFEST
from construct.tasks import gaussian_tasks


def compiled(program, dtype=np.float64):
    tasks = gaussian_tasks(program.d, program.n, 32, seed=1)
    return construct.compile(program, construct.Bounds.calibrate(program, tasks), dtype=dtype)


BUILDERS = {
    "sgd": lambda: compiled(programs.sgd(3, 4, 0.05, 0.1, w0=[0.5, -1.0, 0.25])),
    "ridge": lambda: compiled(programs.ridge(2, 3, 0.5)),
    "sgd_step": lambda: compiled(programs.sgd_step(2, 0.1, 0.01, [0.3, -0.2])),
    "sherman_morrison_step": lambda: compiled(programs.sherman_morrison_step(2, 0.5)),
    "ridge_float32": lambda: compiled(programs.ridge(2, 2, 1.0), np.float32),
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def net(request):
    return BUILDERS[request.param]()


@pytest.fixture(scope="module")
def small():
    return BUILDERS["sgd"]()


def assert_same_instruction(a, b):
    assert type(a) is type(b) and str(a) == str(b)
    if isinstance(a, construct.Aff):
        assert a.out == b.out and a.bias_label == b.bias_label
        for (ra, wa, la), (rb, wb, lb) in zip(a.terms, b.terms, strict=True):
            assert (ra, la) == (rb, lb) and wa.dtype == wb.dtype and np.array_equal(wa, wb)
        assert (a.bias is None) == (b.bias is None)
        assert a.bias is None or np.array_equal(a.bias, b.bias)
    else:
        assert dataclasses.astuple(a) == dataclasses.astuple(b)


def test_round_trip_is_exact(net, tmp_path):
    path = save(net, tmp_path / "net")
    assert path.name == "net.npz"
    got = load(path)
    want_arrays, got_arrays = net.weights.arrays(), got.weights.arrays()
    assert want_arrays.keys() == got_arrays.keys()
    for name, a in want_arrays.items():
        assert got_arrays[name].dtype == a.dtype and np.array_equal(got_arrays[name], a), name
    assert got.weights.ln_eps == net.weights.ln_eps
    p, q = net.program, got.program
    assert (q.name, q.d, q.n, q.readout, q.query_only) == (p.name, p.d, p.n, p.readout, p.query_only)
    assert q.params.keys() == p.params.keys()
    for key, value in p.params.items():
        assert np.array_equal(q.params[key], value), key
    for a, b in zip(p.instructions, q.instructions, strict=True):
        assert_same_instruction(a, b)
    for form in ("registers", "paper"):
        assert q.listing(form) == p.listing(form)
    for mine, theirs in ((net.layout, got.layout), (p.layout, q.layout)):
        assert mine.names == theirs.names and mine.labels == theirs.labels
        assert [mine.span(r) for r in mine.names] == [theirs.span(r) for r in theirs.names]
    assert got.bounds == net.bounds and got.constants == net.constants and got.layers == net.layers

    for task in gaussian_tasks(p.d, p.n, 3, seed=7):
        assert np.array_equal(got.predict(*task), net.predict(*task), equal_nan=True)
    task = gaussian_tasks(p.d, p.n, 1, seed=8)[0]
    assert np.array_equal(got.predict(*task, backend="jax"), net.predict(*task, backend="jax"), equal_nan=True)


def test_the_loaded_network_keeps_its_domain(small, tmp_path):
    X, y, x_query = gaussian_tasks(3, 4, 1, seed=3)[0]
    loaded = load(save(small, tmp_path / "sgd.npz"))
    for network_ in (small, loaded):
        with pytest.raises(construct.DomainError, match="outside the declared input bound"):
            network_.predict(X * 1e3, y, x_query)


def test_the_manifest_states_the_layer_as_network_py_does(small, tmp_path):
    path = save(small, tmp_path / "sgd.npz")
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read(MANIFEST))
    doc_lines = [" ".join(line.split()) for line in network.__doc__.splitlines()]
    for line in manifest["equations"][:4]:
        assert " ".join(line.split()) in doc_lines
    assert manifest["equations"] == list(EQUATIONS)
    assert manifest["readout"]["columns"] == [0, 2, 4, 6, 8]
    assert manifest["layout"]["row_labels"][manifest["readout"]["row"]] == "pred"
    assert {name: spec["shape"] for name, spec in manifest["arrays"].items()} == {
        name: list(a.shape) for name, a in small.weights.arrays().items()}
    with np.load(path, allow_pickle=False) as npz:  # plain numpy reads the file as documented
        assert np.array_equal(npz["W1"], small.weights.W1)


def test_symbolic_programs_are_refused(small, tmp_path):
    symbolic = programs.sgd(3, 4, sympy.Symbol("alpha"), 0.1)
    with pytest.raises(ValueError, match="symbolic"):
        save(dataclasses.replace(small, program=symbolic), tmp_path / "s.npz")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_save_leaves_the_old_file_and_no_debris(small, tmp_path, monkeypatch):
    path = save(small, tmp_path / "sgd.npz")
    before = path.read_bytes()
    original, calls = np.lib.format.write_array, []

    def fails_on_the_third_array(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", fails_on_the_third_array)
    with pytest.raises(OSError, match="disk full"):
        save(small, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["sgd.npz"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load(tmp_path / "absent.npz")


# -- damaged files ------------------------------------------------------------------------


@pytest.fixture()
def saved(small, tmp_path):
    return save(small, tmp_path / "sgd.npz")


def _members(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files if name != MANIFEST}
        manifest = json.loads(npz[MANIFEST])
    return manifest, arrays


def _write(path, manifest, arrays):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(MANIFEST, manifest if isinstance(manifest, str) else json.dumps(manifest))
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, a)


def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_truncated_files_are_refused(saved):
    data = saved.read_bytes()
    for keep in (len(data) // 2, len(data) - 10, 100):
        saved.write_bytes(data[:keep])
        with pytest.raises(WeightsFileError, match="truncated or corrupt"):
            load(saved)


@pytest.mark.parametrize("member, match", [("W1.npy", "array 'W1'"), (MANIFEST, "cannot read manifest.json")])
def test_flipped_bytes_are_refused(saved, member, match):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo(member)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the member's (compressed) data
    data[start + info.compress_size // 2] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError, match=match):
        load(saved)


def test_files_that_are_not_weights_are_refused(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(WeightsFileError, match="not a readable .npz"):
        load(junk)
    single = tmp_path / "single.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(WeightsFileError, match="single array"):
        load(single)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(WeightsFileError, match="no manifest.json"):
        load(other)


def _edit(key, value):
    def apply(manifest):
        target = manifest
        *path, last = key
        for k in path:
            target = target[k]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value(target[last]) if callable(value) else value
    return apply


DELETE = object()

MANIFEST_EDITS = {
    "no version": (_edit(("version",), DELETE), "no format version"),
    "future version": (_edit(("version",), 2), "format version 2 is not supported"),
    "other format": (_edit(("format",), "something else"), "does not declare format"),
    "shape": (_edit(("arrays", "bo", "shape"), lambda s: [s[0], s[1] + 1]), "array 'bo' has shape"),
    "dtype": (_edit(("arrays", "W1", "dtype"), "float32"), "array 'W1' has dtype"),
    "array list": (_edit(("arrays", "W2"), DELETE), "array list differs"),
    "register shape": (_edit(("layout", "registers", 5, "shape"), [2]), "rows do not match its shape"),
    "row labels": (_edit(("layout", "row_labels", 0), "y"), "row labels do not match"),
    "read-out row": (_edit(("readout", "row"), 0), "read-out row"),
    "listing": (_edit(("listing", "paper", 0), "  1  mov(i-1, i, [0, 1), [0, 1))"), "listing"),
    "sizes": (_edit(("sizes", "parameters"), 1), "sizes"),
    "instruction": (_edit(("program", "instructions", 0, "offset"), 2),
                    r"listing\['registers'\]\[0\] is '  1  mov  pos_prev <- pos of column i-1'"),
    "unknown kind": (_edit(("program", "instructions", 0, "kind"), "jump"), "unknown instruction kind"),
    "missing key": (_edit(("program", "n"), DELETE), "missing key 'n'"),
    "bounds": (_edit(("bounds", "values", "w"), -1.0), "bound for register 'w' must be a positive number"),
    "no bound": (_edit(("bounds", "values", "w"), DELETE), r"no bound for registers \['w'\]"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_edited_manifests_are_refused(saved, case):
    edit, match = MANIFEST_EDITS[case]
    manifest, arrays = _members(saved)
    edit(manifest)
    _write(saved, manifest, arrays)
    with pytest.raises(WeightsFileError, match=match):
        load(saved)


def test_the_unedited_rewrite_loads(saved, small):
    """The helper that damages files writes a loadable file when it damages nothing."""
    _write(saved, *_members(saved))
    assert np.array_equal(load(saved).weights.W1, small.weights.W1)


def test_bad_manifest_text_is_refused(saved):
    manifest, arrays = _members(saved)
    text = json.dumps(manifest)
    for bad, match in ((text[: len(text) // 2], "cannot read manifest.json"),
                       (text.replace('"ln_eps": 1e-05', '"ln_eps": NaN', 1), "every number must be finite")):
        _write(saved, bad, arrays)
        with pytest.raises(WeightsFileError, match=match):
            load(saved)


def test_bad_arrays_are_refused(saved):
    manifest, arrays = _members(saved)
    cases = []
    cases.append(({k: v for k, v in arrays.items() if k != "W2"}, manifest, r"lacks arrays \['W2'\]"))
    cases.append(({**arrays, "extra": np.zeros(2)}, manifest, r"unknown arrays \['extra'\]"))
    cases.append(({**arrays, "W1": arrays["W1"].astype(np.float32)}, manifest, "array 'W1' has dtype float32"))
    changed = arrays["b2"].copy()
    changed[0, 0] += 1.0
    cases.append(({**arrays, "b2": changed}, manifest, "does not match its sha256"))
    nan = arrays["W1"].copy()
    nan[0, 0, 0] = np.nan
    rehashed = json.loads(json.dumps(manifest))
    rehashed["arrays"]["W1"]["sha256"] = _sha(nan)  # the hash agrees, so the finiteness check must catch it
    cases.append(({**arrays, "W1": nan}, rehashed, "array 'W1' has non-finite entries"))
    for arrays_, manifest_, match in cases:
        _write(saved, manifest_, arrays_)
        with pytest.raises(WeightsFileError, match=match):
            load(saved)
