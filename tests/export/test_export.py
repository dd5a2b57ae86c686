"""Export and import: a bit-exact round trip, and a clear refusal of every kind of damaged file."""

import dataclasses
import hashlib
import io
import json
from pathlib import Path
import zipfile

import numpy as np
import pytest
import sympy

import construct
from construct import programs
from construct.transformer import weights as network
from construct.export import WeightsFileError, load, save
from construct.export.spec import EQUATIONS, MANIFEST
from construct.tasks import gaussian_tasks

from support import read_members, write_members


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
        assert np.array_equal(got.predict(*task, tolerance=None), net.predict(*task, tolerance=None), equal_nan=True)
    task = gaussian_tasks(p.d, p.n, 1, seed=8)[0]
    assert np.array_equal(got.predict(*task, backend="jax", tolerance=None),
                          net.predict(*task, backend="jax", tolerance=None), equal_nan=True)


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


def test_a_norm_bound_on_the_inputs_is_kept(tmp_path):
    """A domain declared with x_norm refuses inputs of a larger norm; the loaded network does too (files written
    before x_norm was recorded lost it: their loaded networks accepted such inputs until a register overflowed)."""
    net = construct.compile(programs.ridge(2, 3, 0.5), x_max=1.0, y_max=3.0, x_norm=1.0)
    path = save(net, tmp_path / "ridge.npz")
    with zipfile.ZipFile(path) as z:
        assert json.loads(z.read(MANIFEST))["bounds"]["x_norm"] == 1.0
    got = load(path)
    assert got.bounds == net.bounds and got.bounds.x_norm == 1.0
    X, y, x_query = np.full((3, 2), 0.6), np.ones(3), np.zeros(2)  # every entry in the box, each |x| = 0.85
    assert np.array_equal(got.predict(X, y, x_query), net.predict(X, y, x_query))
    X[1] = 0.9  # |x| = 1.27
    for network_ in (net, got):
        with pytest.raises(construct.DomainError, match=r"\|X\[1\]\| = 1.27279 is outside the declared input bound "
                                                        r"\|x\| <= 1 "):
            network_.predict(X, y, x_query)
    manifest, arrays = read_members(path)
    for value, match in (("1.0", r"bounds.x_norm is '1.0', not a number"), (True, "bounds.x_norm is True"),
                         (-1.0, "x_norm must be a positive number")):
        manifest["bounds"]["x_norm"] = value
        write_members(path, manifest, arrays)
        with pytest.raises(WeightsFileError, match=match):
            load(path)


def test_a_file_with_the_earlier_wording_of_the_array_meanings_loads(saved, small):
    """Version-2 files written before the meanings named stored layers S and depths L (they said L and depth):
    the wording describes the arrays, it is not the network, so such a file is the same network."""
    earlier = {"embed": "(d+1, D): token slots [y, x_1..x_d] -> residual rows",
               "positions": "(T, D): added to token t", "readout": "(D,): prediction = final state @ readout",
               "Wq": "(L, m, D, dh)", "Wk": "(L, m, D, dh)", "Wv": "(L, m, D, dh)", "Wo": "(L, m*dh, D)",
               "bo": "(L, D)", "ln_gain": "(L, D)", "ln_bias": "(L, D)", "W1": "(L, D, U)", "b1": "(L, U)",
               "W2": "(L, U, D)", "b2": "(L, D)",
               "order": "(depth,) int64: the stored layer (0..L-1) applied at each depth; a tied layer appears "
                        "several times"}
    manifest, arrays = read_members(saved)
    assert manifest["arrays"]["Wq"]["meaning"] == "(S, m, D, dh)"
    for name, entry in manifest["arrays"].items():
        entry["meaning"] = earlier[name]
    write_members(saved, manifest, arrays)
    assert np.array_equal(load(saved).weights.W1, small.weights.W1)
    manifest["arrays"]["W1"]["meaning"] = "(S, D, U)"  # one in each wording is neither
    write_members(saved, manifest, arrays)
    with pytest.raises(WeightsFileError, match=r"arrays.Wq.meaning is '\(L, m, D, dh\)'; the network .* has "
                                              r"'\(S, m, D, dh\)'"):
        load(saved)


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


