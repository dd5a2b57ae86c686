"""What more than one test module uses: the repository's root, how the compiler tests build and check a network,
random transformer weights, the issue's task, a weights file's members, and docs/BAD_INPUT.md's table.

Test modules import this module (``from support import ...``; pyproject's ``pythonpath`` puts tests/ on the path)
and never each other.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from construct import programs, reference
from construct.compiler import Bounds, compile
from construct.export.spec import MANIFEST
from construct.tasks import gaussian_tasks
from construct.transformer import Weights

ROOT = Path(__file__).resolve().parent.parent  # the repository


# -- compiled networks: built as the compiler tests build them, checked layer by layer ---------------------------

def build(program, seed=0, extra=(), fuse=True):
    """Calibrate on 64 standard tasks (and any extra ones), margin 4, and compile."""
    tasks = gaussian_tasks(program.d, program.n, 64, seed) + list(extra)
    return compile(program, Bounds.calibrate(program, tasks), fuse=fuse)


def sgd_and_ridge(t):
    """The two programs of a drawn task ``t`` (``construct.testing.compiled_tasks``), each with its closed form."""
    return [
        (programs.sgd(t.d, t.n, t.alpha, t.lam, t.w0), reference.sgd_one_pass(*t.data, t.alpha, t.lam, t.w0)),
        (programs.ridge(t.d, t.n, t.lam), reference.ridge(*t.data, t.lam)),
    ]


LAYER_TOLERANCE = {"mov": 1e-10, "aff": 1e-10, "mul": 1e-9, "div": 1e-9}


def check_layers(net, task):
    """Run the network; at every layer apply its instructions with the exact machine to the
    network's own input state and compare. Returns the worst errors by kind."""
    worst = {}
    for c in net.check_layers(*task):
        where = f"layer {c.layer} ({c.instruction}), register {c.register}"
        assert c.relative <= LAYER_TOLERANCE[c.instruction.kind], f"{where}: relative error {c.relative:.3g}"
        assert c.error <= c.predicted, f"{where}: error {c.error:.3g} above the predicted bound {c.predicted:.3g}"
        worst[c.instruction.kind] = max(worst.get(c.instruction.kind, 0.0), c.relative)
    return worst


# -- generic transformer weights ---------------------------------------------------------------------------------

def random_weights(seed, L=3, m=2, D=10, dh=4, U=12, d=3, T=9, dtype=np.float64):
    """Weights of no program: L layers of m heads, width D, head size dh, U MLP units, for T tokens of d inputs."""
    rng = np.random.default_rng(seed)
    s = 0.4
    arrays = dict(
        embed=rng.normal(size=(d + 1, D)), positions=rng.normal(size=(T, D)), readout=rng.normal(size=D),
        Wq=s * rng.normal(size=(L, m, D, dh)), Wk=s * rng.normal(size=(L, m, D, dh)),
        Wv=s * rng.normal(size=(L, m, D, dh)), Wo=s * rng.normal(size=(L, m * dh, D)), bo=s * rng.normal(size=(L, D)),
        ln_gain=1 + s * rng.normal(size=(L, D)), ln_bias=s * rng.normal(size=(L, D)),
        W1=s * rng.normal(size=(L, D, U)), b1=s * rng.normal(size=(L, U)), W2=s * rng.normal(size=(L, U, D)),
        b2=s * rng.normal(size=(L, D)),
    )
    return Weights(**{k: v.astype(dtype) for k, v in arrays.items()})


def sparse_weights(seed, m=3, D=10, dh=4, U=12, T=9, dtype=np.float64):
    """One layer of ``random_weights`` with the zeros a compiled network has, each kind where the others are not:
    head 0 without value weights (its queries and keys kept), a value column of head 1 without weights and one that
    ``Wo`` does not read, a score column with query weights only, a row no head reads, units without input weights
    or bias (one of them with output weights), a unit whose output weights are zero, a row of ``LN(X)`` no unit
    reads, and rows the MLP does not write."""
    w = random_weights(seed, L=1, m=m, D=D, dh=dh, U=U, T=T, dtype=dtype)
    arrays = {name: array.copy() for name, array in w.arrays().items()}
    arrays["Wv"][0, 0] = 0.0
    arrays["Wv"][0, 1, :, 0] = 0.0
    arrays["Wo"][0, dh + 1] = 0.0
    arrays["Wk"][0, 1, :, 2] = 0.0
    for name in ("Wq", "Wk", "Wv"):
        arrays[name][0, :, 3] = 0.0
    arrays["W1"][0, :, :2] = 0.0
    arrays["b1"][0, :2] = 0.0
    arrays["W2"][0, 1] = 0.0
    arrays["W2"][0, 2] = 0.0
    arrays["W1"][0, 4] = 0.0
    arrays["W2"][0, :, 5:7] = 0.0
    return Weights(**arrays, ln_eps=w.ln_eps)


# -- the issue's task: inside its box, too wide for its lam ------------------------------------------------------

# ridge d = 1, |x| <= 7000, lam = 1e-3: R^2/lam = 4.9e10 (tests/raw/test_domain.py holds the refusal)
ISSUE_CASE = (np.array([[7000.0], [5000.0], [-6000.0], [3000.0], [6500.0], [-4000.0]]),
              0.5 * np.array([7000.0, 5000.0, -6000.0, 3000.0, 6500.0, -4000.0]) + np.array([1, -2, 3, 0.5, -1, 2]),
              np.array([2000.0]))


# -- a weights file's members, read and written as they are ------------------------------------------------------

def read_members(path):
    """A weights file's manifest (parsed) and its arrays by name."""
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read(MANIFEST))
        arrays = {name[:-4]: np.lib.format.read_array(z.open(name)) for name in z.namelist() if name != MANIFEST}
    return manifest, arrays


def write_members(path, manifest, arrays, compression=zipfile.ZIP_DEFLATED):
    """A weights file of this manifest (a dict, or text written as it is) and these arrays, with no check."""
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr(MANIFEST, manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest))
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, a)


# -- docs/BAD_INPUT.md -------------------------------------------------------------------------------------------

BAD_INPUT = ROOT / "docs" / "BAD_INPUT.md"


def bad_input_counts() -> dict[str, int]:
    """The table "What bad input gets": category -> number of cases, for the rows that state a count."""
    section = BAD_INPUT.read_text().split("# What bad input gets")[1].split("\n## ")[0]
    return {row[0]: int(row[1]) for row in
            ([cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
             if line.startswith("|") and not line.startswith("| ---")) if row[1].isdigit()}
