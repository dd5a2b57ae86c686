"""Compiled networks: each layer against the exact machine, end to end against the closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings

from construct import programs, reference
from construct.compiler import Bounds, DomainError
from construct.compiler import compile
from construct.tasks import gaussian_tasks
from construct.testing import EDGE_CASES, assert_agree, compiled_tasks

from support import build, check_layers, sgd_and_ridge


# -- each layer is its instruction ---------------------------------------------------

@settings(max_examples=20)
@given(compiled_tasks())
def test_every_layer_is_its_instruction(t):
    for program, _ in sgd_and_ridge(t):
        check_layers(build(program), t.data)


@pytest.mark.parametrize("name", ["sgd_step", "sherman_morrison_step"])
def test_chain_layers(name):
    t = EDGE_CASES["n=1"]
    program = programs.sgd_step(t.d, 0.05, 0.3, t.w0) if name == "sgd_step" else programs.sherman_morrison_step(t.d, 0.3)
    check_layers(build(program), t.data)


# -- end to end ----------------------------------------------------------------------

E2E = 1e-6


@settings(max_examples=20)
@given(compiled_tasks())
def test_compiled_networks_match_the_closed_forms(t):
    for program, expected in sgd_and_ridge(t):
        assert_agree(build(program).predict(*t.data, tolerance=None), expected, E2E, program.name)


@settings(max_examples=10)
@given(compiled_tasks(n=__import__("hypothesis").strategies.just(1)))
def test_compiled_chains_match_the_closed_forms(t):
    net = build(programs.sgd_step(t.d, t.alpha, t.lam, t.w0))
    got = net.predict(*t.data, tolerance=None)
    assert np.isnan(got[0])
    assert_agree(got[1:], reference.sgd_one_step(*t.data, t.alpha, t.lam, t.w0)[1:], E2E, "sgd_step")
    net = build(programs.sherman_morrison_step(t.d, t.lam))
    assert_agree(net.predict(*t.data, tolerance=None)[1:], reference.ridge(*t.data, t.lam)[1:], E2E,
                 "sherman_morrison_step")


@pytest.mark.parametrize("name", EDGE_CASES)
def test_catalogue(name):
    """Edge cases; each network's domain is calibrated to include the case's own task."""
    t = EDGE_CASES[name]
    for program, expected in sgd_and_ridge(t):
        net = build(program, extra=[t.data])
        assert_agree(net.predict(*t.data, tolerance=None), expected, E2E, f"{name}: {program.name}")


def test_jax_batch_matches_numpy():
    """The passes round differently and the products magnify rounding by ~P (their P^2
    weights cancel to a product of size 1), so they agree to the layers' own error, not to 1e-12."""
    program = programs.ridge(3, 5, 0.5)
    net = build(program)
    tasks = gaussian_tasks(3, 5, 6, seed=9)
    X, y, q = (np.stack(parts) for parts in zip(*tasks))
    batch = net.predict_batch(X, y, q, backend="jax", tolerance=None)
    for task, got in zip(tasks, batch):
        assert_agree(got, net.predict(*task), 1e-9, "jax vs numpy")
        assert_agree(net.predict(*task, backend="jax", tolerance=None), got, 1e-9, "jax single vs batch")
        assert_agree(got, reference.ridge(*task, 0.5), 1e-8, "jax vs closed form")


# -- float32 ---------------------------------------------------------------------------

# Documented float32 bounds (docs/COMPILER.md), the targets. Measured worst (construct/results/accuracy.json):
# sgd 1e-4, ridge 2e-4 (recursive least squares; forming w = Ainv @ b instead, whose terms |Ainv| |b| ~ 500
# cancel to |w| ~ 2, measured 2e-2).
FLOAT32 = {"sgd": 1e-3, "ridge": 1e-3}


@pytest.mark.parametrize("d, n, lam", [(2, 4, 1.0), (8, 16, 0.5), (8, 16, 0.1)])
def test_float32_runs_within_its_documented_bound(d, n, lam):
    for program, name in ((programs.sgd(d, n, 0.05, lam), "sgd"), (programs.ridge(d, n, lam), "ridge")):
        tasks = gaussian_tasks(d, n, 64)
        net = compile(program, Bounds.calibrate(program, tasks), dtype=np.float32)
        assert net.weights.dtype == np.float32
        for task in gaussian_tasks(d, n, 5, seed=7):
            expected = (reference.sgd_one_pass(*task, 0.05, lam) if name == "sgd" else reference.ridge(*task, lam))
            assert_agree(net.predict(*task, tolerance=None), expected, FLOAT32[name], f"float32 {name}")