def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_truncated_files_are_refused(saved):
    data = saved.read_bytes()
    for keep in (len(data) // 2, len(data) - 10, 100):
        saved.write_bytes(data[:keep])
        with pytest.raises(WeightsFileError, match="truncated or corrupt"):
            load(saved)


@pytest.mark.parametrize("member", ["W1.npy", MANIFEST])
def test_flipped_bytes_are_refused(saved, member):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo(member)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the member's (compressed) data
    data[start + info.compress_size // 2] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError, match=rf"cannot read {member} \(truncated or corrupt\?\)"):
        load(saved)


def test_every_single_bit_flip_loads_the_same_network_or_is_refused(saved, small):
    """Bit flips anywhere in the file (the issue found some escaping as TokenError, NotImplementedError,
    RuntimeError): each one is refused with a WeightsFileError, or (in bytes the format does not use, such
    as zip timestamps) loads the very same network."""
    data = saved.read_bytes()
    rng = np.random.default_rng(0)
    positions = np.concatenate([np.arange(0, 200), rng.choice(len(data), 400, replace=False)])
    refused = 0
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        saved.write_bytes(bytes(flipped))
        try:
            got = load(saved)
        except WeightsFileError:
            refused += 1
            continue
        for name, a in small.weights.arrays().items():
            assert np.array_equal(got.weights.arrays()[name], a), f"flip at byte {pos} changed {name}"
    assert refused > len(positions) // 2


@pytest.mark.parametrize("error", [TypeError, KeyError, IndexError, RuntimeError, OverflowError, MemoryError,
                                   RecursionError])
@pytest.mark.parametrize("where", ["archive", "member", "npy header"])
def test_an_error_of_the_library_is_not_reported_as_a_damaged_file(saved, monkeypatch, where, error):
    """A damaged archive is a WeightsFileError; any other error raised while a sound file is read (here injected
    where zipfile opens the archive and reads a member, and where numpy parses a header) is a bug of the library or
    its dependencies, and surfaces as itself, not as the user's bad file."""
    owner, name = {"archive": (zipfile.ZipFile, "_RealGetContents"), "member": (zipfile.ZipExtFile, "read"),
                   "npy header": (np.lib.format, "read_array_header_1_0")}[where]

    def fails(*args, **kwargs):
        raise error("injected")

    monkeypatch.setattr(owner, name, fails)
    with pytest.raises(error, match="injected"):
        load(saved)


def test_files_that_are_not_weights_are_refused(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(WeightsFileError, match="not a readable .npz"):
        load(junk)
    single = tmp_path / "single.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(WeightsFileError, match="not a readable .npz"):
        load(single)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(WeightsFileError, match="no manifest.json"):
        load(other)
    directory = tmp_path / "dir.npz"
    directory.mkdir()
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load(directory)


# -- hostile archives: nothing is allocated or parsed beyond what the manifest's program needs ------------


def _npy_header(shape, dtype="<f8"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_small_file_declaring_a_huge_array_is_refused_before_allocation(saved):
    manifest, arrays = read_members(saved)
    with zipfile.ZipFile(saved, "w", zipfile.ZIP_DEFLATED) as z:  # a 9 kB file whose W1 header says (1e6, 1e6)
        z.writestr(MANIFEST, json.dumps(manifest))
        for name, a in arrays.items():
            if name == "W1":
                z.writestr("W1.npy", _npy_header((10**6, 10**6)) + b"\0" * 64)
            else:
                with z.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, a)
    with pytest.raises(WeightsFileError, match=r"member W1.npy declares \d+ bytes; an array of shape"):
        load(saved)
    manifest["arrays"]["W1"]["shape"] = [10**6, 10**6, 10**6]
    write_members(saved, manifest, arrays)
    with pytest.raises(WeightsFileError, match=r"member W1.npy declares"):
        load(saved)


def test_a_zip_entry_declaring_more_than_it_can_hold_is_refused(saved):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("W2.npy")
    for offset in range(len(data) - 46):  # W2's uncompressed size in the central directory, made 2 GiB
        if data[offset:offset + 4] == b"PK\x01\x02" and data[offset + 46:offset + 52] == b"W2.npy":
            data[offset + 24:offset + 28] = (2**31).to_bytes(4, "little")
            break
    else:
        raise AssertionError("no central directory entry for W2.npy")
    saved.write_bytes(bytes(data))
    assert info.compress_size < 2**20
    with pytest.raises(WeightsFileError, match="declares 2,147,483,648 bytes, more than its"):
        load(saved)


@pytest.mark.parametrize("case", ["encrypted", "bzip2", "duplicate", "extra", "missing"])
def test_archives_the_format_does_not_allow(saved, case):
    manifest, arrays = read_members(saved)
    if case == "bzip2":
        write_members(saved, manifest, arrays, zipfile.ZIP_BZIP2)
        match = "compression method 12; the format uses only stored"
    elif case == "encrypted":
        write_members(saved, manifest, arrays)
        data = bytearray(saved.read_bytes())
        data[6] |= 1  # the first local header's flag bits
        for offset in range(len(data) - 4):  # and every central directory entry's
            if data[offset:offset + 4] == b"PK\x01\x02":
                data[offset + 8] |= 1
        saved.write_bytes(bytes(data))
        match = "is encrypted"
    else:
        write_members(saved, manifest, arrays)
        with zipfile.ZipFile(saved, "a") as z:
            if case == "duplicate":
                with pytest.warns(UserWarning, match="Duplicate name"):
                    z.writestr("W1.npy", b"x")
            elif case == "extra":
                z.writestr("notes.txt", b"x")
        if case == "missing":
            write_members(saved, manifest, {k: v for k, v in arrays.items() if k != "W2"})
        match = {"duplicate": r"duplicated \['W1.npy'\]", "extra": r"unknown \['notes.txt'\]",
                 "missing": r"missing \['W2.npy'\]"}[case]
    with pytest.raises(WeightsFileError, match=match):
        load(saved)


@pytest.mark.parametrize("text, match", [
    ("[" * 100_000 + "]" * 100_000, "cannot read manifest.json"),
    ('{"version": 1, "format": "icl-construct weights", "x": ' + "9" * 5000 + "}", "cannot read manifest.json"),
    ('{"version": 1e999}', "overflows a float"),
    ('{"version": NaN}', "every number must be finite"),
    ("not json", "cannot read manifest.json"),
    ("\udcff", "cannot read manifest.json"),
])
def test_malformed_manifest_text(saved, text, match):
    _, arrays = read_members(saved)
    write_members(saved, text.encode("utf-8", "surrogateescape"), arrays)
    with pytest.raises(WeightsFileError, match=match):
        load(saved)


def test_a_manifest_above_its_size_cap(saved):
    from construct.export.spec import MAX_MANIFEST_BYTES

    _, arrays = read_members(saved)
    write_members(saved, " " * (MAX_MANIFEST_BYTES + 1), arrays)
    with pytest.raises(WeightsFileError, match=r"member manifest.json declares 16,777,217 bytes, more than the"):
        load(saved)


@pytest.mark.parametrize("header, match", [
    (lambda: b"\x93NUMPY\x01\x00" + b"\xff" * 20, "bad .npy header"),
    (lambda: b"\x93NUMPY\x09\x00" + b"\x00" * 20, "bad .npy header"),
    (lambda: b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8}   \n", "bad .npy header"),
    (lambda: _npy_header((3, 2, 10)).replace(b"False", b"True "), "Fortran order"),
])
def test_bad_npy_headers(saved, header, match):
    manifest, arrays = read_members(saved)
    with zipfile.ZipFile(saved, "w") as z:
        z.writestr(MANIFEST, json.dumps(manifest))
        for name, a in arrays.items():
            if name == "bo":
                raw = header()
                body = b"\0" * (a.nbytes - max(0, len(raw) - 128))
                z.writestr("bo.npy", raw + body)
            else:
                with z.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, a)
    with pytest.raises(WeightsFileError, match=match):
        load(saved)


def test_load_refuses_a_network_above_max_bytes(saved):
    with pytest.raises(construct.SizeError, match=r"the arrays take .* above the limit of 0\.00977 MiB"):
        load(saved, max_bytes=10 * 1024)


# -- the manifest cannot lie -------------------------------------------------------------------------------


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list) and value:
        for k, v in enumerate(value):
            yield from _leaves(v, (*path, k))
    else:
        yield path


def _changed(value):
    """A different value of the same JSON type, and a value of another type that Python thinks equal or truthy."""
    if isinstance(value, bool):
        return [not value, int(value), str(value).lower()]
    if isinstance(value, int):
        return [value + 1, float(value), str(value)]
    if isinstance(value, float):
        return [value * (1 + 1e-12) if value else 1e-300, value + 1.0, str(value)]
    if isinstance(value, str):
        return [value + " ", value.upper() if value.upper() != value else value.lower(), None]
    return [0, "", False]


def _set(manifest, path, value):
    target = manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def test_no_edit_of_any_manifest_field_loads(saved, request):
    """Every leaf of the manifest (list entries sampled: first, middle, last), changed to another value of
    its type or to a look-alike of another type (1.0 for 1, "false" for false), is refused; the whole
    manifest is checked under --runslow. One exception, by design: the constants chosen by log/erf
    evaluations are taken from the file within 1e-9 (their last bits are platform-dependent), so a change
    of one part in 1e12 loads; it must then build the same network (it does when the constant is unused,
    like sgd's bypass offset) or be refused."""
    import copy

    from construct.compiler.constants import CHOSEN

    manifest, arrays = read_members(saved)
    paths = list(_leaves(manifest))
    def sampled(path):
        return all(not isinstance(k, int) or k in (0, 1, 7) for k in path)
    chosen = paths if request.config.getoption("--runslow") else [p for p in paths if sampled(p)]
    assert len(chosen) > 120
    for path in chosen:
        target = manifest
        for key in path:
            target = target[key]
        for value in _changed(target):
            edited = copy.deepcopy(manifest)
            _set(edited, path, value)
            write_members(saved, edited, arrays)
            if path[0] == "constants" and path[-1] in CHOSEN and isinstance(value, float) and \
                    abs(value / target - 1) < 1e-9:
                try:
                    got = load(saved)
                except WeightsFileError:
                    continue
                assert all(np.array_equal(a, arrays[k]) for k, a in got.weights.arrays().items()), path
                continue
            with pytest.raises(WeightsFileError):
                load(saved)
                print(f"loaded with {'.'.join(map(str, path))} = {value!r}")


def test_added_and_removed_fields_are_refused(saved):
    manifest, arrays = read_members(saved)
    for edit, match in ((lambda m: m.update(extra=1), r"keys \['extra'\]"),
                        (lambda m: m["program"].pop("params"), "missing key 'params'"),
                        (lambda m: m["bounds"]["values"].update(ghost=1.0), r"registers the program does not have"),
                        (lambda m: m["bounds"]["values"].pop("w"), r"no bound for registers \['w'\]")):
        edited = json.loads(json.dumps(manifest))
        edit(edited)
        write_members(saved, edited, arrays)
        with pytest.raises(WeightsFileError, match=match):
            load(saved)


@pytest.mark.parametrize("path, value, match", [
    (("bounds", "values", "w"), lambda v: v * 10, r"program.params, bounds or dtype were edited"),
    (("bounds", "values", "x_in"), lambda v: v * 1000, r"program.params, bounds or dtype were edited"),
    (("program", "params", "lam"), lambda v: v + 0.5, r"program.params, bounds or dtype were edited"),
    (("program", "params", "lam"), lambda v: str(v), r"lam must be a finite real number"),
    (("program", "params", "alpha"), lambda v: True, r"alpha must be a finite real number"),
    (("program", "d"), lambda v: float(v), r"program.d is 3.0"),
    (("program", "n"), lambda v: v + 1, r"program.n is 5; the declared arrays are for n = 4"),
    (("program", "query_only"), lambda v: "false", r"program.query_only is 'false'"),
    (("ln_eps",), lambda v: v * 2, r"ln_eps is 2e-05; the network its program and domain describe has 1e-05"),
    (("constants", "ln_eps"), lambda v: 1e-3, r"constants.ln_eps is 0.001"),
    (("constants", "product_scale"), lambda v: v * 2, r"constants.product_scale is .*this compiler chooses"),
    (("layers", 3, "parts", 0, "predicted_error"), lambda v: v / 10, r"layers\[3\].parts\[0\].predicted_error is"),
    (("bounds", "values", "w"), lambda v: True, r"bound for register 'w' must be a positive number"),
    (("dtype",), lambda v: "float16", r"dtype is 'float16'"),
])
def test_edits_that_would_change_behaviour_name_the_field(saved, path, value, match):
    """The issue's examples: widened bounds answered 2.4x off; an edited lam or ln_eps loaded and predicted
    something else; truthy strings passed type checks."""
    manifest, arrays = read_members(saved)
    target = manifest
    for key in path:
        target = target[key]
    _set(manifest, path, value(target))
    write_members(saved, manifest, arrays)
    with pytest.raises(WeightsFileError, match=match):
        load(saved)


def test_a_consistent_rewrite_with_other_bounds_is_that_network(saved, small):
    """Editing bounds and the arrays and hashes to match is not a lie: it is the network compiled for those
    bounds, and it loads as exactly that."""
    wider = construct.Bounds({k: v * 2 for k, v in small.bounds.values.items()}, small.bounds.floors)
    other = construct.compile(small.program, wider)
    path = save(other, saved)
    got = load(path)
    assert got.bounds == wider and np.array_equal(got.weights.W1, other.weights.W1)


def test_version_2_files_of_an_older_compiler_are_refused_with_how_to_reexport(saved):
    """A version-2 file names the compiler revision that wrote it; another revision's weights cannot be rebuilt
    and vouched for."""
    from construct.compiler.build import REVISION

    manifest, arrays = read_members(saved)
    manifest["compiler"]["revision"] = REVISION - 1
    write_members(saved, manifest, arrays)
    with pytest.raises(WeightsFileError, match=rf"written by compiler revision {REVISION - 1}; this library compiles "
                                              rf"revision {REVISION} .*Re-export it .*construct.save\(construct."
                                              r"compile\(program, bounds\)"):
        load(saved)


def test_a_version_1_file_loads_as_the_unfused_network_and_saves_as_version_2(tmp_path):
    """A real version-1 file (no layer order, one instruction per layer), written by compiler revision 2 at
    commit f4b57f5: its arrays are today's fuse=False network untied, bit for bit, and it loads as that."""
    from construct import exact

    written = Path(__file__).parent / "data" / "sgd_version1.npz"
    got = load(written)
    manifest, arrays = read_members(written)
    assert manifest["version"] == 1 and manifest["compiler"]["revision"] == 2 and "order" not in arrays
    assert len(got.weights.order) == arrays["W1"].shape[0] == got.program.depth > got.weights.stored
    for name, a in arrays.items():
        assert np.array_equal(getattr(got.weights.untied(), name), a), name
    rebuilt = construct.compile(got.program, got.bounds, fuse=False)
    assert np.array_equal(rebuilt.weights.W2, got.weights.W2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(got.program.n, got.program.d))
    task = (X, X @ rng.normal(size=got.program.d), rng.normal(size=got.program.d))
    preds, bounds = got.predict(*task, return_bound=True)
    assert np.all(exact.errors(got.program, *task, preds) <= bounds)
    again = load(save(got, tmp_path / "resaved.npz"))  # written as version 2, with the repeated layers once
    assert np.array_equal(again.weights.W1, got.weights.W1) and np.array_equal(again.weights.order, got.weights.order)


def test_real_version_1_chain_files_load_or_are_refused_with_how_to_reexport():
    """Files written by revision 2 (commit f4b57f5): the Theorem 1 chain rebuilds bit for bit and loads; the
    Theorem 2 chain compiles to a narrower residual stream today, so it is refused, saying so."""
    data = Path(__file__).parent / "data"
    step = load(data / "sgd_step_version1.npz")
    assert step.program.name == "sgd_step" and len(step.weights.order) == step.program.depth
    with pytest.raises(WeightsFileError, match=r"format-version-1 file written by compiler revision 2, whose array "
                                              r"'embed' has shape \[3, 41\], where this library compiles \[3, 39\]"
                                              r".*Re-export it"):
        load(data / "sherman_morrison_step_version1.npz")


def _as_version_1(net, path, revision=3):
    """``net`` (compiled with fuse=False) written as format version 1 wrote it: every layer stored, no order."""
    save(net, path)
    manifest, arrays = read_members(path)
    untied = net.weights.untied().arrays()
    arrays = {name: untied[name] for name in arrays if name != "order"}
    manifest["version"], manifest["compiler"] = 1, {"revision": revision}
    manifest["arrays"] = {name: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _sha(a)}
                          for name, a in arrays.items()}
    return manifest, arrays


