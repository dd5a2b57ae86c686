"""Loading an npz weights file: the network this library compiles for the file's program, domain and dtype.

The file is not trusted. The manifest is read first (size-capped, strict
JSON); the program, bounds and dtype it names are rebuilt with the
library's own constructors; the arrays' shapes follow from that program,
and every zip member and ``.npy`` header is checked against them before
anything is read; finally the network is compiled again and the file must
equal what ``writer`` writes for that program and domain: every array bit
for bit, and the whole manifest. So no edit can make a loaded network
claim or predict anything its program and domain do not. Everything else
wrong with a file (damaged, hostile or oversized archives, other versions,
older compiler revisions) is refused with a ``WeightsFileError`` naming
the part; what the library itself gets wrong surfaces as it is.

Version 3 is version 2 with the ``avg`` instruction (an averaging head):
``save`` writes version 3 for a program with one, version 2 otherwise, and
a file must be in the version its program needs (``spec.version_for``).

Version 1 (compiler revisions 1 to 3) had no ``order``: one layer per
instruction, every layer stored. Such a file loads if its arrays are, bit
for bit, today's network compiled with ``fuse=False`` and untied (the
returned network is that network, its repeated layers stored once, so
``save`` writes it as version 2); its manifest is then only read for the
program, bounds, dtype and constants, since the rest describes the network
in the old compiler's words. Revision 3 changed the ridge program to the
recursive-least-squares form, so version-1 ridge files (the normal
equations) do not rebuild and are refused with how to re-export them.

``rebuild_inputs``, ``parse_json`` and ``require_same_json`` are shared
with the Hugging Face loader (``construct.runtimes.hf``).
"""

from __future__ import annotations

import io
import json
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..compiler import Bounds, CompiledNetwork, compile, estimate, size
from ..compiler.build import REVISION, check_early
from ..compiler.constants import CHOSEN, chosen_constants
from ..compiler.size import DEFAULT_MAX_BYTES, SizeError
from ..instructions import from_data
from ..raw.program import Program
from ..raw.registers import Layout, Register
from .spec import (ARRAY_MEANINGS, DEFLATE_RATIO, EARLIER_MEANINGS, FORMAT, KIND_VERSIONS, MANIFEST,
                   MAX_HEADER_BYTES, MAX_MANIFEST_BYTES, OLD_REVISIONS, OLD_VERSION, VERSION, array_dtype, sha256)
from .writer import CONSTRUCTORS, manifest


class WeightsFileError(ValueError):
    """A weights file that cannot be loaded: truncated, corrupt, of another version, or inconsistent."""


# What reading a damaged archive raises: zipfile's own errors and the zlib, struct and end-of-data errors of its
# parsing, NotImplementedError for the zip features it lacks (a version or flag bit a flipped byte makes), and
# ValueError for an offset out of a file's range or a name that does not decode. The caller adds OSError.
_ZIP_DAMAGE = (zipfile.BadZipFile, zlib.error, struct.error, EOFError, NotImplementedError, ValueError)
# What numpy's .npy header parser raises for a damaged header: ValueError, and for a header it parses as an old
# one, the tokenizer's and Python parser's errors.
_NPY_DAMAGE = (ValueError, SyntaxError, tokenize.TokenError)


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
        except _ZIP_DAMAGE + (OSError,) as err:
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
            _require_kinds(path, stated["version"], program)
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


def _require_kinds(path: Path, version, program: Program) -> None:
    """A file holds only the instruction kinds its format version has (``spec.KIND_VERSIONS``: avg from 3)."""
    for kind in sorted({ins.kind for ins in program.instructions}):
        if KIND_VERSIONS.get(kind, OLD_VERSION) > version:
            raise WeightsFileError(f"{path}: the program has {kind} instructions, which format version {version} does "
                                   f"not hold (version {KIND_VERSIONS[kind]} adds them); the manifest is inconsistent")


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
    except _ZIP_DAMAGE + (OSError,) as err:
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
    if not any(_same(stated["version"], v) for v in range(OLD_VERSION, VERSION + 1)):
        raise WeightsFileError(f"{path}: format version {stated['version']!r} is not supported "
                               f"(this library reads versions {OLD_VERSION} to {VERSION}); re-export it from its "
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
        x_norm = stated["bounds"].get("x_norm")  # absent: the domain bounds no norm
        if x_norm is not None and not _is_number(x_norm):
            raise ValueError(f"bounds.x_norm is {x_norm!r}, not a number")
        bounds = Bounds(values, floors, x_norm=x_norm)
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
        item = array_dtype(name, dtype).itemsize
        entry = spec[name]
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                for s in shape)):
            raise WeightsFileError(f"{path}: the manifest's arrays.{name}.shape is {shape!r}, not a list of sizes")
        if entry.get("dtype") != str(array_dtype(name, dtype)):
            raise WeightsFileError(f"{path}: the manifest's arrays.{name}.dtype is {entry.get('dtype')!r}; "
                                   f"the file's is {array_dtype(name, dtype)}")
        nbytes = int(np.prod(shape, dtype=object)) * item
        file_size = members[f"{name}.npy"].file_size
        if not nbytes < file_size <= nbytes + MAX_HEADER_BYTES:
            raise WeightsFileError(f"{path}: member {name}.npy declares {file_size:,} bytes; an array of shape "
                                   f"{shape} {array_dtype(name, dtype)} takes {nbytes:,} plus a header")
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
        shape, item = shapes[name], array_dtype(name, dtype)
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
    except _NPY_DAMAGE as err:
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
    want = json.loads(json.dumps(manifest(net), allow_nan=False))
    if all(stated["arrays"][name].get("meaning") == EARLIER_MEANINGS[name] for name in want["arrays"]):
        for name, entry in want["arrays"].items():  # a file written before the meanings' wording changed
            entry["meaning"] = EARLIER_MEANINGS[name]
    require_same_json(path, stated, want)


def require_same_json(path, stated, want, what: str = "the manifest's", by: str = "its program and domain") -> None:
    """``stated`` (read from a file) must equal ``want`` value for value and type for type (``_same``); else a
    ``WeightsFileError`` naming ``path`` and the first field that differs, with both values."""
    if not _same(stated, want):
        where, got, expected = _first_difference(stated, want)
        raise WeightsFileError(f"{path}: {what} {where or 'top level'} is {got!r}; the network {by} describe has "
                               f"{expected!r} (edited, or inconsistent)")


def _require_hashes(path: Path, arrays: dict[str, np.ndarray], stated: dict) -> None:
    for name, a in arrays.items():
        if sha256(a) != stated["arrays"][name].get("sha256"):
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