def test_float32_layers_stay_within_their_predicted_bounds():
    program = programs.ridge(4, 6, 0.5)
    net = compile(program, Bounds.calibrate(program, gaussian_tasks(4, 6, 64)), dtype=np.float32)
    for c in net.check_layers(*gaussian_tasks(4, 6, 1, seed=3)[0]):
        assert c.error <= c.predicted, f"layer {c.layer} ({c.instruction}): {c.error:.3g} > {c.predicted:.3g}"


# -- size, constants, trace ----------------------------------------------------------------


def test_sizes_beside_the_paper():
    """Unfused, one layer per instruction: the paper's chains have the paper's depth."""
    program = programs.sgd_step(4, 0.1, 0.1, np.ones(4))
    sgd = compile(program, Bounds.calibrate(program, gaussian_tasks(4, 1, 8)), fuse=False).size()
    assert sgd["layers"] == 9 and sgd["paper"] == {"layers": 9, "rows": 19} and sgd["data_rows"] == 19
    program = programs.sherman_morrison_step(4, 1.0)
    sm = compile(program, Bounds.calibrate(program, gaussian_tasks(4, 1, 8)), fuse=False).size()
    assert sm["layers"] == 14 and sm["paper"] == {"layers": 14, "rows": 3 + 20 + 48}
    ridge = build(programs.ridge(3, 4, 1.0))
    info = ridge.size()
    w = ridge.weights
    assert info["parameters"] == sum(a.size for name, a in w.arrays().items() if name != "order")
    assert (info["layers"], info["residual_width"]) == (len(ridge.steps), ridge.layout.width)


def test_constants_and_predicted_errors_are_exposed():
    net = build(programs.ridge(3, 4, 1.0))
    assert set(net.constants) >= {"attention_sharpness", "product_scale", "bypass_offset", "ln_pad"}
    assert len(net.layers) == len(net.steps) == net.weights.depth
    kinds = {text.split()[0]: report for report in net.layers for text, _, _ in report.parts}
    assert "product_scale" in kinds["mul"].constants and "div_pad" in kinds["div"].constants
    assert all(0 < report.predicted_error < np.inf and report.out_bound > 0 for report in net.layers)


def test_the_product_scale_is_the_docstrings_optimum_rounded_to_a_power_of_two():
    """scales.product_scale: P^7 = 6 * 0.0063 / (34 KAPPA eps) with KAPPA = 4 (the minimum of 0.0063 / P^6 +
    34 KAPPA eps P), then the nearest power of two in log scale, at least 4: computed here from those numbers
    alone, and pinned (float64: 64 from 53.5; float32: 4 from 3.0). Every product unit's weights and every
    certificate depend on it; a change would otherwise show only in a generated document."""
    import math

    from construct.mechanisms import scales

    for dtype, eps, optimum, pinned in ((np.float64, 2.0**-52, 53.5, 64.0), (np.float32, 2.0**-23, 3.0, 4.0)):
        P = (6 * 0.0063 / (34 * 4 * eps)) ** (1 / 7)
        assert abs(P - optimum) < 0.05, (dtype, P)
        assert max(2.0 ** round(math.log2(P)), 4.0) == pinned == scales.product_scale(dtype), dtype


def test_trace_is_labelled_by_register():
    net = build(programs.ridge(2, 3, 1.0))
    task = gaussian_tasks(2, 3, 1, seed=5)[0]
    trace = net.trace(*task)
    assert trace.states.shape == (net.weights.depth + 1, net.layout.width, 7)
    assert "Ainv[1,0]" in trace.labels and "mean_pad" in trace.labels
    exact = net.program.run(*task, trace=True)
    assert np.allclose(trace.register("Ainv")[-1], exact[-1][net.program.layout.rows("Ainv")], atol=1e-9)


# -- what the compiler refuses -----------------------------------------------------------------


