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
* ``icl_construct.json``: what a reader needs besides (the prompt encoding,
  the columns predictions are read at, the residual rows' labels, the program
  and its domain, the versions that wrote it).

``from_pretrained(directory)`` returns an ``ICLModel``: read-in ``Linear``,
``GPT2Model`` run on ``inputs_embeds``, read-out ``Linear`` (the shape of the
trained in-context learners of this field, e.g. Garg et al. 2022), loaded
with ``GPT2Model.from_pretrained`` and no code of this project inside the
GPT-2 part. This module imports torch, transformers and safetensors (the
extra ``runtimes``); ``import construct`` does not import it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
import transformers

from ..raw.prompt import check_task, tokens, x_columns

FORMAT = "icl-construct gpt2 checkpoint"
VERSION = 1
FILES = ("config.json", "model.safetensors", "read_in_out.safetensors", "icl_construct.json")


def _require_gpt2(net) -> None:
    from ..compiler.compiled import CompiledNetwork

    if not isinstance(net, CompiledNetwork):
        raise TypeError(f"save_pretrained takes a CompiledNetwork, got {type(net).__name__}")
    if net.gpt2 is None:
        raise ValueError("this network has the paper's architecture; compile it with architecture='gpt2' for GPT-2 "
                         "runtimes (construct.compile(program, ..., architecture='gpt2'))")


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
        "program": {"name": program.name, "d": program.d, "n": program.n, "query_only": program.query_only,
                    "params": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                               for k, v in program.params.items()}},
        "domain": {"source": net.bounds.source, "values": net.bounds.values, "floors": net.bounds.floors},
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
            json.dump(_manifest(net), f, indent=1)
        directory.mkdir(exist_ok=True)
        for name in FILES:
            os.replace(os.path.join(tmp, name), directory / name)
    return directory


class ICLModel(torch.nn.Module):
    """read-in ``Linear`` -> ``GPT2Model`` on ``inputs_embeds`` -> read-out ``Linear``: tokens (B, T, d+1) to
    predictions (B, T); ``manifest`` is the checkpoint's ``icl_construct.json``."""

    def __init__(self, backbone: transformers.GPT2Model, read_in: torch.nn.Linear, read_out: torch.nn.Linear,
                 manifest: dict):
        super().__init__()
        self.read_in, self.backbone, self.read_out = read_in, backbone, read_out
        self.manifest = manifest

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(inputs_embeds=self.read_in(tokens)).last_hidden_state
        return self.read_out(hidden)[..., 0]


def from_pretrained(directory, attn_implementation: str = "eager", dtype=None):
    """The ``ICLModel`` saved in ``directory``, in eval mode; ``dtype`` defaults to the file's (a torch dtype)."""
    directory = Path(directory)
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}; write it with construct.hf.save_pretrained")
    manifest = json.loads((directory / "icl_construct.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{directory / 'icl_construct.json'} is not an {FORMAT} of version {VERSION}")
    if dtype is None:
        dtype = {"float64": torch.float64, "float32": torch.float32}[manifest["dtype"]]
    backbone = transformers.GPT2Model.from_pretrained(directory, dtype=dtype, attn_implementation=attn_implementation)
    io = safetensors.torch.load_file(directory / "read_in_out.safetensors")
    d1, D = io["read_in.weight"].shape[1], io["read_in.weight"].shape[0]
    read_in = torch.nn.Linear(d1, D, dtype=dtype)
    read_out = torch.nn.Linear(D, 1, dtype=dtype)
    with torch.no_grad():
        for layer, prefix in ((read_in, "read_in"), (read_out, "read_out")):
            layer.weight.copy_(io[f"{prefix}.weight"].to(dtype))
            layer.bias.copy_(io[f"{prefix}.bias"].to(dtype))
    return ICLModel(backbone, read_in, read_out, manifest).eval()


def predict(model, X, y, x_query) -> np.ndarray:
    """The ``k + 1`` predictions of a loaded ``ICLModel`` for a task of ``k <= n`` examples, as
    ``CompiledNetwork.predict`` reads them
    (unchecked against the domain and uncertified: only the numpy pass of ``construct`` certifies)."""
    program = model.manifest["program"]
    X, y, x_query = (np.asarray(a, dtype=np.float64) for a in check_task(X, y, x_query, program["d"], program["n"],
                                                                         prefix=not program["query_only"]))
    dtype = model.read_in.weight.dtype
    with torch.no_grad():
        out = model(torch.tensor(tokens(X, y, x_query), dtype=dtype)[None])[0]
    out = out.numpy().astype(np.float64)[x_columns(len(X))]
    if program["query_only"]:  # the one-example chains predict only the query
        out[:-1] = np.nan
    return out
