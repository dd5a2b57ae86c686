"""Export a compiled network to one file, and load it back bit for bit.

File format, version 1
----------------------

One ``.npz`` file: a zip archive (members deflate-compressed) that
``numpy.load(path, allow_pickle=False)`` reads. It holds

* one ``NAME.npy`` per weight array, dense, float64 or float32 (all alike):

      embed      (d+1, D)        token slots -> residual rows
      positions  (T, D)          added to token t (T = 2n + 1, the prompt length)
      readout    (D,)            one-hot on the row of the register ``pred``
      Wq, Wk, Wv (L, m, D, dh)   per layer and head
      Wo         (L, m*dh, D)    the heads' outputs, concatenated, -> residual
      bo         (L, D)
      ln_gain, ln_bias (L, D)
      W1         (L, D, U),  b1 (L, U),  W2 (L, U, D),  b2 (L, D)

* ``manifest.json``, UTF-8 JSON (``unzip -p FILE manifest.json`` prints it;
  ``numpy.load(FILE)["manifest.json"]`` gives its bytes). Its keys:
  ``format``, ``version``; ``equations`` (the layer, as ``transformer/weights.py`` states
  it); ``dtype``, ``ln_eps``; ``arrays`` (name -> shape, dtype, sha256 of the
  raw C-order bytes); ``sizes``; ``tokens`` (the prompt encoding);
  ``readout`` (register, row, the columns predictions are read at);
  ``layout`` (every register with its shape and rows ``[start, stop)``, and
  a label per row); ``constants``; ``bounds`` (the domain: a bound per
  register, a floor per divisor); ``layers`` (per layer: instruction,
  constants, predicted error); ``listing`` (registers and paper forms); and
  ``program`` (name, d, n, params and every instruction as data), from which
  ``load`` rebuilds the network with its domain guard.

Floats in the manifest are written with Python's shortest round-trip repr,
so they read back exactly. ``load`` refuses, with a ``WeightsFileError``
naming the problem: a truncated or corrupt archive (the zip CRC covers every
member), an unknown or missing version, a missing, extra, mis-shaped or
mis-typed array, a hash that does not match, non-finite values, and a
manifest whose layout, listing or sizes disagree with the arrays. A missing
file is a ``FileNotFoundError``. Files are written to a temporary name and
renamed, so an interrupted ``save`` leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..compiler import Bounds
from ..compiler import CompiledNetwork, LayerReport
from ..raw.instructions import Aff, Div, Mov, Mul
from ..transformer.weights import DTYPES, Weights
from ..raw.program import Program
from ..raw.prompt import check_count, x_columns
from ..raw.registers import Layout, Register

FORMAT, VERSION, MANIFEST = "icl-construct weights", 1, "manifest.json"

# The layer exactly as transformer/weights.py's docstring states it (a test keeps them equal), then what it leaves implicit.
EQUATIONS = (
    "heads      B_j = causal_softmax((H Wq_j)(H Wk_j)^T) (H Wv_j)          j = 1..m",
    "attention  X   = H + [B_1 ... B_m] Wo + bo",
    "MLP        H'  = X + gelu(LN(X) W1 + b1) W2 + b2",
    "LN(v)      = ln_gain * (v - mean(v)) / sqrt(var(v) + ln_eps) + ln_bias   (per token)",
    "input      H_0 = tokens @ embed + positions[:T]; output y_hat = H_L @ readout (one number per token)",
    "H is T x D, one row per token; Wq_j = Wq[l, j] etc. for layer l; [B_1 ... B_m] concatenates along columns",
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
}


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


def _instruction(ins) -> dict:
    if isinstance(ins, Mov):
        return {"kind": "mov", "src": ins.src, "dst": ins.dst, "offset": ins.offset}
    if isinstance(ins, Mul):
        return {"kind": "mul", "a": ins.a, "b": ins.b, "out": ins.out, "shape": list(ins.shape)}
    if isinstance(ins, Div):
        return {"kind": "div", "num": ins.num, "den": ins.den, "out": ins.out}
    return {
        "kind": "aff", "out": ins.out,
        "terms": [{"register": reg, "coefficient": _numbers(w, f"a coefficient of {ins}"), "label": label}
                  for reg, w, label in ins.terms],
        "bias": None if ins.bias is None else _numbers(ins.bias, f"the bias of {ins}"),
        "bias_label": ins.bias_label,
    }


def _sizes(program: Program, w: Weights) -> dict:
    return {"d": program.d, "n": program.n, "tokens": 2 * program.n + 1, "layers": w.depth, "heads": w.heads,
            "residual_width": w.width, "head_size": w.head_size, "mlp_width": w.mlp_width,
            "parameters": w.parameter_count}


def manifest(net: CompiledNetwork) -> dict:
    """Everything about ``net`` except the arrays themselves (they are described, not included)."""
    program, w, layout = net.program, net.weights, net.layout
    own = set(program.layout.names)
    return {
        "format": FORMAT,
        "version": VERSION,
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
        "layers": [{"index": r.index, "instruction": r.instruction, "constants": r.constants,
                    "predicted_error": r.predicted_error, "out_bound": r.out_bound} for r in net.layers],
        "listing": {"registers": program.listing("registers").splitlines(),
                    "paper": program.listing("paper").splitlines()},
        "program": {
            "name": program.name, "d": program.d, "n": program.n, "readout": program.readout,
            "query_only": program.query_only,
            "params": {k: _numbers(v, f"parameter {k!r} of {program.name}") for k, v in program.params.items()},
            "instructions": [_instruction(ins) for ins in program.instructions],
        },
    }


def save(net: CompiledNetwork, path, compress: bool = True) -> Path:
    """Write ``net`` to ``path`` (``.npz`` is appended if missing), atomically; returns the path written."""
    if not isinstance(net, CompiledNetwork):
        raise TypeError(f"save takes a CompiledNetwork, got {type(net).__name__}")
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

_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError)


@contextmanager
def _reading(path: Path, what: str):
    """Turn a malformed part of the file into one WeightsFileError that says which part."""
    try:
        yield
    except WeightsFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise WeightsFileError(f"{path}: {what} in the manifest is malformed: {detail}") from None


def _refuse_constant(token: str):
    raise ValueError(f"the manifest contains {token}; every number must be finite")


def _read_manifest(path: Path, npz) -> dict:
    if MANIFEST not in npz.files:
        raise WeightsFileError(f"{path}: no {MANIFEST} in the archive; not an icl-construct weights file")
    try:
        raw = npz[MANIFEST]
        if not isinstance(raw, bytes):
            raise ValueError(f"{MANIFEST} is an array, not a JSON text")
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except _ARCHIVE_ERRORS as err:
        raise WeightsFileError(f"{path}: cannot read {MANIFEST} (corrupt?): {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WeightsFileError(f"{path}: {MANIFEST} does not declare format {FORMAT!r}")
    if "version" not in manifest:
        raise WeightsFileError(f"{path}: {MANIFEST} has no format version")
    if manifest["version"] != VERSION:
        raise WeightsFileError(f"{path}: format version {manifest['version']!r} is not supported "
                               f"(this library reads version {VERSION})")
    return manifest


def _read_arrays(path: Path, npz, manifest: dict) -> dict[str, np.ndarray]:
    with _reading(path, "'arrays'"):
        declared = {name: (tuple(spec["shape"]), np.dtype(spec["dtype"]), spec["sha256"])
                    for name, spec in manifest["arrays"].items()}
        dtype = np.dtype(manifest["dtype"])
    if dtype not in DTYPES:
        raise WeightsFileError(f"{path}: dtype {dtype} is not float32 or float64")
    stored = {name for name in npz.files if name != MANIFEST}
    missing, extra = sorted(set(ARRAY_MEANINGS) - stored), sorted(stored - set(ARRAY_MEANINGS))
    if missing or extra:
        raise WeightsFileError(f"{path}: the archive lacks arrays {missing} / has unknown arrays {extra}")
    undeclared = sorted(set(ARRAY_MEANINGS) ^ set(declared))
    if undeclared:
        raise WeightsFileError(f"{path}: the manifest's array list differs from the format's in {undeclared}")
    arrays = {}
    for name in ARRAY_MEANINGS:
        shape, declared_dtype, digest = declared[name]
        try:
            a = npz[name]
        except _ARCHIVE_ERRORS as err:
            raise WeightsFileError(f"{path}: cannot read array {name!r} (truncated or corrupt?): {err}") from None
        if not isinstance(a, np.ndarray):
            raise WeightsFileError(f"{path}: member {name!r} is not an .npy array")
        if a.dtype != dtype or declared_dtype != dtype:
            raise WeightsFileError(f"{path}: array {name!r} has dtype {a.dtype} (manifest: {declared_dtype}); "
                                   f"the file's dtype is {dtype}")
        if a.shape != shape:
            raise WeightsFileError(f"{path}: array {name!r} has shape {a.shape}, the manifest says {shape}")
        if _sha256(a) != digest:
            raise WeightsFileError(f"{path}: array {name!r} does not match its sha256 in the manifest "
                                   "(altered, or the manifest comes from another export)")
        if not np.all(np.isfinite(a)):
            raise WeightsFileError(f"{path}: array {name!r} has non-finite entries")
        arrays[name] = a
    return arrays


def _build_instruction(spec: dict):
    kind = spec["kind"]
    if kind == "mov":
        return Mov(spec["src"], spec["dst"], spec["offset"])
    if kind == "mul":
        return Mul(spec["a"], spec["b"], spec["out"], tuple(spec["shape"]))
    if kind == "div":
        return Div(spec["num"], spec["den"], spec["out"])
    if kind == "aff":
        terms = tuple((t["register"], np.array(t["coefficient"], dtype=np.float64), t["label"])
                      for t in spec["terms"])
        bias = None if spec["bias"] is None else np.array(spec["bias"], dtype=np.float64)
        return Aff(spec["out"], terms, bias, spec["bias_label"])
    raise ValueError(f"unknown instruction kind {kind!r}")


def _build(path: Path, manifest: dict, weights: Weights) -> CompiledNetwork:
    with _reading(path, "'layout'"):
        registers = manifest["layout"]["registers"]
        regs = [(Register(r["name"], tuple(r["shape"])), r["rows"][0], r["part"]) for r in registers]
        layout = Layout([reg for reg, _, _ in regs], {reg.name: start for reg, start, _ in regs})
        own = [(reg, start) for reg, start, part in regs if part == "program"]
        program_layout = Layout([reg for reg, _ in own], {reg.name: start for reg, start in own})
        if [list(layout.span(r["name"])) for r in registers] != [r["rows"] for r in registers]:
            raise ValueError("a register's rows do not match its shape")
        if list(layout.labels) != manifest["layout"]["row_labels"]:
            raise ValueError("the row labels do not match the registers")
    with _reading(path, "'program'"):
        spec = manifest["program"]
        check_count(spec["d"], "d"), check_count(spec["n"], "n")
        params = {k: (np.array(v) if isinstance(v, list) else float(v)) for k, v in spec["params"].items()}
        program = Program(spec["name"], spec["d"], spec["n"], program_layout,
                          tuple(_build_instruction(i) for i in spec["instructions"]),
                          readout=spec["readout"], query_only=spec["query_only"], params=params)
    with _reading(path, "'bounds'"):
        bounds = Bounds(manifest["bounds"]["values"], manifest["bounds"]["floors"])
        bounds.require(program)
    with _reading(path, "'layers'"):
        layers = tuple(LayerReport(r["index"], r["instruction"], r["constants"], r["predicted_error"],
                                   r["out_bound"]) for r in manifest["layers"])
        constants = dict(manifest["constants"])
        readout_row, columns = manifest["readout"]["row"], manifest["readout"]["columns"]
        stated = (manifest["listing"], manifest["sizes"], manifest["layout"]["width"])
    listing = {form: program.listing(form).splitlines() for form in ("registers", "paper")}
    readout = np.zeros(layout.width, dtype=weights.dtype)
    readout[layout.span(program.readout)[0]] = 1
    mismatches = [
        (what, got, want) for what, got, want in (
            ("layers", weights.depth, program.depth),
            ("layer reports", len(layers), program.depth),
            ("residual width", weights.width, layout.width),
            ("embedding rows", weights.embed.shape[0], program.d + 1),
            ("prompt length", weights.max_tokens, 2 * program.n + 1),
            ("read-out row", readout_row, layout.span(program.readout)[0]),
            ("read-out columns", columns, x_columns(program.n).tolist()),
            ("ln_eps", constants.get("ln_eps"), weights.ln_eps),
            ("listing", stated[0], listing),
            ("sizes", stated[1], _sizes(program, weights)),
            ("layout width", stated[2], layout.width),
            ("layer instructions", [r.instruction for r in layers], [str(i) for i in program.instructions]),
        ) if got != want
    ]
    if not np.array_equal(weights.readout, readout):
        mismatches.append(("readout array", "not one-hot on that row", f"one-hot on row {readout_row}"))
    if mismatches:
        what, got, want = mismatches[0]
        where, got, want = _first_difference(got, want)
        raise WeightsFileError(f"{path}: the manifest disagrees with the arrays: {what}{where} is {got!r}, "
                               f"the arrays and program give {want!r}")
    return CompiledNetwork(program, weights, layout, bounds, constants, layers)


def _first_difference(got, want, where: str = ""):
    """Where two JSON-like values first differ, and the two parts there (so an error names one line, not all)."""
    if isinstance(got, dict) and isinstance(want, dict) and got.keys() == want.keys():
        key = next(k for k in want if got[k] != want[k])
        return _first_difference(got[key], want[key], f"{where}[{key!r}]")
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        k = next(k for k, (a, b) in enumerate(zip(got, want)) if a != b)
        return _first_difference(got[k], want[k], f"{where}[{k}]")
    return where, got, want


def load(path) -> CompiledNetwork:
    """The network saved at ``path``, equal to the saved one: weights bit-exact, same program and domain."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        npz = np.load(path, allow_pickle=False)
    except _ARCHIVE_ERRORS as err:
        raise WeightsFileError(f"{path}: not a readable .npz archive (truncated or corrupt?): {err}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise WeightsFileError(f"{path}: holds a single array, not an .npz archive of weights")
    with npz:
        manifest = _read_manifest(path, npz)
        arrays = _read_arrays(path, npz, manifest)
    with _reading(path, "'ln_eps'"):
        ln_eps = float(manifest["ln_eps"])
    try:
        weights = Weights(**arrays, ln_eps=ln_eps)
    except ValueError as err:
        raise WeightsFileError(f"{path}: the arrays do not fit together: {err}") from None
    return _build(path, manifest, weights)
