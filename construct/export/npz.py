"""Export a compiled network to one file, and load it back bit for bit.

File format, version 2
----------------------

One ``.npz`` file: a zip archive (members deflate-compressed) that
``numpy.load(path, allow_pickle=False)`` reads. It holds

* one ``NAME.npy`` per weight array, dense, float64 or float32 (all alike),
  with S stored layers applied at L depths:

      embed      (d+1, D)        token slots -> residual rows
      positions  (T, D)          added to token t (T = 2n + 1, the prompt length)
      readout    (D,)            one-hot on the row of the register ``pred``
      order      (L,) int64      the stored layer applied at each depth (version 2)
      Wq, Wk, Wv (S, m, D, dh)   per stored layer and head
      Wo         (S, m*dh, D)    the heads' outputs, concatenated, -> residual
      bo         (S, D)
      ln_gain, ln_bias (S, D)
      W1         (S, D, U),  b1 (S, U),  W2 (S, U, D),  b2 (S, D)

* ``manifest.json``, UTF-8 JSON (``unzip -p FILE manifest.json`` prints it;
  ``numpy.load(FILE)["manifest.json"]`` gives its bytes). Its keys:
  ``format``, ``version``; ``compiler`` (its ``revision``, and ``fused``); ``equations``
  (the layer, as ``transformer/weights.py`` states it); ``dtype``, ``ln_eps``; ``arrays`` (name -> shape, dtype, sha256 of the
  raw C-order bytes); ``sizes``; ``tokens`` (the prompt encoding);
  ``readout`` (register, row, the columns predictions are read at);
  ``layout`` (every register with its shape and rows ``[start, stop)``, and
  a label per row); ``constants``; ``bounds`` (the domain: a bound per
  register, a floor per divisor); ``layers`` (per depth: its instructions,
  constants, predicted error); ``listing`` (registers and paper forms); and
  ``program`` (``source``: "construct.programs" or "custom"; name, d, n,
  params, its own layout and every instruction as data).

Floats in the manifest are written with Python's shortest round-trip repr,
so they read back exactly. ``load`` trusts nothing in the file (see the
comment above it): it rebuilds the network from the manifest's program,
bounds and dtype and requires the file to equal it, array for array and
field for field, so an edited manifest cannot change what the loaded
network claims or predicts; everything else wrong with a file (damaged,
hostile or oversized archives, other versions, older compiler revisions)
is refused with a ``WeightsFileError`` naming the part.

Version 1 (compiler revisions 1 to 3) had no ``order``: one layer per
instruction, every layer stored. Such a file loads if its arrays are, bit
for bit, today's network compiled with ``fuse=False`` and untied (the
returned network is that network, its repeated layers stored once, so
``save`` writes it as version 2); its manifest is then only read for
the program, bounds, dtype and constants, since the rest describes the
network in the old compiler's words. Revision 3 changed the ridge program
to the recursive-least-squares form, so version-1 ridge files (the normal
equations) do not rebuild and are refused with how to re-export them. A missing file is
a ``FileNotFoundError``. Files are written to a temporary name and renamed,
so an interrupted ``save`` leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..compiler import Bounds, CompiledNetwork, compile, estimate, schedule, size
from .. import programs
from ..compiler.build import REVISION, check_early
from ..compiler.constants import CHOSEN, chosen_constants
from ..compiler.size import DEFAULT_MAX_BYTES, SizeError
from ..instructions import from_data, to_data
from ..raw.program import Program
from ..raw.prompt import x_columns
from ..raw.registers import Layout, Register
from ..transformer.weights import Weights

FORMAT, VERSION, MANIFEST = "icl-construct weights", 2, "manifest.json"
OLD_VERSION, OLD_REVISIONS = 1, (1, 2, 3)  # the previous format, and the compiler revisions that wrote it

# The layer exactly as transformer/weights.py's docstring states it (a test keeps them equal), then what it leaves implicit.
EQUATIONS = (
    "heads      B_j = causal_softmax((H Wq_j)(H Wk_j)^T) (H Wv_j)          j = 1..m",
    "attention  X   = H + [B_1 ... B_m] Wo + bo",
    "MLP        H'  = X + gelu(LN(X) W1 + b1) W2 + b2",
    "LN(v)      = ln_gain * (v - mean(v)) / sqrt(var(v) + ln_eps) + ln_bias   (per token)",
    "input      H_0 = tokens @ embed + positions[:T]; output y_hat = H_L @ readout (one number per token)",
    "H is T x D, one row per token; at depth l the stored layer s = order[l] applies: Wq_j = Wq[s, j] etc.; "
    "[B_1 ... B_m] concatenates along columns",
    "causal_softmax: row i is a softmax over j <= i (entries j > i masked); scores are NOT scaled by 1/sqrt(dh)",
    "gelu(u) = u Phi(u) = u (1 + erf(u / sqrt 2)) / 2, the exact erf form",
    "LN: mean and (biased) variance over the D entries of one token; layer norm only before the MLP",
)

ARRAY_MEANINGS = {
    "embed": "(d+1, D): token slots [y, x_1..x_d] -> residual rows",
    "positions": "(T, D): added to token t",
    "readout": "(D,): prediction = final state @ readout",
    "Wq": "(L, m, D, dh)", "Wk": "(L, m, D, dh)", "Wv": "(L, m, D, dh)", "Wo": "(L, m*dh, D)", "bo": "(L, D)",
    "ln_gain": "(L, D)", "ln_bias": "(L, D)", "W1": "(L, D, U)", "b1": "(L, U)", "W2": "(L, U, D)", "b2": "(L, D)",
    "order": "(depth,) int64: the stored layer (0..L-1) applied at each depth; a tied layer appears several times",
}


def _array_dtype(name: str, dtype) -> np.dtype:
    """Every array has the file's float dtype but the layer order, which is int64."""
    return np.dtype(np.int64) if name == "order" else np.dtype(dtype)


