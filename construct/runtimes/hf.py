"""Hugging Face transformers: a network compiled for GPT-2 as a checkpoint that ``GPT2Model`` loads as it is.

``save_pretrained(net, directory)`` writes

* ``config.json`` (a ``GPT2Config``: ``n_embd`` = the padded width, ``n_head``
  heads of ``n_embd / n_head``, ``n_inner`` = the MLP width, ``n_positions``
  = 2n + 1, ``activation_function = "gelu"`` (exact erf), no dropout,
  ``layer_norm_epsilon`` = the compiler's, ``vocab_size = 1``);
* ``model.safetensors``: ``GPT2Model``'s state dict, every weight of it
  (``wte`` is a zero row: the prompt enters as ``inputs_embeds``), in the
  network's dtype, ``Conv1D`` weights as GPT-2 stores them (input by output);
* ``read_in_out.safetensors``: the two linear maps around it, in
  ``torch.nn.Linear``'s convention (output by input): ``read_in.weight``
  (n_embd, d+1) and ``read_in.bias`` (zeros) take a token ``[y, x]`` to the
  residual stream; ``read_out.weight`` (1, n_embd) and ``read_out.bias``
  take the last hidden state (after ``ln_f``) to the prediction;
* ``icl_construct.json`` (format version 3): what a reader needs besides
  (the prompt encoding, the columns predictions are read at, the residual
  rows' labels, each layer's instructions, by which it checks the divisors'
  floors), and what the network is rebuilt from: ``compiler`` (revision,
  fused), ``program`` (as the npz manifest states it: a
  ``construct.programs`` name and params, or a custom program's
  instructions), ``bounds`` (values, floors, and ``x_norm`` if the domain
  has one), ``constants``, ``dtype``; and ``written_by`` (the versions that
  wrote it). Version 2 lacked ``layers`` (and ``x_norm``); such a directory
  is verified all the same, against what version 2 wrote. Version 1 also
  had a free-text ``domain.source``, which nothing could check; it is gone.
  ``docs/EXPORT.md`` specifies the four files for a reader of its own.

``save_pretrained`` refuses, as ``construct.save`` does, a network whose
files would not rebuild: GPT-2 weights that are not the conversion of its
layers (``compiler.targets.require_conversion``), a program named like one of
``construct.programs`` but not it, a custom program with params.

``load(directory)`` trusts none of the four files (as ``construct.load``
trusts no npz file): it reads the manifest and ``config.json``
(size-capped, strict JSON), holds the two safetensors files' sizes to
``max_bytes`` and reads their headers (size-capped), rebuilds the program,
bounds and dtype the manifest states with the npz loader's own functions
(``loader.rebuild_inputs``; d, n, width and depth held first to the sizes the
tensors declare), compiles it with ``architecture="gpt2"`` and the file's
own scale constants (so it rebuilds bit for bit on any machine), and
requires

* ``config.json``: every field ``config_dict`` writes present and equal,
  type for type (``n_head`` 3 is not 3.0); besides them only
  ``transformers_version`` (any string: which transformers wrote it) and
  the keys this transformers writes for that config (``model_type``,
  ``add_cross_attention``, ``summary_*``, ...), each absent (transformers
  then takes that same default) or equal to what it writes; any other
  key is refused, since ``GPT2Config`` would take it as an attribute;
* ``model.safetensors``: exactly ``state_dict(rebuilt)``'s keys, each tensor
  of its dtype and shape and equal bit for bit, metadata ``{"format": "pt"}``;
* ``read_in_out.safetensors``: the same with ``read_in_out(rebuilt)``;
* ``icl_construct.json``: equal to ``_manifest(rebuilt)`` field for field,
  but ``written_by``'s version strings (for version 2: without ``layers``);

else a ``WeightsFileError`` (``construct.WeightsFileError``) naming the
file and the field or tensor. So an edited ``n_head`` or
``activation_function``, or a file copied from another network of the same
shape, is refused instead of predicting other numbers. Damaged files
(not JSON, truncated or garbage safetensors) are ``WeightsFileError`` too;
a missing one a ``FileNotFoundError``; safetensors files larger than
``max_bytes`` a ``SizeError``. Version-1 directories (written before this check, with
neither the fused flag nor a custom program's instructions) do not
rebuild and are refused with how to write them again.

``from_pretrained(directory)`` returns an ``ICLModel``: read-in ``Linear``,
``GPT2Model`` run on ``inputs_embeds``, read-out ``Linear`` (the shape of the
trained in-context learners of this field, e.g. Garg et al. 2022), after
``load``: the GPT-2 part is loaded with ``GPT2Model.from_pretrained`` (given
the verified config) and no code of this project inside it, and its
parameters are held once more to the rebuilt tensors (so a file replaced
while loading is caught); ``model.network`` is the verified network.
``predict(model, X, y, x_query)`` gives the model's answers, each with a
bound computed from what the model returned (``predict``'s docstring). This
module imports torch, transformers and safetensors (the extra ``runtimes``);
``import construct`` does not import it.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import torch
import transformers

from ..compiler import CompiledNetwork, compile, size
from ..compiler.build import REVISION
from ..compiler.targets import require_conversion
from ..export import loader, spec, writer
from ..export.loader import WeightsFileError
from ..raw.prompt import check_task, tokens, x_columns
from . import certified

FORMAT = "icl-construct gpt2 checkpoint"
# 2: the manifest states what the network is rebuilt from (compiler, program as data, bounds); 3: and each layer's
# instructions, which a reader needs to check the divisors' floors, and the domain's x_norm
VERSION, EARLIER_VERSION = 3, 2
FILES = ("config.json", "model.safetensors", "read_in_out.safetensors", "icl_construct.json")
CONFIG, WEIGHTS, READ_IN_OUT, MANIFEST = FILES
MAX_JSON_BYTES = spec.MAX_MANIFEST_BYTES  # config.json, icl_construct.json, and each safetensors header
SAFETENSORS_DTYPES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32"}
TORCH_DTYPES = {torch.float64: np.dtype(np.float64), torch.float32: np.dtype(np.float32)}


def _require_gpt2(net) -> None:
    if not isinstance(net, CompiledNetwork):
        raise TypeError(f"save_pretrained takes a CompiledNetwork, got {type(net).__name__}")
    if net.gpt2 is None:
        raise ValueError("this network has the paper's architecture; compile it with architecture='gpt2' for GPT-2 "
                         "runtimes (construct.compile(program, ..., architecture='gpt2'))")
    require_conversion(net)  # else the files would hold weights that no rebuild gives


def config_dict(net) -> dict:
    """The ``GPT2Config`` fields of ``net`` (a network compiled for GPT-2)."""
    g = net.gpt2
    return dict(
        vocab_size=1, n_positions=g.max_tokens, n_embd=g.width, n_layer=g.depth, n_head=g.n_head,
        n_inner=g.mlp_width, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=g.ln_eps, scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
        reorder_and_upcast_attn=False, use_cache=False, bos_token_id=None, eos_token_id=None,
        tie_word_embeddings=False, architectures=["GPT2Model"], dtype=str(g.dtype),
    )


def state_dict(net) -> dict[str, np.ndarray]:
    """``GPT2Model``'s state dict as numpy arrays (keys as Hugging Face names them)."""
    g = net.gpt2
    out = {"wte.weight": np.zeros((1, g.width), g.dtype), "wpe.weight": g.wpe,
           "ln_f.weight": g.ln_f_weight, "ln_f.bias": g.ln_f_bias}
    for l in range(g.depth):
        out.update({
            f"h.{l}.ln_1.weight": g.ln_1_weight[l], f"h.{l}.ln_1.bias": g.ln_1_bias[l],
            f"h.{l}.attn.c_attn.weight": g.c_attn_weight[l], f"h.{l}.attn.c_attn.bias": g.c_attn_bias[l],
            f"h.{l}.attn.c_proj.weight": g.c_proj_weight[l], f"h.{l}.attn.c_proj.bias": g.c_proj_bias[l],
            f"h.{l}.ln_2.weight": g.ln_2_weight[l], f"h.{l}.ln_2.bias": g.ln_2_bias[l],
            f"h.{l}.mlp.c_fc.weight": g.c_fc_weight[l], f"h.{l}.mlp.c_fc.bias": g.c_fc_bias[l],
            f"h.{l}.mlp.c_proj.weight": g.mlp_proj_weight[l], f"h.{l}.mlp.c_proj.bias": g.mlp_proj_bias[l],
        })
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def read_in_out(net) -> dict[str, np.ndarray]:
    """The read-in and read-out ``Linear`` layers' parameters (output by input)."""
    g = net.gpt2
    return {"read_in.weight": np.ascontiguousarray(g.read_in.T), "read_in.bias": np.zeros(g.width, g.dtype),
            "read_out.weight": np.ascontiguousarray(g.read_out[None, :]), "read_out.bias": np.zeros(1, g.dtype)}


