"""The proofs run in the test suite, the walkthrough is current, and the compiler uses the proven bounds."""

import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import proofs
from construct import programs
from construct.mechanisms import scales
from construct.compiler import Bounds
from construct.compiler import compile
from construct.instructions import Div, Mul
from construct.tasks import gaussian_tasks
from proofs import layers, lemmas, registry, walkthrough


@pytest.mark.parametrize("proof", proofs.PROOFS, ids=lambda p: p.name)
def test_proof_holds(proof):
    holds, _, message = proofs.run(proof)
    assert holds, f"{proof.name}: {message}"


def test_a_failing_proof_fails_the_run(monkeypatch, capsys):
    def broken():
        registry.require(sp.simplify(sp.sin(1) ** 2 + sp.cos(1) ** 2 - 2) == 0, "not an identity")

    monkeypatch.setattr(registry, "PROOFS", [registry.Proof("broken", "1 = 2", "", broken, "test")])
    assert registry.main([]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert registry.main(["--list"]) == 0


def test_walkthrough_is_up_to_date():
    assert walkthrough.PATH.read_text() == walkthrough.render(), "run: python -m proofs.walkthrough"


def test_walkthrough_does_not_depend_on_blas():
    """The file must come out the same on every machine: rendered with OpenBLAS's oldest kernels (SSE3, which sum in
    another order than the AVX2 and AVX-512 ones) and one thread, it is byte for byte the committed file."""
    env = {**os.environ, "OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "1"}
    code = "import sys; from proofs import walkthrough; sys.stdout.write(walkthrough.render())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          cwd=walkthrough.PATH.parent.parent)
    assert done.stdout == walkthrough.PATH.read_text()


@pytest.mark.parametrize("P", [10.0, 57.3, 569.77, 1e4])
def test_product_bound_is_the_lemma(P):
    assert scales.product_truncation(P) == pytest.approx(float(lemmas.PRODUCT_BOUND.subs(lemmas.P, P)), rel=1e-15)


@pytest.mark.parametrize("B", [2.0, 5.5, 9.44, 20.0])
def test_bypass_bound_is_the_lemma(B):
    lemma = float(lemmas.bypass_bound(sp.Float(B, 40), 1).evalf(40))
    assert scales.bypass_truncation(B) == pytest.approx(lemma, rel=1e-12)


@pytest.mark.parametrize("N", [5.0, 24.5, 44.64])
def test_attention_leak_is_the_lemma(N):
    assert scales.attention_leak(N) == pytest.approx(float(lemmas.leak_bound(sp.Float(N, 40)).evalf(40)), rel=1e-12)


def test_pad_error_is_the_lemma():
    N, sum_sq, width, ln_eps, floor = 3.1e11, 1234.5, 57, 1e-5, 0.25
    assert scales.pad_error(N, sum_sq, width, ln_eps, floor) == pytest.approx(
        float(lemmas.rho_bound(sum_sq, width, ln_eps, N, floor)), rel=1e-15)


def test_predicted_layer_errors_are_the_lemmas_bounds():
    """Each mul and div layer's predicted error, recomputed from the lemmas' expressions plus the rounding model."""
    program = programs.ridge(3, 3, 0.5)
    net = compile(program, Bounds.calibrate(program, gaussian_tasks(3, 3, 32)), fuse=False)
    c, values = net.constants, net.bounds.values
    leak = float(lemmas.leak_bound(sp.Float(c["attention_sharpness"], 40)).evalf(40))
    eps = float(np.finfo(np.float64).eps)
    checked = 0
    for report, ins in zip(net.layers, program.instructions):
        if isinstance(ins, Mul):
            P = report.constants["product_scale"]
            rho = float(lemmas.rho_bound(c["column_sum_sq"], c["width"], c["ln_eps"], report.constants["ln_pad"]))
            per_product = float(lemmas.PRODUCT_BOUND.subs(lemmas.P, P)) + scales.PRODUCT_ROUNDING * eps * P + rho
            expected = ins.shape[1] * values[ins.a] * values[ins.b] * per_product + 2 * leak * values[ins.out]
        elif isinstance(ins, Div):
            B, N_d = report.constants["bypass_offset"], report.constants["div_pad"]
            rho = float(lemmas.rho_bound(c["column_sum_sq"], c["width"], c["ln_eps"], N_d, net.bounds.floors[ins.den]))
            truncation = float(lemmas.bypass_bound(sp.Float(B, 40), 1).evalf(40))
            rounding = (scales.KAPPA + 1) * eps * (B + 1)
            expected = values[ins.out] * (truncation + rounding + rho / 2 + 4 * leak)
        else:
            continue
        assert report.predicted_error == pytest.approx(expected, rel=1e-12), str(ins)
        checked += 1
    assert checked == sum(isinstance(ins, (Mul, Div)) for ins in program.instructions)


@pytest.mark.slow
@pytest.mark.parametrize("fuse", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("program", [programs.sgd(3, 3, 0.1, 0.5), programs.ridge(3, 3, 0.5)], ids=["sgd", "ridge"])
def test_every_layer_of_the_larger_programs_is_its_instruction(program, fuse):
    """Proofs layer_programs' and layer_programs_fused's check on d = 3, n = 3: every layer at its finite constants,
    within its declared error."""
    net = layers.calibrated_network(program, fuse=fuse)
    found = layers.check_network(net)
    assert len(found) == len(net.steps) == (len(program.instructions) if not fuse else 2 * program.n + 1
                                            if program.name == "sgd" else 4 * program.n + 1)
    assert all(f.error <= f.declared for f in found)


def test_every_proof_has_a_status():
    """proofs/status.py says how far each proof reaches, and names no proof that does not exist."""
    from proofs.status import ALL, LIMIT, SIZES, STATUS

    assert set(STATUS) == {p.name for p in proofs.PROOFS}
    assert set(STATUS.values()) <= {ALL, SIZES, LIMIT}


def test_a_unit_reading_only_rows_that_hold_zero_is_no_unit_of_the_lemma():
    """An extra GeLU unit whose inputs hold 0 in real arithmetic (the zero row and a product's cleared output, its
    W1 summing to 0) adds g(0) = 0 there, but its output weight would amplify any leak: the proof refuses it."""
    import dataclasses

    from construct.mechanisms.plan import ZERO
    from proofs.registry import ProofFailure

    net = layers.calibrated_network(programs.sgd_step(1, 0.1, 0.5, np.array([0.2])))
    w = net.weights.untied()
    l = next(i for i, step in enumerate(net.steps) if isinstance(net.program.instructions[step.instructions[0]], Mul))
    out = net.layout.span(net.program.instructions[net.steps[l].instructions[0]].out)[0]

    def pad(a, axis):
        return np.concatenate([a, np.zeros_like(np.take(a, [0], axis=axis))], axis=axis)

    W1, b1, W2 = pad(w.W1, 2), pad(w.b1, 1), pad(w.W2, 1)
    W1[l, net.layout.span(ZERO)[0], -1], W1[l, out, -1], W2[l, -1, out] = 1.0, -1.0, 1e6
    mutant = dataclasses.replace(net, weights=dataclasses.replace(w, W1=W1, b1=b1, W2=W2))
    layers.check_layer(dataclasses.replace(net, weights=w), l)  # the unpatched layer holds
    with pytest.raises(ProofFailure, match=r"unit \d+ reads \{\}, which is no unit of the lemma"):
        layers.check_layer(mutant, l)


def test_python_m_proofs_prints_each_status(capsys):
    """The runner prints the status beside each proof that holds, not a bare "proved"."""
    from proofs.status import STATUS

    assert registry.main(["gelu_product_erf", "theorem1_sgd_step", "layer_aff"]) == 0
    out = capsys.readouterr().out.splitlines()
    for line, name in zip(out, ["gelu_product_erf", "theorem1_sgd_step", "layer_aff"]):
        assert line.split()[0] == name and f" {STATUS[name]} " in line, line


# -- Theorems 1 and 2 for every d: the chains on registers of any size ---------------------------------------------


def test_the_lifted_chain_catches_the_printed_sign():
    """The all-d check of Theorem 1 fails on the chain as printed (step 6 with -lam): off by 4 alpha lam w0^T x2."""
    import dataclasses

    from construct import Aff
    from proofs import theorems
    from proofs.algebra import noncommutative_zero, transpose
    from proofs.registry import ProofFailure

    def printed(d):
        program = programs.sgd_step(d, theorems.alpha, theorems.lam,
                                    np.array(list(theorems.vector("w0", d)), dtype=object))
        steps = list(program.instructions)
        steps[5] = Aff("g", (("grad", 1), ("w", -theorems.lam)))
        return dataclasses.replace(program, instructions=tuple(steps))

    chain = theorems.lifted_chain(printed, {"w0": (theorems.w0, theorems.w0T)})
    t = sp.Symbol("t")
    scalars = {theorems.w0T * theorems.x1: t, theorems.x1T * theorems.w0: t}
    pred = chain.run(theorems.PROMPT, scalars)[-1][2]["pred"].expr
    w1 = theorems.w0 - 2 * theorems.alpha * (theorems.x1 * (theorems.x1T * theorems.w0 - theorems.y1)
                                             + theorems.lam * theorems.w0)
    with pytest.raises(ProofFailure, match=r"4\*alpha\*lam\) w0T\*q"):
        noncommutative_zero(pred - transpose(w1, chain.transposes) * theorems.q, scalars, "printed")


def test_lifting_refuses_what_it_cannot_read_exactly():
    from construct import Aff, Layout, Program, Register
    from construct.raw.prompt import input_registers
    from proofs.lifted import Lifted, same_program

    layout = Layout(input_registers(2) + [Register("x", (2,)), Register("pred", (1,))])
    skew = Program("skew", 2, 1, layout, (Aff("x", (("x_in", np.array([[1.0, 2.0], [0.0, 1.0]])),)),))
    with pytest.raises(ValueError, match=r"the weight of 'x_in' is neither c I nor a parameter's transpose"):
        Lifted(skew)
    with pytest.raises(ValueError, match="d >= 2"):
        Lifted(programs.sherman_morrison_step(1, 0.5))
    # a chain whose instructions change with d is not one register-level program
    from proofs.theorems import w0, w0T

    assert not same_program(Lifted(programs.sgd_step(2, 0.1, 0.1, np.ones(2)), {"w0": (w0, w0T)}),
                            Lifted(programs.sherman_morrison_step(3, 0.5)))
    assert same_program(Lifted(programs.sherman_morrison_step(2, 0.5)), Lifted(programs.sherman_morrison_step(5, 0.5)))


# -- the paper's rows ----------------------------------------------------------------------------------------------


def test_the_papers_rows_are_derived_from_its_numbers():
    """Theorem 1's w at [7, 9) at d = 2, and both counts, for every d (polynomials); the prediction undetermined."""
    from proofs import paper_layout

    d = paper_layout.d
    rows = {r.register: r for r in paper_layout.paper_rows("sgd_step")}
    assert rows["w"].paper == (3 + 2 * d, 3 + 3 * d) and rows["x"].paper == rows["x_in"].paper == (1, 1 + d)
    assert rows["pred"].paper is None and rows["pos"].paper is None
    two = {r.register: r for r in paper_layout.paper_rows("sherman_morrison_step")}
    assert two["Ainv"].paper == (1 + 2 * d, 1 + 2 * d + d**2) and two["Ainv"].other is None
    assert two["w"].paper == (3 + 4 * d + 3 * d**2, 3 + 5 * d + 3 * d**2)
    assert two["w"].other == (2 + 4 * d + 3 * d**2, 2 + 5 * d + 3 * d**2)
    table = "\n".join(paper_layout.markdown("sgd_step"))
    assert "| `w` | [3 + 2d, 3 + 3d) | [7, 9) | [10, 12) |" in table


def test_a_reading_that_misses_the_papers_numbers_is_refused(monkeypatch):
    """Without x written over the input rows, the stacked rows are 3 + 5d, not the paper's 3 + 4d."""
    from proofs import paper_layout

    monkeypatch.setattr(paper_layout, "SHARED", {})
    with pytest.raises(ValueError, match=r"sgd_step: the stacked rows number 5\*d \+ 3, the paper counts 4\*d \+ 3"):
        paper_layout.paper_rows("sgd_step")


# -- KAPPA, measured -----------------------------------------------------------------------------------------------


def test_kappa_measured_beside_its_bound(record_property):
    """The worst GeLU unit over the networks tests/compiler/test_compiler.py checks with its deterministic cases (the
    two chains on the catalogue's n = 1 task, as test_chain_layers builds them; sgd and ridge on every catalogue case,
    as test_catalogue builds them), in units of the model's ``eps s`` (``proofs/kappa.py``): the value the model's
    KAPPA has to cover. Shown with ``-rP``; the file proofs/kappa.json holds the command's wider measurement."""
    from support import build, sgd_and_ridge

    from construct.testing import EDGE_CASES as CASES

    from proofs import kappa

    t = CASES["n=1"]
    found = [kappa.measure(build(programs.sgd_step(t.d, 0.05, 0.3, t.w0)), t.data),
             kappa.measure(build(programs.sherman_morrison_step(t.d, 0.3)), t.data)]
    for case in CASES.values():
        found += [kappa.measure(build(program, extra=[case.data]), case.data) for program, _ in sgd_and_ridge(case)]
    worst = max(r["kappa"] for r in found)
    record_property("kappa_measured", worst)
    print(f"KAPPA measured {worst:.3f} beside its bound KAPPA = {scales.KAPPA:g} ({len(found)} runs)")
    assert 0 < worst <= scales.KAPPA, f"a unit rounds to {worst:.3g} eps s, beyond the model's KAPPA"
    recorded = kappa.recorded()
    assert recorded["KAPPA"] == scales.KAPPA and 0 < recorded["measured"] <= scales.KAPPA
    assert recorded["cases"] == [list(case) for case in kappa.CASES], "proofs/kappa.json is not of kappa.CASES"


def test_kappa_sees_a_pass_that_rounds_worse(monkeypatch):
    """A float pass whose GeLU is off by 1e-13 relative (far beyond rounding) is measured so, at the first unit."""
    from construct.transformer import forward
    from proofs import kappa

    net = compile(programs.sgd_step(2, 0.1, 0.1, np.zeros(2)), x_max=1.0, y_max=1.0, fuse=False)
    task = (np.array([[0.6, -0.3]]), np.array([0.8]), np.array([0.5, 0.9]))  # inside the box
    assert kappa.measure(net, task)["kappa"] <= scales.KAPPA
    gelu = forward.gelu
    monkeypatch.setattr(forward, "gelu", lambda u: gelu(u) * (1 + 1e-13))
    assert kappa.measure(net, task)["kappa"] > 100


def test_the_walkthrough_refuses_a_newton_schulz_loop_that_does_not_double(monkeypatch):
    """Section 10b's rows are checked as they are computed: a loop step that adds R instead of multiplying by
    I + R leaves P short of sum_{j < 2m} R_0^j, and the walkthrough is not written."""
    from proofs import worked_depth

    assert worked_depth.newton_schulz_section()  # the loop as the program runs it passes its checks
    monkeypatch.setattr(worked_depth, "double", lambda P, R: (P + R, R * R))
    with pytest.raises(ValueError, match=r"t = 2: the loop's P is not sum_\(j < 4\) R_0\^j"):
        worked_depth.newton_schulz_section()


def test_the_walkthrough_explains_every_row_the_averaging_head_writes(monkeypatch):
    from proofs import worked_depth

    written = {k: v for k, v in worked_depth.WRITTEN.items() if k != "IR"}
    monkeypatch.setattr(worked_depth, "WRITTEN", written)
    with pytest.raises(ValueError, match="the averaging head writes .*'IR'"):
        worked_depth.Averaging().section()