def test_version_1_files_that_do_not_rebuild_are_refused_with_how_to_reexport(tmp_path):
    """Revision 3 changed ridge to the RLS form, so a version-1 ridge file (the normal equations) has other arrays
    than today's ridge: refused, saying why; so is any version-1 file whose arrays differ from the rebuild."""
    program = construct.programs.ridge(2, 2, 0.1)
    net = construct.compile(program, construct.Bounds.calibrate(program, gaussian_tasks(2, 2, 16)), fuse=False)
    path = tmp_path / "ridge.npz"
    manifest, arrays = _as_version_1(net, path)
    write_members(path, manifest, arrays)
    assert np.array_equal(load(path).weights.W1, net.weights.W1)  # the same arrays load
    arrays["W2"] = arrays["W2"].copy()
    arrays["W2"][0, 0, 0] += 1.0
    manifest["arrays"]["W2"]["sha256"] = _sha(arrays["W2"])
    write_members(path, manifest, arrays)
    with pytest.raises(WeightsFileError, match=r"format-version-1 file written by compiler revision 3, whose array "
                                              r"'W2' is not what this library compiles .*\(revision 3 changed ridge "
                                              r"to the recursive-least-squares form\).*Re-export it"):
        load(path)
    manifest["compiler"] = {"revision": 4}
    write_members(path, manifest, arrays)
    with pytest.raises(WeightsFileError, match=r"format version 1 was written by compiler revisions \[1, 2, 3\], "
                                              r"not 4"):
        load(path)