def _manifest(net) -> dict:
    program = net.program
    return {
        "format": FORMAT, "version": VERSION, "files": list(FILES), "dtype": str(net.gpt2.dtype),
        "model": "read_out(GPT2Model(inputs_embeds=read_in(tokens)).last_hidden_state)[..., 0]: one number per token",
        "tokens": {"slots": ["y"] + [f"x[{i}]" for i in range(program.d)],
                   "order": "x~_1, y~_1, ..., x~_n, y~_n, x~_query with x~ = [0, x] and y~ = [y, 0, ..., 0]",
                   "max_tokens": 2 * program.n + 1},
        "readout": {"register": program.readout, "columns": x_columns(program.n).tolist(),
                    "meaning": "column 2k predicts y_{k+1} from examples 1..k; column 2n is the query's prediction"},
        "rows": list(net.layout.labels),
        "compiler": writer.compiler_entry(net),
        "program": writer.program_entry(program),
        "layers": [{"index": k, "instructions": instructions}
                   for k, instructions in enumerate(writer.layer_instructions(net), 1)],
        "bounds": writer.bounds_entry(net.bounds),
        "constants": net.constants,
        "written_by": {"icl-construct": _version(), "transformers": transformers.__version__,
                       "safetensors": safetensors.__version__},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("icl-construct")
    except PackageNotFoundError:
        return "unknown"


def save_pretrained(net, directory) -> Path:
    """Write ``net`` (compiled with ``architecture="gpt2"``) to ``directory`` as the files of the module docstring.

    The files are written to a temporary directory beside it, then moved in;
    a ``directory`` that exists must be empty or hold only these files
    (which are replaced).
    """
    _require_gpt2(net)
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or set(os.listdir(directory)) - set(FILES)):
        raise FileExistsError(f"{directory} exists and holds other files than {', '.join(FILES)}; give a new or "
                              "empty directory")
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}.") as tmp:
        transformers.GPT2Config(**config_dict(net)).save_pretrained(tmp)
        safetensors.numpy.save_file(state_dict(net), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        safetensors.numpy.save_file(read_in_out(net), os.path.join(tmp, "read_in_out.safetensors"),
                                    metadata={"format": "pt"})
        with open(os.path.join(tmp, "icl_construct.json"), "w", encoding="utf-8") as f:
            json.dump(_manifest(net), f, indent=1, allow_nan=False)
        directory.mkdir(exist_ok=True)
        for name in FILES:
            os.replace(os.path.join(tmp, name), directory / name)
    return directory


class ICLModel(torch.nn.Module):
    """read-in ``Linear`` -> ``GPT2Model`` on ``inputs_embeds`` -> read-out ``Linear``: tokens (B, T, d+1) to
    predictions (B, T); ``manifest`` is the checkpoint's ``icl_construct.json``, ``network`` the
    ``CompiledNetwork`` the files were verified to be (``from_pretrained``; None if built by hand)."""

    def __init__(self, backbone: transformers.GPT2Model, read_in: torch.nn.Linear, read_out: torch.nn.Linear,
                 manifest: dict, network: CompiledNetwork | None = None):
        super().__init__()
        self.read_in, self.backbone, self.read_out = read_in, backbone, read_out
        self.manifest, self.network = manifest, network

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(inputs_embeds=self.read_in(tokens)).last_hidden_state
        return self.read_out(hidden)[..., 0]


def from_pretrained(directory, attn_implementation: str = "eager", dtype=None,
                    max_bytes: float | None = size.DEFAULT_MAX_BYTES) -> ICLModel:
    """The ``ICLModel`` saved in ``directory``, verified (``load``), in eval mode; ``dtype`` (``torch.float64``
    or ``torch.float32``) defaults to the file's; the other one casts the verified weights.

    ``GPT2Model.from_pretrained`` is given the verified config (equal to
    ``config.json`` on every field that file may hold), and what it loaded
    is held to the rebuilt tensors again, so the model runs the weights that
    were checked even if the directory changed in between.
    """
    directory = Path(directory)
    net, manifest = _verified(directory, max_bytes)
    if dtype is None:
        dtype = {"float64": torch.float64, "float32": torch.float32}[manifest["dtype"]]
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")
    backbone, info = transformers.GPT2Model.from_pretrained(
        directory, config=transformers.GPT2Config(**config_dict(net)), dtype=dtype,
        attn_implementation=attn_implementation, output_loading_info=True)
    want = {k: a.astype(TORCH_DTYPES[dtype]) for k, a in state_dict(net).items()}
    got = {k: v.detach().numpy() for k, v in backbone.state_dict().items()}  # numpy: torch.equal is ~40x slower
    if any(info.values()) or got.keys() != want.keys() or not all(
            got[k].shape == a.shape and got[k].dtype == a.dtype and np.array_equal(_bits(got[k]), _bits(a))
            for k, a in want.items()):
        raise WeightsFileError(f"{directory / WEIGHTS}: GPT2Model.from_pretrained loaded other weights than the "
                               f"verified file holds (loading info {info}); was the directory changed while loading?")
    return ICLModel(backbone, *_read_layers(net, dtype), manifest, net).eval()


def from_network(net: CompiledNetwork, attn_implementation: str = "eager") -> ICLModel:
    """The ``ICLModel`` of ``net`` (compiled with ``architecture="gpt2"``) built in memory, without files: what
    ``from_pretrained`` returns for ``save_pretrained(net, directory)``, in the network's dtype."""
    _require_gpt2(net)
    dtype = {"float64": torch.float64, "float32": torch.float32}[str(net.gpt2.dtype)]
    config = transformers.GPT2Config(**config_dict(net), attn_implementation=attn_implementation)
    backbone = transformers.GPT2Model(config).to(dtype)
    backbone.load_state_dict({k: torch.tensor(a) for k, a in state_dict(net).items()}, strict=True)
    return ICLModel(backbone.eval(), *_read_layers(net, dtype), _manifest(net), net).eval()


def _read_layers(net: CompiledNetwork, dtype) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """The read-in and read-out ``Linear`` layers, bit for bit ``read_in_out(net)``."""
    D, d1 = net.gpt2.read_in.T.shape
    read_in, read_out = torch.nn.Linear(d1, D, dtype=dtype), torch.nn.Linear(D, 1, dtype=dtype)
    io = read_in_out(net)
    with torch.no_grad():
        for layer, prefix in ((read_in, "read_in"), (read_out, "read_out")):
            layer.weight.copy_(torch.tensor(io[f"{prefix}.weight"], dtype=dtype))
            layer.bias.copy_(torch.tensor(io[f"{prefix}.bias"], dtype=dtype))
    return read_in, read_out


# -- verifying -----------------------------------------------------------------------------------------
#
# As construct.load: no file is trusted. The manifest is read first (size-capped, strict JSON), then config.json
# and the safetensors headers (their files' sizes held to max_bytes, the headers capped); the program, bounds and
# dtype the manifest states are rebuilt with the npz loader's functions, their sizes held to what the
# tensors declare before the program grows; the network is compiled again (architecture="gpt2", the file's
# scale constants), and every file must equal what this library writes for it.


def load(directory, max_bytes: float | None = size.DEFAULT_MAX_BYTES) -> CompiledNetwork:
    """The network saved in ``directory``: the one this library compiles for its manifest's program, domain and
    dtype, after every file was found equal to it (the module docstring lists the checks).

    Refuses with a ``WeightsFileError`` naming the file and the field or
    tensor at fault; ``max_bytes`` bounds the safetensors files' sizes and
    the rebuilt network's (a ``SizeError``), checked before anything is
    built; a missing file is a
    ``FileNotFoundError``. Needs no torch model: ``construct.tl.from_pretrained``
    builds its ``HookedTransformer`` from this network.
    """
    return _verified(Path(directory), max_bytes)[0]


def _verified(directory: Path, max_bytes) -> tuple[CompiledNetwork, dict]:
    """``load``'s network and the manifest it was verified against."""
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}; write it with construct.hf.save_pretrained")
    path = {name: directory / name for name in FILES}
    stated = _read_manifest(path[MANIFEST])
    config = _read_json(path[CONFIG])
    if not isinstance(config, dict):
        raise WeightsFileError(f"{path[CONFIG]}: not a JSON object")
    total = sum(path[name].stat().st_size for name in (WEIGHTS, READ_IN_OUT))  # the tensors, and their headers
    if max_bytes is not None and total > max_bytes:
        raise size.SizeError(f"{directory}: {WEIGHTS} and {READ_IN_OUT} take {size.gib(total)}, above the limit of "
                             f"{size.gib(max_bytes)}; raise it with max_bytes=... if this machine has the memory")
    headers = {name: _header(path[name]) for name in (WEIGHTS, READ_IN_OUT)}
    program, bounds, constants = loader.rebuild_inputs(path[MANIFEST], stated, stated["dtype"], _sizes(path, headers),
                                                       arrays=f"{WEIGHTS} and {READ_IN_OUT}")
    try:
        net = compile(program, bounds, dtype=stated["dtype"], max_bytes=max_bytes, scale_constants=constants,
                      fuse=stated["compiler"]["fused"], architecture="gpt2")
    except size.SizeError:
        raise
    except ValueError as err:
        raise WeightsFileError(f"{path[MANIFEST]}: the manifest's program does not compile for GPT-2: {err}") \
            from None
    by = f"{MANIFEST}'s program and domain"
    _require_config(path[CONFIG], config, net, by)
    for name, want in ((WEIGHTS, state_dict(net)), (READ_IN_OUT, read_in_out(net))):
        _require_tensors(path[name], headers[name], want, by)
    want = json.loads(json.dumps(_manifest(net), allow_nan=False))
    if _is_int(stated["version"], EARLIER_VERSION):  # what version 2 wrote: no layers (the rebuild has them)
        want["version"] = EARLIER_VERSION
        del want["layers"]
    written_by = stated.get("written_by")
    if isinstance(written_by, dict):  # which versions wrote the files is not a property of the network: any string
        want["written_by"] = {k: written_by[k] if isinstance(written_by.get(k), str) else v
                              for k, v in want["written_by"].items()}
    loader.require_same_json(path[MANIFEST], stated, want)
    return net, stated