def test_inputs_outside_the_declared_bound():
    net = build(programs.sgd(2, 3, 0.05, 0.1))
    X, y, q = gaussian_tasks(2, 3, 1)[0]
    bound = net.bounds.values["x_in"]
    with pytest.raises(DomainError, match=rf"X\[1, 0\] = .* outside the declared input bound \|x_in\| <= {bound:.6g}"):
        net.predict(np.array([[0.0, 0.0], [bound * 1.5, 0.0], [0.0, 0.0]]), y, q)
    with pytest.raises(DomainError, match=r"y\[2\]"):
        net.predict(X, np.array([0.0, 0.0, 1e6]), q)


def test_intermediate_outside_its_bound_is_an_error_not_a_number():
    program = programs.sgd(2, 4, 0.1, 0.0)
    bounds = Bounds.calibrate(program, gaussian_tasks(2, 4, 64), x_max=20.0)
    net = compile(program, bounds)
    X = np.full((4, 2), 15.0)  # inside the input bound; SGD with 2 alpha |x|^2 = 90 diverges
    with pytest.raises(DomainError, match=r"register '\w+' reached .* after layer \d+ .* beyond its declared bound"):
        net.predict(X, np.ones(4), np.ones(2))


def test_what_cannot_be_placed():
    program = programs.ridge(2, 2, 1.0)
    bounds = Bounds.calibrate(program, gaussian_tasks(2, 2, 8))
    with pytest.raises(ValueError, match=r"no floor for divisor registers \['den1'\]"):
        compile(program, Bounds(bounds.values, {}))
    with pytest.raises(ValueError, match=r"no bound for registers \['corr'\]"):
        compile(program, Bounds({k: v for k, v in bounds.values.items() if k != "corr"}, bounds.floors))
    with pytest.raises(ValueError, match="positive number"):
        Bounds({**bounds.values, "w": -1.0}, bounds.floors)
    with pytest.raises(TypeError, match="takes a Program"):
        compile(program.instructions, bounds)
    with pytest.raises(ValueError, match="float32 or float64"):
        compile(program, bounds, dtype=np.float16)

    from construct import Aff, Program
    from construct.raw.prompt import input_registers
    from construct.raw.registers import Layout, Register

    clash = Program("clash", 1, 1, Layout(input_registers(1) + [Register("one", (1,)), Register("pred", (1,))]),
                    (Aff("pred", (("one", 1.0),)),))
    with pytest.raises(ValueError, match=r"\['one'\] clash with the compiler's own registers"):
        compile(clash, Bounds.calibrate(clash, gaussian_tasks(1, 1, 2)))


def test_compiled_network_refuses_symbols():
    import sympy

    net = build(programs.sgd(1, 1, 0.1, 0.1))
    with pytest.raises(ValueError, match="runs on numbers"):
        net.predict([[sympy.Symbol("x")]], [1.0], [1.0])


def test_batch_can_mark_refused_tasks_instead_of_raising():
    program = programs.sgd(2, 3, 0.05, 0.1)
    net = build(program)
    tasks = gaussian_tasks(2, 3, 3, seed=4)
    X, y, q = (np.stack(parts) for parts in zip(*tasks))
    X[1, 0, 0] = 10 * net.bounds.values["x_in"]
    with pytest.raises(DomainError, match="outside the declared input bound"):
        net.predict_batch(X, y, q)
    preds = net.predict_batch(X, y, q, outside="nan")
    assert np.isnan(preds[1]).all() and not np.isnan(preds[[0, 2]]).any()
    assert_agree(preds[2], net.predict(*tasks[2]), 1e-9, "kept rows")


def test_symbolic_programs_are_not_compiled():
    import sympy

    program = programs.sgd(1, 1, sympy.Symbol("alpha"), 0.1)
    bounds = Bounds({name: 1.0 for name in program.layout.names}, {})
    with pytest.raises(ValueError, match=r"instruction \d+ .* has symbolic constants"):
        compile(program, bounds)


# -- size is known before allocation ----------------------------------------------------------


@pytest.mark.parametrize("program", [programs.ridge(3, 4, 0.1), programs.sgd(2, 3, 0.1, 0.1),
                                     programs.sherman_morrison_step(2, 0.1)], ids=lambda p: p.name)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_size_estimate_is_the_networks_size(program, dtype):
    from construct.compiler import estimate as estimated

    bounds = Bounds.calibrate(program, gaussian_tasks(program.d, program.n, 8))
    w = compile(program, bounds, dtype=dtype).weights
    estimate = estimated(program, bounds, dtype=dtype)
    assert estimate.parameters == w.parameter_count
    assert (estimate.applied, estimate.layers, estimate.width, estimate.head_size, estimate.mlp_width) == (
        w.depth, w.stored, w.width, w.head_size, w.mlp_width)