class WeightsFileError(ValueError):
    """A weights file that cannot be loaded: truncated, corrupt, of another version, or inconsistent."""


# -- saving ---------------------------------------------------------------------------


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).reshape(-1).view(np.uint8)).hexdigest()


def _numbers(value, what: str):
    """A float64 constant as JSON (a float or nested lists); symbolic constants are refused."""
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"save: {what} is not numeric ({value!r}); only numeric programs can be exported "
                         "(symbolic constants are for proofs)")
    return arr.astype(np.float64).tolist()


def _sizes(program: Program, w: Weights) -> dict:
    return {"d": program.d, "n": program.n, "tokens": 2 * program.n + 1, "layers": w.depth,
            "stored_layers": w.stored, "heads": w.heads,
            "residual_width": w.width, "head_size": w.head_size, "mlp_width": w.mlp_width,
            "parameters": w.parameter_count}


def _source(program: Program) -> str:
    """"construct.programs" if a constructor of that module rebuilds ``program`` exactly, else "custom".

    ``load`` rebuilds library programs from their name and parameters, and
    custom programs from their instructions; a custom program's parameters
    could then claim anything, so it is saved without them.
    """
    if program.name in CONSTRUCTORS:
        try:
            same = CONSTRUCTORS[program.name](program.d, program.n, program.params)
        except (KeyError, ValueError, TypeError):
            same = None
        if same is None or [to_data(i) for i in same.instructions] != [to_data(i) for i in
                                                                            program.instructions]:
            raise ValueError(f"save: this program is named {program.name!r} but is not "
                             f"construct.programs.{program.name} with its params; rename it")
        return "construct.programs"
    if program.params:
        raise ValueError(f"save: the custom program {program.name!r} has params {sorted(program.params)}; a file "
                         "cannot show that its instructions use them, so save it without params")
    return "custom"