def _read_json(path: Path):
    """A JSON file, refused if larger than ``MAX_JSON_BYTES`` or not strict JSON (``loader.parse_json``)."""
    with path.open("rb") as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise WeightsFileError(f"{path}: larger than {MAX_JSON_BYTES:,} bytes; not a file save_pretrained writes")
    try:
        return loader.parse_json(raw)
    except ValueError as err:
        raise WeightsFileError(f"{path}: not readable JSON (corrupt?): {type(err).__name__}: {err}") from None


def _is_int(value, want) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == want


def _read_manifest(path: Path) -> dict:
    """The manifest, its format, version, compiler revision, schedule and dtype checked (what the rebuild needs
    before ``loader.rebuild_inputs`` reads the program and domain)."""
    stated = _read_json(path)
    if not isinstance(stated, dict) or stated.get("format") != FORMAT:
        raise WeightsFileError(f"{path}: does not declare format {FORMAT!r}")
    version = stated.get("version")
    if _is_int(version, 1):
        raise WeightsFileError(
            f"{path}: format version 1, written before from_pretrained verified its files; its manifest lacks what "
            "the network is rebuilt from. Write it again: construct.hf.save_pretrained(construct.compile(program, "
            "bounds, architecture='gpt2'), directory), or icl-construct export --format hf")
    if not (_is_int(version, EARLIER_VERSION) or _is_int(version, VERSION)):
        raise WeightsFileError(f"{path}: format version {version!r} is not {EARLIER_VERSION} or {VERSION}, the ones "
                               "this library reads")
    compiler = stated.get("compiler")
    revision = compiler.get("revision") if isinstance(compiler, dict) else None
    if not _is_int(revision, REVISION):
        raise WeightsFileError(
            f"{path}: written by compiler revision {revision!r}; this library compiles revision {REVISION} and can "
            "only vouch for a directory it rebuilds exactly. Write it again from its program and domain: "
            "construct.hf.save_pretrained(construct.compile(program, bounds, architecture='gpt2'), directory)")
    if not isinstance(compiler.get("fused"), bool):
        raise WeightsFileError(f"{path}: the manifest's compiler.fused is {compiler.get('fused')!r}, not true or false")
    if stated.get("dtype") not in ("float64", "float32"):
        raise WeightsFileError(f"{path}: the manifest's dtype is {stated.get('dtype')!r}, not 'float64' or 'float32'")
    return stated


