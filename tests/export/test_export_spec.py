"""docs/EXPORT.md, the export format's specification, agrees with the code that writes and loads the files.

Its tables are held to the writer's arrays, manifest keys and Hugging Face
tensors; its numbers to the constants they come from, or to the behaviour
they describe. ``tests/export/test_export_reader.py`` runs a reader written from
it; docs/WEIGHTS.md points to it.
"""

import inspect
import json
import re
import zipfile

import numpy as np
import pytest

import construct
from construct import programs
from construct.compiler import bounds as domain
from construct.compiler.build import REVISION
from construct.compiler.constants import CHOSEN
from construct.compiler.size import DEFAULT_MAX_BYTES
from construct.export import manifest, spec
from construct.instructions import KINDS, Avg, to_data
from construct.tasks import gaussian_tasks

from support import ROOT

TEXT = (ROOT / "docs" / "EXPORT.md").read_text()
FLAT = " ".join(TEXT.split())  # for phrases that a line break may split


def table(header: str) -> list[list[str]]:
    """The rows of every table whose header line starts with ``header``, as lists of cells (``\\|`` read as ``|``)."""
    lines = TEXT.splitlines()
    rows = []
    for start in [k for k, line in enumerate(lines) if line.startswith(header)]:
        for line in lines[start + 2:]:
            if not line.startswith("|"):
                break
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@pytest.fixture(scope="module")
def net():
    program = programs.ridge(2, 3, 0.5)
    return construct.compile(program, construct.Bounds.calibrate(program, gaussian_tasks(2, 3, 16, seed=1)))


def test_the_array_table_is_the_formats(net):
    rows = table("| array | shape | dtype | role |")
    shapes = {name: re.match(r"\([^)]*\)", row[1]).group() for row in rows for name in names(row[0])}
    assert sorted(shapes) == sorted(spec.ARRAY_MEANINGS) and list(spec.ARRAY_MEANINGS) == list(net.weights.arrays())
    for name, meaning in spec.ARRAY_MEANINGS.items():  # the meanings state the shapes in the same letters
        assert meaning.startswith(shapes[name]), name
    L, S = net.weights.depth, net.weights.stored
    assert net.weights.order.shape == (L,) and net.weights.W1.shape[0] == S < L


def test_the_manifest_table_lists_every_key_in_order(net):
    written = manifest(net)
    assert [names(row[0])[0] for row in table("| key | type | meaning |")] == list(written)
    rows = {names(row[0])[0]: row[2] for row in table("| key | type | meaning |")}
    for key in ("compiler", "sizes", "readout"):  # every sub-key named in its row
        for sub in written[key]:
            assert f"`{sub}`" in rows[key], (key, sub)
    assert all(f"`{k}`" in rows["arrays"] for k in written["arrays"]["W1"])
    assert all(f"`{k}`" in rows["layers"] for k in written["layers"][0]) and "`x_norm`" in rows["bounds"]
    assert f"`revision` (integer: the compiler revision that wrote the file, {REVISION} today)" in rows["compiler"]
    assert f"({written['ln_eps']!r})" in rows["ln_eps"] and f'`"{spec.FORMAT}"`' in rows["format"]
    assert rows["version"].startswith(f"{spec.VERSION} ")


def test_the_instruction_table_is_the_instructions_data(net):
    rows = {names(row[0])[0]: row[1] for row in table("| kind | fields | in every column i |")}
    assert set(rows) == set(KINDS)
    examples = {ins["kind"]: ins for ins in manifest(net)["program"]["instructions"]}  # ridge has all four but avg
    examples["avg"] = to_data(Avg("x_in", "mean"))
    assert set(examples) == set(KINDS)
    for kind, data in examples.items():
        assert [k for k in data if k != "kind"] == [k for k in names(rows[kind]) if k in data], kind


def test_the_numbers_are_the_codes():
    assert f"at most {spec.MAX_MANIFEST_BYTES:,} bytes (16 MiB)" in FLAT
    assert f"header of at most {spec.MAX_HEADER_BYTES} bytes" in FLAT
    assert f"(default {DEFAULT_MAX_BYTES / 2**30:g} GiB)" in FLAT
    assert domain.NORM_ROUNDING == 2.0**-40 and "`x_norm * (1 + 2^-40)`" in FLAT
    assert domain.SLACK == {np.dtype(np.float64): 2.0**-20, np.dtype(np.float32): 2.0**-7}
    assert "by a relative 2^-20 in float64 and 2^-7 in float32" in FLAT
    assert "largest |value| seen times a margin (default 4)" in FLAT
    assert inspect.signature(construct.Bounds.calibrate).parameters["margin"].default == 4.0
    assert CHOSEN == ("attention_sharpness", "product_scale", "bypass_offset")
    assert "`constants.attention_sharpness`, `product_scale` and `bypass_offset`" in FLAT
    assert f"`version` ({pytest.importorskip('construct.runtimes.hf').VERSION})" in FLAT


