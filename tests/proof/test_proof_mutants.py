"""The layer proofs see the compiler's constants: each mutant of the compiler fails a proof that names what is wrong.

Each mutant is applied with monkeypatch to the compiler (a constant of
``mechanisms.scales``, an instruction kind's compile rule, or the assembly
stage); the proofs compile
fresh networks when they run, so they check the mutated weights. The same
patches with the mutation left out (``mutate=False``) keep every layer proof
passing: what fails is the mutation, not the patching.
"""

import dataclasses
import re

import pytest

import proofs
from construct.compiler import build
from construct.instructions import Div
from construct.mechanisms import plan, scales

PROOFS = {p.name: p for p in proofs.PROOFS}
LAYER_PROOFS = [name for name, p in PROOFS.items() if p.group == "layers"]


def richardson(monkeypatch, mutate):
    """Weights summing to 1 (the product's leading term stays ab) that no longer cancel the 1/P^2 term; the compiler
    builds the output weights from the constants C_m = w_m sqrt(pi/2), so those are what change."""
    wrong = ((1, 1 / 45), (2, -21 / 45), (4, 65 / 45))
    monkeypatch.setattr(scales, "RICHARDSON", wrong if mutate else scales.RICHARDSON)
    monkeypatch.setattr(scales, "RICHARDSON_CONSTANTS", tuple(w * scales.SQRT_HALF_PI for _, w in wrong)
                        if mutate else scales.RICHARDSON_CONSTANTS)


def swapped_scales(monkeypatch, mutate):
    """The units of scale P get the weight of scale 2P and the other way round."""
    (m1, w1), (m2, w2), rest = scales.RICHARDSON[0], scales.RICHARDSON[1], scales.RICHARDSON[2:]
    monkeypatch.setattr(scales, "RICHARDSON", ((m2, w1), (m1, w2), *rest) if mutate else scales.RICHARDSON)


def bypass_offset_3(monkeypatch, mutate):
    original = scales.bypass_offset
    monkeypatch.setattr(scales, "bypass_offset", lambda dtype: 3.0 if mutate else original(dtype))


def sharpness_11(monkeypatch, mutate):
    original = scales.attention_sharpness
    monkeypatch.setattr(scales, "attention_sharpness", lambda dtype: 11.0 if mutate else original(dtype))


def flipped_division_pad(monkeypatch, mutate):
    """The self head writes +N_d den into both division pads."""
    original = Div.plan_mlp

    def divisions(divs, ctx, forms, layer, scratch):
        original(divs, ctx, forms, layer, scratch)
        if mutate:
            (neg,) = ctx.rows(plan.DIV_NEG)
            form, bias = forms.value(neg)
            forms.set(neg, {key: -c for key, c in form.items()}, -bias)

    monkeypatch.setattr(Div, "plan_mlp", staticmethod(divisions))


def no_zero_sum(monkeypatch, mutate):
    """W1 without the compensating weight on row 'zero' that makes each unit's weights sum to zero."""
    original = build.assemble

    def assemble(plans, order, ctx, program, shape):
        weights = original(plans, order, ctx, program, shape)
        if not mutate:
            return weights
        W1 = weights.W1.copy()
        W1[:, ctx.layout.span(plan.ZERO)[0], :] = 0.0
        return dataclasses.replace(weights, W1=W1)

    monkeypatch.setattr(build, "assemble", assemble)


MUTANTS = {  # mutant: (patch, the proofs that must fail, what their message must say)
    "wrong Richardson weights": (
        richardson, ["layer_mul"],
        r"g\(k \(A@0 \+ x_in@0\)/\(2P\)\) writes \S+ into u; the lemma's Richardson weight w_2 sqrt\(pi/2\) "
        r"\(2P\)\^2 S_a S_b is \S+ \(1\.05 times that\)"),
    "swapped product scales": (
        swapped_scales, ["layer_mul"],
        r"g\(k \(A@0 \+ x_in@0\)/\(1P\)\) writes \S+ into u; the lemma's Richardson weight w_1 sqrt\(pi/2\) "
        r"\(1P\)\^2 S_a S_b is \S+ \(-20 times that\)"),
    "bypass offset 3": (
        bypass_offset_3, ["layer_div"],
        r"bypass offset B = 3: the bypass bound \(B - 1\) Phi\(1 - B\) = 0\.0455 is above the design target"),
    "flipped division pad": (
        flipped_division_pad, ["layer_div", "layer_clears_dirty_rows"],
        r"the division pads are (\S+\*den@0) and \1 in column 0, not \+N_d den and -N_d den"),
    "no zero-sum compensation": (
        no_zero_sum, ["layer_mul", "layer_div", "layer_clears_dirty_rows"],
        r"unit \d+'s W1 column sums to \S+, 1 of its absolute sum: the zero-sum compensation on row 'zero' is "
        r"missing"),
    "attention sharpness 11": (
        sharpness_11, LAYER_PROOFS,  # every layer has attention
        r"attention sharpness 11 lets head \d+ leak 3\.34e-05 of its mass off the selected token, above the design "
        r"target 1e-3 eps"),
}


@pytest.mark.parametrize("mutant", MUTANTS)
def test_a_mutant_fails_the_proofs_that_see_it(monkeypatch, mutant):
    patch, names, message = MUTANTS[mutant]
    patch(monkeypatch, mutate=True)
    for name in names:
        holds, _, failure = proofs.run(PROOFS[name])
        assert not holds, f"{mutant}: {name} still holds"
        assert re.search(message, failure), f"{mutant}, {name}: {failure}"


def test_the_patches_without_their_mutations_keep_every_layer_proof(monkeypatch):
    for patch, _, _ in MUTANTS.values():
        patch(monkeypatch, mutate=False)
    for name in LAYER_PROOFS:
        holds, _, failure = proofs.run(PROOFS[name])
        assert holds, f"{name}: {failure}"