def _header(path: Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict | None]:
    """A safetensors file's tensors, name -> (dtype, shape), and its metadata, read from its header alone
    (safetensors checks that the header's offsets cover the data exactly); the header's length is capped."""
    with path.open("rb") as f:
        prefix = f.read(8)
    if len(prefix) == 8 and struct.unpack("<Q", prefix)[0] > MAX_JSON_BYTES:
        raise WeightsFileError(f"{path}: declares a header of {struct.unpack('<Q', prefix)[0]:,} bytes, more than the "
                               f"{MAX_JSON_BYTES:,} it may hold (corrupt?)")
    try:
        with safetensors.safe_open(path, "np") as f:
            tensors = {}
            for key in f.keys():
                view = f.get_slice(key)
                tensors[key] = (view.get_dtype(), tuple(view.get_shape()))
            return tensors, f.metadata()
    except (safetensors.SafetensorError, OSError, ValueError, TypeError, OverflowError) as err:
        raise WeightsFileError(f"{path}: not a readable safetensors file (truncated or corrupt?): "
                               f"{type(err).__name__}: {err}") from None


def _sizes(path: dict[str, Path], headers: dict) -> dict:
    """d, n, width and depth as the tensors declare them (``wpe.weight`` (2n + 1, D), ``read_in.weight``
    (D, d + 1), one ``h.{l}.ln_1.weight`` per layer): what ``loader.rebuild_inputs`` holds the program to."""
    def shape(name: str, key: str) -> tuple[int, ...]:
        declared = headers[name][0].get(key)
        if declared is None or len(declared[1]) != 2:
            raise WeightsFileError(f"{path[name]}: has no two-dimensional tensor {key!r}")
        return declared[1]

    T, D = shape(WEIGHTS, "wpe.weight")
    _, d1 = shape(READ_IN_OUT, "read_in.weight")
    depth = sum(1 for key in headers[WEIGHTS][0] if re.fullmatch(r"h\.\d+\.ln_1\.weight", key))
    return {"d": d1 - 1, "n": (T - 1) / 2, "width": D, "stored": depth, "depth": depth}