def test_a_file_rebuilds_with_its_own_scale_constants(saved, small, monkeypatch):
    """Constants chosen by log/erf evaluations may differ in the last bit on another platform; the file's
    own (within 1e-9 of this machine's choice) are used, so the rebuild is bit for bit."""
    from construct.compiler import constants

    chosen = constants.chosen_constants(np.float64)
    monkeypatch.setattr(constants, "chosen_constants",
                        lambda dtype: {k: v * (1 + 1e-12) for k, v in chosen.items()})
    assert np.array_equal(load(saved).weights.W2, small.weights.W2)


def test_the_unedited_rewrite_loads(saved, small):
    """The helper that damages files writes a loadable file when it damages nothing."""
    write_members(saved, *read_members(saved))
    assert np.array_equal(load(saved).weights.W1, small.weights.W1)


def test_bad_arrays_are_refused(saved):
    manifest, arrays = read_members(saved)
    halved = f"{arrays['W1'].nbytes // 2 + 128:,}"  # float32 data plus the 128-byte .npy header
    cases = [({**arrays, "W1": arrays["W1"].astype(np.float32)}, manifest, f"member W1.npy declares {halved} bytes")]
    changed = arrays["b2"].copy()
    changed[0, 0] += 1.0
    cases.append(({**arrays, "b2": changed}, manifest, "does not match its sha256"))
    rehashed = json.loads(json.dumps(manifest))
    rehashed["arrays"]["b2"]["sha256"] = _sha(changed)  # the hash agrees: the rebuild must catch it
    cases.append(({**arrays, "b2": changed}, rehashed, r"array 'b2' differs first at \[0, 0\]"))
    nan = arrays["W1"].copy()
    nan[0, 0, 0] = np.nan
    cases.append(({**arrays, "W1": nan}, manifest, "array 'W1' has non-finite entries"))
    for arrays_, manifest_, match in cases:
        write_members(saved, manifest_, arrays_)
        with pytest.raises(WeightsFileError, match=match):
            load(saved)