def manifest(net: CompiledNetwork) -> dict:
    """Everything about ``net`` except the arrays themselves (they are described, not included)."""
    program, w, layout = net.program, net.weights, net.layout
    own = set(program.layout.names)
    return {
        "format": FORMAT,
        "version": VERSION,
        "compiler": {**compiler_entry(net), "note": "load() rebuilds the network and requires this file to equal it"},
        "equations": list(EQUATIONS),
        "dtype": str(w.dtype),
        "ln_eps": w.ln_eps,
        "arrays": {name: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _sha256(a),
                          "meaning": ARRAY_MEANINGS[name]} for name, a in w.arrays().items()},
        "sizes": _sizes(program, w),
        "tokens": {
            "x": "x~ = [0, x_1, ..., x_d] (slot 0 is the label slot)",
            "y": "y~ = [y, 0, ..., 0]",
            "order": "x~_1, y~_1, x~_2, y~_2, ..., x~_n, y~_n, x~_q (T = 2n + 1 tokens)",
            "array": "tokens is T x (d+1): row 2k holds x~_{k+1}, row 2k+1 holds y~_{k+1}, row 2n the query",
        },
        "readout": {
            "register": program.readout, "row": layout.span(program.readout)[0],
            "columns": x_columns(program.n).tolist(),
            "meaning": "y_hat at column 2k predicts y_{k+1} from examples 1..k; column 2n is the query's",
            "query_only": program.query_only,
        },
        "layout": {
            "width": layout.width,
            "registers": [{"name": reg.name, "shape": list(reg.shape), "rows": list(layout.span(reg.name)),
                           "part": "program" if reg.name in own else "compiler"} for reg in layout],
            "row_labels": list(layout.labels),
        },
        "constants": dict(net.constants),
        "bounds": {"values": dict(net.bounds.values), "floors": dict(net.bounds.floors)},
        "layers": [{"index": r.index, "instructions": [list(step.attention), list(step.mlp)],
                    "parts": [{"instruction": text, "predicted_error": error, "out_bound": bound}
                              for text, error, bound in r.parts],
                    "constants": r.constants} for r, step in zip(net.layers, net.steps)],
        "listing": {"registers": program.listing("registers").splitlines(),
                    "paper": program.listing("paper").splitlines()},
        "program": program_entry(program),
    }


def compiler_entry(net: CompiledNetwork) -> dict:
    """The manifest's ``compiler``: the revision that compiled ``net``, and whether its schedule is fused."""
    return {"revision": REVISION, "fused": tuple(net.steps) != schedule.unfused(net.program)}


def program_entry(program: Program) -> dict:
    """The manifest's ``program``: what ``rebuild_inputs`` rebuilds it from (also the Hugging Face manifest's)."""
    return {
        "source": _source(program),
        "name": program.name, "d": program.d, "n": program.n, "readout": program.readout,
        "query_only": program.query_only,
        "layout": [{"name": reg.name, "shape": list(reg.shape), "start": program.layout.span(reg.name)[0]}
                   for reg in program.layout],
        "params": {k: _numbers(v, f"parameter {k!r} of {program.name}") for k, v in program.params.items()},
        "instructions": [to_data(ins) for ins in program.instructions],
    }