def _require_config(path: Path, config: dict, net: CompiledNetwork, by: str) -> None:
    """``config.json`` as the module docstring says: ``config_dict``'s fields, equal; else only
    ``transformers_version`` and what this transformers writes, equal to that."""
    ours = json.loads(json.dumps(config_dict(net)))
    written = json.loads(transformers.GPT2Config(**config_dict(net)).to_json_string())
    lacking = [key for key in ours if key not in config]
    if lacking:
        raise WeightsFileError(f"{path}: lacks the field {lacking[0]!r} (the network {by} describe has "
                               f"{ours[lacking[0]]!r})")
    unknown = sorted(set(config) - set(written))
    if unknown:
        raise WeightsFileError(f"{path}: has fields {unknown} that GPT2Config does not write (transformers "
                               f"{transformers.__version__}); GPT2Config would take them as attributes")
    if not isinstance(config.get("transformers_version", ""), str):
        raise WeightsFileError(f"{path}: field transformers_version is {config['transformers_version']!r}, not a "
                               "string")
    want = {key: ours.get(key, written[key]) for key in config if key != "transformers_version"}
    loader.require_same_json(path, {key: config[key] for key in want}, want, what="field", by=by)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")


def _require_tensors(path: Path, header: tuple, want: dict[str, np.ndarray], by: str) -> None:
    """The safetensors file holds exactly ``want``: its keys, each of its dtype and shape (from the header, before
    any data is read), then every tensor bit for bit; metadata ``{"format": "pt"}`` as ``save_pretrained``
    writes."""
    tensors, metadata = header
    if metadata != {"format": "pt"}:
        raise WeightsFileError(f"{path}: metadata is {metadata!r}; save_pretrained writes {{'format': 'pt'}}")
    missing, unknown = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
    if missing or unknown:
        raise WeightsFileError(f"{path}: its tensors are not the network's that {by} describe: missing "
                               f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, unknown "
                               f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    for key, a in want.items():
        if tensors[key] != (SAFETENSORS_DTYPES[a.dtype], a.shape):
            dtype, shape = tensors[key]
            raise WeightsFileError(f"{path}: tensor {key!r} is {dtype} {list(shape)}; the network {by} describe has "
                                   f"{SAFETENSORS_DTYPES[a.dtype]} {list(a.shape)}")
    try:
        with safetensors.safe_open(path, "np") as f:
            for key, a in want.items():
                got = f.get_tensor(key)
                differ = _bits(got) != _bits(a)
                if differ.any():
                    where = tuple(int(i) for i in np.argwhere(differ)[0])
                    raise WeightsFileError(
                        f"{path}: tensor {key!r} is not what {by} compile to: it differs first at {list(where)} "
                        f"({got[where]!r} in the file, {a[where]!r} rebuilt); the files come from different "
                        "networks, or one was edited")
    except WeightsFileError:
        raise
    except (safetensors.SafetensorError, OSError, ValueError, TypeError, OverflowError) as err:
        raise WeightsFileError(f"{path}: cannot read its tensors (truncated or corrupt?): {type(err).__name__}: "
                               f"{err}") from None


def predict(model: ICLModel, X, y, x_query, tolerance: float | None = certified.DEFAULT_TOLERANCE,
            return_bound: bool = False):
    """The ``k + 1`` predictions of a loaded ``ICLModel`` for a task of ``k <= n`` examples, read at the x~ columns
    as ``CompiledNetwork.predict`` reads them, each with a bound computed from what the model returned
    (``construct.runtimes.certified``).

    The bound is the a-posteriori certificate of the verified network's
    algorithm (``model.network``; ridge has one, SGD none: inf) from the
    model's answers and its residual stream after the last GPT-2 block,
    before ``ln_f``: ``output_hidden_states`` does not hold that state (its
    last entry is after ``ln_f``), so a forward hook on the last block
    ``model.backbone.h[-1]`` takes its output during the same run. The
    certificate needs no domain, so the task is checked for its shapes
    only. An answer whose bound exceeds ``tolerance`` times
    ``model.network.scale`` is refused with a ``CertificateError`` (None
    accepts every answer; a model without ``network``, built by hand, has no
    certificate); ``return_bound=True`` returns ``(predictions, bounds)``.
    """
    certified.check_tolerance(tolerance)
    net = model.network
    if net is None and tolerance is not None:
        raise certified.CertificateError("this ICLModel has no verified network (model.network is None) to certify "
                                         "its answers with; load it with construct.hf.from_pretrained, or pass "
                                         "tolerance=None to accept uncertified answers")
    program = model.manifest["program"]
    X, y, x_query = (np.asarray(a, dtype=np.float64) for a in check_task(X, y, x_query, program["d"], program["n"],
                                                                         prefix=not program["query_only"]))
    dtype = model.read_in.weight.dtype
    last = []
    hook = model.backbone.h[-1].register_forward_hook(lambda block, inputs, output: last.append(output))
    try:
        with torch.no_grad():
            out = model(torch.tensor(tokens(X, y, x_query), dtype=dtype)[None])[0]
    finally:
        hook.remove()
    out = out.numpy().astype(np.float64)[x_columns(len(X))]
    if program["query_only"]:  # the one-example chains predict only the query
        out[:-1] = np.nan
    if net is None:
        bounds = np.where(np.isnan(out), np.nan, np.inf)
    else:
        bounds = certified.bounds(net, last[0][0].numpy(), X, y, x_query, out)
        certified.accept(net, out, bounds, y, tolerance, "Hugging Face's GPT2Model")
    return (out, bounds) if return_bound else out
