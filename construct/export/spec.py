"""The npz weights format, versions 2 and 3: its names, limits and the meaning of every array and manifest text.

``docs/EXPORT.md`` is the specification, written for a reader in any
language; this module is what of it the writer (``writer``) and the loader
(``loader``) share, and what they write into every manifest. Notation, as
there: d inputs, n examples, T = 2n + 1 tokens, residual width D, m heads
of size dh, MLP width U, S stored layers applied at L depths (``order``).
It imports nothing of the library: the format is a description, not code.
"""

from __future__ import annotations

import hashlib

import numpy as np

FORMAT, VERSION, MANIFEST = "icl-construct weights", 3, "manifest.json"
OLD_VERSION, OLD_REVISIONS = 1, (1, 2, 3)  # the format without ``order``, and the compiler revisions that wrote it
KIND_VERSIONS = {"avg": 3}  # the version that first holds each instruction kind; the others are in every version


def version_for(kinds) -> int:
    """The format version a file of a program with these instruction kinds is written in: the lowest that holds
    them all (2, or 3 with an averaging head), so that a reader of version 2 reads every file it can."""
    return max([VERSION - 1] + [KIND_VERSIONS.get(kind, VERSION - 1) for kind in kinds])

# The layer exactly as transformer/weights.py's docstring states it (a test keeps them equal), then what it leaves
# implicit.
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

# Every array, in the order the writer stores them, with its shape (S stored layers, L applied depths) and role.
ARRAY_MEANINGS = {
    "embed": "(d+1, D): token slots [y, x_1..x_d] -> residual rows",
    "positions": "(T, D): added to token t",
    "readout": "(D,): prediction = final state @ readout",
    "Wq": "(S, m, D, dh)", "Wk": "(S, m, D, dh)", "Wv": "(S, m, D, dh)", "Wo": "(S, m*dh, D)", "bo": "(S, D)",
    "ln_gain": "(S, D)", "ln_bias": "(S, D)", "W1": "(S, D, U)", "b1": "(S, U)", "W2": "(S, U, D)", "b2": "(S, D)",
    "order": "(L,) int64: the stored layer (0..S-1) applied at each of the L depths; a tied layer appears several "
             "times",
}
# The same meanings as version-2 files written before they were given in the specification's letters (stored
# layers were called L, depths "depth"): such files load, since the wording describes, and is not, the network.
EARLIER_MEANINGS = {
    **{name: meaning.replace("(S,", "(L,") for name, meaning in ARRAY_MEANINGS.items()},
    "order": "(depth,) int64: the stored layer (0..L-1) applied at each depth; a tied layer appears several times",
}

TOKENS = {
    "x": "x~ = [0, x_1, ..., x_d] (slot 0 is the label slot)",
    "y": "y~ = [y, 0, ..., 0]",
    "order": "x~_1, y~_1, x~_2, y~_2, ..., x~_n, y~_n, x~_q (T = 2n + 1 tokens)",
    "array": "tokens is T x (d+1): row 2k holds x~_{k+1}, row 2k+1 holds y~_{k+1}, row 2n the query",
}
READOUT_MEANING = "y_hat at column 2k predicts y_{k+1} from examples 1..k; column 2n is the query's"
COMPILER_NOTE = "load() rebuilds the network and requires this file to equal it"

# What a file may be. A manifest or .npy header beyond these is refused before it is parsed.
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_HEADER_BYTES = 4096  # an .npy header of one of these arrays is under 200 bytes
DEFLATE_RATIO = 1032  # deflate expands at most about 1032-fold: a member declaring more is not deflate


def array_dtype(name: str, dtype) -> np.dtype:
    """Every array has the file's float dtype but the layer order, which is int64."""
    return np.dtype(np.int64) if name == "order" else np.dtype(dtype)


def sha256(a: np.ndarray) -> str:
    """The manifest's hash of an array: SHA-256 of its raw bytes, little-endian in C order (the ``.npy`` member's
    data after its header), as lowercase hex."""
    return hashlib.sha256(little_endian(a).reshape(-1).view(np.uint8)).hexdigest()


def little_endian(a: np.ndarray) -> np.ndarray:
    """``a`` as the file stores it: C order, little-endian (a no-op on the usual machines)."""
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