def save(net: CompiledNetwork, path, compress: bool = True) -> Path:
    """Write ``net`` to ``path`` (``.npz`` is appended if missing), atomically; returns the path written."""
    if not isinstance(net, CompiledNetwork):
        raise TypeError(f"save takes a CompiledNetwork, got {type(net).__name__}")
    if net.gpt2 is not None:
        raise ValueError("this network was compiled for GPT-2 blocks, which the npz format (the paper's layer) does "
                         "not hold; write it with construct.hf.save_pretrained (icl-construct export --format hf)")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save: no directory {path.parent} to write {path.name} into")
    text = json.dumps(manifest(net), indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
                z.writestr(MANIFEST, text)
                for name, a in net.weights.arrays().items():
                    # zip64 only when needed: some readers of other languages lack it
                    with z.open(f"{name}.npy", "w", force_zip64=a.nbytes + 4096 >= zipfile.ZIP64_LIMIT) as member:
                        np.lib.format.write_array(member, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; the export is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


# -- loading ----------------------------------------------------------------------------
#
# The file is not trusted. The manifest is read first (size-capped, strict JSON); the program,
# bounds and dtype it names are rebuilt with the library's own constructors; the arrays' shapes
# follow from that program, and every zip member and .npy header is checked against them before
# anything is read; finally the network is compiled again and the file must equal what this
# compiler writes for that program and domain: every array bit for bit, and the whole manifest.
# So no edit can make a loaded network claim or predict anything its program and domain do not.

MAX_MANIFEST_BYTES = 16 * 2**20
MAX_HEADER_BYTES = 4096  # an .npy header of one of our arrays is under 200 bytes
DEFLATE_RATIO = 1032  # deflate expands at most about 1032-fold
CONSTRUCTORS = {name: (lambda algorithm: lambda d, n, p: algorithm.program(d, n, **p))(algorithm)
                for name, algorithm in programs.REGISTRY.items()}
# What a damaged archive can raise from zipfile, zlib, struct and numpy's header parser.
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError, KeyError, IndexError,
           TypeError, OverflowError, NotImplementedError, RuntimeError, SyntaxError, UnicodeDecodeError,
           struct.error, tokenize.TokenError, MemoryError, RecursionError)


def load(path, max_bytes: float | None = DEFAULT_MAX_BYTES) -> CompiledNetwork:
    """The network saved at ``path``: the one this library compiles for the file's program, domain and dtype.

    Refuses with a ``WeightsFileError`` that names the part at fault any file
    that is damaged, of another format version, written by another compiler
    revision, or different in any array or manifest field from what the
    rebuild gives. ``max_bytes`` bounds the network's size, checked before
    its arrays are read. A missing file is a ``FileNotFoundError``.
    """
    size.check_limits(max_bytes, None)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    with path.open("rb") as f:  # permission errors surface here, as themselves
        try:
            archive = zipfile.ZipFile(f)
        except _DAMAGE + (OSError,) as err:
            raise WeightsFileError(f"{path}: not a readable .npz archive (truncated or corrupt?): {_why(err)}") \
                from None
        with archive:
            stated = _read_manifest(path, archive, _members(path, archive, check_arrays=False))
            old = _same(stated["version"], OLD_VERSION)
            names = [name for name in ARRAY_MEANINGS if not (old and name == "order")]
            members = _members(path, archive, arrays=names)
            declared, dtype = _declared_arrays(path, stated, members, max_bytes, names)
            stored = declared["Wq"][0]
            sizes = {"d": declared["embed"][0] - 1, "n": (declared["positions"][0] - 1) / 2,
                     "width": declared["readout"][0], "stored": stored,
                     "depth": declared["order"][0] if "order" in declared else stored}  # version 1: all stored
            program, bounds, constants = rebuild_inputs(path, stated, dtype, sizes)
            fuse = False if old else stated["compiler"].get("fused") if isinstance(stated.get("compiler"), dict) \
                else None
            if not isinstance(fuse, bool):
                raise WeightsFileError(f"{path}: the manifest's compiler.fused is {fuse!r}, not true or false")
            try:
                check_early(program, dtype, fuse, max_bytes=max_bytes)  # a long program, before its layers are planned
                shape = estimate(program, bounds, dtype=dtype, fuse=fuse)
            except SizeError:
                raise
            except ValueError as err:
                raise WeightsFileError(f"{path}: the manifest's program does not compile: {err}") from None
            shapes = shape.array_shapes()
            if old:  # every layer stored
                shapes = {name: (shape.applied, *s[1:]) if s and name not in ("embed", "positions", "readout")
                          else s for name, s in shapes.items() if name != "order"}
            for name, want in shapes.items():
                if declared[name] != want and old:
                    raise _not_rebuilt(path, stated, program, f"array {name!r} has shape {list(declared[name])}, "
                                                              f"where this library compiles {list(want)}")
                if declared[name] != want:
                    raise WeightsFileError(f"{path}: the manifest declares array {name!r} of shape "
                                           f"{list(declared[name])}; its program gives {list(want)}")
            arrays = _read_arrays(path, archive, members, declared, np.dtype(dtype))
    try:
        net = compile(program, bounds, dtype=dtype, max_bytes=max_bytes, scale_constants=constants, fuse=fuse)
    except SizeError:
        raise
    except ValueError as err:  # the assembled weights of the manifest's domain leave the dtype's range
        raise WeightsFileError(f"{path}: the manifest's program does not compile: {err}") from None
    if old:
        return _version_1(path, net, arrays, stated)
    _require_same(path, net, arrays, stated)
    return net


def _version_1(path: Path, net: CompiledNetwork, arrays: dict[str, np.ndarray], stated: dict) -> CompiledNetwork:
    """A version-1 file is the unfused network with every layer stored: if its arrays are that, the network
    (tied, as this library compiles it, so that ``save`` writes it as version 2)."""
    _require_hashes(path, arrays, stated)
    untied = net.weights.untied()
    for name, a in arrays.items():
        if not np.array_equal(a, getattr(untied, name)):
            raise _not_rebuilt(path, stated, net.program, f"array {name!r} is not what this library compiles for "
                                                          "its program, bounds and dtype")
    return net


def _not_rebuilt(path: Path, stated: dict, program: Program, what: str) -> WeightsFileError:
    revision = stated["compiler"].get("revision") if isinstance(stated.get("compiler"), dict) else 1
    why = " (revision 3 changed ridge to the recursive-least-squares form)" if program.name == "ridge" else ""
    return WeightsFileError(f"{path}: a format-version-1 file written by compiler revision {revision}, whose {what}"
                            f"{why}; it cannot be vouched for. Re-export it from its program and domain: "
                            "construct.save(construct.compile(program, bounds), path), or icl-construct export")


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _members(path: Path, archive: zipfile.ZipFile, check_arrays: bool = True,
             arrays=tuple(ARRAY_MEANINGS)) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name: exactly the manifest and the ``arrays``, plain or deflated.

    With ``check_arrays`` false only the manifest must be there (so that a file of another format version is
    refused for its version, not for the arrays that version has)."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    expected = {MANIFEST} | {f"{name}.npy" for name in arrays}
    if MANIFEST not in names:
        raise WeightsFileError(f"{path}: no {MANIFEST} in the archive; not an icl-construct weights file")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
    if duplicated or (missing or extra) and check_arrays:
        raise WeightsFileError(f"{path}: the archive's members differ from the format's: duplicated {duplicated}, "
                               f"missing {missing}, unknown {extra}")
    for info in infos:
        if info.flag_bits & 0x1:
            raise WeightsFileError(f"{path}: member {info.filename} is encrypted; the format has no encryption")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise WeightsFileError(f"{path}: member {info.filename} uses compression method {info.compress_type}; "
                                   "the format uses only stored (0) or deflated (8)")
        most = info.compress_size if info.compress_type == zipfile.ZIP_STORED else DEFLATE_RATIO * info.compress_size
        if info.file_size > most + 1024:
            raise WeightsFileError(f"{path}: member {info.filename} declares {info.file_size:,} bytes, more than its "
                                   f"{info.compress_size:,} stored bytes can hold")
    return {info.filename: info for info in infos}


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, refused without reading if its declared size exceeds ``limit``; CRC checked."""
    if info.file_size > limit:
        raise WeightsFileError(f"{path}: member {info.filename} declares {info.file_size:,} bytes, more than the "
                               f"{limit:,} it may hold")
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except _DAMAGE + (OSError,) as err:
        raise WeightsFileError(f"{path}: cannot read {info.filename} (truncated or corrupt?): {_why(err)}") from None
    if len(data) != info.file_size:
        raise WeightsFileError(f"{path}: {info.filename} holds {len(data)} bytes, its zip entry says "
                               f"{info.file_size} (truncated or corrupt?)")
    return data


def _refuse_constant(token: str):
    raise ValueError(f"the manifest contains {token}; every number must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"the manifest contains {text}, which overflows a float; every number must be finite")
    return value


def parse_json(raw: bytes):
    """Strict JSON: UTF-8, every number finite (no NaN, Infinity or overflowing literals); ValueError otherwise."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _read_manifest(path: Path, archive: zipfile.ZipFile, members: dict) -> dict:
    raw = _read_member(path, archive, members[MANIFEST], MAX_MANIFEST_BYTES)
    try:
        stated = parse_json(raw)
    except ValueError as err:
        raise WeightsFileError(f"{path}: cannot read {MANIFEST} (corrupt?): {_why(err)}") from None
    if not isinstance(stated, dict) or stated.get("format") != FORMAT:
        raise WeightsFileError(f"{path}: {MANIFEST} does not declare format {FORMAT!r}")
    if "version" not in stated:
        raise WeightsFileError(f"{path}: {MANIFEST} has no format version")
    if not (_same(stated["version"], VERSION) or _same(stated["version"], OLD_VERSION)):
        raise WeightsFileError(f"{path}: format version {stated['version']!r} is not supported "
                               f"(this library reads versions {OLD_VERSION} and {VERSION}); re-export it from its "
                               "program and domain: construct.save(construct.compile(program, bounds), path), "
                               "or icl-construct export")
    revision = stated.get("compiler", {"revision": 1})
    revision = revision.get("revision") if isinstance(revision, dict) else revision
    if _same(stated["version"], OLD_VERSION):
        if not any(_same(revision, r) for r in OLD_REVISIONS):
            raise WeightsFileError(f"{path}: format version {OLD_VERSION} was written by compiler revisions "
                                   f"{list(OLD_REVISIONS)}, not {revision!r}; the manifest is inconsistent")
    elif not _same(revision, REVISION):
        raise WeightsFileError(
            f"{path}: written by compiler revision {revision!r}; this library compiles revision {REVISION} and "
            "can only vouch for a file it rebuilds exactly. Re-export it from its program and domain: "
            "construct.save(construct.compile(program, bounds), path), or icl-construct export")
    return stated


def _field(stated: dict, *keys):
    value = stated
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"missing key {'.'.join(map(str, keys))!r}")
        value = value[key]
    return value


