"""Every local-error term of the mechanism certificate is needed: without it, a layer's exact error exceeds its bound.

The certificate bounds, layer by layer, ``|layer(H) - I(H)|`` on the program
rows: the floating-point layer against its instructions applied in exact
arithmetic to the same input ``H`` (``construct.compiler.certificate``,
``Certifier._local``). These tests compute that exact error (sympy rationals:
the instructions' own ``apply`` on the float state's exact values) on every
layer of a small network and one task, check that the bound holds, then switch
one term off (monkeypatching the function that computes it, or dropping its
entry from a mechanism's ``local_terms``) and find a layer whose exact error is
above the bound without it. Where the default network does not exercise a term
(a product scale P = 64 makes the Richardson truncation ~1e-20, far below the
rounding), the network is compiled with the scale constants that do
(``compile(..., scale_constants=...)``, which loaded files also pass): the
certificate must hold for those too. ``docs/CERTIFICATE_TERMS.md`` lists every
term with its test here, or why it is kept without one.
"""


import numpy as np
import pytest
import sympy

import construct
from construct import programs
from construct.compiler.certificate import Certifier
from construct.compiler.constants import chosen_constants
from construct.instructions.div import DivisionMechanism
from construct.instructions.mul import ProductMechanism
from construct.tasks import gaussian_tasks
from construct.transformer import rounding

from support import ROOT

CHOSEN = chosen_constants(np.float64)


def exact_layer_errors(net, task):
    """Per layer: ``(error below, error above, bound)``, each (program rows, tokens): the exact ``|layer(H) - I(H)|``
    rounded down and up, and the certificate's local bound, on the states of the numpy pass on ``task``."""
    certifier = Certifier(net)  # built here, so that a patched term is the one it uses
    program, P = net.program, certifier.width
    H = certifier.passes.embed(net._tokens(*task))
    out = []
    with np.errstate(all="ignore"):
        for l, step in enumerate(net.steps):
            parts = certifier.passes.layer_parts(l, H)
            bound = certifier._local(l, H, parts)[:, :P].T
            want = np.vectorize(sympy.Rational, otypes=[object])(H[:, :P].T.astype(np.float64))
            for k in step.instructions:
                want = program.instructions[k].apply(want, program.layout)
            got = parts.out[:, :P].T.astype(np.float64)
            error = np.array([[float(abs(sympy.Rational(g) - e)) for g, e in zip(row, wrow)]
                              for row, wrow in zip(got, want)])  # to nearest: within 2^-53 relative
            out.append((error * (1 - 2.0**-50), error * (1 + 2.0**-50), bound))
            H = parts.out
    return out


def holds(net, task) -> bool:
    """Every layer's exact error is within its bound."""
    return all(np.all(above <= bound) for _, above, bound in exact_layer_errors(net, task))


def exceeded(net, task) -> bool:
    """Some layer's exact error is above its bound."""
    return any(np.any(below > bound) for below, _, bound in exact_layer_errors(net, task))


def network(name: str, dtype=np.float64, fuse: bool = False, **constants):
    """A small network of ``name`` (ridge d = 2, n = 2, lam = 0.5; SGD d = 2, n = 3), calibrated on 64 tasks, and one
    of them."""
    program = {"ridge": programs.ridge(2, 2, 0.5), "sgd": programs.sgd(2, 3, 0.1, 0.1, np.ones(2))}[name]
    tasks = gaussian_tasks(program.d, program.n, 64, 0)
    chosen = chosen_constants(dtype)
    net = construct.compile(program, construct.Bounds.calibrate(program, tasks), dtype=dtype, fuse=fuse,
                            scale_constants={**chosen, **constants} if constants else None)
    return net, tasks[0]


def without_term(kind, term: str, monkeypatch) -> None:
    """``kind``'s ``local_terms`` without ``term`` (the list test below holds the names to the code)."""
    original = kind.local_terms

    def local_terms(self, ctx):
        terms = original(self, ctx)
        terms.pop(term, None)
        return terms

    monkeypatch.setattr(kind, "local_terms", local_terms)


def zero_attention_rounding(monkeypatch):
    original = rounding.attention

    def attention(*args):
        bound = original(*args)
        return rounding.AttentionBound(np.zeros_like(bound.rounding), bound.values)

    monkeypatch.setattr(rounding, "attention", attention)