def test_the_domain_checks_slack_is_1e_6(net):
    """Section 8's checks 4 and 5: a register up to its bound times 1 + 1e-6 passes, beyond it is refused; a
    divisor down to its floor times 1 - 1e-6 passes, below it is refused."""
    assert "`values[name] * (1 + 1e-6)`" in FLAT and "`floors[den] * (1 - 1e-6)`" in FLAT
    depth, width = len(net.steps), net.layout.width
    rows = {name: net.layout.rows(name) for name in net.program.layout.names}
    den = next(ins.divisor for l in range(1, depth + 1) for ins in net.layer_instructions(l) if ins.divisor)
    peak, low = np.zeros((depth + 1, width)), np.ones((depth + 1, width))
    for name, r in rows.items():
        peak[:, r] = net.bounds.values[name] * (1 + 0.9e-6)
    low[:, rows[den]] = net.bounds.floors[den] * (1 - 0.9e-6)
    net._guard(peak, low)
    beyond = peak.copy()
    beyond[3, rows["w"].start] = net.bounds.values["w"] * (1 + 1.1e-6)
    with pytest.raises(construct.DomainError, match="register 'w' reached"):
        net._guard(beyond, low)
    below = low.copy()
    divides = next(l for l in range(1, depth + 1) if any(ins.divisor for ins in net.layer_instructions(l)))
    below[divides, rows[den].start] = net.bounds.floors[den] * (1 - 1.1e-6)
    with pytest.raises(construct.DomainError, match=f"divisor '{den}' fell to .* in layer {divides} "):
        net._guard(peak, below)
    below = low.copy()
    below[divides - 1, rows[den].start] = 0.0  # the state before the dividing layer is not checked
    net._guard(peak, below)


def test_a_chosen_constant_further_than_1e_9_from_the_compilers_is_refused(net, tmp_path):
    """Section 10: the three chosen constants are taken from the file within 1e-9, no further."""
    assert "when within 1e-9 of this library's choice" in FLAT
    path = construct.save(net, tmp_path / "net.npz")
    with zipfile.ZipFile(path) as z:
        stated = json.loads(z.read(spec.MANIFEST))
        arrays = {name: z.read(name) for name in z.namelist() if name != spec.MANIFEST}
    stated["constants"]["product_scale"] *= 1 + 2e-9
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(spec.MANIFEST, json.dumps(stated))
        for name, data in arrays.items():
            z.writestr(name, data)
    with pytest.raises(construct.WeightsFileError, match="constants.product_scale is .*; this compiler chooses"):
        construct.load(path)


def test_the_hugging_face_tables_are_the_files():
    hf = pytest.importorskip("construct.runtimes.hf")
    gpt2 = construct.compile(programs.ridge(2, 2, 0.5), x_max=1.0, y_max=2.0, architecture="gpt2")
    D, U, T, d1 = gpt2.gpt2.width, gpt2.gpt2.mlp_width, 2 * 2 + 1, 3
    letters = {"D": D, "U": U, "2n+1": T, "d+1": d1, "3D": 3 * D, "1": 1}

    def shapes(cell):
        return [tuple(letters[x.strip()] for x in group.split(",") if x.strip())
                for group in re.findall(r"\(([^)]*)\)", cell)]

    documented = {}
    for row in table("| key | shape | role |"):  # the two safetensors tables
        keys, sizes = names(row[0]), shapes(row[1])
        for key, size in zip(keys, sizes * len(keys) if len(sizes) == 1 else sizes):
            documented[key] = size
    state = {re.sub(r"^h\.0\.", "h.{l}.", k): v.shape for k, v in hf.state_dict(gpt2).items()
             if not re.match(r"h\.[1-9]", k)}
    assert {k: v for k, v in documented.items() if not k.startswith("read_")} == state
    assert {k: v for k, v in documented.items() if k.startswith("read_")} == \
        {k: v.shape for k, v in hf.read_in_out(gpt2).items()}
    for field in hf.config_dict(gpt2):
        if field not in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "bos_token_id", "eos_token_id"):
            assert f"`{field}`" in TEXT, field
    stated = hf._manifest(gpt2)
    assert all(f"`{key}`" in TEXT for key in stated) and f'`"{hf.FORMAT}"`' in TEXT


def test_the_weights_page_points_to_the_specification():
    page = (ROOT / "docs" / "WEIGHTS.md").read_text()
    assert "[EXPORT.md](EXPORT.md)" in page[:page.index("## The format, in short") + 200]