def rebuild_inputs(path: Path, stated: dict, dtype: str, sizes: dict, arrays: str = "the declared arrays"):
    """The program, bounds and chosen constants the manifest states, built by the library itself.

    ``stated`` is the manifest (its ``program``, ``bounds`` and
    ``constants``, as ``manifest`` writes them); ``sizes`` the sizes the
    file's ``arrays`` declare: ``d``, ``n``, residual ``width``, ``stored``
    layers and ``depth`` (applied layers). The program's sizes are held to
    them before anything grows with them: d and n before the program is
    built, its width and depth before its layers are planned. Shared by
    ``load`` and ``construct.hf.load``.
    """
    try:
        spec = _field(stated, "program")
        name, d, n, params = (_field(spec, k) for k in ("name", "d", "n", "params"))
        for what, value in (("d", d), ("n", n)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value == sizes[what]):
                raise ValueError(f"program.{what} is {value!r}; {arrays} are for {what} = {sizes[what]:g}")
        if not isinstance(params, dict):
            raise ValueError("program.params must be an object")
        source = _field(spec, "source")
        if source == "construct.programs":
            if name not in CONSTRUCTORS:
                raise ValueError(f"program.name {name!r} is not one of construct.programs' {sorted(CONSTRUCTORS)}")
            params = {k: (np.array(v, dtype=np.float64) if isinstance(v, list) and
                          all(_is_number(x) for x in v) else v) for k, v in params.items()}
            program = CONSTRUCTORS[name](d, n, params)
        elif source == "custom":
            if name in CONSTRUCTORS or params:
                raise ValueError(f"a custom program is not named like construct.programs' and has no params; "
                                 f"got {name!r} with params {sorted(params)}")
            program = _custom_program(spec)
        else:
            raise ValueError(f"program.source is {source!r}, not 'construct.programs' or 'custom'")
        stored, depth = sizes["stored"], sizes["depth"]
        if program.width > sizes["width"] or not stored <= depth <= program.depth:
            raise ValueError(f"the program has width {program.width} and {program.depth} instructions; {arrays} "
                             f"have width {sizes['width']}, {stored} stored layers and depth {depth}")
        values, floors = _field(stated, "bounds", "values"), _field(stated, "bounds", "floors")
        if not (isinstance(values, dict) and isinstance(floors, dict)):
            raise ValueError("bounds.values and bounds.floors must be objects")
        bounds = Bounds(values, floors)
        bounds.require(program)
        extra = sorted(set(values) - set(program.layout.names))
        if extra:
            raise ValueError(f"bounds for registers the program does not have: {extra}")
        constants = _field(stated, "constants")
        if not isinstance(constants, dict):
            raise ValueError("constants must be an object")
        chosen = {k: _field(constants, k) for k in CHOSEN}
        local = chosen_constants(dtype)
        for k, v in chosen.items():
            if not _is_number(v) or not abs(v - local[k]) <= 1e-9 * local[k]:
                raise ValueError(f"constants.{k} is {v!r}; this compiler chooses {local[k]!r} "
                                 "(a constant is a property of the compiler, not of the file)")
        return program, bounds, {k: float(v) for k, v in chosen.items()}
    except (ValueError, TypeError, KeyError) as err:
        raise WeightsFileError(f"{path}: the manifest's program or domain is malformed: {err}") from None


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _strings(*values) -> None:
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"expected a register name, got {v!r}")