# term -> (how to switch it off, the network that needs it: name, dtype, fuse, scale constants)
TERMS = {
    "attention rounding": (zero_attention_rounding, ("ridge", np.float32, False, {})),
    "attention selection": (lambda mp: mp.setattr(rounding, "selection", lambda Wo, parts, values, chosen, uniform=None: np.zeros(
        (parts.A.shape[1], Wo.shape[1]))), ("ridge", np.float64, False, {})),
    "MLP matrix products' rounding (Dot2)": (lambda mp: mp.setattr(rounding, "product_rounding", lambda x, W, b, c: (
        np.zeros(c.shape))), ("sgd", np.float64, False, {})),
    "residual additions' rounding": (lambda mp: mp.setattr(rounding, "addition_rounding", lambda H, Y, bias, out,
                                                           written=None: np.zeros(out.shape)),
                                     ("ridge", np.float32, False, {})),
    "product: mlp rounding": (lambda mp: without_term(ProductMechanism, "mlp rounding", mp),
                              ("ridge", np.float64, False, {})),
    "product: output row before the MLP": (lambda mp: without_term(ProductMechanism, "output row before the MLP", mp),
                                           ("ridge", np.float64, False, {"attention_sharpness": 20.0})),
    "product: layer norm scale gap": (lambda mp: without_term(ProductMechanism, "layer norm scale gap", mp),
                                      ("ridge", np.float64, False, {"attention_sharpness": 8.0})),
    "product: richardson truncation": (lambda mp: without_term(ProductMechanism, "richardson truncation", mp),
                                       ("ridge", np.float64, False, {"product_scale": 4.0})),
    "product: operands' attention error": (lambda mp: without_term(ProductMechanism, "operands' attention error", mp),
                                           ("ridge", np.float64, True, {"attention_sharpness": 8.0})),
    "product: signed weight and layer norm roundings": (
        lambda mp: without_term(ProductMechanism, "signed weight and layer norm roundings", mp),
        ("sgd", np.float64, True, {})),
    "division: mlp rounding": (lambda mp: without_term(DivisionMechanism, "mlp rounding", mp),
                               ("ridge", np.float64, False, {})),
    "division: output row before the MLP": (lambda mp: without_term(DivisionMechanism, "output row before the MLP", mp),
                                            ("ridge", np.float64, False, {"attention_sharpness": 8.0})),
    "division: bypass truncation": (lambda mp: without_term(DivisionMechanism, "bypass truncation", mp),
                                    ("ridge", np.float64, False, {"bypass_offset": 2.0})),
    "division: layer norm scale gap": (lambda mp: without_term(DivisionMechanism, "layer norm scale gap", mp),
                                       ("ridge", np.float64, False, {"attention_sharpness": 20.0})),
    "division: operands' attention error": (lambda mp: without_term(DivisionMechanism, "operands' attention error", mp),
                                            ("ridge", np.float64, True, {"attention_sharpness": 8.0})),
}


@pytest.mark.parametrize("term", sorted(TERMS))
def test_each_term_is_needed(term, monkeypatch):
    switch_off, (name, dtype, fuse, constants) = TERMS[term]
    net, task = network(name, dtype, fuse, **constants)
    assert holds(net, task), f"the full bound fails on the network that needs {term!r}"
    switch_off(monkeypatch)
    assert exceeded(net, task), f"without {term!r} every layer's exact error is still within its bound"


def test_the_list_beside_the_certificate_has_every_term_and_its_test(monkeypatch):
    """``docs/CERTIFICATE_TERMS.md`` names each tested term's test, and every term a product or division layer's
    ``local_terms`` gives (on ridge, which has both) is either tested here or kept there with its reason."""

    text = (ROOT / "docs" / "CERTIFICATE_TERMS.md").read_text()
    tested, kept = text.split("## Terms kept without such a test")
    rows = [line for line in tested.splitlines() if line.startswith("| ") and not line.startswith(("| term", "| ---"))]
    assert len(rows) == len(TERMS) and all(f"| `{term}`, " in tested for term in TERMS)
    seen = set()
    for kind in (ProductMechanism, DivisionMechanism):
        original = kind.local_terms

        def local_terms(self, ctx, original=original, prefix="product" if kind is ProductMechanism else "division"):
            terms = original(self, ctx)
            seen.update(f"{prefix}: {name}" for name in terms)
            return terms

        monkeypatch.setattr(kind, "local_terms", local_terms)
    net, task = network("ridge")
    net.certify(*task)
    untested = {name for name in seen if name not in TERMS}
    assert seen and untested == {"division: bypass offset rounding", "division: weight roundings"}
    assert all(f"| {name} (" in kept for name in untested)