def test_custom_programs_round_trip_from_their_instructions(tmp_path):
    from construct.raw.prompt import input_registers

    layout = construct.Layout(input_registers(2) + [construct.Register("s", (1,)), construct.Register("pred", (1,))])
    program = construct.Program("dot_query", 2, 1, layout, (construct.Mul("x_in", "x_in", "s", (1, 2, 1)),
                                                           construct.Aff("pred", (("s", 0.5),), bias=1.0)))
    net = compiled(program)
    got = load(save(net, tmp_path / "custom.npz"))
    assert got.program.name == "dot_query" and np.array_equal(got.weights.W2, net.weights.W2)
    task = gaussian_tasks(2, 1, 1, seed=3)[0]
    assert np.array_equal(got.predict(*task, tolerance=None), net.predict(*task, tolerance=None))


def test_programs_whose_params_a_file_could_not_vouch_for_are_not_saved(tmp_path):
    ridge = programs.ridge(2, 2, 0.5)
    renamed = construct.Program("ridge", 2, 2, ridge.layout, ridge.instructions, params={"lam": 0.7})
    with pytest.raises(ValueError, match=r"named 'ridge' but is not construct.programs.ridge with its params"):
        save(compiled(renamed), tmp_path / "x.npz")
    custom = construct.Program("mine", 2, 2, ridge.layout, ridge.instructions, params={"lam": 0.5})
    with pytest.raises(ValueError, match=r"custom program 'mine' has params \['lam'\]"):
        save(compiled(custom), tmp_path / "x.npz")