def _custom_program(spec: dict) -> Program:
    """A program not from ``construct.programs``, from its instruction data, every field type-checked."""
    registers = spec.get("layout")
    if not isinstance(registers, list):
        raise ValueError("a custom program needs program.layout, a list of registers")
    regs = []
    for r in registers:
        if not (isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("shape"), list)
                and isinstance(r.get("start"), int) and not isinstance(r.get("start"), bool)):
            raise ValueError(f"a register is {{name, shape, start}}, got {r!r}")
        regs.append((Register(r["name"], tuple(r["shape"])), r["start"]))
    layout = Layout([reg for reg, _ in regs], {reg.name: start for reg, start in regs})
    query_only = spec.get("query_only")
    if not isinstance(query_only, bool):
        raise ValueError(f"program.query_only must be true or false, got {query_only!r}")
    readout = spec.get("readout")
    _strings(readout)
    instructions = spec.get("instructions")
    if not isinstance(instructions, list):
        raise ValueError("program.instructions must be a list")
    _strings(spec["name"])
    return Program(spec["name"], spec["d"], spec["n"], layout, tuple(from_data(i) for i in instructions),
                   readout=readout, query_only=query_only)


def _declared_arrays(path: Path, stated: dict, members: dict, max_bytes, names) -> tuple[dict, str]:
    """The arrays' shapes as the manifest declares them, checked against the zip entries and ``max_bytes``.

    Everything the loader builds before reading the arrays (the program,
    its layer plans) is bounded by these shapes, so they are checked first.
    """
    dtype = stated.get("dtype")
    if dtype not in ("float64", "float32"):
        raise WeightsFileError(f"{path}: the manifest's dtype is {dtype!r}, not 'float64' or 'float32'")
    spec = stated.get("arrays")
    if not isinstance(spec, dict) or set(spec) != set(names):
        raise WeightsFileError(f"{path}: the manifest's array list differs from the format's {sorted(names)}")
    declared, total = {}, 0
    for name in names:
        item = _array_dtype(name, dtype).itemsize
        entry = spec[name]
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                for s in shape)):
            raise WeightsFileError(f"{path}: the manifest's arrays.{name}.shape is {shape!r}, not a list of sizes")
        if entry.get("dtype") != str(_array_dtype(name, dtype)):
            raise WeightsFileError(f"{path}: the manifest's arrays.{name}.dtype is {entry.get('dtype')!r}; "
                                   f"the file's is {_array_dtype(name, dtype)}")
        nbytes = int(np.prod(shape, dtype=object)) * item
        file_size = members[f"{name}.npy"].file_size
        if not nbytes < file_size <= nbytes + MAX_HEADER_BYTES:
            raise WeightsFileError(f"{path}: member {name}.npy declares {file_size:,} bytes; an array of shape "
                                   f"{shape} {_array_dtype(name, dtype)} takes {nbytes:,} plus a header")
        declared[name] = tuple(shape)
        total += nbytes
    if max_bytes is not None and total > max_bytes:
        raise size.SizeError(f"{path}: the arrays take {size.gib(total)}, above the limit of {size.gib(max_bytes)}; "
                             "raise it with load(path, max_bytes=...) if this machine has the memory")
    return declared, dtype