@pytest.mark.parametrize("architecture", ["paper", "gpt2"])
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("name", ["sgd", "ridge"])
def test_a_long_program_is_sized_from_its_first_blocks(name, fuse, architecture):
    """compile sizes a program of construct.programs from its programs with 1 to 3 examples before it plans a
    layer (estimate_repeated; check_early): the same shapes as planning every layer."""
    from construct.compiler import estimate, estimate_repeated

    build = {"sgd": lambda n: programs.sgd(2, n, 0.05, 0.1), "ridge": lambda n: programs.ridge(2, n, 0.5)}[name]
    for n in (4, 5, 9, 17):
        program = build(n)
        exact = estimate(program, x_max=1.0, y_max=1.0, fuse=fuse, architecture=architecture)
        assert estimate_repeated(build, n, fuse=fuse, architecture=architecture) == exact, n
        assert estimate_repeated(program.truncated, n, fuse=fuse, architecture=architecture) == exact, n


def test_a_declared_block_must_be_the_programs():
    from construct import Program

    ridge = programs.ridge(2, 3, 0.5)
    start, size = ridge.block
    assert ridge.truncated(1).instructions == ridge.instructions[:start + size] + ridge.instructions[start + 3 * size:]
    for block in ((start + 1, size), (start, size + 1), (start, 0), (-1, size), (start, "12")):
        with pytest.raises(ValueError, match=r"ridge: block"):
            Program("ridge", 2, 3, ridge.layout, ridge.instructions, block=block)
    with pytest.raises(ValueError, match="declares no repeated block"):
        programs.sgd_step(2, 0.1, 0.1, np.zeros(2)).truncated(2)


def test_a_network_too_large_is_refused_before_allocation():
    from construct import SizeError

    program = programs.ridge(40, 2, 0.1)
    bounds = Bounds({name: 1.0 for name in program.layout.names}, {"den1": 1.0})
    with pytest.raises(SizeError, match=r"ridge \(d = 40, n = 2, float64\) would need 9 layers \(6 stored\).* about \d+\.\d\d GiB"
                                        r".*above the limit of 4\.00 GiB; raise the limit"):
        compile(program, bounds)
    with pytest.raises(SizeError, match=r"above the limit of 0\.0625 MiB"):
        compile(programs.ridge(2, 2, 0.1), Bounds({n: 1.0 for n in programs.ridge(2, 2, 0.1).layout.names},
                                                  {"den1": 1.0}), max_bytes=2**16)


# -- mechanisms the programs alone do not exercise ---------------------------------------------------


def operand_program(d, registers, product):
    """Registers filled with distinct linear functions of the input (nothing symmetric), then ``product``."""
    from construct import Aff, Program
    from construct.raw.prompt import input_registers
    from construct.raw.registers import Layout, Register

    rng = np.random.default_rng(sum(s for _, shape in registers for s in shape))
    fills = [Aff(name, (("x_in", rng.normal(size=(int(np.prod(shape)), d))), ("y_in", rng.normal(size=(int(
        np.prod(shape)), 1)))), bias=rng.normal(size=int(np.prod(shape)))) for name, shape in registers]
    layout = Layout(input_registers(d) + [Register(n, s) for n, s in registers] + [Register("pred", (1,))])
    return Program("mul_check", d, 2, layout, (*fills, product))


MUL_SHAPES = [(3, 3, 1), (1, 3, 3), (3, 1, 3), (3, 1, 1), (1, 3, 1), (1, 1, 3), (2, 3, 4), (4, 2, 3), (3, 4, 2)]


