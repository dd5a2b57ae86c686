"""Writing a compiled network as one npz file: the arrays and the manifest that ``docs/EXPORT.md`` specifies.

``manifest(net)`` is everything about the network but its arrays (which
it describes, with their hashes); ``save`` writes both atomically. The
manifest's ``compiler``, ``program``, ``bounds`` and per-depth instruction
entries are also the Hugging Face directory's (``construct.runtimes.hf``),
so they are functions of their own here.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .. import programs
from ..compiler import Bounds, CompiledNetwork, schedule
from ..compiler.build import REVISION
from ..instructions import to_data
from ..raw.program import Program
from ..raw.prompt import x_columns
from ..transformer.weights import Weights
from .spec import (ARRAY_MEANINGS, COMPILER_NOTE, EQUATIONS, FORMAT, MANIFEST, READOUT_MEANING, TOKENS,
                   little_endian, sha256, version_for)

# The programs a manifest names by "source": "construct.programs", as (d, n, params) -> Program.
CONSTRUCTORS = {name: (lambda algorithm: lambda d, n, p: algorithm.program(d, n, **p))(algorithm)
                for name, algorithm in programs.REGISTRY.items()}


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
        "version": version_for({ins.kind for ins in program.instructions}),
        "compiler": {**compiler_entry(net), "note": COMPILER_NOTE},
        "equations": list(EQUATIONS),
        "dtype": str(w.dtype),
        "ln_eps": w.ln_eps,
        "arrays": {name: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": sha256(a),
                          "meaning": ARRAY_MEANINGS[name]} for name, a in w.arrays().items()},
        "sizes": _sizes(program, w),
        "tokens": dict(TOKENS),
        "readout": {
            "register": program.readout, "row": layout.span(program.readout)[0],
            "columns": x_columns(program.n).tolist(),
            "meaning": READOUT_MEANING,
            "query_only": program.query_only,
        },
        "layout": {
            "width": layout.width,
            "registers": [{"name": reg.name, "shape": list(reg.shape), "rows": list(layout.span(reg.name)),
                           "part": "program" if reg.name in own else "compiler"} for reg in layout],
            "row_labels": list(layout.labels),
        },
        "constants": dict(net.constants),
        "bounds": bounds_entry(net.bounds),
        "layers": [{"index": r.index, "instructions": instructions,
                    "parts": [{"instruction": text, "predicted_error": error, "out_bound": bound}
                              for text, error, bound in r.parts],
                    "constants": r.constants} for r, instructions in zip(net.layers, layer_instructions(net))],
        "listing": {"registers": program.listing("registers").splitlines(),
                    "paper": program.listing("paper").splitlines()},
        "program": program_entry(program),
    }


def compiler_entry(net: CompiledNetwork) -> dict:
    """The manifest's ``compiler``: the revision that compiled ``net``, and whether its schedule is fused (differs
    from one instruction per layer)."""
    return {"revision": REVISION, "fused": tuple(net.steps) != schedule.unfused(net.program)}


def layer_instructions(net: CompiledNetwork) -> list[list[list[int]]]:
    """Per depth, the instructions it runs as indices into the program's: ``[attention's, the MLP's]``."""
    return [[list(step.attention), list(step.mlp)] for step in net.steps]


def bounds_entry(bounds: Bounds) -> dict:
    """The manifest's ``bounds``: a bound per register, a floor per divisor, and ``x_norm`` if the domain has one
    (absent otherwise, as in the files written before it was recorded)."""
    entry = {"values": dict(bounds.values), "floors": dict(bounds.floors)}
    if bounds.x_norm is not None:
        entry["x_norm"] = bounds.x_norm
    return entry


def program_entry(program: Program) -> dict:
    """The manifest's ``program``: what the loader rebuilds it from (also the Hugging Face manifest's)."""
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
    """Write ``net`` to ``path`` (``.npz`` is appended if missing), atomically; returns the path written.

    The file is written to a temporary name beside ``path`` and renamed, so
    an interrupted ``save`` leaves no half-written file.
    """
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
                        np.lib.format.write_array(member, little_endian(a), allow_pickle=False)
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