def _read_arrays(path: Path, archive: zipfile.ZipFile, members: dict, shapes: dict[str, tuple[int, ...]],
                 dtype: np.dtype) -> dict[str, np.ndarray]:
    """Every array, each checked (zip size, .npy header, then CRC and finiteness) against ``shapes``."""
    arrays = {}
    for name in shapes:
        shape, item = shapes[name], _array_dtype(name, dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * item.itemsize
        data = _read_member(path, archive, members[f"{name}.npy"], MAX_HEADER_BYTES + nbytes)
        arrays[name] = _parse_npy(path, name, data, shape, item)
    return arrays


def _parse_npy(path: Path, name: str, data: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    try:
        stream = io.BytesIO(data)
        major, _ = np.lib.format.read_magic(stream)
        reader = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}.get(major)
        if reader is None:
            raise ValueError(f".npy format version {major} is not 1 or 2")
        got_shape, fortran, got_dtype = reader(stream, max_header_size=MAX_HEADER_BYTES)
    except _DAMAGE as err:
        raise WeightsFileError(f"{path}: array {name!r} has a bad .npy header: {_why(err)}") from None
    if got_shape != shape or fortran or got_dtype != dtype.newbyteorder("<"):
        raise WeightsFileError(f"{path}: array {name!r} is {got_dtype} {got_shape}"
                               f"{' (Fortran order)' if fortran else ''}; the program gives {dtype} {shape}")
    body = data[stream.tell():]
    if len(body) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise WeightsFileError(f"{path}: array {name!r} holds {len(body)} bytes of data for shape {shape}")
    a = np.frombuffer(body, dtype=got_dtype).reshape(shape).astype(dtype)
    if dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise WeightsFileError(f"{path}: array {name!r} has non-finite entries")
    return a


def _params(program: Program) -> str:
    return ", ".join(f"{k} = {np.asarray(v).tolist()}" for k, v in program.params.items())


def _same(a, b) -> bool:
    """JSON values equal in value and in type (True is not 1, 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _require_same(path: Path, net: CompiledNetwork, arrays: dict[str, np.ndarray], stated: dict) -> None:
    """The file must be exactly what this compiler writes for its program and domain."""
    _require_hashes(path, arrays, stated)
    for name, rebuilt in net.weights.arrays().items():
        if not np.array_equal(arrays[name], rebuilt):
            where = tuple(int(i) for i in np.argwhere(arrays[name] != rebuilt)[0])
            p = net.program
            raise WeightsFileError(
                f"{path}: the arrays are not the network that the manifest's program ({p.name}, d = {p.d}, n = {p.n}, "
                f"{_params(p)}), bounds and dtype compile to: array {name!r} differs first at {list(where)} "
                f"({arrays[name][where]!r} in the file, {rebuilt[where]!r} rebuilt); the manifest's program.params, "
                "bounds or dtype were edited")
    require_same_json(path, stated, json.loads(json.dumps(manifest(net), allow_nan=False)))


def require_same_json(path, stated, want, what: str = "the manifest's", by: str = "its program and domain") -> None:
    """``stated`` (read from a file) must equal ``want`` value for value and type for type (``_same``); else a
    ``WeightsFileError`` naming ``path`` and the first field that differs, with both values."""
    if not _same(stated, want):
        where, got, expected = _first_difference(stated, want)
        raise WeightsFileError(f"{path}: {what} {where or 'top level'} is {got!r}; the network {by} describe has "
                               f"{expected!r} (edited, or inconsistent)")


def _require_hashes(path: Path, arrays: dict[str, np.ndarray], stated: dict) -> None:
    for name, a in arrays.items():
        if _sha256(a) != stated["arrays"][name].get("sha256"):
            raise WeightsFileError(f"{path}: array {name!r} does not match its sha256 in the manifest "
                                   "(altered, or the manifest comes from another export)")


def _first_difference(got, want, where: str = ""):
    """Where two JSON-like values first differ, and the two parts there (so an error names one field, not all)."""
    if isinstance(got, dict) and isinstance(want, dict) and got.keys() == want.keys():
        key = next(k for k in want if not _same(got[k], want[k]))
        return _first_difference(got[key], want[key], f"{where}.{key}" if where else key)
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        k = next(k for k, (a, b) in enumerate(zip(got, want)) if not _same(a, b))
        return _first_difference(got[k], want[k], f"{where}[{k}]")
    if isinstance(got, dict) and isinstance(want, dict):
        diff = sorted(set(got) ^ set(want))
        return f"{where} keys {diff}" if where else f"keys {diff}", sorted(got), sorted(want)
    return where, got, want