@pytest.mark.parametrize("shape", MUL_SHAPES, ids=str)
def test_mul_layers_with_non_symmetric_operands(shape):
    """Every shape the programs use (A x, x^T A, u v^T, x y, x^T u, y u^T with d = 3) and rectangular ones, on
    matrices with no symmetry: a layer that read an operand transposed would fail (the programs only ever feed
    the symmetric Ainv)."""
    from construct import Mul

    p, q, r = shape
    program = operand_program(3, [("A", (p, q)), ("B", (q, r)), ("C", (p, r))], Mul("A", "B", "C", shape))
    tasks = gaussian_tasks(3, 2, 16, seed=4)
    net = compile(program, Bounds.calibrate(program, tasks))
    for task in tasks[:3]:
        if p == q > 1:
            A = net.program.run(*task)[net.program.layout.rows("A")].reshape(p, q, -1)
            assert not np.allclose(A, A.transpose(1, 0, 2))
        check_layers(net, task)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_an_in_place_square_uses_both_halves_of_scratch(k):
    """M <- M @ M reads M twice while overwriting it: both operands go to scratch, which holds 2 k^2 rows."""
    from construct import Mul

    program = operand_program(2, [("M", (k, k))], Mul("M", "M", "M", (k, k, k)))
    tasks = gaussian_tasks(2, 2, 16, seed=6)
    net = compile(program, Bounds.calibrate(program, tasks))
    assert net.layout["scratch"].size == 2 * k * k
    for task in tasks[:3]:
        check_layers(net, task)


def test_layer_norm_sees_the_documented_rho():
    """Before each MLP that works, layer norm divides by the pads' scale to rho <= eps/2 (scales.pad_size):
    rho = D (var + ln_eps) / (2 N^2 c^2) - 1 with pads +-N c (c = 1 for mul, c = |den| for div; 2 N^2 c^2 is the
    pads' sum of squares), measured on the state after attention, exactly (in rationals: the float64 state's own
    values). A pad size off by the divisor floor squared (the issue's mutant) breaks it."""
    from fractions import Fraction

    from construct.transformer import forward

    def rho(column, pads):
        v = [Fraction(float(x)) for x in column]
        mean = sum(v) / D
        var = sum((x - mean) ** 2 for x in v) / D
        return D * (var + Fraction(w.ln_eps)) / sum(Fraction(float(column[p])) ** 2 for p in pads) - 1

    program = programs.ridge(3, 4, 0.1)
    net = build(program, fuse=False)  # layer l runs instruction l
    w, layout, D = net.weights, net.layout, net.layout.width
    eps = Fraction(float(np.finfo(np.float64).eps))
    seen = set()
    for task in gaussian_tasks(3, 4, 3, seed=8):
        states = net.trace(*task).states  # (L + 1, D, T)
        for l, ins in enumerate(program.instructions):
            if ins.kind not in ("mul", "div"):
                continue
            X = forward.attention(w, w.order[l], states[l].T)
            pads = [layout.span(name)[0] for name in (("ln_pad_pos", "ln_pad_neg") if ins.kind == "mul" else
                                                       ("div_pad_pos", "div_pad_neg"))]
            for t, column in enumerate(X):
                r = rho(column, pads)
                assert 0 <= r <= eps / 2, f"layer {l + 1} ({ins}), token {t}: rho {float(r):.3g} outside [0, eps/2]"
            seen.add(ins.kind)
    assert seen == {"mul", "div"}

    # At the corner of the domain: every program register at its bound, each divisor at its floor.
    T = 2 * program.n + 1
    H = np.zeros((T, D))
    signs = np.where(np.arange(D) % 2, 1.0, -1.0)
    for name in program.layout.names:
        rows = layout.rows(name)
        H[:, rows] = net.bounds.values[name] * signs[rows]
    H[:, layout.rows("pos")] = np.arange(T)[:, None]
    H += w.positions[:T] * (H == 0)
    for l, ins in enumerate(program.instructions):
        if ins.kind != "div":
            continue
        corner = H.copy()
        corner[:, layout.rows(ins.den)] = net.bounds.floors[ins.den]
        X = forward.attention(w, w.order[l], corner)
        for t, column in enumerate(X):
            r = rho(column, [layout.span("div_pad_pos")[0], layout.span("div_pad_neg")[0]])
            assert 0 <= r <= eps / 2, f"layer {l + 1} ({ins}) at the domain's corner: rho {float(r):.3g} > eps/2"


def test_every_layer_at_the_largest_accuracy_setting():
    """d = 8, n = 16, lam = 0.1 (docs/COMPILER.md's accuracy setting at its largest): the deterministic hypothesis
    draws missed it, and it is where the products' operand bounds are largest."""
    for program in (programs.ridge(8, 16, 0.1), programs.sgd(8, 16, 0.05, 0.1)):
        net = build(program)
        for task in gaussian_tasks(8, 16, 2, seed=11):
            check_layers(net, task)
