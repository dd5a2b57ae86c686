"""KAPPA measured: the rounding constant of ``scales.py``'s model, on float64 runs (a measurement, not a proof).

    python -m proofs.kappa               # print the worst measured value beside KAPPA
    python -m proofs.kappa --out FILE    # and write it (the walkthrough quotes proofs/kappa.json, written so)

The model (``construct/mechanisms/scales.py``): a GeLU unit's output in
floating point is within ``KAPPA eps s`` of gelu at its exact pre-activation,
with ``s = |u|``'s bound for a product unit (``k / (m P)``, k the operands it
reads, each scaled to at most 1) and ``s = B + 1`` for a bypass unit. It
covers layer norm, the ``W1`` dot product and the erf. Measured here, for
every unit of every product and division layer of a float64 run: the pass's
output ``gelu(pre)`` (``construct.transformer.forward.layer_parts``) against
gelu of the pre-activation computed at 30 digits from the same state after
attention, in units of ``eps s``. The worst over the cases below is the
smallest KAPPA the model could have taken on them.

The cases: the programs ``tests/compiler/test_compiler.py`` checks layer by layer,
over the range of sizes it draws from, built as it builds them (domain
calibrated on 64 Gaussian tasks, fused): the two chains at d = 4, and sgd
and ridge with the registry's parameters for d in {1, 2, 4, 8} and n in
{1, 4, 16}, each run on two Gaussian tasks. (``tests/proof/test_proofs.py``
measures the same on the very networks and tasks of test_compiler's
deterministic cases, and reports it.) The value depends on the machine's
rounding (the order BLAS adds in), so the file names the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import mpmath
import numpy as np

from construct import programs
from construct.compiler import Bounds, compile
from construct.instructions.div import DivisionMechanism
from construct.instructions.mul import ProductMechanism
from construct.mechanisms import scales
from construct.mechanisms.plan import ZERO
from construct.raw.prompt import tokens
from construct.tasks import gaussian_tasks
from construct.transformer import forward

PATH = Path(__file__).resolve().parent / "kappa.json"
CASES = (("sgd_step", 4, 1), ("sherman_morrison_step", 4, 1),
         *((name, d, n) for name in ("sgd", "ridge") for d in (1, 2, 4, 8) for n in (1, 4, 16)))
CALIBRATION, TASKS = 64, 2
DIGITS = 30


def network(name: str, d: int, n: int):
    """The case's network, built as the compiler tests build one (``build`` in tests/support.py)."""
    program = programs.get(name).program(d, n)
    return compile(program, Bounds.calibrate(program, gaussian_tasks(d, n, CALIBRATION, 0)))


def _gelu(u):
    return u * (1 + mpmath.erf(u / mpmath.sqrt(2))) / 2


def unit_scales(net, layer: int) -> dict[int, float] | None:
    """The layer's (1-based) live units -> the scale s of the model, or None for a layer without an MLP."""
    mechanisms = net.mechanisms[layer - 1].mlp
    if not mechanisms:
        return None
    w, s = net.weights, int(net.weights.order[layer - 1])
    zero = net.layout.span(ZERO)[0]
    live = np.flatnonzero(np.any(w.W2[s] != 0, axis=1))
    if all(isinstance(m, DivisionMechanism) for m in mechanisms):
        B = mechanisms[0].B
        return {int(u): B + 1 for u in live}
    if not all(isinstance(m, ProductMechanism) for m in mechanisms):
        raise ValueError(f"layer {layer}: an MLP of mixed or unknown mechanisms")
    P, multiples = mechanisms[0].P, mechanisms[0].multiples
    scales_ = {}
    for u in live:
        reads = np.count_nonzero(np.delete(w.W1[s][:, u], zero))
        scales_[int(u)] = reads / (multiples[u] * P)
    return scales_


def measure(net, task) -> dict:
    """The worst unit of one run: ``{"kappa": |gelu_float - gelu(exact pre)| / (eps s), "layer", "unit", "token"}``."""
    w = net.weights
    eps = scales.machine_eps(w.dtype)
    states = forward.hidden_states(w, tokens(*task))
    worst = {"kappa": 0.0, "layer": None, "unit": None, "token": None}
    for layer in range(1, w.depth + 1):
        units = unit_scales(net, layer)
        if units is None:
            continue
        s = int(w.order[layer - 1])
        parts = forward.layer_parts(w, s, states[layer - 1])
        W1, b1 = w.W1[s], w.b1[s]
        reads = {u: np.flatnonzero(W1[:, u]) for u in units}
        rows = sorted({int(r) for r in np.concatenate(list(reads.values()))})
        with mpmath.workdps(DIGITS):
            for t, column in enumerate(parts.X):
                x = [mpmath.mpf(float(v)) for v in column]
                mean = mpmath.fsum(x) / len(x)
                sigma = mpmath.sqrt(mpmath.fsum((v - mean) ** 2 for v in x) / len(x) + mpmath.mpf(w.ln_eps))
                normed = {r: mpmath.mpf(float(w.ln_gain[s, r])) * (x[r] - mean) / sigma
                          + mpmath.mpf(float(w.ln_bias[s, r])) for r in rows}
                for u, scale in units.items():
                    pre = (mpmath.fsum(normed[r] * mpmath.mpf(float(W1[r, u])) for r in reads[u])
                           + mpmath.mpf(float(b1[u])))
                    kappa = float(abs(mpmath.mpf(float(parts.hidden[t, u])) - _gelu(pre)) / (eps * scale))
                    if kappa > worst["kappa"]:
                        worst = {"kappa": kappa, "layer": layer, "unit": u, "token": t}
    return worst


def run(cases=CASES) -> dict:
    """The worst measured value over ``cases``, with where it was found."""
    found, start = [], time.perf_counter()
    for name, d, n in cases:
        net = network(name, d, n)
        for k, task in enumerate(gaussian_tasks(d, n, TASKS, 1)):
            worst = measure(net, task)
            where = None if worst["layer"] is None else net.layers[worst["layer"] - 1].instruction
            found.append({"case": [name, d, n], "task": k, **worst, "instruction": where})
    top = max(found, key=lambda r: r["kappa"])
    return {"command": "python -m proofs.kappa --out proofs/kappa.json", "KAPPA": scales.KAPPA,
            "measured": top["kappa"], "worst": top, "cases": [list(c) for c in cases], "runs": found,
            "machine": f"{platform.machine()}, numpy {np.__version__}", "seconds": round(time.perf_counter() - start)}


def recorded(path: Path = PATH) -> dict:
    """The results file the command wrote (what the documents quote)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run python -m proofs.kappa --out {path}")
    return json.loads(path.read_text())


def quoted(path: Path = PATH) -> str:
    """The measured value as the documents quote it."""
    result = recorded(path)
    sizes = result["cases"]
    return (f"KAPPA = {result['KAPPA']:g}; measured on float64 runs of the programs "
            f"tests/compiler/test_compiler.py checks ({len(sizes)} networks, d up to {max(d for _, d, _ in sizes)} and n up to "
            f"{max(n for _, _, n in sizes)}: `python -m proofs.kappa`, which writes `proofs/kappa.json`; on "
            f"{result['machine']}), the worst unit needs {result['measured']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs.kappa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    result = run()
    worst = result["worst"]
    print(f"KAPPA measured {result['measured']:.3f} (the model takes {scales.KAPPA:g}): {worst['case']}, layer "
          f"{worst['layer']} ({worst['instruction']}), unit {worst['unit']}, token {worst['token']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0 if result["measured"] <= scales.KAPPA else 1


if __name__ == "__main__":
    sys.exit(main())
